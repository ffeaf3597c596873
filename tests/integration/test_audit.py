"""The hash-chained audit log on both databases: appending, verifying (an edited, a deleted
middle and a deleted tail entry are each found), concurrent appenders, "who looked"."""

from __future__ import annotations

import datetime as dt
import itertools
import threading

import pytest
from sqlalchemy import delete, func, select, update

from healthcard.clock import FixedClock
from healthcard.errors import InvalidValue
from healthcard.platform.access import Actor, Carrier, Role
from healthcard.platform.audit import GENESIS, Audit
from healthcard.storage import tables as t
from healthcard.storage.db import Database

NOW = dt.datetime(2026, 11, 24, 2, 0, 0, 250_001, tzinfo=dt.UTC)
DR_WANG = Actor("dr-wang", Role.CLINICIAN, institution_code="410102001", carrier=Carrier.CARD)
AUDITOR = Actor("audit-1", Role.AUDITOR)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def audit(clock: FixedClock) -> Audit:
    return Audit(clock)


def append(db: Database, audit: Audit, clock: FixedClock, resident_id: str | None, n: int) -> None:
    with db.uow() as uow:
        for i in range(n):
            clock.advance(dt.timedelta(seconds=1))
            audit.record(
                uow, DR_WANG, action="read", what=f"encounter {i}", why="presence", resident_id=resident_id
            )
        uow.commit()


def verify(db: Database, audit: Audit, chain: str | None = None) -> tuple[bool, int, int, tuple[str, ...]]:
    with db.uow() as uow:
        report = audit.verify(uow, chain)
    return report.ok, report.chains, report.entries, report.problems


def tamper(db: Database, statement: object) -> None:
    with db.uow() as uow:
        uow.session.execute(statement)  # type: ignore[call-overload]
        uow.commit()


@pytest.fixture
def log(database: Database, audit: Audit, clock: FixedClock) -> Database:
    """Three chains: R1 with 4 entries, R2 with 2, and the no-resident chain with 1."""
    append(database, audit, clock, "R1", 2)
    append(database, audit, clock, "R2", 2)
    append(database, audit, clock, "R1", 2)
    append(database, audit, clock, None, 1)
    return database


def test_entries_chain_per_resident(log: Database, audit: Audit) -> None:
    with log.uow() as uow:
        rows = uow.session.execute(
            select(t.AuditEntry.chain, t.AuditEntry.seq, t.AuditEntry.prev_hash, t.AuditEntry.hash).order_by(
                t.AuditEntry.chain, t.AuditEntry.seq
            )
        ).all()
        heads = {c: s for c, s in uow.session.execute(select(t.AuditHead.chain, t.AuditHead.seq))}
    assert [(c, s) for c, s, _, _ in rows] == [
        ("-", 1),
        ("R1", 1),
        ("R1", 2),
        ("R1", 3),
        ("R1", 4),
        ("R2", 1),
        ("R2", 2),
    ]
    assert heads == {"-": 1, "R1": 4, "R2": 2}
    r1 = [r for r in rows if r.chain == "R1"]
    assert r1[0].prev_hash == GENESIS
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(r1))
    assert verify(log, audit) == (True, 3, 7, ())


def test_record_returns_what_it_stored(database: Database, audit: Audit) -> None:
    with database.uow() as uow:
        view = audit.record(uow, DR_WANG, action="read", what="encounters", why="care", resident_id="R1")
        uow.commit()
    with database.uow() as uow:
        row = uow.session.scalars(select(t.AuditEntry)).one()
        assert (row.seq, row.chain, row.at, row.hash, row.carrier) == (
            view.seq,
            view.chain,
            view.at,
            view.hash,
            "card",
        )
    assert view.at == NOW and view.outcome == "allowed" and view.institution_code == "410102001"


def test_an_edited_entry_is_found(log: Database, audit: Audit) -> None:
    tamper(
        log,
        update(t.AuditEntry).where(t.AuditEntry.chain == "R1", t.AuditEntry.seq == 2).values(what="nothing"),
    )
    ok, chains, entries, problems = verify(log, audit)
    assert not ok and (chains, entries) == (3, 7)
    assert problems == ("chain R1: entry 2 was altered (its hash does not match)",)


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(log: Database, audit: Audit) -> None:
    tamper(
        log,
        update(t.AuditEntry).where(t.AuditEntry.chain == "R1", t.AuditEntry.seq == 2).values(hash="f" * 64),
    )
    _, _, _, problems = verify(log, audit)
    assert "chain R1: entry 3 does not follow the entry before it" in problems


def test_a_deleted_middle_entry_is_found(log: Database, audit: Audit) -> None:
    tamper(log, delete(t.AuditEntry).where(t.AuditEntry.chain == "R1", t.AuditEntry.seq == 2))
    ok, _, entries, problems = verify(log, audit)
    assert not ok and entries == 6
    assert problems == (
        "chain R1: entry 2 missing before entry 3",
        "chain R1: entry 3 does not follow the entry before it",
    )


def test_a_deleted_first_entry_is_found(log: Database, audit: Audit) -> None:
    tamper(log, delete(t.AuditEntry).where(t.AuditEntry.chain == "R2", t.AuditEntry.seq == 1))
    assert verify(log, audit)[3] == (
        "chain R2: entry 1 missing before entry 2",
        "chain R2: entry 2 does not follow the entry before it",
    )


def test_a_deleted_tail_is_found(log: Database, audit: Audit) -> None:
    tamper(log, delete(t.AuditEntry).where(t.AuditEntry.chain == "R1", t.AuditEntry.seq >= 3))
    ok, _, entries, problems = verify(log, audit)
    assert not ok and entries == 5
    assert problems == ("chain R1: ends at entry 2, its head at 4: entries removed",)


