"""Triage policies per tenant: create, read, version, export as YAML, diff; the policy in force.

Scopes: `analyze` or `triage` to read; `admin` to create and change. Another tenant's policy is a
404. A tenant has at most one policy; until it creates one, the default policy triages its records
(`GET /v1/triage-policies/current` says which). Every change makes a new, immutable version whose
YAML `version` the server sets (1, 2, 3…); classification results, imported records and cases name
the version that triaged them (`policy: "acme-triage@2"`). Two PUTs from the same version: one
saves, the other is a 409 (send `If-Match: "<version>"` to make the base explicit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response, Security
from pydantic import ValidationError
from sqlalchemy.orm import Session

from models.triage import default_policy, dump_policy, policy_to_dict
from nlp.errors import InvalidInputError, NotFoundError
from service.auth import get_principal
from service.deps import AdminPrincipal, SessionDep
from service.routes.datasets_schemas import Page, examples
from service.routes.triage_policies_schemas import (
    DIFF_EXAMPLE,
    INVALID_EXAMPLE,
    POLICY_EXAMPLE,
    SAVED_EXAMPLE,
    SUMMARY_EXAMPLE,
    YAML_TYPES,
    CurrentPolicyOut,
    PolicyCreate,
    PolicyDiffOut,
    PolicyOut,
    PolicySaved,
    PolicySummary,
    PolicyVersionOut,
)
from service.storage.keys import Principal, Scope
from service.storage.models import TenantTriagePolicy, TriagePolicyVersion
from service.triage_policies import (
    MAX_POLICY_BYTES,
    Saved,
    add_version,
    create_policy,
    diff_versions,
    find_policy,
    get_policy,
    get_version,
    list_versions,
    version_policy,
)

router = APIRouter(prefix="/v1", tags=["triage policies"])


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
Format = Annotated[
    Literal["json", "yaml"], Query(description="`yaml`: the version's YAML as `text/yaml`.")
]
Message = Annotated[
    str | None, Query(max_length=2000, description="With a YAML body: what this version changes.")
]
_NOT_FOUND = {404: {"description": "No such triage policy (or version) for this API key's tenant"}}
_INVALID = {
    422: {
        "description": "The YAML is invalid: `details` lists every problem with its path and line",
        "content": {"application/json": {"example": INVALID_EXAMPLE}},
    }
}


@dataclass(frozen=True, kw_only=True)
class Upload:
    yaml: str | None
    from_default: bool = False
    key: str | None = None
    message: str | None = None


async def read_upload(request: Request, message: Message = None) -> Upload:
    """The body as YAML text (a YAML content type) or JSON ``{"yaml": …}`` / ``{"from": …}``."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if len(body) > MAX_POLICY_BYTES:
        raise HTTPException(413, f"A triage policy is at most {MAX_POLICY_BYTES:,} bytes of YAML.")
    if media in YAML_TYPES:
        return Upload(yaml=_text(body), message=message)
    if media == "application/json" or media.endswith("+json"):
        try:
            doc = PolicyCreate.model_validate_json(body)
        except ValidationError as exc:
            details = [
                {"location": ".".join(map(str, e["loc"])) or "body", "message": e["msg"]}
                for e in exc.errors()
            ]
            raise InvalidInputError(
                'The JSON body is not valid: expected {"yaml": "<the policy as YAML>"} or '
                '{"from": "default", "id": "acme-triage"}.',
                details=details,
            ) from None
        if (doc.yaml is None) == (doc.from_ is None):
            raise InvalidInputError('Give exactly one of "yaml" and "from" in the JSON body.')
        if doc.id is not None and doc.from_ is None:
            raise InvalidInputError('"id" goes with "from"; with "yaml" the id is the YAML\'s own.')
        return Upload(yaml=doc.yaml, from_default=doc.from_ == "default", key=doc.id,
                      message=doc.message or message)  # fmt: skip
    raise HTTPException(
        415,
        "Send the policy as YAML (Content-Type: application/yaml) or as JSON "
        f'{{"yaml": …}} (Content-Type: application/json); got {media or "no Content-Type"!r}.',
    )


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"The policy is not UTF-8 text (byte {exc.start}); save the YAML as UTF-8."
        ) from None


