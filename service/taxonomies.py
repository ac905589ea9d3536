"""Taxonomies per tenant: create, add versions, read, export and diff them (API and CLI share this).

Rules (documented in the API):

- A taxonomy is found by its server id (``tax_…``) or its key (the YAML ``id``, unique per tenant).
- Every change adds a version numbered 1, 2, 3…; stored versions are never changed. The server
  sets the YAML's ``version`` field to that number, whatever the upload said (or if it said
  nothing), so version numbers only ever increase.
- Versions are stored as normalised YAML (:func:`models.taxonomy.dump_taxonomy`): comments and
  formatting of the upload are not kept. An upload equal to the current version adds nothing.
- A new version must keep the taxonomy's key: its ``id`` field must equal the key.

Functions flush but never commit: the caller owns the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.taxonomy import (
    NodeKind,
    Problem,
    ProblemLevel,
    Taxonomy,
    default_taxonomy,
    diff_taxonomies,
    dump_taxonomy,
    label_mapping,
    load_taxonomy,
    taxonomy_to_dict,
)
from models.taxonomy.problems import raise_for_problems
from models.taxonomy.validate import check_source, read_source
from nlp.errors import ConflictError, InvalidInputError, NotFoundError
from service.storage.base import utcnow
from service.storage.models import TaxonomyVersion, TenantTaxonomy

MAX_TAXONOMY_BYTES = 2 * 1024 * 1024
"""The largest taxonomy YAML accepted (the default one is about 43 kB)."""


@dataclass(frozen=True, kw_only=True)
class Saved:
    """The outcome of a create or an update: the taxonomy, its (new or current) version, the
    warnings of the upload, and whether a version was added."""

    taxonomy: TenantTaxonomy
    version: TaxonomyVersion
    warnings: tuple[Problem, ...] = ()
    created: bool = True


def parse_upload(
    text: str, *, version: int, key: str | None = None
) -> tuple[Taxonomy, list[Problem]]:
    """Validate uploaded YAML ``text`` as version ``version`` of the taxonomy ``key``.

    Returns the taxonomy (``version`` set by the server) and its warnings; raises
    :class:`nlp.errors.TaxonomyError` listing every problem with its path and line. The ``version``
    field may be missing or wrong in ``text``: the server sets it."""
    if "\n" not in text:
        text += "\n"  # never read as a file path: uploads are YAML text
    data, problems = check_source(text)
    problems = [p for p in problems if p.path != "version"]
    if data is not None and key is not None and data.get("id") != key:
        line = read_source(text)[1].get("id")
        problems.insert(
            0,
            Problem(
                path="id",
                line=line,
                message=f"this taxonomy's id is {key!r}, the upload says {data.get('id')!r}; keep "
                f"id: {key} to add a version (or create a new taxonomy under the new id)",
            ),
        )
    raise_for_problems(problems, origin="taxonomy")
    taxonomy = load_taxonomy({**data, "version": version})
    return taxonomy, [p for p in problems if p.level is ProblemLevel.warning]


def _versioned(taxonomy: Taxonomy, version: int, key: str | None = None) -> Taxonomy:
    """``taxonomy`` renumbered (and renamed to ``key``), validated again."""
    doc = taxonomy_to_dict(taxonomy)
    doc["version"] = version
    if key is not None:
        doc["id"] = key
    return load_taxonomy(doc)


def _version_row(
    row: TenantTaxonomy, taxonomy: Taxonomy, *, created_by: str | None, message: str | None
) -> TaxonomyVersion:
    return TaxonomyVersion(
        taxonomy_id=row.id,
        version=taxonomy.version,
        yaml=dump_taxonomy(taxonomy),
        content_hash=taxonomy.content_hash(),
        created_by=created_by,
        message=message,
    )


def _flush(session: Session, what: str) -> None:
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise ConflictError(what) from None


def create_taxonomy(
    session: Session,
    tenant_id: str,
    source: str | Taxonomy,
    *,
    key: str | None = None,
    created_by: str | None = None,
    message: str | None = None,
) -> Saved:
    """A new taxonomy for the tenant, at version 1, from YAML text or a taxonomy object.

    ``key`` replaces the taxonomy's ``id`` (e.g. a copy of the default under the tenant's own
    name). :class:`ConflictError` when the tenant already has a taxonomy with that key."""
    if isinstance(source, str):
        taxonomy, warnings = parse_upload(source, version=1)
        if key is not None:
            taxonomy = _versioned(taxonomy, 1, key)
    else:
        taxonomy, warnings = _versioned(source, 1, key), []
    existing = find_by_key(session, tenant_id, taxonomy.id)
    if existing is not None:
        raise _exists(existing)
    row = TenantTaxonomy(
        tenant_id=tenant_id,
        key=taxonomy.id,
        name_zh=taxonomy.name.zh[:200],
        name_en=taxonomy.name.en[:200],
        current_version=1,
    )
    session.add(row)
    _flush(session, f"A taxonomy with id {taxonomy.id!r} was created at the same time; retry.")
    version = _version_row(row, taxonomy, created_by=created_by, message=message)
    session.add(version)
    session.flush()
    return Saved(taxonomy=row, version=version, warnings=tuple(warnings))


def _exists(row: TenantTaxonomy) -> ConflictError:
    return ConflictError(
        f"This tenant already has a taxonomy with id {row.key!r} ({row.id}, version "
        f"{row.current_version}). Add a version with PUT /v1/taxonomies/{row.id} (CLI: verbatim "
        "taxonomy import FILE --tenant T), or change the id in the YAML.",
        details={"id": row.id, "key": row.key, "current_version": row.current_version},
    )


def create_default_copy(
    session: Session,
    tenant_id: str,
    *,
    key: str | None = None,
    created_by: str | None = None,
    message: str | None = None,
) -> Saved:
    """A copy of the shipped default taxonomy (``cem-default``), under ``key`` if given."""
    return create_taxonomy(
        session,
        tenant_id,
        default_taxonomy(),
        key=key,
        created_by=created_by,
        message=message or "copy of the default taxonomy",
    )


def add_version(
    session: Session,
    row: TenantTaxonomy,
    text: str,
    *,
    created_by: str | None = None,
    message: str | None = None,
) -> Saved:
    """Version ``current + 1`` of ``row`` from a full YAML ``text``; nothing is added when the
    upload equals the current version (``Saved.created`` is then false)."""
    current = get_version(session, row, row.current_version)
    taxonomy, warnings = parse_upload(text, version=row.current_version + 1, key=row.key)
    if dump_taxonomy(_versioned(taxonomy, current.version)) == current.yaml:
        return Saved(taxonomy=row, version=current, warnings=tuple(warnings), created=False)
    version = _version_row(row, taxonomy, created_by=created_by, message=message)
    session.add(version)
    row.current_version = taxonomy.version
    row.name_zh, row.name_en = taxonomy.name.zh[:200], taxonomy.name.en[:200]
    row.updated_at = utcnow()
    _flush(
        session,
        f"Version {taxonomy.version} of taxonomy {row.key!r} was saved by another request at the "
        "same time; fetch the current version and apply your change again.",
    )
    return Saved(taxonomy=row, version=version, warnings=tuple(warnings))


def find_by_key(session: Session, tenant_id: str, key: str) -> TenantTaxonomy | None:
    return session.scalars(
        select(TenantTaxonomy).where(
            TenantTaxonomy.tenant_id == tenant_id, TenantTaxonomy.key == key
        )
    ).one_or_none()


def get_taxonomy(
    session: Session, tenant_id: str, id_or_key: str, *, for_update: bool = False
) -> TenantTaxonomy:
    """The tenant's taxonomy by server id or key; :class:`NotFoundError` for another tenant's."""
    query = select(TenantTaxonomy).where(
        TenantTaxonomy.tenant_id == tenant_id,
        (TenantTaxonomy.id == id_or_key) | (TenantTaxonomy.key == id_or_key),
    )
    if for_update:
        query = query.with_for_update()
    rows = session.scalars(query).all()
    row = next((r for r in rows if r.id == id_or_key), rows[0] if rows else None)
    if row is None:
        raise NotFoundError(
            f"No taxonomy with id {id_or_key[:80]!r} for this tenant. List them with GET "
            "/v1/taxonomies (CLI: verbatim taxonomy export --default for the shipped one).",
            details={"id": id_or_key[:80]},
        )
    return row


def list_taxonomies(
    session: Session, tenant_id: str, *, limit: int = 50, offset: int = 0
) -> tuple[list[TenantTaxonomy], int]:
    """A page of the tenant's taxonomies, most recently changed first, and the total."""
    query = select(TenantTaxonomy).where(TenantTaxonomy.tenant_id == tenant_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(TenantTaxonomy.updated_at.desc(), TenantTaxonomy.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return list(rows), total


def list_versions(session: Session, row: TenantTaxonomy) -> list[TaxonomyVersion]:
    """Every version of ``row``, newest first."""
    return list(
        session.scalars(
            select(TaxonomyVersion)
            .where(TaxonomyVersion.taxonomy_id == row.id)
            .order_by(TaxonomyVersion.version.desc())
        ).all()
    )


def get_version(session: Session, row: TenantTaxonomy, version: int) -> TaxonomyVersion:
    """Version ``version`` of ``row``; :class:`NotFoundError` naming the versions there are."""
    found = session.get(TaxonomyVersion, (row.id, version))
    if found is None:
        raise NotFoundError(
            f"Taxonomy {row.key!r} has no version {version}: its versions are 1 to "
            f"{row.current_version}.",
            details={"id": row.id, "version": version, "current_version": row.current_version},
        )
    return found


def version_taxonomy(version: TaxonomyVersion) -> Taxonomy:
    """The taxonomy object of a stored version."""
    return load_taxonomy(version.yaml)


def diff_versions(session: Session, row: TenantTaxonomy, old: int, new: int) -> dict[str, Any]:
    """What changed from version ``old`` to ``new``: the changes, summary lines, and where each
    old topic and touchpoint id's labels go (``null``: nowhere, the node was retired or deleted)."""
    if old < 1 or new < 1:
        raise InvalidInputError(f"Versions start at 1; got from={old}, to={new}.")
    before = version_taxonomy(get_version(session, row, old))
    after = version_taxonomy(get_version(session, row, new))
    return diff_document(before, after)


def diff_document(before: Taxonomy, after: Taxonomy) -> dict[str, Any]:
    """A diff as plain data: ``changes``, ``summary`` lines and ``label_mapping`` per kind."""
    diff = diff_taxonomies(before, after)
    body = diff.as_dict()
    return {
        "from": body["old"],
        "to": body["new"],
        "summary": diff.summary(),
        "changes": body["changes"],
        "label_mapping": {
            "topics": label_mapping(before, after, NodeKind.topic),
            "touchpoints": label_mapping(before, after, NodeKind.touchpoint),
        },
    }
