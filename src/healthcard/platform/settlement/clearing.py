"""The monthly clearing between two cities' pools (cross-region settlement, :mod:`.crossregion`).

Each visitor's settlement leaves the same amount in two ledgers: at the home, ``clearing:<the
visiting city>`` (+, what its fund owes that city's institutions); at the visiting city,
``clearing:<the home>`` (−, what the home owes them).  For a month and a pair of cities (A, B)
the clearing puts side by side, in both directions:

* what A's fund owes B's institutions — **from A's ledger** — and what B's institutions are owed
  by A — **from B's ledger** — settlement by settlement;
* the same from B to A;
* the net: what A pays B (negative: B pays A).

Each node computes its own half (:func:`figures`: JSON, answered to the other city as
``q.<city>.clearing``); :func:`statement` puts two halves together.  The two sides must agree to
the fen; a settlement known to one side only, or with another amount, is listed.  The month is
the home's (China's month of the settlement at the home), written at both sides.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select

from healthcard.errors import InvalidValue, MessagingError
from healthcard.platform.settlement import ledger
from healthcard.platform.settlement.crossregion import HOME, VISITING
from healthcard.storage import tables as t
from healthcard.storage.uow import UnitOfWork

_X = t.Base.metadata.tables[t.CrossRegionSettlement.__tablename__]
_LE = t.Base.metadata.tables[t.LedgerEntry.__tablename__]
_MONTH = re.compile(r"^(19|20|21)\d\d-(0[1-9]|1[0-2])$")


def check_month(month: object) -> str:
    if not isinstance(month, str) or not _MONTH.match(month):
        raise InvalidValue("month", f"{month!r}: YYYY-MM")
    return month


def check_city(city: object, field: str = "counterpart") -> str:
    if not isinstance(city, str) or len(city) != 4 or not city.isdigit():
        raise InvalidValue(field, f"{city!r}: a city's 4-digit code")
    return city


def figures(uow: UnitOfWork, city: str, counterpart: str, month: str) -> dict[str, Any]:
    """This node's half of the clearing with ``counterpart`` for ``month``, from its ledger:
    ``owes`` (its fund to the counterpart's institutions: its settlements as the home) and
    ``owed`` (to its institutions by the counterpart: its settlements as the visiting city),
    each a total and the settlements ``[visiting city, institution, key, encounter, fen]``."""
    check_city(city, "city")
    check_city(counterpart)
    check_month(month)
    account = ledger.clearing(counterpart)
    half: dict[str, Any] = {"city": city, "counterpart": counterpart, "month": month}
    for side, name, sign in ((HOME, "owes", 1), (VISITING, "owed", -1)):
        rows = uow.session.execute(
            select(
                _X.c.visiting_city,
                _X.c.institution_code,
                _X.c.idempotency_key,
                _X.c.encounter_id,
                func.coalesce(func.sum(_LE.c.amount_fen), 0).label("fen"),
            )
            .select_from(_X)
            .outerjoin(_LE, and_(_LE.c.txn_id == _X.c.txn_id, _LE.c.account == account))
            .where(_X.c.side == side, _X.c.counterpart == counterpart, _X.c.month == month)
            .group_by(
                _X.c.id, _X.c.visiting_city, _X.c.institution_code, _X.c.idempotency_key, _X.c.encounter_id
            )
            .order_by(_X.c.id)
        ).all()
        settlements = [
            [r.visiting_city, r.institution_code, r.idempotency_key, r.encounter_id, sign * int(r.fen)]
            for r in rows
        ]
        half[name] = {"total_fen": sum(s[4] for s in settlements), "settlements": settlements}
    half["balance_fen"] = ledger.balance(uow, account)  # the account over all months
    return half


@dataclass(frozen=True)
class Mismatch:
    """A settlement on which the two ledgers disagree (None: that side does not know it)."""

    visiting_city: str
    institution_code: str
    idempotency_key: str
    encounter_id: int
    payer_fen: int | None
    payee_fen: int | None


@dataclass(frozen=True)
class Direction:
    """What ``payer``'s fund owes ``payee``'s institutions for the month, from each ledger."""

    payer: str
    payee: str
    settlements: int
    payer_fen: int  # from the payer's ledger
    payee_fen: int  # from the payee's ledger
    mismatches: tuple[Mismatch, ...]

    @property
    def agrees(self) -> bool:
        return self.payer_fen == self.payee_fen and not self.mismatches


@dataclass(frozen=True)
class Statement:
    """The month's clearing between ``a`` and ``b``: both directions and the net."""

    month: str
    a: str
    b: str
    a_to_b: Direction
    b_to_a: Direction

    @property
    def net_fen(self) -> int:
        """What ``a`` pays ``b`` (negative: ``b`` pays ``a``), from the payers' ledgers."""
        return self.a_to_b.payer_fen - self.b_to_a.payer_fen

    @property
    def agrees(self) -> bool:
        return self.a_to_b.agrees and self.b_to_a.agrees

    def document(self) -> dict[str, Any]:
        def direction(d: Direction) -> dict[str, Any]:
            return {
                "payer": d.payer,
                "payee": d.payee,
                "settlements": d.settlements,
                "payer_fen": d.payer_fen,
                "payee_fen": d.payee_fen,
                "agrees": d.agrees,
                "mismatches": [m.__dict__ for m in d.mismatches],
            }

        return {
            "month": self.month,
            "a": self.a,
            "b": self.b,
            "directions": [direction(self.a_to_b), direction(self.b_to_a)],
            "net_fen": self.net_fen,
            "agrees": self.agrees,
        }


def _direction(payer: Mapping[str, Any], payee: Mapping[str, Any]) -> Direction:
    def by_key(part: Mapping[str, Any]) -> dict[tuple[str, str, str], tuple[int, int]]:
        return {(str(s[0]), str(s[1]), str(s[2])): (int(s[3]), int(s[4])) for s in part["settlements"]}

    owes, owed = by_key(payer["owes"]), by_key(payee["owed"])
    mismatches = []
    for key in sorted(owes.keys() | owed.keys()):
        mine, theirs = owes.get(key), owed.get(key)
        if mine is None or theirs is None or mine[1] != theirs[1]:
            encounter = (mine or theirs or (0, 0))[0]
            mismatches.append(
                Mismatch(
                    *key,
                    encounter,
                    None if mine is None else mine[1],
                    None if theirs is None else theirs[1],
                )
            )
    return Direction(
        str(payer["city"]),
        str(payee["city"]),
        len(owes.keys() | owed.keys()),
        int(payer["owes"]["total_fen"]),
        int(payee["owed"]["total_fen"]),
        tuple(mismatches),
    )


def statement(a: Mapping[str, Any], b: Mapping[str, Any]) -> Statement:
    """Two halves (:func:`figures` of ``a`` with ``b`` and of ``b`` with ``a``) as one statement."""
    try:
        pair = (a["counterpart"], b["counterpart"]) == (b["city"], a["city"]) and a["month"] == b["month"]
    except (KeyError, TypeError):
        raise MessagingError("a clearing half that is not readable") from None
    if not pair:
        raise InvalidValue("counterpart", "two halves of one pair of cities and one month")
    try:
        return Statement(str(a["month"]), str(a["city"]), str(b["city"]), _direction(a, b), _direction(b, a))
    except (KeyError, TypeError, ValueError, IndexError):
        raise MessagingError("a clearing half that is not readable") from None


__all__ = ["Direction", "Mismatch", "Statement", "check_city", "check_month", "figures", "statement"]
