"""Audit retention on both databases: archiving old entries to segments, the chains verifiable
across the boundary (and across segments), tampering with a segment, the database or the
register found, a crash between the segment and the commit, "who looked" across the boundary,
the CLI, concurrent appenders during a run, refused inputs."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select, update
from typer.testing import CliRunner

from healthcard.api.app import create_app
from healthcard.cli.main import app as cli
from healthcard.clock import FixedClock
from healthcard.errors import InvalidValue
from healthcard.keys import sm3
from healthcard.platform import auditarchive
from healthcard.platform.access import Actor, Carrier, Role
from healthcard.platform.audit import GENESIS, Audit, canonical
from healthcard.platform.auditarchive import ArchiveVerifyReport
from healthcard.storage import tables as t
from healthcard.storage.db import Database

from .platform_fixtures import CARD, PASSWORD, Platform

NOW = dt.datetime(2026, 1, 10, 2, 0, 0, 250_001, tzinfo=dt.UTC)
DR_WANG = Actor("dr-wang", Role.CLINICIAN, institution_code="410102001", carrier=Carrier.CARD)
RESIDENT = Actor("410102199003070019", Role.RESIDENT, resident_id="R1")
DAY = dt.timedelta(days=1)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def audit(clock: FixedClock) -> Audit:
    return Audit(clock)


def append(
    db: Database, audit: Audit, clock: FixedClock, resident_id: str | None, n: int, step: dt.timedelta
) -> None:
    with db.uow() as uow:
        for i in range(n):
            clock.advance(step)
            audit.record(
                uow, DR_WANG, action="read", what=f"encounter {i}", why="presence", resident_id=resident_id
            )
        uow.commit()


def run_archive(db: Database, audit: Audit, before: dt.datetime, folder: Path) -> auditarchive.ArchiveReport:
    with db.uow() as uow:
        report = audit.archive(uow, before=before, directory=folder)
        uow.commit()
    return report


def check(db: Database, audit: Audit, folder: Path) -> ArchiveVerifyReport:
    with db.uow() as uow:
        return audit.verify_with_archives(uow, folder)


def tamper(db: Database, statement: object) -> None:
    with db.uow() as uow:
        uow.session.execute(statement)  # type: ignore[call-overload]
        uow.commit()


def counts(db: Database) -> tuple[int, int]:
    with db.uow() as uow:
        hot = uow.session.scalar(select(func.count()).select_from(t.AuditEntry)) or 0
        segments = uow.session.scalar(select(func.count()).select_from(t.AuditArchive)) or 0
    return hot, segments


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The archive folder (tmp_path holds the SQLite database too)."""
    return tmp_path / "archive"


@pytest.fixture
def log(database: Database, audit: Audit, clock: FixedClock) -> Database:
    """Day 1–4: R1 gets 4 entries a day apart, R2 2 (days 5, 6), the no-resident chain 1 (day 7);
    then R1 2 more (days 8, 9).  The clock ends on day 9."""
    append(database, audit, clock, "R1", 4, DAY)
    append(database, audit, clock, "R2", 2, DAY)
    append(database, audit, clock, None, 1, DAY)
    append(database, audit, clock, "R1", 2, DAY)
    return database


