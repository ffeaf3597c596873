"""``healthcard bank`` — the co-issuing banks' side of the health accounts.

``healthcard bank reconcile --bank B --date YYYY-MM-DD --file PATH`` reconciles a bank's
statement file of a day against the ledger of the configured database and prints every
mismatch (``--json``: the report as JSON).  Exit code 0: a clean day; 1: mismatches; 2: a file or
an option that cannot be used.  The command acts as a platform admin named by ``--operator`` /
``HEALTHCARD_OPERATOR`` (whoever holds the database URL runs the platform), and the
reconciliation is audited under that name.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from healthcard.bootstrap import bootstrap
from healthcard.cli.common import console, fail
from healthcard.errors import HealthCardError, InvalidValue
from healthcard.platform.access import Actor, Role
from healthcard.platform.settlement.bank import BANKS, Reconciliation, yuan
from healthcard.settings import Settings

bank_app = typer.Typer(
    help="Co-issuing banks: the daily reconciliation of health accounts.", no_args_is_help=True
)


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidValue("date", f"{text!r}: YYYY-MM-DD") from None


def _print(report: Reconciliation) -> None:
    totals = Table(title=f"{report.bank} · {report.day.isoformat()}", title_justify="left")
    for column in ("", "transfers", "in (yuan)", "out (yuan)", "net (yuan)"):
        totals.add_column(column, justify="right" if column else "left")
    for side, t in (("ledger", report.ledger), ("bank file", report.statement)):
        net = ("-" if t.net_fen < 0 else "") + yuan(abs(t.net_fen))
        totals.add_row(side, str(t.count), yuan(t.in_fen), yuan(t.out_fen), net)
    console.print(totals)
    if report.clean:
        console.print("[green]clean:[/green] the ledger and the bank's file agree", highlight=False)
        return
    table = Table(title=f"{len(report.mismatches)} mismatches", title_justify="left")
    for column in ("kind", "bank ref", "line", "detail"):
        table.add_column(column, overflow="fold")
    for m in report.mismatches:
        table.add_row(m.kind.value, m.bank_ref, "" if m.line is None else str(m.line), m.detail)
    console.print(table)


@bank_app.command("reconcile")
def reconcile(
    bank: Annotated[str, typer.Option("--bank", help=f"the bank's code: {', '.join(BANKS)}")],
    date: Annotated[str, typer.Option("--date", help="the value date the file covers, YYYY-MM-DD")],
    file: Annotated[Path, typer.Option("--file", help="the bank's statement file (CSV)")],
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    operator: Annotated[
        str,
        typer.Option("--operator", "-o", envvar="HEALTHCARD_OPERATOR", help="who is acting (for the audit)"),
    ] = "cli",
) -> None:
    """Reconcile a bank's statement file of a day against the ledger; exit 1 on any mismatch."""
    try:
        day = _day(date)
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidValue("file", f"{file}: {exc}") from None
        app = bootstrap(Settings.from_env())
        try:
            report = app.node.health_accounts.reconcile(
                Actor(operator[:40] or "cli", Role.ADMIN), bank=bank, day=day, statement=text
            )
        finally:
            app.close()
    except HealthCardError as exc:
        raise fail(exc) from None
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(report), default=str, ensure_ascii=False, indent=2))
    else:
        _print(report)
    if not report.clean:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(bank_app, name="bank")
