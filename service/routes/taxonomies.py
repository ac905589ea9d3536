"""Taxonomies per tenant: create, list, read, version, export as YAML and diff.

Scopes: `analyze` to read; `train` (or `admin`) to create and change. Another tenant's taxonomy
is a 404. Every change makes a new, immutable version; the server sets the YAML's `version` field
to the new number (1, 2, 3…), so numbers only increase whatever the upload says. Versions are
stored as normalised YAML: comments and layout of the upload are not kept.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from service.deps import AnalyzePrincipal, SessionDep, TrainPrincipal
from service.routes.datasets_schemas import Page, examples
from service.routes.documents import (
    DocumentRoutes,
    Format,
    FromVersion,
    ToVersion,
    Upload,
    body_doc,
    invalid_doc,
    not_found_doc,
)
from service.routes.paging import Limit, Offset, page
from service.routes.taxonomies_schemas import (
    DIFF_EXAMPLE,
    EXAMPLE_YAML,
    INVALID_EXAMPLE,
    SAVED_EXAMPLE,
    SUMMARY_EXAMPLE,
    TAXONOMY_EXAMPLE,
    DiffOut,
    TaxonomyCreate,
    TaxonomyOut,
    TaxonomySaved,
    TaxonomySummary,
    VersionOut,
)
from service.storage.keys import Principal
from service.taxonomies import MAX_TAXONOMY_BYTES, TAXONOMIES, list_taxonomies

router = APIRouter(prefix="/v1", tags=["taxonomies"])
ROUTES = DocumentRoutes(
    store=TAXONOMIES,
    prefix="/v1/taxonomies",
    noun="taxonomy",
    short="taxonomy",
    bad_id="No taxonomy with id {ref!r} for this API key's tenant.",
    example_id="acme-cem",
    max_bytes=MAX_TAXONOMY_BYTES,
    create_model=TaxonomyCreate,
    out=TaxonomyOut,
    version_out=VersionOut,
)

UploadDep = Annotated[Upload, Depends(ROUTES.read_upload)]
_NOT_FOUND = not_found_doc("taxonomy")
_INVALID = invalid_doc(INVALID_EXAMPLE)
_YAML_EXAMPLES = {"bilingual": {"summary": "A small zh+en taxonomy", "value": EXAMPLE_YAML}}


def _json_or_yaml(summary: str, value: Any) -> dict[int | str, dict[str, Any]]:
    """A 200 with a bilingual JSON example and the ``text/yaml`` alternative."""
    out = examples(zh_en=(summary, value))
    out[200]["content"]["text/yaml"] = {"schema": {"type": "string"}, "example": EXAMPLE_YAML}
    return out


def _body_doc(json_examples: dict[str, Any]) -> dict[str, Any]:
    return body_doc(TaxonomyCreate, json_examples, _YAML_EXAMPLES)


@router.post(
    "/taxonomies",
    status_code=201,
    response_model=TaxonomySaved,
    summary="Create a taxonomy from YAML, or as a copy of the default one",
    responses={**examples(201, zh_en=("A bilingual taxonomy, version 1", {**SAVED_EXAMPLE, "current_version": 1})), **_INVALID,
               409: {"description": "The tenant already has a taxonomy with this id (add a version with PUT)"},
               415: {"description": "Neither YAML nor JSON"}},
    openapi_extra=_body_doc({
        "yaml": {"summary": "YAML inside JSON", "value": {"yaml": EXAMPLE_YAML, "message": "首个版本 / first version"}},
        "default": {"summary": "A copy of the shipped default under your own id", "value": {"from": "default", "id": "acme-cem"}},
    }),
)  # fmt: skip
def create(
    request: Request,
    response: Response,
    principal: TrainPrincipal,
    session: SessionDep,
    upload: UploadDep,
) -> dict[str, Any]:
    """Version 1 of a new taxonomy. Send the YAML (`Content-Type: application/yaml`, format in
    `models/taxonomy/README.md`), or JSON `{"yaml": "…"}`, or `{"from": "default", "id": "acme-cem"}`
    for a copy of the shipped default to edit. The YAML's `version` is set to 1. Needs `train`.

    `curl -H 'Authorization: Bearer vb_…' -H 'Content-Type: application/yaml' --data-binary @acme.yaml …/v1/taxonomies`
    """
    saved = ROUTES.create(response, principal, session, upload)
    _classify_with_it(request, principal)
    return saved


@router.get(
    "/taxonomies",
    response_model=Page[TaxonomySummary],
    summary="List your taxonomies, most recently changed first",
    responses=examples(zh_en=("One bilingual taxonomy", {"items": [SUMMARY_EXAMPLE], "total": 1, "limit": 50, "offset": 0, "next_offset": None})),
)  # fmt: skip
def list_all(
    principal: AnalyzePrincipal, session: SessionDep, limit: Limit = 50, offset: Offset = 0
) -> dict[str, Any]:
    rows, total = list_taxonomies(session, principal.tenant_id, limit=limit, offset=offset)
    return page([TaxonomySummary.of(r) for r in rows], total, limit, offset)


@router.get(
    "/taxonomies/{taxonomy_id}",
    response_model=TaxonomyOut,
    summary="A taxonomy's current version (JSON, or YAML with ?format=yaml)",
    responses={**_json_or_yaml("A bilingual taxonomy", TAXONOMY_EXAMPLE), **_NOT_FOUND},
)  # fmt: skip
def read(
    taxonomy_id: str, principal: AnalyzePrincipal, session: SessionDep, format: Format = "json"
) -> Any:
    """`taxonomy_id` is the server id (`tax_…`) or the taxonomy's key (its YAML `id`)."""
    return ROUTES.read(session, principal, taxonomy_id, None, format)


