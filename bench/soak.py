"""The soak (``make soak``): a mixed workload for minutes against ``healthcard serve --workers 2`` on
a private PostgreSQL holding a city, with the database stopped and started in the middle.

* **The city**: :class:`bench.platform.Population` COPYs N residents with realistic records into
  a :class:`bench.privatepg.PrivatePostgres` cluster of the run's own (``durable=True``: a crash
  keeps what was committed; the machine's shared PostgreSQL is never touched);
  :func:`bench.settlement.seed` adds insured residents with an open visit each at a township
  centre (the cashier's work), :func:`bench.booking.booking_world` a hospital whose doctors have
  sessions tomorrow (the bookings'), :func:`bench.web.make_accounts` portal accounts.
* **The driver** (an equivalent of locust): ``--clients`` threads, each with its own HTTP
  connection (httpx), pick operations by weight — a terminal's swipe (``POST /v1/swipes``), a
  portal page with a logged-in session (``GET /portal…``), an offline visit's upload with its
  diagnosis (``POST /v1/encounters/uploads``, an ``upload_key`` each), a resident's booking
  (``POST /v1/appointments/bookings`` with an ``Idempotency-Key``) and some of them cancelled, a cashier's quote and settlement
  (``/v1/settlements/pre-settlement`` then ``/v1/settlements`` with an ``Idempotency-Key``),
  and now and then a replay of a settlement or upload already acknowledged (must answer 200
  with the first result).  Every acknowledged (2xx) write is logged with its key or id; a write
  whose answer was lost (5xx, a dropped connection) is retried later with the same key, as a
  real client would.
* **Memory**: each worker's ``VmRSS`` (``/proc/<pid>/status``) every 10 s.
* **The outage**: at ``--outage-at`` of the run PostgreSQL is stopped (``immediate``: a crash),
  held ``--outage-seconds``, started again; the server is not touched.  The answers while it is
  down (503 ``unavailable`` expected; a 500 or a dropped connection is a failure), their latency,
  and the time from PostgreSQL back to the first 2xx.
* **After**: the database's growth (``pg_database_size`` and the biggest tables) per 1,000
  visits, the audit log's growth, ``healthcard audit archive`` with a boundary inside the soak's
  entries then ``healthcard audit verify --archives`` (the chain across the boundary),
  ``healthcard platform invariants`` (ledger sums zero, slot counts, audit chain, no duplicates)
  and every acknowledged write looked up in the database: present exactly once.

Run ``.venv/bin/python -m bench.soak [--minutes 10] [--residents 1000000] [--write
docs/reliability.md]``; it prints a JSON summary and, with ``--write``, replaces the page's
"## Soak" section.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import random
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.booking import ADMIN, HOSPITAL, add_doctor_tomorrow, booking_world
from bench.common import made_by
from bench.platform import (
    DIAGNOSES,
    SECRET,
    VENV_BIN,
    WORKERS,
    Population,
    card_number,
    chip_serial,
    grow_postgres,
    psycopg_url,
    resident_id,
    server,
    terminal_token,
)
from bench.privatepg import PrivatePostgres
from bench.settlement import _processes, cashier_token, server_group
from bench.settlement import seed as seed_settlements
from bench.web import PAGES, log_in, make_accounts

HEADING = "## Soak"
SAMPLE_S = 10.0  # RSS sampling period
TIMEOUT_S = 15.0  # an HTTP answer later than this is a failure (the client gives up)
RETRY_AFTER_S = 1.0
BACKOFF_S = 0.25  # a client's pause after a 5xx or no answer  # a write whose answer was lost is retried this long after, with its key
SLOTS = 200  # public slots per booking session
CANCEL_SHARE = 0.3  # bookings the client cancels later
RSS_GROWTH_LIMIT = 0.10  # worker RSS from after the warm-up to the end: "no growth" below this
SEED = 2026
#: the operations of the mix and their weights (a settlement is a quote then the settlement)
MIX: dict[str, int] = {
    "swipe": 30,
    "portal": 25,
    "upload": 12,
    "book": 10,
    "cancel": 4,
    "settle": 15,
    "replay": 4,
}
#: the requests each operation makes (the report's rows)
REQUESTS = ("swipe", "portal", "upload", "book", "cancel", "quote", "settle", "replay")
EXPECTED = {"book": {409}, "cancel": set()}  # 4xx answers that are an outcome, not an error


# --- the world ------------------------------------------------------------------------------------
@dataclass
class World:
    url: str
    population: Population
    visits: list[tuple[str, int]]  # (resident, open visit) pairs for the cashier
    lines: list[dict[str, Any]]  # the bill of every settlement
    sessions: list[int]  # booking sessions (tomorrow)
    usernames: list[str]  # portal accounts
    seed_seconds: dict[str, float] = field(default_factory=dict)


def booking_sessions(url: str, count: int, slots: int) -> list[int]:
    """``count`` sessions of ``slots`` public slots tomorrow at the bench's hospital: the first
    made by :func:`bench.booking.booking_world`, the others as more doctors with its node."""
    from sqlalchemy import select

    from healthcard.clock import local_date
    from healthcard.storage import tables as t

    world = booking_world(url, 1, slots)
    node = world.node
    try:
        tomorrow = local_date(node.clock) + dt.timedelta(days=1)
        doctors = []
        for n in range(count - 1):
            doctors.append(
                add_doctor_tomorrow(node, tomorrow, name=f"医生S{n:03d}", title="主治医师", slots=slots)
            )
        if doctors:
            node.appointments.open_sessions(ADMIN, HOSPITAL, tomorrow, tomorrow)
        with node.db.uow() as uow:
            found = uow.session.scalars(
                select(t.ClinicSession.id).where(t.ClinicSession.doctor_id.in_(doctors))
            ).all()
        return [world.session_id, *(int(s) for s in found)]
    finally:
        world.close()


def prepare(url: str, residents: int, *, visits: int, sessions: int, accounts: int) -> World:
    """The city and what the workload needs, on the empty database ``url``."""
    from healthcard.storage.db import Database

    seconds: dict[str, float] = {}
    start = time.perf_counter()
    db = Database(url)
    db.upgrade()
    db.dispose()
    population = Population(dt.datetime.now(dt.UTC))
    grow_postgres(url, population, residents)
    seconds["residents"] = time.perf_counter() - start
    start = time.perf_counter()
    cashier = seed_settlements(url, visits, "S")
    seconds["settlement visits"] = time.perf_counter() - start
    start = time.perf_counter()
    session_ids = booking_sessions(url, sessions, SLOTS)
    seconds["booking sessions"] = time.perf_counter() - start
    start = time.perf_counter()
    usernames = make_accounts(url, population, accounts, set())
    seconds["portal accounts"] = time.perf_counter() - start
    return World(
        url, population, cashier.visits, json.loads(cashier.lines_json), session_ids, usernames, seconds
    )


# --- the server's processes -----------------------------------------------------------------------
def workers_of(master: int) -> list[int]:
    """The worker processes of the ``healthcard serve`` whose master is ``master`` (uvicorn's
    supervisor spawns them with :mod:`multiprocessing`; its resource tracker is no worker)."""
    children = []
    for pid, _, _, _ in _processes():
        with contextlib.suppress(OSError, StopIteration):
            status = Path(f"/proc/{pid}/status").read_text()
            ppid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
            if ppid == master and b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                children.append(pid)
    return sorted(children)


def rss_kib(pid: int) -> int | None:
    with contextlib.suppress(OSError, StopIteration):
        status = Path(f"/proc/{pid}/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
    return None


# --- the driver -----------------------------------------------------------------------------------
#: (start s since the drive began, seconds, request, HTTP status or 0 for no answer, problem code)
Sample = tuple[float, float, str, int, str]


@dataclass
class Acks:
    """What one client was told was done: the writes it can count on."""

    settlements: dict[str, tuple[int, int]] = field(default_factory=dict)  # key -> (settlement, visit)
    uploads: dict[str, int] = field(default_factory=dict)  # upload key -> encounter
    bookings: dict[int, tuple[str, int]] = field(default_factory=dict)  # booking -> (resident, session)
    cancelled: set[int] = field(default_factory=set)
    unknown_bookings: list[tuple[str, int]] = field(default_factory=list)  # never answered: done or not
    booking_retries_answered: int = 0  # bookings sent again with their key after no answer / a 5xx
    bookings_found_by_key: int = 0  # of the answers: 200, an earlier try had booked (its answer lost)
    replays: int = 0
    replay_mismatches: list[str] = field(default_factory=list)


class Credentials:
    """The tokens the clients send, minted from the server's secret and renewed before they
    expire (a staff token lives 15 minutes, a terminal's 60)."""

    def __init__(self) -> None:
        from healthcard.api.tokens import Tokens

        self._tokens = Tokens(bytes.fromhex(SECRET))
        self._lock = threading.Lock()
        self._renew()

    def _renew(self) -> None:
        self.made = time.monotonic()
        self.terminal = terminal_token(dt.datetime.now(dt.UTC))
        self.cashier = cashier_token()

    def fresh(self) -> None:
        if time.monotonic() - self.made > 600:
            with self._lock:
                if time.monotonic() - self.made > 600:
                    self._renew()

    def resident(self, rid: str) -> str:
        from healthcard.platform.access import Actor, Role

        actor = Actor(rid, Role.RESIDENT, resident_id=rid)
        return self._tokens.issue(actor, dt.datetime.now(dt.UTC)).access_token


class Shared:
    """What the clients share: the world, the tokens, the portal's cookies, the cashier's queue."""

    def __init__(self, base: str, world: World, cookies: list[str]) -> None:
        self.base = base
        self.world = world
        self.cookies = cookies
        self.credentials = Credentials()
        self.resident_of = {eid: rid for rid, eid in world.visits}
        self._next_visit = 0
        self._lock = threading.Lock()

    def next_visit(self) -> tuple[str, int] | None:
        with self._lock:
            if self._next_visit >= len(self.world.visits):
                return None
            visit = self.world.visits[self._next_visit]
            self._next_visit += 1
            return visit

    @property
    def visits_used(self) -> int:
        return self._next_visit


class Client(threading.Thread):
    """One simulated user at a time (terminal, resident, cashier by turns), closed loop."""

    def __init__(self, number: int, shared: Shared, stop: threading.Event, origin: float) -> None:
        super().__init__(name=f"soak-client-{number}", daemon=True)
        self.number = number
        self.shared = shared
        self.stop = stop
        self.origin = origin
        self.rng = random.Random(SEED * 1000 + number)
        self.samples: list[Sample] = []
        self.acks = Acks()
        self.pending: list[tuple[float, str, Any]] = []  # (due, kind, what): writes to retry
        self.to_cancel: list[tuple[int, str]] = []  # (booking, resident)
        self.counter = 0
        self.uploaded: dict[str, dict[str, Any]] = {}
        self.http = httpx.Client(base_url=shared.base, timeout=TIMEOUT_S)
        self.failure: str | None = None

    # -- one request -------------------------------------------------------------------------------
    def call(self, request: str, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        start = time.monotonic()
        try:
            answer = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            self.samples.append(
                (start - self.origin, time.monotonic() - start, request, 0, type(exc).__name__)
            )
            self.stop.wait(BACKOFF_S)
            return None
        code = ""
        if answer.status_code >= 400:
            if answer.headers.get("content-type", "").startswith("text/html"):
                code = "(HTML page)"
            with contextlib.suppress(ValueError, AttributeError):
                code = str(answer.json().get("code", ""))
        self.samples.append(
            (start - self.origin, time.monotonic() - start, request, answer.status_code, code)
        )
        if answer.status_code >= 500:
            self.stop.wait(BACKOFF_S)  # a client backs off after a 5xx
        return answer

    def bearer(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    # -- the operations ----------------------------------------------------------------------------
    def swipe(self) -> None:
        i = self.rng.randrange(self.shared.world.population.size)
        self.call(
            "swipe",
            "POST",
            "/v1/swipes",
            json={"card_number": card_number(i), "chip_serial": chip_serial(i), "stage": "consultation"},
            headers=self.bearer(self.shared.credentials.terminal),
        )

    def portal(self) -> None:
        k = self.rng.randrange(len(self.shared.cookies))
        answer = self.call(
            "portal", "GET", self.rng.choice(PAGES), headers={"Cookie": self.shared.cookies[k]}
        )
        if answer is not None and answer.status_code in (302, 303, 401):  # the session expired
            with contextlib.suppress(Exception):
                self.shared.cookies[k] = log_in(self.shared.base, self.shared.world.usernames[k])

    def upload_body(self, key: str) -> dict[str, Any]:
        i = self.rng.randrange(self.shared.world.population.size)
        code, name = self.rng.choice(DIAGNOSES)
        now = dt.datetime.now(dt.UTC)
        return {
            "upload_key": key,
            "card_number": card_number(i),
            "chip_serial": chip_serial(i),
            "department": "全科",
            "started_at": (now - dt.timedelta(minutes=40)).isoformat(),
            "ended_at": (now - dt.timedelta(minutes=25)).isoformat(),
            "diagnoses": [{"code": code, "name": name, "primary": True}],
            "fees": [{"category": "诊察费", "code": "1", "amount_fen": 1000}],
            "payment_method": "03",
        }

    def upload(self, body: dict[str, Any] | None = None, request: str = "upload") -> None:
        if body is None:
            self.counter += 1
            body = self.upload_body(
                f"soak-{self.number:03d}-{self.counter:08d}-{self.rng.getrandbits(24):06x}"
            )
        answer = self.call(
            request,
            "POST",
            "/v1/encounters/uploads",
            json=body,
            headers=self.bearer(self.shared.credentials.terminal),
        )
        if answer is not None and answer.status_code in (200, 201):
            self.acks.uploads[body["upload_key"]] = int(answer.json()["encounter_id"])
            self.uploaded[body["upload_key"]] = body  # a replay sends the same request
        elif answer is None or answer.status_code >= 500:
            self.pending.append((time.monotonic() + RETRY_AFTER_S, "upload", body))

    def book(self, retry: tuple[str, int, str] | None = None) -> None:
        """A resident books (``retry``: the same booking again, its answer lost — same key)."""
        if retry is None:
            self.counter += 1
            rid = resident_id(self.rng.randrange(self.shared.world.population.size))
            session = self.rng.choice(self.shared.world.sessions)
            key = f"soak-b-{self.number:03d}-{self.counter:08d}-{self.rng.getrandbits(24):06x}"
        else:
            rid, session, key = retry
        answer = self.call(
            "book",
            "POST",
            "/v1/appointments/bookings",
            json={"session_id": session},
            headers={**self.bearer(self.shared.credentials.resident(rid)), "Idempotency-Key": key},
        )
        if answer is not None and answer.status_code in (200, 201):
            booking = int(answer.json()["id"])
            self.acks.bookings[booking] = (rid, session)
            if retry is not None:
                self.acks.booking_retries_answered += 1
            if answer.status_code == 200:  # the lost answer's booking, found by its key
                self.acks.bookings_found_by_key += 1
            if self.rng.random() < CANCEL_SHARE:
                self.to_cancel.append((booking, rid))
        elif answer is None or answer.status_code >= 500:
            self.pending.append((time.monotonic() + RETRY_AFTER_S, "book", (rid, session, key)))

    def cancel(self, booking: int | None = None, rid: str = "", retry: bool = False) -> None:
        if booking is None:
            if not self.to_cancel:
                self.book()
                return
            booking, rid = self.to_cancel.pop(self.rng.randrange(len(self.to_cancel)))
        answer = self.call(
            "cancel",
            "POST",
            f"/v1/appointments/bookings/{booking}/cancel",
            headers=self.bearer(self.shared.credentials.resident(rid)),
        )
        if answer is not None and (answer.status_code == 200 or (retry and answer.status_code == 409)):
            self.acks.cancelled.add(booking)  # a retry's 409: the lost answer's cancellation was made
        elif answer is None or answer.status_code >= 500:
            self.pending.append((time.monotonic() + RETRY_AFTER_S, "cancel", (booking, rid)))

    def bill(self, rid: str, eid: int) -> dict[str, Any]:
        return {"resident_id": rid, "encounter_id": eid, "paid_by": "cash", "lines": self.shared.world.lines}

    def settle(
        self, visit: tuple[str, int] | None = None, quote: bool = True, request: str = "settle"
    ) -> None:
        if visit is None:
            visit = self.shared.next_visit()
            if visit is None:  # the cashier's queue is empty: a swipe instead
                self.swipe()
                return
        rid, eid = visit
        cashier = self.bearer(self.shared.credentials.cashier)
        if quote:
            self.call(
                "quote", "POST", "/v1/settlements/pre-settlement", json=self.bill(rid, eid), headers=cashier
            )
        key = f"soak-{eid}"
        answer = self.call(
            request,
            "POST",
            "/v1/settlements",
            json=self.bill(rid, eid),
            headers={**cashier, "Idempotency-Key": key},
        )
        if answer is not None and answer.status_code in (200, 201):
            self.acks.settlements[key] = (int(answer.json()["id"]), eid)
        elif answer is None or answer.status_code >= 500:
            self.pending.append((time.monotonic() + RETRY_AFTER_S, "settle", visit))

    def replay(self) -> None:
        """A settlement or an upload acknowledged before, sent again: 200 and the first result."""
        if self.acks.settlements and (self.rng.random() < 0.5 or not self.acks.uploads):
            key = self.rng.choice(list(self.acks.settlements))
            first, eid = self.acks.settlements[key]
            answer = self.call(
                "replay",
                "POST",
                "/v1/settlements",
                json=self.bill(self.shared.resident_of[eid], eid),
                headers={**self.bearer(self.shared.credentials.cashier), "Idempotency-Key": key},
            )
            self._check_replay(answer, "id", first, f"settlement {key}")
        elif self.acks.uploads:
            key = self.rng.choice(list(self.acks.uploads))
            first = self.acks.uploads[key]
            body = self.uploaded[key]
            answer = self.call(
                "replay",
                "POST",
                "/v1/encounters/uploads",
                json=body,
                headers=self.bearer(self.shared.credentials.terminal),
            )
            self._check_replay(answer, "encounter_id", first, f"upload {key}")
        else:
            self.swipe()

    def _check_replay(self, answer: httpx.Response | None, name: str, first: int, what: str) -> None:
        if answer is None or answer.status_code >= 500:
            return  # no answer (the outage): nothing learnt
        self.acks.replays += 1
        if answer.status_code != 200 or int(answer.json().get(name, -1)) != first:
            self.acks.replay_mismatches.append(f"{what}: {answer.status_code} {answer.text[:120]}")

    # -- the loop ----------------------------------------------------------------------------------
    def retry_due(self, final: bool = False) -> bool:
        now = time.monotonic()
        for k, (due, kind, what) in enumerate(self.pending):
            if final or due <= now:
                del self.pending[k]
                if kind == "upload":
                    self.upload(what)
                elif kind == "settle":
                    self.settle(what, quote=False)
                elif kind == "book":
                    self.book(what)
                else:
                    booking, rid = what
                    self.cancel(booking, rid, retry=True)
                return True
        return False

    def step(self) -> None:
        self.shared.credentials.fresh()
        if self.retry_due():
            return
        operation = self.rng.choices(list(MIX), weights=list(MIX.values()))[0]
        getattr(self, operation)()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.step()
        except Exception as exc:  # a bug of the driver: reported, not hidden
            self.failure = f"{type(exc).__name__}: {exc}"

    def finish(self) -> None:
        """After the drive: the writes still unanswered are sent again until they are answered."""
        for _ in range(10 * len(self.pending) + 10):
            if not self.pending:
                break
            if not self.retry_due(final=True):
                time.sleep(RETRY_AFTER_S)
        for _, kind, what in self.pending:  # never answered, even after the outage
            if kind == "book":
                self.acks.unknown_bookings.append(what[:2])
        self.http.close()


# --- the run --------------------------------------------------------------------------------------
@dataclass
class Config:
    minutes: float = 10.0
    residents: int = 1_000_000
    clients: int = 16
    outage_at: float = 0.6  # of the run
    outage_seconds: float = 20.0  # 0: no outage
    accounts: int = 64
    visits: int | None = None  # settlement visits (default: enough for the run)
    sessions: int | None = None  # booking sessions of SLOTS slots (default: enough for the run)

    @property
    def seconds(self) -> float:
        return self.minutes * 60


@dataclass
class Outage:
    down_at: float  # s since the drive began
    up_at: float
    stop_seconds: float  # pg_ctl stop -m immediate
    start_seconds: float  # pg_ctl start, crash recovery included, until it takes connections
    statuses: dict[str, int]  # answers of the requests overlapping the outage, by status (and code)
    p50_ms: float
    max_ms: float
    first_2xx_s: float | None  # from PostgreSQL back to the first 2xx answer
    failures_after_s: float | None  # from PostgreSQL back to the last non-2xx (expected) answer
    bad: int  # answers overlapping the outage that are not a 503 (500s, dropped connections, …)


@dataclass
class OpStats:
    request: str
    count: int
    rps: float
    p50_ms: float
    p99_ms: float
    ok: int
    outcomes: int  # 4xx that are an outcome (a booking refused: no slot, already booked)
    errors: int  # outside the outage
    by_status: dict[str, int]


@dataclass
class SoakRun:
    config: Config
    command: str
    load: list[float] = field(default_factory=list)
    seed_seconds: dict[str, float] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)  # s since the start, at the end of each
    drive_seconds: float = 0.0
    ops: list[OpStats] = field(default_factory=list)
    total_rps: float = 0.0
    outage: Outage | None = None
    rss: dict[str, list[tuple[float, int]]] = field(default_factory=dict)  # worker -> (t, KiB)
    workers: list[int] = field(default_factory=list)  # the worker pids at the start
    workers_restarted: bool = False
    worker_changes: list[str] = field(default_factory=list)
    db_before: int = 0
    db_after: int = 0
    tables: list[tuple[str, int, int]] = field(default_factory=list)  # (table, before, after) bytes
    visits: int = 0  # swipes + uploads acknowledged: card uses at a clinic
    writes: dict[str, int] = field(default_factory=dict)  # acknowledged, by kind
    audit_before: int = 0
    audit_after: int = 0
    audit_bytes: tuple[int, int] = (0, 0)  # audit_log's total size before / after the soak
    archive: dict[str, Any] = field(default_factory=dict)
    invariants: dict[str, Any] = field(default_factory=dict)
    acks: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)  # tracebacks in the server's log

    @property
    def ok(self) -> bool:
        return not self.problems


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1 if q > 0 else 0)]


