"""The ``verbatim`` command line: thin commands over plain functions."""

from __future__ import annotations

import typer

from service.cli import (
    analyze_cmd,
    classify_cmd,
    eval_cmd,
    keys_cmd,
    labels_cmd,
    serve_cmd,
    setup_cmd,
    taxonomy_cmd,
    train_cmd,
)

app = typer.Typer(
    name="verbatim",
    help="Verbatim: sentiment, topics, touchpoints, drivers and triage for Chinese and English feedback.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("setup")(setup_cmd.setup)
app.command("serve")(serve_cmd.serve)
app.command("classify")(classify_cmd.classify)
app.command("analyze")(analyze_cmd.analyze)
app.command("train")(train_cmd.train)
app.command("eval")(eval_cmd.evaluate)
app.add_typer(keys_cmd.app, name="keys")
app.add_typer(taxonomy_cmd.app, name="taxonomy")
app.add_typer(labels_cmd.app, name="labels")


@app.callback()
def _settings_from_environment() -> None:
    """Check the VERBATIM_* settings before any command runs: a wrong value is named, not a traceback."""
    from pydantic import ValidationError

    from service.cli.common import err_console
    from service.settings import Settings

    try:
        Settings()
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            err_console.print(f"[bold red]error:[/] VERBATIM_{field.upper()}={error.get('input')!r}: {error['msg']}",
                              highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
