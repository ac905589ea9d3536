"""Recipe benchmarks: our architecture trained on a public benchmark's own labels.

Data preparation, the peers and the scoring live here; only the training is injected:

    def train_fn(task: RecipeTask) -> RecipePredictor: ...

A :class:`RecipePredictor` has ``predict(texts) -> list[dict]``: for ``intent`` tasks each dict
is ``{"label": str, "confidence": float}``; for ``aspect_category`` tasks it is
``{"topics": [{"id": category, "polarity": ..., "confidence": ...}]}`` (the contract's shape with
the benchmark's own category names as ids). Aspect-category predictors may also offer
``predict_polarity(texts, categories) -> list[str]``: the polarity of ``texts[i]`` towards the
gold category ``categories[i]``, which is how the published category-polarity accuracies are
measured (BERT-pair scores every gold category); without it only the polarity of correctly
detected categories is scored, and the report says it is not comparable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from evaluation import metrics
from evaluation.suite import Context, SplitPlan, Timer

log = logging.getLogger(__name__)

THREE_WAY = ("negative", "neutral", "positive")
RECIPE_NAMES = ("semeval2014_categories", "mams_acsa", "banking77_full", "banking77_10shot")
"""The tasks :func:`prepare_tasks` makes with its default ``shots=10``, in report order."""


@dataclass(frozen=True, kw_only=True)
class RecipeExample:
    """One text with its benchmark label (``intent``) or category -> polarity map (``aspect``)."""

    text: str
    label: str | None = None
    aspects: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class RecipeTask:
    """A benchmark, prepared: label set and train/dev/test examples."""

    name: str
    kind: str  # "intent" or "aspect_category"
    labels: tuple[str, ...]
    train: tuple[RecipeExample, ...]
    dev: tuple[RecipeExample, ...]
    test: tuple[RecipeExample, ...]
    anchors: dict[str, str] = field(default_factory=dict)
    targets: dict[str, float] = field(default_factory=dict)
    description: str = ""


class RecipeNotRun(Exception):
    """Raised by a ``train_fn`` that could not train this task in this run; the report says why."""


class RecipePredictor(Protocol):
    def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]: ...


TrainFn = Callable[[RecipeTask], RecipePredictor]


# --------------------------------------------------------------------------- preparation


def _aspect_examples(examples: Sequence[Any]) -> list[RecipeExample]:
    return [RecipeExample(text=e.text, aspects={c["category"]: c["polarity"]
                                                for c in e.raw_labels["aspect_categories"]})
            for e in examples]


def prepare_tasks(ctx: Context, *, shots: int = 10) -> list[RecipeTask]:
    """SemEval-2014 restaurant categories, MAMS ACSA, Banking77 full and ``shots``-shot.

    Sets without a dev split get a seeded 10% of train as dev. The few-shot task samples
    ``shots`` train texts per intent with the run's seed, and a disjoint ``shots // 2`` per
    intent as its small dev set (a large dev set would not be few-shot).
    """
    tasks = []
    train, dev, test = ctx.splits(SplitPlan(dataset="semeval2014_restaurants", dev=None))
    tr, dv, te = _aspect_examples(train), _aspect_examples(dev), _aspect_examples(test)
    tasks.append(RecipeTask(
        name="semeval2014_categories", kind="aspect_category",
        labels=tuple(sorted({c for e in tr for c in e.aspects})), train=tuple(tr), dev=tuple(dv),
        test=tuple(te),
        anchors={"detection_f1": "92.2 (BERT-pair)",
                 "polarity_accuracy_3way": "89.9 (BERT-pair-QA-B)",
                 "polarity_accuracy_4way": "85.9 (BERT-pair-QA-B); 82.9 NRC-Canada SVM"},
        targets={"detection_f1": 0.88, "polarity_accuracy_3way": 0.85},
        description="SemEval-2014 Task 4 restaurants, 5 aspect categories and their polarity"))
    train, dev, test = ctx.splits(SplitPlan(dataset="mams_acsa"))
    tr, dv, te = _aspect_examples(train), _aspect_examples(dev), _aspect_examples(test)
    tasks.append(RecipeTask(
        name="mams_acsa", kind="aspect_category",
        labels=tuple(sorted({c for e in tr for c in e.aspects})), train=tuple(tr), dev=tuple(dv),
        test=tuple(te), description="MAMS ACSA, 8 categories, every sentence mixes polarities"))
    train, dev, test = ctx.splits(SplitPlan(dataset="banking77", dev=None))
    b_train = [RecipeExample(text=e.text, label=e.raw_labels["intent"]) for e in train]
    b_dev = [RecipeExample(text=e.text, label=e.raw_labels["intent"]) for e in dev]
    b_test = tuple(RecipeExample(text=e.text, label=e.raw_labels["intent"]) for e in test)
    labels = tuple(sorted({e.label for e in b_train}))
    tasks.append(RecipeTask(
        name="banking77_full", kind="intent", labels=labels, train=tuple(b_train),
        dev=tuple(b_dev), test=b_test, anchors={"accuracy": "about 93.6"},
        description="Banking77, 77 intents, full train split (less a 10% dev)"))
    few, few_dev = few_shot(b_train, shots, seed=ctx.seed)
    tasks.append(RecipeTask(
        name=f"banking77_{shots}shot", kind="intent", labels=labels, train=tuple(few),
        dev=tuple(few_dev), test=b_test,
        anchors={"accuracy": "85.2 (10-shot); 10-shot BERT 83.4"} if shots == 10 else {},
        description=f"Banking77, {shots} train texts per intent (seed {ctx.seed})"))
    return tasks


def check_recipe_names(names: Sequence[str]) -> list[str]:
    """``names`` without repeats, in order; an unknown name raises InvalidInputError listing the valid ones."""
    unknown = [n for n in names if n not in RECIPE_NAMES]
    if unknown:
        from nlp.errors import InvalidInputError

        raise InvalidInputError(f"unknown recipe benchmark(s): {', '.join(unknown)}; valid names are "
                                f"{', '.join(RECIPE_NAMES)}")
    return list(dict.fromkeys(names))


def few_shot(examples: Sequence[RecipeExample], shots: int, *, seed: int
             ) -> tuple[list[RecipeExample], list[RecipeExample]]:
    """``shots`` examples per label for training and a disjoint ``shots // 2`` per label as dev."""
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[RecipeExample]] = {}
    for e in examples:
        by_label.setdefault(str(e.label), []).append(e)
    train, dev = [], []
    for label in sorted(by_label):
        pool = by_label[label]
        order = rng.permutation(len(pool))
        train += [pool[i] for i in order[:shots]]
        dev += [pool[i] for i in order[shots:shots + max(1, shots // 2)]]
    return train, dev


# --------------------------------------------------------------------------- scoring


def score_task(task: RecipeTask, predictor: Any) -> dict[str, Any]:
    """Score a trained predictor on the task's test split."""
    texts = [e.text for e in task.test]
    records = predictor.predict(texts)
    if len(records) != len(texts):
        from nlp.errors import InvalidInputError

        raise InvalidInputError(f"{task.name}: predictor returned {len(records)} records for "
                                f"{len(texts)} texts; expected one per text")
    if task.kind == "intent":
        gold = [str(e.label) for e in task.test]
        pred = [str(r["label"]) for r in records]
        conf = [r.get("confidence") for r in records]
        out: dict[str, Any] = {
            "n": len(gold), "accuracy": metrics.accuracy(gold, pred),
            "accuracy_ci95": list(metrics.bootstrap_ci([g == p for g, p in zip(gold, pred, strict=True)])),
            "macro_f1": metrics.macro_f1(gold, pred, labels=task.labels), "ece": None}
        if all(c is not None for c in conf):
            out["ece"] = metrics.calibration(conf, [g == p for g, p in zip(gold, pred, strict=True)]).ece
        return out
    gold_maps = [dict(e.aspects) for e in task.test]
    pred_maps = [{t["id"]: (t.get("polarity"), float(t.get("confidence") or 1.0))
                  for t in r.get("topics") or []} for r in records]
    s = metrics.topic_scores(gold_maps, pred_maps, task.labels)
    out = {"n": len(texts), "detection_precision": s.micro_precision,
           "detection_recall": s.micro_recall, "detection_f1": s.micro_f1,
           "detection_macro_f1": s.macro_f1,
           "polarity_on_detected": s.polarity_accuracy, "polarity_on_detected_n": s.polarity_n}
    pairs = [(e.text, c, p) for e in task.test for c, p in e.aspects.items()]
    if hasattr(predictor, "predict_polarity") and pairs:
        pol = predictor.predict_polarity([t for t, _, _ in pairs], [c for _, c, _ in pairs])
        three = [(g, p) for (_, _, g), p in zip(pairs, pol, strict=True) if g in THREE_WAY]
        out["polarity_accuracy_3way"] = metrics.accuracy([g for g, _ in three], [p for _, p in three])
        out["polarity_n_3way"] = len(three)
        if any(g == "conflict" for _, _, g in pairs):
            out["polarity_accuracy_4way"] = metrics.accuracy([g for _, _, g in pairs], list(pol))
            out["polarity_n_4way"] = len(pairs)
    return out


# --------------------------------------------------------------------------- peers


class _IntentPeer:
    def __init__(self, clf: Any) -> None:
        self.clf = clf

    def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        proba = self.clf.predict_proba(texts)
        return [{"label": str(self.clf.classes_[i]), "confidence": float(row[i])}
                for row, i in zip(proba, proba.argmax(axis=1), strict=True)]


class _AspectPeer:
    def __init__(self, det: Any, pol: Any) -> None:
        self.det, self.pol = det, pol

    def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        from evaluation.peers import topic_records

        return topic_records(self.det, texts, polarity=self.pol)

    def predict_polarity(self, texts: Sequence[str], categories: Sequence[str]) -> list[str]:
        return self.pol.predict(texts, categories)


def peer_train_fn(ctx: Context, kind: str) -> TrainFn:
    """A ``train_fn`` that fits the TF-IDF or frozen-embedding logistic-regression peer."""
    from evaluation.peers import CategoryPolarity, LogRegClassifier, OneVsRestClassifier

    def train(task: RecipeTask) -> RecipePredictor:
        task_train = task.train  # recipe benchmarks train on the full split, as published
        task_dev = ctx.cap_train(kind, list(task.dev), dev=True)  # type: ignore[arg-type]
        tr, dv = [e.text for e in task_train], [e.text for e in task_dev]
        if task.kind == "intent":
            clf = LogRegClassifier(ctx.featurizer(kind), c_grid=ctx.c_grid).fit(
                tr, [e.label for e in task_train], dev_texts=dv, dev_labels=[e.label for e in task_dev])
            return _IntentPeer(clf)
        det = OneVsRestClassifier(ctx.featurizer(kind), c_grid=ctx.c_grid).fit(
            tr, [sorted(e.aspects) for e in task_train],
            dev_texts=dv, dev_label_sets=[sorted(e.aspects) for e in task_dev])
        pol = CategoryPolarity(det.featurizer_, C=det.C_).fit(tr, [e.aspects for e in task_train])
        return _AspectPeer(det, pol)

    return train


def run_recipe_benchmarks(train_fn: TrainFn | None = None, *, ctx: Context | None = None,
                          tasks: Sequence[RecipeTask] | None = None) -> dict[str, Any]:
    """Train and score ``train_fn`` (ours; skipped when ``None``) and the peers on every task.

    ``ctx`` carries the data directory, seed, peers and quick mode (default: a full run with all
    peers); ``tasks`` defaults to :func:`prepare_tasks`.
    """
    ctx = ctx if ctx is not None else Context()
    tasks = list(tasks) if tasks is not None else prepare_tasks(ctx)
    trainers: dict[str, TrainFn] = {}
    if train_fn is not None:
        trainers["verbatim"] = train_fn
    for kind in ctx.supervised_peers():
        trainers[kind] = peer_train_fn(ctx, kind)
    out: dict[str, Any] = {}
    for task in tasks:
        preds: dict[str, Any] = {}
        for name, fn in trainers.items():
            try:
                with Timer() as fit_t:
                    predictor = fn(task)
            except RecipeNotRun as exc:
                preds[name] = {"not_run": str(exc)}
                log.info("recipe %s %s not run: %s", task.name, name, exc)
                continue
            preds[name] = score_task(task, predictor) | {"fit_seconds": fit_t.seconds}
            log.info("recipe %s %s: %s", task.name, name,
                     {k: v for k, v in preds[name].items() if isinstance(v, float)})
        out[task.name] = {"kind": task.kind, "description": task.description,
                          "n_labels": len(task.labels), "n_train": len(task.train),
                          "n_dev": len(task.dev), "n_test": len(task.test),
                          "anchors": task.anchors, "targets": task.targets, "predictors": preds}
    return out


__all__ = ["RECIPE_NAMES", "RecipeExample", "RecipeNotRun", "RecipePredictor", "RecipeTask", "TrainFn",
           "check_recipe_names", "few_shot", "peer_train_fn", "prepare_tasks", "run_recipe_benchmarks",
           "score_task"]
