"""The masked multi-task loss."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from training.targets import TrainItem, label_leaf


def batch_targets(items: Sequence[TrainItem]) -> dict[str, torch.Tensor]:
    return {
        "sentiment": torch.tensor([it.sentiment for it in items], dtype=torch.long),
        "sentiment_binary": torch.tensor([it.sentiment_binary for it in items], dtype=torch.bool),
        "topic_target": torch.from_numpy(np.stack([it.topic_target for it in items])),
        "topic_mask": torch.from_numpy(np.stack([it.topic_mask for it in items])),
        "tp_target": torch.from_numpy(np.stack([it.tp_target for it in items])),
        "tp_mask": torch.from_numpy(np.stack([it.tp_mask for it in items])),
        "topic_assumed": torch.from_numpy(np.stack([it.assumed() for it in items])),
    }


def _group_loss(logits: torch.Tensor, target: float, how: str) -> torch.Tensor:
    """Loss of a level-1 target over its leaves' logits.

    ``max``: the strongest leaf stands for the group (only it gets gradient, so one leaf can end up
    absorbing every group positive); ``noisy_or``: the group is present when any leaf is,
    ``p = 1 - prod(1 - p_leaf)``, which shares the gradient among the leaves.
    """
    if how == "max":
        return F.binary_cross_entropy_with_logits(
            logits.max(), torch.tensor(target, device=logits.device, dtype=logits.dtype), reduction="sum")
    s = F.softplus(logits.float()).sum().clamp(min=1e-6)  # -log(1 - p_group)
    return s if target == 0 else -torch.log(-torch.expm1(-s))


def multitask_loss(
    out: dict[str, torch.Tensor], items: Sequence[TrainItem], weights: dict[str, float] | None = None,
    *, group_loss: str = "max", topic_loss: str = "bce", assumed_on_text_path: bool = False,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Sum of the losses each item has targets for; returns the total and its parts.

    Negatives from ``assume_absent`` (``TrainItem.topic_assumed``) teach only a node whose learned
    offset and bias took part in this step (``out["topic_kept"]``, from node dropout): where they
    were dropped the node scores from its text alone, as a tenant's new node does, and thousands of
    domain negatives there would teach that path to score every text low (measured: 0.3.0's
    zero-shot product.safety scores fell by 0.1-0.3). ``assumed_on_text_path`` keeps them anyway
    (how the v0.3-topics candidate was trained).
    """
    w = {"sentiment": 1.0, "topics": 1.0, "polarity": 1.0, "touchpoints": 1.0, **(weights or {})}
    device = out["sentiment"].device
    t = {k: v.to(device) for k, v in batch_targets(items).items()}
    parts: dict[str, torch.Tensor] = {}

    # document sentiment: 3-way, or negative-vs-positive where the source is binary
    s_logits = out["sentiment"]
    known = t["sentiment"] >= 0
    if known.any():
        logits = s_logits.clone()
        binary = t["sentiment_binary"] & known
        logits[binary, 1] = torch.finfo(logits.dtype).min  # neutral is not an option there
        parts["sentiment"] = F.cross_entropy(logits[known], t["sentiment"][known])

    # topics: leaves with known targets, plus level-1 groups scored by their strongest leaf
    topic_logits = out["topics"]
    terms, count = [], 0
    mask = t["topic_mask"]
    kept = out.get("topic_kept")
    if kept is not None and not assumed_on_text_path:
        mask = mask & ~(t["topic_assumed"] & ~kept.bool()[None, :])
    if topic_loss == "softmax":
        # one label per text: cross-entropy over the nodes, for items with exactly one positive
        single = mask.all(dim=1) & (t["topic_target"].sum(dim=1) == 1)
        if single.any():
            parts["topics"] = F.cross_entropy(topic_logits[single], t["topic_target"][single].argmax(dim=1))
        mask = mask & ~single[:, None]
    if mask.any():
        terms.append(F.binary_cross_entropy_with_logits(topic_logits[mask], t["topic_target"][mask], reduction="sum"))
        count += int(mask.sum())
    for b, item in enumerate(items):
        for leaves, target in item.groups:
            terms.append(_group_loss(topic_logits[b, list(leaves)], target, group_loss))
            count += 1
    if terms:
        bce = torch.stack(terms).sum() / max(count, 1)
        parts["topics"] = parts["topics"] + bce if "topics" in parts else bce

    # topic polarity: on the leaf (or the strongest leaf of a group) the label is about
    pol_logits = out["polarity"]
    rows, targets = [], []
    for b, item in enumerate(items):
        for leaves, pol in item.polarity:
            leaf = label_leaf(leaves, topic_logits[b])
            rows.append(pol_logits[b, leaf])
            targets.append(pol)
    if rows:
        parts["polarity"] = F.cross_entropy(torch.stack(rows), torch.tensor(targets, dtype=torch.long, device=device))

    tp_mask = t["tp_mask"]
    if tp_mask.any():
        parts["touchpoints"] = F.binary_cross_entropy_with_logits(out["touchpoints"][tp_mask], t["tp_target"][tp_mask])

    if not parts:
        zero = s_logits.sum() * 0.0
        return zero, {}
    total = sum(w[k] * v for k, v in parts.items())
    return total, {k: float(v.detach()) for k, v in parts.items()}


def distill_loss(
    student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor], temperature: float = 2.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """How far the student's outputs are from a teacher's on the same texts (knowledge distillation).

    Every text teaches every head, whatever labels its data set has: document sentiment and each
    node's polarity by KL divergence between the temperature-softened distributions (times T², so
    the gradient's scale does not depend on T), topics and touchpoints by cross-entropy against
    the teacher's probabilities. A node's polarity counts as much as the teacher believes the
    node is there.
    """
    t2 = temperature * temperature

    def kl(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # per row, over the last axis
        return F.kl_div(F.log_softmax(s.float() / temperature, -1), F.log_softmax(t.float() / temperature, -1),
                        log_target=True, reduction="none").sum(-1) * t2

    parts = {"sentiment": kl(student["sentiment"], teacher["sentiment"]).mean()}
    for head in ("topics", "touchpoints"):
        parts[head] = F.binary_cross_entropy_with_logits(student[head].float(), torch.sigmoid(teacher[head].float()))
    present = torch.sigmoid(teacher["topics"].float())
    parts["polarity"] = (kl(student["polarity"], teacher["polarity"]) * present).sum() / present.sum().clamp(min=1e-6)
    total = sum(parts.values())
    return total, {k: float(v.detach()) for k, v in parts.items()}
