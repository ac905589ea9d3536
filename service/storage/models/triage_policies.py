"""Triage policies per tenant: at most one policy per tenant and one immutable row per version.

A tenant without a policy is triaged by the default policy (``models/triage/default_policy.yaml``).
Each change adds a :class:`TriagePolicyVersion` numbered 1, 2, 3…; versions are never updated or
deleted, so a triage result or case can name the version that made it (``acme@3``).
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.storage.base import Base, new_id
from service.storage.models.documents import FIRST, DocumentMixin, DocumentVersionMixin


def _policy_id() -> str:
    return new_id("tpol")


class TenantTriagePolicy(DocumentMixin, Base):
    """A tenant's triage policy: its key (the YAML ``id``), name and newest version number."""

    __tablename__ = "triage_policies"
    __table_args__ = (UniqueConstraint("tenant_id", name="uq_triage_policies_tenant_id"),)

    id: Mapped[str] = mapped_column(
        String(40), primary_key=True, default=_policy_id, sort_order=FIRST
    )
    name: Mapped[str] = mapped_column(String(200), nullable=False)


class TriagePolicyVersion(DocumentVersionMixin, Base):
    """One version of a triage policy, as YAML whose ``version`` field is ``version``."""

    __tablename__ = "triage_policy_versions"

    policy_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("triage_policies.id", ondelete="CASCADE"), primary_key=True
    )

    def __repr__(self) -> str:
        return f"TriagePolicyVersion(policy_id={self.policy_id!r}, version={self.version})"
