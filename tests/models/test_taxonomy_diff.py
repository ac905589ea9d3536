"""Versions of a taxonomy: YAML round trip, diffs, and mapping old labels forward."""

from __future__ import annotations

import copy

import pytest

from models.taxonomy import (
    ChangeKind,
    NodeKind,
    default_taxonomy,
    diff_taxonomies,
    dump_taxonomy,
    label_mapping,
    load_taxonomy,
    taxonomy_to_dict,
)
from nlp.errors import InvalidInputError, NotFoundError


def _node(data: dict, node_id: str) -> dict:
    return next(n for n in data["topics"] if n["id"] == node_id)


def _seeds(zh: str, en: str) -> dict:
    return {"zh": [f"{zh}{i}" for i in range(8)], "en": [f"{en} {i}" for i in range(8)]}


@pytest.fixture(scope="module")
def v1():
    return default_taxonomy()


@pytest.fixture(scope="module")
def v2(v1):
    """An analyst's quarter: add food safety, rename courier, merge responsiveness into
    resolution, retire location, move warranty under product."""
    data = copy.deepcopy(taxonomy_to_dict(v1))
    data["version"] = 2
    data["topics"].append(
        {
            "id": "product.safety",
            "name": {"zh": "过敏/食品安全", "en": "Food safety"},
            "description": {
                "zh": "吃了以后过敏、食物中毒或吃出异物",
                "en": "allergies, food poisoning",
            },
            "seeds": {
                "zh": [
                    "吃完全身起疹子",
                    "吃了拉肚子",
                    "菜里吃出玻璃渣",
                    "标注无坚果但有花生",
                    "食物中毒进了医院",
                    "孩子吃了过敏",
                    "肉没熟吃坏了肚子",
                    "外卖里有虫子",
                ],
                "en": [
                    "I had an allergic reaction",
                    "got food poisoning",
                    "found glass in my food",
                    "said nut free but had peanuts",
                    "ended up in hospital after eating",
                    "my kid reacted to the sauce",
                    "the chicken was raw inside",
                    "there was a bug in my salad",
                ],
            },
            "touchpoints": ["use"],
            "severity": "critical",
        }
    )
    _node(data, "delivery.courier")["name"] = {"zh": "配送员", "en": "Courier"}
    _node(data, "service.responsiveness").update(status="retired", replaced_by="service.resolution")
    _node(data, "environment.location")["status"] = "retired"
    _node(data, "aftersales.warranty").update(status="retired", replaced_by="product.warranty")
    warranty = copy.deepcopy(_node(data, "aftersales.warranty"))
    warranty.update(id="product.warranty")
    del warranty["status"], warranty["replaced_by"]
    data["topics"].append(warranty)
    _node(data, "billing.charges")["seeds"]["en"].append("the airline charged me a random fee")
    return load_taxonomy(dump_taxonomy(load_taxonomy(data)))


def test_round_trip_keeps_every_field(v1, v2):
    for tax in (v1, v2):
        text = dump_taxonomy(tax)
        assert load_taxonomy(text) == tax
        assert dump_taxonomy(load_taxonomy(text)) == text
    assert "status: retired" in dump_taxonomy(v2) and "过敏/食品安全" in dump_taxonomy(v2)


def test_retired_nodes_leave_the_label_set_but_stay_known(v1, v2):
    assert "service.responsiveness" not in v2.leaf_ids
    assert "product.safety" in v2.leaf_ids and "product.warranty" in v2.leaf_ids
    assert len(v2.leaf_ids) == 20 - 3 + 2
    assert v2.leaves_under("service") == ("service.attitude", "service.resolution")
    assert v2.leaves_under("service.responsiveness") == ()
    assert v2.topic("service.responsiveness").replaced_by == "service.resolution"
    assert set(v2.retired_ids()) == {
        "service.responsiveness",
        "environment.location",
        "aftersales.warranty",
    }
    assert v2.resolve("aftersales.warranty") == "product.warranty"
    assert v2.resolve("environment.location") is None


