"""Taxonomies per tenant: one row per taxonomy and one immutable row per version of it.

A taxonomy is known by its server id (``tax_…``) and by its ``key``, the ``id`` field of its YAML
(``acme-cem``), unique within a tenant. Every change adds a :class:`TaxonomyVersion` numbered
1, 2, 3…; versions are never updated or deleted, so labels and models can name the version
they were made with.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.storage.base import Base, new_id
from service.storage.models.documents import FIRST, DocumentMixin, DocumentVersionMixin


def _taxonomy_id() -> str:
    return new_id("tax")


class TenantTaxonomy(DocumentMixin, Base):
    """A tenant's taxonomy: its key, names and the number of its newest version."""

    __tablename__ = "taxonomies"
    __table_args__ = (UniqueConstraint("tenant_id", "key", name="uq_taxonomies_tenant_id_key"),)

    id: Mapped[str] = mapped_column(
        String(40), primary_key=True, default=_taxonomy_id, sort_order=FIRST
    )
    name_zh: Mapped[str] = mapped_column(String(200), nullable=False)
    name_en: Mapped[str] = mapped_column(String(200), nullable=False)


class TaxonomyVersion(DocumentVersionMixin, Base):
    """One version of a taxonomy, as normalised YAML whose ``version`` field is ``version``."""

    __tablename__ = "taxonomy_versions"

    taxonomy_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("taxonomies.id", ondelete="CASCADE"), primary_key=True
    )

    def __repr__(self) -> str:
        return f"TaxonomyVersion(taxonomy_id={self.taxonomy_id!r}, version={self.version})"
