"""Attacks on the card (issue 9, "Card attacks"): each is refused by the card with its documented
status word (docs/card.md, "Attacks the card and platform refuse"), changes nothing on the card,
and leaves a record someone can read — the card's own try counter, the terminal SDK's warning log
(chip serial, command, status word), the agent's PIN log.  No key, cryptogram or PIN appears in
any error message or log line.

The platform's side (a cloned chip swiped: refused and audited) is
tests/integration/test_card_attacks_platform.py.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable

import pytest

from healthcard.agent.service import PinBlocked, PinWrong, _verify
from healthcard.card.apdu import CommandAPDU
from healthcard.card.cos import CardOS, CardState
from healthcard.card.filesystem import DF, KeyUse
from healthcard.card.sam import SamOS
from healthcard.demo import demo_sam
from healthcard.errors import AuthenticationFailed, SecureMessagingError
from healthcard.keys import recipes
from healthcard.keys.table import BY_NAME
from healthcard.terminal.sdk import HealthCardTerminal
from healthcard.terminal.transport import SimulatorTransport

from .conftest import CardDriver

PLAIN = bytes.fromhex("1122334455667788")
ADDRESS_TYPE1 = bytes.fromhex("15011F")  # DF01/EF05 record 1 as issued


def _df(card: CardDriver, *path: int) -> DF:
    node = card.state.mf
    for fid in path:
        child = node.children[fid]
        assert isinstance(child, DF)
        node = child
    return node


def _secrets(keys: dict[str, bytes], master_keys: dict[int, bytes], extra: Iterable[bytes] = ()) -> list[str]:
    values = [*keys.values(), *master_keys.values(), *extra]
    return [v.hex() for v in values] + [v.hex().upper() for v in values]


def _assert_no_secret(texts: Iterable[str], secrets: list[str], pin: str | None = None) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"key material in {text!r}"
        if pin is not None:
            assert pin not in text, f"the PIN in {text!r}"


# --- 1. a replayed EXTERNAL AUTHENTICATE --------------------------------------------------------
def test_a_replayed_external_authenticate_is_refused_and_counted(card, card_keys):
    card.select("DDF1", "DF01")
    kid = BY_NAME["RK1DF01"].kid
    challenge = card.challenge()
    cryptogram = recipes.cryptogram(recipes.session_key(card_keys["RK1DF01"], challenge), PLAIN)
    captured = bytes([0x00, 0x82, 0x00, kid, 0x11]) + cryptogram + PLAIN + b"\x01"
    assert card.sw(captured) == 0x9000  # the genuine terminal's authentication, overheard
    key = _df(card, 0xDDF1, 0xDF01).key(KeyUse.AUTH, kid)
    tries = key.tries_left

    card.os.power_on()  # the attacker's session with the card
    card.select("DDF1", "DF01")
    assert card.sw(captured) == 0x6985  # no challenge: the card's last one was used up
    assert key.tries_left == tries
    card.challenge()
    assert card.sw(captured) == 0x63C0 | (tries - 1)  # a new challenge: the old cryptogram is wrong
    assert key.tries_left == tries - 1  # the card's counter records the attempt
    card.select("EF05")
    assert card.sw("00B2010400") == 0x6982  # nothing was granted


# --- 2. one bit flipped in a secure-messaging MAC, 3. a MAC made on a stale challenge ---------------
def _update_ready(card: CardDriver) -> None:
    card.select("DDF1", "DF01")
    card.auth_ok("UK1DF01")
    card.select("EF05")


@pytest.mark.parametrize("bit", [0, 7, 31])
def test_one_bit_flipped_in_the_mac_is_refused_and_changes_nothing(card, bit):
    _update_ready(card)
    header = bytes.fromhex("04DC0104")
    body = bytearray(card.sm_body("STKDF01", header, bytes.fromhex("15012F")))
    body[-4 + bit // 8] ^= 1 << (bit % 8)
    assert card.sw(CommandAPDU(0x04, 0xDC, 1, 4, bytes(body))) == 0x6988
    assert card.ef("DDF1", "DF01", "EF05").records[0] == ADDRESS_TYPE1
    # the challenge is spent: the same body with the right MAC is refused too
    body[-4 + bit // 8] ^= 1 << (bit % 8)
    assert card.sw(CommandAPDU(0x04, 0xDC, 1, 4, bytes(body))) == 0x6985
    assert card.ef("DDF1", "DF01", "EF05").records[0] == ADDRESS_TYPE1


def test_a_write_whose_mac_was_made_on_a_stale_challenge_is_refused(card):
    _update_ready(card)
    header = bytes.fromhex("04DC0104")
    stale = card.sm_body("STKDF01", header, bytes.fromhex("15012F"))  # on challenge 1
    card.challenge()  # the card moved on: challenge 2
    assert card.sw(CommandAPDU(0x04, 0xDC, 1, 4, stale)) == 0x6988
    assert card.ef("DDF1", "DF01", "EF05").records[0] == ADDRESS_TYPE1


# --- the same attacks against a terminal, by a man in the middle: refused and logged ------------------
class Tampering(SimulatorTransport):
    """The card's transport with an attacker between terminal and card."""

    def __init__(self, card: CardOS, tamper: Callable[[CardOS, bytes], bytes]) -> None:
        super().__init__(card)
        self.tamper = tamper

    def _exchange(self, raw: bytes) -> bytes:
        return self.card.process(self.tamper(self.card, raw))


