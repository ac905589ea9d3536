"""Recipe benchmarks: the same network and training loop on a public benchmark's own labels.

A benchmark's label set becomes a small taxonomy (one leaf per category or intent, named by its
label's words), so the model is built exactly as the default one is: prototypes from node text,
LoRA encoder, prototype-attention heads, the masked multi-task loss, dev-based selection and
temperature fitting. Tasks are duck-typed (``name``, ``kind``, ``labels``, ``train``, ``dev``,
``test``; examples with ``text`` and ``label`` or ``aspects``), as prepared by
``evaluation.recipe.prepare_tasks``.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from training.targets import POL_INDEX, TrainItem

RECIPE_EPOCHS = 4
RECIPE_MAX_STEPS = 1500
RECIPE_MIN_STEPS = 300


def _slug(label: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
    return s if s and s[0].isalpha() else f"l_{s}"


def label_ids(labels: Sequence[str]) -> dict[str, str]:
    return {label: f"bench.{_slug(label)}" for label in labels}


def task_taxonomy(name: str, labels: Sequence[str]):
    """One leaf per label under a single level-1 node; names are the label's own words (the
    benchmark has no Chinese names, so both languages carry the English words)."""
    from models.taxonomy import load_taxonomy

    def words(label: str) -> str:
        return re.sub(r"[_#/]+", " ", label).strip().lower()

    def node(node_id: str, text: str) -> dict[str, Any]:
        return {"id": node_id, "name": {"zh": text, "en": text}, "description": {"zh": text, "en": text},
                "seeds": {"zh": [text], "en": [text]}}

    ids = label_ids(labels)
    data = {
        "id": f"bench-{_slug(name)}".replace("_", "-")[:64], "version": 1,
        "name": {"zh": name, "en": name}, "touchpoints": [],
        "topics": [node("bench", "benchmark labels")] + [node(ids[lb], words(lb)) for lb in labels],
    }
    return load_taxonomy(data)


def task_items(task, examples, prepare) -> list[TrainItem]:
    """Exhaustive targets: a benchmark labels every one of its categories for every text."""
    index = {lb: i for i, lb in enumerate(task.labels)}
    n = len(task.labels)
    items = []
    for ex in examples:
        target = np.zeros(n, np.float32)
        polarity: list[tuple[tuple[int, ...], int]] = []
        if task.kind == "intent":
            target[index[ex.label]] = 1.0
        else:
            for cat, pol in ex.aspects.items():
                target[index[cat]] = 1.0
                if pol in POL_INDEX:
                    polarity.append(((index[cat],), POL_INDEX[pol]))
        items.append(TrainItem(
            text=prepare(ex.text), source=task.name, topic_target=target, topic_mask=np.ones(n, bool),
            polarity=polarity, tp_target=np.zeros(0, np.float32), tp_mask=np.zeros(0, bool),
        ))
    return items


def task_config(task, base):
    """The default config on the benchmark's own data: about four epochs (300 to 1,500 steps); an
    intent benchmark (one label per text) uses a softmax over its nodes."""
    steps = int(min(RECIPE_MAX_STEPS, max(RECIPE_MIN_STEPS, RECIPE_EPOCHS * len(task.train) / base.batch_size)))
    return dataclasses.replace(
        base, name=f"recipe-{task.name}", steps=steps, warmup_steps=min(100, steps // 10),
        eval_every=max(100, steps // 5), checkpoint_every=max(100, steps // 5), mixture={task.name: 1.0},
        node_dropout=0.0, topic_loss="softmax" if task.kind == "intent" else "bce",
    )


class RecipeModelPredictor:
    """Predictions of a trained recipe model in ``evaluation.recipe``'s shapes.

    A multi-label (aspect) task's detection threshold is chosen on the task's dev split (best
    micro-F1 between 0.2 and 0.8, :func:`training.headfit.best_threshold`), never on its test split;
    with no dev split it is 0.5.
    """

    def __init__(self, model, task, prepare, device: str = "cpu") -> None:
        self.model, self.task, self.prepare, self.device = model.eval().to(device), task, prepare, device
        self._threshold: float | None = None

    @property
    def threshold(self) -> float:
        if self._threshold is None:
            self._threshold = 0.5
            dev = list(getattr(self.task, "dev", ()) or ())
            if self.task.kind != "intent" and dev:
                index = {lb: i for i, lb in enumerate(self.task.labels)}
                from training.headfit import best_threshold

                rows = self._logits([e.text for e in dev])["topics"]
                probs = 1 / (1 + np.exp(-rows / self.model.config.temperatures.get("topics", 1.0)))
                gold = np.zeros_like(probs, dtype=bool)
                for r, e in enumerate(dev):
                    gold[r, [index[c] for c in e.aspects if c in index]] = True
                self._threshold = best_threshold(probs.ravel(), gold.ravel())[0]
        return self._threshold

    def _logits(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        from training.devscore import collect

        items = [TrainItem(text=self.prepare(t), source="test") for t in texts]
        return collect(self.model, items)

    def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        temps = self.model.config.temperatures
        threshold = self.threshold
        logits = self._logits(texts)
        labels = self.task.labels
        out = []
        for row, pol in zip(logits["topics"], logits["polarity"], strict=True):
            p = 1 / (1 + np.exp(-row / temps.get("topics", 1.0)))
            if self.task.kind == "intent":
                i = int(row.argmax())
                out.append({"label": labels[i], "confidence": float(np.exp(row[i]) / np.exp(row).sum())})
            else:
                out.append({"topics": [
                    {"id": labels[i], "polarity": ("negative", "neutral", "positive")[int(pol[i].argmax())],
                     "confidence": float(p[i])} for i in np.flatnonzero(p >= threshold)]})
        return out

    def predict_polarity(self, texts: Sequence[str], categories: Sequence[str]) -> list[str]:
        logits = self._logits(texts)
        index = {lb: i for i, lb in enumerate(self.task.labels)}
        return [("negative", "neutral", "positive")[int(logits["polarity"][k][index[c]].argmax())]
                for k, c in enumerate(categories)]


def train_task(task, out_dir: Path, *, base_dir: Path, base_config, prepare, device: str = "cpu") -> RecipeModelPredictor:
    """Train the recipe on one benchmark and return its predictor."""
    from models.classifier.model import CemClassifier
    from models.taxonomy import dump_taxonomy
    from training.pools import save_pools
    from training.trainer import train

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    taxonomy_path = out_dir / "task-taxonomy.yaml"
    taxonomy_path.write_text(dump_taxonomy(task_taxonomy(task.name, task.labels)), encoding="utf-8")
    pools_path = out_dir / "pools.json.gz"
    if not pools_path.exists():
        save_pools(pools_path, {task.name: task_items(task, task.train, prepare)},
                   {task.name: task_items(task, task.dev, prepare)})
    config = dataclasses.replace(task_config(task, base_config), taxonomy=str(taxonomy_path))
    model_dir = train(config, out_dir / "model", base_dir=base_dir, device=device, pools_file=pools_path, progress=False)
    model = CemClassifier.from_pretrained(model_dir, base_dir=base_dir)
    return RecipeModelPredictor(model, task, prepare, device)


# --------------------------------------------------------------------------- bundles


def write_task_file(task, path: Path, prepare) -> None:
    """A task as JSON, texts already prepared, for a machine without the text pipeline."""
    def ex(e) -> dict[str, Any]:
        return {"text": prepare(e.text), "label": getattr(e, "label", None), "aspects": dict(getattr(e, "aspects", {}) or {})}

    payload = {"name": task.name, "kind": task.kind, "labels": list(task.labels),
               **{s: [ex(e) for e in getattr(task, s)] for s in ("train", "dev", "test")}}
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        json.dump(payload, fh, ensure_ascii=False)


@dataclasses.dataclass(frozen=True)
class _Ex:
    text: str
    label: str | None
    aspects: dict[str, str]


@dataclasses.dataclass(frozen=True)
class _Task:
    name: str
    kind: str
    labels: tuple[str, ...]
    train: tuple[_Ex, ...]
    dev: tuple[_Ex, ...]
    test: tuple[_Ex, ...]


def read_task_file(path: Path) -> _Task:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        d = json.load(fh)
    exs = {s: tuple(_Ex(**e) for e in d[s]) for s in ("train", "dev", "test")}
    return _Task(name=d["name"], kind=d["kind"], labels=tuple(d["labels"]), **exs)


def run_task_file(task_path: Path, out_dir: Path, *, base_dir: Path, base_config, device: str) -> Path:
    """Train on a task file and write the test predictions (``predictions.json``) next to the model."""
    task = read_task_file(task_path)
    identity = lambda s: s  # noqa: E731 - texts in a task file are prepared already
    predictor = train_task(task, out_dir, base_dir=base_dir, base_config=base_config, prepare=identity, device=device)
    texts = [e.text for e in task.test]
    pairs = [(e.text, c) for e in task.test for c in e.aspects]
    result = {"task": task.name, "texts": texts, "predict": predictor.predict(texts)}
    if task.kind != "intent":
        result["pairs"] = pairs
        result["polarity"] = predictor.predict_polarity([t for t, _ in pairs], [c for _, c in pairs])
    path = out_dir / "predictions.json"
    path.write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
    return path


class ReplayPredictor:
    """Serves predictions a recipe model made elsewhere (e.g. on a lent GPU), by text."""

    def __init__(self, predictions: dict[str, Any], prepare) -> None:
        self.prepare = prepare
        self.by_text = dict(zip(predictions["texts"], predictions["predict"], strict=True))
        self.by_pair = {(t, c): p for (t, c), p in zip(predictions.get("pairs", []), predictions.get("polarity", []), strict=True)}

    def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        return [self.by_text[self.prepare(t)] for t in texts]

    def predict_polarity(self, texts: Sequence[str], categories: Sequence[str]) -> list[str]:
        return [self.by_pair[(self.prepare(t), c)] for t, c in zip(texts, categories, strict=True)]
