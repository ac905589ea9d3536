"""``verbatim keys create|list|revoke``: tenants' API keys.

``create`` prints the new key alone on the last line of standard output (everything else goes to
standard error), so ``KEY=$(verbatim keys create ... | tail -n1)`` works in scripts.
"""

from __future__ import annotations

import sys
from datetime import datetime

import typer
from rich.console import Console
from rich.table import Table

from service.cli.common import database_session, err_console, exit_on_error

app = typer.Typer(
    help="Create, list and revoke API keys (one tenant per key; keys are stored hashed).",
    no_args_is_help=True,
)


def _say(message: str) -> None:
    """A line of information on standard error (never wrapped, never coloured)."""
    err_console.print(message, highlight=False, soft_wrap=True, markup=False)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"


@app.command("create")
def create(
    tenant: str = typer.Option(..., "--tenant", "-t", help="Tenant name; created when missing."),
    scopes: str = typer.Option(
        ...,
        "--scopes",
        "-s",
        help="Comma-separated: classify, analyze, train, triage, admin (admin implies all).",
    ),
    name: str = typer.Option(
        "", "--name", "-n", help="A label to tell keys apart, e.g. 'crm-prod'."
    ),
) -> None:
    """Create an API key and print it (alone, on the last line of standard output)."""
    from service.storage.keys import create_key, get_or_create_tenant, parse_scopes

    with exit_on_error():
        parse_scopes(scopes)  # fail before touching the database
        with database_session() as session:
            tenant_row, created = get_or_create_tenant(session, tenant)
            key, secret = create_key(session, tenant_row, scopes, name=name)
            key_id, granted = key.id, ", ".join(key.scopes)
        if created:
            _say(f"created tenant {tenant_row.name!r} ({tenant_row.id})")
        _say(
            f"created key {key_id} for tenant {tenant_row.name!r} with scopes: {granted}. "
            "It is shown only now; store it safely."
        )
    typer.echo(secret)


@app.command("list")
def list_(
    tenant: str = typer.Option(None, "--tenant", "-t", help="Only this tenant's keys."),
) -> None:
    """List keys (never their secrets): id, tenant, name, prefix, scopes, dates."""
    from service.storage.keys import list_keys

    with exit_on_error():
        with database_session() as session:
            rows = [
                (
                    k.id,
                    k.tenant.name,
                    k.name or "-",
                    k.prefix + "…",
                    ",".join(k.scopes),
                    _when(k.created_at),
                    _when(k.last_used_at),
                    _when(k.revoked_at),
                )
                for k in list_keys(session, tenant)
            ]
    headers = ("id", "tenant", "name", "prefix", "scopes", "created", "last used", "revoked")
    if not sys.stdout.isatty():  # plain tab-separated lines for scripts and pipes
        typer.echo("\t".join(headers))
        for row in rows:
            typer.echo("\t".join(row))
        return
    table = Table(*headers[:5], *(f"{h} (UTC)" for h in headers[5:]))
    for column in table.columns[:4]:  # ids and prefixes are copied by hand: never cut them
        column.no_wrap = True
        column.min_width = max((len(r[table.columns.index(column)]) for r in rows), default=0)
    for row in rows:
        table.add_row(*row[:5], *(value.split(" ")[0] for value in row[5:]))  # dates only
    Console().print(table)
    if not rows:
        _say("no keys yet: create one with `verbatim keys create`")


@app.command("revoke")
def revoke(
    key_id: str = typer.Argument(..., help="The key's id, as `verbatim keys list` shows it."),
) -> None:
    """Revoke a key: it stops authenticating at once."""
    from service.storage.keys import revoke_key

    with exit_on_error():
        with database_session() as session:
            key, changed = revoke_key(session, key_id)
            tenant, revoked_at = key.tenant.name, key.revoked_at
    if changed:
        _say(f"revoked key {key_id} of tenant {tenant!r}")
    else:
        _say(f"key {key_id} was already revoked on {_when(revoked_at)}")