def op_stats(samples: Sequence[Sample], seconds: float, window: tuple[float, float] | None) -> list[OpStats]:
    def in_outage(s: Sample) -> bool:
        return window is not None and s[0] <= window[1] and s[0] + s[1] >= window[0]

    out = []
    for request in REQUESTS:
        mine = [s for s in samples if s[2] == request]
        if not mine:
            continue
        expected = EXPECTED.get(request, set())
        answered = [s[1] * 1000 for s in mine if 0 < s[3] < 500 and not in_outage(s)]
        by_status = Counter(f"{s[3] or 'no answer'}{' ' + s[4] if s[4] else ''}" for s in mine)
        out.append(
            OpStats(
                request,
                len(mine),
                len(mine) / seconds,
                percentile(answered, 0.50),
                percentile(answered, 0.99),
                sum(1 for s in mine if 200 <= s[3] < 300),
                sum(1 for s in mine if s[3] in expected),
                sum(1 for s in mine if not (200 <= s[3] < 300 or s[3] in expected) and not in_outage(s)),
                dict(by_status.most_common()),
            )
        )
    return out


def outage_stats(samples: Sequence[Sample], down: float, up: float, stop_s: float, start_s: float) -> Outage:
    during = [s for s in samples if s[0] <= up and s[0] + s[1] >= down]
    after = sorted((s for s in samples if s[0] >= up), key=lambda s: s[0] + s[1])
    first = next((s[0] + s[1] - up for s in after if 200 <= s[3] < 300), None)
    last_bad = max((s[0] + s[1] - up for s in after if s[3] == 0 or s[3] >= 500), default=None)
    statuses = Counter(f"{s[3] or 'no answer'}{' ' + s[4] if s[4] else ''}" for s in during)
    latencies = [s[1] * 1000 for s in during]
    bad = sum(1 for s in during if s[3] == 0 or (s[3] >= 500 and s[3] != 503))
    return Outage(
        down,
        up,
        stop_s,
        start_s,
        dict(statuses.most_common()),
        percentile(latencies, 0.5),
        max(latencies, default=float("nan")),
        first,
        last_bad,
        bad,
    )


