"""Self-service card issuance (自助发卡) at a hospital kiosk, on SQLite and PostgreSQL: the
platform path ``POST /v1/cards/self-service`` for a terminal of kind ``kiosk`` (the card centre's
operator of role ``kiosk`` under the same id) — the card made with the PIN the resident chose,
handed over at once, its image in the dispenser's tray; every refusal (not a kiosk, no approved
application, another name, a PIN that is not 6 digits) writes nothing — and the kiosk's reader
agent: ``POST /issue`` (the PIN twice; the card dispensed into its slot; then a login with the new
card and PIN) and ``POST /dispense``, which opens nothing but a card of its tray."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from healthcard.agent import Agent, CardTray, SimulatedSlot
from healthcard.api.app import create_app
from healthcard.card import image
from healthcard.card.apdu import CommandAPDU
from healthcard.card.cos import CardOS
from healthcard.errors import InvalidValue, NotFound
from healthcard.platform.access import Actor, Carrier, Role
from healthcard.storage import tables as t

from .agent_fixtures import agent_served
from .kiosk_fixtures import PIN, SLOT, Kiosk, make_kiosk
from .platform_fixtures import HOSPITAL, Platform, served
from .selfservice_fixtures import APPLICANT, APPLICANT_NAME, NEW_PIN, SEALER, SelfService, make_self_service


@pytest.fixture
def kiosk(platform: Platform) -> Kiosk:
    return make_kiosk(platform)


@pytest.fixture
def desk(platform: Platform, kiosk: Kiosk, tmp_path: Path) -> SelfService:
    return make_self_service(platform, kiosk, tmp_path / "tray")


@pytest.fixture
def api(platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(platform.app)) as client:
        yield client


def _bearer(api: TestClient, platform: Platform, actor: Actor) -> dict[str, str]:
    token = api.app.state.tokens.issue(actor, platform.clock.now())  # type: ignore[attr-defined]
    return {"Authorization": f"Bearer {token.access_token}"}


def _terminal(terminal_id: str) -> Actor:
    return Actor(terminal_id, Role.TERMINAL, institution_code=HOSPITAL, carrier=Carrier.CARD)


def _counts(platform: Platform) -> dict[str, int]:
    with platform.app.db.uow() as uow:
        return {
            table.name: int(uow.session.scalar(select(func.count()).select_from(table)) or 0)
            for table in t.Base.metadata.sorted_tables
        }


def _verifies(path: Path, pin: str) -> bool:
    card = CardOS(image.load(path, SEALER))
    card.power_on()
    return (
        card.process(CommandAPDU(0x00, 0x20, 0x00, 0x01, bytes.fromhex(pin)).to_bytes())[-2:] == b"\x90\x00"
    )


def test_a_kiosk_issues_the_approved_application_with_the_chosen_pin(
    platform: Platform, desk: SelfService, api: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = {"id_number": APPLICANT, "name": APPLICANT_NAME, "pin": NEW_PIN}
    answer = api.post(
        "/v1/cards/self-service", json=body, headers=_bearer(api, platform, _terminal(desk.kiosk.terminal_id))
    )
    assert answer.status_code == 201, answer.text
    card = answer.json()
    assert card["card_number"] == APPLICANT and card["status"] == "ACTIVE"
    assert NEW_PIN not in answer.text
    # the card the dispenser holds carries the PIN the resident chose
    assert os.listdir(desk.tray) == [f"{card['chip_serial']}.card"]
    assert _verifies(desk.tray / f"{card['chip_serial']}.card", NEW_PIN)
    history = platform.app.cards.card(APPLICANT)
    assert {e.operator for e in history.events} == {desk.kiosk.terminal_id}
    assert platform.app.cards.application(desk.application_number).status == "ISSUED"
    # the PIN is nowhere but the chip
    with platform.app.db.uow() as uow:
        stored = json.dumps(
            [row.data for row in uow.session.scalars(select(t.Application))], ensure_ascii=False
        )
    assert NEW_PIN not in stored and NEW_PIN not in caplog.text


@pytest.mark.parametrize(
    ("who", "body", "status", "field"),
    [
        ("workstation", {}, 403, None),
        ("resident", {}, 403, None),
        ("kiosk", {"pin": "12345"}, 422, "pin"),
        ("kiosk", {"pin": "12345a"}, 422, "pin"),
        ("kiosk", {"name": "赵明"}, 422, "name"),
        ("kiosk", {"id_number": "410102199003070019"}, 404, None),  # 张三: a card, no application
        ("kiosk", {"id_number": "11010519491231002X"}, 404, None),  # nobody
        ("kiosk", {"extra": 1}, 422, "extra"),
    ],
)
def test_refusals_write_nothing(
    platform: Platform,
    desk: SelfService,
    api: TestClient,
    who: str,
    body: dict[str, object],
    status: int,
    field: str | None,
) -> None:
    actors = {
        "kiosk": _terminal(desk.kiosk.terminal_id),
        "workstation": _terminal(platform.terminal_id),
        "resident": Actor("410102199003070019", Role.RESIDENT, resident_id=platform.resident_id),
    }
    before = _counts(platform)
    sent = {"id_number": APPLICANT, "name": APPLICANT_NAME, "pin": NEW_PIN, **body}
    answer = api.post("/v1/cards/self-service", json=sent, headers=_bearer(api, platform, actors[who]))
    assert answer.status_code == status, answer.text
    assert answer.json()["field"] == field
    assert NEW_PIN not in answer.text and str(sent["pin"]) not in answer.text
    assert _counts(platform) == before
    assert not desk.tray.exists() or os.listdir(desk.tray) == []
    assert platform.app.cards.application(desk.application_number).status == "APPROVED"


def test_a_kiosk_that_is_no_operator_of_the_card_centre_is_refused(
    platform: Platform, kiosk: Kiosk, api: TestClient, tmp_path: Path
) -> None:
    served_desk = make_self_service(platform, kiosk, tmp_path / "tray")
    with platform.app.db.uow() as uow:  # the card centre stops the kiosk's issuing
        operator = uow.session.get(t.Operator, kiosk.terminal_id)
        assert operator is not None
        operator.active = False
        uow.commit()
    before = _counts(platform)
    body = {"id_number": APPLICANT, "name": APPLICANT_NAME, "pin": NEW_PIN}
    answer = api.post(
        "/v1/cards/self-service", json=body, headers=_bearer(api, platform, _terminal(kiosk.terminal_id))
    )
    assert answer.status_code == 403, answer.text
    assert _counts(platform) == before
    assert platform.app.cards.application(served_desk.application_number).status == "APPROVED"


# --- the kiosk's reader agent ---------------------------------------------------------------------
def test_the_agent_issues_dispenses_and_the_new_card_logs_in(
    platform: Platform, desk: SelfService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with served(platform.app) as url, agent_served(desk.agent(platform, url)) as agent:
        differ = agent.post(
            "/issue",
            json={"id_number": APPLICANT, "name": APPLICANT_NAME, "pin": NEW_PIN, "pin_again": "975311"},
        )
        assert differ.status_code == 422 and differ.json()["field"] == "pin_again"
        short = agent.post(
            "/issue",
            json={"id_number": APPLICANT, "name": APPLICANT_NAME, "pin": "1234", "pin_again": "1234"},
        )
        assert short.status_code == 422 and short.json()["field"] == "pin"
        assert platform.app.cards.application(desk.application_number).status == "APPROVED"
        wrong = agent.post(
            "/issue", json={"id_number": APPLICANT, "name": "赵明", "pin": NEW_PIN, "pin_again": NEW_PIN}
        )
        assert wrong.status_code == 422 and wrong.json()["field"] == "name"
        assert wrong.json()["source"] == "platform"
        answer = agent.post(
            "/issue",
            json={"id_number": APPLICANT, "name": APPLICANT_NAME, "pin": NEW_PIN, "pin_again": NEW_PIN},
        )
        assert answer.status_code == 200, answer.text
        made = answer.json()
        assert made["card"]["card_number"] == APPLICANT and made["card"]["status"] == "ACTIVE"
        assert made["dispensed"]["name"] == SLOT and made["dispensed"]["card_present"]
        again = agent.post(
            "/issue",
            json={"id_number": APPLICANT, "name": APPLICANT_NAME, "pin": NEW_PIN, "pin_again": NEW_PIN},
        )
        assert again.status_code == 404  # issued: no approved application any more
        # the new card is in the slot: the resident logs in with it and the PIN just chosen
        assert agent.post("/login", json={"pin": PIN}).json()["code"] == "pin-wrong"
        login = agent.post("/login", json={"pin": NEW_PIN})
        assert login.status_code == 200, login.text
        assert login.json()["card_number"] == APPLICANT and login.json()["name"] == APPLICANT_NAME
        with httpx.Client(base_url=url) as http:
            me = http.get("/v1/auth/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"})
        assert me.json()["resident_id"] == platform.app.cards.card(APPLICANT).cards[-1].resident_id
    assert NEW_PIN not in caplog.text


def test_dispense_opens_only_a_card_of_its_tray(platform: Platform, kiosk: Kiosk, tmp_path: Path) -> None:
    tray = tmp_path / "tray"
    tray.mkdir()
    outside = tmp_path / "secret.card"
    image.save(kiosk.chip, outside, SEALER)
    (tray / "00860000000000AA.card").symlink_to(outside)  # a link out of the tray
    image.save(kiosk.chip, tray / "00860000000000BB.card", SEALER)
    agent = Agent(
        readers=[SimulatedSlot(SLOT, platform.chip)], clock=platform.clock, tray=CardTray(tray, SEALER)
    )
    for serial in (
        "../secret",
        "../../etc/passwd",
        "00860000000000A",
        "00860000000000AA/..",
        "",
        "..%2Fsecret",
    ):
        with pytest.raises(InvalidValue) as refused:
            agent.dispense(serial)
        assert refused.value.field == "chip_serial"
    with pytest.raises(InvalidValue):
        agent.dispense("00860000000000AA")  # the link
    with pytest.raises(NotFound):
        agent.dispense("00860000000000CC")
    with agent_served(agent) as http:
        refused_http = http.post("/dispense", json={"chip_serial": "../secret"})
        assert refused_http.status_code == 422 and refused_http.json()["field"] == "chip_serial"
        assert http.post("/dispense", json={"chip_serial": "00860000000000cc"}).status_code == 404
        ok = http.post("/dispense", json={"chip_serial": "00860000000000bb"})
        assert ok.status_code == 200, ok.text
        assert ok.json() == {
            "name": SLOT,
            "kind": "simulated",
            "card_present": True,
            "busy": False,
            "chip_serial": "00860000000000BB",
        }
    without = Agent(readers=[SimulatedSlot(SLOT, platform.chip)], clock=platform.clock)
    with agent_served(without) as http:
        assert http.post("/dispense", json={"chip_serial": "00860000000000BB"}).json()["code"] == "no-tray"
