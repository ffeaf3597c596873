"""The card centre on the command line: ``db``, ``org``, ``apply``, ``approve``, ``issue``,
``card status|activate|report-lost|recover|replace|cancel|expire``, ``hotlist``.

Each command builds the application through :func:`healthcard.bootstrap.bootstrap`, calls one
service method, prints the result with Rich, and turns a refusal into one line and exit code 2.
The acting operator comes from ``--operator`` or ``HEALTHCARD_OPERATOR``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from typer import _click as click  # Typer vendors its own Click
from typer.core import TyperGroup

from healthcard.bootstrap import App, bootstrap
from healthcard.card import image
from healthcard.cli.common import console, fail, kek_from_env
from healthcard.errors import HealthCardError
from healthcard.issuance.cardcentre import CardHistory, CardView, local_time
from healthcard.issuance.chips import ChipSource, PooledChips, ReaderChip, SimulatedChips
from healthcard.issuance.lifecycle import ApplicationStatus, Role
from healthcard.issuance.organisation import PROVINCE_CENTRES, OperatorSpec, Organisation
from healthcard.settings import Settings
from healthcard.storage.db import Database


class DefaultCommandGroup(TyperGroup):
    """A group whose first argument, when it names no sub-command, goes to the ``default`` one:
    ``healthcard issue SQ41…`` and ``healthcard issue batch rows.csv`` side by side."""

    default = "one"

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = [self.default, *args]
        return super().resolve_command(ctx, args)


db_app = typer.Typer(help="The database: schema migrations and status.", no_args_is_help=True)
org_app = typer.Typer(
    help="Card centres, collection points (信息采集点) and operators.", no_args_is_help=True
)
issue_app = typer.Typer(
    cls=DefaultCommandGroup,
    help="Personalise cards: `issue APPLICATION`, `issue batch FILE.csv`, `issue resume`.",
    no_args_is_help=True,
)
hotlist_app = typer.Typer(help="The signed hot list (黑名单) that terminals load.", no_args_is_help=True)

Operator = Annotated[
    str, typer.Option("--operator", "-o", envvar="HEALTHCARD_OPERATOR", help="who is acting (operator id)")
]
Out = Annotated[
    Path | None,
    typer.Option("--out", help="where personalised card images go [default: $HEALTHCARD_DATA_DIR/cards]"),
]
Reader = Annotated[
    str | None, typer.Option("--reader", help="personalise the blank card in this PC/SC reader instead")
]
ImagePassphrase = Annotated[
    str, typer.Option(envvar="HEALTHCARD_IMAGE_PASSPHRASE", show_default=False, help="seals card images")
]


@contextmanager
def _app(require_schema: bool = True) -> Iterator[App]:
    try:
        settings = Settings.from_env()
        app = bootstrap(settings, kek=lambda: kek_from_env(settings.kek), require_schema=require_schema)
    except HealthCardError as exc:
        raise fail(exc) from None
    try:
        yield app
    except HealthCardError as exc:
        raise fail(exc) from None
    finally:
        app.close()


def _chips(
    app: App, out: Path | None, reader: str | None, passphrase: str, *, workers: int = 0, **kwargs: Any
) -> ChipSource:
    """The blank card in ``reader``; else simulated chips whose images go to ``out``, made in
    this process or (``workers``) in a pool."""
    if reader is not None:
        from healthcard.terminal.pcsc import PcscTransport

        return ReaderChip(PcscTransport(reader, timeout=10))
    folder = out or app.settings.data_dir / "cards"
    passphrase = passphrase or image.DEMO_PASSPHRASE
    if workers:
        return PooledChips(folder, passphrase, workers=workers)
    return SimulatedChips(folder, image.Sealer(passphrase), **kwargs)


def _print_card(card: CardView, name: str = "") -> None:
    console.print(
        f"card [bold]{card.card_number}[/bold] {name} · {card.status.value} ({card.status.label}) · "
        f"chip {card.chip_serial} · issue serial {card.issue_serial} · valid to {card.expiry_date}",
        highlight=False,
    )


def print_history(history: CardHistory) -> None:
    table = Table(title=f"居民健康卡 {history.card_number} {history.name}", title_justify="left")
    for column in ("chip", "status", "issue serial", "issuer", "issued", "valid to", "since (Asia/Shanghai)"):
        table.add_column(column)
    for c in history.cards:
        table.add_row(
            c.chip_serial,
            f"{c.status.value} {c.status.label}",
            c.issue_serial,
            c.issuer_code,
            str(c.issue_date),
            str(c.expiry_date),
            local_time(c.status_at),
        )
    console.print(table)
    events = Table(title="history", title_justify="left")
    for column in ("when (Asia/Shanghai)", "chip", "from", "to", "operator", "reason"):
        events.add_column(column)
    for e in history.events:
        events.add_row(
            local_time(e.at), e.chip_serial, e.from_status or "—", e.to_status, e.operator, e.reason or ""
        )
    console.print(events)


# --- db -------------------------------------------------------------------------------------------
@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the current revision (Alembic)."""
    try:
        db = Database(Settings.from_env().db_url)
        before = db.current()
        db.upgrade()
        status = db.status()
        db.dispose()
    except HealthCardError as exc:
        raise fail(exc) from None
    console.print(f"{status.url}: {before or 'empty'} → {status.current}", highlight=False)


