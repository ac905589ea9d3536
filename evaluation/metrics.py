"""Metrics that score our model and the peers with the same code.

Everything here takes plain Python values (labels, id sets, spans, confidences) so that any
predictor, ours or a baseline, is scored the same way. Classification metrics delegate to
``sklearn.metrics``; the taxonomy-aware topic scoring and the span metrics are ours because no
library knows the "score at the level the mapping supports" rule of ``spec/taxonomy.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Sized
from dataclasses import dataclass, field

import numpy as np

POLARITIES = ("negative", "neutral", "positive")


# --------------------------------------------------------------------------- single-label


def accuracy(gold: Sequence[str], pred: Sequence[str]) -> float:
    """Share of items whose predicted label equals the gold label."""
    from sklearn.metrics import accuracy_score

    _same_length(gold, pred)
    return float(accuracy_score(list(gold), list(pred))) if len(gold) else float("nan")


def macro_f1(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str] | None = None) -> float:
    """Unweighted mean F1 over ``labels`` (default: the labels present in gold)."""
    from sklearn.metrics import f1_score

    _same_length(gold, pred)
    if not len(gold):
        return float("nan")
    labels = list(labels) if labels is not None else sorted(set(gold))
    return float(f1_score(list(gold), list(pred), labels=labels, average="macro", zero_division=0))


def per_class_prf(
    gold: Sequence[str], pred: Sequence[str], labels: Sequence[str] | None = None
) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support for each label."""
    from sklearn.metrics import precision_recall_fscore_support

    _same_length(gold, pred)
    labels = list(labels) if labels is not None else sorted(set(gold) | set(pred))
    p, r, f, s = precision_recall_fscore_support(
        list(gold), list(pred), labels=labels, zero_division=0
    )
    return {
        lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, lab in enumerate(labels)
    }


def bootstrap_ci(
    correct: Sequence[bool] | np.ndarray, *, n_resamples: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of a mean (e.g. accuracy from 0/1 correctness)."""
    x = np.asarray(correct, dtype=float)
    if x.size < 2:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_resamples, x.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return (float(lo), float(hi))


# --------------------------------------------------------------------------- ratings


def mae(gold: Sequence[float], pred: Sequence[float]) -> float:
    """Mean absolute error (star ratings)."""
    _same_length(gold, pred)
    return float(np.mean(np.abs(np.asarray(gold, float) - np.asarray(pred, float)))) if len(gold) else float("nan")


def within_one(gold: Sequence[float], pred: Sequence[float]) -> float:
    """Share of ratings predicted within one star of gold."""
    _same_length(gold, pred)
    if not len(gold):
        return float("nan")
    return float(np.mean(np.abs(np.asarray(gold, float) - np.asarray(pred, float)) <= 1.0))


# --------------------------------------------------------------------------- calibration


@dataclass(frozen=True, kw_only=True)
class Reliability:
    """Expected calibration error and the reliability diagram's bins."""

    ece: float
    n: int
    bins: list[dict[str, float]] = field(default_factory=list)  # lo, hi, count, confidence, accuracy


def calibration(confidence: Sequence[float], correct: Sequence[bool], *, n_bins: int = 15) -> Reliability:
    """Expected calibration error over equal-width confidence bins (Guo et al., 2017).

    ``confidence`` is the probability the predictor gave to what it predicted, ``correct`` whether
    that prediction was right. ECE is the count-weighted mean |accuracy - confidence| over bins.
    """
    conf = np.clip(np.asarray(confidence, dtype=float), 0.0, 1.0)
    ok = np.asarray(correct, dtype=float)
    _same_length(conf, ok)
    if conf.size == 0:
        return Reliability(ece=float("nan"), n=0)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    ece = 0.0
    bins: list[dict[str, float]] = []
    for b in range(n_bins):
        mask = idx == b
        count = int(mask.sum())
        if not count:
            continue
        mc, acc = float(conf[mask].mean()), float(ok[mask].mean())
        ece += count / conf.size * abs(acc - mc)
        bins.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": count,
                     "confidence": mc, "accuracy": acc})
    return Reliability(ece=float(ece), n=int(conf.size), bins=bins)


