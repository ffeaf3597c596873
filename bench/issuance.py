"""The "## Issuance" section of the benchmark page: a card from an application to ISSUED.

End to end through the card centre's own service calls (:class:`CardCentre`): an application
(already parsed, as :func:`generate_applications` makes it) becomes database rows (resident,
application), a card row PERSONALISING with its event, a simulated chip personalised with every
APDU through :class:`CardOS` and the keys derived from the province set, and the card ISSUED in
the database — in chunks of :data:`CHUNK`, as :func:`run_batch` goes.  One function per
measurement, then one that writes the section:

* :func:`bench_end_to_end` — cards per second on SQLite and PostgreSQL, cards dropped and sealed
  images written, chips personalised in the one process or by the service's pool of workers
  (:class:`PooledChips`), and the :func:`pipelined` PROTOTYPE (not the service: the pool works on
  chunk *k* while the main process does the database work of chunk *k + 1*), every case taking
  turns round by round in the same run;
* :func:`bench_split` — where one card's time goes (the service's stages timed in place, and the
  card-side parts alone);
* :func:`bench_memory` — a whole CSV through :func:`run_batch` in a child process: its peak RSS;
* :func:`report_issuance` — the markdown.

Run only this section with ``.venv/bin/python -m bench --only issuance [--issuance-cards N]``
(``--write docs/benchmarks.md`` replaces just this section of the page).  The child process of
:func:`bench_memory` is ``python -m bench.issuance memory …``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import multiprocessing
import os
import random
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.pool import AsyncResult
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench.common import made_by
from healthcard.card import image
from healthcard.card.cos import CardOS, CardState
from healthcard.card.personalise import CardContents, Personaliser
from healthcard.card.profile import PROFILE_32K, Profile
from healthcard.clock import SystemClock, local_date
from healthcard.issuance.application import Application, card_contents
from healthcard.issuance.batch import long_lived_frozen, run_batch
from healthcard.issuance.cardcentre import CardCentre, IssueOutcome
from healthcard.issuance.cards import personalise
from healthcard.issuance.chips import PooledChips, SimulatedChips, TransportKeyOf
from healthcard.issuance.keycentre import KeyCentre, issuer_code
from healthcard.issuance.organisation import OperatorSpec, Organisation
from healthcard.issuance.seed import DEFAULT_AREAS, generate_applications, write_csv
from healthcard.keys.kek import open_kek
from healthcard.keys.keyset import CardKeySet
from healthcard.keys.keystore import KeyStore
from healthcard.keys.primitives import Algorithm
from healthcard.storage.db import Database

ROUNDS = 5
ROUND_CARDS = 1_000  # cards per timed round
CHUNK = 200  # cards per transaction, as `healthcard issue batch` goes by default
#: cards through run_batch in the memory child (``--issuance-cards`` or this variable overrides)
MEMORY_CARDS = int(os.environ.get("HEALTHCARD_BENCH_ISSUANCE_CARDS", "100000"))
RSS_TARGET_MIB = 300
CARDS_PER_SECOND_TARGET = 500
#: the PostgreSQL server; a scratch database is created on it for the run and dropped after
PG_SERVER = os.environ.get("HEALTHCARD_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
PROVINCE = "41"
#: Henan's counties of the demo residents (the operator issues for province 41 only)
AREAS = tuple(a for a in DEFAULT_AREAS if a.startswith(PROVINCE))
OPERATOR = "admin-41"
ROOT = bytes.fromhex("00112233445566778899AABBCCDDEEFF")  # public, fixed: never a real key
PASSPHRASE = "healthcard-bench"
SEED = 2026
REPO = Path(__file__).resolve().parents[1]


# --- set-up (as tests/integration/cardcentre_fixtures.py does it) -------------------------------


def make_key_centre(folder: Path) -> KeyCentre:
    """A key store in ``folder``: the national set from :data:`ROOT` and province 41's set."""
    clock = SystemClock()
    store = KeyStore.open_or_create(
        folder / "keystore.json", open_kek("passphrase", passphrase=PASSPHRASE), clock
    )
    centre = KeyCentre(store, clock)
    if store.current_version() is None:
        centre.ceremony(ROOT)
        centre.derive_province(PROVINCE)
    return centre


