"""The ``analysis`` job: classify a data set's stored texts in checkpointed batches, then run the
analytics pipeline and store its JSON.

The texts are classified with the served model's ``classify_with_embeddings`` (the model comes from
:func:`service.analyses.analysis_classifier`). Each batch's results and embeddings are checkpointed
in ``analysis_items`` together with the job's progress, so a job resumed after a restart classifies
only the records still missing (idempotent by ``(analysis, record id)``). Then
:func:`models.analytics.pipeline.analyze` computes drivers, clusters and the outcome figures (with
the tenant's support cases for those records and the file's rejections), and the JSON is stored in
``analyses.result`` in the transaction that ends the job's work; the checkpoints are deleted then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nlp.errors import UnavailableError
from nlp.records import Record
from service.analyses import (
    ANALYSIS_KIND,
    analysis_classifier,
    load_cases,
    load_records,
    load_rejections,
)
from service.jobs import JobCancelled, JobContext, JobInterrupted
from service.storage.base import utcnow
from service.storage.models import Analysis, AnalysisItem, AnalysisStatus, Dataset, Job, JobState

DEFAULT_BATCH_SIZE = 64
CLASSIFY_SHARE = 0.8
"""The part of the job's progress that classification takes; the pipeline has the rest."""
PIPELINE_STAGES = {
    "classify": (0.0, 0.05),  # checkpointed already: a lookup
    "cluster": (0.05, 0.45),
    "drivers": (0.45, 0.85),
    "rootcause": (0.85, 1.0),
}
"""Each stage of :func:`models.analytics.pipeline.analyze` as a span of the pipeline's share."""


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _item(record: Record) -> dict[str, Any]:
    lang = record.lang if record.lang in ("zh", "en") else None
    return {"id": record.id, "text": record.text, "lang": lang}


