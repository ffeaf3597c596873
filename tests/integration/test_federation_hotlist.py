"""The hot list flowing downward across five nodes, each with a database of its own: Zhengzhou
(4101, Henan) with a real card centre, Foshan (4406, Guangdong), the provinces 41 and 44 and the
nation.  A Zhengzhou card reported lost is refused at Foshan — by :func:`refusal` and by the
signed hot list of province 41 that Foshan's terminals download — and no longer once it is
found; a replaced card's old chip is refused and its new one not; a delta delivered again, or an
older one late under a fresh id, changes nothing.

Over the in-process bus on SQLite files and PostgreSQL schemas, and over the machine's NATS
server (JetStream) on SQLite files."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from healthcard.bootstrap import App
from healthcard.clock import FixedClock, local_date
from healthcard.errors import HotListed
from healthcard.federation import Bus, InProcessBus, Outgoing, encode
from healthcard.federation.hotlist import hotlist_subject, refusal
from healthcard.federation.nodes import FederationRunner, NodeIdentity, until_quiet
from healthcard.issuance.chips import SimulatedChips
from healthcard.issuance.keycentre import KeyCentre
from healthcard.storage import tables as t
from healthcard.storage.db import Database
from healthcard.terminal import hotlist as hot

from .cardcentre_fixtures import NOW
from .conftest import scratch_database_url
from .federation_fixtures import machine_nats, nats_bus
from .test_federation_nodes import ZHANG, city_node, issue


@dataclass
class Nodes:
    zhengzhou: App
    foshan: App
    nation: Database
    runners: list[FederationRunner]
    keys: KeyCentre

    def quiet(self) -> None:
        until_quiet(self.runners, timeout=0.2)

    def refused(self, chip: str) -> HotListed | None:
        with self.foshan.db.session() as session:
            return refusal(session, ZHANG, chip)

    def terminal_refuses(self, chip: str) -> bool:
        """Does a Foshan terminal, having downloaded Foshan's hot list of province 41, refuse it?"""
        held = hot.TerminalHotList()
        held.load(
            hot.encode(self.foshan.cards.hotlist("41")),
            trust=self.keys.trust_store(),
            today=local_date(self.foshan.clock),
        )
        return held.find(bytes.fromhex(chip)) is not None


@contextmanager
def five_nodes(
    request: pytest.FixtureRequest, kind: str, bus: Bus, keys: KeyCentre, folder: Path
) -> Iterator[Nodes]:
    clock = FixedClock(NOW)
    with ExitStack() as stack:
        urls = {}
        for name in ("zhengzhou", "foshan", "henan", "guangdong", "nation"):
            (folder / name).mkdir()
            urls[name] = stack.enter_context(
                contextmanager(scratch_database_url)(request, kind, folder / name)
            )
        zz = city_node(urls["zhengzhou"], "4101", keys, clock, folder / "zhengzhou")
        fs = city_node(urls["foshan"], "4406", keys, clock, folder / "foshan")  # no cards of its own
        others = {name: Database(urls[name]) for name in ("henan", "guangdong", "nation")}
        for db in others.values():
            db.upgrade()
        runners = [
            FederationRunner(zz.db, bus, clock, zz.identity, ack_wait=2),
            FederationRunner(fs.db, bus, clock, fs.identity, ack_wait=2),
            FederationRunner(others["henan"], bus, clock, NodeIdentity.of("province", "41"), ack_wait=2),
            FederationRunner(others["guangdong"], bus, clock, NodeIdentity.of("province", "44"), ack_wait=2),
            FederationRunner(others["nation"], bus, clock, NodeIdentity.of("national", "CN"), ack_wait=2),
        ]
        try:
            yield Nodes(zz, fs, others["nation"], runners, keys)
        finally:
            for runner in runners:
                runner.stop()
            for db in (zz.db, fs.db, *others.values()):
                db.dispose()


def chips(app: App) -> list[str]:
    """ZHANG's chips at Zhengzhou, oldest first."""
    with app.db.session() as session:
        return list(
            session.scalars(select(t.Card.chip_serial).where(t.Card.card_number == ZHANG).order_by(t.Card.id))
        )


