"""One example type for every public data set, with partial labels.

Labels are *partial*: a field that the source does not annotate is ``None`` or empty, and a source
label that does not map onto the default taxonomy is absent, not negative. Whether the absence of a
topic is informative is a property of the data set, not the example: see
:attr:`DatasetInfo.topic_space` and :attr:`DatasetInfo.closed_topics`.

Examples are cached per process and shared between callers: treat their dicts as read-only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Sentiment(StrEnum):
    negative = "negative"
    neutral = "neutral"
    positive = "positive"


class SentimentSource(StrEnum):
    """Where an example's document ``sentiment`` comes from."""

    label = "label"  # the source labels the whole text
    aspects_agree = "aspects_agree"  # every aspect/category polarity of the text agrees
    none = "none"  # never given


#: Polarity values a :class:`TopicLabel` may carry. ``conflict`` is SemEval-2014's own
#: "both positive and negative" value; :meth:`Example.topic_polarities` also uses it.
POLARITIES = ("negative", "neutral", "positive", "conflict")


@dataclass(frozen=True, kw_only=True, slots=True)
class TopicLabel:
    """One source label mapped onto a taxonomy topic id (a leaf, or a level-1 id)."""

    id: str
    polarity: str | None
    span: tuple[int, int] | None
    source_label: str


@dataclass(frozen=True, kw_only=True, slots=True)
class AspectTerm:
    """An explicit aspect term with character offsets into ``Example.text`` (``text[start:end]``)."""

    term: str
    start: int
    end: int
    polarity: str | None
    category: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Example:
    """One labelled (or unlabelled) text of a public data set."""

    id: str
    dataset: str
    split: str
    lang: str
    text: str
    sentiment: str | None = None
    topics: tuple[TopicLabel, ...] = ()
    touchpoints: tuple[str, ...] = ()
    aspects: tuple[AspectTerm, ...] = ()
    scores: dict[str, float] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    raw_labels: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """``dataset:id``, unique across data sets."""
        return f"{self.dataset}:{self.id}"

    @property
    def topic_ids(self) -> frozenset[str]:
        return frozenset(t.id for t in self.topics)

    def topic_polarities(self) -> dict[str, str | None]:
        """One polarity per topic id: agreeing labels keep theirs; ``neutral`` yields to a
        polar label; ``positive`` with ``negative`` (or any ``conflict``) gives ``conflict``;
        ``None`` only when no label of that topic has a polarity."""
        seen: dict[str, set[str]] = {}
        for t in self.topics:
            seen.setdefault(t.id, set())
            if t.polarity is not None:
                seen[t.id].add(t.polarity)
        return {topic: _merge(pols) for topic, pols in seen.items()}


def _merge(polarities: set[str]) -> str | None:
    if not polarities:
        return None
    if "conflict" in polarities or {"positive", "negative"} <= polarities:
        return "conflict"
    polar = polarities - {"neutral"}
    return polar.pop() if polar else "neutral"


def agreeing_polarity(polarities: list[str]) -> str | None:
    """The shared polarity when there is at least one and all agree (and none is ``conflict``)."""
    distinct = set(polarities)
    if len(distinct) == 1:
        (only,) = distinct
        if only in Sentiment.__members__:
            return only
    return None


@dataclass(frozen=True, kw_only=True, slots=True)
class DatasetInfo:
    """What one data set offers, so consumers know what its labels can and cannot say.

    ``topic_space``/``touchpoint_space`` are the taxonomy ids the data set's label scheme can
    express through the mapping. ``closed_topics`` is the subset whose *absence* from a labelled
    example (one not in ``unlabelled_splits``) means "not this topic" (for a level-1 id: no leaf
    under it). Outside it, absence means "unknown" and only recall can be scored. Touchpoint
    absence is never informative: no source annotates journey stages exhaustively.
    """

    name: str
    lang: str
    path: str  # relative to the data directory
    license: str
    splits: tuple[str, ...]
    counts: dict[str, int]  # rows per split in the shipped file
    sentiment_source: SentimentSource
    topic_space: frozenset[str] = frozenset()
    touchpoint_space: frozenset[str] = frozenset()
    closed_topics: frozenset[str] = frozenset()
    has_aspect_spans: bool = False
    score_fields: tuple[str, ...] = ()
    unlabelled_splits: tuple[str, ...] = ()
    description: str = ""

    @property
    def has_sentiment(self) -> bool:
        """True when the source itself gives document sentiment (not derived from aspects)."""
        return self.sentiment_source is SentimentSource.label
