"""Request and response schemas (with bilingual examples) of the taxonomy routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from models.taxonomy import Taxonomy, taxonomy_to_dict
from service.storage.models import TaxonomyVersion, TenantTaxonomy


def yaml_url(row: TenantTaxonomy, version: int) -> str:
    return f"/v1/taxonomies/{row.id}/versions/{version}?format=yaml"


class Names(BaseModel):
    zh: str
    en: str


class TaxonomyCreate(BaseModel):
    """A JSON body: a YAML document in ``yaml``, or ``"from": "default"`` for a copy of the shipped
    default taxonomy (``cem-default``), optionally under a new ``id``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    yaml: str | None = Field(None, description="The whole taxonomy as YAML text.")
    from_: Literal["default"] | None = Field(
        None, alias="from", description="`default`: start from a copy of the shipped taxonomy."
    )
    id: str | None = Field(
        None,
        description="With `from`: the copy's id (its key), e.g. `acme-cem`; default `cem-default`.",
    )
    message: str | None = Field(None, max_length=2000, description="What this version changes.")


class VersionOut(BaseModel):
    """One immutable version of a taxonomy."""

    version: int = Field(description="1, 2, 3…; the YAML's `version` field is set to it.")
    content_hash: str = Field(description="SHA-256 of the nodes (ids, texts, seeds, status).")
    created_at: datetime
    created_by: str | None = Field(None, description="The API key id (or `cli`) that saved it.")
    message: str | None = None
    yaml_url: str = Field(description="This version as YAML (`text/yaml`).")

    @classmethod
    def of(cls, row: TenantTaxonomy, v: TaxonomyVersion) -> VersionOut:
        return cls(
            version=v.version,
            content_hash=v.content_hash,
            created_at=v.created_at,
            created_by=v.created_by,
            message=v.message,
            yaml_url=yaml_url(row, v.version),
        )


class TaxonomySummary(BaseModel):
    """A tenant's taxonomy: server id, key (the YAML `id`), names and current version."""

    id: str = Field(description="Server id; the key works in URLs too.")
    key: str = Field(description="The taxonomy's own id (the YAML `id` field), unique per tenant.")
    name: Names
    current_version: int
    created_at: datetime
    updated_at: datetime
    yaml_url: str = Field(description="The current version as YAML.")

    @classmethod
    def of(cls, row: TenantTaxonomy) -> TaxonomySummary:
        return cls(
            id=row.id,
            key=row.key,
            name=Names(zh=row.name_zh, en=row.name_en),
            current_version=row.current_version,
            created_at=row.created_at,
            updated_at=row.updated_at,
            yaml_url=yaml_url(row, row.current_version),
        )


class Counts(BaseModel):
    touchpoints: int = Field(description="Active touchpoints.")
    topics: int = Field(description="Active topics, level 1 and level 2.")
    leaves: int = Field(description="Active topics without active children: what models predict.")
    retired: int = Field(description="Retired topics and touchpoints kept for their history.")


class ProblemOut(BaseModel):
    path: str = Field(description="Where in the document, e.g. `topics[3].seeds.zh`.")
    line: int | None
    level: Literal["error", "warning"]
    message: str


class TaxonomyOut(TaxonomySummary):
    """A taxonomy with one version of it in full (nodes in file layout)."""

    version: VersionOut
    counts: Counts
    taxonomy: dict[str, Any] = Field(description="The version's document, as in its YAML.")

    @classmethod
    def build(cls, row: TenantTaxonomy, v: TaxonomyVersion, taxonomy: Taxonomy, **extra: Any):
        retired = sum(1 for n in taxonomy.iter_nodes() if not n.active)
        return cls(
            **TaxonomySummary.of(row).model_dump(),
            version=VersionOut.of(row, v),
            counts=Counts(
                touchpoints=len(taxonomy.touchpoint_ids),
                topics=len(taxonomy.topic_ids),
                leaves=len(taxonomy.leaf_ids),
                retired=retired,
            ),
            taxonomy=taxonomy_to_dict(taxonomy),
            **extra,
        )


class TaxonomySaved(TaxonomyOut):
    """The result of a create or update."""

    created: bool = Field(description="False when the upload equalled the current version.")
    warnings: list[ProblemOut] = Field(
        description="Findings that do not stop saving (few seeds, repeated seeds)."
    )


class ChangeOut(BaseModel):
    change: str = Field(description="added, removed, retired, restored, merged, moved, renamed…")
    kind: Literal["topic", "touchpoint"]
    id: str
    target: str | None = Field(None, description="Where a merged or moved node went.")
    detail: str = ""


class Ref(BaseModel):
    id: str
    version: int


class LabelMapping(BaseModel):
    topics: dict[str, str | None]
    touchpoints: dict[str, str | None]


