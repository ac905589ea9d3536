"""The BERTopic pipeline behind :class:`~models.analytics.clusters.IssueClusterer`.

One batch of verbatims (texts plus the classifier's own embeddings) goes through

1. language alignment: each language is shifted onto the largest one by the mean offset between
   cross-language mutual nearest neighbours, so a multilingual encoder's "this is Chinese"
   direction does not split one issue into a zh and an en cluster (cf. language-mean centring,
   Libovický et al. 2020, made robust to languages that carry different topics);
2. BERTopic with UMAP (fixed ``random_state``) and HDBSCAN, no embedding model of its own, and a
   ``CountVectorizer`` over the shared :class:`~nlp.segment.Segmenter` (jieba words for Chinese);
3. outlier reduction with ``reduce_outliers(strategy="embeddings")``: outliers join their nearest
   cluster when they are as close to it as a typical member is, and the closest others join until
   ``outlier_target`` of the batch is in a cluster; clusters themselves are never merged;
4. ``update_topics`` so the c-TF-IDF keywords describe the final members.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nlp.segment import Segmenter

log = logging.getLogger(__name__)

_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_NUMBER = re.compile(r"^[\d.,%-]+$")
_MENTION = re.compile(r"(?<!\w)@\w+")
#: Negations carry meaning inside a phrase but make no label on their own.
_LONE = frozenset("not no never nothing none cannot without 不 没 没有 别 未 无 不是 不能 不会".split())
#: Quantile of a cluster's own members' similarity to its centroid used as its radius.
RADIUS_QUANTILE = 0.05
#: Fewest verbatims a language needs before its mean is aligned.
MIN_LANG_DOCS = 10
TOP_N_WORDS = 60


@dataclass(frozen=True, kw_only=True, slots=True)
class ClusterParams:
    """Settings of one clustering run (saved with the clusterer)."""

    min_cluster_size: int | None = None
    min_samples: int | None = None
    n_neighbors: int = 15
    n_components: int = 5
    random_state: int = 42
    outlier_target: float = 0.85

    def cluster_size(self, n: int) -> int:
        """``min_cluster_size``, or by default a size that grows with the square root of ``n``.

        (``sqrt(n) / 5`` and ``min_samples`` of half of it were chosen on 3,000 Banking77 *train*
        queries; the study reports the test split.)
        """
        if self.min_cluster_size is not None:
            return self.min_cluster_size
        return max(5, round(math.sqrt(n) / 5))

    def samples(self, n: int) -> int:
        """HDBSCAN's ``min_samples``: fewer than ``min_cluster_size`` so fewer texts are outliers."""
        if self.min_samples is not None:
            return self.min_samples
        return max(2, self.cluster_size(n) // 2)


@dataclass(frozen=True, kw_only=True, slots=True)
class BatchClusters:
    """What one run found: a label per row (-1 outlier), core membership and keywords per cluster."""

    labels: np.ndarray
    core: np.ndarray
    words: Mapping[int, list[tuple[str, float]]] = field(default_factory=dict)


def language_shifts(embeddings: np.ndarray, langs: Sequence[str], *, rounds: int = 3) -> dict[str, np.ndarray]:
    """Per language, the vector that moves its texts onto the largest language's (empty for one language).

    The offset is the mean difference over mutual nearest neighbours across the two languages
    (texts that say the same thing), not the difference of the languages' means, which would also
    carry whatever topics one language has and the other lacks. Refined over a few ``rounds``.
    """
    langs_arr = np.asarray([str(lang) for lang in langs])
    counts = collections.Counter(langs_arr.tolist())
    big = sorted((lang for lang, c in counts.items() if c >= MIN_LANG_DOCS), key=lambda g: (-counts[g], g))
    if len(big) < 2:
        return {}
    ref = _unit(embeddings[langs_arr == big[0]])
    shifts = {}
    for lang in big[1:]:
        own = embeddings[langs_arr == lang]
        shift = np.zeros(embeddings.shape[1], dtype=np.float32)
        for _ in range(rounds):
            moved = _unit(own + shift)
            sims = moved @ ref.T
            nearest, back = sims.argmax(axis=1), sims.argmax(axis=0)
            mutual = back[nearest] == np.arange(len(moved))
            if mutual.sum() < 3:
                break
            shift = shift + (ref[nearest[mutual]] - moved[mutual]).mean(axis=0)
        shifts[lang] = shift.astype(np.float32)
    return shifts


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def align(embeddings: np.ndarray, langs: Sequence[str], shifts: Mapping[str, np.ndarray]) -> np.ndarray:
    """Shift each row by its language's vector and L2-normalise (rows of other languages unshifted)."""
    out = np.asarray(embeddings, dtype=np.float32).copy()
    for i, lang in enumerate(langs):
        shift = shifts.get(str(lang))
        if shift is not None:
            out[i] += shift
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms > 0, norms, 1.0)


