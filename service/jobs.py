"""Persisted background jobs and the runner that works through them.

A job is a row in ``jobs``; its *handler* (one per ``kind``) does the work in small committed steps
and calls :meth:`JobContext.checkpoint` between them. The :class:`JobRunner` is one worker thread
started in the app's lifespan:

- it claims the oldest ``queued`` job whose handler is ready (a conditional ``UPDATE``, so two
  servers on one database never claim the same job) and runs it;
- a running job's ``heartbeat_at`` is refreshed every few seconds by a ticker thread; a ``running``
  job whose heartbeat is older than ``stale_after_s`` was left by a server that crashed or was
  killed, and is queued again (``attempts`` counts such starts; after ``max_attempts`` it fails
  with that reason). Handlers must therefore be idempotent: the data set import skips record ids
  already stored;
- on shutdown it stops claiming, lets the current step commit, and hands the job back as
  ``queued`` (not counted as an attempt), so the next server resumes it at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from nlp.errors import VerbatimError
from service.storage.base import utcnow
from service.storage.models import Job, JobState

log = logging.getLogger("verbatim.jobs")


@dataclass(frozen=True, kw_only=True)
class JobRunnerConfig:
    """How the runner polls, beats and recovers."""

    poll_interval_s: float = 1.0
    heartbeat_interval_s: float = 5.0
    stale_after_s: float = 20.0
    max_attempts: int = 3
    stop_timeout_s: float = 60.0
    batch_size: int = 64  # records per committed step of the data set import


class JobInterrupted(Exception):
    """Raised by :meth:`JobContext.checkpoint` when the server is shutting down."""


class JobCancelled(Exception):
    """Raised by :meth:`JobContext.checkpoint` when the job was cancelled (e.g. its data set deleted)."""


class JobHandler(Protocol):
    """Runs the jobs of one ``kind``."""

    kind: str

    def ready(self) -> bool:
        """Whether jobs of this kind can start now (e.g. the model is loaded)."""
        ...

    def run(self, ctx: JobContext) -> None:
        """Do the job; commit progress in steps through ``ctx``; raise to fail it."""
        ...

    def on_end(self, session: Session, job: Job) -> None:
        """Called in the transaction that gives ``job`` its final state (to mirror it elsewhere)."""
        ...


class JobContext:
    """What a handler gets: the job's identity and payload, sessions, and progress reporting."""

    def __init__(
        self, job: Job, session_factory: sessionmaker[Session], stop: threading.Event
    ) -> None:
        self.job_id = job.id
        self.tenant_id = job.tenant_id
        self.kind = job.kind
        self.payload: dict[str, Any] = dict(job.payload or {})
        self.attempt = job.attempts
        self.session_factory = session_factory
        self._stop = stop

    def report(self, session: Session, *, progress: float, counts: dict[str, Any]) -> None:
        """Record progress (0..1) and counts in ``session``'s transaction (commit them together)."""
        session.execute(
            update(Job)
            .where(Job.id == self.job_id)
            .values(progress=max(0.0, min(1.0, progress)), counts=counts, heartbeat_at=utcnow())
        )

    def checkpoint(self, session: Session | None = None) -> None:
        """Between steps: raise :class:`JobCancelled` if the job was cancelled, or
        :class:`JobInterrupted` if the server is stopping."""
        if session is None:
            with self.session_factory() as own:
                state = own.scalar(select(Job.state).where(Job.id == self.job_id))
        else:
            state = session.scalar(select(Job.state).where(Job.id == self.job_id))
        if state != JobState.running:
            raise JobCancelled(f"job {self.job_id} is {state or 'gone'}")
        if self._stop.is_set():
            raise JobInterrupted()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()


