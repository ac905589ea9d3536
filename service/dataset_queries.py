"""Filtering a data set's records: parse the query string, check every value, build the SQL.

Filters (all optional, combined with AND):

- ``topic``: a topic id; a level-1 id (``delivery``) matches its leaves (``delivery.timeliness``);
  ``polarity`` narrows it to mentions with that polarity (alone: any topic with that polarity);
- ``touchpoint``: a touchpoint id among the record's touchpoints; ``sentiment``; ``lang``;
- score ranges ``nps_min``/``nps_max``, ``csat_*``, ``ces_*``, ``rating_*`` (inclusive), ``recommend``;
- ``from`` / ``to``: the record's ``ts`` (ISO 8601 date or date-time; a date-only ``to`` includes
  that whole day; times without a zone are UTC);
- ``meta.<field>=<value>``: a metadata field equal to the value (compared as text).

Unknown parameters and unknown values are refused (422) with the accepted ones listed, so a typo
never silently returns everything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Select, String, and_, cast, exists, or_, select

from nlp.errors import InvalidInputError
from service.storage.models import DatasetRecord, LabelKind, RecordLabel

LABELS = ("negative", "neutral", "positive")
LANGS = ("zh", "en")
SCORES = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7), "rating": (0, None)}
PAGING = ("limit", "offset")
FILTER_PARAMS = (
    "topic", "polarity", "touchpoint", "sentiment", "lang", "recommend", "from", "to",
    *(f"{s}_{end}" for s in SCORES for end in ("min", "max")),
)  # fmt: skip
META_PREFIX = "meta."
MAX_META_KEY = 100


@dataclass(frozen=True, kw_only=True)
class RecordFilters:
    """Checked filter values (see the module docstring)."""

    topic: str | None = None
    polarity: str | None = None
    touchpoint: str | None = None
    sentiment: str | None = None
    lang: str | None = None
    recommend: bool | None = None
    ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    ts_from: datetime | None = None
    ts_to: datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@cache
def default_label_ids() -> tuple[frozenset[str], frozenset[str]]:
    """Topic ids (both levels, retired ones too) and touchpoint ids of the default taxonomy."""
    from models.taxonomy import default_taxonomy

    taxonomy = default_taxonomy()
    return (
        frozenset(n.id for n in taxonomy.topics),
        frozenset(n.id for n in taxonomy.touchpoints),
    )


def _invalid(message: str, **details: Any) -> InvalidInputError:
    return InvalidInputError(message, details=details or None)


def _choice(name: str, value: str, allowed: Iterable[str]) -> str:
    allowed = sorted(allowed)
    if value not in allowed:
        shown = ", ".join(allowed[:40]) + (" …" if len(allowed) > 40 else "")
        raise _invalid(f"Unknown {name} {value!r}. Expected one of: {shown}.", parameter=name)
    return value


def _number(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise _invalid(f"{name} must be a number, got {value!r}.", parameter=name) from None
    if number != number or number in (float("inf"), float("-inf")):
        raise _invalid(f"{name} must be a finite number, got {value!r}.", parameter=name)
    return number


def _when(name: str, value: str, *, end: bool) -> datetime:
    token = value.strip()
    try:
        if len(token) == 10:
            day = date.fromisoformat(token)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return moment + timedelta(days=1) if end else moment
        moment = datetime.fromisoformat(token)
    except ValueError:
        raise _invalid(
            f"{name} must be an ISO 8601 date or date-time such as 2024-05-01 or "
            f"2024-05-01T14:30:00+08:00, got {value!r}.",
            parameter=name,
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_record_filters(
    params: Iterable[tuple[str, str]],
    *,
    topic_ids: Iterable[str] = (),
    touchpoint_ids: Iterable[str] = (),
) -> RecordFilters:
    """Check the query string of ``GET /v1/datasets/{id}/records``; raises InvalidInputError.

    ``topic_ids`` / ``touchpoint_ids`` are the known ids (besides the default taxonomy's).
    """
    default_topics, default_touchpoints = default_label_ids()
    known_topics = default_topics | set(topic_ids)
    known_topics |= {t.split(".", 1)[0] for t in known_topics}
    known_touchpoints = default_touchpoints | set(touchpoint_ids)
    values: dict[str, str] = {}
    metadata: dict[str, str] = {}
    for name, value in params:
        if "\x00" in value:
            raise _invalid(
                f"The value of {name!r} contains a NUL character; remove it.", parameter=name
            )
        if name.startswith(META_PREFIX):
            key = name[len(META_PREFIX) :]
            if not key or len(key) > MAX_META_KEY or not key.isprintable() or '"' in key:
                raise _invalid(
                    f"Invalid metadata filter {name!r}: write meta.<field>=<value> with a field name "
                    f"of 1 to {MAX_META_KEY} printable characters (no double quotes), e.g. "
                    "meta.channel=app.",
                    parameter=name,
                )
            metadata[key] = value
            continue
        if name in PAGING:
            continue
        if name not in FILTER_PARAMS:
            raise _invalid(
                f"Unknown query parameter {name!r}. Filters: {', '.join(FILTER_PARAMS)}, "
                "meta.<field>; paging: limit, offset.",
                parameter=name,
            )
        if name in values:
            raise _invalid(f"The parameter {name!r} is given twice; give it once.", parameter=name)
        values[name] = value
    ranges: dict[str, tuple[float | None, float | None]] = {}
    for score in SCORES:
        low = _number(f"{score}_min", values[f"{score}_min"]) if f"{score}_min" in values else None
        high = _number(f"{score}_max", values[f"{score}_max"]) if f"{score}_max" in values else None
        if low is not None and high is not None and low > high:
            raise _invalid(
                f"{score}_min ({low:g}) is above {score}_max ({high:g}); swap them.",
                parameter=score,
            )
        if low is not None or high is not None:
            ranges[score] = (low, high)
    recommend = None
    if "recommend" in values:
        token = values["recommend"].strip().lower()
        if token not in ("true", "false", "1", "0"):
            raise _invalid(f"recommend must be true or false, got {values['recommend']!r}.")
        recommend = token in ("true", "1")
    ts_from = _when("from", values["from"], end=False) if "from" in values else None
    ts_to = _when("to", values["to"], end=True) if "to" in values else None
    if ts_from is not None and ts_to is not None and ts_from >= ts_to:
        raise _invalid("'from' must be before 'to'.", parameter="from")
    return RecordFilters(
        topic=_choice("topic", values["topic"], known_topics) if "topic" in values else None,
        polarity=_choice("polarity", values["polarity"], LABELS) if "polarity" in values else None,
        touchpoint=(
            _choice("touchpoint", values["touchpoint"], known_touchpoints)
            if "touchpoint" in values
            else None
        ),
        sentiment=_choice("sentiment", values["sentiment"], LABELS)
        if "sentiment" in values
        else None,
        lang=_choice("lang", values["lang"], LANGS) if "lang" in values else None,
        recommend=recommend,
        ranges=ranges,
        ts_from=ts_from,
        ts_to=ts_to,
        metadata=metadata,
    )


def _label_exists(kind: LabelKind, *conditions: Any) -> Any:
    return exists(
        select(RecordLabel.record_pk).where(
            RecordLabel.record_pk == DatasetRecord.pk, RecordLabel.kind == kind.value, *conditions
        )
    )


def apply_record_filters(query: Select[Any], filters: RecordFilters) -> Select[Any]:
    """``query`` (over ``DatasetRecord``) narrowed by ``filters``."""
    conditions: list[Any] = []
    if filters.topic is not None or filters.polarity is not None:
        topic_conditions = []
        if filters.topic is not None:
            topic_conditions.append(
                or_(
                    RecordLabel.label_id == filters.topic,
                    RecordLabel.label_id.startswith(filters.topic + ".", autoescape=True),
                )
            )
        if filters.polarity is not None:
            topic_conditions.append(RecordLabel.polarity == filters.polarity)
        conditions.append(_label_exists(LabelKind.topic, *topic_conditions))
    if filters.touchpoint is not None:
        conditions.append(
            _label_exists(LabelKind.touchpoint, RecordLabel.label_id == filters.touchpoint)
        )
    if filters.sentiment is not None:
        conditions.append(DatasetRecord.sentiment == filters.sentiment)
    if filters.lang is not None:
        conditions.append(DatasetRecord.lang == filters.lang)
    if filters.recommend is not None:
        conditions.append(DatasetRecord.recommend.is_(filters.recommend))
    for score, (low, high) in filters.ranges.items():
        column = getattr(DatasetRecord, score)
        if low is not None:
            conditions.append(column >= low)
        if high is not None:
            conditions.append(column <= high)
    if filters.ts_from is not None:
        conditions.append(DatasetRecord.ts >= filters.ts_from)
    if filters.ts_to is not None:
        conditions.append(DatasetRecord.ts < filters.ts_to)
    for key, value in filters.metadata.items():
        conditions.append(cast(DatasetRecord.meta[key].as_string(), String) == value)
    return query.where(and_(*conditions)) if conditions else query


def query_params(items: Mapping[str, str] | Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The query string as (name, value) pairs, repeated names kept."""
    if isinstance(items, Mapping):
        multi = getattr(items, "multi_items", None)
        return list(multi()) if multi else list(items.items())
    return list(items)
