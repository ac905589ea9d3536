"""The ``dataset_import`` job: read the kept upload, validate, mask PII, classify, store.

Work goes in committed batches (records, their labels, rejections, counts and the job's progress in
one transaction), so an interruption loses at most the batch in flight. It is idempotent by
``(dataset, record id)``: a resumed import re-reads the upload, rewrites the file's rejections and
skips the record ids already stored (and the insert itself skips any it races with).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nlp.errors import DataUnavailableError, InvalidFileError, UnavailableError, VerbatimError
from nlp.records import Record, read_records
from service.cases import CaseSettings, open_cases_for_records
from service.datasets import IMPORT_KIND, counts_of, upload_dir
from service.jobs import JobCancelled, JobContext, JobInterrupted
from service.storage.models import (
    Dataset,
    DatasetRecord,
    DatasetStatus,
    Job,
    JobState,
    LabelKind,
    RecordLabel,
    RecordRejection,
)
from service.triage_policies import retriage, taxonomy_of, tenant_policy

log = logging.getLogger("verbatim.datasets")

DEFAULT_BATCH_SIZE = 64


def _utc(ts: datetime | date | None) -> datetime | None:
    if ts is None:
        return None
    if not isinstance(ts, datetime):
        return datetime(ts.year, ts.month, ts.day, tzinfo=UTC)
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def unstorable(record: Record) -> str | None:
    """Why a valid record still cannot be stored, or ``None``: PostgreSQL refuses NUL characters
    in text and JSON, and neither database takes lone surrogates; refused on both alike."""
    for name, value in (("id", record.id), ("text", record.text), ("metadata", record.metadata)):
        encoded = (
            value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        )
        if "\x00" in encoded or "\\u0000" in encoded:
            return f"{name} contains a NUL character (\\u0000), which cannot be stored; remove it"
        try:
            encoded.encode("utf-8")
        except UnicodeEncodeError:
            return f"{name} contains invalid Unicode (a lone surrogate); send valid UTF-8"
    return None


def _chunks(items: Sequence[Record], size: int) -> Iterator[Sequence[Record]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class DatasetImportHandler:
    """The ``dataset_import`` job: read the upload, mask, classify, store, in committed batches."""

    kind = IMPORT_KIND

    def __init__(
        self,
        *,
        home: Path,
        classifier: Callable[[], Any | None],
        batch_size: int = DEFAULT_BATCH_SIZE,
        cases: CaseSettings | None = None,
    ) -> None:
        self.home = home
        self.classifier = classifier
        self.batch_size = batch_size
        self.cases = cases or CaseSettings()  # issue 7: when records become cases

    def ready(self) -> bool:
        return self.classifier() is not None

    def on_end(self, session: Session, job: Job) -> None:
        dataset_id = (job.payload or {}).get("dataset_id")
        dataset = session.get(Dataset, dataset_id) if dataset_id else None
        if dataset is None:
            return
        if job.state == JobState.failed:
            dataset.status = DatasetStatus.failed.value
            dataset.error = job.error
        if job.state != JobState.running:
            shutil.rmtree(upload_dir(self.home, dataset.tenant_id, dataset.id), ignore_errors=True)

    # the job -----------------------------------------------------------------------------------
    def run(self, ctx: JobContext) -> None:
        dataset_id = ctx.payload["dataset_id"]
        with ctx.session_factory() as session:
            dataset = session.get(Dataset, dataset_id)
            if dataset is None:
                raise JobCancelled("the data set is gone")
            if dataset.status == DatasetStatus.ready:  # finished just before a crash
                return
        path = self.home / ctx.payload["upload"]
        if not path.is_file():
            raise DataUnavailableError(
                f"The uploaded file of data set {dataset_id} is missing from the server's uploads "
                "folder (was VERBATIM_HOME changed or cleaned?), so the import cannot resume. Delete "
                "the data set and upload the file again."
            )
        try:
            result = read_records(
                path, format=ctx.payload.get("format"), filename=ctx.payload.get("filename")
            )
        except InvalidFileError as exc:
            raise InvalidFileError(
                f"The stored upload can no longer be read: {exc.message}"
            ) from None

        with ctx.session_factory.begin() as session:
            ctx.checkpoint(session)
            session.execute(delete(RecordRejection).where(RecordRejection.dataset_id == dataset_id))
            if result.rejected:
                session.execute(
                    insert(RecordRejection),
                    [
                        {
                            "dataset_id": dataset_id,
                            "line": r.line,
                            "record_id": r.id,
                            "reason": r.reason,
                        }
                        for r in result.rejected
                    ],
                )
            existing = set(
                session.scalars(
                    select(DatasetRecord.record_id).where(DatasetRecord.dataset_id == dataset_id)
                )
            )
            dataset = session.get(Dataset, dataset_id)
            assert dataset is not None
            dataset.status = DatasetStatus.importing.value
            dataset.error = None
        todo = [r for r in result.records if r.id not in existing]
        stored = len(result.records) - len(todo)
        dropped = 0  # rows rejected while preparing or classifying
        counts = counts_of(total=result.total, rejected=len(result.rejected), classified=stored)
        for batch in _chunks(todo, self.batch_size):
            ctx.checkpoint()
            with ctx.session_factory() as session:  # issue 7: the tenant's triage policy, if any
                policy = tenant_policy(session, ctx.tenant_id)
            rows, rejections = self._classify(batch, ctx.tenant_id, dataset_id, policy)
            try:
                with ctx.session_factory.begin() as session:  # one batch, one transaction
                    ctx.checkpoint(session)
                    inserted = _store(session, rows, rejections)
                    # issue 7: urgent records open or join support cases, in this same transaction
                    open_cases_for_records(session, ctx.tenant_id, rows, self.cases)
                    stored += inserted
                    dropped += len(rejections)
                    counts = counts_of(
                        total=result.total,
                        rejected=len(result.rejected) + dropped,
                        classified=stored,
                    )
                    self._mirror(session, dataset_id, counts, rows)
                    ctx.report(
                        session,
                        progress=(stored + dropped) / max(1, len(result.records)),
                        counts=counts,
                    )
            except IntegrityError:
                ctx.checkpoint()  # the data set was deleted meanwhile: raises JobCancelled
                raise
        with ctx.session_factory.begin() as session:
            ctx.checkpoint(session)
            dataset = session.get(Dataset, dataset_id)
            assert dataset is not None
            classified = (
                session.scalar(
                    select(func.count())
                    .select_from(DatasetRecord)
                    .where(DatasetRecord.dataset_id == dataset_id)
                )
                or 0
            )
            rejected = (
                session.scalar(
                    select(func.count())
                    .select_from(RecordRejection)
                    .where(RecordRejection.dataset_id == dataset_id)
                )
                or 0
            )
            counts = counts_of(total=result.total, rejected=rejected, classified=classified)
            self._mirror(session, dataset_id, counts, [])
            dataset.status = DatasetStatus.ready.value
            ctx.report(session, progress=1.0, counts=counts)
        shutil.rmtree(path.parent, ignore_errors=True)

    def _mirror(
        self, session: Session, dataset_id: str, counts: dict[str, int], rows: list[dict]
    ) -> None:
        dataset = session.get(Dataset, dataset_id)
        if dataset is None:
            raise JobCancelled("the data set is gone")
        dataset.total, dataset.accepted = counts["total"], counts["accepted"]
        dataset.rejected, dataset.classified = counts["rejected"], counts["classified"]
        if rows:
            dataset.model = rows[-1]["model"]

    def _classify(
        self, batch: Sequence[Record], tenant_id: str, dataset_id: str, policy: Any = None
    ) -> tuple[list[dict], list[dict]]:
        from nlp.prepare import prepare

        classifier = self.classifier(tenant_id)  # the tenant's promoted model, else the default
        if classifier is None:  # the model went away (shutting down): resume later
            raise JobInterrupted()
        prepared, rejections = [], []
        for record in batch:
            problem = unstorable(record)
            if problem is not None:
                rejections.append(self._rejection(dataset_id, record, problem))
                continue
            try:
                prepared.append((record, prepare(record.text, lang=record.lang)))
            except VerbatimError as exc:
                rejections.append(
                    self._rejection(dataset_id, record, f"text cannot be analysed: {exc.message}")
                )
        items = [
            {
                "id": r.id,
                "text": r.text,
                "lang": p.lang.value if p.lang.value in ("zh", "en") else None,
            }
            for r, p in prepared
        ]
        try:
            results = classifier.classify(items) if items else []
        except UnavailableError:  # the model is shutting down or overloaded: resume later
            raise JobInterrupted() from None
        results = retriage(results, [p for _, p in prepared], policy, taxonomy=taxonomy_of(classifier),
                           metadata=[r.metadata for r, _ in prepared])  # fmt: skip
        rows = []
        for (record, prep), res in zip(prepared, results, strict=True):
            if "error" in res:
                message = res["error"].get("message", "unknown error")
                rejections.append(
                    self._rejection(dataset_id, record, f"could not be classified: {message}")
                )
                continue
            rows.append(self._row(record, prep.text, res, tenant_id, dataset_id, classifier))
        return rows, rejections

    @staticmethod
    def _rejection(dataset_id: str, record: Record, reason: str) -> dict[str, Any]:
        return {
            "dataset_id": dataset_id,
            "line": record.line,
            "record_id": record.id,
            "reason": reason,
        }

    @staticmethod
    def _row(
        record: Record, masked: str, res: dict, tenant_id: str, dataset_id: str, classifier: Any
    ) -> dict:
        labels = {k: v for k, v in res.items() if k != "id"}
        sentiment = res.get("sentiment") or {}
        return {
            "tenant_id": tenant_id,
            "dataset_id": dataset_id,
            "record_id": record.id,
            "line": record.line,
            "text": record.text,
            "masked_text": masked,
            "lang": record.lang or res.get("lang"),
            "nps": record.nps,
            "csat": record.csat,
            "ces": record.ces,
            "rating": record.rating,
            "rating_scale": record.rating_scale,
            "recommend": record.recommend,
            "ts": _utc(record.ts),
            "meta": dict(record.metadata),
            "labels": labels,
            "sentiment": sentiment.get("label"),
            "sentiment_score": sentiment.get("score"),
            "primary_touchpoint": res.get("primary_touchpoint"),
            "model": res.get("model") or getattr(classifier, "model_id", None),
        }


def _store(session: Session, rows: list[dict], rejections: list[dict]) -> int:
    """Insert a batch (skipping record ids already stored) with its labels and rejections."""
    inserted = _insert_records(session, rows) if rows else {}
    labels = [
        label
        for row in rows
        if row["record_id"] in inserted
        for label in _label_rows(inserted[row["record_id"]], row["labels"])
    ]
    if labels:
        session.execute(insert(RecordLabel), labels)
    if rejections:
        session.execute(insert(RecordRejection), rejections)
    return len(inserted)


def _insert_records(session: Session, rows: list[dict]) -> dict[str, int]:
    """Insert ``rows``, skipping ``(dataset_id, record_id)`` pairs already stored; returns the
    record ids inserted with their primary keys."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise NotImplementedError(dialect)
    stmt = (
        dialect_insert(DatasetRecord)
        .on_conflict_do_nothing(index_elements=["dataset_id", "record_id"])
        .returning(DatasetRecord.record_id, DatasetRecord.pk)
    )
    return {record_id: pk for record_id, pk in session.execute(stmt, rows)}


def _label_rows(record_pk: int, labels: dict[str, Any]) -> list[dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for topic in labels.get("topics") or []:
        key = (LabelKind.topic.value, str(topic["id"]))
        out.setdefault(
            key,
            {
                "record_pk": record_pk,
                "kind": key[0],
                "label_id": key[1],
                "polarity": topic.get("polarity"),
                "confidence": topic.get("confidence"),
            },
        )
    for touchpoint in labels.get("touchpoints") or []:
        key = (LabelKind.touchpoint.value, str(touchpoint["id"]))
        out.setdefault(
            key,
            {
                "record_pk": record_pk,
                "kind": key[0],
                "label_id": key[1],
                "polarity": None,
                "confidence": touchpoint.get("confidence"),
            },
        )
    return list(out.values())
