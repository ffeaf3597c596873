"""Cross-region settlement (SETTLEMENT.md, "outside the pool"; issue 8): a visitor's bill is
settled by the home pool, and recorded at both cities.

A resident of Zhengzhou (4101) treated in Foshan (4406) is a *visitor* there: a local person
(a row of ``residents`` and one of ``visitors``), whose visit is a normal Foshan encounter.  The
fund that pays is Zhengzhou's, so the **home computes** — under its pool's policy for the year,
its catalog's item classes, its accumulators, with rule 3's outside-the-pool adjustment (−10
points with a referral, −20 without) — and the **visiting city records**::

    visiting city (Foshan, the cashier)                  home city (Zhengzhou, q.4101.settle)
    1. read: the visit (level, area), the lines
       checked against its own catalog (its prices)
    2. ask the home ─────────────────────────────────▶  one transaction: the accumulator row
                                                         LOCKED, the key looked up, rules 1–5,
                                                         ledger fund:<pool> → clearing:4406
                                                         (a health-account payment likewise),
                                                         the accumulators, the row (side home)
    3. one transaction: the settlement and its  ◀──────  the figures
       lines, ledger clearing:4101 → receivable:<i>
       and pocket → cash:<i>, the row (side
       visiting), the visit's fee lines

Decisions:

* an item the home catalog lacks is **class C** there (not eligible: the home fund pays only for
  what its catalog lists); the price is the visiting institution's (its catalog's, checked at
  the visiting city), never the home catalog's;
* the daily village cap counts no visit of the other city (a village visit abroad is capped
  alone);
* **exactly once**: the home keys its record by (visiting city, institution, the cashier's key);
  a retry — the cashier's, or the visiting city's after a reply was lost — returns the first
  result and moves nothing; the visiting city keys its row the same way.  If the home cannot be
  reached the cashier is refused (``MessagingError``) and nothing is written here; if the home
  settled but the reply was lost, the same key again records it (until then the monthly
  clearing lists that settlement as known to the home only);
* a refund (退费) gives the whole bill back, the home first (``q.<home>.refund``: the ledger
  transaction negated, the accumulators given back, a refund row of the month), then the
  visiting city; returned lines are refused (refund whole, then settle what is kept anew).

The wire format is plain JSON (:meth:`RemoteBill.payload`, :meth:`HomeFigures.payload`); the
transport (``ask``) and the visitor lookup are the composition root's
(:class:`Homes`; :mod:`healthcard.federation.settlement` over the bus).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from healthcard.clock import SHANGHAI
from healthcard.errors import Duplicate, InvalidValue, MessagingError, NotFound
from healthcard.platform.settlement import fees as card_fees
from healthcard.platform.settlement import ledger
from healthcard.platform.settlement.engine import BillLine, Claim, ItemClass, Outcome, settle
from healthcard.platform.settlement.policy import Level, Policy, Visit
from healthcard.platform.settlement.service import (
    _ACCUMULATOR_LOCKED,
    _NEW_SETTLEMENT,
    PAID_BY,
    REFUND,
    REVERSED,
    SETTLED,
    SETTLEMENT,
    LineView,
    Quote,
    Settlements,
    SettlementView,
    _Account,
    _check_bill,
    _Priced,
    _view,
    _Visit,
    check_key,
    negated_lines,
    request_hash,
)
from healthcard.storage import tables as t
from healthcard.storage.uow import UnitOfWork

HOME, VISITING = "home", "visiting"
_X = t.Base.metadata.tables[t.CrossRegionSettlement.__tablename__]
_S = t.Base.metadata.tables[t.Settlement.__tablename__]
_LE = t.Base.metadata.tables[t.LedgerEntry.__tablename__]


# --- the visiting city's collaborators (wired by the composition root) -----------------------------
@dataclass(frozen=True)
class HomeOf:
    """Where a visitor (a local person here) is at home: the city and the resident's id there."""

    city: str
    resident_id: str


class Homes(Protocol):
    """What the visiting city's cashier needs of the federation: this city's code and pool, who
    is a visitor and from where, and a way to ask a home city a question."""

    city: str  # this node (4406)
    pool: str | None  # this city's own pool: its catalog prices a bill (None: not checked here)

    def home_of(self, session: Session, resident_id: str) -> HomeOf | None: ...

    def ask(self, city: str, query: str, payload: Mapping[str, Any]) -> dict[str, Any]: ...


# --- the wire ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Institution:
    code: str
    name: str
    level: str
    area: str


