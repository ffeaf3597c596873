"""The NCMS office's view of its pool (新农合经办机构): the fund's balance from the ledger, what
the fund paid by institution level and by month, the largest settlements, and the settlements
flagged for review (:mod:`.review`) — each one SQL query that the database aggregates, never a
loop over the year's rows in Python.

Sums are net: a refund row carries its settlement's figures negated, so a bill settled in March
and refunded in April counts in March and comes off in April, as the ledger has it.  The
largest and the flagged lists show live settlements only (a refunded one is nothing to review).
Months are China's (Asia/Shanghai), like every date the platform shows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal, or_, select

from healthcard.platform.settlement import ledger
from healthcard.platform.settlement.policy import Level, Policy
from healthcard.platform.settlement.review import OUTLIER
from healthcard.storage import tables as t
from healthcard.storage.uow import UnitOfWork

_S = t.Base.metadata.tables[t.Settlement.__tablename__]


@dataclass(frozen=True)
class Totals:
    """Net figures of a group of settlements (a level, a month)."""

    key: str  # the level, or the month "2026-03"
    settlements: int
    refunds: int
    total_fen: int
    fund_fen: int
    self_fen: int


@dataclass(frozen=True)
class Row:
    """A settlement as the office lists it (no clinical data beyond the claim's diagnosis)."""

    id: int
    resident_id: str
    encounter_id: int
    institution_code: str
    level: str
    visit: str
    diagnosis_code: str | None
    total_fen: int
    fund_fen: int
    settled_at: dt.datetime
    reasons: tuple[str, ...] = ()  # why it is reviewed: random, threshold, outlier
    diagnosis_average_fen: int | None = None  # the pool's average total for the diagnosis


@dataclass(frozen=True)
class Dashboard:
    pool: str
    year: int
    fund_balance_fen: int  # fund:<pool>, over all years
    premiums_fen: int  # collected into the pool, over all years
    by_level: tuple[Totals, ...]
    by_month: tuple[Totals, ...]
    largest: tuple[Row, ...]
    flagged: tuple[Row, ...]


def _month(dialect: str) -> ColumnElement[Any]:
    if dialect == "postgresql":
        return func.to_char(func.timezone("Asia/Shanghai", _S.c.settled_at), "YYYY-MM")
    return func.strftime("%Y-%m", _S.c.settled_at, "+8 hours")  # SQLite keeps UTC text


def _totals(uow: UnitOfWork, policy: Policy, key: ColumnElement[Any]) -> list[Totals]:
    refund = _S.c.kind == "refund"
    query = (
        select(
            key,
            func.sum(case((refund, 0), else_=1)),
            func.sum(case((refund, 1), else_=0)),
            func.sum(_S.c.total_fen),
            func.sum(_S.c.fund_fen),
            func.sum(_S.c.self_fen),
        )
        .where(_S.c.pool == policy.pool, _S.c.year == policy.year)
        .group_by(key)
    )
    return [
        Totals(str(k), int(n), int(r), int(total), int(fund), int(own))
        for k, n, r, total, fund, own in uow.session.execute(query)
    ]


def _live(policy: Policy) -> ColumnElement[bool]:
    return and_(
        _S.c.pool == policy.pool,
        _S.c.year == policy.year,
        _S.c.kind == "settlement",
        _S.c.status == "SETTLED",
    )


_ROW = (
    _S.c.id,
    _S.c.resident_id,
    _S.c.encounter_id,
    _S.c.institution_code,
    _S.c.level,
    _S.c.visit,
    _S.c.diagnosis_code,
    _S.c.total_fen,
    _S.c.fund_fen,
    _S.c.settled_at,
)


def largest(uow: UnitOfWork, policy: Policy, limit: int = 20) -> list[Row]:
    """The live settlements that cost the fund most this year."""
    query = (
        select(*_ROW, _S.c.review).where(_live(policy)).order_by(_S.c.fund_fen.desc(), _S.c.id).limit(limit)
    )
    return [
        Row(*r[:10], reasons=tuple((r.review or "").split(",")) if r.review else ())
        for r in uow.session.execute(query)
    ]


def flagged(uow: UnitOfWork, policy: Policy, limit: int = 100) -> list[Row]:
    """Live settlements to review, newest first: those flagged when settled (random, threshold)
    and those now above ``outlier_percent`` of the average total of their primary diagnosis in
    the pool and year (a diagnosis with fewer than ``outlier_min_sample`` settlements has no
    average yet)."""
    rules = policy.review
    averages = (
        select(_S.c.diagnosis_code.label("code"), func.avg(_S.c.total_fen).label("average"))
        .where(_live(policy), _S.c.diagnosis_code.is_not(None))
        .group_by(_S.c.diagnosis_code)
        .having(func.count() >= rules.outlier_min_sample)
        .subquery()
    )
    outlier = _S.c.total_fen * 100 > averages.c.average * rules.outlier_percent
    query = (
        select(
            *_ROW,
            _S.c.review,
            averages.c.average,
            case((outlier, literal(1)), else_=literal(0)).label("outlier"),
        )
        .outerjoin_from(_S, averages, averages.c.code == _S.c.diagnosis_code)
        .where(_live(policy), or_(_S.c.review.is_not(None), outlier))
        .order_by(_S.c.settled_at.desc(), _S.c.id.desc())
        .limit(limit)
    )
    rows = []
    for r in uow.session.execute(query):
        reasons = [*(r.review.split(",") if r.review else ()), *((OUTLIER,) if r.outlier else ())]
        average = None if r.average is None else round(r.average)
        rows.append(Row(*r[:10], reasons=tuple(reasons), diagnosis_average_fen=average))
    return rows


def dashboard(
    uow: UnitOfWork, policy: Policy, *, largest_count: int = 20, flagged_count: int = 100
) -> Dashboard:
    dialect = uow.session.get_bind().dialect.name
    order = {level.value: n for n, level in enumerate(Level)}
    by_level = sorted(_totals(uow, policy, _S.c.level), key=lambda row: order.get(row.key, 99))
    by_month = sorted(_totals(uow, policy, _month(dialect)), key=lambda row: row.key)
    return Dashboard(
        pool=policy.pool,
        year=policy.year,
        fund_balance_fen=ledger.balance(uow, ledger.fund(policy.pool)),
        premiums_fen=-ledger.balance(uow, ledger.premiums(policy.pool)),
        by_level=tuple(by_level),
        by_month=tuple(by_month),
        largest=tuple(largest(uow, policy, largest_count)),
        flagged=tuple(flagged(uow, policy, flagged_count)),
    )


__all__ = ["Dashboard", "Row", "Totals", "dashboard", "flagged", "largest"]