class AnalysisHandler:
    """The ``analysis`` job: classify in checkpointed batches, then run the analytics pipeline."""

    kind = ANALYSIS_KIND

    def __init__(
        self,
        *,
        classifier: Callable[[str | None], Any | None],
        ready: Callable[[], bool],
        analyze: Callable[..., dict[str, Any]] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self.classifier = classifier  # tenant id -> classifier (see analysis_classifier)
        self._ready = ready
        self._analyze = analyze  # default: models.analytics.pipeline.analyze
        self.batch_size = batch_size

    def ready(self) -> bool:
        return self._ready()

    def on_end(self, session: Session, job: Job) -> None:
        analysis_id = (job.payload or {}).get("analysis_id")
        analysis = session.get(Analysis, analysis_id) if analysis_id else None
        if analysis is None:
            return
        if job.state in (JobState.failed, JobState.cancelled):
            analysis.status = job.state
            analysis.error = job.error
            analysis.finished_at = utcnow()
        session.execute(delete(AnalysisItem).where(AnalysisItem.analysis_id == analysis.id))

    # the job -----------------------------------------------------------------------------------
    def run(self, ctx: JobContext) -> None:
        analysis_id = ctx.payload["analysis_id"]
        with ctx.session_factory.begin() as session:
            ctx.checkpoint(session)
            analysis = self._analysis(session, analysis_id)
            if analysis.status == AnalysisStatus.succeeded:  # finished just before a crash
                return
            analysis.status = AnalysisStatus.running.value
            records = load_records(session, analysis.dataset_id)
            cases = load_cases(session, ctx.tenant_id, analysis.dataset_id)
            rejected = load_rejections(session, analysis.dataset_id)
            outcome, dataset_id = analysis.outcome, analysis.dataset_id
            done = set(
                session.scalars(
                    select(AnalysisItem.record_id).where(AnalysisItem.analysis_id == analysis_id)
                )
            )
        classifier = self._classifier(ctx)
        todo = [r for r in records if r.id not in done]
        n = max(1, len(records))
        classified = len(records) - len(todo)
        for batch in _chunks(todo, self.batch_size):
            ctx.checkpoint()
            results, embeddings = self._classify(classifier, [_item(r) for r in batch])
            rows = [
                {
                    "analysis_id": analysis_id,
                    "record_id": rec.id,
                    "result": res,
                    "embedding": None if np.isnan(emb).any() else emb.astype("<f4").tobytes(),
                }  # fmt: skip
                for rec, res, emb in zip(batch, results, embeddings, strict=True)
            ]
            try:
                with ctx.session_factory.begin() as session:
                    ctx.checkpoint(session)
                    self._analysis(session, analysis_id)
                    classified += _insert_items(session, rows)
                    ctx.report(
                        session,
                        progress=CLASSIFY_SHARE * classified / n,
                        counts={"records": len(records), "classified": classified},
                    )
            except IntegrityError:
                ctx.checkpoint()  # the data set (and so the analysis) was deleted meanwhile
                raise
        results, embeddings = self._stored(ctx, analysis_id, records)
        model = next((r.get("model") for r in results if r.get("model")), None)
        model = model or getattr(classifier, "model_id", None)
        result = self._run_pipeline(
            ctx, classifier, records, results, embeddings, outcome, cases, rejected
        )
        with ctx.session_factory.begin() as session:
            ctx.checkpoint(session)
            analysis = self._analysis(session, analysis_id)
            if session.get(Dataset, dataset_id) is None:
                raise JobCancelled("the data set is gone")
            analysis.result = result
            analysis.records = len(records)
            analysis.model = model
            analysis.status = AnalysisStatus.succeeded.value
            analysis.error = None
            analysis.finished_at = utcnow()
            session.execute(delete(AnalysisItem).where(AnalysisItem.analysis_id == analysis_id))
            ctx.report(
                session,
                progress=1.0,
                counts={"records": len(records), "classified": len(records)},
            )

    # steps -------------------------------------------------------------------------------------
    @staticmethod
    def _analysis(session: Session, analysis_id: str) -> Analysis:
        analysis = session.get(Analysis, analysis_id)
        if analysis is None:
            raise JobCancelled("the analysis (or its data set) is gone")
        return analysis

    def _classifier(self, ctx: JobContext) -> Any:
        classifier = self.classifier(ctx.tenant_id)
        if classifier is None:  # the model is not loaded (or going away): resume later
            raise JobInterrupted()
        return classifier

    @staticmethod
    def _classify(
        classifier: Any, items: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], np.ndarray]:
        try:
            results, embeddings = classifier.classify_with_embeddings(items)
        except UnavailableError:  # shutting down or overloaded: resume later
            raise JobInterrupted() from None
        return list(results), np.asarray(embeddings, dtype=np.float32)

    @staticmethod
    def _stored(
        ctx: JobContext, analysis_id: str, records: Sequence[Record]
    ) -> tuple[list[dict[str, Any]], np.ndarray]:
        """The checkpointed classifications and embeddings, in record order."""
        with ctx.session_factory() as session:
            items = {
                item.record_id: item
                for item in session.scalars(
                    select(AnalysisItem).where(AnalysisItem.analysis_id == analysis_id)
                )
            }
        results: list[dict[str, Any]] = []
        width = next((len(i.embedding) // 4 for i in items.values() if i.embedding is not None), 0)
        embeddings = np.full((len(records), width), np.nan, dtype=np.float32)
        for row, record in enumerate(records):
            item = items.get(record.id)
            if item is None:  # cannot happen after the loop above, unless rows were removed
                raise JobInterrupted()
            results.append(item.result)
            if item.embedding is not None and width:
                embeddings[row] = np.frombuffer(item.embedding, dtype="<f4")
        return results, embeddings

    def _run_pipeline(
        self,
        ctx: JobContext,
        classifier: Any,
        records: list[Record],
        results: list[dict[str, Any]],
        embeddings: np.ndarray,
        outcome: str,
        cases: list[dict[str, Any]],
        rejected: list[dict[str, Any]],
    ) -> dict[str, Any]:
        analyze = self._analyze
        if analyze is None:
            from models.analytics.pipeline import analyze
        by_id = {r["id"]: (i, r) for i, r in enumerate(results) if "id" in r}

        def classify_fn(items: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], np.ndarray]:
            """The checkpointed results; anything not checkpointed is classified now."""
            known = [by_id.get(str(it.get("id"))) for it in items]
            if all(k is not None for k in known):
                rows = [i for i, _ in known]  # type: ignore[misc]
                return [r for _, r in known], embeddings[rows]  # type: ignore[misc]
            return self._classify(classifier, list(items))

        counts = {"records": len(records), "classified": len(records)}

        def progress(stage: str, done: int, total: int) -> None:
            lo, hi = PIPELINE_STAGES.get(stage, (0.0, 1.0))
            part = lo + (hi - lo) * min(1.0, done / total if total else 1.0)
            with ctx.session_factory.begin() as session:
                ctx.checkpoint(session)
                share = CLASSIFY_SHARE + (1 - CLASSIFY_SHARE) * part
                ctx.report(session, progress=min(0.99, share), counts=counts)

        return analyze(
            records, classify_fn, outcome=outcome, taxonomy=_taxonomy_of(classifier),
            progress=progress, cases=cases, rejected=rejected,
        )  # fmt: skip


def _taxonomy_of(classifier: Any) -> Any:
    """The taxonomy the classifier labels with (the default one for a model that carries none)."""
    taxonomy = getattr(getattr(classifier, "model", None), "taxonomy", None)
    if taxonomy is None:
        from models.taxonomy import default_taxonomy

        taxonomy = default_taxonomy()
    return taxonomy


def _insert_items(session: Session, rows: list[dict[str, Any]]) -> int:
    """Insert checkpoint rows, skipping record ids already stored; returns how many were new."""
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    stmt = (
        dialect_insert(AnalysisItem)
        .on_conflict_do_nothing(index_elements=["analysis_id", "record_id"])
        .returning(AnalysisItem.record_id)
    )
    return len(session.execute(stmt, rows).all())


def analysis_handler(state: Any, config: Any = None) -> AnalysisHandler:
    """The app's ``analysis`` job handler (``state`` holds the ``batcher``; ``config`` is the
    runner's :class:`~service.jobs.JobRunnerConfig`, whose ``batch_size`` it uses)."""
    return AnalysisHandler(
        classifier=lambda tenant_id: analysis_classifier(state, tenant_id),
        ready=lambda: bool(state.batcher.ready),
        batch_size=getattr(config, "batch_size", DEFAULT_BATCH_SIZE),
    )