@dataclass(frozen=True)
class RemoteBill:
    """What the visiting city asks the home (``q.<home>.settle`` / ``.quote``)."""

    key: str  # the visiting cashier's idempotency key
    visiting_city: str
    visiting_pool: str | None
    resident: str  # the resident's id at the home
    institution: Institution
    encounter: int  # the visiting city's visit id
    visit: str  # outpatient | inpatient
    started_at: dt.datetime  # the visit's start: the policy year
    referral: bool
    lines: tuple[tuple[str, int, int], ...]  # item, quantity, unit price fen (the visiting price)
    paid_by: str  # cash | account (the resident's health account at home)

    def payload(self) -> dict[str, Any]:
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        data["lines"] = [list(line) for line in self.lines]
        return data

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> RemoteBill:
        """The request from its JSON form; every field checked (field-named refusals)."""
        inst = payload.get("institution")
        if not isinstance(inst, Mapping):
            raise InvalidValue("institution", "{code, name, level, area}")
        try:
            started = dt.datetime.fromisoformat(_text(payload, "started_at", 40))
        except ValueError:
            raise InvalidValue("started_at", "an ISO date and time") from None
        if started.tzinfo is None:
            raise InvalidValue("started_at", "a time with its zone")
        level = _text(inst, "level", 10, at="institution.")
        if level not in {v.value for v in Level}:
            raise InvalidValue("institution.level", f"{level!r}: village … province")
        visit = _text(payload, "visit", 10)
        if visit not in {v.value for v in Visit}:
            raise InvalidValue("visit", f"{visit!r}: outpatient or inpatient")
        paid_by = _text(payload, "paid_by", 8)
        if paid_by not in PAID_BY:
            raise InvalidValue("paid_by", f"{paid_by!r}: account (the health account) or cash")
        city = _text(payload, "visiting_city", 4)
        if len(city) != 4 or not city.isdigit():
            raise InvalidValue("visiting_city", "the visiting city's 4-digit code")
        encounter = payload.get("encounter")
        if isinstance(encounter, bool) or not isinstance(encounter, int) or encounter < 1:
            raise InvalidValue("encounter", "the visit's id at the visiting city")
        referral = payload.get("referral", False)
        if not isinstance(referral, bool):
            raise InvalidValue("referral", "true or false")
        pool = payload.get("visiting_pool")
        if pool is not None and (not isinstance(pool, str) or len(pool) > 16):
            raise InvalidValue("visiting_pool", "the visiting city's pool, up to 16 characters")
        return cls(
            key=check_key(payload.get("key")),
            visiting_city=city,
            visiting_pool=pool,
            resident=_text(payload, "resident", 32),
            institution=Institution(
                _text(inst, "code", 22, at="institution."),
                _text(inst, "name", 100, at="institution."),
                level,
                _text(inst, "area", 6, at="institution."),
            ),
            encounter=encounter,
            visit=visit,
            started_at=started,
            referral=referral,
            lines=_lines(payload.get("lines")),
            paid_by=paid_by,
        )


def _text(data: Mapping[str, Any], name: str, most: int, *, at: str = "") -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > most:
        raise InvalidValue(f"{at}{name}", f"1 to {most} characters")
    return value


def _lines(raw: object) -> tuple[tuple[str, int, int], ...]:
    if not isinstance(raw, list) or not raw:
        raise InvalidValue("lines", "a bill has at least one line: [item, quantity, unit price fen]")
    lines = []
    for n, line in enumerate(raw):
        if not isinstance(line, list | tuple) or len(line) != 3:
            raise InvalidValue(f"lines[{n}]", "[item, quantity, unit price fen]")
        item, quantity, price = line
        if not isinstance(item, str) or not item or len(item) > 20:
            raise InvalidValue(f"lines[{n}].item", "the catalog item's code")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
            raise InvalidValue(f"lines[{n}].quantity", f"{quantity!r}: a positive whole quantity")
        if isinstance(price, bool) or not isinstance(price, int) or not 0 <= price <= 10**9:
            raise InvalidValue(f"lines[{n}].unit_price_fen", f"{price!r}: whole fen, not negative")
        lines.append((item, quantity, price))
    if sum(q * p for _, q, p in lines) <= 0:
        raise InvalidValue("lines", "the bill comes to 0 fen: nothing to settle")
    return tuple(lines)


