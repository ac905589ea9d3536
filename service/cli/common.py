"""Helpers shared by the commands: console, settings, error exit."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from nlp.errors import VerbatimError

err_console = Console(stderr=True)


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
