"""Four nodes of the three-level platform, each with a database of its own: two cities of Henan
(Zhengzhou 4101, Kaifeng 4102) with real card centres, the province (41) and the nation (CN).
Cards are issued, one reported lost and replaced (the new chip's events must win over the old
chip's), one reported lost, a visit closed; the relays and consumers run until quiet;
then the province's and the nation's indexes agree with the cities and ``healthcard federation
verify`` exits 0.  A card event delivered twice, or an older one late, changes nothing.

Over the in-process bus on SQLite files and on PostgreSQL schemas, and over the machine's real
NATS server (JetStream) on SQLite files."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from healthcard.bootstrap import App, bootstrap
from healthcard.cli.main import app as cli
from healthcard.clock import FixedClock
from healthcard.federation import Bus, InProcessBus, Outgoing, encode
from healthcard.federation.nodes import FederationRunner, NodeIdentity, city_subject, until_quiet
from healthcard.issuance.chips import SimulatedChips
from healthcard.issuance.identity import check_digit
from healthcard.issuance.keycentre import KeyCentre
from healthcard.issuance.organisation import Organisation
from healthcard.platform.records import DiagnosisIn, EncounterIn, EncounterKind
from healthcard.settings import Settings
from healthcard.storage import tables as t
from healthcard.storage.db import Database

from .cardcentre_fixtures import NOW, application, seed_organisation
from .conftest import scratch_database_url
from .federation_fixtures import machine_nats, nats_bus

ZHANG = "410102199003070019"  # Zhengzhou
LI = "41010219850101001" + check_digit("41010219850101001")  # Zhengzhou
WANG = "41020219910506003" + check_digit("41020219910506003")  # Kaifeng
HOSPITAL = "410102001"


@dataclass
class Nodes:
    zhengzhou: App
    kaifeng: App
    province: Database
    nation: Database
    urls: dict[str, str]
    runners: list[FederationRunner]

    def quiet(self) -> None:
        until_quiet(self.runners, timeout=0.2)


def city_node(url: str, code: str, keys: KeyCentre, clock: FixedClock, folder: Path) -> App:
    schema = Database(url)
    schema.upgrade()
    schema.dispose()
    settings = Settings(
        data_dir=folder,
        database_url=url,
        token_secret=secrets.token_bytes(32),
        node_role="city",
        node_code=code,
    )
    app = bootstrap(settings, clock=clock, key_centre=lambda: keys)
    seed_organisation(app.db)
    if code == "4102":
        Organisation(app.db).add_collection_point(
            "410202-01", name="龙亭区社区卫生服务中心", area="410202", institution="41000000001"
        )
    return app


def issue(app: App, number: str, name: str, point: str, city: str) -> None:
    born = f"{number[6:10]}-{number[10:12]}-{number[12:14]}"
    raw = application(id_number=number, name=name, birth_date=born, immunizations=[("卡介苗", born)])
    submitted = app.cards.submit("clerk-41", raw | {"city_code": city}, collection_point=point)
    app.cards.approve("admin-41", submitted.number)
    app.cards.issue("admin-41", submitted.number, SimulatedChips())
    app.cards.activate("clerk-41", number)


@contextmanager
def four_nodes(
    request: pytest.FixtureRequest, kind: str, bus: Bus, keys: KeyCentre, folder: Path
) -> Iterator[Nodes]:
    clock = FixedClock(NOW)
    with ExitStack() as stack:
        urls = {}
        for name in ("zhengzhou", "kaifeng", "province", "nation"):
            (folder / name).mkdir()
            urls[name] = stack.enter_context(
                contextmanager(scratch_database_url)(request, kind, folder / name)
            )
        zz = city_node(urls["zhengzhou"], "4101", keys, clock, folder / "zhengzhou")
        kf = city_node(urls["kaifeng"], "4102", keys, clock, folder / "kaifeng")
        province, nation = Database(urls["province"]), Database(urls["nation"])
        province.upgrade()
        nation.upgrade()
        runners = [
            FederationRunner(zz.db, bus, clock, zz.identity),
            FederationRunner(kf.db, bus, clock, kf.identity),
            FederationRunner(province, bus, clock, NodeIdentity.of("province", "41"), ack_wait=2),
            FederationRunner(nation, bus, clock, NodeIdentity.of("national", "CN"), ack_wait=2),
        ]
        try:
            yield Nodes(zz, kf, province, nation, urls, runners)
        finally:
            for runner in runners:
                runner.stop()
            for db in (zz.db, kf.db, province, nation):
                db.dispose()


def verify(nodes: Nodes, city: str) -> tuple[int, str]:
    name = {"4101": "zhengzhou", "4102": "kaifeng"}[city]
    args = ["federation", "verify", "--city", nodes.urls[name], "--city-code", city]
    args += ["--province", nodes.urls["province"], "--national", nodes.urls["nation"]]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    return result.exit_code, result.output


def index(db: Database, table: type[t.ProvinceCard] | type[t.NationalCard]) -> dict[str, tuple[str, str]]:
    with db.session() as session:
        return {r.card_number: (r.city_code, r.status) for r in session.scalars(select(table))}


def count(db: Database, table: type[t.Base]) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def scenario(nodes: Nodes) -> None:
    zz, kf = nodes.zhengzhou, nodes.kaifeng
    issue(zz, ZHANG, "张三", "410102-01", "410100")
    issue(zz, LI, "李四", "410102-01", "410100")
    issue(kf, WANG, "王五", "410202-01", "410200")
    zz.cards.report_lost("clerk-41", LI, "lost on the bus")
    zz.cards.replace("admin-41", LI, SimulatedChips(), "lost")  # old chip REPLACED, a new one ISSUED
    kf.cards.report_lost("clerk-41", WANG, "lost at the market")
    records = zz.node.records
    with zz.db.uow() as uow:
        resident = zz.node.mpi.resolve_card(uow, ZHANG)
        visit = EncounterIn(
            institution_code=HOSPITAL,
            kind=EncounterKind.OUTPATIENT,
            department="内科",
            clinician="王医生",
            started_at=NOW - dt.timedelta(hours=1),
            diagnoses=(DiagnosisIn("J06.900", primary=True),),
        )
        opened = records.open_encounter(uow, resident, visit)
        records.close_encounter(uow, resident, opened.id)
        uow.commit()
    nodes.quiet()

    expected = {ZHANG: ("4101", "ACTIVE"), LI: ("4101", "ISSUED"), WANG: ("4102", "LOST")}
    assert index(nodes.province, t.ProvinceCard) == expected
    assert index(nodes.nation, t.NationalCard) == expected
    with nodes.province.session() as session:
        (pointer,) = session.scalars(select(t.RecordPointer)).all()
        assert (pointer.city_code, pointer.card_number, pointer.resident_id) == ("4101", ZHANG, resident)
        assert (pointer.encounter_id, pointer.kind, pointer.day) == (
            opened.id,
            "outpatient",
            dt.date(2026, 11, 24),
        )
    for city in ("4101", "4102"):
        code, output = verify(nodes, city)
        assert code == 0, output
        assert "clean" in output

    # every card event of Zhengzhou published again, and one old event late under a fresh id
    forwarded = count(nodes.province, t.OutboxMessage)
    with zz.db.uow() as uow:
        uow.session.execute(update(t.OutboxMessage).values(published_at=None))
        first = uow.session.scalars(
            select(t.OutboxMessage).where(t.OutboxMessage.subject == city_subject("4101", "card"))
        ).first()
        assert first is not None and first.payload["status"] == "ISSUED"
        uow.commit()
    stale = Outgoing(first.subject, encode(first.payload), "card:late-" + secrets.token_hex(4))
    nodes.runners[0].bus.publish([stale])
    nodes.quiet()
    assert index(nodes.province, t.ProvinceCard) == expected
    assert index(nodes.nation, t.NationalCard) == expected
    assert count(nodes.province, t.OutboxMessage) == forwarded  # nothing forwarded again
    assert count(nodes.province, t.RecordPointer) == 1
    assert verify(nodes, "4101")[0] == 0

    # an index that disagrees is found
    with nodes.nation.uow() as uow:
        uow.session.execute(
            update(t.NationalCard).where(t.NationalCard.card_number == LI).values(status="ACTIVE")
        )
        uow.commit()
    code, output = verify(nodes, "4101")
    assert code == 1
    assert LI in output and "ISSUED" in output


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_four_nodes_over_the_in_process_bus(
    request: pytest.FixtureRequest, kind: str, platform_keys: KeyCentre, tmp_path: Path
) -> None:
    bus = InProcessBus()
    with four_nodes(request, kind, bus, platform_keys, tmp_path) as nodes:
        scenario(nodes)


@pytest.mark.nats
def test_four_nodes_over_nats(
    request: pytest.FixtureRequest, platform_keys: KeyCentre, tmp_path: Path
) -> None:
    bus = nats_bus(machine_nats())
    bus.ensure_streams()
    try:
        with four_nodes(request, "sqlite", bus, platform_keys, tmp_path) as nodes:
            scenario(nodes)
    finally:
        bus.delete_streams()
        bus.close()