@db_app.command("status")
def db_status() -> None:
    """The schema revision and the rows of each table; exit code 1 when an upgrade is due."""
    try:
        db = Database(Settings.from_env().db_url)
        status = db.status()
        db.dispose()
    except HealthCardError as exc:
        raise fail(exc) from None
    state = "up to date" if status.up_to_date else "[yellow]needs `healthcard db upgrade`[/yellow]"
    console.print(
        f"{status.url} ({status.dialect}) · revision {status.current or 'none'} · code {status.head} · {state}",
        highlight=False,
    )
    table = Table("table", "rows")
    for name, count in status.tables.items():
        table.add_row(name, str(count))
    if status.tables:
        console.print(table)
    if not status.up_to_date:
        raise typer.Exit(1)


# --- org --------------------------------------------------------------------------------------------
@org_app.command("add-institution")
def org_add_institution(
    code: Annotated[str, typer.Argument(help="institution code (a province card centre: PP000000001)")],
    name: Annotated[str, typer.Option(help="its name")],
    area: Annotated[str, typer.Option(help="GB/T 2260 area code, 6 digits")],
    kind: Annotated[str, typer.Option(help="province-centre, city-centre or hospital")] = "province-centre",
    issues: Annotated[bool, typer.Option(help="issues cards")] = True,
) -> None:
    """Register a card centre or a hospital."""
    with _app() as app:
        Organisation(app.db).add_institution(code, name=name, area=area, kind=kind, issues=issues)
    console.print(f"institution {code} {name}")


@org_app.command("add-point")
def org_add_point(
    code: Annotated[str, typer.Argument(help="collection point code")],
    name: Annotated[str, typer.Option(help="its name")],
    area: Annotated[str, typer.Option(help="GB/T 2260 area code, 6 digits")],
    institution: Annotated[str, typer.Option(help="the institution it reports to")],
) -> None:
    """Register a collection point (信息采集点)."""
    with _app() as app:
        Organisation(app.db).add_collection_point(code, name=name, area=area, institution=institution)
    console.print(f"collection point {code} {name}")


@org_app.command("add-operator")
def org_add_operator(
    operator_id: Annotated[str, typer.Argument(help="the operator's id (login)")],
    name: Annotated[str, typer.Option(help="their name")],
    role: Annotated[str, typer.Option(help=", ".join(r.value for r in Role))],
    institution: Annotated[str, typer.Option(help="their institution")],
    point: Annotated[str | None, typer.Option(help="their collection point")] = None,
) -> None:
    """Register an operator with a role."""
    with _app() as app:
        Organisation(app.db).add_operator(OperatorSpec(operator_id, name, role, institution, point))
    console.print(f"operator {operator_id} ({role})")


