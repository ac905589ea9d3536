"""Triage policies per tenant: at most one policy per tenant and one immutable row per version.

A tenant without a policy is triaged by the default policy (``models/triage/default_policy.yaml``).
Each change adds a :class:`TriagePolicyVersion` numbered 1, 2, 3…; versions are never updated or
deleted, so a triage result or case can name the version that made it (``acme@3``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.storage.base import Base, TenantOwnedMixin, TimestampMixin, new_id, utcnow


def _policy_id() -> str:
    return new_id("tpol")


class TenantTriagePolicy(TenantOwnedMixin, TimestampMixin, Base):
    """A tenant's triage policy: its key (the YAML ``id``), name and newest version number."""

    __tablename__ = "triage_policies"
    __table_args__ = (UniqueConstraint("tenant_id", name="uq_triage_policies_tenant_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=_policy_id)
    key: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    current_version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    updated_at: Mapped[datetime] = mapped_column(nullable=False, default=utcnow)

    def __repr__(self) -> str:
        return (
            f"TenantTriagePolicy(id={self.id!r}, tenant_id={self.tenant_id!r}, key={self.key!r}, "
            f"current_version={self.current_version})"
        )


class TriagePolicyVersion(TimestampMixin, Base):
    """One version of a triage policy, as YAML whose ``version`` field is ``version``."""

    __tablename__ = "triage_policy_versions"

    policy_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("triage_policies.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    yaml: Mapped[str] = mapped_column(Text, nullable=False)
    content_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    created_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)

    def __repr__(self) -> str:
        return f"TriagePolicyVersion(policy_id={self.policy_id!r}, version={self.version})"