# --------------------------------------------------------------------------- topics


def level1(node_id: str) -> str:
    """The level-1 ancestor of a taxonomy id (``"service.attitude"`` -> ``"service"``)."""
    return node_id.split(".", 1)[0]


def is_level1(node_id: str) -> bool:
    return "." not in node_id


def _covers(node: str, ids: Iterable[str]) -> bool:
    """Whether ``ids`` contain ``node`` itself or, for a level-1 node, any leaf under it."""
    if is_level1(node):
        return any(i == node or level1(i) == node for i in ids)
    return node in set(ids)


@dataclass(frozen=True, kw_only=True)
class TopicScores:
    """Multi-label topic detection scores over a data set's topic space.

    Recall counts every node; precision and F1 only the *closed* nodes (those whose absence from
    a gold label set means "not this topic"); they are ``None`` when no node is closed.
    """

    micro_precision: float | None
    micro_recall: float
    micro_f1: float | None
    macro_f1: float | None
    per_node: dict[str, dict[str, float | None]]
    n_docs: int
    closed: tuple[str, ...]
    polarity_accuracy: float  # over (doc, node) cells detected correctly with a known gold polarity
    polarity_n: int


def topic_cells(
    gold: Sequence[Mapping[str, str | None]],
    pred: Sequence[Mapping[str, tuple[str | None, float]]],
    topic_space: Iterable[str],
) -> list[tuple[int, str, bool, bool, str | None, str | None, float]]:
    """Scoring cells ``(doc, node, gold_has, pred_has, gold_polarity, pred_polarity, confidence)``.

    ``gold[i]`` maps gold topic id -> polarity (``None`` when unknown or conflicting); ``pred[i]``
    maps predicted id -> (polarity, confidence). Only nodes in ``topic_space`` are scored. A level-1
    node is present when the id itself or any leaf under it is (predicted leaves collapse to
    level 1). A leaf whose level-1 parent is a gold label but which is not itself gold is unknown
    for that document (the data only says "something under the parent") and is skipped.
    Predicted ids outside the space are ignored.
    """
    _same_length(gold, pred)
    space = sorted(set(topic_space))
    cells = []
    for i, (g, p) in enumerate(zip(gold, pred, strict=True)):
        for node in space:
            if not is_level1(node) and node not in g and level1(node) in g:
                continue
            g_has, p_has = _covers(node, g), _covers(node, p)
            g_pol = _node_polarity(node, g) if g_has else None
            p_pol, conf = None, 0.0
            if p_has:
                under = [(c, pol) for k, (pol, c) in p.items() if k == node or (is_level1(node) and level1(k) == node)]
                conf, p_pol = max(under, key=lambda t: t[0])
            cells.append((i, node, g_has, p_has, g_pol, p_pol, float(conf)))
    return cells


def _node_polarity(node: str, gold: Mapping[str, str | None]) -> str | None:
    pols = {pol for k, pol in gold.items() if k == node or (is_level1(node) and level1(k) == node)}
    return pols.pop() if len(pols) == 1 else None


