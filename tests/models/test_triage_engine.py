"""Priorities and reasons for classified zh and en complaints under the default policy."""

from __future__ import annotations

import pytest

from models.taxonomy import default_taxonomy
from models.triage import Triage, default_policy, load_policy, policy_to_dict
from nlp.errors import InvalidInputError, PolicyError
from nlp.prepare import prepare


@pytest.fixture(scope="module")
def triage() -> Triage:
    return Triage(default_policy(), default_taxonomy())


def result(score: float, *topics: tuple[str, str, float], lang: str = "zh") -> dict:
    """A classification result as the contract shapes it."""
    label = "negative" if score <= -0.2 else "positive" if score >= 0.2 else "neutral"
    return {
        "id": "r1",
        "lang": lang,
        "sentiment": {"label": label, "score": score, "confidence": 0.9},
        "topics": [
            {
                "id": tid,
                "polarity": pol,
                "confidence": conf,
                "evidence": {"start": 0, "end": 1, "text": "x"},
            }
            for tid, pol, conf in topics
        ],
        "touchpoints": [],
        "primary_touchpoint": None,
    }


def run(triage: Triage, text: str, res: dict, **kwargs) -> dict:
    return triage(res, prepare(text), **kwargs)


def test_food_poisoning_is_p1_with_readable_reasons(triage: Triage) -> None:
    out = run(
        triage,
        "昨天在你们店吃完晚饭，全家食物中毒上吐下泻，孩子还进了医院",
        result(-0.92, ("product.quality", "negative", 0.9)),
    )
    assert out["priority"] == "P1"
    assert out["reasons"][0] == (
        "safety or health risk: 食物中毒, 上吐下泻, 进了医院 (with negative topic product.quality)"
    )
    assert "strong negative sentiment (-0.92)" in out["reasons"]
    assert "topic product.quality (high severity)" in out["reasons"]
    assert out["sla_hours"] == 4
    assert out["policy"] == "default@2"
    kinds = [s["kind"] for s in out["signals"]]
    assert kinds == ["sentiment", "topic", "safety", "corroboration"]
    safety = out["signals"][2]
    assert safety["cue"] == "食物中毒" and safety["weight"] == 4.5


def test_english_allergic_reaction_is_p1(triage: Triage) -> None:
    out = run(
        triage,
        "My son had an allergic reaction to the nuggets, we ended up in the ER",
        result(-0.85, ("product.quality", "negative", 0.8), lang="en"),
    )
    assert out["priority"] == "P1"
    assert out["reasons"][0].startswith("safety or health risk: allergic reaction")


def test_slow_delivery_is_p2_or_p3(triage: Triage) -> None:
    out = run(triage, "配送太慢了", result(-0.8, ("delivery.timeliness", "negative", 0.9)))
    assert out["priority"] in {"P2", "P3"}
    assert out["reasons"] == [
        "strong negative sentiment (-0.80)",
        "topic delivery.timeliness (medium severity)",
    ]


@pytest.mark.parametrize(
    ("text", "res"),
    [
        ("还行吧", result(0.05)),
        ("菜很好吃，服务也很热情，下次还来", result(0.9, ("product.quality", "positive", 0.9))),
        (
            "Great flight, friendly crew, landed early!",
            result(0.95, ("service.attitude", "positive", 0.9), lang="en"),
        ),
    ],
)
def test_neutral_and_positive_are_p4(triage: Triage, text: str, res: dict) -> None:
    out = run(triage, text, res)
    assert out["priority"] == "P4"
    assert out["reasons"] == ["no urgency signal"]
    assert out["score"] == 0


def test_priorities_are_ordered_sensibly(triage: Triage) -> None:
    cases = [
        ("全家食物中毒，孩子还在住院", result(-0.9, ("product.quality", "negative", 0.9))),
        (
            "莫名其妙多扣了我两百块钱，客服也不处理",
            result(-0.75, ("billing.charges", "negative", 0.9)),
        ),
        ("配送有点慢", result(-0.4, ("delivery.timeliness", "negative", 0.8))),
        ("还行吧", result(0.0)),
    ]
    ranks = [int(run(triage, text, res)["priority"][1]) for text, res in cases]
    assert ranks == sorted(ranks) and ranks[0] == 1 and ranks[-1] == 4


def test_negated_cue_does_not_raise_priority(triage: Triage) -> None:
    res = result(-0.5, ("delivery.timeliness", "negative", 0.8))
    negated = run(triage, "孩子没有过敏，就是送得太慢了", res)
    real = run(triage, "孩子过敏了，而且送得太慢了", res)
    assert not any("safety" in r for r in negated["reasons"])
    assert negated["priority"] == "P3"
    assert real["priority"] in {"P1", "P2"} and real["score"] > negated["score"] + 4


def test_severe_topic_scores_above_mild_topic(triage: Triage) -> None:
    severe = run(triage, "被多收了钱", result(-0.75, ("billing.charges", "negative", 0.9)))
    mild = run(triage, "有点贵", result(-0.75, ("price.value", "negative", 0.9)))
    assert "topic billing.charges (high severity)" in severe["reasons"]
    assert severe["score"] > mild["score"]
    assert severe["priority"] == "P2" and mild["priority"] == "P3"