Refusal = tuple[bytes, bytes, int]  # what the SDK's on_refusal hook is told: chip, header, SW


def _terminal(
    state: CardState, tamper: Callable[[CardOS, bytes], bytes], told: list[Refusal] | None = None
) -> HealthCardTerminal:
    term = HealthCardTerminal(
        Tampering(CardOS(copy.deepcopy(state)), tamper),
        SimulatorTransport(SamOS(demo_sam())),
        on_refusal=None if told is None else lambda *refusal: told.append(refusal),
    )
    term.open()
    return term


def _flip_mac(card: CardOS, raw: bytes) -> bytes:
    if raw[:2] == b"\x04\xdc":
        return raw[:-1] + bytes([raw[-1] ^ 0x01])
    return raw


def _stale_challenge(card: CardOS, raw: bytes) -> bytes:
    if raw[:2] == b"\x04\xdc":
        card.process(bytes.fromhex("0084000008"))  # the attacker asks first: the terminal's is stale
    return raw


@pytest.mark.parametrize("tamper", [_flip_mac, _stale_challenge], ids=["flipped MAC", "stale challenge"])
def test_a_tampered_write_through_the_sdk_is_refused_and_logged(
    issued_state, tamper, caplog, card_keys, master_keys
):
    told: list[Refusal] = []
    term = _terminal(issued_state, tamper, told)
    card = term.card.card  # type: ignore[attr-defined]
    before = bytes(card.state.mf.children[0xDDF1].children[0xDF01].children[0xEF05].records[0])
    with (
        caplog.at_level(logging.WARNING, logger="healthcard.terminal.sdk"),
        pytest.raises(SecureMessagingError) as refused,
    ):
        term.write_addresses([("2", "河南省郑州市金水路1号")])
    assert card.state.mf.children[0xDDF1].children[0xDF01].children[0xEF05].records[0] == before
    warnings = [r.getMessage() for r in caplog.records if r.name == "healthcard.terminal.sdk"]
    assert any("04 DC" in w and "6988" in w and term.serial.hex().upper() in w for w in warnings), warnings
    _assert_no_secret([*warnings, str(refused.value), repr(refused.value)], _secrets(card_keys, master_keys))
    # the hook the agent reports to the platform with: the chip, the header alone, the SW
    assert [(chip, header[:2], sw) for chip, header, sw in told] == [(term.serial, b"\x04\xdc", 0x6988)]
    assert all(len(header) == 4 for _, header, _ in told)


