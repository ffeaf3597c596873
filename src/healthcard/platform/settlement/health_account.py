"""The resident's health account (健康账户), co-branded with a bank (联名卡): it is topped up at the
bank, pays the self-pay part at the cashier, and never goes below zero (SETTLEMENT.md).

Money moves only through the ledger (:func:`~healthcard.platform.settlement.ledger.post`): a
top-up is ``bank:<bank> → health:<resident>``, a withdrawal the reverse, a payment at the window
``health:<resident> → cash:<institution>`` (the settlement service posts that one).  The stored
balance (``health_accounts.balance_fen``) moves with the entries in one conditional UPDATE, and a
CHECK keeps it ≥ 0 whatever the code does.

Every transfer the bank tells of is a ``bank_transfers`` row, once per ``(bank, bank_ref)``,
written in the same transaction as its ledger transaction: a repeated notice finds the row and
answers the first result, moving nothing; a notice that reuses a reference for another transfer
is refused.  The daily reconciliation reads those rows and their ledger transactions for a bank
and a value date and compares them with the bank's statement file (:func:`.bank.compare`).

Two layers, as elsewhere on the platform: :class:`HealthAccounts` works inside the caller's
unit of work (the demo and the settlement service use it so); :class:`HealthAccountDesk` holds
the use cases the API and the CLI call — actor first, one transaction each, through the access
policy (category ``settlement``) and into the audit log.  :class:`~healthcard.platform.node.Node`
holds the desk as ``node.health_accounts``.

Who may do what (docs/health-account.md):

* the resident: open, freeze / unfreeze / close, balance and statement of their own account
  (policy rows ``resident × settlement``: read and write under ``self``);
* the cashier: the balance and statement of the patient at the window (``presence`` / ``care``);
  the NCMS office reads them as it reads settlements;
* the bank (role ``bank``, the account named after its bank code): notices of its own accounts —
  it has no tie to a resident the policy table could name, so the desk checks that the account is
  the bank's own and writes the audit entry itself;
* the daily reconciliation: platform admins (any bank) and the bank itself (its own).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from healthcard.clock import SHANGHAI, Clock, local_date
from healthcard.errors import Duplicate, InvalidValue, NotFound, PermissionDenied, TransitionRefused
from healthcard.platform.access import Access, Action, Actor, Category, Role
from healthcard.platform.audit import Audit
from healthcard.platform.desk import Desk
from healthcard.platform.mpi import Mpi
from healthcard.platform.settlement import bank as bk
from healthcard.platform.settlement import ledger
from healthcard.storage import tables as t
from healthcard.storage.db import Database
from healthcard.storage.uow import UnitOfWork

ACTIVE, FROZEN, CLOSED = "ACTIVE", "FROZEN", "CLOSED"
STATUSES = (ACTIVE, FROZEN, CLOSED)
#: status → what it may become: a frozen account (a lost card, a dispute) takes and pays nothing
#: until unfrozen; a closed one never again, and only an empty account closes
MOVES: dict[str, tuple[str, ...]] = {ACTIVE: (FROZEN, CLOSED), FROZEN: (ACTIVE, CLOSED), CLOSED: ()}
#: lines of a statement page at most, and the longest range one statement covers
MAX_LIMIT = 500
MAX_DAYS = 366
#: how far back a statement reaches when no start is given
DEFAULT_DAYS = 30

_HEALTH = t.Base.metadata.tables[t.HealthAccount.__tablename__]
_TRANSFERS = t.Base.metadata.tables[t.BankTransfer.__tablename__]
_ENTRIES = t.Base.metadata.tables[t.LedgerEntry.__tablename__]
_TXNS = t.Base.metadata.tables[t.LedgerTransaction.__tablename__]
#: references looked up per query (SQLite's bound-parameter limit is far above; so is sense)
_CHUNK = 500


# --- views --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AccountView:
    resident_id: str
    bank: str
    bank_name: str
    account_number: str
    status: str  # ACTIVE | FROZEN | CLOSED
    balance_fen: int
    opened_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True)
class TransferView:
    """A transfer as the platform booked it (the answer to a notice, the first one again for a
    repeat)."""

    bank: str
    bank_ref: str
    direction: str  # in | out
    account_number: str
    amount_fen: int
    value_date: dt.date
    received_at: dt.datetime
    txn_id: int


@dataclass(frozen=True)
class Received:
    """What :meth:`HealthAccounts.receive` did: the booked transfer, whether this notice booked it
    (False: a repeat), and whose account it is (for the audit entry; the bank is not told)."""

    transfer: TransferView
    created: bool
    resident_id: str


@dataclass(frozen=True)
class StatementLine:
    entry_id: int  # the ledger entry (the page cursor)
    txn_id: int
    at: dt.datetime
    kind: str  # topup | payment | withdrawal | refund | settlement …
    ref: str  # the bank reference, the settlement …
    amount_fen: int  # + into the account, − out of it
    balance_fen: int  # the balance after this line
    counterparty: str  # the other side: bank:<b>, cash:<institution> …


@dataclass(frozen=True)
class Statement:
    """A page of the account's statement for the local dates ``start``…``end``: the balance
    before its first line, each line with the balance after it, the balance after its last line,
    and ``next_after`` — the cursor of the next page (None: this is the last)."""

    resident_id: str
    account_number: str
    start: dt.date
    end: dt.date
    opening_balance_fen: int
    closing_balance_fen: int
    lines: tuple[StatementLine, ...]
    next_after: int | None


def _view(row: Any) -> AccountView:
    return AccountView(
        row.resident_id,
        row.bank,
        bk.BANKS[row.bank].name if row.bank in bk.BANKS else row.bank,
        row.account_number,
        row.status,
        int(row.balance_fen),
        row.opened_at,
        row.updated_at,
    )


def _transfer_view(row: Any) -> TransferView:
    return TransferView(
        row.bank,
        row.bank_ref,
        row.direction,
        row.account_number,
        int(row.amount_fen),
        row.value_date,
        row.received_at,
        int(row.txn_id),
    )


def _local_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), SHANGHAI).astimezone(dt.UTC)


def _random_serial() -> int:
    return secrets.randbelow(10**12)


# --- the service ----------------------------------------------------------------------------------
class HealthAccounts:
    """The health accounts, inside the caller's unit of work.  ``serials`` draws the serial part
    of a new account number (random by default; the demo passes a seeded one)."""

    def __init__(self, clock: Clock, *, serials: Callable[[], int] = _random_serial) -> None:
        self.clock = clock
        self._serials = serials

    # --- the account ---
    def _row(self, uow: UnitOfWork, resident_ids: Sequence[str]) -> Row[Any] | None:
        """The person's account: the first of ``resident_ids`` (the survivor) that has one."""
        ids = list(resident_ids)
        rows = {
            r.resident_id: r
            for r in uow.session.execute(select(_HEALTH).where(_HEALTH.c.resident_id.in_(ids)))
        }
        return next((rows[i] for i in ids if i in rows), None)

    def _existing(self, uow: UnitOfWork, resident_ids: Sequence[str]) -> Row[Any]:
        row = self._row(uow, resident_ids)
        if row is None:
            raise NotFound("health account of resident", resident_ids[0])
        return row

    def get(self, uow: UnitOfWork, resident_ids: Sequence[str]) -> AccountView:
        return _view(self._existing(uow, resident_ids))

    def find(self, uow: UnitOfWork, resident_ids: Sequence[str]) -> AccountView | None:
        row = self._row(uow, resident_ids)
        return None if row is None else _view(row)

    def _taken(self, uow: UnitOfWork, number: str) -> bool:
        found = uow.session.execute(select(_HEALTH.c.resident_id).where(_HEALTH.c.account_number == number))
        return found.first() is not None

    def open(
        self, uow: UnitOfWork, resident_ids: Sequence[str], *, bank: str, account_number: str | None = None
    ) -> AccountView:
        """Open the person's account at ``bank`` (one account per person, ever: a closed one is
        not reopened), empty and ACTIVE, with a new co-branded account number — or
        ``account_number`` when the bank has issued one."""
        ids = list(resident_ids)
        if not ids:
            raise InvalidValue("resident_id", "whose account")
        bk.bank_info(bank)
        held = self._row(uow, ids)
        if held is not None:
            raise Duplicate(
                "resident_id",
                f"{held.resident_id} already has a health account at {held.bank} ({held.status.lower()})",
            )
        if account_number is None:
            for _ in range(8):  # 10¹² serials per bank: a second draw is already rare
                number = bk.account_number(bank, self._serials())
                if not self._taken(uow, number):
                    break
            else:
                raise TransitionRefused(f"no free account number found at {bank}; try again")
        else:
            number = bk.check_account_number(account_number, bank)
            if self._taken(uow, number):
                raise Duplicate("account_number", f"{number} is another resident's account")
        now = self.clock.now()
        uow.session.execute(
            insert(_HEALTH),
            {
                "resident_id": ids[0],
                "bank": bank,
                "account_number": number,
                "balance_fen": 0,
                "status": ACTIVE,
                "opened_at": now,
                "updated_at": now,
            },
        )
        return self.get(uow, ids[:1])

    def set_status(self, uow: UnitOfWork, resident_ids: Sequence[str], status: str) -> AccountView:
        """Freeze, unfreeze or close the account (the same status again changes nothing).  One
        conditional UPDATE, so that a payment or a top-up racing with a close either lands
        before it (and the close is refused: the account is not empty) or is refused after it."""
        if status not in STATUSES:
            raise InvalidValue("status", f"{status!r}: one of {', '.join(STATUSES)}")
        row = self._existing(uow, resident_ids)
        if row.status == status:
            return _view(row)
        if status not in MOVES[row.status]:
            raise TransitionRefused(f"a {row.status.lower()} health account cannot become {status.lower()}")
        where = [_HEALTH.c.resident_id == row.resident_id, _HEALTH.c.status == row.status]
        if status == CLOSED:
            where.append(_HEALTH.c.balance_fen == 0)
        moved = uow.session.execute(
            update(_HEALTH).where(*where).values(status=status, updated_at=self.clock.now())
        )
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            now = self._existing(uow, [row.resident_id])
            if status == CLOSED and now.balance_fen:
                raise TransitionRefused(
                    f"the account holds {bk.yuan(int(now.balance_fen))} yuan: it is withdrawn at the bank "
                    "before the account closes"
                )
            raise TransitionRefused(f"the account changed meanwhile (now {now.status.lower()}); try again")
        return self.get(uow, [row.resident_id])

    # --- the statement ---
    def statement(
        self,
        uow: UnitOfWork,
        resident_ids: Sequence[str],
        *,
        start: dt.date,
        end: dt.date,
        after: int = 0,
        limit: int = 100,
    ) -> Statement:
        """The ledger entries of the account made on the local dates ``start``…``end``, oldest
        first, ``limit`` a page after the entry ``after`` (the previous page's ``next_after``),
        each with the balance after it.

        Entries are in id order: for one account that is the order its balance moved in (each
        movement holds the account row's lock until it commits), so the running balance is the
        stored balance at each step."""
        if start > end:
            raise InvalidValue("start", f"{start.isoformat()} is after the end {end.isoformat()}")
        if (end - start).days >= MAX_DAYS:
            raise InvalidValue("end", f"a statement covers at most {MAX_DAYS} days")
        if isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
            raise InvalidValue("limit", f"1 to {MAX_LIMIT}")
        if isinstance(after, bool) or after < 0:
            raise InvalidValue("after", "an entry id from the previous page (0: from the start)")
        row = self._existing(uow, resident_ids)
        account = ledger.health(row.resident_id)
        lo, hi = _local_midnight(start), _local_midnight(end + dt.timedelta(days=1))
        e, x = _ENTRIES.c, _TXNS.c
        rows = uow.session.execute(
            select(e.id, e.txn_id, e.amount_fen, x.at, x.kind, x.ref)
            .join_from(_ENTRIES, _TXNS, x.id == e.txn_id)
            .where(e.account == account, e.id > after, x.at >= lo, x.at < hi)
            .order_by(e.id)
            .limit(limit + 1)
        ).all()
        more = len(rows) > limit
        rows = rows[:limit]
        total = select(func.coalesce(func.sum(e.amount_fen), 0)).where(e.account == account)
        if rows:
            opening = int(uow.session.execute(total.where(e.id < rows[0].id)).scalar_one())
        else:  # an empty page: the balance at the end of the range
            opening = int(
                uow.session.execute(
                    total.join_from(_ENTRIES, _TXNS, x.id == e.txn_id).where(x.at < hi)
                ).scalar_one()
            )
        others: dict[int, list[tuple[str, int]]] = {}
        if rows:
            for txn_id, other, amount in uow.session.execute(
                select(e.txn_id, e.account, e.amount_fen).where(
                    e.txn_id.in_(sorted({r.txn_id for r in rows})), e.account != account
                )
            ):
                others.setdefault(txn_id, []).append((other, int(amount)))
        lines: list[StatementLine] = []
        balance = opening
        for r in rows:
            amount = int(r.amount_fen)
            balance += amount
            # the other side: the account the very amount came from or went to (a settlement also
            # moves the fund's share: not the resident's money), else every account on that side
            legs = others.get(r.txn_id, [])
            side = sorted({a for a, fen in legs if fen == -amount}) or sorted(
                {a for a, fen in legs if (fen < 0) == (amount > 0)}
            )
            lines.append(StatementLine(r.id, r.txn_id, r.at, r.kind, r.ref, amount, balance, ", ".join(side)))
        return Statement(
            row.resident_id,
            row.account_number,
            start,
            end,
            opening,
            balance,
            tuple(lines),
            rows[-1].id if more else None,
        )

    # --- the bank's notices ---
    def receive(self, uow: UnitOfWork, transfer: bk.Transfer, *, by: str) -> Received:
        """Book a notice of the bank: a top-up (``in``: ``bank:<b> → health:<r>``) or a withdrawal
        (``out``: the reverse, refused on ``amount_fen`` if the account holds less), and its
        ``bank_transfers`` row, together.  A notice already booked answers the first result and
        moves nothing; one that reuses the reference for another transfer is refused on
        ``bank_ref``.  Refusals write nothing."""
        transfer = transfer.checked()
        prior = uow.session.execute(
            select(_TRANSFERS).where(
                _TRANSFERS.c.bank == transfer.bank, _TRANSFERS.c.bank_ref == transfer.bank_ref
            )
        ).first()
        if prior is not None:
            said = (prior.direction, prior.account_number, int(prior.amount_fen), prior.value_date)
            says = (
                transfer.direction.value,
                transfer.account_number,
                transfer.amount_fen,
                transfer.value_date,
            )
            if said != says:
                raise Duplicate(
                    "bank_ref",
                    f"{transfer.bank} {transfer.bank_ref} is already {_said(*said)}; this notice says "
                    f"{_said(*says)}: a reference names one transfer",
                )
            return Received(_transfer_view(prior), False, prior.resident_id)
        account = uow.session.execute(
            select(_HEALTH).where(_HEALTH.c.account_number == transfer.account_number)
        ).first()
        if account is None or account.bank != transfer.bank:
            raise InvalidValue(
                "account_number", f"{transfer.account_number}: no health account of {transfer.bank}"
            )
        if account.status != ACTIVE:
            raise TransitionRefused(
                f"the health account {transfer.account_number} is {account.status.lower()}: it takes no transfers"
            )
        rid = account.resident_id
        if transfer.direction is bk.Direction.IN:
            kind, entries = (
                "topup",
                ledger.move(ledger.bank(transfer.bank), ledger.health(rid), transfer.amount_fen, rid),
            )
        else:
            kind, entries = (
                "withdrawal",
                ledger.move(ledger.health(rid), ledger.bank(transfer.bank), transfer.amount_fen, rid),
            )
        now = self.clock.now()
        try:
            posted = ledger.post(
                uow, kind, f"{transfer.bank}:{transfer.bank_ref}", entries, actor=by, at=now, resident_id=rid
            )
        except ledger.InsufficientFunds:
            held = self._existing(uow, [rid]).balance_fen
            raise InvalidValue(
                "amount_fen",
                f"{bk.yuan(transfer.amount_fen)} yuan cannot be withdrawn: the account holds {bk.yuan(int(held))}",
            ) from None
        booked = TransferView(
            transfer.bank,
            transfer.bank_ref,
            transfer.direction.value,
            transfer.account_number,
            transfer.amount_fen,
            transfer.value_date,
            now,
            posted.txn_id,
        )
        uow.session.execute(insert(_TRANSFERS), {**booked.__dict__, "resident_id": rid})
        return Received(booked, True, rid)

    # --- the reconciliation ---
    def _booked(self, uow: UnitOfWork, *where: Any) -> list[bk.Booked]:
        """The transfers matching ``where`` with what their ledger transactions moved on the
        holder's health account."""
        b, e = _TRANSFERS.c, _ENTRIES.c
        rows = uow.session.execute(
            select(_TRANSFERS, e.account.label("entry_account"), e.amount_fen.label("entry_fen"))
            .outerjoin(_ENTRIES, e.txn_id == b.txn_id)
            .where(*where)
            .order_by(b.id, e.id)
        ).all()
        found: dict[int, tuple[Any, int]] = {}
        for r in rows:
            _, fen = found.get(r.id, (r, 0))
            if r.entry_account == ledger.health(r.resident_id):
                fen += int(r.entry_fen)
            found[r.id] = (r, fen)
        return [
            bk.Booked(
                bk.Transfer(
                    r.bank,
                    r.bank_ref,
                    bk.Direction(r.direction),
                    r.account_number,
                    int(r.amount_fen),
                    r.value_date,
                ),
                r.resident_id,
                int(r.txn_id),
                fen,
            )
            for r, fen in found.values()
        ]

    def booked(self, uow: UnitOfWork, bank: str, day: dt.date) -> list[bk.Booked]:
        """The platform's transfers of ``bank`` value-dated ``day``."""
        return self._booked(uow, _TRANSFERS.c.bank == bank, _TRANSFERS.c.value_date == day)

    def reconcile(
        self, uow: UnitOfWork, bank: str, day: dt.date, lines: Sequence[bk.BankLine]
    ) -> bk.Reconciliation:
        """The reconciliation of ``bank``'s statement ``lines`` of ``day`` against the ledger."""
        bk.bank_info(bank)
        booked = self.booked(uow, bank, day)
        ours = {b.transfer.bank_ref for b in booked}
        strangers = sorted({line.transfer.bank_ref for line in lines} - ours)
        elsewhere: dict[str, bk.Booked] = {}
        for n in range(0, len(strangers), _CHUNK):
            chunk = strangers[n : n + _CHUNK]
            for b in self._booked(uow, _TRANSFERS.c.bank == bank, _TRANSFERS.c.bank_ref.in_(chunk)):
                elsewhere[b.transfer.bank_ref] = b
        return bk.compare(bank, day, booked, lines, elsewhere)


