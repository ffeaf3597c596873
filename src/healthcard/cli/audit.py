"""``healthcard audit archive`` and ``healthcard audit verify`` — the audit log's retention.

``archive`` moves every chain's entries older than ``--before`` (or ``--hot-days`` days, default
``HEALTHCARD_AUDIT_HOT_DAYS`` = 180) into a new segment in ``--to`` (default
``HEALTHCARD_AUDIT_ARCHIVE_DIR``, else ``$HEALTHCARD_DATA_DIR/audit-archive``); ``verify``
recomputes every chain of the database and, with ``--archives``, every segment.  Exit codes:
0 done / verified, 1 the log does not verify (each problem listed), 2 a refused input.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import func, select

from healthcard.cli.common import console, fail
from healthcard.clock import SHANGHAI, SystemClock
from healthcard.errors import HealthCardError, InvalidValue
from healthcard.platform.access import Actor, Role
from healthcard.platform.audit import NO_RESIDENT, Audit, iso_utc
from healthcard.settings import Settings, audit_hot_days, normalise_url
from healthcard.storage.db import Database
from healthcard.storage.tables import AuditArchive

audit_app = typer.Typer(
    help="The audit log: archive old entries to segments, verify the chains.", no_args_is_help=True
)

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="HEALTHCARD_DATABASE_URL",
        help="the node's database [default: the SQLite file in $HEALTHCARD_DATA_DIR]",
        show_default=False,
    ),
]


def parse_before(text: str) -> dt.datetime:
    """``2026-05-01`` (the start of that day, China time) or an ISO 8601 time (China time when
    it names no offset)."""
    value = text.strip()
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
            return dt.datetime.combine(day, dt.time(), SHANGHAI).astimezone(dt.UTC)
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidValue("before", f"{text!r}: a date (2026-05-01) or an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=SHANGHAI)
    return moment.astimezone(dt.UTC)


def _hot_days(text: str) -> int:
    """As HEALTHCARD_AUDIT_HOT_DAYS, and 0 too (everything older than now: a soak test's)."""
    if text.strip() == "0":
        return 0
    try:
        return audit_hot_days(text)
    except InvalidValue as exc:
        raise InvalidValue("hot-days", exc.message) from None


def _database(url: str | None, settings: Settings) -> Database:
    db = Database(normalise_url(url) if url else settings.db_url)
    try:
        db.require_current()
    except HealthCardError:
        db.dispose()
        raise
    return db


@audit_app.command("archive")
def archive_command(
    before: Annotated[
        str | None,
        typer.Option(
            "--before", help="archive entries older than this (2026-05-01: China time)", show_default=False
        ),
    ] = None,
    hot_days: Annotated[
        str | None,
        typer.Option(
            "--hot-days",
            help="archive entries older than this many days [default: HEALTHCARD_AUDIT_HOT_DAYS, 180]",
            show_default=False,
        ),
    ] = None,
    to: Annotated[
        Path | None,
        typer.Option(
            "--to",
            envvar="HEALTHCARD_AUDIT_ARCHIVE_DIR",
            help="the archive folder [default: $HEALTHCARD_DATA_DIR/audit-archive]",
            show_default=False,
        ),
    ] = None,
    database_url: DatabaseOption = None,
    operator: Annotated[
        str | None,
        typer.Option("--operator", "-o", envvar="HEALTHCARD_OPERATOR", help="who runs it (for the audit)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Move every chain's old entries into a new compressed segment; the run is itself audited."""
    clock = SystemClock()
    try:
        settings = Settings.from_env()
        if before is not None and hot_days is not None:
            raise InvalidValue("before", "--before or --hot-days, not both")
        if before is not None:
            cutoff = parse_before(before)
        else:
            days = _hot_days(hot_days) if hot_days is not None else settings.audit_hot_days
            cutoff = clock.now() - dt.timedelta(days=days)
        folder = to or settings.audit_archive_path
        db = _database(database_url, settings)
        try:
            audit = Audit(clock)
            with db.uow() as uow:
                report = audit.archive(uow, before=cutoff, directory=folder)
                if report.segment is not None:
                    actor = Actor((operator or "healthcard-cli")[:40], Role.ADMIN)
                    audit.record(
                        uow,
                        actor,
                        action="archive",
                        what="audit log",
                        why=f"retention: {report.entries} entries before {iso_utc(cutoff)} to {report.segment}",
                        resident_id=None,
                    )
                uow.commit()
        finally:
            db.dispose()
    except HealthCardError as exc:
        raise fail(exc) from None
    if as_json:
        print(
            json.dumps(
                {
                    "before": iso_utc(report.before),
                    "segment": report.segment,
                    "number": report.number,
                    "entries": report.entries,
                    "chains": report.chains,
                    "size": report.size,
                    "sha256": report.sha256,
                    "skipped": list(report.skipped),
                    "directory": str(folder),
                }
            )
        )
    elif report.segment is None:
        console.print(f"nothing older than {iso_utc(cutoff)} to archive", highlight=False)
    else:
        console.print(
            f"[green]archived[/green] {report.entries} entries of {report.chains} chains before "
            f"{iso_utc(cutoff)} to {folder / report.segment} ({report.size} bytes, sha256 {report.sha256})",
            highlight=False,
        )
    if report.skipped:
        shown = ", ".join(c if c != NO_RESIDENT else "'-'" for c in report.skipped[:10])
        console.print(
            f"[yellow]left in the database:[/yellow] {len(report.skipped)} chains that do not verify "
            f"({shown}{' …' if len(report.skipped) > 10 else ''}): run healthcard audit verify",
            highlight=False,
        )


@audit_app.command("verify")
def verify_command(
    archives: Annotated[
        Path | None,
        typer.Option(
            "--archives",
            help="also verify the archived segments in this folder (and the chains across them)",
            show_default=False,
        ),
    ] = None,
    database_url: DatabaseOption = None,
    max_problems: Annotated[int, typer.Option("--max-problems", help="list at most this many")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Recompute every hash chain (and, with --archives, every segment); exit 1 listing problems."""
    try:
        if not 1 <= max_problems <= 100_000:
            raise InvalidValue("max-problems", "1 to 100000")
        settings = Settings.from_env()
        db = _database(database_url, settings)
        try:
            audit = Audit(SystemClock())
            with db.uow() as uow:
                unchecked = 0
                if archives is not None:
                    report = audit.verify_with_archives(uow, archives, max_problems=max_problems)
                    ok, problems, orphans = report.ok, report.problems, report.orphans
                    counts = {
                        "segments": report.segments,
                        "archived": report.archived,
                        "chains": report.chains,
                        "entries": report.entries,
                    }
                else:
                    hot = audit.verify(uow, max_problems=max_problems)
                    ok, problems, orphans = hot.ok, hot.problems, ()
                    counts = {"chains": hot.chains, "entries": hot.entries}
                    unchecked = uow.session.scalar(select(func.count()).select_from(AuditArchive)) or 0
        finally:
            db.dispose()
    except HealthCardError as exc:
        raise fail(exc) from None
    if as_json:
        print(json.dumps({"ok": ok, **counts, "problems": list(problems), "orphans": list(orphans)}))
    else:
        summary = ", ".join(f"{value} {name}" for name, value in counts.items())
        if ok:
            console.print(f"[green]verified:[/green] {summary}", highlight=False)
        else:
            console.print(f"[red]does not verify:[/red] {summary}; {len(problems)} problems", highlight=False)
            for problem in problems:
                console.print(f"  {problem}", highlight=False, markup=False)
        if unchecked:
            console.print(
                f"note: {unchecked} archived segments not checked (give --archives DIR)", highlight=False
            )
        for orphan in orphans:
            console.print(
                f"note: {orphan} has no row in audit_archives (an interrupted run): ignored", highlight=False
            )
    if not ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
