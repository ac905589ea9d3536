"""The triage study: hand labels (references only), the scoring, the saved result and its rendering."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from evaluation.triage import (
    HELDOUT_FILE,
    LABELS_FILE,
    POLICY_BEFORE_FILE,
    STUDY_FILE,
    load_labels,
    render_triage,
    resolve_texts,
    run_triage,
    score,
)

FIELDS = {"dataset", "file", "id_field", "id", "lang", "priority", "selection"}


def test_the_labels_are_references_in_both_languages_with_enough_p1_and_hard_cases() -> None:
    labels = load_labels()
    assert len(labels) >= 200
    assert all(set(lab) == FIELDS for lab in labels)  # no text field: the data may not be redistributed
    assert len({(lab["dataset"], lab["id"]) for lab in labels}) == len(labels)
    langs = Counter(lab["lang"] for lab in labels)
    assert min(langs["zh"], langs["en"]) >= 0.4 * len(labels)
    per_lang = Counter((lab["lang"], lab["priority"]) for lab in labels)
    assert all(per_lang[(lang, p)] >= 5 for lang in ("zh", "en") for p in ("P1", "P2", "P3", "P4")), per_lang
    groups = Counter(lab["selection"].split(":")[0].split("-")[0] for lab in labels)
    assert groups["negated"] >= 5 and groups["random"] >= 100 and groups["cue"] >= 100
    guideline = " ".join((LABELS_FILE.parent / "GUIDELINE.md").read_text(encoding="utf-8").split())
    assert "Blind" in guideline and "before the triage engine" in guideline


def test_score_counts_p1_precision_recall_and_the_confusion_like_sklearn() -> None:
    gold = ["P1", "P1", "P1", "P2", "P3", "P4", "P2", "P1"]
    pred = ["P1", "P2", "P1", "P1", "P3", "P4", "P2", "P3"]
    s = score(gold, pred)
    assert s["p1"] == {"precision": 0.6667, "recall": 0.5, "f1": 0.5714, "gold": 4, "predicted": 3, "true_positives": 2}
    assert s["urgent"]["recall"] == pytest.approx(6 / 6 * 5 / 6, abs=1e-4)  # P1 labelled P3 is the one urgent miss
    assert s["confusion"]["matrix"] == [[2, 1, 1, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    assert s["agreement"] == 0.625 and s["within_one"] == 0.875
    assert s["kappa"] is not None and -1 <= s["kappa"] <= 1


def test_the_held_out_labels_are_new_references_with_p1_and_ordinary_complaints() -> None:
    dev, held = load_labels(), load_labels(HELDOUT_FILE)
    assert len(held) >= 150 and all(set(lab) == FIELDS for lab in held)  # references only
    keys = {(lab["dataset"], lab["id"]) for lab in held}
    assert len(keys) == len(held) and not keys & {(lab["dataset"], lab["id"]) for lab in dev}
    langs = Counter(lab["lang"] for lab in held)
    assert min(langs["zh"], langs["en"]) >= 0.4 * len(held)
    gold = Counter(lab["priority"] for lab in held)
    assert gold["P1"] >= 15 and gold["P3"] >= 50 and gold["P4"] >= 20, gold


def test_the_before_policy_is_the_old_default() -> None:
    from models.triage import default_policy, load_policy

    before, after = load_policy(POLICY_BEFORE_FILE), default_policy()
    assert before.content_hash() != after.content_hash()
    assert set(before.cues) < set(after.cues) and not before.requires


def test_the_saved_study_matches_the_labels_and_renders() -> None:
    result = json.loads(STUDY_FILE.read_text(encoding="utf-8"))
    assert result["errors"] == 0 and set(result["sets"]) == {"dev", "heldout"}
    assert result["policies"]["before"]["hash"] != result["policies"]["after"]["hash"]
    text = "\n".join(render_triage(result))
    for name, path in (("dev", LABELS_FILE), ("heldout", HELDOUT_FILE)):
        labels = load_labels(path)
        entry = result["sets"][name]
        assert entry["n"] == len(labels)
        for which in ("before", "after"):
            overall = entry[which]["overall"]
            assert overall["gold_counts"] == dict(sorted(Counter(lab["priority"] for lab in labels).items()))
            assert sum(map(sum, overall["confusion"]["matrix"])) == len(labels)
            assert overall["p1"]["gold"] == sum(overall["confusion"]["matrix"][0])
            assert entry[which]["by_lang"]["zh"]["n"] + entry[which]["by_lang"]["en"]["n"] == len(labels)
            assert (f"| {name} {which} | {len(labels)} | {100 * overall['p1']['precision']:.1f}% | "
                    f"{100 * overall['p1']['recall']:.1f}% |") in text  # fmt: skip
    assert "| gold \\ engine | P1 | P2 | P3 | P4 |" in text
    # the recalibration must not lose ground on the set it was not tuned on
    held = result["sets"]["heldout"]
    assert held["after"]["overall"]["p1"]["f1"] >= held["before"]["overall"]["p1"]["f1"]
    assert held["after"]["overall"]["agreement"] > held["before"]["overall"]["agreement"]


def _strongly_negative(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A stand-in classifier: every record strongly negative, no topics (the policy then re-triages)."""
    return [{"id": it["id"], "lang": it["lang"], "model": "stub",
             "sentiment": {"label": "negative", "score": -0.9, "confidence": 0.9}, "topics": []} for it in items]  # fmt: skip


@pytest.mark.data
def test_every_reference_resolves_and_the_real_cue_engine_finds_p1s_without_leaking_texts(shared_data: Path) -> None:
    labels = load_labels() + load_labels(HELDOUT_FILE)
    texts = resolve_texts(labels, shared_data)
    assert all(t.strip() for t in texts)
    result = run_triage(_strongly_negative, data_dir=shared_data)
    assert set(result["sets"]) == {"dev", "heldout"} and result["errors"] == 0
    dev = result["sets"]["dev"]
    # with sentiment fixed, only the policies' cues separate the priorities
    assert dev["before"]["overall"]["p1"]["true_positives"] >= 10
    assert dev["after"]["overall"]["p1"]["precision"] > dev["before"]["overall"]["p1"]["precision"]
    after = dev["after"]["by_selection"]
    assert after["random"]["p1"]["predicted"] < after["cue"]["p1"]["predicted"]
    dumped = json.dumps(result, ensure_ascii=False)
    assert not any(len(t) > 30 and t[:30] in dumped for t in texts)
