"""The triage engine: a classification result plus its prepared text in, a priority with reasons out.

Score = content signals + context signals:

* content: ``weights.sentiment * max(0, -sentiment.score)``; the strongest negative topic,
  ``weights.topic * severity weight * confidence`` (severity from the policy's overrides, else the
  taxonomy: low 0.25, medium 0.5, high 0.75, critical 1); each cue category found, its ``weight``,
  plus ``weights.corroboration * confidence`` when one of its ``related_topics`` is predicted
  negative (a safety cue with a negative product.quality topic outweighs the cue alone). A record
  that is positive overall has its cue weights multiplied by ``sentiment.positive_damping``.
* context, only when the content reaches ``issue_threshold``: repeat contacts
  (``weights.repeat_contact`` each, up to ``repeat_contacts.max_counted``), customer value from
  metadata (tier or lifetime value, the larger), and a public channel.

The total maps to P1..P4 through ``thresholds``; a priority named in ``requires`` is kept only when a
cue of one of its categories is found (else one level down, e.g. churn alone stays P2); a cue
category's ``floor`` then lifts the priority to at least that level unless the record is positive
overall.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from models.taxonomy import Severity, Taxonomy
from models.triage.cues import CueHit, CueMatcher
from models.triage.io import default_policy
from models.triage.policy import PRIORITIES, Priority, TriagePolicy
from models.triage.validate import raise_for_problems, taxonomy_problems
from nlp.errors import InvalidInputError, NotFoundError

__all__ = ["Signal", "Triage", "ordinal"]


class HasText(Protocol):
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Signal:
    """One contribution to the score; ``reason`` is what an agent reads (None: folded into
    another signal's reason); ``detail`` holds the cue, topic or field behind it."""

    kind: str
    weight: float
    reason: str | None
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.detail, "weight": round(self.weight, 3)}


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ... 11th, 12th, 13th, 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


@dataclass(frozen=True, slots=True)
class _Topic:
    id: str
    confidence: float


