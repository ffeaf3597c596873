"""The API process killed (SIGKILL, no shutdown) in the middle of a settlement storm, on SQLite
and PostgreSQL: after a restart the ledger is balanced, every settlement is whole — its lines,
its ledger transaction, the fund's and the payer's entries, the resident's accumulators, the
visit's fee lines — or absent, and retrying every request with its idempotency key settles each
visit exactly once."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import signal
import subprocess
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from sqlalchemy import func, insert, select

from healthcard.api.tokens import Tokens
from healthcard.platform.access import Actor, Role
from healthcard.platform.settlement import ledger
from healthcard.storage import tables as t
from healthcard.storage.db import Database

from .platform_fixtures import serving
from .settlement_fixtures import INSURER, NOW, TOWNSHIP, make_world

VISITS = 240  # one visit per resident, each settled once
KILL_AFTER = 60  # settled answers before the process is killed
LINES = [  # prices filled in from the catalog
    {"item": "YP0001", "quantity": 2},  # 阿莫西林 (A)
    {"item": "YP0002", "quantity": 1},  # 头孢克肟 (B)
    {"item": "FW0001", "quantity": 1},  # 诊查费 (A)
]


def _seed(db: Database) -> tuple[list[tuple[str, int]], dict[str, int]]:
    """VISITS insured residents, each with an OPEN outpatient visit at the township health
    centre (its cashier's 'in care' tie), every third with a funded health account."""
    world = make_world(db)
    residents = [f"R-KILL-{n:04d}" for n in range(VISITS)]
    with db.uow() as uow:
        uow.session.execute(
            insert(t.Resident),
            [
                {
                    "resident_id": rid,
                    "id_type": "01",
                    "id_number": f"41012219900101{n:04d}",
                    "name": f"居民{n}",
                    "sex": 1 + n % 2,
                    "birth_date": dt.date(1990, 1, 1),
                    "created_at": NOW,
                    "area_code": "410122",
                }
                for n, rid in enumerate(residents)
            ],
        )
        world.node.settlement.service.enrol_many(
            uow, residents, pool="demo", year=2026, premium_fen=40_000, actor=INSURER.id
        )
        uow.commit()
    visits = [(rid, world.visit(rid, TOWNSHIP)) for rid in residents]
    for rid in residents[::3]:
        world.open_health_account(rid, 100_000)
    catalog = world.node.settlement.service.catalog("demo", 2026)
    prices = {line["item"]: catalog.item(str(line["item"])).price_fen for line in LINES}
    return visits, prices


def _storm(
    base: str,
    token: str,
    visits: list[tuple[str, int]],
    prices: dict[str, int],
    kill: subprocess.Popen[bytes] | None,
) -> Counter[str]:
    """Settle every visit (16 at a time); with ``kill``, SIGKILL the server after KILL_AFTER
    settled answers.  Returns how the requests ended."""
    lines = [{**line, "unit_price_fen": prices[str(line["item"])]} for line in LINES]
    settled = threading.Semaphore(0)
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def one(visit: tuple[str, int]) -> None:
        rid, eid = visit
        body = {
            "resident_id": rid,
            "encounter_id": eid,
            "lines": lines,
            "paid_by": "account" if int(rid[-4:]) % 3 == 0 else "cash",
        }
        try:
            answer = httpx.post(
                base + "/v1/settlements",
                json=body,
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": f"kill-{eid}"},
                timeout=30,
            )
            outcome = str(answer.status_code)
            if answer.status_code in (200, 201):
                settled.release()
        except httpx.HTTPError:
            outcome = "connection"
        with lock:
            outcomes[outcome] += 1

    def killer() -> None:
        assert kill is not None
        for _ in range(KILL_AFTER):
            settled.acquire(timeout=60)
        os.killpg(kill.pid, signal.SIGKILL)

    reaper = threading.Thread(target=killer, daemon=True) if kill is not None else None
    if reaper:
        reaper.start()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, visits))
    if reaper:
        reaper.join(timeout=60)
    return outcomes


def _whole(db: Database, visits: list[tuple[str, int]]) -> int:
    """Every settlement is whole; returns how many there are."""
    with db.uow() as uow:
        s = uow.session
        check = ledger.verify(uow)
        assert check.balanced, check
        rows = s.scalars(select(t.Settlement).where(t.Settlement.kind == "settlement")).all()
        per_visit = Counter(r.encounter_id for r in rows)
        assert not [e for e, n in per_visit.items() if n > 1], "a visit settled twice"
        for row in rows:
            entries = dict(
                s.execute(
                    select(t.LedgerEntry.account, t.LedgerEntry.amount_fen).where(
                        t.LedgerEntry.txn_id == row.txn_id
                    )
                ).all()
            )
            payer = ledger.health(row.resident_id) if row.paid_by == "account" else ledger.POCKET
            expected = {
                ledger.fund("demo"): -row.fund_fen,
                ledger.receivable(TOWNSHIP): row.fund_fen,
                payer: -row.self_fen,
                ledger.cash(TOWNSHIP): row.self_fen,
            }
            assert entries == {k: v for k, v in expected.items() if v}, row.id
            lines = s.scalar(
                select(func.sum(t.SettlementLine.amount_fen)).where(t.SettlementLine.settlement_id == row.id)
            )
            assert lines == row.total_fen == row.fund_fen + row.self_fen
            fees = s.get(t.Encounter, row.encounter_id)
            assert fees is not None and sum(f["amount_fen"] for f in fees.fees) == row.total_fen
        settled = {r.encounter_id for r in rows}
        for rid, eid in visits:
            encounter = s.get(t.Encounter, eid)
            assert encounter is not None
            if eid not in settled:
                assert encounter.fees == [], f"visit {eid} carries fees without a settlement"
            accumulator = s.get(t.Accumulator, (rid, "demo", 2026))
            assert accumulator is not None
            paid = sum(r.fund_fen for r in rows if r.resident_id == rid)
            assert (accumulator.fund_paid_fen, accumulator.settlements) == (
                paid,
                sum(1 for r in rows if r.resident_id == rid),
            )
        return len(rows)


def test_killing_the_api_mid_storm_leaves_nothing_half_applied(database: Database, tmp_path: Path) -> None:
    visits, prices = _seed(database)
    secret = secrets.token_bytes(32)
    cashier = Actor(f"cashier-{TOWNSHIP}", Role.CASHIER, institution_code=TOWNSHIP)
    token = Tokens(secret).issue(cashier, dt.datetime.now(dt.UTC)).access_token

    with serving(database.url, secret, tmp_path, stop=signal.SIGKILL) as (base, proc):
        first = _storm(base, token, visits, prices, kill=proc)
        proc.wait(timeout=20)
    assert first["connection"] > 0, f"the kill came too late to cut the storm: {first}"
    before = _whole(database, visits)
    assert KILL_AFTER <= before < VISITS, first

    with serving(database.url, secret, tmp_path, stop=signal.SIGKILL) as (base, _):
        again = _storm(base, token, visits, prices, kill=None)
    # every visit settled now, the ones from before the kill answered with their first result
    assert again == Counter({"201": VISITS - before, "200": before}), again
    assert _whole(database, visits) == VISITS
