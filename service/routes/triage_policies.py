"""Triage policies per tenant: create, read, version, export as YAML, diff; the policy in force.

Scopes: `analyze` or `triage` to read; `admin` to create and change. Another tenant's policy is a
404. A tenant has at most one policy; until it creates one, the default policy triages its records
(`GET /v1/triage-policies/current` says which). Every change makes a new, immutable version whose
YAML `version` the server sets (1, 2, 3…); classification results, imported records and cases name
the version that triaged them (`policy: "acme-triage@2"`). Two PUTs from the same version: one
saves, the other is a 409 (send `If-Match: "<version>"` to make the base explicit).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Response, Security

from models.triage import default_policy, dump_policy, policy_to_dict
from service.auth import get_principal
from service.deps import AdminPrincipal, SessionDep
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
    yaml_response,
)
from service.routes.triage_policies_schemas import (
    DIFF_EXAMPLE,
    INVALID_EXAMPLE,
    POLICY_EXAMPLE,
    SAVED_EXAMPLE,
    SUMMARY_EXAMPLE,
    CurrentPolicyOut,
    PolicyCreate,
    PolicyDiffOut,
    PolicyOut,
    PolicySaved,
    PolicySummary,
    PolicyVersionOut,
)
from service.storage.keys import Principal, Scope
from service.triage_policies import (
    MAX_POLICY_BYTES,
    POLICIES,
    find_policy,
    get_version,
    version_policy,
)

router = APIRouter(prefix="/v1", tags=["triage policies"])
ROUTES = DocumentRoutes(
    store=POLICIES,
    prefix="/v1/triage-policies",
    noun="triage policy",
    short="policy",
    bad_id="No triage policy {ref!r} for this API key's tenant.",
    example_id="acme-triage",
    max_bytes=MAX_POLICY_BYTES,
    create_model=PolicyCreate,
    out=PolicyOut,
    version_out=PolicyVersionOut,
)


def require_reader(principal: Annotated[Principal, Security(get_principal)]) -> Principal:
    """The caller when its key has `analyze` or `triage` (or `admin`), else 403."""
    if principal.has(Scope.analyze) or principal.has(Scope.triage):
        return principal
    granted = ", ".join(sorted(s.value for s in principal.scopes)) or "none"
    raise HTTPException(
        403,
        f"Reading triage policies needs the 'analyze' or 'triage' scope (this key has: {granted}).",
    )


ReaderPrincipal = Annotated[Principal, Depends(require_reader)]
UploadDep = Annotated[Upload, Depends(ROUTES.read_upload)]
_NOT_FOUND = not_found_doc("triage policy")
_INVALID = invalid_doc(INVALID_EXAMPLE)


def _body_doc(json_examples: dict[str, Any]) -> dict[str, Any]:
    return body_doc(PolicyCreate, json_examples)


@router.post(
    "/triage-policies",
    status_code=201,
    response_model=PolicySaved,
    summary="Create the tenant's triage policy from YAML, or as a copy of the default",
    responses={**examples(201, zh_en=("Version 1", {**SAVED_EXAMPLE, "current_version": 1})), **_INVALID,
               409: {"description": "The tenant already has a triage policy (add a version with PUT)"},
               415: {"description": "Neither YAML nor JSON"}},
    openapi_extra=_body_doc({"default": {"summary": "A copy of the default under your own id",
                                         "value": {"from": "default", "id": "acme-triage"}}}),
)  # fmt: skip
def create(
    response: Response, principal: AdminPrincipal, session: SessionDep, upload: UploadDep
) -> dict[str, Any]:
    """Version 1 of the tenant's policy: YAML (`Content-Type: application/yaml`, format in
    `models/triage/README.md`), JSON `{"yaml": "…"}`, or `{"from": "default", "id": "acme-triage"}`.
    From now on it triages the tenant's classifications, imports and cases. Needs `admin`."""
    return ROUTES.create(response, principal, session, upload)


@router.get(
    "/triage-policies",
    response_model=Page[PolicySummary],
    summary="List the tenant's triage policies (none or one)",
    responses=examples(zh_en=("One policy", {"items": [SUMMARY_EXAMPLE], "total": 1, "limit": 50, "offset": 0, "next_offset": None})),
)  # fmt: skip
def list_all(principal: ReaderPrincipal, session: SessionDep) -> dict[str, Any]:
    row = find_policy(session, principal.tenant_id)
    items = [PolicySummary.of(row)] if row is not None else []
    return {"items": items, "total": len(items), "limit": 50, "offset": 0, "next_offset": None}


