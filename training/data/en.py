"""Loaders for the English non-ABSA sets: Twitter US Airline, Banking77 and Skytrax."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from .files import data_file, read_csv
from .mapping import BANKING77_INTENTS, TWITTER_REASONS
from .schema import Example, TopicLabel

LOUNGE_SUBRATINGS = (
    "comfort",
    "cleanliness",
    "bar_beverages",
    "catering",
    "washrooms",
    "wifi_connectivity",
    "staff_service",
)
SEAT_SUBRATINGS = (
    "seat_legroom",
    "seat_recline",
    "seat_width",
    "aisle_space",
    "viewing_tv",
    "power_supply",
    "seat_storage",
)
#: Skytrax lounge reviews moved from a 1-5 to a 1-10 overall scale in June 2015: the first
#: overall rating above 5 is dated 2015-06-09, and none before it exceeds 5.
LOUNGE_TEN_POINT_FROM = "2015-06-09"


#: The Kaggle copy of the tweets (the text source) replaced every "late" and "cancel", case-
#: insensitively and even inside words, with "Late Flight" and "Cancelled Flight" ("Cancelled
#: Flightled", "pLate Flights", "unreLate Flightd"): the label leaks into the text and the English
#: is not what customers write. No "late" or "cancel" survives, so the inverse is exact up to case.
_KAGGLE_ARTEFACTS = (("Late Flight", "late"), ("Cancelled Flight", "cancel"))


def repair_tweet(text: str) -> str:
    """Undo the Kaggle copy's "late"/"cancel" substitution (original case is lost)."""
    for artefact, original in _KAGGLE_ARTEFACTS:
        text = text.replace(artefact, original)
    return text


def _float_or_none(value: str) -> float | None:
    return float(value) if value.strip() else None


def load_twitter_us_airline(directory: Path) -> list[Example]:
    """Tweets to six US airlines (Feb 2015).

    Sentiment: ``airline_sentiment`` (3 classes, crowd-labelled; ``metadata`` keeps
    ``airline_sentiment_confidence``, 0.33-1.0, for filtering). Topics/touchpoints: the
    ``negativereason`` of negative tweets through the mapping (e.g. Late Flight ->
    delivery.timeliness + fulfil); ``Can't Tell`` and non-negative tweets carry none. One reason
    per tweet, so absence is not informative. Text: :func:`repair_tweet` undoes the source's
    "Late Flight"/"Cancelled Flight" substitution (``metadata['text_repaired']`` marks the 1,133
    changed tweets). Ids: the Figure Eight ``unit_id`` (``tweet_id``
    repeats in the source, with differing labels for 14 of 120 repeated tweets); ``tweet_id`` is
    kept in metadata.
    """
    out = []
    for row in read_csv(data_file(directory, "en/twitter_us_airline.csv.gz")):
        reason = row["negativereason"] or None
        mapped = TWITTER_REASONS.get(reason) if reason else None
        topics = ()
        if mapped and mapped.topic:
            topics = (
                TopicLabel(id=mapped.topic, polarity="negative", span=None, source_label=reason),
            )
        text = repair_tweet(row["text"])
        out.append(
            Example(
                id=row["unit_id"],
                dataset="twitter_us_airline",
                split=row["split"],
                lang="en",
                text=text,
                sentiment=row["airline_sentiment"],
                topics=topics,
                touchpoints=(mapped.touchpoint,) if mapped and mapped.touchpoint else (),
                metadata={
                    "tweet_id": row["tweet_id"],
                    "airline": row["airline"],
                    "airline_sentiment_confidence": float(row["airline_sentiment_confidence"]),
                    "negativereason_confidence": _float_or_none(row["negativereason_confidence"]),
                    "golden": row["golden"] == "True",
                    "trusted_judgments": int(row["trusted_judgments"]),
                    "retweet_count": int(row["retweet_count"]),
                    "tweet_created": row["tweet_created"],
                    "user_timezone": row["user_timezone"] or None,
                    "text_repaired": text != row["text"],
                },
                raw_labels={
                    "airline_sentiment": row["airline_sentiment"],
                    "negativereason": reason,
                    "airline_sentiment_gold": row["airline_sentiment_gold"] or None,
                    "negativereason_gold": row["negativereason_gold"] or None,
                },
            )
        )
    return out


def load_banking77(directory: Path) -> list[Example]:
    """Online-banking support queries, one of 77 intents each (``raw_labels['intent']``).

    Topics/touchpoints: the intents listed in the mapping table; the others carry none. No
    sentiment. Ids: ``<split>-<row within split>``.
    """
    out, seen = [], Counter[str]()
    for row in read_csv(data_file(directory, "en/banking77.csv.gz")):
        n = seen[row["split"]]
        seen[row["split"]] += 1
        intent = row["category"]
        mapped = BANKING77_INTENTS.get(intent)
        out.append(
            Example(
                id=f"{row['split']}-{n}",
                dataset="banking77",
                split=row["split"],
                lang="en",
                text=row["text"],
                topics=(
                    (TopicLabel(id=mapped.topic, polarity=None, span=None, source_label=intent),)
                    if mapped and mapped.topic
                    else ()
                ),
                touchpoints=(mapped.touchpoint,) if mapped and mapped.touchpoint else (),
                raw_labels={"intent": intent},
            )
        )
    return out


def _skytrax(directory: Path, name: str, subratings: tuple[str, ...]) -> list[Example]:
    rows = read_csv(data_file(directory, f"en/{name}.csv.gz"))
    rating_columns = {f"{s}_rating" for s in subratings} | {"overall_rating", "recommended"}
    out = []
    for i, row in enumerate(rows):
        scores: dict[str, float] = {"recommend": float(row["recommended"])}
        overall = _float_or_none(row["overall_rating"])
        if overall is not None:
            scores["rating"] = overall
            if name == "skytrax_seat" or row["date"] >= LOUNGE_TEN_POINT_FROM:
                scores["rating_scale"] = 10.0
            else:
                scores["rating_scale"] = 5.0
        for sub in subratings:
            value = _float_or_none(row[f"{sub}_rating"])
            if value is not None:  # 0 / empty in the source means "not rated"
                scores[sub] = value
        out.append(
            Example(
                id=str(i),
                dataset=name,
                split="all",
                lang="en",
                text=row["content"],
                scores=scores,
                metadata={
                    k: v for k, v in row.items() if k not in rating_columns and k != "content"
                },
            )
        )
    return out


def load_skytrax_lounge(directory: Path) -> list[Example]:
    """Skytrax airport-lounge reviews (no split: ``split`` is ``all``). Scores: ``rating``
    (overall; ``rating_scale`` 5 before 2015-06-09 and 10 from then on, inferred from the data),
    ``recommend`` 0/1 and the 7 sub-ratings (1-5; absent when not rated). No sentiment or topics.
    Ids: the row number."""
    return _skytrax(directory, "skytrax_lounge", LOUNGE_SUBRATINGS)


def load_skytrax_seat(directory: Path) -> list[Example]:
    """Skytrax seat reviews (no split: ``split`` is ``all``). Scores: ``rating`` (1-10 overall,
    ``rating_scale`` 10), ``recommend`` 0/1 and the 7 seat sub-ratings (1-5; absent when not
    rated). Ids: the row number."""
    return _skytrax(directory, "skytrax_seat", SEAT_SUBRATINGS)
