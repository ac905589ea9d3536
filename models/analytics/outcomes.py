"""Outcome scores (NPS, CSAT, CES, rating, recommend) and what each group of records does to them.

Every outcome is oriented so that **higher is better**, which makes one reading of ``impact`` hold
for all of them: ``impact = headline(all) - headline(all but the group)``, so a group that holds the
score down has a negative impact.

Scales and headline figures, per record value -> headline:

- ``nps``: 0-10 likelihood to recommend. Detractors 0-6, passives 7-8, promoters 9-10; the
  headline is NPS = % promoters - % detractors, in points from -100 to 100.
- ``csat``: 1-5 satisfaction. Headline: the mean (1-5); the summary adds top-two-box (% of 4-5).
- ``ces``: 1-7 Customer Effort Score in its CES 2.0 form, agreement with "the company made it easy
  for me to handle my issue": **7 = easiest = best**. Headline: the mean (1-7); the summary adds the
  share finding it easy (5-7) and hard (1-3). Data collected on the older 1-5 "how much effort"
  scale (high = bad) must be reversed before it comes in.
- ``rating``: each record's ``rating`` is divided by its own ``rating_scale`` and put on a declared
  **5-point scale** (``5 * rating / rating_scale``: 4 of 5 -> 4.0, 8 of 10 -> 4.0, 3 of 10 -> 1.5),
  so files that mix 5- and 10-point scales are comparable. Headline: the mean (0-5); the summary
  adds top-two-box (% at 4.0 or above).
- ``recommend``: 0/1 flag. Headline: % who would recommend (0-100).

Records without the chosen score are NaN and count in no headline (their share is reported as
``missing``). Figures that cannot be computed (no scored record) are NaN in arrays and ``None`` in
the dict outputs, which are JSON-ready.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

import numpy as np

__all__ = [
    "Outcome",
    "RATING_SCALE",
    "group_table",
    "headline",
    "impact",
    "outcome_values",
    "summary",
]

#: The declared scale that ratings are normalised to (``5 * rating / rating_scale``).
RATING_SCALE = 5.0
SENTIMENTS = ("negative", "neutral", "positive")


class Outcome(StrEnum):
    """The score an analysis explains; the value is the record field it comes from."""

    NPS = "nps"
    CSAT = "csat"
    CES = "ces"
    RATING = "rating"
    RECOMMEND = "recommend"

    @property
    def unit(self) -> str:
        """What the headline figure is, in words for a report."""
        return _UNITS[self]

    @property
    def bounds(self) -> tuple[float, float]:
        """The range of the headline figure."""
        return _BOUNDS[self]


_UNITS = {
    Outcome.NPS: "NPS points (-100 to 100)",
    Outcome.CSAT: "mean CSAT (1-5)",
    Outcome.CES: "mean CES (1-7, higher = easier)",
    Outcome.RATING: f"mean rating (0-{RATING_SCALE:g} scale)",
    Outcome.RECOMMEND: "% who would recommend",
}
_BOUNDS = {
    Outcome.NPS: (-100.0, 100.0),
    Outcome.CSAT: (1.0, 5.0),
    Outcome.CES: (1.0, 7.0),
    Outcome.RATING: (0.0, RATING_SCALE),
    Outcome.RECOMMEND: (0.0, 100.0),
}


def _field(record: Any, name: str) -> Any:
    if isinstance(record, Mapping):
        return record.get(name)
    return getattr(record, name, None)


def outcome_values(records: Sequence[Any], outcome: Outcome | str) -> np.ndarray:
    """Per-record values of ``outcome`` (float, NaN where the record has no such score).

    ``records`` are :class:`nlp.records.Record` objects (or mappings with the same fields).
    Ratings come back on the 5-point scale (see the module docstring), ``recommend`` as 0.0/1.0.
    """
    outcome = Outcome(outcome)
    out = np.full(len(records), np.nan)
    for i, record in enumerate(records):
        value = _field(record, outcome.value)
        if value is None:
            continue
        if outcome is Outcome.RATING:
            scale = _field(record, "rating_scale")
            if not scale:
                continue
            value = RATING_SCALE * float(value) / float(scale)
        out[i] = float(value)
    return out


def _scored(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return values[~np.isnan(values)]


def headline(values: np.ndarray, outcome: Outcome | str) -> float:
    """The outcome's headline figure over the scored values (NaN when none is scored)."""
    outcome = Outcome(outcome)
    v = _scored(values)
    if v.size == 0:
        return math.nan
    if outcome is Outcome.NPS:
        return float(100.0 * (np.mean(v >= 9) - np.mean(v <= 6)))
    if outcome is Outcome.RECOMMEND:
        return float(100.0 * np.mean(v))
    return float(np.mean(v))


