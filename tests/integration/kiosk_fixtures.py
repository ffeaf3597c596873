"""A self-service kiosk to test against: a SAM registered as a terminal of kind ``kiosk`` at the
hospital, and a resident (李芳) whose card the card centre personalised **with** a cardholder PIN
(DECISIONS.md §7), in the kiosk's simulated card slot — with a closed visit on the platform to
look at and print."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from healthcard.agent import Agent, SamSlot, SimulatedSlot
from healthcard.card.cos import CardOS, CardState
from healthcard.card.sam import SamOS
from healthcard.issuance.chips import SimulatedChips
from healthcard.issuance.keycentre import SamRequest, terminal_number
from healthcard.platform.records import DiagnosisIn, EncounterIn, EncounterKind, FeeLine, ObservationIn
from healthcard.terminal.sdk import HealthCardTerminal
from healthcard.terminal.transport import SimulatorTransport

from .cardcentre_fixtures import NOW, application
from .platform_fixtures import HOSPITAL, Platform

KIOSK_CARD = "410102198505120026"
KIOSK_NAME = "李芳"
PIN = "246810"
WRONG_PIN = "135799"
SLOT = "sim-kiosk"


@dataclass
class Kiosk:
    chip: CardState  # 李芳's card, with a PIN
    chip_serial: str
    sam: CardState  # the kiosk's SAM, registered as a kiosk terminal
    terminal_id: str
    resident_id: str
    visit_id: int  # 李芳's closed visit

    def agent(
        self, platform: Platform, url: str | None, *, pin_limit: tuple[int, int] | None = None
    ) -> Agent:
        """The kiosk's reader agent: 李芳's card in slot ``sim-kiosk``, the kiosk's SAM;
        ``pin_limit``: its PIN submissions per reader (attempts, seconds)."""
        return Agent(
            readers=[SimulatedSlot(SLOT, self.chip)],
            sam=SamSlot.from_image(self.sam, "sam-kiosk"),
            clock=platform.clock,
            platform_url=url,
            trust=platform.key_centre.trust_store(),
            pin_limit=pin_limit,
        )


def kiosk_visit(key: str = "kiosk-visit-1") -> EncounterIn:
    return EncounterIn(
        institution_code=HOSPITAL,
        kind=EncounterKind.OUTPATIENT,
        department="内科",
        clinician="王医生",
        started_at=NOW - dt.timedelta(days=3),
        ended_at=NOW - dt.timedelta(days=3) + dt.timedelta(minutes=15),
        diagnoses=(DiagnosisIn("J06.900", primary=True),),
        observations=(ObservationIn("lab", "WBC", "白细胞计数", "12.3", "10^9/L", 3.5, 9.5),),
        fees=(FeeLine("西药费", "1", 2350),),
        payment_method="03",
        upload_key=key,
    )


def make_kiosk(platform: Platform) -> Kiosk:
    app = platform.app
    chips = SimulatedChips()
    raw = application(name=KIOSK_NAME, sex=2, birth_date="1985-05-12", id_number=KIOSK_CARD)
    submitted = app.cards.submit("clerk-41", raw, collection_point="410102-01")
    app.cards.approve("admin-41", submitted.number)
    card = app.cards.issue("admin-41", submitted.number, chips, pin=PIN)
    app.cards.activate("clerk-41", KIOSK_CARD)
    chip = chips.delivered[bytes.fromhex(card.chip_serial)]
    sam = platform.key_centre.sam(
        SamRequest(bytes.fromhex("5341304100000010"), terminal_number("410100000010"))
    )
    with HealthCardTerminal(SimulatorTransport(CardOS(chip)), SimulatorTransport(SamOS(sam))) as terminal:
        certificate = terminal.sam_certificate()
    node = app.node
    with app.db.uow() as uow:
        resident_id = node.mpi.resolve_card(uow, KIOSK_CARD)
        view = node.terminals.register(uow, certificate=certificate, institution_code=HOSPITAL, kind="kiosk")
        visit, _ = node.records.record_encounter(uow, resident_id, kiosk_visit())
        uow.commit()
    return Kiosk(chip, card.chip_serial, sam, view.id, resident_id, visit.id)
