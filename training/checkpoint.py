"""Resumable checkpoints without pickle: tensors in safetensors, the rest in JSON.

Written to a temporary folder and renamed, so a run killed mid-write keeps its last checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(directory: Path, model, optimizer, scheduler, step: int, extra: dict[str, Any]) -> None:
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(trainable_state(model), str(tmp / "trainable.safetensors"))
    names = {id(p): n for n, p in model.named_parameters() if p.requires_grad}
    opt_tensors: dict[str, torch.Tensor] = {}
    opt_scalars: dict[str, dict[str, float]] = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state.get(p)
            if not state:
                continue
            name = names[id(p)]
            for key, value in state.items():
                if torch.is_tensor(value) and value.dim() > 0:
                    opt_tensors[f"{name}::{key}"] = value.detach().cpu().contiguous()
                else:
                    opt_scalars.setdefault(name, {})[key] = float(value)
    save_file(opt_tensors or {"_empty": torch.zeros(1)}, str(tmp / "optimizer.safetensors"))
    save_file({"torch_rng": torch.get_rng_state()}, str(tmp / "rng.safetensors"))
    meta = {"step": step, "scheduler": scheduler.state_dict(), "optimizer_scalars": opt_scalars, **extra}
    (tmp / "state.json").write_text(json.dumps(meta, default=_json_default), encoding="utf-8")
    if directory.exists():
        old = directory.with_name(directory.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(directory, old)
        os.replace(tmp, directory)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, directory)


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def load_checkpoint(directory: Path, model, optimizer, scheduler) -> dict[str, Any]:
    """Restore weights, optimizer, scheduler and RNG; returns the JSON state (``step`` and extras)."""
    weights = load_file(str(directory / "trainable.safetensors"))
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in weights.items():
            params[name].copy_(tensor)
    opt_tensors = load_file(str(directory / "optimizer.safetensors"))
    meta = json.loads((directory / "state.json").read_text(encoding="utf-8"))
    for name, scalars in meta.get("optimizer_scalars", {}).items():
        p = params[name]
        state = optimizer.state[p]
        for key, value in scalars.items():
            state[key] = torch.tensor(value)
    for key, tensor in opt_tensors.items():
        if key == "_empty":
            continue
        name, field = key.split("::")
        optimizer.state[params[name]][field] = tensor
    scheduler.load_state_dict(meta["scheduler"])
    # load_state_dict restores the schedule's position but not the learning rates it last set
    for group, lr in zip(optimizer.param_groups, scheduler.get_last_lr(), strict=True):
        group["lr"] = lr
    torch.set_rng_state(load_file(str(directory / "rng.safetensors"))["torch_rng"])
    return meta
