"""Response schemas (with bilingual examples) of the data set and job routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from service.storage.models import Dataset, DatasetRecord, Job, RecordRejection

T = TypeVar("T")

JobStateName = Literal["queued", "running", "succeeded", "failed", "cancelled"]
DatasetStatusName = Literal["queued", "importing", "ready", "failed"]


class Counts(BaseModel):
    """Rows read from the file; kept; rejected (each listed with line and reason); stored with labels."""

    total: int = 0
    accepted: int = 0
    rejected: int = 0
    classified: int = 0


class JobOut(BaseModel):
    """A background job: its state, progress (0..1) and counts."""

    id: str
    kind: str = Field(description="What the job does, e.g. `dataset_import`.")
    state: JobStateName
    progress: float = Field(ge=0, le=1)
    counts: dict[str, int]
    error: str | None = Field(None, description="Why the job failed or was cancelled.")
    attempts: int = Field(
        description="Starts that a server stop or crash interrupted, plus the current one."
    )
    dataset_id: str | None = Field(None, description="The data set this job imports, if any.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls(
            id=job.id,
            kind=job.kind,
            state=job.state,  # type: ignore[arg-type]
            progress=round(float(job.progress), 4),
            counts={k: int(v) for k, v in (job.counts or {}).items()},
            error=job.error,
            attempts=job.attempts,
            dataset_id=(job.payload or {}).get("dataset_id"),
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            heartbeat_at=job.heartbeat_at,
        )


class DatasetOut(BaseModel):
    """A data set: where it came from, how its import went, which model labelled it."""

    id: str
    name: str
    status: DatasetStatusName
    filename: str
    format: Literal["jsonl", "csv", "xlsx"]
    size_bytes: int
    counts: Counts
    model: str | None = Field(None, description="The model version that labelled the records.")
    job_id: str | None
    error: str | None = None
    created_at: datetime

    @classmethod
    def of(cls, ds: Dataset) -> DatasetOut:
        return cls(
            id=ds.id,
            name=ds.name,
            status=ds.status,  # type: ignore[arg-type]
            filename=ds.filename,
            format=ds.format,  # type: ignore[arg-type]
            size_bytes=ds.size_bytes,
            counts=Counts(
                total=ds.total, accepted=ds.accepted, rejected=ds.rejected, classified=ds.classified
            ),
            model=ds.model,
            job_id=ds.job_id,
            error=ds.error,
            created_at=ds.created_at,
        )


class DatasetCreated(BaseModel):
    """The accepted upload and the job importing it (poll ``GET /v1/jobs/{id}``)."""

    dataset: DatasetOut
    job: JobOut


class Scores(BaseModel):
    model_config = ConfigDict(extra="forbid")

    nps: float | None = None
    csat: float | None = None
    ces: float | None = None
    rating: float | None = None
    rating_scale: float | None = None
    recommend: bool | None = None


class RecordOut(BaseModel):
    """A stored record: the original and PII-masked text, scores, metadata and the model's labels."""

    id: str = Field(description="Your id for the record.")
    line: int = Field(description="Its line (JSON Lines) or row (CSV, XLSX) in the uploaded file.")
    text: str = Field(description="The text as uploaded; evidence offsets index it.")
    masked_text: str = Field(
        description="The normalised text with personal data masked ([PHONE], [EMAIL]…)."
    )
    lang: str | None
    scores: Scores
    ts: datetime | None
    metadata: dict[str, Any]
    labels: dict[str, Any] = Field(
        description="The classification (sentiment, topics with evidence, touchpoints, triage, model)."
    )
    model: str | None

    @classmethod
    def of(cls, r: DatasetRecord) -> RecordOut:
        return cls(
            id=r.record_id,
            line=r.line,
            text=r.text,
            masked_text=r.masked_text,
            lang=r.lang,
            scores=Scores(
                nps=r.nps,
                csat=r.csat,
                ces=r.ces,
                rating=r.rating,
                rating_scale=r.rating_scale,
                recommend=r.recommend,
            ),  # fmt: skip
            ts=r.ts,
            metadata=r.meta or {},
            labels=r.labels or {},
            model=r.model,
        )


class RejectionOut(BaseModel):
    """A row that was not kept, and why."""

    line: int
    id: str | None = Field(None, description="The row's id, when it could be read.")
    reason: str

    @classmethod
    def of(cls, r: RecordRejection) -> RejectionOut:
        return cls(line=r.line, id=r.record_id, reason=r.reason)


