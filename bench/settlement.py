"""The "## Settlement and appointments" section of the benchmark page.

* **Settlements per second, end to end**: ``healthcard serve --workers 2`` on a scratch database
  holding insured residents, each with an OPEN outpatient visit at a township health centre,
  driven by ``wrk`` posting ``POST /v1/settlements`` (a cashier's token, a bill of three catalog
  lines, a fresh idempotency key per visit) — every request is a real settlement: the
  accumulator row locked, the policy's rules, the lines, one balanced ledger transaction, the
  visit's fee lines, the audit entry.  On PostgreSQL (the target: ≥ 500/s) and on the embedded
  SQLite, in turns on the same machine.  After each run the ledger is verified balanced and the
  settlements are counted against wrk's 201 answers, and no visit may be settled twice.
* **Booking under contention**: many residents at once (a thread each, each booking its own
  transaction) race for the slots of one session; bookings per second, and the over-booking
  count (bookings beyond the slots, live bookings sharing a slot, or a resident holding two in
  one session) — which must be 0.

Run only this section with ``.venv/bin/python -m bench --only settlement [--quick]``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, insert, select

from bench.common import made_by
from bench.issuance import postgres_problem, scratch_postgres
from bench.platform import SECRET, parse_wrk, server, tail, wrk_command

TOWNSHIP = "410122101"  # 韩寺镇卫生院 (the demo pool's township level: outpatient 50 %)
POOL, YEAR = "demo", 2026
TARGET_SETTLEMENTS = 500  # per second, HTTP, PostgreSQL (issue 6)
#: the bill of every settlement: two A-class drugs and a B-class one, the consultation
BILL = (("YP0001", 2), ("YP0002", 1), ("YP0003", 1), ("FW0001", 1))
CONNECTIONS = 16

LUA = """\
-- written by bench/settlement.py: POST /v1/settlements, one fresh visit (and key) per request
local visits = {}
for line in io.lines("%(visits)s") do
  local rid, eid = line:match("(%%S+) (%%d+)")
  table.insert(visits, {rid, eid})
end
local lines = '%(lines)s'
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  errors = 0
  created = 0
  first_error = ""
  local share = math.floor(#visits / %(threads)d)
  i = id * share  -- each thread settles its own share of the visits
  last = i + share
end

function request()
  i = i + 1
  if i > last then i = last end  -- out of visits: repeats answer 200 and are counted apart
  local v = visits[i]
  return wrk.format("POST", "/v1/settlements",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer %(token)s",
     ["Idempotency-Key"] = "bench-" .. v[2]},
    '{"resident_id": "' .. v[1] .. '", "encounter_id": ' .. v[2] .. ', "paid_by": "cash", "lines": ' .. lines .. '}')
end

function response(status, headers, body)
  if status == 201 then
    created = created + 1
  else  -- a replay (200: out of visits) or a refusal
    errors = errors + 1
    if first_error == "" then first_error = status .. " " .. string.sub(body, 1, 200) end
  end
end

function done(summary, latency, requests)
  local failed, made, sample = 0, 0, ""
  for _, t in ipairs(threads) do
    failed = failed + t:get("errors")
    made = made + t:get("created")
    if sample == "" then sample = t:get("first_error") end
  end
  local e = summary.errors
  io.write(string.format("BENCH non2xx=%%d socket=%%d requests=%%d\\n",
    failed, e.connect + e.read + e.write + e.timeout, summary.requests))
  io.write(string.format("BENCH created=%%d\\n", made))
  if sample ~= "" then io.write("BENCH first_error=" .. sample .. "\\n") end
