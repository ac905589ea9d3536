"""Our model inside the evaluation: a ``predict_fn`` over the classifier, and recipe runs.

Recipe models may be trained elsewhere (``python -m training.bundle recipe`` on a lent GPU): their
test predictions are stored in ``evaluation/recipe_runs/<task>.json`` *without the texts* (in the
task's test order, which is fixed by the run's seed) and replayed here for scoring. A task with
no stored run is trained on this machine when ``train_here`` is set, else reported as not run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
RECIPE_RUNS = Path(__file__).resolve().parent / "recipe_runs"

_EMPTY = {"sentiment": {"label": "neutral", "score": 0.0, "confidence": 0.0}, "topics": [], "touchpoints": [],
          "primary_touchpoint": None}


def classifier_predict_fn(classifier, batch_size: int = 256):
    """``predict_fn(texts) -> list[dict]`` for :func:`evaluation.run_evaluation`.

    A text the classifier rejects (nothing left after cleaning) scores as an empty neutral
    prediction, i.e. as wrong, and is counted in the log.
    """

    def predict(texts: Sequence[str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        failed = 0
        for start in range(0, len(texts), batch_size):
            chunk = texts[start : start + batch_size]
            results = classifier.classify([{"id": str(start + i), "text": t} for i, t in enumerate(chunk)])
            for r in results:
                if "error" in r:
                    failed += 1
                    out.append(dict(_EMPTY))
                else:
                    out.append(r)
        if failed:
            log.warning("%d of %d texts could not be classified and score as empty predictions", failed, len(texts))
        return out

    return predict


def save_recipe_run(predictions_json: Path, task_name: str) -> Path:
    """Store a recipe run's test predictions without the texts."""
    data = json.loads(Path(predictions_json).read_text(encoding="utf-8"))
    stored = {"task": task_name, "predict": data["predict"],
              "pair_categories": [c for _, c in data.get("pairs", [])], "polarity": data.get("polarity", [])}
    RECIPE_RUNS.mkdir(exist_ok=True)
    path = RECIPE_RUNS / f"{task_name}.json"
    path.write_text(json.dumps(stored, ensure_ascii=False), encoding="utf-8")
    return path


class _StoredRun:
    def __init__(self, task, stored: dict[str, Any]) -> None:
        texts = [e.text for e in task.test]
        if len(stored["predict"]) != len(texts):
            raise ValueError(f"stored run of {task.name} has {len(stored['predict'])} predictions for {len(texts)} test texts")
        self.by_text = dict(zip(texts, stored["predict"], strict=True))
        pairs = [(e.text, c) for e in task.test for c in e.aspects]
        cats = stored.get("pair_categories") or []
        if cats and [c for _, c in pairs] != cats:
            raise ValueError(f"stored run of {task.name} does not match this task's test pairs")
        self.by_pair = dict(zip(pairs, stored.get("polarity") or [], strict=False))

    def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        return [self.by_text[t] for t in texts]

    def predict_polarity(self, texts: Sequence[str], categories: Sequence[str]) -> list[str]:
        return [self.by_pair[(t, c)] for t, c in zip(texts, categories, strict=True)]


def recipe_train_fn(*, base_dir: Path | None = None, train_here: bool = False, work_dir: Path | None = None):
    """A ``train_fn`` that replays stored recipe runs, or trains on this machine if asked."""
    from evaluation.recipe import RecipeNotRun

    def train(task):
        path = RECIPE_RUNS / f"{task.name}.json"
        if path.exists():
            stored = json.loads(path.read_text(encoding="utf-8"))
            if len(stored["predict"]) == len(task.test):
                return _StoredRun(task, stored)
            if not train_here:
                raise RecipeNotRun("the stored run covers the full test split, not this run's subsample")
        if not train_here or base_dir is None:
            raise RecipeNotRun(
                "no stored run; train it with `verbatim eval --train-recipes` "
                "(about 1 to 2 hours on 2 CPU cores) or `python -m training.bundle recipe` on a GPU")
        from training.config import TrainConfig
        from training.recipe import train_task
        from training.trainer import _prepare_text

        base_config = TrainConfig.from_yaml(Path(__file__).resolve().parent.parent / "training/configs/default.yaml")
        return train_task(task, Path(work_dir or "runs/recipes") / task.name, base_dir=base_dir,
                          base_config=base_config, prepare=_prepare_text)

    return train