# --- applications ----------------------------------------------------------------------------------------
def apply(
    source: Annotated[
        Path | None, typer.Argument(help="the application as JSON (field names of docs/issuance.md)")
    ] = None,
    name: Annotated[str | None, typer.Option(help="姓名")] = None,
    sex: Annotated[int | None, typer.Option(help="1 male, 2 female (GB/T 2261.1)")] = None,
    birth_date: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
    id_number: Annotated[str | None, typer.Option(help="citizen ID or other ID-document number")] = None,
    id_type: Annotated[str | None, typer.Option(help="01 citizen ID … (WS 364.3 CV02.01.101)")] = None,
    ethnicity: Annotated[str | None, typer.Option(help="GB 3304 code, 01 = 汉")] = None,
    photo: Annotated[Path | None, typer.Option(help="a JPEG photo")] = None,
    city: Annotated[
        str | None, typer.Option(help="application city, GB/T 2260 (default: from the ID)")
    ] = None,
    phone: Annotated[str | None, typer.Option(help="own phone")] = None,
    address: Annotated[str | None, typer.Option(help="registered address (户籍地址)")] = None,
    point: Annotated[
        str | None, typer.Option(envvar="HEALTHCARD_COLLECTION_POINT", help="collection point")
    ] = None,
    operator: Operator = "",
) -> None:
    """Take an application at a collection point (申领)."""
    raw: dict[str, object] = {}
    if source is not None:
        raw.update(json.loads(source.read_text(encoding="utf-8")))
    given = {
        "name": name,
        "sex": sex,
        "birth_date": birth_date,
        "id_number": id_number,
        "id_type": id_type,
        "ethnicity": ethnicity,
        "city_code": city,
    }
    raw.update({k: v for k, v in given.items() if v is not None})
    raw.setdefault("id_type", "01")
    raw.setdefault("ethnicity", "01")
    if photo is not None:
        raw["photo"] = base64.b64encode(photo.read_bytes()).decode()
    if phone is not None:
        raw["phones"] = [phone]
    if address is not None:
        raw["addresses"] = [["1", address]]
    with _app() as app:
        view = app.cards.submit(operator, raw, collection_point=point)
    console.print(
        f"application [bold]{view.number}[/bold] · {view.name} · {view.card_number} · {view.status.value}"
    )


def approve(
    number: Annotated[str, typer.Argument(help="application number")], operator: Operator = ""
) -> None:
    """Approve an application (card centre)."""
    with _app() as app:
        view = app.cards.approve(operator, number)
    console.print(f"application {view.number} · {view.status.value}")


def reject(
    number: Annotated[str, typer.Argument(help="application number")],
    reason: Annotated[str, typer.Option(help="why")],
    operator: Operator = "",
) -> None:
    """Reject an application (card centre)."""
    with _app() as app:
        view = app.cards.reject(operator, number, reason)
    console.print(f"application {view.number} · {view.status.value}: {reason}")


def applications(
    status: Annotated[str | None, typer.Option(help="SUBMITTED, APPROVED, ISSUED or REJECTED")] = None,
    limit: int = 50,
) -> None:
    """The newest applications."""
    with _app() as app:
        rows = app.cards.applications(ApplicationStatus(status) if status else None, limit)
    table = Table("number", "kind", "status", "card number", "name", "submitted (Asia/Shanghai)")
    for r in rows:
        table.add_row(
            r.number, r.kind.value, r.status.value, r.card_number, r.name, local_time(r.submitted_at)
        )
    console.print(table)


# --- issue ------------------------------------------------------------------------------------------------
@issue_app.command("one", hidden=True)
def issue_one(
    number: Annotated[str, typer.Argument(help="approved application number")],
    out: Out = None,
    reader: Reader = None,
    passphrase: ImagePassphrase = "",
    operator: Operator = "",
) -> None:
    """Personalise the card of one approved application."""
    with _app() as app:
        card = app.cards.issue(operator, number, _chips(app, out, reader, passphrase))
    _print_card(card)


@issue_app.command("kiosk")
def issue_kiosk(
    id_number: Annotated[str, typer.Option(help="the number read from the resident's ID card")],
    name: Annotated[str, typer.Option(help="the name read from the resident's ID card")],
    reader: Annotated[str, typer.Option(help="the kiosk's card reader (PC/SC name)")],
    operator: Operator = "",
) -> None:
    """Self-service issuance (自助发卡): the approved application of the person whose ID card the
    kiosk read is personalised on the blank card in the kiosk's reader and handed over."""
    with _app() as app:
        card = app.cards.issue_at_kiosk(
            operator, id_number=id_number, name=name, chips=_chips(app, None, reader, "")
        )
    _print_card(card)


