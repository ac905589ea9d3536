"""Request and response schemas (with bilingual examples) of the label and review-queue routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from service.labels import LabelInput
from service.storage.models import AnalystLabel


class LabelIn(BaseModel):
    """One label: of a stored record (`dataset_id` + `record_id`) or of free `text`."""

    model_config = ConfigDict(extra="forbid")

    dataset_id: str | None = Field(None, max_length=40)
    record_id: str | None = Field(None, max_length=256)
    id: str | None = Field(
        None, max_length=256, description="Free text only: the example's id (default: from the text)."
    )
    text: str | None = Field(None, max_length=20_000, description="Free text (1 to 10,000 characters).")
    lang: str | None = Field(None, description="`zh` or `en` (free text; detected when absent).")
    sentiment: str | None = Field(None, description="`negative`, `neutral` or `positive`.")
    topics: dict[str, str] | None = Field(
        None,
        description="Leaf topic id → polarity (`negative`/`neutral`/`positive`); `{}`: no topic "
        "applies; absent: topics not labelled.",
    )
    touchpoints: list[str] | None = Field(
        None, description="Touchpoint ids; `[]`: none applies; absent: not labelled."
    )
    taxonomy: str | None = Field(None, max_length=64, description="Overrides the request's.")
    taxonomy_version: int | None = Field(None, ge=1, description="Overrides the request's.")
    note: str | None = Field(None, max_length=2000)

    def to_input(self, index: int, defaults: LabelsCreate) -> LabelInput:
        return LabelInput(
            **self.model_dump(exclude={"taxonomy", "taxonomy_version"}),
            taxonomy=self.taxonomy or defaults.taxonomy,
            taxonomy_version=self.taxonomy_version or defaults.taxonomy_version,
            index=index,
        )


class LabelsCreate(BaseModel):
    """Labels to add (or corrections: a new label of a record supersedes its current one)."""

    items: list[LabelIn] = Field(min_length=1, max_length=1000)
    taxonomy: str | None = Field(
        None, max_length=64,
        description="Key or `tax_…` id (default: the tenant's most recently changed taxonomy, "
        "or `cem-default`).",
    )  # fmt: skip
    taxonomy_version: int | None = Field(None, ge=1, description="Default: the current version.")
    map_forward: bool = Field(
        False,
        description="Map ids of an older taxonomy version to the current one (merged nodes follow "
        "`replaced_by`) instead of rejecting such labels.",
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {"dataset_id": "ds_4k2m9x", "record_id": "r17", "sentiment": "negative",
                         "topics": {"delivery.timeliness": "negative"}, "touchpoints": ["fulfil"]},
                        {"text": "Lovely staff but the room smelled of smoke", "lang": "en",
                         "sentiment": "negative",
                         "topics": {"service.attitude": "positive",
                                    "environment.cleanliness": "negative"},
                         "touchpoints": ["use"]},
                    ]
                }
            ]
        },
    )  # fmt: skip


class Author(BaseModel):
    id: str = Field(description="The API key id (or `cli`).")
    name: str


class TaxonomyRef(BaseModel):
    key: str
    version: int


class LabelOut(BaseModel):
    """One revision of a label, with who, when and which taxonomy version."""

    id: str
    dataset_id: str | None
    record_id: str | None
    example_id: str | None = Field(description="Free-text labels: the example's id.")
    text: str
    lang: str | None
    sentiment: str | None
    topics: dict[str, str] | None
    touchpoints: list[str] | None
    taxonomy: TaxonomyRef
    revision: int = Field(description="1 for the first label of the record, +1 per correction.")
    current: bool = Field(description="False once a correction superseded it.")
    superseded_by: str | None
    created_at: datetime
    created_by: Author
    source: str = Field(description="`api`, `import` or `cli`.")
    note: str | None

    @classmethod
    def of(cls, row: AnalystLabel) -> LabelOut:
        return cls(
            id=row.id, dataset_id=row.dataset_id, record_id=row.record_id,
            example_id=row.subject[3:] if row.subject.startswith("ex:") else None,
            text=row.text, lang=row.lang, sentiment=row.sentiment, topics=row.topics,
            touchpoints=row.touchpoints,
            taxonomy=TaxonomyRef(key=row.taxonomy_key, version=row.taxonomy_version),
            revision=row.revision, current=row.superseded_by is None,
            superseded_by=row.superseded_by, created_at=row.created_at,
            created_by=Author(id=row.author_id, name=row.author_name), source=row.source,
            note=row.note,
        )  # fmt: skip


class LabelHistory(BaseModel):
    """Every revision of one record's (or example's) label, newest first."""

    items: list[LabelOut]


class AcceptedLabel(BaseModel):
    line: int | None = None
    index: int | None = None
    id: str
    ref: str | None
    revision: int
    supersedes: str | None


class RejectedLabel(BaseModel):
    line: int | None = None
    index: int | None = None
    ref: str | None
    reason: str


class LabelSummary(BaseModel):
    """What was stored and what was not (with line or index and the reason)."""

    accepted: list[AcceptedLabel]
    rejected: list[RejectedLabel]
    counts: dict[str, int]
    ignored_columns: list[str] = Field(default_factory=list)


SUMMARY_EXAMPLE: dict[str, Any] = {
    "accepted": [{"line": 2, "id": "lbl_8h2k…", "ref": "ds_4k2m9x/r17", "revision": 2,
                  "supersedes": "lbl_3m9q…"}],
    "rejected": [{"line": 3, "ref": "r18", "reason": "unknown topic id 'delivery.speed': it is not "
                  "a leaf of taxonomy cem-default version 1 (…)."}],
    "counts": {"accepted": 1, "rejected": 1},
    "ignored_columns": [],
}  # fmt: skip


class ReviewReason(BaseModel):
    kind: str = Field(description="`uncertain`, `disagreement`, `rare_node` or `emerging_cluster`.")
    score: float
    detail: str


class ReviewItem(BaseModel):
    dataset_id: str
    record_id: str
    text: str
    lang: str | None
    score: float = Field(description="Weighted sum of the reasons' scores (see `weights`).")
    reasons: list[ReviewReason]
    prediction: dict[str, Any] = Field(description="The model's sentiment, topics, touchpoints.")
    prior_topics: list[dict[str, Any]] | None = Field(
        description="The zero-shot prior's top topics (cosine), when the prior is available."
    )


class ReviewQueue(BaseModel):
    items: list[ReviewItem]
    candidates: int = Field(description="Unlabelled records scored.")
    labelled_excluded: int = Field(description="Records left out because they have a label.")
    pool_truncated: bool
    prior: str = Field(description="Where the zero-shot prior came from, or why it is unavailable.")
    weights: dict[str, float]


REVIEW_EXAMPLE: dict[str, Any] = {
    "items": [
        {"dataset_id": "ds_4k2m9x", "record_id": "r42", "text": "快递太慢了，等了五天才到",
         "lang": "zh", "score": 0.52,
         "reasons": [{"kind": "disagreement", "score": 1.0,
                      "detail": "the zero-shot prior points to delivery.timeliness, the model to "
                      "delivery.condition"}],
         "prediction": {"sentiment": {"label": "negative", "confidence": 0.94},
                        "topics": [{"id": "delivery.condition", "polarity": "negative",
                                    "confidence": 0.66}], "touchpoints": ["fulfil"]},
         "prior_topics": [{"id": "delivery.timeliness", "score": 0.943}]},
        {"dataset_id": "ds_4k2m9x", "record_id": "r7",
         "text": "Lovely staff but the room smelled of smoke", "lang": "en", "score": 0.41,
         "reasons": [{"kind": "uncertain", "score": 0.8,
                      "detail": "topic environment.cleanliness with confidence 0.56"}],
         "prediction": {"sentiment": {"label": "negative", "confidence": 0.61}, "topics": [],
                        "touchpoints": ["use"]},
         "prior_topics": None},
    ],
    "candidates": 1180, "labelled_excluded": 40, "pool_truncated": False,
    "prior": "zero-shot prior from the base encoder",
    "weights": {"uncertain": 0.4, "disagreement": 0.3, "rare_node": 0.15, "emerging_cluster": 0.15},
}  # fmt: skip
