"""The NCMS office's dashboard on SQLite and PostgreSQL: the fund's balance from the ledger, net
payments by level and by month (a refund comes off in its own month), the largest settlements
and the review list — random, above the threshold, far above the diagnosis' average."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator

import pytest

from healthcard.errors import PermissionDenied
from healthcard.platform.settlement import ledger, load_policy
from healthcard.platform.settlement.policy import Review
from healthcard.platform.settlement.review import sample_point
from healthcard.platform.settlement.service import Settlements
from healthcard.storage.db import Database

from .settlement_fixtures import (
    COUNTY,
    INSURED,
    INSURER,
    PREMIUM,
    TOWNSHIP,
    VILLAGE,
    WUHAN,
    World,
    cashier,
    make_world,
)

ZHANG, LI, WANG = INSURED
#: review rules small enough to test: nothing random, 8,000 yuan, 3 × the average of 3 or more
RULES = Review(random_percent=0, threshold_fen=800_000, outlier_percent=300, outlier_min_sample=3)


@pytest.fixture
def world(database: Database) -> Iterator[World]:
    made = make_world(database)
    policy = dataclasses.replace(load_policy("demo", 2026), review=RULES)
    made.node.settlement.service = Settlements(made.clock, policies=lambda pool, year: policy)
    yield made
    with database.uow() as uow:
        assert ledger.verify(uow).balanced


def test_the_dashboard_of_the_pool(world: World) -> None:
    sick = "J06.9"
    small = [
        world.settle(rid, VILLAGE, world.visit(rid, VILLAGE, diagnosis=sick), [("FW0001", 1, 500)])[0]
        for rid in INSURED
    ]
    big_cold = world.settle(
        ZHANG, TOWNSHIP, world.visit(ZHANG, TOWNSHIP, diagnosis=sick), [("FW0303", 1, 12000)]
    )[0]
    # a county admission of 10,800 yuan: above the threshold
    admission = world.settle(LI, COUNTY, world.visit(LI, COUNTY, "inpatient"), [("FW0502", 6, 180000)])[0]
    extra = world.settle(WANG, TOWNSHIP, world.visit(WANG, TOWNSHIP), [("FW0001", 1, 500)])[0]
    world.clock.advance(dt.timedelta(days=31))  # April: the refund of a March bill
    world.node.settlement.refund(cashier(TOWNSHIP), extra.id, None, key="april-refund")

    board = world.node.settlement.dashboard(INSURER, "demo", 2026)
    paid = sum(v.fund_fen for v in (*small, big_cold, admission))
    assert (paid, admission.fund_fen) == (3 * 300 + 6000 + 787_500, 787_500)
    assert board.fund_balance_fen == PREMIUM * len(INSURED) - paid
    assert board.premiums_fen == PREMIUM * len(INSURED)
    levels = {row.key: (row.settlements, row.refunds, row.fund_fen) for row in board.by_level}
    assert levels == {"village": (3, 0, 900), "township": (2, 1, 6000), "county": (1, 0, 787_500)}
    assert list(levels) == ["village", "township", "county"]
    months = {row.key: (row.settlements, row.refunds, row.fund_fen) for row in board.by_month}
    assert months == {"2026-03": (6, 0, paid + 250), "2026-04": (0, 1, -250)}
    assert [row.id for row in board.largest][:2] == [admission.id, big_cold.id]
    assert extra.id not in {row.id for row in board.largest}
    # 120 yuan against the J06.9 average of (5 + 5 + 5 + 120) / 4 = 33.75 yuan: over 300 %
    assert {row.id: row.reasons for row in board.flagged} == {
        admission.id: ("threshold",),
        big_cold.id: ("outlier",),
    }
    assert next(r for r in board.flagged if r.id == big_cold.id).diagnosis_average_fen == 3375


def test_the_random_sample_is_deterministic_and_about_five_percent(world: World) -> None:
    points = [sample_point(TOWNSHIP, f"bill-{n}") for n in range(4000)]
    assert points == [sample_point(TOWNSHIP, f"bill-{n}") for n in range(4000)]
    assert 150 <= sum(p < 500 for p in points) <= 250  # 5 % of 4000 = 200
    world.node.settlement.service = Settlements(world.clock)  # the shipped rules: 5 % random
    key = next(f"bill-{n}" for n, p in enumerate(points) if p < 500)
    other = next(f"bill-{n}" for n, p in enumerate(points) if p >= 500)
    chosen = world.settle(ZHANG, TOWNSHIP, world.visit(ZHANG, TOWNSHIP), [("FW0001", 1, 500)], key=key)[0]
    passed = world.settle(LI, TOWNSHIP, world.visit(LI, TOWNSHIP), [("FW0001", 1, 500)], key=other)[0]
    assert (chosen.review, passed.review) == ("random", None)


def test_the_dashboard_is_for_the_office_of_the_pool(world: World) -> None:
    for actor in (cashier(TOWNSHIP), dataclasses.replace(INSURER, institution_code=WUHAN)):
        with pytest.raises(PermissionDenied):
            world.node.settlement.dashboard(actor, "demo", 2026)