class Page(BaseModel, Generic[T]):
    """One page of a list; ``next_offset`` is null on the last page."""

    items: list[T]
    total: int = Field(description="Items matching, over all pages.")
    limit: int
    offset: int
    next_offset: int | None


# ---- examples (a Chinese and an English verbatim) ---------------------------------------------

_T = "2024-05-02T08:00:00Z"
ZH_RECORD: dict[str, Any] = {
    "id": "r1", "line": 1, "text": "快递太慢了，客服电话13812345678也打不通", "lang": "zh",
    "masked_text": "快递太慢了，客服电话[PHONE]也打不通",
    "scores": {"nps": 3.0, "csat": None, "ces": None, "rating": None, "rating_scale": None, "recommend": None},
    "ts": "2024-05-01T00:00:00Z", "metadata": {"channel": "app", "store": "上海徐汇店"},
    "labels": {
        "lang": "zh", "sentiment": {"label": "negative", "score": -0.81, "confidence": 0.93},
        "topics": [{"id": "delivery.timeliness", "polarity": "negative", "confidence": 0.91,
                    "evidence": {"start": 0, "end": 5, "text": "快递太慢了"}}],
        "touchpoints": [{"id": "fulfil", "confidence": 0.9}], "primary_touchpoint": "fulfil",
        "triage": {"priority": "P2", "reasons": ["strong negative sentiment", "delivery.timeliness"]},
        "model": "verbatim-cem@1.0.0",
    },
    "model": "verbatim-cem@1.0.0",
}  # fmt: skip
EN_RECORD: dict[str, Any] = {
    "id": "r2", "line": 2, "text": "Great staff, quick checkout", "lang": "en",
    "masked_text": "Great staff, quick checkout",
    "scores": {"nps": 9.0, "csat": 5.0, "ces": None, "rating": None, "rating_scale": None, "recommend": True},
    "ts": "2024-05-01T10:30:00Z", "metadata": {"channel": "store"},
    "labels": {
        "lang": "en", "sentiment": {"label": "positive", "score": 0.88, "confidence": 0.95},
        "topics": [{"id": "service.attitude", "polarity": "positive", "confidence": 0.87,
                    "evidence": {"start": 0, "end": 11, "text": "Great staff"}}],
        "touchpoints": [{"id": "purchase", "confidence": 0.8}], "primary_touchpoint": "purchase",
        "triage": {"priority": "P4", "reasons": []}, "model": "verbatim-cem@1.0.0",
    },
    "model": "verbatim-cem@1.0.0",
}  # fmt: skip


def _dataset_example(name: str, filename: str, fmt: str, **counts: int) -> dict[str, Any]:
    return {
        "id": "ds_7f3k9q2m4x8c1v6b5n0z", "name": name, "status": "ready", "filename": filename,
        "format": fmt, "size_bytes": 48213, "counts": counts, "model": "verbatim-cem@1.0.0",
        "job_id": "job_2h8d6s4f0g1j3k5l7m9n", "error": None, "created_at": _T,
    }  # fmt: skip


ZH_DATASET = _dataset_example(
    "2024年5月 App 评价",
    "app评价.csv",
    "csv",
    total=1200,
    accepted=1188,
    rejected=12,
    classified=1188,
)
EN_DATASET = _dataset_example("May 2024 store survey", "store-survey.jsonl", "jsonl", total=500, accepted=497, rejected=3, classified=497)  # fmt: skip
JOB_EXAMPLE = {
    "id": "job_2h8d6s4f0g1j3k5l7m9n", "kind": "dataset_import", "state": "running", "progress": 0.42,
    "counts": {"total": 1200, "accepted": 1188, "rejected": 12, "classified": 499}, "error": None,
    "attempts": 1, "dataset_id": "ds_7f3k9q2m4x8c1v6b5n0z", "created_at": _T,
    "started_at": _T, "finished_at": None, "heartbeat_at": _T,
}  # fmt: skip
ZH_REJECTION = {
    "line": 7, "id": "评论-7", "reason": "duplicate id '评论-7', first seen on line 3",
}  # fmt: skip
EN_REJECTION = {"line": 9, "id": None, "reason": "id is required; text is required"}


def examples(status: int = 200, **named: tuple[str, Any]) -> dict[int | str, dict[str, Any]]:
    """A response's named examples: ``examples(zh=("summary", value), en=(...))``."""
    return {
        status: {
            "content": {
                "application/json": {
                    "examples": {k: {"summary": s, "value": v} for k, (s, v) in named.items()}
                }
            }
        }
    }
