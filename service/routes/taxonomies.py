"""Taxonomies per tenant: create, list, read, version, export as YAML and diff.

Scopes: `analyze` to read; `train` (or `admin`) to create and change. Another tenant's taxonomy
is a 404. Every change makes a new, immutable version; the server sets the YAML's `version` field
to the new number (1, 2, 3…), so numbers only increase whatever the upload says. Versions are
stored as normalised YAML: comments and layout of the upload are not kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from nlp.errors import InvalidInputError, NotFoundError
from service.deps import AnalyzePrincipal, SessionDep, TrainPrincipal
from service.routes.datasets_schemas import Page, examples
from service.routes.taxonomies_schemas import (
    DIFF_EXAMPLE,
    EXAMPLE_YAML,
    INVALID_EXAMPLE,
    SAVED_EXAMPLE,
    SUMMARY_EXAMPLE,
    TAXONOMY_EXAMPLE,
    YAML_TYPES,
    DiffOut,
    TaxonomyCreate,
    TaxonomyOut,
    TaxonomySaved,
    TaxonomySummary,
    VersionOut,
)
from service.storage.keys import Principal
from service.storage.models import TaxonomyVersion, TenantTaxonomy
from service.taxonomies import (
    MAX_TAXONOMY_BYTES,
    Saved,
    add_version,
    create_default_copy,
    create_taxonomy,
    diff_versions,
    get_taxonomy,
    get_version,
    list_taxonomies,
    list_versions,
    version_taxonomy,
)

router = APIRouter(prefix="/v1", tags=["taxonomies"])

Limit = Annotated[int, Query(ge=1, le=500, description="Items per page (1 to 500).")]
Offset = Annotated[int, Query(ge=0, le=1_000_000_000, description="Items to skip.")]
Format = Annotated[
    Literal["json", "yaml"], Query(description="`yaml`: the version's YAML as `text/yaml`.")
]
Message = Annotated[
    str | None,
    Query(max_length=2000, description="With a YAML body: what this version changes."),
]
_NOT_FOUND = {404: {"description": "No such taxonomy (or version) for this API key's tenant"}}
_INVALID = {
    422: {
        "description": "The YAML is invalid: `details` lists every problem with its path and line",
        "content": {"application/json": {"example": INVALID_EXAMPLE}},
    }
}


def _json_or_yaml(summary: str, value: Any) -> dict[int | str, dict[str, Any]]:
    """A 200 with a bilingual JSON example and the ``text/yaml`` alternative."""
    out = examples(zh_en=(summary, value))
    out[200]["content"]["text/yaml"] = {"schema": {"type": "string"}, "example": EXAMPLE_YAML}
    return out


def _body_doc(json_examples: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/yaml": {
                    "schema": {"type": "string"},
                    "examples": {"bilingual": {"summary": "A small zh+en taxonomy", "value": EXAMPLE_YAML}},
                },
                "application/json": {
                    "schema": TaxonomyCreate.model_json_schema(by_alias=True),
                    "examples": json_examples,
                },
            },
        }
    }  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Upload:
    yaml: str | None
    from_default: bool = False
    key: str | None = None
    message: str | None = None


async def read_upload(request: Request, message: Message = None) -> Upload:
    """The body as YAML text (a YAML content type) or as JSON ``{"yaml": …}`` / ``{"from": …}``."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if len(body) > MAX_TAXONOMY_BYTES:
        raise HTTPException(413, f"A taxonomy is at most {MAX_TAXONOMY_BYTES:,} bytes of YAML.")
    if media in YAML_TYPES:
        return Upload(yaml=_text(body), message=message)
    if media == "application/json" or media.endswith("+json"):
        try:
            doc = TaxonomyCreate.model_validate_json(body)
        except ValidationError as exc:
            details = [
                {"location": ".".join(map(str, e["loc"])) or "body", "message": e["msg"]}
                for e in exc.errors()
            ]
            raise InvalidInputError(
                'The JSON body is not valid: expected {"yaml": "<the taxonomy as YAML>"} or '
                '{"from": "default", "id": "acme-cem"}.',
                details=details,
            ) from None
        if (doc.yaml is None) == (doc.from_ is None):
            raise InvalidInputError('Give exactly one of "yaml" and "from" in the JSON body.')
        if doc.id is not None and doc.from_ is None:
            raise InvalidInputError('"id" goes with "from"; with "yaml" the id is the YAML\'s own.')
        return Upload(
            yaml=doc.yaml,
            from_default=doc.from_ == "default",
            key=doc.id,
            message=doc.message or message,
        )
    raise HTTPException(
        415,
        f"Send the taxonomy as YAML (Content-Type: application/yaml) or as JSON "
        f'{{"yaml": …}} (Content-Type: application/json); got {media or "no Content-Type"!r}.',
    )


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"The taxonomy is not UTF-8 text (byte {exc.start}); save the YAML as UTF-8."
        ) from None


UploadDep = Annotated[Upload, Depends(read_upload)]