@router.get(
    "/triage-policies/current",
    response_model=CurrentPolicyOut,
    summary="The policy that triages this tenant's records now (its own, else the default)",
)
def current(principal: ReaderPrincipal, session: SessionDep, format: Format = "json") -> Any:
    row = find_policy(session, principal.tenant_id)
    if row is None:
        policy, source, version = default_policy(), "default", None
    else:
        version = get_version(session, row, row.current_version)
        policy, source = version_policy(version), "tenant"
    if format == "yaml":
        text = version.yaml if version is not None else dump_policy(policy)
        return yaml_response(text, f"{policy.id}.v{policy.version}.yaml")
    return CurrentPolicyOut(
        source=source, ref=policy.ref, id=row.id if row is not None else None,
        current_version=policy.version, content_hash=policy.content_hash(),
        policy=policy_to_dict(policy),
    )  # fmt: skip


@router.get(
    "/triage-policies/{policy_id}",
    response_model=PolicyOut,
    summary="The policy's current version (JSON, or YAML with ?format=yaml)",
    responses={**examples(zh_en=("A policy", POLICY_EXAMPLE)), **_NOT_FOUND},
)  # fmt: skip
def read(policy_id: str, principal: ReaderPrincipal, session: SessionDep, format: Format = "json") -> Any:
    """`policy_id` is the server id (`tpol_…`) or the policy's key (its YAML `id`)."""
    return ROUTES.read(session, principal, policy_id, None, format)


@router.put(
    "/triage-policies/{policy_id}",
    response_model=PolicySaved,
    summary="Save a new version from a full YAML document",
    responses={**examples(zh_en=("Version 2", SAVED_EXAMPLE)), **_INVALID, **_NOT_FOUND,
               409: {"description": "Another request saved a version first (or If-Match is stale)"}},
)  # fmt: skip
def update(
    policy_id: str,
    principal: AdminPrincipal,
    session: SessionDep,
    upload: UploadDep,
    if_match: Annotated[str | None, Header(description='The version you edited, e.g. "3".')] = None,
) -> dict[str, Any]:
    """The body is the whole policy (YAML, or JSON `{"yaml": "…", "message": "…"}`); its `id` must
    be the policy's key. The server sets `version` to current + 1; an upload equal to the current
    version saves nothing (`created: false`). Needs `admin`."""
    return ROUTES.update(session, principal, policy_id, upload, if_match=if_match)


@router.get(
    "/triage-policies/{policy_id}/versions",
    response_model=list[PolicyVersionOut],
    summary="Every version of the policy, newest first",
    responses=_NOT_FOUND,
)
def versions(policy_id: str, principal: ReaderPrincipal, session: SessionDep) -> Any:
    return ROUTES.versions(session, principal, policy_id)


@router.get(
    "/triage-policies/{policy_id}/versions/{version}",
    response_model=PolicyOut,
    summary="One version (JSON, or its YAML with ?format=yaml)",
    responses={**examples(zh_en=("Version 2", POLICY_EXAMPLE)), **_NOT_FOUND},
)  # fmt: skip
def read_version(
    policy_id: str, version: int, principal: ReaderPrincipal, session: SessionDep,
    format: Format = "json",
) -> Any:  # fmt: skip
    """The YAML export validates with `models.triage.load_policy` and re-imports unchanged."""
    return ROUTES.read(session, principal, policy_id, version, format)


@router.get(
    "/triage-policies/{policy_id}/diff",
    response_model=PolicyDiffOut,
    response_model_by_alias=True,
    summary="What changed between two versions",
    responses={**examples(zh_en=("A stricter safety rule", DIFF_EXAMPLE)), **_NOT_FOUND},
)  # fmt: skip
def diff(
    policy_id: str,
    principal: ReaderPrincipal,
    session: SessionDep,
    from_: FromVersion = None,
    to: ToVersion = None,
) -> Any:
    """Thresholds, weights, SLA hours, cues added and removed, routing rules: one change per path."""
    return ROUTES.diff(session, principal, policy_id, from_, to)
