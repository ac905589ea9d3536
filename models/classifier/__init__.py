"""The multi-task CEM classifier: sentiment, topics with polarity and evidence, touchpoints."""

from __future__ import annotations

from pathlib import Path

__all__ = ["default_model_dir"]


def default_model_dir() -> Path:
    """The default model shipped with the repository (its adapters, heads and model card)."""
    return Path(__file__).resolve().parent.parent / "default"
