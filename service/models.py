"""Which model the service and the command line use, and loading it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nlp.errors import ModelError
from service.settings import Settings


def resolve_model_dir(settings: Settings, override: Path | None = None) -> Path:
    from models.classifier import default_model_dir

    path = Path(override or settings.model or default_model_dir())
    if not (path / "config.json").is_file():
        raise ModelError(
            f"No model at {path}. Train one with `verbatim train --config training/configs/default.yaml --out DIR` "
            "and point VERBATIM_MODEL (or --model) at DIR."
        )
    return path


def load_classifier(settings: Settings, override: Path | None = None, *, precision: str | None = None, **kwargs: Any):
    """The classifier with the base encoder built under VERBATIM_HOME (built now if missing).

    ``precision`` (``auto``, ``fp32``, ``bf16`` or ``int8``; default: ``settings.precision``, i.e.
    ``VERBATIM_PRECISION``) and ``kwargs`` (e.g. ``batch_size``) go to ``Classifier.load``.
    """
    from models.classifier.predict import Classifier
    from models.encoder import ensure_base_encoder

    model_dir = resolve_model_dir(settings, override)
    base = ensure_base_encoder(settings.home)
    return Classifier.load(model_dir, base_dir=base, precision=precision or settings.precision, **kwargs)
