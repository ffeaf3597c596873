"""The bank's side of the health account (联名卡): the banks that co-issue accounts, their account
numbers, the messages a bank sends (transfer notices: a top-up ``in``, a withdrawal ``out``), the
bank's daily statement file, and the reconciliation of that file against the ledger.

A bank integration is a :class:`Bank`: it has notices for the platform (money received at the
bank for a health account; a holder asking at the bank's counter, ATM or app to take money out of
it), takes the platform's answer (a refused withdrawal is not paid out), and writes one
statement file a day — every transfer value-dated that day, as the bank booked it.  A real bank
delivers the notices by calling ``POST /v1/banks/{bank}/notices`` (or ``…/withdrawals``) and the
file by SFTP; :class:`SimulatedBank` does all of it in process for the demo and the tests, and can
be told to lose, repeat or change a line of its file — the mismatches a real reconciliation finds.

The statement file is CSV (UTF-8), ``#`` lines are comments, the header is fixed::

    bank_ref,direction,account_number,amount,value_date
    DEMOBANK20260302000001,in,6231990000000000015,500.00,2026-03-02

``amount`` in yuan with exactly two decimals (as bank files write it; read with integer
arithmetic into fen, never through a float).

Everything here is pure but :class:`SimulatedBank`'s file writing: the ledger side of a
reconciliation is read by :mod:`healthcard.platform.settlement.health_account`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from stdnum import luhn

from healthcard.clock import Clock, local_date
from healthcard.errors import HealthCardError, InvalidValue


# --- the banks ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class BankInfo:
    """A bank that co-issues health accounts: its code (``health_accounts.bank``, the
    ``bank:<code>`` ledger account, the username of its platform account), its name, and the
    issuer identification number (BIN) its co-branded account numbers start with."""

    code: str
    name: str
    bin: str


#: The banks the platform has an agreement with.  Fictional BINs in the UnionPay range (62…):
#: the demo's banks are no real bank's.
BANKS: Mapping[str, BankInfo] = {
    b.code: b
    for b in (
        BankInfo("demo-bank", "演示银行", "623199"),
        BankInfo("demo-rural", "演示农商银行", "623198"),
    )
}
#: the bank of the demo city (and the code of its platform account)
DEMO_BANK = "demo-bank"
#: a co-branded account number: BIN (6) + account serial (12) + Luhn check digit = 19 digits,
#: the length of a UnionPay debit card number
NUMBER_LENGTH = 19
_SERIAL_DIGITS = NUMBER_LENGTH - 7
#: a bank reference: what the bank's own systems use; ':' is kept out (the ledger's ref is
#: ``<bank>:<bank_ref>``)
REF = re.compile(r"^[0-9A-Za-z_.-]{1,40}$")
#: the largest single transfer accepted: 1,000,000 yuan (a typo guard, not a limit of the bank)
MAX_TRANSFER_FEN = 100_000_000


def bank_info(code: str, field: str = "bank") -> BankInfo:
    """The bank of ``code``, or :class:`InvalidValue` naming ``field``."""
    info = BANKS.get(code)
    if info is None:
        raise InvalidValue(field, f"{code!r}: one of {', '.join(BANKS)}")
    return info


def account_number(bank: str, serial: int) -> str:
    """The co-branded account number of ``bank`` with ``serial`` (0 ≤ serial < 10¹²): BIN,
    serial, Luhn check digit."""
    info = bank_info(bank)
    if not 0 <= serial < 10**_SERIAL_DIGITS:
        raise InvalidValue("serial", f"0 to {10**_SERIAL_DIGITS - 1}")
    body = f"{info.bin}{serial:0{_SERIAL_DIGITS}d}"
    return body + luhn.calc_check_digit(body)


def check_account_number(number: str, bank: str, field: str = "account_number") -> str:
    """``number`` if it is an account number of ``bank`` (19 digits, its BIN, a valid Luhn
    check digit); :class:`InvalidValue` naming ``field`` otherwise."""
    info = bank_info(bank)
    if not (
        isinstance(number, str) and len(number) == NUMBER_LENGTH and number.isascii() and number.isdigit()
    ):
        raise InvalidValue(field, f"{NUMBER_LENGTH} digits")
    if not number.startswith(info.bin):
        raise InvalidValue(field, f"not an account number of {bank} (they start with {info.bin})")
    if not luhn.is_valid(number):
        raise InvalidValue(field, "the check digit is wrong (Luhn)")
    return number


# --- money as bank files write it ------------------------------------------------------------------
_YUAN = re.compile(r"^(0|[1-9][0-9]{0,11})\.([0-9]{2})$")


def yuan(fen: int) -> str:
    """``fen`` as a bank file writes it: ``500.00``."""
    if isinstance(fen, bool) or not isinstance(fen, int) or fen < 0:
        raise InvalidValue("amount_fen", f"{fen!r}: whole fen, not negative")
    return f"{fen // 100}.{fen % 100:02d}"


def fen_of(text: str, field: str = "amount") -> int:
    """``500.00`` → 50000: exactly two decimals, read as integers (no float in between)."""
    match = _YUAN.match(text.strip())
    if match is None:
        raise InvalidValue(field, f"{text!r}: yuan with two decimals, e.g. 500.00")
    return int(match[1]) * 100 + int(match[2])


# --- the messages ---------------------------------------------------------------------------------
class Direction(StrEnum):
    IN = "in"  # a top-up: money received at the bank for the health account
    OUT = "out"  # a withdrawal: money out of the health account, paid to the holder by the bank


@dataclass(frozen=True)
class Transfer:
    """A transfer notice from ``bank`` (and a line of its statement file): ``bank_ref`` is the
    bank's reference, unique per bank — the same reference again is the same transfer."""

    bank: str
    bank_ref: str
    direction: Direction
    account_number: str
    amount_fen: int
    value_date: dt.date

    def checked(self) -> Transfer:
        """The transfer if every field is acceptable; :class:`InvalidValue` naming the first
        field that is not."""
        bank_info(self.bank)
        if not isinstance(self.bank_ref, str) or not REF.match(self.bank_ref):
            raise InvalidValue("bank_ref", "1 to 40 letters, digits, '_', '.' or '-'")
        try:
            direction = Direction(self.direction)
        except ValueError:
            raise InvalidValue("direction", f"{self.direction!r}: in or out") from None
        check_account_number(self.account_number, self.bank)
        amount = self.amount_fen
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise InvalidValue("amount_fen", f"{amount!r}: whole fen")
        if not 0 < amount <= MAX_TRANSFER_FEN:
            raise InvalidValue("amount_fen", f"{amount}: more than 0 and at most {MAX_TRANSFER_FEN} fen")
        if not isinstance(self.value_date, dt.date) or isinstance(self.value_date, dt.datetime):
            raise InvalidValue("value_date", "a date (YYYY-MM-DD)")
        return self if direction is self.direction else replace(self, direction=direction)


