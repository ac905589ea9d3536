"""The triage policy: pydantic v2 models for one tenant's priority rules.

A policy holds everything the triage engine weighs (see ``models/triage/README.md`` for the YAML
format): weights per signal kind, score thresholds for P1..P3 (below P3 is P4), SLA hours per
priority, cue categories with Chinese and English cue lists, negation rules, topic severity
overrides, customer-value and channel rules. ``version`` is a positive integer bumped on every
change; :meth:`TriagePolicy.content_hash` identifies the rules themselves.

Constructing a :class:`TriagePolicy` runs every check of :func:`models.triage.validate_policy`
and raises :class:`nlp.errors.PolicyError` listing all problems with their paths.
"""

from __future__ import annotations

import hashlib
import json
import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from models.taxonomy import Severity
from models.triage.routing import RoutingRules

__all__ = [
    "PRIORITIES",
    "RESERVED_KINDS",
    "ChannelRules",
    "CueCategory",
    "CustomerValue",
    "LtvLevel",
    "Negation",
    "NegationRules",
    "Priority",
    "SentimentRules",
    "SlaHours",
    "Thresholds",
    "TopicRules",
    "TriagePolicy",
    "Weights",
]

POLICY_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
CATEGORY_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class Priority(StrEnum):
    """P1 is the most urgent."""

    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"

    @property
    def rank(self) -> int:
        """1 for P1 ... 4 for P4 (smaller is more urgent)."""
        return int(self.value[1])


PRIORITIES: tuple[Priority, ...] = tuple(Priority)

