"""Severity cues in real-sounding zh and en complaints, with negation handled per clause."""

from __future__ import annotations

import pytest

from models.triage import Triage
from nlp.prepare import prepare


@pytest.fixture(scope="module")
def triage() -> Triage:
    return Triage()


def categories(triage: Triage, text: str) -> set[str]:
    """Categories of the cues that count (not negated) in the prepared text."""
    return {hit.category for hit in triage.detect_cues(prepare(text).text)}


POSITIVE = [
    # safety / health
    ("safety", "孩子吃了你们家的虾仁以后过敏了，全身起疹子"),
    ("safety", "外卖里吃出虫子了，太恶心了"),
    ("safety", "充电宝充着充着起火了，差点烧了房子"),
    ("safety", "昨晚吃完全家拉肚子，怀疑食物中毒"),
    ("safety", "孩子吃完上吐下泻，半夜进了医院"),
    ("safety", "I had an allergic reaction after eating the shrimp pasta"),
    ("safety", "My daughter was injured by a loose shelf in your store"),
    ("safety", "The charger caught fire on my nightstand"),
    ("safety", "Three of us got food poisoning from the chicken"),
    # legal / regulatory
    ("legal", "再不退款我就投诉到12315"),
    ("legal", "已经找了律师，准备起诉你们"),
    ("legal", "I have contacted my lawyer about this charge"),
    ("legal", "I'm filing a complaint with the CFPB today"),
    ("legal", "If this isn't fixed I will sue you"),
    # churn
    ("churn", "再也不会在你们家买东西了"),
    ("churn", "已经卸载了，换一家"),
    ("churn", "Please cancel my account immediately"),
    ("churn", "I'm switching to another bank next week"),
    ("churn", "I will never fly with you again"),
    # public escalation
    ("public", "不给说法我就发微博曝光你们"),
    ("public", "我要发到网上让大家看看"),
    ("public", "I'm going to the press with this"),
    ("public", "I will post this everywhere until someone answers"),
]


@pytest.mark.parametrize(("category", "text"), POSITIVE)
def test_cue_is_found(triage: Triage, category: str, text: str) -> None:
    assert category in categories(triage, text)


NEGATED = [
    ("safety", "还好孩子没有过敏，就是味道一般"),
    ("safety", "我并没有受伤，只是箱子摔坏了"),
    ("safety", "没有人受伤。"),
    ("safety", "过敏倒是没有，就是太咸了"),
    ("safety", "No allergic reaction this time, thankfully"),
    ("safety", "Nobody was injured"),
    ("safety", "The battery did not catch fire or anything, it just died"),
    ("legal", "我不会起诉的，只希望你们改进"),
    ("legal", "I'm not going to sue, I just want my money back"),
    ("churn", "我不会销户的，只是提个建议"),
    ("churn", "I don't want to cancel my account"),
    ("public", "我没有发微博，只是私下反映"),
    ("public", "I haven't gone to the press"),
]


@pytest.mark.parametrize(("category", "text"), NEGATED)
def test_negated_cue_does_not_count(triage: Triage, category: str, text: str) -> None:
    assert category not in categories(triage, text)
    negated = [
        h
        for h in triage.detect_cues(prepare(text).text, include_negated=True)
        if h.category == category
    ]
    assert negated and all(h.negated and h.negator for h in negated)


def test_negation_stays_in_its_clause(triage: Triage) -> None:
    hits = triage.detect_cues(
        prepare("我并没有受伤，但是外卖里吃出虫子了").text, include_negated=True
    )
    assert [(h.text, h.negated) for h in hits] == [("受伤", True), ("吃出虫", False)]
    hits = triage.detect_cues("No one was injured, but the charger caught fire.")
    assert [h.text for h in hits] == ["caught fire"]


def test_not_this_but_that(triage: Triage) -> None:
    """不是A，而是B negates A only, with or without the comma."""
    assert "safety" not in categories(triage, "不是过敏，而是太咸了")
    assert "safety" not in categories(triage, "不是过敏而是菜太咸")
    assert "safety" in categories(triage, "不是太咸，而是吃了过敏")
    assert "safety" in categories(triage, "不是太咸而是吃了过敏")


@pytest.mark.parametrize(
    "text",
    [
        "不小心被包装划伤了手",  # 不小心: accidentally
        "没想到孩子吃了过敏",  # 没想到: didn't expect
        "这已经不是第一次过敏了",  # not the first time
        "没吃几口就拉肚子了",  # 就 ends the negator's reach
        "无良商家，害我过敏",
        "味道很好，只不过吃完拉肚子了",  # 只不过 is "but", not a negation
        "I can't believe my son got food poisoning here",
        "I didn't know the heater could catch fire",
    ],
)
def test_negation_look_alikes_still_count(triage: Triage, text: str) -> None:
    assert "safety" in categories(triage, text)


def test_conditional_threat_counts(triage: Triage) -> None:
    assert "legal" in categories(triage, "没退款我要起诉")
    assert "legal" in categories(triage, "If you don't refund me I will sue you")


def test_traditional_and_full_width_input_via_prepare(triage: Triage) -> None:
    hits = triage.detect_cues(prepare("孩子吃了以後過敏了，我要投訴到１２３１５！").text)
    assert [(h.category, h.text) for h in hits] == [
        ("safety", "过敏"),
        ("legal", "投诉到"),
        ("legal", "12315"),
    ]
    assert "safety" not in categories(triage, "我們並沒有受傷")


def test_english_inflections_and_word_boundaries(triage: Triage) -> None:
    for text in (
        "He injured his hand",
        "She is recovering from her injuries",
        "the glass could injure someone",
        "We were hospitalized overnight",
    ):
        assert "safety" in categories(triage, text), text
    # a name, not a lawsuit; a number that merely contains the hotline
    assert "legal" not in categories(triage, "Sue at the front desk was so helpful")
    assert "legal" not in categories(triage, "我的订单号是1231567")
    assert "safety" not in categories(triage, "We booked a non-smoking room with a firm bed")
    assert "safety" not in categories(triage, "@united please fire the captain of flight 6232")
    assert "safety" not in categories(triage, "it has all the charm of a hospital waiting area")


def test_excluded_phrases_block_a_cue(triage: Triage) -> None:
    """Camera reviews talk about exposure (曝光补偿) and multimedia (多媒体), not the press."""
    text = "支持多媒体播放，曝光补偿也好用。不过客服太差，我要找媒体曝光你们"
    hits = triage.detect_cues(text)
    assert [(h.category, h.text) for h in hits] == [("public", "媒体"), ("public", "曝光")]
    assert all(h.start > text.index("我要") for h in hits)


def test_longest_overlapping_cue_wins_and_offsets_index_the_text(triage: Triage) -> None:
    text = "Honestly the charger caught fire twice"
    hits = triage.detect_cues(text)
    assert [(h.cue, h.text) for h in hits] == [("caught fire", "caught fire")]
    assert text[hits[0].start : hits[0].end] == "caught fire"
    prep = prepare("太離譜了！吃出蟲子，還拉肚子")
    hits = triage.detect_cues(prep.text)
    assert [h.text for h in hits] == ["吃出虫", "拉肚子"]
    assert [prep.original_span(h.start, h.end) for h in hits] == ["吃出蟲", "拉肚子"]


def test_wildcard_cue_spans_words(triage: Triage) -> None:
    hits = triage.detect_cues("孩子半夜进了医院")
    assert [(h.cue, h.text) for h in hits] == [("进*医院", "进了医院")]
    hits = triage.detect_cues("I will never book with this airline again")
    assert [h.cue for h in hits] == ["never * again"]
