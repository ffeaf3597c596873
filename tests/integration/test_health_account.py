"""The resident's health account on SQLite and PostgreSQL, through the node's use cases: opening,
top-ups from the (simulated) bank booked once per bank reference, conflicting and refused
notices that write nothing, withdrawals never past the balance, frozen and closed accounts,
a balance the database itself keeps from going negative, payments racing on one account, the
statement's running balance, and the daily reconciliation with each kind of mismatch.  The
ledger is checked balanced after each."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from healthcard.clock import local_date
from healthcard.errors import Duplicate, InvalidValue, NotFound, PermissionDenied, TransitionRefused
from healthcard.platform.access import Actor, Carrier, Role
from healthcard.platform.node import Node
from healthcard.platform.settlement import bank as bk
from healthcard.platform.settlement import ledger
from healthcard.platform.settlement.bank import Direction, MismatchKind
from healthcard.platform.settlement.health_account import AccountView, TransferView
from healthcard.storage import tables as t

from .platform_fixtures import CARD, HOSPITAL, PASSWORD, Platform

BANK = "demo-bank"


@dataclass
class Setup:
    platform: Platform
    resident: Actor
    bank: Actor  # the bank's own platform account
    cashier: Actor  # the cashier of HOSPITAL
    admin: Actor
    sim: bk.SimulatedBank

    @property
    def node(self) -> Node:
        return self.platform.app.node

    @property
    def rid(self) -> str:
        return self.platform.resident_id

    @property
    def today(self) -> dt.date:
        return local_date(self.platform.clock)

    def open(self) -> AccountView:
        return self.node.health_accounts.open(self.resident, self.rid, bank=BANK)

    def balance(self) -> int:
        return self.node.health_accounts.account(self.resident, self.rid).balance_fen

    def number(self) -> str:
        return self.node.health_accounts.account(self.resident, self.rid).account_number

    def send(self, notice: bk.Transfer) -> tuple[TransferView, bool]:
        return self.node.health_accounts.receive(self.bank, notice)

    def top_up(self, fen: int, **kwargs: Any) -> TransferView:
        """A deposit at the bank, delivered to the platform and answered."""
        notice = self.sim.deposit(self.number(), fen, **kwargs)
        booked, created = self.send(notice)
        assert created
        self.sim.acknowledge(notice.bank_ref, accepted=True)
        return booked

    def withdraw(self, fen: int) -> TransferView:
        notice = self.sim.withdraw(self.number(), fen)
        booked, created = self.send(notice)
        assert created
        self.sim.acknowledge(notice.bank_ref, accepted=True)
        return booked

    def pay(self, fen: int, ref: str = "bill") -> ledger.Posted:
        """The cashier takes ``fen`` from the account (as the settlement service posts it)."""
        with self.platform.app.db.uow() as uow:
            posted = ledger.post(
                uow,
                "payment",
                ref,
                ledger.move(ledger.health(self.rid), ledger.cash(HOSPITAL), fen, self.rid),
                actor="cashier",
                at=self.platform.clock.now(),
                resident_id=self.rid,
            )
            uow.commit()
            return posted

    def counts(self) -> dict[str, int]:
        """Rows of the tables a refusal must leave alone (and the balance)."""
        with self.platform.app.db.uow() as uow:
            found = {
                table.__tablename__: int(uow.session.scalar(select(func.count()).select_from(table)) or 0)
                for table in (t.HealthAccount, t.BankTransfer, t.LedgerTransaction, t.LedgerEntry)
            }
            found["balance"] = int(
                uow.session.scalar(select(func.coalesce(func.sum(t.HealthAccount.balance_fen), 0))) or 0
            )
            return found

    def balanced(self) -> None:
        with self.platform.app.db.uow() as uow:
            check = ledger.verify(uow)
        assert check.balanced, check

    def audit(self, actor: str) -> list[tuple[str, str, str | None, str]]:
        with self.platform.app.db.uow() as uow:
            rows = uow.session.execute(
                select(t.AuditEntry.action, t.AuditEntry.what, t.AuditEntry.resident_id, t.AuditEntry.outcome)
                .where(t.AuditEntry.actor == actor)
                .order_by(t.AuditEntry.id)
            ).all()
        return [tuple(r) for r in rows]  # type: ignore[misc]

    def swipe_at_hospital(self) -> None:
        """The card at the hospital's cashier terminal: a presence grant there."""
        terminal = Actor(
            self.platform.terminal_id, Role.TERMINAL, institution_code=HOSPITAL, carrier=Carrier.TERMINAL
        )
        self.node.swipe(terminal, card_number=CARD, chip_serial=self.platform.chip_serial, stage="cashier")


