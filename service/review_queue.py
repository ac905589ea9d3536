"""The review queue: the unlabelled records of a tenant most worth an analyst's label next.

Every unlabelled record of the data set(s) (up to :data:`MAX_POOL`, optionally one language) is
scored from its stored classification, without touching the model:

- ``uncertain``: :func:`models.review.uncertainty` (weight 0.40);
- ``rare_node``: its topics/touchpoints have few current labels (:func:`models.review.rarity`, 0.15);
- ``emerging_cluster``: it is in a cluster the data set's latest analysis marks ``emerging`` (0.15).

The best ``SHORTLIST_FACTOR × limit`` per language are then scored for ``disagreement`` with the
zero-shot prior (:func:`models.review.disagreement`, 0.30), computed now for those texts only and
never cached. The queue takes the best of each language in turns (zh, en, then others), a record
whose main node is already proposed losing 15 % per repeat so the page covers more nodes. Each item
says why it was proposed. Records with any label (current or superseded) are left out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.review import Signal, TopicPrior, disagreement, interleave, rarity, uncertainty
from nlp.errors import NotFoundError
from service.labels import label_counts, labelled_records
from service.storage.models import Analysis, AnalysisStatus, Dataset, DatasetRecord, DatasetStatus

WEIGHTS = {"uncertain": 0.40, "disagreement": 0.30, "rare_node": 0.15, "emerging_cluster": 0.15}
MAX_POOL = 20_000
SHORTLIST_FACTOR = 3
REPEAT_PENALTY = 0.85
PriorFn = Callable[[Sequence[str]], TopicPrior]


@dataclass(kw_only=True)
class _Candidate:
    pk: int
    dataset_id: str
    record_id: str
    lang: str | None
    labels: dict[str, Any]
    signals: list[Signal] = field(default_factory=list)
    text: str = ""
    prior: list[tuple[str, float]] | None = None

    @property
    def score(self) -> float:
        return sum(WEIGHTS[s.kind] * s.score for s in self.signals)

    @property
    def main_node(self) -> str | None:
        topics = self.labels.get("topics") or []
        return topics[0]["id"] if topics else None


def emerging_members(session: Session, dataset_id: str) -> dict[str, str]:
    """Record id -> label of the emerging cluster it belongs to, from the latest finished analysis
    of the data set (its cluster's ``members``/``record_ids`` when given, else ``examples``)."""
    result = session.scalar(
        select(Analysis.result)
        .where(Analysis.dataset_id == dataset_id, Analysis.status == AnalysisStatus.succeeded.value)
        .order_by(Analysis.created_at.desc())
        .limit(1)
    )
    members: dict[str, str] = {}
    for cluster in (result or {}).get("clusters") or []:
        if not cluster.get("emerging"):
            continue
        name = f"{cluster.get('id')} “{cluster.get('label', '')}”"
        for rid in cluster.get("members") or cluster.get("record_ids") or cluster.get("examples") or []:
            members.setdefault(str(rid), name)
    return members


def _datasets(session: Session, tenant_id: str, dataset_id: str | None) -> list[str]:
    query = select(Dataset.id).where(Dataset.tenant_id == tenant_id)
    if dataset_id is not None:
        found = None if "\x00" in dataset_id else session.scalar(query.where(Dataset.id == dataset_id))
        if found is None:
            raise NotFoundError(
                f"No data set with id {dataset_id[:40]!r} for this API key's tenant.",
                details={"id": dataset_id[:40]},
            )
        return [found]
    return list(session.scalars(query.where(Dataset.status == DatasetStatus.ready.value)).all())


def _pool(session: Session, dataset_ids: list[str], lang: str | None) -> Iterable[Any]:
    query = select(
        DatasetRecord.pk, DatasetRecord.dataset_id, DatasetRecord.record_id, DatasetRecord.lang,
        DatasetRecord.labels,
    ).where(DatasetRecord.dataset_id.in_(dataset_ids))  # fmt: skip
    if lang is not None:
        query = query.where(DatasetRecord.lang == lang)
    return session.execute(query.order_by(DatasetRecord.pk).limit(MAX_POOL)).all()


def review_queue(
    session: Session,
    tenant_id: str,
    *,
    dataset_id: str | None = None,
    limit: int = 20,
    lang: str | None = None,
    prior: PriorFn | None = None,
    prior_note: str | None = None,
) -> dict[str, Any]:
    """The queue page: ``items`` (best first, languages interleaved) and how it was made."""
    dataset_ids = _datasets(session, tenant_id, dataset_id)
    labelled = labelled_records(session, tenant_id, dataset_ids)
    counts = label_counts(session, tenant_id)
    emerging = {ds: emerging_members(session, ds) for ds in dataset_ids}
    candidates: dict[str | None, list[_Candidate]] = defaultdict(list)
    seen = 0
    for row in _pool(session, dataset_ids, lang):
        seen += 1
        if (row.dataset_id, row.record_id) in labelled or not isinstance(row.labels, dict):
            continue
        if "error" in row.labels:
            continue
        c = _Candidate(pk=row.pk, dataset_id=row.dataset_id, record_id=row.record_id,
                       lang=row.lang, labels=row.labels)  # fmt: skip
        c.signals = [uncertainty(row.labels), rarity(row.labels, counts)]
        cluster = emerging[row.dataset_id].get(row.record_id)
        if cluster is not None:
            c.signals.append(Signal("emerging_cluster", 1.0, f"in emerging cluster {cluster}"))
        candidates[row.lang].append(c)
    shortlist = {
        k: sorted(v, key=lambda c: -c.score)[: SHORTLIST_FACTOR * limit] for k, v in candidates.items()
    }
    chosen = [c for group in shortlist.values() for c in group]
    texts = dict(
        session.execute(
            select(DatasetRecord.pk, DatasetRecord.text).where(
                DatasetRecord.pk.in_([c.pk for c in chosen])
            )
        ).all()
    ) if chosen else {}  # fmt: skip
    for c in chosen:
        c.text = texts.get(c.pk, "")
    if prior is not None and chosen:
        topic_prior = prior([c.text for c in chosen])
        for row, c in enumerate(chosen):
            c.signals.append(disagreement(c.labels, topic_prior, row))
            c.prior = topic_prior.top(row, 3)
    ranked = {k: _diversify(v) for k, v in shortlist.items()}
    items = interleave({k or "unknown": v for k, v in ranked.items()})[:limit]
    return {
        "items": [_item(c) for c in items],
        "candidates": sum(len(v) for v in candidates.values()),
        "labelled_excluded": len(labelled),
        "pool_truncated": seen >= MAX_POOL,
        "prior": "zero-shot prior from the base encoder" if prior else (prior_note or "unavailable"),
        "weights": dict(WEIGHTS),
    }


def _diversify(group: list[_Candidate]) -> list[_Candidate]:
    remaining, out, used = list(group), [], defaultdict(int)

    def adjusted(c: _Candidate) -> float:
        return c.score * REPEAT_PENALTY ** used[c.main_node] if c.main_node else c.score

    while remaining:
        best = max(remaining, key=adjusted)
        remaining.remove(best)
        out.append(best)
        if best.main_node:
            used[best.main_node] += 1
    return out


def _item(c: _Candidate) -> dict[str, Any]:
    reasons = sorted((s for s in c.signals if s.score > 0), key=lambda s: -WEIGHTS[s.kind] * s.score)
    strong = [s for s in reasons if s.score >= 0.3] or reasons[:1]
    labels = c.labels
    sentiment = labels.get("sentiment") or {}
    return {
        "dataset_id": c.dataset_id,
        "record_id": c.record_id,
        "text": c.text,
        "lang": c.lang,
        "score": round(c.score, 4),
        "reasons": [s.to_dict() for s in strong],
        "prediction": {
            "sentiment": {k: sentiment.get(k) for k in ("label", "confidence") if k in sentiment},
            "topics": [
                {k: t.get(k) for k in ("id", "polarity", "confidence")}
                for t in labels.get("topics") or []
            ],
            "touchpoints": [t.get("id") for t in labels.get("touchpoints") or []],
        },
        "prior_topics": (
            [{"id": t, "score": s} for t, s in c.prior] if c.prior is not None else None
        ),
    }
