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
    ("media", "I'm going to the press with this"),
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
    ("media", "I haven't gone to the press"),
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
    assert [(h.text, h.negated) for h in hits if h.category == "safety"] == [
        ("受伤", True),
        ("吃出虫", False),
    ]
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
        ("remedy", "投诉"),  # a complaint is a P2 cue of its own; to 12315 it is P1
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
    assert [(h.category, h.text) for h in hits] == [("media", "媒体"), ("public", "曝光")]
    assert all(h.start > text.index("我要") for h in hits)


def test_longest_overlapping_cue_wins_and_offsets_index_the_text(triage: Triage) -> None:
    text = "Honestly the charger caught fire twice"
    hits = triage.detect_cues(text)
    assert [(h.cue, h.text) for h in hits] == [("caught fire", "caught fire")]
    assert text[hits[0].start : hits[0].end] == "caught fire"
    prep = prepare("太離譜了！吃出蟲子，還拉肚子")
    hits = [h for h in triage.detect_cues(prep.text) if h.category == "safety"]
    assert [h.text for h in hits] == ["吃出虫", "拉肚子"]
    assert [prep.original_span(h.start, h.end) for h in hits] == ["吃出蟲", "拉肚子"]


def test_wildcard_cue_spans_words(triage: Triage) -> None:
    hits = triage.detect_cues("孩子半夜进了医院")
    assert [(h.cue, h.text) for h in hits] == [("进*医院", "进了医院")]
    hits = triage.detect_cues("I will never book with this airline again")
    assert [h.cue for h in hits] == ["never * again"]


# ----- the recalibrated default: P1 harm vs P2 hazard, media, remedy, idioms, hypotheticals --------
NEW_POSITIVE = [
    ("safety", "米线里吃出一只苍蝇，恶心死了"),  # 吃出 + an insect, a few characters apart
    ("safety", "凉拌菜里有一条小虫"),  # a dish + an insect
    ("safety", "吃了他家的烤鱼，半夜闹肚子"),
    ("safety", "两个人都吃吐了"),
    ("safety", "这粥有股馊味"),
    ("safety", "用了这个洗发水头皮特别痒，还掉了好多头发"),
    ("safety", "The flight attendant was assaulted by a drunk passenger"),
    ("safety", "We sat at the gate for an hour because of an engine problem"),
    ("safety", "My bag with my insulin went to Denver"),
    ("hazard", "汤里有头发，换了一份"),
    ("hazard", "收到的橙子好几个发霉了"),
    ("hazard", "These seats are downright dangerous for tall people"),
    ("legal", "我已经向卫生部门反映了"),
    ("legal", "Filing a report with the FAA about this"),
    ("media", "我要找记者来报道"),
    ("media", "I am contacting my local news station"),
    ("remedy", "付了钱一直没收到货"),
    ("remedy", "等了十天还没退款"),  # the negator is part of the cue
    ("remedy", "You lost my bag again and offered no compensation"),
    ("remedy", "Stranded in Chicago overnight"),
    ("churn", "以后不会再光顾了"),
    ("churn", "It's clear losing one more customer doesn't matter to you"),
]


@pytest.mark.parametrize(("category", "text"), NEW_POSITIVE)
def test_new_cues_are_found(triage: Triage, category: str, text: str) -> None:
    assert category in categories(triage, text)


NEW_NEGATED = [
    ("safety", "孩子吃了没有闹肚子，就是味道一般"),
    ("safety", "I was not assaulted, just shouted at"),
    ("hazard", "这次没有发霉，比上次好"),
    ("media", "我没有找记者，只是希望解决"),
    ("remedy", "我不要退款，给我补发就行"),
    ("remedy", "The flight was not cancelled after all"),
]


@pytest.mark.parametrize(("category", "text"), NEW_NEGATED)
def test_new_negated_cues_do_not_count(triage: Triage, category: str, text: str) -> None:
    assert category not in categories(triage, text)
    hits = triage.detect_cues(prepare(text).text, include_negated=True)
    assert any(h.category == category and h.negated for h in hits)  # found, then negated


@pytest.mark.parametrize(
    ("category", "text"),
    [
        ("safety", "快递真的是差到爆炸了"),  # X到爆炸: "extremely X"
        ("safety", "这家的炸鸡好吃到爆炸"),
        ("safety", "突然震了一下，还以为漏电了"),  # thought it was: it was not
        ("safety", "怕吃坏肚子，直接扔了"),  # afraid it would: it did not
        ("safety", "出了个馊主意"),
        ("safety", "吃一片感觉自己中毒了"),
        ("safety", "Adding insult to injury, they lost my bag"),
        ("safety", "I'm sick of waiting on hold"),
        ("churn", "再也不用排队了，真方便"),
        ("media", "支持多媒体和流媒体播放"),
    ],
)
def test_figures_of_speech_and_hypotheticals_do_not_count(
    triage: Triage, category: str, text: str
) -> None:
    assert category not in categories(triage, text)


def test_look_alikes_of_negators_keep_the_cue(triage: Triage) -> None:
    # 不同程度的 (to different degrees) and 无故 (for no reason) are not negations
    assert "safety" in categories(triage, "吃完同事们都有不同程度的腹泻")
    assert "churn" in categories(triage, "无故把我账号拉黑")
    # 可怕 / 恐怕 contain 怕 but do not make the cue hypothetical
    assert "safety" in categories(triage, "最可怕的是吃出了蟑螂")


def test_shouted_and_mixed_case_complaints_keep_their_cues(triage: Triage) -> None:
    assert "safety" in categories(triage, "MY SON GOT FOOD POISONING FROM YOUR CHICKEN")
    assert "legal" in categories(triage, "If This Isn't Fixed I Will Sue You")
    assert "legal" in categories(triage, "已经打了12315，你们APP还在乱扣钱")


def test_tenant_cues_with_latin_letters_match_any_case() -> None:
    """A tenant's cues: Latin letters inside a Chinese cue, and English cues, match in any case."""
    from models.triage import default_policy, load_policy, policy_to_dict

    data = policy_to_dict(default_policy())
    data.update(id="acme-app", version=2)
    data["cues"]["outage"] = {
        "label": "app outage", "weight": 2.0, "zh": ["APP*闪退", "登录不了"], "en": ["app * crashes"],
    }
    custom = Triage(load_policy(data))
    hits = custom.detect_cues(prepare("新版app一直闪退，登录不了").text)
    assert [(h.category, h.text) for h in hits] == [("outage", "app一直闪退"), ("outage", "登录不了")]
    hits = custom.detect_cues("The App Still Crashes every morning")
    assert [(h.category, h.text) for h in hits] == [("outage", "App Still Crashes")]
