"""The validator reports every problem of a broken taxonomy, each at its path (and line)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from models.taxonomy import (
    ProblemLevel,
    Taxonomy,
    load_taxonomy,
    taxonomy_to_dict,
    validate_taxonomy,
)
from nlp.errors import TaxonomyError

HEADER = """\
id: demo
version: 1
name: {zh: 演示, en: Demo}
touchpoints:
  - id: fulfil
    name: {zh: 交付, en: Fulfil}
    description: {zh: 发货和送达, en: shipping and arrival}
    seeds:
      zh: [快递三天没到, 外卖洒了, 骑手送错了, 排队太久, 航班延误]
      en: [parcel is late, soup spilled, wrong door, long queue, flight delayed]
topics:
  - id: delivery
    name: {zh: 物流, en: Delivery}
    description: {zh: 交付过程, en: getting things to the customer}
"""
LEAF = """\
  - id: delivery.timeliness
    name: {zh: 时效, en: Timeliness}
    description: {zh: 快慢和准时, en: speed and punctuality}
    touchpoints: [fulfil]
    seeds:
      zh: [配送太慢了, 等了一个小时, 三天还没到, 航班延误两小时, 上菜太慢]
      en: [delivery took forever, waited an hour, still not here, flight delayed, slow service]
"""


def errors_by_path(text: str) -> dict[str, str]:
    problems = validate_taxonomy(text)
    return {p.path: p.message for p in problems if p.level is ProblemLevel.error}


def test_valid_snippet_has_no_problem():
    assert validate_taxonomy(HEADER + LEAF) == []
    assert load_taxonomy(HEADER + LEAF).leaf_ids == ("delivery.timeliness",)


def test_duplicate_id_reported_at_the_second_one():
    errors = errors_by_path(HEADER + LEAF + LEAF)
    assert list(errors) == ["topics[2].id"]
    assert "duplicate topic id 'delivery.timeliness'" in errors["topics[2].id"]
    assert "topics[1]" in errors["topics[2].id"]


def test_unknown_parent_and_mismatched_parent():
    text = (
        HEADER
        + LEAF
        + LEAF.replace("delivery.timeliness", "shipping.speed")
        + (
            LEAF.replace("delivery.timeliness", "delivery.speed").replace(
                "    touchpoints:", "    parent: shipping\n    touchpoints:"
            )
        )
    )
    errors = errors_by_path(text)
    assert "unknown parent 'shipping'" in errors["topics[2].id"]
    assert "does not match the id prefix 'delivery'" in errors["topics[3].parent"]


def test_level1_topic_cannot_declare_a_parent():
    text = HEADER.replace("  - id: delivery\n", "  - id: delivery\n    parent: service\n") + LEAF
    assert "cannot have a parent" in errors_by_path(text)["topics[0].parent"]


@pytest.mark.parametrize("bad_name", ["{zh: 时效}", "{en: Timeliness}"])
def test_missing_language_in_name(bad_name):
    text = HEADER + LEAF.replace("{zh: 时效, en: Timeliness}", bad_name)
    errors = errors_by_path(text)
    lang = "en" if "zh" in bad_name else "zh"
    assert f"missing {lang}" in errors[f"topics[1].name.{lang}"]


def test_missing_seed_language_is_an_error_and_few_seeds_a_warning():
    text = HEADER + LEAF.replace(
        "      en: [delivery took forever, waited an hour, still not here, flight delayed, "
        "slow service]\n",
        "",
    ).replace("[配送太慢了, 等了一个小时, 三天还没到, 航班延误两小时, 上菜太慢]", "[配送太慢了]")
    problems = validate_taxonomy(text)
    by_path = {(p.path, p.level): p.message for p in problems}
    assert "no en seed phrases" in by_path[("topics[1].seeds.en", ProblemLevel.error)]
    assert "only 1 zh seed phrase" in by_path[("topics[1].seeds.zh", ProblemLevel.warning)]
    # warnings alone do not stop loading; an error does
    with pytest.raises(TaxonomyError):
        load_taxonomy(text)
    ok = HEADER + LEAF.replace(
        "[配送太慢了, 等了一个小时, 三天还没到, 航班延误两小时, 上菜太慢]",
        "[配送太慢了, 等了一个小时]",
    )
    assert load_taxonomy(ok).topic("delivery.timeliness").seeds.zh == ("配送太慢了", "等了一个小时")


@pytest.mark.parametrize(
    ("bad_id", "expect"),
    [
        ("Delivery.Timeliness", "not valid"),
        ("delivery.on-time", "not valid"),
        ("delivery.time.liness", "at most two"),
        ("1delivery.speed", "not valid"),
    ],
)
def test_bad_topic_id_syntax(bad_id, expect):
    errors = errors_by_path(HEADER + LEAF.replace("delivery.timeliness", bad_id))
    assert expect in errors["topics[1].id"]


def test_touchpoint_ids_have_one_level():
    text = HEADER.replace("  - id: fulfil\n", "  - id: journey.fulfil\n") + LEAF
    errors = errors_by_path(text)
    assert "no dots" in errors["touchpoints[0].id"]


def test_touchpoint_hint_must_exist():
    errors = errors_by_path(
        HEADER + LEAF.replace("touchpoints: [fulfil]", "touchpoints: [fulfil, shipping]")
    )
    assert "unknown touchpoint 'shipping'" in errors["topics[1].touchpoints[1]"]


def test_retired_node_must_be_replaced_by_a_known_node():
    retired = LEAF.replace("delivery.timeliness", "delivery.speed") + (
        "    status: retired\n    replaced_by: delivery.timelyness\n"
    )
    errors = errors_by_path(HEADER + LEAF + retired)
    assert "unknown topic 'delivery.timelyness'" in errors["topics[2].replaced_by"]


def test_replaced_by_on_an_active_node_and_replacement_loops():
    active = LEAF.replace("    touchpoints:", "    replaced_by: delivery\n    touchpoints:")
    assert "only retired nodes" in errors_by_path(HEADER + active)["topics[1].replaced_by"]
    a = LEAF.replace("delivery.timeliness", "delivery.a") + (
        "    status: retired\n    replaced_by: delivery.b\n"
    )
    b = LEAF.replace("delivery.timeliness", "delivery.b") + (
        "    status: retired\n    replaced_by: delivery.a\n"
    )
    errors = errors_by_path(HEADER + LEAF + a + b)
    assert "loops back" in errors["topics[2].replaced_by"]


def test_active_leaf_under_retired_parent():
    text = (
        HEADER.replace(
            "    description: {zh: 交付过程, en: getting things to the customer}\n",
            "    description: {zh: 交付过程, en: getting things to the customer}\n"
            "    status: retired\n",
            1,
        )
        + LEAF
    )
    assert "sits under retired 'delivery'" in errors_by_path(text)["topics[1].status"]


def test_unknown_field_and_bad_enum_values():
    text = HEADER + LEAF.replace(
        "    seeds:\n",
        "    severity: urgent\n    route: Customer Care\n    seed: [typo]\n    seeds:\n",
    )
    errors = errors_by_path(text)
    assert "unknown field 'seed'" in errors["topics[1].seed"]
    assert "allowed here" in errors["topics[1].seed"] and "seeds" in errors["topics[1].seed"]
    assert "'critical'" in errors["topics[1].severity"]
    assert "not a queue name" in errors["topics[1].route"]


def test_many_problems_in_one_file_are_all_reported_with_lines():
    text = textwrap.dedent("""\
        id: Demo Taxonomy
        version: "1"
        name: {zh: 演示}
        touchpoints:
          - id: fulfil
            name: {zh: 交付, en: Fulfil}
            description: {zh: 发货, en: shipping}
            seeds: {zh: [快递慢], en: [late]}
        topics:
          - id: delivery.timeliness
            name: {zh: 时效, en: Timeliness}
            description: {zh: 快慢}
            touchpoints: [ship]
            seeds: {zh: [配送太慢了]}
          - id: delivery.timeliness
            name: {zh: 时效, en: Timeliness}
            description: {zh: 快慢, en: speed}
            seeds: {zh: [配送太慢了], en: [slow]}
        """)
    problems = [p for p in validate_taxonomy(text) if p.level is ProblemLevel.error]
    found = {(p.path, p.line) for p in problems}
    expected = {
        ("id", 1),
        ("version", 2),
        ("name.en", 3),
        ("topics[0].description.en", 12),
        ("topics[1].id", 15),
    }
    assert expected <= found
    paths = [p.path for p in problems]
    assert paths.count("topics[0].id") == 1  # unknown parent 'delivery'
    assert "topics[0].touchpoints[0]" in paths  # unknown touchpoint 'ship'
    assert "topics[0].seeds.en" in paths  # no English seeds
    assert [p.line for p in problems] == sorted(p.line for p in problems)  # file order
    with pytest.raises(TaxonomyError) as info:
        load_taxonomy(text)
    assert f"{len(problems)} problems" in info.value.message
    assert "line 1, id" in info.value.message and "more" in info.value.message
    details = info.value.details
    assert {(d["path"], d["line"]) for d in details if d["level"] == "error"} == found
    assert all(set(d) == {"path", "line", "level", "message"} for d in details)


def test_invalid_yaml_gives_one_problem_with_its_line():
    problems = validate_taxonomy("id: demo\nversion: 1\nname: {zh: 演示, en: Demo\ntopics: []\n")
    assert len(problems) == 1
    assert problems[0].message.startswith("invalid YAML syntax")
    assert problems[0].line is not None and problems[0].line >= 3


def test_a_character_yaml_does_not_allow_is_one_problem_at_its_line_and_column():
    """PyYAML refuses control characters (a stray C1 byte from a mis-decoded file, say) as it
    reads the text, before parsing: reported like any syntax error, never raised."""
    problems = validate_taxonomy(HEADER.replace("name: {zh: 演示", "name: {zh: 演\u0089示") + LEAF)
    assert [(p.path, p.line, p.level) for p in problems] == [("", 3, ProblemLevel.error)]
    assert "U+0089 at line 3, column 13" in problems[0].message
    assert "\\u0089" in problems[0].message  # how to write it instead
    assert validate_taxonomy("\u0089\n")[0].line == 1


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("- a\n- b\n", "got a list"),
        ("just a sentence", "got a str"),
        ("", "empty"),
        ("# only a comment\n", "empty"),
    ],
)
def test_non_mapping_documents_give_one_clear_problem(text, expect):
    problems = validate_taxonomy(text)
    assert len(problems) == 1 and expect in problems[0].message


def test_duplicate_yaml_keys_are_reported():
    text = HEADER.replace("version: 1\n", "version: 1\nversion: 2\n") + LEAF
    problems = validate_taxonomy(text)
    assert [(p.path, p.line) for p in problems] == [("version", 3)]
    assert "duplicate key 'version' (first at line 2)" in problems[0].message


def test_missing_file_and_path_sources(tmp_path: Path):
    with pytest.raises(TaxonomyError, match="not found"):
        load_taxonomy(tmp_path / "nope.yaml")
    path = tmp_path / "t.yaml"
    path.write_text(HEADER + LEAF, encoding="utf-8")
    assert load_taxonomy(path) == load_taxonomy(str(path)) == load_taxonomy(HEADER + LEAF)
    path.write_bytes((HEADER + LEAF).encode("gbk"))
    problems = validate_taxonomy(path)
    assert len(problems) == 1 and "not UTF-8" in problems[0].message


def test_building_a_taxonomy_in_code_runs_the_same_checks():
    data = taxonomy_to_dict(load_taxonomy(HEADER + LEAF))
    data["topics"][1]["touchpoints"] = ["nowhere"]
    with pytest.raises(TaxonomyError, match="unknown touchpoint 'nowhere'"):
        Taxonomy.model_validate(data)
    assert validate_taxonomy(data)[0].path == "topics[1].touchpoints[0]"
