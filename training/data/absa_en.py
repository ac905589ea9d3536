"""Loaders for the English aspect-based sentiment sets: SemEval-2014/2016, ACOS and MAMS.

None of them labels the whole sentence. Document sentiment is derived (``aspects_agree``) as the
common polarity when every category opinion of the sentence agrees, and is ``None`` for mixed
sentences, sentences with no opinion, and any ``conflict``. MAMS is excluded: by construction every
MAMS sentence mixes polarities, so its sentiment is always ``None``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .files import data_file, read_jsonl
from .mapping import map_absa_category
from .schema import AspectTerm, Example, TopicLabel, agreeing_polarity


def _labels(
    opinions: Iterable[tuple[str, str | None, tuple[int, int] | None]],
) -> tuple[tuple[TopicLabel, ...], tuple[str, ...]]:
    """(category, polarity, span) opinions -> mapped topic labels and touchpoints."""
    topics, touchpoints = [], []
    for category, polarity, span in opinions:
        mapped = map_absa_category(category)
        if mapped is None:
            continue
        if mapped.topic:
            topics.append(
                TopicLabel(id=mapped.topic, polarity=polarity, span=span, source_label=category)
            )
        if mapped.touchpoint and mapped.touchpoint not in touchpoints:
            touchpoints.append(mapped.touchpoint)
    return tuple(topics), tuple(touchpoints)


def load_semeval2014_restaurants(directory: Path) -> list[Example]:
    """SemEval-2014 Task 4 restaurants: 5 coarse categories (exhaustive per sentence, incl.
    ``anecdotes/miscellaneous``, which is unmapped) and aspect terms with offsets. Category
    polarity may be ``conflict``. Ids: the source sentence id, stripped (two carry a trailing
    space in the source)."""
    out = []
    for row in read_jsonl(data_file(directory, "en/semeval2014_restaurants.jsonl.gz")):
        cats = row["aspect_categories"]
        terms = row.get("aspect_terms") or []
        topics, touchpoints = _labels((c["category"], c["polarity"], None) for c in cats)
        out.append(
            Example(
                id=row["id"].strip(),
                dataset="semeval2014_restaurants",
                split=row["split"],
                lang="en",
                text=row["text"],
                sentiment=agreeing_polarity([c["polarity"] for c in cats]),
                topics=topics,
                touchpoints=touchpoints,
                aspects=tuple(
                    AspectTerm(term=t["term"], start=t["from"], end=t["to"], polarity=t["polarity"])
                    for t in terms
                ),
                raw_labels={"aspect_categories": cats, "aspect_terms": terms},
            )
        )
    return out


def _semeval2016(directory: Path, name: str) -> list[Example]:
    out = []
    for row in read_jsonl(data_file(directory, f"en/{name}.jsonl.gz")):
        cats: list[dict[str, Any]] = row["aspect_categories"]
        aspects, opinions = [], []
        for c in cats:
            span = None
            target = c.get("target")
            if target not in (None, "NULL"):
                span = (c["from"], c["to"])
                # the text slice, not ``target``: one gold target differs in case from the text
                term = row["text"][c["from"] : c["to"]]
                aspects.append(
                    AspectTerm(
                        term=term,
                        start=c["from"],
                        end=c["to"],
                        polarity=c["polarity"],
                        category=c["category"],
                    )
                )
            opinions.append((c["category"], c["polarity"], span))
        topics, touchpoints = _labels(opinions)
        out.append(
            Example(
                id=row["id"],
                dataset=name,
                split=row["split"],
                lang="en",
                text=row["text"],
                sentiment=agreeing_polarity([c["polarity"] for c in cats]),
                topics=topics,
                touchpoints=touchpoints,
                aspects=tuple(aspects),
                metadata={"out_of_scope": bool(row.get("out_of_scope"))},
                raw_labels={"aspect_categories": cats},
            )
        )
    return out


def load_semeval2016_restaurants(directory: Path) -> list[Example]:
    """SemEval-2016 Task 5 SB1 restaurants: ``ENTITY#ATTRIBUTE`` opinions, with target offsets
    where the target is explicit. Ids: the source ``review_id:sentence_no``."""
    return _semeval2016(directory, "semeval2016_restaurants")


def load_semeval2016_laptops(directory: Path) -> list[Example]:
    """SemEval-2016 Task 5 SB1 laptops (train only): 81 ``ENTITY#ATTRIBUTE`` categories, no
    targets. Ids: the source ``review_id:sentence_no``."""
    return _semeval2016(directory, "semeval2016_laptops")


def _char_offsets(text: str) -> list[tuple[int, int]]:
    """Character offsets of the space-separated tokens of ACOS's tokenised text."""
    offsets, pos = [], 0
    for token in text.split(" "):
        offsets.append((pos, pos + len(token)))
        pos += len(token) + 1
    return offsets


