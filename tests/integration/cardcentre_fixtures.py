"""Shared set-up of the card-centre tests: a key centre (session-wide, it is slow to make), an
organisation (card centres, a collection point, operators) and a resident's application."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from healthcard.card.cos import CardOS, CardState
from healthcard.card.sam import SamOS
from healthcard.clock import FixedClock
from healthcard.demo import tiny_jpeg
from healthcard.issuance.keycentre import KeyCentre, SamRequest, terminal_number
from healthcard.issuance.organisation import OperatorSpec, Organisation
from healthcard.keys.kek import open_kek
from healthcard.keys.keystore import KeyStore
from healthcard.storage.db import Database
from healthcard.terminal.sdk import HealthCardTerminal
from healthcard.terminal.transport import SimulatorTransport

NOW = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)  # 10:00 in Zhengzhou
ROOT = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
PASSPHRASE = "card-centre-tests"


def make_key_centre(folder: Path) -> KeyCentre:
    clock = FixedClock(NOW)
    store = KeyStore.open_or_create(
        folder / "keystore.json", open_kek("passphrase", passphrase=PASSPHRASE), clock
    )
    centre = KeyCentre(store, clock)
    centre.ceremony(ROOT)
    centre.derive_province("41")
    centre.derive_province("44")
    return centre


def seed_organisation(db: Database) -> None:
    org = Organisation(db)
    org.add_institution("41000000001", name="河南省卫生健康委员会", area="410000")
    org.add_institution("44000000001", name="广东省卫生健康委员会", area="440000")
    org.add_institution(
        "410102001", name="郑州市中原区人民医院", area="410102", kind="hospital", issues=False
    )
    org.add_collection_point(
        "410102-01", name="中原区建设路社区卫生服务中心", area="410102", institution="41000000001"
    )
    for spec in (
        OperatorSpec("clerk-41", "采集员小王", "clerk", "41000000001", "410102-01"),
        OperatorSpec("admin-41", "卡管员老李", "card-admin", "41000000001"),
        OperatorSpec("admin-44", "卡管员阿陈", "card-admin", "44000000001"),
        OperatorSpec("kiosk-41", "中原区人民医院自助机", "kiosk", "410102001"),
    ):
        org.add_operator(spec)


def application(**overrides: object) -> dict[str, object]:
    """张三 of Zhengzhou as a collection point takes him."""
    raw: dict[str, object] = {
        "name": "张三",
        "sex": 1,
        "ethnicity": "01",
        "birth_date": "1990-03-07",
        "id_type": "01",
        "id_number": "410102199003070019",
        "photo": tiny_jpeg(),
        "city_code": "410100",
        "addresses": [("1", "河南省郑州市中原区建设路100号")],
        "phones": ["13800138000"],
        "allergies": [("青霉素", "皮疹、呼吸困难")],
        "immunizations": [("卡介苗", "1990-03-08")],
        "abo": 1,
        "rh": "1",
        "other_alert": "高血压",
        "payment_methods": ["03"],
    }
    raw.update(overrides)
    return raw


def terminal_for(centre: KeyCentre, state: CardState, **kwargs: object) -> HealthCardTerminal:
    """A Zhengzhou terminal (its own SAM from the key centre) with ``state`` in the slot."""
    sam = centre.sam(SamRequest(bytes.fromhex("5341304100000009"), terminal_number("410100000009")))
    return HealthCardTerminal(
        SimulatorTransport(CardOS(state)),
        SimulatorTransport(SamOS(sam)),
        **kwargs,  # type: ignore[arg-type]
    )