@dataclass(frozen=True)
class BankLine:
    """A line of a bank's statement file: the line number in the file and the transfer."""

    line: int
    transfer: Transfer


# --- the statement file -------------------------------------------------------------------------
HEADER = ("bank_ref", "direction", "account_number", "amount", "value_date")


def statement_name(bank: str, day: dt.date) -> str:
    """The file name of ``bank``'s statement of ``day``: ``demo-bank-20260302.csv``."""
    return f"{bank}-{day:%Y%m%d}.csv"


def statement_text(bank: str, day: dt.date, transfers: Iterable[Transfer]) -> str:
    """The statement file of ``day``: a comment line, the header, a line per transfer."""
    out = io.StringIO()
    out.write(f"# statement of {bank} for {day.isoformat()}\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    for t in transfers:
        writer.writerow(
            (t.bank_ref, t.direction.value, t.account_number, yuan(t.amount_fen), t.value_date.isoformat())
        )
    return out.getvalue()


def parse_statement(text: str, *, bank: str) -> list[BankLine]:
    """The lines of a statement file of ``bank``, as written (a duplicated line twice, a line
    of another day kept: finding those is the reconciliation's job).  A file that cannot be read
    — a wrong header, a malformed field — is refused, naming the line: ``statement[7].amount``."""
    bank_info(bank)
    if text.startswith("\ufeff"):  # a BOM, as spreadsheet programs write UTF-8
        text = text[1:]
    header_seen = False
    lines: list[BankLine] = []
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or (len(row) == 1 and not row[0].strip()) or row[0].startswith("#"):
            continue
        cells = [cell.strip() for cell in row]
        if not header_seen:
            if tuple(cells) != HEADER:
                raise InvalidValue(f"statement[{number}]", f"the header is {','.join(HEADER)}")
            header_seen = True
            continue
        where = f"statement[{number}]"
        if len(cells) != len(HEADER):
            raise InvalidValue(where, f"{len(HEADER)} fields, found {len(cells)}")
        ref, direction, number_, amount, value_date = cells
        if not REF.match(ref):
            raise InvalidValue(f"{where}.bank_ref", f"{ref!r}: 1 to 40 letters, digits, '_', '.' or '-'")
        if direction not in (Direction.IN.value, Direction.OUT.value):
            raise InvalidValue(f"{where}.direction", f"{direction!r}: in or out")
        if not (len(number_) <= 32 and number_.isascii() and number_.isdigit()):
            raise InvalidValue(f"{where}.account_number", f"{number_!r}: digits")
        try:
            day = dt.date.fromisoformat(value_date)
        except ValueError:
            raise InvalidValue(f"{where}.value_date", f"{value_date!r}: YYYY-MM-DD") from None
        transfer = Transfer(bank, ref, Direction(direction), number_, fen_of(amount, f"{where}.amount"), day)
        lines.append(BankLine(number, transfer))
    if not header_seen:
        raise InvalidValue("statement", f"no header line ({','.join(HEADER)}): not a statement file")
    return lines


# --- the integration --------------------------------------------------------------------------------
class Bank(Protocol):
    """What a bank integration implements for the platform."""

    @property
    def code(self) -> str:
        """The bank's code (a key of :data:`BANKS`)."""
        ...

    def notices(self) -> list[Transfer]:
        """Transfer notices the platform has not answered yet, oldest first: top-ups received
        (``in``) and withdrawals asked for at the bank (``out``)."""
        ...

    def acknowledge(self, bank_ref: str, *, accepted: bool) -> None:
        """The platform's answer to a notice: an accepted withdrawal is paid out to the holder,
        a refused one is not; a refused top-up stays at the bank (to be returned to whoever paid
        it in) — and on its statement, where the reconciliation finds it."""
        ...

    def statement_file(self, day: dt.date) -> Path:
        """The bank's statement file of ``day``."""
        ...


def deliver(
    bank: Bank, receive: Callable[[Transfer], object]
) -> list[tuple[Transfer, HealthCardError | None]]:
    """Hand every pending notice of ``bank`` to ``receive`` (the platform) and tell the bank the
    answer; a refusal (a :class:`HealthCardError`) is answered and kept in the result, anything
    else stops the delivery with the notice still pending (it is delivered again next time —
    the platform's answer to a repeat is the first one)."""
    results: list[tuple[Transfer, HealthCardError | None]] = []
    for notice in bank.notices():
        try:
            receive(notice)
        except HealthCardError as refused:
            bank.acknowledge(notice.bank_ref, accepted=False)
            results.append((notice, refused))
        else:
            bank.acknowledge(notice.bank_ref, accepted=True)
            results.append((notice, None))
    return results


class SimulatedBank:
    """A bank in process (the demo and the tests): it books deposits at once and withdrawals once
    the platform accepts them, keeps the notices until answered, and writes its statement file
    of a day into ``directory``.  :meth:`drop`, :meth:`duplicate` and :meth:`alter` change what
    the file will say about one transfer — what the bank's real systems sometimes do.
    ``serial``: the last serial of its references already used (a bank started again goes on
    from there, so that no reference names two transfers)."""

    def __init__(self, code: str, directory: Path, clock: Clock, *, serial: int = 0) -> None:
        bank_info(code)
        self.code = code
        self.directory = directory
        self._clock = clock
        self._lock = threading.Lock()
        self._serial = serial
        self._booked: list[Transfer] = []
        self._pending: dict[str, Transfer] = {}
        self._dropped: set[str] = set()
        self._duplicated: list[str] = []
        self._altered: dict[str, Transfer] = {}

    # --- what holders do at the bank ---
    def _notice(
        self, direction: Direction, account: str, amount_fen: int, value_date: dt.date | None
    ) -> Transfer:
        day = value_date or local_date(self._clock)
        with self._lock:
            self._serial += 1
            ref = f"{self.code.replace('-', '').upper()}{day:%Y%m%d}{self._serial:06d}"
            transfer = Transfer(self.code, ref, direction, account, amount_fen, day).checked()
            if direction is Direction.IN:  # the money is at the bank already
                self._booked.append(transfer)
            self._pending[ref] = transfer
        return transfer

    def deposit(self, account_number: str, amount_fen: int, *, value_date: dt.date | None = None) -> Transfer:
        """Someone pays ``amount_fen`` in for the account at the bank: booked, and a notice."""
        return self._notice(Direction.IN, account_number, amount_fen, value_date)

    def withdraw(
        self, account_number: str, amount_fen: int, *, value_date: dt.date | None = None
    ) -> Transfer:
        """The holder asks for ``amount_fen`` out of the account: a notice, booked if accepted."""
        return self._notice(Direction.OUT, account_number, amount_fen, value_date)

    # --- the protocol ---
    def notices(self) -> list[Transfer]:
        with self._lock:
            return list(self._pending.values())

    def acknowledge(self, bank_ref: str, *, accepted: bool) -> None:
        with self._lock:
            transfer = self._pending.pop(bank_ref, None)
            if transfer is not None and accepted and transfer.direction is Direction.OUT:
                self._booked.append(transfer)

    def booked(self, day: dt.date) -> list[Transfer]:
        """What the statement of ``day`` says (the faults applied)."""
        with self._lock:
            lines: list[Transfer] = []
            for transfer in self._booked:
                ref = transfer.bank_ref
                if ref in self._dropped:
                    continue
                shown = self._altered.get(ref, transfer)
                if shown.value_date != day:
                    continue
                lines.append(shown)
                lines.extend(shown for _ in range(self._duplicated.count(ref)))
            return lines

    def statement_file(self, day: dt.date) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / statement_name(self.code, day)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(statement_text(self.code, day, self.booked(day)), encoding="utf-8")
        os.replace(tmp, path)
        return path

    # --- faults ---
    def _known(self, bank_ref: str) -> Transfer:
        found = next((t for t in self._booked if t.bank_ref == bank_ref), None)
        if found is None:
            raise InvalidValue("bank_ref", f"{bank_ref}: not booked at {self.code}")
        return found

    def drop(self, bank_ref: str) -> None:
        """The statement file will leave the transfer out."""
        with self._lock:
            self._known(bank_ref)
            self._dropped.add(bank_ref)

    def duplicate(self, bank_ref: str) -> None:
        """The statement file will list the transfer once more."""
        with self._lock:
            self._known(bank_ref)
            self._duplicated.append(bank_ref)

    def alter(
        self,
        bank_ref: str,
        *,
        amount_fen: int | None = None,
        account_number: str | None = None,
        direction: Direction | None = None,
        value_date: dt.date | None = None,
    ) -> None:
        """The statement file will say something else of the transfer."""
        with self._lock:
            shown = self._altered.get(bank_ref) or self._known(bank_ref)
            self._altered[bank_ref] = replace(
                shown,
                amount_fen=shown.amount_fen if amount_fen is None else amount_fen,
                account_number=account_number or shown.account_number,
                direction=direction or shown.direction,
                value_date=value_date or shown.value_date,
            )


# --- reconciliation ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Booked:
    """A transfer as the platform booked it: its ``bank_transfers`` row, and ``ledger_fen`` — what
    its ledger transaction moved on the holder's health account (+ in, − out)."""

    transfer: Transfer
    resident_id: str
    txn_id: int
    ledger_fen: int


class MismatchKind(StrEnum):
    MISSING_IN_LEDGER = "missing-in-ledger"  # on the bank's statement, not booked by the platform
    MISSING_IN_BANK = "missing-in-bank"  # booked by the platform, not on the bank's statement
    AMOUNT = "amount"  # both have it, with different amounts
    ACCOUNT = "account"  # both have it, for different account numbers
    DIRECTION = "direction"  # one says in, the other out
    VALUE_DATE = "value-date"  # both have it, on different value dates
    DUPLICATE = "duplicate"  # the statement lists the same reference again
    LEDGER = "ledger"  # the platform's transfer row and its ledger transaction disagree


@dataclass(frozen=True)
class Mismatch:
    kind: MismatchKind
    bank_ref: str
    detail: str
    line: int | None = None  # the line of the statement file, when it is on it
    ledger_amount_fen: int | None = None
    bank_amount_fen: int | None = None
    ledger_account: str | None = None
    bank_account: str | None = None


@dataclass(frozen=True)
class Totals:
    """One side's count of transfers and sums in fen."""

    count: int
    in_fen: int
    out_fen: int
    net_fen: int  # in − out

    @classmethod
    def of(cls, transfers: Iterable[Transfer]) -> Totals:
        count = in_fen = out_fen = 0
        for t in transfers:
            count += 1
            if t.direction is Direction.IN:
                in_fen += t.amount_fen
            else:
                out_fen += t.amount_fen
        return cls(count, in_fen, out_fen, in_fen - out_fen)


@dataclass(frozen=True)
class Reconciliation:
    """The daily reconciliation of ``bank``'s statement of ``day`` against the ledger: each
    side's totals and every mismatch (``clean``: none)."""

    bank: str
    day: dt.date
    ledger: Totals
    statement: Totals
    mismatches: tuple[Mismatch, ...]
    clean: bool


def _signed(t: Transfer) -> int:
    return t.amount_fen if t.direction is Direction.IN else -t.amount_fen


def compare(
    bank: str,
    day: dt.date,
    booked: Sequence[Booked],
    lines: Sequence[BankLine],
    elsewhere: Mapping[str, Booked] | None = None,
) -> Reconciliation:
    """Reconcile: ``booked`` — the platform's transfers of ``bank`` value-dated ``day``;
    ``lines`` — the bank's statement of that day; ``elsewhere`` — the platform's transfers of
    other days for references on the statement that ``booked`` lacks (so that a transfer the two
    sides dated differently reads as that, not as two missing transfers)."""
    elsewhere = elsewhere or {}
    ours = {b.transfer.bank_ref: b for b in booked}
    found: list[Mismatch] = []
    seen: dict[str, int] = {}
    for b in booked:
        if b.ledger_fen != _signed(b.transfer):
            found.append(
                Mismatch(
                    MismatchKind.LEDGER,
                    b.transfer.bank_ref,
                    f"the transfer says {b.transfer.direction.value} {yuan(b.transfer.amount_fen)}, its ledger "
                    f"transaction {b.txn_id} moved {b.ledger_fen} fen on health:{b.resident_id}",
                    ledger_amount_fen=b.transfer.amount_fen,
                    ledger_account=b.transfer.account_number,
                )
            )
    for bank_line in lines:
        theirs = bank_line.transfer
        ref = theirs.bank_ref
        at = bank_line.line
        if ref in seen:
            found.append(
                Mismatch(
                    MismatchKind.DUPLICATE,
                    ref,
                    f"listed again (first on line {seen[ref]})",
                    line=at,
                    bank_amount_fen=theirs.amount_fen,
                    bank_account=theirs.account_number,
                )
            )
            continue
        seen[ref] = at
        mine = ours.get(ref) or elsewhere.get(ref)
        if mine is None:
            found.append(
                Mismatch(
                    MismatchKind.MISSING_IN_LEDGER,
                    ref,
                    f"{theirs.direction.value} {yuan(theirs.amount_fen)} for {theirs.account_number} on "
                    f"{theirs.value_date.isoformat()}: the platform booked no such transfer",
                    line=at,
                    bank_amount_fen=theirs.amount_fen,
                    bank_account=theirs.account_number,
                )
            )
            continue
        t = mine.transfer
        differences = (
            (
                MismatchKind.VALUE_DATE,
                t.value_date != theirs.value_date,
                f"the platform booked it on {t.value_date.isoformat()}, the bank on {theirs.value_date.isoformat()}",
            ),
            (
                MismatchKind.DIRECTION,
                t.direction != theirs.direction,
                f"the platform booked it {t.direction.value}, the bank {theirs.direction.value}",
            ),
            (
                MismatchKind.ACCOUNT,
                t.account_number != theirs.account_number,
                f"the platform booked it for {t.account_number}, the bank for {theirs.account_number}",
            ),
            (
                MismatchKind.AMOUNT,
                t.amount_fen != theirs.amount_fen,
                f"the platform booked {yuan(t.amount_fen)}, the bank {yuan(theirs.amount_fen)} "
                f"(difference {theirs.amount_fen - t.amount_fen} fen)",
            ),
        )
        found.extend(
            Mismatch(
                kind,
                ref,
                detail,
                line=at,
                ledger_amount_fen=t.amount_fen,
                bank_amount_fen=theirs.amount_fen,
                ledger_account=t.account_number,
                bank_account=theirs.account_number,
            )
            for kind, differs, detail in differences
            if differs
        )
    for ref, b in ours.items():
        if ref not in seen:
            t = b.transfer
            found.append(
                Mismatch(
                    MismatchKind.MISSING_IN_BANK,
                    ref,
                    f"{t.direction.value} {yuan(t.amount_fen)} for {t.account_number}: not on the bank's statement",
                    ledger_amount_fen=t.amount_fen,
                    ledger_account=t.account_number,
                )
            )
    found.sort(key=lambda m: (m.bank_ref, m.line or 0, m.kind.value))
    return Reconciliation(
        bank,
        day,
        Totals.of(b.transfer for b in booked),
        Totals.of(bl.transfer for bl in lines),
        tuple(found),
        not found,
    )


__all__ = [
    "BANKS",
    "DEMO_BANK",
    "HEADER",
    "MAX_TRANSFER_FEN",
    "NUMBER_LENGTH",
    "Bank",
    "BankInfo",
    "BankLine",
    "Booked",
    "Direction",
    "Mismatch",
    "MismatchKind",
    "Reconciliation",
    "SimulatedBank",
    "Totals",
    "Transfer",
    "account_number",
    "bank_info",
    "check_account_number",
    "compare",
    "deliver",
    "fen_of",
    "parse_statement",
    "statement_name",
    "statement_text",
    "yuan",
]
