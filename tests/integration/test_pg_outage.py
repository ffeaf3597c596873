"""PostgreSQL stopped (a crash: ``pg_ctl stop -m immediate``) and started again under load, on a
private durable cluster (bench/privatepg.py; the machine's shared server is never touched), with
the API served by ``healthcard serve --workers 2``:

* while the database is down every request that needs it answers 503 ``unavailable`` — the API's
  JSON problem, the web's error page — and none hangs or answers 500;
* once it is back the same server process answers 200 again, nothing restarted;
* every settlement, booking and allergy the API acknowledged (2xx) is in the database exactly
  once, retries with the same idempotency key settle nothing twice, and the invariants hold
  (ledger sums to zero, slots agree with bookings, audit chains verify, no key stored twice).

The figures (requests during the outage, their answer times, time to the first 200 after the
restart) are printed and written as JSON to ``$HEALTHCARD_OUTAGE_FIGURES`` when set; they are not
asserted.  PostgreSQL only: the outage is the database server's.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, insert, select

from healthcard.api.tokens import Tokens
from healthcard.clock import SystemClock
from healthcard.keys.certificates import TrustStore
from healthcard.platform.access import Actor, Role
from healthcard.platform.invariants import check_database
from healthcard.platform.node import Node
from healthcard.storage import tables as t
from healthcard.storage.db import Database

from .appointment_fixtures import make_clinic, make_residents
from .platform_fixtures import PASSWORD, serving
from .settlement_fixtures import INSURER, NOW, TOWNSHIP, make_world

try:
    from bench.privatepg import BIN, PrivatePostgres
except ImportError:  # pytest run from elsewhere: the repository root is two folders up
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from bench.privatepg import BIN, PrivatePostgres

pytestmark = [pytest.mark.postgresql, pytest.mark.slow]

PEOPLE = 60  # per kind of work: settlements, bookings, allergies
ACKS_BEFORE = 30  # acknowledged writes before the crash
DOWN_FOR = 4.0  # seconds the database stays down
GUARD = 30.0  # no request may take longer (a hang guard, not a timing)
COUNTY = "410122001"  # the clinic whose sessions are booked
LINES = [{"item": "YP0001", "quantity": 2}, {"item": "FW0001", "quantity": 1}]


@dataclass
class Answer:
    kind: str
    started: float  # monotonic
    seconds: float
    status: int  # 0: no HTTP answer
    code: str | None  # the problem's code


@dataclass
class Load:
    """Work items per kind; each is retried (same key) until it gets a 2xx or a final refusal."""

    answers: list[Answer] = field(default_factory=list)
    acked: dict[str, dict[str, int]] = field(
        default_factory=lambda: {"settle": {}, "book": {}, "allergy": {}}
    )
    refused: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def acks(self) -> int:
        with self.lock:
            return sum(len(v) for v in self.acked.values())

    def worker(self, kind: str, items: list[tuple[str, Callable[[httpx.Client], httpx.Response]]]) -> None:
        todo = list(items)
        with httpx.Client(timeout=GUARD) as http:
            while todo and not self.stop.is_set():
                key, call = todo.pop(0)
                started = time.monotonic()
                try:
                    answer = call(http)
                    status, body = answer.status_code, answer.json()
                except httpx.HTTPError:
                    status, body = 0, {}
                seconds = time.monotonic() - started
                code = body.get("code") if isinstance(body, dict) else None
                with self.lock:
                    self.answers.append(Answer(kind, started, seconds, status, code))
                    if 200 <= status < 300:
                        self.acked[kind][key] = int(body["id"])
                    elif status == 409 and kind == "allergy":
                        # an earlier try committed but its answer was lost with the database: the
                        # allergy is there (checked afterwards); settlements and bookings carry
                        # an Idempotency-Key, so their retry is answered 200 with the first result
                        self.refused[kind] += 1
                    elif status == 503 or status == 0:
                        todo.append((key, call))
                    else:
                        self.refused[f"{kind} {status} {code}"] += 1
                if status == 503:
                    time.sleep(0.05)


def _seed(db: Database) -> tuple[list[tuple[str, int]], list[str], list[int], dict[str, int]]:
    world = make_world(db)
    payers = [f"R-OUT-{n:04d}" for n in range(PEOPLE)]
    with db.uow() as uow:
        uow.session.execute(
            insert(t.Resident),
            [
                {
                    "resident_id": rid,
                    "id_type": "01",
                    "id_number": f"41012219910101{n:04d}",
                    "name": f"居民{n}",
                    "sex": 1 + n % 2,
                    "birth_date": dt.date(1991, 1, 1),
                    "created_at": NOW,
                    "area_code": "410122",
                }
                for n, rid in enumerate(payers)
            ],
        )
        world.node.settlement.service.enrol_many(
            uow, payers, pool="demo", year=2026, premium_fen=40_000, actor=INSURER.id
        )
        uow.commit()
    visits = [(rid, world.visit(rid, TOWNSHIP)) for rid in payers]
    for rid in payers[::3]:
        world.open_health_account(rid, 100_000)
    # the server runs on the real clock: the clinic's sessions are opened from today
    node = Node(db, SystemClock(), token_secret=secrets.token_bytes(32), trust=TrustStore())
    clinic = make_clinic(node, COUNTY, slots=30, walk_in=0, referral=0, slot_minutes=5, days=6)
    sessions = [clinic.session(days, period) for days in range(1, 6) for period in ("morning", "afternoon")]
    bookers = make_residents(db, PEOPLE, "BOOK", node.clock)
    with db.uow() as uow:
        node.accounts.create(
            uow,
            username="web-user",
            name="居民",
            role=Role.RESIDENT,
            password=PASSWORD,
            resident_id=bookers[0],
        )
        uow.commit()
    catalog = world.node.settlement.service.catalog("demo", 2026)
    prices = {str(line["item"]): catalog.item(str(line["item"])).price_fen for line in LINES}
    return visits, bookers, sessions, prices


def _web_login(base: str) -> httpx.Client:
    web = httpx.Client(base_url=base, timeout=GUARD, follow_redirects=False)
    page = web.get("/portal/login").text
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None
    answer = web.post("/portal/login", data={"username": "web-user", "password": PASSWORD, "csrf": found[1]})
    assert answer.status_code in (302, 303), answer.text[:300]
    return web


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def test_a_database_crash_under_load_answers_503_and_loses_nothing_acknowledged(tmp_path: Path) -> None:
    if not (BIN / "initdb").exists():
        pytest.skip(f"no PostgreSQL 15 binaries in {BIN}")
    with PrivatePostgres(durable=True) as pg:
        url = pg.create_database("outage")
        db = Database(url)
        try:
            db.upgrade()
            visits, bookers, sessions, catalog_prices = _seed(db)
        finally:
            db.dispose()

        secret = secrets.token_bytes(32)
        now = dt.datetime.now(dt.UTC)
        tokens = Tokens(secret)
        cashier = tokens.issue(Actor(f"cashier-{TOWNSHIP}", Role.CASHIER, institution_code=TOWNSHIP), now)
        clinician = tokens.issue(Actor("doc-township", Role.CLINICIAN, institution_code=TOWNSHIP), now)
        lines = [{**line, "unit_price_fen": catalog_prices[str(line["item"])]} for line in LINES]

        def settle(rid: str, eid: int) -> Callable[[httpx.Client], httpx.Response]:
            body = {"resident_id": rid, "encounter_id": eid, "lines": lines, "paid_by": "cash"}
            headers = {"Authorization": f"Bearer {cashier.access_token}", "Idempotency-Key": f"out-{eid}"}
            return lambda http: http.post(base + "/v1/settlements", json=body, headers=headers)

        def book(rid: str, session_id: int) -> Callable[[httpx.Client], httpx.Response]:
            token = tokens.issue(Actor(rid, Role.RESIDENT, resident_id=rid), now).access_token
            body = {"session_id": session_id, "channel": "portal"}
            headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": f"out-book-{rid}"}
            return lambda http: http.post(base + "/v1/appointments/bookings", json=body, headers=headers)

        def allergy(rid: str) -> Callable[[httpx.Client], httpx.Response]:
            body = {"allergen": "青霉素", "reaction": "皮疹", "severity": "mild"}
            headers = {"Authorization": f"Bearer {clinician.access_token}"}
            return lambda http: http.post(f"{base}/v1/residents/{rid}/allergies", json=body, headers=headers)

        with serving(db.url, secret, tmp_path) as (base, server):
            web = _web_login(base)
            assert web.get("/portal").status_code == 200
            load = Load()
            work = {
                "settle": [(f"out-{eid}", settle(rid, eid)) for rid, eid in visits],
                "book": [(rid, book(rid, sessions[n % len(sessions)])) for n, rid in enumerate(bookers)],
                "allergy": [(rid, allergy(rid)) for rid, _ in visits],
            }
            threads = [
                threading.Thread(target=load.worker, args=(kind, items[half::2]), daemon=True)
                for kind, items in work.items()
                for half in (0, 1)
            ]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 60
            while load.acks() < ACKS_BEFORE and time.monotonic() < deadline:
                time.sleep(0.02)
            assert load.acks() >= ACKS_BEFORE, f"no load: {load.refused}"

            pg.stop("immediate")
            down = time.monotonic()
            # the web while the database is down: a logged-in page and a login, both error pages
            login = httpx.Client(base_url=base, timeout=GUARD)
            form = re.search(r'name="csrf" value="([^"]+)"', login.get("/portal/login").text)
            assert form is not None
            fields = {"username": "web-user", "password": PASSWORD, "csrf": form[1]}
            pages = [web.get("/portal"), login.post("/portal/login", data=fields)]
            login.close()
            probe = httpx.get(
                f"{base}/v1/appointments/sessions/{sessions[0]}/slots",
                headers=_bearer(clinician),
                timeout=GUARD,
            )
            time.sleep(max(0.0, DOWN_FOR - (time.monotonic() - down)))
            restarting = time.monotonic()
            pg.start()
            up = time.monotonic()
            first_200 = None
            while first_200 is None and time.monotonic() < up + GUARD:
                answer = httpx.get(
                    f"{base}/v1/appointments/sessions/{sessions[0]}/slots",
                    headers=_bearer(clinician),
                    timeout=GUARD,
                )
                if answer.status_code == 200:
                    first_200 = time.monotonic() - up
                else:
                    time.sleep(0.05)
            for thread in threads:
                thread.join(timeout=90)
            load.stop.set()
            assert not any(thread.is_alive() for thread in threads), "a worker hung"
            page_after = web.get("/portal")
            web.close()
            assert server.poll() is None, "the server died"

        outage = [a for a in load.answers if down <= a.started < up]
        statuses = Counter(a.status for a in load.answers)
        figures = {
            "requests": len(load.answers),
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "acknowledged_before_crash": ACKS_BEFORE,
            "down_seconds": round(up - down, 2),
            "pg_start_seconds": round(up - restarting, 2),
            "requests_during_outage": len(outage),
            "outage_answer_p50_ms": round(1000 * statistics.median([a.seconds for a in outage]), 1)
            if outage
            else None,
            "outage_answer_max_ms": round(1000 * max(a.seconds for a in outage), 1) if outage else None,
            "first_200_after_restart_s": None if first_200 is None else round(first_200, 2),
            "acknowledged": {k: len(v) for k, v in load.acked.items()},
            "refused": dict(load.refused),
        }
        print("pg outage figures:", json.dumps(figures))
        if os.environ.get("HEALTHCARD_OUTAGE_FIGURES"):
            Path(os.environ["HEALTHCARD_OUTAGE_FIGURES"]).write_text(json.dumps(figures, indent=2) + "\n")

        # during the outage: 503 unavailable, never a 500 or a hang
        assert outage, "no request fell into the outage"
        assert {(a.status, a.code) for a in outage} <= {(503, "unavailable"), (201, None), (200, None)}, (
            figures
        )
        assert 500 not in statuses and 0 not in statuses, figures
        assert probe.status_code == 503 and probe.json()["code"] == "unavailable", probe.text
        for page in pages:
            assert page.status_code == 503 and "text/html" in page.headers["content-type"], page.text[:300]
        # back without a restart of the server
        assert first_200 is not None, figures
        assert page_after.status_code == 200
        # every item done: acknowledged (a settlement's or booking's retry with its key: 200, the
        # first result), or an allergy refused as already there (its answer lost in the crash)
        assert len(load.acked["settle"]) == PEOPLE, figures
        assert len(load.acked["book"]) == PEOPLE, figures
        assert len(load.acked["allergy"]) + load.refused["allergy"] == PEOPLE, figures
        assert set(load.refused) <= {"allergy"}, figures

        db = Database(url)
        try:
            _every_acknowledged_write_once(db, load, visits, bookers)
            report = check_database(db)
            assert report.ok, report.to_dict()
        finally:
            db.dispose()


def _bearer(token: object) -> dict[str, str]:
    return {"Authorization": f"Bearer {token.access_token}"}  # type: ignore[attr-defined]


def _every_acknowledged_write_once(
    db: Database, load: Load, visits: list[tuple[str, int]], bookers: list[str]
) -> None:
    with db.uow() as uow:
        s = uow.session
        settled = Counter(
            s.scalars(select(t.Settlement.encounter_id).where(t.Settlement.kind == "settlement"))
        )
        assert all(n == 1 for n in settled.values()), "a visit settled twice"
        assert set(settled) == {eid for _, eid in visits}
        for key, sid in load.acked["settle"].items():
            row = s.get(t.Settlement, sid)
            assert row is not None and row.idempotency_key == key, (key, sid)
        live = Counter(s.scalars(select(t.Booking.resident_id).where(t.Booking.status.in_(t.LIVE_BOOKING))))
        assert live == Counter(bookers), "a booking lost or made twice"
        for rid, bid in load.acked["book"].items():
            booked = s.get(t.Booking, bid)
            assert booked is not None and booked.resident_id == rid and booked.status == "BOOKED", (rid, bid)
        allergies = Counter(s.scalars(select(t.Allergy.resident_id)))
        assert allergies == Counter(rid for rid, _ in visits), "an allergy lost or recorded twice"
        for rid, aid in load.acked["allergy"].items():
            recorded = s.get(t.Allergy, aid)
            assert recorded is not None and recorded.resident_id == rid, (rid, aid)
        assert s.scalar(select(func.count()).select_from(t.AuditEntry)), "nothing audited"
