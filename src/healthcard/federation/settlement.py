"""Cross-region settlement over the bus: the questions a city answers as a visitor's home
(``q.<city>.settle``, ``q.<city>.quote``) and for the monthly clearing (``q.<city>.clearing``),
and the visiting city's side of the cashier (:class:`BusHomes`, the settlement desk's
``visitors``).  The rules and the records are the platform's
(:mod:`healthcard.platform.settlement.crossregion`, :mod:`~healthcard.platform.settlement.clearing`).

Wiring a city node (the composition root, :func:`wire_settlement`)::

    app.answers |= settlement_answers(app.db, app.clock, "4101")           # as a home, and clearing
    app.node.settlement.visitors = BusHomes(app.bus, "4101", pool="demo")   # as a visiting city
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from healthcard.clock import Clock, local_date
from healthcard.federation.bus import Bus
from healthcard.federation.nodes import NodeIdentity, NodeRole
from healthcard.federation.queries import QUERY_TIMEOUT, Answer, ask
from healthcard.federation.regions import VisitorHome, visitor_home
from healthcard.platform.settlement import clearing
from healthcard.platform.settlement.clearing import Statement
from healthcard.platform.settlement.crossregion import (
    HomeOf,
    RemoteBill,
    RemoteRefund,
    quote_at_home,
    refund_at_home,
    settle_at_home,
)
from healthcard.platform.settlement.desk import SettlementDesk
from healthcard.platform.settlement.policy import shipped_pools
from healthcard.platform.settlement.service import Settlements
from healthcard.storage.db import Database


def settlement_answers(
    db: Database, clock: Clock, city: str, service: Settlements | None = None
) -> dict[str, Answer]:
    """A city's answers: ``settle`` and ``quote`` (a visitor's bill, as the home: payload
    :meth:`RemoteBill.payload`, reply :meth:`HomeFigures.payload`), ``refund`` (the whole of
    one: :meth:`RemoteRefund.payload`, the refund's figures) and ``clearing`` ({month,
    counterpart} → this city's half of the month's clearing with that city)."""
    clearing.check_city(city, "city")
    service = service or Settlements(clock)

    def settle(payload: dict[str, Any]) -> dict[str, Any]:
        bill = RemoteBill.of(payload)
        for attempt in (1, 2):
            try:
                with db.uow() as uow:
                    figures = settle_at_home(service, uow, city, bill, actor=f"city {bill.visiting_city}")
                    uow.commit()
                    return figures.payload()
            except IntegrityError:  # the same key raced in another process: the retry finds it
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def quote(payload: dict[str, Any]) -> dict[str, Any]:
        bill = RemoteBill.of(payload)
        with db.uow() as uow:
            return quote_at_home(service, uow, city, bill).payload()

    def half(payload: dict[str, Any]) -> dict[str, Any]:
        with db.uow() as uow:
            return clearing.figures(uow, city, payload.get("counterpart"), payload.get("month"))  # type: ignore[arg-type]

    def refund(payload: dict[str, Any]) -> dict[str, Any]:
        request = RemoteRefund.of(payload)
        for attempt in (1, 2):
            try:
                with db.uow() as uow:
                    figures = refund_at_home(
                        service, uow, city, request, actor=f"city {request.visiting_city}"
                    )
                    uow.commit()
                    return figures.payload()
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    return {"settle": settle, "quote": quote, "refund": refund, "clearing": half}


class BusHomes:
    """The settlement desk's ``visitors`` at a visiting city: who is a visitor
    (:func:`~healthcard.federation.regions.visitor_home`) and the question to the home."""

    def __init__(
        self,
        bus: Bus,
        city: str,
        *,
        pool: str | None = None,
        lookup: Callable[[Session, str], VisitorHome | None] = visitor_home,
        timeout: float = QUERY_TIMEOUT,
    ) -> None:
        self.bus, self.city, self.pool, self.lookup, self.timeout = bus, city, pool, lookup, timeout

    def home_of(self, session: Session, resident_id: str) -> HomeOf | None:
        home = self.lookup(session, resident_id)
        if home is None or home.city == self.city:
            return None
        return HomeOf(home.city, home.home_resident_id)

    def ask(self, city: str, query: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        reply = ask(self.bus, city, query, payload, timeout=self.timeout)
        return dict(reply)


def local_pool(service: Settlements, city: str, year: int) -> str | None:
    """The shipped pool whose areas hold ``city`` in ``year`` (its catalog prices the bills of
    the city's institutions), or None."""
    for pool in shipped_pools(year):
        if service.pool_policy(pool, year).covers(city):
            return pool
    return None


def wire_settlement(
    identity: NodeIdentity, desk: SettlementDesk, db: Database, clock: Clock, bus: Bus
) -> dict[str, Answer]:
    """A city node with a code settles its visitors' bills with their homes (the desk's
    ``visitors``; the city's own pool, found among the shipped ones for this year, checks the
    lines' prices) and answers, as a home and for the clearing, the questions returned — for
    the node's runner to serve."""
    assert identity.role is NodeRole.CITY and identity.code is not None
    city = identity.code
    pool = local_pool(desk.service, city, local_date(clock).year)
    desk.visitors = BusHomes(bus, city, pool=pool)
    return settlement_answers(db, clock, city, desk.service)


def clearing_statement(db: Database, bus: Bus, city: str, counterpart: str, month: str) -> Statement:
    """The month's clearing statement of ``city`` (this node's database) and ``counterpart``
    (asked over the bus for its half)."""
    clearing.check_month(month)
    with db.uow() as uow:
        mine = clearing.figures(uow, city, counterpart, month)
    theirs = ask(bus, counterpart, "clearing", {"month": month, "counterpart": city})
    return clearing.statement(mine, theirs)


__all__ = ["BusHomes", "clearing_statement", "local_pool", "settlement_answers", "wire_settlement"]
