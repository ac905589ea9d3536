"""Issue clusters: BERTopic over verbatims, with the classifier's own embeddings.

``IssueClusterer.fit`` groups a data set's verbatims (typically the negative ones) into issues,
names each in Chinese and English from its c-TF-IDF keywords (jieba words through the shared
segmenter, so Chinese keywords are words, not sentences), maps it to the taxonomy topic its
members were classified under most, or flags it as emerging when none fits. ``assign`` places a
new batch: first onto the existing clusters by centroid similarity, then into new clusters with
new ids. Ids are stable: the same data and ``random_state`` give the same clusters.

No embedding model is loaded here: embeddings come from
``Classifier.classify_with_embeddings``, so an analysis holds one model, not two.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.analytics._cluster_fit import (
    BatchClusters,
    ClusterParams,
    align,
    attach_threshold,
    centroids_of,
    cluster_batch,
    language_shifts,
    radii_of,
    split_keywords,
)
from nlp.errors import InvalidInputError, ModelError
from nlp.segment import Segmenter, get_default_segmenter

__all__ = ["Cluster", "ClusterSet", "IssueClusterer"]

_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile("[A-Za-z]{2,}")


@dataclass(frozen=True, kw_only=True, slots=True)
class Cluster:
    """One issue: bilingual label and keywords, size, most central examples, taxonomy mapping."""

    id: str
    label: str
    label_zh: str
    label_en: str
    keywords: tuple[str, ...]
    keywords_zh: tuple[str, ...]
    keywords_en: tuple[str, ...]
    size: int
    examples: tuple[str, ...]
    topic: str | None = None
    overlap: float = 0.0
    emerging: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The contract's cluster shape (``id, label, size, keywords, examples``) plus the rest."""
        out = asdict(self)
        for key in ("keywords", "keywords_zh", "keywords_en", "examples"):
            out[key] = list(out[key])
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cluster:
        tuples = ("keywords", "keywords_zh", "keywords_en", "examples")
        return cls(**{k: tuple(v) if k in tuples else v for k, v in data.items()})


@dataclass(frozen=True, kw_only=True, slots=True)
class ClusterSet:
    """Clusters of one batch: ``labels[i]`` is the cluster id of input ``i`` (``None``: outlier)."""

    labels: list[str | None]
    clusters: list[Cluster] = field(default_factory=list)

    @property
    def coverage(self) -> float:
        """Share of the inputs that belong to a cluster."""
        return sum(lab is not None for lab in self.labels) / len(self.labels) if self.labels else 0.0

    def get(self, cluster_id: str) -> Cluster:
        for cluster in self.clusters:
            if cluster.id == cluster_id:
                return cluster
        raise KeyError(cluster_id)

    def to_dict(self) -> dict[str, Any]:
        return {"labels": list(self.labels), "coverage": self.coverage,
                "clusters": [c.to_dict() for c in self.clusters]}


@dataclass(frozen=True, slots=True)
class _Batch:
    texts: list[str]
    embeddings: np.ndarray
    ids: list[str]
    langs: list[str]
    topics: list[list[str]] | None
    valid: np.ndarray


