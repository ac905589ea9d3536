"""Real-model tier: the shipped default model on the real base encoder, as users get it.

Assertions are what any reader of these reviews expects; they are not tuned to the model.
"""

from __future__ import annotations

import pytest

from models.classifier import default_model_dir
from models.classifier.config import ClassifierConfig
from models.taxonomy import default_taxonomy

pytestmark = pytest.mark.slow

ZH_NEGATIVE = "质量太差了，用了两天就坏了，再也不买了"
EN_POSITIVE = "Absolutely love it, great quality and fast shipping!"
DIRTY_ROOM = "The room was dirty"
PRIORITY = {"P1": 1, "P2": 2, "P3": 3, "P4": 4}


@pytest.fixture(scope="module")
def classifier(base_encoder_dir):
    from models.classifier.predict import Classifier

    if not (default_model_dir() / "config.json").is_file():
        pytest.fail(f"the default model is missing from {default_model_dir()}")
    return Classifier.load(default_model_dir(), base_dir=base_encoder_dir)


def one(classifier, text: str) -> dict:
    (res,) = classifier.classify([{"id": "r", "text": text}])
    return res


def test_a_clearly_negative_chinese_review_is_negative(classifier):
    res = one(classifier, ZH_NEGATIVE)
    assert res["lang"] == "zh" and res["model"] == ClassifierConfig.load(default_model_dir()).model_id
    assert res["sentiment"]["label"] == "negative" and res["sentiment"]["score"] < -0.5
    assert res["triage"]["priority"] in ("P1", "P2") and any("再也不" in r for r in res["triage"]["reasons"])


def test_a_clearly_positive_english_review_is_positive(classifier):
    res = one(classifier, EN_POSITIVE)
    assert res["lang"] == "en"
    assert res["sentiment"]["label"] == "positive" and res["sentiment"]["score"] > 0.5
    assert all(t["polarity"] == "positive" for t in res["topics"])


KNOWN_MISS = pytest.mark.xfail(strict=True, reason=(
    "default model v0.4.0 still misses this (issue #3): no English data set labels cleanliness of a "
    "place (SemEval files it under AMBIENCE, mapped to facilities), so 'The room was dirty' gets "
    "environment.facilities (0.51), the wrong leaf; product.quality recall is low on short reviews "
    "whose training sets carry sentiment only (online_shopping_10_cats) or deliveries ('fast "
    "shipping'). training/configs/v0.3-weak.yaml tried weak labels for both and cost more topic "
    "precision than it gave"))


def test_a_dirty_room_is_a_negative_environment_topic(classifier):
    # 0.3.0 gave it no topic (cleanliness 0.20, facilities 0.36); 0.4.0 gives facilities 0.51
    res = one(classifier, DIRTY_ROOM)
    assert res["sentiment"]["label"] == "negative"
    negative = {t["id"] for t in res["topics"] if t["polarity"] == "negative"}
    assert any(t.startswith("environment.") for t in negative), res["topics"]


def test_a_restaurant_complaint_gets_only_topics_it_is_about(classifier):
    # 0.2.0 gave this 9 topics, among them cleanliness, returns, warranty and couriers
    res = one(classifier, "The food was great but the waiter was rude and we waited an hour.")
    found = {t["id"]: t["polarity"] for t in res["topics"]}
    assert found.get("service.attitude") == "negative", res["topics"]
    plausible = {"product.quality", "service.attitude", "service.responsiveness", "service.resolution",
                 "delivery.timeliness"}
    assert set(found) <= plausible, res["topics"]


@pytest.mark.parametrize("text, leaf, polarity", [
    pytest.param(DIRTY_ROOM, "environment.cleanliness", "negative", marks=KNOWN_MISS),
    ("配送太慢了", "delivery.timeliness", "negative"),  # v0.1.0 said delivery.condition
    pytest.param(ZH_NEGATIVE, "product.quality", "negative", marks=KNOWN_MISS),
    pytest.param(EN_POSITIVE, "product.quality", "positive", marks=KNOWN_MISS),
])
def test_the_obvious_leaf_is_found(classifier, text, leaf, polarity):
    res = one(classifier, text)
    assert leaf in {t["id"] for t in res["topics"] if t["polarity"] == polarity}, res["topics"]


