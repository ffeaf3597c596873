"""The double-entry ledger: every movement of money is one transaction of entries that sum to
zero, written in the same database transaction as the business change it records (a
settlement, a refund, a top-up); an entry is never updated or deleted, a refund is new entries.

Accounts are names, ``kind:owner`` (the chart of accounts, docs/settlement.md):

==================  ===============================================================================
``fund:<pool>``      the pool's cooperative medical fund: pays the fund's share (−), takes premiums (+)
``premiums:<pool>``  premiums paid into the pool (the fund's source; negative by construction)
``receivable:<i>``   what the fund owes institution ``i`` for its settled bills (+)
``cash:<i>``         the self-pay part taken at ``i``'s window or from a health account (+)
``health:<r>``       resident ``r``'s health account (its balance, never below zero)
``bank:<b>``         bank ``b``'s clearing account: top-ups come from it (−), withdrawals go to it
``clearing:<city>``  cross-region care with city node ``<city>`` (4-digit code): at a visitor's home
                     what its fund owes that city's institutions (+); at the city where the visitor
                     was treated what the home owes them (−); netted by the monthly clearing
``pocket``           the residents' own cash handed over at a window (the source of a cash payment)
==================  ===============================================================================

An amount is positive into an account and negative out of it, so each account's balance is the
sum of its entries and the sum over all accounts is zero at every moment.  Only the health
accounts keep a stored balance (``health_accounts.balance_fen``, never negative by a CHECK): the
others are summed when asked, so that no settlement waits on a hot "fund" row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, insert, select, update

from healthcard.errors import InvalidValue, NotFound, TransitionRefused
from healthcard.storage import tables as t
from healthcard.storage.uow import UnitOfWork

KINDS = ("settlement", "refund", "topup", "payment", "withdrawal", "funding")

_ENTRIES = t.Base.metadata.tables[t.LedgerEntry.__tablename__]
_TXNS = t.Base.metadata.tables[t.LedgerTransaction.__tablename__]
_HEALTH = t.Base.metadata.tables[t.HealthAccount.__tablename__]


def fund(pool: str) -> str:
    return f"fund:{pool}"


def premiums(pool: str) -> str:
    return f"premiums:{pool}"


def receivable(institution: str) -> str:
    return f"receivable:{institution}"


def cash(institution: str) -> str:
    return f"cash:{institution}"


def health(resident_id: str) -> str:
    return f"health:{resident_id}"


def bank(name: str) -> str:
    return f"bank:{name}"


def clearing(city: str) -> str:
    return f"clearing:{city}"


POCKET = "pocket"


class InsufficientFunds(TransitionRefused):
    """A health account cannot pay: its balance would go below zero."""


@dataclass(frozen=True)
class Entry:
    account: str
    amount_fen: int
    resident_id: str | None = None


@dataclass(frozen=True)
class Posted:
    txn_id: int
    entries: tuple[Entry, ...]


def move(source: str, target: str, amount_fen: int, resident_id: str | None = None) -> tuple[Entry, Entry]:
    """``amount_fen`` out of ``source`` into ``target``: the two entries of one transfer."""
    return Entry(source, -amount_fen, resident_id), Entry(target, amount_fen, resident_id)


def _check(kind: str, entries: Sequence[Entry]) -> None:
    if kind not in KINDS:
        raise InvalidValue("kind", f"{kind!r}: one of {', '.join(KINDS)}")
    if not entries:
        raise InvalidValue("entries", "a transaction has entries")
    for n, entry in enumerate(entries):
        amount = entry.amount_fen
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise InvalidValue(f"entries[{n}].amount_fen", f"{amount!r}: whole fen")
        if not entry.account or (":" not in entry.account and entry.account != POCKET):
            raise InvalidValue(f"entries[{n}].account", f"{entry.account!r}: kind:owner")
    if sum(e.amount_fen for e in entries) != 0:
        raise InvalidValue("entries", "the entries of a transaction sum to zero (double entry)")


def post(
    uow: UnitOfWork,
    kind: str,
    ref: str,
    entries: Iterable[Entry],
    *,
    actor: str,
    at: dt.datetime,
    resident_id: str | None = None,
) -> Posted:
    """Write one balanced transaction (entries of zero are left out) and move the stored balance
    of every health account it touches — in the caller's transaction, so that the money moves
    with the change it pays for or not at all.  A health account that would go below zero
    refuses (:class:`InsufficientFunds`) before anything is written."""
    lines = tuple(e for e in entries if e.amount_fen != 0)
    _check(kind, lines)
    session = uow.session
    for entry in lines:
        if entry.account.startswith("health:"):
            _move_health(uow, entry.account.removeprefix("health:"), entry.amount_fen, at)
    txn_id = session.execute(
        insert(_TXNS).returning(_TXNS.c.id),
        {"kind": kind, "ref": ref, "resident_id": resident_id, "actor": actor, "at": at},
    ).scalar_one()
    session.execute(
        insert(_ENTRIES),
        [
            {"txn_id": txn_id, "account": e.account, "amount_fen": e.amount_fen, "resident_id": e.resident_id}
            for e in lines
        ],
    )
    return Posted(txn_id, lines)


def _move_health(uow: UnitOfWork, resident_id: str, amount_fen: int, at: dt.datetime) -> None:
    """Add ``amount_fen`` to an ACTIVE health account, in one conditional UPDATE: the row lock it
    takes orders concurrent payments, and the condition (with the table's CHECK behind it)
    keeps the balance from going below zero."""
    moved = uow.session.execute(
        update(_HEALTH)
        .where(
            _HEALTH.c.resident_id == resident_id,
            _HEALTH.c.status == "ACTIVE",
            _HEALTH.c.balance_fen + amount_fen >= 0,
        )
        .values(balance_fen=_HEALTH.c.balance_fen + amount_fen, updated_at=at)
    )
    if moved.rowcount == 1:  # type: ignore[attr-defined]
        return
    row = uow.session.execute(
        select(_HEALTH.c.status, _HEALTH.c.balance_fen).where(_HEALTH.c.resident_id == resident_id)
    ).first()
    if row is None:
        raise NotFound("health account", resident_id)
    if row.status != "ACTIVE":
        raise TransitionRefused(f"the health account of {resident_id} is {row.status.lower()}")
    raise InsufficientFunds(
        f"the health account holds {row.balance_fen} fen; {-amount_fen} fen cannot be paid from it"
    )


def balance(uow: UnitOfWork, account: str) -> int:
    """An account's balance: the sum of its entries."""
    total = uow.session.execute(
        select(func.coalesce(func.sum(_ENTRIES.c.amount_fen), 0)).where(_ENTRIES.c.account == account)
    ).scalar_one()
    return int(total)


def balances(uow: UnitOfWork, prefix: str = "") -> dict[str, int]:
    """Every account's balance (those starting with ``prefix``)."""
    query = select(_ENTRIES.c.account, func.sum(_ENTRIES.c.amount_fen)).group_by(_ENTRIES.c.account)
    if prefix:
        query = query.where(_ENTRIES.c.account.startswith(prefix, autoescape=True))
    return {account: int(total) for account, total in uow.session.execute(query)}


@dataclass(frozen=True)
class LedgerCheck:
    """What :func:`verify` found: the sum of all entries (must be 0), the transactions whose
    entries do not sum to zero, and health accounts whose stored balance is not their entries'."""

    entries: int
    transactions: int
    total_fen: int
    unbalanced: tuple[int, ...]
    health_mismatches: tuple[str, ...]

    @property
    def balanced(self) -> bool:
        return self.total_fen == 0 and not self.unbalanced and not self.health_mismatches


def verify(uow: UnitOfWork) -> LedgerCheck:
    """Check the whole ledger (the benchmark and the kill test run it after a storm)."""
    session = uow.session
    count, total = session.execute(
        select(func.count(), func.coalesce(func.sum(_ENTRIES.c.amount_fen), 0))
    ).one()
    transactions = session.execute(select(func.count()).select_from(_TXNS)).scalar_one()
    unbalanced = tuple(
        session.execute(
            select(_ENTRIES.c.txn_id)
            .group_by(_ENTRIES.c.txn_id)
            .having(func.sum(_ENTRIES.c.amount_fen) != 0)
            .order_by(_ENTRIES.c.txn_id)
            .limit(100)
        ).scalars()
    )
    stored = {
        rid: int(fen) for rid, fen in session.execute(select(_HEALTH.c.resident_id, _HEALTH.c.balance_fen))
    }
    summed = balances(uow, "health:")
    mismatches = tuple(
        sorted(
            rid
            for rid in set(stored) | {a.removeprefix("health:") for a in summed}
            if stored.get(rid, 0) != summed.get(health(rid), 0)
        )
    )
    return LedgerCheck(int(count), int(transactions), int(total), unbalanced, mismatches)


__all__ = [
    "KINDS",
    "POCKET",
    "Entry",
    "InsufficientFunds",
    "LedgerCheck",
    "Posted",
    "balance",
    "balances",
    "bank",
    "cash",
    "clearing",
    "fund",
    "health",
    "move",
    "post",
    "premiums",
    "receivable",
    "verify",
]