class IssueClusterer:
    """Finds and names issue clusters; ``fit`` a data set, then ``assign`` new batches.

    ``min_cluster_size`` defaults to ``max(5, sqrt(n) / 5)`` and ``min_samples`` to half of it; ``outlier_target`` is the share of
    verbatims that must end up in a cluster; a cluster whose most frequent taxonomy topic covers
    less than ``min_overlap`` of its members is ``emerging``.
    """

    def __init__(self, segmenter: Segmenter | None = None, *, min_cluster_size: int | None = None,
                 min_samples: int | None = None, random_state: int = 42, outlier_target: float = 0.85,
                 min_overlap: float = 0.25, top_n_keywords: int = 5, n_examples: int = 5,
                 align_languages: bool = True) -> None:
        self.segmenter = segmenter
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.random_state = random_state
        self.outlier_target = outlier_target
        self.min_overlap = min_overlap
        self.top_n_keywords = top_n_keywords
        self.n_examples = n_examples
        self.align_languages = align_languages

    # public verbs ------------------------------------------------------------------------
    def fit(self, texts: Sequence[str], embeddings: np.ndarray, *, ids: Sequence[str], langs: Sequence[str],
            topics: Sequence[Sequence[str]] | None = None, taxonomy: Any = None) -> ClusterSet:
        """Cluster a data set from scratch; returns its clusters (ids ``c1``, ``c2``... by size)."""
        if not 0.0 < self.outlier_target <= 1.0:
            raise InvalidInputError(f"outlier_target must be in (0, 1], got {self.outlier_target}")
        batch = _check(texts, embeddings, ids, langs, topics)
        self.params_ = ClusterParams(min_cluster_size=self.min_cluster_size, min_samples=self.min_samples,
                                     random_state=self.random_state, outlier_target=self.outlier_target)
        self.topic_ids_ = (sorted(t.id for t in taxonomy.topics if t.active) if taxonomy is not None else None)
        rows = np.flatnonzero(batch.valid)
        raw = batch.embeddings[rows]
        langs_v = [batch.langs[i] for i in rows]
        self.shifts_ = language_shifts(raw, langs_v) if self.align_languages else {}
        emb = align(raw, langs_v, self.shifts_)
        found = cluster_batch([batch.texts[i] for i in rows], emb, self.params_, self._segmenter)
        self.cluster_ids_: list[str] = []
        self.centroids_ = np.zeros((0, emb.shape[1]), dtype=np.float32)
        self.radii_ = np.zeros((0, 3), dtype=np.float32)  # edge, typical, apart
        self.clusters_: list[Cluster] = []
        self.next_id_ = 1
        local = np.full(len(rows), -1)
        new_rows = self._add_clusters(found, emb, np.arange(len(rows)), local)
        clusters = [self._describe(r, batch, rows, emb, local, found) for r in new_rows]
        self.clusters_ = clusters
        return self._result(batch, rows, local, clusters)

    def assign(self, texts: Sequence[str], embeddings: np.ndarray, *, ids: Sequence[str], langs: Sequence[str],
               topics: Sequence[Sequence[str]] | None = None) -> ClusterSet:
        """Place a new batch: existing clusters first, then new clusters.

        A text joins its nearest existing centroid outright when it is as close as the cluster's
        edge members and closer than 99% of the other texts were; the rest are clustered anew,
        and a new cluster whose centroid lies as close to an existing one as that cluster's typical
        member (or a text nearer an existing centroid than its new one) joins the existing cluster.

        Matched clusters keep their id, label and keywords; ``size``, ``examples`` and the topic
        mapping describe this batch. New clusters get the next free ids and are kept for later
        batches. Only clusters present in the batch are returned.
        """
        self._check_fitted()
        batch = _check(texts, embeddings, ids, langs, topics)
        rows = np.flatnonzero(batch.valid)
        emb = align(batch.embeddings[rows], [batch.langs[i] for i in rows], self.shifts_)
        local = np.full(len(rows), -1)
        if len(self.cluster_ids_) and len(rows):
            sims = emb @ self.centroids_.T
            best = sims.argmax(axis=1)
            hit = sims[np.arange(len(rows)), best] >= self.radii_[best][:, [0, 2]].max(axis=1)  # at the edge and apart
            local[hit] = best[hit]
        rest = np.flatnonzero(local < 0)
        found = cluster_batch([batch.texts[rows[i]] for i in rest], emb[rest], self.params_, self._segmenter,
                              single_cluster=True)
        found = self._merge_into_existing(found, emb[rest], rest, local)
        found = self._prefer_existing(found, emb[rest], rest, local)
        new_rows = self._add_clusters(found, emb[rest], rest, local)
        self._attach_outliers(emb, local, apart=True)
        present = sorted(set(local[local >= 0].tolist()))
        clusters = []
        for r in present:
            cluster = self._describe(r, batch, rows, emb, local, found if r in new_rows else None)
            if r in new_rows:
                self.clusters_.append(cluster)
            clusters.append(cluster)
        return self._result(batch, rows, local, clusters)

    def save(self, directory: str | Path) -> Path:
        """Write ``config.json`` and ``arrays.safetensors`` (no pickle); the segmenter goes along."""
        from models.analytics._cluster_io import save_clusterer

        self._check_fitted()
        return save_clusterer(self, Path(directory))

    @classmethod
    def load(cls, directory: str | Path) -> IssueClusterer:
        """Read a directory written by :meth:`save`, segmenter (user dictionary, stop words) included."""
        from models.analytics._cluster_io import load_clusterer

        return load_clusterer(cls, Path(directory))

    # internals ---------------------------------------------------------------------------
    @property
    def _segmenter(self) -> Segmenter:
        return self.segmenter or get_default_segmenter()

    def _check_fitted(self) -> None:
        if not hasattr(self, "centroids_"):
            raise ModelError("this IssueClusterer is not fitted: call fit() or IssueClusterer.load() first")

    def _add_clusters(self, found: BatchClusters, emb: np.ndarray, at: np.ndarray, local: np.ndarray) -> list[int]:
        """Register the clusters of ``found`` (largest first) and write their rows into ``local``."""
        labels = found.labels
        sizes = Counter(labels[labels >= 0].tolist())
        order = sorted(sizes, key=lambda c: (-sizes[c], int(np.flatnonzero(labels == c)[0])))
        if not order:
            return []
        cent = centroids_of(emb, labels, order)
        radii = radii_of(emb, labels, found.core, cent, order)
        start = len(self.cluster_ids_)
        for k, c in enumerate(order):
            local[at[labels == c]] = start + k
            self.cluster_ids_.append(f"c{self.next_id_}")
            self.next_id_ += 1
        self.centroids_ = np.vstack([self.centroids_, cent]).astype(np.float32)
        self.radii_ = np.vstack([self.radii_, radii]).astype(np.float32)
        self._local_of = {start + k: c for k, c in enumerate(order)}
        return list(range(start, start + len(order)))

    def _merge_into_existing(self, found: BatchClusters, emb: np.ndarray, at: np.ndarray,
                             local: np.ndarray) -> BatchClusters:
        """A new cluster whose centroid is as close to an existing one as its typical member is joins it."""
        labels = found.labels.copy()
        new = sorted(set(labels[labels >= 0].tolist()))
        if not new or not len(self.cluster_ids_):
            return found
        sims = centroids_of(emb, labels, new) @ self.centroids_.T
        for k, c in enumerate(new):
            best = int(sims[k].argmax())
            if sims[k, best] >= self.radii_[best, 1]:
                local[at[labels == c]] = best
                labels[labels == c] = -1
        return BatchClusters(labels=labels, core=found.core & (labels >= 0), words=found.words)

    def _prefer_existing(self, found: BatchClusters, emb: np.ndarray, at: np.ndarray,
                         local: np.ndarray) -> BatchClusters:
        """Texts put in a new cluster but nearer an existing centroid than their own go to the existing one."""
        labels = found.labels.copy()
        new = sorted(set(labels[labels >= 0].tolist()))
        if not new or not len(self.cluster_ids_):
            return found
        cent = centroids_of(emb, labels, new)
        own = np.full(len(labels), np.inf)
        for k, c in enumerate(new):
            own[labels == c] = emb[labels == c] @ cent[k]
        sims = emb @ self.centroids_.T
        best = sims.argmax(axis=1)
        move = sims[np.arange(len(labels)), best] > own
        local[at[move]] = best[move]
        labels[move] = -1
        return BatchClusters(labels=labels, core=found.core & ~move, words=found.words)

    def _attach_outliers(self, emb: np.ndarray, local: np.ndarray, *, apart: bool = False) -> None:
        """Bring the batch's coverage up to ``outlier_target`` with the closest outliers.

        With ``apart``, an outlier also joins its nearest cluster when it is closer to it than 99%
        of the texts outside that cluster were.
        """
        out = np.flatnonzero(local < 0)
        if not out.size or not len(self.cluster_ids_):
            return
        sims = emb[out] @ self.centroids_.T
        best = sims.argmax(axis=1)
        best_sim = sims[np.arange(out.size), best]
        natural = float(np.median(self.radii_[:, 0]))
        threshold = attach_threshold(best_sim, len(local), int((local >= 0).sum()), natural, self.outlier_target)
        take = best_sim >= threshold
        if apart:
            take |= best_sim >= self.radii_[best, 2]
        local[out[take]] = best[take]

    def _describe(self, r: int, batch: _Batch, rows: np.ndarray, emb: np.ndarray, local: np.ndarray,
                  found: BatchClusters | None) -> Cluster:
        members = np.flatnonzero(local == r)
        central = members[np.argsort(-(emb[members] @ self.centroids_[r]), kind="stable")]
        examples = tuple(batch.ids[rows[i]] for i in central[: self.n_examples])
        topic, overlap, emerging = self._topic_of([rows[i] for i in members], batch.topics)
        cid = self.cluster_ids_[r]
        if found is None:  # an existing cluster: its name stays
            known = next(c for c in self.clusters_ if c.id == cid)
            kz, ke, kw = known.keywords_zh, known.keywords_en, known.keywords
        else:
            texts = [batch.texts[rows[i]] for i in members]
            floor = max(2, int(0.05 * len(texts)))
            kz, ke, kw = split_keywords(found.words.get(self._local_of[r], []),
                                        has_zh=sum(bool(_HAN.search(t)) for t in texts) >= floor,
                                        has_en=sum(bool(_LATIN.search(t)) for t in texts) >= floor,
                                        top_n=self.top_n_keywords)
        label_zh, label_en = "、".join(kz[:2]), ", ".join(ke[:2])
        return Cluster(id=cid, label=" / ".join(x for x in (label_zh, label_en) if x) or cid,
                       label_zh=label_zh, label_en=label_en, keywords=tuple(kw), keywords_zh=tuple(kz),
                       keywords_en=tuple(ke), size=int(members.size), examples=examples, topic=topic,
                       overlap=overlap, emerging=emerging)

    def _topic_of(self, members: list[int], topics: list[list[str]] | None) -> tuple[str | None, float, bool]:
        """(most overlapping taxonomy topic or None, its share of members, emerging flag)."""
        if topics is None or not members:
            return None, 0.0, False
        allowed = set(self.topic_ids_) if self.topic_ids_ is not None else None
        counts = Counter(t for i in members for t in set(topics[i]) if allowed is None or t in allowed)
        if not counts:
            return None, 0.0, True
        topic, count = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        overlap = round(count / len(members), 4)
        if overlap < self.min_overlap:
            return None, overlap, True
        return topic, overlap, False

    def _result(self, batch: _Batch, rows: np.ndarray, local: np.ndarray, clusters: list[Cluster]) -> ClusterSet:
        labels: list[str | None] = [None] * len(batch.texts)
        for i, r in zip(rows, local, strict=True):
            if r >= 0:
                labels[i] = self.cluster_ids_[r]
        return ClusterSet(labels=labels, clusters=clusters)


def _check(texts: Sequence[str], embeddings: np.ndarray, ids: Sequence[str], langs: Sequence[str],
           topics: Sequence[Sequence[str]] | None) -> _Batch:
    """Validate one batch; rows with a NaN embedding (failed items) or empty text become outliers."""
    n = len(texts)
    emb = np.asarray(embeddings, dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] != n:
        raise InvalidInputError(f"embeddings must be an array of {n} rows (one per text), got shape {emb.shape}")
    for name, values in (("ids", ids), ("langs", langs), ("topics", topics)):
        if values is not None and len(values) != n:
            raise InvalidInputError(f"{name} must have one entry per text ({n}), got {len(values)}")
    if len(set(ids)) != n:
        raise InvalidInputError("ids must be unique: they name the examples of each cluster")
    texts = [t if isinstance(t, str) else "" for t in texts]
    valid = np.isfinite(emb).all(axis=1) & np.array([bool(t.strip()) for t in texts], dtype=bool)
    emb = np.where(np.isfinite(emb), emb, 0.0).astype(np.float32)
    return _Batch(texts=texts, embeddings=emb, ids=[str(i) for i in ids], langs=[str(x) for x in langs],
                  topics=[list(t or []) for t in topics] if topics is not None else None, valid=valid)
