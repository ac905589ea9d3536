"""Data sets: an uploaded file of verbatims, its records with their labels, and its rejected rows.

Records are unique by ``(dataset_id, record_id)`` (the user's id), which makes imports idempotent: a
resumed import skips the ids already stored. Topic and touchpoint labels are also kept one row per
label in ``record_labels``, so filters are plain indexed joins on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from service.storage.base import Base, JSONType, TenantOwnedMixin, TimestampMixin, new_id

#: An auto-incrementing 64-bit key (SQLite only auto-increments its INTEGER rowid alias).
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


def _dataset_id() -> str:
    return new_id("ds")


class DatasetStatus(StrEnum):
    """``queued`` (waiting for the import job), ``importing``, ``ready``, ``failed``."""

    queued = "queued"
    importing = "importing"
    ready = "ready"
    failed = "failed"


class Dataset(TenantOwnedMixin, TimestampMixin, Base):
    """One uploaded file of records and what its import made of it."""

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=_dataset_id)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    status: Mapped[str] = mapped_column(
        String(16), nullable=False, default=DatasetStatus.queued.value
    )
    filename: Mapped[str] = mapped_column(String(255), nullable=False)
    format: Mapped[str] = mapped_column(String(8), nullable=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    total: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    accepted: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    rejected: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    classified: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    model: Mapped[str | None] = mapped_column(String(100), nullable=True)
    job_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)

    def __repr__(self) -> str:
        return f"Dataset(id={self.id!r}, tenant_id={self.tenant_id!r}, status={self.status!r})"


class DatasetRecord(TenantOwnedMixin, TimestampMixin, Base):
    """One accepted verbatim: original and PII-masked text, scores, metadata and its labels."""

    __tablename__ = "records"
    __table_args__ = (
        UniqueConstraint("dataset_id", "record_id", name="uq_records_dataset_id_record_id"),
        Index("ix_records_dataset_id_line", "dataset_id", "line"),
        Index("ix_records_dataset_id_ts", "dataset_id", "ts"),
    )

    pk: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False
    )
    record_id: Mapped[str] = mapped_column(String(256), nullable=False)
    line: Mapped[int] = mapped_column(Integer, nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    masked_text: Mapped[str] = mapped_column(Text, nullable=False)
    lang: Mapped[str | None] = mapped_column(String(8), nullable=True)
    nps: Mapped[float | None] = mapped_column(Float, nullable=True)
    csat: Mapped[float | None] = mapped_column(Float, nullable=True)
    ces: Mapped[float | None] = mapped_column(Float, nullable=True)
    rating: Mapped[float | None] = mapped_column(Float, nullable=True)
    rating_scale: Mapped[float | None] = mapped_column(Float, nullable=True)
    recommend: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    ts: Mapped[datetime | None] = mapped_column(nullable=True)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, nullable=False, default=dict)
    labels: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    sentiment: Mapped[str | None] = mapped_column(String(16), nullable=True)
    sentiment_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    primary_touchpoint: Mapped[str | None] = mapped_column(String(100), nullable=True)
    model: Mapped[str | None] = mapped_column(String(100), nullable=True)


class LabelKind(StrEnum):
    topic = "topic"
    touchpoint = "touchpoint"


class RecordLabel(Base):
    """One topic (with its polarity) or touchpoint the model gave a record."""

    __tablename__ = "record_labels"
    __table_args__ = (Index("ix_record_labels_kind_label_id", "kind", "label_id"),)

    record_pk: Mapped[int] = mapped_column(
        BigIntPK, ForeignKey("records.pk", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    label_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    polarity: Mapped[str | None] = mapped_column(String(16), nullable=True)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)


class RecordRejection(Base):
    """A row of the file that was not kept: its line, its id when readable, and why."""

    __tablename__ = "record_rejections"
    __table_args__ = (Index("ix_record_rejections_dataset_id_line", "dataset_id", "line"),)

    pk: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False
    )
    line: Mapped[int] = mapped_column(Integer, nullable=False)
    record_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