UploadDep = Annotated[Upload, Depends(read_upload)]


def _policy(session: Session, principal: Principal, policy_id: str) -> TenantTriagePolicy:
    if not (0 < len(policy_id) <= 80 and policy_id.isprintable()):
        raise NotFoundError(f"No triage policy {policy_id[:80]!r} for this API key's tenant.")
    return get_policy(session, principal.tenant_id, policy_id)


def _yaml(text: str, filename: str) -> Response:
    return Response(text, media_type="text/yaml; charset=utf-8",
                    headers={"Content-Disposition": f'inline; filename="{filename}"'})  # fmt: skip


def _saved(saved: Saved) -> dict[str, Any]:
    out = PolicyOut.build(saved.policy, saved.version, version_policy(saved.version))
    return {**out.model_dump(), "created": saved.created,
            "warnings": [p.as_dict() for p in saved.warnings]}  # fmt: skip


def _if_match(value: str | None) -> int | None:
    if value is None:
        return None
    raw = value.strip().removeprefix("W/").strip('"')
    if not raw.isdigit():
        raise InvalidInputError(f'If-Match is the version you edited, e.g. "3"; got {value[:40]!r}.')
    return int(raw)


def _body_doc(json_examples: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {
        "application/yaml": {"schema": {"type": "string"}},
        "application/json": {"schema": PolicyCreate.model_json_schema(by_alias=True),
                             "examples": json_examples},
    }}}  # fmt: skip


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
    common = {"created_by": principal.key_id, "message": upload.message}
    source = None if upload.from_default else (upload.yaml or "")
    saved = create_policy(session, principal.tenant_id, source, key=upload.key, **common)
    body = _saved(saved)
    session.commit()
    response.headers["Location"] = f"/v1/triage-policies/{saved.policy.id}"
    return body


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
        return _yaml(text, f"{policy.id}.v{policy.version}.yaml")
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
    row = _policy(session, principal, policy_id)
    return _one(row, get_version(session, row, row.current_version), format)


def _one(row: TenantTriagePolicy, version: TriagePolicyVersion, format: str) -> Any:
    if format == "yaml":
        return _yaml(version.yaml, f"{row.key}.v{version.version}.yaml")
    return PolicyOut.build(row, version, version_policy(version))


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
    if upload.from_default or upload.yaml is None:
        raise InvalidInputError('PUT takes the whole policy: a YAML body or JSON {"yaml": …}.')
    row = _policy(session, principal, policy_id)
    saved = add_version(session, row, upload.yaml, base_version=_if_match(if_match),
                        created_by=principal.key_id, message=upload.message)  # fmt: skip
    body = _saved(saved)
    session.commit()
    return body


@router.get(
    "/triage-policies/{policy_id}/versions",
    response_model=list[PolicyVersionOut],
    summary="Every version of the policy, newest first",
    responses=_NOT_FOUND,
)
def versions(policy_id: str, principal: ReaderPrincipal, session: SessionDep) -> Any:
    row = _policy(session, principal, policy_id)
    return [PolicyVersionOut.of(row, v) for v in list_versions(session, row)]


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
    row = _policy(session, principal, policy_id)
    return _one(row, get_version(session, row, version), format)


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
    from_: Annotated[int | None, Query(alias="from", ge=1, description="Old version (default: to - 1).")] = None,
    to: Annotated[int | None, Query(ge=1, description="New version (default: the current one).")] = None,
) -> Any:  # fmt: skip
    """Thresholds, weights, SLA hours, cues added and removed, routing rules: one change per path."""
    row = _policy(session, principal, policy_id)
    new = to if to is not None else row.current_version
    old = from_ if from_ is not None else max(new - 1, 1)
    return diff_versions(session, row, old, new)
