"""Closing the loop: how support cases on each topic were resolved, and how fast.

Cases are plain dicts (the ``cases`` resource of the service, or a file): ``topic``, ``priority``,
``status``, ``resolution_code``, ``opened_at`` or ``created_at``, ``resolved_at`` (datetimes or ISO
8601 strings). A case counts as resolved when its status is ``resolved`` or ``closed``, or when it
has a ``resolved_at`` and is not ``reopened``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

import numpy as np

from nlp.errors import InvalidInputError

__all__ = ["case_feedback"]

RESOLVED = frozenset({"resolved", "closed"})


def _when(value: Any, field: str, index: int) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise InvalidInputError(
                f"case {index}: {field} must be an ISO 8601 date or date-time, got {value!r}"
            ) from None
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    raise InvalidInputError(f"case {index}: {field} must be a date-time, got {type(value).__name__}")


def case_feedback(
    cases: Iterable[Mapping[str, Any]],
    *,
    label: Callable[[str], Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """Per topic: cases, resolved count and share, median and mean hours to resolve (resolved cases
    with both times), resolution codes and priorities; plus the same totals over all cases.

    ``label(topic_id)`` gives the bilingual names shown in the report. Raises
    :class:`InvalidInputError` for a case that is not a mapping or has an unreadable time.
    """
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for index, case in enumerate(cases):
        if not isinstance(case, Mapping):
            raise InvalidInputError(f"case {index} must be an object with topic, status, ...; got {type(case).__name__}")
        status = str(case.get("status") or "").lower()
        opened = _when(case.get("opened_at") or case.get("created_at"), "opened_at/created_at", index)
        resolved_at = _when(case.get("resolved_at"), "resolved_at", index)
        resolved = status in RESOLVED or (resolved_at is not None and status != "reopened")
        hours = None
        if resolved and opened is not None and resolved_at is not None and resolved_at >= opened:
            hours = (resolved_at - opened).total_seconds() / 3600
        groups[str(case.get("topic") or "(none)")].append({
            "resolved": resolved, "hours": hours, "code": case.get("resolution_code"),
            "priority": case.get("priority"),
        })
    rows = [_row(topic, items, label) for topic, items in groups.items()]
    rows.sort(key=lambda r: (-r["cases"], r["topic"]))
    everything = [item for items in groups.values() for item in items]
    return {"total": _row("(all)", everything, None) if everything else None, "by_topic": rows}


def _row(topic: str, items: list[dict[str, Any]], label: Callable[[str], Mapping[str, str]] | None) -> dict[str, Any]:
    resolved = sum(i["resolved"] for i in items)
    hours = np.array([i["hours"] for i in items if i["hours"] is not None], dtype=float)
    codes = Counter(str(i["code"]) for i in items if i["resolved"] and i["code"])
    priorities = Counter(str(i["priority"]) for i in items if i["priority"])
    row: dict[str, Any] = {
        "topic": topic,
        "cases": len(items),
        "resolved": resolved,
        "resolved_share": round(resolved / len(items), 4) if items else None,
        "median_hours_to_resolve": round(float(np.median(hours)), 2) if len(hours) else None,
        "mean_hours_to_resolve": round(float(hours.mean()), 2) if len(hours) else None,
        "resolution_codes": dict(codes.most_common()),
        "priorities": dict(sorted(priorities.items())),
    }
    if label is not None and topic != "(none)":
        row["label"] = dict(label(topic))
    return row
