"""Settlement cases computed by hand from SETTLEMENT.md's example policy (demo pool, 2026), to
the fen.  Policy: village outpatient 0 / 60 % (30 yuan eligible a day), township outpatient
0 / 50 %, township inpatient 100 yuan / 90 %, county 300 / 75 %, city 600 / 65 %, province
1,000 / 55 %; B class 10 % self-paid; annual fund cap 200,000 yuan, outpatient cap 400 yuan;
outside the pool −10 points with a referral, −20 without; inside, a city / province admission
without a referral −10.  Every amount below is fen; the arithmetic is in the comments."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import pytest

from healthcard.errors import InvalidValue
from healthcard.platform.settlement import (
    Benefit,
    BillLine,
    Claim,
    ItemClass,
    Level,
    Visit,
    YearToDate,
    load_policy,
    parse_policy,
    settle,
)

POLICY = load_policy("demo", 2026)
V, T, CO, CI, PR = Level.VILLAGE, Level.TOWNSHIP, Level.COUNTY, Level.CITY, Level.PROVINCE
OUT, IN = Visit.OUTPATIENT, Visit.INPATIENT


def a(fen: int, quantity: int = 1) -> BillLine:
    return BillLine("A-item", ItemClass.A, quantity, fen)


def b(fen: int) -> BillLine:
    return BillLine("B-item", ItemClass.B, 1, fen)


def c(fen: int) -> BillLine:
    return BillLine("C-item", ItemClass.C, 1, fen)


class Case(NamedTuple):
    level: Level
    visit: Visit
    inside: bool
    referral: bool
    lines: tuple[BillLine, ...]
    ytd: YearToDate
    eligible: int
    deductible: int
    ratio: int
    fund: int
    self_pay: int
    capped: bool = False
    covered: bool = True


Y0 = YearToDate()
CASES = {
    # the worked check of SETTLEMENT.md: (200000 − 10000) × 90 % = 171000
    "township inpatient, the worked check": Case(
        T, IN, True, False, (a(200000),), Y0, 200000, 10000, 90, 171000, 29000
    ),
    "village outpatient": Case(V, OUT, True, False, (a(2000),), Y0, 2000, 0, 60, 1200, 800),
    "village outpatient over the daily cap": Case(
        V, OUT, True, False, (a(5000),), Y0, 3000, 0, 60, 1800, 3200
    ),
    "village, 25 yuan eligible earlier today": Case(
        V, OUT, True, False, (a(2000),), YearToDate(village_eligible_today_fen=2500), 500, 0, 60, 300, 1700
    ),
    "village, the day's cap used up": Case(
        V, OUT, True, False, (a(2000),), YearToDate(village_eligible_today_fen=3000), 0, 0, 60, 0, 2000
    ),
    "village, B class: 1000 × 90 % = 900 eligible": Case(
        V, OUT, True, False, (b(1000),), Y0, 900, 0, 60, 540, 460
    ),
    "village, C class: nothing eligible": Case(V, OUT, True, False, (c(1000),), Y0, 0, 0, 60, 0, 1000),
    "village, A + B + C: 1000 + 900 + 0": Case(
        V, OUT, True, False, (a(1000), b(1000), c(1000)), Y0, 1900, 0, 60, 1140, 1860
    ),
    "village, quantity 3 × 500": Case(V, OUT, True, False, (a(500, 3),), Y0, 1500, 0, 60, 900, 600),
    "township outpatient": Case(T, OUT, True, False, (a(10000),), Y0, 10000, 0, 50, 5000, 5000),
    "township outpatient, 20 yuan of the outpatient cap left": Case(
        T,
        OUT,
        True,
        False,
        (a(10000),),
        YearToDate(outpatient_fund_paid_fen=38000),
        10000,
        0,
        50,
        2000,
        8000,
        True,
    ),
    "township outpatient, outpatient cap used up": Case(
        T,
        OUT,
        True,
        False,
        (a(10000),),
        YearToDate(outpatient_fund_paid_fen=40000),
        10000,
        0,
        50,
        0,
        10000,
        True,
    ),
    "township inpatient below the deductible": Case(
        T, IN, True, False, (a(5000),), Y0, 5000, 5000, 90, 0, 5000
    ),
    "township inpatient at the deductible": Case(
        T, IN, True, False, (a(10000),), Y0, 10000, 10000, 90, 0, 10000
    ),
    # 200000 × 90 % = 180000 eligible; (180000 − 10000) × 90 % = 153000
    "township inpatient, B class": Case(
        T, IN, True, False, (b(200000),), Y0, 180000, 10000, 90, 153000, 47000
    ),
    # C is not eligible: (100000 − 10000) × 90 % = 81000 of a 150000 bill
    "township inpatient, A + C": Case(
        T, IN, True, False, (a(100000), c(50000)), Y0, 100000, 10000, 90, 81000, 69000
    ),
    # (500000 − 30000) × 75 % = 352500
    "county inpatient": Case(CO, IN, True, False, (a(500000),), Y0, 500000, 30000, 75, 352500, 147500),
    "county, the deductible again on a second admission": Case(
        CO, IN, True, False, (a(500000),), YearToDate(fund_paid_fen=352500), 500000, 30000, 75, 352500, 147500
    ),
    # (1000000 − 60000) × 65 % = 611000
    "city inpatient with a referral": Case(
        CI, IN, True, True, (a(1000000),), Y0, 1000000, 60000, 65, 611000, 389000
    ),
    # 65 − 10 = 55 %: 940000 × 55 % = 517000
    "city inpatient without a referral": Case(
        CI, IN, True, False, (a(1000000),), Y0, 1000000, 60000, 55, 517000, 483000
    ),
    # (2000000 − 100000) × 55 % = 1045000
    "province inpatient with a referral": Case(
        PR, IN, True, True, (a(2000000),), Y0, 2000000, 100000, 55, 1045000, 955000
    ),
    "province inpatient without a referral: 45 %": Case(
        PR, IN, True, False, (a(2000000),), Y0, 2000000, 100000, 45, 855000, 1145000
    ),
    # 2700000 eligible; (2700000 − 100000) × 55 % = 1430000
    "province inpatient, B class": Case(
        PR, IN, True, True, (b(3000000),), Y0, 2700000, 100000, 55, 1430000, 1570000
    ),
    # outside the pool: 75 − 10 = 65 %: 470000 × 65 % = 305500
    "county inpatient outside the pool, referred": Case(
        CO, IN, False, True, (a(500000),), Y0, 500000, 30000, 65, 305500, 194500
    ),
    # 75 − 20 = 55 %: 470000 × 55 % = 258500
    "county inpatient outside the pool, not referred": Case(
        CO, IN, False, False, (a(500000),), Y0, 500000, 30000, 55, 258500, 241500
    ),
    # outside: only the −20 (the inside-pool upward rule does not add): 940000 × 45 % = 423000
    "city inpatient outside the pool, not referred": Case(
        CI, IN, False, False, (a(1000000),), Y0, 1000000, 60000, 45, 423000, 577000
    ),
    "township outpatient outside the pool, not referred: 30 %": Case(
        T, OUT, False, False, (a(10000),), Y0, 10000, 0, 30, 3000, 7000
    ),
    "village outpatient outside the pool, referred: 50 %": Case(
        V, OUT, False, True, (a(2000),), Y0, 2000, 0, 50, 1000, 1000
    ),
    # 100000 left of the annual cap: the fund's 352500 is cut to it mid-bill
    "county inpatient, the annual cap reached mid-bill": Case(
        CO,
        IN,
        True,
        False,
        (a(500000),),
        YearToDate(fund_paid_fen=19_900_000),
        500000,
        30000,
        75,
        100000,
        400000,
        True,
    ),
    "county inpatient, the annual cap used up": Case(
        CO,
        IN,
        True,
        False,
        (a(500000),),
        YearToDate(fund_paid_fen=20_000_000),
        500000,
        30000,
        75,
        0,
        500000,
        True,
    ),
    "county outpatient: not covered": Case(
        CO, OUT, True, False, (a(10000),), Y0, 10000, 0, 0, 0, 10000, covered=False
    ),
    "village inpatient: not covered": Case(
        V, IN, True, False, (a(10000),), Y0, 10000, 0, 0, 0, 10000, covered=False
    ),
    # 15 × 90 % = 13.5 eligible (shown 14); 13.5 × 50 % = 6.75 → 7
    "rounding half-up: one B line of 15 fen": Case(T, OUT, True, False, (b(15),), Y0, 14, 0, 50, 7, 8),
    # 3 × 13.5 = 40.5; × 50 % = 20.25 → 20 once — per line it would have been 3 × 7 = 21
    "rounding once per settlement, not per line": Case(
        T, OUT, True, False, (b(15), b(15), b(15)), Y0, 41, 0, 50, 20, 25
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_settlement_matches_the_hand_computed_figures(case: Case) -> None:
    got = settle(POLICY, Claim(case.level, case.visit, case.inside, case.referral, case.lines, case.ytd))
    assert (got.eligible_fen, got.deductible_fen, got.ratio_percent, got.fund_fen, got.self_fen) == (
        case.eligible,
        case.deductible,
        case.ratio,
        case.fund,
        case.self_pay,
    )
    assert (got.capped, got.covered) == (case.capped, case.covered)
    assert got.fund_fen + got.self_fen == got.total_fen == sum(line.amount_fen for line in case.lines)


def test_there_are_at_least_25_cases() -> None:
    assert len(CASES) >= 25


def test_an_outpatient_deductible_is_yearly() -> None:
    """A policy with a 10-yuan yearly outpatient deductible at the township, 6 yuan of it met:
    4 yuan are taken, then (2000 − 400) × 50 % = 800."""
    benefits = dict(POLICY.benefits)
    benefits[(T, OUT)] = Benefit(deductible_fen=1000, ratio_percent=50)
    policy = dataclasses.replace(POLICY, benefits=benefits)
    got = settle(
        policy, Claim(T, OUT, True, False, (a(2000),), YearToDate(outpatient_deductible_met_fen=600))
    )
    assert (got.deductible_fen, got.fund_fen, got.self_fen) == (400, 800, 1200)


def test_a_village_visit_reports_what_it_adds_to_the_day() -> None:
    got = settle(POLICY, Claim(V, OUT, True, False, (a(5000),)))
    assert got.village_eligible_fen == 3000
    assert settle(POLICY, Claim(T, OUT, True, False, (a(5000),))).village_eligible_fen == 0


@pytest.mark.parametrize(
    ("lines", "ytd", "field"),
    [
        ((), Y0, "lines"),
        ((BillLine("x", ItemClass.A, 0, 100),), Y0, "lines[0].quantity"),
        ((BillLine("x", ItemClass.A, -2, 100),), Y0, "lines[0].quantity"),
        ((a(100), BillLine("x", ItemClass.B, 1, -1)), Y0, "lines[1].unit_price_fen"),
        ((a(100),), YearToDate(fund_paid_fen=-1), "ytd.fund_paid_fen"),
    ],
)
def test_bad_bills_are_refused_by_field(lines: tuple[BillLine, ...], ytd: YearToDate, field: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        settle(POLICY, Claim(T, OUT, True, False, lines, ytd))
    assert refused.value.field == field


def test_the_shipped_policy_is_the_example_of_settlement_md() -> None:
    assert (POLICY.pool, POLICY.year, POLICY.b_self_pay_percent) == ("demo", 2026, 10)
    assert POLICY.benefit(PR, IN) == Benefit(100000, 55) and POLICY.benefit(CO, OUT) is None
    assert (POLICY.annual_fund_cap_fen, POLICY.outpatient_annual_cap_fen) == (20_000_000, 40_000)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"b_self_pay_percent": 110}, "b_self_pay_percent"),
        ({"annual_fund_cap_fen": 1.5}, "annual_fund_cap_fen"),
        ({"benefits": {"hamlet": {}}}, "benefits"),
        (
            {"benefits": {"county": {"inpatient": {"deductible_fen": 100, "ratio_percent": 101}}}},
            "benefits.county.inpatient.ratio_percent",
        ),
        ({"outside_pool_without_referral_points": 20}, "outside_pool_without_referral_points"),
    ],
)
def test_a_broken_policy_file_is_refused_by_field(change: dict[str, object], field: str) -> None:
    import json
    from importlib import resources

    raw = json.loads(
        resources.files("healthcard.platform")
        .joinpath("data", "policies", "demo-2026.json")
        .read_text("utf-8")
    )
    raw.update(change)
    with pytest.raises(InvalidValue) as refused:
        parse_policy(raw)
    assert refused.value.field == field


def test_an_unknown_pool_or_year_is_refused() -> None:
    with pytest.raises(InvalidValue, match="no policy"):
        load_policy("demo", 2019)


def test_a_bill_from_the_catalog() -> None:
    """The cashier's bill for a township admission: 3 days' bed (A 2500), an appendectomy
    (A 120000), ceftriaxone ×6 (B 1860), a single room ×3 (C 15000).  Total 2500×3 + 120000 +
    1860×6 + 15000×3 = 7500 + 120000 + 11160 + 45000 = 183660; eligible 7500 + 120000 + 10044 =
    137544; fund (137544 − 10000) × 90 % = 114789.6 → 114790."""
    from healthcard.platform.settlement import load_catalog

    catalog = load_catalog("demo", 2026)
    lines = (
        catalog.line("FW0401", 3, at="lines[0]"),
        catalog.line("FW0501", 1, 120000, at="lines[1]"),
        catalog.line("YP0011", 6, at="lines[2]"),
        catalog.line("FW0403", 3, at="lines[3]"),
    )
    got = settle(POLICY, Claim(T, IN, True, False, lines))
    assert (got.total_fen, got.eligible_fen, got.fund_fen, got.self_fen) == (183660, 137544, 114790, 68870)


@pytest.mark.parametrize(
    ("code", "quantity", "price", "field"),
    [
        ("NOPE01", 1, None, "lines[0].item"),
        ("YP0001", 0, None, "lines[0].quantity"),
        ("YP0001", -1, None, "lines[0].quantity"),
        ("YP0001", 1, 900, "lines[0].unit_price_fen"),
    ],
)
def test_a_catalog_line_is_refused_by_field(code: str, quantity: int, price: int | None, field: str) -> None:
    from healthcard.platform.settlement import load_catalog

    with pytest.raises(InvalidValue) as refused:
        load_catalog().line(code, quantity, price)
    assert refused.value.field == field
