"""Where a tenant's models come from: the shipped default model, the base encoder, model
directories under ``<home>/models/<tenant>/<version>``, and how a loaded model is derived for
another taxonomy. :class:`ModelSources` holds these parts, so tests and deployments can swap them;
:mod:`service.tenant_models` and training runs are given them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlp.errors import ModelError
from service.batching import ClassifierLike
from service.derived_models import Derive
from service.settings import Settings


@dataclass(frozen=True, kw_only=True)
class ModelSources:
    """Where tenant models come from and go: the parts training and serving are given.

    ``default_dir`` and ``base_dir`` are called when needed (building the base encoder takes
    a while the first time); ``load`` turns a model directory into a classifier; ``derive(classifier,
    taxonomy, version)`` makes a classifier for another taxonomy from a loaded one (``None``: never,
    every tenant is served its model's own taxonomy).
    """

    models_root: Path
    default_dir: Callable[[], Path]
    base_dir: Callable[[], Path]
    load: Callable[[Path], ClassifierLike]
    derive: Derive | None = None

    def model_dir(self, tenant_id: str, version: str) -> Path:
        """``<models_root>/<tenant>/<version>``."""
        return self.models_root / tenant_id / version


def default_sources(settings: Settings) -> ModelSources:
    """The real ones: models under ``settings.home / "models"``, the shipped default model, the
    base encoder built under ``settings.home``."""

    def default_dir() -> Path:
        from service.models import resolve_model_dir

        return resolve_model_dir(settings)

    def base_dir() -> Path:
        from models.encoder import ensure_base_encoder

        return Path(ensure_base_encoder(settings.home))

    def load(model_dir: Path) -> ClassifierLike:
        from service.models import load_classifier

        return load_classifier(settings, model_dir)

    def derive(classifier: Any, taxonomy: Any, version: str) -> ClassifierLike:
        return classifier.derive(taxonomy, base_dir=base_dir(), version=version)

    return ModelSources(
        models_root=settings.home / "models",
        default_dir=default_dir,
        base_dir=base_dir,
        load=load,
        derive=derive,
    )


def model_version_of(model_dir: Path) -> str:
    """The ``version`` in a model directory's ``config.json``."""
    try:
        return str(json.loads((Path(model_dir) / "config.json").read_text("utf-8"))["version"])
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"Cannot read the version of the model at {model_dir}: {exc}") from exc


def get_model_sources(state: Any) -> ModelSources:
    """``state.model_sources`` if set, else :func:`default_sources` of ``state.settings``."""
    sources = getattr(state, "model_sources", None)
    if sources is None:
        sources = default_sources(state.settings)
        state.model_sources = sources
    return sources