def topic_scores(
    gold: Sequence[Mapping[str, str | None]],
    pred: Sequence[Mapping[str, tuple[str | None, float]]],
    topic_space: Iterable[str],
    *,
    closed: Iterable[str] | None = None,
) -> TopicScores:
    """Micro/macro F1 of topic detection and polarity accuracy on correctly detected topics.

    ``closed`` (default: the whole space) lists the nodes whose absence in gold is a true
    negative; a prediction of an open node that gold lacks is not counted as a false positive.
    """
    space = sorted(set(topic_space))
    closed_set = set(space) if closed is None else set(closed) & set(space)
    cells = topic_cells(gold, pred, space)
    counts = {n: [0, 0, 0] for n in space}  # tp, fp, fn
    pol_ok = pol_n = 0
    for _, node, g_has, p_has, g_pol, p_pol, _c in cells:
        c = counts[node]
        if g_has and p_has:
            c[0] += 1
            if g_pol in POLARITIES:
                pol_n += 1
                pol_ok += int(p_pol == g_pol)
        elif p_has:
            c[1] += node in closed_set
        elif g_has:
            c[2] += 1
    tp_all = sum(c[0] for c in counts.values())
    fn_all = sum(c[2] for c in counts.values())
    recall = tp_all / (tp_all + fn_all) if tp_all + fn_all else 0.0
    per_node: dict[str, dict[str, float | None]] = {}
    for n, (a, b, d) in counts.items():
        p, r, f = _prf(a, b, d)
        shut = n in closed_set
        per_node[n] = {"precision": p if shut else None, "recall": r,
                       "f1": f if shut else None, "support": a + d}
    mp = mf = macro = None
    if closed_set:
        tp, fp, fn = (sum(counts[n][k] for n in closed_set) for k in range(3))
        mp, _, mf = _prf(tp, fp, fn)
        supported = [per_node[n]["f1"] for n in closed_set if per_node[n]["support"]]
        macro = float(np.mean(supported)) if supported else None
    return TopicScores(
        micro_precision=mp, micro_recall=recall, micro_f1=mf, macro_f1=macro,
        per_node=per_node, n_docs=len(gold), closed=tuple(sorted(closed_set)),
        polarity_accuracy=pol_ok / pol_n if pol_n else float("nan"), polarity_n=pol_n,
    )


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


# --------------------------------------------------------------------------- evidence spans

Span = tuple[int, int]


@dataclass(frozen=True, kw_only=True)
class SpanScores:
    """How well predicted evidence spans land on gold aspect spans."""

    hit_rate: float  # gold spans overlapped by at least one predicted span
    precision: float  # predicted spans that overlap at least one gold span
    char_precision: float
    char_recall: float
    char_f1: float
    n_gold: int
    n_pred: int


def _overlaps(a: Span, b: Span) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def span_scores(gold: Sequence[Sequence[Span]], pred: Sequence[Sequence[Span]]) -> SpanScores:
    """Span hit rate and character-level overlap F1 (micro over documents)."""
    _same_length(gold, pred)
    hits = n_gold = p_hits = n_pred = 0
    c_tp = c_pred = c_gold = 0
    for g, p in zip(gold, pred, strict=True):
        g = [s for s in g if s[1] > s[0]]
        p = [s for s in p if s[1] > s[0]]
        n_gold += len(g)
        n_pred += len(p)
        hits += sum(any(_overlaps(a, b) for b in p) for a in g)
        p_hits += sum(any(_overlaps(a, b) for b in g) for a in p)
        gc = {c for a, b in g for c in range(a, b)}
        pc = {c for a, b in p for c in range(a, b)}
        c_tp += len(gc & pc)
        c_pred += len(pc)
        c_gold += len(gc)
    cp = c_tp / c_pred if c_pred else 0.0
    cr = c_tp / c_gold if c_gold else 0.0
    return SpanScores(
        hit_rate=hits / n_gold if n_gold else float("nan"),
        precision=p_hits / n_pred if n_pred else float("nan"),
        char_precision=cp, char_recall=cr, char_f1=2 * cp * cr / (cp + cr) if cp + cr else 0.0,
        n_gold=n_gold, n_pred=n_pred,
    )


def _same_length(a: Sized, b: Sized) -> None:
    if len(a) != len(b):
        from nlp.errors import InvalidInputError

        raise InvalidInputError(
            f"gold and predictions must have the same length, got {len(a)} and {len(b)}; "
            "pass one prediction per gold item, in the same order"
        )

