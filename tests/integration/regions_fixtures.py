"""A rig for cross-region care (and cross-region settlement, which reuses it): six nodes of the
three-level platform in two provinces, each with a database of its own —

* cities Zhengzhou ``4101`` and Hebi ``4106`` (Henan ``41``), Foshan ``4406`` (Guangdong ``44``),
  each wired by :func:`healthcard.bootstrap.bootstrap` as a city node with a code on the given
  bus (so ``node.regions`` is set, the city's answers are served, its visits go home);
* the province nodes ``41`` and ``44`` and the national node ``CN``.

Foshan has a hospital, :data:`FOSHAN_HOSPITAL` (佛山市第一人民医院), with a terminal
(:data:`FOSHAN_TERMINAL`, an :class:`Actor` logged in with its SAM) and a clinician
(:data:`FOSHAN_DOCTOR`).  Zhengzhou has 郑州市中原区人民医院 (``410102001``, as
``seed_organisation`` makes it) and a collection point ``410102-01``; Hebi a collection point
``410602-01``.

Use::

    with regions(request, "sqlite", bus, platform_keys, tmp_path) as rig:
        zhang = rig.issue("zhengzhou", ZHANG, "张三")      # the card's chip serial
        rig.quiet()                                       # indexes up to the nation
        swipe = rig.foshan.node.swipe(FOSHAN_TERMINAL, card_number=ZHANG, chip_serial=zhang)

``bus``: an :class:`InProcessBus` or :func:`federation_fixtures.nats_bus` (the caller deletes
the NATS streams after).  Every runner serves its node's queries from the start; ``quiet()``
steps them all until nothing moves.  ``rig.cities[code]`` is the :class:`App` of a city,
``rig.province["41"]`` / ``rig.nation`` the databases of the others."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from healthcard.bootstrap import App, bootstrap, federation_runner
from healthcard.clock import FixedClock
from healthcard.federation import Bus
from healthcard.federation.nodes import FederationRunner, NodeIdentity, until_quiet
from healthcard.issuance.chips import SimulatedChips
from healthcard.issuance.identity import check_digit
from healthcard.issuance.keycentre import KeyCentre
from healthcard.issuance.organisation import Organisation
from healthcard.platform.access import Actor, Carrier, Role
from healthcard.settings import Settings
from healthcard.storage import tables as t
from healthcard.storage.db import Database

from .cardcentre_fixtures import NOW, application, seed_organisation
from .conftest import scratch_database_url

ZHANG = "410102199003070019"  # 张三 of Zhengzhou
LI = "41010219850101001" + check_digit("41010219850101001")  # 李四 of Zhengzhou
ZHAO = "41060219880808003" + check_digit("41060219880808003")  # 赵六 of Hebi
ZHENGZHOU_HOSPITAL = "410102001"
FOSHAN_HOSPITAL = "440604001"
FOSHAN_HOSPITAL_NAME = "佛山市第一人民医院"
FOSHAN_TERMINAL = Actor(
    "T-440604001-01", Role.TERMINAL, institution_code=FOSHAN_HOSPITAL, carrier=Carrier.TERMINAL
)
FOSHAN_DOCTOR = Actor("dr-chen", Role.CLINICIAN, institution_code=FOSHAN_HOSPITAL)

#: name → (city code, the card centre's city area, collection point)
CITIES = {
    "zhengzhou": ("4101", "410100", "410102-01"),
    "hebi": ("4106", "410600", "410602-01"),
    "foshan": ("4406", "440600", None),
}


@dataclass
class Regions:
    cities: dict[str, App]  # by city code
    province: dict[str, Database]  # by province code
    nation: Database
    runners: dict[str, FederationRunner]  # by node code
    clock: FixedClock

    @property
    def zhengzhou(self) -> App:
        return self.cities["4101"]

    @property
    def hebi(self) -> App:
        return self.cities["4106"]

    @property
    def foshan(self) -> App:
        return self.cities["4406"]

    def quiet(self) -> None:
        """Step every node's relay and consumers until nothing moves."""
        until_quiet(self.runners.values(), timeout=0.2)

    def issue(self, city: str, number: str, name: str) -> str:
        """Issue and activate a card for a new resident of ``city`` (zhengzhou, hebi): its chip
        serial."""
        code, area, point = CITIES[city]
        assert point is not None, f"{city} issues no cards in this rig"
        app = self.cities[code]
        born = f"{number[6:10]}-{number[10:12]}-{number[12:14]}"
        raw = application(id_number=number, name=name, birth_date=born, immunizations=[("卡介苗", born)])
        submitted = app.cards.submit("clerk-41", raw | {"city_code": area}, collection_point=point)
        app.cards.approve("admin-41", submitted.number)
        app.cards.issue("admin-41", submitted.number, SimulatedChips())
        app.cards.activate("clerk-41", number)
        return chip_of(app, number)


def chip_of(app: App, number: str) -> str:
    """The chip serial of the newest chip of card ``number`` at its home city."""
    with app.db.session() as session:
        chip = session.scalar(
            select(t.Card.chip_serial).where(t.Card.card_number == number).order_by(t.Card.id.desc()).limit(1)
        )
    assert chip is not None
    return chip


def city_app(url: str, code: str, keys: KeyCentre, clock: FixedClock, folder: Path, bus: Bus) -> App:
    """A city node with a code on ``bus``, its schema current, its organisation seeded."""
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
    app = bootstrap(settings, clock=clock, key_centre=lambda: keys, bus=bus)
    seed_organisation(app.db)
    org = Organisation(app.db)
    if code == "4106":
        org.add_collection_point(
            "410602-01", name="鹤山区社区卫生服务中心", area="410602", institution="41000000001"
        )
    if code == "4406":
        org.add_institution(
            FOSHAN_HOSPITAL,
            name=FOSHAN_HOSPITAL_NAME,
            area="440604",
            kind="hospital",
            issues=False,
            level="city",
        )
    return app


@contextmanager
def regions(
    request: pytest.FixtureRequest, kind: str, bus: Bus, keys: KeyCentre, folder: Path
) -> Iterator[Regions]:
    """The six nodes on ``kind`` (sqlite | postgresql) databases over ``bus``; stopped and
    disposed after."""
    clock = FixedClock(NOW)
    bus.ensure_streams()
    with ExitStack() as stack:
        urls = {}
        for name in ("4101", "4106", "4406", "41", "44", "CN"):
            (folder / name).mkdir()
            urls[name] = stack.enter_context(
                contextmanager(scratch_database_url)(request, kind, folder / name)
            )
        cities = {
            code: city_app(urls[code], code, keys, clock, folder / code, bus)
            for code in ("4101", "4106", "4406")
        }
        others = {}
        for code in ("41", "44", "CN"):
            others[code] = Database(urls[code])
            others[code].upgrade()
        runners: dict[str, FederationRunner] = {}
        try:
            for code, app in cities.items():
                runner = federation_runner(app, ack_wait=2)
                assert runner is not None
                runners[code] = runner
            for code in ("41", "44"):
                runners[code] = FederationRunner(
                    others[code], bus, clock, NodeIdentity.of("province", code), ack_wait=2
                )
            runners["CN"] = FederationRunner(
                others["CN"], bus, clock, NodeIdentity.of("national", "CN"), ack_wait=2
            )
            for runner in runners.values():
                runner.serve()
            yield Regions(cities, {"41": others["41"], "44": others["44"]}, others["CN"], runners, clock)
        finally:
            for runner in runners.values():
                runner.stop()
            for app in cities.values():
                app.close()
            for db in others.values():
                db.dispose()
