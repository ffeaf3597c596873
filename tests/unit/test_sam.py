"""The SAM (``healthcard.card.sam``): files, PIN, and the session keys it derives for a card
(CARD-SPEC.md §5.2, §6.3, §6.7; DECISIONS.md §11–15)."""

from __future__ import annotations

import pytest

from healthcard.card.apdu import CommandAPDU
from healthcard.card.cos import MF_NAME
from healthcard.card.sam import SAM_APP_NAME
from healthcard.demo import DEMO_SERIAL, DEMO_TERMINAL
from healthcard.keys import recipes
from healthcard.keys.primitives import Algorithm, ecb_encrypt
from healthcard.keys.table import KEY_TABLE

PROVINCE = b"41000000"
R = bytes.fromhex("0102030405060708")
SAM_KEYS = [s for s in KEY_TABLE if s.sam_index is not None]


def fci(name: bytes, proprietary: bool) -> bytes:
    body = bytes([0x84, len(name)]) + name + (b"\xa5\x00" if proprietary else b"")
    return bytes([0x6F, len(body)]) + body


def unlock(sam) -> None:
    assert sam.sw("0020000003123456") == 0x9000


def factors(spec) -> bytes:
    return DEMO_SERIAL + (PROVINCE if spec.sam_p1 >> 4 == 4 else b"")


def load(sam, spec, challenge: bytes = R) -> int:
    return sam.sw(CommandAPDU(0x80, 0xDE, spec.sam_p1, spec.sam_index, factors(spec) + challenge))


# --- SELECT and GET RESPONSE --------------------------------------------------------------------
def test_select_mf_answers_61xx_and_get_response_gives_the_fci(sam):
    expected = fci(MF_NAME, proprietary=True)
    assert sam.send("00A40000023F00") == (b"", 0x6100 | len(expected))
    assert sam.send(bytes([0x00, 0xC0, 0x00, 0x00, len(expected)])) == (expected, 0x9000)
    assert sam.sw("00C0000000") == 0x6985  # nothing left


def test_select_df01_answers_61xx_and_get_response_gives_the_fci(sam):
    sam.send("00A40000023F00")
    expected = fci(SAM_APP_NAME, proprietary=False)
    assert expected[:4] == bytes([0x6F, 0x10, 0x84, 0x0E])
    assert sam.send("00A4000002DF01") == (b"", 0x6112)
    assert sam.send("00C0000012") == (expected, 0x9000)


def test_get_response_in_pieces(sam):
    sam.send("00A4000002DF01")
    expected = fci(SAM_APP_NAME, proprietary=False)
    assert sam.send("00C0000004") == (expected[:4], 0x6100 | (len(expected) - 4))
    assert sam.send("00C0000000") == (expected[4:], 0x9000)


def test_get_response_is_lost_after_another_command(sam):
    sam.send("00A4000002DF01")
    sam.send("00200000")
    assert sam.sw("00C0000012") == 0x6985


def test_select_without_fci_is_9000(sam):
    assert sam.send("00A4000C02DF01") == (b"", 0x9000)


# --- the SAM's files ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("df", "fid", "size"),
    [
        ("3F00", "0015", 14),
        ("3F00", "0016", 6),
        ("DF01", "001A", 25),
        ("DF01", "001B", 180),
        ("DF01", "001C", 190),
    ],
)
def test_read_binary_of_the_sam_files(sam, df, fid, size):
    sam.send("00A40000023F00")
    if df != "3F00":
        sam.send(f"00A4000002{df}")
    assert sam.send(f"00A4000002{fid}") == (b"", 0x9000)
    data, sw = sam.send(bytes([0x00, 0xB0, 0x00, 0x00, size]))
    assert (len(data), sw) == (size, 0x9000)
    assert sam.send("00B0000000") == (data, 0x9000)  # Le 00: all there is
    short, sw = sam.send(bytes([0x00, 0xB0, 0x00, 0x00, size + 1]))
    assert (short, sw) == (data, 0x6282)  # Le past the end: end-of-file warning
    assert sam.sw(bytes([0x00, 0xB0, 0x00, size, 0x01])) == 0x6B00


def test_terminal_number(sam):
    sam.send("00A40000023F00")
    sam.send("00A40000020016")
    assert sam.send("00B0000006") == (bytes.fromhex("410100000001"), 0x9000)
    assert bytes.fromhex("410100000001") == DEMO_TERMINAL


def test_sam_files_are_read_only(sam):
    unlock(sam)
    sam.send("00A40000023F00")
    sam.send("00A40000020016")
    assert sam.sw("00D6000006000000000000") == 0x6985
    assert sam.send("00B0000006") == (DEMO_TERMINAL, 0x9000)


# --- SAM PIN ------------------------------------------------------------------------------------------
def test_key_commands_need_the_pin(sam):
    spec = SAM_KEYS[0]
    assert load(sam, spec) == 0x6982
    assert sam.sw("80FA000010" + "00" * 16) == 0x6982
    assert sam.sw("80FA050020" + "00" * 32) == 0x6982


def test_wrong_pin_counts_down(sam):
    assert sam.sw("00200000") == 0x63C5
    assert sam.sw("0020000003654321") == 0x63C4
    assert sam.sw("0020000003111111") == 0x63C3
    assert load(sam, SAM_KEYS[0]) == 0x6982
    unlock(sam)
    assert sam.sw("00200000") == 0x9000
    assert sam.sw("0020000003654321") == 0x63C4  # the right PIN reset the count
    assert load(sam, SAM_KEYS[0]) == 0x6982  # and the failure locked the SAM again


