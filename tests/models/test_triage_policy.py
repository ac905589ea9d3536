"""Triage policy files: the default, versioning, and validation errors with their paths."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from models.taxonomy import ProblemLevel, default_taxonomy
from models.triage import (
    Priority,
    default_policy,
    dump_policy,
    load_policy,
    policy_to_dict,
    validate_policy,
)
from nlp.errors import PolicyError

DEFAULT_FILE = Path(__file__).parents[2] / "models" / "triage" / "default_policy.yaml"


def default_data() -> dict:
    return policy_to_dict(default_policy())


def errors(source, **kwargs) -> dict[str, str]:
    """path -> message of every error."""
    return {
        p.path: p.message
        for p in validate_policy(source, **kwargs)
        if p.level is ProblemLevel.error
    }


def test_default_policy_is_valid_against_the_default_taxonomy() -> None:
    assert validate_policy(DEFAULT_FILE, taxonomy=default_taxonomy()) == []
    policy = default_policy()
    assert policy.ref == "default@2"
    assert set(policy.cues) == {"safety", "hazard", "legal", "media", "remedy", "churn", "public"}
    assert policy.requires == {Priority.P1: ("safety", "legal", "media")}
    assert {"过敏", "食物中毒", "受伤", "起火"} <= set(policy.cues["safety"].zh)
    assert {"12315", "消协", "律师", "起诉"} <= set(policy.cues["legal"].zh)
    assert "no" in policy.negation.en.negators
    assert policy.thresholds.priority_for(6.0) is Priority.P1
    assert policy.thresholds.priority_for(1.49) is Priority.P4
    assert [policy.sla_hours.for_priority(p) for p in ("P1", "P2", "P3", "P4")] == [4, 24, 72, 168]


def test_dump_and_load_round_trip() -> None:
    policy = default_policy()
    again = load_policy(dump_policy(policy))
    assert again == policy
    assert again.content_hash() == policy.content_hash()
    assert "食物中毒" in dump_policy(policy)  # Chinese stays readable


def test_content_hash_follows_rules_not_version() -> None:
    data = default_data()
    base = default_policy().content_hash()
    assert load_policy({**data, "version": 7, "name": "renamed"}).content_hash() == base
    data["weights"]["sentiment"] = 2.5
    assert load_policy(data).content_hash() != base


def test_errors_carry_paths_and_lines() -> None:
    text = DEFAULT_FILE.read_text(encoding="utf-8")
    text = text.replace(
        "thresholds: {P1: 6.0, P2: 3.5, P3: 1.5}", "thresholds: {P1: 6.0, P2: 7.0, P3: 1.5}"
    )
    text = text.replace(
        "sla_hours: {P1: 4, P2: 24, P3: 72, P4: 168}", "sla_hours: {P1: 4, P2: 24, P3: 12, P4: 168}"
    )
    text = text.replace("  sentiment: 2.0 ", "  sentimnet: 2.0 ")
    text = text.replace(
        "floor: P1\n    related_topics: [product.quality",
        "floor: P5\n    related_topics: [product.quality",
    )
    problems = validate_policy(text)
    by_path = {p.path: p for p in problems}
    assert set(by_path) == {
        "thresholds.P2",
        "sla_hours.P3",
        "weights.sentimnet",
        "cues.safety.floor",
    }
    assert "must be below P1 (6.0)" in by_path["thresholds.P2"].message
    assert "shorter than P2" in by_path["sla_hours.P3"].message
    assert by_path["weights.sentimnet"].message.startswith(
        "unknown field 'sentimnet'; allowed here: sentiment, topic"
    )
    assert "'P1', 'P2', 'P3' or 'P4'" in by_path["cues.safety.floor"].message
    lines = text.splitlines()
    assert "sentimnet" in lines[by_path["weights.sentimnet"].line - 1]
    assert "floor: P5" in lines[by_path["cues.safety.floor"].line - 1]
    with pytest.raises(PolicyError, match="4 problems") as info:
        load_policy(text)
    assert {d["path"] for d in info.value.details} == set(by_path)


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        (
            lambda d: d["cues"].update(topic={"label": "x", "weight": 1, "en": ["x"]}),
            "cues.topic",
            "signal kind of the engine",
        ),
        (
            lambda d: d["cues"].update(recall={"label": "product recall", "weight": 2}),
            "cues.recall",
            "has no cues",
        ),
        (lambda d: d["cues"]["churn"].update(en=["退订"]), "cues.churn.en[0]", "list it under zh"),
        (lambda d: d["cues"]["churn"].update(en=["* again"]), "cues.churn.en[0]", "between two"),
        (lambda d: d["weights"].update(topic=-1), "weights.topic", "greater than or equal to 0"),
        (
            lambda d: d["negation"]["en"].update(negators=[False, "not"]),
            "negation.en.negators",
            'quote the word, e.g. "no"',
        ),
        (
            lambda d: d["negation"]["en"].update(negators=["no one"]),
            "negation.en.negators[0]",
            "single words",
        ),
        (
            lambda d: d["topics"].update(severity={"Billing": "high"}),
            "topics.severity.Billing",
            "not a topic id",
        ),
        (
            lambda d: d["topics"].update(severity={"billing.charges": "urgent"}),
            "topics.severity.billing.charges",
            "'low', 'medium', 'high' or 'critical'",
        ),
        (
            lambda d: d["customer_value"].update(tier_fields=[]),
            "customer_value.tier_fields",
            "name the metadata fields",
        ),
        (
            lambda d: d["customer_value"]["tiers"].update(VIP=2.0),
            "customer_value.tiers.VIP",
            "ignores case",
        ),
        (lambda d: d.update(id="Acme Retail"), "id", "policy id 'Acme Retail' is not valid"),
        (lambda d: d.update(version=0), "version", "positive integer"),
        (lambda d: d.pop("thresholds"), "thresholds", "missing required field"),
    ],
)
def test_each_problem_is_reported_with_its_path(change, path: str, message: str) -> None:
    data = default_data()
    change(data)
    found = errors(data)
    assert path in found, found
    assert message in found[path]


def test_unknown_topics_are_checked_against_a_taxonomy() -> None:
    data = default_data()
    data["cues"]["safety"]["related_topics"] = ["product.qualty"]
    assert errors(data) == {}
    found = errors(data, taxonomy=default_taxonomy())
    assert list(found) == ["cues.safety.related_topics[0]"]
    assert found["cues.safety.related_topics[0]"].startswith(
        "unknown topic 'product.qualty' in taxonomy 'cem-default' v1; did you mean "
        "'product.quality'"
    )


def test_warnings_do_not_stop_loading() -> None:
    data = default_data()
    data["cues"]["churn"]["zh"] = [*data["cues"]["churn"]["zh"], "退订", "曝光"]
    problems = validate_policy(data)
    assert {p.level for p in problems} == {ProblemLevel.warning}
    assert any("listed twice" in p.message for p in problems)
    assert any("listed under churn, public" in p.message for p in problems)
    assert load_policy(data).cues["churn"].zh[-1] == "曝光"


def test_reading_problems(tmp_path: Path) -> None:
    assert errors(tmp_path / "missing.yaml") == {
        "": f"policy file not found: {tmp_path / 'missing.yaml'}"
    }
    assert "must be a YAML mapping" in errors("- just\n- a list\n")[""]
    assert "invalid YAML syntax" in errors("id: [unclosed\n")[""]
    dup = yaml.safe_dump(default_data(), allow_unicode=True) + "id: again\n"
    assert "duplicate key 'id'" in errors(dup)["id"]
    path = tmp_path / "acme.yaml"
    path.write_text(dump_policy(default_policy()).replace("id: default", "id: acme"), "utf-8")
    assert load_policy(path).ref == "acme@2"
    path.write_text("id: acme\n", "utf-8")
    with pytest.raises(PolicyError, match=f"triage policy file {path} is invalid"):
        load_policy(str(path))
