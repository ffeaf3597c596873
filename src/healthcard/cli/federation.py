"""``healthcard federation`` — the three-level platform's messaging between nodes.

``healthcard federation run --role province --code 41 --database-url URL`` runs a province or
national node (its consumers, relay and answers) over ``HEALTHCARD_NATS_URL``;
``healthcard federation verify --city URL --city-code 4101 --province URL --national URL``
compares a city's cards (number, status of its newest chip) with its province's card index and
the national card index and prints every mismatch.  Exit code 0: they agree; 1: mismatches;
2: an option or a database that cannot be used.  It only reads.
``healthcard federation clearing --month 2026-03 --db URL --city-code 4406 [--with 4101]
[--with-db URL | --nats URL] [--json]`` prints the month's cross-region clearing statement of
this city with each other city (both ledgers, both directions, the net); exit 1 when they
disagree, listing the settlements.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from typing import Annotated

import typer
from rich.table import Table

from healthcard.cli.common import console, fail
from healthcard.clock import SystemClock
from healthcard.errors import HealthCardError, InvalidValue
from healthcard.federation import open_bus
from healthcard.federation.nodes import FederationRunner, Mismatch, NodeIdentity, NodeRole, verify
from healthcard.platform.settlement.clearing import Statement
from healthcard.settings import Settings, check_node, normalise_url
from healthcard.storage.db import Database, redact

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


def _yuan(fen: int | None) -> str:
    return "—" if fen is None else f"{fen / 100:,.2f}"


def _print_statement(found: Statement) -> None:
    table = Table(
        title=f"clearing {found.month}: {found.a} ⇄ {found.b}", title_justify="left", show_lines=False
    )
    for column in ("owes", "to", "settlements", "payer's ledger", "payee's ledger", ""):
        table.add_column(column, justify="right" if "ledger" in column or column == "settlements" else "left")
    for d in (found.a_to_b, found.b_to_a):
        mark = "[green]agrees[/green]" if d.agrees else "[red]MISMATCH[/red]"
        table.add_row(d.payer, d.payee, str(d.settlements), _yuan(d.payer_fen), _yuan(d.payee_fen), mark)
    console.print(table)
    payer, payee = (found.a, found.b) if found.net_fen >= 0 else (found.b, found.a)
    console.print(f"net: {payer} pays {payee} {_yuan(abs(found.net_fen))} yuan", highlight=False)
    wrong = [m for d in (found.a_to_b, found.b_to_a) for m in d.mismatches]
    if wrong:
        mismatches = Table(
            title=f"{len(wrong)} settlements the two ledgers disagree on", title_justify="left"
        )
        for column in ("visiting city", "institution", "key", "visit", "payer says", "payee says"):
            mismatches.add_column(column)
        for m in wrong:
            mismatches.add_row(
                m.visiting_city,
                m.institution_code,
                m.idempotency_key,
                str(m.encounter_id),
                _yuan(m.payer_fen),
                _yuan(m.payee_fen),
            )
        console.print(mismatches)


@federation_app.command("clearing")
def clearing_command(
    month: Annotated[str, typer.Option("--month", help="the month, YYYY-MM (China's)")],
    database: Annotated[
        str, typer.Option("--db", envvar="HEALTHCARD_DATABASE_URL", help="this city node's database URL")
    ],
    city_code: Annotated[
        str, typer.Option("--city-code", envvar="HEALTHCARD_NODE_CODE", help="this city's 4-digit code")
    ],
    counterparts: Annotated[
        list[str] | None,
        typer.Option("--with", help="the other city (repeat); default: every city cleared with that month"),
    ] = None,
    counterpart_dbs: Annotated[
        list[str] | None,
        typer.Option("--with-db", help="the other city's database URL (one per --with): read, not asked"),
    ] = None,
    nats: Annotated[
        str | None,
        typer.Option("--nats", envvar="HEALTHCARD_NATS_URL", help="ask the other cities over NATS"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the statements as JSON")] = False,
) -> None:
    """The month's cross-region clearing of this city with each other city: what each pool owes
    the other's institutions, from both ledgers, and the net; exit 1 when the ledgers disagree."""
    from sqlalchemy import distinct, select

    from healthcard.federation.settlement import clearing_statement
    from healthcard.platform.settlement import clearing
    from healthcard.storage import tables as t

    opened: list[Database] = []
    statements: list[Statement] = []
    try:
        _, code = check_node("city", city_code)
        assert code is not None
        clearing.check_month(month)
        db = _open(database)
        opened.append(db)
        if counterparts is None:
            x = t.CrossRegionSettlement
            with db.session() as session:
                counterparts = sorted(
                    session.scalars(select(distinct(x.counterpart)).where(x.month == month))
                )
        others = [clearing.check_city(city, "--with") for city in counterparts]
        if counterpart_dbs is not None and len(counterpart_dbs) != len(others):
            raise InvalidValue("--with-db", "one database URL for each --with")
        for n, other in enumerate(others):
            if counterpart_dbs is not None:
                their_db = _open(counterpart_dbs[n])
                opened.append(their_db)
                with db.uow() as uow:
                    mine = clearing.figures(uow, code, other, month)
                with their_db.uow() as uow:
                    theirs = clearing.figures(uow, other, code, month)
                statements.append(clearing.statement(mine, theirs))
            else:
                statements.append(clearing_statement(db, open_bus(nats), code, other, month))
    except HealthCardError as exc:
        raise fail(exc) from None
    finally:
        for opened_db in opened:
            opened_db.dispose()
    if as_json:
        typer.echo(json.dumps([s.document() for s in statements], ensure_ascii=False, indent=2))
    elif not statements:
        console.print(f"no cross-region settlements of city {code} in {month}", highlight=False)
    for found in [] if as_json else statements:
        _print_statement(found)
    if not all(s.agrees for s in statements):
        raise typer.Exit(1)


def embedded_node(url: str, role: str, code: str) -> FederationRunner:
    """A province or national node's messaging over its own database (brought up to date) and
    this process's bus (``HEALTHCARD_NATS_URL``, else the in-process bus): not started."""
    identity = NodeIdentity.of(role, code)
    if identity.role is NodeRole.CITY:
        raise InvalidValue("role", "a city node runs with its platform: healthcard serve")
    db = Database(normalise_url(url))
    db.upgrade()
    return FederationRunner(db, open_bus(Settings.from_env().nats_url), SystemClock(), identity)


@federation_app.command("run")
def run_command(
    role: Annotated[str, typer.Option("--role", envvar="HEALTHCARD_NODE_ROLE", help="province or national")],
    code: Annotated[
        str, typer.Option("--code", envvar="HEALTHCARD_NODE_CODE", help="the province's 2 digits (41), or CN")
    ],
    database: Annotated[
        str, typer.Option("--database-url", envvar="HEALTHCARD_DATABASE_URL", help="the node's own database")
    ],
) -> None:
    """Run a province or national node: its consumers, its relay, its answers to other nodes,
    over HEALTHCARD_NATS_URL, until interrupted (a city node runs inside healthcard serve)."""
    try:
        runner = embedded_node(database, role, code)
    except HealthCardError as exc:
        raise fail(exc) from None
    console.print(f"{role} node {code}: database {redact(database)}, running (Ctrl-C stops)", highlight=False)
    runner.start()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        runner.stop()
        runner.db.dispose()


def register(app: typer.Typer) -> None:
    app.add_typer(federation_app, name="federation")
