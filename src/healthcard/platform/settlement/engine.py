"""What the fund pays for one bill: the rules of SETTLEMENT.md, in their order, pure.

Every amount is integer fen.  Eligible amounts of B-class lines can hold a fraction of a fen
(90 % of 15 fen is 13.5 fen), so the arithmetic is exact (:class:`fractions.Fraction`) and the
fund's share is rounded half-up **once per settlement**, not per line; the figures reported are
rounded half-up too, and self pays is total − fund, so the two always add up to the bill.

1. eligible per line: A 100 %, B 100 % − the B self-pay share, C 0; for a village outpatient
   visit the bill's eligible amount is capped by what is left of the daily eligible cap;
2. deductible (起付线): an inpatient pays it on every admission, an outpatient once a year (what
   is left of it after the year's earlier visits); taken from the eligible amount, never below 0;
3. ratio: the level's and visit type's, −10 points outside the pool with a referral, −20
   without; inside the pool, −10 for a city / province admission without a referral from below;
4. fund = ratio × (eligible − deductible), limited by what is left of the annual fund cap and,
   for an outpatient, of the annual outpatient cap;
5. self pays = total − fund.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction

from healthcard.errors import InvalidValue
from healthcard.platform.settlement.policy import Level, Policy, Visit


class ItemClass(StrEnum):
    A = "A"  # 甲类: fully eligible
    B = "B"  # 乙类: eligible after the B self-pay share
    C = "C"  # 丙类: not eligible


@dataclass(frozen=True)
class BillLine:
    item: str  # catalog item code
    item_class: ItemClass
    quantity: int
    unit_price_fen: int

    @property
    def amount_fen(self) -> int:
        return self.quantity * self.unit_price_fen


@dataclass(frozen=True)
class YearToDate:
    """The resident's accumulators in the pool and year, before this bill."""

    fund_paid_fen: int = 0  # inpatient and outpatient together (against the annual fund cap)
    outpatient_fund_paid_fen: int = 0  # against the outpatient cap
    outpatient_deductible_met_fen: int = 0  # of the yearly outpatient deductible
    village_eligible_today_fen: int = 0  # eligible cost of this day's earlier village visits


@dataclass(frozen=True)
class Claim:
    """One settlement's question."""

    level: Level
    visit: Visit
    inside_pool: bool
    referral: bool
    lines: Sequence[BillLine]
    ytd: YearToDate = YearToDate()


@dataclass(frozen=True)
class Outcome:
    total_fen: int
    eligible_fen: int
    deductible_fen: int  # the deductible taken on this bill
    ratio_percent: int  # after the adjustments (0 where the fund does not cover)
    fund_fen: int
    self_fen: int
    covered: bool  # the policy covers this level and visit type
    capped: bool  # an annual cap cut the fund's share
    village_eligible_fen: int  # what this bill adds to the day's village eligible (accumulator)


def half_up(value: Fraction) -> int:
    """Round half-up to a whole fen (amounts here are never negative)."""
    return int((value + Fraction(1, 2)) // 1)


def _check(claim: Claim) -> None:
    if not claim.lines:
        raise InvalidValue("lines", "a bill has at least one line")
    for n, line in enumerate(claim.lines):
        if line.quantity <= 0:
            raise InvalidValue(f"lines[{n}].quantity", f"{line.quantity}: a positive quantity")
        if line.unit_price_fen < 0:
            raise InvalidValue(
                f"lines[{n}].unit_price_fen", f"{line.unit_price_fen}: a price is not negative"
            )
    for name in (
        "fund_paid_fen",
        "outpatient_fund_paid_fen",
        "outpatient_deductible_met_fen",
        "village_eligible_today_fen",
    ):
        if getattr(claim.ytd, name) < 0:
            raise InvalidValue(f"ytd.{name}", "an accumulator is not negative")


def ratio_points(policy: Policy, claim: Claim, base: int) -> int:
    """The ratio after rule 3's adjustments (never below 0)."""
    points = base
    if not claim.inside_pool:
        points += (
            policy.outside_with_referral_points if claim.referral else policy.outside_without_referral_points
        )
    elif not claim.referral and claim.visit == policy.upward_visit and claim.level in policy.upward_levels:
        points += policy.upward_points
    return max(points, 0)


def settle(policy: Policy, claim: Claim) -> Outcome:
    """Rules 1–5 of SETTLEMENT.md for one bill (pure: the caller updates the accumulators)."""
    _check(claim)
    total = sum(line.amount_fen for line in claim.lines)
    b_share = Fraction(100 - policy.b_self_pay_percent, 100)
    eligible = sum(
        (
            Fraction(line.amount_fen) * (1 if line.item_class == ItemClass.A else b_share)
            for line in claim.lines
            if line.item_class != ItemClass.C
        ),
        Fraction(0),
    )
    benefit = policy.benefit(claim.level, claim.visit)
    village_day = claim.level == Level.VILLAGE and claim.visit == Visit.OUTPATIENT
    if village_day:
        left_today = max(policy.village_outpatient_daily_cap_fen - claim.ytd.village_eligible_today_fen, 0)
        eligible = min(eligible, Fraction(left_today))
    if benefit is None:  # "—": the fund pays nothing at this level for this visit type
        return Outcome(total, half_up(eligible), 0, 0, 0, total, False, False, 0)
    if claim.visit == Visit.INPATIENT:
        deductible_left = Fraction(benefit.deductible_fen)  # every admission
    else:
        deductible_left = Fraction(max(benefit.deductible_fen - claim.ytd.outpatient_deductible_met_fen, 0))
    deductible = min(deductible_left, eligible)
    ratio = ratio_points(policy, claim, benefit.ratio_percent)
    fund = half_up((eligible - deductible) * Fraction(ratio, 100))
    limit = max(policy.annual_fund_cap_fen - claim.ytd.fund_paid_fen, 0)
    if claim.visit == Visit.OUTPATIENT:
        limit = min(limit, max(policy.outpatient_annual_cap_fen - claim.ytd.outpatient_fund_paid_fen, 0))
    capped = fund > limit
    fund = min(fund, limit)
    return Outcome(
        total_fen=total,
        eligible_fen=half_up(eligible),
        deductible_fen=half_up(deductible),
        ratio_percent=ratio,
        fund_fen=fund,
        self_fen=total - fund,
        covered=True,
        capped=capped,
        village_eligible_fen=half_up(eligible) if village_day else 0,
    )
