"""The "## Web" section of the benchmark page: what a resident's portal page costs at city scale.

The city of bench/platform.py (residents with cards, archives, allergies, visits with items,
vaccinations) is loaded with COPY into a scratch PostgreSQL database; residents spread over the
whole population get portal accounts; ``healthcard serve --workers 2`` serves it and each of them
logs in through the portal's own form (CSRF token and all).  Then ``wrk`` asks for the portal's
home page (``GET /portal``: card, summary, recent visits — the resident's own data through the
access check and its audit entry) rotating over their session cookies, and its Lua ``done``
reports the 50th, 95th and 99th percentiles.  Each page's bytes are counted once: the HTML, and
the static assets a first visit also loads (cached afterwards).

Run only this section with ``.venv/bin/python -m bench --only web [--quick]``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import made_by
from bench.issuance import postgres_problem, scratch_postgres
from bench.platform import (
    TERMINAL_INSTITUTION,
    Population,
    grow_postgres,
    resident_id,
    server,
    tail,
    wrk_command,
)

SCALES = (10_000, 100_000, 1_000_000)
QUICK_SCALES = (10_000,)
ACCOUNTS = 64  # residents who log in, spread over the population
PASSWORD = "bench-portal-password"
TARGET_P95_MS = 100.0
CLINICIAN = "bench-dr"
#: the clinic console's summary of a patient whose card was swiped at the clinician's institution
CLINIC_PAGE = "/clinic/patient/{rid}"
TARGET_BYTES = 150 * 1024
CONNECTIONS = 16
PAGES = (
    "/portal",
    "/portal/visits",
    "/portal/vaccinations",
    "/portal/fees",
    "/portal/appointments",
    "/portal/ehc",
)

LUA = """\
-- written by bench/web.py: GETs rotating over (session cookie, path) pairs
local cookies, paths = {}, {}
for line in io.lines("%(cookies)s") do
  local cookie, path = line:match("^(.-)\t(.*)$")
  table.insert(cookies, cookie)
  table.insert(paths, path)
end
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  errors = 0
  first_error = ""
  i = id * 13
end