def test_archive_then_verify_and_the_chain_goes_on(
    log: Database, audit: Audit, clock: FixedClock, folder: Path
) -> None:
    report = run_archive(log, audit, NOW + 5 * DAY + dt.timedelta(hours=1), folder)
    # R1 entries 1–4 (days 1–4), R2 entry 1 (day 5); R2's second and the rest stay
    assert (report.segment, report.number, report.entries, report.chains) == (
        "audit-000001.jsonl.gz",
        1,
        5,
        2,
    )
    assert (folder / "audit-000001.jsonl.gz").stat().st_size == report.size
    assert counts(log) == (4, 1)
    # the hot table alone verifies from the checkpoints, and with the segments
    with log.uow() as uow:
        hot = audit.verify(uow)
        one = audit.verify(uow, "R1")
    assert (hot.ok, hot.chains, hot.entries, hot.problems) == (True, 3, 4, ())
    assert (one.ok, one.chains, one.entries) == (True, 1, 2)  # R1 5–6, from its checkpoint
    full = check(log, audit, folder)
    assert (full.ok, full.segments, full.archived, full.entries, full.problems, full.orphans) == (
        True,
        1,
        5,
        4,
        (),
        (),
    )
    # new entries continue the chains; a second run moves R1 5–6 and R2 2, then all of R2
    append(log, audit, clock, "R1", 1, DAY)
    append(log, audit, clock, "R2", 1, DAY)
    second = run_archive(log, audit, clock.now() - dt.timedelta(hours=12), folder)
    assert (second.segment, second.entries, second.chains) == ("audit-000002.jsonl.gz", 5, 3)
    with log.uow() as uow:
        parts = {
            (p.archive_id, p.chain): (p.first_seq, p.last_seq)
            for p in uow.session.scalars(select(t.AuditArchiveChain))
        }
        hot_rows = uow.session.execute(
            select(t.AuditEntry.chain, t.AuditEntry.seq).order_by(t.AuditEntry.chain)
        ).all()
    assert parts == {
        (1, "R1"): (1, 4),
        (1, "R2"): (1, 1),
        (2, "-"): (1, 1),
        (2, "R1"): (5, 7),
        (2, "R2"): (2, 2),
    }
    assert [tuple(r) for r in hot_rows] == [("R2", 3)]
    full = check(log, audit, folder)
    assert (full.ok, full.segments, full.archived, full.entries) == (True, 2, 10, 1)
    # a chain archived whole (the no-resident chain) verifies, and goes on from its checkpoint
    append(log, audit, clock, None, 1, DAY)
    with log.uow() as uow:
        assert uow.session.scalar(select(t.AuditEntry.seq).where(t.AuditEntry.chain == "-")) == 2
    assert check(log, audit, folder).ok


def test_a_segment_can_be_checked_by_hand(log: Database, audit: Audit, folder: Path) -> None:
    """What docs/platform.md tells an auditor: sha256 of the file, zcat, one JSON line an entry,
    SM3(prev_hash ‖ canonical fields) = hash, each chain from GENESIS."""
    report = run_archive(log, audit, NOW + 5 * DAY + dt.timedelta(hours=1), folder)
    path = folder / str(report.segment)
    import hashlib

    assert hashlib.sha256(path.read_bytes()).hexdigest() == report.sha256
    lines = gzip.decompress(path.read_bytes()).decode("utf-8").splitlines()
    assert len(lines) == 5
    prev: dict[str, str] = {}
    for line in lines:
        entry = json.loads(line)
        assert canonical(entry).decode("utf-8") == line  # the line is canonical JSON itself
        digest, link = entry.pop("hash"), entry.pop("prev_hash")
        assert link == prev.get(entry["chain"], GENESIS)
        assert sm3(link.encode("ascii") + canonical(entry)).hex() == digest
        prev[entry["chain"]] = digest


def test_only_whole_prefixes_move(database: Database, audit: Audit, clock: FixedClock, folder: Path) -> None:
    """A denial written late carries its older time: it and everything after it stay."""
    append(database, audit, clock, "R1", 2, DAY)  # days 1, 2
    with database.uow() as uow:
        clock.advance(10 * DAY)
        audit.record(uow, DR_WANG, action="read", what="summary", why="presence", resident_id="R1")  # day 12
        audit.record(
            uow,
            DR_WANG,
            action="deny",
            what="x",
            why="none",
            resident_id="R1",
            outcome="denied",
            at=NOW + 3 * DAY,
        )
        uow.commit()
    report = run_archive(database, audit, NOW + 5 * DAY, folder)
    assert report.entries == 2
    with database.uow() as uow:
        assert list(uow.session.scalars(select(t.AuditEntry.seq).order_by(t.AuditEntry.seq))) == [3, 4]
    assert check(database, audit, folder).ok


def test_a_chain_that_does_not_verify_stays_in_the_database(
    log: Database, audit: Audit, folder: Path
) -> None:
    tamper(log, update(t.AuditEntry).where(t.AuditEntry.chain == "R2", t.AuditEntry.seq == 1).values(why="x"))
    report = run_archive(log, audit, NOW + 7 * DAY + dt.timedelta(hours=1), folder)
    assert (report.entries, report.chains, report.skipped) == (5, 2, ("R2",))  # R1 1–4 and "-"
    with log.uow() as uow:
        r2 = list(uow.session.scalars(select(t.AuditEntry.seq).where(t.AuditEntry.chain == "R2")))
    assert r2 == [1, 2]
    assert check(log, audit, folder).problems == ("chain R2: entry 1 was altered (its hash does not match)",)


