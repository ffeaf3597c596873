"""Faults in the three-level platform, over a real NATS server of the test's own (killable):
Zhengzhou's city node announces a burst of 1,000 record pointers (and card changes) while

* NATS is killed (SIGKILL) in the middle of the burst and started again, and
* the city node itself is stopped (its relay thread and database gone) and started again from
  a fresh composition root, as a restarted process would be;

afterwards every announcement reached the province exactly once (1,000 locator rows, one inbox
row per message), the card indexes of the province and the nation agree with the city
(``healthcard federation verify`` exits 0), and nothing is left in any outbox."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from healthcard.bootstrap import App, bootstrap
from healthcard.clock import FixedClock
from healthcard.federation import pending_count
from healthcard.federation.natsbus import NatsBus
from healthcard.federation.nodes import CityAnnouncer, FederationRunner, NodeIdentity
from healthcard.issuance.keycentre import KeyCentre
from healthcard.settings import Settings
from healthcard.storage import tables as t
from healthcard.storage.db import Database

from .cardcentre_fixtures import NOW
from .federation_fixtures import PrivateNats, namespace, nats_bus
from .test_federation_nodes import HOSPITAL, LI, ZHANG, city_node, issue, verify
from .test_federation_nodes import Nodes as _Nodes

BURST = 1000


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def count(db: Database, table: type[t.Base], *where: object) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(table).where(*where)) or 0  # type: ignore[arg-type]


def pointer(app: App, announcer: CityAnnouncer, n: int) -> None:
    """One closed visit's pointer, announced in its own transaction (the hook's own call)."""
    with app.db.uow() as uow:
        announcer.record(
            uow,
            f"resident-{n:04d}",
            100_000 + n,
            kind="outpatient",
            day=dt.date(2026, 11, 24),
            institution_code=HOSPITAL,
        )
        uow.commit()


def restarted_city(url: str, folder: Path, keys: KeyCentre, clock: FixedClock) -> App:
    settings = Settings(
        data_dir=folder,
        database_url=url,
        token_secret=secrets.token_bytes(32),
        node_role="city",
        node_code="4101",
    )
    return bootstrap(settings, clock=clock, key_centre=lambda: keys)


@pytest.mark.slow
@pytest.mark.nats
def test_announcements_survive_nats_killed_and_the_city_node_restarted(
    tmp_path: Path, platform_keys: KeyCentre
) -> None:
    server = PrivateNats(tmp_path)
    server.start()
    clock = FixedClock(NOW)
    ns = namespace()
    buses: list[NatsBus] = []

    def bus() -> NatsBus:
        buses.append(nats_bus(server.url, ns))
        return buses[-1]

    urls = {}
    for name in ("zhengzhou", "province", "nation"):
        (tmp_path / name).mkdir()
        urls[name] = f"sqlite:///{tmp_path / name / 'healthcard.db'}"
    city = city_node(urls["zhengzhou"], "4101", platform_keys, clock, tmp_path / "zhengzhou")
    province, nation = Database(urls["province"]), Database(urls["nation"])
    province.upgrade()
    nation.upgrade()
    upper = [
        FederationRunner(province, bus(), clock, NodeIdentity.of("province", "41"), ack_wait=2),
        FederationRunner(nation, bus(), clock, NodeIdentity.of("national", "CN"), ack_wait=2),
    ]
    city_runner = FederationRunner(city.db, bus(), clock, city.identity, ack_wait=2)
    runners = [city_runner, *upper]
    try:
        for runner in runners:
            runner.start()
        issue(city, ZHANG, "张三", "410102-01", "410100")
        issue(city, LI, "李四", "410102-01", "410100")
        announcer = CityAnnouncer("4101", clock)
        for n in range(BURST):
            pointer(city, announcer, n)
            if n == 300:  # NATS goes away in the middle of the burst …
                wait_for(lambda: count(province, t.RecordPointer) >= 50, 60, "the chain to get going")
                server.stop()
                city.cards.report_lost("clerk-41", LI, "lost on the bus")  # a card change in the outage
            if n == 500:  # … and the city node stops too: its relay thread and its database
                city_runner.stop()
                city.db.dispose()
            if n == 550:
                server.start()
            if n == 600:  # the city node comes back as a new process would: a fresh composition root
                city = restarted_city(urls["zhengzhou"], tmp_path / "zhengzhou", platform_keys, clock)
                city_runner = FederationRunner(city.db, bus(), clock, city.identity, ack_wait=2)
                runners.append(city_runner)
                city_runner.start()
        wait_for(lambda: count(province, t.RecordPointer) >= BURST, 120, "every pointer at the province")
        wait_for(
            lambda: count(nation, t.NationalCard, t.NationalCard.status == "LOST") == 1, 60, "the lost card"
        )
        time.sleep(2.5)  # longer than ack_wait: a redelivery would have come by now
    finally:
        for runner in runners:
            runner.stop()

    try:
        assert count(province, t.RecordPointer) == BURST
        assert count(province, t.InboxEntry, t.InboxEntry.consumer == "province-41") == BURST + count(
            city.db, t.OutboxMessage, t.OutboxMessage.subject == "up.41.4101.card"
        )  # each message once, pointers and card events
        for db in (city.db, province, nation):
            with db.uow() as uow:
                assert pending_count(uow) == 0
        assert server.restarts == 2  # the outage did happen
        nodes = _Nodes(city, city, province, nation, urls | {"kaifeng": urls["zhengzhou"]}, [])
        code, output = verify(nodes, "4101")
        assert code == 0, output
    finally:
        buses[0].delete_streams()  # one namespace: the streams of all of them
        for b in buses:
            b.close()
        for db in (city.db, province, nation):
            db.dispose()
        server.stop()
