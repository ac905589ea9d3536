"""Analyses: a data set's drivers, clusters and outcome figures, computed by the ``analysis`` job.

The analysis JSON is kept whole in ``analyses.result`` (the HTML report is rendered from it on
read). While the job runs, each classified record (its contract dict and its embedding) is
checkpointed in ``analysis_items``, unique by ``(analysis_id, record_id)``, so a job resumed after
a restart classifies only what is missing; the checkpoints are deleted when the analysis ends.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.storage.base import Base, JSONType, TenantOwnedMixin, TimestampMixin, new_id
from service.storage.models.datasets import BigIntPK


def _analysis_id() -> str:
    return new_id("an")


class AnalysisStatus(StrEnum):
    """``queued`` → ``running`` → ``succeeded`` | ``failed`` | ``cancelled``."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class Analysis(TenantOwnedMixin, TimestampMixin, Base):
    """One analysis of one data set against one outcome score."""

    __tablename__ = "analyses"
    __table_args__ = (Index("ix_analyses_dataset_id_created_at", "dataset_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=_analysis_id)
    dataset_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False
    )
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(
        String(16), nullable=False, default=AnalysisStatus.queued.value
    )
    job_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    records: Mapped[int | None] = mapped_column(Integer, nullable=True)
    model: Mapped[str | None] = mapped_column(String(100), nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)

    def __repr__(self) -> str:
        return f"Analysis(id={self.id!r}, dataset_id={self.dataset_id!r}, status={self.status!r})"


class AnalysisItem(Base):
    """A checkpoint of the analysis job: one record's classification and embedding (float32 bytes)."""

    __tablename__ = "analysis_items"
    __table_args__ = (
        UniqueConstraint(
            "analysis_id", "record_id", name="uq_analysis_items_analysis_id_record_id"
        ),
    )

    pk: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    analysis_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("analyses.id", ondelete="CASCADE"), nullable=False
    )
    record_id: Mapped[str] = mapped_column(String(256), nullable=False)
    result: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
