"""Routing rules: first match wins, level-1 topics match their leaves, every condition kind, the
default queue, and validation of unknown ids with their paths."""

from __future__ import annotations

import pytest

from models.taxonomy import ProblemLevel, default_taxonomy
from models.triage import (
    Router,
    RoutingRules,
    Triage,
    default_policy,
    load_policy,
    policy_to_dict,
    primary_topic,
    validate_policy,
)
from nlp.errors import PolicyError


@pytest.fixture(scope="module")
def router() -> Router:
    return Router(default_policy().routing)


@pytest.mark.parametrize(
    ("topic", "team"),
    [
        ("delivery.timeliness", "logistics"),  # 快递太慢
        ("delivery.courier", "logistics"),
        ("billing.charges", "billing"),  # 重复扣费 / charged twice
        ("account.membership", "billing"),
        ("aftersales.returns", "customer-care"),
        ("service.attitude", "customer-care"),
        ("digital.usability", "digital"),  # app 闪退
        ("environment.cleanliness", "facilities"),
        ("product.quality", "product"),
        ("price.value", "customer-care"),  # no rule: the default queue
        (None, "customer-care"),
    ],
)
def test_default_policy_routes_topics_to_teams(router: Router, topic: str | None, team: str) -> None:
    route = router(topic=topic, touchpoint="use", lang="zh")
    assert route.team == team
    assert (route.rule is None) == (topic in ("price.value", None))


def _router(rules: list[dict], default: str = "care") -> Router:
    return Router(RoutingRules.model_validate({"default": default, "rules": rules}))


def test_first_matching_rule_wins_and_all_conditions_must_hold() -> None:
    router = _router([
        {"name": "vip-weibo", "team": "escalations",
         "when": {"channel": ["weibo", "微博"], "metadata": {"tier": ["vip", "svip"]}}},
        {"name": "zh-delivery", "team": "logistics-cn", "when": {"topic": "delivery", "lang": "zh"}},
        {"team": "logistics", "when": {"topic": ["delivery"]}},
        {"team": "returns", "when": {"touchpoint": ["support"], "topic": ["aftersales.returns"]}},
    ])  # fmt: skip
    # 微博 complaint by a VIP about delivery: the first rule wins although the second also matches
    vip = router(topic="delivery.timeliness", lang="zh", metadata={"source": "微博", "tier": "VIP"})
    assert (vip.team, vip.rule) == ("escalations", "vip-weibo")
    # same text by a normal customer: the Chinese delivery rule
    assert router(topic="delivery.timeliness", lang="zh", metadata={"source": "微博"}).team == "logistics-cn"
    # an English late parcel falls through to the generic delivery rule (named by its index)
    late = router(topic="delivery.courier", lang="en", metadata={"channel": "email"})
    assert (late.team, late.rule) == ("logistics", "rules[2]")
    # both touchpoint and topic must hold
    assert router(topic="aftersales.returns", touchpoint="support").team == "returns"
    assert router(topic="aftersales.returns", touchpoint="purchase").team == "care"
    # a level-1 id matches its leaves, never a sibling sharing a prefix
    assert _router([{"team": "x", "when": {"topic": ["product"]}}])(topic="products.x").team == "care"


def test_route_record_uses_the_most_confident_negative_topic() -> None:
    labels = {
        "lang": "en",
        "topics": [
            {"id": "product.quality", "polarity": "positive", "confidence": 0.95},
            {"id": "billing.charges", "polarity": "negative", "confidence": 0.7},
            {"id": "delivery.timeliness", "polarity": "negative", "confidence": 0.6},
        ],
        "primary_touchpoint": "account",
    }
    assert primary_topic(labels["topics"]) == "billing.charges"
    route = Router(default_policy().routing).route_record(labels, {"customer_id": "u-1"})
    assert route.team == "billing"
    assert "billing" in route.reason
    assert primary_topic([{"id": "product.quality", "polarity": "positive", "confidence": 0.9}]) == "product.quality"
    assert primary_topic([]) is None


def _with_routing(routing: dict) -> dict:
    return {**policy_to_dict(default_policy()), "routing": routing}


def test_unknown_topic_and_touchpoint_ids_are_reported_with_paths() -> None:
    data = _with_routing({
        "default": "care",
        "rules": [
            {"team": "logistics", "when": {"topic": ["delivery"]}},
            {"team": "billing", "when": {"topic": ["billing.charge"], "touchpoint": ["checkout"]}},
        ],
    })  # fmt: skip
    problems = validate_policy(data, taxonomy=default_taxonomy())
    errors = {p.path: p.message for p in problems if p.level is ProblemLevel.error}
    assert set(errors) == {"routing.rules[1].when.topic[0]", "routing.rules[1].when.touchpoint[0]"}
    assert "did you mean 'billing.charges'" in errors["routing.rules[1].when.topic[0]"]
    assert "unknown touchpoint 'checkout'" in errors["routing.rules[1].when.touchpoint[0]"]
    with pytest.raises(PolicyError, match="billing.charge"):
        Triage(load_policy(data), default_taxonomy())


def test_routing_structure_errors_name_the_field() -> None:
    bad = _with_routing({"rules": [{"team": "Logistics Team", "when": {"topc": ["delivery"]}}]})
    paths = {p.path for p in validate_policy(bad)}
    assert "routing.rules[0].team" in paths
    assert "routing.rules[0].when.topc" in paths
    yaml_bool = _with_routing({"rules": [{"team": "x", "when": {"lang": [False]}}]})
    message = " ".join(p.message for p in validate_policy(yaml_bool))
    assert "quote" in message


def test_policy_without_routing_sends_everything_to_customer_care() -> None:
    data = policy_to_dict(default_policy())
    del data["routing"]
    policy = load_policy(data)
    assert Router(policy.routing)(topic="delivery.timeliness").team == "customer-care"
    assert policy.content_hash() != default_policy().content_hash()  # routing is part of the rules
