"""A card pulled mid-read through the real PC/SC stack: pyscard → pcscd → vsmartcard-vpcd → the
bridge → CardOS (HealthCard issue 9, "Faults").  The bridge is stopped from inside the card's
tenth command, as a card leaving the reader; the SDK must raise ``CardRemoved`` naming the step,
caused by pcscd's own error, and not hang."""

from __future__ import annotations

import threading

import pytest

from healthcard.card.cos import CardOS
from healthcard.card.sam import SamOS
from healthcard.demo import demo_sam, issue_demo_card
from healthcard.errors import CardRemoved
from healthcard.terminal.pcsc import PcscError, PcscTransport
from healthcard.terminal.sdk import HealthCardTerminal
from healthcard.terminal.vpcd import VpcdBridge

from .conftest import BridgeFactory

pytestmark = pytest.mark.pcsc

PULL_AT = 10  # the card's tenth command of the swipe never gets an answer


class PulledCard(CardOS):
    """The demo card; at its ``PULL_AT``-th command it leaves the reader (the bridge stops)."""

    bridge: VpcdBridge | None = None
    seen = 0

    def process(self, raw: bytes) -> bytes:
        self.seen += 1
        if self.seen == PULL_AT and self.bridge is not None:
            self.bridge.stop()  # vpcd loses the card: pcscd reports it removed
        return super().process(raw)


def test_a_card_pulled_mid_read_raises_card_removed_naming_the_step(vpcd: BridgeFactory) -> None:
    card = PulledCard(issue_demo_card())
    vpcd(SamOS(demo_sam()), 35964)
    card_reader = PcscTransport("Virtual PCD 00 00", timeout=10)
    terminal = HealthCardTerminal(card_reader, PcscTransport("Virtual PCD 00 01", timeout=10))
    outcome: list[BaseException | None] = []

    def swipe() -> None:
        try:
            terminal.open()
            card.seen = 0  # count from the swipe's first command
            terminal.swipe()
            outcome.append(None)
        except BaseException as error:  # handed to the test's thread
            outcome.append(error)

    card.bridge = vpcd(card, 35963)
    worker = threading.Thread(target=swipe, name="pulled-swipe", daemon=True)
    worker.start()
    worker.join(60)  # a hang guard, not a timed assert
    try:
        assert not worker.is_alive(), "the SDK hung on a pulled card"
        (error,) = outcome
        assert isinstance(error, CardRemoved), repr(error)
        assert isinstance(error.__cause__, PcscError) and error.__cause__.hresult is not None
        # SCARD_W_REMOVED_CARD ("Card was removed."), or pcscd's other words for it
        assert error.__cause__.hresult & 0xFFFFFFFF in {0x80100069, 0x8010000C, 0x80100068}, str(error)
        assert error.step.split(" ")[0] in ("SELECT", "READ", "GET", "EXTERNAL"), error.step
        assert "Virtual PCD 00 00" in str(error)
    finally:
        terminal.close()
