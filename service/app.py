"""The FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
from fastapi import FastAPI

from service.errors import install_error_handlers
from service.observability import Metrics, RequestContextMiddleware
from service.routes import health
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


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; heavy loading happens in the lifespan, not here."""
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from service.storage import make_engine, make_session_factory, upgrade_database

        app.state.readiness.components["api"] = "ready"
        url = settings.resolved_database_url
        await anyio.to_thread.run_sync(upgrade_database, url)
        engine = make_engine(url)
        app.state.engine = engine
        app.state.session_factory = make_session_factory(engine)
        app.state.readiness.components["database"] = "ready"
        try:
            yield
        finally:
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
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    install_error_handlers(app)
    app.include_router(health.router)
    return app