@dataclass(frozen=True)
class HomeFigures:
    """The home's answer: the settlement as its pool made it (or would make it: a quote)."""

    created: bool  # False: a retry (the first result) or a quote
    home_city: str
    pool: str
    year: int
    policy_version: int
    level: str
    visit: str
    inside_pool: bool
    referral: bool
    total_fen: int
    eligible_fen: int
    deductible_fen: int
    ratio_percent: int
    fund_fen: int
    self_fen: int
    owed_fen: int  # what the home owes the visiting city: the fund's share (+ a health-account payment)
    covered: bool
    capped: bool
    paid_by: str
    settled_at: str | None  # ISO, at the home (None: a quote)
    month: str | None  # the clearing month (YYYY-MM, China's)
    lines: tuple[tuple[str, str, int, int, str, str], ...]  # item, class, qty, price, name, kind

    def payload(self) -> dict[str, Any]:
        data = asdict(self)
        data["lines"] = [list(line) for line in self.lines]
        return data

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> HomeFigures:
        try:
            names = cls.__dataclass_fields__
            values = {name: payload[name] for name in names}
            values["lines"] = tuple(tuple(line) for line in values["lines"])
            figures = cls(**values)
        except (KeyError, TypeError):
            raise MessagingError("the home answered a settlement that is not readable") from None
        if figures.fund_fen + figures.self_fen != figures.total_fen or (figures.fund_fen < 0) != (
            figures.total_fen < 0
        ):
            raise MessagingError("the home answered figures that do not add up")
        return figures


def _month(at: dt.datetime) -> str:
    return at.astimezone(SHANGHAI).strftime("%Y-%m")


# --- the home ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Computed:
    account: _Account
    policy: Policy
    outcome: Outcome
    inside: bool
    referral: bool
    lines: tuple[tuple[str, str, int, int, str, str], ...]


def _compute(
    service: Settlements, uow: UnitOfWork, home_city: str, bill: RemoteBill, *, lock: bool
) -> _Computed:
    if bill.visiting_city == home_city:
        raise InvalidValue("visiting_city", f"{home_city} is the home: its own bills are settled locally")
    if uow.session.get(t.Resident, bill.resident) is None:
        raise NotFound("resident", bill.resident)
    year = bill.started_at.astimezone(SHANGHAI).year
    account = service._account(uow, [bill.resident], year, lock=lock)
    policy, catalog = service.policy(account.pool, year), service.catalog(account.pool, year)
    lines = []
    for item, quantity, price in bill.lines:
        known = catalog.items.get(item)
        if known is None:  # the home fund pays only for what its catalog lists
            lines.append((item, ItemClass.C.value, quantity, price, item, "service"))
        else:
            lines.append((item, known.item_class.value, quantity, price, known.name, known.kind))
    visit = _Visit(
        bill.encounter,
        bill.institution.code,
        Level(bill.institution.level),
        Visit(bill.visit),
        bill.institution.area,
        bill.started_at,
        None,
        None,
    )
    inside = policy.covers(bill.institution.area)
    referral = service._referral(policy, visit, inside, bill.referral)
    claim = Claim(
        visit.level,
        visit.visit,
        inside,
        referral,
        tuple(BillLine(item, ItemClass(cls), q, p) for item, cls, q, p, _, _ in lines),
        account.ytd(0),  # the village day cap counts this city's visits only
    )
    return _Computed(account, policy, settle(policy, claim), inside, referral, tuple(lines))


def _figures(
    home_city: str, c: _Computed, bill: RemoteBill, *, created: bool, settled_at: dt.datetime | None
) -> HomeFigures:
    o = c.outcome
    return HomeFigures(
        created=created,
        home_city=home_city,
        pool=c.account.pool,
        year=c.account.year,
        policy_version=c.policy.version,
        level=bill.institution.level,
        visit=bill.visit,
        inside_pool=c.inside,
        referral=c.referral,
        total_fen=o.total_fen,
        eligible_fen=o.eligible_fen,
        deductible_fen=o.deductible_fen,
        ratio_percent=o.ratio_percent,
        fund_fen=o.fund_fen,
        self_fen=o.self_fen,
        owed_fen=o.fund_fen + (o.self_fen if bill.paid_by == "account" else 0),
        covered=o.covered,
        capped=o.capped,
        paid_by=bill.paid_by,
        settled_at=None if settled_at is None else settled_at.isoformat(),
        month=None if settled_at is None else _month(settled_at),
        lines=c.lines,
    )


def quote_at_home(service: Settlements, uow: UnitOfWork, home_city: str, bill: RemoteBill) -> HomeFigures:
    """The home's pre-settlement of a visitor's bill: nothing is written."""
    return _figures(
        home_city, _compute(service, uow, home_city, bill, lock=False), bill, created=False, settled_at=None
    )


def _digest(bill: RemoteBill) -> str:
    request = bill.payload()
    del request["key"]
    return request_hash({"op": "cross-region", **request})


