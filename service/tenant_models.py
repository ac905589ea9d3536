"""Which model classifies a tenant's verbatims, and switching it without a restart.

Every tenant starts on the default model (the micro-batcher's classifier). Once a tenant promotes
a version of its own (:mod:`service.registry`), :class:`TenantModels` routes its requests to that
model, loaded from ``<home>/models/<tenant>/<version>`` and kept in a small LRU of loaded models.

Switching is atomic and never fails a request:

- a promotion (or roll-back) first *loads* the new model, and only then commits the new pointer
  and swaps it in memory (one dictionary assignment under a lock);
- a request picks its classifier once, when it arrives, and the micro-batcher runs each of its
  items on that classifier, so requests in flight finish on the old model while those that arrive
  after the swap use the new one; an evicted model stays alive as long as a request holds it.

Each server re-reads a tenant's pointer from the database at most every ``refresh_s`` seconds (a
version promoted through another server is picked up within that time); the server that promotes
switches at once. ``revision`` (bumped by every change) keeps a slow read from undoing a newer swap.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from nlp.errors import ModelError, UnavailableError
from service.batching import ClassifierLike
from service.settings import Settings

log = logging.getLogger("verbatim.service")


@dataclass(frozen=True, kw_only=True)
class ModelSources:
    """Where tenant models come from and go: the parts training and serving are given.

    ``default_dir`` and ``base_dir`` are called when needed (building the base encoder takes
    a while the first time); ``load`` turns a model directory into a classifier.
    """

    models_root: Path
    default_dir: Callable[[], Path]
    base_dir: Callable[[], Path]
    load: Callable[[Path], ClassifierLike]

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

    return ModelSources(
        models_root=settings.home / "models", default_dir=default_dir, base_dir=base_dir, load=load
    )


def model_version_of(model_dir: Path) -> str:
    """The ``version`` in a model directory's ``config.json``."""
    try:
        return str(json.loads((Path(model_dir) / "config.json").read_text("utf-8"))["version"])
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"Cannot read the version of the model at {model_dir}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class _Pointer:
    version: str | None  # None: the default model
    model_dir: str | None
    revision: int
    read_at: float


