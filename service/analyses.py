"""Analyses of data sets: checking and queueing one, the model that analyses a tenant's data sets,
and the queries the ``analysis`` job (:mod:`service.analysis_job`) reads its input with.

An analysis is a row in ``analyses`` and a job of kind ``analysis``; its JSON is stored in
``analyses.result`` and the HTML report is rendered from it on read.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.analytics.outcomes import Outcome
from nlp.errors import ConflictError, InvalidInputError
from nlp.records import Record
from service.storage.models import (
    Analysis,
    AnalysisStatus,
    Case,
    CaseRecord,
    Dataset,
    DatasetRecord,
    DatasetStatus,
    Job,
    JobState,
    RecordRejection,
)
from service.storage.tenancy import HasTenant

ANALYSIS_KIND = "analysis"
OUTCOMES = tuple(o.value for o in Outcome)
"""The score fields an analysis can explain: nps, csat, ces, rating, recommend."""


def analysis_classifier(state: Any, tenant_id: str | None) -> Any | None:
    """The classifier that analyses ``tenant_id``'s data sets, or ``None`` while none is loaded.

    A tenant that promoted its own model (issue 6) is analysed with it; others with the served
    default model.
    """
    batcher = state.batcher
    if not batcher.ready:
        return None
    if tenant_id is None:
        return batcher.classifier
    from service.tenant_models import get_tenant_models

    return get_tenant_models(state).classifier(tenant_id)


def _outcome_column(outcome: str) -> Any:
    return getattr(DatasetRecord, outcome)


def create_analysis(
    session: Session, principal: HasTenant, dataset: Dataset, *, outcome: str
) -> tuple[Analysis, Job]:
    """Check that ``dataset`` (the caller's) can be analysed against ``outcome`` and queue the job;
    the caller commits.

    Raises 422 :class:`InvalidInputError` for an unknown score name or when no record has that
    score, 409 :class:`ConflictError` while the data set is not ready."""
    outcome = (outcome or "").strip().lower()
    if outcome not in OUTCOMES:
        raise InvalidInputError(
            f"Unknown score {outcome[:40]!r}: expected one of {', '.join(OUTCOMES)} (the record "
            'field that holds the outcome to explain), e.g. {"score": "nps"}.',
            details={"score": outcome[:40], "allowed": list(OUTCOMES)},
        )
    if dataset.status != DatasetStatus.ready:
        hint = (
            f"wait for its import job {dataset.job_id} to finish (GET /v1/jobs/{dataset.job_id})"
            if dataset.status in (DatasetStatus.queued, DatasetStatus.importing)
            else "its import failed; upload the file again"
        )
        raise ConflictError(
            f"Data set {dataset.id} is {dataset.status}, not ready: {hint}, then ask again.",
            details={"dataset_id": dataset.id, "status": dataset.status},
        )
    present = score_counts(session, dataset.id)
    if not present.get(outcome):
        have = {k: n for k, n in present.items() if n}
        hint = (
            "Its records have " + ", ".join(f"{k} ({n})" for k, n in have.items()) + "."
            if have
            else "None of its records has a score; upload a file with a score column."
        )
        raise InvalidInputError(
            f"No record of data set {dataset.id} has a {outcome} score, so there is nothing to "
            f"explain. {hint}",
            details={"score": outcome, "records_with_score": present},
        )
    analysis = Analysis(
        tenant_id=principal.tenant_id,
        dataset_id=dataset.id,
        outcome=outcome,
        status=AnalysisStatus.queued.value,
    )
    session.add(analysis)
    session.flush()
    job = Job(
        tenant_id=principal.tenant_id,
        kind=ANALYSIS_KIND,
        state=JobState.queued.value,
        counts={"records": dataset.classified, "classified": 0},
        payload={"analysis_id": analysis.id, "dataset_id": dataset.id, "outcome": outcome},
    )
    session.add(job)
    session.flush()
    analysis.job_id = job.id
    return analysis, job


def score_counts(session: Session, dataset_id: str) -> dict[str, int]:
    """How many of a data set's records have each score."""
    row = session.execute(
        select(*(func.count(_outcome_column(name)) for name in OUTCOMES)).where(
            DatasetRecord.dataset_id == dataset_id
        )
    ).one()
    return {name: int(n or 0) for name, n in zip(OUTCOMES, row, strict=True)}


def load_records(session: Session, dataset_id: str) -> list[Record]:
    """A data set's stored records, in file order, as :class:`nlp.records.Record`."""
    rows = session.scalars(
        select(DatasetRecord)
        .where(DatasetRecord.dataset_id == dataset_id)
        .order_by(DatasetRecord.line, DatasetRecord.pk)
    ).all()
    return [
        Record(
            id=r.record_id,
            text=r.text,
            line=r.line,
            nps=r.nps,
            csat=r.csat,
            ces=r.ces,
            rating=r.rating,
            rating_scale=r.rating_scale,
            recommend=r.recommend,
            lang=r.lang,
            ts=r.ts,
            metadata=dict(r.meta or {}),
        )  # fmt: skip
        for r in rows
    ]


def load_cases(session: Session, tenant_id: str, dataset_id: str) -> list[dict[str, Any]]:
    """The tenant's support cases about any of a data set's records, one dict per case (the shape
    :func:`models.analytics.casefeedback.case_feedback` reads), with those records' ids."""
    rows = session.execute(
        select(Case, CaseRecord.record_id)
        .join(CaseRecord, CaseRecord.case_id == Case.id)
        .where(Case.tenant_id == tenant_id, CaseRecord.dataset_id == dataset_id)
        .order_by(Case.created_at, Case.id, CaseRecord.record_id)
    ).all()
    cases: dict[str, dict[str, Any]] = {}
    for case, record_id in rows:
        entry = cases.setdefault(
            case.id,
            {
                "id": case.id,
                "topic": case.topic,
                "touchpoint": case.touchpoint,
                "team": case.team,
                "priority": case.priority,
                "status": case.status,
                "resolution_code": case.resolution_code,
                "created_at": case.created_at.isoformat(),
                "resolved_at": case.resolved_at.isoformat() if case.resolved_at else None,
                "record_ids": [],
            },
        )
        entry["record_ids"].append(record_id)
    return list(cases.values())


def load_rejections(session: Session, dataset_id: str) -> list[dict[str, Any]]:
    """The rows of a data set's file that were not kept: line, id and reason, in file order."""
    rows = session.execute(
        select(RecordRejection.line, RecordRejection.record_id, RecordRejection.reason)
        .where(RecordRejection.dataset_id == dataset_id)
        .order_by(RecordRejection.line, RecordRejection.pk)
    ).all()
    return [{"line": line, "id": record_id, "reason": reason} for line, record_id, reason in rows]