def make_setup(platform: Platform, folder: Path) -> Setup:
    node = platform.app.node
    with platform.app.db.uow() as uow:
        for username, role, institution in (
            (BANK, Role.BANK, None),
            ("demo-rural", Role.BANK, None),
            ("cashier", Role.CASHIER, HOSPITAL),
        ):
            node.accounts.create(
                uow,
                username=username,
                name=username,
                role=role,
                password=PASSWORD,
                institution_code=institution,
            )
        uow.commit()
    return Setup(
        platform,
        Actor(CARD, Role.RESIDENT, resident_id=platform.resident_id),
        Actor(BANK, Role.BANK),
        Actor("cashier", Role.CASHIER, institution_code=HOSPITAL),
        Actor("admin", Role.ADMIN),
        bk.SimulatedBank(BANK, folder / "bank", platform.clock),
    )


@pytest.fixture
def s(platform: Platform, tmp_path: Path) -> Setup:
    return make_setup(platform, tmp_path)


def refused(
    kind: type[Exception], call: Callable[[], object], s: Setup, field: str | None = None
) -> Exception:
    """``call`` raises ``kind`` (naming ``field``) and writes nothing."""
    before = s.counts()
    with pytest.raises(kind) as caught:
        call()
    if field is not None:
        assert isinstance(caught.value, InvalidValue) and caught.value.field == field, caught.value
    assert s.counts() == before
    s.balanced()
    return caught.value


# --- the account ------------------------------------------------------------------------------------
def test_a_resident_opens_their_account(s: Setup) -> None:
    view = s.open()
    assert (view.resident_id, view.bank, view.bank_name, view.status, view.balance_fen) == (
        s.rid,
        BANK,
        "演示银行",
        "ACTIVE",
        0,
    )
    assert bk.check_account_number(view.account_number, BANK) == view.account_number
    assert s.node.health_accounts.account(s.resident, s.rid) == view
    assert ("write", "health account", s.rid, "allowed") in s.audit(CARD)
    # one account per person; a bank the platform has no agreement with
    error = refused(Duplicate, lambda: s.open(), s, "resident_id")
    assert "already has a health account" in str(error)
    s.balanced()


def test_an_unknown_bank_and_an_unknown_resident_are_refused(s: Setup) -> None:
    refused(InvalidValue, lambda: s.node.health_accounts.open(s.resident, s.rid, bank="no-bank"), s, "bank")
    refused(NotFound, lambda: s.node.health_accounts.account(s.resident, s.rid), s)
    refused(NotFound, lambda: s.node.health_accounts.open(s.admin, "NO-SUCH-RESIDENT", bank=BANK), s)


def test_who_may_see_the_account(s: Setup) -> None:
    s.open()
    s.top_up(10_000)
    clinician = Actor("dr-wang", Role.CLINICIAN, institution_code=HOSPITAL)
    for stranger in (clinician, s.cashier, s.admin, s.bank):
        refused(PermissionDenied, lambda a=stranger: s.node.health_accounts.account(a, s.rid), s)
    assert s.audit("dr-wang")[-1][-1] == "denied"  # the refusal is in the resident's log
    s.swipe_at_hospital()  # the patient at the window: the cashier reads the balance
    assert s.node.health_accounts.account(s.cashier, s.rid).balance_fen == 10_000
    # the NCMS office reads settlement data of its insured, the health account with it
    insurer = Actor("ncms", Role.INSURER, institution_code=HOSPITAL)
    assert s.node.health_accounts.statement(insurer, s.rid).closing_balance_fen == 10_000


