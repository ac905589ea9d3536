"""Segments and time: where a driver over-indexes and how its share moves by week or month.

* :func:`segment_fields` picks the metadata fields fit for drill-down (2..50 distinct values);
* :func:`segment_lift` compares a driver's share in each segment with the rest (Fisher exact test,
  Benjamini-Hochberg false-discovery control over every segment tested);
* :func:`period_keys` and :func:`trend` bucket records by ISO week or month.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import numpy as np

__all__ = ["period_keys", "segment_fields", "segment_lift", "segment_overview", "trend"]


# --- segments ---------------------------------------------------------------------------------


def _segment_value(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def segment_fields(
    metadata: Sequence[Mapping[str, Any]], *, min_values: int = 2, max_values: int = 50
) -> dict[str, list[str | None]]:
    """Metadata fields usable for drill-down: those with ``min_values``..``max_values`` distinct
    values (store, channel, product, region...). Each maps to the per-record value as text, or
    None where a record lacks it. Free-text or id-like fields have too many values and drop out."""
    names: list[str] = []
    for meta in metadata:
        names.extend(k for k in meta if k not in names)
    out: dict[str, list[str | None]] = {}
    for name in names:
        column = [_segment_value(meta.get(name)) for meta in metadata]
        distinct = {v for v in column if v is not None}
        if min_values <= len(distinct) <= max_values:
            out[name] = column
    return out


def segment_lift(
    mask: np.ndarray,
    fields: Mapping[str, Sequence[str | None]],
    *,
    min_size: int = 10,
    alpha: float = 0.05,
) -> list[dict[str, Any]]:
    """The driver's share in each segment against the rest of the records that have the field.

    Rows: ``field``, ``value``, ``n`` (records in the segment), ``count`` (with the driver),
    ``share``, ``share_rest``, ``lift`` (share / share_rest), ``p`` (two-sided Fisher exact),
    ``q`` (Benjamini-Hochberg over every row of this call) and ``over_indexes`` (q < alpha and
    lift > 1). Sorted by q, then by lift descending. Segments under ``min_size`` are not tested.
    """
    from scipy.stats import false_discovery_control, fisher_exact

    mask = np.asarray(mask, dtype=bool)
    rows: list[dict[str, Any]] = []
    for name, column in fields.items():
        col = np.array([v if v is not None else "" for v in column], dtype=object)
        present = col != ""
        total, hits = int(present.sum()), int((mask & present).sum())
        for value in sorted(set(col[present])):
            seg = col == value
            n, count = int(seg.sum()), int((mask & seg).sum())
            rest_n, rest_count = total - n, hits - count
            if n < min_size or rest_n < min_size:
                continue
            share, share_rest = count / n, rest_count / rest_n
            _, p = fisher_exact([[count, n - count], [rest_count, rest_n - rest_count]])
            rows.append({
                "field": name, "value": value, "n": n, "count": count,
                "share": round(share, 4), "share_rest": round(share_rest, 4),
                "lift": round(share / share_rest, 3) if share_rest > 0 else None,
                "p": float(p),
            })
    if rows:
        qs = false_discovery_control([r["p"] for r in rows], method="bh")
        for row, q in zip(rows, qs, strict=True):
            row["q"] = float(q)
            lift = row["lift"]
            row["over_indexes"] = bool(q < alpha and (lift is None or lift > 1))
    rows.sort(key=lambda r: (r["q"], -(r["lift"] if r["lift"] is not None else float("inf"))))
    return rows


# --- time -------------------------------------------------------------------------------------


def _as_naive_utc(ts: datetime | date) -> datetime:
    if isinstance(ts, datetime):
        return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts
    return datetime(ts.year, ts.month, ts.day)


def period_keys(
    timestamps: Sequence[datetime | date | None], freq: str | None = None
) -> tuple[str | None, list[str | None]]:
    """Each record's period as ``YYYY-MM`` (month) or ``YYYY-Www`` (ISO week), or None without ts.

    ``freq`` None picks weeks when the records span at most 26 weeks, else months. Returns the
    frequency used (None when no record has a time) and the keys.
    """
    stamps = [_as_naive_utc(t) if t is not None else None for t in timestamps]
    known = [t for t in stamps if t is not None]
    if not known:
        return None, [None] * len(stamps)
    if freq is None:
        freq = "week" if (max(known) - min(known)).days <= 26 * 7 else "month"
    if freq not in ("week", "month"):
        raise ValueError(f"freq must be 'week' or 'month', got {freq!r}")

    def key(t: datetime) -> str:
        if freq == "month":
            return f"{t.year:04d}-{t.month:02d}"
        year, week, _ = t.isocalendar()
        return f"{year:04d}-W{week:02d}"

    return freq, [key(t) if t is not None else None for t in stamps]


def trend(
    mask: np.ndarray,
    periods: Sequence[str | None],
    values: np.ndarray | None = None,
    headline: Callable[[np.ndarray], float] | None = None,
) -> list[dict[str, Any]]:
    """Per period (in time order): records ``n``, ``count`` with the driver, its ``share`` with a
    95% Wilson interval ``ci``, and the outcome ``headline`` of the period when given."""
    mask = np.asarray(mask, dtype=bool)
    keys = np.array([p if p is not None else "" for p in periods], dtype=object)
    out = []
    for key in sorted(set(keys) - {""}):
        in_period = keys == key
        n, count = int(in_period.sum()), int((mask & in_period).sum())
        row: dict[str, Any] = {"period": key, "n": n, "count": count,
                               "share": round(count / n, 4), "ci": _wilson(count, n)}
        if values is not None and headline is not None:
            vals = values[in_period]
            vals = vals[~np.isnan(vals)]
            row["headline"] = round(float(headline(vals)), 2) if len(vals) else None
        out.append(row)
    return out


def _wilson(count: int, n: int) -> list[float]:
    from scipy.stats import binomtest

    if n == 0:
        return [0.0, 0.0]
    ci = binomtest(count, n).proportion_ci(confidence_level=0.95, method="wilson")
    return [round(float(ci.low), 4), round(float(ci.high), 4)]


def segment_overview(
    fields: Mapping[str, Sequence[str | None]],
    values: np.ndarray,
    negative: np.ndarray,
    drivers: Mapping[str, np.ndarray],
    headline: Callable[[np.ndarray], float],
    *,
    label: Callable[[str], Any] | None = None,
    top: int = 3,
    min_count: int = 5,
) -> list[dict[str, Any]]:
    """Drill-down per metadata field and value: records ``n``, ``scored``, the outcome
    ``headline``, the share of negative verbatims, and the ``top_issues``: negative drivers whose
    share in the segment is highest relative to the other records (lift), with at least
    ``min_count`` records in the segment."""
    names = list(drivers)
    matrix = np.column_stack([np.asarray(drivers[d], dtype=float) for d in names]) if names else None
    values = np.asarray(values, dtype=float)
    negative = np.asarray(negative, dtype=bool)
    total_counts = matrix.sum(axis=0) if matrix is not None else None
    out = []
    for name, column in fields.items():
        col = np.array([v if v is not None else "" for v in column], dtype=object)
        rows = []
        for value in sorted(set(col) - {""}):
            seg = col == value
            n = int(seg.sum())
            scored = values[seg][~np.isnan(values[seg])]
            row: dict[str, Any] = {
                "value": value, "n": n, "scored": int(scored.size),
                "headline": round(float(headline(scored)), 2) if scored.size else None,
                "negative_share": round(float(negative[seg].mean()), 4),
                "top_issues": [],
            }
            if matrix is not None and n < len(col):
                counts = matrix[seg].sum(axis=0)
                share = counts / n
                share_rest = (total_counts - counts) / (len(col) - n)
                lift = np.divide(share, share_rest, out=np.full_like(share, np.inf), where=share_rest > 0)
                for j in np.argsort(-lift, kind="stable"):
                    if len(row["top_issues"]) >= top:
                        break
                    if counts[j] >= min_count and lift[j] > 1:
                        row["top_issues"].append({
                            "driver": names[j], "label": label(names[j]) if label else names[j],
                            "count": int(counts[j]), "share": round(float(share[j]), 4),
                            "lift": None if np.isinf(lift[j]) else round(float(lift[j]), 3),
                        })
            rows.append(row)
        out.append({"field": name, "values": sorted(rows, key=lambda r: -r["n"])})
    return out