def test_nothing_old_enough_writes_no_segment(log: Database, audit: Audit, folder: Path) -> None:
    report = run_archive(log, audit, NOW, folder)
    assert (report.segment, report.entries) == (None, 0)
    assert not folder.exists() or list(folder.iterdir()) == []
    assert counts(log) == (9, 0)


def test_tampering_is_found(log: Database, audit: Audit, clock: FixedClock, folder: Path) -> None:
    """Each kind of tampering in turn, undone before the next: a flipped byte in a segment, a
    segment deleted, an entry in the database edited, a register row edited (a SHA-256, a
    checkpoint)."""
    run_archive(log, audit, NOW + 5 * DAY + dt.timedelta(hours=1), folder)
    append(log, audit, clock, "R1", 1, DAY)
    run_archive(log, audit, NOW + 8 * DAY + dt.timedelta(hours=1), folder)  # R2 2, "-", R1 5
    assert check(log, audit, folder).ok
    first = folder / "audit-000001.jsonl.gz"
    original = first.read_bytes()

    def found(expected: str) -> tuple[str, ...]:
        report = check(log, audit, folder)
        assert not report.ok
        assert any(p.startswith(expected) for p in report.problems), report.problems
        return report.problems

    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0x01
    first.write_bytes(bytes(flipped))
    found("segment audit-000001.jsonl.gz: altered")
    first.unlink()
    found("segment audit-000001.jsonl.gz: missing")
    first.write_bytes(original)
    assert check(log, audit, folder).ok

    r1_6 = (t.AuditEntry.chain == "R1", t.AuditEntry.seq == 6)
    tamper(log, update(t.AuditEntry).where(*r1_6).values(why="x"))
    found("chain R1: entry 6 was altered (its hash does not match)")
    tamper(log, update(t.AuditEntry).where(*r1_6).values(why="presence"))
    assert check(log, audit, folder).ok

    with log.uow() as uow:
        digest = uow.session.scalar(select(t.AuditArchive.sha256).where(t.AuditArchive.id == 1))
    tamper(log, update(t.AuditArchive).where(t.AuditArchive.id == 1).values(sha256="0" * 64))
    found("segment audit-000001.jsonl.gz: altered")
    tamper(log, update(t.AuditArchive).where(t.AuditArchive.id == 1).values(sha256=digest))

    part = (t.AuditArchiveChain.archive_id == 2, t.AuditArchiveChain.chain == "R1")
    tamper(log, update(t.AuditArchiveChain).where(*part).values(last_hash="f" * 64))
    problems = found("segment audit-000002.jsonl.gz: chain R1: the file holds entries 5–5")
    assert "chain R1: entry 6 does not follow the entry before it" in problems  # the database neither


def test_a_deleted_segment_and_its_rows_are_found(
    log: Database, audit: Audit, clock: FixedClock, folder: Path
) -> None:
    """Someone removes the newest segment, its register rows and its file: the database's first
    entries no longer chain from anything left."""
    run_archive(log, audit, NOW + 5 * DAY + dt.timedelta(hours=1), folder)
    tamper(log, delete(t.AuditArchiveChain))
    tamper(log, delete(t.AuditArchive))
    (folder / "audit-000001.jsonl.gz").unlink()
    report = check(log, audit, folder)
    assert not report.ok
    assert "chain R1: entry 1–4 missing before entry 5" in report.problems
    assert "chain R2: entry 1 missing before entry 2" in report.problems


