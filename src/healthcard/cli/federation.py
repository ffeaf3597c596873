"""``healthcard federation`` — the three-level platform's messaging between nodes.

``healthcard federation verify --city URL --city-code 4101 --province URL --national URL``
compares a city's cards (number, status of its newest chip) with its province's card index and
the national card index and prints every mismatch.  Exit code 0: they agree; 1: mismatches;
2: an option or a database that cannot be used.  It only reads.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated

import typer
from rich.table import Table

from healthcard.cli.common import console, fail
from healthcard.errors import HealthCardError
from healthcard.federation.nodes import Mismatch, verify
from healthcard.settings import check_node, normalise_url
from healthcard.storage.db import Database

federation_app = typer.Typer(
    help="The three-level platform: city, province and national nodes.", no_args_is_help=True
)


def _open(url: str) -> Database:
    """A node's database, refused (StorageError, exit 2) unless at this code's schema."""
    db = Database(normalise_url(url))
    try:
        db.require_current()
    except HealthCardError:
        db.dispose()
        raise
    return db


def _print(city: str, found: list[Mismatch]) -> None:
    if not found:
        console.print(
            f"[green]clean:[/green] city {city}, its province and the nation agree", highlight=False
        )
        return
    table = Table(title=f"{len(found)} mismatches", title_justify="left")
    for column in ("index", "card", "city says", "index says"):
        table.add_column(column)
    for m in found:
        table.add_row(m.index, m.card_number, m.city_status or "—", m.index_status or "—")
    console.print(table)


@federation_app.command("verify")
def verify_command(
    city: Annotated[str, typer.Option("--city", help="the city node's database URL")],
    province: Annotated[str, typer.Option("--province", help="its province node's database URL")],
    national: Annotated[str, typer.Option("--national", help="the national node's database URL")],
    city_code: Annotated[
        str,
        typer.Option("--city-code", envvar="HEALTHCARD_NODE_CODE", help="the city's 4-digit code (4101)"),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="print the mismatches as JSON")] = False,
) -> None:
    """Compare a city's cards with its province's and the national card index; exit 1 on a mismatch."""
    opened: list[Database] = []
    try:
        _, code = check_node("city", city_code)
        assert code is not None
        for url in (city, province, national):
            opened.append(_open(url))
        found = verify(opened[0], code, opened[1], opened[2])
    except HealthCardError as exc:
        raise fail(exc) from None
    finally:
        for db in opened:
            db.dispose()
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(m) for m in found], ensure_ascii=False, indent=2))
    else:
        _print(code, found)
    if found:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(federation_app, name="federation")
