"""What the card refuses offline reaches the platform's audit (issue 9, "Card attacks … each
refused and audited"), on SQLite and PostgreSQL.

A wrong PIN, a replayed EXTERNAL AUTHENTICATE, a MAC with a bit flipped are refused by the card
alone; the terminal's reader agent keeps each refusal (the chip, the command's header, the SW —
never a PIN or a cryptogram) and reports it to the platform after the card session, which writes
a denied audit entry in the resident's hash chain: the card centre lists it with the refused
chips, the resident's "who looked" shows it.  An unreachable platform loses nothing: the agent
keeps the refusals until it can report them.  A malformed report is refused whole, naming the
field, and writes nothing."""

from __future__ import annotations

import copy
import datetime as dt

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from healthcard.api.app import create_app
from healthcard.card.cos import CardOS
from healthcard.card.sam import SamOS
from healthcard.errors import AuthenticationFailed, PermissionDenied
from healthcard.platform.access import Actor, Role
from healthcard.platform.cardevents import CARD_REFUSED
from healthcard.storage import tables as t
from healthcard.terminal.sdk import HealthCardTerminal
from healthcard.terminal.transport import SimulatorTransport

from .agent_fixtures import free_port
from .kiosk_fixtures import KIOSK_CARD, PIN, WRONG_PIN, make_kiosk
from .platform_fixtures import CARD, HOSPITAL, Platform, served
from .test_card_attacks_platform import CARD_CENTRE, CLONE_CHIP, _terminal_token

CLINICIAN = Actor("dr-wang", Role.CLINICIAN, institution_code=HOSPITAL)


def _audit_rows(platform: Platform) -> int:
    with platform.app.db.uow() as uow:
        return int(uow.session.scalar(select(func.count()).select_from(t.AuditEntry)) or 0)


def test_wrong_pins_at_a_kiosk_are_audited_on_the_platform(platform: Platform) -> None:
    from healthcard.agent.service import PinWrong

    node = platform.app.node
    kiosk = make_kiosk(platform)
    with served(platform.app) as url:
        agent = kiosk.agent(platform, url)
        try:
            for left in (2, 1):
                with pytest.raises(PinWrong) as wrong:
                    agent.login(WRONG_PIN)
                assert wrong.value.tries_left == left
            assert agent.pending_refusals() == 0  # reported after each card session
            assert agent.login(PIN)["card_number"] == KIOSK_CARD
        finally:
            agent.close()
    events = [e for e in node.card_security_events(CARD_CENTRE) if e.what == CARD_REFUSED]
    oldest_first = [e.why for e in reversed(events)]
    assert len(oldest_first) == 2, oldest_first
    assert oldest_first[0].startswith("VERIFY (PIN) refused: 63C2"), oldest_first
    assert oldest_first[1].startswith("VERIFY (PIN) refused: 63C1"), oldest_first
    for event in events:
        assert (event.action, event.outcome, event.role) == ("deny", "denied", "terminal")
        assert event.actor == kiosk.terminal_id and event.institution_code == HOSPITAL
        assert event.resident_id == kiosk.resident_id
        assert kiosk.chip_serial.upper() in event.why and KIOSK_CARD in event.why and "00200001" in event.why
        assert WRONG_PIN not in event.why and PIN not in event.why
    # the resident sees them among who touched the record; the chain still verifies
    with node.db.uow() as uow:
        seen = node.audit.who_looked(uow, [kiosk.resident_id])
    assert sum(e.what == CARD_REFUSED for e in seen) == 2
    assert node.verify_audit(Actor("auditor", Role.AUDITOR)).ok


def test_an_unreachable_platform_loses_no_refusal(platform: Platform) -> None:
    from healthcard.agent.service import PinWrong

    node = platform.app.node
    kiosk = make_kiosk(platform)
    port = free_port()
    agent = kiosk.agent(platform, f"http://127.0.0.1:{port}")  # nothing listens there yet
    try:
        with pytest.raises(PinWrong):
            agent.login(WRONG_PIN)
        assert agent.pending_refusals() == 1
        assert agent.status()["platform"]["card_refusals_pending"] == 1
        assert not [e for e in node.card_security_events(CARD_CENTRE) if e.what == CARD_REFUSED]
        with served(platform.app, port):
            assert agent.report_refusals(force=True) == 1
        assert agent.pending_refusals() == 0
    finally:
        agent.close()
    (event,) = [e for e in node.card_security_events(CARD_CENTRE) if e.what == CARD_REFUSED]
    assert event.resident_id == kiosk.resident_id and "63C2" in event.why