def federated(app: App) -> dict[str, tuple[bool, int]]:
    with app.db.session() as session:
        return {
            r.chip_serial: (r.listed, r.version) for r in session.scalars(select(t.FederatedHotListEntry))
        }


def listed_here(app: App, chip: str) -> int:
    """How many rows of the node's own signed hot lists list ``chip`` now."""
    with app.db.session() as session:
        query = select(func.count()).where(
            t.HotListEntry.chip_serial == chip, t.HotListEntry.removed_version.is_(None)
        )
        return session.scalar(query) or 0


def scenario(nodes: Nodes) -> None:
    zz = nodes.zhengzhou
    issue(zz, ZHANG, "张三", "410102-01", "410100")
    nodes.quiet()
    (chip,) = chips(zz)
    assert nodes.refused(chip) is None and federated(nodes.foshan) == {}  # issued, handed over: no delta

    zz.cards.report_lost("clerk-41", ZHANG, "lost on the train")
    nodes.quiet()
    refused = nodes.refused(chip)
    assert isinstance(refused, HotListed)
    assert (refused.card_number, refused.reason) == (ZHANG, "lost")
    assert nodes.terminal_refuses(chip)  # offline, from Foshan's signed list of province 41
    lost = federated(nodes.foshan)[chip]
    assert lost[0] is True
    assert federated(zz)[chip] == lost  # its own card came back: recorded, harmless
    assert listed_here(zz, chip) == 1  # … and not listed a second time by the delta

    zz.cards.recover("clerk-41", ZHANG)
    nodes.quiet()
    assert nodes.refused(chip) is None
    assert not nodes.terminal_refuses(chip)
    found = federated(nodes.foshan)[chip]
    assert found[0] is False and found[1] > lost[1]

    # every delta published again, and the old "lost" one late under a fresh id: nothing changes
    with nodes.nation.uow() as uow:
        uow.session.execute(update(t.OutboxMessage).values(published_at=None))
        first = uow.session.scalars(
            select(t.OutboxMessage)
            .where(t.OutboxMessage.subject == hotlist_subject("41"))
            .order_by(t.OutboxMessage.id)
        ).first()
        assert first is not None and first.payload["listed"] is True
        uow.commit()
    version = nodes.foshan.cards.hotlist_version("41")
    nodes.runners[0].bus.publish(
        [Outgoing(first.subject, encode(first.payload), "hotlist:late-" + secrets.token_hex(4))]
    )
    nodes.quiet()
    assert federated(nodes.foshan)[chip] == found
    assert nodes.refused(chip) is None
    assert nodes.foshan.cards.hotlist_version("41") == version  # the signed list did not move

    # lost again and replaced: the old chip is refused, the new one is not
    zz.cards.report_lost("clerk-41", ZHANG, "lost again")
    zz.cards.replace("admin-41", ZHANG, SimulatedChips(), "lost")
    nodes.quiet()
    old, new = chips(zz)
    assert old == chip
    replaced = nodes.refused(old)
    assert replaced is not None and replaced.reason == "replaced"
    assert nodes.refused(new) is None
    assert nodes.terminal_refuses(old) and not nodes.terminal_refuses(new)
    assert listed_here(nodes.foshan, old) == 1


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_lost_card_of_zhengzhou_is_refused_in_foshan(
    request: pytest.FixtureRequest, kind: str, platform_keys: KeyCentre, tmp_path: Path
) -> None:
    with five_nodes(request, kind, InProcessBus(), platform_keys, tmp_path) as nodes:
        scenario(nodes)


@pytest.mark.nats
def test_a_lost_card_of_zhengzhou_is_refused_in_foshan_over_nats(
    request: pytest.FixtureRequest, platform_keys: KeyCentre, tmp_path: Path
) -> None:
    bus = nats_bus(machine_nats())
    bus.ensure_streams()
    try:
        with five_nodes(request, "sqlite", bus, platform_keys, tmp_path) as nodes:
            scenario(nodes)
    finally:
        bus.delete_streams()
        bus.close()
