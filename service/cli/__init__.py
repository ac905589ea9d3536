"""The ``verbatim`` command line: thin commands over plain functions."""

from __future__ import annotations

import typer

from service.cli import setup_cmd, serve_cmd

app = typer.Typer(
    name="verbatim",
    help="Verbatim: sentiment, topics, touchpoints, drivers and triage for Chinese and English feedback.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("setup")(setup_cmd.setup)
app.command("serve")(serve_cmd.serve)