def make_vectorizer(segmenter: Segmenter, docs: Sequence[str] | None = None) -> Any:
    """A ``CountVectorizer`` over the segmenter's tokens (stop words dropped), unigrams and bigrams.

    With ``docs``, the vocabulary is fixed to the terms found in at least two of them (BERTopic
    counts terms over whole clusters, where one verbatim's odd word would look distinctive).
    """
    from sklearn.feature_extraction.text import CountVectorizer

    vocabulary = None
    if docs is not None:
        finder = CountVectorizer(tokenizer=segmenter, token_pattern=None, lowercase=False, ngram_range=(1, 2),
                                 min_df=2)
        try:
            vocabulary = sorted(finder.fit(docs).vocabulary_)
        except ValueError:  # no term in two verbatims: fall back to every term
            vocabulary = None
    return CountVectorizer(tokenizer=segmenter, token_pattern=None, lowercase=False, ngram_range=(1, 2),
                           vocabulary=vocabulary)


def attach_threshold(best: np.ndarray, n_total: int, n_core: int, natural: float, target: float) -> float:
    """The similarity above which outliers join their nearest cluster.

    ``natural`` (as close as a typical member) is enough; below it, only the closest outliers
    needed to put ``target`` of all rows in a cluster join.
    """
    needed = math.ceil(target * n_total - 1e-9) - n_core
    if needed <= 0 or best.size == 0:
        return natural
    ranked = np.sort(best)[::-1]
    return float(min(natural, ranked[min(needed, ranked.size) - 1]))


def centroids_of(embeddings: np.ndarray, labels: np.ndarray, clusters: Sequence[int]) -> np.ndarray:
    """L2-normalised mean embedding of each cluster in ``clusters`` (rows in that order)."""
    rows = [embeddings[labels == c].mean(axis=0) for c in clusters]
    cent = np.asarray(rows, dtype=np.float32).reshape(len(rows), embeddings.shape[1])
    norms = np.linalg.norm(cent, axis=1, keepdims=True)
    return cent / np.where(norms > 0, norms, 1.0)


def radii_of(embeddings: np.ndarray, labels: np.ndarray, core: np.ndarray, centroids: np.ndarray,
             clusters: Sequence[int]) -> np.ndarray:
    """Per cluster, three cosines to its centroid: ``[edge, typical, apart]``.

    ``edge`` is the :data:`RADIUS_QUANTILE` of its core members, ``typical`` their median, and
    ``apart`` the 99th percentile of the other texts of the batch (other clusters and outliers):
    a text above it is closer to this cluster than nearly everything that is not in it.
    """
    sims = embeddings @ centroids.T
    out = []
    for row, c in enumerate(clusters):
        members = (labels == c) & core
        if not members.any():
            members = labels == c
        edge, typical = np.quantile(sims[members, row], [RADIUS_QUANTILE, 0.5])
        others = sims[labels != c, row]
        apart = float(np.quantile(others, 0.99)) if others.size else edge
        out.append((edge, typical, apart))
    return np.asarray(out, dtype=np.float32).reshape(len(out), 3)


@contextlib.contextmanager
def _quiet_bertopic() -> Iterator[None]:
    """Hold BERTopic's own logger (which prints to stderr) to errors for one call, then restore it."""
    bertopic_log = logging.getLogger("BERTopic")
    level = bertopic_log.level
    bertopic_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        bertopic_log.setLevel(level)


def exact_knn(embeddings: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, None]:
    """Exact cosine k nearest neighbours (self first) in UMAP's ``precomputed_knn`` form.

    A brute-force product of L2-normalised rows is faster than UMAP's own search on a few
    thousand to tens of thousands of verbatims, needs no numba compilation, and is deterministic.
    """
    from sklearn.neighbors import NearestNeighbors

    search = NearestNeighbors(n_neighbors=k, metric="cosine", algorithm="brute").fit(embeddings)
    dists, idx = search.kneighbors(embeddings)
    return idx.astype(np.int32), np.maximum(dists, 0.0).astype(np.float32), None