def test_a_crash_between_segment_and_commit_loses_nothing(
    log: Database, audit: Audit, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = NOW + 5 * DAY + dt.timedelta(hours=1)

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("power cut")

    monkeypatch.setattr(auditarchive, "_register", crash)
    with pytest.raises(RuntimeError):
        run_archive(log, audit, before, folder)
    monkeypatch.undo()
    # the segment is on disk, with no row: every entry is still in the database
    assert (folder / "audit-000001.jsonl.gz").is_file()
    assert counts(log) == (9, 0)
    report = check(log, audit, folder)
    assert (report.ok, report.segments, report.entries, report.orphans) == (
        True,
        0,
        9,
        ("audit-000001.jsonl.gz",),
    )
    # the next run writes the same segment over it and registers it
    again = run_archive(log, audit, before, folder)
    assert (again.segment, again.entries) == ("audit-000001.jsonl.gz", 5)
    assert [p.name for p in folder.iterdir()] == ["audit-000001.jsonl.gz"]  # no temporary left
    report = check(log, audit, folder)
    assert (report.ok, report.archived, report.entries, report.orphans) == (True, 5, 4, ())


def test_who_looked_reads_across_the_boundary(log: Database, clock: FixedClock, folder: Path) -> None:
    audit = Audit(clock, archive_dir=folder)
    with log.uow() as uow:
        audit.record(uow, RESIDENT, action="read", what="summary", why="self", resident_id="R1")  # their own
        uow.commit()
    with log.uow() as uow:
        before = [(v.seq, v.hash) for v in audit.who_looked(uow, ["R1"])]
    run_archive(log, audit, NOW + 5 * DAY + dt.timedelta(hours=1), folder)
    with log.uow() as uow:
        after = audit.who_looked(uow, ["R1"])
        hot_only = Audit(clock).who_looked(uow, ["R1"])
        limited = audit.who_looked(uow, ["R1"], limit=3)
        own = audit.who_looked(uow, ["R1"], include_self=True)
    assert [(v.seq, v.hash) for v in after] == before
    assert [v.seq for v in after] == [6, 5, 4, 3, 2, 1]  # newest first, the resident's own read left out
    assert [v.seq for v in hot_only] == [6, 5]
    assert [v.seq for v in limited] == [6, 5, 4]
    assert [v.seq for v in own] == [7, 6, 5, 4, 3, 2, 1]
    assert (
        after[-1].at == NOW + DAY
        and after[-1].actor == "dr-wang"
        and after[-1].institution_code == "410102001"
    )
    # a segment gone: the entries still in the database, no error
    (folder / "audit-000001.jsonl.gz").unlink()
    with log.uow() as uow:
        assert [v.seq for v in audit.who_looked(uow, ["R1"])] == [6, 5]


def test_appenders_during_an_archive_run(database: Database, clock: FixedClock, folder: Path) -> None:
    """Writers append to the chains being archived, some with old times (late denials): every
    entry ends up either in a segment or in the database, and everything verifies."""
    audit = Audit(clock)
    append(database, audit, clock, "R1", 30, dt.timedelta(minutes=1))
    append(database, audit, clock, "R2", 30, dt.timedelta(minutes=1))
    before = NOW + dt.timedelta(hours=2)
    clock.advance(dt.timedelta(hours=3))
    errors: list[BaseException] = []

    def writer(rid: str) -> None:
        try:
            for i in range(15):
                with database.uow() as uow:
                    old = NOW + dt.timedelta(minutes=i) if i % 2 else None
                    audit.record(
                        uow,
                        DR_WANG,
                        action="deny",
                        what="x",
                        why="none",
                        resident_id=rid,
                        outcome="denied",
                        at=old,
                    )
                    uow.commit()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(rid,)) for rid in ("R1", "R2")]
    for thread in threads:
        thread.start()
    report = run_archive(database, audit, before, folder)
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and not any(thread.is_alive() for thread in threads)
    full = check(database, audit, folder)
    assert full.ok, full.problems
    assert full.archived == report.entries == 60 and full.archived + full.entries == 90


def test_refused_inputs_name_their_field(database: Database, audit: Audit, tmp_path: Path) -> None:
    tmp_path = tmp_path / "here"
    tmp_path.mkdir()
    (tmp_path / "file").write_text("x")
    for before, folder, field in (
        (NOW.replace(tzinfo=None), tmp_path, "before"),
        (NOW + DAY, tmp_path, "before"),
        (NOW - DAY, tmp_path / "file", "directory"),
    ):
        with database.uow() as uow, pytest.raises(InvalidValue) as refused:
            audit.archive(uow, before=before, directory=folder)
        assert refused.value.field == field
    with database.uow() as uow, pytest.raises(InvalidValue) as refused:
        audit.verify_with_archives(uow, tmp_path / "nowhere")
    assert refused.value.field == "archives"
    assert list(tmp_path.iterdir()) == [tmp_path / "file"]  # nothing written