def sizes(libpq: str) -> tuple[int, dict[str, int], int, int]:
    """(database bytes, total bytes per table, audit_log rows, audit_log total bytes)."""
    import psycopg

    with psycopg.connect(libpq, autocommit=True) as conn:
        db = int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])  # type: ignore[index]
        tables = {
            str(name): int(size)
            for name, size in conn.execute(
                "SELECT relname, pg_total_relation_size(oid) FROM pg_class "
                "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
            ).fetchall()
        }
        audit = int(conn.execute("SELECT count(*) FROM audit_log").fetchone()[0])  # type: ignore[index]
    return db, tables, audit, tables.get("audit_log", 0)


def cli(*args: str, env: dict[str, str], timeout: float = 1800) -> tuple[int, str]:
    """Run ``healthcard …``: (exit code, its output's last lines)."""
    try:
        done = subprocess.run(
            [str(VENV_BIN / "healthcard"), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {timeout:.0f} s"
    out = (done.stdout + done.stderr).strip().splitlines()
    return done.returncode, "\n".join(out[-8:])


def check_acks(libpq: str, acks: Sequence[Acks]) -> dict[str, Any]:
    """Every acknowledged write looked up: present exactly once, as acknowledged."""
    import psycopg

    settlements = {k: v for a in acks for k, v in a.settlements.items()}
    uploads = {k: v for a in acks for k, v in a.uploads.items()}
    bookings = {k: v for a in acks for k, v in a.bookings.items()}
    cancelled = {b for a in acks for b in a.cancelled}
    unknown = [b for a in acks for b in a.unknown_bookings]
    problems: list[str] = []
    with psycopg.connect(libpq) as conn:
        rows = conn.execute(
            "SELECT idempotency_key, count(*), min(id), min(encounter_id) FROM settlements "
            "WHERE idempotency_key = ANY(%s) GROUP BY idempotency_key",
            [list(settlements)],
        ).fetchall()
        found = {str(k): (int(n), int(i), int(e)) for k, n, i, e in rows}
        for key, (sid, eid) in settlements.items():
            got = found.get(key)
            if got is None or got != (1, sid, eid):
                problems.append(f"settlement {key}: acknowledged as {sid} (visit {eid}), database has {got}")
        rows = conn.execute(
            "SELECT upload_key, count(*), min(id) FROM encounters WHERE upload_key = ANY(%s) GROUP BY upload_key",
            [list(uploads)],
        ).fetchall()
        found_uploads = {str(k): (int(n), int(i)) for k, n, i in rows}
        for key, eid in uploads.items():
            if found_uploads.get(key) != (1, eid):
                problems.append(f"upload {key}: acknowledged as {eid}, database has {found_uploads.get(key)}")
        rows = conn.execute(
            "SELECT id, resident_id, session_id, status FROM bookings WHERE id = ANY(%s)", [list(bookings)]
        ).fetchall()
        found_bookings = {int(i): (str(r), int(s), str(st)) for i, r, s, st in rows}
        for booking, (rid, session) in bookings.items():
            got_booking = found_bookings.get(booking)
            want = "CANCELLED" if booking in cancelled else "BOOKED"
            if got_booking is None or got_booking != (rid, session, want):
                problems.append(
                    f"booking {booking}: acknowledged ({rid}, {session}, {want}), database has {got_booking}"
                )
        committed_unknown = 0
        if unknown:
            committed_unknown = int(
                conn.execute(  # type: ignore[index]
                    "SELECT count(*) FROM bookings b JOIN unnest(%s::text[], %s::bigint[]) AS u(rid, sid) "
                    "ON b.resident_id = u.rid AND b.session_id = u.sid",
                    [[r for r, _ in unknown], [s for _, s in unknown]],
                ).fetchone()[0]
            )
    return {
        "settlements": len(settlements),
        "uploads": len(uploads),
        "bookings": len(bookings),
        "cancellations": len(cancelled),
        "bookings retried with their key": sum(a.booking_retries_answered for a in acks),
        "of which an earlier try had booked": sum(a.bookings_found_by_key for a in acks),
        "bookings without an answer": len(unknown),
        "of which committed": committed_unknown,
        "replays": sum(a.replays for a in acks),
        "replay mismatches": [m for a in acks for m in a.replay_mismatches][:10],
        "problems": problems[:20],
        "problem count": len(problems),
    }


def own_invariants(url: str, libpq: str) -> dict[str, Any]:
    """The checks ``healthcard platform invariants`` makes, done here when it is not installed:
    the ledger balanced, no visit settled twice, no session over-booked."""
    import psycopg

    from bench.settlement import check

    settled, balanced, total, twice = check(url)
    with psycopg.connect(libpq) as conn:
        over = int(
            conn.execute(  # type: ignore[index]
                "SELECT count(*) FROM (SELECT b.slot_id FROM bookings b WHERE b.status IN ('BOOKED', 'CHECKED_IN') "
                "GROUP BY b.slot_id HAVING count(*) > 1) x"
            ).fetchone()[0]
        )
    return {"settlements": settled, "balanced": balanced, "ledger sum fen": total, "settled twice": twice,
            "slots booked twice": over}  # fmt: skip


def run_soak(config: Config, command: str, log: Any = sys.stderr) -> SoakRun:
    run = SoakRun(config, command)
    run.load.append(os.getloadavg()[0])
    begin = time.perf_counter()

    def phase(name: str) -> None:
        run.phases[name] = time.perf_counter() - begin

    seconds = config.seconds
    visits = config.visits or max(300, int(seconds * 40))
    sessions = config.sessions or max(2, math.ceil(seconds * 20 / SLOTS))
    with (
        PrivatePostgres(
            durable=True,
            settings={"shared_buffers": "256MB", "max_connections": "100", "max_wal_size": "4GB"},
        ) as pg,
        tempfile.TemporaryDirectory(prefix="healthcard-soak-") as tmp,
    ):
        folder = Path(tmp)
        phase("cluster up")
        url = pg.create_database("soak")
        libpq = psycopg_url(url)
        world = prepare(url, config.residents, visits=visits, sessions=sessions, accounts=config.accounts)
        run.seed_seconds = world.seed_seconds
        print(f"soak: seeded {config.residents:,} residents {world.seed_seconds}", file=log)
        with psycopg_connect(libpq) as conn:
            conn.execute("CHECKPOINT")  # the crash's recovery replays the soak's WAL only
        run.db_before, tables_before, run.audit_before, audit_bytes_before = sizes(libpq)
        phase("seeded")
        env = {**os.environ, "HEALTHCARD_DATABASE_URL": url, "HEALTHCARD_TOKEN_SECRET": SECRET,
               "HEALTHCARD_DATA_DIR": str(folder)}  # fmt: skip
        with server(url, folder) as base:
            cookies = [log_in(base, name) for name in world.usernames]
            # the workers as the drive starts (uvicorn's supervisor replaces a worker that does not
            # answer its ping in 5 s: on a loaded machine, one still importing at start-up)
            master = server_group(base.rsplit(":", 1)[1])  # the master leads its process group
            workers = workers_of(master)
            for _ in range(60):  # all of them up
                if len(workers) >= WORKERS:
                    break
                time.sleep(0.5)
                workers = workers_of(master)
            run.workers = workers
            print(f"soak: serving at {base}, master {master}, workers {workers}", file=log)
            shared = Shared(base, world, cookies)
            phase("serving, logged in")
            stop = threading.Event()
            origin = time.monotonic()
            clients = [Client(n, shared, stop, origin) for n in range(config.clients)]
            sampler = threading.Thread(target=sample_rss, args=(master, run, origin, stop), daemon=True)
            sampler.start()
            for c in clients:
                c.start()
            boundary_at: dt.datetime | None = None
            down = up = stop_s = start_s = 0.0
            try:
                outage = config.outage_seconds > 0
                wait_until(origin + seconds * 0.5, stop)
                boundary_at = dt.datetime.now(dt.UTC)  # the audit archive's boundary: mid-soak
                if outage:
                    wait_until(origin + seconds * config.outage_at, stop)
                    print("soak: stopping PostgreSQL (immediate)", file=log)
                    down = time.monotonic() - origin
                    pg.stop("immediate")
                    stop_s = time.monotonic() - origin - down
                    time.sleep(config.outage_seconds)
                    t0 = time.monotonic()
                    pg.start()
                    start_s = time.monotonic() - t0
                    up = time.monotonic() - origin
                    print(f"soak: PostgreSQL back after {up - down:.1f} s", file=log)
                wait_until(origin + seconds, stop)
            finally:
                stop.set()
                for c in clients:
                    c.join(timeout=TIMEOUT_S + 5)
            run.drive_seconds = time.monotonic() - origin
            phase("driven")
            for c in clients:
                c.finish()
                if c.failure:
                    run.problems.append(f"client {c.number} stopped: {c.failure}")
            sampler.join(timeout=SAMPLE_S + 5)
            sample_once(master, run, origin)
            now_workers = workers_of(master)
            if now_workers != workers:
                run.worker_changes.append(f"workers {workers} at the start, {now_workers} at the end")
            run.workers_restarted = bool(run.worker_changes)
        run.server_errors = tracebacks(folder / "serve.log")
        samples = [s for c in clients for s in c.samples]
        window = (down, up) if config.outage_seconds > 0 else None
        run.ops = op_stats(samples, run.drive_seconds, window)
        run.total_rps = len(samples) / run.drive_seconds
        if window is not None:
            run.outage = outage_stats(samples, down, up, stop_s, start_s)
        acks = [c.acks for c in clients]
        run.writes = {
            "swipes": sum(1 for s in samples if s[2] == "swipe" and 200 <= s[3] < 300),
            "uploads": sum(len(a.uploads) for a in acks),
            "settlements": sum(len(a.settlements) for a in acks),
            "bookings": sum(len(a.bookings) for a in acks),
            "cancellations": sum(len(a.cancelled) for a in acks),
        }
        run.visits = run.writes["swipes"] + run.writes["uploads"]
        with psycopg_connect(libpq) as conn:
            conn.execute("CHECKPOINT")
        run.db_after, tables_after, run.audit_after, audit_bytes_after = sizes(libpq)
        run.audit_bytes = (audit_bytes_before, audit_bytes_after)
        run.tables = sorted(
            ((name, tables_before.get(name, 0), size) for name, size in tables_after.items()),
            key=lambda r: r[1] - r[2],
        )
        run.acks = check_acks(libpq, acks)
        phase("acknowledged writes checked")
        # the audit log's retention: archive up to mid-soak, then verify across the boundary
        archives = folder / "audit-archive"
        archives.mkdir()
        assert boundary_at is not None
        before = boundary_at.isoformat(timespec="seconds")
        rc, out = cli(
            "audit", "archive", "--before", before, "--to", str(archives), "--database-url", url, env=env
        )
        with psycopg_connect(libpq) as conn:
            conn.execute("VACUUM audit_log")
        _, _, audit_left, audit_bytes_left = sizes(libpq)
        segments = sorted(archives.glob("*.jsonl.gz"))
        run.archive = {
            "before": before,
            "archive exit": rc,
            "archive output": out,
            "rows before": run.audit_after,
            "rows after": audit_left,
            "moved": run.audit_after - audit_left,
            "table bytes before": audit_bytes_after,
            "table bytes after (VACUUM)": audit_bytes_left,
            "segments": [p.name for p in segments],
            "segment bytes": sum(p.stat().st_size for p in segments),
        }
        rc, out = cli("audit", "verify", "--archives", str(archives), "--database-url", url, env=env)
        run.archive |= {"verify exit": rc, "verify output": out}
        phase("archived, verified")
        rc, out = cli("platform", "invariants", "--database-url", url, env=env)
        run.invariants = {"exit": rc, "output": out, "own checks": own_invariants(url, libpq)}
        phase("invariants")
    run.load.append(os.getloadavg()[0])
    judge(run)
    return run


def psycopg_connect(libpq: str) -> Any:
    import psycopg

    return psycopg.connect(libpq, autocommit=True)


def wait_until(deadline: float, stop: threading.Event) -> None:
    while not stop.is_set() and time.monotonic() < deadline:
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


def sample_once(master: int, run: SoakRun, origin: float) -> None:
    """Each worker's VmRSS now; a worker not seen before (uvicorn replaced one) is noted."""
    at = time.monotonic() - origin
    for pid in workers_of(master):
        kib = rss_kib(pid)
        if kib is None:
            continue
        name = f"pid {pid}"
        if pid not in run.workers and f"new worker pid {pid}" not in " ".join(run.worker_changes):
            run.worker_changes.append(f"new worker pid {pid} at {at:.0f} s")
        run.rss.setdefault(name, []).append((at, kib))


def sample_rss(master: int, run: SoakRun, origin: float, stop: threading.Event) -> None:
    while not stop.is_set():
        sample_once(master, run, origin)
        stop.wait(SAMPLE_S)


def rss_growth(series: Sequence[tuple[float, int]], drive_seconds: float) -> float:
    """Growth from the first sample after the warm-up (10 % of the run) to the last."""
    warm = [kib for at, kib in series if at >= 0.1 * drive_seconds] or [kib for _, kib in series]
    return warm[-1] / warm[0] - 1 if warm and warm[0] else float("nan")


def tracebacks(log: Path, most: int = 5) -> list[str]:
    """The first ``most`` Python tracebacks in the server's log (a 500's cause), each cut to its
    last 40 lines: what a failed verdict shows, so a rare 500 can be fixed without a re-run."""
    if not log.exists():
        return []
    found: list[str] = []
    block: list[str] | None = None
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("Traceback (most recent call last)"):
            block = [line]
        elif block is not None:
            block.append(line)
            if line and not line.startswith((" ", "\t")) and len(block) > 1:  # the exception line
                found.append("\n".join(block[-40:]))
                block = None
                if len(found) >= most:
                    break
    return found


def judge(run: SoakRun) -> None:
    """The verdicts: every failure becomes a problem of the run."""
    for op in run.ops:
        if op.errors:
            run.problems.append(
                f"{op.errors} {op.request} requests failed outside the outage: {op.by_status}"
            )
    if run.problems and run.server_errors:
        run.problems.append("the server logged:\n" + "\n\n".join(run.server_errors))
    if run.outage is not None:
        if run.outage.bad:
            run.problems.append(
                f"{run.outage.bad} answers during the outage were not a 503: {run.outage.statuses}"
            )
        if run.outage.first_2xx_s is None:
            run.problems.append("no request succeeded after PostgreSQL came back")
    if run.workers_restarted:
        run.problems.append(f"a worker of the server was replaced during the soak: {run.worker_changes}")
    for name, series in run.rss.items():
        growth = rss_growth(series, run.drive_seconds)
        if growth > RSS_GROWTH_LIMIT:
            run.problems.append(f"{name}: RSS grew {growth:.0%} (limit {RSS_GROWTH_LIMIT:.0%})")
    if run.acks.get("problem count") or run.acks.get("replay mismatches"):
        run.problems.append(f"acknowledged writes not found exactly once: {run.acks}")
    if run.archive.get("archive exit") != 0:
        run.problems.append(f"healthcard audit archive failed: {run.archive.get('archive output')}")
    if run.archive.get("verify exit") != 0:
        run.problems.append(f"healthcard audit verify --archives failed: {run.archive.get('verify output')}")
    if run.invariants.get("exit") != 0:
        run.problems.append(f"healthcard platform invariants failed: {run.invariants.get('output')}")
    own = run.invariants.get("own checks", {})
    if own and not (
        own["balanced"]
        and own["ledger sum fen"] == 0
        and not own["settled twice"]
        and not own["slots booked twice"]
    ):
        run.problems.append(f"the soak's own invariant checks failed: {own}")


# --- the report -----------------------------------------------------------------------------------
def _mib(size: float) -> str:
    return f"{size / 2**20:,.1f} MiB"


def report(run: SoakRun) -> str:
    c = run.config
    lines = [
        HEADING,
        "",
        f"{made_by(run.command)} {c.clients} client threads (one process, httpx, closed loop) against "
        f"`healthcard serve --workers 2` on a private PostgreSQL 15 cluster (`durable`: fsync on) holding "
        f"{c.residents:,} residents with their records, for {run.drive_seconds / 60:.1f} min. **The server's "
        "workers, PostgreSQL and the driver share the machine's 2 cores** (and other work on it): the "
        f"machine's load average (1 min) was {run.load[0]:.1f} at the start and {run.load[-1]:.1f} at the end.",
        "",
        "**Verdict: " + ("all checks passed.**" if run.ok else "FAILED:** " + "; ".join(run.problems)),
        "",
        "The mix (weights): " + ", ".join(f"{k} {v}" for k, v in MIX.items()) + " — a settlement is a quote "
        "(`pre-settlement`) then the settlement with its `Idempotency-Key`; a replay sends an acknowledged "
        "settlement or upload again (must answer 200 with the first result); a write whose answer was lost is "
        "retried with its key. Seeding: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in run.seed_seconds.items())
        + ". The run's timeline (s from its start): "
        + ", ".join(f"{k} {v:.0f}" for k, v in run.phases.items())
        + ".",
        "",
        f"### Requests ({run.total_rps:,.0f} req/s in all)",
        "",
        "| request | count | req/s | p50 ms | p99 ms | 2xx | refused (409, an outcome) | errors outside the outage |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for op in run.ops:
        lines.append(
            f"| {op.request} | {op.count:,} | {op.rps:,.1f} | {op.p50_ms:.1f} | {op.p99_ms:.1f} | {op.ok:,} | "
            f"{op.outcomes:,} | {op.errors:,} |"
        )
    lines += [
        "",
        "p50/p99 are over the answered requests outside the outage (its answers are in the next table). Errors "
        "are 5xx, dropped connections and unexpected 4xx.",
        "",
    ]
    if run.outage is not None:
        o = run.outage
        first = f"{o.first_2xx_s:.2f} s" if o.first_2xx_s is not None else "never"
        last = f"{o.failures_after_s:.2f} s" if o.failures_after_s is not None else "none"
        lines += [
            f"### PostgreSQL stopped (`pg_ctl stop -m immediate`) at {o.down_at:.0f} s, started at {o.up_at:.0f} s",
            "",
            "| figure | value |",
            "|---|---|",
            f"| `pg_ctl stop -m immediate` / `pg_ctl start` (crash recovery until it takes connections) | "
            f"{o.stop_seconds:.1f} s / {o.start_seconds:.1f} s |",
            "| answers of the requests overlapping the outage | "
            + ", ".join(f"{k}: {v:,}" for k, v in o.statuses.items())
            + " |",
            f"| their latency p50 / max | {o.p50_ms:.1f} ms / {o.max_ms:.0f} ms |",
            f"| answers that were not a 503 (500s, dropped connections) | {o.bad} |",
            f"| PostgreSQL back → first 2xx | {first} |",
            f"| PostgreSQL back → last failed answer | {last} |",
            f"| the server or a worker restarted | {'**yes**: ' + '; '.join(run.worker_changes) if run.workers_restarted else 'no (the same worker pids from start to end)'} |",
            "",
        ]
    if run.rss:
        lines += [
            f"### Worker memory (VmRSS every {SAMPLE_S:.0f} s)",
            "",
            "| worker | start | 10 % (after warm-up) | middle | end | max | growth after warm-up |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, series in run.rss.items():
            kib = [k for _, k in series]
            warm = next((k for at, k in series if at >= 0.1 * run.drive_seconds), kib[0])
            growth = rss_growth(series, run.drive_seconds)
            lines.append(
                f"| {name} | {_mib(kib[0] * 1024)} | {_mib(warm * 1024)} | {_mib(kib[len(kib) // 2] * 1024)} | "
                f"{_mib(kib[-1] * 1024)} | {_mib(max(kib) * 1024)} | {growth:+.1%} |"
            )
        worst = max(rss_growth(s, run.drive_seconds) for s in run.rss.values())
        lines += ["", "Over time (MiB, the first sample of each minute, then the last):", ""]
        for name, series in run.rss.items():
            by_minute: dict[int, int] = {}
            for at, value in series:
                by_minute.setdefault(int(at // 60), value)
            points = [*by_minute.values(), series[-1][1]]
            lines.append(f"- {name}: " + " → ".join(f"{point / 1024:,.0f}" for point in points))
        lines += [
            "",
            f"Verdict: growth after the warm-up {worst:+.1%} at most — "
            + (f"under {RSS_GROWTH_LIMIT:.0%}: no growth." if worst <= RSS_GROWTH_LIMIT else "**growing**."),
            "",
        ]
    per = 1000 / run.visits if run.visits else float("nan")
    lines += [
        "### Database growth",
        "",
        "Acknowledged writes: "
        + ", ".join(f"{k} {v:,}" for k, v in run.writes.items())
        + f". A *visit* here is "
        f"a card use at a clinic — a swipe or an uploaded visit: {run.visits:,}; the other writes and the "
        "portal's audited reads ride along in the same mix.",
        "",
        "| figure | before | after | growth | per 1,000 visits |",
        "|---|---|---|---|---|",
        f"| `pg_database_size` | {_mib(run.db_before)} | {_mib(run.db_after)} | {_mib(run.db_after - run.db_before)} | "
        f"{_mib((run.db_after - run.db_before) * per)} |",
    ]
    for name, before, after in run.tables[:8]:
        if after - before > 0:
            lines.append(
                f"| `{name}` (with indexes) | {_mib(before)} | {_mib(after)} | {_mib(after - before)} | "
                f"{_mib((after - before) * per)} |"
            )
    a = run.archive
    added = run.audit_after - run.audit_before
    lines += [
        "",
        "### Audit log: growth, retention and archiving",
        "",
        f"The soak added {added:,} audit entries ({added * per:,.0f} per 1,000 visits; "
        f"{_mib((run.audit_bytes[1] - run.audit_bytes[0]) * per)} of `audit_log` per 1,000 visits). Then "
        f"`healthcard audit archive --before {a.get('before')} --to DIR` (the boundary: the soak's middle) "
        f"exited {a.get('archive exit')}: {a.get('moved', 0):,} entries moved into "
        f"{len(a.get('segments', []))} segment(s) of {a.get('segment bytes', 0):,} bytes "
        + (f"({a['segment bytes'] / a['moved']:.0f} bytes an entry, gzip)" if a.get("moved") else "")
        + f"; `audit_log` {a.get('rows before', 0):,} → {a.get('rows after', 0):,} rows, "
        f"{_mib(a.get('table bytes before', 0))} → {_mib(a.get('table bytes after (VACUUM)', 0))} after `VACUUM` "
        "(the space is reused by new entries, not returned). "
        f"`healthcard audit verify --archives DIR` exited {a.get('verify exit')}"
        + (": the chains verify across the archive boundary." if a.get("verify exit") == 0 else ".")
        + (f"\n\n```\n{a.get('verify output', '')}\n```" if a.get("verify output") else ""),
        "",
        "### Invariants afterwards",
        "",
        f"`healthcard platform invariants` exited {run.invariants.get('exit')}"
        + (f":\n\n```\n{run.invariants.get('output')}\n```\n" if run.invariants.get("output") else ".\n"),
        "The soak's own checks: "
        + json.dumps(run.invariants.get("own checks", {}), ensure_ascii=False)
        + ".",
        "",
        "Every acknowledged write looked up in the database: "
        + json.dumps({k: v for k, v in run.acks.items() if k != "problems"}, ensure_ascii=False)
        + (" — each present exactly once, as acknowledged." if not run.acks.get("problem count") else "")
        + " (A write whose answer was lost — the outage — is sent again with its key until it is"
        " answered: a booking that had committed is answered 200 with that booking, never twice.)",
        "",
    ]
    return "\n".join(lines) + "\n"


def summary(run: SoakRun) -> dict[str, Any]:
    out = asdict(run)
    out["ok"] = run.ok
    return out


def from_summary(data: dict[str, Any]) -> SoakRun:
    """The run back from its JSON summary (``--report-from``: the page re-made without a rerun)."""
    fields = {k: v for k, v in data.items() if k in SoakRun.__dataclass_fields__}
    fields["config"] = Config(**data["config"])
    fields["ops"] = [OpStats(**op) for op in data["ops"]]
    fields["outage"] = Outage(**data["outage"]) if data.get("outage") else None
    fields["rss"] = {  # (s, KiB) pairs; a summary of only KiB had a sample every SAMPLE_S
        name: [
            (float(p[0]), int(p[1]))
            if isinstance(p, list)
            else (min(k * SAMPLE_S, data["drive_seconds"]), int(p))
            for k, p in enumerate(series)
        ]
        for name, series in data["rss"].items()
    }
    fields["tables"] = [tuple(row) for row in data["tables"]]
    fields["audit_bytes"] = tuple(data["audit_bytes"])
    return SoakRun(**fields)


def write_section(path: Path, section: str) -> None:
    from bench.__main__ import replace_section

    page = path.read_text(encoding="utf-8") if path.exists() else "# Reliability\n"
    path.write_text(replace_section(page, HEADING, section), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--residents", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--outage-seconds", type=float, default=20.0, help="0: no outage")
    parser.add_argument("--outage-at", type=float, default=0.6, help="when, as a share of the run")
    parser.add_argument("--write", type=Path, help="replace the '## Soak' section of this markdown file")
    parser.add_argument("--report-from", type=Path, help="no run: the report of this JSON summary")
    args = parser.parse_args(argv)
    if args.report_from:
        run = from_summary(json.loads(args.report_from.read_text(encoding="utf-8")))
        section = report(run)
        sys.stdout.write(section)
        if args.write:
            write_section(args.write, section)
        return 0 if run.ok else 1
    command = shlex.join(
        [".venv/bin/python", "-m", "bench.soak", *(argv if argv is not None else sys.argv[1:])]
    )
    config = Config(args.minutes, args.residents, args.clients, args.outage_at, args.outage_seconds)
    run = run_soak(config, command)
    section = report(run)
    sys.stderr.write(section)
    print(json.dumps(summary(run), ensure_ascii=False, default=str, indent=1))
    if args.write:
        write_section(args.write, section)
    return 0 if run.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["Config", "SoakRun", "main", "report", "run_soak"]
