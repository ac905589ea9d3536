"""Micro-batching: concurrent callers' items share model calls.

Requests put their items on one queue and await them. A single worker takes up to ``max_batch``
items, waiting at most ``max_wait`` seconds after the oldest waiting item arrived to fill a batch,
and runs ``classifier.classify`` on it in a dedicated model thread, one batch at a time (the model
is CPU-bound; running two at once would only make both slower). While the model works on one batch
the next one gathers, so under load every call is a full batch and throughput approaches the
model's batch throughput. A request larger than a batch is split; its results come back in order.

Isolation: if a model call fails, each request in the batch is retried alone, so one caller's
pathological input fails only that caller's request.

Several models: a request may name the classifier its items go to (a tenant's own model, see
:mod:`service.tenant_models`); a batch holds the items of one classifier only, taken in arrival
order, and all models share the one model thread.

Shutdown: :meth:`MicroBatcher.stop` refuses new work, finishes what is queued and in flight, and
then stops the model thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client import Histogram

from nlp.errors import UnavailableError, VerbatimError
from service.observability import Metrics

log = logging.getLogger("verbatim.service")

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ClassifierLike(Protocol):
    """What the service needs of a classifier (``models.classifier.predict.Classifier``, or a fake)."""

    model_id: str

    def classify(self, items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]: ...


@dataclass(eq=False)
class _Request:
    items: list[dict[str, Any]]
    future: asyncio.Future[list[dict[str, Any]]]
    classifier: ClassifierLike  # chosen when the request arrived: a model switch never splits it
    results: list[dict[str, Any] | None] = field(init=False)
    remaining: int = field(init=False)

    def __post_init__(self) -> None:
        self.results = [None] * len(self.items)
        self.remaining = len(self.items)


@dataclass(frozen=True, slots=True)
class _Entry:
    request: _Request
    index: int
    enqueued: float


async def _in_daemon_thread(fn: Callable[[], Any]) -> Any:
    """``fn()`` in a daemon thread: a server stopped while the model loads exits at once
    instead of waiting for the load to finish (as a pooled worker thread would)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(value: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def target() -> None:
        value, error = None, None
        try:
            value = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            error = exc
        try:
            loop.call_soon_threadsafe(settle, value, error)
        except RuntimeError:  # the loop has closed: nobody waits any more
            pass

    threading.Thread(target=target, name="verbatim-model-load", daemon=True).start()
    return await future


class MicroBatcher:
    """Batches items from concurrent requests into model calls; see the module docstring."""

    def __init__(
        self,
        *,
        max_batch: int = 64,
        max_wait: float = 0.005,
        max_queue: int = 4096,
        metrics: Metrics | None = None,
        source: str = "api",
    ) -> None:
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.max_queue = max_queue
        self.metrics = metrics
        self.source = source
        self.classifier: ClassifierLike | None = None
        self.failure: str | None = None  # why the classifier could not be loaded
        self._pending: deque[_Entry] = deque()
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._loading: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._accepting = False
        self._batch_sizes = (
            Histogram(
                "verbatim_classify_batch_size",
                "Items per model call",
                buckets=BATCH_BUCKETS,
                registry=metrics.registry,
            )
            if metrics is not None
            else None
        )

    # life cycle -----------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self.classifier is not None and self._accepting

    @property
    def model_id(self) -> str:
        if self.classifier is None:
            raise UnavailableError("The model is not loaded.", retry_after=5)
        return self.classifier.model_id

    @property
    def queued(self) -> int:
        """Items waiting for the model."""
        return len(self._pending)

    async def start(
        self,
        factory: Callable[[], ClassifierLike] | None = None,
        status: MutableMapping[str, str] | None = None,
    ) -> None:
        """Start the worker on the running event loop and, given a ``factory``, load the model.

        Loading runs in a worker thread and does not hold up the caller (the app serves
        ``/healthz`` meanwhile); ``status["model"]`` says ``loading``, ``ready`` or ``failed: …``.
        """
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="verbatim-model")
        self._accepting = True
        self._task = asyncio.create_task(self._run(), name="verbatim-micro-batcher")
        if factory is not None:
            status = status if status is not None else {}
            status["model"] = "loading"
            self._loading = asyncio.create_task(self.load(factory, status), name="verbatim-model-load")

    async def load(self, factory: Callable[[], ClassifierLike], status: MutableMapping[str, str]) -> None:
        """Build the classifier in a worker thread; ``status["model"]`` follows (see :meth:`start`)."""
        status["model"] = "loading"
        started = time.perf_counter()
        try:
            classifier = await _in_daemon_thread(factory)
        except Exception as exc:  # noqa: BLE001 - any failure to load is reported on /readyz
            reason = exc.message if isinstance(exc, VerbatimError) else f"{type(exc).__name__}: {exc}"
            self.failure = reason[:500]
            log.error("the model failed to load: %s", self.failure, exc_info=exc)
            status["model"] = f"failed: {self.failure}"
            return
        self.classifier = classifier
        if self.metrics is not None:
            self.metrics.model_info.labels(classifier.model_id).set(1)
        log.info("model %s loaded in %.1f s", classifier.model_id, time.perf_counter() - started)
        status["model"] = "ready"

    async def stop(self, timeout: float = 60.0) -> None:
        """Refuse new work, finish the queued and in-flight batches, stop the model thread."""
        self._accepting = False
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()  # the loading thread is abandoned; the process is stopping
        if self._wakeup is not None:
            self._wakeup.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                log.error("the model did not finish the queued work within %.0f s", timeout)
                self._task.cancel()
                self._fail_pending(UnavailableError("The service shut down before this request was classified."))
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._task = None

    # callers --------------------------------------------------------------------------------
    async def classify(
        self, items: Sequence[dict[str, Any]], classifier: ClassifierLike | None = None
    ) -> list[dict[str, Any]]:
        """Classify ``items`` (dicts with ``id``, ``text`` and optional ``lang``), results in order.

        ``classifier`` (default: the loaded default model) classifies every item of the request.
        Raises :class:`UnavailableError` while the model loads or failed to, when the queue is full,
        and after :meth:`stop`.
        """
        self.check_available(len(items))
        if not items:
            return []
        assert self._loop is not None and self._wakeup is not None
        request = _Request(
            items=list(items),
            future=self._loop.create_future(),
            classifier=classifier if classifier is not None else self.classifier,
        )
        now = time.monotonic()
        self._pending.extend(_Entry(request, i, now) for i in range(len(items)))
        self._set_depth()
        self._wakeup.set()
        return await request.future

    def classify_blocking(
        self,
        items: Sequence[dict[str, Any]],
        timeout: float | None = None,
        *,
        classifier: ClassifierLike | None = None,
    ) -> list[dict[str, Any]]:
        """:meth:`classify` from a thread that is not the event loop's (a background job)."""
        if self._loop is None:
            raise UnavailableError("The classifier service has not started.")
        if self._loop_thread == threading.get_ident():
            raise RuntimeError("classify_blocking() was called on the event loop; await classify().")
        return asyncio.run_coroutine_threadsafe(self.classify(items, classifier), self._loop).result(timeout)

    def check_available(self, n: int) -> None:
        """Raise :class:`UnavailableError` unless ``n`` more items can be taken now."""
        if not self._accepting:
            raise UnavailableError("The service is shutting down; retry on another instance or shortly.", retry_after=5)
        if self.classifier is None:
            if self.failure is not None:
                raise UnavailableError(f"The model failed to load: {self.failure}")
            raise UnavailableError("The model is still loading; retry shortly (GET /readyz says when it is ready).", retry_after=5)
        if self.queued + n > self.max_queue:
            raise UnavailableError(
                f"The classifier is busy ({self.queued} items waiting); retry shortly.", retry_after=1
            )

    # the worker -----------------------------------------------------------------------------
    async def _run(self) -> None:
        assert self._wakeup is not None
        try:
            while True:
                if not self._pending:
                    if not self._accepting:
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                await self._fill()
                batch = self._take()
                if batch:
                    await self._execute(batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must not leave callers waiting forever
            log.exception("the micro-batcher stopped")
            self._accepting = False
            self._fail_pending(exc)

    async def _fill(self) -> None:
        """Wait until a batch is full or the oldest item has waited ``max_wait``."""
        assert self._wakeup is not None
        deadline = self._pending[0].enqueued + self.max_wait
        while len(self._pending) < self.max_batch and self._accepting:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return

    def _take(self) -> list[_Entry]:
        """Up to ``max_batch`` waiting items of the oldest item's classifier, in arrival order;
        items of other classifiers keep their places."""
        batch: list[_Entry] = []
        others: list[_Entry] = []
        model: ClassifierLike | None = None
        while self._pending and len(batch) < self.max_batch:
            entry = self._pending.popleft()
            if entry.request.future.done():  # skip requests whose caller went away
                continue
            if model is None:
                model = entry.request.classifier
            if entry.request.classifier is model:
                batch.append(entry)
            else:
                others.append(entry)
        self._pending.extendleft(reversed(others))
        self._set_depth()
        return batch

    async def _execute(self, batch: list[_Entry]) -> None:
        assert self._loop is not None
        classifier = batch[0].request.classifier
        items = [e.request.items[e.index] for e in batch]
        if self._batch_sizes is not None:
            self._batch_sizes.observe(len(items))
        try:
            results = await self._loop.run_in_executor(self._executor, classifier.classify, items)
            if len(results) != len(items):
                raise RuntimeError(f"the classifier returned {len(results)} results for {len(items)} items")
        except Exception as exc:  # noqa: BLE001 - handed to the callers, not swallowed
            requests = list(dict.fromkeys(e.request for e in batch))
            if len(requests) > 1:  # retry each request alone: only the culprit fails
                for request in requests:
                    await self._execute([e for e in batch if e.request is request])
                return
            # the type and frames only: an exception's message may quote the verbatim
            frames = "".join(traceback.format_list(traceback.extract_tb(exc.__traceback__)))
            log.error("a model call on %d item(s) failed: %s\n%s", len(items), type(exc).__name__, frames)
            if not requests[0].future.done():
                requests[0].future.set_exception(exc)
            return
        classified = 0
        for entry, result in zip(batch, results, strict=True):
            request = entry.request
            request.results[entry.index] = result
            request.remaining -= 1
            classified += "error" not in result
            if request.remaining == 0 and not request.future.done():
                request.future.set_result(request.results)  # type: ignore[arg-type]
        if self.metrics is not None and classified:
            self.metrics.records_classified.labels(self.source).inc(classified)

    def _fail_pending(self, exc: BaseException) -> None:
        while self._pending:
            future = self._pending.popleft().request.future
            if not future.done():
                future.set_exception(exc)
        self._set_depth()

    def _set_depth(self) -> None:
        if self.metrics is not None:
            self.metrics.queue_depth.set(len(self._pending))
