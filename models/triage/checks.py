"""Checks of a triage policy beyond its field types, one function per section.

:func:`semantic_problems` runs them on a parsed policy; :func:`salvage_problems` runs them on the
sections of raw data that parse on their own, so a file with a type error elsewhere still gets
every other problem reported at once.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from models.taxonomy import Problem, ProblemLevel
from models.taxonomy.schema import TOPIC_ID_RE
from models.triage.policy import (
    CATEGORY_RE,
    POLICY_ID_RE,
    PRIORITIES,
    RESERVED_KINDS,
    ChannelRules,
    CueCategory,
    CustomerValue,
    Negation,
    SentimentRules,
    SlaHours,
    Thresholds,
    TopicRules,
)

if TYPE_CHECKING:
    from models.triage.policy import TriagePolicy

__all__ = ["salvage_problems", "semantic_problems"]

_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def _id(value: str) -> list[Problem]:
    if POLICY_ID_RE.match(value):
        return []
    return [
        Problem(
            path="id",
            message=(
                f"policy id {value!r} is not valid: use lowercase ascii, digits, '-' or '_' "
                "(at most 64 characters), e.g. 'default' or 'acme-retail'"
            ),
        )
    ]


def _thresholds(t: Thresholds) -> list[Problem]:
    out = []
    for upper, lower in (("P1", "P2"), ("P2", "P3")):
        if getattr(t, lower) >= getattr(t, upper):
            out.append(
                Problem(
                    path=f"thresholds.{lower}",
                    message=(
                        f"threshold {lower} ({getattr(t, lower)}) must be below {upper} "
                        f"({getattr(t, upper)}): a higher score means a more urgent priority"
                    ),
                )
            )
    return out


def _sla(sla: SlaHours) -> list[Problem]:
    hours = [sla.for_priority(p) for p in PRIORITIES]
    return [
        Problem(
            path=f"sla_hours.{PRIORITIES[i].value}",
            message=(
                f"SLA of {PRIORITIES[i].value} ({hours[i]} h) is shorter than {PRIORITIES[i - 1].value} "
                f"({hours[i - 1]} h); a more urgent priority needs the shorter SLA"
            ),
        )
        for i in range(1, len(PRIORITIES))
        if hours[i] < hours[i - 1]
    ]


def _sentiment(s: SentimentRules) -> list[Problem]:
    out = []
    if s.strong_below > s.negative_below:
        out.append(
            Problem(
                path="sentiment.strong_below",
                message=(
                    f"strong_below ({s.strong_below}) must be at or below negative_below "
                    f"({s.negative_below})"
                ),
            )
        )
    if s.positive_above <= 0:
        out.append(
            Problem(
                path="sentiment.positive_above",
                message=(f"positive_above must be above 0; got {s.positive_above}"),
            )
        )
    return out


def _topic_ids(refs: Sequence[tuple[str, str]]) -> list[Problem]:
    return [
        Problem(
            path=path,
            message=(
                f"{topic_id!r} is not a topic id: use level1 or level1.level2 in lowercase ascii, "
                "e.g. 'billing.charges'"
            ),
        )
        for path, topic_id in refs
        if not TOPIC_ID_RE.match(topic_id)
    ]


def _topics(rules: TopicRules) -> list[Problem]:
    return _topic_ids([(f"topics.severity.{k}", k) for k in rules.severity])


def _lookup(
    section: str, fields: Sequence[str], table: Mapping[str, float], fields_key: str, table_key: str
) -> list[Problem]:
    out = []
    if table and not fields:
        out.append(
            Problem(
                path=f"{section}.{fields_key}",
                message=(
                    f"{table_key} are set but {fields_key} is empty: name the metadata fields to read"
                ),
            )
        )
    seen: dict[str, str] = {}
    for key in table:
        folded = key.strip().casefold()
        if not folded:
            out.append(Problem(path=f"{section}.{table_key}", message="a key must not be empty"))
        elif folded in seen:
            out.append(
                Problem(
                    path=f"{section}.{table_key}.{key}",
                    message=(
                        f"{key!r} and {seen[folded]!r} are the same value (matching ignores case)"
                    ),
                )
            )
        seen.setdefault(folded, key)
    return out


def _customer_value(cv: CustomerValue) -> list[Problem]:
    out = _lookup("customer_value", cv.tier_fields, cv.tiers, "tier_fields", "tiers")
    if cv.ltv_levels and not cv.ltv_fields:
        out.append(
            Problem(
                path="customer_value.ltv_fields",
                message=(
                    "ltv_levels are set but no ltv_fields name the metadata field holding the "
                    "lifetime value (e.g. [ltv, lifetime_value])"
                ),
            )
        )
    return out


def _channels(ch: ChannelRules) -> list[Problem]:
    return _lookup("channels", ch.fields, ch.weights, "fields", "weights")


def _category(name: str, cat: CueCategory) -> list[Problem]:
    path = f"cues.{name}"
    out = []
    if not CATEGORY_RE.match(name):
        out.append(
            Problem(
                path=path,
                message=(
                    f"cue category name {name!r} is not valid: use lowercase ascii, digits and '_', "
                    "starting with a letter, e.g. 'safety'"
                ),
            )
        )
    elif name in RESERVED_KINDS:
        out.append(
            Problem(
                path=path,
                message=(
                    f"{name!r} is a signal kind of the engine itself; name the category otherwise "
                    f"(reserved: {', '.join(sorted(RESERVED_KINDS))})"
                ),
            )
        )
    if not cat.zh and not cat.en:
        out.append(
            Problem(
                path=path,
                message=(f"cue category {name!r} has no cues: give zh and/or en cue lists"),
            )
        )
    out += _topic_ids(
        [(f"{path}.related_topics[{i}]", t) for i, t in enumerate(cat.related_topics)]
    )
    for lang, cues in (("zh", cat.zh), ("en", cat.en)):
        out += _cue_list(f"{path}.{lang}", lang, cues)
    return out + _cue_list(f"{path}.exclude", "any", cat.exclude)


def _cue_list(path: str, lang: str, cues: Sequence[str]) -> list[Problem]:
    out = []
    first: dict[str, int] = {}
    for i, cue in enumerate(cues):
        where = f"{path}[{i}]"
        key = cue.casefold()
        if key in first:
            out.append(
                Problem(
                    path=where,
                    level=ProblemLevel.warning,
                    message=(f"cue {cue!r} is listed twice (first at [{first[key]}])"),
                )
            )
        first.setdefault(key, i)
        if cue.startswith("*") or cue.endswith("*") or "**" in cue.replace(" ", ""):
            out.append(
                Problem(
                    path=where,
                    message=(
                        f"cue {cue!r}: '*' stands for a gap between words and must sit between two "
                        "words (e.g. 'never * again')"
                    ),
                )
            )
        if lang == "en" and _HAN.search(cue):
            out.append(
                Problem(
                    path=where,
                    message=(
                        f"English cue {cue!r} contains Chinese characters; list it under zh, where "
                        "cues match as substrings"
                    ),
                )
            )
        if not re.search(r"\w", cue):
            out.append(Problem(path=where, message=f"cue {cue!r} has no letter or digit"))
    return out


def _cues(cues: Mapping[str, CueCategory]) -> list[Problem]:
    out = []
    if not cues:
        out.append(
            Problem(
                path="cues",
                message=(
                    "the policy has no cue category; add at least one (e.g. safety with 过敏, injury)"
                ),
            )
        )
    owners: dict[tuple[str, str], list[str]] = defaultdict(list)
    for name, cat in cues.items():
        out += _category(name, cat)
        for lang, phrases in (("zh", cat.zh), ("en", cat.en)):
            for cue in dict.fromkeys(c.casefold() for c in phrases):
                owners[(lang, cue)].append(name)
    for (lang, cue), names in owners.items():
        if len(names) > 1:
            out.append(
                Problem(
                    path="cues",
                    level=ProblemLevel.warning,
                    message=(
                        f"{lang} cue {cue!r} is listed under {', '.join(names)}; it counts for each"
                    ),
                )
            )
    return out


def _negation(neg: Negation) -> list[Problem]:
    out = []
    for lang in ("zh", "en"):
        if not getattr(neg, lang).negators:
            out.append(
                Problem(
                    path=f"negation.{lang}.negators",
                    message=(f"no {lang} negators: without them every negated cue counts"),
                )
            )
    for i, word in enumerate(neg.en.negators):
        if " " in word:
            out.append(
                Problem(
                    path=f"negation.en.negators[{i}]",
                    message=(
                        f"English negators are single words; got {word!r} (its first word already "
                        "negates, e.g. 'no' for 'no one')"
                    ),
                )
            )
    return out


_SECTIONS: dict[str, tuple[type[BaseModel], Callable[[Any], list[Problem]]]] = {
    "thresholds": (Thresholds, _thresholds),
    "sla_hours": (SlaHours, _sla),
    "sentiment": (SentimentRules, _sentiment),
    "topics": (TopicRules, _topics),
    "customer_value": (CustomerValue, _customer_value),
    "channels": (ChannelRules, _channels),
    "negation": (Negation, _negation),
}


def _requires(requires: Mapping[Any, Sequence[str]], categories: Sequence[str]) -> list[Problem]:
    out = []
    for priority, names in requires.items():
        level = getattr(priority, "value", str(priority))
        if level == "P4":
            out.append(
                Problem(
                    path="requires.P4",
                    message="P4 is the lowest priority and cannot require a cue; use P1, P2 or P3",
                )
            )
        if not names:
            out.append(
                Problem(
                    path=f"requires.{level}",
                    message=f"requires.{level} is empty: name the cue categories {level} needs",
                )
            )
        for i, name in enumerate(names):
            if name not in categories:
                out.append(
                    Problem(
                        path=f"requires.{level}[{i}]",
                        message=(
                            f"unknown cue category {name!r}; the policy has "
                            f"{', '.join(categories) or 'none'}"
                        ),
                    )
                )
    return out


def semantic_problems(policy: TriagePolicy) -> list[Problem]:
    """Checks across fields: orders of thresholds and SLAs, ids, cue lists, topic id syntax,
    required categories."""
    out = _id(policy.id)
    for key, (_, check) in _SECTIONS.items():
        out += check(getattr(policy, key))
    return out + _cues(policy.cues) + _requires(policy.requires, list(policy.cues))


def salvage_problems(data: Mapping[str, Any]) -> list[Problem]:
    """:func:`semantic_problems` of each section of ``data`` that is valid on its own."""
    out = _id(data["id"]) if isinstance(data.get("id"), str) and data["id"].strip() else []
    for key, (model, check) in _SECTIONS.items():
        if isinstance(data.get(key), Mapping):
            try:
                out += check(model.model_validate(data[key]))
            except ValidationError:
                pass  # reported as a structural problem already
    cues = data.get("cues")
    if isinstance(cues, Mapping):
        parsed = {}
        for name, raw in cues.items():
            try:
                parsed[str(name)] = CueCategory.model_validate(raw)
            except ValidationError:
                continue  # reported as a structural problem already
        out += _cues(parsed) if parsed or not cues else []
    return out