class DiffOut(BaseModel):
    """What changed between two versions, and where old labels go."""

    model_config = ConfigDict(populate_by_name=True)

    from_: Ref = Field(alias="from")
    to: Ref
    summary: list[str] = Field(description="A header line, then one line per change.")
    changes: list[ChangeOut]
    label_mapping: LabelMapping = Field(
        description="Each old id -> the id its labels count as in the new version "
        "(itself, a merge or move target), or null when retired without replacement or deleted."
    )


# ---- examples ------------------------------------------------------------------------------------

EXAMPLE_YAML = """\
id: acme-cem
version: 1
name: {zh: 极客外卖客户体验, en: Acme delivery CEM}
touchpoints:
  - id: fulfil
    name: {zh: 交付/履约, en: Fulfil}
    description: {zh: 配送和取货的环节, en: Getting the order to the customer}
    seeds: {zh: [外卖送了一个多小时, 骑手很准时], en: [the rider was late, arrived right on time]}
topics:
  - id: delivery
    name: {zh: 物流/交付, en: Delivery}
    description: {zh: 配送速度和配送体验, en: Speed and experience of delivery}
  - id: delivery.timeliness
    name: {zh: 时效, en: Timeliness}
    description: {zh: 送达是否及时, en: Whether the order arrived on time}
    seeds: {zh: [快递太慢了, 等了一个小时还没到], en: [delivery took forever, arrived two days late]}
    touchpoints: [fulfil]
    severity: medium
"""

_T = "2024-05-02T08:00:00Z"
_ID = "tax_7f3k9q2m4x8c1v6b5n0z"
SUMMARY_EXAMPLE = _SUMMARY = {
    "id": _ID, "key": "acme-cem", "name": {"zh": "极客外卖客户体验", "en": "Acme delivery CEM"},
    "current_version": 2, "created_at": _T, "updated_at": "2024-06-10T09:30:00Z",
    "yaml_url": f"/v1/taxonomies/{_ID}/versions/2?format=yaml",
}  # fmt: skip
_VERSION = {
    "version": 2, "content_hash": "9c1e4f…", "created_at": "2024-06-10T09:30:00Z",
    "created_by": "key_2h8d6s4f0g1j3k5l7m9n", "message": "合并“时效”和“配送速度” / merge speed into timeliness",
    "yaml_url": f"/v1/taxonomies/{_ID}/versions/2?format=yaml",
}  # fmt: skip
_NODE = {
    "id": "delivery.timeliness", "name": {"zh": "时效", "en": "Timeliness"},
    "description": {"zh": "送达是否及时", "en": "Whether the order arrived on time"},
    "seeds": {"zh": ["快递太慢了", "等了一个小时还没到"], "en": ["delivery took forever", "arrived two days late"]},
    "touchpoints": ["fulfil"], "severity": "medium",
}  # fmt: skip
TAXONOMY_EXAMPLE = {
    **_SUMMARY, "version": _VERSION,
    "counts": {"touchpoints": 1, "topics": 2, "leaves": 1, "retired": 1},
    "taxonomy": {"id": "acme-cem", "version": 2, "name": _SUMMARY["name"], "touchpoints": [],
                 "topics": [_NODE]},
}  # fmt: skip
SAVED_EXAMPLE = {
    **TAXONOMY_EXAMPLE, "created": True,
    "warnings": [{"path": "topics[1].seeds.en", "line": 18, "level": "warning",
                  "message": "only 2 seeds in en; 5 or more are recommended"}],
}  # fmt: skip
INVALID_EXAMPLE = {
    "error": {
        "code": "invalid_taxonomy",
        "message": "taxonomy is invalid, 2 problems: line 14, topics[1].name: missing 'en'; ...",
        "details": [
            {"path": "topics[1].name", "line": 14, "level": "error", "message": "missing 'en'"},
            {"path": "topics[1].touchpoints[0]", "line": 17, "level": "error",
             "message": "unknown touchpoint 'checkout'"},
        ],
    }
}  # fmt: skip
DIFF_EXAMPLE = {
    "from": {"id": "acme-cem", "version": 1}, "to": {"id": "acme-cem", "version": 2},
    "summary": [
        "acme-cem v1 -> acme-cem v2: 1 merged, 1 renamed",
        "> topic delivery.speed merged into delivery.timeliness",
        "~ topic delivery.timeliness renamed: zh '时效' -> '送达时效'",
    ],
    "changes": [
        {"change": "merged", "kind": "topic", "id": "delivery.speed", "target": "delivery.timeliness", "detail": ""},
        {"change": "renamed", "kind": "topic", "id": "delivery.timeliness", "target": None,
         "detail": "zh '时效' -> '送达时效'"},
    ],
    "label_mapping": {
        "topics": {"delivery": "delivery", "delivery.speed": "delivery.timeliness",
                   "delivery.timeliness": "delivery.timeliness"},
        "touchpoints": {"fulfil": "fulfil"},
    },
}  # fmt: skip