def open_key_centre(folder: Path) -> KeyCentre:
    clock = SystemClock()
    return KeyCentre(
        KeyStore.open(folder / "keystore.json", open_kek("passphrase", passphrase=PASSPHRASE), clock), clock
    )


def seed_organisation(db: Database) -> None:
    """Henan's card centre and its card administrator (through the organisation service)."""
    org = Organisation(db)
    org.add_institution(issuer_code(PROVINCE), name="河南省卫生健康委员会", area="410000")
    org.add_operator(OperatorSpec(OPERATOR, "卡管员老李", "card-admin", issuer_code(PROVINCE)))


def new_database(url: str) -> Database:
    db = Database(url)
    db.upgrade()
    seed_organisation(db)
    return db


def postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used (after trying scripts/pg-up.sh), or None."""
    import psycopg

    def answers() -> str | None:
        try:
            with psycopg.connect(PG_SERVER, connect_timeout=3):
                return None
        except psycopg.Error as exc:
            return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__

    problem = answers()
    if problem is not None:
        subprocess.run(["bash", str(REPO / "scripts" / "pg-up.sh")], check=False, timeout=60)
        problem = answers()
    return problem


@contextlib.contextmanager
def scratch_postgres() -> Iterator[str]:
    """A scratch database on :data:`PG_SERVER` for this run (a SQLAlchemy URL), dropped after."""
    import psycopg

    from healthcard.settings import normalise_url

    name = f"healthcard_bench_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(PG_SERVER, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield normalise_url(f"{PG_SERVER.rsplit('/', 1)[0]}/{name}")
    finally:
        with psycopg.connect(PG_SERVER, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Bench:
    """What every measurement shares: the key centre, one database per backend, a stream of
    fresh applications (a person applies once per database) and a sealer for the images."""

    folder: Path
    keys: KeyCentre
    databases: dict[str, Database]  # "SQLite" / "PostgreSQL" -> database
    sealer: image.Sealer
    pg_problem: str | None
    applications: Iterator[Application]
    rows: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # batch rows used

    def centre(self, backend: str) -> CardCentre:
        return CardCentre(self.databases[backend], SystemClock(), lambda: self.keys)

    def take(self, count: int) -> list[Application]:
        return [next(self.applications) for _ in range(count)]


@contextlib.contextmanager
def bench_setup(total_applications: int) -> Iterator[Bench]:
    with tempfile.TemporaryDirectory(prefix="healthcard-bench-issuance-") as tmp:
        folder = Path(tmp)
        keys = make_key_centre(folder)
        databases = {"SQLite": new_database(f"sqlite:///{folder / 'healthcard.db'}")}
        problem = postgres_problem()
        with contextlib.ExitStack() as stack:
            if problem is None:
                databases["PostgreSQL"] = new_database(stack.enter_context(scratch_postgres()))
            today = local_date(SystemClock())
            applications = generate_applications(
                total_applications, rng=random.Random(SEED), today=today, areas=AREAS
            )
            bench = Bench(folder, keys, databases, image.Sealer("healthcard-bench"), problem, applications)
            for backend in databases:
                bench.centre(backend).open_batch(OPERATOR, "bench", "bench/issuance.py", 0)
            try:
                yield bench
            finally:
                for db in databases.values():
                    db.dispose()


# --- 1. end to end ------------------------------------------------------------------------------


def analyze(bench: Bench) -> None:
    """``ANALYZE`` the PostgreSQL scratch database (untimed, between rounds): what autovacuum
    does on a server that runs it.  Without statistics the planner of a table that grew from
    empty stops using the indexes, and every round is slower than the one before."""
    db = bench.databases.get("PostgreSQL")
    if db is not None:
        with db.engine.connect() as connection:
            connection.execute(text("ANALYZE"))
            connection.commit()


def postgres_setting(db: Database, name: str) -> str:
    with db.engine.connect() as connection:
        return str(connection.execute(text(f"SHOW {name}")).scalar_one())


def issue_applications(
    centre: CardCentre, bench: Bench, backend: str, apps: Sequence[Application], chips: SimulatedChips
) -> int:
    """``run_batch`` without the CSV: per chunk one ``submit_batch`` and one ``issue_many``."""
    issued = 0
    for start in range(0, len(apps), CHUNK):
        first = bench.rows[backend] + 1
        chunk = list(enumerate(apps[start : start + CHUNK], start=first))
        bench.rows[backend] += len(chunk)
        taken, refused = centre.submit_batch(OPERATOR, "bench", chunk)
        outcome = centre.issue_many(OPERATOR, taken, chips)
        if refused or outcome.failed:
            raise RuntimeError(f"the bench's applications were refused: {refused or outcome.failed}")
        issued += len(outcome.issued)
    return issued


def tray(bench: Bench, variant: str, workers: int = 0, name: str = "cards") -> SimulatedChips:
    """Where the cards go: dropped, or sealed images in ``<folder>/<name>`` (fsync per chunk);
    personalised in this process, or by ``workers`` worker processes (:class:`PooledChips`)."""
    out = None if variant == "dropped" else bench.folder / name
    if workers:
        return PooledChips(out, PASSPHRASE if out is not None else None, workers=workers)
    if out is None:
        return SimulatedChips(keep=False)
    return SimulatedChips(out, bench.sealer, durable_each=False)


def empty_tray(chips: SimulatedChips) -> None:
    """Remove the images of a round (the folder stays: a pool's workers write into it)."""
    if chips.out is not None:
        for path in chips.out.iterdir():
            path.unlink()


VARIANTS = ("dropped", "images")
MODES = ("one process", "pooled")
Case = tuple[str, str, str]  # backend, variant, mode


def bench_end_to_end(
    bench: Bench, rounds: int, cards: int, workers: int
) -> tuple[dict[Case, list[float]], str | None]:
    """Cards per second of every (backend, variant, mode), ``rounds`` rounds of ``cards`` fresh
    applications each, all cases taking turns within every round (order reversed every other
    round) so that the machine's drift hits them alike.  One untimed chunk of each warms up
    (and starts the pools).  The modes: one process, the service's :class:`PooledChips`, and
    (cards dropped only) the :func:`pipelined` prototype; the prototype calls the service's
    private stages, so it may fall behind the service: its failure is returned, not raised."""
    cases = [(b, v, m) for m in MODES for v in VARIANTS for b in bench.databases]
    cases += [(b, "dropped", "pipelined") for b in bench.databases]
    centres = {backend: bench.centre(backend) for backend in bench.databases}
    trays = {
        (b, v, m): tray(bench, v, workers if m == "pooled" else 0, f"cards-{b}-{m.replace(' ', '-')}")
        for b, v, m in cases
        if m != "pipelined"
    }
    out: dict[Case, list[float]] = {case: [] for case in cases}
    failed: str | None = None
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers) as pool:

        def run(case: Case, apps: list[Application]) -> int:
            if case[2] == "pipelined":
                return pipelined(centres[case[0]], bench, case[0], apps, pool)
            issued = issue_applications(centres[case[0]], bench, case[0], apps, trays[case])
            empty_tray(trays[case])
            return issued

        try:
            for n in range(-1, rounds):  # round -1: the warm-up
                for case in cases if n % 2 == 0 else reversed(cases):
                    if case[2] == "pipelined" and failed is not None:
                        continue
                    apps = bench.take(cards if n >= 0 else CHUNK)
                    with long_lived_frozen():
                        start = time.perf_counter()
                        try:
                            issued = run(case, apps)
                        except Exception as exc:
                            if case[2] != "pipelined":
                                raise
                            failed = f"{type(exc).__name__}: {exc}"
                            continue
                        seconds = time.perf_counter() - start
                    if n >= 0:
                        out[case].append(issued / seconds)
                analyze(bench)
        finally:
            for chips in trays.values():
                if isinstance(chips, PooledChips):
                    chips.close()
    return {case: runs for case, runs in out.items() if runs}, failed