class TenantModels:
    """Per-tenant classifier routing; see the module docstring."""

    def __init__(
        self,
        *,
        default: Callable[[], ClassifierLike | None],
        session_factory: sessionmaker[Session],
        sources: ModelSources,
        capacity: int = 3,
        refresh_s: float = 2.0,
    ) -> None:
        self._default = default
        self.session_factory = session_factory
        self.sources = sources
        self.capacity = capacity
        self.refresh_s = refresh_s
        self._pointers: dict[str, _Pointer] = {}
        self._loaded: OrderedDict[tuple[str, str], ClassifierLike] = OrderedDict()
        self._lock = threading.Lock()  # pointers and the LRU
        self._load_lock = threading.Lock()  # one model load at a time

    # reading ------------------------------------------------------------------------------------
    def default(self) -> ClassifierLike:
        classifier = self._default()
        if classifier is None:
            raise UnavailableError(
                "The model is still loading; retry shortly (GET /readyz says when it is ready).",
                retry_after=5,
            )
        return classifier

    def serving(self, tenant_id: str) -> str | None:
        """The version the tenant's new requests use (``None``: the default model)."""
        return self._pointer(tenant_id).version

    def classifier(self, tenant_id: str) -> ClassifierLike:
        """The tenant's classifier now (blocking: may read the database and load a model)."""
        pointer = self._pointer(tenant_id)
        if pointer.version is None or pointer.model_dir is None:
            return self.default()
        return self._get_or_load(tenant_id, pointer.version, Path(pointer.model_dir))

    async def classifier_async(self, tenant_id: str) -> ClassifierLike:
        """:meth:`classifier` for the event loop: no thread hop when the answer is in memory."""
        hit = self._cached(tenant_id)
        if hit is not None:
            return hit
        return await anyio.to_thread.run_sync(self.classifier, tenant_id)

    def _cached(self, tenant_id: str) -> ClassifierLike | None:
        with self._lock:
            pointer = self._pointers.get(tenant_id)
            if pointer is None or time.monotonic() - pointer.read_at > self.refresh_s:
                return None
            if pointer.version is None:
                return self._default()
            classifier = self._loaded.get((tenant_id, pointer.version))
            if classifier is not None:
                self._loaded.move_to_end((tenant_id, pointer.version))
            return classifier

    def _pointer(self, tenant_id: str) -> _Pointer:
        with self._lock:
            pointer = self._pointers.get(tenant_id)
        if pointer is not None and time.monotonic() - pointer.read_at <= self.refresh_s:
            return pointer
        fresh = self._read_pointer(tenant_id)
        with self._lock:
            current = self._pointers.get(tenant_id)
            if current is not None and current.revision > fresh.revision:  # a newer swap won
                current = _Pointer(
                    current.version, current.model_dir, current.revision, fresh.read_at
                )
                self._pointers[tenant_id] = current
                return current
            self._pointers[tenant_id] = fresh
            return fresh

    def _read_pointer(self, tenant_id: str) -> _Pointer:
        from service.storage.models import ModelVersion, TenantModel

        with self.session_factory() as session:
            row = session.execute(
                select(TenantModel.promoted_version, TenantModel.revision, ModelVersion.model_dir)
                .outerjoin(
                    ModelVersion,
                    (ModelVersion.tenant_id == TenantModel.tenant_id)
                    & (ModelVersion.version == TenantModel.promoted_version),
                )
                .where(TenantModel.tenant_id == tenant_id)
            ).one_or_none()
        if row is None:
            return _Pointer(None, None, 0, time.monotonic())
        return _Pointer(row.promoted_version, row.model_dir, row.revision, time.monotonic())

    # loading ------------------------------------------------------------------------------------
    def _get_or_load(self, tenant_id: str, version: str, model_dir: Path) -> ClassifierLike:
        key = (tenant_id, version)
        with self._lock:
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]
        with self._load_lock:
            with self._lock:  # loaded by another thread while this one waited
                if key in self._loaded:
                    return self._loaded[key]
            if not (model_dir / "config.json").is_file():
                raise ModelError(
                    f"The model directory of version {version!r} ({model_dir}) is missing; "
                    "roll back (POST /v1/models/rollback) or promote another version.",
                    details={"version": version},
                )
            started = time.perf_counter()
            classifier = self.sources.load(model_dir)
            log.info(
                "tenant %s: model %s loaded in %.1f s",
                tenant_id,
                classifier.model_id,
                time.perf_counter() - started,
            )
            with self._lock:
                self._loaded[key] = classifier
                while len(self._loaded) > self.capacity:
                    evicted, _ = self._loaded.popitem(last=False)
                    log.info("tenant %s: model %s unloaded (LRU)", *evicted)
            return classifier

    def preload(
        self, tenant_id: str, version: str | None, model_dir: Path | str | None
    ) -> ClassifierLike:
        """Load (or find) the model a switch is about to use, before the switch (blocking)."""
        if version is None or model_dir is None:
            return self.default()
        return self._get_or_load(tenant_id, version, Path(model_dir))

    # switching ----------------------------------------------------------------------------------
    def switch(
        self, tenant_id: str, version: str | None, model_dir: Path | str | None, revision: int
    ) -> None:
        """New requests of ``tenant_id`` use ``version`` from now on (call :meth:`preload` first)."""
        pointer = _Pointer(
            version, str(model_dir) if model_dir else None, revision, time.monotonic()
        )
        with self._lock:
            current = self._pointers.get(tenant_id)
            if current is None or current.revision <= revision:
                self._pointers[tenant_id] = pointer
        log.info(
            "tenant %s now served by %s (revision %d)",
            tenant_id,
            version or "the default model",
            revision,
        )

    def loaded(self) -> list[dict[str, Any]]:
        """The tenant models in memory, least recently used first."""
        with self._lock:
            return [
                {"tenant_id": t, "version": v, "model": c.model_id}
                for (t, v), c in self._loaded.items()
            ]


def get_tenant_models(state: Any) -> TenantModels:
    """The app's :class:`TenantModels`, made on first use from ``state`` (``settings``,
    ``session_factory``, ``batcher`` and, if a test or deployment set it, ``model_sources``)."""
    existing = getattr(state, "tenant_models", None)
    if existing is not None:
        return existing
    with _STATE_LOCK:
        existing = getattr(state, "tenant_models", None)
        if existing is None:
            batcher = state.batcher
            existing = TenantModels(
                default=lambda: batcher.classifier,
                session_factory=state.session_factory,
                sources=get_model_sources(state),
            )
            state.tenant_models = existing
    return existing


def get_model_sources(state: Any) -> ModelSources:
    """``state.model_sources`` if set, else :func:`default_sources` of ``state.settings``."""
    sources = getattr(state, "model_sources", None)
    if sources is None:
        sources = default_sources(state.settings)
        state.model_sources = sources
    return sources


_STATE_LOCK = threading.Lock()
