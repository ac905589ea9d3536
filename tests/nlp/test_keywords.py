"""Keyphrases for sets of verbatims in Chinese, English and both."""

from __future__ import annotations

import re

import pytest

from nlp.errors import InvalidInputError
from nlp.keywords import extract_keyphrases
from nlp.segment import get_default_segmenter

ZH_DELIVERY = [
    "送餐太慢了，等了一个多小时，外卖小哥还说不是他的问题",
    "配送速度太慢，饭菜都凉了",
    "送餐慢，一个半小时才送到，差评",
    "外卖小哥迷路了，送餐晚了四十分钟",
    "味道还可以，就是配送太慢",
    "超时一个小时，打电话给骑手也不接",
]
EN_SERVICE = [
    "Customer service hung up on me twice.",
    "Waited on hold for 2 hours, customer service never answered",
    "The customer service agent was rude and not helpful",
    "Still no refund, customer service keeps transferring me",
    "Your customer service is the worst, on hold again",
]
_PUNCT = re.compile(r"^[\W_]+$")


def _phrases(result: list[tuple[str, float]]) -> list[str]:
    return [p for p, _ in result]


def test_chinese_keywords_name_the_problem() -> None:
    result = extract_keyphrases(ZH_DELIVERY, top_k=5)
    phrases = _phrases(result)
    assert "送餐" in phrases and "外卖小哥" in _phrases(extract_keyphrases(ZH_DELIVERY, top_k=10))
    assert any(p in phrases for p in ("太慢", "小时", "配送"))


def test_english_keyphrases_include_bigrams() -> None:
    phrases = _phrases(extract_keyphrases(EN_SERVICE, top_k=5))
    assert phrases[0] == "customer service"
    assert "hold" in phrases


def test_results_sorted_without_stop_words_or_punctuation() -> None:
    result = extract_keyphrases(ZH_DELIVERY + EN_SERVICE, top_k=15)
    scores = [s for _, s in result]
    assert scores == sorted(scores, reverse=True)
    assert 0 < scores[-1] <= scores[0] <= 1
    stop = get_default_segmenter().stopwords
    for phrase, _ in result:
        assert not _PUNCT.match(phrase)
        assert all(word not in stop for word in phrase.split())
    phrases = _phrases(result)
    assert "customer service" in phrases and "送餐" in phrases


def test_forced_language_uses_one_side() -> None:
    phrases = _phrases(extract_keyphrases(ZH_DELIVERY + EN_SERVICE, top_k=10, lang="en"))
    assert all(re.fullmatch(r"[a-z0-9' -]+", p) for p in phrases)


def test_placeholders_and_mentions_are_not_keywords() -> None:
    texts = ["@united call me at [PHONE], my bag is lost", "@united lost bag again [ORDER]"]
    phrases = _phrases(extract_keyphrases(texts, top_k=10))
    assert "phone" not in phrases and "order" not in phrases and "united" not in phrases
    assert "lost bag" in phrases or "lost" in phrases


def test_bad_arguments() -> None:
    with pytest.raises(InvalidInputError):
        extract_keyphrases("送餐太慢")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        extract_keyphrases(["ok"], top_k=0)
    assert extract_keyphrases(["👍👍", "!!!"]) == []
