"""A cloned card at the platform (issue 9, "Card attacks"), on SQLite and PostgreSQL.

The resident's card image — every file and key — copied to another chip: the card itself gives
the clone away (its keys are diversified from the original chip's serial, so the terminal's SAM
derives other keys and EXTERNAL AUTHENTICATE fails: tests/unit/test_card_attacks.py), and a
terminal that reports the swipe anyway, with the chip serial it read from the ATR, is refused by
the platform because the chip is not the card's registered chip.  The refusal is an audit entry
(denied, the terminal and its institution, the card number and both chips) in the resident's
chain: the card centre lists it (``Node.card_security_events``), the resident's "who looked" shows it, the
hash chain still verifies.  The attacker learns nothing: not the registered chip, no key."""

from __future__ import annotations

import copy

import pytest
from fastapi.testclient import TestClient

from healthcard.api.app import create_app
from healthcard.card.cos import CardOS
from healthcard.card.sam import SamOS
from healthcard.errors import AuthenticationFailed, HotListed, NotFound, PermissionDenied
from healthcard.platform.access import Actor, Carrier, Role
from healthcard.platform.node import CHIP_REFUSED, HOTLIST_REFUSED
from healthcard.terminal.sdk import HealthCardTerminal
from healthcard.terminal.transport import SimulatorTransport

from .kiosk_fixtures import KIOSK_CARD, make_kiosk
from .platform_fixtures import CARD, HOSPITAL, Platform

CLONE_CHIP = "0081866BDEADBEEF"
CARD_CENTRE = Actor("admin-41", Role.CARD_ADMIN)


def _terminal_actor(platform: Platform) -> Actor:
    return Actor(platform.terminal_id, Role.TERMINAL, institution_code=HOSPITAL, carrier=Carrier.TERMINAL)