def test_a_clone_refused_by_the_card_is_reported_in_the_card_numbers_chain(platform: Platform) -> None:
    """The SDK's hook sees the clone's failed EXTERNAL AUTHENTICATE; the report names a chip
    the platform does not know, so the entry goes in the chain of the card number it carried."""
    clone = copy.deepcopy(platform.chip)
    clone.serial = bytes.fromhex(CLONE_CHIP)
    told: list[tuple[bytes, bytes, int]] = []
    terminal = HealthCardTerminal(
        SimulatorTransport(CardOS(clone)),
        SimulatorTransport(SamOS(platform.sam)),
        on_refusal=lambda *refusal: told.append(refusal),
    )
    terminal.open()
    number = terminal.read_issuer().card_number
    with pytest.raises(AuthenticationFailed):
        terminal.read_holder()
    ((chip, header, sw),) = told
    at = platform.clock.now().isoformat()
    client = TestClient(create_app(platform.app))
    token = {"Authorization": f"Bearer {_terminal_token(client, platform)}"}
    report = {
        "refusals": [
            {
                "chip_serial": chip.hex(),
                "command": header.hex(),
                "sw": f"{sw:04X}",
                "at": at,
                "card_number": number,
            }
        ]
    }
    answer = client.post("/v1/terminals/card-refusals", json=report, headers=token)
    assert answer.status_code == 201 and answer.json() == {"recorded": 1}, answer.text
    events = [e for e in platform.app.node.card_security_events(CARD_CENTRE) if e.what == CARD_REFUSED]
    (event,) = events
    assert event.resident_id == platform.resident_id and number == CARD
    assert event.why.startswith("EXTERNAL AUTHENTICATE refused: 63C") and CLONE_CHIP in event.why


def test_a_malformed_report_is_refused_whole_and_naming_the_field(platform: Platform) -> None:
    client = TestClient(create_app(platform.app))
    token = {"Authorization": f"Bearer {_terminal_token(client, platform)}"}
    now = platform.clock.now()
    good = {"chip_serial": platform.chip_serial, "command": "00820001", "sw": "63C2", "at": now.isoformat()}
    before = _audit_rows(platform)
    for item, field in (
        ({**good, "sw": "9000"}, "refusals[1].sw"),  # a success is no refusal
        ({**good, "at": (now + dt.timedelta(minutes=16)).isoformat()}, "refusals[1].at"),
        ({**good, "at": (now - dt.timedelta(days=31)).isoformat()}, "refusals[1].at"),
    ):
        answer = client.post("/v1/terminals/card-refusals", json={"refusals": [good, item]}, headers=token)
        assert answer.status_code == 422, answer.text
        assert answer.json()["field"] == field, answer.text
    for body in ({"refusals": []}, {"refusals": [good] * 101}, {"refusals": [{**good, "command": "0082"}]}):
        answer = client.post("/v1/terminals/card-refusals", json=body, headers=token)
        assert answer.status_code == 422 and answer.json()["field"], answer.text
    assert _audit_rows(platform) == before  # nothing of a refused report was written
    # a terminal's report only: a clinician is refused, an anonymous caller must log in
    with pytest.raises(PermissionDenied):
        platform.app.node.report_card_refusals(CLINICIAN, [{**good, "at": now}])
    assert client.post("/v1/terminals/card-refusals", json={"refusals": [good]}).status_code == 401
    # a terminal 10 minutes fast is still taken (docs/platform.md §9: CLOCK_SKEW)
    skewed = {**good, "at": (now + dt.timedelta(minutes=10)).isoformat()}
    answer = client.post("/v1/terminals/card-refusals", json={"refusals": [skewed]}, headers=token)
    assert answer.status_code == 201, answer.text