# --- top-ups ---------------------------------------------------------------------------------------
def test_a_top_up_is_booked_once_by_its_bank_reference(s: Setup) -> None:
    s.open()
    notice = s.sim.deposit(s.number(), 50_000)
    first, created = s.send(notice)
    assert created and s.balance() == 50_000
    assert (first.bank_ref, first.direction, first.amount_fen, first.value_date) == (
        notice.bank_ref,
        "in",
        50_000,
        s.today,
    )
    with s.platform.app.db.uow() as uow:
        txn = uow.session.get(t.LedgerTransaction, first.txn_id)
        assert txn is not None and (txn.kind, txn.ref) == ("topup", f"{BANK}:{notice.bank_ref}")
        assert ledger.balance(uow, ledger.bank(BANK)) == -50_000
    s.balanced()
    # the bank sends it again (a lost answer, a retry): the first result, nothing moved
    s.platform.clock.advance(dt.timedelta(minutes=5))
    before = s.counts()
    again, created = s.send(notice)
    assert not created and again == first
    assert s.counts() == before
    assert [a for a in s.audit(BANK) if a[0] == "write"] == [
        ("write", "health account top-up", s.rid, "allowed")
    ]
    s.balanced()


def test_a_notice_reusing_a_reference_for_another_transfer_is_refused(s: Setup) -> None:
    s.open()
    booked = s.top_up(50_000)
    notice = bk.Transfer(BANK, booked.bank_ref, Direction.IN, s.number(), 50_000, s.today)
    for changed in (
        dataclasses.replace(notice, amount_fen=50_001),
        dataclasses.replace(notice, account_number=bk.account_number(BANK, 42)),
        dataclasses.replace(notice, direction=Direction.OUT),
        dataclasses.replace(notice, value_date=s.today - dt.timedelta(days=1)),
    ):
        error = refused(Duplicate, lambda c=changed: s.send(c), s, "bank_ref")
        assert "a reference names one transfer" in str(error)
    assert s.balance() == 50_000


def test_notices_the_platform_cannot_book_are_refused_by_field(s: Setup) -> None:
    s.open()
    good = bk.Transfer(BANK, "REF-1", Direction.IN, s.number(), 1_000, s.today)
    unknown = bk.account_number(BANK, 42)
    refused(
        InvalidValue, lambda: s.send(dataclasses.replace(good, account_number=unknown)), s, "account_number"
    )
    other_bank = bk.account_number("demo-rural", 1)
    refused(
        InvalidValue,
        lambda: s.send(dataclasses.replace(good, account_number=other_bank)),
        s,
        "account_number",
    )
    refused(InvalidValue, lambda: s.send(dataclasses.replace(good, amount_fen=0)), s, "amount_fen")
    refused(InvalidValue, lambda: s.send(dataclasses.replace(good, bank_ref="A:B")), s, "bank_ref")
    # only the bank itself sends its notices
    for impostor in (Actor("demo-rural", Role.BANK), s.resident, s.admin, s.cashier):
        refused(PermissionDenied, lambda a=impostor: s.node.health_accounts.receive(a, good), s)


# --- withdrawals ------------------------------------------------------------------------------------
def test_a_withdrawal_never_goes_past_the_balance(s: Setup) -> None:
    s.open()
    s.top_up(50_000)
    too_much = s.sim.withdraw(s.number(), 50_001)
    error = refused(InvalidValue, lambda: s.send(too_much), s, "amount_fen")
    assert "holds 500.00" in str(error)
    part = s.sim.withdraw(s.number(), 20_000)
    booked, created = s.send(part)
    assert created and booked.direction == "out" and s.balance() == 30_000
    assert s.send(part) == (booked, False) and s.balance() == 30_000  # a repeat moves nothing
    s.withdraw(30_000)
    assert s.balance() == 0
    refused(InvalidValue, lambda: s.send(s.sim.withdraw(s.number(), 1)), s, "amount_fen")
    with s.platform.app.db.uow() as uow:
        assert ledger.balance(uow, ledger.bank(BANK)) == 0  # in and out again
    s.balanced()