function request()
  i = i + 1
  local k = (i %% #cookies) + 1
  return wrk.format("GET", paths[k], {["Cookie"] = cookies[k]})
end

function response(status, headers, body)
  if status ~= 200 then
    errors = errors + 1
    if first_error == "" then first_error = status .. " " .. string.sub(body, 1, 120) end
  end
end

function done(summary, latency, requests)
  local failed, sample = 0, ""
  for _, t in ipairs(threads) do
    failed = failed + t:get("errors")
    if sample == "" then sample = t:get("first_error") end
  end
  local e = summary.errors
  io.write(string.format("BENCH non2xx=%%d socket=%%d requests=%%d\\n",
    failed, e.connect + e.read + e.write + e.timeout, summary.requests))
  io.write(string.format("BENCH p50=%%.3f p95=%%.3f p99=%%.3f\\n",
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000))
  if sample ~= "" then io.write("BENCH first_error=" .. sample .. "\\n") end
end
"""


@dataclass(frozen=True)
class PageRun:
    scale: int
    path: str
    connections: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    first_error: str


@dataclass(frozen=True)
class PageSize:
    path: str
    html_bytes: int
    asset_bytes: int  # the static files the page links (loaded once, cached after)


@dataclass
class WebRun:
    quick: bool
    seconds: int
    runs: list[PageRun] = field(default_factory=list)
    sizes: list[PageSize] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    load: list[float] = field(default_factory=list)
    total_s: float = 0.0


def make_accounts(url: str, population: Population, count: int, taken: set[str]) -> list[str]:
    """Portal accounts for ``count`` residents spread over the population (those in ``taken``
    have one already); returns the usernames made."""
    from healthcard.clock import SystemClock
    from healthcard.platform.access import Role
    from healthcard.platform.accounts import Accounts
    from healthcard.storage.db import Database

    db = Database(url)
    accounts = Accounts(SystemClock())
    names: list[str] = []
    step = max(1, population.size // count)
    try:
        with db.uow() as uow:
            for i in range(0, population.size, step)[:count]:
                username = f"B{i:011d}"
                if username in taken:  # made at a smaller size already
                    continue
                accounts.create(
                    uow,
                    username=username,
                    name="居民",
                    role=Role.RESIDENT,
                    password=PASSWORD,
                    resident_id=resident_id(i),
                )
                names.append(username)
            uow.commit()
    finally:
        db.dispose()
    return names


def make_clinician(url: str, population: Population, count: int, *, first: bool) -> list[str]:
    """The clinic summary's side: a clinician of the bench's terminal institution (made once) and
    a presence grant there (as a swipe leaves) for ``count`` residents spread over the population;
    their resident ids."""
    from healthcard.clock import SystemClock
    from healthcard.platform.access import Role
    from healthcard.platform.accounts import Accounts
    from healthcard.storage import tables as t
    from healthcard.storage.db import Database

    db = Database(url)
    now = dt.datetime.now(dt.UTC)
    step = max(1, population.size // count)
    rids = [resident_id(i) for i in range(0, population.size, step)[:count]]
    try:
        with db.uow() as uow:
            if first:
                Accounts(SystemClock()).create(
                    uow,
                    username=CLINICIAN,
                    name="王医生",
                    role=Role.CLINICIAN,
                    password=PASSWORD,
                    institution_code=TERMINAL_INSTITUTION,
                )
            uow.session.add_all(
                t.PresenceGrant(
                    resident_id=rid,
                    institution_code=TERMINAL_INSTITUTION,
                    card_use_id=None,
                    reason="card",
                    granted_at=now,
                    expires_at=now + dt.timedelta(days=1),
                )
                for rid in rids
            )
            uow.commit()
    finally:
        db.dispose()
    return rids


def log_in(base: str, username: str, *, staff: bool = False) -> str:
    """Log in through the portal's form (``staff``: the staff login's); the session cookie as a
    ``Cookie`` header value."""
    import httpx

    login = "/staff/login" if staff else "/portal/login"
    with httpx.Client(base_url=base, follow_redirects=False, timeout=30) as client:
        form = client.get(login)
        token = re.search(r'name="(csrf[^"]*)" value="([^"]+)"', form.text)
        if token is None:
            raise RuntimeError("no CSRF field on the login page")
        answer = client.post(
            login, data={token.group(1): token.group(2), "username": username, "password": PASSWORD}
        )
        if answer.status_code not in (302, 303):
            raise RuntimeError(f"login of {username} answered {answer.status_code}: {answer.text[:200]}")
        return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


def page_sizes(base: str, cookie: str, paths: tuple[str, ...] = PAGES) -> list[PageSize]:
    import httpx

    sizes = []
    with httpx.Client(base_url=base, timeout=30, headers={"Cookie": cookie}) as client:
        for path in paths:
            html = client.get(path)
            html.raise_for_status()
            assets = set(re.findall(r'(?:href|src)="(/static/[^"]+)"', html.text))
            asset_bytes = sum(len(client.get(asset).content) for asset in assets)
            sizes.append(PageSize(path, len(html.content), asset_bytes))
    return sizes


def wrk_page(
    base: str,
    folder: Path,
    requests: list[tuple[str, str]],
    page: str,
    seconds: int,
    scale: int,
    connections: int = CONNECTIONS,
) -> PageRun:
    """``requests``: the (cookie, path) pairs wrk rotates over; ``page``: their name in the report."""
    listing = folder / "requests.txt"
    listing.write_text("".join(f"{c}\t{p}\n" for c, p in requests), encoding="utf-8")
    lua = folder / "pages.lua"
    lua.write_text(LUA % {"cookies": listing}, encoding="utf-8")
    out = subprocess.run(
        wrk_command(base, lua, min(2, connections), connections, seconds),
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    ours = re.search(r"^BENCH non2xx=(\d+) socket=(\d+) requests=(\d+)", out, re.M)
    pct = re.search(r"^BENCH p50=([\d.]+) p95=([\d.]+) p99=([\d.]+)", out, re.M)
    if not (rps and ours and pct):
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    sample = re.search(r"^BENCH first_error=(.*)$", out, re.M)
    return PageRun(
        scale,
        page,
        connections,
        float(rps.group(1)),
        float(pct.group(1)),
        float(pct.group(2)),
        float(pct.group(3)),
        int(ours.group(1)) + int(ours.group(2)),
        sample.group(1) if sample else "",
    )


def population_first(quick: bool) -> int:
    return (QUICK_SCALES if quick else SCALES)[0]


def run_web_bench(quick: bool) -> WebRun:
    start = time.perf_counter()
    run = WebRun(quick, seconds=5 if quick else 15)
    run.load.append(os.getloadavg()[0])
    problem = postgres_problem()
    if problem is not None:
        run.problems.append(f"PostgreSQL unavailable: {problem}")
        return run
    if shutil.which("wrk") is None:
        run.problems.append("wrk is not installed (bash scripts/bench-up.sh): no figures")
        return run
    with tempfile.TemporaryDirectory(prefix="healthcard-bench-web-") as tmp, contextlib.ExitStack() as stack:
        folder = Path(tmp)
        url = stack.enter_context(scratch_postgres())
        from healthcard.storage.db import Database

        db = Database(url)
        db.upgrade()
        db.dispose()
        population = Population(dt.datetime.now(dt.UTC))
        usernames: list[str] = []
        for scale in QUICK_SCALES if quick else SCALES:
            step = grow_postgres(url, population, scale)
            print(f"web: seeded {step}", file=sys.stderr)
            usernames += make_accounts(url, population, ACCOUNTS, set(usernames))
            patients = make_clinician(url, population, ACCOUNTS, first=scale == population_first(quick))
            with server(url, folder) as base:
                try:
                    cookies = [log_in(base, name) for name in usernames]
                    doctor = log_in(base, CLINICIAN, staff=True)
                    pages = {
                        "/portal": [(c, "/portal") for c in cookies],
                        CLINIC_PAGE: [(doctor, f"/clinic/patient/{rid}") for rid in patients],
                    }
                    if not run.sizes:
                        run.sizes = page_sizes(base, cookies[0])
                        run.sizes += page_sizes(base, doctor, (pages[CLINIC_PAGE][0][1],))
                    for page, requests in pages.items():
                        wrk_page(base, folder, requests, page, 3, scale)  # warm-up
                    for _ in range(2):  # one at a time, then sixteen at once, page after page, in turns
                        for page, requests in pages.items():
                            for connections in (1, CONNECTIONS):
                                run.runs.append(
                                    wrk_page(base, folder, requests, page, run.seconds, scale, connections)
                                )
                                print(f"web: {run.runs[-1]}", file=sys.stderr)
                except Exception as exc:
                    run.problems.append(
                        f"at {scale:,} residents: {exc}; server log: {tail(folder / 'serve.log', 3)}"
                    )
                    break
    run.load.append(os.getloadavg()[0])
    run.total_s = time.perf_counter() - start
    return run


def report(run: WebRun, command: str) -> str:
    out = ["## Web\n\n"]
    out.append(
        "The resident portal's home page (`GET /portal`: card, summary, recent visits, through the "
        "access check and its audit entry) and the clinic console's summary of a patient "
        "(`GET /clinic/patient/{rid}`: the person, the summary, the vaccination plan, the visits — four "
        "checked and audited reads under the presence grant a swipe leaves) under `wrk -t2` on "
        "`healthcard serve --workers 2` with PostgreSQL: residents logged in through the portal's "
        "form with their session cookies rotated, a clinician through the staff login with the "
        f"patients rotated; the city of the platform bench grown step by step; {run.seconds} s "
        "runs, two of each at each size.\n\n"
    )
    if run.runs:
        out.append(
            "| residents | page | connections | requests/s | p50 ms | p95 ms | p99 ms | errors |\n"
            "|---|---|---|---|---|---|---|---|\n"
        )
        for r in run.runs:
            out.append(
                f"| {r.scale:,} | `{r.path}` | {r.connections} | {r.rps:,.0f} | {r.p50_ms:.1f} | {r.p95_ms:.1f} | "
                f"{r.p99_ms:.1f} | {r.errors} |\n"
            )
        out.append("\n")
        largest = max(r.scale for r in run.runs)
        for page, name in (("/portal", "the portal's home page"), (CLINIC_PAGE, "the clinic summary")):
            for connections, what in (
                (1, "one request at a time (the page's own cost)"),
                (CONNECTIONS, f"{CONNECTIONS} at once (saturated: queueing included)"),
            ):
                same = [
                    r.p95_ms
                    for r in run.runs
                    if r.scale == largest and r.connections == connections and r.path == page
                ]
                if same:
                    p95 = statistics.median(same)
                    verdict = "met" if p95 <= TARGET_P95_MS else "**MISSED**"
                    out.append(
                        f"- At {largest:,} residents, {what}: {name} p95 **{p95:.0f} ms** — target ≤ "
                        f"{TARGET_P95_MS:.0f} ms {verdict}.\n"
                    )
        if largest < SCALES[-1]:
            out.append(
                f"- Measured up to {largest:,} residents only (the quick run); `make bench` grows the city to "
                f"{SCALES[-1]:,}.\n"
            )
        out.append("\n")
    if run.sizes:
        out.append(
            "| page | HTML bytes | static assets (first visit only) | cached visit |\n|---|---|---|---|\n"
        )
        for s in run.sizes:
            verdict = "" if s.html_bytes <= TARGET_BYTES else " **over**"
            out.append(f"| `{s.path}` | {s.html_bytes:,} | {s.asset_bytes:,} | {s.html_bytes:,}{verdict} |\n")
        out.append(f"\nTarget ≤ {TARGET_BYTES // 1024} KB a page with the assets cached.\n\n")
    for problem in run.problems:
        out.append(f"- **Problem**: {problem}\n")
    out.append(
        f"\nLoad average {run.load[0]:.2f} → {run.load[-1]:.2f}; the section took {run.total_s:.0f} s.\n\n"
        f"{made_by(command)}\n"
    )
    return "".join(out)


def run_web(command: str, quick: bool) -> str:
    return report(run_web_bench(quick), command)
