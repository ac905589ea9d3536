"""The catalogue of public data sets and :func:`load_dataset`."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from nlp.errors import InvalidInputError

from . import absa_en, en, zh
from .files import data_dir as resolve_data_dir
from .mapping import (
    ASAP_ASPECTS,
    BANKING77_INTENTS,
    TWITTER_REASONS,
    ZHIJIANG_CATEGORIES,
    map_absa_category,
    space_of,
)
from .schema import DatasetInfo, Example, SentimentSource

_RESEARCH = "research use only (no licence stated by the source)"


def _absa_space(categories: list[str]) -> tuple[frozenset[str], frozenset[str]]:
    return space_of(m for c in categories if (m := map_absa_category(c)) is not None)


_SE14 = _absa_space(["food", "service", "ambience", "price", "anecdotes/miscellaneous"])
_MAMS = _absa_space(
    ["food", "staff", "miscellaneous", "place", "service", "menu", "price", "ambience"]
)
_SE16_REST = _absa_space(
    ["FOOD#QUALITY", "SERVICE#GENERAL", "RESTAURANT#GENERAL", "AMBIENCE#GENERAL",
     "FOOD#STYLE_OPTIONS", "RESTAURANT#MISCELLANEOUS", "FOOD#PRICES", "RESTAURANT#PRICES",
     "DRINKS#QUALITY", "DRINKS#STYLE_OPTIONS", "LOCATION#GENERAL", "DRINKS#PRICES"]
)  # fmt: skip
_LAPTOP = _absa_space(
    ["LAPTOP#GENERAL", "LAPTOP#PRICE", "SUPPORT#QUALITY", "SHIPPING#QUALITY", "WARRANTY#GENERAL"]
)
_ACOS = (_SE16_REST[0] | _LAPTOP[0], _SE16_REST[1] | _LAPTOP[1])
_ZHIJIANG = space_of(ZHIJIANG_CATEGORIES.values())
_ASAP = space_of(ASAP_ASPECTS.values())
_TWITTER = space_of(TWITTER_REASONS.values())
_BANKING = space_of(BANKING77_INTENTS.values())


def _info(
    name: str, lang: str, path: str, license: str, counts: dict[str, int], **kw
) -> DatasetInfo:
    return DatasetInfo(
        name=name, lang=lang, path=path, license=license, splits=tuple(counts), counts=counts, **kw
    )


DATASETS: dict[str, DatasetInfo] = {
    i.name: i
    for i in (
        _info("online_shopping_10_cats", "zh", "zh/online_shopping_10_cats.csv.gz", _RESEARCH,
              {"train": 49044, "dev": 6169, "test": 6325}, sentiment_source=SentimentSource.label,
              description="e-commerce reviews, 10 product categories, binary sentiment"),
        _info("waimai_10k", "zh", "zh/waimai_10k.csv.gz", _RESEARCH,
              {"train": 9564, "dev": 1191, "test": 1162}, sentiment_source=SentimentSource.label,
              description="food-delivery reviews, binary sentiment, short texts"),
        _info("zhijiang2019_makeup_opinion", "zh", "zh/zhijiang2019_makeup_opinion.jsonl.gz",
              "research use only (competition data, no licence stated)",
              {"train": 2237, "dev": 305, "test_unlabeled": 2177},
              sentiment_source=SentimentSource.aspects_agree,
              topic_space=_ZHIJIANG[0], touchpoint_space=_ZHIJIANG[1],
              closed_topics=_ZHIJIANG[0] - {"delivery", "product.design"},
              has_aspect_spans=True, unlabelled_splits=("test_unlabeled",),
              description="cosmetics reviews, opinion quads; 包装 (packaging) is unmapped and may "
              "be shipping (delivery) or product packaging (product.design), so those two are "
              "not closed"),
        _info("chinese_absa_products", "zh", "zh/chinese_absa_products.jsonl.gz",
              "research use only (MIT repository; data under original licences)",
              {"train": 11372, "test": 2542}, sentiment_source=SentimentSource.aspects_agree,
              has_aspect_spans=True,
              description="aspect terms with offsets and polarity: camera, car, notebook, phone, "
              "shampoo (sentiment not derived for shampoo: sparse annotation)"),
        _info("asap_samples", "zh", "zh/asap_samples.csv", "Apache-2.0",
              {"train": 100, "dev": 100, "test": 100}, sentiment_source=SentimentSource.none,
              topic_space=_ASAP[0], touchpoint_space=_ASAP[1], closed_topics=_ASAP[0],
              score_fields=("rating", "rating_scale"),
              description="300 public ASAP sample rows, 18 restaurant aspects; smoke tests only"),
        _info("semeval2014_restaurants", "en", "en/semeval2014_restaurants.jsonl.gz", _RESEARCH,
              {"train": 3041, "test": 800}, sentiment_source=SentimentSource.aspects_agree,
              topic_space=_SE14[0], touchpoint_space=_SE14[1], closed_topics=_SE14[0],
              has_aspect_spans=True,
              description="SemEval-2014 restaurants: 5 categories x polarity (incl. conflict), "
              "aspect terms with offsets"),
        _info("semeval2016_restaurants", "en", "en/semeval2016_restaurants.jsonl.gz", _RESEARCH,
              {"train": 2000, "test": 676}, sentiment_source=SentimentSource.aspects_agree,
              topic_space=_SE16_REST[0], touchpoint_space=_SE16_REST[1],
              closed_topics=_SE16_REST[0], has_aspect_spans=True,
              description="SemEval-2016 restaurants: 12 ENTITY#ATTRIBUTE categories x polarity"),
        _info("semeval2016_laptops", "en", "en/semeval2016_laptops.jsonl.gz", _RESEARCH,
              {"train": 2450}, sentiment_source=SentimentSource.aspects_agree,
              topic_space=_LAPTOP[0], touchpoint_space=_LAPTOP[1], closed_topics=_LAPTOP[0],
              description="SemEval-2016 laptops (train only): 81 ENTITY#ATTRIBUTE categories"),
        _info("acos", "en", "en/acos.jsonl.gz", "research use only (cite Cai et al., ACL 2021)",
              {"train": 4464, "dev": 497, "test": 1399},
              sentiment_source=SentimentSource.aspects_agree,
              topic_space=_ACOS[0], touchpoint_space=_ACOS[1],
              closed_topics=_ACOS[0] - {"product.quality"}, has_aspect_spans=True,
              description="ACOS quads, laptop + restaurant, lower-cased tokenised text; "
              "product.quality is not closed because LAPTOP#QUALITY and kin are unmapped"),
        _info("mams_acsa", "en", "en/mams_acsa.jsonl.gz", "Apache-2.0",
              {"train": 3149, "dev": 400, "test": 400}, sentiment_source=SentimentSource.none,
              topic_space=_MAMS[0], touchpoint_space=_MAMS[1], closed_topics=_MAMS[0],
              description="MAMS ACSA: 8 categories x polarity, every sentence mixes polarities"),
        _info("banking77", "en", "en/banking77.csv.gz", "CC BY 4.0",
              {"train": 10003, "test": 3040}, sentiment_source=SentimentSource.none,
              topic_space=_BANKING[0], touchpoint_space=_BANKING[1],
              description="77 banking support intents; only the table's intents are mapped, and "
              "unmapped intents overlap mapped topics (e.g. compromised_card), so none is closed"),
        _info("twitter_us_airline", "en", "en/twitter_us_airline.csv.gz",
              "CC BY-NC-SA 4.0 (non-commercial)", {"train": 9324, "dev": 1169, "test": 1214},
              sentiment_source=SentimentSource.label,
              topic_space=_TWITTER[0], touchpoint_space=_TWITTER[1],
              description="airline tweets, 3-class sentiment; one negative reason per negative "
              "tweet, so no topic is closed"),
        _info("skytrax_lounge", "en", "en/skytrax_lounge.csv.gz", "research use only",
              {"all": 2264}, sentiment_source=SentimentSource.none,
              score_fields=("rating", "rating_scale", "recommend", *en.LOUNGE_SUBRATINGS),
              description="lounge reviews with overall rating, recommend flag and 7 sub-ratings"),
        _info("skytrax_seat", "en", "en/skytrax_seat.csv.gz", "research use only",
              {"all": 1258}, sentiment_source=SentimentSource.none,
              score_fields=("rating", "rating_scale", "recommend", *en.SEAT_SUBRATINGS),
              description="seat reviews with overall rating, recommend flag and 7 sub-ratings"),
    )
}  # fmt: skip

_LOADERS: dict[str, Callable[[Path], list[Example]]] = {
    "online_shopping_10_cats": zh.load_online_shopping_10_cats,
    "waimai_10k": zh.load_waimai_10k,
    "zhijiang2019_makeup_opinion": zh.load_zhijiang2019_makeup_opinion,
    "chinese_absa_products": zh.load_chinese_absa_products,
    "asap_samples": zh.load_asap_samples,
    "semeval2014_restaurants": absa_en.load_semeval2014_restaurants,
    "semeval2016_restaurants": absa_en.load_semeval2016_restaurants,
    "semeval2016_laptops": absa_en.load_semeval2016_laptops,
    "acos": absa_en.load_acos,
    "mams_acsa": absa_en.load_mams_acsa,
    "banking77": en.load_banking77,
    "twitter_us_airline": en.load_twitter_us_airline,
    "skytrax_lounge": en.load_skytrax_lounge,
    "skytrax_seat": en.load_skytrax_seat,
}


@lru_cache(maxsize=64)
def _load_all(name: str, directory: Path) -> tuple[Example, ...]:
    return tuple(_LOADERS[name](directory))


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``name`` (``zh/`` or ``en/`` prefixes are accepted)."""
    key = name.split("/", 1)[1] if name[:3] in ("zh/", "en/") else name
    if key not in DATASETS:
        raise InvalidInputError(
            f"unknown data set {name!r}; expected one of: {', '.join(sorted(DATASETS))}",
            details={"name": name, "known": sorted(DATASETS)},
        )
    return DATASETS[key]


def load_dataset(
    name: str,
    split: str | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
) -> list[Example]:
    """All examples of data set ``name`` (every split when ``split`` is None), in file order.

    The data directory is ``data_dir``, else ``$VERBATIM_DATA``, else ``../shared/data`` beside
    the repository root. Parsed files are cached per process: treat the examples as read-only.
    """
    info = dataset_info(name)
    if split is not None and split not in info.splits:
        raise InvalidInputError(
            f"data set {info.name!r} has no split {split!r}; its splits are: "
            f"{', '.join(info.splits)}",
            details={"name": info.name, "split": split, "splits": list(info.splits)},
        )
    examples = _load_all(info.name, resolve_data_dir(data_dir).resolve())
    if split is None:
        return list(examples)
    return [e for e in examples if e.split == split]
