"""``healthcard.platform.invariants`` on SQLite and PostgreSQL: a settled bill and a booking keep
every invariant; an unbalanced entry, a second posting of a settlement and a slot freed under a
live booking are each found."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import insert, select, update

from healthcard.platform.invariants import check_database
from healthcard.storage import tables as t
from healthcard.storage.db import Database

from .appointment_fixtures import make_clinic, make_residents, resident
from .settlement_fixtures import INSURED, TOWNSHIP, make_world


def test_the_invariants_hold_and_each_breakage_is_found(database: Database) -> None:
    world = make_world(database)
    eid = world.visit(INSURED[0], TOWNSHIP)
    view, _ = world.settle(INSURED[0], TOWNSHIP, eid, [("YP0001", 2, 850)], key="inv-1")
    clinic = make_clinic(world.node, "410122001", slots=4, walk_in=0, referral=0, days=2)
    (rid,) = make_residents(database, 1, "INV", world.clock)
    booking = world.node.appointments.book(
        resident(rid), clinic.session(1), resident_id=rid, channel="portal", key="inv-b"
    )
    report = check_database(database, clock=world.clock)
    assert report.ok, report.to_dict()
    (keys,) = [c for c in report.checks if c.name == "idempotency"]
    assert keys.summary == "2 keys"  # the settlement's and the booking's

    with database.uow() as uow:
        s = uow.session
        row = s.get(t.Settlement, view.id)
        assert row is not None
        again = s.execute(
            insert(t.LedgerTransaction)
            .values(kind="settlement", ref=f"{TOWNSHIP}:inv-1", actor="x", at=dt.datetime.now(dt.UTC))
            .returning(t.LedgerTransaction.id)
        ).scalar_one()
        s.execute(insert(t.LedgerEntry).values(txn_id=again, account="cash:x", amount_fen=7))
        s.execute(update(t.Slot).where(t.Slot.id == booking.slot_id).values(status="FREE"))
        uow.commit()
    report = check_database(database, clock=world.clock)
    broken = {c.name: c.problems for c in report.broken}
    assert set(broken) == {"ledger", "settlement-postings", "slots"}, report.to_dict()
    assert f"transaction {again} does not sum to zero" in broken["ledger"]
    assert any("posted 2 times" in p for p in broken["settlement-postings"])
    assert broken["slots"] == (f"booking {booking.id} is live on slot {booking.slot_id}, which is free",)
    with database.uow() as uow:
        assert uow.session.scalar(select(t.Booking.status).where(t.Booking.id == booking.id)) == "BOOKED"
