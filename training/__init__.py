"""Turning labelled data into model artifacts: ``train(config, output_dir, base_dir=...)``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from training.config import TrainConfig

__all__ = ["TrainConfig", "train"]


def train(config, output_dir, *, base_dir, progress: bool = True):
    """Train or resume a model; see :func:`training.trainer.train`."""
    from training.trainer import train as _train

    return _train(config, output_dir, base_dir=base_dir, progress=progress)


def __getattr__(name: str):
    if name == "TrainConfig":
        from training.config import TrainConfig

        return TrainConfig
    raise AttributeError(name)
