"""``verbatim serve``: the API and its pages."""

from __future__ import annotations

import typer

from service.settings import Settings


def serve(
    host: str = typer.Option(None, help="Address to bind (default VERBATIM_HOST or 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (default VERBATIM_PORT or 8000)."),
    demo: bool = typer.Option(
        False, "--demo", help="Create a 'demo' tenant if missing and print a new key with every scope."
    ),
) -> None:
    """Serve the HTTP API, its docs and pages."""
    import uvicorn

    from service.app import create_app
    from service.observability import configure_logging

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = Settings(**overrides)
    if demo:
        _print_demo_key(settings)
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=30,
    )


def _print_demo_key(settings: Settings) -> None:
    """Make sure the 'demo' tenant exists and print a fresh all-scopes key for it."""
    from service.cli.common import exit_on_error
    from service.storage import make_engine, make_session_factory, upgrade_database
    from service.storage.keys import Scope, create_key, get_or_create_tenant

    with exit_on_error():
        url = settings.resolved_database_url
        upgrade_database(url)
        engine = make_engine(url)
        try:
            with make_session_factory(engine).begin() as session:
                tenant, _ = get_or_create_tenant(session, "demo")
                _, secret = create_key(session, tenant, list(Scope), name="demo (verbatim serve --demo)")
        finally:
            engine.dispose()
    base = f"http://{settings.host}:{settings.port}"
    typer.echo(f"API key: {secret}")
    typer.echo(
        f"Try: curl -s {base}/v1/classify -H 'Authorization: Bearer {secret}' "
        "-H 'Content-Type: application/json' "
        """-d '{"items": [{"id": "1", "text": "快递太慢了，客服也不回复"}, {"id": "2", "text": "Great staff, quick checkout"}]}'"""
    )
