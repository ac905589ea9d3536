"""The default taxonomy is the contract of spec/taxonomy.md: exact ids, bilingual texts, seeds."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from models.taxonomy import (
    LANGS,
    NodeKind,
    Severity,
    default_taxonomy,
    dump_taxonomy,
    load_taxonomy,
    validate_taxonomy,
)

# Copied by hand from shared/spec/taxonomy.md: this list IS the contract.
SPEC_TOUCHPOINTS = ["discover", "purchase", "fulfil", "use", "support", "account"]
SPEC_LEAVES = [
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
]
SPEC_NAMES = {  # id -> (zh, en) from the spec tables
    "discover": ("售前/了解", "Discover"),
    "purchase": ("购买/下单", "Purchase"),
    "fulfil": ("交付/履约", "Fulfil"),
    "use": ("使用/体验", "Use"),
    "support": ("售后/客服", "Support"),
    "account": ("账户/账单", "Account"),
    "product.quality": ("质量", "Quality"),
    "product.function": ("功能/效果", "Function"),
    "product.design": ("外观/规格", "Design"),
    "product.as_described": ("描述/真伪", "As described"),
    "price.value": ("价格/性价比", "Value"),
    "price.promotion": ("优惠/活动", "Promotion"),
    "delivery.timeliness": ("时效", "Timeliness"),
    "delivery.condition": ("物流完好", "Condition"),
    "delivery.courier": ("快递员/骑手", "Courier"),
    "service.attitude": ("服务态度", "Attitude"),
    "service.responsiveness": ("响应速度", "Responsiveness"),
    "service.resolution": ("问题解决", "Resolution"),
    "aftersales.returns": ("退换货/退款", "Returns"),
    "aftersales.warranty": ("维修/保修", "Warranty"),
    "environment.cleanliness": ("卫生", "Cleanliness"),
    "environment.facilities": ("设施/环境", "Facilities"),
    "environment.location": ("位置/交通", "Location"),
    "digital.usability": ("APP/网站", "Digital"),
    "billing.charges": ("收费/账单", "Charges"),
    "account.membership": ("账户/会员", "Membership"),
}
HAN = re.compile(r"[\u4e00-\u9fff]")
DEFAULT_FILE = Path(__file__).resolve().parents[2] / "models" / "taxonomy" / "default.yaml"


@pytest.fixture(scope="module")
def tax():
    return default_taxonomy()


def test_default_has_exactly_the_spec_ids(tax):
    assert tax.id == "cem-default"
    assert tax.version == 1
    assert list(tax.touchpoint_ids) == SPEC_TOUCHPOINTS
    assert sorted(tax.leaf_ids) == sorted(SPEC_LEAVES)
    assert len(tax.leaf_ids) == 20
    # level-1 ids are exactly the prefixes of the leaves, each declared with names
    assert sorted(tax.level1_ids) == sorted({leaf.split(".")[0] for leaf in SPEC_LEAVES})
    assert len(tax.level1_ids) == 9
    assert set(tax.topic_ids) == set(SPEC_LEAVES) | set(tax.level1_ids)
    assert tax.retired_ids("topic") == () and tax.retired_ids("touchpoint") == ()


def test_default_names_are_the_spec_names(tax):
    for node_id, (zh, en) in SPEC_NAMES.items():
        kind = NodeKind.touchpoint if "." not in node_id else NodeKind.topic
        node = tax.get(node_id, kind)
        assert (node.name.zh, node.name.en) == (zh, en), node_id


def test_default_file_is_clean_no_warnings():
    assert validate_taxonomy(DEFAULT_FILE) == []


def test_every_node_is_bilingual_with_real_descriptions(tax):
    for node in tax.iter_nodes():
        assert HAN.search(node.name.zh) or node.name.zh.isascii(), node.id
        assert HAN.search(node.description.zh), f"{node.id}: zh description has no Chinese"
        assert not HAN.search(node.description.en), f"{node.id}: en description has Chinese"
        assert len(node.description.zh) >= 15 and len(node.description.en.split()) >= 10, node.id


def test_leaves_and_touchpoints_have_at_least_8_seeds_per_language(tax):
    for node in [*tax.topic_leaves, *tax.touchpoints]:
        for lang in LANGS:
            seeds = node.seeds.get(lang)
            assert len(seeds) >= 8, f"{node.id} has {len(seeds)} {lang} seeds"
            assert len(set(seeds)) == len(seeds), f"{node.id}: duplicate {lang} seed"
        assert all(HAN.search(s) for s in node.seeds.zh), node.id
        assert not any(HAN.search(s) for s in node.seeds.en), node.id


def test_seed_examples_land_on_the_expected_leaf(tax):
    assert "配送太慢了" in tax.topic("delivery.timeliness").seeds.zh
    assert any("flight" in s for s in tax.topic("delivery.timeliness").seeds.en)
    assert "与描述不符" in tax.topic("product.as_described").seeds.zh


def test_touchpoint_hints_and_triage_defaults(tax):
    assert tax.topic("delivery.timeliness").touchpoints == ("fulfil",)
    assert tax.topic("aftersales.returns").touchpoints == ("support",)
    assert tax.effective_severity("billing.charges") is Severity.high
    assert tax.effective_severity("service.attitude") is Severity.medium
    assert tax.effective_severity("environment.facilities").weight < Severity.high.weight
    assert tax.effective_route("delivery.courier") == "logistics"  # inherited from `delivery`
    assert tax.effective_route("service.resolution") == "customer-care"
    assert tax.effective_route("billing.charges") == "billing"
    assert tax.effective_route("price.promotion") == "marketing"  # leaf overrides its parent
    for leaf in tax.leaf_ids:
        assert tax.effective_severity(leaf) is not None and tax.effective_route(leaf)


def test_level1_labels_expand_to_their_leaves(tax):
    assert tax.leaves_under("service") == (
        "service.attitude",
        "service.responsiveness",
        "service.resolution",
    )
    assert tax.leaves_under("delivery") == (
        "delivery.timeliness",
        "delivery.condition",
        "delivery.courier",
    )
    assert tax.leaves_under("price.value") == ("price.value",)
    assert [n.id for n in tax.children("product")] == [
        "product.quality",
        "product.function",
        "product.design",
        "product.as_described",
    ]


def test_account_is_both_a_touchpoint_and_a_topic(tax):
    assert tax.get("account").kind is NodeKind.topic
    assert tax.get("account", kind="touchpoint").name.zh == "账户/账单"
    assert tax.topic("account").name.en == "Account"


def test_node_text_is_one_language_with_name_description_and_seeds(tax):
    zh = tax.node_text("delivery.timeliness", "zh")
    en = tax.node_text("delivery.timeliness", "en")
    assert zh.startswith("时效：") and "配送太慢了" in zh and not re.search(r"[a-z]{4}", zh)
    assert en.startswith("Timeliness: ") and "delivery took forever" in en
    assert not HAN.search(en)
    assert tax.node_text("fulfil", "en").startswith("Fulfil: ")


def test_default_round_trips_through_yaml(tax):
    text = dump_taxonomy(tax)
    assert "配送太慢了" in text and "\\u" not in text  # unicode kept readable
    again = load_taxonomy(text)
    assert again == tax
    assert again.content_hash() == tax.content_hash()


def test_default_is_cached(tax):
    assert default_taxonomy() is tax


def test_importing_taxonomy_does_not_import_torch():
    code = "import sys, models.taxonomy; sys.exit('torch' in sys.modules)"
    root = Path(__file__).resolve().parents[2]
    assert subprocess.run([sys.executable, "-c", code], cwd=root).returncode == 0
