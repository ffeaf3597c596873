"""Instant settlement at the cashier through the node's settlement desk, on SQLite and PostgreSQL:
SETTLEMENT.md's worked check end to end, every level, inside and outside the pool, with and
without a referral, the caps across settlements, the village day, exactly once, the refusals
(with nothing written) and the visit record the card is written from.  After every test the
ledger is balanced: every transaction sums to zero, and so does the whole."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from sqlalchemy import update

from healthcard.errors import Duplicate, InvalidValue, NotFound, PermissionDenied
from healthcard.platform import records as rec
from healthcard.platform.access import Actor, Role
from healthcard.platform.settlement import ledger
from healthcard.platform.settlement.desk import bill_of
from healthcard.platform.settlement.service import Returned, SettlementView
from healthcard.storage import tables as t
from healthcard.storage.db import Database

from .settlement_fixtures import (
    CITY,
    COUNTY,
    INSURED,
    INSURER,
    NO_LEVEL,
    PREMIUM,
    PROVINCE,
    TOWNSHIP,
    UNINSURED,
    VILLAGE,
    WUHAN,
    World,
    cashier,
    make_world,
)

ZHANG, LI, WANG = INSURED


@pytest.fixture
def world(database: Database) -> Iterator[World]:
    made = make_world(database)
    yield made
    with database.uow() as uow:
        check = ledger.verify(uow)
    assert check.balanced, check


def settled(world: World, *args: object, **kwargs: object) -> SettlementView:
    view, created = world.settle(*args, **kwargs)  # type: ignore[arg-type]
    assert created
    return view


# --- the rules, end to end -----------------------------------------------------------------------------
def test_the_worked_check_of_settlement_md(world: World) -> None:
    """Township inpatient inside the pool, 2,000 yuan all A, nothing paid this year: eligible
    2,000, deductible 100, fund (2,000 − 100) × 90 % = 1,710.00, self 290.00."""
    eid = world.visit(ZHANG, TOWNSHIP, "inpatient")
    view = settled(world, ZHANG, TOWNSHIP, eid, [("FW0502", 1, 180000), ("FW0401", 8, 2500)])
    assert (view.total_fen, view.eligible_fen, view.deductible_fen, view.ratio_percent) == (
        200000,
        200000,
        10000,
        90,
    )
    assert (view.fund_fen, view.self_fen) == (171000, 29000)
    assert (view.level, view.visit, view.inside_pool, view.pool, view.year) == (
        "township",
        "inpatient",
        True,
        "demo",
        2026,
    )
    # the ledger: the fund paid the hospital's receivable, the resident's cash the rest
    assert world.balance(ledger.fund("demo")) == len(INSURED) * PREMIUM - 171000
    assert world.balance(ledger.receivable(TOWNSHIP)) == 171000
    assert world.balance(ledger.cash(TOWNSHIP)) == 29000
    assert world.balance(ledger.POCKET) == -29000
    acc = world.accumulator(ZHANG)
    assert (acc.fund_paid_fen, acc.outpatient_fund_paid_fen, acc.admissions, acc.settlements) == (
        171000,
        0,
        1,
        1,
    )


#: (level's institution, visit kind, lines, referral, referred by) → (eligible, deductible, ratio, fund, self)
LEVELS = {
    # 1000 + 850 all A, under the 30-yuan day: 1850 × 60 % = 1110
    "village outpatient": (VILLAGE, "outpatient", [("FW0010", 1, 1000), ("YP0001", 1, 850)], None, (1850, 0, 60, 1110, 740)),
    # 500 + 2680 × 90 % = 2912 eligible; × 50 % = 1456
    "township outpatient, B class": (TOWNSHIP, "outpatient", [("FW0001", 1, 500), ("YP0002", 1, 2680)], None, (2912, 0, 50, 1456, 1724)),
    # emergency counts as outpatient
    "township emergency": (TOWNSHIP, "emergency", [("FW0001", 1, 500)], None, (500, 0, 50, 250, 250)),
    # (130000 − 30000) × 75 % = 75000
    "county inpatient": (COUNTY, "inpatient", [("FW0501", 1, 120000), ("FW0401", 4, 2500)], None, (130000, 30000, 75, 75000, 55000)),
    "county outpatient: not covered": (COUNTY, "outpatient", [("FW0001", 1, 500)], None, (500, 0, 0, 0, 500)),
    # (130000 − 60000) × 65 % = 45500 with a referral from the county
    "city inpatient, referred from the county": (CITY, "inpatient", [("FW0501", 1, 120000), ("FW0401", 4, 2500)], COUNTY, (130000, 60000, 65, 45500, 84500)),
    # without one: 55 % → 38500
    "city inpatient, no referral": (CITY, "inpatient", [("FW0501", 1, 120000), ("FW0401", 4, 2500)], None, (130000, 60000, 55, 38500, 91500)),
    # a referral from a city hospital is not one "from a county-or-lower institution": 55 %
    "province inpatient, referred from a city hospital": (PROVINCE, "inpatient", [("FW0501", 1, 120000), ("FW0401", 4, 2500)], CITY, (130000, 100000, 45, 13500, 116500)),
    # (130000 − 100000) × 55 % = 16500
    "province inpatient, referred from the township": (PROVINCE, "inpatient", [("FW0501", 1, 120000), ("FW0401", 4, 2500)], TOWNSHIP, (130000, 100000, 55, 16500, 113500)),
    # outside the pool (Wuhan): 65 − 10 = 55 % with a referral, 65 − 20 = 45 % without
    "outside the pool, referred": (WUHAN, "inpatient", [("FW0501", 1, 120000), ("FW0401", 4, 2500)], COUNTY, (130000, 60000, 55, 38500, 91500)),
    "outside the pool, no referral": (WUHAN, "inpatient", [("FW0501", 1, 120000), ("FW0401", 4, 2500)], None, (130000, 60000, 45, 31500, 98500)),
    # C class: the single room and vitamin C are not eligible: (12000 − 10000) × 90 % of a 28000 bill
    "township inpatient with C lines": (TOWNSHIP, "inpatient", [("FW0303", 1, 12000), ("FW0403", 1, 15000), ("YP0017", 2, 500)], None, (12000, 10000, 90, 1800, 26200)),
}  # fmt: skip


@pytest.mark.parametrize("case", LEVELS.values(), ids=LEVELS.keys())
def test_every_level_inside_and_outside_the_pool(world: World, case: tuple) -> None:  # type: ignore[type-arg]
    institution, kind, lines, referrer, expected = case
    eid = world.visit(ZHANG, institution, kind)
    options = {"referral": True, "referred_by": referrer} if referrer else {}
    view = settled(world, ZHANG, institution, eid, lines, **options)
    assert (
        view.eligible_fen,
        view.deductible_fen,
        view.ratio_percent,
        view.fund_fen,
        view.self_fen,
    ) == expected
    assert view.inside_pool is (institution != WUHAN)
    assert view.total_fen == sum(q * p for _, q, p in lines) == view.fund_fen + view.self_fen
    assert world.balance(ledger.receivable(institution)) == view.fund_fen
    assert world.balance(ledger.cash(institution)) == view.self_fen


def test_the_outpatient_cap_is_reached_mid_bill_across_two_settlements(world: World) -> None:
    """400 yuan a year: 720 yuan at 50 % takes 360, the next 240 yuan would take 120 but 40 are left."""
    first = settled(world, ZHANG, TOWNSHIP, world.visit(ZHANG, TOWNSHIP), [("FW0303", 6, 12000)])
    assert (first.fund_fen, first.capped) == (36000, False)
    second = settled(world, ZHANG, TOWNSHIP, world.visit(ZHANG, TOWNSHIP), [("FW0303", 2, 12000)])
    assert (second.fund_fen, second.self_fen, second.capped) == (4000, 20000, True)
    acc = world.accumulator(ZHANG)
    assert (acc.fund_paid_fen, acc.outpatient_fund_paid_fen, acc.settlements) == (40000, 40000, 2)
    third = settled(world, ZHANG, VILLAGE, world.visit(ZHANG, VILLAGE), [("FW0010", 1, 1000)])
    assert (third.fund_fen, third.self_fen, third.capped) == (0, 1000, True)
    # an admission is not outpatient: the annual cap still has room
    inpatient = settled(
        world, ZHANG, COUNTY, world.visit(ZHANG, COUNTY, "inpatient"), [("FW0501", 1, 120000)]
    )
    assert inpatient.fund_fen == 67500


def test_the_annual_fund_cap_is_reached_mid_bill(world: World) -> None:
    with world.db.uow() as uow:
        a = t.Accumulator
        uow.session.execute(
            update(a).where(a.resident_id == LI, a.year == 2026).values(fund_paid_fen=20_000_000 - 10_000)
        )
        uow.commit()
    view = settled(
        world, LI, COUNTY, world.visit(LI, COUNTY, "inpatient"), [("FW0501", 1, 120000), ("FW0401", 4, 2500)]
    )
    assert (view.fund_fen, view.self_fen, view.capped) == (10000, 120000, True)
    assert world.accumulator(LI).fund_paid_fen == 20_000_000


def test_the_village_daily_cap_spans_two_visits_the_same_day(world: World) -> None:
    morning = world.clock.now().replace(hour=0, minute=30)  # 08:30 in Zhengzhou
    first = settled(
        world,
        WANG,
        VILLAGE,
        world.visit(WANG, VILLAGE, at=morning),
        [("FW0010", 2, 1000), ("YP0001", 1, 850)],
    )
    assert (first.eligible_fen, first.fund_fen, first.village_eligible_fen) == (2850, 1710, 2850)
    # 30 yuan a day: 1.50 yuan of eligible cost left → 0.90 from the fund
    second = settled(world, WANG, VILLAGE, world.visit(WANG, VILLAGE), [("FW0010", 1, 1000)])
    assert (second.eligible_fen, second.fund_fen, second.self_fen) == (150, 90, 910)
    # the day before is another day
    yesterday = morning.replace(day=1)
    third = settled(world, WANG, VILLAGE, world.visit(WANG, VILLAGE, at=yesterday), [("FW0010", 1, 1000)])
    assert (third.eligible_fen, third.fund_fen) == (1000, 600)


# --- exactly once ------------------------------------------------------------------------------------
def test_a_retry_with_the_same_key_returns_the_first_settlement_and_moves_nothing(world: World) -> None:
    eid = world.visit(ZHANG, TOWNSHIP)
    lines = [("FW0001", 1, 500), ("YP0001", 2, 850)]
    first, created = world.settle(ZHANG, TOWNSHIP, eid, lines, key="bill-0001")
    assert created
    before = world.counts()
    again, created = world.settle(ZHANG, TOWNSHIP, eid, lines, key="bill-0001")
    assert not created and again == first
    assert world.counts() == before
    assert world.accumulator(ZHANG).settlements == 1
    # the same key for another request: refused by name, nothing written
    with pytest.raises(Duplicate) as refused:
        world.settle(ZHANG, TOWNSHIP, eid, [("FW0001", 1, 500)], key="bill-0001")
    assert refused.value.field == "idempotency_key"
    # another key for the visit already settled: refund it first
    with pytest.raises(Duplicate) as refused:
        world.settle(ZHANG, TOWNSHIP, eid, lines, key="bill-0002")
    assert refused.value.field == "encounter_id"
    assert world.counts() == before


# --- refusals: clear, named, nothing written ---------------------------------------------------------
@pytest.mark.parametrize(
    ("lines", "field"),
    [
        ([("XX9999", 1, 500)], "lines[0].item"),
        ([("FW0001", 1, 500), ("YP0001", -1, 850)], "lines[1].quantity"),
        ([("FW0001", 0, 500)], "lines[0].quantity"),
        ([("FW0001", 1, 450)], "lines[0].unit_price_fen"),
        ([], "lines"),
    ],
    ids=["unknown item", "negative quantity", "zero quantity", "wrong price", "no lines"],
)
def test_a_bad_bill_is_refused_by_field_and_nothing_is_written(
    world: World, lines: list[tuple[str, int, int]], field: str
) -> None:
    eid = world.visit(ZHANG, TOWNSHIP)
    before = world.counts()
    with pytest.raises(InvalidValue) as refused:
        world.settle(ZHANG, TOWNSHIP, eid, lines)
    assert refused.value.field == field
    assert world.counts() == before


def test_a_resident_not_insured_this_year_is_refused(world: World) -> None:
    eid = world.visit(UNINSURED, TOWNSHIP)
    before = world.counts()
    with pytest.raises(InvalidValue) as refused:
        world.settle(UNINSURED, TOWNSHIP, eid, [("FW0001", 1, 500)])
    assert refused.value.field == "resident_id"
    # insured for 2026 but the visit is of 2025
    old = world.visit(ZHANG, TOWNSHIP, at=world.clock.now().replace(year=2025))
    with pytest.raises(InvalidValue) as refused:
        world.settle(ZHANG, TOWNSHIP, old, [("FW0001", 1, 500)])
    assert refused.value.field == "resident_id"
    assert world.counts() == before


def test_a_bill_for_a_visit_that_does_not_exist_or_is_elsewhere_is_refused(world: World) -> None:
    world.visit(ZHANG, TOWNSHIP)  # ZHANG is in care at the township: the access check passes
    theirs = world.visit(LI, TOWNSHIP)
    before = world.counts()
    with pytest.raises(NotFound):
        world.settle(ZHANG, TOWNSHIP, 999_999, [("FW0001", 1, 500)])
    # another resident's visit is no visit of this one
    with pytest.raises(NotFound):
        world.settle(ZHANG, TOWNSHIP, theirs, [("FW0001", 1, 500)])
    # a visit at the village, settled by the township's cashier
    elsewhere = world.visit(ZHANG, VILLAGE)
    with pytest.raises(InvalidValue) as refused:
        world.settle(ZHANG, TOWNSHIP, elsewhere, [("FW0001", 1, 500)])
    assert refused.value.field == "encounter_id"
    # an institution without a level settles nothing
    with pytest.raises(InvalidValue) as refused:
        world.settle(ZHANG, NO_LEVEL, world.visit(ZHANG, NO_LEVEL), [("FW0001", 1, 500)])
    assert refused.value.field == "encounter_id"
    assert world.counts() == before


def test_a_referral_names_a_real_institution(world: World) -> None:
    eid = world.visit(ZHANG, CITY, "inpatient")
    before = world.counts()
    for options, field in (
        ({"referral": True}, "referred_by"),
        ({"referral": True, "referred_by": "999999999"}, "referred_by"),
        ({"referral": True, "referred_by": CITY}, "referred_by"),
        ({"referred_by": COUNTY}, "referral"),
        ({"paid_by": "cheque"}, "paid_by"),
    ):
        with pytest.raises(InvalidValue) as refused:
            world.settle(ZHANG, CITY, eid, [("FW0501", 1, 120000)], **options)
        assert refused.value.field == field, options
    with pytest.raises(InvalidValue) as refused:
        world.settle(ZHANG, CITY, eid, [("FW0501", 1, 120000)], key="")
    assert refused.value.field == "idempotency_key"
    assert world.counts() == before


def test_only_the_cashier_with_the_patient_settles(world: World) -> None:
    eid = world.visit(ZHANG, TOWNSHIP)
    bill = bill_of(eid, [("FW0001", 1, 500)])
    before = world.counts()
    for actor in (
        Actor("dr", Role.CLINICIAN, institution_code=TOWNSHIP),
        INSURER,
        Actor(ZHANG, Role.RESIDENT, resident_id=ZHANG),
        cashier(COUNTY),  # no tie to the patient there
    ):
        with pytest.raises(PermissionDenied):
            world.node.settlement.settle(actor, ZHANG, bill, key="k")
    assert world.counts() == before


# --- the health account ----------------------------------------------------------------------------
def test_the_health_account_pays_the_self_part_and_never_goes_below_zero(world: World) -> None:
    world.open_health_account(ZHANG, 1000)
    eid = world.visit(ZHANG, TOWNSHIP)
    before = world.counts()
    with pytest.raises(ledger.InsufficientFunds):  # self part 1724 > 1000
        world.settle(ZHANG, TOWNSHIP, eid, [("FW0001", 1, 500), ("YP0002", 1, 2680)], paid_by="account")
    assert world.counts() == before
    assert world.health_balance(ZHANG) == 1000
    assert world.accumulator(ZHANG).settlements == 0
    view = settled(world, ZHANG, TOWNSHIP, eid, [("FW0001", 1, 500)], paid_by="account")
    assert (view.fund_fen, view.self_fen, view.paid_by) == (250, 250, "account")
    assert world.health_balance(ZHANG) == 750
    assert world.balance(ledger.health(ZHANG)) == 750
    assert world.balance(ledger.cash(TOWNSHIP)) == 250
    # no account at all: refused, nothing written
    before = world.counts()
    with pytest.raises(NotFound):
        world.settle(LI, TOWNSHIP, world.visit(LI, TOWNSHIP), [("FW0001", 1, 500)], paid_by="account")
    assert world.counts() == before


# --- refunds ---------------------------------------------------------------------------------------
def test_a_full_refund_reverses_the_entries_and_gives_the_accumulators_back(world: World) -> None:
    world.open_health_account(ZHANG, 20_000)
    eid = world.visit(ZHANG, TOWNSHIP)
    original = settled(world, ZHANG, TOWNSHIP, eid, [("FW0303", 2, 12000)], paid_by="account")
    assert (original.fund_fen, original.self_fen) == (12000, 12000)
    assert world.health_balance(ZHANG) == 8_000
    refunded, created = world.node.settlement.refund(cashier(TOWNSHIP), original.id, None, key="refund-1")
    assert created and refunded.replacement is None
    refund = refunded.refund
    assert (refund.kind, refund.reverses_id, refund.fund_fen, refund.self_fen, refund.total_fen) == (
        "refund",
        original.id,
        -12000,
        -12000,
        -24000,
    )
    assert [line.quantity for line in refund.lines] == [-2]
    again = world.node.settlement.settlement(cashier(TOWNSHIP), original.id)
    assert (again.status, again.reversed_by) == ("REVERSED", refund.id)
    acc = world.accumulator(ZHANG)
    assert (acc.fund_paid_fen, acc.outpatient_fund_paid_fen, acc.settlements) == (0, 0, 0)
    assert world.balance(ledger.receivable(TOWNSHIP)) == 0 == world.balance(ledger.cash(TOWNSHIP))
    assert world.health_balance(ZHANG) == 20_000
    # the visit record carries no settled fees any more
    with world.db.uow() as uow:
        encounter = uow.session.get(t.Encounter, eid)
        assert encounter is not None and (encounter.fees, encounter.payment_method) == ([], None)
    # the same refund again (a retry): the first answer, nothing moved
    before = world.counts()
    retried, created = world.node.settlement.refund(cashier(TOWNSHIP), original.id, None, key="refund-1")
    assert not created and retried == refunded
    assert world.counts() == before
    # refunding twice, refunding a refund: refused by name, nothing written
    for target in (original.id, refund.id):
        with pytest.raises(InvalidValue) as refused:
            world.node.settlement.refund(cashier(TOWNSHIP), target, None, key=f"refund-again-{target}")
        assert refused.value.field == "settlement_id"
    assert world.counts() == before
    # the visit can be settled again once refunded
    settled(world, ZHANG, TOWNSHIP, eid, [("FW0303", 1, 12000)])


def test_a_partial_refund_settles_the_lines_kept_anew(world: World) -> None:
    eid = world.visit(ZHANG, TOWNSHIP)
    # 72000 + 1700 = 73700 at 50 %: 36850
    original = settled(world, ZHANG, TOWNSHIP, eid, [("FW0303", 6, 12000), ("YP0001", 2, 850)])
    assert original.fund_fen == 36850
    refunded, created = world.node.settlement.refund(
        cashier(TOWNSHIP), original.id, [Returned("YP0001", 1)], key="refund-p"
    )
    assert created and refunded.replacement is not None
    kept = refunded.replacement
    assert [(line.item, line.quantity) for line in kept.lines] == [("FW0303", 6), ("YP0001", 1)]
    # 72850 at 50 %: 36425, counted against the year as it is after the reversal
    assert (kept.total_fen, kept.fund_fen, kept.self_fen, kept.status) == (72850, 36425, 36425, "SETTLED")
    assert refunded.refund.fund_fen == -36850
    acc = world.accumulator(ZHANG)
    assert (acc.outpatient_fund_paid_fen, acc.settlements) == (36425, 1)
    assert world.balance(ledger.receivable(TOWNSHIP)) == 36425
    assert world.balance(ledger.cash(TOWNSHIP)) == 36425
    with world.db.uow() as uow:
        encounter = uow.session.get(t.Encounter, eid)
        assert encounter is not None
        assert encounter.payment_method == "03"
        assert encounter.fees == [
            {"category": "西药费", "code": "3", "amount_fen": 850},
            {"category": "诊疗费", "code": "6", "amount_fen": 72000},
        ]
    # a retry answers the refund and its replacement
    before = world.counts()
    retried, created = world.node.settlement.refund(
        cashier(TOWNSHIP), original.id, [Returned("YP0001", 1)], key="refund-p"
    )
    assert not created and retried == refunded
    assert world.counts() == before
    # the replacement is itself refundable, in part: all that is left of the drug
    again, _ = world.node.settlement.refund(
        cashier(TOWNSHIP), kept.id, [Returned("YP0001", 1)], key="refund-q"
    )
    assert again.replacement is not None and again.replacement.total_fen == 72000


@pytest.mark.parametrize(
    ("returned", "field"),
    [
        ([("YP0001", 3)], "lines[0].quantity"),  # the bill had 2: larger than the payment
        ([("YP0001", 1), ("YP0001", 2)], "lines[1].quantity"),
        ([("YP0009", 1)], "lines[0].item"),  # not on the bill
        ([("YP0001", 0)], "lines[0].quantity"),
        ([], "lines"),
    ],
    ids=["more than billed", "more than billed over two lines", "not on the bill", "zero", "empty"],
)
def test_a_refund_larger_than_the_payment_is_refused(
    world: World, returned: list[tuple[str, int]], field: str
) -> None:
    original = settled(
        world, ZHANG, TOWNSHIP, world.visit(ZHANG, TOWNSHIP), [("FW0001", 1, 500), ("YP0001", 2, 850)]
    )
    before = world.counts()
    with pytest.raises(InvalidValue) as refused:
        world.node.settlement.refund(
            cashier(TOWNSHIP), original.id, [Returned(i, q) for i, q in returned], key="r"
        )
    assert refused.value.field == field
    assert world.counts() == before
    # at another institution: refused too
    world.visit(ZHANG, COUNTY)
    with pytest.raises(InvalidValue) as refused:
        world.node.settlement.refund(cashier(COUNTY), original.id, None, key="r")
    assert refused.value.field == "settlement_id"
    assert world.counts() == before


# --- the visit record and the card ------------------------------------------------------------------
def test_the_settled_visit_gives_the_card_its_fee_lines(world: World) -> None:
    eid = world.visit(ZHANG, TOWNSHIP, diagnosis="J06.9")
    view = settled(world, ZHANG, TOWNSHIP, eid, [("FW0001", 1, 500), ("YP0001", 2, 850), ("CL0001", 1, 250)])
    assert view.diagnosis_code == "J06.9"
    records = rec.Records(world.clock)
    with world.db.uow() as uow:
        values = rec.card_record(records.encounter(uow, [ZHANG], eid))
    assert values["YLFKFS"] == "03"
    assert [(values[f"MZFYFLMC{n}"], values[f"MZFYFLDM{n}"], values[f"MZFYJE{n}"]) for n in (1, 2, 3)] == [
        ("西药费", "3", "1700"),
        ("诊疗费", "6", "500"),
        ("其他费用", "9", "250"),
    ]
    # the clinician closes the visit afterwards without fees: the settled ones stay
    with world.db.uow() as uow:
        closed = records.close_encounter(uow, ZHANG, eid, card_slot=1)
        uow.commit()
    assert closed.payment_method == "03" and sum(f.amount_fen for f in closed.fees) == view.total_fen


# --- insured status ----------------------------------------------------------------------------------
def test_insured_status_and_enrolment(world: World) -> None:
    status = world.node.settlement.insured(Actor(ZHANG, Role.RESIDENT, resident_id=ZHANG), ZHANG, 2026)
    assert (
        status.insured,
        status.pool,
        status.premium_fen,
        status.fund_left_fen,
        status.outpatient_left_fen,
    ) == (
        True,
        "demo",
        PREMIUM,
        20_000_000,
        40_000,
    )
    world.visit(UNINSURED, TOWNSHIP)
    assert not world.node.settlement.insured(cashier(TOWNSHIP), UNINSURED, 2026).insured
    assert world.balance(ledger.fund("demo")) == PREMIUM * len(INSURED)
    assert world.balance(ledger.premiums("demo")) == -PREMIUM * len(INSURED)
    # enrolling twice, into a pool without a policy, or by someone other than the pool's office
    with pytest.raises(Duplicate) as refused:
        world.node.settlement.enrol(INSURER, ZHANG, pool="demo", year=2026, premium_fen=PREMIUM)
    assert refused.value.field == "resident_id"
    with pytest.raises(InvalidValue) as refused:
        world.node.settlement.enrol(INSURER, UNINSURED, pool="nowhere", year=2026, premium_fen=PREMIUM)
    assert refused.value.field == "pool"
    with pytest.raises(InvalidValue) as refused:
        world.node.settlement.enrol(INSURER, UNINSURED, pool="demo", year=2026, premium_fen=-1)
    assert refused.value.field == "premium_fen"
    for actor in (cashier(TOWNSHIP), dataclasses.replace(INSURER, institution_code=WUHAN)):
        with pytest.raises(PermissionDenied):
            world.node.settlement.enrol(actor, UNINSURED, pool="demo", year=2026, premium_fen=PREMIUM)
    with pytest.raises(PermissionDenied):  # the resident reads their own status only
        world.node.settlement.insured(Actor(LI, Role.RESIDENT, resident_id=LI), ZHANG, 2026)