# --- where one card's time goes -----------------------------------------------------------------


class Stopwatch:
    """Accumulated seconds of named calls (a wrapper put in place of a method)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - start

        return timed


STAGES = (
    ("submit", "applications taken: resident + application rows (`submit_batch`)"),
    ("reserve", "reservation: card row PERSONALISING + event, issue serial, card data, keys (`_reserve`)"),
    ("personalise", "personalisation: every APDU through CardOS"),
    ("deliver", "image sealed and written (`deliver`)"),
    ("sync", "fsync of the chunk's images (`sync`)"),
    ("finish", "card ISSUED + event, application ISSUED (`_finish`)"),
)


def instrumented_round(bench: Bench, backend: str, cards: int) -> dict[str, float]:
    """One round with sealed images, the service's stages timed in place: seconds per card."""
    centre = bench.centre(backend)
    chips = tray(bench, "images", name=f"cards-split-{backend}")
    watch = Stopwatch()
    centre.submit_batch = watch.wrap("submit", centre.submit_batch)  # type: ignore[method-assign]
    centre.issue_many = watch.wrap("issue_many", centre.issue_many)  # type: ignore[method-assign]
    centre._reserve = watch.wrap("reserve", centre._reserve)  # type: ignore[method-assign]
    centre._finish = watch.wrap("finish", centre._finish)  # type: ignore[method-assign]
    chips.deliver = watch.wrap("deliver", chips.deliver)  # type: ignore[method-assign]
    chips.sync = watch.wrap("sync", chips.sync)  # type: ignore[method-assign]
    apps = bench.take(cards)
    with long_lived_frozen():
        start = time.perf_counter()
        issued = issue_applications(centre, bench, backend, apps, chips)
        total = time.perf_counter() - start
    empty_tray(chips)
    s = watch.seconds
    s["personalise"] = s["issue_many"] - s["reserve"] - s["finish"] - s["deliver"] - s["sync"]
    s["total"] = total
    return {name: value / issued for name, value in s.items()}