end
"""


# --- the world --------------------------------------------------------------------------------------
@dataclass
class World:
    url: str
    visits: list[tuple[str, int]]
    lines_json: str


def seed(url: str, count: int, tag: str) -> World:
    """``count`` insured residents of the demo pool, each with an OPEN outpatient visit at the
    township health centre; returns (resident, visit) pairs and the bill as JSON."""
    import json

    from healthcard.clock import SystemClock
    from healthcard.platform.settlement.service import Settlements
    from healthcard.storage import tables as t
    from healthcard.storage.db import Database

    db = Database(url)
    db.upgrade()
    now = dt.datetime.now(dt.UTC)
    service = Settlements(SystemClock())
    catalog = service.catalog(POOL, YEAR)
    lines = [
        {"item": code, "quantity": quantity, "unit_price_fen": catalog.item(code).price_fen}
        for code, quantity in BILL
    ]
    visits: list[tuple[str, int]] = []
    with db.uow() as uow:
        if uow.session.get(t.Institution, TOWNSHIP) is None:
            uow.session.add(
                t.Institution(
                    code=TOWNSHIP, name="韩寺镇卫生院", kind="clinic", area_code="410122", level="township"
                )
            )
            uow.commit()
    for start in range(0, count, 5_000):
        ids = [f"B{tag}{n:09d}" for n in range(start, min(start + 5_000, count))]
        with db.uow() as uow:
            uow.session.execute(
                insert(t.Resident),
                [
                    {
                        "resident_id": rid,
                        "id_type": "99",
                        "id_number": rid[-18:],
                        "name": "居民",
                        "sex": 1,
                        "birth_date": dt.date(1970, 1, 1),
                        "created_at": now,
                        "area_code": "410122",
                    }
                    for rid in ids
                ],
            )
            service.enrol_many(uow, ids, pool=POOL, year=YEAR, premium_fen=40_000, actor="bench")
            rows = uow.session.execute(
                insert(t.Encounter).returning(t.Encounter.id, t.Encounter.resident_id),
                [
                    {
                        "resident_id": rid,
                        "institution_code": TOWNSHIP,
                        "kind": "outpatient",
                        "status": "open",
                        "number": f"MZ{tag}{start + n:010d}"[:18],
                        "department": "全科",
                        "carrier": "card",
                        "category": "general",
                        "started_at": now - dt.timedelta(minutes=30),
                        "fees": [],
                        "created_at": now,
                    }
                    for n, rid in enumerate(ids)
                ],
            ).all()
            uow.commit()
        visits.extend((rid, eid) for eid, rid in rows)
    db.analyse()
    db.dispose()
    return World(url, visits, json.dumps(lines, separators=(",", ":")))


def cashier_token() -> str:
    from healthcard.api.tokens import Tokens
    from healthcard.platform.access import Actor, Role

    actor = Actor("bench-cashier", Role.CASHIER, institution_code=TOWNSHIP)
    return Tokens(bytes.fromhex(SECRET)).issue(actor, dt.datetime.now(dt.UTC)).access_token


@dataclass(frozen=True)
class SettleRun:
    backend: str
    seconds: int
    requests: int
    created: int  # 201 answers
    settled: int  # settlements in the database after the run
    p50_ms: float
    p99_ms: float
    errors: int
    first_error: str
    balanced: bool
    total_fen: int  # sum of every ledger entry (0)
    twice: int  # visits settled more than once (0)
    app_cpu_ms: float  # CPU of the server's processes per settlement (SQLite: the database too)
    db_cpu_ms: float  # CPU of the PostgreSQL processes per settlement

    @property
    def per_second(self) -> float:
        return self.created / self.seconds


def check(url: str) -> tuple[int, bool, int, int]:
    """(settlements, ledger balanced, sum of entries, visits settled twice)."""
    from healthcard.platform.settlement import ledger
    from healthcard.storage import tables as t
    from healthcard.storage.db import Database

    db = Database(url)
    try:
        with db.uow() as uow:
            verified = ledger.verify(uow)
            settled = uow.session.scalar(select(func.count()).select_from(t.Settlement)) or 0
            per_visit = (
                select(t.Settlement.encounter_id)
                .group_by(t.Settlement.encounter_id)
                .having(func.count() > 1)
                .subquery()
            )
            twice = uow.session.scalar(select(func.count()).select_from(per_visit)) or 0
        return int(settled), verified.balanced, verified.total_fen, int(twice)
    finally:
        db.dispose()


def _processes() -> Iterator[tuple[int, int, str, float]]:
    """(pid, process group, command name, CPU seconds used so far) of every process."""
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        yield int(entry.name), int(fields[2]), name, (int(fields[11]) + int(fields[12])) / tick


def cpu_seconds(group: int) -> tuple[float, float]:
    """CPU seconds used so far by the process group ``group`` (the server and its workers) and by
    every PostgreSQL process on the machine (the server is shared: other databases count too)."""
    app = db = 0.0
    for _, pgrp, name, seconds in _processes():
        if pgrp == group:
            app += seconds
        elif name.startswith("postgres"):
            db += seconds
    return app, db


def server_group(port: str) -> int:
    """The process group of the ``healthcard serve`` listening on ``port``."""
    for pid, pgrp, _, _ in _processes():
        try:
            args = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in args and port.encode() in args:
            return pgrp
    raise RuntimeError(f"no healthcard serve on port {port}")


def settle_run(backend: str, world: World, folder: Path, seconds: int, threads: int = 2) -> SettleRun:
    import subprocess

    lua = folder / f"settle-{backend}.lua"
    listing = folder / f"visits-{backend}.txt"
    listing.write_text("".join(f"{rid} {eid}\n" for rid, eid in world.visits), encoding="utf-8")
    lua.write_text(
        LUA
        % {
            "visits": listing,
            "lines": world.lines_json,
            "token": cashier_token(),
            "threads": threads,
        },
        encoding="utf-8",
    )
    before = check(world.url)[0]
    with server(world.url, folder) as base:
        group = server_group(base.rsplit(":", 1)[1])
        cpu_before = cpu_seconds(group)
        out = subprocess.run(
            wrk_command(base, lua, threads, CONNECTIONS, seconds),  # the script sets the path
            capture_output=True,
            text=True,
            timeout=seconds + 120,
            check=True,
        ).stdout
        cpu_after = cpu_seconds(group)
    result = parse_wrk(out)
    created = int(out.split("BENCH created=")[1].split()[0])
    settled, balanced, total, twice = check(world.url)
    return SettleRun(
        backend,
        seconds,
        result.requests,
        created,
        settled - before,
        result.p50_ms,
        result.p99_ms,
        result.non2xx + result.socket_errors,
        result.first_error,
        balanced,
        total,
        twice,
        1000 * (cpu_after[0] - cpu_before[0]) / max(settled - before, 1),
        1000 * (cpu_after[1] - cpu_before[1]) / max(settled - before, 1),
    )


# --- booking under contention ---------------------------------------------------------------------
@dataclass(frozen=True)
class RaceRun:
    backend: str
    attempts: int
    slots: int
    booked: int
    refused: int
    errors: int
    seconds: float
    overbooked: int

    @property
    def per_second(self) -> float:
        return self.attempts / self.seconds

    @property
    def bookings_per_second(self) -> float:
        return self.booked / self.seconds


def race(url: str, attempts: int, slots: int, workers: int = 32) -> RaceRun:
    """``attempts`` residents at once for a session of ``slots`` public slots (one thread per
    concurrent booker, each booking its own transaction through the appointments service)."""
    from bench.booking import booking_world, overbooked

    world = booking_world(url, attempts, slots)
    booked = refused = errors = 0
    lock = threading.Lock()
    go = threading.Event()

    def one(resident_id: str) -> None:
        nonlocal booked, refused, errors
        go.wait()
        outcome = world.book(resident_id)
        with lock:
            if outcome == "booked":
                booked += 1
            elif outcome == "refused":
                refused += 1
            else:
                errors += 1

    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(one, rid) for rid in world.residents]
        start = time.perf_counter()
        go.set()
        for future in futures:
            future.result()
        seconds = time.perf_counter() - start
    over = overbooked(world)
    world.close()
    name = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}.get(world.backend, world.backend)
    return RaceRun(name, attempts, slots, booked, refused, errors, seconds, over)


# --- the run ----------------------------------------------------------------------------------------
@dataclass
class Run:
    quick: bool
    visits: int
    seconds: int
    settle: list[SettleRun] = field(default_factory=list)
    races: list[RaceRun] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    load: list[float] = field(default_factory=list)
    total_s: float = 0.0


def run_settlement_bench(quick: bool) -> Run:
    start = time.perf_counter()
    run = Run(quick, visits=20_000 if quick else 60_000, seconds=5 if quick else 15)
    run.load.append(os.getloadavg()[0])
    shapes = ((1_000, 50), (1_000, 200))  # the last slots of a popular doctor; a morning of 1-min slots
    problem = postgres_problem()
    with (
        tempfile.TemporaryDirectory(prefix="healthcard-bench-settlement-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        folder = Path(tmp)
        backends: dict[str, str] = {"SQLite": f"sqlite:///{folder / 'healthcard.db'}"}
        if problem is None:
            backends["PostgreSQL"] = stack.enter_context(scratch_postgres())
        else:
            run.problems.append(f"PostgreSQL unavailable: {problem}")
        for repeat in range(3):  # the booking races, in turns on the two databases
            for backend, url in backends.items():
                for attempts, slots in shapes:
                    race_url = (
                        url
                        if backend == "PostgreSQL"
                        else f"sqlite:///{folder / f'race-{repeat}-{slots}.db'}"
                    )
                    run.races.append(race(race_url, attempts, slots))
                    print(f"settlement: {run.races[-1]}", file=sys.stderr)
        if shutil.which("wrk") is None:
            run.problems.append("wrk is not installed (bash scripts/bench-up.sh): no HTTP figures")
        else:
            worlds = {name: seed(url, run.visits, name[0]) for name, url in backends.items()}
            for repeat in range(2):  # in turns, so both see the same machine
                for name, world in worlds.items():
                    share = len(world.visits) // 2
                    part = World(
                        world.url, world.visits[repeat * share : (repeat + 1) * share], world.lines_json
                    )
                    try:
                        run.settle.append(settle_run(name, part, folder, run.seconds))
                    except Exception as exc:
                        run.problems.append(
                            f"{name} settlement run failed: {exc}; {tail(folder / 'serve.log', 3)}"
                        )
                        continue
                    print(f"settlement: {run.settle[-1]}", file=sys.stderr)
    run.load.append(os.getloadavg()[0])
    run.total_s = time.perf_counter() - start
    return run


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(run: Run, command: str) -> str:
    out = ["## Settlement and appointments\n\n"]
    out.append(
        "Settlements per second end to end: `healthcard serve --workers 2` driven by `wrk -t2 "
        f"-c{CONNECTIONS}` posting `POST /v1/settlements` — each request a new visit's bill of "
        f"{len(BILL)} catalog lines settled at a township health centre (accumulator row locked, "
        "the policy's rules, the lines, one balanced ledger transaction, the visit's fee lines, "
        "the audit entry), paid in cash.  After every run the ledger is verified and the "
        "settlements in the database are counted against wrk's 201 answers.  "
        f"{run.visits:,} visits per database, {run.seconds} s per run, the two databases in turns.\n\n"
    )
    if run.settle:
        out.append(
            "| database | run | settlements/s | p50 ms | p99 ms | 201s | settled in the database | errors "
            "| ledger | visits settled twice | CPU ms / settlement: server | PostgreSQL |\n"
        )
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
        for n, s in enumerate(run.settle):
            ledger_text = "balanced" if s.balanced else f"**UNBALANCED ({s.total_fen} fen)**"
            out.append(
                f"| {s.backend} | {n // 2 + 1} | {s.per_second:,.0f} | {s.p50_ms:.1f} | {s.p99_ms:.1f} | "
                f"{s.created:,} | {s.settled:,} | {s.errors} | {ledger_text} | {s.twice} | "
                f"{s.app_cpu_ms:.1f} | {s.db_cpu_ms:.1f} |\n"
            )
        out.append("\n")
        pg = [s.per_second for s in run.settle if s.backend == "PostgreSQL"]
        lite = [s.per_second for s in run.settle if s.backend == "SQLite"]
        if pg:
            verdict = "met" if _median(pg) >= TARGET_SETTLEMENTS else "**MISSED**"
            out.append(
                f"- PostgreSQL: median **{_median(pg):,.0f} settlements/s** — target ≥ {TARGET_SETTLEMENTS}/s {verdict}.\n"
            )
        if pg:
            app = _median([s.app_cpu_ms for s in run.settle if s.backend == "PostgreSQL"])
            db = _median([s.db_cpu_ms for s in run.settle if s.backend == "PostgreSQL"])
            cores = os.cpu_count() or 1
            out.append(
                f"- Where it goes: one settlement costs {app:.1f} ms of CPU in the API's processes (HTTP, "
                f"the token, the access check and audit entry, the policy's rules, SQLAlchemy) and "
                f"{db:.1f} ms in PostgreSQL's — {app + db:.1f} ms in all, so {cores} cores carry at most "
                f"~{1000 * cores / (app + db):,.0f} settlements/s however the work is spread: the target "
                "needs the CPU per settlement cut to a third or more cores, not more concurrency.\n"
            )
        if pg and lite:
            out.append(
                f"- SQLite / PostgreSQL, medians of the same run: {_median(lite) / _median(pg):.2f}×.\n"
            )
        out.append("\n")
    out.append(
        "Booking under contention: residents, a thread each (32 at once), race for one session's "
        "public slots through the appointments service, each booking its own transaction; the "
        "over-booking count is bookings past the slots + live bookings sharing a slot + residents "
        "with two bookings in the session.  attempts/s is the race's throughput (each attempt a "
        "transaction: access check, audit entry, the slot or the refusal); bookings/s is the "
        "winners over the race's whole time.\n\n"
    )
    if run.races:
        out.append(
            "| database | attempts | slots | booked | refused (no slot) | errors | s | attempts/s "
            "| bookings/s | over-booked |\n"
        )
        out.append("|---|---|---|---|---|---|---|---|---|---|\n")
        for r in sorted(run.races, key=lambda r: (r.slots, r.backend)):
            out.append(
                f"| {r.backend} | {r.attempts:,} | {r.slots} | {r.booked} | {r.refused} | {r.errors} | "
                f"{r.seconds:.2f} | {r.per_second:,.0f} | {r.bookings_per_second:,.0f} | {r.overbooked} |\n"
            )
        out.append("\n")
        for slots in sorted({r.slots for r in run.races}):
            for backend in dict.fromkeys(r.backend for r in run.races):
                same = [r for r in run.races if r.backend == backend and r.slots == slots]
                if same:
                    out.append(
                        f"- {backend}, {same[0].attempts:,} racing for {slots} slots: median "
                        f"{_median([r.per_second for r in same]):,.0f} attempts/s, "
                        f"{_median([r.bookings_per_second for r in same]):,.0f} bookings/s; "
                        f"over-booked {sum(r.overbooked for r in same)} in {len(same)} runs.\n"
                    )
        out.append("\n")
    for problem in run.problems:
        out.append(f"- **Problem**: {problem}\n")
    out.append(
        f"\nLoad average {run.load[0]:.2f} → {run.load[-1]:.2f}; the section took {run.total_s:.0f} s.\n\n"
        f"{made_by(command)}\n"
    )
    return "".join(out)


def run_settlement(command: str, quick: bool) -> str:
    return report(run_settlement_bench(quick), command)