@router.put(
    "/taxonomies/{taxonomy_id}",
    response_model=TaxonomySaved,
    summary="Save a new version from a full YAML document",
    responses={**examples(zh_en=("Version 2 of a bilingual taxonomy", SAVED_EXAMPLE)), **_INVALID, **_NOT_FOUND,
               409: {"description": "Another request saved a version at the same moment; retry"}},
    openapi_extra=_body_doc({"yaml": {"summary": "YAML inside JSON", "value": {"yaml": EXAMPLE_YAML, "message": "新增“过敏/食品安全” / add allergies"}}}),
)  # fmt: skip
def update(
    request: Request,
    taxonomy_id: str,
    principal: TrainPrincipal,
    session: SessionDep,
    upload: UploadDep,
) -> dict[str, Any]:
    """The body is the whole taxonomy (YAML, or JSON `{"yaml": "…", "message": "…"}`); its `id`
    must be the taxonomy's key. The server sets `version` to current + 1. An upload equal to the
    current version saves nothing (`created: false`). To merge, move or retire a node keep it in
    the file with `status: retired` and `replaced_by`, so old labels map forward. Needs `train`."""
    saved = ROUTES.update(session, principal, taxonomy_id, upload, for_update=True)
    if saved["created"]:
        _classify_with_it(request, principal)
    return saved


def _classify_with_it(request: Request, principal: Principal) -> None:
    """The tenant's classification on this server follows its just-saved taxonomy from its next
    request (other servers notice within a few seconds, :mod:`service.tenant_models`)."""
    models = getattr(request.app.state, "tenant_models", None)
    if models is not None:  # none yet: nothing remembered to forget
        models.forget_taxonomy(principal.tenant_id)


@router.get(
    "/taxonomies/{taxonomy_id}/versions",
    response_model=list[VersionOut],
    summary="Every version of a taxonomy, newest first",
    responses=_NOT_FOUND,
)
def versions(taxonomy_id: str, principal: AnalyzePrincipal, session: SessionDep) -> Any:
    return ROUTES.versions(session, principal, taxonomy_id)


@router.get(
    "/taxonomies/{taxonomy_id}/versions/{version}",
    response_model=TaxonomyOut,
    summary="One version (JSON, or its YAML with ?format=yaml)",
    responses={**_json_or_yaml("Version 2", TAXONOMY_EXAMPLE), **_NOT_FOUND},
)  # fmt: skip
def read_version(
    taxonomy_id: str,
    version: int,
    principal: AnalyzePrincipal,
    session: SessionDep,
    format: Format = "json",
) -> Any:
    """The YAML export loads back with `verbatim taxonomy validate` and imports unchanged."""
    return ROUTES.read(session, principal, taxonomy_id, version, format)


@router.get(
    "/taxonomies/{taxonomy_id}/diff",
    response_model=DiffOut,
    response_model_by_alias=True,
    summary="What changed between two versions, and where old labels go",
    responses={**examples(zh_en=("A merge and a Chinese rename", DIFF_EXAMPLE)), **_NOT_FOUND},
)  # fmt: skip
def diff(
    taxonomy_id: str,
    principal: AnalyzePrincipal,
    session: SessionDep,
    from_: FromVersion = None,
    to: ToVersion = None,
) -> Any:
    """Added, removed, retired, restored, merged, moved and renamed nodes, changed descriptions,
    seeds and attributes, and `label_mapping`: for every old topic and touchpoint id, the id its
    labels count as in the new version (null when retired without replacement or deleted)."""
    return ROUTES.diff(session, principal, taxonomy_id, from_, to)
