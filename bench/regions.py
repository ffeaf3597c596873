"""Cross-region care, timed: a Zhengzhou card swiped in Foshan, and the Foshan clinician's look
at the patient, both fetched from the home city over NATS (part of the "## Federation" section).

Five nodes, each with its own database and its own NATS connection (as deployed): the demo city
of Zhengzhou (``4101``, seeded by :func:`healthcard.platform.democity.ensure` — residents with
records, vaccinations and cards), Foshan (``4406``, one hospital), the provinces ``41`` and
``44`` and the nation; their runners are threads.  Per database, side by side in one run:

* **cross-region swipe** at a Foshan terminal: the hot list here, ``locate`` (nation →
  province), the home's swipe (card use, grant, audit, summary, visits), then Foshan's own
  person, card use, grant and audit;
* **cross-region look** (the clinician's glance at Foshan): the home's summary and recent visits
  under the presence grant, audited on both sides;
* **local look**: the same person's glance at home by a Zhengzhou clinician — the cost without
  the federation, for the ratio.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy import func, select

from bench.issuance import postgres_problem, scratch_postgres
from healthcard.bootstrap import App, bootstrap, federation_runner
from healthcard.clock import SystemClock
from healthcard.federation.natsbus import NatsBus
from healthcard.federation.nodes import FederationRunner, NodeIdentity, resync_city
from healthcard.issuance.organisation import Organisation
from healthcard.platform import democity
from healthcard.platform.access import Actor, Carrier, Role
from healthcard.settings import Settings
from healthcard.storage import tables as t
from healthcard.storage.db import Database

FOSHAN_HOSPITAL = "440604001"
TERMINAL = Actor("T-440604001-01", Role.TERMINAL, institution_code=FOSHAN_HOSPITAL, carrier=Carrier.TERMINAL)
DOCTOR = Actor("dr-chen", Role.CLINICIAN, institution_code=FOSHAN_HOSPITAL)
HOME_HOSPITAL = "410102001"  # 郑州市中原区人民医院 of the demo city
HOME_DOCTOR = Actor("dr-zhongyuan", Role.CLINICIAN, institution_code=HOME_HOSPITAL)
TARGET_P99 = 0.200


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _city(url: str, code: str, folder: Path, ns: str, nats: str) -> App:
    settings = Settings(
        data_dir=folder,
        database_url=url,
        token_secret=secrets.token_bytes(32),
        node_role="city",
        node_code=code,
        nats_url=nats,
    )
    return bootstrap(settings, bus=NatsBus(nats, namespace=ns))  # no key is used: no KEK


@contextlib.contextmanager
def five_nodes(kind: str, nats: str, residents: int, log: Callable[[str], None]) -> Iterator[tuple[App, App]]:
    """Zhengzhou (demo-seeded) and Foshan with the provinces and the nation, running."""
    ns = f"bench{os.getpid()}x{secrets.token_hex(3)}"
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        urls = {}
        for code in ("4101", "4406", "41", "44", "CN"):
            (Path(tmp) / code).mkdir()
            urls[code] = (
                f"sqlite:///{Path(tmp) / code / 'healthcard.db'}"
                if kind == "SQLite"
                else stack.enter_context(scratch_postgres())
            )
        started = time.perf_counter()
        seed = Settings(data_dir=Path(tmp) / "4101", database_url=urls["4101"], node_code="4101")
        democity.ensure(seed, residents=residents)
        log(
            f"regions {kind}: demo city of {residents} residents seeded in {time.perf_counter() - started:.0f} s"
        )
        for code in ("4406", "41", "44", "CN"):
            db = Database(urls[code])
            db.upgrade()
            db.dispose()
        zhengzhou = _city(urls["4101"], "4101", Path(tmp) / "4101", ns, nats)
        foshan = _city(urls["4406"], "4406", Path(tmp) / "4406", ns, nats)
        for app in (zhengzhou, foshan):
            stack.callback(app.close)
            assert app.bus is not None
            stack.callback(app.bus.close)
        Organisation(foshan.db).add_institution(
            FOSHAN_HOSPITAL,
            name="佛山市第一人民医院",
            area="440604",
            kind="hospital",
            issues=False,
            level="city",
        )
        clock = SystemClock()
        resync_city(zhengzhou.db, "4101", clock)
        runners: list[FederationRunner] = []
        for app in (zhengzhou, foshan):
            runner = federation_runner(app)
            assert runner is not None
            runners.append(runner)
        for code, role in (("41", "province"), ("44", "province"), ("CN", "national")):
            db = Database(urls[code])
            stack.callback(db.dispose)
            bus = NatsBus(nats, namespace=ns)
            stack.callback(bus.close)
            runners.append(FederationRunner(db, bus, clock, NodeIdentity.of(role, code)))
        stack.callback(lambda: NatsBus(nats, namespace=ns).delete_streams())
        for runner in runners:
            runner.start()
            stack.callback(runner.stop)
        nation = runners[-1].db
        with zhengzhou.db.session() as session:
            cards = session.scalar(select(func.count()).select_from(t.Card).where(t.Card.status == "ACTIVE"))
        deadline = time.monotonic() + 120
        while True:  # the demo city's cards up to the nation
            with nation.session() as session:
                if (session.scalar(select(func.count()).select_from(t.NationalCard)) or 0) >= (cards or 0):
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the demo city's cards did not reach the national index in 120 s")
            time.sleep(0.1)
        yield zhengzhou, foshan


def measure(kind: str, nats: str, residents: int, log: Callable[[str], None]) -> dict[str, list[float]]:
    """Seconds per operation, per kind: swipe (cross-region), look (cross-region), local look."""
    timings: dict[str, list[float]] = {"swipe": [], "look": [], "local": []}
    with five_nodes(kind, nats, residents, log) as (zhengzhou, foshan):
        with zhengzhou.db.session() as session:
            cards = session.execute(
                select(t.Card.card_number, t.Card.chip_serial, t.Card.resident_id)
                .where(t.Card.status == "ACTIVE")
                .order_by(t.Card.id)
            ).all()
        for card in cards:
            started = time.perf_counter()
            swipe = foshan.node.swipe(TERMINAL, card_number=card.card_number, chip_serial=card.chip_serial)
            timings["swipe"].append(time.perf_counter() - started)
            # the home clinician's own glance needs a tie too: a swipe at home, not timed
            zhengzhou.node.swipe(
                Actor("T-home", Role.TERMINAL, institution_code=HOME_HOSPITAL, carrier=Carrier.TERMINAL),
                card_number=card.card_number,
                chip_serial=card.chip_serial,
            )
            for _ in range(3):  # alternate: the two looks see the same machine load
                started = time.perf_counter()
                foshan.node.glance(DOCTOR, swipe.resident_id)
                timings["look"].append(time.perf_counter() - started)
                started = time.perf_counter()
                zhengzhou.node.glance(HOME_DOCTOR, card.resident_id)
                timings["local"].append(time.perf_counter() - started)
    for name, values in timings.items():
        log(
            f"regions {kind} {name}: n={len(values)} median {statistics.median(values) * 1e3:.1f} ms "
            f"p99 {percentile(values, 0.99) * 1e3:.1f} ms"
        )
    return timings


def regions_lines(nats: str, quick: bool, log: Callable[[str], None]) -> list[str]:
    residents = 30 if quick else 200
    lines = [
        "Cross-region care: a Zhengzhou card (the demo city, "
        f"{residents} residents with records and vaccinations) swiped at a Foshan terminal, and the "
        "Foshan clinician's look at the patient (summary and 20 recent visits, audited on both sides), "
        "fetched from Zhengzhou over NATS; five nodes with their own databases and NATS connections, "
        "runners as threads; every active card once, each look three times, alternating with the same "
        "person's look at home (`Node.glance` there) — the cost without the federation.",
        "",
        "| database | cross-region swipe p50 / p99 | cross-region look p50 / p99 | the same look at home p50 "
        "| look: cross-region ÷ home | target |",
        "|---|---|---|---|---|---|",
    ]
    for kind in ("PostgreSQL", "SQLite"):
        if kind == "PostgreSQL" and (pg := postgres_problem()) is not None:
            lines.append(f"| PostgreSQL | not measured: {pg} | | | | |")
            continue
        m = measure(kind, nats, residents, log)
        ms = {k: (statistics.median(v) * 1e3, percentile(v, 0.99) * 1e3) for k, v in m.items()}
        lines.append(
            f"| {kind} | {ms['swipe'][0]:.1f} / {ms['swipe'][1]:.1f} ms ({len(m['swipe'])}) "
            f"| {ms['look'][0]:.1f} / {ms['look'][1]:.1f} ms ({len(m['look'])}) | {ms['local'][0]:.1f} ms "
            f"| {ms['look'][0] / ms['local'][0]:.1f}× | p99 ≤ {TARGET_P99 * 1e3:.0f} ms |"
        )
    return [*lines, ""]