def settle_at_home(
    service: Settlements, uow: UnitOfWork, home_city: str, bill: RemoteBill, *, actor: str
) -> HomeFigures:
    """Settle a visitor's bill for the home pool, in the caller's transaction: the accumulator
    row locked first, then the key (a retry returns the first result, ``created`` False), rules
    1–5, the ledger (the fund's share — and a health-account payment — owed to the visiting
    city, ``clearing:<city>``), the accumulators and the row."""
    digest = _digest(bill)
    computed = _compute(service, uow, home_city, bill, lock=True)
    seen = uow.session.execute(
        select(_X).where(
            _X.c.side == HOME,
            _X.c.visiting_city == bill.visiting_city,
            or_(
                and_(_X.c.institution_code == bill.institution.code, _X.c.idempotency_key == bill.key),
                _X.c.encounter_id == bill.encounter,
            ),
        )
    ).all()
    for row in seen:
        if row.institution_code == bill.institution.code and row.idempotency_key == bill.key:
            if row.request_hash != digest:
                raise Duplicate("idempotency_key", f"{bill.key} was used for another request")
            return _stored(row, home_city)
    if any(row.status == SETTLED and row.kind == SETTLEMENT for row in seen):
        raise Duplicate("encounter_id", f"visit {bill.encounter} of {bill.visiting_city} is settled already")
    now = service.clock.now()
    o, rid = computed.outcome, computed.account.resident_id
    clearing = ledger.clearing(bill.visiting_city)
    entries = [*ledger.move(ledger.fund(computed.account.pool), clearing, o.fund_fen, rid)]
    if bill.paid_by == "account":
        entries += ledger.move(ledger.health(rid), clearing, o.self_fen, rid)
    posted = None
    if any(e.amount_fen for e in entries):  # a level the fund does not cover, paid in cash: none
        posted = ledger.post(
            uow,
            SETTLEMENT,
            f"{bill.visiting_city}:{bill.institution.code}:{bill.key}"[:64],
            entries,
            actor=actor,
            at=now,
            resident_id=rid,
        )
    figures = _figures(home_city, computed, bill, created=True, settled_at=now)
    computed.account.add(o.fund_fen, o.deductible_fen, bill.visit, +1)
    service._save_account(uow, computed.account)
    _insert_row(
        uow,
        side=HOME,
        counterpart=bill.visiting_city,
        home_city=home_city,
        bill=bill,
        digest=digest,
        resident_id=rid,
        settlement_id=None,
        figures=figures,
        settled_at=now,
        txn_id=posted.txn_id if posted else None,
    )
    return figures


def _stored(row: Any, home_city: str) -> HomeFigures:
    return HomeFigures(
        created=False,
        home_city=home_city,
        pool=row.home_pool,
        year=row.year,
        policy_version=row.policy_version,
        level=row.level,
        visit=row.visit,
        inside_pool=row.inside_pool,
        referral=row.referral,
        total_fen=row.total_fen,
        eligible_fen=row.eligible_fen,
        deductible_fen=row.deductible_fen,
        ratio_percent=row.ratio_percent,
        fund_fen=row.fund_fen,
        self_fen=row.self_fen,
        owed_fen=row.owed_fen,
        covered=row.ratio_percent > 0 or row.fund_fen > 0,
        capped=row.capped,
        paid_by=row.paid_by,
        settled_at=row.settled_at.isoformat(),
        month=row.month,
        lines=tuple(tuple(line) for line in row.lines),
    )


def _insert_row(
    uow: UnitOfWork,
    *,
    side: str,
    counterpart: str,
    home_city: str,
    bill: RemoteBill,
    digest: str,
    resident_id: str,
    settlement_id: int | None,
    figures: HomeFigures,
    settled_at: dt.datetime,
    txn_id: int | None,
) -> None:
    uow.session.execute(
        _X.insert(),
        {
            "side": side,
            "counterpart": counterpart,
            "home_city": home_city,
            "visiting_city": bill.visiting_city,
            "idempotency_key": bill.key,
            "request_hash": digest,
            "kind": SETTLEMENT,
            "status": SETTLED,
            "resident_id": resident_id,
            "home_resident_id": bill.resident,
            "settlement_id": settlement_id,
            "encounter_id": bill.encounter,
            "institution_code": bill.institution.code,
            "institution_name": bill.institution.name,
            "level": bill.institution.level,
            "area_code": bill.institution.area,
            "visit": bill.visit,
            "inside_pool": figures.inside_pool,
            "referral": figures.referral,
            "home_pool": figures.pool,
            "visiting_pool": bill.visiting_pool,
            "year": figures.year,
            "policy_version": figures.policy_version,
            "total_fen": figures.total_fen,
            "eligible_fen": figures.eligible_fen,
            "deductible_fen": figures.deductible_fen,
            "ratio_percent": figures.ratio_percent,
            "fund_fen": figures.fund_fen,
            "self_fen": figures.self_fen,
            "owed_fen": figures.owed_fen,
            "capped": figures.capped,
            "paid_by": figures.paid_by,
            "lines": [list(line) for line in figures.lines],
            "month": _month(settled_at),
            "settled_at": settled_at,
            "txn_id": txn_id,
        },
    )


