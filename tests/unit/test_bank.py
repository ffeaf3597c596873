"""The bank's side of the health account, pure: co-branded account numbers (Luhn), money as bank
files write it, transfer notices and their field-named refusals, the statement file, the
simulated bank and its faults, and the reconciliation's comparison — each kind of mismatch."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum import luhn

from healthcard.clock import FixedClock
from healthcard.errors import InvalidValue, TransitionRefused
from healthcard.platform.settlement import bank as bk
from healthcard.platform.settlement.bank import BankLine, Booked, Direction, MismatchKind, Transfer

DAY = dt.date(2026, 3, 2)
CLOCK = FixedClock(dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC))  # 10:00 in Shanghai
A = bk.account_number("demo-bank", 1)
B = bk.account_number("demo-bank", 2)


def transfer(
    ref: str, fen: int = 50_000, account: str = A, direction: Direction = Direction.IN, day: dt.date = DAY
) -> Transfer:
    return Transfer("demo-bank", ref, direction, account, fen, day)


def booked(t: Transfer, ledger_fen: int | None = None, txn: int = 1) -> Booked:
    signed = t.amount_fen if t.direction is Direction.IN else -t.amount_fen
    return Booked(t, "R1", txn, signed if ledger_fen is None else ledger_fen)


def lines(*transfers: Transfer) -> list[BankLine]:
    return [BankLine(n, t) for n, t in enumerate(transfers, start=3)]


# --- account numbers ------------------------------------------------------------------------------
def test_a_co_branded_number_is_the_banks_bin_a_serial_and_a_luhn_digit() -> None:
    assert A.startswith(bk.BANKS["demo-bank"].bin) and len(A) == bk.NUMBER_LENGTH
    assert luhn.is_valid(A) and A[6:-1] == "000000000001"
    assert bk.check_account_number(A, "demo-bank") == A
    assert bk.account_number("demo-rural", 7).startswith(bk.BANKS["demo-rural"].bin)


@pytest.mark.parametrize(
    ("number", "bank", "field", "says"),
    [
        (A[:-1], "demo-bank", "account_number", "19 digits"),
        (A[:-1] + "x", "demo-bank", "account_number", "19 digits"),
        (A, "demo-rural", "account_number", "not an account number of demo-rural"),
        (A[:-1] + str((int(A[-1]) + 1) % 10), "demo-bank", "account_number", "Luhn"),
        (A, "no-bank", "bank", "one of"),
    ],
)
def test_a_wrong_account_number_is_refused_by_field(number: str, bank: str, field: str, says: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        bk.check_account_number(number, bank)
    assert refused.value.field == field and says in refused.value.message


def test_serials_out_of_range_are_refused() -> None:
    with pytest.raises(InvalidValue, match="serial"):
        bk.account_number("demo-bank", 10**12)
    with pytest.raises(InvalidValue, match="serial"):
        bk.account_number("demo-bank", -1)


# --- money in files -----------------------------------------------------------------------------
@given(st.integers(min_value=0, max_value=10**13))
def test_yuan_and_fen_round_trip(fen: int) -> None:
    assert bk.fen_of(bk.yuan(fen)) == fen


@pytest.mark.parametrize("text", ["1.5", "1.234", "-1.00", "01.00", "1e3", "", "1,00", "0.1"])
def test_amounts_not_in_two_decimals_are_refused(text: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        bk.fen_of(text, "statement[3].amount")
    assert refused.value.field == "statement[3].amount"


def test_yuan_refuses_what_is_not_whole_fen() -> None:
    assert bk.yuan(0) == "0.00" and bk.yuan(50_007) == "500.07"
    for bad in (-1, 1.5, True):
        with pytest.raises(InvalidValue):
            bk.yuan(bad)  # type: ignore[arg-type]


# --- notices ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"bank": "no-bank"}, "bank"),
        ({"bank_ref": "A:1"}, "bank_ref"),
        ({"bank_ref": "x" * 41}, "bank_ref"),
        ({"bank_ref": ""}, "bank_ref"),
        ({"direction": "sideways"}, "direction"),
        ({"account_number": "123"}, "account_number"),
        ({"amount_fen": 0}, "amount_fen"),
        ({"amount_fen": -100}, "amount_fen"),
        ({"amount_fen": 1.5}, "amount_fen"),
        ({"amount_fen": True}, "amount_fen"),
        ({"amount_fen": bk.MAX_TRANSFER_FEN + 1}, "amount_fen"),
        ({"value_date": dt.datetime(2026, 3, 2, tzinfo=dt.UTC)}, "value_date"),
        ({"value_date": "2026-03-02"}, "value_date"),
    ],
)
def test_a_notice_with_a_bad_field_is_refused_by_name(changes: dict[str, object], field: str) -> None:
    values: dict[str, object] = {**transfer("REF1").__dict__, **changes}
    with pytest.raises(InvalidValue) as refused:
        Transfer(**values).checked()  # type: ignore[arg-type]
    assert refused.value.field == field


def test_a_direction_given_as_text_becomes_the_enum() -> None:
    checked = Transfer("demo-bank", "R", "out", A, 1, DAY).checked()  # type: ignore[arg-type]
    assert checked.direction is Direction.OUT


# --- the statement file --------------------------------------------------------------------------------
def test_the_statement_file_reads_back_what_was_written() -> None:
    written = [transfer("R1"), transfer("R2", 7, B, Direction.OUT)]
    text = bk.statement_text("demo-bank", DAY, written)
    assert text.splitlines()[1] == ",".join(bk.HEADER)
    assert "R1,in," + A + ",500.00,2026-03-02" in text
    parsed = bk.parse_statement("\ufeff" + text + "\n# end of file\n", bank="demo-bank")
    assert [p.transfer for p in parsed] == written
    assert [p.line for p in parsed] == [3, 4]


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("bank_ref,amount\n", "statement[1]"),
        ("", "statement"),
        ("# only a comment\n", "statement"),
        (f"{','.join(bk.HEADER)}\nR1,in,{A},500.00\n", "statement[2]"),
        (f"{','.join(bk.HEADER)}\nR1,in,{A},500,2026-03-02\n", "statement[2].amount"),
        (f"{','.join(bk.HEADER)}\nR1,up,{A},500.00,2026-03-02\n", "statement[2].direction"),
        (f"{','.join(bk.HEADER)}\nR:1,in,{A},500.00,2026-03-02\n", "statement[2].bank_ref"),
        (f"{','.join(bk.HEADER)}\nR1,in,62x,500.00,2026-03-02\n", "statement[2].account_number"),
        (f"{','.join(bk.HEADER)}\n\nR1,in,{A},500.00,2026-02-30\n", "statement[3].value_date"),
    ],
)
def test_a_statement_that_cannot_be_read_is_refused_naming_the_line(text: str, field: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        bk.parse_statement(text, bank="demo-bank")
    assert refused.value.field == field


# --- the simulated bank ----------------------------------------------------------------------------------
def test_the_simulated_bank_books_deposits_at_once_and_withdrawals_when_accepted(tmp_path: Path) -> None:
    bank = bk.SimulatedBank("demo-bank", tmp_path, CLOCK)
    paid_in = bank.deposit(A, 50_000)
    asked = bank.withdraw(A, 10_000)
    refused = bank.withdraw(A, 90_000)
    assert paid_in.value_date == DAY and paid_in.bank_ref != asked.bank_ref
    assert bank.notices() == [paid_in, asked, refused]
    assert bank.booked(DAY) == [paid_in]  # the withdrawals wait for the platform's answer
    answers = {asked.bank_ref: True, refused.bank_ref: False, paid_in.bank_ref: True}
    results = bk.deliver(
        bank,
        lambda n: (_ for _ in ()).throw(TransitionRefused("no")) if not answers[n.bank_ref] else None,
    )
    assert [(n.bank_ref, error is None) for n, error in results] == [
        (paid_in.bank_ref, True),
        (asked.bank_ref, True),
        (refused.bank_ref, False),
    ]
    assert bank.notices() == []
    assert bank.booked(DAY) == [paid_in, asked]
    path = bank.statement_file(DAY)
    assert path == tmp_path / "demo-bank-20260302.csv"
    assert [
        line.transfer for line in bk.parse_statement(path.read_text(encoding="utf-8"), bank="demo-bank")
    ] == [
        paid_in,
        asked,
    ]
    assert bank.booked(DAY + dt.timedelta(days=1)) == []


def test_the_simulated_bank_drops_duplicates_and_alters_lines_of_its_file(tmp_path: Path) -> None:
    bank = bk.SimulatedBank("demo-bank", tmp_path, CLOCK)
    one, two, three = (bank.deposit(A, fen) for fen in (100, 200, 300))
    bank.drop(one.bank_ref)
    bank.duplicate(two.bank_ref)
    bank.alter(three.bank_ref, amount_fen=301)
    bank.alter(three.bank_ref, account_number=B)
    assert [(t.bank_ref, t.amount_fen, t.account_number) for t in bank.booked(DAY)] == [
        (two.bank_ref, 200, A),
        (two.bank_ref, 200, A),
        (three.bank_ref, 301, B),
    ]
    with pytest.raises(InvalidValue, match="bank_ref"):
        bank.drop("NOT-BOOKED")


def test_an_unknown_bank_cannot_be_simulated(tmp_path: Path) -> None:
    with pytest.raises(InvalidValue, match="bank"):
        bk.SimulatedBank("no-bank", tmp_path, CLOCK)


# --- the comparison --------------------------------------------------------------------------------------
def test_a_clean_day_has_no_mismatch_and_equal_totals() -> None:
    ours = [transfer("R1"), transfer("R2", 2_000, B, Direction.OUT)]
    report = bk.compare("demo-bank", DAY, [booked(t) for t in ours], lines(*ours))
    assert report.clean and report.mismatches == ()
    assert report.ledger == report.statement == bk.Totals(2, 50_000, 2_000, 48_000)


def kinds(report: bk.Reconciliation) -> list[tuple[MismatchKind, str]]:
    return [(m.kind, m.bank_ref) for m in report.mismatches]


def test_every_kind_of_mismatch_is_listed() -> None:
    ours = [
        transfer("ONLY-OURS"),
        transfer("AMOUNT", 1_000),
        transfer("ACCOUNT", 1_000),
        transfer("DIRECTION", 1_000),
        transfer("DUPLICATED", 1_000),
        transfer("LEDGER", 1_000),
    ]
    theirs = [
        transfer("ONLY-THEIRS", 700),
        transfer("AMOUNT", 1_001),
        transfer("ACCOUNT", 1_000, B),
        transfer("DIRECTION", 1_000, direction=Direction.OUT),
        transfer("DUPLICATED", 1_000),
        transfer("DUPLICATED", 1_000),
        transfer("LEDGER", 1_000),
    ]
    report = bk.compare(
        "demo-bank",
        DAY,
        [booked(t, ledger_fen=900 if t.bank_ref == "LEDGER" else None) for t in ours],
        lines(*theirs),
    )
    assert not report.clean
    assert kinds(report) == [
        (MismatchKind.ACCOUNT, "ACCOUNT"),
        (MismatchKind.AMOUNT, "AMOUNT"),
        (MismatchKind.DIRECTION, "DIRECTION"),
        (MismatchKind.DUPLICATE, "DUPLICATED"),
        (MismatchKind.LEDGER, "LEDGER"),
        (MismatchKind.MISSING_IN_BANK, "ONLY-OURS"),
        (MismatchKind.MISSING_IN_LEDGER, "ONLY-THEIRS"),
    ]
    by_ref = {m.bank_ref: m for m in report.mismatches}
    assert (by_ref["AMOUNT"].ledger_amount_fen, by_ref["AMOUNT"].bank_amount_fen) == (1_000, 1_001)
    assert "difference 1 fen" in by_ref["AMOUNT"].detail
    assert (by_ref["ACCOUNT"].ledger_account, by_ref["ACCOUNT"].bank_account) == (A, B)
    assert by_ref["DUPLICATED"].line == 8 and "first on line 7" in by_ref["DUPLICATED"].detail
    assert by_ref["ONLY-THEIRS"].line == 3 and by_ref["ONLY-OURS"].line is None
    assert report.ledger == bk.Totals(6, 55_000, 0, 55_000)
    assert report.statement == bk.Totals(7, 5_701, 1_000, 4_701)


def test_a_transfer_the_sides_dated_differently_reads_as_that() -> None:
    ours_yesterday = transfer("LATE", day=DAY - dt.timedelta(days=1))
    misdated = transfer("MISDATED")
    report = bk.compare(
        "demo-bank",
        DAY,
        [booked(misdated)],
        lines(transfer("LATE"), transfer("MISDATED", day=DAY + dt.timedelta(days=1))),
        {"LATE": booked(ours_yesterday)},
    )
    assert kinds(report) == [(MismatchKind.VALUE_DATE, "LATE"), (MismatchKind.VALUE_DATE, "MISDATED")]
    assert "2026-03-01" in report.mismatches[0].detail
