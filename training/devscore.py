"""Forward passes over dev items, the dev score used for model selection, and calibration."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from training.targets import TrainItem, label_leaf


@torch.inference_mode()
def collect(model, items: Sequence[TrainItem], batch_size: int = 64, *, text_only: bool = False) -> dict[str, np.ndarray]:
    """Raw logits for dev items, in input order (length-sorted batches inside); ``text_only``:
    every node scored from its text alone, as a node new to the model is."""
    was = model.training
    model.eval()
    order = sorted(range(len(items)), key=lambda i: len(items[i].text))
    n = len(items)
    out = {
        "sentiment": np.zeros((n, 3), np.float32),
        "topics": np.zeros((n, len(model.config.topic_ids)), np.float32),
        "polarity": np.zeros((n, len(model.config.topic_ids), 3), np.float32),
        "touchpoints": np.zeros((n, len(model.config.touchpoint_ids)), np.float32),
    }
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        enc = tokenize(model, [items[i].text for i in idx])
        device = model.topic_protos.device
        res = model(**{k: v.to(device) for k, v in enc.items()}, text_only=text_only)
        for key in out:
            out[key][idx] = res[key].float().cpu().numpy()
    model.train(was)
    return out


def tokenize(model, texts: Sequence[str]) -> dict[str, torch.Tensor]:
    cfg = model.config
    enc = model.tokenizer(
        [cfg.text_prefix + t for t in texts], padding=True, truncation=True, max_length=cfg.max_length,
        return_special_tokens_mask=True, return_offsets_mapping=True, return_tensors="np",
    )
    # the prefix is not content: keep the heads from attending to it
    prefix_len = len(model.tokenizer(cfg.text_prefix, add_special_tokens=False)["input_ids"])
    special = cfg.content_special(enc["special_tokens_mask"], enc["offset_mapping"], prefix_len)
    return {"input_ids": torch.from_numpy(enc["input_ids"]), "attention_mask": torch.from_numpy(enc["attention_mask"]),
            "special_tokens_mask": torch.from_numpy(special)}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _sentiment_logits(items: Sequence[TrainItem], logits: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Sentiment logits with neutral ruled out for binary-labelled items, and the gold labels."""
    s = logits["sentiment"].copy()
    s[np.array([it.sentiment_binary for it in items], dtype=bool), 1] = -1e9
    return s, np.array([it.sentiment for it in items])


def _masked_counts(p: np.ndarray, mask: np.ndarray, target: np.ndarray) -> tuple[int, int, int]:
    """True positives, false positives and false negatives over the known (masked) labels."""
    pos = target > 0
    return int((p & mask & pos).sum()), int((p & mask & ~pos).sum()), int((~p & mask & pos).sum())


def dev_metrics(
    items: Sequence[TrainItem], logits: dict[str, np.ndarray], threshold: float = 0.5, *, single_label: bool = False,
) -> dict[str, float]:
    """Sentiment accuracy, topic and touchpoint micro-F1 and topic polarity accuracy on dev;
    with ``single_label`` the topic metric is top-1 accuracy (one label per text)."""
    metrics: dict[str, float] = {}
    if single_label:
        one = [(i, it) for i, it in enumerate(items) if it.topic_mask.all() and it.topic_target.sum() == 1]
        if one:
            metrics["topic_top1"] = float(np.mean([logits["topics"][i].argmax() == it.topic_target.argmax() for i, it in one]))
    s, sent = _sentiment_logits(items, logits)
    known = sent >= 0
    if known.any():
        metrics["sentiment_acc"] = float((s.argmax(1) == sent)[known].mean())
    tp = fp = fn = 0
    for i, it in enumerate(items):
        p = _sigmoid(logits["topics"][i]) >= threshold
        a, b, c = _masked_counts(p, it.topic_mask, it.topic_target)
        tp, fp, fn = tp + a, fp + b, fn + c
        for leaves, target in it.groups:
            hit = bool(p[list(leaves)].any())
            tp += int(hit and target > 0)
            fp += int(hit and target == 0)
            fn += int(not hit and target > 0)
    if tp + fp + fn and not single_label:
        metrics["topic_f1"] = 2 * tp / max(2 * tp + fp + fn, 1)
    pol_ok = pol_n = 0
    for i, it in enumerate(items):
        for leaves, pol in it.polarity:
            leaf = label_leaf(leaves, logits["topics"][i])
            pol_ok += int(logits["polarity"][i][leaf].argmax() == pol)
            pol_n += 1
    if pol_n:
        metrics["polarity_acc"] = pol_ok / pol_n
    tp = fp = fn = 0
    for i, it in enumerate(items):
        p = _sigmoid(logits["touchpoints"][i]) >= threshold
        a, b, c = _masked_counts(p, it.tp_mask, it.tp_target)
        tp, fp, fn = tp + a, fp + b, fn + c
    if tp + fp + fn:
        metrics["touchpoint_f1"] = 2 * tp / max(2 * tp + fp + fn, 1)
    return metrics


