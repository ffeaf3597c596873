"""Self-service issuance to test against: the kiosk of :mod:`kiosk_fixtures` registered also as
the card centre's operator of role ``kiosk`` (under its terminal id, at the hospital), an
approved application of 赵敏 waiting for her card, and the platform's card dispenser — a tray
of simulated chips that the kiosk's reader agent loads its slot from (as ``make run`` does)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from healthcard.agent import Agent, CardTray, SamSlot, SimulatedSlot
from healthcard.card import image
from healthcard.issuance.chips import SimulatedChips
from healthcard.issuance.organisation import OperatorSpec, Organisation

from .cardcentre_fixtures import application
from .kiosk_fixtures import SLOT, Kiosk
from .platform_fixtures import HOSPITAL, Platform

APPLICANT = "410102199208150020"
APPLICANT_NAME = "赵敏"
NEW_PIN = "975310"
SEALER = image.Sealer(image.DEMO_PASSPHRASE)


@dataclass
class SelfService:
    kiosk: Kiosk
    tray: Path  # where the platform's card centre saves the cards it makes
    application_number: str

    def agent(self, platform: Platform, url: str | None) -> Agent:
        """The kiosk's agent with the dispenser: 李芳's card in the slot until a card is made."""
        return Agent(
            readers=[SimulatedSlot(SLOT, self.kiosk.chip)],
            sam=SamSlot.from_image(self.kiosk.sam, "sam-kiosk"),
            clock=platform.clock,
            platform_url=url,
            trust=platform.key_centre.trust_store(),
            tray=CardTray(self.tray, SEALER),
        )


def make_self_service(platform: Platform, kiosk: Kiosk, tray: Path) -> SelfService:
    app = platform.app
    Organisation(app.db).add_operator(OperatorSpec(kiosk.terminal_id, "医院自助机", "kiosk", HOSPITAL))
    raw = application(
        name=APPLICANT_NAME,
        sex=2,
        birth_date="1992-08-15",
        id_number=APPLICANT,
        immunizations=[("卡介苗", "1992-08-16")],
    )
    submitted = app.cards.submit("clerk-41", raw, collection_point="410102-01")
    app.cards.approve("admin-41", submitted.number)
    app.chips = lambda: SimulatedChips(tray, SEALER)
    return SelfService(kiosk, tray, submitted.number)