def card_side(bench: Bench, cards: int, repeats: int) -> dict[str, float]:
    """The card-side parts alone, no database: seconds per card (medians of ``repeats``)."""
    issuing = bench.keys.province(PROVINCE)
    today = local_date(SystemClock())
    serials = [b"\x00\x86" + secrets.token_bytes(6) for _ in range(cards)]
    keys = [bench.keys.card_keys(issuing, s) for s in serials]
    contents = [
        card_contents(
            app,
            issue_serial=f"{n:010d}",
            issuer_name="河南省卫生健康委员会",
            issuer_code=issuer_code(PROVINCE),
            issue_date=today,
            expiry=today + dt.timedelta(days=3652),
        )
        for n, app in enumerate(bench.take(cards))
    ]
    states: list[CardState] = []
    apdus: list[int] = []

    def personalise_all() -> None:
        states.clear()
        apdus.clear()
        for serial, card_keys, data in zip(serials, keys, contents, strict=True):
            state = CardState.blank(serial, card_keys["TKMF"], issuing.algorithm)
            card = CardOS(state)
            card.power_on()
            apdus.append(personalise(card.process, issuing, serial, data, bench.keys, PROFILE_32K, card_keys))
            states.append(state)

    def per_card(fn: Callable[[], object]) -> float:
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
        return statistics.median(samples) / cards

    out = {"personalise": per_card(personalise_all), "apdus": statistics.mean(apdus)}
    out["apdus_min"], out["apdus_max"] = float(min(apdus)), float(max(apdus))
    out["derive"] = per_card(lambda: [bench.keys.card_keys(issuing, s) for s in serials])
    out["seal"] = per_card(lambda: [image.dumps(state, bench.sealer) for state in states])
    out["image_bytes"] = float(statistics.mean(len(image.dumps(s, bench.sealer)) for s in states[:20]))
    return out


def bench_split(bench: Bench, cards: int, repeats: int) -> dict[str, dict[str, float]]:
    analyze(bench)
    out = {backend: instrumented_round(bench, backend, cards) for backend in bench.databases}
    out["card side"] = card_side(bench, min(cards, 300), repeats)
    return out


