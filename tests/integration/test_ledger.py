"""The double-entry ledger on both databases: balanced transactions only, health balances that
move with their entries and never below zero, and a verifier that finds what was tampered with."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select, update

from healthcard.errors import InvalidValue, NotFound, TransitionRefused
from healthcard.platform.settlement import ledger
from healthcard.storage import tables as t
from healthcard.storage.db import Database

AT = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)
RESIDENT = "R000000000000001"


@pytest.fixture
def db(database: Database) -> Database:
    with database.uow() as uow:
        uow.session.add(
            t.Resident(
                resident_id=RESIDENT,
                id_type="01",
                id_number="410102199003070019",
                name="张三",
                sex=1,
                birth_date=dt.date(1990, 3, 7),
                created_at=AT,
            )
        )
        uow.flush()  # no ORM relationship orders the two inserts
        uow.session.add(
            t.HealthAccount(
                resident_id=RESIDENT,
                bank="demo-bank",
                account_number="6210000000000001",
                balance_fen=0,
                status="ACTIVE",
                opened_at=AT,
                updated_at=AT,
            )
        )
        uow.commit()
    return database


def _count(db: Database) -> tuple[int, int]:
    with db.uow() as uow:
        return (
            uow.session.scalar(select(func.count()).select_from(t.LedgerTransaction)) or 0,
            uow.session.scalar(select(func.count()).select_from(t.LedgerEntry)) or 0,
        )


def _stored(db: Database) -> int:
    with db.uow() as uow:
        account = uow.session.get(t.HealthAccount, RESIDENT)
        assert account is not None
        return account.balance_fen


def test_a_top_up_and_a_payment_move_the_stored_balance_with_the_entries(db: Database) -> None:
    with db.uow() as uow:
        ledger.post(
            uow,
            "topup",
            "B1",
            ledger.move(ledger.bank("demo-bank"), ledger.health(RESIDENT), 50_000),
            actor="bank",
            at=AT,
            resident_id=RESIDENT,
        )
        ledger.post(
            uow,
            "payment",
            "S1",
            ledger.move(ledger.health(RESIDENT), ledger.cash("410102001"), 12_345),
            actor="cashier",
            at=AT,
            resident_id=RESIDENT,
        )
        uow.commit()
    assert _stored(db) == 37_655
    with db.uow() as uow:
        assert ledger.balance(uow, ledger.health(RESIDENT)) == 37_655
        assert ledger.balance(uow, ledger.bank("demo-bank")) == -50_000
        assert ledger.balances(uow, "cash:") == {"cash:410102001": 12_345}
        check = ledger.verify(uow)
    assert check.balanced and (check.transactions, check.entries, check.total_fen) == (2, 4, 0)


def test_an_unbalanced_transaction_is_refused_and_nothing_is_written(db: Database) -> None:
    with db.uow() as uow, pytest.raises(InvalidValue) as refused:
        ledger.post(
            uow,
            "settlement",
            "S1",
            [ledger.Entry(ledger.fund("demo"), -100), ledger.Entry(ledger.receivable("410102001"), 99)],
            actor="cashier",
            at=AT,
        )
    assert refused.value.field == "entries"
    with db.uow() as uow, pytest.raises(InvalidValue) as refused:
        ledger.post(uow, "gift", "X", ledger.move("fund:demo", "cash:x", 1), actor="a", at=AT)
    assert refused.value.field == "kind"
    assert _count(db) == (0, 0)


def test_a_health_account_never_goes_below_zero_and_refuses_before_writing(db: Database) -> None:
    with db.uow() as uow:
        ledger.post(
            uow,
            "topup",
            "B1",
            ledger.move(ledger.bank("b"), ledger.health(RESIDENT), 100),
            actor="bank",
            at=AT,
            resident_id=RESIDENT,
        )
        uow.commit()
    with db.uow() as uow, pytest.raises(ledger.InsufficientFunds):
        ledger.post(
            uow,
            "payment",
            "S1",
            ledger.move(ledger.health(RESIDENT), ledger.cash("i"), 101),
            actor="cashier",
            at=AT,
            resident_id=RESIDENT,
        )
    assert _count(db) == (1, 2) and _stored(db) == 100
    with db.uow() as uow, pytest.raises(NotFound):
        ledger.post(
            uow, "payment", "S2", ledger.move(ledger.health("NOBODY"), ledger.cash("i"), 1), actor="c", at=AT
        )
    with db.uow() as uow:
        uow.session.execute(update(t.HealthAccount).values(status="FROZEN"))
        uow.commit()
    with db.uow() as uow, pytest.raises(TransitionRefused, match="frozen"):
        ledger.post(
            uow, "payment", "S3", ledger.move(ledger.health(RESIDENT), ledger.cash("i"), 1), actor="c", at=AT
        )


def test_the_database_itself_refuses_a_negative_balance(db: Database) -> None:
    from sqlalchemy.exc import IntegrityError

    with db.uow() as uow, pytest.raises(IntegrityError):
        uow.session.execute(update(t.HealthAccount).values(balance_fen=-1))
        uow.commit()


def test_verify_finds_an_edited_entry_and_a_stored_balance_that_is_not_its_entries(db: Database) -> None:
    with db.uow() as uow:
        ledger.post(
            uow,
            "topup",
            "B1",
            ledger.move(ledger.bank("b"), ledger.health(RESIDENT), 500),
            actor="bank",
            at=AT,
            resident_id=RESIDENT,
        )
        txn = ledger.post(
            uow,
            "funding",
            "P1",
            ledger.move(ledger.premiums("demo"), ledger.fund("demo"), 9_000),
            actor="o",
            at=AT,
        ).txn_id
        uow.commit()
    with db.uow() as uow:
        assert ledger.verify(uow).balanced
        uow.session.execute(
            update(t.LedgerEntry)
            .where(t.LedgerEntry.txn_id == txn, t.LedgerEntry.amount_fen > 0)
            .values(amount_fen=9_001)
        )
        uow.session.execute(update(t.HealthAccount).values(balance_fen=600))
        uow.commit()
    with db.uow() as uow:
        check = ledger.verify(uow)
    assert not check.balanced
    assert check.unbalanced == (txn,) and check.total_fen == 1
    assert check.health_mismatches == (RESIDENT,)


def test_entries_of_zero_are_left_out(db: Database) -> None:
    with db.uow() as uow:
        posted = ledger.post(
            uow,
            "settlement",
            "S1",
            [*ledger.move("fund:demo", "receivable:i", 700), *ledger.move("pocket", "cash:i", 0)],
            actor="c",
            at=AT,
        )
        uow.commit()
    assert len(posted.entries) == 2 and _count(db) == (1, 2)