def test_the_cli(log: Database, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``healthcard audit archive`` / ``verify`` as make soak calls them: exit 0, 1 with the
    problems listed, 2 for a refused input."""
    monkeypatch.setenv("HEALTHCARD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("HEALTHCARD_DATABASE_URL", raising=False)
    monkeypatch.delenv("HEALTHCARD_AUDIT_ARCHIVE_DIR", raising=False)
    runner = CliRunner()
    folder = tmp_path / "segments"
    db = ["--database-url", database_url]
    done = runner.invoke(
        cli, ["audit", "archive", "--before", "2026-01-16", "--to", str(folder), *db, "--json"]
    )
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    assert (report["segment"], report["entries"], report["chains"]) == ("audit-000001.jsonl.gz", 5, 2)
    verified = runner.invoke(cli, ["audit", "verify", "--archives", str(folder), *db])
    assert verified.exit_code == 0, verified.output
    assert "verified" in verified.output
    # the rest of the log is older than 30 days; the first run's own audit entry (now) stays
    hot_days = runner.invoke(
        cli, ["audit", "archive", "--hot-days", "30", "--to", str(folder), *db, "--json"]
    )
    assert hot_days.exit_code == 0, hot_days.output
    assert (json.loads(hot_days.output)["segment"], json.loads(hot_days.output)["entries"]) == (
        "audit-000002.jsonl.gz",
        4,
    )
    with log.uow() as uow:
        left = uow.session.execute(select(t.AuditEntry.chain, t.AuditEntry.action, t.AuditEntry.what)).all()
    assert [tuple(row) for row in left] == [("-", "archive", "audit log"), ("-", "archive", "audit log")]
    assert runner.invoke(cli, ["audit", "verify", "--archives", str(folder), *db]).exit_code == 0
    (folder / "audit-000001.jsonl.gz").unlink()
    broken = runner.invoke(cli, ["audit", "verify", "--archives", str(folder), *db])
    assert broken.exit_code == 1
    assert "segment audit-000001.jsonl.gz: missing" in broken.output
    for args, field in (
        (["audit", "archive", "--before", "soon", "--to", str(folder), *db], "before:"),
        (["audit", "archive", "--before", "2026-01-01", "--hot-days", "9", *db], "before:"),
        (["audit", "archive", "--hot-days", "-1", "--to", str(folder), *db], "hot-days:"),
        (["audit", "verify", "--archives", str(tmp_path / "nowhere"), *db], "archives:"),
    ):
        refused = runner.invoke(cli, args)
        assert refused.exit_code == 2 and field in refused.output, (args, refused.output)


def test_a_resident_reads_archived_entries_through_the_api(platform: Platform) -> None:
    """The wired node reads the archive folder of its settings: 张三's access log still shows the
    clinician who looked before the boundary, after the entries moved out."""
    app = platform.app
    rid = platform.resident_id
    with app.db.uow() as uow:
        app.node.audit.record(uow, DR_WANG, action="read", what="summary", why="presence", resident_id=rid)
        uow.commit()
    platform.clock.advance(200 * DAY)
    folder = app.settings.audit_archive_path
    assert app.node.audit.archive_dir == folder
    with app.db.uow() as uow:
        report = app.node.audit.archive(uow, before=platform.clock.now() - 180 * DAY, directory=folder)
        uow.commit()
    assert report.entries >= 1 and (folder / str(report.segment)).is_file()
    with app.db.uow() as uow:
        hot = uow.session.scalar(
            select(func.count()).select_from(t.AuditEntry).where(t.AuditEntry.resident_id == rid)
        )
    assert hot == 0
    client = TestClient(create_app(app))
    token = client.post("/v1/auth/token", json={"username": CARD, "password": PASSWORD}).json()[
        "access_token"
    ]
    looked = client.get(f"/v1/residents/{rid}/access-log", headers={"Authorization": f"Bearer {token}"})
    assert looked.status_code == 200, looked.text
    assert ("dr-wang", "summary", "410102001") in {
        (e["actor"], e["what"], e["institution_code"]) for e in looked.json()
    }
    with app.db.uow() as uow:
        assert app.node.audit.verify_with_archives(uow, folder).ok