# --- the visiting city -------------------------------------------------------------------------------
@dataclass(frozen=True)
class VisitorBill:
    """A visitor's bill checked at the visiting city, ready to ask the home about."""

    visit: _Visit
    priced: tuple[_Priced, ...] | None  # checked against this city's catalog (None: no pool known)
    remote: RemoteBill
    digest: str


def prepare(
    service: Settlements,
    uow: UnitOfWork,
    ids: Sequence[str],
    bill: Any,
    *,
    homes: Homes,
    home: HomeOf,
    institution_code: str,
    key: str,
) -> VisitorBill:
    """Read what the home needs (the visit, the institution) and check the lines here — against
    this city's catalog when its pool is known (the prices are this institution's)."""
    _check_bill(bill)
    key = check_key(key)
    visit = service._visit(uow, ids, bill, institution_code)
    where = uow.session.get(t.Institution, institution_code)
    assert where is not None  # the visit's institution: read just now
    priced = None
    if homes.pool is not None:
        catalog = service.catalog(homes.pool, visit.year)
        priced = tuple(service._priced(catalog, bill.lines))
    remote = RemoteBill(
        key=key,
        visiting_city=homes.city,
        visiting_pool=homes.pool,
        resident=home.resident_id,
        institution=Institution(
            where.code, where.name[:100], visit.level.value, visit.area_code or homes.city
        ),
        encounter=visit.id,
        visit=visit.visit.value,
        started_at=visit.started_at,
        referral=bill.referral,
        lines=_lines([[line.item, line.quantity, line.unit_price_fen] for line in bill.lines]),
        paid_by=bill.paid_by,
    )
    return VisitorBill(visit, priced, remote, _digest(remote))


def recorded(service: Settlements, uow: UnitOfWork, prepared: VisitorBill) -> SettlementView | None:
    """The visiting city's record of this key, if it has one (a retry); the same key with
    another request is refused."""
    row = uow.session.execute(
        select(_X.c.settlement_id, _X.c.request_hash).where(
            _X.c.side == VISITING,
            _X.c.visiting_city == prepared.remote.visiting_city,
            _X.c.institution_code == prepared.remote.institution.code,
            _X.c.idempotency_key == prepared.remote.key,
        )
    ).first()
    if row is None:
        other = uow.session.scalar(
            select(_S.c.id).where(
                _S.c.institution_code == prepared.remote.institution.code,
                _S.c.idempotency_key == prepared.remote.key,
            )
        )
        if other is not None:
            raise Duplicate("idempotency_key", f"{prepared.remote.key} was used for another request")
        return None
    if row.request_hash != prepared.digest:
        raise Duplicate("idempotency_key", f"{prepared.remote.key} was used for another request")
    return service.get(uow, row.settlement_id)


