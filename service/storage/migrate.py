"""Schema migrations with Alembic, run from code (``verbatim setup``, every CLI command, app start).

The migration scripts ship inside the package (``service/storage/migrations/versions``). To add a
table: write its model module under ``service.storage.models``, import it in that package's
``__init__``, then generate the migration and review it::

    .venv/bin/python -c "from service.storage.migrate import autogenerate_revision as a; a('add datasets')"
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from nlp.errors import StorageError
from service.storage.engine import make_engine, normalise_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_PG_MIGRATION_LOCK = 0x76657262  # "verb": serialises concurrent upgrades on PostgreSQL


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration pointing at the packaged migrations (no alembic.ini needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest revision this version of Verbatim knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations are packaged"
    return head


def safe_url(url: str) -> str:
    """``url`` with any password hidden, for messages."""
    try:
        return make_url(normalise_url(url)).render_as_string(hide_password=True)
    except SQLAlchemyError:
        return "<unparsable URL>"


def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is at (``None`` for an empty database)."""
    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as exc:
        raise StorageError(f"Cannot read the database {safe_url(url)}: {exc}") from None
    finally:
        engine.dispose()


def upgrade_database(url: str) -> str:
    """Bring the database at ``url`` to the newest schema (creating it if empty); returns the revision.

    Raises :class:`~nlp.errors.StorageError` when the database cannot be reached or was written by
    a newer Verbatim.
    """
    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
                )
            command.upgrade(alembic_config(conn), "head")
            revision = MigrationContext.configure(conn).get_current_revision()
    except CommandError as exc:
        raise StorageError(
            f"The database {safe_url(url)} cannot be upgraded: {exc}. It was probably written by a "
            "newer version of Verbatim; upgrade Verbatim or point VERBATIM_DATABASE_URL elsewhere."
        ) from None
    except SQLAlchemyError as exc:
        raise StorageError(
            f"Cannot open or upgrade the database {safe_url(url)}: {getattr(exc, 'orig', None) or exc}. "
            "Check VERBATIM_DATABASE_URL and that the server is running and reachable."
        ) from None
    finally:
        engine.dispose()
    return revision or head_revision()


def autogenerate_revision(message: str) -> Path:
    """For developers: write a migration for the differences between the models and the newest
    schema (computed against a scratch SQLite database). Review the file before committing it."""
    script = ScriptDirectory.from_config(alembic_config())
    number = f"{sum(1 for _ in script.walk_revisions()) + 1:04d}"
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/scratch.db"
        upgrade_database(url)
        engine = make_engine(url, poolclass=NullPool)
        try:
            with engine.begin() as conn:
                cfg = alembic_config(conn)
                ruff = Path(sys.executable).parent / "ruff"
                if ruff.exists():  # format the new script like the rest of the code
                    cfg.set_section_option("post_write_hooks", "hooks", "ruff")
                    cfg.set_section_option("post_write_hooks", "ruff.type", "exec")
                    cfg.set_section_option("post_write_hooks", "ruff.executable", str(ruff))
                    cfg.set_section_option(
                        "post_write_hooks", "ruff.options", "format REVISION_SCRIPT_FILENAME"
                    )
                rev = command.revision(cfg, message=message, autogenerate=True, rev_id=number)
        finally:
            engine.dispose()
    assert rev is not None and not isinstance(rev, list)
    return Path(rev.path)
