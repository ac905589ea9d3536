"""``verbatim labels import|export``: analysts' labels as files, per tenant.

Both use the configured database (``VERBATIM_DATABASE_URL``, default SQLite in the home folder).
``import`` reads CSV, XLSX or JSON Lines (columns in :mod:`service.label_import`), stores the good
rows and lists each bad one with its line on standard error (exit 0 when at least one label was
stored, 1 when none was). ``export`` writes the current labels as a JSON Lines label set
(:mod:`training.labelset`), ids mapped to the taxonomy version asked for.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer

from nlp.errors import InvalidInputError
from service.cli.common import database_session, err_console, exit_on_error

app = typer.Typer(help="Import and export analysts' labels.", no_args_is_help=True)


def _say(message: str) -> None:
    err_console.print(message, highlight=False, soft_wrap=True, markup=False)


@app.command("import")
def import_labels(
    file: Annotated[Path, typer.Argument(help="A CSV, XLSX or JSON Lines file of labels.")],
    tenant: str = typer.Option(..., "--tenant", "-t", help="The tenant the labels belong to."),
    taxonomy: str = typer.Option(None, "--taxonomy", help="Key or tax_… id (default: the tenant's)."),
    taxonomy_version: int = typer.Option(None, "--taxonomy-version", min=1, help="Default: current."),
    map_forward: bool = typer.Option(
        False, "--map-forward", help="Map ids of older taxonomy versions to the current one."
    ),
) -> None:
    """Store the file's good rows; report each bad row with its line and reason."""
    from service.cases import Actor
    from service.label_import import read_label_file
    from service.labels import add_labels
    from service.storage.keys import get_tenant
    from service.storage.models import LabelSource

    with exit_on_error():
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise InvalidInputError(f"Cannot read {file}: {exc.strerror}") from None
        parsed = read_label_file(data, file.name, defaults={
            "taxonomy": taxonomy, "taxonomy_version": taxonomy_version})  # fmt: skip
        with database_session() as session:
            tenant_id = get_tenant(session, tenant).id
            author = Actor(id="cli", name=f"cli:{getpass.getuser()}")
            batch = add_labels(session, tenant_id, author, parsed.items,
                               source=LabelSource.cli, map_forward=map_forward)  # fmt: skip
    rejected = sorted(parsed.rejected + batch.rejected, key=lambda r: r.line or 0)
    for bad in rejected:
        _say(f"{file}: line {bad.line}: {bad.reason}")
    if parsed.ignored_columns:
        _say(f"{file}: ignored column(s): {', '.join(parsed.ignored_columns)}")
    _say(f"{file}: {len(batch.accepted)} label(s) stored, {len(rejected)} rejected")
    if not batch.accepted:
        raise typer.Exit(1)


@app.command("export")
def export_labels(
    tenant: str = typer.Option(..., "--tenant", "-t", help="The tenant whose labels to export."),
    out: Path = typer.Option(..., "--out", "-o", help="The JSON Lines file to write."),
    taxonomy: str = typer.Option(None, "--taxonomy", help="Key or tax_… id (default: the tenant's)."),
    taxonomy_version: int = typer.Option(None, "--taxonomy-version", min=1, help="Default: current."),
) -> None:
    """Write the tenant's current labels as a training label set."""
    from service.labels import label_examples
    from service.storage.keys import get_tenant
    from training.labelset import write_label_set

    with exit_on_error():
        with database_session() as session:
            found = label_examples(session, get_tenant(session, tenant).id,
                                   taxonomy_version=taxonomy_version, taxonomy=taxonomy)  # fmt: skip
        write_label_set(out, found)
    _say(f"{out}: {len(found)} labelled example(s)")