@issue_app.command("resume")
def issue_resume(
    out: Out = None, reader: Reader = None, passphrase: ImagePassphrase = "", operator: Operator = ""
) -> None:
    """Settle personalisations a crash left unfinished (completed or voided, never twice)."""
    with _app() as app:
        completed, voided = app.cards.resume(operator, _chips(app, out, reader, passphrase))
    console.print(f"completed {completed}, voided {voided}")


@issue_app.command("batch")
def issue_batch(
    source: Annotated[Path, typer.Argument(help="applications, CSV (columns of docs/issuance.md)")],
    out: Out = None,
    errors: Annotated[
        Path | None, typer.Option(help="refused rows report [default: <FILE>.errors.csv]")
    ] = None,
    chunk: Annotated[int, typer.Option(help="cards per transaction")] = 200,
    workers: Annotated[
        int, typer.Option(help="personalise in this many worker processes (0: in this process)")
    ] = 0,
    photos: Annotated[Path | None, typer.Option(help="folder of the photo_file column")] = None,
    passphrase: ImagePassphrase = "",
    operator: Operator = "",
) -> None:
    """集中发卡: personalise a card for every row; re-run after a crash to finish (never twice)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from healthcard.issuance.batch import run_batch

    report_path = errors or source.with_suffix(".errors.csv")
    with _app() as app:
        chips = _chips(app, out, None, passphrase, workers=workers, durable_each=False)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task("issuing", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            try:
                report = run_batch(
                    app.cards,
                    operator,
                    source,
                    chips,
                    errors=report_path,
                    chunk=chunk,
                    photo_dir=photos,
                    progress=advance,
                )
            finally:
                if isinstance(chips, PooledChips):
                    chips.close()
    console.print(
        f"{report.rows} rows: issued {report.issued} now, {report.already} before, "
        f"refused {report.refused} (→ {report_path}), chip failures {report.failed}, "
        f"resumed {report.resumed}",
        highlight=False,
    )
    if report.refused or report.failed:
        raise typer.Exit(1)


# --- card life cycle ---------------------------------------------------------------------------------------
CardNumber = Annotated[str, typer.Argument(help="card number (= citizen ID number)")]
Reason = Annotated[str, typer.Option(help="why")]


def card_status(number: CardNumber) -> None:
    """The card's chips, status and history."""
    with _app() as app:
        history = app.cards.card(number)
    print_history(history)


def _life(call: Callable[[App], CardView]) -> None:
    with _app() as app:
        card = call(app)
    _print_card(card)


def card_activate(number: CardNumber, operator: Operator = "") -> None:
    """Hand the card over to the resident (领卡): ISSUED → ACTIVE."""
    _life(lambda app: app.cards.activate(operator, number))


def card_report_lost(number: CardNumber, reason: Reason = "reported lost", operator: Operator = "") -> None:
    """挂失: the chip goes on the hot list."""
    _life(lambda app: app.cards.report_lost(operator, number, reason))


def card_recover(number: CardNumber, reason: Reason = "found again", operator: Operator = "") -> None:
    """解挂: a lost card found again comes off the hot list."""
    _life(lambda app: app.cards.recover(operator, number, reason))


def card_replace(
    number: CardNumber,
    out: Out = None,
    reader: Reader = None,
    reason: Reason = "lost",
    passphrase: ImagePassphrase = "",
    operator: Operator = "",
) -> None:
    """补卡: a new chip, the same card number and on-card data; the old chip hot-listed."""
    with _app() as app:
        card = app.cards.replace(operator, number, _chips(app, out, reader, passphrase), reason)
    _print_card(card)


def card_cancel(number: CardNumber, reason: Reason, operator: Operator = "") -> None:
    """注销 (death, emigration): the chip goes on the hot list for good."""
    _life(lambda app: app.cards.cancel(operator, number, reason))


def card_expire(operator: Operator = "") -> None:
    """Mark every card past its validity date EXPIRED (a daily job)."""
    with _app() as app:
        count = app.cards.expire_due(operator)
    console.print(f"{count} card(s) expired")


