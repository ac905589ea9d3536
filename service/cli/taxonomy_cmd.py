"""``verbatim taxonomy validate|export|import|diff``: taxonomies as YAML files and per tenant.

``validate`` and ``diff`` of two files need no database; ``export --tenant``, ``import`` and
``diff --tenant`` use the configured one (``VERBATIM_DATABASE_URL``, default SQLite in the home
folder). YAML and diff lines go to standard output; problems and notes to standard error.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from nlp.errors import InvalidInputError
from service.cli.common import database_session, err_console, exit_on_error

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

app = typer.Typer(
    help="Validate, export, import and diff taxonomies (YAML; format in models/taxonomy/README.md).",
    no_args_is_help=True,
)

CLI_AUTHOR = "cli"
"""What ``created_by`` says for versions imported with the command line."""


def _say(message: str) -> None:
    err_console.print(message, highlight=False, soft_wrap=True, markup=False)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InvalidInputError(f"No such file: {path}") from None
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"{path} is not UTF-8 text (byte {exc.start}); save the taxonomy as UTF-8 YAML."
        ) from None
    except OSError as exc:
        raise InvalidInputError(f"Cannot read {path}: {exc.strerror}") from None


@app.command("validate")
def validate(file: Annotated[Path, typer.Argument(help="A taxonomy YAML file.")]) -> None:
    """Check a taxonomy file: each problem with line and path; exit 1 on errors, 0 on warnings."""
    from models.taxonomy import ProblemLevel, validate_taxonomy

    with exit_on_error():
        _read(file)  # a clear message for a missing or unreadable file
        problems = validate_taxonomy(file)
    errors = [p for p in problems if p.level is ProblemLevel.error]
    for problem in problems:
        _say(f"{file}: {problem}")
    warnings = len(problems) - len(errors)
    if errors:
        _say(f"{file}: invalid, {len(errors)} error(s), {warnings} warning(s)")
        raise typer.Exit(1)
    _say(f"{file}: valid, {warnings} warning(s)")


def _stored_yaml(session: Session, tenant: str, taxonomy_id: str, version: int | None) -> str:
    from service.storage.keys import get_tenant
    from service.taxonomies import get_taxonomy, get_version

    row = get_taxonomy(session, get_tenant(session, tenant).id, taxonomy_id)
    return get_version(session, row, version or row.current_version).yaml


@app.command("export")
def export(
    tenant: str = typer.Option(None, "--tenant", "-t", help="The tenant whose taxonomy to export."),
    taxonomy_id: str = typer.Option(None, "--id", help="Its server id (tax_…) or key (YAML id)."),
    version: int = typer.Option(None, "--version", "-v", min=1, help="Default: the current one."),
    default: bool = typer.Option(False, "--default", help="Export the shipped default taxonomy."),
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Write a taxonomy as YAML: the shipped default (--default) or a tenant's (--tenant --id)."""
    with exit_on_error():
        if default == bool(tenant or taxonomy_id):
            raise InvalidInputError("Give either --default, or --tenant and --id.")
        if default:
            from models.taxonomy import default_taxonomy, dump_taxonomy

            text = dump_taxonomy(default_taxonomy())
        else:
            if not (tenant and taxonomy_id):
                raise InvalidInputError("--tenant and --id go together.")
            with database_session() as session:
                text = _stored_yaml(session, tenant, taxonomy_id, version)
        if output is None:
            typer.echo(text, nl=False)
            return
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise InvalidInputError(f"Cannot write {output}: {exc.strerror}") from None
    _say(f"wrote {output}")


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="A taxonomy YAML file.")],
    tenant: str = typer.Option(..., "--tenant", "-t", help="The tenant (it must exist)."),
    taxonomy_id: str = typer.Option(
        None, "--id", help="Add a version to this taxonomy (default: the one with the YAML's id)."
    ),
    message: str = typer.Option(None, "--message", "-m", help="What this version changes."),
) -> None:
    """Create a tenant's taxonomy from a file, or add a version to it; prints `ID VERSION`."""
    from service.storage.keys import get_tenant
    from service.taxonomies import (
        add_version,
        create_taxonomy,
        find_by_key,
        get_taxonomy,
        parse_upload,
    )

    with exit_on_error():
        text = _read(file)
        with database_session() as session:
            tenant_id = get_tenant(session, tenant).id
            if taxonomy_id is not None:
                row = get_taxonomy(session, tenant_id, taxonomy_id)
            else:
                row = find_by_key(session, tenant_id, parse_upload(text, version=1)[0].id)
            common = {"created_by": CLI_AUTHOR, "message": message}
            if row is None:
                saved = create_taxonomy(session, tenant_id, text, **common)
            else:
                saved = add_version(session, row, text, **common)
            out_id, out_version = saved.taxonomy.id, saved.version.version
            key, created = saved.taxonomy.key, saved.created
            warnings = saved.warnings
    for problem in warnings:
        _say(f"{file}: {problem}")
    if created:
        _say(f"saved {key!r} version {out_version} for tenant {tenant!r}")
    else:
        _say(f"{key!r} is unchanged: version {out_version} already has this content")
    typer.echo(f"{out_id} {out_version}")


@app.command("diff")
def diff(
    old: Annotated[Path | None, typer.Argument(help="The old taxonomy file.")] = None,
    new: Annotated[Path | None, typer.Argument(help="The new taxonomy file.")] = None,
    tenant: str = typer.Option(None, "--tenant", "-t", help="Diff two stored versions instead."),
    taxonomy_id: str = typer.Option(None, "--id", help="With --tenant: the taxonomy."),
    from_: int = typer.Option(None, "--from", min=1, help="Old version (default: to - 1)."),
    to: int = typer.Option(None, "--to", min=1, help="New version (default: the current one)."),
) -> None:
    """What changed between two taxonomies, one line per node, then where old labels go.

    Added, removed, retired, merged, moved, renamed nodes, changed descriptions and seeds; then
    `labels topic OLD -> NEW` for every old id whose labels count as another id (or none)."""
    from models.taxonomy import load_taxonomy
    from service.taxonomies import diff_document

    with exit_on_error():
        if (old is None) != (new is None) or (old is None) == (tenant is None):
            raise InvalidInputError("Give two files (OLD NEW), or --tenant and --id.")
        if old is not None:
            _read(old), _read(new)
            body = diff_document(load_taxonomy(old), load_taxonomy(new))
        else:
            if taxonomy_id is None:
                raise InvalidInputError("--tenant needs --id.")
            from service.storage.keys import get_tenant
            from service.taxonomies import diff_versions, get_taxonomy

            with database_session() as session:
                row = get_taxonomy(session, get_tenant(session, tenant).id, taxonomy_id)
                new_v = to or row.current_version
                body = diff_versions(session, row, from_ or max(new_v - 1, 1), new_v)
    for line in body["summary"]:
        typer.echo(line)
    for kind, mapping in body["label_mapping"].items():
        for source, target in mapping.items():
            if source != target:
                typer.echo(f"labels {kind[:-1]} {source} -> {target or '(none)'}")
