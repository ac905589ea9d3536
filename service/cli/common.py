"""Helpers shared by the commands: console, database session, error exit."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from nlp.errors import VerbatimError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

err_console = Console(stderr=True)


class PrecisionChoice(StrEnum):
    """``--precision`` values (``models.classifier.quantize`` has the meaning; kept here so that
    parsing the command line does not import torch)."""

    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    int8 = "int8"


@contextmanager
def exit_on_error() -> Iterator[None]:
    """Turn project errors into a message on standard error and exit status 1."""
    try:
        yield
    except VerbatimError as exc:
        err_console.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
        details = exc.details
        if isinstance(details, list):
            for item in details[:50]:
                err_console.print(f"  - {item}", highlight=False, soft_wrap=True)
        sys.stderr.flush()
        raise typer.Exit(1) from None


@contextmanager
def database_session() -> Iterator[Session]:
    """A committed-on-success session on the configured database, migrated to the newest schema."""
    from service.settings import Settings
    from service.storage import make_engine, make_session_factory, upgrade_database

    url = Settings().resolved_database_url
    upgrade_database(url)
    engine = make_engine(url)
    try:
        with make_session_factory(engine).begin() as session:
            yield session
    finally:
        engine.dispose()
