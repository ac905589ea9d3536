"""Rendering: targets say pass or miss, by how much, and why."""

from __future__ import annotations

from evaluation.report import render, target_rows


def _results(ours: float, tfidf: float) -> dict:
    pred = {"n": 1000, "accuracy_ci95": [0.0, 1.0], "macro_f1": 0.9, "ece": 0.03}
    return {
        "meta": {"generated": "now", "ours_evaluated": True, "model": "verbatim-cem@0.1",
                 "quick": False, "peers": ["tfidf_lr"], "c_grid": [0.5, 2.0, 8.0], "notes": [],
                 "target_notes": {"waimai_10k": "short texts with sarcasm"}},
        "sentiment": {"waimai_10k": {
            "target": 0.91, "tfidf_margin": 0.015, "anchor": "89.7",
            "predictors": {"verbatim": pred | {"accuracy": ours},
                           "tfidf_lr": pred | {"accuracy": tfidf}}}},
    }


def test_a_missed_target_says_by_how_much_and_why():
    md = render(_results(0.905, 0.894))
    assert "MISS (-0.5 pts vs target)" in md
    assert "MISS (+1.1 pts vs TF-IDF, needs +1.5)" in md
    assert "short texts with sarcasm" in md
    assert "| waimai_10k | Verbatim (ours) | 1000 | 90.5 [0.0–100.0] | 90.0 | 0.030 |" in md


def test_a_met_target_passes_both_conditions():
    (row,) = target_rows(_results(0.93, 0.894)["sentiment"])
    assert row["status"] == "pass (+2.0 pts vs target); pass (+3.6 pts vs TF-IDF, needs +1.5)"