# --- PROTOTYPE: personalisation in a process pool, pipelined with the database ------------------


@dataclass(frozen=True)
class ParkedChip:
    """A blank chip that the pipeline's worker process will personalise: only its serial here."""

    serial: bytes

    def transmit(self, raw: bytes) -> bytes:
        raise RuntimeError("a parked chip is personalised in a worker process")


class ParkedChips:
    """The chip source of the prototype: serials as :class:`SimulatedChips` makes them; the
    chips themselves are made and personalised in the workers."""

    def __init__(self) -> None:
        self.vendor = b"\x00\x86"

    def blank(self, transport_key: TransportKeyOf) -> ParkedChip:
        serial = self.vendor + secrets.token_bytes(6)
        transport_key(serial)  # the card centre derives the card's keys here
        return ParkedChip(serial)

    def deliver(self, chip: object, card_number: str) -> None:
        pass

    def sync(self) -> None:
        pass

    def finished(self, serial: bytes) -> bool | None:
        return None


Job = tuple[bytes, Algorithm, CardKeySet, CardContents, Profile]


def personalise_in_worker(job: Job) -> int:
    """What :func:`healthcard.issuance.cards.personalise` does with a simulated chip, in a
    worker process: a blank chip holding its transport key, then every APDU; the APDU count."""
    serial, algorithm, keys, contents, profile = job
    state = CardState.blank(serial, keys["TKMF"], algorithm)
    card = CardOS(state)
    card.power_on()
    return Personaliser(card.process, keys["TKMF"], algorithm).run(profile, keys, contents)


