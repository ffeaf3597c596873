"""``healthcard platform invariants`` — check what must hold in a node's database after a crash,
a database outage or a storm of retries (healthcard.platform.invariants): the ledger balances,
every settlement is posted exactly once, slots agree with their bookings, the audit chains
verify, no idempotency key is stored twice.  Exit codes: 0 all hold, 1 some are broken (each
listed), 2 the database cannot be reached or is not at this code's schema."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from healthcard.cli.common import console, fail
from healthcard.errors import HealthCardError, InvalidValue
from healthcard.platform.invariants import check_database
from healthcard.settings import Settings, normalise_url
from healthcard.storage.db import Database

platform_app = typer.Typer(help="The platform node's own checks.", no_args_is_help=True)


@platform_app.command("invariants")
def invariants_command(
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            envvar="HEALTHCARD_DATABASE_URL",
            help="the node's database [default: the SQLite file in $HEALTHCARD_DATA_DIR]",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="list at most this many problems per check")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Check the ledger, settlement postings, slots, audit chains and idempotency keys; exit 1
    listing what is broken."""
    try:
        if not 1 <= limit <= 10_000:
            raise InvalidValue("limit", "1 to 10000")
        db = Database(normalise_url(database_url) if database_url else Settings.from_env().db_url)
        try:
            db.require_current()
            report = check_database(db, limit=limit)
        finally:
            db.dispose()
    except HealthCardError as exc:
        raise fail(exc) from None
    if as_json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        for c in report.checks:
            mark = "[green]ok[/green]    " if c.ok else "[red]BROKEN[/red]"
            console.print(f"{mark} {c.name}: {c.summary}", highlight=False)
            for problem in c.problems:
                console.print(f"         {problem}", highlight=False, markup=False)
    if not report.ok:
        raise typer.Exit(1)
