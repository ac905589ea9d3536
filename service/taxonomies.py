"""Taxonomies per tenant: create, add versions, read, export and diff them (API and CLI share this).

Rules (documented in the API):

- A taxonomy is found by its server id (``tax_…``) or its key (the YAML ``id``, unique per tenant).
- Every change adds a version numbered 1, 2, 3…; stored versions are never changed. The server
  sets the YAML's ``version`` field to that number, whatever the upload said (or if it said
  nothing), so version numbers only ever increase.
- Versions are stored as normalised YAML (:func:`models.taxonomy.dump_taxonomy`): comments and
  formatting of the upload are not kept. An upload equal to the current version adds nothing.
- A new version must keep the taxonomy's key: its ``id`` field must equal the key.

Functions flush but never commit: the caller owns the transaction. The store itself is
:mod:`service.documents`, shared with the triage policies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

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
from service import documents
from service.storage.models import TaxonomyVersion, TenantTaxonomy

MAX_TAXONOMY_BYTES = 2 * 1024 * 1024
"""The largest taxonomy YAML accepted (the default one is about 43 kB)."""


@dataclass(frozen=True, kw_only=True)
class Saved(documents.Saved):
    """The outcome of a create or an update: the taxonomy, its (new or current) version, the
    warnings of the upload, and whether a version was added."""

    row: TenantTaxonomy
    version: TaxonomyVersion

    @property
    def taxonomy(self) -> TenantTaxonomy:
        return self.row


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


def version_taxonomy(version: TaxonomyVersion) -> Taxonomy:
    """The taxonomy object of a stored version."""
    return load_taxonomy(version.yaml)


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


TAXONOMIES: documents.DocumentStore[Taxonomy] = documents.DocumentStore(
    table=TenantTaxonomy,
    version_table=TaxonomyVersion,
    parent="taxonomy_id",
    parse=parse_upload,
    load=load_taxonomy,
    to_dict=taxonomy_to_dict,
    dump=dump_taxonomy,
    read=version_taxonomy,
    diff=diff_document,
    names=lambda t: {"name_zh": t.name.zh[:200], "name_en": t.name.en[:200]},
    default=default_taxonomy,
    default_message="copy of the default taxonomy",
    one_per_tenant=False,
    saved=Saved,
    messages=documents.Messages(
        exists="This tenant already has a taxonomy with id {key!r} ({id}, version "
        "{current_version}). Add a version with PUT /v1/taxonomies/{id} (CLI: verbatim "
        "taxonomy import FILE --tenant T), or change the id in the YAML.",
        created_race="A taxonomy with id {key!r} was created at the same time; retry.",
        saved_race="Version {version} of taxonomy {key!r} was saved by another request at the "
        "same time; fetch the current version and apply your change again.",
        stale=None,  # no If-Match for taxonomies: a lost race reads as saved_race
        not_found="No taxonomy with id {ref!r} for this tenant. List them with GET "
        "/v1/taxonomies (CLI: verbatim taxonomy export --default for the shipped one).",
        no_version="Taxonomy {key!r} has no version {version}: its versions are 1 to "
        "{current_version}.",
    ),
)
"""The tenants' taxonomies (tables ``taxonomies`` and ``taxonomy_versions``)."""


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
    saved = TAXONOMIES.create(
        session, tenant_id, source, key=key, created_by=created_by, message=message
    )
    return cast(Saved, saved)


def create_default_copy(
    session: Session,
    tenant_id: str,
    *,
    key: str | None = None,
    created_by: str | None = None,
    message: str | None = None,
) -> Saved:
    """A copy of the shipped default taxonomy (``cem-default``), under ``key`` if given."""
    saved = TAXONOMIES.create(
        session, tenant_id, None, key=key, created_by=created_by, message=message
    )
    return cast(Saved, saved)


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
    saved = TAXONOMIES.add_version(session, row, text, created_by=created_by, message=message)
    return cast(Saved, saved)


def find_by_key(session: Session, tenant_id: str, key: str) -> TenantTaxonomy | None:
    """The tenant's taxonomy with the key ``key``, or None."""
    return TAXONOMIES.find(session, tenant_id, key)


def get_taxonomy(
    session: Session, tenant_id: str, id_or_key: str, *, for_update: bool = False
) -> TenantTaxonomy:
    """The tenant's taxonomy by server id or key; :class:`NotFoundError` for another tenant's."""
    return TAXONOMIES.get(session, tenant_id, id_or_key, for_update=for_update)


def list_taxonomies(
    session: Session, tenant_id: str, *, limit: int = 50, offset: int = 0
) -> tuple[list[TenantTaxonomy], int]:
    """A page of the tenant's taxonomies, most recently changed first, and the total."""
    return TAXONOMIES.page(session, tenant_id, limit=limit, offset=offset)


def list_versions(session: Session, row: TenantTaxonomy) -> list[TaxonomyVersion]:
    """Every version of ``row``, newest first."""
    return TAXONOMIES.list_versions(session, row)


def get_version(session: Session, row: TenantTaxonomy, version: int) -> TaxonomyVersion:
    """Version ``version`` of ``row``; :class:`NotFoundError` naming the versions there are."""
    return TAXONOMIES.get_version(session, row, version)


def diff_versions(session: Session, row: TenantTaxonomy, old: int, new: int) -> dict[str, Any]:
    """What changed from version ``old`` to ``new``: the changes, summary lines, and where each
    old topic and touchpoint id's labels go (``null``: nowhere, the node was retired or deleted)."""
    return TAXONOMIES.diff_versions(session, row, old, new)
