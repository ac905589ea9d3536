"""Taxonomies per tenant: one row per taxonomy and one immutable row per version of it.

A taxonomy is known by its server id (``tax_…``) and by its ``key``, the ``id`` field of its YAML
(``acme-cem``), unique within a tenant. Every change adds a :class:`TaxonomyVersion` numbered
1, 2, 3…; versions are never updated or deleted, so labels and models can name the version
they were made with.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.storage.base import Base, TenantOwnedMixin, TimestampMixin, new_id, utcnow


def _taxonomy_id() -> str:
    return new_id("tax")


class TenantTaxonomy(TenantOwnedMixin, TimestampMixin, Base):
    """A tenant's taxonomy: its key, names and the number of its newest version."""

    __tablename__ = "taxonomies"
    __table_args__ = (UniqueConstraint("tenant_id", "key", name="uq_taxonomies_tenant_id_key"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=_taxonomy_id)
    key: Mapped[str] = mapped_column(String(64), nullable=False)
    name_zh: Mapped[str] = mapped_column(String(200), nullable=False)
    name_en: Mapped[str] = mapped_column(String(200), nullable=False)
    current_version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    updated_at: Mapped[datetime] = mapped_column(nullable=False, default=utcnow)

    def __repr__(self) -> str:
        return (
            f"TenantTaxonomy(id={self.id!r}, tenant_id={self.tenant_id!r}, key={self.key!r}, "
            f"current_version={self.current_version})"
        )


class TaxonomyVersion(TimestampMixin, Base):
    """One version of a taxonomy, as normalised YAML whose ``version`` field is ``version``."""

    __tablename__ = "taxonomy_versions"

    taxonomy_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("taxonomies.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    yaml: Mapped[str] = mapped_column(Text, nullable=False)
    content_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    created_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)

    def __repr__(self) -> str:
        return f"TaxonomyVersion(taxonomy_id={self.taxonomy_id!r}, version={self.version})"