# --- frozen, closed ------------------------------------------------------------------------------------
def test_a_frozen_account_takes_and_pays_nothing_and_only_an_empty_one_closes(s: Setup) -> None:
    s.open()
    s.top_up(10_000)
    desk = s.node.health_accounts
    assert desk.set_status(s.resident, s.rid, "FROZEN").status == "FROZEN"
    assert desk.set_status(s.resident, s.rid, "FROZEN").status == "FROZEN"  # again: no change
    error = refused(TransitionRefused, lambda: s.send(s.sim.deposit(s.number(), 100)), s)
    assert "frozen" in str(error)
    refused(TransitionRefused, lambda: s.send(s.sim.withdraw(s.number(), 100)), s)
    refused(TransitionRefused, lambda: s.pay(100), s)
    error = refused(TransitionRefused, lambda: desk.set_status(s.resident, s.rid, "CLOSED"), s)
    assert "withdrawn" in str(error)
    refused(InvalidValue, lambda: desk.set_status(s.resident, s.rid, "GONE"), s, "status")
    assert desk.set_status(s.resident, s.rid, "ACTIVE").status == "ACTIVE"
    s.withdraw(10_000)
    assert desk.set_status(s.resident, s.rid, "CLOSED").status == "CLOSED"
    refused(TransitionRefused, lambda: desk.set_status(s.resident, s.rid, "ACTIVE"), s)
    refused(TransitionRefused, lambda: s.send(s.sim.deposit(s.number(), 100)), s)
    refused(Duplicate, lambda: s.open(), s, "resident_id")  # a closed account is not reopened


# --- never negative -------------------------------------------------------------------------------------
def test_the_database_itself_refuses_a_negative_balance(s: Setup) -> None:
    s.open()
    s.top_up(1_000)
    with s.platform.app.db.uow() as uow, pytest.raises(IntegrityError):
        uow.session.execute(update(t.HealthAccount).values(balance_fen=-1))
        uow.flush()
    with s.platform.app.db.uow() as uow, pytest.raises(IntegrityError):
        uow.session.execute(update(t.HealthAccount).values(balance_fen=t.HealthAccount.balance_fen - 1_001))
    refused(ledger.InsufficientFunds, lambda: s.pay(1_001), s)
    assert s.balance() == 1_000


def test_payments_racing_on_one_account_never_overdraw_it(s: Setup) -> None:
    """20 cashiers take 30.00 each from 500.00 at once: exactly 16 are paid, 20.00 is left."""
    s.open()
    s.top_up(50_000)
    start = threading.Barrier(20)
    outcomes: list[str] = []
    lock = threading.Lock()

    def pay(n: int) -> None:
        start.wait()
        try:
            s.pay(3_000, ref=f"bill-{n}")
            outcome = "paid"
        except ledger.InsufficientFunds:
            outcome = "refused"
        except Exception as exc:  # reported by the assertion below
            outcome = repr(exc)
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=pay, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(outcomes) == ["paid"] * 16 + ["refused"] * 4
    assert s.balance() == 2_000
    statement = s.node.health_accounts.statement(s.resident, s.rid, limit=500)
    assert [line.balance_fen for line in statement.lines] == [50_000 - 3_000 * n for n in range(17)]
    assert all(line.balance_fen >= 0 for line in statement.lines)
    s.balanced()


def test_copies_of_one_notice_racing_book_it_once(s: Setup) -> None:
    s.open()
    notice = s.sim.deposit(s.number(), 7_700)
    start = threading.Barrier(8)
    answers: list[tuple[TransferView, bool] | str] = []

    def send() -> None:
        start.wait()
        try:
            answer: tuple[TransferView, bool] | str = s.send(notice)
        except Exception as exc:  # reported by the assertion below
            answer = repr(exc)
        answers.append(answer)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(not isinstance(a, str) for a in answers), answers
    booked = [a for a in answers if not isinstance(a, str)]
    assert sorted(created for _, created in booked) == [False] * 7 + [True]
    assert len({view.txn_id for view, _ in booked}) == 1
    assert s.balance() == 7_700 and s.counts()["bank_transfers"] == 1
    s.balanced()


