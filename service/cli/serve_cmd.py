"""``verbatim serve``: the API and its pages."""

from __future__ import annotations

import typer

from service.settings import Settings


def serve(
    host: str = typer.Option(None, help="Address to bind (default VERBATIM_HOST or 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (default VERBATIM_PORT or 8000)."),
) -> None:
    """Serve the HTTP API, its docs and pages."""
    import uvicorn

    from service.app import create_app
    from service.observability import configure_logging

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = Settings(**overrides)
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=30,
    )