def record_at_visiting(
    service: Settlements,
    uow: UnitOfWork,
    ids: Sequence[str],
    prepared: VisitorBill,
    figures: HomeFigures,
    *,
    home: HomeOf,
    cashier: str,
) -> SettlementView:
    """Write the home's settlement here, in the caller's transaction: the settlement and its
    lines (the classes the home counted), the ledger (what the home owes from
    ``clearing:<home>`` to the institution's receivable and — a health-account payment — its
    cash; a cash payment from the pocket), the row (side visiting), the visit's fee lines."""
    remote, visit = prepared.remote, prepared.visit
    if figures.total_fen != sum(q * p for _, q, p in remote.lines) or len(figures.lines) != len(remote.lines):
        raise MessagingError("the home answered a settlement of another bill")
    if figures.month is None or figures.settled_at is None:
        raise MessagingError("the home answered a quote, not a settlement")
    rid, institution = ids[0], remote.institution.code
    clearing = ledger.clearing(home.city)
    entries = [*ledger.move(clearing, ledger.receivable(institution), figures.fund_fen, rid)]
    source = clearing if figures.paid_by == "account" else ledger.POCKET
    entries += ledger.move(source, ledger.cash(institution), figures.self_fen, rid)
    now = service.clock.now()
    posted = ledger.post(
        uow, SETTLEMENT, f"{institution}:{remote.key}"[:64], entries, actor=cashier, at=now, resident_id=rid
    )
    lines = []
    for n, (item, item_class, quantity, price, name, kind) in enumerate(figures.lines, start=1):
        local = prepared.priced[n - 1] if prepared.priced is not None else None
        lines.append(
            LineView(
                n,
                item,
                (local.name if local else name)[:60],
                item_class,  # the class the home counted
                local.fee_category
                if local
                else card_fees.category_of(kind if kind in ("drug", "material") else "service"),
                quantity,
                price,
                quantity * price,
            )
        )
    values: dict[str, Any] = {
        "idempotency_key": remote.key,
        "request_hash": prepared.digest,
        "kind": SETTLEMENT,
        "status": SETTLED,
        "reverses_id": None,
        "resident_id": rid,
        "encounter_id": visit.id,
        "institution_code": institution,
        "level": figures.level,
        "visit": figures.visit,
        "inside_pool": figures.inside_pool,
        "referral": figures.referral,
        "referred_by": None,
        "pool": figures.pool,
        "year": figures.year,
        "policy_version": figures.policy_version,
        "total_fen": figures.total_fen,
        "eligible_fen": figures.eligible_fen,
        "deductible_fen": figures.deductible_fen,
        "ratio_percent": figures.ratio_percent,
        "fund_fen": figures.fund_fen,
        "self_fen": figures.self_fen,
        "village_eligible_fen": 0,
        "capped": figures.capped,
        "paid_by": figures.paid_by,
        "diagnosis_code": visit.diagnosis,
        "review": None,  # the home pool's office reviews its own
        "cashier": cashier[:40],
        "settled_at": now,
        "txn_id": posted.txn_id,
    }
    sid = uow.session.execute(_NEW_SETTLEMENT, values).scalar_one()
    service._insert_lines(uow, sid, rid, lines)
    _insert_row(
        uow,
        side=VISITING,
        counterpart=home.city,
        home_city=home.city,
        bill=remote,
        digest=prepared.digest,
        resident_id=rid,
        settlement_id=sid,
        figures=figures,
        settled_at=dt.datetime.fromisoformat(figures.settled_at),
        txn_id=posted.txn_id,
    )
    service._write_fees(uow, visit.id, lines)
    return _view(sid, values, tuple(lines))


def quote_of(prepared: VisitorBill, figures: HomeFigures, resident_id: str) -> Quote:
    """The home's pre-settlement as the cashier's :class:`Quote`."""
    return Quote(
        resident_id=resident_id,
        encounter_id=prepared.visit.id,
        institution_code=prepared.remote.institution.code,
        level=figures.level,
        visit=figures.visit,
        inside_pool=figures.inside_pool,
        referral=figures.referral,
        pool=figures.pool,
        year=figures.year,
        policy_version=figures.policy_version,
        total_fen=figures.total_fen,
        eligible_fen=figures.eligible_fen,
        deductible_fen=figures.deductible_fen,
        ratio_percent=figures.ratio_percent,
        fund_fen=figures.fund_fen,
        self_fen=figures.self_fen,
        covered=figures.covered,
        capped=figures.capped,
        lines=tuple(
            LineView(
                n,
                item,
                name[:60],
                cls,
                card_fees.category_of(kind if kind in ("drug", "material") else "service"),
                q,
                p,
                q * p,
            )
            for n, (item, cls, q, p, name, kind) in enumerate(figures.lines, start=1)
        ),
    )