def _taxonomy(
    session: Session, principal: Principal, taxonomy_id: str, **kw: Any
) -> TenantTaxonomy:
    if not (0 < len(taxonomy_id) <= 80 and taxonomy_id.isprintable()):
        raise NotFoundError(f"No taxonomy with id {taxonomy_id[:80]!r} for this API key's tenant.")
    return get_taxonomy(session, principal.tenant_id, taxonomy_id, **kw)


def _yaml_response(row: TenantTaxonomy, version: TaxonomyVersion) -> Response:
    return Response(
        version.yaml,
        media_type="text/yaml; charset=utf-8",
        headers={"Content-Disposition": f'inline; filename="{row.key}.v{version.version}.yaml"'},
    )


def _saved(saved: Saved) -> dict[str, Any]:
    out = TaxonomyOut.build(saved.taxonomy, saved.version, version_taxonomy(saved.version))
    return {
        **out.model_dump(),
        "created": saved.created,
        "warnings": [p.as_dict() for p in saved.warnings],
    }


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
    response: Response, principal: TrainPrincipal, session: SessionDep, upload: UploadDep
) -> dict[str, Any]:
    """Version 1 of a new taxonomy. Send the YAML (`Content-Type: application/yaml`, format in
    `models/taxonomy/README.md`), or JSON `{"yaml": "…"}`, or `{"from": "default", "id": "acme-cem"}`
    for a copy of the shipped default to edit. The YAML's `version` is set to 1. Needs `train`.

    `curl -H 'Authorization: Bearer vb_…' -H 'Content-Type: application/yaml' --data-binary @acme.yaml …/v1/taxonomies`
    """
    common = {"created_by": principal.key_id, "message": upload.message}
    if upload.from_default:
        saved = create_default_copy(session, principal.tenant_id, key=upload.key, **common)
    else:
        saved = create_taxonomy(session, principal.tenant_id, upload.yaml or "", **common)
    body = _saved(saved)
    session.commit()
    response.headers["Location"] = f"/v1/taxonomies/{saved.taxonomy.id}"
    return body


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
    following = offset + len(rows)
    return {
        "items": [TaxonomySummary.of(r) for r in rows],
        "total": total,
        "limit": limit,
        "offset": offset,
        "next_offset": following if following < total else None,
    }


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
    row = _taxonomy(session, principal, taxonomy_id)
    version = get_version(session, row, row.current_version)
    if format == "yaml":
        return _yaml_response(row, version)
    return TaxonomyOut.build(row, version, version_taxonomy(version))


@router.put(
    "/taxonomies/{taxonomy_id}",
    response_model=TaxonomySaved,
    summary="Save a new version from a full YAML document",
    responses={**examples(zh_en=("Version 2 of a bilingual taxonomy", SAVED_EXAMPLE)), **_INVALID, **_NOT_FOUND,
               409: {"description": "Another request saved a version at the same moment; retry"}},
    openapi_extra=_body_doc({"yaml": {"summary": "YAML inside JSON", "value": {"yaml": EXAMPLE_YAML, "message": "新增“过敏/食品安全” / add allergies"}}}),
)  # fmt: skip
def update(
    taxonomy_id: str, principal: TrainPrincipal, session: SessionDep, upload: UploadDep
) -> dict[str, Any]:
    """The body is the whole taxonomy (YAML, or JSON `{"yaml": "…", "message": "…"}`); its `id`
    must be the taxonomy's key. The server sets `version` to current + 1. An upload equal to the
    current version saves nothing (`created: false`). To merge, move or retire a node keep it in
    the file with `status: retired` and `replaced_by`, so old labels map forward. Needs `train`."""
    if upload.from_default or upload.yaml is None:
        raise InvalidInputError('PUT takes the whole taxonomy: a YAML body or JSON {"yaml": …}.')
    row = _taxonomy(session, principal, taxonomy_id, for_update=True)
    saved = add_version(
        session, row, upload.yaml, created_by=principal.key_id, message=upload.message
    )
    body = _saved(saved)
    session.commit()
    return body


@router.get(
    "/taxonomies/{taxonomy_id}/versions",
    response_model=list[VersionOut],
    summary="Every version of a taxonomy, newest first",
    responses=_NOT_FOUND,
)
def versions(taxonomy_id: str, principal: AnalyzePrincipal, session: SessionDep) -> Any:
    row = _taxonomy(session, principal, taxonomy_id)
    return [VersionOut.of(row, v) for v in list_versions(session, row)]


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
    row = _taxonomy(session, principal, taxonomy_id)
    found = get_version(session, row, version)
    if format == "yaml":
        return _yaml_response(row, found)
    return TaxonomyOut.build(row, found, version_taxonomy(found))


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
    from_: Annotated[int | None, Query(alias="from", ge=1, description="Old version (default: to - 1).")] = None,
    to: Annotated[int | None, Query(ge=1, description="New version (default: the current one).")] = None,
) -> Any:  # fmt: skip
    """Added, removed, retired, restored, merged, moved and renamed nodes, changed descriptions,
    seeds and attributes, and `label_mapping`: for every old topic and touchpoint id, the id its
    labels count as in the new version (null when retired without replacement or deleted)."""
    row = _taxonomy(session, principal, taxonomy_id)
    new = to if to is not None else row.current_version
    old = from_ if from_ is not None else max(new - 1, 1)
    return diff_versions(session, row, old, new)
