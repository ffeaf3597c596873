"""Fixtures for the unit tests of the card OS, the SAM and the terminal SDK.

Issuing the demo card costs ~130 APDUs (~0.15 s), so it is done once per session and every
test gets a ``copy.deepcopy`` of the issued :class:`CardState` (about a millisecond).

* ``card`` — a :class:`CardDriver` around a fresh issued demo card (``CardOS``), powered on;
* ``pin_card`` — the same with a cardholder PIN ``123456`` (DECISIONS.md §7);
* ``fresh_card`` — a factory for more fresh cards (session-scoped, so Hypothesis may use it);
* ``sam`` — a :class:`SamDriver` around a fresh demo SAM, powered on;
* ``terminal`` — an opened :class:`HealthCardTerminal` on a fresh card and SAM;
* ``card_keys`` / ``master_keys`` — the demo card's own keys and the SAM's level-1 keys.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

from healthcard.card.apdu import CommandAPDU
from healthcard.card.cos import CardOS, CardState
from healthcard.card.filesystem import DF, EF
from healthcard.card.sam import SamOS
from healthcard.demo import DEMO_SERIAL, demo_contents, demo_sam, issue_demo_card
from healthcard.keys import recipes
from healthcard.keys.cardkeys import demo_master_keys, derive_card_keys
from healthcard.keys.recipes import province_factor
from healthcard.keys.table import BY_NAME
from healthcard.terminal.sdk import HealthCardTerminal
from healthcard.terminal.transport import SimulatorTransport

DEMO_CITY = "410100"
DEMO_PROVINCE = province_factor(DEMO_CITY)  # b"41000000"
CARD_PIN = "123456"

FIDS = {"MF": 0x3F00, "DDF1": 0xDDF1, "DF01": 0xDF01, "DF02": 0xDF02, "DF03": 0xDF03}


def raw(apdu: bytes | str | CommandAPDU) -> bytes:
    """Hex text (spaces allowed), bytes or a CommandAPDU → the bytes to send."""
    if isinstance(apdu, CommandAPDU):
        return apdu.to_bytes()
    if isinstance(apdu, str):
        return bytes.fromhex(apdu.replace(" ", ""))
    return bytes(apdu)


def split(response: bytes) -> tuple[bytes, int]:
    assert len(response) >= 2, response.hex()
    return response[:-2], int.from_bytes(response[-2:], "big")


class CardDriver:
    """Sends APDUs to a :class:`CardOS` and computes what a terminal + SAM would compute,
    from the demo card's own keys (``healthcard.keys`` recipes)."""

    def __init__(self, os: CardOS, keys: dict[str, bytes]) -> None:
        self.os = os
        self.keys = keys

    @property
    def state(self) -> CardState:
        return self.os.state

    def send(self, apdu: bytes | str | CommandAPDU) -> tuple[bytes, int]:
        return split(self.os.process(raw(apdu)))

    def sw(self, apdu: bytes | str | CommandAPDU) -> int:
        return self.send(apdu)[1]

    def ok(self, apdu: bytes | str | CommandAPDU) -> bytes:
        data, sw = self.send(apdu)
        assert sw == 0x9000, f"{raw(apdu).hex().upper()} -> {sw:04X}"
        return data

    def select(self, *fids: str) -> None:
        """SELECT by FID, step by step, e.g. ``select("DDF1", "DF01", "EF05")``."""
        for name in fids:
            fid = FIDS.get(name)
            self.ok(f"00A4000002{fid:04X}" if fid is not None else f"00A4000002{name}")

    def challenge(self) -> bytes:
        data = self.ok("0084000008")
        assert len(data) == 8
        return data

    def external_authenticate(
        self,
        key_name: str,
        challenge: bytes,
        plain: bytes = bytes.fromhex("1122334455667788"),
        key: bytes | None = None,
    ) -> tuple[bytes, int]:
        kid = BY_NAME[key_name].kid
        ks = recipes.session_key(self.keys[key_name] if key is None else key, challenge)
        cryptogram = recipes.cryptogram(ks, plain)
        return self.send(bytes([0x00, 0x82, 0x00, kid, 0x11]) + cryptogram + plain + b"\x01")

    def auth(self, key_name: str, key: bytes | None = None) -> int:
        """GET CHALLENGE + EXTERNAL AUTHENTICATE with ``key_name`` in the current DF; the SW."""
        return self.external_authenticate(key_name, self.challenge(), key=key)[1]

    def auth_ok(self, key_name: str) -> None:
        sw = self.auth(key_name)
        assert sw == 0x9000, f"{key_name}: {sw:04X}"

    def session_key(self, key_name: str) -> bytes:
        """A fresh challenge from the card and the session key of ``key_name`` for it."""
        return recipes.session_key(self.keys[key_name], self.challenge())

    def sm_body(self, key_name: str, header: bytes | str, payload: bytes) -> bytes:
        """Ciphertext + MAC under ``D(key, challenge)`` (DECISIONS.md §16)."""
        return recipes.sm_wrap(self.session_key(key_name), raw(header), payload)

    def mac_body(self, key_name: str, header: bytes | str, data: bytes = b"") -> bytes:
        """``data ‖ MAC4`` under ``D(key, challenge)`` (MAC-only secure messaging)."""
        return recipes.sm_mac_body(self.session_key(key_name), raw(header), data)

    def ef(self, *path: str) -> EF:
        """The EF object at ``path`` below the MF, e.g. ``ef("DDF1", "DF01", "EF05")``."""
        node: DF | EF = self.state.mf
        for name in path:
            assert isinstance(node, DF)
            node = node.children[FIDS.get(name) or int(name, 16)]
        assert isinstance(node, EF)
        return node


