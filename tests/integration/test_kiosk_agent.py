"""The kiosk's reader agent against the platform (real uvicorns, SQLite and PostgreSQL): ``POST
/login`` authenticates the card with the kiosk's SAM, has the card verify the holder's PIN and
asks the platform for the resident's session — the PIN goes no further than the card; wrong
PINs count down and block the card; a workstation that is not a kiosk gets no resident session.
The card centre puts the PIN the resident chose on the card, and nowhere else."""

from __future__ import annotations

import logging

import httpx
import pytest

from healthcard.agent import Agent, SamSlot, SimulatedSlot
from healthcard.issuance.chips import SimulatedChips
from healthcard.platform.access import Carrier, Role
from healthcard.storage import tables as t

from .agent_fixtures import agent_served, workstation
from .cardcentre_fixtures import application
from .kiosk_fixtures import KIOSK_CARD, KIOSK_NAME, PIN, SLOT, WRONG_PIN, Kiosk, make_kiosk
from .platform_fixtures import Platform, served
from .test_visit_flow import count


@pytest.fixture
def kiosk(platform: Platform) -> Kiosk:
    return make_kiosk(platform)


def test_card_and_pin_open_the_residents_session(
    platform: Platform, kiosk: Kiosk, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with served(platform.app) as url, agent_served(kiosk.agent(platform, url)) as agent:
        answer = agent.post("/login", json={"pin": PIN})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["card_number"] == KIOSK_CARD and body["name"] == KIOSK_NAME
        assert body["reader"] == SLOT and body["expires_in"] > 0
        with httpx.Client(base_url=url) as api:
            me = api.get("/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
        assert me.status_code == 200, me.text
        actor = me.json()
        assert actor["role"] == Role.RESIDENT.value and actor["resident_id"] == kiosk.resident_id
        assert actor["carrier"] == Carrier.CARD.value
        # the login is audited on the platform; the PIN is nowhere
        assert count(platform, t.AuditEntry, resident_id=kiosk.resident_id, action="login") == 1
    assert PIN not in caplog.text


def test_three_wrong_pins_block_the_card(platform: Platform, kiosk: Kiosk) -> None:
    with served(platform.app) as url, agent_served(kiosk.agent(platform, url)) as agent:
        tries = [agent.post("/login", json={"pin": WRONG_PIN}) for _ in range(3)]
        assert [a.status_code for a in tries] == [422, 422, 423]
        assert [a.json()["code"] for a in tries] == ["pin-wrong", "pin-wrong", "pin-blocked"]
        assert [a.json()["tries_left"] for a in tries] == [2, 1, 0]
        assert tries[0].json()["field"] == "pin" and "access_token" not in tries[0].json()
        fourth = agent.post("/login", json={"pin": PIN})  # the right PIN: too late
        assert fourth.status_code == 423 and fourth.json()["code"] == "pin-blocked"
        assert agent.post("/pin", json={"pin": PIN}).status_code == 423
        bad = agent.post("/login", json={"pin": "12345"})
        assert bad.status_code == 422 and bad.json()["field"] == "pin"
    assert count(platform, t.AuditEntry, resident_id=kiosk.resident_id, action="login") == 0


def test_a_card_without_pin_and_a_workstation_get_no_session(platform: Platform, kiosk: Kiosk) -> None:
    with served(platform.app) as url:
        # 张三's card was issued without a PIN
        with agent_served(workstation(platform, url)) as agent:
            answer = agent.post("/login", json={"pin": PIN})
            assert answer.status_code == 409 and answer.json()["code"] == "no-pin"
        # the hospital's workstation SAM with 李芳's card: the PIN is right, the terminal no kiosk
        desk = Agent(
            readers=[SimulatedSlot("sim-1", kiosk.chip)],
            sam=SamSlot.from_image(platform.sam, "sam-hospital"),
            clock=platform.clock,
            platform_url=url,
        )
        with agent_served(desk) as agent:
            answer = agent.post("/login", json={"pin": PIN})
            assert answer.status_code == 403, answer.text
            assert answer.json()["source"] == "platform"


def test_no_card_and_no_platform(platform: Platform, kiosk: Kiosk) -> None:
    with agent_served(kiosk.agent(platform, None)) as agent:
        answer = agent.post("/login", json={"pin": PIN})
        assert answer.status_code == 409 and answer.json()["code"] == "no-platform"
    with served(platform.app) as url, agent_served(kiosk.agent(platform, url)) as agent:
        agent.post("/remove", json={})
        answer = agent.post("/login", json={"pin": PIN})
        assert answer.status_code == 409 and answer.json()["code"] == "no-card"


# --- the card centre: the resident's PIN onto the chip -----------------------------------------------
def test_the_card_centre_writes_the_chosen_pin_and_keeps_it_nowhere(
    platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cards = platform.app.cards
    raw = application(name="王五", birth_date="1992-01-01", id_number="410102199201010017", immunizations=[])
    number = cards.submit("clerk-41", raw, collection_point="410102-01").number
    cards.approve("admin-41", number)
    chips = SimulatedChips()
    for bad in ("12345", "12345a", "１２３４５６"):
        with pytest.raises(Exception) as refused:
            cards.issue("admin-41", number, chips, pin=bad)
        assert getattr(refused.value, "field", None) == "pin" and bad not in str(refused.value)
    assert cards.application(number).status.value == "APPROVED"  # nothing was written
    card = cards.issue("admin-41", number, chips, pin="753951")
    chip = chips.delivered[bytes.fromhex(card.chip_serial)]
    agent = Agent(readers=[SimulatedSlot("sim-new", chip)], clock=platform.clock)
    assert agent.verify_pin("753951")["verified"] is True
    with platform.app.db.uow() as uow:
        rows = [
            repr(r.__dict__)
            for table in (t.Card, t.Application, t.CardEvent)
            for r in uow.session.query(table).all()
        ]
    assert not any("753951" in row for row in rows)
    assert "753951" not in caplog.text