class JobRunner:
    """One worker thread running persisted jobs; see the module docstring."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        handlers: Mapping[str, JobHandler],
        *,
        config: JobRunnerConfig | None = None,
        on_states: Callable[[dict[str, int]], None] | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.handlers = dict(handlers)
        self.config = config or JobRunnerConfig()
        self.on_states = on_states
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._current: str | None = None
        self._lock = threading.Lock()

    # lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Recover jobs left by a stopped server, then start the worker thread."""
        self.recover()
        self._thread = threading.Thread(target=self._loop, name="verbatim-jobs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop claiming jobs; wait for the current step to commit and the job to be handed back."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.config.stop_timeout_s)
            if self._thread.is_alive():
                log.warning("job runner did not stop within %.0f s", self.config.stop_timeout_s)

    def notify(self) -> None:
        """A job was queued: look now rather than at the next poll."""
        self._wake.set()

    # recovery ----------------------------------------------------------------------------------
    def recover(self) -> int:
        """Queue again (or fail, after ``max_attempts``) running jobs whose heartbeat is stale."""
        cutoff = utcnow() - timedelta(seconds=self.config.stale_after_s)
        changed = 0
        with self.session_factory.begin() as session:
            stale = session.scalars(
                select(Job).where(Job.state == JobState.running, Job.heartbeat_at < cutoff)
            ).all()
            for job in stale:
                if job.id == self._current:
                    continue
                if job.attempts >= self.config.max_attempts:
                    reason = (
                        f"The server stopped or crashed while this job ran, {job.attempts} times; "
                        "it was not retried again. Start the work anew (for a data set: delete it "
                        "and upload the file again)."
                    )
                    if self._finish(session, job, JobState.failed, reason, expect=JobState.running):
                        changed += 1
                else:
                    done = session.execute(
                        update(Job)
                        .where(
                            Job.id == job.id,
                            Job.state == JobState.running,
                            Job.heartbeat_at < cutoff,
                        )
                        .values(state=JobState.queued.value)
                    ).rowcount
                    if done:
                        log.info(
                            "job %s was interrupted (attempt %d); queued to resume",
                            job.id,
                            job.attempts,
                        )
                        changed += 1
        return changed

    # the worker --------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.recover()
                job = self._claim()
                if job is not None:
                    self._run(job)
                    continue
                self._publish_states()
            except Exception:  # noqa: BLE001 - the worker must survive a database hiccup
                log.exception("job runner loop error")
            self._wake.wait(self.config.poll_interval_s)
            self._wake.clear()

    def _claim(self) -> Job | None:
        kinds = [k for k, h in self.handlers.items() if h.ready()]
        if not kinds:
            return None
        with self.session_factory.begin() as session:
            candidates = session.scalars(
                select(Job.id)
                .where(Job.state == JobState.queued, Job.kind.in_(kinds))
                .order_by(Job.created_at, Job.id)
                .limit(5)
            ).all()
            for job_id in candidates:
                now = utcnow()
                claimed = session.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.state == JobState.queued)
                    .values(
                        state=JobState.running.value,
                        attempts=Job.attempts + 1,
                        started_at=func.coalesce(Job.started_at, now),
                        heartbeat_at=now,
                    )
                ).rowcount
                if claimed:
                    with self._lock:
                        self._current = job_id
                    return session.get(Job, job_id, populate_existing=True)
        return None

    def _run(self, job: Job) -> None:
        handler = self.handlers[job.kind]
        ctx = JobContext(job, self.session_factory, self._stop)
        beat_stop = threading.Event()
        beater = threading.Thread(target=self._beat, args=(job.id, beat_stop), daemon=True)
        beater.start()
        self._publish_states()
        try:
            handler.run(ctx)
        except JobInterrupted:
            self._hand_back(job.id)
        except JobCancelled as exc:  # usually already marked by whoever cancelled it
            self._end(job.id, JobState.cancelled, f"Cancelled: {exc}.")
        except OperationalError:  # the database went away for a moment: an attempt, not the end
            log.warning("job %s: database error; it will be retried", job.id, exc_info=True)
            self._retry_later(job)
        except VerbatimError as exc:
            self._end(job.id, JobState.failed, exc.message)
        except Exception as exc:  # noqa: BLE001 - any failure ends the job with a reason, not the worker
            log.exception("job %s failed", job.id)
            self._end(
                job.id,
                JobState.failed,
                f"Internal error ({type(exc).__name__}); the server log has details.",
            )
        else:
            self._end(job.id, JobState.succeeded, None)
        finally:
            beat_stop.set()
            beater.join()
            with self._lock:
                self._current = None
            self._publish_states()

    def _beat(self, job_id: str, done: threading.Event) -> None:
        while not done.wait(self.config.heartbeat_interval_s):
            try:
                with self.session_factory.begin() as session:
                    session.execute(
                        update(Job)
                        .where(Job.id == job_id, Job.state == JobState.running)
                        .values(heartbeat_at=utcnow())
                    )
            except Exception:  # noqa: BLE001 - a missed beat is retried at the next tick
                log.warning("could not refresh the heartbeat of job %s", job_id)

    def _hand_back(self, job_id: str) -> None:
        with self.session_factory.begin() as session:
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.state == JobState.running)
                .values(state=JobState.queued.value, attempts=Job.attempts - 1)
            )
        log.info("job %s handed back for the next server (shutdown)", job_id)

    def _retry_later(self, job: Job) -> None:
        try:
            with self.session_factory.begin() as session:
                current = session.get(Job, job.id, populate_existing=True)
                if current is None or current.state != JobState.running:
                    return
                if current.attempts >= self.config.max_attempts:
                    reason = f"The database failed while this job ran, {current.attempts} times."
                    self._finish(session, current, JobState.failed, reason, expect=JobState.running)
                else:
                    current.state = JobState.queued.value
        except OperationalError:  # still down: the stale-heartbeat recovery picks it up later
            log.warning("job %s: could not requeue it yet", job.id)

    def _end(self, job_id: str, state: JobState, error: str | None) -> None:
        with self.session_factory.begin() as session:
            job = session.get(Job, job_id, populate_existing=True)
            if job is not None:
                self._finish(session, job, state, error, expect=JobState.running)

    def _finish(
        self, session: Session, job: Job, state: JobState, error: str | None, *, expect: JobState
    ) -> bool:
        values: dict[str, Any] = {"state": state.value, "error": error, "finished_at": utcnow()}
        if state is JobState.succeeded:
            values["progress"] = 1.0
        done = session.execute(
            update(Job).where(Job.id == job.id, Job.state == expect).values(**values)
        ).rowcount
        if not done:
            return False
        session.refresh(job)
        handler = self.handlers.get(job.kind)
        if handler is not None:
            handler.on_end(session, job)
        log.info("job %s %s", job.id, state.value)
        return True

    def _publish_states(self) -> None:
        if self.on_states is None:
            return
        with self.session_factory() as session:
            rows = session.execute(select(Job.state, func.count()).group_by(Job.state)).all()
        counts = {s.value: 0 for s in JobState}
        counts.update({state: n for state, n in rows})
        self.on_states(counts)


