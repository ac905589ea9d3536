"""Storage: SQLAlchemy models, engines and Alembic migrations (SQLite by default, PostgreSQL too).

- :mod:`service.storage.base`: ``Base``, column types, ``TenantOwnedMixin``;
- :mod:`service.storage.models`: one module of tables per resource;
- :mod:`service.storage.engine`: ``make_engine(url)``, ``make_session_factory(engine)``;
- :mod:`service.storage.migrate`: ``upgrade_database(url)``;
- :mod:`service.storage.keys`: tenants, API keys, scopes, ``authenticate``;
- :mod:`service.storage.tenancy`: ``owned`` / ``get_owned`` tenant-scoped queries.
"""

from __future__ import annotations

from service.storage.base import Base
from service.storage.engine import make_engine, make_session_factory
from service.storage.migrate import upgrade_database

__all__ = ["Base", "make_engine", "make_session_factory", "upgrade_database"]
