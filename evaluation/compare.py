"""A model against held-out analyst labels, and the regression guard that gates promotion.

>>> cand = evaluate_on_labels("runs/acme-3", heldout, base_dir=base)
>>> prom = evaluate_on_labels("models/acme-2", heldout, base_dir=base)
>>> guard = regression_guard(cand, prom)            # GuardResult(allowed=False, reasons=[...])

Topics are scored per node (precision, recall, F1, support) over the examples labelled for topics
(``topics`` not ``None``: their labels are exhaustive, so a node not labelled is absent); a node
the model cannot predict (the promoted model lacks a new node) scores 0 there. ``confusion``
counts the mistakes between nodes: for each example, every missed gold node against every
wrongly predicted node, ``(none)`` when there is nothing on the other side.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nlp.errors import InvalidInputError

__all__ = ["NONE", "GuardResult", "NodeReport", "NodeScore", "evaluate_on_labels", "regression_guard", "score_labels"]

NONE = "(none)"


@dataclass(frozen=True, kw_only=True, slots=True)
class NodeScore:
    precision: float
    recall: float
    f1: float
    support: int  # labelled examples that have the node
    predicted: int  # examples the model gave the node


@dataclass(frozen=True, kw_only=True)
class NodeReport:
    """Scores of one model on one set of labels (JSON round-trip: ``to_dict``/``from_dict``)."""

    model: str
    n_examples: int
    n_topic_labelled: int
    labels_hash: str  # the same labels give the same hash: reports are comparable only then
    per_node: dict[str, NodeScore]
    macro_f1: float  # over topic nodes with support > 0
    micro_f1: float
    confusion: dict[str, dict[str, int]]
    model_nodes: tuple[str, ...] = ()  # the topic nodes the model can predict
    polarity_accuracy: float | None = None
    polarity_n: int = 0
    touchpoints: dict[str, NodeScore] = field(default_factory=dict)
    sentiment: dict[str, Any] = field(default_factory=dict)

    def macro_over(self, nodes: Sequence[str]) -> float:
        """Macro-F1 over ``nodes`` (those with support); NaN when none has support."""
        f1s = [self.per_node[n].f1 for n in nodes if n in self.per_node and self.per_node[n].support > 0]
        return float(np.mean(f1s)) if f1s else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeReport:
        data = dict(data)
        data["per_node"] = {k: NodeScore(**v) for k, v in data["per_node"].items()}
        data["model_nodes"] = tuple(data.get("model_nodes") or ())
        data["touchpoints"] = {k: NodeScore(**v) for k, v in (data.get("touchpoints") or {}).items()}
        return cls(**data)


@dataclass(frozen=True, kw_only=True)
class GuardResult:
    """Whether a candidate may replace the promoted model, and every reason it may not."""

    allowed: bool
    reasons: list[str]
    forced: bool = False
    force_reason: str | None = None
    deltas: dict[str, float] = field(default_factory=dict)  # node -> candidate F1 - promoted F1
    macro_candidate: float | None = None  # over ``macro_nodes``
    macro_promoted: float | None = None
    macro_nodes: list[str] = field(default_factory=list)  # existing nodes with support >= min_support
    low_support: list[str] = field(default_factory=list)  # existing nodes with 0 < support < min_support
    min_support: int | None = None
    notes: list[str] = field(default_factory=list)  # what the verdict could not check, even when allowed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _hash_ids(examples) -> str:
    return hashlib.sha256("\n".join(sorted(e.id for e in examples)).encode("utf-8")).hexdigest()[:16]


def _per_node(gold: list[set[str]], pred: list[set[str]], nodes: Sequence[str]) -> dict[str, NodeScore]:
    from sklearn.metrics import precision_recall_fscore_support
    from sklearn.preprocessing import MultiLabelBinarizer

    if not gold:
        return {}
    mlb = MultiLabelBinarizer(classes=list(nodes))
    y = mlb.fit_transform(gold)
    p = mlb.transform([s & set(nodes) for s in pred])
    prec, rec, f1, sup = precision_recall_fscore_support(y, p, average=None, zero_division=0)
    counts = p.sum(axis=0)
    return {
        n: NodeScore(precision=float(prec[i]), recall=float(rec[i]), f1=float(f1[i]), support=int(sup[i]),
                     predicted=int(counts[i]))
        for i, n in enumerate(nodes)
    }


def _confusion(gold: list[set[str]], pred: list[set[str]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}

    def add(g: str, p: str) -> None:
        out.setdefault(g, {})
        out[g][p] = out[g].get(p, 0) + 1

    for g_set, p_set in zip(gold, pred, strict=True):
        missed, extra = sorted(g_set - p_set), sorted(p_set - g_set)
        for g in missed:
            for p in extra or [NONE]:
                add(g, p)
        if not missed:
            for p in extra:
                add(NONE, p)
    return out


def score_labels(examples: Sequence, results: Sequence[dict], *, model: str, topic_ids: Sequence[str],
                 touchpoint_ids: Sequence[str] = ()) -> NodeReport:
    """Score classification results (contract dicts, one per example, same order) against labels."""
    if len(examples) != len(results):
        raise InvalidInputError(f"{len(results)} results for {len(examples)} labelled examples; expected one each")
    failed = [r["id"] for r in results if "error" in r]
    if failed:
        raise InvalidInputError(f"{len(failed)} labelled text(s) could not be classified (first: {failed[0]}); "
                                "fix or drop them from the label set")
    topical = [(ex, r) for ex, r in zip(examples, results, strict=True) if ex.topics is not None]
    gold = [set(ex.topics) for ex, _ in topical]
    pred = [{t["id"] for t in r["topics"]} for _, r in topical]
    nodes = list(dict.fromkeys([*topic_ids, *sorted(set().union(*gold) if gold else ())]))
    per_node = _per_node(gold, pred, nodes)
    with_support = [s.f1 for s in per_node.values() if s.support > 0]
    tp = sum(len(g & p) for g, p in zip(gold, pred, strict=True))
    fp = sum(len(p - g) for g, p in zip(gold, pred, strict=True))
    fn = sum(len(g - p) for g, p in zip(gold, pred, strict=True))
    pol_ok = pol_n = 0
    for ex, r in topical:
        got = {t["id"]: t["polarity"] for t in r["topics"]}
        for node, pol in ex.topics.items():
            if node in got:
                pol_n += 1
                pol_ok += got[node] == pol
    tps = [(ex, r) for ex, r in zip(examples, results, strict=True) if ex.touchpoints is not None]
    tp_nodes = list(dict.fromkeys([*touchpoint_ids, *sorted({t for ex, _ in tps for t in ex.touchpoints})]))
    tp_scores = _per_node([set(ex.touchpoints) for ex, _ in tps], [{t["id"] for t in r["touchpoints"]} for _, r in tps],
                          tp_nodes)
    sentiment: dict[str, Any] = {}
    sent = [(ex.sentiment, r["sentiment"]["label"]) for ex, r in zip(examples, results, strict=True) if ex.sentiment]
    if sent:
        from evaluation import metrics

        g, p = [a for a, _ in sent], [b for _, b in sent]
        sentiment = {"n": len(sent), "accuracy": metrics.accuracy(g, p),
                     "macro_f1": metrics.macro_f1(g, p, labels=("negative", "neutral", "positive"))}
    return NodeReport(
        model=model, n_examples=len(examples), n_topic_labelled=len(topical), labels_hash=_hash_ids(examples),
        per_node=per_node, macro_f1=float(np.mean(with_support)) if with_support else float("nan"),
        micro_f1=2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan"),
        confusion=_confusion(gold, pred), model_nodes=tuple(topic_ids), polarity_accuracy=pol_ok / pol_n if pol_n else None, polarity_n=pol_n,
        touchpoints=tp_scores, sentiment=sentiment,
    )


def evaluate_on_labels(model_or_dir, examples: Sequence, *, base_dir: Path | str | None = None,
                       batch_size: int = 32) -> NodeReport:
    """Classify the labelled texts with a model (directory, ``Classifier`` or ``CemClassifier``) and score them."""
    from models.classifier.model import CemClassifier
    from models.classifier.predict import Classifier

    if isinstance(model_or_dir, Classifier):
        clf = model_or_dir
    elif isinstance(model_or_dir, CemClassifier):
        clf = Classifier(model_or_dir, batch_size=batch_size, triage=None)
    else:
        if base_dir is None:
            raise InvalidInputError("base_dir is required to load a model directory")
        clf = Classifier.load(model_or_dir, base_dir=base_dir, triage=None, batch_size=batch_size)
    if not examples:
        raise InvalidInputError("no labelled examples to evaluate on")
    results = clf.classify([{"id": ex.id, "text": ex.text, "lang": ex.lang} for ex in examples])
    return score_labels(examples, results, model=clf.model_id, topic_ids=clf.config.topic_ids,
                        touchpoint_ids=clf.config.touchpoint_ids)


def regression_guard(candidate: NodeReport, promoted: NodeReport, *, min_support: int = 10, max_drop: float = 0.03,
                     max_macro_drop: float = 0.0, force_reason: str | None = None,
                     holdout: float | None = None) -> GuardResult:
    """Refuse a candidate that loses more than ``max_drop`` F1 on any existing node with at least
    ``min_support`` labels, or whose macro-F1 over those same nodes drops (by more than
    ``max_macro_drop``). A non-empty ``force_reason`` allows it anyway and is recorded.

    Existing nodes are those both models predict; new nodes cannot regress. Nodes with fewer than
    ``min_support`` held-out labels decide nothing, in the macro-F1 rule as in the per-node one (one
    label flipping would swing a node's F1 by a whole point); they are listed in ``low_support``
    and named in the macro-F1 reason. Both reports must come from the same labels.

    When no existing node has ``min_support`` labels nothing could regress by these rules, so the
    candidate is allowed, and ``notes`` say that nothing was checked (with ``holdout``, the share of
    labels held out, they say how many labels per node would let the guard decide).
    """
    if candidate.labels_hash != promoted.labels_hash:
        raise InvalidInputError(
            "the two reports were computed on different labels; evaluate both models on the same held-out set")
    shared = [n for n in promoted.model_nodes if n in set(candidate.model_nodes)]
    reasons: list[str] = []
    deltas: dict[str, float] = {}
    supported: list[str] = []
    low_support: list[str] = []
    for node in shared:
        c, p = candidate.per_node[node], promoted.per_node[node]
        deltas[node] = round(c.f1 - p.f1, 6)
        if c.support >= min_support:
            supported.append(node)
            if p.f1 - c.f1 > max_drop + 1e-12:
                reasons.append(f"{node}: F1 {p.f1:.3f} -> {c.f1:.3f} ({100 * (c.f1 - p.f1):+.1f} points, "
                               f"support {c.support}; the limit is -{100 * max_drop:.0f})")
        elif c.support > 0:
            low_support.append(node)
    mc, mp = candidate.macro_over(supported), promoted.macro_over(supported)
    if not np.isnan(mp) and (np.isnan(mc) or mp - mc > max_macro_drop + 1e-12):
        left = (f"; left out for support < {min_support}: {', '.join(low_support)}" if low_support else "")
        reasons.append(f"macro-F1 over the {len(supported)} existing node(s) with support >= {min_support} drops: "
                       f"{mp:.3f} -> {mc:.3f}{left}")
    notes = _unchecked(shared, supported, low_support, min_support=min_support, holdout=holdout)
    allowed = not reasons
    forced = False
    if not allowed and force_reason and force_reason.strip():
        allowed, forced = True, True
    return GuardResult(allowed=allowed, reasons=reasons, forced=forced,
                       force_reason=force_reason.strip() if forced else None, deltas=deltas,
                       macro_candidate=None if np.isnan(mc) else float(mc),
                       macro_promoted=None if np.isnan(mp) else float(mp),
                       macro_nodes=supported, low_support=low_support, min_support=min_support, notes=notes)


def _unchecked(shared: Sequence[str], supported: Sequence[str], low_support: Sequence[str], *, min_support: int,
               holdout: float | None) -> list[str]:
    """What the guard could not check: every existing node, when none has enough held-out labels;
    else the existing nodes left out for low support."""
    if supported:
        if not low_support:
            return []
        return [f"not checked, fewer than {min_support} held-out labels: {', '.join(low_support)}"]
    if not shared:
        return ["the two models share no topic node: no regression could be checked"]
    per_node = (f"about {math.ceil(min_support / holdout)} records per node at holdout {holdout:g}"
                if holdout else f"enough records per node that {min_support} are held out")
    return [f"no existing node has >= {min_support} held-out labels ({len(low_support)} have fewer), so no "
            f"regression could be checked: label {per_node} for the guard to decide"]
