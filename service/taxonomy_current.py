"""A tenant's current taxonomy: the one its analysts edit, and that its classification follows.

The current taxonomy is the tenant's most recently changed one, at its current version (the
same rule :class:`service.label_taxonomy.TaxonomyBook` uses for labels that name no taxonomy);
a tenant without taxonomies of its own has none (it uses what its model was trained with).
:func:`current_taxonomy` is one small query, cheap enough to poll every few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.taxonomy import Taxonomy, load_taxonomy
from nlp.errors import NotFoundError
from service.storage.models import TaxonomyVersion, TenantTaxonomy


@dataclass(frozen=True, kw_only=True, slots=True)
class CurrentTaxonomy:
    """Which taxonomy version is current for a tenant, and the hash of its nodes
    (:meth:`models.taxonomy.Taxonomy.content_hash`, what a model's ``taxonomy_hash`` names)."""

    taxonomy_id: str
    key: str
    version: int
    content_hash: str


def current_taxonomy(session: Session, tenant_id: str) -> CurrentTaxonomy | None:
    """The tenant's current taxonomy version, or ``None`` when it has no taxonomy of its own."""
    row = session.execute(
        select(
            TenantTaxonomy.id,
            TenantTaxonomy.key,
            TenantTaxonomy.current_version,
            TaxonomyVersion.content_hash,
        )
        .join(
            TaxonomyVersion,
            (TaxonomyVersion.taxonomy_id == TenantTaxonomy.id)
            & (TaxonomyVersion.version == TenantTaxonomy.current_version),
        )
        .where(TenantTaxonomy.tenant_id == tenant_id)
        .order_by(TenantTaxonomy.updated_at.desc(), TenantTaxonomy.id)
        .limit(1)
    ).one_or_none()
    if row is None:
        return None
    return CurrentTaxonomy(
        taxonomy_id=row.id, key=row.key, version=row.current_version, content_hash=row.content_hash
    )


def load_current(session: Session, current: CurrentTaxonomy) -> Taxonomy:
    """The taxonomy object of ``current`` (a stored version, never changed once written)."""
    found = session.get(TaxonomyVersion, (current.taxonomy_id, current.version))
    if found is None:
        raise NotFoundError(
            f"Taxonomy {current.key!r} has no version {current.version} any more (deleted?).",
            details={"id": current.taxonomy_id, "version": current.version},
        )
    return load_taxonomy(found.yaml)