def _token_span(offsets: list[tuple[int, int]], span: list[int]) -> tuple[int, int] | None:
    if span is None or span[0] < 0 or span[1] <= span[0]:
        return None
    return offsets[span[0]][0], offsets[span[1] - 1][1]


def load_acos(directory: Path) -> list[Example]:
    """ACOS quads (laptop and restaurant; lower-cased, tokenised text). Token spans are turned
    into character offsets; a topic's span is the union of its aspect and opinion spans. Ids:
    ``<split>-<row within split>``; ``metadata['domain']`` is laptop or restaurant."""
    out, seen = [], Counter[str]()
    for row in read_jsonl(data_file(directory, "en/acos.jsonl.gz")):
        n = seen[row["split"]]
        seen[row["split"]] += 1
        offsets = _char_offsets(row["text"])
        aspects, opinions = [], []
        for q in row["quads"]:
            a_span = _token_span(offsets, q["aspect_span"])
            o_span = _token_span(offsets, q["opinion_span"])
            if q["aspect"] is not None and a_span is not None:
                aspects.append(
                    AspectTerm(
                        term=row["text"][a_span[0] : a_span[1]],
                        start=a_span[0],
                        end=a_span[1],
                        polarity=q["polarity"],
                        category=q["category"],
                    )
                )
            spans = [s for s in (a_span, o_span) if s is not None]
            span = (min(s[0] for s in spans), max(s[1] for s in spans)) if spans else None
            opinions.append((q["category"], q["polarity"], span))
        topics, touchpoints = _labels(opinions)
        out.append(
            Example(
                id=f"{row['split']}-{n}",
                dataset="acos",
                split=row["split"],
                lang="en",
                text=row["text"],
                sentiment=agreeing_polarity([q["polarity"] for q in row["quads"]]),
                topics=topics,
                touchpoints=touchpoints,
                aspects=tuple(aspects),
                metadata={"domain": row["domain"]},
                raw_labels={"quads": row["quads"]},
            )
        )
    return out


def load_mams_acsa(directory: Path) -> list[Example]:
    """MAMS ACSA: 8 coarse categories x polarity, every sentence mixing polarities. ``menu`` and
    ``miscellaneous`` are unmapped. Sentiment is always ``None``. Ids: ``<split>-<row within
    split>`` (the source has none)."""
    out, seen = [], Counter[str]()
    for row in read_jsonl(data_file(directory, "en/mams_acsa.jsonl.gz")):
        n = seen[row["split"]]
        seen[row["split"]] += 1
        cats = row["aspect_categories"]
        topics, touchpoints = _labels((c["category"], c["polarity"], None) for c in cats)
        out.append(
            Example(
                id=f"{row['split']}-{n}",
                dataset="mams_acsa",
                split=row["split"],
                lang="en",
                text=row["text"],
                topics=topics,
                touchpoints=touchpoints,
                raw_labels={"aspect_categories": cats},
            )
        )
    return out
