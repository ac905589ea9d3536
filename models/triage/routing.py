"""Routing: which team queue a complaint goes to.

The ``routing:`` section of a triage policy holds ordered rules; each rule names a ``team`` and
conditions on the record's primary topic, primary touchpoint, language, channel and metadata
fields. All the conditions a rule names must hold (within one condition any listed value does);
the first matching rule wins; a record no rule matches goes to ``default``. A level-1 topic id
(``delivery``) matches its leaves (``delivery.timeliness``). Format: ``models/triage/README.md``.

Imports only ``models.taxonomy``; never torch.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from models.taxonomy import Problem, ProblemLevel, Taxonomy

__all__ = [
    "Route",
    "RouteConditions",
    "RouteRule",
    "Router",
    "RoutingRules",
    "primary_topic",
    "routing_problems",
]

TEAM_RE = r"^[a-z0-9][a-z0-9_-]{0,63}$"
Team = Annotated[str, StringConstraints(strip_whitespace=True, pattern=TEAM_RE)]
Value = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


def _values(value: Any) -> Any:
    """One value or a list; numbers become text; YAML booleans (unquoted no/yes) are refused."""
    if value is None:
        return ()
    items = value if isinstance(value, list | tuple) else [value]
    out = []
    for item in items:
        if isinstance(item, bool):
            raise ValueError(
                f"{item!r} is a boolean: YAML reads unquoted no, yes, on, off as booleans; quote it"
            )
        out.append(str(item) if isinstance(item, int | float) else item)
    return tuple(out)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RouteConditions(_Frozen):
    """What a record must show for a rule to match; an empty condition matches anything."""

    topic: tuple[Value, ...] = ()
    """Topic ids (leaf, or level 1 for all its leaves) matched against the primary topic."""
    touchpoint: tuple[Value, ...] = ()
    lang: tuple[Value, ...] = ()
    channel: tuple[Value, ...] = ()
    """Matched case-insensitively against the first ``channel_fields`` metadata value."""
    metadata: dict[Value, tuple[Value, ...]] = Field(default_factory=dict)
    """Metadata field -> accepted values (case-insensitive)."""

    @field_validator("topic", "touchpoint", "lang", "channel", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _values(value)

    @field_validator("metadata", mode="before")
    @classmethod
    def _meta(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): _values(v) for k, v in value.items()}
        return value


class RouteRule(_Frozen):
    """One rule: ``team`` when every condition in ``when`` holds."""

    name: Value | None = None
    team: Team
    when: RouteConditions = Field(default_factory=RouteConditions)


class RoutingRules(_Frozen):
    """The ``routing:`` section of a policy."""

    default: Team = "customer-care"
    channel_fields: tuple[Value, ...] = ("channel", "source")
    rules: tuple[RouteRule, ...] = ()

    @field_validator("channel_fields", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _values(value)


@dataclass(frozen=True, kw_only=True, slots=True)
class Route:
    """Where a record goes and why: ``rule`` is the matching rule's name (or ``rules[i]``),
    ``None`` when the default queue took it."""

    team: str
    rule: str | None

    @property
    def reason(self) -> str:
        return f"routed to {self.team} by rule {self.rule}" if self.rule else (
            f"routed to {self.team} (default queue)"
        )


def primary_topic(topics: Sequence[Mapping[str, Any]] | None) -> str | None:
    """The topic a case is about: the most confident negative topic, else the most confident."""
    items = [t for t in topics or () if t.get("id")]
    if not items:
        return None
    negative = [t for t in items if t.get("polarity") == "negative"] or items
    return str(max(negative, key=lambda t: float(t.get("confidence") or 0.0))["id"])


def _topic_matches(topic: str | None, patterns: Sequence[str]) -> bool:
    return topic is not None and any(topic == p or topic.startswith(p + ".") for p in patterns)


def _in(value: Any, accepted: Sequence[str]) -> bool:
    return value is not None and str(value).strip().casefold() in {a.casefold() for a in accepted}


class Router:
    """``Router(rules)(topic=..., touchpoint=..., lang=..., metadata=...) -> Route``."""

    def __init__(self, rules: RoutingRules | None = None) -> None:
        self.rules = rules if rules is not None else RoutingRules()

    def channel_of(self, metadata: Mapping[str, Any] | None) -> str | None:
        """The first non-empty ``channel_fields`` value in ``metadata``."""
        for name in self.rules.channel_fields:
            value = (metadata or {}).get(name)
            if value not in (None, ""):
                return str(value)
        return None

    def __call__(
        self,
        *,
        topic: str | None,
        touchpoint: str | None = None,
        lang: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Route:
        metadata = metadata or {}
        channel = self.channel_of(metadata)
        for i, rule in enumerate(self.rules.rules):
            w = rule.when
            if w.topic and not _topic_matches(topic, w.topic):
                continue
            if w.touchpoint and not _in(touchpoint, w.touchpoint):
                continue
            if w.lang and not _in(lang, w.lang):
                continue
            if w.channel and not _in(channel, w.channel):
                continue
            if any(not _in(metadata.get(f), vals) for f, vals in w.metadata.items()):
                continue
            return Route(team=rule.team, rule=rule.name or f"rules[{i}]")
        return Route(team=self.rules.default, rule=None)

    def route_record(self, labels: Mapping[str, Any], metadata: Mapping[str, Any] | None,
                     lang: str | None = None) -> Route:
        """Route a stored classification (``topics``, ``primary_touchpoint``, ``lang``)."""
        return self(
            topic=primary_topic(labels.get("topics")),
            touchpoint=labels.get("primary_touchpoint"),
            lang=lang or labels.get("lang"),
            metadata=metadata,
        )


_LANG_RE = re.compile(r"^(zh|en)$")


def routing_problems(
    rules: RoutingRules, taxonomy: Taxonomy, *, prefix: str = "routing"
) -> list[Problem]:
    """Topic and touchpoint ids the taxonomy lacks (errors) or has retired (warnings), and
    languages other than zh and en (warnings), each with its path (``routing.rules[2].when.topic[0]``)."""
    out: list[Problem] = []
    topics = {n.id: n for n in taxonomy.topics}
    touchpoints = {n.id: n for n in taxonomy.touchpoints}
    for i, rule in enumerate(rules.rules):
        base = f"{prefix}.rules[{i}].when"
        for kind, ids, known in (
            ("topic", rule.when.topic, topics),
            ("touchpoint", rule.when.touchpoint, touchpoints),
        ):
            for j, node_id in enumerate(ids):
                path = f"{base}.{kind}[{j}]"
                node = known.get(node_id)
                if node is None:
                    close = difflib.get_close_matches(node_id, list(known), n=3, cutoff=0.6)
                    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
                    out.append(Problem(path=path, message=(
                        f"unknown {kind} {node_id!r} in taxonomy {taxonomy.id!r} "
                        f"v{taxonomy.version}{hint}")))
                elif not node.active:
                    replaced = getattr(node, "replaced_by", None)
                    out.append(Problem(path=path, level=ProblemLevel.warning, message=(
                        f"{kind} {node_id!r} is retired in taxonomy {taxonomy.id!r}"
                        + (f"; use {replaced!r}" if replaced else ""))))
        for j, lang in enumerate(rule.when.lang):
            if not _LANG_RE.match(lang):
                out.append(Problem(path=f"{base}.lang[{j}]", level=ProblemLevel.warning,
                                   message=f"language {lang!r} is never detected (zh or en)"))
    return out