class SamDriver:
    """Sends APDUs to a :class:`SamOS`."""

    def __init__(self, os: SamOS) -> None:
        self.os = os

    def send(self, apdu: bytes | str | CommandAPDU) -> tuple[bytes, int]:
        return split(self.os.process(raw(apdu)))

    def sw(self, apdu: bytes | str | CommandAPDU) -> int:
        return self.send(apdu)[1]

    def deferred(self, apdu: bytes | str | CommandAPDU) -> bytes:
        """A command answered ``61xx`` followed by GET RESPONSE; the data."""
        data, sw = self.send(apdu)
        assert data == b"" and sw >> 8 == 0x61, f"{raw(apdu).hex().upper()} -> {data.hex()} {sw:04X}"
        out, sw2 = self.send(bytes([0x00, 0xC0, 0x00, 0x00, sw & 0xFF]))
        assert sw2 == 0x9000
        assert len(out) == (sw & 0xFF or 256)
        return out


# --- keys ----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def master_keys() -> dict[int, bytes]:
    return demo_master_keys()


@pytest.fixture(scope="session")
def card_keys(master_keys: dict[int, bytes]) -> dict[str, bytes]:
    return derive_card_keys(master_keys, DEMO_SERIAL, DEMO_PROVINCE)


# --- cards ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def issued_state() -> CardState:
    """The demo card, issued once per session; never handed out itself (tests get copies)."""
    return issue_demo_card()


@pytest.fixture(scope="session")
def pin_state() -> CardState:
    contents = demo_contents()
    contents.pin = CARD_PIN
    return issue_demo_card(contents=contents)


@pytest.fixture(scope="session")
def fresh_card(issued_state: CardState, card_keys: dict[str, bytes]) -> Callable[[], CardDriver]:
    """Factory: a powered-on copy of the issued demo card (usable inside Hypothesis tests)."""

    def make() -> CardDriver:
        os = CardOS(copy.deepcopy(issued_state))
        os.power_on()
        return CardDriver(os, card_keys)

    return make


@pytest.fixture
def card(fresh_card: Callable[[], CardDriver]) -> CardDriver:
    return fresh_card()


@pytest.fixture
def pin_card(pin_state: CardState, card_keys: dict[str, bytes]) -> CardDriver:
    os = CardOS(copy.deepcopy(pin_state))
    os.power_on()
    return CardDriver(os, card_keys)


# --- SAM and terminal ----------------------------------------------------------------------
@pytest.fixture
def sam() -> SamDriver:
    os = SamOS(demo_sam())
    os.power_on()
    return SamDriver(os)


@pytest.fixture
def terminal(issued_state: CardState) -> HealthCardTerminal:
    """An opened terminal: ``terminal.card`` / ``terminal.sam`` are the traced transports,
    ``terminal.card.card`` the card's ``CardOS``."""
    card_os = CardOS(copy.deepcopy(issued_state))
    term = HealthCardTerminal(SimulatorTransport(card_os), SimulatorTransport(SamOS(demo_sam())))
    term.open()
    return term