# --- the statement ---------------------------------------------------------------------------------------
def test_the_statement_runs_the_balance_over_days_and_pages(s: Setup) -> None:
    s.open()
    day1 = s.today
    s.top_up(10_000)
    s.pay(3_000)
    s.platform.clock.advance(dt.timedelta(days=1))
    s.top_up(5_000)
    s.withdraw(2_000)
    s.platform.clock.advance(dt.timedelta(days=1))
    s.pay(1_000)
    desk = s.node.health_accounts
    whole = desk.statement(s.resident, s.rid, start=day1, end=s.today)
    assert [(line.kind, line.amount_fen, line.balance_fen) for line in whole.lines] == [
        ("topup", 10_000, 10_000),
        ("payment", -3_000, 7_000),
        ("topup", 5_000, 12_000),
        ("withdrawal", -2_000, 10_000),
        ("payment", -1_000, 9_000),
    ]
    assert [line.counterparty for line in whole.lines] == [
        ledger.bank(BANK),
        ledger.cash(HOSPITAL),
        ledger.bank(BANK),
        ledger.bank(BANK),
        ledger.cash(HOSPITAL),
    ]
    assert (whole.opening_balance_fen, whole.closing_balance_fen, whole.next_after) == (0, 9_000, None)
    assert whole.closing_balance_fen == s.balance()
    assert whole.account_number == s.number()
    # a page at a time: each page opens with the balance the previous one closed with
    pages, after = [], 0
    while True:
        page = desk.statement(s.resident, s.rid, start=day1, end=s.today, after=after, limit=2)
        pages.append(page)
        if page.next_after is None:
            break
        after = page.next_after
    assert [len(p.lines) for p in pages] == [2, 2, 1]
    assert [p.opening_balance_fen for p in pages] == [0, 7_000, 10_000]
    assert [line for p in pages for line in p.lines] == list(whole.lines)
    # the second day alone; a day with nothing
    second = desk.statement(
        s.resident, s.rid, start=day1 + dt.timedelta(days=1), end=day1 + dt.timedelta(days=1)
    )
    assert (
        second.opening_balance_fen,
        [line.amount_fen for line in second.lines],
        second.closing_balance_fen,
    ) == (
        7_000,
        [5_000, -2_000],
        10_000,
    )
    before = desk.statement(
        s.resident, s.rid, start=day1 - dt.timedelta(days=9), end=day1 - dt.timedelta(days=1)
    )
    assert (before.lines, before.opening_balance_fen, before.closing_balance_fen) == ((), 0, 0)
    # the default: the last 30 days up to today
    assert desk.statement(s.resident, s.rid).lines == whole.lines
    for kwargs, field in (
        ({"start": s.today, "end": day1}, "start"),
        ({"start": day1 - dt.timedelta(days=400), "end": day1}, "end"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"after": -1}, "after"),
    ):
        refused(InvalidValue, lambda k=kwargs: desk.statement(s.resident, s.rid, **k), s, field)
    s.balanced()


# --- the daily reconciliation ---------------------------------------------------------------------------
def reconcile(s: Setup, day: dt.date, actor: Actor | None = None) -> bk.Reconciliation:
    text = s.sim.statement_file(day).read_text(encoding="utf-8")
    return s.node.health_accounts.reconcile(actor or s.admin, bank=BANK, day=day, statement=text)


def test_a_clean_day_reconciles(s: Setup) -> None:
    s.open()
    s.top_up(50_000)
    s.top_up(1_234)
    s.withdraw(10_000)
    refused_withdrawal = s.sim.withdraw(s.number(), 10**6)
    with pytest.raises(InvalidValue):
        s.send(refused_withdrawal)
    s.sim.acknowledge(refused_withdrawal.bank_ref, accepted=False)  # the bank pays nothing out
    report = reconcile(s, s.today)
    assert report.clean and report.mismatches == ()
    assert report.ledger == report.statement == bk.Totals(3, 51_234, 10_000, 41_234)
    # the bank reconciles its own file too; nobody else does
    assert reconcile(s, s.today, s.bank).clean
    for stranger in (s.resident, s.cashier, Actor("demo-rural", Role.BANK)):
        refused(PermissionDenied, lambda a=stranger: reconcile(s, s.today, a), s)
    assert ("read", f"bank reconciliation {BANK}", None, "allowed") in s.audit("admin")
    # another day has nothing on either side
    empty = reconcile(s, s.today + dt.timedelta(days=1))
    assert empty.clean and empty.ledger == empty.statement == bk.Totals(0, 0, 0, 0)