def test_topic_backing_a_cue_is_stronger_than_the_cue_alone(triage: Triage) -> None:
    text = "吃出异物了"
    alone = run(triage, text, result(-0.6))
    backed = run(triage, text, result(-0.6, ("product.quality", "negative", 0.9)))
    assert backed["score"] > alone["score"] + 1.5
    assert "(with negative topic product.quality)" in backed["reasons"][0]
    # a foreign object without illness is contamination (P2), not a health risk (P1)
    assert alone["reasons"][0] == "hazard or contamination: 吃出, 异物"
    assert alone["priority"] == backed["priority"] == "P2"


def test_repeat_contacts_raise_priority(triage: Triage) -> None:
    text, res = "配送太慢了", result(-0.7, ("delivery.timeliness", "negative", 0.9))
    first = run(triage, text, res)
    third = run(triage, text, res, repeat_contacts=2)
    assert first["priority"] == "P3" and third["priority"] == "P2"
    assert "repeat contact (3rd time)" in third["reasons"]
    capped = run(triage, text, res, repeat_contacts=20)
    assert "repeat contact (21st time)" in capped["reasons"]
    assert capped["score"] == pytest.approx(first["score"] + 3 * 0.75)


def test_vip_raises_priority_but_not_for_praise(triage: Triage) -> None:
    # (a refund not processed is P2 by itself: a remedy cue; this complaint has none)
    text, res = "问题反映了十天了还是没人解决", result(-0.9, ("service.resolution", "negative", 0.9))
    plain = run(triage, text, res)
    vip = run(triage, text, res, metadata={"customer_tier": "Platinum", "customer_id": "c9"})
    assert plain["priority"] == "P3" and vip["priority"] == "P2"
    assert "high-value customer (tier: Platinum)" in vip["reasons"]
    ltv = run(triage, text, res, metadata={"ltv": "25,000"})
    assert "high-value customer (lifetime value 25000)" in ltv["reasons"]
    praise = run(triage, "一如既往的好", result(0.9), metadata={"tier": "vip"}, repeat_contacts=3)
    assert praise["priority"] == "P4" and praise["reasons"] == ["no urgency signal"]


def test_public_channel_counts(triage: Triage) -> None:
    res = result(-0.6, ("service.attitude", "negative", 0.8))
    plain = run(triage, "客服态度太差", res)
    weibo = run(triage, "客服态度太差", res, metadata={"channel": "微博"})
    assert "public channel (微博)" in weibo["reasons"]
    assert weibo["score"] == pytest.approx(plain["score"] + 0.75)


def test_legal_threat_has_a_floor(triage: Triage) -> None:
    out = run(triage, "我已经打了12315", result(0.0))
    assert out["priority"] == "P1"  # the guideline: a regulator threat is P1 whatever the tone
    assert out["reasons"] == [
        "legal or regulatory threat: 12315",
        "at least P1 for legal or regulatory threat",
    ]


def test_positive_record_softens_cues(triage: Triage) -> None:
    out = run(
        triage,
        "之前用别的牌子会过敏，用了这个完全没问题，太好了",
        result(0.85, ("product.quality", "positive", 0.8)),
    )
    assert out["priority"] == "P4"
    assert out["reasons"] == [
        "safety or health risk: 过敏",
        "positive overall (+0.85): cues weigh less",
    ]


