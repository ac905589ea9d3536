"""Support cases: urgent complaints routed to a team queue, their records and their audit trail.

A case is never deleted. Every change to one (assignment, status, notes, resolution code) bumps
``version`` (optimistic locking: an update names the version it read) and writes one
``case_audit`` row per changed field with who and when.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.storage.base import Base, JSONType, TenantOwnedMixin, new_id, utcnow
from service.storage.models.datasets import BigIntPK


def _case_id() -> str:
    return new_id("case")


class CaseStatus(StrEnum):
    """``open`` → ``in_progress`` → ``resolved`` → ``closed``; ``resolved``/``closed`` → ``reopened``."""

    open = "open"
    in_progress = "in_progress"
    resolved = "resolved"
    closed = "closed"
    reopened = "reopened"


class Case(TenantOwnedMixin, Base):
    """One customer issue in a team's queue."""

    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_tenant_id_status_team", "tenant_id", "status", "team"),
        Index("ix_cases_tenant_id_customer_id", "tenant_id", "customer_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=_case_id)
    team: Mapped[str] = mapped_column(String(64), nullable=False)
    priority: Mapped[str] = mapped_column(String(2), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=CaseStatus.open.value)
    topic: Mapped[str | None] = mapped_column(String(100), nullable=True)
    touchpoint: Mapped[str | None] = mapped_column(String(100), nullable=True)
    lang: Mapped[str | None] = mapped_column(String(8), nullable=True)
    reasons: Mapped[list[Any]] = mapped_column(JSONType, nullable=False, default=list)
    customer_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    assignee: Mapped[str | None] = mapped_column(String(200), nullable=True)
    resolution_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    notes: Mapped[list[Any]] = mapped_column(JSONType, nullable=False, default=list)
    repeat_count: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    policy: Mapped[str | None] = mapped_column(String(100), nullable=True)
    due_at: Mapped[datetime] = mapped_column(nullable=False)
    resolved_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(nullable=False, default=utcnow)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    def __repr__(self) -> str:
        return f"Case(id={self.id!r}, team={self.team!r}, status={self.status!r})"


class CaseRecord(Base):
    """A stored record that belongs to a case (by data set and the user's record id)."""

    __tablename__ = "case_records"
    __table_args__ = (
        UniqueConstraint("dataset_id", "record_id", name="uq_case_records_dataset_id_record_id"),
        Index("ix_case_records_case_id", "case_id"),
    )

    pk: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("cases.id", ondelete="CASCADE"), nullable=False
    )
    dataset_id: Mapped[str] = mapped_column(String(40), nullable=False)
    record_id: Mapped[str] = mapped_column(String(256), nullable=False)
    priority: Mapped[str] = mapped_column(String(2), nullable=False)
    reasons: Mapped[list[Any]] = mapped_column(JSONType, nullable=False, default=list)
    added_at: Mapped[datetime] = mapped_column(nullable=False, default=utcnow)


class CaseAudit(Base):
    """One changed field of a case: who (API key id and name, or ``system``), when, old and new."""

    __tablename__ = "case_audit"
    __table_args__ = (Index("ix_case_audit_case_id_at", "case_id", "at"),)

    pk: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("cases.id", ondelete="CASCADE"), nullable=False
    )
    at: Mapped[datetime] = mapped_column(nullable=False, default=utcnow)
    actor_id: Mapped[str] = mapped_column(String(40), nullable=False)
    actor_name: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    field: Mapped[str] = mapped_column(String(32), nullable=False)
    old: Mapped[Any] = mapped_column(JSONType, nullable=True)
    new: Mapped[Any] = mapped_column(JSONType, nullable=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
