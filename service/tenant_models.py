"""Which model classifies a tenant's verbatims, and switching it without a restart.

Every tenant starts on the default model (the micro-batcher's classifier). Once a tenant promotes
a version of its own (:mod:`service.registry`), :class:`TenantModels` routes its requests to that
model, loaded from ``<home>/models/<tenant>/<version>`` and kept in a small LRU of loaded models
(where models come from is passed in: :class:`service.model_sources.ModelSources`).

Switching is atomic and never fails a request:

- a promotion (or roll-back) first *loads* the new model, and only then commits the new pointer
  and swaps it in memory (one dictionary assignment under a lock);
- a request picks its classifier once, when it arrives, and the micro-batcher runs each of its
  items on that classifier, so requests in flight finish on the old model while those that arrive
  after the swap use the new one; an evicted model stays alive as long as a request holds it.

Each server re-reads a tenant's pointer from the database at most every ``refresh_s`` seconds (a
version promoted through another server is picked up within that time); the server that promotes
switches at once. ``revision`` (bumped by every change) keeps a slow read from undoing a newer swap.

A tenant's taxonomy edits apply at once, before any training (issue 6). When the tenant's current
taxonomy (:mod:`service.taxonomy_current`, re-read at most every ``refresh_s`` seconds like the
pointer) has other nodes than the model it is served was trained with, the tenant gets a *derived*
classifier: the served model for that taxonomy (:meth:`models.classifier.predict.Classifier.derive`),
built in memory without training, sharing the served model's encoder. New nodes work zero-shot
from their text and are marked ``zero_shot`` in results; retired ones are gone; results name the
version ``<served version>+tax.<hash8>`` (``.tax.<hash8>`` after a version that already has a
``+``). Derived classifiers sit in the same LRU, keyed by (tenant, served version, taxonomy hash).
A build never holds up or fails a request: while it runs the tenant keeps the classifier it had
(only a tenant with none yet in this process waits for it), concurrent callers share one build,
and a build that fails leaves the tenant on the served model (retried after ``retry_s``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio.to_thread
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from nlp.errors import ModelError, UnavailableError
from service.batching import ClassifierLike
from service.derived_models import DerivedBuilds
from service.model_sources import ModelSources, default_sources, get_model_sources, model_version_of
from service.taxonomy_current import CurrentTaxonomy, current_taxonomy

__all__ = [  # the sources are in service.model_sources; named here for existing imports
    "ModelSources",
    "TenantModels",
    "default_sources",
    "get_model_sources",
    "get_tenant_models",
    "model_version_of",
]

log = logging.getLogger("verbatim.service")


@dataclass(frozen=True, slots=True)
class _Pointer:
    version: str | None  # None: the default model
    model_dir: str | None
    revision: int
    read_at: float


@dataclass(frozen=True, slots=True)
class _TaxonomyCheck:
    current: CurrentTaxonomy | None  # None: the tenant has no taxonomy of its own
    read_at: float


@dataclass(frozen=True, slots=True)
class _Choice:
    """What a tenant was given, and what that rested on: valid for the fast path while those
    are still the ones in memory and ``refresh_s`` has not passed since they were read."""

    classifier: ClassifierLike
    pointer: _Pointer
    check: _TaxonomyCheck | None  # None: the model serves its own taxonomy whatever the tenant's
    final: bool = True  # False: kept while a derived classifier builds

    def valid(self, pointer: _Pointer | None, check: _TaxonomyCheck | None, limit: float) -> bool:
        if not self.final or pointer is not self.pointer:
            return False
        if self.check is not None and check is not self.check:
            return False
        read_at = min(self.pointer.read_at, self.check.read_at if self.check else math.inf)
        return time.monotonic() - read_at <= limit


_Key = tuple[str, str | None, str | None]  # tenant, served version (None: default), taxonomy hash


class TenantModels:
    """Per-tenant classifier routing; see the module docstring."""

    def __init__(
        self,
        *,
        default: Callable[[], ClassifierLike | None],
        session_factory: sessionmaker[Session],
        sources: ModelSources,
        capacity: int = 3,
        derived_capacity: int = 16,
        refresh_s: float = 2.0,
        retry_s: float = 60.0,
    ) -> None:
        self._default = default
        self.session_factory = session_factory
        self.sources = sources
        self.capacity = capacity  # loaded models (each holds an encoder)
        self.derived_capacity = derived_capacity  # derived ones (heads and prototypes only)
        self.refresh_s = refresh_s
        self._builds = (
            DerivedBuilds(derive=sources.derive, session_factory=session_factory, retry_s=retry_s)
            if sources.derive is not None
            else None
        )
        self._pointers: dict[str, _Pointer] = {}
        self._taxonomies: dict[str, _TaxonomyCheck] = {}
        self._choices: dict[str, _Choice] = {}  # what each tenant was last given, and when
        self._loaded: OrderedDict[_Key, ClassifierLike] = OrderedDict()
        self._lock = threading.Lock()  # pointers, taxonomies, choices and the LRU
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
        """The registry version the tenant's new requests use (``None``: the default model)."""
        return self._pointer(tenant_id).version

    def classifier(self, tenant_id: str) -> ClassifierLike:
        """The tenant's classifier now (blocking: may read the database, load a model, or wait
        for the first build of a derived one)."""
        pointer = self._pointer(tenant_id)
        base = self._base(tenant_id, pointer.version, pointer.model_dir)
        chosen, check, final = self._for_taxonomy(tenant_id, pointer.version, base, wait=False)
        with self._lock:
            self._choices[tenant_id] = _Choice(chosen, pointer, check, final)
        return chosen

    async def classifier_async(self, tenant_id: str) -> ClassifierLike:
        """:meth:`classifier` for the event loop: no thread hop when the answer is in memory."""
        with self._lock:
            choice = self._choices.get(tenant_id)
            if choice is not None and choice.valid(
                self._pointers.get(tenant_id), self._taxonomies.get(tenant_id), self.refresh_s
            ):
                return choice.classifier
        return await anyio.to_thread.run_sync(self.classifier, tenant_id)

    def forget_taxonomy(self, tenant_id: str) -> None:
        """Look at the tenant's current taxonomy again on its next request (call after an edit
        for this server to apply it at once rather than within ``refresh_s``)."""
        with self._lock:
            self._taxonomies.pop(tenant_id, None)
            self._expire_choice(tenant_id)

    def _expire_choice(self, tenant_id: str) -> None:
        """The tenant's next request decides again (under ``_lock``); what it had stays what it
        keeps while a derived classifier builds."""
        choice = self._choices.get(tenant_id)
        if choice is not None:
            self._choices[tenant_id] = replace(choice, final=False)

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

    # the tenant's taxonomy ----------------------------------------------------------------------
    def _taxonomy(self, tenant_id: str, *, fresh: bool = False) -> _TaxonomyCheck:
        with self._lock:
            check = self._taxonomies.get(tenant_id)
        if not fresh and check is not None and time.monotonic() - check.read_at <= self.refresh_s:
            return check
        with self.session_factory() as session:
            check = _TaxonomyCheck(current_taxonomy(session, tenant_id), time.monotonic())
        with self._lock:
            self._taxonomies[tenant_id] = check
        return check

    def _for_taxonomy(
        self,
        tenant_id: str,
        version: str | None,
        base: ClassifierLike,
        *,
        wait: bool,
        fresh: bool = False,
    ) -> tuple[ClassifierLike, _TaxonomyCheck | None, bool]:
        """``base``, or its derived classifier for the tenant's current taxonomy; the taxonomy
        check it rests on; and whether it is final. Without ``wait``, a tenant already given a
        classifier keeps it (not final) while the derived one builds in the background."""
        taxonomy_hash = getattr(getattr(base, "config", None), "taxonomy_hash", None)
        if self._builds is None or not isinstance(taxonomy_hash, str):
            return base, None, True
        check = self._taxonomy(tenant_id, fresh=fresh)
        current = check.current
        if current is None or current.content_hash == taxonomy_hash:
            return base, check, True
        key: _Key = (tenant_id, version, current.content_hash)
        with self._lock:
            hit = self._touch(key)
            previous = self._choices.get(tenant_id)
        if hit is not None:
            return hit, check, True
        future, mine = self._builds.claim(key)
        if future is None:  # failed a moment ago (logged): the served model as it is
            return base, check, True
        if not wait and previous is not None:  # keep what it had until the build is done
            if mine:
                self._builds.run_in_background(key, base, current, future, done=self._built)
            return previous.classifier, check, False  # not for the fast path: asked again
        if mine:
            self._builds.run(key, base, current, future, done=self._built)
        try:
            return future.result(), check, True
        except Exception:  # noqa: BLE001 - logged by the build; the served model meanwhile
            return base, check, True

    def _built(self, key: Hashable, classifier: ClassifierLike) -> None:
        """A derived classifier is ready: into the LRU, and the tenant's next request takes it."""
        with self._lock:
            self._loaded[key] = classifier  # type: ignore[index]
            self._evict()
            self._expire_choice(key[0])  # type: ignore[index]

    # loading ------------------------------------------------------------------------------------
    def _base(
        self, tenant_id: str, version: str | None, model_dir: str | Path | None
    ) -> ClassifierLike:
        """The model the registry points at (the default model for ``None``)."""
        if version is None or model_dir is None:
            return self.default()
        return self._get_or_load(tenant_id, version, Path(model_dir))

    def _touch(self, key: _Key) -> ClassifierLike | None:
        """The LRU entry ``key``, marked recently used (under ``_lock``)."""
        found = self._loaded.get(key)
        if found is not None:
            self._loaded.move_to_end(key)
        return found

    def _get_or_load(self, tenant_id: str, version: str, model_dir: Path) -> ClassifierLike:
        key: _Key = (tenant_id, version, None)
        with self._lock:
            hit = self._touch(key)
        if hit is not None:
            return hit
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
                self._evict()
            return classifier

    def _evict(self) -> None:
        """Drop the least recently used entries over capacity (under ``_lock``); a request that
        holds one keeps it alive until it is done."""
        for derived, limit in ((False, self.capacity), (True, self.derived_capacity)):
            keys = [k for k in self._loaded if (k[2] is not None) is derived]
            for key in keys[: max(0, len(keys) - limit)]:
                evicted = self._loaded.pop(key)
                log.info("tenant %s: model %s unloaded (LRU)", key[0], evicted.model_id)

    def preload(
        self, tenant_id: str, version: str | None, model_dir: Path | str | None
    ) -> ClassifierLike:
        """Load (or find) what a switch to ``version`` will serve the tenant, before the switch
        (blocking): the model, or the one derived from it for the tenant's current taxonomy."""
        base = self._base(tenant_id, version, model_dir)
        return self._for_taxonomy(tenant_id, version, base, wait=True, fresh=True)[0]

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
                self._choices.pop(tenant_id, None)
        log.info(
            "tenant %s now served by %s (revision %d)",
            tenant_id,
            version or "the default model",
            revision,
        )

    def loaded(self) -> list[dict[str, Any]]:
        """The tenant models in memory, least recently used first (``taxonomy_hash`` set for a
        model derived for a tenant's taxonomy)."""
        with self._lock:
            return [
                {"tenant_id": t, "version": v, "taxonomy_hash": h, "model": c.model_id}
                for (t, v, h), c in self._loaded.items()
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


_STATE_LOCK = threading.Lock()
