"""Jobs: long work (a data set import, an analysis, a training run) persisted so it survives restarts."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from service.storage.base import Base, JSONType, TenantOwnedMixin, TimestampMixin, new_id


def _job_id() -> str:
    return new_id("job")


class JobState(StrEnum):
    """Where a job is. ``queued`` and ``running`` are live; the other three are final."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def final(self) -> bool:
        return self in (JobState.succeeded, JobState.failed, JobState.cancelled)


class Job(TenantOwnedMixin, TimestampMixin, Base):
    """One unit of background work.

    ``payload`` is what the job's handler needs to (re)start it; ``counts`` and ``progress`` (0..1)
    are what it reports. ``attempts`` counts the starts that did not end in a graceful hand-back
    (a crash or kill of the server); ``heartbeat_at`` is refreshed while it runs, so a job whose
    server died is recognised and resumed by the next one.
    """

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state_created_at", "state", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=_job_id)
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default=JobState.queued.value)
    progress: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    counts: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(nullable=True)

    def __repr__(self) -> str:
        return f"Job(id={self.id!r}, kind={self.kind!r}, state={self.state!r})"
