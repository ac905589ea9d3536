"""Request and response schemas (with bilingual examples) of the triage policy routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from models.triage import TriagePolicy, policy_to_dict
from service.routes.taxonomies_schemas import ProblemOut
from service.storage.models import TenantTriagePolicy, TriagePolicyVersion


def yaml_url(row: TenantTriagePolicy, version: int) -> str:
    return f"/v1/triage-policies/{row.id}/versions/{version}?format=yaml"


class PolicyCreate(BaseModel):
    """A JSON body: the YAML in ``yaml``, or ``"from": "default"`` for a copy of the default policy,
    optionally under a new ``id``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    yaml: str | None = Field(None, description="The whole triage policy as YAML text.")
    from_: Literal["default"] | None = Field(
        None, alias="from", description="`default`: start from a copy of the default policy."
    )
    id: str | None = Field(None, description="With `from`: the copy's id, e.g. `acme-triage`.")
    message: str | None = Field(None, max_length=2000, description="What this version changes.")


class PolicyVersionOut(BaseModel):
    """One immutable version of a tenant's triage policy."""

    version: int = Field(description="1, 2, 3…; the YAML's `version` field is set to it.")
    ref: str = Field(description="`id@version`, as in each triage result's `policy` field.")
    content_hash: str = Field(description="SHA-256 of the rules (all but id, version, names).")
    created_at: datetime
    created_by: str | None = Field(None, description="The API key id that saved it.")
    message: str | None = None
    yaml_url: str = Field(description="This version as YAML (`text/yaml`).")

    @classmethod
    def of(cls, row: TenantTriagePolicy, v: TriagePolicyVersion) -> PolicyVersionOut:
        return cls(
            version=v.version, ref=f"{row.key}@{v.version}", content_hash=v.content_hash,
            created_at=v.created_at, created_by=v.created_by, message=v.message,
            yaml_url=yaml_url(row, v.version),
        )  # fmt: skip


class PolicySummary(BaseModel):
    """A tenant's triage policy: server id, key (the YAML `id`), name and current version."""

    id: str = Field(description="Server id (`tpol_…`); the key works in URLs too.")
    key: str = Field(description="The policy's own id (its YAML `id` field).")
    name: str
    current_version: int
    created_at: datetime
    updated_at: datetime
    yaml_url: str = Field(description="The current version as YAML.")

    @classmethod
    def of(cls, row: TenantTriagePolicy) -> PolicySummary:
        return cls(
            id=row.id, key=row.key, name=row.name, current_version=row.current_version,
            created_at=row.created_at, updated_at=row.updated_at,
            yaml_url=yaml_url(row, row.current_version),
        )  # fmt: skip


class PolicyOut(PolicySummary):
    """A triage policy with one version of it in full."""

    version: PolicyVersionOut
    policy: dict[str, Any] = Field(description="The version's document, as in its YAML.")

    @classmethod
    def build(
        cls, row: TenantTriagePolicy, v: TriagePolicyVersion, policy: TriagePolicy, **extra: Any
    ) -> PolicyOut:
        return cls(
            **PolicySummary.of(row).model_dump(), version=PolicyVersionOut.of(row, v),
            policy=policy_to_dict(policy), **extra,
        )  # fmt: skip


class PolicySaved(PolicyOut):
    """The result of a create or update."""

    created: bool = Field(description="False when the upload equalled the current version.")
    warnings: list[ProblemOut] = Field(description="Findings that do not stop saving.")


class CurrentPolicyOut(BaseModel):
    """The policy that triages this tenant's records now."""

    source: Literal["tenant", "default"] = Field(
        description="`tenant`: the tenant's own policy; `default`: the shipped default."
    )
    ref: str = Field(description="`id@version`, as in each triage result's `policy` field.")
    id: str | None = Field(None, description="The tenant policy's server id (null for default).")
    current_version: int
    content_hash: str
    policy: dict[str, Any]


class ChangeOut(BaseModel):
    path: str = Field(description="Where in the policy, e.g. `thresholds.P1`, `cues.safety.zh`.")
    change: Literal["added", "removed", "changed"]
    old: Any = None
    new: Any = None
    added: list[Any] | None = Field(None, description="For lists: the items added.")
    removed: list[Any] | None = Field(None, description="For lists: the items removed.")


class PolicyDiffOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from", description="`id@version` of the old version.")
    to: str
    same_rules: bool = Field(description="True when only id, name or description changed.")
    summary: list[str]
    changes: list[ChangeOut]


# ---- examples ------------------------------------------------------------------------------------

_T = "2024-05-02T08:00:00Z"
_ID = "tpol_7f3k9q2m4x8c1v6b5n0z"
SUMMARY_EXAMPLE = {
    "id": _ID, "key": "acme-triage", "name": "极客外卖 triage / Acme triage", "current_version": 2,
    "created_at": _T, "updated_at": "2024-06-10T09:30:00Z",
    "yaml_url": f"/v1/triage-policies/{_ID}/versions/2?format=yaml",
}  # fmt: skip
_VERSION = {
    "version": 2, "ref": "acme-triage@2", "content_hash": "4b7e1a…",
    "created_at": "2024-06-10T09:30:00Z", "created_by": "key_2h8d6s4f0g1j3k5l7m9n",
    "message": "食品安全一律P1 / food safety is always P1",
    "yaml_url": f"/v1/triage-policies/{_ID}/versions/2?format=yaml",
}  # fmt: skip
POLICY_EXAMPLE = {
    **SUMMARY_EXAMPLE, "version": _VERSION,
    "policy": {"id": "acme-triage", "version": 2, "name": SUMMARY_EXAMPLE["name"],
               "thresholds": {"P1": 5.0, "P2": 3.0, "P3": 1.5},
               "sla_hours": {"P1": 2, "P2": 12, "P3": 48, "P4": 168},
               "cues": {"safety": {"label": "safety or health risk", "weight": 4.5, "floor": "P1",
                                   "zh": ["过敏", "拉肚子"], "en": ["allergic reaction"]}},
               "negation": "…"},
}  # fmt: skip
SAVED_EXAMPLE = {**POLICY_EXAMPLE, "created": True, "warnings": []}
INVALID_EXAMPLE = {
    "error": {
        "code": "invalid_policy",
        "message": "triage policy is invalid, 2 problems: line 6, thresholds.P2: threshold P2 "
        "(7.0) must be below P1 (6.0); line 9, sla_hours.P4: missing required field 'P4'",
        "details": [
            {"path": "thresholds.P2", "line": 6, "level": "error",
             "message": "threshold P2 (7.0) must be below P1 (6.0)"},
            {"path": "sla_hours.P4", "line": 9, "level": "error",
             "message": "missing required field 'P4'"},
        ],
    }
}  # fmt: skip
DIFF_EXAMPLE = {
    "from": "acme-triage@1", "to": "acme-triage@2", "same_rules": False,
    "summary": ["thresholds.P1: 6.0 -> 5.0", "cues.safety.floor: P2 -> P1", "cues.safety.zh: +吃坏肚子"],
    "changes": [
        {"path": "thresholds.P1", "change": "changed", "old": 6.0, "new": 5.0},
        {"path": "cues.safety.floor", "change": "changed", "old": "P2", "new": "P1"},
        {"path": "cues.safety.zh", "change": "changed", "old": ["过敏"], "new": ["过敏", "吃坏肚子"],
         "added": ["吃坏肚子"], "removed": []},
    ],
}  # fmt: skip