def _said(direction: str, account: str, fen: int, day: dt.date) -> str:
    return f"{direction} {bk.yuan(fen)} yuan for {account} on {day.isoformat()}"


# --- the use cases ---------------------------------------------------------------------------------
class HealthAccountDesk(Desk):
    """The health-account use cases of a platform node (``node.health_accounts``): actor first,
    one transaction each; a resident's data through :meth:`Access.check` (category settlement),
    the bank's notices and the reconciliation by role, every one audited."""

    category = Category.SETTLEMENT

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        access: Access,
        audit: Audit,
        mpi: Mpi,
        service: HealthAccounts | None = None,
    ) -> None:
        super().__init__(db, clock, access=access, audit=audit, mpi=mpi)
        self.service = service or HealthAccounts(clock)

    # --- the resident's account ---
    def open(self, actor: Actor, resident_id: str, *, bank: str) -> AccountView:
        """Open the resident's account at ``bank`` (the resident, or the cashier at the window)."""
        try:
            with self._record(
                actor, resident_id, Action.WRITE, what="health account", why=f"open at {bank}"
            ) as (
                uow,
                ids,
            ):
                return self.service.open(uow, ids, bank=bank)
        except IntegrityError:  # a concurrent open of the same person's account won
            raise Duplicate("resident_id", f"{resident_id} already has a health account") from None

    def account(self, actor: Actor, resident_id: str) -> AccountView:
        """The account and its balance."""
        with self._record(actor, resident_id, Action.READ, what="health account") as (uow, ids):
            return self.service.get(uow, ids)

    def set_status(self, actor: Actor, resident_id: str, status: str) -> AccountView:
        """Freeze (a lost card), unfreeze, or close (when empty) the account."""
        with self._record(
            actor, resident_id, Action.WRITE, what="health account", why=f"status {status}"[:40]
        ) as (
            uow,
            ids,
        ):
            return self.service.set_status(uow, ids, status)

    def statement(
        self,
        actor: Actor,
        resident_id: str,
        *,
        start: dt.date | None = None,
        end: dt.date | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> Statement:
        """A page of the statement; the range defaults to the last :data:`DEFAULT_DAYS` days."""
        end = end or local_date(self.clock)
        start = start or end - dt.timedelta(days=DEFAULT_DAYS)
        with self._record(actor, resident_id, Action.READ, what="health account statement") as (uow, ids):
            return self.service.statement(uow, ids, start=start, end=end, after=after, limit=limit)

    # --- the bank ---
    @staticmethod
    def _the_bank(actor: Actor, bank: str, what: str) -> None:
        if actor.role is not Role.BANK or actor.id != bank:
            raise PermissionDenied(f"{what}: the bank {bank} itself (its account is named {bank})")

    def receive(self, actor: Actor, transfer: bk.Transfer) -> tuple[TransferView, bool]:
        """A notice of the bank — a top-up or a withdrawal — booked once: (the transfer, whether
        this call booked it).  Only the bank itself sends its notices; the entry in the audit log
        names the holder.  Two copies of a notice racing: the database's unique reference keeps
        one, and the other is answered as a repeat."""
        self._the_bank(actor, transfer.bank, "transfer notices")
        what = (
            "health account top-up" if transfer.direction == bk.Direction.IN else "health account withdrawal"
        )
        for attempt in (1, 2):
            try:
                with self.db.uow() as uow:
                    received = self.service.receive(uow, transfer, by=actor.id)
                    if received.created:
                        self.audit.record(
                            uow,
                            actor,
                            action=Action.WRITE.value,
                            what=what,
                            why=f"bank ref {transfer.bank_ref}",
                            resident_id=received.resident_id,
                        )
                    uow.commit()
                    return received.transfer, received.created
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    # --- the reconciliation ---
    def reconcile(self, actor: Actor, *, bank: str, day: dt.date, statement: str) -> bk.Reconciliation:
        """The daily reconciliation of ``bank``'s statement file (its text) for ``day``: platform
        admins for any bank, a bank for its own.  One audit entry (no single resident's)."""
        if actor.role is not Role.ADMIN:
            self._the_bank(actor, bank, "the reconciliation")
        lines = bk.parse_statement(statement, bank=bank)
        with self.db.uow() as uow:
            report = self.service.reconcile(uow, bank, day, lines)
            self.audit.record(
                uow,
                actor,
                action=Action.READ.value,
                what=f"bank reconciliation {bank}",
                why=f"{day.isoformat()}: {len(report.mismatches)} mismatches",
                resident_id=None,
            )
            uow.commit()
            return report


__all__ = [
    "ACTIVE",
    "CLOSED",
    "FROZEN",
    "MOVES",
    "STATUSES",
    "AccountView",
    "HealthAccountDesk",
    "HealthAccounts",
    "Received",
    "Statement",
    "StatementLine",
    "TransferView",
]