# --- hot list -------------------------------------------------------------------------------------------
@hotlist_app.command("export")
def hotlist_export(
    province: Annotated[str, typer.Option(help="2-digit province code")],
    out: Annotated[Path, typer.Option(help="where to write the signed list")],
    since: Annotated[
        int | None, typer.Option(help="a delta from this version (default: the full list)")
    ] = None,
) -> None:
    """Export the province's signed hot list, full or as a delta."""
    from healthcard.keys.atomicfile import write_atomically
    from healthcard.terminal import hotlist as hot

    with _app() as app:
        signed = app.cards.hotlist(province, since)
    write_atomically(out, hot.encode(signed), mode=0o644)
    kind = "full" if signed.base is None else f"delta from v{signed.base}"
    console.print(
        f"hot list of province {province} v{signed.version} ({kind}): {len(signed.added)} listed, "
        f"{len(signed.removed)} removed → {out}",
        highlight=False,
    )


# --- demo data ------------------------------------------------------------------------------------------
def demo_seed(
    residents: Annotated[int, typer.Option(help="how many residents")] = 1000,
    issue: Annotated[bool, typer.Option(help="also personalise their cards (batch issuance)")] = True,
    out: Out = None,
    seed: Annotated[int, typer.Option(help="random seed (the same seed makes the same people)")] = 2026,
    passphrase: ImagePassphrase = "",
) -> None:
    """Plausible residents of Zhengzhou and Hebi (Henan): names, valid ID numbers, addresses,
    medical alerts; their applications, and (``--issue``) their cards.  Sets up what it needs
    first: the schema, the key store (a ceremony on first use), the card centres and operators
    (``demo-admin-41``, ``demo-clerk-41``)."""
    import random

    from healthcard.clock import SystemClock, local_date
    from healthcard.issuance import seed as seeding
    from healthcard.issuance.batch import run_batch
    from healthcard.keys.keystore import KeyStore

    settings = Settings.from_env()
    db = Database(settings.db_url)
    try:
        db.upgrade()
        if not settings.keystore_path.exists():
            KeyStore.create(settings.keystore_path, kek_from_env(settings.kek), SystemClock())
    except HealthCardError as exc:
        raise fail(exc) from None
    finally:
        db.dispose()
    with _app() as app:
        if app.cards.keys.ensure_demo_keys(PROVINCE_CENTRES):
            console.print("key store: a demo ceremony made national/v1")
        Organisation(app.db).ensure_demo()
        folder = app.settings.data_dir / "demo"
        folder.mkdir(parents=True, exist_ok=True)
        # each province's card centre issues its own residents' cards: one batch file per province
        shares = {"41": residents - residents // 5, "44": residents // 5}
        issued = already = refused = 0
        for province, count in shares.items():
            areas = tuple(a for a in seeding.DEFAULT_AREAS if a[:2] == province)
            source = folder / f"residents-{province}-{seed}-{count}.csv"
            people = seeding.generate_applications(
                count, rng=random.Random(f"{seed}/{province}"), today=local_date(app.clock), areas=areas
            )
            seeding.write_csv(people, source)
            console.print(f"{count} residents of province {province} → {source}")
            if not issue or not count:
                continue
            chips = _chips(app, out, None, passphrase, durable_each=False)
            report = run_batch(
                app.cards, f"demo-admin-{province}", source, chips, errors=source.with_suffix(".errors.csv")
            )
            issued, already, refused = (
                issued + report.issued,
                already + report.already,
                refused + report.refused,
            )
    if issue:
        console.print(f"cards issued {issued} (before: {already}), refused {refused}", highlight=False)


def register(app: typer.Typer, card_app: typer.Typer) -> None:
    """Add the card centre's commands to the ``healthcard`` command line."""
    app.add_typer(db_app, name="db")
    app.add_typer(org_app, name="org")
    app.add_typer(issue_app, name="issue")
    app.add_typer(hotlist_app, name="hotlist")
    app.command("apply")(apply)
    app.command("approve")(approve)
    app.command("reject")(reject)
    app.command("applications")(applications)
    card_app.command("status")(card_status)
    card_app.command("activate")(card_activate)
    card_app.command("report-lost")(card_report_lost)
    card_app.command("recover")(card_recover)
    card_app.command("replace")(card_replace)
    card_app.command("cancel")(card_cancel)
    card_app.command("expire")(card_expire)


__all__ = ["register"]
