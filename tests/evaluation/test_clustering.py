"""The issue-clustering study: its scores, its report lines, and the measured result it ships."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evaluation.clustering import STUDY, _scores, render_clustering, run_clustering

INTENTS = ("card_arrival", "exchange_rate", "lost_or_stolen_phone", "top_up_failed", "change_pin")


class PlantedEmbedder:
    """Stands in for the classifier: one direction per Banking77 intent, plus noise."""

    model_id = "planted@0"

    def __init__(self, intent_of: dict[str, str]) -> None:
        self.intent_of = intent_of
        self.centers = np.random.default_rng(0).normal(size=(len(INTENTS), 64))

    def classify_with_embeddings(self, items):
        rng = np.random.default_rng(1)
        rows = [self.centers[INTENTS.index(self.intent_of[it["text"]])] + 0.6 * rng.normal(size=64) for it in items]
        emb = np.asarray(rows, dtype=np.float32)
        return [{"id": it["id"]} for it in items], emb / np.linalg.norm(emb, axis=1, keepdims=True)


def test_scores_count_outliers_as_one_more_cluster():
    gold = ["a", "a", "b", "b"]
    perfect = _scores(gold, ["c1", "c1", "c2", "c2"], 1.0)
    assert perfect["nmi"] == perfect["ari"] == 1.0 and perfect["outlier_share"] == 0.0 and perfect["n_clusters"] == 2
    with_outliers = _scores(gold, ["c1", None, "c2", -1], 1.0)
    assert with_outliers["outlier_share"] == 0.5 and with_outliers["n_clusters"] == 2
    assert with_outliers["nmi"] < 1.0 and with_outliers["nmi_clustered"] == 1.0


@pytest.mark.data
def test_the_study_scores_both_methods_on_the_same_embeddings_and_keeps_no_text(shared_data):
    from training.data.registry import load_dataset

    examples = [e for e in load_dataset("banking77", "test", data_dir=shared_data) if e.raw_labels["intent"] in INTENTS]
    embedder = PlantedEmbedder({e.text: e.raw_labels["intent"] for e in examples})
    result = run_clustering(classifier=embedder, data_dir=shared_data, intents=INTENTS)
    assert result["n"] == len(examples) and result["gold_clusters"] == len(INTENTS)
    assert result["embeddings"] == "planted@0"
    ours, base = result["methods"]["ours"], result["methods"]["bertopic_default"]
    assert ours["nmi"] >= 0.9 and ours["outlier_share"] <= 0.15  # planted intents are easy to find
    assert 0.0 <= base["nmi"] <= 1.0 and base["n_clusters"] >= 1
    dumped = json.dumps(result)
    assert not any(e.text in dumped for e in examples)
    lines = render_clustering(result)
    assert lines[0] == "## Issue clustering" and sum(line.startswith("| ") for line in lines) == 3


def test_the_shipped_study_was_measured_on_the_full_test_split():
    result = json.loads(Path(STUDY).read_text(encoding="utf-8"))
    assert result["dataset"] == "banking77" and result["split"] == "test"
    assert result["gold_clusters"] == 77 and result["n"] > 3000
    ours = result["methods"]["ours"]
    assert ours["outlier_share"] <= 0.15 and 0 < ours["nmi"] <= 1
    assert set(result["methods"]) == {"ours", "bertopic_default"}
    assert any("IssueClusterer" in line for line in render_clustering(result))