RESERVED_KINDS = frozenset(
    {"sentiment", "topic", "corroboration", "repeat_contact", "customer_value", "channel"}
)
"""Signal kinds the engine emits itself; cue categories cannot use these names."""

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Weight = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Unit = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Signed = Annotated[float, Field(ge=-1, le=1, allow_inf_nan=False)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _phrase_list(value: Any) -> Any:
    """None is empty; numbers read by YAML (12315) become text; booleans are refused, since YAML
    reads an unquoted no, yes, on, off as one."""
    if value is None:
        return ()
    if isinstance(value, list | tuple):
        out = []
        for item in value:
            if isinstance(item, bool):
                raise ValueError(
                    f"{item!r} is a boolean: YAML reads unquoted no, yes, on, off, true and false "
                    'as booleans; quote the word, e.g. "no"'
                )
            out.append(str(item) if isinstance(item, int | float) else item)
        return tuple(out)
    return value


class Thresholds(_Frozen):
    """Lowest total score of each priority; a score below ``P3`` is P4."""

    P1: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    P2: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    P3: Annotated[float, Field(gt=0, allow_inf_nan=False)]

    def priority_for(self, score: float) -> Priority:
        for priority in (Priority.P1, Priority.P2, Priority.P3):
            if score >= getattr(self, priority.value):
                return priority
        return Priority.P4


class SlaHours(_Frozen):
    """Hours to resolve a case of each priority (used by cases for due times and breaches)."""

    P1: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    P2: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    P3: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    P4: Annotated[float, Field(gt=0, allow_inf_nan=False)]

    def for_priority(self, priority: Priority | str) -> float:
        return float(getattr(self, Priority(priority).value))


class Weights(_Frozen):
    """Weights of the signal kinds that are not cue categories (those carry their own)."""

    sentiment: Weight = 3.0
    """Times ``max(0, -sentiment.score)``."""
    topic: Weight = 2.0
    """Times the severity weight (0.25..1) and confidence of the strongest negative topic."""
    corroboration: Weight = 1.0
    """Added to a cue category, times topic confidence, when a related negative topic is found."""
    repeat_contact: Weight = 0.75
    """Per earlier contact about the same issue (up to ``repeat_contacts.max_counted``)."""


class SentimentRules(_Frozen):
    negative_below: Signed = -0.2
    """A score at or below this is named in the reasons."""
    strong_below: Signed = -0.6
    """A score at or below this is called "strong negative sentiment"."""
    positive_above: Signed = 0.3
    """A positive label or a score at or above this marks the record as positive overall: cue
    weights are multiplied by ``positive_damping`` and category floors do not apply."""
    positive_damping: Unit = 0.3


class TopicRules(_Frozen):
    min_confidence: Unit = 0.5
    """Negative topics below this confidence are ignored."""
    severity: dict[str, Severity] = Field(default_factory=dict)
    """Per-topic severity overrides (leaf or level-1 ids); others come from the taxonomy."""


class RepeatRules(_Frozen):
    max_counted: Annotated[int, Field(ge=0, le=100)] = 3
    """Earlier contacts beyond this add nothing more."""


class LtvLevel(_Frozen):
    min: Annotated[float, Field(allow_inf_nan=False)]
    weight: Weight


class CustomerValue(_Frozen):
    """Customer value from record metadata: the larger of the tier weight and the LTV weight."""

    tier_fields: tuple[Text, ...] = ()
    tiers: dict[str, Weight] = Field(default_factory=dict)
    """Tier value (matched case-insensitively) -> weight."""
    ltv_fields: tuple[Text, ...] = ()
    ltv_levels: tuple[LtvLevel, ...] = ()
    """A lifetime value at or above ``min`` adds ``weight`` (the highest level reached counts)."""


class ChannelRules(_Frozen):
    """Weights of channels where a complaint is public or escalated (weibo, twitter...)."""

    fields: tuple[Text, ...] = ()
    weights: dict[str, Weight] = Field(default_factory=dict)


class CueCategory(_Frozen):
    """A category of severity cues (safety, legal...) with its cue lists in both languages.

    Chinese cues match as substrings of the normalised (simplified, half-width) text; English
    cues match whole words, case-insensitively, and the last word of a cue of five letters or
    more also matches its regular inflections (injure: injures, injured, injuring). ``*`` inside a
    cue stands for up to four English words or six Chinese characters ("never * again")."""

    label: Text
    """The reason prefix an agent reads, e.g. "safety or health risk"."""
    weight: Weight
    floor: Priority | None = None
    """At least this priority when a cue of the category is found (not for positive records)."""
    related_topics: tuple[Text, ...] = ()
    """Topic ids (leaf or level 1) that corroborate the cue when predicted negative."""
    zh: tuple[Text, ...] = ()
    en: tuple[Text, ...] = ()
    exclude: tuple[Text, ...] = ()
    """Phrases inside which a cue does not count (多媒体 for 媒体, 曝光补偿 for 曝光); matched like
    cues of their script but without inflections."""

    @field_validator("zh", "en", "related_topics", "exclude", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _phrase_list(value)


class NegationRules(_Frozen):
    """Negation for one language, applied within the cue's clause only.

    ``negators`` before the cue negate it when at most ``window`` characters (zh) or words (en)
    lie between them and no ``breakers`` word does. ``exceptions`` are phrases that look like
    negation but are not (不小心, 没想到, "can't believe") and are ignored. ``after`` (zh) are
    negators that follow the cue and end the clause ("过敏倒是没有"). An English negator
    ``n't`` matches every word ending in n't."""

    negators: tuple[Text, ...]
    exceptions: tuple[Text, ...] = ()
    breakers: tuple[Text, ...] = ()
    after: tuple[Text, ...] = ()
    window: Annotated[int, Field(ge=0, le=40)]

    @field_validator("negators", "exceptions", "breakers", "after", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _phrase_list(value)


class Negation(_Frozen):
    zh: NegationRules
    en: NegationRules


class TriagePolicy(_Frozen):
    """One tenant's triage rules. Immutable; build a changed copy with ``model_validate``."""

    id: Text
    version: Annotated[int, Field(strict=True, ge=1)]
    name: Text
    description: str | None = None
    thresholds: Thresholds
    sla_hours: SlaHours
    weights: Weights = Field(default_factory=Weights)
    issue_threshold: Weight = 0.5
    """Context signals (repeat contacts, customer value, channel) count only when the content
    signals (sentiment, topics, cues) reach this score: a VIP's praise stays P4."""
    sentiment: SentimentRules = Field(default_factory=SentimentRules)
    topics: TopicRules = Field(default_factory=TopicRules)
    repeat_contacts: RepeatRules = Field(default_factory=RepeatRules)
    customer_value: CustomerValue = Field(default_factory=CustomerValue)
    channels: ChannelRules = Field(default_factory=ChannelRules)
    cues: dict[str, CueCategory]
    negation: Negation
    routing: RoutingRules = Field(default_factory=RoutingRules)
    """Team queues for cases (``models.triage.routing``); not used for the priority."""
    requires: dict[Priority, tuple[Text, ...]] = Field(default_factory=dict)
    """Priority -> cue categories: a score reaching that priority counts only when a cue of one
    of them is found, else the record drops a level (``{P1: [safety, legal]}``: anger or churn
    alone stays P2). Category floors still apply afterwards."""

    @field_validator("requires", mode="before")
    @classmethod
    def _requires(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: _phrase_list(v) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _check_rules(self, info: ValidationInfo) -> TriagePolicy:
        from models.triage.checks import semantic_problems
        from models.triage.validate import raise_for_problems

        problems = semantic_problems(self)
        collect = (info.context or {}).get("problems")
        if isinstance(collect, list):  # validate_policy collects instead of raising
            collect.extend(problems)
        else:
            raise_for_problems(problems)
        return self

    @property
    def ref(self) -> str:
        """``id@version``, the policy reference stored with each triage result."""
        return f"{self.id}@{self.version}"

    def content_hash(self) -> str:
        """SHA-256 (hex) of the rules: everything but id, version, name and description, so two
        files with the same rules hash alike and any change to a weight or cue changes it."""
        payload = self.model_dump(mode="json", exclude={"id", "version", "name", "description"})
        if not payload.get("requires"):  # absent and empty hash alike (policies older than it)
            payload.pop("requires", None)
        raw = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()
