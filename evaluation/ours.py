"""Our model inside the evaluation: a ``predict_fn`` over the classifier, and recipe runs.

Recipe models may be trained elsewhere (``python -m training.bundle recipe`` on a lent GPU) or
here (``verbatim eval --recipe NAME``): their test predictions are stored in
``evaluation/recipe_runs/<task>.json`` *without the texts* (in the task's test order, which is
fixed by the run's seed) and replayed here for scoring. A task with no stored run is trained on
this machine when ``train_here`` is set (resuming, or reusing a finished model under
``work_dir/<task>/model``), else reported as not run.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
RECIPE_RUNS = Path(__file__).resolve().parent / "recipe_runs"
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "training/configs/default.yaml"
# Measured: MAMS ACSA trained here, one thread on the idle 2-core CPU, 787 steps in 15.5 min.
_CPU_REFERENCE = "MAMS ACSA took 15.5 min for 787 steps on an idle 2-core CPU"

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


def _write_run(task_name: str, predict: list[Any], pair_categories: list[str], polarity: list[str],
               runs_dir: Path | None) -> tuple[Path, dict[str, Any]]:
    stored = {"task": task_name, "predict": predict, "pair_categories": pair_categories, "polarity": polarity}
    folder = Path(runs_dir) if runs_dir is not None else RECIPE_RUNS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{task_name}.json"
    path.write_text(json.dumps(stored, ensure_ascii=False), encoding="utf-8")
    return path, stored


def save_recipe_run(predictions_json: Path, task_name: str, runs_dir: Path | None = None) -> Path:
    """Store a recipe run's test predictions (``predictions.json`` of a bundle run) without the texts."""
    data = json.loads(Path(predictions_json).read_text(encoding="utf-8"))
    return _write_run(task_name, data["predict"], [c for _, c in data.get("pairs", [])],
                      data.get("polarity", []), runs_dir)[0]


def store_recipe_run(task, predictor, runs_dir: Path | None = None) -> tuple[Path, _StoredRun]:
    """Predict ``task``'s test split once, store it without the texts, and return the stored run's replay.

    Aspect-category tasks also store the polarity of every gold (text, category) pair, as
    :func:`evaluation.recipe.score_task` scores it.
    """
    texts = [e.text for e in task.test]
    predict = list(predictor.predict(texts))
    pairs = [(e.text, c) for e in task.test for c in e.aspects]
    polarity: list[str] = []
    if pairs and hasattr(predictor, "predict_polarity"):
        polarity = list(predictor.predict_polarity([t for t, _ in pairs], [c for _, c in pairs]))
    path, stored = _write_run(task.name, predict, [c for _, c in pairs] if polarity else [], polarity, runs_dir)
    return path, _StoredRun(task, stored)


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


def _recipe_config(task, base_config_path: Path = DEFAULT_CONFIG):
    from training.config import TrainConfig
    from training.recipe import task_config

    return task_config(task, TrainConfig.from_yaml(base_config_path))


def not_run_hint(task) -> str:
    """Why ``task`` has no result of ours, and the command that adds one."""
    steps = _recipe_config(task).steps
    cost = f"{steps} steps; {_CPU_REFERENCE}" if task.name != "mams_acsa" else _CPU_REFERENCE
    return (f"no stored run; `verbatim eval --recipe {task.name}` trains it on this machine ({cost}) and adds "
            "it to the report, or `python -m training.bundle recipe` on a GPU")


def _finished_steps(model_dir: Path) -> int | None:
    """The step count of a finished recipe model in ``model_dir`` (``None`` when there is none)."""
    config = Path(model_dir) / "config.json"
    if not config.is_file():
        return None
    training = json.loads(config.read_text(encoding="utf-8")).get("training") or {}
    history = training.get("history") or []
    steps = (training.get("config") or {}).get("steps")
    return steps if history and history[-1].get("step") == steps else None


def recipe_predictor(task, *, base_dir: Path | None, work_dir: Path | None = None, train_here: bool = True,
                     retrain: bool = False, runs_dir: Path | None = None) -> tuple[Any, dict[str, Any]]:
    """Our predictor for a recipe task and where it came from: ``(predictor, info)``.

    In order: the stored run in ``runs_dir`` (default :data:`RECIPE_RUNS`) when it covers this
    task's test split and ``retrain`` is off; a finished model under ``work_dir/<task>/model``;
    else :func:`training.recipe.train_task` there (resuming a checkpoint), when ``train_here``.
    ``info["source"]`` is ``"stored run"``, ``"finished model"`` or ``"trained here"`` (then with
    ``fit_seconds`` and ``resumed_from_step``). Raises :class:`~evaluation.recipe.RecipeNotRun`
    when it may not train.
    """
    from evaluation.recipe import RecipeNotRun

    path = (Path(runs_dir) if runs_dir is not None else RECIPE_RUNS) / f"{task.name}.json"
    if path.exists() and not retrain:
        stored = json.loads(path.read_text(encoding="utf-8"))
        if len(stored["predict"]) == len(task.test):
            return _StoredRun(task, stored), {"source": "stored run", "detail": f"evaluation/recipe_runs/{path.name}"}
        if not train_here:
            raise RecipeNotRun("the stored run covers the full test split, not this run's subsample")
    if not train_here or base_dir is None:
        raise RecipeNotRun(not_run_hint(task))
    from training.config import TrainConfig
    from training.recipe import RecipeModelPredictor, train_task
    from training.trainer import _prepare_text

    config = _recipe_config(task)
    out_dir = Path(work_dir or "runs/recipes") / task.name
    detail = f"$VERBATIM_HOME/recipes/{task.name}/model" if work_dir is not None else str(out_dir / "model")
    if _finished_steps(out_dir / "model") == config.steps:
        from models.classifier.model import CemClassifier

        log.info("recipe %s: reusing the finished model in %s", task.name, out_dir / "model")
        model = CemClassifier.from_pretrained(out_dir / "model", base_dir=base_dir)
        return RecipeModelPredictor(model, task, _prepare_text), {"source": "finished model", "detail": detail}
    state = out_dir / "model" / "checkpoint" / "state.json"
    resumed = json.loads(state.read_text(encoding="utf-8"))["step"] if state.is_file() else 0
    started = time.perf_counter()
    predictor = train_task(task, out_dir, base_dir=base_dir, base_config=TrainConfig.from_yaml(DEFAULT_CONFIG),
                           prepare=_prepare_text)
    return predictor, {"source": "trained here", "detail": detail, "steps": config.steps,
                       "resumed_from_step": resumed, "fit_seconds": time.perf_counter() - started}


def recipe_train_fn(*, base_dir: Path | None = None, train_here: bool = False, work_dir: Path | None = None):
    """A ``train_fn`` that replays stored recipe runs, or trains on this machine if asked."""

    def train(task):
        return recipe_predictor(task, base_dir=base_dir, work_dir=work_dir, train_here=train_here)[0]

    return train