def pipelined(centre: CardCentre, bench: Bench, backend: str, apps: Sequence[Application], pool: Any) -> int:
    """Chunk by chunk: take the applications and reserve the cards (main process), hand the chips
    to the pool, and finish the previous chunk while the pool works on this one."""
    chips = ParkedChips()
    issued = 0
    waiting: tuple[AsyncResult[list[int]], list[Any]] | None = None
    for start in range(0, len(apps) + CHUNK, CHUNK):
        chunk = apps[start : start + CHUNK]
        running = None
        if chunk:
            first = bench.rows[backend] + 1
            bench.rows[backend] += len(chunk)
            taken, refused = centre.submit_batch(OPERATOR, "bench", list(enumerate(chunk, start=first)))
            jobs = centre._reserve(OPERATOR, taken, chips)
            if refused or len(jobs) != len(chunk):
                raise RuntimeError(f"the bench's applications were refused: {refused}")
            for job in jobs:  # what cards.personalise adds before the first APDU
                items = job.contents.items.setdefault("DDF1/EF05", {})
                items.setdefault(
                    "issuer_certificate", centre.keys.issuer_certificate(job.issuing.id.region[:2])
                )
            work = [(j.chip.serial, j.issuing.algorithm, j.keys, j.contents, centre.profile) for j in jobs]
            running = (pool.map_async(personalise_in_worker, work, chunksize=max(1, len(work) // 8)), jobs)
        if waiting is not None:
            waiting[0].get(timeout=600)  # raises if a chip failed: the prototype stops there
            outcome = IssueOutcome()
            centre._finish(waiting[1], OPERATOR, outcome)
            if outcome.failed:
                raise RuntimeError(f"the prototype's cards were refused: {outcome.failed}")
            issued += len(outcome.issued)
        waiting = running
    return issued


# --- 2. memory: a whole CSV through run_batch, in a child process --------------------------------


def vm_status(field_name: str) -> int:
    """A ``VmXXX`` line of /proc/self/status in KiB (0 where there is no /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory_child(folder: Path, source: Path, every: int) -> dict[str, Any]:
    """Inside the child: the batch on a fresh SQLite database, cards dropped; RSS as it went."""
    keys = open_key_centre(folder)
    db = new_database(f"sqlite:///{folder / 'memory.db'}")
    centre = CardCentre(db, SystemClock(), lambda: keys)
    chips = SimulatedChips(keep=False)
    samples: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        if done % every < CHUNK or done == total:
            samples.append((done, vm_status("VmRSS")))

    before = vm_status("VmRSS")
    start = time.perf_counter()
    report = run_batch(
        centre, OPERATOR, source, chips, errors=folder / "errors.csv", chunk=CHUNK, progress=progress
    )
    seconds = time.perf_counter() - start
    db.dispose()
    return {
        "rows": report.rows,
        "issued": report.issued,
        "refused": report.refused,
        "seconds": seconds,
        "rss_before_kib": before,
        "samples": samples,
        "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "vmhwm_kib": vm_status("VmHWM"),
        "db_bytes": (folder / "memory.db").stat().st_size,
    }


def bench_memory(cards: int) -> dict[str, Any]:
    """Write a CSV of ``cards`` applications, then run it in ``python -m bench.issuance memory``."""
    with tempfile.TemporaryDirectory(prefix="healthcard-bench-memory-") as tmp:
        folder = Path(tmp)
        make_key_centre(folder)
        source = folder / "applications.csv"
        today = local_date(SystemClock())
        write_csv(generate_applications(cards, rng=random.Random(SEED + 1), today=today, areas=AREAS), source)
        csv_bytes = source.stat().st_size
        command = [sys.executable, "-m", "bench.issuance", "memory", str(folder), str(source)]
        run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
        if run.returncode != 0:
            raise RuntimeError(f"the memory child failed: {run.stderr.strip()[-2000:]}")
        out: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
        out["csv_bytes"] = csv_bytes
        return out


# --- the section -----------------------------------------------------------------------------------


def _runs(runs: list[float]) -> str:
    return " / ".join(f"{r:.0f}" for r in runs)


def _mib(kib: float) -> str:
    return f"{kib / 1024:,.0f} MiB"


def report_issuance(
    e2e: dict[Case, list[float]],
    split: dict[str, dict[str, float]],
    prototype_failed: str | None,
    memory: dict[str, Any],
    bench_facts: dict[str, Any],
    command: str,
) -> str:
    backends = [b for b in ("SQLite", "PostgreSQL") if (b, "dropped", "one process") in e2e]
    med = {case: statistics.median(runs) for case, runs in e2e.items()}
    rounds, cards, workers = bench_facts["rounds"], bench_facts["cards"], bench_facts["workers"]
    lines = [
        "## Issuance",
        "",
        f"{made_by(command)} Medians of {rounds} rounds of {cards:,} fresh applications each; in every "
        f"round all {len(e2e)} cases below ran one after the other, so the ratios are measured side by "
        f"side. {bench_facts['postgres']}",
        "",
        "### End to end",
        "",
        "An application (already parsed, from `generate_applications`) → resident + application rows → "
        "card row PERSONALISING + event → a simulated chip personalised with every APDU through CardOS, its "
        f"20 keys derived from `province/{PROVINCE}/v1` → card ISSUED + event, application ISSUED: "
        f"`CardCentre.submit_batch` + `issue_many` per chunk of {CHUNK} (what `run_batch` does without the "
        "CSV, the garbage collector frozen around the round as `run_batch` freezes it). The chips are "
        f"personalised in the one process (`SimulatedChips`) or by {workers} worker processes "
        f"(`PooledChips(workers={workers})`, `issue batch --workers {workers}`), which also write the "
        "images; the main process does the database work and waits for the pool.",
        "",
        f"| database | chips | one process | {workers} worker processes | workers / one | target |",
        "|---|---|---|---|---|---|",
    ]

    def cell(case: Case) -> str:
        return f"**{med[case]:,.0f}** cards/s ({1000 / med[case]:.2f} ms)"

    for variant, chips in (
        ("dropped", "dropped (`keep=False`)"),
        ("images", "sealed images written, fsync per chunk"),
    ):
        for backend in backends:
            one, pooled = (backend, variant, "one process"), (backend, variant, "pooled")
            lines.append(
                f"| {backend} | {chips} | {cell(one)} | {cell(pooled)} | {med[pooled] / med[one]:.2f} "
                f"| ≥ {CARDS_PER_SECOND_TARGET} cards/s |"
            )
    lines += [
        "",
        "Rounds, cards per second: "
        + "; ".join(f"{b} {v} {m}: {_runs(e2e[(b, v, m)])}" for b, v, m in e2e)
        + ".",
    ]
    if "PostgreSQL" in backends:
        lines += [
            "",
            "PostgreSQL / SQLite (medians): "
            + ", ".join(
                f"{v} {m} **{med[('PostgreSQL', v, m)] / med[('SQLite', v, m)]:.2f}**"
                for m in MODES
                for v in VARIANTS
            )
            + ". Images / dropped: "
            + ", ".join(
                f"{b} {m} **{med[(b, 'images', m)] / med[(b, 'dropped', m)]:.2f}**"
                for m in MODES
                for b in backends
            )
            + ".",
        ]
    lines.append("")

    card = split["card side"]
    lines += [
        "### Where one card's time goes",
        "",
        f"One more round of {cards:,} cards with images on each database, the service's stages timed "
        "in place (wrappers around `submit_batch`, `_reserve`, `_finish` and the tray's `deliver` and "
        "`sync`; personalisation is the rest of `issue_many`). Milliseconds per card:",
        "",
        "| stage | " + " | ".join(backends) + " |",
        "|---|" + "---|" * len(backends),
    ]
    for name, title in STAGES:
        lines.append(f"| {title} | " + " | ".join(f"{split[b][name] * 1000:.2f}" for b in backends) + " |")
    lines.append(
        "| **total** | " + " | ".join(f"**{split[b]['total'] * 1000:.2f}**" for b in backends) + " |"
    )
    database = {
        b: split[b]["submit"] + split[b]["reserve"] + split[b]["finish"] - card["derive"] for b in backends
    }
    lines += [
        "| of which the database work (applications + reservation + finish, less key derivation) | "
        + " | ".join(f"{database[b] * 1000:.2f} ({database[b] / split[b]['total']:.0%})" for b in backends)
        + " |",
        "",
        f"The card side alone, no database (medians of {bench_facts['repeats']} repeats over "
        f"{bench_facts['card_cards']} cards): personalisation **{card['personalise'] * 1000:.2f} ms** "
        f"per card ({card['apdus']:.0f} APDUs on average, {card['apdus_min']:.0f} to "
        f"{card['apdus_max']:.0f}: SELECTs, 19 × GET CHALLENGE + WRITE KEY with SM4 "
        "encryption and MAC, CREATE FILE, APPEND RECORD / UPDATE BINARY, END PERSONALISATION; a blank "
        f"chip made first), key derivation **{card['derive'] * 1e6:.1f} µs** per card "
        f"(`KeyCentre.card_keys`), sealing the image **{card['seal'] * 1000:.2f} ms** "
        f"(`image.dumps`: {card['image_bytes'] / 1024:.0f} KiB of JSON, keys under SM4-GCM).",
        "",
    ]

    lines += [
        "### Prototype: the pool pipelined with the database (not the service)",
        "",
        "`pipelined` in `bench/issuance.py`: as `PooledChips`, but the main process does not wait: it "
        "takes chunk *k + 1*'s applications and reserves its cards (the service's `submit_batch` and "
        f"`_reserve`) while {workers} worker processes personalise chunk *k*, then marks chunk *k* ISSUED "
        "(`_finish`). A card is still ISSUED only after its chip answered END PERSONALISATION. Cards "
        f"dropped, {rounds} rounds of {cards:,} each, taking turns with the cases above:",
        "",
        f"| database | one process | `PooledChips({workers})` | pipelined prototype | rounds | prototype / pooled |",
        "|---|---|---|---|---|---|",
    ]
    if prototype_failed is not None:
        lines += [f"The prototype failed in this run: `{prototype_failed[:300]}`.", ""]
    for backend in [b for b in backends if (b, "dropped", "pipelined") in med]:
        p = med[(backend, "dropped", "pipelined")]
        one, pooled = med[(backend, "dropped", "one process")], med[(backend, "dropped", "pooled")]
        lines.append(
            f"| {backend} | {one:,.0f} | {pooled:,.0f} | **{p:,.0f}** "
            f"| {_runs(e2e[(backend, 'dropped', 'pipelined')])} | **{p / pooled:.2f}** |"
        )
    lines.append("")

    done = memory["issued"]
    peak = memory["vmhwm_kib"] or memory["maxrss_kib"]
    curve = ", ".join(f"{n:,}: {_mib(kib)}" for n, kib in memory["samples"])
    lines += [
        "### Memory: one batch file through `run_batch`",
        "",
        f"{memory['rows']:,} applications in one CSV ({memory['csv_bytes'] / 1e6:,.0f} MB, photos inline) "
        "through `run_batch` in a child process, on SQLite with the cards dropped, chunks of "
        f"{CHUNK}. `--issuance-cards N` (or `HEALTHCARD_BENCH_ISSUANCE_CARDS`) sets the size.",
        "",
        "| figure | value | target |",
        "|---|---|---|",
        f"| cards issued | {done:,} ({memory['refused']} refused) | |",
        f"| peak RSS of the child (`VmHWM`) | **{_mib(peak)}** | ≤ {RSS_TARGET_MIB} MiB for 100,000 |",
        f"| RSS before the batch (after imports and set-up) | {_mib(memory['rss_before_kib'])} | |",
        f"| cards per second (the CSV parsed and checked, then as above) | {done / memory['seconds']:,.0f} "
        f"| ≥ {CARDS_PER_SECOND_TARGET} |",
        f"| time | {memory['seconds']:,.0f} s | |",
        f"| SQLite file afterwards | {memory['db_bytes'] / 1e6:,.0f} MB | |",
        "",
        f"RSS as the batch went (cards done: VmRSS): {curve}. The child's `ru_maxrss` says "
        f"{_mib(memory['maxrss_kib'])}: Linux keeps the parent's high-water mark across fork + exec, so "
        "the child's own peak is `VmHWM` of /proc/self/status.",
    ]
    return "\n".join(lines) + "\n"


def run_issuance(command: str, quick: bool, memory_cards: int | None = None) -> str:
    """Every measurement, then the section (about 8 minutes with the default sizes, 5 of them the
    100,000-card batch)."""
    rounds, cards, repeats = (2, 2 * CHUNK, 3) if quick else (ROUNDS, ROUND_CARDS, 5)
    workers = max(1, min(2, os.cpu_count() or 1))
    size = memory_cards if memory_cards is not None else (2_000 if quick else MEMORY_CARDS)
    per_backend = rounds * cards * (len(VARIANTS) * len(MODES) + 1) + 6 * CHUNK + cards
    total = 2 * per_backend + 300 + 2 * cards  # both backends draw from one stream of people
    with bench_setup(total) as bench:
        e2e, prototype_failed = bench_end_to_end(bench, rounds, cards, workers)
        split = bench_split(bench, cards, repeats)
        facts = {
            "rounds": rounds,
            "cards": cards,
            "workers": workers,
            "repeats": repeats,
            "card_cards": min(cards, 300),
            "postgres": (
                "PostgreSQL: the machine's server on 127.0.0.1 (same 2 cores; autovacuum "
                f"{postgres_setting(bench.databases['PostgreSQL'], 'autovacuum')}), a scratch database "
                "created for the run and dropped after; the bench runs `ANALYZE` on it after every round, "
                "untimed, as autovacuum would."
                if bench.pg_problem is None
                else f"PostgreSQL was not available ({bench.pg_problem}): SQLite only."
            ),
        }
    memory = bench_memory(size)
    return report_issuance(e2e, split, prototype_failed, memory, facts, command)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.issuance")
    sub = parser.add_subparsers(dest="what", required=True)
    child = sub.add_parser("memory", help="(the child process of bench_memory)")
    child.add_argument("folder", type=Path)
    child.add_argument("source", type=Path)
    child.add_argument("--every", type=int, default=10_000)
    args = parser.parse_args()
    result = memory_child(args.folder, args.source, args.every)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
