"""The "## Federation" section of the benchmark page: announcements per second through the
transactional outbox, the relay, NATS JetStream and an idempotent consumer.

Two nodes, each with a database of its own (a city that announces, a province that consumes),
talk through the machine's NATS server (``HEALTHCARD_NATS_URL``, default 127.0.0.1:4222; started
by scripts/nats-up.sh when installed but stopped), in a namespace of the run's own.  Two
figures per database, each the median of several rounds:

* **backlog**: N announcements already committed in the city's outbox (what an outage leaves
  behind); the clock runs from starting the relay and the consumer until the province has
  recorded all N in its inbox — the capacity of the messaging path;
* **burst**: the city commits N transactions of one announcement each, from 8 threads at once
  (its web workers' requests), while the relay and the consumer run; the clock runs from the first commit to the last message recorded — what a node
  sees end to end, bounded by its own commit rate (shown beside it).

And the **hot list flowing down** (:func:`hotlist_propagation`): seven nodes with databases of
their own — a reporting city, three receiving cities, two provinces, the nation — their
runners (:class:`FederationRunner`) started as threads; a card reported lost at the city, one at a time,
and the time from that commit until every receiving city holds the chip in ``federated_hotlist``
(6 hops: city relay → province → its relay → nation → its relay → the cities).

Run only this section with ``.venv/bin/python -m bench --only federation [--quick]``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.common import made_by
from bench.issuance import postgres_problem, scratch_postgres
from bench.regions import regions_lines
from healthcard.clock import SystemClock
from healthcard.federation import Announcement, InboxConsumer, Relay, announce, message_id
from healthcard.federation.hotlist import hotlist_subject
from healthcard.federation.natsbus import DEFAULT_NATS_URL, NatsBus
from healthcard.federation.nodes import FederationRunner, NodeIdentity, city_subject
from healthcard.storage import tables as t
from healthcard.storage.db import Database
from healthcard.storage.uow import UnitOfWork

REPO = Path(__file__).resolve().parents[1]
TARGET = 2_000  # announcements per second
CLOCK = SystemClock()
SUBJECT = "up.41.4101.card"
WRITERS = 8  # concurrent transactions of the city in the burst (its web workers' requests)


def nats_url() -> str:
    return os.environ.get("HEALTHCARD_NATS_URL") or DEFAULT_NATS_URL


def nats_problem(url: str) -> str | None:
    """Why NATS cannot be used (after trying scripts/nats-up.sh), or None."""
    host, _, port = url.split("://", 1)[1].rsplit("@", 1)[-1].partition(":")

    def answers() -> bool:
        try:
            with socket.create_connection((host, int(port or 4222)), timeout=1) as conn:
                return conn.recv(4) == b"INFO"
        except OSError:
            return False

    if not answers():
        subprocess.run(["bash", str(REPO / "scripts" / "nats-up.sh")], check=False, timeout=120)
    return None if answers() else f"NATS does not answer at {url}"


def _ignore(_uow: UnitOfWork, _message: Announcement) -> None:
    """The province's work is the inbox row itself."""


@dataclass
class Round:
    seconds: float
    commits_per_s: float | None = None  # the burst's own commit rate


def one_round(city: Database, province: Database, url: str, n: int, tag: str, burst: bool) -> Round:
    ns = f"bench{os.getpid()}x{secrets.token_hex(3)}"
    sender, receiver = NatsBus(url, namespace=ns), NatsBus(url, namespace=ns)
    try:
        sender.ensure_streams()

        def write(i: int) -> None:
            with city.uow() as uow:
                announce(
                    uow,
                    SUBJECT,
                    {"card": f"{i:018d}", "status": "ACTIVE"},
                    message_id("bench", tag, i),
                    at=CLOCK.now(),
                )
                uow.commit()

        if not burst:  # the backlog: committed before the clock starts, in one transaction
            with city.uow() as uow:
                for i in range(n):
                    announce(
                        uow,
                        SUBJECT,
                        {"card": f"{i:018d}", "status": "ACTIVE"},
                        message_id("bench", tag, i),
                        at=CLOCK.now(),
                    )
                uow.commit()
        relay = Relay(city, sender, CLOCK, batch=500)
        inbox = InboxConsumer(province, receiver.consumer("HC_UP", "province"), "province", _ignore, CLOCK)
        stop, done = threading.Event(), [0]

        def consume() -> None:
            while done[0] < n and not stop.is_set():
                done[0] += inbox.poll(500, 0.2)

        threads = [
            threading.Thread(target=relay.run, args=(stop,), kwargs={"idle": 0.002}),
            threading.Thread(target=consume),
        ]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        commits = None
        if burst:  # WRITERS request threads of the city, one announcement per transaction each
            writers = [
                threading.Thread(target=lambda k=k: [write(i) for i in range(k, n, WRITERS)])
                for k in range(WRITERS)
            ]
            for writer in writers:
                writer.start()
            for writer in writers:
                writer.join()
            commits = n / (time.perf_counter() - start)
        threads[1].join(timeout=300)
        seconds = time.perf_counter() - start
        stop.set()
        threads[0].join(timeout=30)
        if done[0] != n:
            raise RuntimeError(f"the province recorded {done[0]} of {n} announcements")
        return Round(seconds, commits)
    finally:
        with contextlib.suppress(Exception):
            sender.delete_streams()
        sender.close()
        receiver.close()


