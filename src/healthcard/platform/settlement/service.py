"""Instant settlement at the cashier (参合农民即时结算, SETTLEMENT.md): insured status, the
pre-settlement (试算), the settlement, the refund (退费) — inside the caller's unit of work, with
no access decisions of its own (the node's use cases, :mod:`.desk`, make them).

One settlement is one database transaction, in this order::

    the visit, its institution (level, area), its primary diagnosis      one read
    the resident's accumulator row of the pool and year, LOCKED          SELECT … FOR UPDATE
      (the enrolment joined: not insured that year → refused)            (SQLite: BEGIN IMMEDIATE)
    the idempotency key, and a live settlement of the same visit         one read, under the lock
    the day's village eligible (village outpatient visits only)          one read, under the lock
    rules 1–5                                                            engine.settle (pure)
    the ledger transaction (a health-account payment first: it refuses   ledger.post
      below zero before anything is written)
    the settlement and its lines, the accumulators, the visit's fees     four writes

The lock comes before the key is looked up: a retry that raced its first attempt waits for it
and then finds its result; two settlements of one resident run one after the other, so they
never together pass the annual cap.  A retry with the same key and the same request returns
the first result and moves nothing; the same key with another request is refused
(:class:`~healthcard.errors.Duplicate` on ``idempotency_key``).

A visit has at most one live settlement: an admission's deductible is taken once, and the
visit record's fee lines are that bill's.  To change a settled bill, refund it: a **full
refund** posts the original ledger transaction negated, gives the accumulators back, marks the
original REVERSED and writes a ``refund`` row that points at it (figures negated, so sums over
settlements are net); a **partial refund** (returned lines) does the same and then settles the
lines that remain as a new settlement, in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, or_, select, update

from healthcard.clock import SHANGHAI, Clock
from healthcard.errors import Duplicate, InvalidValue, NotFound
from healthcard.keys import sm3
from healthcard.platform.settlement import fees as card_fees
from healthcard.platform.settlement import ledger, review
from healthcard.platform.settlement.catalog import Catalog, Item, load_catalog
from healthcard.platform.settlement.engine import BillLine, Claim, ItemClass, Outcome, YearToDate, settle
from healthcard.platform.settlement.policy import Level, Policy, Visit, load_policy
from healthcard.storage import tables as t
from healthcard.storage.uow import UnitOfWork

PAID_BY = ("account", "cash")
SETTLED, REVERSED = "SETTLED", "REVERSED"
SETTLEMENT, REFUND = "settlement", "refund"
#: levels whose referral counts for an admission going up to city or province (rule 3)
_FROM_BELOW = frozenset({Level.VILLAGE, Level.TOWNSHIP, Level.COUNTY})
_KEY_LENGTH = 64

_T = t.Base.metadata.tables
_S = _T[t.Settlement.__tablename__]
_L = _T[t.SettlementLine.__tablename__]
_A = _T[t.Accumulator.__tablename__]
_N = _T[t.Enrollment.__tablename__]
_E = _T[t.Encounter.__tablename__]
_I = _T[t.Institution.__tablename__]
_D = _T[t.Diagnosis.__tablename__]
_LE = _T[t.LedgerEntry.__tablename__]
_referrer = _I.alias("referrer")

#: the visit with what the rules need of it, in one round trip: its institution's level and
#: area, its primary diagnosis (the first diagnosis when none is marked), the referrer's level
_VISIT = (
    select(
        _E.c.id,
        _E.c.resident_id,
        _E.c.institution_code,
        _E.c.kind,
        _E.c.started_at,
        _I.c.level,
        _I.c.area_code,
        select(_D.c.code)
        .where(_D.c.encounter_id == _E.c.id)
        .order_by(_D.c.primary.desc(), _D.c.id)
        .limit(1)
        .scalar_subquery()
        .label("diagnosis"),
        select(func.coalesce(_referrer.c.level, ""))
        .where(_referrer.c.code == bindparam("referrer"))
        .scalar_subquery()
        .label("referrer_level"),
    )
    .join_from(_E, _I, _I.c.code == _E.c.institution_code)
    .where(_E.c.id == bindparam("encounter"), _E.c.resident_id.in_(bindparam("ids", expanding=True)))
)
_INSURED_COLUMNS = (
    _A.c.resident_id,
    _A.c.pool,
    _A.c.fund_paid_fen,
    _A.c.outpatient_fund_paid_fen,
    _A.c.outpatient_deductible_met_fen,
)
#: the person's accumulator row of the year, its enrolment ACTIVE — read to quote …
_INSURED = (
    select(*_INSURED_COLUMNS)
    .join_from(
        _A, _N, and_(_N.c.resident_id == _A.c.resident_id, _N.c.year == _A.c.year, _N.c.pool == _A.c.pool)
    )
    .where(
        _A.c.resident_id.in_(bindparam("ids", expanding=True)),
        _A.c.year == bindparam("year"),
        _N.c.status == "ACTIVE",
    )
    .order_by(_A.c.resident_id)
)
#: … and locked to settle (PostgreSQL: FOR UPDATE OF the accumulator row only)
_INSURED_LOCKED = _INSURED.with_for_update(of=_A)
#: one accumulator row, locked (a refund knows whose)
_ACCUMULATOR_LOCKED = (
    select(*_INSURED_COLUMNS)
    .where(
        _A.c.resident_id == bindparam("rid"), _A.c.pool == bindparam("pool"), _A.c.year == bindparam("year")
    )
    .with_for_update()
)
#: under the lock: a settlement with this key, and the visit's live settlement
_SEEN = select(_S.c.id, _S.c.idempotency_key, _S.c.request_hash, _S.c.kind, _S.c.encounter_id).where(
    or_(
        and_(_S.c.institution_code == bindparam("institution"), _S.c.idempotency_key == bindparam("key")),
        and_(_S.c.encounter_id == bindparam("encounter"), _S.c.status == SETTLED, _S.c.kind == SETTLEMENT),
    )
)
#: the eligible cost of the person's live village outpatient settlements of visits on one day
_VILLAGE_DAY = (
    select(func.coalesce(func.sum(_S.c.village_eligible_fen), 0))
    .join_from(_S, _E, _E.c.id == _S.c.encounter_id)
    .where(
        _S.c.resident_id.in_(bindparam("ids", expanding=True)),
        _S.c.status == SETTLED,
        _S.c.kind == SETTLEMENT,
        _S.c.level == Level.VILLAGE.value,
        _S.c.visit == Visit.OUTPATIENT.value,
        _E.c.started_at >= bindparam("day_start"),
        _E.c.started_at < bindparam("day_end"),
    )
)
_NEW_SETTLEMENT = insert(_S).returning(_S.c.id)
_NEW_LINES = insert(_L)
_reversal = _S.alias("reversal")
_REVERSED_BY = (
    select(_reversal.c.id).where(_reversal.c.reverses_id == _S.c.id).scalar_subquery().label("reversed_by")
)


# --- what callers give ------------------------------------------------------------------------------
@dataclass(frozen=True)
class LineIn:
    """A line of the bill as the cashier enters it: the catalog item, how many, and the unit
    price charged (it must be the catalog's)."""

    item: str
    quantity: int
    unit_price_fen: int


@dataclass(frozen=True)
class Bill:
    """A visit's bill at the cashier."""

    encounter_id: int
    lines: tuple[LineIn, ...]
    paid_by: str = "cash"  # account (the resident's health account) | cash
    referral: bool = False  # 转诊: the visit comes with a referral …
    referred_by: str | None = None  # … from this institution


@dataclass(frozen=True)
class Returned:
    """A line given back at a refund: the catalog item and how many of it."""

    item: str
    quantity: int


# --- what the service answers ------------------------------------------------------------------------
@dataclass(frozen=True)
class BillableVisit:
    """A visit of the person at the cashier's institution, as the cashier's window lists it:
    which visit (number, department, when, open or closed) and whether a live settlement holds
    it already — no diagnosis, no prescription (the cashier's category is settlement)."""

    encounter_id: int
    number: str
    kind: str
    department: str
    clinician: str | None
    started_at: dt.datetime
    status: str  # the encounter's: open | closed
    settlement_id: int | None  # the live settlement of its bill, if any
    card_slot: int | None  # written to the card already (ED/EE slot)


@dataclass(frozen=True)
class LineView:
    seq: int
    item: str
    name: str
    item_class: str  # A | B | C
    fee_category: str  # CV07.10.001 (healthcard.platform.settlement.fees)
    quantity: int  # negative on a refund
    unit_price_fen: int
    amount_fen: int  # negative on a refund


@dataclass(frozen=True)
class SettlementView:
    id: int
    kind: str  # settlement | refund
    status: str  # SETTLED | REVERSED (a settlement refunded since; a refund row stays SETTLED)
    reverses_id: int | None  # a refund: the settlement it reverses
    reversed_by: int | None  # a REVERSED settlement: its refund
    idempotency_key: str
    resident_id: str
    encounter_id: int
    institution_code: str
    level: str
    visit: str  # outpatient | inpatient
    inside_pool: bool
    referral: bool  # the referral as the rules took it
    referred_by: str | None
    pool: str
    year: int
    policy_version: int
    total_fen: int
    eligible_fen: int
    deductible_fen: int
    ratio_percent: int
    fund_fen: int
    self_fen: int
    village_eligible_fen: int
    capped: bool
    paid_by: str
    diagnosis_code: str | None
    review: str | None  # random, threshold (comma-separated), or None
    cashier: str
    settled_at: dt.datetime
    txn_id: int
    lines: tuple[LineView, ...] = ()


@dataclass(frozen=True)
class Quote:
    """A pre-settlement (试算): what the settlement would be now; nothing is written."""

    resident_id: str
    encounter_id: int
    institution_code: str
    level: str
    visit: str
    inside_pool: bool
    referral: bool
    pool: str
    year: int
    policy_version: int
    total_fen: int
    eligible_fen: int
    deductible_fen: int
    ratio_percent: int
    fund_fen: int
    self_fen: int
    covered: bool
    capped: bool
    lines: tuple[LineView, ...]


@dataclass(frozen=True)
class Refunded:
    """A refund: the refund row, and the settlement of the lines kept (a partial refund)."""

    refund: SettlementView
    replacement: SettlementView | None


@dataclass(frozen=True)
class Insured:
    """参合 status of the person in a year, with the year's accumulators and what is left."""

    resident_id: str
    year: int
    insured: bool
    pool: str | None = None
    ncms_number: str | None = None
    premium_fen: int = 0
    enrolled_at: dt.datetime | None = None
    fund_paid_fen: int = 0
    outpatient_fund_paid_fen: int = 0
    outpatient_deductible_met_fen: int = 0
    admissions: int = 0
    settlements: int = 0
    fund_left_fen: int = 0  # of the annual fund cap
    outpatient_left_fen: int = 0  # of the annual outpatient cap


# --- inner records ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Visit:
    id: int
    institution_code: str
    level: Level
    visit: Visit
    area_code: str
    started_at: dt.datetime
    diagnosis: str | None
    referrer_level: str | None  # "" an institution without a level, None no such institution

    @property
    def year(self) -> int:
        return self.started_at.astimezone(SHANGHAI).year


@dataclass
class _Account:
    """The locked accumulator row (in memory, moved as the transaction goes)."""

    resident_id: str
    pool: str
    year: int
    fund_paid_fen: int
    outpatient_fund_paid_fen: int
    outpatient_deductible_met_fen: int
    admissions: int = 0
    settlements: int = 0
    delta: dict[str, int] = field(default_factory=dict)

    def add(self, outcome_fund: int, deductible: int, visit: str, sign: int) -> None:
        """Count a settlement in (``sign`` 1) or out (−1, a refund) of the year."""
        moves = {"fund_paid_fen": outcome_fund, "settlements": 1}
        if visit == Visit.OUTPATIENT:
            moves["outpatient_fund_paid_fen"] = outcome_fund
            moves["outpatient_deductible_met_fen"] = deductible
        else:
            moves["admissions"] = 1
        for name, amount in moves.items():
            setattr(self, name, getattr(self, name) + sign * amount)
            self.delta[name] = self.delta.get(name, 0) + sign * amount

    def ytd(self, village_today: int) -> YearToDate:
        return YearToDate(
            fund_paid_fen=max(self.fund_paid_fen, 0),
            outpatient_fund_paid_fen=max(self.outpatient_fund_paid_fen, 0),
            outpatient_deductible_met_fen=max(self.outpatient_deductible_met_fen, 0),
            village_eligible_today_fen=max(village_today, 0),
        )


@dataclass(frozen=True)
class _Priced:
    """A bill line checked against the catalog (or kept from a settled bill, at its price)."""

    seq: int
    item: str
    name: str
    item_class: ItemClass
    fee_category: str
    quantity: int
    price_fen: int

    @classmethod
    def of(cls, seq: int, item: Item, quantity: int) -> _Priced:
        return cls(
            seq,
            item.code,
            item.name,
            item.item_class,
            card_fees.category_of(item.kind),
            quantity,
            item.price_fen,
        )

    @property
    def bill_line(self) -> BillLine:
        return BillLine(self.item, self.item_class, self.quantity, self.price_fen)

    @property
    def amount_fen(self) -> int:
        return self.quantity * self.price_fen


def request_hash(request: Mapping[str, Any]) -> str:
    """SM3 of the request's canonical JSON: the same key must come with the same request."""
    text = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return sm3(text.encode()).hex()


def check_key(key: object) -> str:
    if not isinstance(key, str) or not key.strip() or len(key.strip()) > _KEY_LENGTH:
        raise InvalidValue("idempotency_key", f"1 to {_KEY_LENGTH} characters (a UUID, the bill number …)")
    if any(ord(c) < 32 for c in key):
        raise InvalidValue("idempotency_key", "no control characters")
    return key.strip()


def _check_bill(bill: Bill) -> None:
    if isinstance(bill.encounter_id, bool) or not isinstance(bill.encounter_id, int) or bill.encounter_id < 1:
        raise InvalidValue("encounter_id", "the visit's id")
    if bill.paid_by not in PAID_BY:
        raise InvalidValue("paid_by", f"{bill.paid_by!r}: account (the health account) or cash")
    if not bill.lines:
        raise InvalidValue("lines", "a bill has at least one line")
    if bill.referral and not bill.referred_by:
        raise InvalidValue("referred_by", "a referral names the institution that referred the patient")
    if not bill.referral and bill.referred_by:
        raise InvalidValue("referral", "a referring institution is given: set referral")


def _resettle_key(key: str) -> str:
    """The idempotency key of the settlement a partial refund makes of the lines kept."""
    return sm3(f"resettle\x00{key}".encode()).hex()


def negated_lines(lines: Sequence[LineView]) -> tuple[LineView, ...]:
    """A refund's lines: the settled ones with quantity and amount negated (never an edit)."""
    return tuple(
        LineView(
            line.seq,
            line.item,
            line.name,
            line.item_class,
            line.fee_category,
            -line.quantity,
            line.unit_price_fen,
            -line.amount_fen,
        )
        for line in lines
    )


class Settlements:
    """The settlement service; ``policies`` / ``catalogs`` find a pool's files for a year
    (default: the shipped ones, read once per process)."""

    def __init__(
        self,
        clock: Clock,
        *,
        policies: Callable[[str, int], Policy] | None = None,
        catalogs: Callable[[str, int], Catalog] | None = None,
    ) -> None:
        self.clock = clock
        self._policies = policies or _shipped_policy
        self._catalogs = catalogs or _shipped_catalog

    def policy(self, pool: str, year: int) -> Policy:
        return self._policies(pool, year)

    def catalog(self, pool: str, year: int) -> Catalog:
        return self._catalogs(pool, year)

    # --- insured status ---------------------------------------------------------------------------
    def enrol(
        self,
        uow: UnitOfWork,
        resident_id: str,
        *,
        pool: str,
        year: int,
        premium_fen: int,
        ncms_number: str | None = None,
        actor: str,
    ) -> Insured:
        """参合: ``resident_id`` is insured in ``pool`` for ``year`` — the enrolment, its zeroed
        accumulator row, and the premium into the fund (a ``funding`` ledger transaction
        premiums:<pool> → fund:<pool>)."""
        policy = self.pool_policy(pool, year)
        premium = _premium(premium_fen)
        number = _ncms_number(ncms_number)
        if uow.session.get(t.Resident, resident_id) is None:
            raise NotFound("resident", resident_id)
        existing = uow.session.get(t.Enrollment, (resident_id, year))
        if existing is not None:
            raise Duplicate(
                "resident_id", f"{resident_id} is enrolled in pool {existing.pool} for {year} already"
            )
        now = self.clock.now()
        self._insert_enrolments(uow, [resident_id], policy, premium, now, number)
        if premium:
            ledger.post(
                uow,
                "funding",
                f"enrolment {pool} {year} {resident_id}"[:64],
                ledger.move(ledger.premiums(pool), ledger.fund(pool), premium, resident_id),
                actor=actor,
                at=now,
                resident_id=resident_id,
            )
        return self.insured(uow, [resident_id], year)

    def enrol_many(
        self,
        uow: UnitOfWork,
        resident_ids: Sequence[str],
        *,
        pool: str,
        year: int,
        premium_fen: int,
        actor: str,
    ) -> int:
        """A whole register at once (the demo city, a county's yearly 参合 drive): those not yet
        enrolled for ``year`` are, in a few multi-row statements, with one funding transaction
        for all their premiums.  Returns how many were enrolled."""
        policy = self.pool_policy(pool, year)
        premium = _premium(premium_fen)
        wanted = list(dict.fromkeys(resident_ids))
        done: set[str] = set()
        for start in range(0, len(wanted), 5000):
            chunk = wanted[start : start + 5000]
            done |= set(
                uow.session.scalars(
                    select(_N.c.resident_id).where(_N.c.year == year, _N.c.resident_id.in_(chunk))
                )
            )
        todo = [r for r in wanted if r not in done]
        if not todo:
            return 0
        now = self.clock.now()
        self._insert_enrolments(uow, todo, policy, premium, now, None)
        if premium:
            ledger.post(
                uow,
                "funding",
                f"enrolment {pool} {year} ×{len(todo)}",
                ledger.move(ledger.premiums(pool), ledger.fund(pool), premium * len(todo)),
                actor=actor,
                at=now,
            )
        return len(todo)

    def _insert_enrolments(
        self,
        uow: UnitOfWork,
        resident_ids: Sequence[str],
        policy: Policy,
        premium: int,
        now: dt.datetime,
        number: str | None,
    ) -> None:
        uow.session.execute(
            insert(_N),
            [
                {
                    "resident_id": rid,
                    "year": policy.year,
                    "pool": policy.pool,
                    "ncms_number": number,
                    "premium_fen": premium,
                    "status": "ACTIVE",
                    "enrolled_at": now,
                }
                for rid in resident_ids
            ],
        )
        uow.session.execute(
            insert(_A),
            [
                {
                    "resident_id": rid,
                    "pool": policy.pool,
                    "year": policy.year,
                    "fund_paid_fen": 0,
                    "outpatient_fund_paid_fen": 0,
                    "outpatient_deductible_met_fen": 0,
                    "admissions": 0,
                    "settlements": 0,
                    "updated_at": now,
                }
                for rid in resident_ids
            ],
        )

    def pool_policy(self, pool: str, year: int) -> Policy:
        """The policy of ``pool`` for ``year``, refused on ``pool`` when there is none."""
        if not isinstance(pool, str) or not pool or len(pool) > 16 or not pool.replace("-", "").isalnum():
            raise InvalidValue("pool", f"{pool!r}: the pool's name")
        if isinstance(year, bool) or not isinstance(year, int) or not 2000 <= year <= 2100:
            raise InvalidValue("year", f"{year!r}: a year")
        try:
            return self.policy(pool, year)
        except InvalidValue:
            raise InvalidValue("pool", f"pool {pool!r} has no policy for {year}") from None

    def insured(self, uow: UnitOfWork, ids: Sequence[str], year: int) -> Insured:
        """The person's insured status in ``year`` (not insured: ``insured`` False)."""
        if isinstance(year, bool) or not isinstance(year, int) or not 2000 <= year <= 2100:
            raise InvalidValue("year", f"{year!r}: a year")
        row = uow.session.execute(
            select(_N, _A.c.fund_paid_fen, _A.c.outpatient_fund_paid_fen, _A.c.outpatient_deductible_met_fen)
            .add_columns(_A.c.admissions, _A.c.settlements)
            .join_from(
                _N,
                _A,
                and_(_A.c.resident_id == _N.c.resident_id, _A.c.year == _N.c.year, _A.c.pool == _N.c.pool),
            )
            .where(_N.c.resident_id.in_(list(ids)), _N.c.year == year, _N.c.status == "ACTIVE")
            .order_by(_N.c.resident_id)
        ).first()
        if row is None:
            return Insured(ids[0], year, False)
        policy = self.policy(row.pool, year)
        return Insured(
            resident_id=row.resident_id,
            year=year,
            insured=True,
            pool=row.pool,
            ncms_number=row.ncms_number,
            premium_fen=row.premium_fen,
            enrolled_at=row.enrolled_at,
            fund_paid_fen=row.fund_paid_fen,
            outpatient_fund_paid_fen=row.outpatient_fund_paid_fen,
            outpatient_deductible_met_fen=row.outpatient_deductible_met_fen,
            admissions=row.admissions,
            settlements=row.settlements,
            fund_left_fen=max(policy.annual_fund_cap_fen - row.fund_paid_fen, 0),
            outpatient_left_fen=max(
                min(
                    policy.outpatient_annual_cap_fen - row.outpatient_fund_paid_fen,
                    policy.annual_fund_cap_fen - row.fund_paid_fen,
                ),
                0,
            ),
        )

    # --- the bill ----------------------------------------------------------------------------------
    def _visit(self, uow: UnitOfWork, ids: Sequence[str], bill: Bill, institution_code: str) -> _Visit:
        row = uow.session.execute(
            _VISIT, {"encounter": bill.encounter_id, "ids": list(ids), "referrer": bill.referred_by or ""}
        ).first()
        if row is None:
            raise NotFound("encounter", str(bill.encounter_id))
        if row.institution_code != institution_code:
            raise InvalidValue(
                "encounter_id",
                f"visit {row.id} was at {row.institution_code}: the cashier of {institution_code} "
                "settles visits of its own institution",
            )
        try:
            level = Level(row.level)
        except ValueError:
            raise InvalidValue(
                "encounter_id", f"institution {row.institution_code} has no level (village … province)"
            ) from None
        visit = Visit.INPATIENT if row.kind == "inpatient" else Visit.OUTPATIENT  # emergency: outpatient
        if bill.referred_by is not None:
            if row.referrer_level is None:
                raise InvalidValue("referred_by", f"{bill.referred_by}: no such institution")
            if bill.referred_by == row.institution_code:
                raise InvalidValue("referred_by", "an institution does not refer a patient to itself")
        return _Visit(
            row.id,
            row.institution_code,
            level,
            visit,
            row.area_code,
            row.started_at,
            row.diagnosis,
            row.referrer_level,
        )

    def _account(self, uow: UnitOfWork, ids: Sequence[str], year: int, *, lock: bool) -> _Account:
        row = uow.session.execute(
            _INSURED_LOCKED if lock else _INSURED, {"ids": list(ids), "year": year}
        ).first()
        if row is None:
            raise InvalidValue("resident_id", f"{ids[0]} is not insured (参合) in {year}")
        return _Account(
            row.resident_id,
            row.pool,
            year,
            row.fund_paid_fen,
            row.outpatient_fund_paid_fen,
            row.outpatient_deductible_met_fen,
        )

    def _priced(self, catalog: Catalog, lines: Sequence[LineIn]) -> list[_Priced]:
        priced = []
        for n, line in enumerate(lines):
            at = f"lines[{n}]"
            if not isinstance(line, LineIn):
                raise InvalidValue(at, "expected a LineIn")
            if isinstance(line.unit_price_fen, bool) or not isinstance(line.unit_price_fen, int):
                raise InvalidValue(f"{at}.unit_price_fen", "the unit price charged, whole fen")
            checked = catalog.line(line.item, line.quantity, line.unit_price_fen, at=at)
            priced.append(_Priced.of(n + 1, catalog.item(checked.item), checked.quantity))
        if sum(p.amount_fen for p in priced) <= 0:
            raise InvalidValue("lines", "the bill comes to 0 fen: nothing to settle")
        return priced

    @staticmethod
    def _referral(policy: Policy, visit: _Visit, inside: bool, referral: bool) -> bool:
        """The referral as rule 3 takes it: going up to a city or province admission inside the
        pool, only a referral from a county-or-lower institution counts."""
        if not referral:
            return False
        upward = inside and visit.visit == policy.upward_visit and visit.level in policy.upward_levels
        if upward:
            try:
                return Level(visit.referrer_level or "") in _FROM_BELOW
            except ValueError:
                return False
        return True

    def _village_today(self, uow: UnitOfWork, ids: Sequence[str], visit: _Visit) -> int:
        if (visit.level, visit.visit) != (Level.VILLAGE, Visit.OUTPATIENT):
            return 0
        day = visit.started_at.astimezone(SHANGHAI).date()
        start = dt.datetime.combine(day, dt.time(0), tzinfo=SHANGHAI)
        return int(
            uow.session.execute(
                _VILLAGE_DAY, {"ids": list(ids), "day_start": start, "day_end": start + dt.timedelta(days=1)}
            ).scalar_one()
        )

    def _claim(
        self,
        policy: Policy,
        visit: _Visit,
        inside: bool,
        referral: bool,
        priced: Sequence[_Priced],
        ytd: YearToDate,
    ) -> Outcome:
        return settle(
            policy, Claim(visit.level, visit.visit, inside, referral, tuple(p.bill_line for p in priced), ytd)
        )

    def quote(self, uow: UnitOfWork, ids: Sequence[str], bill: Bill, *, institution_code: str) -> Quote:
        """试算: the settlement the bill would get now (no lock, nothing written)."""
        _check_bill(bill)
        visit = self._visit(uow, ids, bill, institution_code)
        account = self._account(uow, ids, visit.year, lock=False)
        policy, catalog = self.policy(account.pool, visit.year), self.catalog(account.pool, visit.year)
        priced = self._priced(catalog, bill.lines)
        inside = policy.covers(visit.area_code)
        referral = self._referral(policy, visit, inside, bill.referral)
        outcome = self._claim(
            policy, visit, inside, referral, priced, account.ytd(self._village_today(uow, ids, visit))
        )
        return Quote(
            resident_id=account.resident_id,
            encounter_id=visit.id,
            institution_code=visit.institution_code,
            level=visit.level.value,
            visit=visit.visit.value,
            inside_pool=inside,
            referral=referral,
            pool=account.pool,
            year=visit.year,
            policy_version=policy.version,
            total_fen=outcome.total_fen,
            eligible_fen=outcome.eligible_fen,
            deductible_fen=outcome.deductible_fen,
            ratio_percent=outcome.ratio_percent,
            fund_fen=outcome.fund_fen,
            self_fen=outcome.self_fen,
            covered=outcome.covered,
            capped=outcome.capped,
            lines=tuple(_line_view(p) for p in priced),
        )

    def settle(
        self,
        uow: UnitOfWork,
        ids: Sequence[str],
        bill: Bill,
        *,
        institution_code: str,
        key: str,
        cashier: str,
        health_account: str | None = None,
    ) -> tuple[SettlementView, bool]:
        """Settle the bill (see the module's docstring for the order).  Returns the settlement
        and True — or, for a retry of the same request under the same key, the first
        settlement and False.  ``health_account``: whose account pays (default the person's
        surviving id)."""
        _check_bill(bill)
        key = check_key(key)
        visit = self._visit(uow, ids, bill, institution_code)
        account = self._account(uow, ids, visit.year, lock=True)
        digest = request_hash(
            {
                "op": SETTLEMENT,
                "resident": account.resident_id,
                "encounter": bill.encounter_id,
                "lines": [[line.item, line.quantity, line.unit_price_fen] for line in bill.lines],
                "paid_by": bill.paid_by,
                "referral": bill.referral,
                "referred_by": bill.referred_by,
            }
        )
        seen = uow.session.execute(
            _SEEN, {"institution": institution_code, "key": key, "encounter": bill.encounter_id}
        ).all()
        for row in seen:
            if row.idempotency_key == key:
                if row.request_hash == digest and row.kind == SETTLEMENT:
                    return self.get(uow, row.id), False
                raise Duplicate(
                    "idempotency_key", f"{key} was used for another request (settlement {row.id})"
                )
        policy, catalog = self.policy(account.pool, visit.year), self.catalog(account.pool, visit.year)
        priced = self._priced(catalog, bill.lines)
        if seen:
            raise Duplicate(
                "encounter_id",
                f"visit {bill.encounter_id} is settled already (settlement {seen[0].id}): "
                "refund it to settle again",
            )
        inside = policy.covers(visit.area_code)
        referral = self._referral(policy, visit, inside, bill.referral)
        view = self._settle(
            uow,
            account,
            policy,
            visit,
            priced,
            ids=ids,
            inside=inside,
            referral=referral,
            referred_by=bill.referred_by,
            paid_by=bill.paid_by,
            key=key,
            digest=digest,
            cashier=cashier,
            payer=health_account or ids[0],
        )
        self._save_account(uow, account)
        self._write_fees(uow, visit.id, view.lines)
        return view, True

    def _settle(
        self,
        uow: UnitOfWork,
        account: _Account,
        policy: Policy,
        visit: _Visit,
        priced: Sequence[_Priced],
        *,
        ids: Sequence[str],
        inside: bool,
        referral: bool,
        referred_by: str | None,
        paid_by: str,
        key: str,
        digest: str,
        cashier: str,
        payer: str,
    ) -> SettlementView:
        """Rules 1–5 on the locked accumulators, then the ledger, the row, its lines; the
        accumulators move in memory (the caller writes them once)."""
        outcome = self._claim(
            policy, visit, inside, referral, priced, account.ytd(self._village_today(uow, ids, visit))
        )
        now = self.clock.now()
        rid, institution = account.resident_id, visit.institution_code
        entries = [
            *ledger.move(ledger.fund(account.pool), ledger.receivable(institution), outcome.fund_fen, rid)
        ]
        source = ledger.health(payer) if paid_by == "account" else ledger.POCKET
        entries += ledger.move(source, ledger.cash(institution), outcome.self_fen, rid)
        posted = ledger.post(
            uow, SETTLEMENT, f"{institution}:{key}"[:64], entries, actor=cashier, at=now, resident_id=rid
        )
        values: dict[str, Any] = {
            "idempotency_key": key,
            "request_hash": digest,
            "kind": SETTLEMENT,
            "status": SETTLED,
            "reverses_id": None,
            "resident_id": rid,
            "encounter_id": visit.id,
            "institution_code": institution,
            "level": visit.level.value,
            "visit": visit.visit.value,
            "inside_pool": inside,
            "referral": referral,
            "referred_by": referred_by,
            "pool": account.pool,
            "year": account.year,
            "policy_version": policy.version,
            "total_fen": outcome.total_fen,
            "eligible_fen": outcome.eligible_fen,
            "deductible_fen": outcome.deductible_fen,
            "ratio_percent": outcome.ratio_percent,
            "fund_fen": outcome.fund_fen,
            "self_fen": outcome.self_fen,
            "village_eligible_fen": outcome.village_eligible_fen,
            "capped": outcome.capped,
            "paid_by": paid_by,
            "diagnosis_code": visit.diagnosis,
            "review": review.flags(
                policy.review, institution_code=institution, idempotency_key=key, total_fen=outcome.total_fen
            ),
            "cashier": cashier[:40],
            "settled_at": now,
            "txn_id": posted.txn_id,
        }
        sid = uow.session.execute(_NEW_SETTLEMENT, values).scalar_one()
        lines = tuple(_line_view(p) for p in priced)
        self._insert_lines(uow, sid, rid, lines)
        account.add(outcome.fund_fen, outcome.deductible_fen, visit.visit, +1)
        return _view(sid, values, lines)

    @staticmethod
    def _insert_lines(
        uow: UnitOfWork, settlement_id: int, resident_id: str, lines: Iterable[LineView]
    ) -> None:
        uow.session.execute(
            _NEW_LINES,
            [
                {
                    "settlement_id": settlement_id,
                    "resident_id": resident_id,
                    "seq": line.seq,
                    "item": line.item,
                    "name": line.name[:60],
                    "item_class": line.item_class,
                    "fee_category": line.fee_category,
                    "quantity": line.quantity,
                    "unit_price_fen": line.unit_price_fen,
                    "amount_fen": line.amount_fen,
                }
                for line in lines
            ],
        )

    def _save_account(self, uow: UnitOfWork, account: _Account) -> None:
        """Write what the transaction moved of the accumulators, in one UPDATE (relative, so it
        holds even if the row was not read under this lock)."""
        values: dict[str, Any] = {
            name: _A.c[name] + amount for name, amount in account.delta.items() if amount
        }
        if not values:
            return
        uow.session.execute(
            update(_A)
            .where(
                _A.c.resident_id == account.resident_id, _A.c.pool == account.pool, _A.c.year == account.year
            )
            .values(**values, updated_at=self.clock.now())
        )
        account.delta.clear()

    @staticmethod
    def _write_fees(uow: UnitOfWork, encounter_id: int, lines: Sequence[LineView]) -> None:
        """The visit record's fee lines and payment method: the live bill's (none after a full
        refund), summed by fee category — what the card's ED / EE fee items are made of."""
        lines_by_category = card_fees.fee_lines(
            card_fees.Priced(line.fee_category, line.amount_fen) for line in lines
        )
        uow.session.execute(
            update(_E)
            .where(_E.c.id == encounter_id)
            .values(
                fees=[
                    {"category": f.category, "code": f.code, "amount_fen": f.amount_fen}
                    for f in lines_by_category
                ],
                payment_method=card_fees.NCMS_PAYMENT if lines else None,
            )
        )

    # --- the refund ---------------------------------------------------------------------------------
    def refund(
        self,
        uow: UnitOfWork,
        ids: Sequence[str],
        settlement_id: int,
        returned: Sequence[Returned] | None,
        *,
        institution_code: str,
        key: str,
        cashier: str,
    ) -> tuple[Refunded, bool]:
        """退费 of a live settlement at the institution that made it: ``returned`` None gives the
        whole bill back, otherwise the lines returned (the rest is settled anew in the same
        transaction).  Returns the refund and True, or — a retry under the same key — the
        first refund and False."""
        key = check_key(key)
        wanted = _check_returned(returned)
        originals = self._views(uow, and_(_S.c.id == settlement_id, _S.c.resident_id.in_(list(ids))))
        if not originals:
            raise NotFound("settlement", str(settlement_id))
        original = originals[0]
        if original.institution_code != institution_code:
            raise InvalidValue(
                "settlement_id",
                f"settlement {settlement_id} was made at {original.institution_code}: "
                "a bill is refunded where it was paid",
            )
        digest = request_hash(
            {
                "op": REFUND,
                "settlement": settlement_id,
                "lines": None if wanted is None else [[r.item, r.quantity] for r in wanted],
            }
        )
        locked = uow.session.execute(
            _ACCUMULATOR_LOCKED, {"rid": original.resident_id, "pool": original.pool, "year": original.year}
        ).first()
        if locked is None:  # an enrolment always makes its row: a settlement without one is no refund
            raise NotFound("accumulator", f"{original.resident_id} {original.pool} {original.year}")
        account = _Account(
            locked.resident_id,
            locked.pool,
            original.year,
            locked.fund_paid_fen,
            locked.outpatient_fund_paid_fen,
            locked.outpatient_deductible_met_fen,
        )
        # under the lock: this key's earlier use, and the settlement's status now
        rows = uow.session.execute(
            select(_S.c.id, _S.c.idempotency_key, _S.c.request_hash, _S.c.kind, _S.c.status).where(
                or_(
                    and_(_S.c.institution_code == institution_code, _S.c.idempotency_key == key),
                    _S.c.id == settlement_id,
                )
            )
        ).all()
        for row in rows:
            if row.idempotency_key == key:
                if row.kind == REFUND and row.request_hash == digest:
                    again = self._views(
                        uow,
                        and_(
                            _S.c.institution_code == institution_code,
                            _S.c.idempotency_key == _resettle_key(key),
                        ),
                    )
                    return Refunded(self.get(uow, row.id), again[0] if again else None), False
                raise Duplicate(
                    "idempotency_key", f"{key} was used for another request (settlement {row.id})"
                )
        now_row = next(row for row in rows if row.id == settlement_id)
        if now_row.kind == REFUND:
            raise InvalidValue("settlement_id", f"{settlement_id} is a refund: a refund is not refunded")
        if now_row.status != SETTLED:
            raise InvalidValue("settlement_id", f"settlement {settlement_id} is refunded already")
        kept = _kept(original, wanted)

        # reverse the whole: the ledger transaction negated, the row, the accumulators
        now = self.clock.now()
        entries = uow.session.execute(
            select(_LE.c.account, _LE.c.amount_fen, _LE.c.resident_id).where(_LE.c.txn_id == original.txn_id)
        ).all()
        posted = ledger.post(
            uow,
            REFUND,
            f"{institution_code}:{key}"[:64],
            [ledger.Entry(e.account, -e.amount_fen, e.resident_id) for e in entries],
            actor=cashier,
            at=now,
            resident_id=original.resident_id,
        )
        figures = (
            "total_fen",
            "eligible_fen",
            "deductible_fen",
            "fund_fen",
            "self_fen",
            "village_eligible_fen",
        )
        values: dict[str, Any] = {
            name: getattr(original, name)
            for name in SettlementView.__dataclass_fields__
            if name not in ("id", "lines", "reversed_by")
        }
        values.update({name: -getattr(original, name) for name in figures})
        values.update(
            idempotency_key=key,
            request_hash=digest,
            kind=REFUND,
            status=SETTLED,
            reverses_id=settlement_id,
            review=None,
            cashier=cashier[:40],
            settled_at=now,
            txn_id=posted.txn_id,
        )
        refund_id = uow.session.execute(_NEW_SETTLEMENT, values).scalar_one()
        negated = negated_lines(original.lines)
        self._insert_lines(uow, refund_id, original.resident_id, negated)
        uow.session.execute(update(_S).where(_S.c.id == settlement_id).values(status=REVERSED))
        account.add(original.fund_fen, original.deductible_fen, original.visit, -1)
        refund = _view(refund_id, values, negated)

        replacement = None
        if kept:  # a partial refund: what is kept is settled anew, under the year as it is now
            started = uow.session.scalar(select(_E.c.started_at).where(_E.c.id == original.encounter_id))
            assert started is not None
            visit = _Visit(
                original.encounter_id,
                institution_code,
                Level(original.level),
                Visit(original.visit),
                "",
                started,
                original.diagnosis_code,
                None,
            )
            payer = next(
                (e.account.removeprefix("health:") for e in entries if e.account.startswith("health:")), None
            )
            replacement = self._settle(
                uow,
                account,
                self.policy(original.pool, original.year),
                visit,
                kept,
                ids=ids,
                inside=original.inside_pool,
                referral=original.referral,
                referred_by=original.referred_by,
                paid_by=original.paid_by,
                key=_resettle_key(key),
                digest=request_hash({"op": "resettle", "refund": digest}),
                cashier=cashier,
                payer=payer or ids[0],
            )
        self._save_account(uow, account)
        self._write_fees(uow, original.encounter_id, replacement.lines if replacement else ())
        return Refunded(refund, replacement), True

    # --- reading ------------------------------------------------------------------------------------
    def get(self, uow: UnitOfWork, settlement_id: int) -> SettlementView:
        views = self._views(uow, _S.c.id == settlement_id)
        if not views:
            raise NotFound("settlement", str(settlement_id))
        return views[0]

    def billable(
        self,
        uow: UnitOfWork,
        ids: Sequence[str],
        *,
        institution_code: str,
        since: dt.datetime,
        limit: int = 20,
    ) -> list[BillableVisit]:
        """The person's visits at ``institution_code`` started since ``since``, newest first, each
        with its live settlement (a settlement that no refund reversed)."""
        live = (
            select(_S.c.id)
            .where(
                _S.c.encounter_id == _E.c.id,
                _S.c.kind == "settlement",
                _S.c.status == "SETTLED",
            )
            .limit(1)
            .scalar_subquery()
        )
        rows = uow.session.execute(
            select(
                _E.c.id,
                _E.c.number,
                _E.c.kind,
                _E.c.department,
                _E.c.clinician,
                _E.c.started_at,
                _E.c.status,
                _E.c.card_slot,
                live.label("settlement_id"),
            )
            .where(
                _E.c.resident_id.in_(list(ids)),
                _E.c.institution_code == institution_code,
                _E.c.started_at >= since,
            )
            .order_by(_E.c.started_at.desc(), _E.c.id.desc())
            .limit(limit)
        ).all()
        return [
            BillableVisit(
                r.id,
                r.number,
                r.kind,
                r.department,
                r.clinician,
                r.started_at,
                r.status,
                r.settlement_id,
                r.card_slot,
            )
            for r in rows
        ]

    def of_person(self, uow: UnitOfWork, ids: Sequence[str], *, limit: int = 50) -> list[SettlementView]:
        """The person's settlements and refunds, newest first."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 500:
            raise InvalidValue("limit", "1 to 500")
        return self._views(uow, _S.c.resident_id.in_(list(ids)), limit=limit)

    def resident_of(self, uow: UnitOfWork, settlement_id: int) -> str:
        """Whose settlement (the access check needs the resident before the data is read)."""
        rid = uow.session.scalar(select(_S.c.resident_id).where(_S.c.id == settlement_id))
        if rid is None:
            raise NotFound("settlement", str(settlement_id))
        return str(rid)

    def _views(self, uow: UnitOfWork, where: Any, *, limit: int = 1) -> list[SettlementView]:
        rows = uow.session.execute(
            select(_S, _REVERSED_BY)
            .where(where)
            .order_by(_S.c.settled_at.desc(), _S.c.id.desc())
            .limit(limit)
        ).all()
        if not rows:
            return []
        lines: dict[int, list[LineView]] = {}
        for line in uow.session.execute(
            select(_L)
            .where(_L.c.settlement_id.in_([r.id for r in rows]))
            .order_by(_L.c.settlement_id, _L.c.seq)
        ):
            lines.setdefault(line.settlement_id, []).append(
                LineView(
                    line.seq,
                    line.item,
                    line.name,
                    line.item_class,
                    line.fee_category,
                    line.quantity,
                    line.unit_price_fen,
                    line.amount_fen,
                )
            )
        names = [f for f in SettlementView.__dataclass_fields__ if f != "lines"]
        return [
            SettlementView(**{n: getattr(row, n) for n in names}, lines=tuple(lines.get(row.id, ())))
            for row in rows
        ]


def _view(settlement_id: int, values: Mapping[str, Any], lines: tuple[LineView, ...]) -> SettlementView:
    """The view of a row just written (``values``: its columns; the request hash stays inside)."""
    shown = {name: value for name, value in values.items() if name != "request_hash"}
    return SettlementView(id=settlement_id, reversed_by=None, lines=lines, **shown)


def _line_view(priced: _Priced) -> LineView:
    return LineView(
        priced.seq,
        priced.item,
        priced.name,
        priced.item_class.value,
        priced.fee_category,
        priced.quantity,
        priced.price_fen,
        priced.amount_fen,
    )


def _check_returned(returned: Sequence[Returned] | None) -> list[Returned] | None:
    if returned is None:
        return None
    if not returned:
        raise InvalidValue("lines", "the lines given back; leave them out to refund the whole bill")
    for n, line in enumerate(returned):
        if not isinstance(line, Returned) or not isinstance(line.item, str) or not line.item:
            raise InvalidValue(f"lines[{n}].item", "the catalog item given back")
        if isinstance(line.quantity, bool) or not isinstance(line.quantity, int) or line.quantity <= 0:
            raise InvalidValue(f"lines[{n}].quantity", f"{line.quantity!r}: a positive whole quantity")
    return list(returned)


def _kept(original: SettlementView, returned: Sequence[Returned] | None) -> list[_Priced]:
    """The lines of ``original`` that stay after ``returned`` are given back (none: all go)."""
    if returned is None:
        return []
    billed: dict[str, int] = {}
    for line in original.lines:
        billed[line.item] = billed.get(line.item, 0) + line.quantity
    back: dict[str, int] = {}
    for n, given in enumerate(returned):
        if given.item not in billed:
            raise InvalidValue(
                f"lines[{n}].item", f"{given.item} is not on the bill of settlement {original.id}"
            )
        back[given.item] = back.get(given.item, 0) + given.quantity
        if back[given.item] > billed[given.item]:
            raise InvalidValue(
                f"lines[{n}].quantity",
                f"{back[given.item]} of {given.item} given back, the bill had {billed[given.item]}: "
                "a refund cannot be larger than the payment",
            )
    kept: list[_Priced] = []
    for line in original.lines:
        taken = min(back.get(line.item, 0), line.quantity)
        back[line.item] = back.get(line.item, 0) - taken
        if line.quantity - taken:
            kept.append(
                _Priced(
                    len(kept) + 1,
                    line.item,
                    line.name,
                    ItemClass(line.item_class),
                    line.fee_category,
                    line.quantity - taken,
                    line.unit_price_fen,
                )
            )
    return kept


def _premium(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10**8:
        raise InvalidValue("premium_fen", f"{value!r}: the premium in whole fen, not negative")
    return value


def _ncms_number(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 18 or not value.isalnum():
        raise InvalidValue("ncms_number", "the 新农合证号: up to 18 letters and digits")
    return value


@lru_cache(maxsize=64)
def _shipped_policy(pool: str, year: int) -> Policy:
    return load_policy(pool, year)


@lru_cache(maxsize=64)
def _shipped_catalog(pool: str, year: int) -> Catalog:
    return load_catalog(pool, year)