def test_a_chain_deleted_whole_is_found(log: Database, audit: Audit) -> None:
    tamper(log, delete(t.AuditEntry).where(t.AuditEntry.chain == "R2"))
    ok, chains, entries, problems = verify(log, audit)
    assert not ok and (chains, entries) == (3, 5)
    assert problems == ("chain R2: its head counts 2 entries, none is left",)


def test_verify_one_chain(log: Database, audit: Audit) -> None:
    tamper(log, delete(t.AuditEntry).where(t.AuditEntry.chain == "R1", t.AuditEntry.seq == 4))
    assert verify(log, audit, "R2") == (True, 1, 2, ())
    assert not verify(log, audit, "R1")[0]
    assert verify(log, audit, "R9") == (True, 0, 0, ())


@pytest.mark.slow
def test_verify_streams_a_log_longer_than_one_batch(
    database: Database, audit: Audit, clock: FixedClock
) -> None:
    for rid in ("R1", "R2", "R3"):
        append(database, audit, clock, rid, 400)
    assert verify(database, audit) == (True, 3, 1200, ())
    tamper(database, update(t.AuditEntry).where(t.AuditEntry.seq.in_((100, 200))).values(why="x"))
    with database.uow() as uow:
        report = audit.verify(uow, max_problems=4)
    assert not report.ok and len(report.problems) == 5 and report.problems[-1] == "… and 2 more"


def test_appending_after_verification_keeps_the_chain(log: Database, audit: Audit, clock: FixedClock) -> None:
    append(log, audit, clock, "R2", 1)
    assert verify(log, audit) == (True, 3, 8, ())


def test_a_rolled_back_append_leaves_no_trace(database: Database, audit: Audit) -> None:
    with database.uow() as uow:
        audit.record(uow, DR_WANG, action="read", what="encounters", why="care", resident_id="R1")
    with database.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(t.AuditHead)) == 0
        assert uow.session.scalar(select(func.count()).select_from(t.AuditEntry)) == 0


def test_long_text_is_clipped_to_the_columns_and_still_verifies(database: Database, audit: Audit) -> None:
    with database.uow() as uow:
        view = audit.record(uow, DR_WANG, action="read", what="病" * 80, why="因" * 300, resident_id="R1")
        uow.commit()
    assert len(view.what) == 60 and len(view.why) == 200
    assert verify(database, audit)[0]


def test_record_refuses_bad_values_before_writing(database: Database, audit: Audit) -> None:
    for kwargs, field in (
        ({"action": "", "what": "x"}, "action"),
        ({"action": "read-everything", "what": "x"}, "action"),
        ({"action": "read", "what": ""}, "what"),
        ({"action": "read", "what": "x", "outcome": "maybe"}, "outcome"),
    ):
        with database.uow() as uow, pytest.raises(InvalidValue) as refusal:
            audit.record(uow, DR_WANG, why="", resident_id="R1", **kwargs)  # type: ignore[arg-type]
        assert refusal.value.field == field
    with database.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(t.AuditEntry)) == 0


@pytest.mark.parametrize("existing", [0, 3], ids=["new-chain", "existing-chain"])
def test_concurrent_appenders_get_seq_1_to_n_without_gaps(
    database: Database, audit: Audit, clock: FixedClock, existing: int
) -> None:
    append(database, audit, clock, "R1", existing)
    threads, each = 4, 10
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            start.wait()
            for i in range(each):
                with database.uow() as uow:
                    audit.record(uow, DR_WANG, action="read", what=f"t{k} {i}", why="care", resident_id="R1")
                    uow.commit()
        except BaseException as error:  # a failure in a thread is reported by the test
            errors.append(error)

    workers = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert errors == []
    total = existing + threads * each
    with database.uow() as uow:
        seqs = list(uow.session.scalars(select(t.AuditEntry.seq).where(t.AuditEntry.chain == "R1")))
    assert sorted(seqs) == list(range(1, total + 1))
    assert verify(database, audit) == (True, 1, total, ())


def test_who_looked_newest_first_with_limit(database: Database, audit: Audit, clock: FixedClock) -> None:
    resident = Actor("zhangsan", Role.RESIDENT, resident_id="R1")
    with database.uow() as uow:
        audit.record(uow, DR_WANG, action="read", what="encounters", why="presence", resident_id="R1")
        clock.advance(dt.timedelta(minutes=1))
        audit.record(uow, resident, action="read", what="who looked", why="self", resident_id="R1")
        clock.advance(dt.timedelta(minutes=1))
        audit.record(uow, AUDITOR, action="read", what="audit", why="none", resident_id="R1b")
        clock.advance(dt.timedelta(minutes=1))
        audit.record(uow, DR_WANG, action="read", what="encounters", why="presence", resident_id="R2")
        uow.commit()
    with database.uow() as uow:
        assert [v.actor for v in audit.who_looked(uow, ["R1", "R1b"])] == ["audit-1", "dr-wang"]
        assert [v.actor for v in audit.who_looked(uow, ["R1", "R1b"], include_self=True)] == [
            "audit-1",
            "zhangsan",
            "dr-wang",
        ]
        assert [v.actor for v in audit.who_looked(uow, ["R1", "R1b"], limit=1)] == ["audit-1"]
        assert audit.who_looked(uow, []) == []
        with pytest.raises(InvalidValue, match="limit"):
            audit.who_looked(uow, ["R1"], limit=0)
