"""Building a tenant's *derived* classifier: its served model for the tenant's current taxonomy.

:class:`DerivedBuilds` runs each build once however many callers want it (they share one
:class:`~concurrent.futures.Future`), one build at a time (each loads the base encoder for a
moment to embed the new nodes' prototypes), and remembers a failed build for ``retry_s`` seconds
so a broken one is not retried on every request. :mod:`service.tenant_models` decides when a
derived classifier is needed and keeps the built ones in its LRU.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from service.batching import ClassifierLike
from service.taxonomy_current import CurrentTaxonomy, load_current

log = logging.getLogger("verbatim.service")

Derive = Callable[[ClassifierLike, Any, str], ClassifierLike]
"""``derive(classifier, taxonomy, version)``: ``classifier`` for ``taxonomy``, named ``version``."""


def derived_version(version: str, content_hash: str) -> str:
    """The version of ``version``'s model derived for the taxonomy with ``content_hash``:
    ``0.1.0+tax.1a2b3c4d``, or ``0.1.0+ft.2.tax.1a2b3c4d`` (semver build metadata either way)."""
    return f"{version}{'.' if '+' in version else '+'}tax.{content_hash[:8]}"


class DerivedBuilds:
    """Single-flight builds of derived classifiers; see the module docstring."""

    def __init__(
        self, *, derive: Derive, session_factory: sessionmaker[Session], retry_s: float = 60.0
    ) -> None:
        self.derive = derive
        self.session_factory = session_factory
        self.retry_s = retry_s
        self._builds: dict[Hashable, Future[ClassifierLike]] = {}
        self._failed: dict[Hashable, float] = {}
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()  # one build at a time

    def pending(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._builds

    def claim(self, key: Hashable) -> tuple[Future[ClassifierLike] | None, bool]:
        """``(future, mine)``: the build of ``key`` under way, or a new one that the caller must
        :meth:`run` (``mine``); ``(None, False)`` while a failed build of ``key`` waits to be
        retried."""
        with self._lock:
            failed_at = self._failed.get(key)
            if failed_at is not None and time.monotonic() - failed_at < self.retry_s:
                return None, False
            future = self._builds.get(key)
            if future is not None:
                return future, False
            future = self._builds[key] = Future()
            return future, True

    def run(
        self,
        key: Hashable,
        base: ClassifierLike,
        current: CurrentTaxonomy,
        future: Future[ClassifierLike],
        *,
        done: Callable[[Hashable, ClassifierLike], None],
    ) -> None:
        """Build ``base`` for ``current`` and settle ``future``. ``done(key, classifier)`` is
        called before the build stops being pending, so a caller never sees neither."""
        try:
            with self.session_factory() as session:
                taxonomy = load_current(session, current)
            version = derived_version(str(base.config.version), current.content_hash)  # type: ignore[attr-defined]
            with self._build_lock:
                started = time.perf_counter()
                derived = self.derive(base, taxonomy, version)
            log.info(
                "%s built for taxonomy %s v%d in %.1f s",
                derived.model_id,
                current.key,
                current.version,
                time.perf_counter() - started,
            )
            done(key, derived)
        except Exception as exc:  # noqa: BLE001 - logged, and raised to whoever waits for it
            log.exception(
                "no model for taxonomy %s v%d (%s); %s serves it as it is meanwhile",
                current.key,
                current.version,
                exc,
                base.model_id,
            )
            with self._lock:
                self._failed[key] = time.monotonic()
                self._builds.pop(key, None)
            future.set_exception(exc)
            return
        with self._lock:
            self._failed.pop(key, None)
            self._builds.pop(key, None)
        future.set_result(derived)

    def run_in_background(
        self,
        key: Hashable,
        base: ClassifierLike,
        current: CurrentTaxonomy,
        future: Future[ClassifierLike],
        *,
        done: Callable[[Hashable, ClassifierLike], None],
    ) -> None:
        """:meth:`run` in a daemon thread."""
        threading.Thread(
            target=self.run,
            args=(key, base, current, future),
            kwargs={"done": done},
            name="verbatim-taxonomy-model",
            daemon=True,
        ).start()