def _terminal_token(client: TestClient, platform: Platform) -> str:
    with platform.terminal() as terminal:
        nonce = client.post("/v1/auth/terminal/challenge", json={"terminal_id": platform.terminal_id}).json()[
            "nonce"
        ]
        _, signature = terminal.sign_challenge(bytes.fromhex(nonce))
    answer = client.post(
        "/v1/auth/terminal",
        json={"terminal_id": platform.terminal_id, "nonce": nonce, "signature": signature.hex()},
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def test_a_cloned_card_is_refused_by_the_card_and_by_the_platform_and_audited(platform: Platform) -> None:
    node = platform.app.node
    clone = copy.deepcopy(platform.chip)
    clone.serial = bytes.fromhex(CLONE_CHIP)

    # the card side: the terminal's SAM derives this chip's keys, the copied keys do not match
    terminal = HealthCardTerminal(
        SimulatorTransport(CardOS(clone)),
        SimulatorTransport(SamOS(platform.sam)),
        trust=platform.key_centre.trust_store(),
    )
    terminal.open()
    assert terminal.serial.hex().upper() == CLONE_CHIP
    with pytest.raises(AuthenticationFailed):
        terminal.read_holder()

    # the platform side: the swipe reported with the clone's chip serial, over the API
    client = TestClient(create_app(platform.app))
    token = _terminal_token(client, platform)
    refused = client.post(
        "/v1/swipes",
        json={"card_number": CARD, "chip_serial": CLONE_CHIP},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert refused.status_code == 404, refused.text
    assert refused.json()["code"] == "not-found"
    assert platform.chip_serial.upper() not in refused.text.upper()  # the real chip stays secret

    events = node.card_security_events(CARD_CENTRE)
    assert len(events) == 1
    event = events[0]
    assert (event.action, event.what, event.outcome) == ("deny", CHIP_REFUSED, "denied")
    assert event.actor == platform.terminal_id and event.role == "terminal"
    assert event.institution_code == HOSPITAL
    assert event.resident_id == platform.resident_id
    assert CLONE_CHIP in event.why and CARD in event.why and platform.chip_serial.upper() in event.why
    assert event.why.startswith("swipe refused")

    # the resident sees it among who touched the record; the chain still verifies
    with node.db.uow() as uow:
        seen = node.audit.who_looked(uow, [platform.resident_id])
    assert any(e.what == CHIP_REFUSED and e.outcome == "denied" for e in seen)
    report = node.verify_audit(Actor("auditor", Role.AUDITOR))
    assert report.ok, report.problems

    # the genuine chip still swipes, and adds no security event
    swiped = client.post(
        "/v1/swipes",
        json={"card_number": CARD, "chip_serial": platform.chip_serial},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert swiped.status_code == 200, swiped.text
    assert len(node.card_security_events(CARD_CENTRE)) == 1


def test_a_real_chip_presented_with_another_card_number_is_refused_and_audited(platform: Platform) -> None:
    node = platform.app.node
    other_number = "410102198001010011"
    with pytest.raises(NotFound) as refused:
        node.swipe(_terminal_actor(platform), card_number=other_number, chip_serial=platform.chip_serial)
    assert platform.resident_id not in str(refused.value)
    (event,) = node.card_security_events(CARD_CENTRE)
    assert event.resident_id is None  # no card of that number here: the chain of no resident
    assert other_number in event.why and platform.chip_serial.upper() in event.why
    assert event.institution_code == HOSPITAL and event.outcome == "denied"


def test_only_the_card_centre_auditors_and_admins_read_the_refusals(platform: Platform) -> None:
    node = platform.app.node
    with pytest.raises(NotFound):
        node.swipe(_terminal_actor(platform), card_number=CARD, chip_serial=CLONE_CHIP)
    for reader in (Actor("auditor", Role.AUDITOR), Actor("admin", Role.ADMIN), CARD_CENTRE):
        assert len(node.card_security_events(reader)) == 1
    for outsider in (Actor("dr-wang", Role.CLINICIAN, institution_code=HOSPITAL), _terminal_actor(platform)):
        with pytest.raises(PermissionDenied):
            node.card_security_events(outsider)


def test_a_cloned_card_at_a_kiosk_opens_no_session_and_is_audited(platform: Platform) -> None:
    """The kiosk's card login (``Node.card_login``) makes the same check as the swipe."""
    node = platform.app.node
    kiosk = make_kiosk(platform)
    with platform.app.db.uow() as uow:
        terminal = node.terminals.get(uow, kiosk.terminal_id).actor()
    with pytest.raises(NotFound):
        node.card_login(terminal, card_number=KIOSK_CARD, chip_serial=CLONE_CHIP)
    (event,) = node.card_security_events(CARD_CENTRE)
    assert event.why.startswith("card login refused") and CLONE_CHIP in event.why
    assert event.actor == kiosk.terminal_id and event.resident_id == kiosk.resident_id
    resident = node.card_login(terminal, card_number=KIOSK_CARD, chip_serial=kiosk.chip_serial)
    assert resident.resident_id == kiosk.resident_id


def test_a_lost_card_swiped_or_used_at_a_kiosk_is_a_security_event(platform: Platform) -> None:
    """The card is reported lost; the finder swipes it at the hospital, another tries it at the
    kiosk: each refused (409 hot-listed) and a denied entry in the owner's chain that the card
    centre lists and the owner sees."""
    node = platform.app.node
    kiosk = make_kiosk(platform)
    platform.app.cards.report_lost("clerk-41", CARD, "lost on the bus")
    platform.app.cards.report_lost("clerk-41", KIOSK_CARD, "stolen")
    with pytest.raises(HotListed):
        node.swipe(_terminal_actor(platform), card_number=CARD, chip_serial=platform.chip_serial)
    with platform.app.db.uow() as uow:
        kiosk_terminal = node.terminals.get(uow, kiosk.terminal_id).actor()
    with pytest.raises(HotListed):
        node.card_login(kiosk_terminal, card_number=KIOSK_CARD, chip_serial=kiosk.chip_serial)
    kiosk_event, swipe_event = node.card_security_events(CARD_CENTRE)
    assert (swipe_event.what, swipe_event.outcome, swipe_event.resident_id) == (
        HOTLIST_REFUSED,
        "denied",
        platform.resident_id,
    )
    assert swipe_event.why.startswith("swipe refused") and "lost" in swipe_event.why
    assert swipe_event.actor == platform.terminal_id and swipe_event.institution_code == HOSPITAL
    assert kiosk_event.why.startswith("card login refused") and kiosk_event.resident_id == kiosk.resident_id
    with node.db.uow() as uow:
        seen = node.audit.who_looked(uow, [platform.resident_id])
    assert any(e.what == HOTLIST_REFUSED for e in seen)
    assert node.verify_audit(Actor("auditor", Role.AUDITOR)).ok