# ---- the app's runner -----------------------------------------------------------------------


class _BatcherClassifier:
    """The app's micro-batcher seen as a classifier: job batches share the model thread with
    ``POST /v1/classify`` instead of competing with it. ``chosen`` is the tenant's classifier
    (issue 6: its promoted model, or the served model derived for its current taxonomy, see
    :mod:`service.tenant_models`); ``None`` means the served default."""

    def __init__(self, batcher: Any, chosen: Any = None) -> None:
        self._batcher = batcher
        self._chosen = chosen

    @property
    def model_id(self) -> str:
        return self._chosen.model_id if self._chosen is not None else self._batcher.model_id

    @property
    def model(self) -> Any:  # its taxonomy decides the tenant's triage (service.triage_policies.taxonomy_of)
        return getattr(self._chosen if self._chosen is not None else self._batcher.classifier, "model", None)

    def classify(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self._batcher.classify_blocking(items, classifier=self._chosen)

    def for_tenant(self, state: Any, tenant_id: str | None) -> _BatcherClassifier:
        """The same batcher, classifying with ``tenant_id``'s own classifier when it has one (a
        promoted model, or one derived for its edited taxonomy)."""
        if tenant_id is None:
            return self
        from service.tenant_models import get_tenant_models

        chosen = get_tenant_models(state).classifier(tenant_id)
        return self if chosen is self._batcher.classifier else _BatcherClassifier(self._batcher, chosen)


def build_job_runner(state: Any, config: JobRunnerConfig | None = None) -> JobRunner:
    """The runner for an app whose ``state`` holds ``settings``, ``session_factory``, ``batcher``
    and ``metrics``, with a handler for every job kind the service knows."""
    from service.analysis_job import analysis_handler
    from service.dataset_import import DatasetImportHandler
    from service.training_runs import TrainingRunHandler

    config = config or JobRunnerConfig()
    classifier = _BatcherClassifier(state.batcher)
    importer = DatasetImportHandler(
        home=state.settings.home,
        classifier=lambda tenant_id=None: classifier.for_tenant(state, tenant_id) if state.batcher.ready else None,
        batch_size=config.batch_size,
    )
    analyst = analysis_handler(state, config)  # issue 5: POST /v1/datasets/{id}/analyses
    trainer = TrainingRunHandler(state)  # issue 6: POST /v1/training-runs
    gauge = state.metrics.jobs

    def publish(counts: dict[str, int]) -> None:
        for name, n in counts.items():
            gauge.labels(name).set(n)

    return JobRunner(
        state.session_factory,
        {importer.kind: importer, analyst.kind: analyst, trainer.kind: trainer},
        config=config,
        on_states=publish,
    )
