"""Metrics on hand-made cases whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evaluation import metrics, scoring
from nlp.errors import InvalidInputError
from training.data.schema import AspectTerm, Example, TopicLabel


def test_accuracy_and_macro_f1_on_known_counts():
    gold = ["positive", "positive", "negative", "negative"]
    pred = ["positive", "negative", "negative", "negative"]
    assert metrics.accuracy(gold, pred) == 0.75
    # positive: P=1, R=0.5, F=2/3; negative: P=2/3, R=1, F=0.8
    assert metrics.macro_f1(gold, pred) == pytest.approx((2 / 3 + 0.8) / 2)
    per = metrics.per_class_prf(gold, pred)
    assert per["negative"]["recall"] == 1.0 and per["positive"]["support"] == 2


def test_mismatched_lengths_name_the_fix():
    with pytest.raises(InvalidInputError, match="same length"):
        metrics.accuracy(["positive"], [])


def test_star_rating_mae_and_within_one():
    assert metrics.mae([5, 4, 1], [4, 4, 3]) == pytest.approx(1.0)
    assert metrics.within_one([5, 4, 1], [4, 4, 3]) == pytest.approx(2 / 3)


def test_bootstrap_interval_brackets_the_accuracy():
    correct = [True] * 80 + [False] * 20
    lo, hi = metrics.bootstrap_ci(correct, seed=1)
    assert lo < 0.8 < hi
    assert 0.65 < lo and hi < 0.92


def test_ece_of_a_calibrated_toy_is_near_zero_and_of_an_overconfident_one_is_not():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.5, 1.0, 20_000)
    correct = rng.uniform(size=conf.size) < conf  # right exactly as often as it claims
    assert metrics.calibration(conf, correct).ece < 0.02
    over = metrics.calibration([0.9] * 100, [True] * 50 + [False] * 50)
    assert over.ece == pytest.approx(0.4)
    assert over.bins[0]["accuracy"] == 0.5 and over.bins[0]["count"] == 100


def test_level1_gold_is_hit_by_any_predicted_leaf_under_it():
    gold = [{"service": "negative"}]
    pred = [{"service.attitude": ("negative", 0.9)}]
    s = metrics.topic_scores(gold, pred, {"service", "delivery.timeliness"})
    assert s.micro_recall == 1.0 and s.micro_precision == 1.0 and s.micro_f1 == 1.0
    assert s.polarity_accuracy == 1.0 and s.polarity_n == 1


def test_a_leaf_under_a_level1_gold_label_is_unknown_not_wrong():
    # "Customer Service Issue" says "something under service": predicting service.resolution is
    # neither a false positive for the service.attitude leaf nor a miss.
    space = {"service", "service.attitude"}
    s = metrics.topic_scores([{"service": "negative"}], [{"service.resolution": ("negative", 0.8)}], space)
    assert s.per_node["service"]["support"] == 1 and s.per_node["service"]["recall"] == 1.0
    assert s.per_node["service.attitude"]["support"] == 0
    assert s.micro_precision == 1.0


def test_predictions_outside_the_topic_space_are_ignored():
    space = {"delivery.timeliness", "price.value"}
    gold = [{"delivery.timeliness": "negative"}, {}]
    pred = [{"delivery.timeliness": ("negative", 0.9), "digital.usability": ("negative", 0.9)},
            {"environment.location": ("positive", 0.7)}]
    s = metrics.topic_scores(gold, pred, space)
    assert s.micro_precision == 1.0 and s.micro_recall == 1.0
    assert set(s.per_node) == space


def test_open_nodes_score_recall_only():
    gold = [{"delivery.timeliness": "negative"}, {}]
    pred = [{"delivery.timeliness": ("negative", 0.9)}, {"delivery.timeliness": ("negative", 0.9)}]
    closed = metrics.topic_scores(gold, pred, {"delivery.timeliness"})
    assert closed.micro_precision == 0.5
    open_ = metrics.topic_scores(gold, pred, {"delivery.timeliness"}, closed=())
    assert open_.micro_recall == 1.0 and open_.micro_precision is None and open_.micro_f1 is None


def test_polarity_is_scored_only_on_correctly_detected_topics_with_known_polarity():
    gold = [{"price.value": "positive"}, {"price.value": "negative"}, {"price.value": "conflict"}]
    pred = [{"price.value": ("positive", 0.9)}, {}, {"price.value": ("negative", 0.9)}]
    s = metrics.topic_scores(gold, pred, {"price.value"})
    assert s.polarity_n == 1 and s.polarity_accuracy == 1.0


def test_span_hit_rate_and_character_f1():
    gold = [[(0, 4)], [(2, 6), (10, 12)]]
    pred = [[(2, 6)], [(20, 22)]]
    s = metrics.span_scores(gold, pred)
    assert s.hit_rate == pytest.approx(1 / 3)
    assert s.precision == 0.5
    # doc 1: gold chars 0-3, pred 2-5 -> 2 shared; doc 2: nothing shared
    assert s.char_precision == pytest.approx(2 / 6) and s.char_recall == pytest.approx(2 / 10)


def _ex(i: int, text: str, sentiment: str | None, **kw) -> Example:
    return Example(id=str(i), dataset="toy", split="test", lang="zh", text=text, sentiment=sentiment, **kw)


def test_binary_sets_collapse_a_neutral_prediction_by_score_or_probabilities():
    assert scoring.collapse_binary({"label": "neutral", "score": -0.1, "confidence": 0.5})[0] == "negative"
    label, conf = scoring.collapse_binary(
        {"label": "neutral", "score": 0.0, "probs": {"negative": 0.1, "neutral": 0.6, "positive": 0.3}})
    assert label == "positive" and conf == pytest.approx(0.75)
    examples = [_ex(0, "送餐太慢了，菜都凉了", "negative"), _ex(1, "味道很好，下次还点", "positive")]
    records = [{"sentiment": {"label": "neutral", "score": -0.2, "confidence": 0.5}},
               {"sentiment": {"label": "positive", "score": 0.9, "confidence": 0.95}}]
    s = scoring.score_sentiment(examples, records, labels=("negative", "positive"))
    assert s["accuracy"] == 1.0 and s["neutral_collapsed"] == 1
    assert s["ece_n"] == 1  # the neutral's confidence says nothing about the collapsed label


def test_score_topics_and_evidence_read_contract_records():
    ex = _ex(0, "菜很好吃但是配送太慢了", None,
             topics=(TopicLabel(id="delivery", polarity="negative", span=(6, 11), source_label="物流"),),
             aspects=(AspectTerm(term="配送", start=6, end=8, polarity="negative"),))
    rec = {"topics": [{"id": "delivery.timeliness", "polarity": "negative", "confidence": 0.9,
                       "evidence": {"start": 6, "end": 11, "text": "配送太慢了"}}]}
    t = scoring.score_topics([ex], [rec], space={"delivery", "price.value"}, closed={"price.value"})
    assert t["micro_recall"] == 1.0 and t["polarity_accuracy"] == 1.0
    assert t["outside_per_text"] == 0  # delivery.timeliness lies under the scheme's "delivery"
    extra = {"topics": rec["topics"] + [{"id": "billing.charges", "confidence": 0.7},
                                        {"id": "environment.cleanliness", "confidence": 0.6}]}
    t = scoring.score_topics([ex, ex], [rec, extra], space={"delivery", "price.value"}, closed={"price.value"})
    assert t["outside_per_text"] == 1.0 and dict(t["outside_top"]) == {"billing.charges": 1, "environment.cleanliness": 1}
    assert t["micro_recall"] == 1.0  # not scored as errors: the data cannot say they are wrong
    e = scoring.score_evidence([ex], [rec])
    assert e["hit_rate"] == 1.0 and e["char_recall"] == 1.0 and e["char_precision"] == pytest.approx(2 / 5)
    assert e["topic_evidence_hit"] == 1.0 and e["topic_evidence_n"] == 1
    off = {"topics": [rec["topics"][0] | {"evidence": {"start": 0, "end": 3, "text": "菜很好"}}]}
    assert scoring.score_evidence([ex], [off])["topic_evidence_hit"] == 0.0
    with pytest.raises(InvalidInputError, match="one record per input text"):
        scoring.score_topics([ex], [], space={"delivery"}, closed=())
    assert math.isnan(metrics.span_scores([], []).hit_rate)
