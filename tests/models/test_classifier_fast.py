"""Real-model tier for the shipped 6-layer student (models/fast), as users get it with
``--model models/fast``: the same contract as the default model, from half the encoder.

Assertions are what any reader of these reviews expects; they are not tuned to the model.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from models.classifier import default_model_dir
from models.classifier.config import ClassifierConfig
from models.taxonomy import default_taxonomy

pytestmark = pytest.mark.slow

FAST = default_model_dir().parent / "fast"
CLEAR = [
    ("质量太差了，用了两天就坏了，再也不买了", "negative"),
    ("送餐很快，味道也很好，下次还点这家", "positive"),
    ("Absolutely love it, great quality and fast shipping!", "positive"),
    ("The agent was rude and my refund still hasn't arrived. I'm cancelling my account.", "negative"),
]


@pytest.fixture(scope="module")
def classifier(base_encoder_dir: Path):
    from models.classifier.predict import Classifier

    if not (FAST / "config.json").is_file():
        pytest.fail(f"the fast model is missing from {FAST}")
    return Classifier.load(FAST, base_dir=base_encoder_dir)


def test_the_fast_model_is_a_six_layer_student_of_the_default_taxonomy(classifier):
    config = ClassifierConfig.load(FAST)
    assert len(config.encoder_layers) == 6 and config.name == "verbatim-cem-fast"
    assert config.training["teacher"].startswith("verbatim-cem@")  # distilled from a default model
    assert config.topic_ids == default_taxonomy().leaf_ids
    assert len(classifier.model.encoder.encoder.layer) == 6


@pytest.mark.parametrize(("text", "label"), CLEAR)
def test_clear_reviews_get_the_obvious_sentiment(classifier, text, label):
    (res,) = classifier.classify([{"id": "r", "text": text}])
    assert res["sentiment"]["label"] == label, res["sentiment"]
    assert res["model"] == ClassifierConfig.load(FAST).model_id


def test_results_have_the_default_models_shape(classifier):
    tax = default_taxonomy()
    results = classifier.classify([{"id": str(i), "text": t} for i, (t, _) in enumerate(CLEAR)] + [{"id": "x", "text": ""}])
    assert [r["id"] for r in results] == ["0", "1", "2", "3", "x"]
    assert "error" in results[-1]  # a bad record is reported in its place, the rest classify
    for res, (text, _) in zip(results, CLEAR, strict=False):
        assert {"sentiment", "topics", "touchpoints", "primary_touchpoint", "triage", "lang"} <= set(res)
        assert {t["id"] for t in res["topics"]} <= set(tax.leaf_ids)
        for topic in res["topics"]:  # evidence offsets index the text as sent
            ev = topic["evidence"]
            assert text[ev["start"] : ev["end"]] == ev["text"]
    negative = results[3]
    assert any(t["id"].startswith("service.") for t in negative["topics"]), negative["topics"]