# --- 4. PIN brute force -------------------------------------------------------------------------------
def test_pin_brute_force_blocks_after_three_and_the_right_pin_is_then_refused(pin_card, caplog):
    transport = SimulatorTransport(pin_card.os)
    transport.connect()
    pin = pin_card.state.mf.keys[(KeyUse.PIN, 0x01)]
    shown: list[str] = []
    told: list[tuple[bytes, int]] = []

    def refused(header: bytes, sw: int) -> None:
        told.append((header, sw))

    with caplog.at_level(logging.INFO, logger="healthcard.agent.service"):
        for guess, left in (("000000", 2), ("111111", 1)):
            with pytest.raises(PinWrong) as wrong:
                _verify(transport, "reader 0", guess, refused)
            assert wrong.value.tries_left == left == pin.tries_left
            shown.append(str(wrong.value))
        with pytest.raises(PinBlocked) as blocked:  # the third wrong PIN blocks it (63C0)
            _verify(transport, "reader 0", "222222", refused)
        shown.append(str(blocked.value))
        assert pin.tries_left == 0 and pin.blocked
        with pytest.raises(PinBlocked):  # the right PIN no longer opens it (6983)
            _verify(transport, "reader 0", "123456", refused)
        transport.connect()  # nor after a reset
        with pytest.raises(PinBlocked):
            _verify(transport, "reader 0", "123456", refused)
    # each refusal for the platform's audit: VERIFY's header, never the PIN
    assert told == [(bytes.fromhex("00200001"), sw) for sw in (0x63C2, 0x63C1, 0x63C0, 0x6983, 0x6983)]
    assert pin_card.sw("0020000103123456") == 0x6983
    assert pin_card.sw("00200001") == 0x6983
    assert shown[:2] == [
        "pin: wrong PIN, 2 tries left before the card blocks it",
        "pin: wrong PIN, 1 try left before the card blocks it",
    ]
    assert "card centre unblocks it" in shown[2]
    logged = [r.getMessage() for r in caplog.records]
    assert [m[-4:] for m in logged] == ["63C2", "63C1", "63C0", "6983", "6983"]
    for guess in ("000000", "111111", "222222", "123456"):
        assert all(guess not in text for text in logged + shown)


# --- 5. a cloned card image on another chip ------------------------------------------------------------
def test_a_cloned_image_on_another_chip_fails_authentication_and_is_logged(
    issued_state, caplog, card_keys, master_keys
):
    clone = copy.deepcopy(issued_state)
    clone.serial = bytes.fromhex("0081866BDEADBEEF")  # every file and key copied, another chip
    told: list[Refusal] = []
    term = HealthCardTerminal(
        SimulatorTransport(CardOS(clone)),
        SimulatorTransport(SamOS(demo_sam())),
        on_refusal=lambda *refusal: told.append(refusal),
    )
    with caplog.at_level(logging.WARNING, logger="healthcard.terminal.sdk"):
        term.open()  # DDF1/EF05 is free to read: the clone shows the original's card number
        with pytest.raises(AuthenticationFailed) as refused:
            term.swipe()  # the holder's data needs the read key the SAM derives from *this* chip
    assert refused.value.sw >> 4 == 0x63C
    warnings = [r.getMessage() for r in caplog.records if r.name == "healthcard.terminal.sdk"]
    assert any("0081866BDEADBEEF" in w and "00 82" in w for w in warnings), warnings
    ((chip, header, sw),) = told
    assert chip == clone.serial and header[:2] == b"\x00\x82" and sw == refused.value.sw
    _assert_no_secret([*warnings, str(refused.value)], _secrets(card_keys, master_keys))
    # the original chip, with the same files, passes
    original = HealthCardTerminal(
        SimulatorTransport(CardOS(copy.deepcopy(issued_state))), SimulatorTransport(SamOS(demo_sam()))
    )
    original.open()
    assert original.swipe().holder is not None