def test_diff_lists_each_kind_of_change(v1, v2):
    diff = diff_taxonomies(v1, v2)
    assert [c.id for c in diff.added] == ["product.safety"]
    assert [(c.id, c.target) for c in diff.merged] == [
        ("service.responsiveness", "service.resolution")
    ]
    assert [c.id for c in diff.retired] == ["environment.location"]
    assert [(c.id, c.target) for c in diff.moved] == [("aftersales.warranty", "product.warranty")]
    assert "parent aftersales -> product" in diff.moved[0].detail
    assert [c.id for c in diff.renamed] == ["delivery.courier"]
    assert "快递员/骑手" in diff.renamed[0].detail and "配送员" in diff.renamed[0].detail
    seeds = diff.of(ChangeKind.seeds_changed)
    assert [(c.id, c.detail) for c in seeds] == [("billing.charges", "en +1 -0")]
    assert diff.removed == () and not diff.is_empty
    assert diff.of("added", kind="touchpoint") == ()


def test_diff_summary_is_readable(v1, v2):
    lines = diff_taxonomies(v1, v2).summary()
    assert lines[0].startswith("cem-default v1 -> cem-default v2: ")
    assert "+ topic product.safety added: 过敏/食品安全 / Food safety" in lines
    assert "> topic service.responsiveness merged into service.resolution" in lines
    assert "- topic environment.location retired" in lines
    assert any(
        line.startswith("> topic aftersales.warranty moved to product.warranty") for line in lines
    )
    assert diff_taxonomies(v1, v1).summary() == ["cem-default v1 -> cem-default v1: no changes"]


def test_label_mapping_maps_merged_and_moved_labels_forward(v1, v2):
    mapping = label_mapping(v1, v2)
    assert set(mapping) == set(v1.topic_ids)
    assert mapping["service.responsiveness"] == "service.resolution"
    assert mapping["aftersales.warranty"] == "product.warranty"
    assert mapping["environment.location"] is None
    assert mapping["delivery.timeliness"] == "delivery.timeliness"
    assert label_mapping(v1, v2, kind=NodeKind.touchpoint) == {t: t for t in v1.touchpoint_ids}


def test_label_mapping_follows_chains_across_versions(v1, v2):
    data = copy.deepcopy(taxonomy_to_dict(v2))
    data["version"] = 3
    _node(data, "service.resolution").update(status="retired", replaced_by="service.attitude")
    data["topics"] = [n for n in data["topics"] if n["id"] != "service.responsiveness"]
    v3 = load_taxonomy(data)
    assert label_mapping(v2, v3)["service.responsiveness"] == "service.attitude"  # via v2 chain
    # v3 deleted the retired node, so v1 -> v3 alone cannot know where it went: keep retired
    # nodes in the file, or map version by version
    assert label_mapping(v1, v3)["service.responsiveness"] is None
    assert label_mapping(v1, v3)["service.resolution"] == "service.attitude"
    diff = diff_taxonomies(v2, v3)
    assert [c.id for c in diff.removed] == ["service.responsiveness"]
    assert [(c.id, c.target) for c in diff.merged] == [("service.resolution", "service.attitude")]


def test_content_hash_tracks_node_content_only(v1):
    data = taxonomy_to_dict(v1)
    assert load_taxonomy({**data, "version": 7}).content_hash() == v1.content_hash()
    changed = copy.deepcopy(data)
    _node(changed, "price.value")["seeds"]["zh"][0] = "太贵了"
    assert load_taxonomy(changed).content_hash() != v1.content_hash()


def test_lookups_fail_clearly(v1):
    with pytest.raises(NotFoundError, match="did you mean 'delivery.timeliness'"):
        v1.topic("delivery.timelines")
    with pytest.raises(NotFoundError):
        v1.leaves_under("shipping")
    with pytest.raises(InvalidInputError, match="zh, en"):
        v1.node_text("price.value", "fr")


def test_yaml_special_strings_survive_the_round_trip(v1):
    tricky = [
        "yes",
        "null",
        "123",
        "1e3",
        "a: b",
        "# not a comment",
        "- dash",
        "'quoted'",
        '"double"',
        "emoji 👍 很棒",
        "trailing colon:",
        "~",
        "@home",
        "多行\n文本",
    ]
    data = copy.deepcopy(taxonomy_to_dict(v1))
    _node(data, "price.value")["seeds"]["en"] = tricky
    tax = load_taxonomy(data)
    assert load_taxonomy(dump_taxonomy(tax)).topic("price.value").seeds.en == tuple(tricky)


def test_a_missing_path_without_extension_says_so():
    with pytest.raises(InvalidInputError, match="no such file"):
        load_taxonomy("taxonomies/acme")