# --- the refund (退费) of a visitor's settlement: the whole bill, at both cities --------------------
@dataclass(frozen=True)
class RemoteRefund:
    """What the visiting city asks the home (``q.<home>.refund``): give the settlement made
    under ``settlement_key`` back, whole, under the refund's own idempotency ``key``."""

    key: str
    visiting_city: str
    institution: str
    settlement_key: str

    def payload(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> RemoteRefund:
        city = _text(payload, "visiting_city", 4)
        if len(city) != 4 or not city.isdigit():
            raise InvalidValue("visiting_city", "the visiting city's 4-digit code")
        original = payload.get("settlement_key")
        if not isinstance(original, str) or not original:
            raise InvalidValue("settlement_key", "the idempotency key of the settlement refunded")
        return cls(check_key(payload.get("key")), city, _text(payload, "institution", 22), original)


def _copy(uow: UnitOfWork, row: Any, **changes: Any) -> None:
    """A row of cross_region_settlements like ``row`` (its refund), with ``changes``."""
    values = {c.name: getattr(row, c.name) for c in _X.c if c.name != "id"}
    uow.session.execute(_X.insert(), values | changes)


def _negated(
    uow: UnitOfWork, txn_id: int | None, ref: str, actor: str, at: dt.datetime, rid: str
) -> int | None:
    """The ledger transaction ``txn_id`` posted again, negated (a refund is new entries)."""
    if txn_id is None:
        return None
    entries = uow.session.execute(
        select(_LE.c.account, _LE.c.amount_fen, _LE.c.resident_id).where(_LE.c.txn_id == txn_id)
    ).all()
    moved = [ledger.Entry(e.account, -e.amount_fen, e.resident_id) for e in entries]
    return ledger.post(uow, REFUND, ref[:64], moved, actor=actor, at=at, resident_id=rid).txn_id


_FIGURES = ("total_fen", "eligible_fen", "deductible_fen", "fund_fen", "self_fen", "owed_fen")


def refund_at_home(
    service: Settlements, uow: UnitOfWork, home_city: str, request: RemoteRefund, *, actor: str
) -> HomeFigures:
    """Give a visitor's settlement back at the home, in the caller's transaction: the
    accumulator row locked, the refund's key looked up (a retry: the first result), the
    ledger transaction negated, the accumulators given back, the settlement REVERSED and a
    refund row (figures negated, this month's)."""
    digest = request_hash({"op": "cross-region refund", **request.payload(), "key": None})
    where = and_(
        _X.c.side == HOME,
        _X.c.visiting_city == request.visiting_city,
        _X.c.institution_code == request.institution,
    )
    original = uow.session.execute(
        select(_X).where(where, _X.c.idempotency_key == request.settlement_key, _X.c.kind == SETTLEMENT)
    ).first()
    if original is None:
        raise NotFound("settlement", request.settlement_key)
    locked = uow.session.execute(
        _ACCUMULATOR_LOCKED, {"rid": original.resident_id, "pool": original.home_pool, "year": original.year}
    ).first()
    if locked is None:
        raise NotFound("accumulator", f"{original.resident_id} {original.home_pool} {original.year}")
    seen = uow.session.execute(select(_X).where(where, _X.c.idempotency_key == request.key)).first()
    if seen is not None:
        if seen.kind != REFUND or seen.request_hash != digest:
            raise Duplicate("idempotency_key", f"{request.key} was used for another request")
        return _stored(seen, home_city)
    status = uow.session.scalar(select(_X.c.status).where(_X.c.id == original.id))
    if status != SETTLED:
        raise InvalidValue("settlement_key", f"{request.settlement_key} is refunded already")
    now = service.clock.now()
    ref = f"{request.visiting_city}:{request.institution}:{request.key}"
    txn = _negated(uow, original.txn_id, ref, actor, now, original.resident_id)
    account = _Account(
        locked.resident_id,
        locked.pool,
        original.year,
        locked.fund_paid_fen,
        locked.outpatient_fund_paid_fen,
        locked.outpatient_deductible_met_fen,
    )
    account.add(original.fund_fen, original.deductible_fen, original.visit, -1)
    service._save_account(uow, account)
    uow.session.execute(_X.update().where(_X.c.id == original.id).values(status=REVERSED))
    lines = [[item, cls, -q, p, *rest] for item, cls, q, p, *rest in original.lines]
    changes = {name: -getattr(original, name) for name in _FIGURES}
    changes |= {
        "idempotency_key": request.key,
        "request_hash": digest,
        "kind": REFUND,
        "status": SETTLED,
        "lines": lines,
        "month": _month(now),
        "settled_at": now,
        "txn_id": txn,
    }
    _copy(uow, original, **changes)
    refunded = uow.session.execute(select(_X).where(where, _X.c.idempotency_key == request.key)).one()
    return _stored(refunded, home_city)


def refund_ask(
    uow: UnitOfWork, settlement_id: int, key: str, *, institution_code: str
) -> tuple[str, RemoteRefund, bool]:
    """At the visiting city: the home to ask, the request for the whole refund of a visitor's
    settlement ``settlement_id`` made at ``institution_code``, and whether it is live still."""
    row = uow.session.execute(
        select(
            _X.c.counterpart, _X.c.visiting_city, _X.c.institution_code, _X.c.idempotency_key, _X.c.status
        ).where(_X.c.side == VISITING, _X.c.settlement_id == settlement_id, _X.c.kind == SETTLEMENT)
    ).first()
    if row is None:
        raise NotFound("settlement", str(settlement_id))
    if row.institution_code != institution_code:
        raise InvalidValue(
            "settlement_id",
            f"settlement {settlement_id} was made at {row.institution_code}: a bill is refunded where it was paid",
        )
    request = RemoteRefund(check_key(key), row.visiting_city, row.institution_code, row.idempotency_key)
    return row.counterpart, request, row.status == SETTLED


def recorded_refund(service: Settlements, uow: UnitOfWork, request: RemoteRefund) -> SettlementView | None:
    """The visiting city's refund under this key, if it has one (a retry)."""
    row = uow.session.execute(
        select(_X.c.settlement_id, _X.c.kind).where(
            _X.c.side == VISITING,
            _X.c.visiting_city == request.visiting_city,
            _X.c.institution_code == request.institution,
            _X.c.idempotency_key == request.key,
        )
    ).first()
    if row is None:
        return None
    if row.kind != REFUND:
        raise Duplicate("idempotency_key", f"{request.key} was used for another request")
    return service.get(uow, row.settlement_id)


def record_refund_at_visiting(
    service: Settlements,
    uow: UnitOfWork,
    settlement_id: int,
    request: RemoteRefund,
    figures: HomeFigures,
    *,
    cashier: str,
) -> SettlementView:
    """Write the home's refund here, in the caller's transaction: the settlement's ledger
    transaction negated, a refund row of ``settlements`` (figures and lines negated) and of
    ``cross_region_settlements``, the settlement REVERSED, the visit's fee lines cleared."""
    if figures.month is None or figures.settled_at is None:
        raise MessagingError("the home answered a quote, not a refund")
    original = service.get(uow, settlement_id)
    if original.status != SETTLED:
        raise InvalidValue("settlement_id", f"settlement {settlement_id} is refunded already")
    if figures.total_fen != -original.total_fen or figures.fund_fen != -original.fund_fen:
        raise MessagingError("the home answered the refund of another bill")
    row = uow.session.execute(
        select(_X).where(_X.c.side == VISITING, _X.c.settlement_id == settlement_id, _X.c.kind == SETTLEMENT)
    ).one()
    now = service.clock.now()
    txn = _negated(
        uow, original.txn_id, f"{request.institution}:{request.key}", cashier, now, original.resident_id
    )
    assert txn is not None  # the visiting city always moved money (the bill is above 0 fen)
    values: dict[str, Any] = {
        name: getattr(original, name)
        for name in SettlementView.__dataclass_fields__
        if name not in ("id", "lines", "reversed_by")
    }
    values.update({name: -getattr(original, name) for name in _FIGURES if name != "owed_fen"})
    values.update(
        village_eligible_fen=0,
        idempotency_key=request.key,
        request_hash=request_hash({"op": "cross-region refund", **request.payload()}),
        kind=REFUND,
        status=SETTLED,
        reverses_id=settlement_id,
        review=None,
        cashier=cashier[:40],
        settled_at=now,
        txn_id=txn,
    )
    refund_id = uow.session.execute(_NEW_SETTLEMENT, values).scalar_one()
    negated = negated_lines(original.lines)
    service._insert_lines(uow, refund_id, original.resident_id, negated)
    uow.session.execute(_S.update().where(_S.c.id == settlement_id).values(status=REVERSED))
    uow.session.execute(_X.update().where(_X.c.id == row.id).values(status=REVERSED))
    changes = {name: -getattr(row, name) for name in _FIGURES}
    changes |= {
        "idempotency_key": request.key,
        "request_hash": values["request_hash"],
        "kind": REFUND,
        "status": SETTLED,
        "settlement_id": refund_id,
        "lines": [list(line) for line in figures.lines],
        "month": figures.month,
        "settled_at": dt.datetime.fromisoformat(figures.settled_at),
        "txn_id": txn,
    }
    _copy(uow, row, **changes)
    service._write_fees(uow, original.encounter_id, ())
    return _view(refund_id, values, negated)


def is_cross_region(uow: UnitOfWork, settlement_id: int) -> bool:
    """Was this settlement (here, at the visiting city) made by a visitor's home?"""
    return (
        uow.session.scalar(select(_X.c.id).where(_X.c.side == VISITING, _X.c.settlement_id == settlement_id))
        is not None
    )


__all__ = [
    "HOME",
    "VISITING",
    "HomeFigures",
    "HomeOf",
    "Homes",
    "Institution",
    "RemoteBill",
    "RemoteRefund",
    "VisitorBill",
    "is_cross_region",
    "prepare",
    "quote_at_home",
    "quote_of",
    "record_at_visiting",
    "record_refund_at_visiting",
    "recorded",
    "recorded_refund",
    "refund_ask",
    "refund_at_home",
    "settle_at_home",
]