def test_labels_come_from_the_default_taxonomy_and_triage_ranks_urgency(classifier):
    tax = default_taxonomy()
    texts = [ZH_NEGATIVE, EN_POSITIVE, DIRTY_ROOM, "快递太慢了，等了一个星期才到", "客服态度很差，问题一直没解决",
             "The agent was rude and my refund still hasn't arrived. I'm cancelling my account."]
    results = classifier.classify([{"id": str(i), "text": t} for i, t in enumerate(texts)])
    assert [r["id"] for r in results] == [str(i) for i in range(len(texts))]
    for res in results:
        assert {t["id"] for t in res["topics"]} <= set(tax.leaf_ids)
        assert {t["id"] for t in res["touchpoints"]} <= set(tax.touchpoint_ids)
        assert res["triage"]["priority"] in PRIORITY and res["triage"]["reasons"]
        assert all(isinstance(r, str) and r for r in res["triage"]["reasons"])
    by_text = dict(zip(texts, results, strict=True))
    happy = PRIORITY[by_text[EN_POSITIVE]["triage"]["priority"]]
    assert happy == 4
    assert PRIORITY[by_text[ZH_NEGATIVE]["triage"]["priority"]] < happy  # a churning customer comes first


def test_a_texts_result_does_not_depend_on_its_batch(classifier):
    alone = one(classifier, DIRTY_ROOM)
    others = ["The hotel room was filthy and the bathroom smelled terrible, and nobody at the front desk cared", "ok"]
    batched = classifier.classify([{"id": "r", "text": DIRTY_ROOM}] + [{"id": str(i), "text": t} for i, t in enumerate(others)])[0]
    assert batched["sentiment"]["score"] == pytest.approx(alone["sentiment"]["score"], abs=1e-3)
    assert {t["id"]: t["confidence"] for t in batched["topics"]} == pytest.approx(
        {t["id"]: t["confidence"] for t in alone["topics"]}, abs=1e-3)


@pytest.mark.parametrize(("text", "topic", "clause"), [
    ("送餐很快，菜很好吃，就是价格有点贵", "delivery.timeliness", "送餐很快"),
    # 0.4.0 with the text's mean as every clause's context chose "The food was great" here
    ("The food was great but the waiter was rude and we waited an hour for the bill.", "service.attitude",
     "but the waiter was rude and we waited an hour for the bill"),
    ("菜很好吃，但是配送太慢了，等了一个多小时", "delivery.timeliness", "等了一个多小时"),
    ("The food was great but the waiter was rude and we waited an hour for the bill.", "product.quality",
     "The food was great"),
])
def test_a_topics_evidence_is_the_clause_that_speaks_of_it(classifier, text, topic, clause):
    res = one(classifier, text)
    found = {t["id"]: t for t in res["topics"]}
    assert topic in found, sorted(found)
    evidence = found[topic]["evidence"]
    assert evidence["text"] == clause and text[evidence["start"] : evidence["end"]] == clause


LONG_PRAISE = (
    "这款保温杯是给家里老人买的，外观是磨砂的，拿在手里很有质感，容量也够一天喝的，杯盖拧得很紧不会漏水，"
    "清洗起来也方便，内胆是不锈钢的没有异味，保温效果试了一下早上倒的热水到晚上还是温的，颜色和图片上一样，"
    "老人用了说挺好用的，每天出门都带着，杯身不重，放在包里也不占地方，杯口大小刚好，喝水不会洒出来，"
    "晚上放一杯热茶第二天早上还能喝，冬天用正合适，和家里以前那个比起来好太多了。"
)  # over 128 tokens: more than the model reads at once
SILENT_SERVICE = "不过有个问题想问客服，发了好几条消息，客服三天都没有回复，态度太差了。"


def test_a_complaint_at_the_end_of_a_long_review_is_found_with_its_evidence(classifier):
    assert len(classifier.model.tokenizer(LONG_PRAISE)["input_ids"]) > classifier.config.max_length
    text = LONG_PRAISE + SILENT_SERVICE
    res = one(classifier, text)
    found = {t["id"]: t for t in res["topics"]}
    service = {t: found[t]["evidence"] for t in found if t.startswith("service.")}
    assert service, sorted(found)  # the customer-service complaint past the first 128 tokens
    for ev in service.values():  # with its evidence there
        assert ev["start"] >= len(LONG_PRAISE) and text[ev["start"]:ev["end"]] == ev["text"], service
    assert all(found[t]["polarity"] == "negative" for t in service)
    assert "product.quality" in found  # and the praise at the start is still read
