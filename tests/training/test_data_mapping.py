"""The mapping of public labels onto the default taxonomy, checked against spec/taxonomy.md."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from training.data.files import REPO_ROOT
from training.data.mapping import (
    ASAP_ASPECTS,
    BANKING77_INTENTS,
    COARSE_CATEGORIES,
    TOPIC_IDS,
    TOPIC_LEVEL1_IDS,
    TOUCHPOINT_IDS,
    TWITTER_REASONS,
    ZHIJIANG_CATEGORIES,
    Mapped,
    map_absa_category,
)
from training.data.schema import Example, TopicLabel

# the spec sits beside the data (shared/data, shared/spec): found from VERBATIM_DATA when set,
# so a checkout anywhere (CI clones into a temporary folder) reads the same file
_SHARED = Path(os.environ["VERBATIM_DATA"]).resolve().parent if os.environ.get("VERBATIM_DATA") else REPO_ROOT.parent / "shared"
SPEC = _SHARED / "spec" / "taxonomy.md"


def _spec_rows() -> list[tuple[str, list[str], str | None, str | None]]:
    if not SPEC.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"spec/taxonomy.md not found at {SPEC}")
        pytest.skip(f"spec/taxonomy.md not found at {SPEC}")
    text = SPEC.read_text(encoding="utf-8").split("## Mapping public labels", 1)[1]
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0] or "`" not in cells[0]:
            continue
        source, topic, touchpoint = cells
        scheme = source.split("`", 1)[0].strip()
        labels = re.findall(r"`([^`]+)`", source)
        rows.append((scheme, labels, _id(topic), _id(touchpoint)))
    return rows


def _id(cell: str) -> str | None:
    found = re.findall(r"`([^`]+)`", cell)
    return found[0] if found else None


def _instances(label: str) -> list[str]:
    """Concrete source labels for a table pattern."""
    if label.endswith("#*"):
        return [label[:-1] + "GENERAL", label[:-1] + "QUALITY"]
    if label.startswith("*#"):
        return ["FOOD" + label[1:], "RESTAURANT" + label[1:]]
    if label.endswith("_*"):  # ASAP location_*
        return [c for c in ASAP_ASPECTS if c.startswith(label[:-1])]
    return [label]


def test_mapping_matches_the_spec_table_row_by_row():
    rows = _spec_rows()
    assert len(rows) >= 30
    covered: dict[str, set[str]] = {"twitter": set(), "zhijiang": set(), "ASAP": set(),
                                    "banking77": set()}  # fmt: skip
    for scheme, labels, topic, touchpoint in rows:
        expected = Mapped(topic=topic, touchpoint=touchpoint)
        for label in labels:
            for instance in _instances(label):
                if scheme.startswith("twitter"):
                    got, key = TWITTER_REASONS.get(instance), "twitter"
                elif scheme.startswith("zhijiang"):
                    got, key = ZHIJIANG_CATEGORIES.get(instance), "zhijiang"
                elif scheme.startswith("ASAP"):
                    got, key = ASAP_ASPECTS.get(instance), "ASAP"
                elif scheme.startswith("banking77"):
                    got, key = BANKING77_INTENTS.get(instance), "banking77"
                else:
                    assert scheme.startswith("SemEval"), scheme
                    got, key = map_absa_category(instance), None
                assert got == expected, (scheme, instance)
                if key:
                    covered[key].add(instance)
    # nothing in the tables that the spec does not list
    assert covered["twitter"] == set(TWITTER_REASONS)
    assert covered["zhijiang"] == set(ZHIJIANG_CATEGORIES)
    assert covered["ASAP"] == set(ASAP_ASPECTS)
    assert covered["banking77"] == set(BANKING77_INTENTS)


def test_mapped_ids_belong_to_the_default_taxonomy():
    tables = [TWITTER_REASONS, ZHIJIANG_CATEGORIES, ASAP_ASPECTS, BANKING77_INTENTS,
              COARSE_CATEGORIES]  # fmt: skip
    for table in tables:
        for mapped in table.values():
            assert mapped.topic or mapped.touchpoint
            assert mapped.topic is None or mapped.topic in TOPIC_IDS | TOPIC_LEVEL1_IDS
            assert mapped.touchpoint is None or mapped.touchpoint in TOUCHPOINT_IDS
    assert len(TOPIC_IDS) == 20 and TOPIC_LEVEL1_IDS >= {"service", "product", "delivery"}


def test_unlisted_labels_are_absent_and_rules_apply_in_table_order():
    for label in ["RESTAURANT#GENERAL", "FOOD#STYLE_OPTIONS", "LAPTOP#QUALITY", "COMPANY#GENERAL",
                  "anecdotes/miscellaneous", "menu", "miscellaneous"]:  # fmt: skip
        assert map_absa_category(label) is None, label
    assert TWITTER_REASONS.get("Can't Tell") is None
    assert ZHIJIANG_CATEGORIES.get("整体") is None and ZHIJIANG_CATEGORIES.get("包装") is None
    # the first matching row wins: support and shipping costs are not price.value
    assert map_absa_category("SUPPORT#PRICE") == Mapped(topic="service", touchpoint="support")
    assert map_absa_category("SHIPPING#PRICE") == Mapped(topic="delivery", touchpoint="fulfil")
    # the laptop scheme spells the PRICES attribute PRICE
    assert map_absa_category("LAPTOP#PRICE") == Mapped(topic="price.value", touchpoint="purchase")
    assert map_absa_category("staff") == map_absa_category("SERVICE#GENERAL")


def test_topic_polarities_merge_labels_of_one_topic():
    def label(topic, polarity, source):
        return TopicLabel(id=topic, polarity=polarity, span=None, source_label=source)

    example = Example(
        id="1",
        dataset="zhijiang2019_makeup_opinion",
        split="dev",
        lang="zh",
        text="用着还行，但是味道太冲了，性价比高",
        topics=(
            label("product.quality", "neutral", "使用体验"),
            label("product.quality", "negative", "气味"),
            label("price.value", "positive", "价格"),
            label("price.value", "positive", "价格"),
            label("service", None, "服务"),
        ),
    )
    assert example.topic_polarities() == {
        "product.quality": "negative",
        "price.value": "positive",
        "service": None,
    }
    both = Example(id="2", dataset="x", split="test", lang="en", text="Great food, awful food",
                   topics=(label("product.quality", "positive", "food"),
                           label("product.quality", "negative", "food")))  # fmt: skip
    assert both.topic_polarities() == {"product.quality": "conflict"}
