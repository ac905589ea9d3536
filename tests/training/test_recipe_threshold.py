"""A recipe model's detection threshold comes from the task's dev split, never from its test split."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from training.recipe import RecipeModelPredictor

LABELS = ("food", "service", "price")


@dataclass(frozen=True)
class Ex:
    text: str
    aspects: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Task:
    dev: tuple[Ex, ...]
    test: tuple[Ex, ...] = ()
    name: str = "toy"
    kind: str = "aspect"
    labels: tuple[str, ...] = LABELS
    train: tuple[Ex, ...] = ()


class _Model:
    config = SimpleNamespace(temperatures={"topics": 1.0})

    def eval(self):
        return self

    def to(self, _device):
        return self


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


class ScriptedPredictor(RecipeModelPredictor):
    """The model's probabilities per text are scripted; everything else is the real predictor."""

    def __init__(self, task, probs: dict[str, list[float]]) -> None:
        super().__init__(_Model(), task, prepare=lambda t: t)
        self.probs, self.seen = probs, []

    def _logits(self, texts):
        self.seen.append(list(texts))
        rows = np.array([[_logit(p) for p in self.probs[t]] for t in texts])
        return {"topics": rows, "polarity": np.zeros((len(texts), len(LABELS), 3))}


def test_a_model_that_is_shy_on_dev_gets_a_lower_threshold_and_finds_the_test_aspects():
    # gold aspects score 0.35-0.45 on dev, others 0.05-0.1: a fixed 0.5 would find nothing
    dev = (Ex("d1", {"food": "positive"}), Ex("d2", {"service": "negative"}), Ex("d3", {"food": "negative", "price": "negative"}))
    probs = {"d1": [0.4, 0.1, 0.05], "d2": [0.08, 0.35, 0.1], "d3": [0.45, 0.05, 0.38],
             "t1": [0.42, 0.06, 0.07], "t2": [0.1, 0.09, 0.25]}
    task = Task(dev=dev, test=(Ex("t1", {"food": "positive"}), Ex("t2", {"price": "negative"})))
    predictor = ScriptedPredictor(task, probs)
    out = predictor.predict(["t1", "t2"])
    assert 0.1 < predictor.threshold <= 0.35
    assert [[t["id"] for t in r["topics"]] for r in out] == [["food"], []]  # t2's 0.25 stays below dev's choice (0.275)
    assert predictor.seen[0] == ["d1", "d2", "d3"]  # chosen on dev, before the test texts were seen


def test_a_confident_model_keeps_the_usual_threshold_and_intent_tasks_have_none():
    dev = (Ex("d1", {"food": "positive"}), Ex("d2", {"service": "negative"}))
    probs = {"d1": [0.95, 0.1, 0.05], "d2": [0.08, 0.9, 0.1]}
    assert ScriptedPredictor(Task(dev=dev), probs).threshold == 0.5
    intent = ScriptedPredictor(Task(dev=dev, kind="intent"), probs)
    assert intent.threshold == 0.5 and intent.seen == []
