"""What must hold in a node's database whatever happened to it — a crash, a database outage, a
killed process, a storm of retries: the invariants ``healthcard platform invariants`` checks.

* **ledger** — every transaction's entries sum to zero, all entries together sum to zero, every
  health account's stored balance is the sum of its entries (:func:`ledger.verify`);
* **settlement-postings** — every settlement (and refund) has its ledger transaction, of its
  kind, with entries, shared with no other settlement, and no settlement was posted twice (two
  ledger transactions of one kind and reference);
* **slots** — a free slot has no live booking, a booked slot has exactly one holder (a live or
  no-show booking), no slot has two live bookings;
* **audit-chain** — every hash chain of the audit log verifies (:meth:`Audit.verify`);
* **idempotency** — no idempotency key is stored twice (settlements, cross-region settlements,
  uploaded visits, bookings).

Each check lists at most ``limit`` offending ids (no personal data: ids, chains and counts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, exists, func, not_, select

from healthcard.clock import Clock, SystemClock
from healthcard.platform.audit import Audit
from healthcard.platform.settlement import ledger
from healthcard.storage import tables as t
from healthcard.storage.db import Database
from healthcard.storage.uow import UnitOfWork

#: a booking that holds its slot: live (BOOKED, CHECKED_IN) or a no-show (the slot stays taken)
HOLDING = (*t.LIVE_BOOKING, "NO_SHOW")
POSTED_KINDS = ("settlement", "refund")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    summary: str  # what was checked ("1 204 transactions, 3 611 entries")
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class InvariantReport:
    checks: tuple[Check, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def broken(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.ok)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": [
                {"name": c.name, "ok": c.ok, "summary": c.summary, "problems": list(c.problems)}
                for c in self.checks
            ],
        }


def _ids(uow: UnitOfWork, query: Any, limit: int) -> list[Any]:
    return list(uow.session.execute(query.limit(limit)).all())


def _ledger(uow: UnitOfWork, limit: int) -> Check:
    found = ledger.verify(uow)
    problems = []
    if found.total_fen != 0:
        problems.append(f"all entries sum to {found.total_fen} fen, not 0")
    problems += [f"transaction {txn} does not sum to zero" for txn in found.unbalanced[:limit]]
    problems += [
        f"health account of {rid}: stored balance ≠ its entries" for rid in found.health_mismatches[:limit]
    ]
    return Check(
        "ledger",
        not problems,
        f"{found.transactions} transactions, {found.entries} entries, sum {found.total_fen} fen",
        tuple(problems),
    )


def _settlement_postings(uow: UnitOfWork, limit: int) -> Check:
    s, x, e = t.Settlement, t.LedgerTransaction, t.LedgerEntry
    count = uow.session.scalar(select(func.count()).select_from(s)) or 0
    problems: list[str] = []
    for sid, kind in _ids(
        uow,
        select(s.id, s.kind)
        .outerjoin(x, x.id == s.txn_id)
        .where((x.id.is_(None)) | (x.kind != s.kind))
        .order_by(s.id),
        limit,
    ):
        problems.append(f"{kind} {sid}: no ledger transaction of its kind")
    for (sid,) in _ids(
        uow, select(s.id).where(not_(exists().where(e.txn_id == s.txn_id))).order_by(s.id), limit
    ):
        problems.append(f"settlement {sid}: its ledger transaction has no entries")
    for txn, n in _ids(
        uow,
        select(s.txn_id, func.count()).group_by(s.txn_id).having(func.count() > 1).order_by(s.txn_id),
        limit,
    ):
        problems.append(f"ledger transaction {txn} is the posting of {n} settlements")
    for kind, ref, n in _ids(
        uow,
        select(x.kind, x.ref, func.count())
        .where(x.kind.in_(POSTED_KINDS))
        .group_by(x.kind, x.ref)
        .having(func.count() > 1)
        .order_by(x.kind, x.ref),
        limit,
    ):
        problems.append(f"{kind} {ref!r} posted {n} times")
    return Check("settlement-postings", not problems, f"{count} settlements and refunds", tuple(problems))


def _slots(uow: UnitOfWork, limit: int) -> Check:
    sl, b = t.Slot, t.Booking
    counts = dict(uow.session.execute(select(sl.status, func.count()).group_by(sl.status)).all())
    live = uow.session.scalar(select(func.count()).select_from(b).where(b.status.in_(t.LIVE_BOOKING))) or 0
    problems: list[str] = []
    for bid, slot in _ids(
        uow,
        select(b.id, b.slot_id)
        .join(sl, sl.id == b.slot_id)
        .where(b.status.in_(t.LIVE_BOOKING), sl.status == "FREE")
        .order_by(b.id),
        limit,
    ):
        problems.append(f"booking {bid} is live on slot {slot}, which is free")
    held = exists().where(and_(b.slot_id == sl.id, b.status.in_(HOLDING)))
    for (slot,) in _ids(uow, select(sl.id).where(sl.status == "BOOKED", not_(held)).order_by(sl.id), limit):
        problems.append(f"slot {slot} is booked by no booking")
    for slot, n in _ids(
        uow,
        select(b.slot_id, func.count())
        .where(b.status.in_(t.LIVE_BOOKING))
        .group_by(b.slot_id)
        .having(func.count() > 1)
        .order_by(b.slot_id),
        limit,
    ):
        problems.append(f"slot {slot} has {n} live bookings")
    booked = int(counts.get("BOOKED", 0))
    summary = f"{sum(int(n) for n in counts.values())} slots, {booked} booked, {live} live bookings"
    return Check("slots", not problems, summary, tuple(problems))


def _audit(uow: UnitOfWork, clock: Clock, limit: int) -> Check:
    report = Audit(clock).verify(uow, max_problems=limit)
    return Check(
        "audit-chain", report.ok, f"{report.chains} chains, {report.entries} entries", tuple(report.problems)
    )


def _idempotency(uow: UnitOfWork, limit: int) -> Check:
    s, c, v, b = t.Settlement, t.CrossRegionSettlement, t.Encounter, t.Booking
    # each kind of key: what it is, the columns it is unique within, the key's column
    keyed: tuple[tuple[str, tuple[Any, ...], Any], ...] = (
        ("settlement", (s.institution_code,), s.idempotency_key),
        ("cross-region", (c.side, c.visiting_city, c.institution_code), c.idempotency_key),
        ("upload", (v.institution_code,), v.upload_key),
        ("booking", (b.booked_by,), b.idempotency_key),
    )
    problems: list[str] = []
    keys = 0
    for what, scope, key in keyed:
        for *where, value, n in _ids(
            uow,
            select(*scope, key, func.count())
            .where(key.is_not(None))
            .group_by(*scope, key)
            .having(func.count() > 1),
            limit,
        ):
            problems.append(f"{what} key {value!r} at {', '.join(map(str, where))} stored {n} times")
        keys += int(uow.session.scalar(select(func.count()).where(key.is_not(None))) or 0)
    return Check("idempotency", not problems, f"{keys} keys", tuple(problems))


def check(uow: UnitOfWork, *, clock: Clock | None = None, limit: int = 20) -> InvariantReport:
    """Every invariant, read in ``uow`` (nothing is written)."""
    return InvariantReport(
        (
            _ledger(uow, limit),
            _settlement_postings(uow, limit),
            _slots(uow, limit),
            _audit(uow, clock or SystemClock(), limit),
            _idempotency(uow, limit),
        )
    )


def check_database(db: Database, *, clock: Clock | None = None, limit: int = 20) -> InvariantReport:
    """:func:`check` in one snapshot (PostgreSQL: REPEATABLE READ, so that a node under load
    is seen at one instant; SQLite's transaction is one already)."""
    with db.uow() as uow:
        if db.dialect == "postgresql":
            uow.session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        return check(uow, clock=clock, limit=limit)


__all__ = ["Check", "InvariantReport", "check", "check_database"]
