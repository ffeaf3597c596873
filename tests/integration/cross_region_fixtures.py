"""Two city nodes for cross-region settlement, each with its own database and its own NCMS pool:
Zhengzhou (4101, Henan; the demo pool, its residents insured for 2026 — settlement_fixtures'
world) and Foshan (4406, Guangdong; pool ``foshan`` with the example policy's figures and a
catalog that adds an item Zhengzhou's lacks).  Foshan knows R-ZHANG of Zhengzhou as the visitor
V-ZHANG (a row of ``visitors``, written here as cross-region care would at the swipe).  Each
city answers its queries (``settle``, ``quote``, ``clearing``) on the bus given."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from healthcard.clock import FixedClock
from healthcard.federation import Bus
from healthcard.federation.queries import Served, serve_queries
from healthcard.federation.settlement import BusHomes, settlement_answers
from healthcard.keys.certificates import TrustStore
from healthcard.platform.node import Node
from healthcard.platform.settlement.catalog import Catalog, load_catalog, parse_catalog
from healthcard.platform.settlement.policy import Policy, load_policy, parse_policy
from healthcard.platform.settlement.service import Settlements
from healthcard.storage import tables as t
from healthcard.storage.db import Database

from .conftest import scratch_database_url
from .settlement_fixtures import NOW, World, make_world

ZHENGZHOU, FOSHAN = "4101", "4406"
FOSHAN_HOSPITAL = "440604001"  # 佛山市第一人民医院: city level, outside the demo pool
FOSHAN_TOWNSHIP = "440605101"  # a township health centre of Nanhai
VISITOR, HOME_RESIDENT = "V-ZHANG", "R-ZHANG"
LOCAL_ONLY_ITEM = "GD0001"  # in Foshan's catalog (class A there), not in Zhengzhou's


def _data(folder: str) -> dict[str, Any]:
    text = (
        resources.files("healthcard.platform").joinpath("data", folder, "demo-2026.json").read_text("utf-8")
    )
    return dict(json.loads(text))


def foshan_policy() -> Policy:
    return parse_policy(_data("policies") | {"pool": "foshan", "name": "佛山统筹区 2026", "areas": ["4406"]})


def foshan_catalog() -> Catalog:
    data = _data("catalogs")
    extra = {"code": LOCAL_ONLY_ITEM, "name": "岭南特色理疗", "kind": "service", "class": "A", "unit": "次"}
    return parse_catalog(data | {"pool": "foshan", "items": [*data["items"], extra | {"price_fen": 3333}]})


def foshan_service(clock: FixedClock) -> Settlements:
    policy, catalog = foshan_policy(), foshan_catalog()

    def policies(pool: str, year: int) -> Policy:
        return policy if pool == "foshan" else load_policy(pool, year)

    def catalogs(pool: str, year: int) -> Catalog:
        return catalog if pool == "foshan" else load_catalog(pool, year)

    return Settlements(clock, policies=policies, catalogs=catalogs)


def make_foshan(db: Database, bus: Bus) -> World:
    clock = FixedClock(NOW)
    with db.uow() as uow:
        for code, name, area, level in (
            (FOSHAN_HOSPITAL, "佛山市第一人民医院", "440604", "city"),
            (FOSHAN_TOWNSHIP, "南海区大沥镇卫生院", "440605", "township"),
        ):
            uow.session.add(
                t.Institution(
                    code=code, name=name, kind="hospital", area_code=area, issues_cards=False, level=level
                )
            )
        uow.session.add(
            t.Resident(
                resident_id=VISITOR,
                id_type="01",
                id_number="410122198001010001",
                name="居民1",
                sex=1,
                birth_date=dt.date(1980, 1, 1),
                created_at=NOW,
                area_code="410122",
            )
        )
        uow.flush()
        uow.session.add(
            t.Visitor(
                resident_id=VISITOR,
                card_number="410122198001010001",
                home_province="41",
                home_city=ZHENGZHOU,
                home_resident_id=HOME_RESIDENT,
                first_seen_at=NOW,
                last_seen_at=NOW,
            )
        )
        uow.commit()
    node = Node(db, clock, token_secret=secrets.token_bytes(32), trust=TrustStore())
    node.settlement.service = foshan_service(clock)
    node.settlement.visitors = BusHomes(bus, FOSHAN, pool="foshan")
    return World(db, clock, node)


@dataclasses.dataclass
class TwoCities:
    zhengzhou: World
    foshan: World
    bus: Bus
    served: list[Served]

    def stop_serving(self) -> None:
        for served in self.served:
            served.close()


@contextmanager
def two_cities(request: pytest.FixtureRequest, kind: str, bus: Bus, folder: Path) -> Iterator[TwoCities]:
    with ExitStack() as stack:
        dbs = []
        for name in ("zhengzhou", "foshan"):
            (folder / name).mkdir()
            db = Database(
                stack.enter_context(contextmanager(scratch_database_url)(request, kind, folder / name))
            )
            db.upgrade()
            stack.callback(db.dispose)
            dbs.append(db)
        zhengzhou, foshan = make_world(dbs[0]), make_foshan(dbs[1], bus)
        served = [
            serve_queries(bus, ZHENGZHOU, settlement_answers(zhengzhou.db, zhengzhou.clock, ZHENGZHOU)),
            serve_queries(
                bus,
                FOSHAN,
                settlement_answers(foshan.db, foshan.clock, FOSHAN, foshan.node.settlement.service),
            ),
        ]
        pair = TwoCities(zhengzhou, foshan, bus, served)
        try:
            yield pair
        finally:
            pair.stop_serving()
