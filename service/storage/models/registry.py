"""The model registry: each tenant's fine-tuned model versions, which one is promoted, the audit
trail of promotions and roll-backs, and the training runs that made the versions.

A :class:`ModelVersion` is immutable once its training run ends, except for ``status`` and
``promoted_at``. :class:`TenantModel` is the tenant's pointer to its promoted version (``None``:
the default model) with the stack of earlier promotions a roll-back returns to; ``revision`` grows
with every change, so a server can tell its cached pointer is stale. Every promotion and roll-back
adds one :class:`ModelEvent` naming who, when, why and whether the regression guard was overridden.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.storage.base import Base, JSONType, TenantOwnedMixin, TimestampMixin, new_id, utcnow
from service.storage.models.datasets import BigIntPK


def _model_id() -> str:
    return new_id("mdl")


def _run_id() -> str:
    return new_id("run")


class ModelStatus(StrEnum):
    """``candidate`` (trained, never promoted), ``promoted`` (in use), ``retired`` (was in use)."""

    candidate = "candidate"
    promoted = "promoted"
    retired = "retired"


class TrainingRunStatus(StrEnum):
    """Mirrors the run's job: ``queued``, ``running``, ``succeeded``, ``failed``, ``cancelled``."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class ModelVersion(TenantOwnedMixin, TimestampMixin, Base):
    """One fine-tuned model of a tenant: where it lives, what it was trained on, how it scored."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "version", name="uq_model_versions_tenant_id_version"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=_model_id)
    version: Mapped[str] = mapped_column(String(64), nullable=False)
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(
        String(16), nullable=False, default=ModelStatus.candidate.value
    )
    parent_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    base_version: Mapped[str] = mapped_column(String(64), nullable=False)
    taxonomy_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    taxonomy_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    taxonomy_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    training_run_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    model_dir: Mapped[str] = mapped_column(Text, nullable=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    guard: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    created_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    promoted_at: Mapped[datetime | None] = mapped_column(nullable=True)

    def __repr__(self) -> str:
        return f"ModelVersion(tenant_id={self.tenant_id!r}, version={self.version!r}, status={self.status!r})"


class TenantModel(Base):
    """A tenant's promoted model version (``None``: the default model) and its roll-back stack."""

    __tablename__ = "tenant_models"

    tenant_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    promoted_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    history: Mapped[list[Any]] = mapped_column(JSONType, nullable=False, default=list)
    revision: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    updated_at: Mapped[datetime] = mapped_column(nullable=False, default=utcnow)


class ModelEvent(TenantOwnedMixin, Base):
    """One promotion or roll-back: from which version to which, who, when, why, forced or not."""

    __tablename__ = "model_events"
    __table_args__ = (Index("ix_model_events_tenant_id_at", "tenant_id", "at"),)

    pk: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(nullable=False, default=utcnow)
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    previous_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    forced: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    guard: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    actor_id: Mapped[str] = mapped_column(String(40), nullable=False)
    actor_name: Mapped[str] = mapped_column(String(100), nullable=False, default="")


class TrainingRun(TenantOwnedMixin, TimestampMixin, Base):
    """One fine-tuning run: its job, its parameters, the version it made and the evaluation."""

    __tablename__ = "training_runs"
    __table_args__ = (
        UniqueConstraint("tenant_id", "version", name="uq_training_runs_tenant_id_version"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=_run_id)
    job_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    status: Mapped[str] = mapped_column(
        String(16), nullable=False, default=TrainingRunStatus.queued.value
    )
    version: Mapped[str] = mapped_column(String(64), nullable=False)
    parent_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    taxonomy_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    taxonomy_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)

    def __repr__(self) -> str:
        return f"TrainingRun(id={self.id!r}, version={self.version!r}, status={self.status!r})"
