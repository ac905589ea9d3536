"""The FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio.to_thread
from fastapi import FastAPI

from service.batching import ClassifierLike, MicroBatcher
from service.cases import team_counts
from service.errors import install_error_handlers
from service.jobs import JobRunnerConfig, build_job_runner
from service.limits import BodySizeLimitMiddleware
from service.observability import Metrics, RequestContextMiddleware
from service.ratelimit import TokenBucketLimiter
from service.routes import analyses as analysis_routes
from service.routes import cases as case_routes
from service.routes import classify as classify_routes
from service.routes import datasets as dataset_routes
from service.routes import health
from service.routes import jobs as job_routes
from service.routes import labels as label_routes
from service.routes import models as model_routes
from service.routes import taxonomies as taxonomy_routes
from service.routes import training_runs as training_run_routes
from service.routes import triage_policies as triage_policy_routes
from service.settings import Settings

log = logging.getLogger("verbatim.service")


@dataclass
class Readiness:
    """What /readyz reports: which components are loaded, and why one is not."""

    components: dict[str, str] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return bool(self.components) and all(v == "ready" for v in self.components.values())

    def as_dict(self) -> dict[str, Any]:
        return {"status": "ready" if self.ready else "not_ready", "components": dict(self.components)}


def create_app(
    settings: Settings | None = None,
    *,
    classifier_factory: Callable[[], ClassifierLike] | None = None,
    jobs: JobRunnerConfig | None = None,
) -> FastAPI:
    """Build the app; heavy loading happens in the lifespan, not here.

    ``classifier_factory`` builds the classifier (default: the model of ``settings``, see
    :func:`service.models.load_classifier`); it runs in a worker thread once the app starts,
    and ``/readyz`` answers 503 until it is done. Tests pass a small fake. ``jobs`` tunes the
    background job runner (:mod:`service.jobs`).
    """
    settings = settings or Settings()
    metrics = Metrics()
    if classifier_factory is None:

        def classifier_factory() -> ClassifierLike:
            from service.models import load_classifier

            return load_classifier(settings)

    batcher = MicroBatcher(
        max_batch=settings.classify_max_batch,
        max_wait=settings.classify_max_wait_ms / 1000,
        max_queue=settings.classify_max_queue,
        metrics=metrics,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from service.storage import make_engine, make_session_factory, upgrade_database

        app.state.readiness.components["api"] = "ready"
        await batcher.start(classifier_factory, app.state.readiness.components)  # loads in a thread
        url = settings.resolved_database_url
        await anyio.to_thread.run_sync(upgrade_database, url)
        engine = make_engine(url)
        app.state.engine = engine
        app.state.session_factory = make_session_factory(engine)
        metrics.track_cases(partial(team_counts, app.state.session_factory))  # issue 7 gauges
        app.state.readiness.components["database"] = "ready"
        runner = build_job_runner(app.state, jobs)
        await anyio.to_thread.run_sync(runner.start)  # resumes jobs a stopped server left
        app.state.job_runner = runner
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(runner.stop)  # the current batch commits first
            await batcher.stop()  # finishes queued and in-flight batches
            engine.dispose()

    app = FastAPI(
        title="Verbatim",
        version="0.1.0",
        summary="Sentiment, topics, touchpoints, drivers and triage for Chinese and English customer feedback.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.readiness = Readiness()
    app.state.batcher = batcher
    app.state.rate_limiter = TokenBucketLimiter(
        per_minute=settings.rate_limit_per_minute, max_cost=settings.max_items
    )
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)  # inside the request id
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(classify_routes.router)
    app.include_router(dataset_routes.router)
    app.include_router(analysis_routes.router)
    app.include_router(job_routes.router)
    app.include_router(case_routes.router)
    app.include_router(taxonomy_routes.router)
    app.include_router(label_routes.router)
    app.include_router(model_routes.router)
    app.include_router(training_run_routes.router)
    app.include_router(triage_policy_routes.router)
    return app
