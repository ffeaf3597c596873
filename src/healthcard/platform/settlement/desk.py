"""The NCMS settlement use cases of a platform node (``node.settlement``): actor first, one
transaction each, through the access policy (category ``settlement``) and into the audit log.

Who may do what (the policy table of :mod:`healthcard.platform.access`, docs/settlement.md):

* the **cashier** (收费) of the visit's institution, with the card present or the patient in care
  there: pre-settlement, settlement, refund, the patient's insured status and settlements;
* the **NCMS office** (role ``insurer``): reads any settlement of its insured; an office of the
  pool (an ``ncms-office`` institution inside the pool's areas) enrols residents and sees the
  pool's dashboard — population figures about no single resident, so the desk checks the office
  and writes the audit entry itself;
* the **resident**: their own insured status and settlements.

A settlement that loses a race on its idempotency key to a concurrent request of another
resident (the database's unique key refuses the second insert) is tried once more: the retry
finds the key and answers as a retry does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError

from healthcard.clock import Clock, local_date
from healthcard.errors import Duplicate, InvalidValue, PermissionDenied
from healthcard.platform.access import Access, Action, Actor, Category, Role
from healthcard.platform.audit import Audit
from healthcard.platform.desk import Desk
from healthcard.platform.mpi import Mpi
from healthcard.platform.settlement import crossregion, office
from healthcard.platform.settlement.catalog import Item
from healthcard.platform.settlement.policy import Policy, shipped_pools
from healthcard.platform.settlement.service import (
    Bill,
    BillableVisit,
    Insured,
    LineIn,
    Quote,
    Refunded,
    Returned,
    Settlements,
    SettlementView,
)
from healthcard.storage.db import Database
from healthcard.storage.uow import UnitOfWork


class SettlementDesk(Desk):
    category = Category.SETTLEMENT

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        access: Access,
        audit: Audit,
        mpi: Mpi,
        service: Settlements | None = None,
    ) -> None:
        super().__init__(db, clock, access=access, audit=audit, mpi=mpi)
        self.service = service or Settlements(clock)
        #: cross-region care (wired by the composition root for a city node with a code): a
        #: visitor's bill is settled by the home pool (:mod:`.crossregion`); None: every bill here
        self.visitors: crossregion.Homes | None = None

    @staticmethod
    def _cashier(actor: Actor) -> str:
        if not actor.institution_code:
            raise PermissionDenied("bills are settled by the cashier of an institution")
        return actor.institution_code

    # --- insured status ------------------------------------------------------------------------
    def _office(self, uow: UnitOfWork, actor: Actor, policy: Policy) -> None:
        """Only an NCMS office of the pool (an ``ncms-office`` inside its areas) runs the pool."""
        where = uow.reference.institution(actor.institution_code) if actor.institution_code else None
        if (
            actor.role is not Role.INSURER
            or where is None
            or where.kind != "ncms-office"
            or not policy.covers(where.area_code)
        ):
            raise PermissionDenied(f"pool {policy.pool}: for the NCMS office of the pool")

    def enrol(
        self,
        actor: Actor,
        resident_id: str,
        *,
        pool: str,
        year: int,
        premium_fen: int,
        ncms_number: str | None = None,
    ) -> Insured:
        """参合: the office of ``pool`` enrols a resident for ``year`` (premium into the fund)."""
        try:
            with self.db.uow() as uow:
                policy = self.service.pool_policy(pool, year)
                self._office(uow, actor, policy)
                ids = self.mpi.linked_ids(uow, resident_id)
                insured = self.service.enrol(
                    uow,
                    ids[0],
                    pool=pool,
                    year=year,
                    premium_fen=premium_fen,
                    ncms_number=ncms_number,
                    actor=actor.id,
                )
                self.audit.record(
                    uow,
                    actor,
                    action="write",
                    what=f"ncms enrolment {pool} {year}"[:60],
                    why="office of the pool",
                    resident_id=ids[0],
                )
                uow.commit()
                return insured
        except IntegrityError:  # a concurrent enrolment of the same resident and year won
            raise Duplicate("resident_id", f"{resident_id} is enrolled for {year} already") from None

    def insured(self, actor: Actor, resident_id: str, year: int | None = None) -> Insured:
        year = local_date(self.clock).year if year is None else year
        with self._record(actor, resident_id, Action.READ, what=f"insured status {year}") as (uow, ids):
            return self.service.insured(uow, ids, year)

    # --- the bill ------------------------------------------------------------------------------
    def quote(self, actor: Actor, resident_id: str, bill: Bill) -> Quote:
        """试算 at the cashier: nothing is written but the audit entry."""
        institution = self._cashier(actor)
        what = f"pre-settlement encounter {bill.encounter_id}"
        home = self._home_of(resident_id)
        with self._record(actor, resident_id, Action.READ, what=what[:60]) as (uow, ids):
            if home is None:
                return self.service.quote(uow, ids, bill, institution_code=institution)
            assert self.visitors is not None
            prepared = crossregion.prepare(
                self.service,
                uow,
                ids,
                bill,
                homes=self.visitors,
                home=home,
                institution_code=institution,
                key="quote",
            )
        # a visitor's: the home's figures, asked with no transaction open here
        reply = self.visitors.ask(home.city, "quote", prepared.remote.payload())
        return crossregion.quote_of(prepared, crossregion.HomeFigures.of(reply), ids[0])

    def _home_of(self, resident_id: str) -> crossregion.HomeOf | None:
        """The visitor's home when ``resident_id`` is a visitor from another city (and this node
        settles visitors' bills with their homes), else None."""
        if self.visitors is None:
            return None
        with self.db.session() as session:
            return self.visitors.home_of(session, resident_id)

    def _settle_visitor(
        self, actor: Actor, resident_id: str, bill: Bill, *, key: str, home: crossregion.HomeOf
    ) -> tuple[SettlementView, bool]:
        """A visitor's bill: checked here (one read), settled by the home (asked with no
        transaction open here), recorded here (one transaction).  The home unreachable: the
        ``MessagingError`` reaches the cashier and nothing is written here."""
        assert self.visitors is not None
        institution = self._cashier(actor)
        what = f"settlement encounter {bill.encounter_id}"[:60]
        with self.db.uow() as uow:  # read only: the access check, the bill, a retry's record
            ids = self.mpi.linked_ids(uow, resident_id)
            self.access.check(uow, actor, ids, self.category, Action.WRITE, what=what, why=f"key {key}"[:60])
            prepared = crossregion.prepare(
                self.service,
                uow,
                ids,
                bill,
                homes=self.visitors,
                home=home,
                institution_code=institution,
                key=key,
            )
            again = crossregion.recorded(self.service, uow, prepared)
        if again is not None:
            return again, False
        reply = crossregion.HomeFigures.of(self.visitors.ask(home.city, "settle", prepared.remote.payload()))
        with self._record(actor, resident_id, Action.WRITE, what=what, why=f"key {key}"[:60]) as (uow, ids):
            again = crossregion.recorded(self.service, uow, prepared)
            if again is not None:  # a concurrent request of the same key recorded it first
                return again, False
            view = crossregion.record_at_visiting(
                self.service, uow, ids, prepared, reply, home=home, cashier=actor.id
            )
            return view, True

    def settle(self, actor: Actor, resident_id: str, bill: Bill, *, key: str) -> tuple[SettlementView, bool]:
        """Settle the visit's bill: (the settlement, True), or for a retry under the same key the
        first settlement and False."""
        institution = self._cashier(actor)
        what = f"settlement encounter {bill.encounter_id}"[:60]
        home = self._home_of(resident_id)
        for attempt in (1, 2):
            try:
                if home is not None:
                    return self._settle_visitor(actor, resident_id, bill, key=key, home=home)
                with self._record(actor, resident_id, Action.WRITE, what=what, why=f"key {key}"[:60]) as (
                    uow,
                    ids,
                ):
                    return self.service.settle(
                        uow, ids, bill, institution_code=institution, key=key, cashier=actor.id
                    )
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def refund(
        self, actor: Actor, settlement_id: int, returned: Sequence[Returned] | None, *, key: str
    ) -> tuple[Refunded, bool]:
        """退费: the whole bill (``returned`` None) or the lines given back."""
        institution = self._cashier(actor)
        what = f"refund settlement {settlement_id}"[:60]
        for attempt in (1, 2):
            try:
                with self.db.uow() as uow:
                    ids = self.mpi.linked_ids(uow, self.service.resident_of(uow, settlement_id))
                    self.access.check(
                        uow, actor, ids, Category.SETTLEMENT, Action.WRITE, what=what, why=f"key {key}"[:60]
                    )
                    visitor = crossregion.is_cross_region(uow, settlement_id)
                    if not visitor:
                        refunded = self.service.refund(
                            uow,
                            ids,
                            settlement_id,
                            returned,
                            institution_code=institution,
                            key=key,
                            cashier=actor.id,
                        )
                        uow.commit()
                        return refunded
                return self._refund_visitor(actor, settlement_id, returned, key=key)
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _refund_visitor(
        self, actor: Actor, settlement_id: int, returned: Sequence[Returned] | None, *, key: str
    ) -> tuple[Refunded, bool]:
        """退费 of a visitor's settlement: the whole bill, given back by the home first (asked with
        no transaction open here), then recorded here in one transaction."""
        if self.visitors is None:
            raise InvalidValue(
                "settlement_id", f"settlement {settlement_id} was made by a visitor's home pool"
            )
        if returned is not None:
            raise InvalidValue("lines", "a visitor's settlement is refunded whole: leave the lines out")
        institution = self._cashier(actor)
        what = f"refund settlement {settlement_id}"[:60]
        with self.db.uow() as uow:  # read only: the access check, the request, a retry's refund
            ids = self.mpi.linked_ids(uow, self.service.resident_of(uow, settlement_id))
            self.access.check(
                uow, actor, ids, Category.SETTLEMENT, Action.WRITE, what=what, why=f"key {key}"[:60]
            )
            home, request, live = crossregion.refund_ask(
                uow, settlement_id, key, institution_code=institution
            )
            again = crossregion.recorded_refund(self.service, uow, request)
        if again is not None:
            return Refunded(again, None), False
        if not live:
            raise InvalidValue("settlement_id", f"settlement {settlement_id} is refunded already")
        reply = crossregion.HomeFigures.of(self.visitors.ask(home, "refund", request.payload()))
        with self.db.uow() as uow:
            self.access.check(
                uow, actor, ids, Category.SETTLEMENT, Action.WRITE, what=what, why=f"key {key}"[:60]
            )
            again = crossregion.recorded_refund(self.service, uow, request)
            if again is not None:
                return Refunded(again, None), False
            view = crossregion.record_refund_at_visiting(
                self.service, uow, settlement_id, request, reply, cashier=actor.id
            )
            uow.commit()
            return Refunded(view, None), True

    # --- reading -------------------------------------------------------------------------------
    def settlement(self, actor: Actor, settlement_id: int) -> SettlementView:
        with self.db.uow() as uow:
            ids = self.mpi.linked_ids(uow, self.service.resident_of(uow, settlement_id))
            self.access.check(uow, actor, ids, Category.SETTLEMENT, what=f"settlement {settlement_id}"[:60])
            view = self.service.get(uow, settlement_id)
            uow.commit()
            return view

    def settlements(self, actor: Actor, resident_id: str, *, limit: int = 50) -> list[SettlementView]:
        with self._record(actor, resident_id, Action.READ, what="settlements") as (uow, ids):
            return self.service.of_person(uow, ids, limit=limit)

    def to_bill(self, actor: Actor, resident_id: str, *, days: int = 7) -> list[BillableVisit]:
        """The cashier's window: the person's visits here in the last ``days`` days, each with
        its live settlement if it has one (what is left to settle, what was settled)."""
        institution = self._cashier(actor)
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 90:
            raise InvalidValue("days", f"{days!r}: 1 to 90 days")
        since = self.clock.now() - dt.timedelta(days=days)
        with self._record(actor, resident_id, Action.READ, what="visits to bill") as (uow, ids):
            return self.service.billable(uow, ids, institution_code=institution, since=since)

    def catalog_here(self, actor: Actor) -> list[Item]:
        """The catalog of the pool whose areas hold the actor's institution (a clinician
        prescribing from it: a drug the cashier then bills by its code); none outside every
        pool of the year."""
        if not actor.institution_code:
            return []
        year = local_date(self.clock).year
        with self.db.uow() as uow:
            where = uow.reference.institution(actor.institution_code)
            area = where.area_code if where is not None else None
        for pool in shipped_pools(year):
            if self.service.pool_policy(pool, year).covers(area):
                return self.catalog_items(pool, year)
        return []

    def catalog_items(self, pool: str, year: int | None = None) -> list[Item]:
        """The pool's catalog of the year (drugs, services, materials with their class and price),
        for the bill form: reference data, no resident's."""
        year = local_date(self.clock).year if year is None else year
        catalog = self.service.catalog(pool, year)
        return sorted(catalog.items.values(), key=lambda item: (item.kind, item.code))

    # --- the NCMS office -----------------------------------------------------------------------
    def dashboard(self, actor: Actor, pool: str, year: int | None = None) -> office.Dashboard:
        """The pool's fund, payments by level and month, the largest and the flagged settlements."""
        year = local_date(self.clock).year if year is None else year
        policy = self.service.pool_policy(pool, year)
        with self.db.uow() as uow:
            self._office(uow, actor, policy)
            view = office.dashboard(uow, policy)
            self.audit.record(
                uow,
                actor,
                action="read",
                what=f"ncms dashboard {pool} {year}"[:60],
                why="office of the pool",
                resident_id=None,
            )
            uow.commit()
            return view


def bill_of(
    encounter_id: int,
    lines: Sequence[tuple[str, int, int]],
    *,
    paid_by: str = "cash",
    referral: bool = False,
    referred_by: str | None = None,
) -> Bill:
    """A :class:`Bill` from (item, quantity, unit price) triples — for the CLI and the tests."""
    if not isinstance(lines, Sequence):
        raise InvalidValue("lines", "a list of (item, quantity, unit price)")
    return Bill(encounter_id, tuple(LineIn(*line) for line in lines), paid_by, referral, referred_by)


__all__ = ["SettlementDesk", "bill_of"]
