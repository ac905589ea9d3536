"""Alembic migrations, run programmatically by :func:`service.storage.migrate.upgrade_database`."""