@contextlib.contextmanager
def two_databases(kind: str, folder: Path) -> Iterator[tuple[Database, Database]]:
    with contextlib.ExitStack() as stack:
        if kind == "SQLite":
            urls = [f"sqlite:///{folder / 'city.db'}", f"sqlite:///{folder / 'province.db'}"]
        else:
            urls = [stack.enter_context(scratch_postgres()), stack.enter_context(scratch_postgres())]
        dbs = []
        for url in urls:
            db = Database(url)
            db.upgrade()
            stack.callback(db.dispose)
            dbs.append(db)
        yield dbs[0], dbs[1]


def measure(kind: str, url: str, rounds: int, n: int, log: Callable[[str], None]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, two_databases(kind, Path(tmp)) as (city, province):
        backlog = [one_round(city, province, url, n, f"b{r}", burst=False) for r in range(rounds)]
        bursts = [one_round(city, province, url, n, f"u{r}", burst=True) for r in range(rounds)]
    out = {
        "backlog": statistics.median(n / r.seconds for r in backlog),
        "burst": statistics.median(n / r.seconds for r in bursts),
        "commits": statistics.median(r.commits_per_s or 0.0 for r in bursts),
    }
    log(
        f"federation {kind}: backlog {out['backlog']:,.0f}/s, burst {out['burst']:,.0f}/s, commits {out['commits']:,.0f}/s"
    )
    return out


#: the nodes of the hot-list measurement: the city that reports, the cities that must learn of it
REPORTER, RECEIVERS, PROVINCES = "4101", ("4102", "4401", "4406"), ("41", "44")
POLL = 0.005  # seconds between two looks at the receiving cities' databases


def hotlist_propagation(kind: str, url: str, samples: int, log: Callable[[str], None]) -> list[float]:
    """Seconds from the commit of each of ``samples`` lost reports at :data:`REPORTER` until every
    city of :data:`RECEIVERS` has the chip in ``federated_hotlist`` (runners as threads)."""
    ns = f"bench{os.getpid()}x{secrets.token_hex(3)}"
    nodes = [NodeIdentity.of("city", c) for c in (REPORTER, *RECEIVERS)]
    nodes += [NodeIdentity.of("province", p) for p in PROVINCES] + [NodeIdentity.of("national", "CN")]
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        dbs = []
        for node in nodes:
            if kind == "SQLite":
                db_url = f"sqlite:///{Path(tmp) / f'{node.code}.db'}"
            else:
                db_url = stack.enter_context(scratch_postgres())
            db = Database(db_url)
            db.upgrade()
            stack.callback(db.dispose)
            dbs.append(db)
        buses = [NatsBus(url, namespace=ns) for _ in nodes]  # a connection per node, as deployed
        for bus in buses:
            stack.callback(bus.close)
        stack.callback(lambda: buses[0].delete_streams())
        runners = [
            FederationRunner(db, bus, CLOCK, node) for db, bus, node in zip(dbs, buses, nodes, strict=True)
        ]
        for runner in runners:
            runner.start()
            stack.callback(runner.stop)
        reporter, receivers = dbs[0], dbs[1 : 1 + len(RECEIVERS)]
        seconds = []
        for i in range(samples):
            card, chip = f"41010219900101{i:04d}", f"0081866B{i:08X}"
            with reporter.uow() as uow:  # what the card centre's report_lost announces
                payload = {
                    "card": card,
                    "resident": f"r-{i}",
                    "chip": chip,
                    "status": "LOST",
                    "version": 1_000 + i,
                    "city": REPORTER,
                    "at": CLOCK.now().isoformat(),
                }
                announce(
                    uow, city_subject(REPORTER, "card"), payload, message_id("card", ns, i), at=CLOCK.now()
                )
                uow.commit()
            start, waiting = time.perf_counter(), list(receivers)
            while waiting:
                time.sleep(POLL)
                for db in list(waiting):
                    with db.session() as session:
                        if session.get(t.FederatedHotListEntry, chip) is not None:
                            waiting.remove(db)
                if time.perf_counter() - start > 30:
                    raise RuntimeError(f"lost report {i} not at every city after 30 s")
            seconds.append(time.perf_counter() - start)
        log(
            f"hot list {kind}: {samples} reports, median {statistics.median(seconds) * 1e3:,.0f} ms, "
            f"p99 {percentile(seconds, 0.99) * 1e3:,.0f} ms, max {max(seconds) * 1e3:,.0f} ms"
        )
        return seconds


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def hotlist_lines(url: str, quick: bool, log: Callable[[str], None]) -> list[str]:
    samples = 30 if quick else 200
    lines = [
        f"Hot list flowing down (`{hotlist_subject('<province>')}`): a card reported lost at city {REPORTER}, "
        f"until all of {', '.join(RECEIVERS)} hold its chip — 6 hops (city relay → province {PROVINCES[0]} → "
        "its relay → nation → its relay → the cities' consumers), seven nodes each with its own database "
        f"and NATS connection, their runners as threads; {samples} reports one at a time, the cities' "
        f"databases looked at every {POLL * 1e3:.0f} ms.",
        "",
        "| database | reports | median | p99 | max | target |",
        "|---|---|---|---|---|---|",
    ]
    for kind in ("PostgreSQL", "SQLite"):
        if kind == "PostgreSQL" and (pg := postgres_problem()) is not None:
            lines.append(f"| PostgreSQL | not measured: {pg} | | | | |")
            continue
        s = hotlist_propagation(kind, url, samples, log)
        lines.append(
            f"| {kind} | {len(s)} | {statistics.median(s) * 1e3:,.0f} ms | {percentile(s, 0.99) * 1e3:,.0f} ms "
            f"| {max(s) * 1e3:,.0f} ms | ≤ 2,000 ms |"
        )
    return [*lines, ""]


def run_federation(command: str, quick: bool) -> str:
    rounds, n = (3, 1_000) if quick else (5, 5_000)
    url = nats_url()
    lines = [
        "## Federation",
        "",
        f"{made_by(command)} Announcements through the transactional outbox → relay → NATS JetStream "
        f"(`{url}`, file storage) → a durable pull consumer that records each one in the inbox of "
        f"another database; {n:,} announcements, median of {rounds} rounds.",
        "",
    ]
    problem = nats_problem(url)
    if problem is not None:
        return "\n".join([*lines, f"Not measured: {problem}.", ""]) + "\n"
    lines += [
        "| database (city → province) | backlog drained, announcements/s | burst of one-announcement "
        f"transactions from {WRITERS} threads, end to end, announcements/s | the burst's own commits/s | target |",
        "|---|---|---|---|---|",
    ]

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    for kind in ("PostgreSQL", "SQLite"):
        if kind == "PostgreSQL" and (pg := postgres_problem()) is not None:
            lines.append(f"| PostgreSQL | not measured: {pg} | | | |")
            continue
        figures = measure(kind, url, rounds, n, log)
        lines.append(
            f"| {kind} | {figures['backlog']:,.0f} | {figures['burst']:,.0f} | {figures['commits']:,.0f} "
            f"| ≥ {TARGET:,}/s |"
        )
    lines += [
        "",
        "The relay publishes 500 rows at a time, pipelined (all sent, then all PubAcks awaited), and "
        "marks them published in one transaction; the consumer fetches up to 500 messages and records "
        "them in one transaction before acknowledging them.  The burst is bounded by the city's own "
        "commit rate: one transaction per announcement, as a use case writes it.",
        "",
    ]
    lines += hotlist_lines(url, quick, log)
    lines += regions_lines(url, quick, log)
    return "\n".join(lines) + "\n"
