"""Public data-set loaders: counts, ids, and the mapping applied to known rows."""

from __future__ import annotations

from collections import Counter

import pytest

from nlp.errors import DataUnavailableError, InvalidInputError
from training.data import DATASETS, absa_en, en, load_dataset, zh
from training.data.mapping import TOPIC_IDS, TOPIC_LEVEL1_IDS, TOUCHPOINT_IDS

# Row totals stated in ../shared/data/README.md.
README_ROWS = {
    "online_shopping_10_cats": 61_538,
    "waimai_10k": 11_917,
    "zhijiang2019_makeup_opinion": 2_542 + 2_177,
    "chinese_absa_products": 13_914,
    "asap_samples": 300,
    "semeval2014_restaurants": 3_841,
    "semeval2016_restaurants": 2_676,
    "semeval2016_laptops": 2_450,
    "acos": 6_360,
    "mams_acsa": 3_949,
    "banking77": 13_043,
    "twitter_us_airline": 11_707,
    "skytrax_lounge": 2_264,
    "skytrax_seat": 1_258,
}


def _by_id(name, split=None):
    return {e.id: e for e in load_dataset(name, split)}


def test_missing_data_dir_names_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("VERBATIM_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DataUnavailableError, match="VERBATIM_DATA"):
        load_dataset("waimai_10k")


def test_unknown_names_and_splits_are_explained():
    with pytest.raises(InvalidInputError, match="expected one of: acos, asap_samples"):
        load_dataset("chnsenticorp")
    with pytest.raises(InvalidInputError, match="its splits are: train, test"):
        load_dataset("banking77", "dev")


@pytest.mark.data
def test_every_data_set_loads_with_readme_counts_and_unique_ids(shared_data):
    assert set(DATASETS) == set(README_ROWS)
    for name, info in DATASETS.items():
        examples = load_dataset(name)
        assert len(examples) == README_ROWS[name], name
        assert dict(Counter(e.split for e in examples)) == info.counts, name
        ids = [e.id for e in examples]
        assert len(set(ids)) == len(ids), f"{name}: ids not unique"
        assert all(e.text.strip() and e.lang == info.lang for e in examples), name
        for e in examples:
            assert e.sentiment in (None, "negative", "neutral", "positive")
            assert e.topic_ids <= info.topic_space, (name, e.id)
            assert set(e.touchpoints) <= info.touchpoint_space, (name, e.id)
            for t in e.topics:
                assert t.id in TOPIC_IDS | TOPIC_LEVEL1_IDS
                assert t.span is None or 0 <= t.span[0] < t.span[1] <= len(e.text)
            for a in e.aspects:
                assert e.text[a.start : a.end] == a.term, (name, e.id, a)
        assert info.closed_topics <= info.topic_space
        assert info.touchpoint_space <= TOUCHPOINT_IDS


@pytest.mark.data
def test_ids_are_stable_across_loads(shared_data):
    for loader, name in [(zh.load_chinese_absa_products, "chinese_absa_products"),
                         (absa_en.load_acos, "acos"), (en.load_banking77, "banking77")]:  # fmt: skip
        fresh = [(e.id, e.text) for e in loader(shared_data)]
        assert fresh == [(e.id, e.text) for e in load_dataset(name)]
    assert _by_id("banking77", "train")["train-0"].text == "I am still waiting on my card?"
    assert _by_id("semeval2014_restaurants")["3121"].text == "But the staff was so horrible to us."
    assert _by_id("online_shopping_10_cats")["0"].metadata == {"cat": "书籍"}


@pytest.mark.data
def test_binary_chinese_sentiment(shared_data):
    waimai = _by_id("waimai_10k")
    assert waimai["0"].text == "很快，好吃，味道足，量大" and waimai["0"].sentiment == "positive"
    test = load_dataset("online_shopping_10_cats", "test")
    assert Counter(e.sentiment for e in test).keys() == {"positive", "negative"}
    assert not any(e.topics or e.touchpoints for e in test)


@pytest.mark.data
def test_twitter_reasons_map_to_topics_and_touchpoints(shared_data):
    tweets = load_dataset("twitter_us_airline")
    late = _by_id("twitter_us_airline")["681449033"]
    assert late.raw_labels["negativereason"] == "Late Flight"
    assert [(t.id, t.polarity) for t in late.topics] == [("delivery.timeliness", "negative")]
    assert late.touchpoints == ("fulfil",)
    assert late.metadata["negativereason_confidence"] == pytest.approx(0.6624)
    # the Kaggle text artefact is undone: "Late Flightr" was "later"
    assert "kept getting later" in late.text and "Late Flight" not in late.text
    assert not any("Late Flight" in e.text or "Cancelled Flight" in e.text for e in tweets)

    by_reason = {}
    for e in tweets:
        by_reason.setdefault(e.raw_labels["negativereason"], e)
    assert by_reason["Can't Tell"].topics == () and by_reason["Can't Tell"].touchpoints == ()
    assert by_reason["Flight Booking Problems"].topics == ()
    assert by_reason["Flight Booking Problems"].touchpoints == ("purchase",)
    assert by_reason["Customer Service Issue"].topic_ids == {"service"}
    assert by_reason["Customer Service Issue"].touchpoints == ("support",)
    assert by_reason["Lost Luggage"].topic_ids == {"delivery.condition"}
    assert by_reason[None].topics == () and by_reason[None].sentiment in ("neutral", "positive")
    confidences = [e.metadata["airline_sentiment_confidence"] for e in tweets]
    assert min(confidences) >= 0.3 and max(confidences) == 1.0


@pytest.mark.data
def test_zhijiang_quads(shared_data):
    dev = _by_id("zhijiang2019_makeup_opinion", "dev")
    value = dev["12"]  # 气垫水润，还送了一个替换装，很值
    assert [(t.id, t.polarity, t.source_label) for t in value.topics] == [
        ("price.value", "positive", "价格")
    ]
    start, end = value.topics[0].span
    assert value.text[start:end] == "很值" and value.touchpoints == ("purchase",)
    mixed = dev["2"]  # 很好，遮暇功能差一些，总体还不错
    assert mixed.sentiment is None
    assert mixed.topic_polarities() == {"product.function": "negative"}  # 整体 is unmapped
    assert [(a.term, a.start, a.end) for a in mixed.aspects] == [("遮暇功能", 3, 7)]
    packaging = _by_id("zhijiang2019_makeup_opinion", "train")["3"]  # 包装太随便了 ...
    assert packaging.topics == () and packaging.sentiment == "negative"
    unlabelled = load_dataset("zhijiang2019_makeup_opinion", "test_unlabeled")
    assert all(e.id.startswith("u-") and not e.topics and e.sentiment is None for e in unlabelled)


@pytest.mark.data
def test_chinese_absa_and_asap(shared_data):
    absa = load_dataset("chinese_absa_products", "train")
    assert (absa[0].text, absa[0].aspects[0].term) == ("寸万像素的超级晶彩屏视角非常宽", "彩屏视角")
    assert absa[0].sentiment == "positive" and absa[0].metadata == {"domain": "camera"}
    assert all(e.sentiment is None for e in absa if e.metadata["domain"] == "shampoo")
    asap = _by_id("asap_samples")["46277"]  # location_traffic 1, service_waiters_attitude 1, ...
    labels = {(t.source_label, t.id, t.polarity) for t in asap.topics}
    assert ("location_traffic", "environment.location", "positive") in labels
    assert ("service_waiters_attitude", "service.attitude", "positive") in labels
    assert not any(t.source_label == "service_wait_time" for t in asap.topics)  # -2: unmentioned
    assert asap.scores == {"rating": 5.0, "rating_scale": 5.0} and asap.sentiment is None


@pytest.mark.data
def test_english_absa_categories(shared_data):
    staff = _by_id("semeval2014_restaurants")["3121"]
    assert [(t.id, t.polarity) for t in staff.topics] == [("service", "negative")]
    assert staff.touchpoints == ("use",) and staff.sentiment == "negative"
    assert [(a.term, a.start, a.end) for a in staff.aspects] == [("staff", 8, 13)]
    mixed = _by_id("semeval2014_restaurants")["2777"]  # food +, anecdotes/miscellaneous -
    assert mixed.topic_polarities() == {"product.quality": "positive"} and mixed.sentiment is None

    rest16 = _by_id("semeval2016_restaurants")
    assert rest16["1004293:0"].topics == ()  # RESTAURANT#GENERAL is unmapped
    service = rest16["1004293:1"].topics[0]
    assert (service.id, service.polarity, service.span) == ("service", "negative", (75, 80))

    laptops = load_dataset("semeval2016_laptops")
    support = next(e for e in laptops if "SUPPORT#QUALITY" in {t.source_label for t in e.topics})
    assert support.topic_ids == {"service"} and "support" in support.touchpoints
    price = next(e for e in laptops if any(t.source_label == "LAPTOP#PRICE" for t in e.topics))
    assert "price.value" in price.topic_ids and "purchase" in price.touchpoints

    acos = load_dataset("acos", "train")[0]  # acer wants $ 170 to just look at it ...
    assert [(t.id, t.source_label) for t in acos.topics] == [("service", "SUPPORT#PRICE")]
    assert acos.touchpoints == ("support",) and acos.aspects[0].term == "acer"

    mams = load_dataset("mams_acsa", "train")[0]  # food +, place neutral
    assert mams.topic_polarities() == {
        "product.quality": "positive",
        "environment.facilities": "neutral",
    }
    assert all(e.sentiment is None for e in load_dataset("mams_acsa", "test"))


@pytest.mark.data
def test_banking77_and_skytrax(shared_data):
    banking = load_dataset("banking77", "test")
    arrival = next(e for e in banking if e.raw_labels["intent"] == "card_arrival")
    assert arrival.topic_ids == {"delivery.timeliness"} and arrival.touchpoints == ("fulfil",)
    broken = next(e for e in banking if e.raw_labels["intent"] == "card_not_working")
    assert broken.topics == () and broken.touchpoints == ()
    assert len({e.raw_labels["intent"] for e in banking}) == 77

    lounge = load_dataset("skytrax_lounge")
    assert lounge[0].scores["rating"] == 3.0 and lounge[0].scores["rating_scale"] == 5.0
    assert lounge[0].scores["recommend"] == 1.0 and lounge[0].scores["staff_service"] == 2.0
    assert lounge[31].scores["rating"] == 9.0 and lounge[31].scores["rating_scale"] == 10.0
    assert all(e.scores.get("rating", 0) <= e.scores.get("rating_scale", 10) for e in lounge)
    seat = load_dataset("skytrax_seat")[0]
    assert seat.scores["rating"] == 10.0 and "power_supply" not in seat.scores
    assert seat.metadata["aircraft"] == "A320-200" and seat.split == "all"