def test_call_accepts_prepared_text_or_str(triage: Triage) -> None:
    res = result(-0.9, ("product.quality", "negative", 0.9))
    prep = prepare("吃了以後過敏")
    assert triage(res, prep) == triage(res, prep.text) == triage.triage(res, prep.text)
    with pytest.raises(InvalidInputError, match="prepared text"):
        triage(res, 42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("res", "kwargs", "message"),
    [
        (result(-0.5), {"repeat_contacts": -1}, "repeat_contacts"),
        ({"sentiment": {"label": "negative", "score": -3}}, {}, r"\[-1, 1\]"),
        ({"topics": [{"polarity": "negative"}]}, {}, r"topics\[0\]"),
        ("not a result", {}, "mapping"),
    ],
)
def test_bad_input_is_rejected(triage: Triage, res, kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        triage.triage(res, "配送太慢了", **kwargs)


def test_topic_of_another_taxonomy_is_ignored(triage: Triage) -> None:
    out = triage.triage(result(-0.5, ("food.taste", "negative", 0.9)), "不好吃")
    assert [s["kind"] for s in out["signals"]] == ["sentiment"]


def test_custom_policy_changes_the_outcome(triage: Triage) -> None:
    data = policy_to_dict(default_policy())
    data.update(id="acme-bank", version=2)
    data["topics"]["severity"] = {"billing.charges": "critical"}
    data["cues"]["fraud"] = {
        "label": "possible fraud",
        "weight": 5.0,
        "floor": "P1",
        "zh": ["盗刷", "诈骗"],
        "en": ["fraud", "unauthorized transaction"],
    }
    custom = Triage(load_policy(data), default_taxonomy())
    text = "我的卡被盗刷了三笔"
    res = result(-0.6, ("billing.charges", "negative", 0.9))
    before, after = triage(res, prepare(text)), custom(res, prepare(text))
    assert before["priority"] == "P3"
    assert after["priority"] == "P1" and after["policy"] == "acme-bank@2"
    assert after["reasons"][0] == "possible fraud: 盗刷"
    assert "topic billing.charges (critical severity)" in after["reasons"]
    en = custom(result(-0.5, lang="en"), "There is an unauthorized transaction on my card")
    assert en["priority"] == "P1"


def test_policy_topics_must_exist_in_the_taxonomy() -> None:
    data = policy_to_dict(default_policy())
    data["topics"]["severity"] = {"billing.charge": "critical"}
    with pytest.raises(PolicyError, match="did you mean 'billing.charges'"):
        Triage(load_policy(data), default_taxonomy())


# ----- the recalibrated default: what P1 needs, what P2 needs --------------------------------------
def test_ordinary_angry_complaints_stay_p3(triage: Triage) -> None:
    """Tone and a severe topic alone do not make P2 (the guideline's ordinary complaint)."""
    zh = run(triage, "送餐慢了一个小时，饭都凉了，太差了", result(-0.99, ("delivery.timeliness", "negative", 0.95)))
    en = run(triage, "Worst airline ever, two hours late again", result(-0.99, ("service.resolution", "negative", 0.95), lang="en"))
    assert zh["priority"] == en["priority"] == "P3"


def test_churn_and_public_posts_are_capped_at_p2_without_a_p1_cue(triage: Triage) -> None:
    res = result(-0.99, ("delivery.condition", "negative", 0.95))
    zh = run(triage, "付了钱没收到货，再也不买了，我要发微博让大家看看", res)
    assert zh["score"] >= 6.0 and zh["priority"] == "P2"
    assert zh["reasons"][-1] == (
        "at most P2: no cue of safety or health risk, legal or regulatory threat, media threat"
    )
    en = run(triage, "You lost my bag, never flying with you again, I will tell everyone",
             result(-0.99, ("service.resolution", "negative", 0.95), lang="en"))  # fmt: skip
    assert en["score"] >= 6.0 and en["priority"] == "P2"
    # the same complaints with a legal threat are P1
    assert run(triage, "付了钱没收到货，再也不买了，已经打了12315", res)["priority"] == "P1"
    assert run(triage, "You lost my bag, never flying with you again, my lawyer will call",
               result(-0.99, lang="en"))["priority"] == "P1"  # fmt: skip


@pytest.mark.parametrize(
    ("text", "lang", "priority"),
    [
        ("吃出了一只蚊子", "zh", "P1"),  # an insect in the food, whatever the sentiment score
        ("菜里发现一根头发，换了一份", "zh", "P2"),  # hair without illness
        ("没收到货，显示已签收", "zh", "P2"),
        ("Flight Cancelled Flighted and no compensation offered", "en", "P2"),
        ("The crew told us there was an engine problem and kept boarding", "en", "P1"),
    ],
)
def test_floors_follow_the_guideline(triage: Triage, text: str, lang: str, priority: str) -> None:
    assert run(triage, text, result(-0.3, lang=lang))["priority"] == priority


def test_a_negated_or_figurative_cue_leaves_an_ordinary_complaint(triage: Triage) -> None:
    res = result(-0.95, ("delivery.timeliness", "negative", 0.9))
    assert run(triage, "送得慢，快递差到爆炸", res)["priority"] == "P3"
    assert run(triage, "还好没有拉肚子，就是送得慢", res)["priority"] == "P3"
    en = result(-0.95, ("service.resolution", "negative", 0.9), lang="en")
    assert run(triage, "Adding insult to injury, the gate agent was rude", en)["priority"] == "P3"


def test_a_floor_outranks_requires(triage: Triage) -> None:
    """A tenant that floors churn at P1 gets P1 although the default requires a P1 cue."""
    data = policy_to_dict(default_policy())
    data["cues"]["churn"]["floor"] = "P1"
    strict = Triage(load_policy(data), default_taxonomy())
    out = strict(result(-0.5), prepare("再也不来了"))
    assert out["priority"] == "P1" and "at least P1 for churn risk" in out["reasons"]


def test_requires_is_checked() -> None:
    data = policy_to_dict(default_policy())
    data["requires"] = {"P1": ["safety", "legl"], "P4": ["legal"]}
    with pytest.raises(PolicyError) as info:
        load_policy(data)
    paths = {d["path"] for d in info.value.details}
    assert paths == {"requires.P1[1]", "requires.P4"}
    # a policy without requires hashes as before the field existed
    data = policy_to_dict(default_policy())
    data.pop("requires")
    assert load_policy(data).content_hash() == load_policy({**data, "requires": {}}).content_hash()