def _json(x: float) -> float | None:
    return None if x is None or math.isnan(x) else round(float(x), 4)


def summary(values: np.ndarray, outcome: Outcome | str) -> dict[str, Any]:
    """The headline (under the outcome's own key) and its breakdown, JSON-ready.

    Shares are percentages of the scored records; ``n`` counts scored records and ``missing``
    those without the score. NPS: ``promoters``/``passives``/``detractors``; CSAT and rating:
    ``mean`` and ``top_two_box``; CES: ``mean``, ``easy`` (5-7) and ``difficult`` (1-3).
    """
    outcome = Outcome(outcome)
    values = np.asarray(values, dtype=float)
    v = _scored(values)
    out: dict[str, Any] = {outcome.value: _json(headline(v, outcome)), "unit": outcome.unit,
                           "n": int(v.size), "missing": int(values.size - v.size)}

    def pct(mask: np.ndarray) -> float | None:
        return _json(100.0 * float(np.mean(mask))) if v.size else None

    if outcome is Outcome.NPS:
        out |= {"promoters": pct(v >= 9), "passives": pct((v > 6) & (v < 9)), "detractors": pct(v <= 6)}
    elif outcome in (Outcome.CSAT, Outcome.RATING):
        out |= {"mean": _json(float(np.mean(v))) if v.size else None, "top_two_box": pct(v >= 4)}
        if outcome is Outcome.RATING:
            out["scale"] = RATING_SCALE
    elif outcome is Outcome.CES:
        out |= {"mean": _json(float(np.mean(v))) if v.size else None, "easy": pct(v >= 5),
                "difficult": pct(v <= 3)}
    return out


def impact(values: np.ndarray, mask: np.ndarray, outcome: Outcome | str) -> float:
    """``headline(all) - headline(without the masked records)``: negative = holds the score down.

    NaN when either side has no scored record (e.g. every scored record is in the group).
    """
    values = np.asarray(values, dtype=float)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != values.shape:
        raise ValueError(f"mask has shape {mask.shape}, values {values.shape}; they must match")
    return headline(values, outcome) - headline(values[~mask], outcome)


def group_table(
    values: np.ndarray,
    masks: Mapping[str, np.ndarray],
    sentiments: Sequence[str | None],
    outcome: Outcome | str,
    *,
    min_support: int = 30,
) -> list[dict[str, Any]]:
    """One row per group (topic, topic x polarity, touchpoint, cluster...), in ``masks`` order.

    Each row: ``name``; ``volume`` (records in the group) and ``share`` of all records;
    ``sentiment`` (document-sentiment mix of the group as fractions, ``negative``/``neutral``/
    ``positive`` always present, other labels such as ``mixed`` when they occur); ``scored``
    (group records with the score); ``outcome`` among mentioners and ``outcome_others`` among
    non-mentioners (headline figures); ``impact`` (see :func:`impact`); ``low_support`` when fewer
    than ``min_support`` group records carry the score.
    """
    outcome = Outcome(outcome)
    values = np.asarray(values, dtype=float)
    n = values.size
    if len(sentiments) != n:
        raise ValueError(f"{len(sentiments)} sentiments for {n} values; give one per record")
    labels = np.array(["" if s is None else str(s) for s in sentiments], dtype=object)
    scored = ~np.isnan(values)
    rows: list[dict[str, Any]] = []
    for name, mask in masks.items():
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (n,):
            raise ValueError(f"mask {name!r} has shape {mask.shape}; expected ({n},)")
        volume = int(mask.sum())
        group_labels = labels[mask]
        known = group_labels[group_labels != ""]
        mix = {s: 0.0 for s in SENTIMENTS}
        if known.size:
            found, counts = np.unique(known, return_counts=True)
            mix |= {str(k): round(float(c) / known.size, 4) for k, c in zip(found, counts, strict=True)}
        n_scored = int((mask & scored).sum())
        rows.append({
            "name": name,
            "volume": volume,
            "share": round(volume / n, 4) if n else 0.0,
            "sentiment": mix,
            "scored": n_scored,
            "outcome": _json(headline(values[mask], outcome)),
            "outcome_others": _json(headline(values[~mask], outcome)),
            "impact": _json(impact(values, mask, outcome)),
            "low_support": n_scored < min_support,
        })
    return rows
