"""The label mapping table of ``spec/taxonomy.md``, as plain data.

Each public data set's own labels map onto default-taxonomy ids: a topic (a leaf such as
``delivery.timeliness`` or a level-1 id such as ``service``, meaning "some leaf under service")
and/or a touchpoint. A label that is not in the table maps to nothing: it is *absent*, never a
negative. This module deliberately does not import the taxonomy package; the ids are strings.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from types import MappingProxyType

#: Leaf topic ids of the default taxonomy, version 1 (spec/taxonomy.md).
TOPIC_IDS: frozenset[str] = frozenset(
    {
        "product.quality",
        "product.function",
        "product.design",
        "product.as_described",
        "price.value",
        "price.promotion",
        "delivery.timeliness",
        "delivery.condition",
        "delivery.courier",
        "service.attitude",
        "service.responsiveness",
        "service.resolution",
        "aftersales.returns",
        "aftersales.warranty",
        "environment.cleanliness",
        "environment.facilities",
        "environment.location",
        "digital.usability",
        "billing.charges",
        "account.membership",
    }
)
#: Level-1 topic ids (allowed as partial labels).
TOPIC_LEVEL1_IDS: frozenset[str] = frozenset(t.split(".")[0] for t in TOPIC_IDS)
TOUCHPOINT_IDS: frozenset[str] = frozenset(
    {"discover", "purchase", "fulfil", "use", "support", "account"}
)


@dataclass(frozen=True, kw_only=True, slots=True)
class Mapped:
    """Where one source label lands: a topic id, a touchpoint id, or both (never neither)."""

    topic: str | None = None
    touchpoint: str | None = None


def _m(topic: str | None, touchpoint: str | None) -> Mapped:
    return Mapped(topic=topic, touchpoint=touchpoint)


def _table(rows: dict[tuple[str, ...], Mapped]) -> MappingProxyType[str, Mapped]:
    return MappingProxyType({label: m for labels, m in rows.items() for label in labels})


#: twitter_us_airline ``negativereason``. ``Can't Tell`` is deliberately unmapped.
TWITTER_REASONS = _table(
    {
        ("Late Flight", "Cancelled Flight"): _m("delivery.timeliness", "fulfil"),
        ("Lost Luggage", "Damaged Luggage"): _m("delivery.condition", "fulfil"),
        ("longlines",): _m("delivery.timeliness", "fulfil"),
        ("Flight Booking Problems",): _m(None, "purchase"),
        ("Customer Service Issue",): _m("service", "support"),
        ("Flight Attendant Complaints",): _m("service.attitude", "use"),
        ("Bad Flight",): _m("product", "use"),
    }
)

#: zhijiang2019_makeup_opinion ``category_zh``. 整体, 包装 and 其他 are unmapped.
ZHIJIANG_CATEGORIES = _table(
    {
        ("价格",): _m("price.value", "purchase"),
        ("物流",): _m("delivery", "fulfil"),
        ("服务",): _m("service", None),
        ("真伪",): _m("product.as_described", "use"),
        ("功效",): _m("product.function", "use"),
        ("使用体验", "气味", "成分", "新鲜度"): _m("product.quality", "use"),
        ("尺寸",): _m("product.design", "use"),
    }
)

#: Lower-case coarse categories of SemEval-2014 restaurants and MAMS. ``menu`` and
#: ``miscellaneous`` / ``anecdotes/miscellaneous`` are unmapped.
COARSE_CATEGORIES = _table(
    {
        ("price",): _m("price.value", "purchase"),
        ("service", "staff"): _m("service", "use"),
        ("ambience", "place"): _m("environment.facilities", "use"),
        ("food",): _m("product.quality", "use"),
    }
)

#: ENTITY#ATTRIBUTE rules of SemEval-2016 and ACOS, in table order; the first match wins, so
#: ``SUPPORT#PRICE`` is support (not price) and ``SHIPPING#PRICE`` is delivery.
#: ``*#PRICE`` is the laptop scheme's spelling of the restaurant scheme's ``*#PRICES`` attribute
#: and is mapped the same way.
ENTITY_ATTRIBUTE_RULES: tuple[tuple[str, Mapped], ...] = (
    ("SUPPORT#*", _m("service", "support")),
    ("SHIPPING#*", _m("delivery", "fulfil")),
    ("WARRANTY#*", _m("aftersales.warranty", "support")),
    ("*#PRICES", _m("price.value", "purchase")),
    ("*#PRICE", _m("price.value", "purchase")),
    ("SERVICE#GENERAL", _m("service", "use")),
    ("AMBIENCE#*", _m("environment.facilities", "use")),
    ("LOCATION#*", _m("environment.location", "use")),
    ("FOOD#QUALITY", _m("product.quality", "use")),
    ("DRINKS#QUALITY", _m("product.quality", "use")),
)

#: ASAP aspect columns (all 18 are mapped).
ASAP_ASPECTS = _table(
    {
        (
            "location_traffic",
            "location_distance_from_business_district",
            "location_easy_to_find",
            "service_parking_convenience",
        ): _m("environment.location", "use"),
        ("service_wait_time", "service_serving_speed"): _m("delivery.timeliness", "fulfil"),
        ("service_waiters_attitude",): _m("service.attitude", "use"),
        ("price_level", "price_cost_effective"): _m("price.value", "purchase"),
        ("price_discount",): _m("price.promotion", "purchase"),
        ("environment_cleaness",): _m("environment.cleanliness", "use"),
        ("environment_decoration", "environment_noise", "environment_space"): _m(
            "environment.facilities", "use"
        ),
        ("dish_taste", "dish_recommendation"): _m("product.quality", "use"),
        ("dish_portion", "dish_look"): _m("product.design", "use"),
    }
)

#: banking77 intents listed in the table; the other intents are unmapped.
BANKING77_INTENTS = _table(
    {
        ("card_arrival", "card_delivery_estimate"): _m("delivery.timeliness", "fulfil"),
        ("request_refund", "refund_not_showing_up"): _m("aftersales.returns", "support"),
        (
            "extra_charge_on_statement",
            "card_payment_fee_charged",
            "transfer_fee_charged",
            "cash_withdrawal_charge",
            "exchange_charge",
            "top_up_by_card_charge",
            "wrong_amount_of_cash_received",
            "direct_debit_payment_not_recognised",
            "card_payment_not_recognised",
        ): _m("billing.charges", "account"),
        (
            "passcode_forgotten",
            "pin_blocked",
            "change_pin",
            "verify_my_identity",
            "edit_personal_details",
            "terminate_account",
        ): _m("account.membership", "account"),
    }
)


def _rule_matches(rule: str, category: str) -> bool:
    r_entity, _, r_attr = rule.partition("#")
    entity, _, attr = category.upper().partition("#")
    return r_entity in ("*", entity) and r_attr in ("*", attr)


def map_entity_attribute(category: str) -> Mapped | None:
    """Map a SemEval-2016/ACOS ``ENTITY#ATTRIBUTE`` category (first matching rule), else None."""
    for rule, mapped in ENTITY_ATTRIBUTE_RULES:
        if _rule_matches(rule, category):
            return mapped
    return None


def map_absa_category(category: str) -> Mapped | None:
    """Map any English ABSA category: coarse (``food``) or ``ENTITY#ATTRIBUTE``."""
    if "#" in category:
        return map_entity_attribute(category)
    return COARSE_CATEGORIES.get(category.lower())


def space_of(mappeds: Iterable[Mapped]) -> tuple[frozenset[str], frozenset[str]]:
    """The topic ids and touchpoint ids a collection of :class:`Mapped` values can express."""
    values = list(mappeds)
    topics = frozenset(m.topic for m in values if m.topic)
    touchpoints = frozenset(m.touchpoint for m in values if m.touchpoint)
    return topics, touchpoints