class Triage:
    """Priority P1..P4 with reasons for classified records, under one policy and taxonomy.

    ``policy`` defaults to :func:`models.triage.default_policy`; ``taxonomy`` gives topic
    severities (without it only the policy's ``topics.severity`` overrides count). Topic ids the
    policy names must exist in the taxonomy (:class:`nlp.errors.PolicyError` otherwise)."""

    def __init__(
        self, policy: TriagePolicy | None = None, taxonomy: Taxonomy | None = None
    ) -> None:
        self.policy = policy if policy is not None else default_policy()
        self.taxonomy = taxonomy
        if taxonomy is not None:
            raise_for_problems(
                taxonomy_problems(self.policy, taxonomy),
                origin=f"triage policy {self.policy.ref} for this taxonomy",
            )
        self._matcher = CueMatcher(self.policy.cues, self.policy.negation)

    def __repr__(self) -> str:
        tax = f"{self.taxonomy.id}@{self.taxonomy.version}" if self.taxonomy else None
        return f"Triage(policy={self.policy.ref!r}, taxonomy={tax!r})"

    # ----- public verbs ----------------------------------------------------------------------
    def detect_cues(self, text: str, *, include_negated: bool = False) -> list[CueHit]:
        """Cues of the policy in normalised ``text`` (negated ones only with
        ``include_negated``), in order of position."""
        return self._matcher.find(text, include_negated=include_negated)

    def sla_hours(self, priority: Priority | str) -> float:
        """Hours to resolve a case of ``priority`` under this policy."""
        return self.policy.sla_hours.for_priority(priority)

    def severity(self, topic_id: str) -> Severity | None:
        """A topic's severity: the policy's override (leaf, then level 1), else the taxonomy's;
        None for a topic neither knows."""
        overrides = self.policy.topics.severity
        for key in (topic_id, topic_id.split(".", 1)[0]):
            if key in overrides:
                return overrides[key]
        if self.taxonomy is None:
            return None
        try:
            return self.taxonomy.effective_severity(topic_id)
        except NotFoundError:  # a topic of another taxonomy: no severity to give
            return None

    def __call__(
        self,
        result: Mapping[str, Any],
        prepared: HasText | str,
        *,
        metadata: Mapping[str, Any] | None = None,
        repeat_contacts: int = 0,
    ) -> dict[str, Any]:
        """:meth:`triage` taking the ``PreparedText`` (anything with ``.text``) or a str."""
        text = prepared if isinstance(prepared, str) else getattr(prepared, "text", None)
        if not isinstance(text, str):
            raise InvalidInputError(
                f"triage needs the prepared text (a PreparedText or str); got "
                f"{type(prepared).__name__}. Pass nlp.prepare(text) or its .text"
            )
        return self.triage(result, text, metadata=metadata, repeat_contacts=repeat_contacts)

    def triage(
        self,
        result: Mapping[str, Any],
        prepared_text: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        repeat_contacts: int = 0,
    ) -> dict[str, Any]:
        """Priority, reasons, score and signals of one classified record.

        ``result`` is a classification result (sentiment, topics...); ``prepared_text`` the
        normalised text from ``nlp.prepare``; ``metadata`` the record's other fields (tier,
        ltv, channel...); ``repeat_contacts`` the number of earlier contacts about the same
        issue. Returns ``{"priority", "reasons", "score", "signals", "policy", "sla_hours"}``."""
        if not isinstance(result, Mapping):
            raise InvalidInputError(
                f"triage expects a classification result mapping; got {type(result).__name__}"
            )
        if not isinstance(prepared_text, str):
            raise InvalidInputError(
                f"prepared_text must be a str; got {type(prepared_text).__name__}"
            )
        if (
            isinstance(repeat_contacts, bool)
            or not isinstance(repeat_contacts, int)
            or repeat_contacts < 0
        ):
            raise InvalidInputError(
                "repeat_contacts is the number of earlier contacts about the same issue, an "
                f"int >= 0; got {repeat_contacts!r}"
            )
        p = self.policy
        score, label = _sentiment(result)
        positive = label == "positive" or score >= p.sentiment.positive_above
        negative_topics = _negative_topics(result, p.topics.min_confidence)

        signals = self._sentiment_signals(score)
        signals += self._topic_signals(negative_topics)
        hits = self.detect_cues(prepared_text)
        signals += self._cue_signals(hits, negative_topics, positive)
        content = sum(s.weight for s in signals)
        if content >= p.issue_threshold:
            signals += self._context_signals(metadata or {}, repeat_contacts)
        total = sum(s.weight for s in signals)

        priority = p.thresholds.priority_for(total)
        found = {h.category for h in hits}
        floor_reasons = []
        while priority is not Priority.P4 and not self._allowed(priority, found):
            needed = ", ".join(p.cues[c].label for c in p.requires[priority])
            priority = PRIORITIES[priority.rank]  # one level down
            floor_reasons.append(f"at most {priority.value}: no cue of {needed}")
        if not positive:
            for name in dict.fromkeys(h.category for h in hits):
                floor = p.cues[name].floor
                if floor is not None and floor.rank < priority.rank:
                    priority = floor
                    floor_reasons.append(f"at least {floor.value} for {p.cues[name].label}")
        reasons = [s.reason for s in sorted(signals, key=lambda s: -s.weight) if s.reason]
        reasons += floor_reasons
        if positive and hits:
            reasons.append(f"positive overall ({score:+.2f}): cues weigh less")
        return {
            "priority": priority.value,
            "reasons": reasons or ["no urgency signal"],
            "score": round(total, 3),
            "signals": [s.as_dict() for s in signals],
            "policy": p.ref,
            "sla_hours": self.sla_hours(priority),
        }

    def _allowed(self, priority: Priority, found: set[str]) -> bool:
        """Whether the cue categories ``found`` let a score reach ``priority`` (``requires``)."""
        needed = self.policy.requires.get(priority)
        return not needed or any(name in found for name in needed)

    # ----- signal builders -------------------------------------------------------------------
    def _sentiment_signals(self, score: float) -> list[Signal]:
        rules = self.policy.sentiment
        weight = self.policy.weights.sentiment * max(0.0, -score)
        if weight <= 0:
            return []
        reason = None
        if score <= rules.strong_below:
            reason = f"strong negative sentiment ({score:.2f})"
        elif score <= rules.negative_below:
            reason = f"negative sentiment ({score:.2f})"
        return [
            Signal(
                kind="sentiment", weight=weight, reason=reason, detail={"score": round(score, 3)}
            )
        ]

    def _topic_signals(self, topics: list[_Topic]) -> list[Signal]:
        best: Signal | None = None
        for topic in topics:
            severity = self.severity(topic.id)
            if severity is None:
                continue
            weight = self.policy.weights.topic * severity.weight * topic.confidence
            if best is None or weight > best.weight:
                best = Signal(
                    kind="topic",
                    weight=weight,
                    reason=f"topic {topic.id} ({severity.value} severity)",
                    detail={"topic": topic.id, "severity": severity.value},
                )
        return [best] if best is not None and best.weight > 0 else []

    def _cue_signals(
        self, hits: list[CueHit], topics: list[_Topic], positive: bool
    ) -> list[Signal]:
        p = self.policy
        damping = p.sentiment.positive_damping if positive else 1.0
        by_category: dict[str, list[CueHit]] = {}
        for hit in hits:
            by_category.setdefault(hit.category, []).append(hit)
        out = []
        for name, found in by_category.items():
            cat = p.cues[name]
            texts = list(dict.fromkeys(h.text for h in found))
            reason = f"{cat.label}: {', '.join(texts)}"
            backing = _related(topics, cat.related_topics)
            extra = None
            if backing is not None and p.weights.corroboration > 0:
                reason += f" (with negative topic {backing.id})"
                extra = Signal(
                    kind="corroboration",
                    weight=p.weights.corroboration * backing.confidence * damping,
                    reason=None,
                    detail={"category": name, "topic": backing.id},
                )
            out.append(
                Signal(
                    kind=name,
                    weight=cat.weight * damping,
                    reason=reason,
                    detail={"cue": found[0].cue, "cues": list(dict.fromkeys(h.cue for h in found))},
                )
            )
            if extra is not None:
                out.append(extra)
        return out

    def _context_signals(self, metadata: Mapping[str, Any], repeats: int) -> list[Signal]:
        p = self.policy
        out = []
        counted = min(repeats, p.repeat_contacts.max_counted)
        if counted and p.weights.repeat_contact > 0:
            out.append(
                Signal(
                    kind="repeat_contact",
                    weight=p.weights.repeat_contact * counted,
                    reason=f"repeat contact ({ordinal(repeats + 1)} time)",
                    detail={"earlier_contacts": repeats},
                )
            )
        value = self._customer_value(metadata)
        if value is not None:
            out.append(value)
        channel = _lookup(metadata, p.channels.fields, p.channels.weights)
        if channel is not None and channel[2] > 0:
            fld, val, weight = channel
            out.append(
                Signal(
                    kind="channel",
                    weight=weight,
                    reason=f"public channel ({val})",
                    detail={"field": fld, "value": val},
                )
            )
        return out

    def _customer_value(self, metadata: Mapping[str, Any]) -> Signal | None:
        cv = self.policy.customer_value
        best: Signal | None = None
        tier = _lookup(metadata, cv.tier_fields, cv.tiers)
        if tier is not None and tier[2] > 0:
            fld, val, weight = tier
            best = Signal(
                kind="customer_value",
                weight=weight,
                reason=f"high-value customer (tier: {val})",
                detail={"field": fld, "value": val},
            )
        for fld in cv.ltv_fields:
            ltv = _number(metadata.get(fld))
            if ltv is None:
                continue
            reached = [lv for lv in cv.ltv_levels if ltv >= lv.min]
            if reached:
                weight = max(lv.weight for lv in reached)
                if weight > 0 and (best is None or weight > best.weight):
                    best = Signal(
                        kind="customer_value",
                        weight=weight,
                        reason=f"high-value customer (lifetime value {ltv:g})",
                        detail={"field": fld, "value": ltv},
                    )
            break
        return best


