"""Fine-tune a tenant's model from a parent model plus the tenant's labels.

>>> result = finetune(read_label_set("labels.jsonl"), parent_dir="models/default", base_dir=base,
...                   taxonomy=tenant_taxonomy, out_dir="models/acme/3", version="acme-3")
>>> result.report.per_node["safety.food"].f1, result.seconds

The examples are split by a stable hash of their ids, stratified by their rarest topic, into
training labels and held-out labels (``holdout``); the model is built for the (possibly
extended) taxonomy from the parent (:meth:`CemClassifier.from_parent`: learned rows for existing
nodes, text prototypes for new ones) and trained on the training labels mixed with the
taxonomy's seed phrases and, when the public data is available, a replay sample of the default
training data (so old nodes are not forgotten). Finally it is scored on the held-out labels
(:func:`evaluation.compare.evaluate_on_labels`). Temperatures stay the parent's: held-out labels
are for the report, not for fitting.

What trains: the heads (every node's offset and bias, the detectors, polarity and sentiment),
on the parent's encoder, which stays frozen. Each text goes through the encoder once (its token
states are kept), so a run on 500 labels costs one encoder pass over about 1,500 texts plus a
few hundred cheap head steps: minutes on two CPU cores, where training the encoder too would
take hours. The encoder's own adaptation is the default training's job (``training.trainer``).
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nlp.errors import DataUnavailableError, InvalidInputError
from training.labelset import LabelExample

if TYPE_CHECKING:
    from evaluation.compare import NodeReport
    from models.taxonomy import Taxonomy

log = logging.getLogger(__name__)

__all__ = ["FinetuneResult", "default_steps", "finetune", "split_holdout"]

LABELS = "labels"
_NODE_ROWS = ("topic_offset", "topic_bias", "touchpoint_offset", "touchpoint_bias")
ProgressFn = Callable[[float, str], None]


@dataclass(frozen=True, kw_only=True)
class FinetuneResult:
    """What a fine-tune produced. ``replay`` is ``"default-data"`` or ``"labels-only"``."""

    model_dir: Path
    train_ids: list[str]
    heldout_ids: list[str]
    report: NodeReport | None  # None when nothing was held out
    seconds: float  # wall clock, preparation and evaluation included
    cpu_seconds: float  # CPU time of this process (wall time on a shared machine depends on its load)
    steps: int
    replay: str
    replay_sets: list[str]
    parent: str


def _rank(seed: int, ex_id: str) -> str:
    return hashlib.sha1(f"{seed}:{ex_id}".encode()).hexdigest()


def split_holdout(examples: Sequence[LabelExample], holdout: float, *, seed: int = 13
                  ) -> tuple[list[LabelExample], list[LabelExample]]:
    """Stable split (same ids, same seed -> same split), stratified by each example's rarest topic
    so every node with a few labels has some in both parts."""
    if not 0 <= holdout < 1:
        raise InvalidInputError(f"holdout must be in [0, 1), got {holdout}")
    counts: dict[str, int] = {}
    for ex in examples:
        for t in ex.topics or {}:
            counts[t] = counts.get(t, 0) + 1
    strata: dict[str, list[LabelExample]] = {}
    for ex in examples:
        key = min(ex.topics, key=lambda t: (counts[t], t)) if ex.topics else ("(none)" if ex.topics is not None else "(unlabelled)")
        strata.setdefault(key, []).append(ex)
    # systematic sampling along the strata (each in a stable hash order): every stratum gives its
    # share, and the total held out is holdout * n even when strata are small
    ordered = [ex for key in sorted(strata) for ex in sorted(strata[key], key=lambda e: _rank(seed, e.id))]
    train, held = [], []
    for i, ex in enumerate(ordered):
        (held if math.floor((i + 1) * holdout) > math.floor(i * holdout) else train).append(ex)
    order = {ex.id: i for i, ex in enumerate(examples)}
    return sorted(train, key=lambda e: order[e.id]), sorted(held, key=lambda e: order[e.id])


def default_steps(n_train: int, *, batch_size: int = 16, label_share: float = 0.5) -> int:
    """About four passes over the training labels, between 60 and 300 steps."""
    return int(min(300, max(60, math.ceil(4 * n_train / (batch_size * label_share)))))


def _items(examples: Sequence[LabelExample], topic_ids: Sequence[str], tp_ids: Sequence[str], prepare):
    from training.targets import POL_INDEX, SENT_INDEX, TrainItem

    t_index = {t: i for i, t in enumerate(topic_ids)}
    p_index = {t: i for i, t in enumerate(tp_ids)}
    items = []
    for ex in examples:
        unknown = [t for t in ex.topics or {} if t not in t_index] + [t for t in ex.touchpoints or () if t not in p_index]
        if unknown:
            raise InvalidInputError(f"label {ex.id!r} names {unknown[0]!r}, which is not an active leaf or touchpoint "
                                    "of the taxonomy being trained; fix the label or the taxonomy")
        it = TrainItem(
            text=prepare(ex.text), source=LABELS, sentiment=SENT_INDEX.get(ex.sentiment or "", -1),
            topic_target=np.zeros(len(t_index), np.float32), topic_mask=np.zeros(len(t_index), bool),
            tp_target=np.zeros(len(p_index), np.float32), tp_mask=np.zeros(len(p_index), bool),
        )
        if ex.topics is not None:  # an analyst's topic labels are exhaustive
            it.topic_mask[:] = True
            for t, pol in ex.topics.items():
                it.topic_target[t_index[t]] = 1.0
                it.polarity.append(((t_index[t],), POL_INDEX[pol]))
        if ex.touchpoints is not None:
            it.tp_mask[:] = True
            for t in ex.touchpoints:
                it.tp_target[p_index[t]] = 1.0
        items.append(it)
    return items


def _replay(replay_data, builder, prepare, *, per_set: int, seed: int) -> tuple[dict, dict[str, float], str, list[str]]:
    """Replay pools and their mixture shares from the default training config, or nothing."""
    from training.config import TrainConfig
    from training.data import data_dir
    from training.pools import build_pools

    if replay_data is False:
        return {}, {}, "labels-only", []
    default = TrainConfig.from_yaml(Path(__file__).resolve().parent / "configs" / "default.yaml")
    if replay_data in (None, True):
        try:
            data_dir()
        except DataUnavailableError:
            if replay_data is True:
                raise
            log.info("public data not available: fine-tuning on labels and seeds only")
            return {}, {}, "labels-only", []
        names = [n for n in default.mixture if n != "taxonomy-seeds"]
    else:
        names = list(replay_data)
    unknown = [n for n in names if n not in default.mixture or n == "taxonomy-seeds"]
    if unknown:
        raise InvalidInputError(f"unknown replay data set(s) {unknown}; choose from the default mixture")
    pools, _ = build_pools(names, builder, prepare, dev_per_dataset=0, max_train=per_set, seed=seed)
    return pools, {n: default.mixture[n] for n in names if pools.get(n)}, "default-data", names


def finetune(
    examples: Sequence[LabelExample], *, parent_dir: Path | str, base_dir: Path | str, taxonomy: Taxonomy | str | Path | None,
    out_dir: Path | str, version: str, steps: int | None = None, seed: int = 13, holdout: float = 0.2,
    progress: ProgressFn | None = None, replay_data: Sequence[str] | bool | None = None,
    replay_per_set: int = 50, batch_size: int = 16, head_lr: float = 5e-3, shared_lr: float = 1e-4,
    label_share: float = 0.5, cache: dict | None = None,
) -> FinetuneResult:
    """Fine-tune ``parent_dir`` on ``examples`` for ``taxonomy`` and write the model to ``out_dir``.

    ``replay_data``: ``None`` mixes in a sample of the default training data when ``VERBATIM_DATA``
    is there (labels only otherwise), ``True`` requires it, ``False`` never, or a list of data set
    names. ``progress(fraction, message)`` is called as the run goes. ``steps`` defaults to
    :func:`default_steps` of the training labels. ``cache`` (a dict kept by the caller) reuses the
    encoder's token states of texts seen in earlier runs from the *same parent* (replay, seeds).
    """
    import torch

    from models.classifier.model import CemClassifier
    from models.taxonomy import load_taxonomy
    from training.loss import multitask_loss
    from training.pools import SEEDS, MixtureSampler
    from training.targets import TargetBuilder
    from training.trainer import _prepare_text, _schedule, _versions

    started, cpu_started = time.perf_counter(), time.process_time()
    report_progress = progress or (lambda fraction, message: None)
    if not examples:
        raise InvalidInputError("no labels to fine-tune on")
    ids = [ex.id for ex in examples]
    if len(set(ids)) != len(ids):
        raise InvalidInputError("label ids must be unique within a fine-tuning run")
    if isinstance(taxonomy, (str, Path)):
        taxonomy = load_taxonomy(Path(taxonomy))
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    train_ex, held_ex = split_holdout(examples, holdout, seed=seed)
    if not train_ex:
        raise InvalidInputError("every label was held out; give more labels or a smaller holdout")
    report_progress(0.0, f"building the model from {parent_dir}")
    model = CemClassifier.from_parent(parent_dir, base_dir=base_dir, taxonomy=taxonomy, version=str(version))
    cfg = model.config
    label_items = _items(train_ex, cfg.topic_ids, cfg.touchpoint_ids, _prepare_text)
    builder = TargetBuilder(model.taxonomy, cfg.topic_ids, cfg.touchpoint_ids)
    report_progress(0.02, "preparing replay data")
    replay_pools, replay_mix, replay, replay_sets = _replay(replay_data, builder, _prepare_text,
                                                            per_set=replay_per_set, seed=seed)
    pools = {LABELS: label_items, SEEDS: _seed_items(builder, cfg, _prepare_text), **replay_pools}
    if replay_mix:  # labels, seeds (10%) and the replay sets in their default proportions
        total = sum(replay_mix.values())
        mixture = {LABELS: label_share, SEEDS: 0.1,
                   **{n: (0.9 - label_share) * s / total for n, s in replay_mix.items()}}
    else:
        mixture = {LABELS: 0.8, SEEDS: 0.2}
    steps = int(steps or default_steps(len(train_ex), batch_size=batch_size, label_share=mixture[LABELS]))
    sampler = MixtureSampler(pools, mixture, batch_size, seed)
    report_progress(0.05, "encoding the training texts")
    states = _encode(model, [it.text for pool in pools.values() for it in pool], batch_size=32, cache=cache)
    # each node's own row (offset, bias) learns at head_lr; the parts all nodes share barely move
    # (shared_lr), so labels for some nodes do not drift the others, and new nodes keep the
    # zero-shot path they start from
    rows = [p for n, p in model.heads.named_parameters() if n in _NODE_ROWS]
    shared = [p for n, p in model.heads.named_parameters() if n not in _NODE_ROWS]
    head_params = rows + shared
    optimizer = torch.optim.AdamW([{"params": rows, "lr": head_lr, "weight_decay": 0.0},
                                   {"params": shared, "lr": shared_lr, "weight_decay": 0.01}])
    scheduler = _schedule(optimizer, max(1, steps // 10), steps)
    prep_seconds = time.perf_counter() - started
    log.info("fine-tune: %d train / %d held-out labels, %s, %d texts encoded, %d steps (prepared in %.0f s)",
             len(train_ex), len(held_ex), replay, len(states), steps, prep_seconds)
    model.heads.train()
    running = None
    every = max(1, steps // 50)
    for step in range(1, steps + 1):
        items = sampler.next()
        hidden, attention, special = _batch([states[it.text] for it in items])
        out = model.heads(hidden, attention, special, model.topic_protos, model.touchpoint_protos)
        loss, _ = multitask_loss(out, items, group_loss="noisy_or")
        optimizer.zero_grad(set_to_none=True)
        if loss.requires_grad:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(head_params, 1.0)
            optimizer.step()
        scheduler.step()
        value = float(loss.detach())
        running = value if running is None else 0.95 * running + 0.05 * value
        if step % every == 0 or step == steps:
            report_progress(0.3 + 0.6 * step / steps, f"training step {step}/{steps} (loss {running:.3f})")
    model.eval()
    model.config = cfg.with_(
        trained_topic_ids=tuple(t for t in cfg.topic_ids if t in cfg.trained_topic_ids or _labelled(t, train_ex)),
        trained_touchpoint_ids=tuple(t for t in cfg.touchpoint_ids
                                     if t in cfg.trained_touchpoint_ids or any(t in (e.touchpoints or ()) for e in train_ex)),
        training={
            "parent": cfg.training.get("parent"), "kind": "finetune", "labels": len(examples),
            "train_labels": len(train_ex), "heldout_labels": len(held_ex), "steps": steps, "batch_size": batch_size,
            "head_lr": head_lr, "shared_lr": shared_lr, "encoder": "frozen (the parent's adapters)", "seed": seed, "holdout": holdout, "replay": replay,
            "replay_sets": replay_sets, "mixture": mixture,
        },
        package_versions=_versions(),
    )
    out_dir = Path(out_dir)
    for name in ("adapter", "heads.safetensors", "taxonomy.yaml", "config.json"):
        target = out_dir / name
        if target.is_dir():
            shutil.rmtree(target)
    model.save_pretrained(out_dir)
    report = None
    if held_ex:
        from evaluation.compare import evaluate_on_labels

        report_progress(0.92, f"evaluating on {len(held_ex)} held-out labels")
        if hasattr(model.encoder, "merge_and_unload"):
            model.encoder = model.encoder.merge_and_unload()
        report = evaluate_on_labels(model, held_ex)
    seconds = time.perf_counter() - started
    report_progress(1.0, f"done in {seconds:.0f} s")
    return FinetuneResult(
        model_dir=out_dir, train_ids=[e.id for e in train_ex], heldout_ids=[e.id for e in held_ex], report=report,
        seconds=seconds, cpu_seconds=time.process_time() - cpu_started, steps=steps, replay=replay, replay_sets=replay_sets, parent=str(cfg.training.get("parent")),
    )


def _encode(model, texts: Sequence[str], *, batch_size: int, cache: dict | None = None) -> dict[str, tuple]:
    """The frozen encoder's token states for each text (computed once, trimmed to its length)."""
    import torch

    from training.devscore import tokenize

    model.eval()
    states: dict[str, tuple] = {}
    todo = sorted({t for t in texts if cache is None or t not in cache}, key=len)
    with torch.inference_mode():
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            enc = tokenize(model, chunk)
            hidden = model.encoder(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
            lengths = enc["attention_mask"].sum(1).tolist()
            for row, (text, n) in enumerate(zip(chunk, lengths, strict=True)):
                states[text] = (hidden[row, :n].clone(), enc["special_tokens_mask"][row, :n].clone())
    if cache is not None:
        cache.update(states)
        states = {t: cache[t] for t in texts}
    return states


def _seed_items(builder, cfg, prepare) -> list:
    """The taxonomy's seed phrases as weak labels. A seed shows its own node and, for the nodes the
    parent learned, no other; it says nothing about a *new* node (an old node's seed "half the
    strawberries were moldy" may well be about a new food-safety node), so those stay unknown."""
    new = [i for i, t in enumerate(cfg.topic_ids) if t not in cfg.trained_topic_ids]
    items = list(builder.seed_items(prepare))
    for it in items:
        for i in new:
            if it.topic_mask[i] and it.topic_target[i] == 0:
                it.topic_mask[i] = False
    return items


def _batch(rows: list[tuple]):
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


def _labelled(topic_id: str, examples: Sequence[LabelExample]) -> bool:
    return any(topic_id in (e.topics or {}) for e in examples)