def test_five_wrong_pins_block_the_sam(sam):
    assert [sam.sw("0020000003000000") for _ in range(5)] == [0x63C4, 0x63C3, 0x63C2, 0x63C1, 0x63C0]
    assert sam.sw("0020000003123456") == 0x6983


def test_change_sam_pin(sam):
    change = bytes.fromhex("805E0100")
    assert sam.sw(change + bytes.fromhex("060000FF123456")) == 0x63C4  # old PIN wrong
    assert sam.sw(change + bytes.fromhex("06123456FF1234")) == 0x9000
    assert sam.sw("0020000003123456") == 0x63C4
    assert sam.sw("00200000021234") == 0x9000


def test_power_on_locks_the_sam_and_forgets_the_key(sam):
    unlock(sam)
    assert load(sam, SAM_KEYS[0]) == 0x9000
    sam.os.power_on()
    assert sam.sw("80FA000010" + "00" * 16) == 0x6982
    unlock(sam)
    assert sam.sw("80FA000010" + "00" * 16) == 0x6985  # no key loaded since the reset


# --- session keys -------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", SAM_KEYS, ids=[s.name for s in SAM_KEYS])
def test_session_key_is_the_recipe(sam, master_keys, card_keys, spec):
    """80DE + 80FA 00 encrypt under ``Ks = D(card_key(K1, serial, province), R)`` — the very key
    the card derives from its own key for that challenge."""
    unlock(sam)
    sam.send("00A4000002DF01")
    assert load(sam, spec) == 0x9000
    province = PROVINCE if spec.sam_p1 >> 4 == 4 else None
    ks = recipes.session_key(recipes.card_key(master_keys[spec.sam_index], DEMO_SERIAL, province), R)
    assert ks == recipes.session_key(card_keys[spec.name], R)
    plain = bytes.fromhex("1122334455667788") + bytes(8)
    c = sam.deferred(CommandAPDU(0x80, 0xFA, 0x00, 0x00, plain))
    assert c == ecb_encrypt(Algorithm.SM4, ks, plain)
    assert recipes.fold(c) == recipes.cryptogram(ks, plain[:8])
    two_blocks = bytes(range(32))
    assert sam.deferred(CommandAPDU(0x80, 0xFA, 0x00, 0x00, two_blocks)) == ecb_encrypt(
        Algorithm.SM4, ks, two_blocks
    )


@pytest.mark.parametrize(
    "message", [b"", bytes.fromhex("04DC010414"), bytes(range(15)), bytes(range(16)), bytes(100)]
)
def test_mac_is_the_recipe(sam, card_keys, message):
    spec = next(s for s in SAM_KEYS if s.name == "STKDF03")
    unlock(sam)
    assert load(sam, spec) == 0x9000
    ks = recipes.session_key(card_keys["STKDF03"], R)
    mac = sam.deferred(CommandAPDU(0x80, 0xFA, 0x05, 0x00, bytes(16) + recipes.pad(message)))
    assert len(mac) == 4
    assert mac == recipes.mac(ks, message)
    assert mac == recipes.cbc_mac(ks, recipes.pad(message))[:4]


def test_another_challenge_another_key(sam, card_keys):
    spec = next(s for s in SAM_KEYS if s.name == "RK1DF01")
    unlock(sam)
    plain = bytes(16)
    load(sam, spec, R)
    first = sam.deferred(CommandAPDU(0x80, 0xFA, 0, 0, plain))
    load(sam, spec, bytes(8))
    second = sam.deferred(CommandAPDU(0x80, 0xFA, 0, 0, plain))
    assert first != second
    assert second == ecb_encrypt(Algorithm.SM4, recipes.session_key(card_keys["RK1DF01"], bytes(8)), plain)


# --- malformed key commands ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("p1", "p2", "length", "sw"),
    [
        (0x47, 0x31, 16, 0x6700),  # two levels (province, card) need 24 bytes
        (0x47, 0x31, 0, 0x6700),
        (0x27, 0x2A, 24, 0x6700),  # one level (card) needs 16
        (0x48, 0x04, 8, 0x6700),
        (0x37, 0x31, 24, 0x6A86),  # three levels: not a thing
        (0x17, 0x31, 16, 0x6A86),
        (0x49, 0x31, 24, 0x6A86),  # low nibble neither 7 (auth) nor 8 (SM)
        (0x40, 0x31, 24, 0x6A86),
        (0x47, 0x99, 24, 0x6A88),  # no such key index
    ],
)
def test_malformed_load(sam, p1, p2, length, sw):
    unlock(sam)
    assert sam.sw(CommandAPDU(0x80, 0xDE, p1, p2, bytes(length))) == sw
    assert sam.sw("80FA000010" + "00" * 16) == 0x6985  # nothing was loaded


@pytest.mark.parametrize(
    ("apdu", "sw"),
    [
        ("80FA00000F" + "00" * 15, 0x6700),  # not whole blocks
        ("80FA010010" + "00" * 16, 0x6A86),
        ("80FA000110" + "00" * 16, 0x6A86),
        ("80FA050010" + "00" * 16, 0x6700),  # an IV and no data
        ("80FA050018" + "00" * 24, 0x6700),
    ],
)
def test_malformed_cipher(sam, apdu, sw):
    unlock(sam)
    assert load(sam, SAM_KEYS[0]) == 0x9000
    assert sam.sw(apdu) == sw


def test_cipher_before_load_is_6985(sam):
    unlock(sam)
    assert sam.sw("80FA000010" + "00" * 16) == 0x6985
