"""Training the node rows a fine-tune's labels speak about, on cached encoder states.

A tenant fine-tune changes only what its labels are evidence for: the per-node rows (offset and
bias) of the new nodes and of the existing nodes that have positive labels. Every other row, the
heads' shared weights and the encoder stay the parent's, so a node the labels say nothing about
scores every text exactly as before. The trained rows are pulled back toward where they started
(the parent's learned row, or zero: a new node's zero-shot start) by a decoupled L2 anchor, and
the number of steps is chosen by cross-fitting on the training labels
(:func:`training.finetune.finetune`), so a few labels move a node only as far as they are
evidence for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["RowFit", "Selection", "assign_folds", "batch_states", "best_threshold", "crossfit", "fit_rows", "fit_selected", "head_logits", "label_logloss", "reset_rows",
           "snapshot_rows"]

_ROWS = ("topic_offset", "topic_bias", "touchpoint_offset", "touchpoint_bias")
ProbeFn = Callable[[], Any]


@dataclass(frozen=True, kw_only=True)
class RowFit:
    """How the rows train: Adam at ``lr`` on a cosine schedule over ``steps`` (one tenth warm-up);
    each row's anchor (given with the rows) pulls it back toward its start every step."""

    steps: int
    lr: float = 5e-3
    batch_size: int = 16
    seed: int = 13


def batch_states(rows: list[tuple]):
    """Pad cached token states into a batch: hidden (B, T, d), attention mask, special-token mask."""
    import torch

    width = max(h.shape[0] for h, _ in rows)
    hidden = torch.zeros(len(rows), width, rows[0][0].shape[1])
    attention = torch.zeros(len(rows), width, dtype=torch.long)
    special = torch.ones(len(rows), width, dtype=torch.long)
    for b, (h, sp) in enumerate(rows):
        hidden[b, : h.shape[0]] = h
        attention[b, : h.shape[0]] = 1
        special[b, : h.shape[0]] = sp
    return hidden, attention, special


def head_logits(model, states: dict[str, tuple], texts: Sequence[str], *, key: str = "topics",
                batch_size: int = 64) -> np.ndarray:
    """The heads' raw ``key`` logits (before temperature) for ``texts``, from cached states."""
    import torch

    was_training = model.heads.training
    model.heads.eval()
    out = []
    order = sorted(range(len(texts)), key=lambda i: states[texts[i]][0].shape[0])
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            hidden, attention, special = batch_states([states[texts[i]] for i in idx])
            res = model.heads(hidden, attention, special, model.topic_protos, model.touchpoint_protos)
            out.append((idx, res[key].float().numpy()))
    model.heads.train(was_training)
    n = len(model.config.topic_ids if key == "topics" else model.config.touchpoint_ids)
    logits = np.zeros((len(texts), n), np.float32)
    for idx, block in out:
        logits[idx] = block
    return logits


