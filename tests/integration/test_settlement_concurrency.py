"""Settlements racing, on SQLite and PostgreSQL, with real threads and connections: the
accumulator row lock (``SELECT … FOR UPDATE``; SQLite's BEGIN IMMEDIATE) keeps one resident's
settlements in a line, so together they never pass the annual outpatient cap, and a request
retried while its first attempt is still running is settled once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from healthcard.errors import Duplicate
from healthcard.platform.settlement import ledger
from healthcard.platform.settlement.desk import bill_of
from healthcard.storage import tables as t
from healthcard.storage.db import Database

from .settlement_fixtures import INSURED, TOWNSHIP, World, cashier, make_world

ZHANG, LI, _ = INSURED


@pytest.fixture
def world(database: Database) -> Iterator[World]:
    made = make_world(database)
    yield made
    with database.uow() as uow:
        check = ledger.verify(uow)
    assert check.balanced, check


def race(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls at once (a barrier), each in its own thread; their results or exceptions."""
    results: list[Any] = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(n: int) -> None:
        start.wait()
        try:
            results[n] = calls[n]()
        except Exception as exc:  # reported to the test, not lost in the thread
            results[n] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def test_concurrent_settlements_of_one_resident_never_pass_the_outpatient_cap(world: World) -> None:
    """Eight bills of 240 yuan at 50 % (120 yuan each) against a 400-yuan outpatient cap: the fund
    pays 400 yuan in all — three bills in full, one in part, the rest nothing."""
    visits = [world.visit(ZHANG, TOWNSHIP) for _ in range(8)]
    desk = world.node.settlement
    results = race(
        [
            lambda eid=eid: desk.settle(
                cashier(TOWNSHIP), ZHANG, bill_of(eid, [("FW0303", 2, 12000)]), key=f"k{eid}"
            )
            for eid in visits
        ]
    )
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors
    funds = sorted((view.fund_fen for view, _ in results), reverse=True)
    assert funds == [12000, 12000, 12000, 4000, 0, 0, 0, 0]
    assert world.accumulator(ZHANG).outpatient_fund_paid_fen == 40000
    assert world.accumulator(ZHANG).settlements == 8
    assert world.balance(ledger.receivable(TOWNSHIP)) == 40000


def test_a_request_sent_again_while_the_first_runs_is_settled_once(world: World) -> None:
    eid = world.visit(ZHANG, TOWNSHIP)
    desk = world.node.settlement
    bill = bill_of(eid, [("FW0001", 1, 500), ("YP0001", 1, 850)])
    results = race([lambda: desk.settle(cashier(TOWNSHIP), ZHANG, bill, key="the-same") for _ in range(6)])
    assert not [r for r in results if isinstance(r, Exception)], results
    assert len({view.id for view, _ in results}) == 1
    assert sorted(created for _, created in results) == [False] * 5 + [True]
    with world.db.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(t.Settlement)) == 1
    assert world.accumulator(ZHANG).settlements == 1


def test_one_key_raced_for_two_residents_settles_one_and_names_the_key_for_the_other(world: World) -> None:
    desk = world.node.settlement
    bills = {rid: bill_of(world.visit(rid, TOWNSHIP), [("FW0001", 1, 500)]) for rid in (ZHANG, LI)}
    results = race(
        [lambda rid=rid: desk.settle(cashier(TOWNSHIP), rid, bills[rid], key="shared-key") for rid in bills]
    )
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(refused) == 1 and isinstance(refused[0], Duplicate), results
    assert refused[0].field == "idempotency_key"
    with world.db.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(t.Settlement)) == 1
        assert (
            uow.session.scalar(
                select(func.count())
                .select_from(t.LedgerTransaction)
                .where(t.LedgerTransaction.kind == "settlement")
            )
            == 1
        )
