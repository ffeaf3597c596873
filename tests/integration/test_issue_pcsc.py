"""Personalisation of a blank card in a PC/SC reader (pcscd + vsmartcard-vpcd + our bridge), as
at a desktop issuing station or a hospital's self-service kiosk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from healthcard.card.cos import CardOS, CardState
from healthcard.card.filesystem import LifeCycle
from healthcard.clock import FixedClock
from healthcard.errors import InvalidValue
from healthcard.issuance.cardcentre import CardCentre
from healthcard.issuance.chips import ReaderChip
from healthcard.issuance.keycentre import KeyCentre
from healthcard.issuance.lifecycle import CardStatus
from healthcard.storage.db import Database
from healthcard.terminal.pcsc import PcscTransport

from .cardcentre_fixtures import NOW, application, make_key_centre, seed_organisation, terminal_for
from .conftest import BridgeFactory, PcscEnv

pytestmark = pytest.mark.pcsc
SERIAL = bytes.fromhex("0086AA0000000042")


@pytest.fixture(scope="module")
def key_centre(tmp_path_factory: pytest.TempPathFactory) -> KeyCentre:
    return make_key_centre(tmp_path_factory.mktemp("keys"))


@pytest.fixture
def centre(database: Database, key_centre: KeyCentre) -> Iterator[CardCentre]:
    seed_organisation(database)
    yield CardCentre(database, FixedClock(NOW), lambda: key_centre)


def blank_chip(key_centre: KeyCentre) -> CardState:
    """A chip as the factory delivers it to Henan: only its transport key."""
    province = key_centre.province("41")
    return CardState.blank(SERIAL, key_centre.card_keys(province, SERIAL)["TKMF"], province.algorithm)


def test_kiosk_personalises_the_card_in_its_reader(
    centre: CardCentre, key_centre: KeyCentre, pcsc: PcscEnv, vpcd: BridgeFactory, tmp_path: Path
) -> None:
    submitted = centre.submit("clerk-41", application(), collection_point="410102-01")
    centre.approve("admin-41", submitted.number)
    state = blank_chip(key_centre)
    vpcd(CardOS(state))
    reader = PcscTransport("Virtual PCD 00 00", timeout=10)
    with pytest.raises(InvalidValue, match="name"):
        centre.issue_at_kiosk(
            "kiosk-41", id_number=submitted.card_number, name="李四", chips=ReaderChip(reader)
        )
    card = centre.issue_at_kiosk(
        "kiosk-41", id_number=submitted.card_number, name="张三", chips=ReaderChip(reader)
    )
    reader.disconnect()
    assert card.status is CardStatus.ACTIVE and card.chip_serial == SERIAL.hex().upper()
    assert state.lifecycle is LifeCycle.ISSUED
    with terminal_for(key_centre, state) as terminal:
        assert terminal.read_holder().name == "张三"
        assert terminal.read_issuer().issue_serial == card.issue_serial
    # the same card again: it is no longer blank
    again = centre.submit(
        "clerk-41", application(id_number="410602198805120025", name="王芳", sex=2, birth_date="1988-05-12")
    )
    centre.approve("admin-41", again.number)
    with pytest.raises(InvalidValue, match="personalised already"):
        centre.issue("admin-41", again.number, ReaderChip(PcscTransport("Virtual PCD 00 00", timeout=10)))