# ----- reading the result and metadata ---------------------------------------------------------
def _sentiment(result: Mapping[str, Any]) -> tuple[float, str | None]:
    sentiment = result.get("sentiment")
    if sentiment is None:
        return 0.0, None
    if not isinstance(sentiment, Mapping):
        raise InvalidInputError(
            f"result.sentiment must be a mapping with label and score; got {sentiment!r}"
        )
    score = sentiment.get("score", 0.0)
    if (
        isinstance(score, bool)
        or not isinstance(score, int | float)
        or not math.isfinite(score)
        or not -1 <= score <= 1
    ):
        raise InvalidInputError(
            f"result.sentiment.score must be a number in [-1, 1]; got {score!r}"
        )
    label = sentiment.get("label")
    return float(score), str(label) if label is not None else None


def _negative_topics(result: Mapping[str, Any], min_confidence: float) -> list[_Topic]:
    topics = result.get("topics") or []
    if not isinstance(topics, list | tuple):
        raise InvalidInputError(f"result.topics must be a list; got {type(topics).__name__}")
    out = []
    for i, topic in enumerate(topics):
        if not isinstance(topic, Mapping) or not isinstance(topic.get("id"), str):
            raise InvalidInputError(
                f"result.topics[{i}] must be a mapping with an id; got {topic!r}"
            )
        conf = topic.get("confidence", 1.0)
        if isinstance(conf, bool) or not isinstance(conf, int | float) or not 0 <= conf <= 1:
            raise InvalidInputError(
                f"result.topics[{i}].confidence must be a number in [0, 1]; got {conf!r}"
            )
        if topic.get("polarity") == "negative" and conf >= min_confidence:
            out.append(_Topic(topic["id"], float(conf)))
    return out


def _related(topics: list[_Topic], related: tuple[str, ...]) -> _Topic | None:
    """The most confident topic that is one of ``related`` or sits under one of them."""
    matches = [t for t in topics if t.id in related or t.id.split(".", 1)[0] in related]
    return max(matches, key=lambda t: t.confidence, default=None)


def _lookup(
    metadata: Mapping[str, Any], fields: tuple[str, ...], table: Mapping[str, float]
) -> tuple[str, str, float] | None:
    """(field, value, weight) for the first of ``fields`` present whose value is in ``table``
    (case-insensitive)."""
    folded = {k.strip().casefold(): w for k, w in table.items()}
    for fld in fields:
        value = metadata.get(fld)
        if isinstance(value, str | int) and not isinstance(value, bool):
            text = str(value).strip()
            if text.casefold() in folded:
                return fld, text, folded[text.casefold()]
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value.replace(",", "").strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None