def cluster_batch(texts: Sequence[str], embeddings: np.ndarray, params: ClusterParams,
                  segmenter: Segmenter, *, single_cluster: bool = False) -> BatchClusters:
    """Cluster one batch of (already aligned, L2-normalised) embeddings with BERTopic.

    ``single_cluster`` lets HDBSCAN return the whole batch as one cluster (for the texts of a new
    batch that matched no existing cluster, which may well be one new issue).
    """
    n = len(texts)
    size = params.cluster_size(n)
    if n < max(2 * size, 10):
        return BatchClusters(labels=np.full(n, -1), core=np.zeros(n, dtype=bool))
    from bertopic import BERTopic
    from bertopic.vectorizers import ClassTfidfTransformer
    from hdbscan import HDBSCAN
    from umap import UMAP

    docs = [_MENTION.sub(" ", t) for t in texts]
    vectorizer = make_vectorizer(segmenter, docs)
    umap_model = UMAP(n_neighbors=min(params.n_neighbors, n - 1), n_components=params.n_components,
                      min_dist=0.0, metric="cosine", random_state=params.random_state,
                      precomputed_knn=exact_knn(embeddings, min(params.n_neighbors, n - 1)))
    hdbscan_model = HDBSCAN(min_cluster_size=size, min_samples=params.samples(n), metric="euclidean",
                            cluster_selection_method="eom", allow_single_cluster=single_cluster)
    model = BERTopic(embedding_model=None, umap_model=umap_model, hdbscan_model=hdbscan_model,
                     vectorizer_model=vectorizer,
                     ctfidf_model=ClassTfidfTransformer(reduce_frequent_words=True),
                     top_n_words=TOP_N_WORDS, calculate_probabilities=False, verbose=False,
                     language="multilingual")  # "english" would strip every non-ASCII character
    with warnings.catch_warnings(), _quiet_bertopic():  # UMAP: no transform without an NNDescent index
        warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]", category=UserWarning)
        warnings.filterwarnings("ignore", message=r"n_jobs value .* overridden", category=UserWarning)
        topics = np.asarray(model.fit_transform(docs, embeddings=embeddings)[0])
    core = topics >= 0
    found = sorted(set(topics[core].tolist()))
    if not found:
        return BatchClusters(labels=topics, core=core)
    if not core.all():
        cent = centroids_of(embeddings, topics, found)
        natural = float(np.median(radii_of(embeddings, topics, core, cent, found)[:, 0]))
        best = (embeddings[~core] @ cent.T).max(axis=1)
        threshold = attach_threshold(best, n, int(core.sum()), natural, params.outlier_target)
        new = model.reduce_outliers(docs, topics.tolist(), strategy="embeddings", embeddings=embeddings,
                                    threshold=threshold - 1e-5)
        topics = np.asarray(new)
        with _quiet_bertopic():  # its warning about custom topic lists is about later topic reduction
            model.update_topics(docs, topics=topics.tolist(), vectorizer_model=vectorizer,
                                ctfidf_model=ClassTfidfTransformer(reduce_frequent_words=True),
                                top_n_words=TOP_N_WORDS)
    words = {t: [(str(w), float(s)) for w, s in (model.get_topic(t) or []) if w] for t in found}
    return BatchClusters(labels=topics, core=core, words=words)


def _readable(term: str) -> str:
    """A bigram of two Chinese words reads without the space ("送餐 慢" -> "送餐慢")."""
    parts = term.split(" ")
    if len(parts) == 2 and _HAN.search(parts[0][-1]) and _HAN.search(parts[1][0]):
        return "".join(parts)
    return term


def _overlaps(a: str, b: str) -> bool:
    """Whether one term repeats the other (characters for Chinese, words for English)."""
    if _HAN.search(a):
        return a in b or b in a
    wa, wb = set(a.split()), set(b.split())
    return wa <= wb or wb <= wa


def split_keywords(words: Sequence[tuple[str, float]], *, has_zh: bool, has_en: bool,
                   top_n: int) -> tuple[list[str], list[str], list[str]]:
    """(keywords_zh, keywords_en, both by score) from c-TF-IDF words, split by script.

    A language's keywords are kept only when the cluster has verbatims in that language; lone
    negations, bare numbers and single Chinese characters are skipped, and a term already covered by a better one is dropped.
    """
    zh: list[tuple[str, float]] = []
    en: list[tuple[str, float]] = []
    for term, score in words:
        parts = term.split(" ")
        if (score <= 0 or term in _LONE or parts[-1] in _LONE or any(_NUMBER.match(p) for p in parts)
                or (len(term) == 1 and _HAN.match(term))):  # a lone character names no issue
            continue
        side = zh if _HAN.search(term) else en
        if side is zh and not has_zh or side is en and not has_en:
            continue
        text = _readable(term)
        if any(_overlaps(text, kept) for kept, _ in side):
            continue
        side.append((text, score))
    zh, en = zh[:top_n], en[:top_n]
    both = [t for t, _ in sorted(zh + en, key=lambda p: -p[1])]
    return [t for t, _ in zh], [t for t, _ in en], both
