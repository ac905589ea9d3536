"""Loaders for the Chinese data sets. Each takes the data directory and returns every split."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from .files import data_file, read_csv, read_jsonl
from .mapping import ASAP_ASPECTS, ZHIJIANG_CATEGORIES
from .schema import AspectTerm, Example, TopicLabel, agreeing_polarity

_BINARY = {"1": "positive", "0": "negative"}
_ASAP_POLARITY = {"1": "positive", "0": "neutral", "-1": "negative"}  # -2: not mentioned


def _binary_sentiment(name: str, path: Path, metadata_fields: tuple[str, ...]) -> list[Example]:
    return [
        Example(
            id=row["id"],
            dataset=name,
            split=row["split"],
            lang="zh",
            text=row["review"],
            sentiment=_BINARY[row["label"]],
            metadata={k: row[k] for k in metadata_fields},
            raw_labels={"label": int(row["label"])},
        )
        for row in read_csv(path)
    ]


def load_online_shopping_10_cats(directory: Path) -> list[Example]:
    """E-commerce reviews. Sentiment: ``label`` 1 -> positive, 0 -> negative (binary, never
    neutral). ``metadata['cat']`` is the product category (书籍, 酒店, 水果, ...). No topics."""
    path = data_file(directory, "zh/online_shopping_10_cats.csv.gz")
    return _binary_sentiment("online_shopping_10_cats", path, ("cat",))


def load_waimai_10k(directory: Path) -> list[Example]:
    """Food-delivery reviews. Sentiment: ``label`` 1 -> positive, 0 -> negative. No topics."""
    return _binary_sentiment("waimai_10k", data_file(directory, "zh/waimai_10k.csv.gz"), ())


def _union(*spans: list[int] | None) -> tuple[int, int] | None:
    real = [s for s in spans if s is not None and s[0] >= 0]
    if not real:
        return None
    return min(s[0] for s in real), max(s[1] for s in real)


def load_zhijiang2019_makeup_opinion(directory: Path) -> list[Example]:
    """Cosmetics reviews with (aspect, opinion, category, polarity) quads.

    Topics: each quad whose ``category_zh`` is in the mapping table gives one :class:`TopicLabel`
    (polarity of the quad, span = the union of its aspect and opinion spans); 整体, 包装 and 其他
    are unmapped. Aspects: quads with an explicit aspect term. Sentiment: the quads' polarity when
    all quads of the review agree, else ``None``. Ids: the source id for the labelled ``train`` and
    ``dev`` reviews; ``u-<id>`` for ``test_unlabeled`` (whose ids restart and whose labels were
    never released: no sentiment, no topics).
    """
    out = []
    for row in read_jsonl(data_file(directory, "zh/zhijiang2019_makeup_opinion.jsonl.gz")):
        quads = row["quads"] or []
        unlabelled = row["split"] == "test_unlabeled"
        topics, touchpoints, aspects = [], [], []
        for q in quads:
            mapped = ZHIJIANG_CATEGORIES.get(q["category_zh"])
            if mapped and mapped.topic:
                span = _union(q["aspect_span"], q["opinion_span"])
                topics.append(
                    TopicLabel(
                        id=mapped.topic,
                        polarity=q["polarity"],
                        span=span,
                        source_label=q["category_zh"],
                    )
                )
            if mapped and mapped.touchpoint and mapped.touchpoint not in touchpoints:
                touchpoints.append(mapped.touchpoint)
            if q["aspect"] is not None:
                start, end = q["aspect_span"]
                aspects.append(
                    AspectTerm(
                        term=q["aspect"],
                        start=start,
                        end=end,
                        polarity=q["polarity"],
                        category=q["category_zh"],
                    )
                )
        out.append(
            Example(
                id=f"u-{row['id']}" if unlabelled else str(row["id"]),
                dataset="zhijiang2019_makeup_opinion",
                split=row["split"],
                lang="zh",
                text=row["text"],
                sentiment=agreeing_polarity([q["polarity"] for q in quads]),
                topics=tuple(topics),
                touchpoints=tuple(touchpoints),
                aspects=tuple(aspects),
                metadata={"source_id": row["id"], "labelled": not unlabelled},
                raw_labels={} if unlabelled else {"quads": quads},
            )
        )
    return out


def load_chinese_absa_products(directory: Path) -> list[Example]:
    """Aspect terms with offsets and polarity (camera, car, notebook, phone, shampoo).

    No categories, so no topics. Sentiment: the aspects' polarity when all agree, except for the
    ``shampoo`` domain, whose annotation is sparse (other aspects are often left unlabelled), where
    it stays ``None``. Ids: ``<split>-<row within split>`` (the source has none, and 1,844 texts
    recur, sometimes across domains and splits).
    """
    out, seen = [], Counter[str]()
    for row in read_jsonl(data_file(directory, "zh/chinese_absa_products.jsonl.gz")):
        n = seen[row["split"]]
        seen[row["split"]] += 1
        aspects = tuple(
            AspectTerm(term=a["term"], start=a["from"], end=a["to"], polarity=a["polarity"])
            for a in row["aspects"]
        )
        sentiment = None
        if row["domain"] != "shampoo":
            sentiment = agreeing_polarity([a.polarity for a in aspects if a.polarity])
        out.append(
            Example(
                id=f"{row['split']}-{n}",
                dataset="chinese_absa_products",
                split=row["split"],
                lang="zh",
                text=row["text"],
                sentiment=sentiment,
                aspects=aspects,
                metadata={"domain": row["domain"]},
                raw_labels={"aspects": row["aspects"]},
            )
        )
    return out


def load_asap_samples(directory: Path) -> list[Example]:
    """The 300 public ASAP sample rows (Dianping restaurant reviews): smoke tests only.

    Topics: each of the 18 aspect columns that is mentioned (1 positive, 0 neutral, -1 negative;
    -2 = not mentioned, absent) gives a :class:`TopicLabel`; all 18 are annotated on every row, so
    absence is informative. ``star`` (1-5) goes to ``scores['rating']`` with ``rating_scale`` 5;
    document sentiment is not derived from it. Ids: the source ``index``.
    """
    out = []
    for row in read_csv(data_file(directory, "zh/asap_samples.csv")):
        topics, touchpoints = [], []
        for column, mapped in ASAP_ASPECTS.items():
            polarity = _ASAP_POLARITY.get(row[column])
            if polarity is None:
                continue
            topics.append(
                TopicLabel(id=mapped.topic, polarity=polarity, span=None, source_label=column)
            )
            if mapped.touchpoint not in touchpoints:
                touchpoints.append(mapped.touchpoint)
        out.append(
            Example(
                id=row["index"],
                dataset="asap_samples",
                split=row["split"],
                lang="zh",
                text=row["reviewbody"],
                topics=tuple(topics),
                touchpoints=tuple(touchpoints),
                scores={"rating": float(row["star"]), "rating_scale": 5.0},
                raw_labels={c: int(row[c]) for c in ASAP_ASPECTS} | {"star": float(row["star"])},
            )
        )
    return out