def test_the_reconciliation_lists_every_mismatch(s: Setup) -> None:
    s.open()
    dropped = s.top_up(1_000)  # the bank's file leaves it out
    doubled = s.top_up(2_000)  # listed twice
    changed = s.top_up(3_000)  # a different amount on the file
    moved = s.withdraw(500)  # for another account on the file
    lost = s.sim.deposit(s.number(), 4_000)  # the notice never reached the platform
    late = s.top_up(600, value_date=s.today - dt.timedelta(days=1))  # the bank dates it today
    s.node.health_accounts.set_status(s.resident, s.rid, "FROZEN")
    bounced = s.sim.deposit(s.number(), 700)  # refused by the platform: the bank keeps it
    with pytest.raises(TransitionRefused):
        s.send(bounced)
    s.sim.acknowledge(bounced.bank_ref, accepted=False)
    s.sim.drop(dropped.bank_ref)
    s.sim.duplicate(doubled.bank_ref)
    s.sim.alter(changed.bank_ref, amount_fen=3_001)
    s.sim.alter(moved.bank_ref, account_number=bk.account_number(BANK, 42))
    s.sim.alter(late.bank_ref, value_date=s.today)
    report = reconcile(s, s.today)
    assert not report.clean
    found = {(m.kind, m.bank_ref) for m in report.mismatches}
    assert found == {
        (MismatchKind.MISSING_IN_BANK, dropped.bank_ref),
        (MismatchKind.DUPLICATE, doubled.bank_ref),
        (MismatchKind.AMOUNT, changed.bank_ref),
        (MismatchKind.ACCOUNT, moved.bank_ref),
        (MismatchKind.MISSING_IN_LEDGER, lost.bank_ref),
        (MismatchKind.MISSING_IN_LEDGER, bounced.bank_ref),
        (MismatchKind.VALUE_DATE, late.bank_ref),
    }
    assert len(report.mismatches) == 7
    amount = next(m for m in report.mismatches if m.kind is MismatchKind.AMOUNT)
    assert (amount.ledger_amount_fen, amount.bank_amount_fen) == (3_000, 3_001)
    assert report.ledger == bk.Totals(4, 6_000, 500, 5_500)
    assert report.statement == bk.Totals(7, 2_000 * 2 + 3_001 + 4_000 + 600 + 700, 500, 12_301 - 500)
    s.balanced()


def test_a_transfer_row_that_disagrees_with_its_ledger_transaction_is_listed(s: Setup) -> None:
    s.open()
    booked = s.top_up(1_000)
    with s.platform.app.db.uow() as uow:  # someone edits the transfer row behind the ledger's back
        uow.session.execute(
            update(t.BankTransfer).where(t.BankTransfer.bank_ref == booked.bank_ref).values(amount_fen=1_100)
        )
        uow.commit()
    report = reconcile(s, s.today)
    assert [(m.kind, m.bank_ref) for m in report.mismatches] == [
        (MismatchKind.LEDGER, booked.bank_ref),  # no line: the platform's own disagreement first
        (MismatchKind.AMOUNT, booked.bank_ref),
    ]


def test_a_statement_file_that_cannot_be_read_is_refused(s: Setup) -> None:
    desk = s.node.health_accounts
    error = refused(
        InvalidValue,
        lambda: desk.reconcile(s.admin, bank=BANK, day=s.today, statement="bank_ref,amount\nX,1.00\n"),
        s,
    )
    assert isinstance(error, InvalidValue) and error.field == "statement[1]"
    refused(
        InvalidValue, lambda: desk.reconcile(s.admin, bank="no-bank", day=s.today, statement=""), s, "bank"
    )
