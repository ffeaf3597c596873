"""The node's messaging as ``healthcard serve`` runs it: a city with a code runs its relay and
answers while its API runs (the app's lifespan), the province and the nation run beside it
(``healthcard federation run``, or in the same process for ``make run``), a city that had cards
before it had a code announces them once (``resync_city``), and a card is then found through
the national and the provincial index (``locate``).  On SQLite and PostgreSQL."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from healthcard.api.app import create_app
from healthcard.bootstrap import App, bootstrap, federation_runner
from healthcard.clock import FixedClock
from healthcard.errors import InvalidValue, NotFound
from healthcard.federation import InProcessBus, pending_count
from healthcard.federation.nodes import FederationRunner, NodeIdentity, resync_city, until_quiet
from healthcard.federation.queries import CardHome, locate
from healthcard.issuance.keycentre import KeyCentre
from healthcard.settings import Settings
from healthcard.storage import tables as t
from healthcard.storage.db import Database

from .cardcentre_fixtures import NOW
from .conftest import scratch_database_url
from .test_federation_nodes import LI, ZHANG, city_node, issue


@contextmanager
def databases(
    request: pytest.FixtureRequest, kind: str, folder: Path, *names: str
) -> Iterator[dict[str, str]]:
    with ExitStack() as stack:
        urls = {}
        for name in names:
            (folder / name).mkdir()
            urls[name] = stack.enter_context(
                contextmanager(scratch_database_url)(request, kind, folder / name)
            )
        yield urls


def upper_levels(urls: dict[str, str], bus: InProcessBus, clock: FixedClock) -> list[FederationRunner]:
    runners = []
    for name, role, code in (("province", "province", "41"), ("nation", "national", "CN")):
        db = Database(urls[name])
        db.upgrade()
        runners.append(FederationRunner(db, bus, clock, NodeIdentity.of(role, code), ack_wait=2))
    return runners


def resident_of(app: App, card: str) -> str:
    with app.db.uow() as uow:
        return app.node.mpi.resolve_card(uow, card)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_city_that_joins_announces_its_cards_once_and_they_are_found(
    request: pytest.FixtureRequest, kind: str, platform_keys: KeyCentre, tmp_path: Path
) -> None:
    clock, bus = FixedClock(NOW), InProcessBus()
    with databases(request, kind, tmp_path, "city", "province", "nation") as urls:
        lone = city_node(urls["city"], "4101", platform_keys, clock, tmp_path / "city")
        # the same database as a lone city first: the demo seeded before the node had a code
        lone.cards.on_card_change = None
        issue(lone, ZHANG, "张三", "410102-01", "410100")
        issue(lone, LI, "李四", "410102-01", "410100")
        with lone.db.session() as session:
            assert session.scalar(select(func.count()).select_from(t.OutboxMessage)) == 0

        assert resync_city(lone.db, "4101", clock, batch=1) == 2
        assert resync_city(lone.db, "4101", clock) == 0  # idempotent
        settings = Settings(data_dir=tmp_path / "city", database_url=urls["city"], node_code="4101")
        city = bootstrap(settings, clock=clock, key_centre=lambda: platform_keys, bus=bus)
        runners = [federation_runner(city, ack_wait=2), *upper_levels(urls, bus, clock)]
        assert runners[0] is not None
        nodes = [r for r in runners if r is not None]
        try:
            for runner in nodes:
                runner.serve()
            until_quiet(nodes, timeout=0.2)
            assert locate(bus, ZHANG) == CardHome(ZHANG, "41", "4101", resident_of(city, ZHANG), "ACTIVE")
            with pytest.raises(NotFound) as raised:
                locate(bus, "440604199001010011")
            assert (raised.value.what, raised.value.key) == ("card", "440604199001010011")
            with pytest.raises(InvalidValue) as refused:
                locate(bus, None)  # type: ignore[arg-type]
            assert refused.value.field == "payload.card"

            # a change after the join is announced by the hook, not the resync
            city.cards.report_lost("clerk-41", LI, "lost on the bus")
            assert resync_city(city.db, "4101", clock) == 0
            until_quiet(nodes, timeout=0.2)
            assert locate(bus, LI).status == "LOST"
        finally:
            for runner in nodes:
                runner.stop()
                runner.db.dispose()
            lone.db.dispose()


def test_the_api_runs_the_nodes_messaging_while_it_runs(
    request: pytest.FixtureRequest, platform_keys: KeyCentre, tmp_path: Path
) -> None:
    clock, bus = FixedClock(NOW), InProcessBus()
    with databases(request, "sqlite", tmp_path, "city", "province", "nation") as urls:
        city = city_node(urls["city"], "4101", platform_keys, clock, tmp_path / "city")
        city.bus = bus
        upper = upper_levels(urls, bus, clock)
        for runner in upper:
            runner.start()
        try:
            with TestClient(create_app(city, federation=True)):
                issue(city, ZHANG, "张三", "410102-01", "410100")
                found = threading.Event()
                for _ in range(200):  # the relay and consumers are threads: wait for the chain
                    with upper[1].db.session() as session:
                        if session.get(t.NationalCard, ZHANG) is not None:
                            found.set()
                            break
                    found.wait(0.05)
                assert found.is_set(), "the card never reached the national index"
                assert locate(bus, ZHANG).city == "4101"
            # the app stopped, and its relay with it: a change now waits in the outbox
            issue(city, LI, "李四", "410102-01", "410100")
            with city.db.uow() as uow:
                assert pending_count(uow) > 0
        finally:
            for runner in upper:
                runner.stop()
                runner.db.dispose()
            city.db.dispose()


def test_a_lone_city_has_no_bus_and_no_runner(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, token_secret=secrets.token_bytes(32))
    Database(settings.db_url).upgrade()
    app = bootstrap(settings, require_schema=True)
    try:
        assert app.bus is None and federation_runner(app) is None
    finally:
        app.close()