def selection_score(per_dataset: dict[str, dict[str, float]]) -> float:
    """Mean over data sets of the mean of their dev metrics: every task and language counts."""
    means = [float(np.mean(list(m.values()))) for m in per_dataset.values() if m]
    return float(np.mean(means)) if means else 0.0


def fit_temperatures(items: Sequence[TrainItem], logits: dict[str, np.ndarray]) -> dict[str, float]:
    """Temperature per head that minimises dev negative log-likelihood (a grid; robust on small dev)."""
    grid = np.exp(np.linspace(np.log(0.4), np.log(4.0), 41))
    temps: dict[str, float] = {}
    s, sent = _sentiment_logits(items, logits)
    known = sent >= 0
    if known.any():
        s, y = s[known], sent[known]

        def nll(t: float) -> float:
            p = _softmax(s / t)
            return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1)).mean())

        temps["sentiment"] = float(min(grid, key=nll))
    for head, (x, y) in _node_targets(items, logits).items():
        if len(x):

            def bce(t: float, x=x, y=y) -> float:
                p = np.clip(_sigmoid(x / t), 1e-7, 1 - 1e-7)
                return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())

            temps[head] = float(min(grid, key=bce))
    rows, ys = [], []
    for i, it in enumerate(items):
        for leaves, pol in it.polarity:
            leaf = label_leaf(leaves, logits["topics"][i])
            rows.append(logits["polarity"][i][leaf])
            ys.append(pol)
    if rows:
        r, y = np.stack(rows), np.array(ys)

        def pnll(t: float) -> float:
            p = _softmax(r / t)
            return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1)).mean())

        temps["polarity"] = float(min(grid, key=pnll))
    return temps


NODE_HEADS = (("topics", "topic_target", "topic_mask"), ("touchpoints", "tp_target", "tp_mask"))


def _node_targets(items: Sequence[TrainItem], logits: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per node head, the logits that have a known target on dev, flattened, and those targets."""
    out = {}
    for head, target_key, mask_key in NODE_HEADS:
        if not items:
            out[head] = (np.zeros(0, np.float32), np.zeros(0, np.float32))
            continue
        mask = np.stack([getattr(it, mask_key) for it in items])
        out[head] = (logits[head][mask], np.stack([getattr(it, target_key) for it in items])[mask])
    return out


def fit_zero_shot(items: Sequence[TrainItem], text_logits: dict[str, np.ndarray]) -> tuple[dict[str, list[float]], dict]:
    """Calibration of the zero-shot path, per node head: ``sigmoid(scale * z + shift)`` fitted
    (logistic regression on the one feature) to dev targets with every trained node scored from
    its text alone (``collect(..., text_only=True)``), since a tenant's new node has nothing else.
    Returns the calibration and, per head, dev micro-F1 / precision / recall of that path at the
    0.5 threshold, through the calibration and through the head's plain sigmoid."""
    from sklearn.linear_model import LogisticRegression

    calibration: dict[str, list[float]] = {}
    report: dict[str, dict] = {}
    for head, (x, y) in _node_targets(items, text_logits).items():
        if len(x) < 20 or len(set(y.tolist())) < 2:
            continue
        fit = LogisticRegression(C=100.0).fit(x[:, None].astype(np.float64), y > 0.5)
        scale, shift = float(fit.coef_[0, 0]), float(fit.intercept_[0])
        calibration[head] = [round(scale, 4), round(shift, 4)]
        report[head] = {"dev_nodes_scored": int(len(x)),
                        "calibrated": _prf(_sigmoid(scale * x + shift) >= 0.5, y > 0.5),
                        "uncalibrated": _prf(x >= 0, y > 0.5)}
    return calibration, report


def _prf(pred: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    tp, fp, fn = int((pred & gold).sum()), int((pred & ~gold).sum()), int((~pred & gold).sum())
    return {"f1": round(2 * tp / max(2 * tp + fp + fn, 1), 4), "precision": round(tp / max(tp + fp, 1), 4),
            "recall": round(tp / max(tp + fn, 1), 4)}