def fit_rows(model, sampler, states: dict[str, tuple], *, topic_rows: Mapping[int, float], tp_rows: Mapping[int, float],
             fit: RowFit, stop: int | None = None, probe_at: Sequence[int] = (), probe: ProbeFn | None = None,
             on_step: Callable[[int, float], None] | None = None, group_loss: str = "noisy_or") -> dict[int, Any]:
    """Train the given rows of ``model.heads`` for ``fit.steps`` on batches from ``sampler``.

    ``topic_rows``/``tp_rows`` map each row to train to its anchor: each step pulls it back
    ``anchor * lr`` of the way to where it started. Rows not listed keep their values exactly.
    ``stop`` ends the run early on the same schedule (the rows as they were at that checkpoint of
    the full run). ``probe()`` is called after each step in ``probe_at`` (0: before training) and
    its results are returned by step.
    """
    import torch

    from training.loss import multitask_loss
    from training.trainer import _schedule

    heads = model.heads
    params = [getattr(heads, n) for n in _ROWS]
    start = [p.detach().clone() for p in params]
    masks, pulls = [], []
    for name, p in zip(_ROWS, params, strict=True):
        rows = topic_rows if name.startswith("topic") else tp_rows
        m, a = torch.zeros(p.shape[0], dtype=p.dtype), torch.zeros(p.shape[0], dtype=p.dtype)
        for row, anchor in rows.items():
            m[row], a[row] = 1.0, anchor
        masks.append(m if p.dim() == 1 else m[:, None])
        pulls.append(a if p.dim() == 1 else a[:, None])
    flags = {n: p.requires_grad for n, p in heads.named_parameters()}
    for n, p in heads.named_parameters():
        p.requires_grad = n in _ROWS
    optimizer = torch.optim.Adam(params, lr=fit.lr)
    scheduler = _schedule(optimizer, max(1, fit.steps // 10), fit.steps)
    probes: dict[int, Any] = {}
    wanted = set(probe_at)
    if probe is not None and 0 in wanted:
        probes[0] = probe()
    heads.train()
    try:
        for step in range(1, (fit.steps if stop is None else min(stop, fit.steps)) + 1):
            items = sampler.next()
            hidden, attention, special = batch_states([states[it.text] for it in items])
            out = heads(hidden, attention, special, model.topic_protos, model.touchpoint_protos)
            loss, _ = multitask_loss(out, items, group_loss=group_loss)
            optimizer.zero_grad(set_to_none=True)
            if loss.requires_grad:  # a batch may carry no target the trained rows touch
                loss.backward()
                for p, m in zip(params, masks, strict=True):
                    if p.grad is not None:
                        p.grad.mul_(m)
            optimizer.step()  # parameters without a gradient are left alone
            lr = scheduler.get_last_lr()[0]
            with torch.no_grad():
                for p, p0, m, a in zip(params, start, masks, pulls, strict=True):
                    # decoupled L2 anchor toward the start; untrained rows exactly as they were
                    p.sub_((a * lr).clamp(max=1.0) * (p - p0))
                    p.copy_(m * p + (1 - m) * p0)
            scheduler.step()
            if on_step is not None:
                on_step(step, float(loss.detach()))
            if probe is not None and step in wanted:
                probes[step] = probe()
    finally:
        for n, p in heads.named_parameters():
            p.requires_grad = flags[n]
        heads.eval()
    return probes


def reset_rows(model, values: Sequence) -> None:
    """Put the node rows back to ``values`` (a list in :data:`_ROWS` order)."""
    import torch

    with torch.no_grad():
        for name, v in zip(_ROWS, values, strict=True):
            getattr(model.heads, name).copy_(v)


def snapshot_rows(model) -> list:
    """The node rows' current values, in :data:`_ROWS` order."""
    return [getattr(model.heads, n).detach().clone() for n in _ROWS]


def label_logloss(logits: np.ndarray, target: np.ndarray, mask: np.ndarray, temperature: float = 1.0) -> float:
    """Mean binary log loss over the masked (example, node) cells."""
    z = logits[mask] / temperature
    y = target[mask]
    if not z.size:
        return float("nan")
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def best_threshold(probs: np.ndarray, gold: np.ndarray, *, lo: float = 0.2, hi: float = 0.8,
                   default: float = 0.5) -> tuple[float, float]:
    """The decision threshold in ``[lo, hi]`` with the best F1 on ``(probs, gold)`` and that F1.

    Candidates are the midpoints between sorted scores; ties go to the one nearest ``default``.
    """
    gold = gold.astype(bool)
    cands = np.unique(np.clip(probs, lo, hi))
    mids = np.concatenate([[default], (cands[:-1] + cands[1:]) / 2 if cands.size > 1 else []])
    best = (default, -1.0)
    for th in sorted(mids, key=lambda t: abs(t - default)):
        pred = probs >= th
        tp = int((pred & gold).sum())
        f1 = 2 * tp / max(1, int(pred.sum()) + int(gold.sum()))
        if f1 > best[1] + 1e-12:
            best = (float(th), f1)
    return best


@dataclass(frozen=True, kw_only=True)
class Selection:
    """What cross-fitting on the training labels chose: for each trained row the checkpoint to keep
    (0: its start), and a decision threshold per new node fitted on out-of-fold scores."""

    topic_steps: dict[int, int]
    tp_steps: dict[int, int]
    thresholds: dict[int, float]
    curve: dict[int, float]  # checkpoint -> out-of-fold log loss over all trained rows
    folds: int
    threshold_f1: dict[int, float]
    checkpoints: tuple[int, ...] = ()

    @property
    def step(self) -> int:
        """How far the final run must go: the latest checkpoint any row keeps."""
        return max([0, *self.topic_steps.values(), *self.tp_steps.values()])


def assign_folds(keys: Sequence[str], strata: Sequence[str], k: int, *, seed: int) -> list[int]:
    """A stable fold per example: within each stratum, in a hash order, round-robin over ``k``."""
    import hashlib

    order = sorted(range(len(keys)), key=lambda i: (strata[i], hashlib.sha1(f"{seed}:{keys[i]}".encode()).hexdigest()))
    folds = [0] * len(keys)
    for rank, i in enumerate(order):
        folds[i] = rank % k
    return folds


def _best(curves: np.ndarray, checkpoints: Sequence[int]) -> int:
    """The checkpoint with the lowest loss (ties: the earliest); 0 when there is no loss at all."""
    finite = [(round(float(v), 6), c) for v, c in zip(curves, checkpoints, strict=True) if not np.isnan(v)]
    return min(finite)[1] if finite else 0


def _row_losses(logits: np.ndarray, target: np.ndarray, mask: np.ndarray, temperature: float) -> np.ndarray:
    """Mean out-of-fold log loss per row over its masked cells (NaN for a row with none)."""
    z = logits / temperature
    cell = np.logaddexp(0.0, z) - target * z
    n = mask.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (cell * mask).sum(0) / np.maximum(n, 1), np.nan)


def crossfit(model, states: dict[str, tuple], label_items: Sequence, make_sampler: Callable[[list, int], object], *,
             folds: Sequence[int], topic_rows: Mapping[int, float], tp_rows: Mapping[int, float],
             threshold_rows: Sequence[int], fit: RowFit, temperature: float, tp_temperature: float = 1.0,
             min_class: int = 3, progress: Callable[[float, str], None] | None = None) -> Selection:
    """Choose, row by row, when to stop, and the new nodes' thresholds, from out-of-fold scores.

    For each fold the rows are trained on the other folds' labels (``make_sampler(items, seed)``
    gives the batches, with the same replay and seeds as the final run) and the fold's labels are
    scored at a few checkpoints. Each row keeps the checkpoint with its lowest out-of-fold log
    loss (its start when training does not help it): rows do not share parameters, so each row's
    stop is its own. A node in ``threshold_rows`` with at least ``min_class`` labelled positives
    and negatives gets the threshold with the best out-of-fold F1 at its checkpoint.
    """
    k = max(folds) + 1
    start = snapshot_rows(model)
    checkpoints = sorted({0, *(round(fit.steps * i / 8) for i in range(1, 9))})
    texts = [it.text for it in label_items]
    target = np.stack([it.topic_target for it in label_items])
    mask = np.stack([it.topic_mask for it in label_items])
    tp_target = np.stack([it.tp_target for it in label_items])
    tp_mask = np.stack([it.tp_mask for it in label_items])
    n_topics = target.shape[1]
    oof = {c: np.zeros(target.shape, np.float32) for c in checkpoints}
    oof_tp = {c: np.zeros(tp_target.shape, np.float32) for c in checkpoints}
    for f in range(k):
        held = [i for i, g in enumerate(folds) if g == f]
        train = [label_items[i] for i, g in enumerate(folds) if g != f]
        if not held or not train:
            continue
        held_texts = [texts[i] for i in held]

        def probe(held_texts=held_texts) -> np.ndarray:
            return np.concatenate([head_logits(model, states, held_texts),
                                   head_logits(model, states, held_texts, key="touchpoints")], axis=1)

        def step_report(step: int, loss: float, f: int = f) -> None:
            if progress is not None and (step % max(1, fit.steps // 10) == 0 or step == fit.steps):
                progress((f + step / fit.steps) / k, f"cross-fitting fold {f + 1}/{k}: step {step}/{fit.steps} (loss {loss:.3f})")

        reset_rows(model, start)
        got = fit_rows(model, make_sampler(train, fit.seed + 1 + f), states, topic_rows=topic_rows, tp_rows=tp_rows,
                       fit=fit, probe_at=checkpoints, probe=probe, on_step=step_report)
        for c, logits in got.items():
            oof[c][held] = logits[:, :n_topics]
            oof_tp[c][held] = logits[:, n_topics:]
    reset_rows(model, start)
    per_row = np.stack([_row_losses(oof[c], target, mask, temperature) for c in checkpoints])  # C, N
    per_tp = np.stack([_row_losses(oof_tp[c], tp_target, tp_mask, tp_temperature) for c in checkpoints])
    topic_steps = {n: _best(per_row[:, n], checkpoints) for n in topic_rows}
    tp_steps = {n: _best(per_tp[:, n], checkpoints) for n in tp_rows}
    trained = np.concatenate([per_row[:, list(topic_rows)], per_tp[:, list(tp_rows)]], axis=1)
    curve = {c: float(np.nanmean(trained[i])) if np.isfinite(trained[i]).any() else float("nan")
             for i, c in enumerate(checkpoints)}
    thresholds, th_f1 = {}, {}
    for n in threshold_rows:
        known = mask[:, n]
        gold = target[known, n] > 0.5
        if gold.sum() >= min_class and (~gold).sum() >= min_class:
            probs = 1.0 / (1.0 + np.exp(-oof[topic_steps.get(n, 0)][known, n] / temperature))
            thresholds[n], th_f1[n] = best_threshold(probs, gold)
    return Selection(topic_steps=topic_steps, tp_steps=tp_steps, thresholds=thresholds, curve=curve, folds=k,
                     threshold_f1=th_f1, checkpoints=tuple(checkpoints))


def fit_selected(model, sampler, states: dict[str, tuple], *, selection: Selection, topic_rows: Mapping[int, float],
                 tp_rows: Mapping[int, float], fit: RowFit,
                 on_step: Callable[[int, float], None] | None = None) -> None:
    """The final run on all training labels: each row ends as it was at its own chosen checkpoint."""
    stop = selection.step
    if not stop:
        return
    wanted = sorted({0, stop, *selection.topic_steps.values(), *selection.tp_steps.values()})
    snaps = fit_rows(model, sampler, states, topic_rows=topic_rows, tp_rows=tp_rows, fit=fit, stop=stop,
                     probe_at=wanted, probe=lambda: snapshot_rows(model), on_step=on_step)
    final = snapshot_rows(model)
    for j, name in enumerate(_ROWS):
        steps = selection.topic_steps if name.startswith("topic") else selection.tp_steps
        for row, step in steps.items():
            final[j][row] = snaps[step][j][row]
    reset_rows(model, final)
