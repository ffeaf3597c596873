"""The user card's operating system (``healthcard.card.cos``), APDU by APDU.

Status words are asserted exactly (DECISIONS.md §3); every refused write is also checked to
have left the file byte for byte as it was.
"""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from healthcard.card.apdu import CommandAPDU
from healthcard.card.filesystem import LifeCycle
from healthcard.card.personalise import create_file_data, key_record
from healthcard.card.profile import PROFILE_32K
from healthcard.card.sw import SW
from healthcard.keys import recipes
from healthcard.keys.cardkeys import demo_transport_key
from healthcard.keys.primitives import Algorithm

WRONG_KEY = bytes(16)
ADDRESS_TYPE1 = bytes.fromhex("15011F")  # DF01/EF05 record 1 as issued: tag 15, len 1, "1"


def records(ef) -> list[bytes]:
    return [bytes(r) for r in ef.records]


# --- malformed input --------------------------------------------------------------------------
@pytest.mark.parametrize("apdu", ["", "00", "00A4", "00A400"])
def test_shorter_than_a_header_is_6700(card, apdu):
    assert card.send(bytes.fromhex(apdu)) == (b"", 0x6700)


@pytest.mark.parametrize(
    "apdu",
    [
        "00A4000003DDF1",  # Lc says 3, two bytes follow
        "00A4000001DDF1AA",  # Lc says 1, three follow (and not Lc + Le either)
        "00A40000FFDDF1",
        "00A400000002",  # extended Lc cut short
        "00A4000000000ADDF1",  # extended Lc 10, 2 bytes
    ],
)
def test_lc_mismatch_is_6700(card, apdu):
    assert card.send(apdu) == (b"", 0x6700)


@pytest.mark.parametrize("apdu", ["00CA000000", "00FF000000", "0070000000", "00B4000000", "80500000"])
def test_unknown_ins_is_6d00(card, apdu):
    assert card.sw(apdu) == 0x6D00


@pytest.mark.parametrize("apdu", ["A0A4000002DDF1", "FFB0000010", "0CB2010400", "90840000"])
def test_unknown_cla_is_6e00(card, apdu):
    assert card.sw(apdu) == 0x6E00


@pytest.mark.parametrize("apdu", ["80A4000002DDF1", "04B0000010", "8484000008", "04820000"])
def test_known_cla_on_the_wrong_ins_is_6e00(card, apdu):
    assert card.sw(apdu) == 0x6E00


# --- SELECT ---------------------------------------------------------------------------------
def test_select_missing_fid_is_6a82_and_keeps_df_ef_and_auth(card):
    card.select("DDF1", "DF01")
    card.auth_ok("RK1DF01")
    card.select("EF05")
    assert card.sw("00A40000021234") == 0x6A82
    assert card.sw("00A4000002DF04") == 0x6A82
    assert card.os.session.df.fid == 0xDF01
    # same DF, same EF, authentication still held
    assert card.send("00B2010400") == (ADDRESS_TYPE1, 0x9000)


def test_select_by_name(card):
    assert card.send("00A404000C" + b"WS.SYS.DDF01".hex()) == (
        bytes.fromhex("6F10840C57532E5359532E4444463031A500"),
        0x9000,
    )
    assert card.sw("00A4040006915600013299") == 0x6A82
    assert card.os.session.df.fid == 0xDDF1


def test_select_bad_p1_p2(card):
    assert card.sw("00A4010002DDF1") == 0x6A86
    assert card.sw("00A4000102DDF1") == 0x6A86
    assert card.sw("00A4000003DDF100") == 0x6700


# --- READ BINARY / READ RECORD -------------------------------------------------------------
def test_read_binary_offset_past_end_is_6b00(card):
    card.select("DDF1", "DF03")
    card.auth_ok("RK1DF03")
    card.select("ED01")
    size = PROFILE_32K.ed_size  # 3267
    assert card.send(CommandAPDU(0, 0xB0, size >> 8, size & 0xFF, le=1)) == (b"", 0x6B00)
    assert card.sw("00B07FFF01") == 0x6B00
    last = size - 1
    assert card.send(CommandAPDU(0, 0xB0, last >> 8, last & 0xFF, le=1))[1] == 0x9000
    # Le past the end: what there is, and the end-of-file warning
    data, sw = card.send(CommandAPDU(0, 0xB0, (size - 4) >> 8, (size - 4) & 0xFF, le=16))
    assert (len(data), sw) == (4, 0x6282)


def test_read_record_zero_and_past_last_is_6a83(card):
    card.select("DDF1", "EF05")
    assert card.send("00B2000400") == (b"", 0x6A83)
    assert card.sw("00B20B0400") == 0x6A83  # EF05 has 10 records
    assert card.sw("00B2FF0400") == 0x6A83
    assert card.sw("00B20A0400") == 0x9000
    assert card.sw("00B2070000") == 0x6A83  # by identifier: tag 07 lives in EF08, not here


def test_read_record_on_transparent_ef_is_6981(card):
    card.select("DDF1", "EF07")
    assert card.sw("00B2010400") == 0x6981


def test_read_binary_on_record_file_is_6981(card):
    card.select("DDF1", "EF05")
    assert card.sw("00B0000010") == 0x6981


def test_no_current_ef_is_6986(card):
    card.select("DDF1")
    assert card.sw("00B2010400") == 0x6986
    assert card.sw("00B0000010") == 0x6986
    assert card.sw("00DC01040315011F") == 0x6986
    card.select("DF01")
    assert card.sw("00B2010400") == 0x6986  # entering a DF forgets the EF


def test_wrong_le_on_read_record_gives_the_exact_length(card):
    card.select("DDF1", "EF05")
    assert card.send("00B2080010") == (b"", 0x6C14)
    assert card.send("00B2080014")[1] == 0x9000


def test_ddf1_ef06_needs_the_read_key(card):
    card.select("DDF1", "EF06")
    assert card.send("00B2010400") == (b"", 0x6982)
    card.select("DDF1")
    card.auth_ok("RK1DDF1")
    card.select("EF06")
    data, sw = card.send("00B2010400")
    assert sw == 0x9000
    assert data[:2] == b"\x0b\x1e" and data[2:8] == "张三".encode("gbk") + bytes(2)


def test_ddf1_ef05_is_free_to_read(card):
    card.select("DDF1", "EF05")
    assert card.sw("00B2010400") == 0x9000


def test_an_update_key_is_not_a_read_key(card):
    card.select("DDF1", "DF01")
    card.auth_ok("UK1DF01")
    card.select("EF05")
    assert card.sw("00B2010400") == 0x6982


# --- security state -------------------------------------------------------------------------
def test_security_state_is_per_df(card):
    card.select("DDF1", "DF01")
    card.auth_ok("RK1DF01")
    card.select("EF05")
    assert card.sw("00B2010400") == 0x9000
    card.select("DF02")
    card.select("EF05")
    assert card.sw("00B2010400") == 0x6982  # DF01's read key does not open DF02
    card.select("DF01", "EF05")
    assert card.sw("00B2010400") == 0x6982  # and was dropped on leaving DF01
    card.select("DF01")
    card.auth_ok("RK1DF01")
    card.select("EF05")
    assert card.sw("00B2010400") == 0x9000


def test_reselecting_the_same_df_keeps_the_security_state(card):
    card.select("DDF1", "DF01")
    card.auth_ok("RK1DF01")
    card.select("DF01", "EF05")
    assert card.sw("00B2010400") == 0x9000


def test_wrong_cryptogram_counts_down_and_drops_what_was_held(card):
    card.select("DDF1", "DF01")
    card.auth_ok("RK1DF01")
    card.select("EF05")
    assert card.sw("00B2010400") == 0x9000
    assert card.auth("RK1DF01", key=WRONG_KEY) == 0x63CE
    assert card.sw("00B2010400") == 0x6982  # the read key held before is gone
    assert card.auth("RK1DF01", key=WRONG_KEY) == 0x63CD
    assert card.auth("UK1DF01", key=WRONG_KEY) == 0x63CE  # counters are per key
    assert card.auth("RK1DF01", key=WRONG_KEY) == 0x63CC


def test_a_wrong_update_key_attempt_drops_the_read_key(card):
    card.select("DDF1", "DF02")
    card.auth_ok("RK1DF02")
    assert card.auth("UK3DF02", key=WRONG_KEY) == 0x63CE
    card.select("EF05")
    assert card.sw("00B2010400") == 0x6982


def test_success_resets_the_counter(card):
    card.select("DDF1", "DF03")
    for expected in (0x63CE, 0x63CD, 0x63CC):
        assert card.auth("RK1DF03", key=WRONG_KEY) == expected
    card.auth_ok("RK1DF03")
    assert card.auth("RK1DF03", key=WRONG_KEY) == 0x63CE


def test_fifteen_failures_block_the_key(card):
    card.select("DDF1", "DF03")
    sws = [card.auth("RK1DF03", key=WRONG_KEY) for _ in range(15)]
    assert sws == [0x63C0 | n for n in range(14, -1, -1)]
    assert card.auth("RK1DF03") == 0x6983  # the right key no longer helps
    card.os.power_on()
    card.select("DDF1", "DF03")
    assert card.auth("RK1DF03") == 0x6983  # blocked for good, not for the session
    card.auth_ok("UK1DF03")  # other keys are not affected


def test_external_authenticate_without_challenge_is_6985(card):
    card.select("DDF1", "DF03")
    assert card.external_authenticate("RK1DF03", bytes(8))[1] == 0x6985
    card.os.power_on()
    card.select("DDF1", "DF03")
    # a challenge taken before a reset is gone too
    challenge = card.challenge()
    card.os.power_on()
    card.select("DDF1", "DF03")
    assert card.external_authenticate("RK1DF03", challenge)[1] == 0x6985


def test_a_challenge_is_single_use(card):
    card.select("DDF1", "DF03")
    challenge = card.challenge()
    assert card.external_authenticate("RK1DF03", challenge)[1] == 0x9000
    assert card.external_authenticate("RK1DF03", challenge)[1] == 0x6985
    # a failed attempt uses it up as well
    challenge = card.challenge()
    assert card.external_authenticate("RK1DF03", challenge, key=WRONG_KEY)[1] == 0x63CE
    assert card.external_authenticate("RK1DF03", challenge)[1] == 0x6985


def test_only_the_last_challenge_counts(card):
    card.select("DDF1", "DF03")
    first = card.challenge()
    card.challenge()
    assert card.external_authenticate("RK1DF03", first)[1] == 0x63CE


def test_external_authenticate_malformed(card):
    card.select("DDF1", "DF03")
    assert card.sw("0082008410" + "00" * 16) == 0x6700
    assert card.sw("0082018411" + "00" * 17) == 0x6A86
    assert card.sw("0082009911" + "00" * 17) == 0x6A88  # no such key in DF03
    card.challenge()
    assert card.sw("0082008411" + "00" * 16 + "02") == 0x6A80  # 3DES offered to an SM4 key


# --- write-never and personalisation after issuance ----------------------------------------
@pytest.mark.parametrize("ef", ["EF05", "EF06"])
def test_ddf1_write_never_files_refuse_updates(card, ef):
    card.select("DDF1")
    card.auth_ok("RK1DDF1")
    card.auth_ok("UK1DDF1")
    card.select(ef)
    before = records(card.ef("DDF1", ef))
    first = before[0]
    assert card.sw(bytes([0x00, 0xDC, 0x01, 0x04, len(first)]) + first) == 0x6985
    assert card.sw(bytes([0x00, 0xE2, 0x00, 0x00, len(first)]) + first) == 0x6985
    header = bytes([0x04, 0xDC, 0x01, 0x04])
    assert card.sw(CommandAPDU(0x04, 0xDC, 1, 4, card.sm_body("STKDDF1", header, first))) == 0x6985
    assert records(card.ef("DDF1", ef)) == before


def test_personalisation_commands_after_issuance_are_6985(card, issued_state):
    assert card.state.lifecycle is LifeCycle.ISSUED
    spec = PROFILE_32K.file("DDF1", "EF07")
    assert (
        card.sw(
            CommandAPDU(
                0x80, 0xE0, 0, 0, create_file_data(spec)[:1] + b"\x12\x34" + create_file_data(spec)[3:]
            )
        )
        == 0x6985
    )
    challenge = card.challenge()
    ks = recipes.session_key(demo_transport_key(card.state.serial), challenge)
    record = key_record(0x05, 0x01, Algorithm.SM4, 1, 15, bytes(16))
    assert (
        card.sw(CommandAPDU(0x84, 0xD4, 0, 0, recipes.sm_wrap(ks, bytes.fromhex("84D40000"), record)))
        == 0x6985
    )
    assert card.sw("80E60000") == 0x6985
    assert card.state == issued_state  # nothing changed, keys included


# --- secure-messaging writes ------------------------------------------------------------------
def _df01_update_ready(card):
    card.select("DDF1", "DF01")
    card.auth_ok("UK1DF01")
    card.select("EF05")


def test_sm_update_record_works(card):
    _df01_update_ready(card)
    header = bytes.fromhex("04DC0104")
    new = bytes.fromhex("15012F")
    assert card.sw(CommandAPDU(0x04, 0xDC, 1, 4, card.sm_body("STKDF01", header, new))) == 0x9000
    assert card.ef("DDF1", "DF01", "EF05").records[0] == new


def test_sm_file_refuses_a_plain_update(card):
    _df01_update_ready(card)
    before = records(card.ef("DDF1", "DF01", "EF05"))
    assert card.sw("00DC01040315012F") == 0x6982
    assert records(card.ef("DDF1", "DF01", "EF05")) == before


def test_sm_update_needs_the_update_key(card):
    card.select("DDF1", "DF01")
    card.auth_ok("RK1DF01")
    card.select("EF05")
    header = bytes.fromhex("04DC0104")
    assert (
        card.sw(CommandAPDU(0x04, 0xDC, 1, 4, card.sm_body("STKDF01", header, bytes.fromhex("15012F"))))
        == 0x6982
    )
    assert card.ef("DDF1", "DF01", "EF05").records[0] == ADDRESS_TYPE1


@pytest.mark.parametrize("where", ["mac", "ciphertext", "header"])
def test_sm_write_with_a_flipped_bit_is_6988_and_changes_nothing(card, where):
    _df01_update_ready(card)
    before = records(card.ef("DDF1", "DF01", "EF05"))
    header = bytes.fromhex("04DC0104")
    body = bytearray(card.sm_body("STKDF01", header, bytes.fromhex("15012F")))
    p1 = 1
    if where == "mac":
        body[-1] ^= 0x01
    elif where == "ciphertext":
        body[0] ^= 0x80
    else:
        p1 = 2  # a MAC made for record 1 sent for record 2
    assert card.sw(CommandAPDU(0x04, 0xDC, p1, 4, bytes(body))) == 0x6988
    assert records(card.ef("DDF1", "DF01", "EF05")) == before


def test_sm_write_replayed_is_refused(card):
    _df01_update_ready(card)
    header = bytes.fromhex("04DC0104")
    body = card.sm_body("STKDF01", header, bytes.fromhex("15012F"))
    assert card.sw(CommandAPDU(0x04, 0xDC, 1, 4, body)) == 0x9000
    assert card.sw(CommandAPDU(0x04, 0xDC, 1, 4, body)) == 0x6985  # the challenge is spent
    card.challenge()
    assert card.sw(CommandAPDU(0x04, 0xDC, 1, 4, body)) == 0x6988  # a new challenge, a new key


def test_sm_under_the_wrong_key_is_6988(card):
    _df01_update_ready(card)
    header = bytes.fromhex("04DC0104")
    body = card.sm_body("STKDF02", header, bytes.fromhex("15012F"))
    assert card.sw(CommandAPDU(0x04, 0xDC, 1, 4, body)) == 0x6988
    assert card.ef("DDF1", "DF01", "EF05").records[0] == ADDRESS_TYPE1


@pytest.mark.parametrize(
    ("payload", "sw"),
    [
        ("16012F", 0x6A80),  # another item's tag in record 1
        ("1502", 0x6700),  # shorter
        ("15022F00", 0x6700),  # longer, length byte to match
        ("15012F00", 0x6700),  # longer, length byte not matching
    ],
)
def test_tlv_record_keeps_its_tag_and_length(card, payload, sw):
    _df01_update_ready(card)
    before = records(card.ef("DDF1", "DF01", "EF05"))
    header = bytes.fromhex("04DC0104")
    assert (
        card.sw(CommandAPDU(0x04, 0xDC, 1, 4, card.sm_body("STKDF01", header, bytes.fromhex(payload)))) == sw
    )
    assert records(card.ef("DDF1", "DF01", "EF05")) == before


def test_update_record_past_the_last_is_6a83(card):
    _df01_update_ready(card)
    assert card.sw(CommandAPDU(0x04, 0xDC, 5, 4, bytes(20))) == 0x6A83  # EF05 has four records
    assert card.sw(CommandAPDU(0x04, 0xDC, 0, 4, bytes(20))) == 0x6A83


# --- cyclic files -----------------------------------------------------------------------------
def _allergy(n: int) -> bytes:
    return f"allergen {n}".encode().ljust(20, b"\0") + f"reaction {n}".encode().ljust(100, b"\0")


def test_cyclic_file_keeps_the_newest_first(card):
    card.select("DDF1", "DF02")
    card.auth_ok("RK1DF02")
    card.auth_ok("UK3DF02")
    card.select("EF07")
    issued = card.ok("00B2010400")
    assert issued.startswith("青霉素".encode("gbk"))
    assert card.sw("00B2020400") == 0x6A83  # the demo card holds one allergy
    header = bytes.fromhex("04DC0003")
    for n in range(1, 5):
        assert card.sw(CommandAPDU(0x04, 0xDC, 0, 3, card.sm_body("STKDF02", header, _allergy(n)))) == 0x9000
    assert [card.ok(f"00B2{n:02X}0400") for n in (1, 2, 3)] == [_allergy(4), _allergy(3), _allergy(2)]
    assert card.sw("00B2040400") == 0x6A83
    assert len(card.ef("DDF1", "DF02", "EF07").records) == 3


def test_cyclic_file_refuses_numbered_updates_and_wrong_lengths(card):
    card.select("DDF1", "DF02")
    card.auth_ok("UK3DF02")
    card.select("EF07")
    before = records(card.ef("DDF1", "DF02", "EF07"))
    header = bytes.fromhex("04DC0104")
    assert card.sw(CommandAPDU(0x04, 0xDC, 1, 4, card.sm_body("STKDF02", header, _allergy(1)))) == 0x6A86
    header = bytes.fromhex("04DC0003")
    assert (
        card.sw(CommandAPDU(0x04, 0xDC, 0, 3, card.sm_body("STKDF02", header, _allergy(1)[:119]))) == 0x6700
    )
    assert records(card.ef("DDF1", "DF02", "EF07")) == before


# --- DF03 visit index ----------------------------------------------------------------------------
def _index_cmd(card, ins: int, rec: int, key: str = "STKDF03", mac: bool = True) -> CommandAPDU:
    header = bytes([0x84, ins, rec, 0x04])
    return CommandAPDU(0x84, ins, rec, 0x04, card.mac_body(key, header) if mac else b"")


def test_index_sign_needs_uk1_and_erase_needs_uk2(card):
    card.select("DDF1", "DF03")
    index = card.ef("DDF1", "DF03", "EF06")
    assert records(index) == [b"\xff"] * 5  # a new card: no valid outpatient record
    card.auth_ok("UK2DF03")
    card.select("EF06")
    assert card.sw(_index_cmd(card, 0xD2, 1)) == 0x6982  # sign needs UK1DF03
    assert records(index)[0] == b"\xff"
    card.select("DF03")
    card.auth_ok("UK1DF03")
    card.select("EF06")
    assert card.sw(_index_cmd(card, 0xD2, 1)) == 0x9000
    assert records(index) == [b"\x00"] + [b"\xff"] * 4


def test_index_erase_with_only_uk1_is_6982(card):
    card.select("DDF1", "DF03")
    card.auth_ok("UK1DF03")
    card.select("EF06")
    assert card.sw(_index_cmd(card, 0xD2, 2)) == 0x9000
    assert card.sw(_index_cmd(card, 0x0C, 2)) == 0x6982
    assert records(card.ef("DDF1", "DF03", "EF06"))[1] == b"\x00"
    card.select("DF03")
    card.auth_ok("UK2DF03")
    card.select("EF06")
    assert card.sw(_index_cmd(card, 0x0C, 2)) == 0x9000
    assert records(card.ef("DDF1", "DF03", "EF06"))[1] == b"\xff"


def test_index_needs_a_good_mac(card):
    card.select("DDF1", "DF03")
    card.auth_ok("UK1DF03")
    card.select("EF05")
    assert card.sw(_index_cmd(card, 0xD2, 1, mac=False)) == 0x6982  # the SDK's Lc=00 form
    assert card.sw(_index_cmd(card, 0xD2, 1, key="STKDF02")) == 0x6988
    assert card.sw(_index_cmd(card, 0xD2, 4)) == 0x6A83  # EF05 has three records
    assert records(card.ef("DDF1", "DF03", "EF05")) == [b"\xff"] * 3


# --- card lock ----------------------------------------------------------------------------------
def _lock(card, ins: int, key: str = "BKMF") -> int:
    header = bytes([0x84, ins, 0x00, 0x00])
    return card.sw(CommandAPDU(0x84, ins, 0, 0, card.mac_body(key, header)))


BLOCKED_REFUSED = [
    "00B2010400",
    "00B0000010",
    "0082008411" + "00" * 17,
    "002000010312345F",
    "00DC01040315011F",
    "84D2010400",
    "80E60000",
    "00C0000000",
    "8416000004" + "00" * 4,
]


def test_card_lock_and_unlock(card):
    card.select("DDF1", "EF05")
    assert _lock(card, 0x16) == 0x9000
    assert card.state.lifecycle is LifeCycle.BLOCKED
    for apdu in BLOCKED_REFUSED:
        assert card.sw(apdu) == 0x6A81, apdu
    assert card.sw("00A4000002DDF1") == 0x9000  # SELECT still works
    assert card.sw("0084000008") == 0x9000  # and GET CHALLENGE
    card.os.power_on()
    card.select("DDF1", "EF05")
    assert card.sw("00B2010400") == 0x6A81  # a reset does not unlock
    assert _lock(card, 0x18, key="STKMF") == 0x6988  # only the lock key unlocks
    assert _lock(card, 0x18) == 0x9000
    assert card.state.lifecycle is LifeCycle.ISSUED
    assert card.sw("00B2010400") == 0x9000


def test_card_lock_refused(card):
    assert _lock(card, 0x16, key="STKMF") == 0x6988
    assert card.sw("8416000004" + "00" * 4) == 0x6985  # no challenge
    assert card.sw("84160000") == 0x6985
    assert _lock(card, 0x18) == 0x6985  # not blocked: nothing to unblock
    assert card.state.lifecycle is LifeCycle.ISSUED


# --- cardholder PIN -----------------------------------------------------------------------------
def test_card_without_pin_answers_6a88(card):
    assert card.sw("0020000103123456") == 0x6A88
    assert card.sw("00200001") == 0x6A88
    assert card.sw("0024000106123456654321") == 0x6A88


def test_verify_pin(pin_card):
    assert pin_card.sw("00200001") == 0x63C3  # not verified yet, three tries
    assert pin_card.sw("0020000103123456") == 0x9000
    assert pin_card.sw("00200001") == 0x9000


def test_wrong_pin_counts_down_and_blocks(pin_card):
    assert pin_card.sw("0020000103654321") == 0x63C2
    assert pin_card.sw("0020000103123457") == 0x63C1
    assert pin_card.sw("0020000103000000") == 0x63C0
    assert pin_card.sw("0020000103123456") == 0x6983  # the right PIN no longer helps
    assert pin_card.sw("00200001") == 0x6983


def test_right_pin_resets_the_counter(pin_card):
    assert pin_card.sw("0020000103654321") == 0x63C2
    assert pin_card.sw("0020000103123456") == 0x9000
    assert pin_card.sw("0020000103654321") == 0x63C2
    assert pin_card.sw("00200001") == 0x63C2  # the failure dropped the verification


@pytest.mark.parametrize(
    ("apdu", "sw"),
    [
        ("00200001021234", 0x6A80),  # not 6 digits
        ("002000010312345A", 0x6A80),  # not BCD
        ("0020000203123456", 0x6A86),  # another reference
        ("0020010103123456", 0x6A86),
    ],
)
def test_verify_malformed(pin_card, apdu, sw):
    assert pin_card.sw(apdu) == sw
    assert pin_card.sw("00200001") == 0x63C3  # no try was used


def test_change_reference_data(pin_card):
    assert pin_card.sw("0024000106654321111111") == 0x63C2  # wrong old PIN
    assert pin_card.sw("0024000106123456111111") == 0x9000
    assert pin_card.sw("0020000103123456") == 0x63C2
    assert pin_card.sw("0020000103111111") == 0x9000
    assert pin_card.sw("0024000103111111") == 0x6700


def _reset_retry_counter(card, new: str, key: str = "PUKMF") -> int:
    header = bytes.fromhex("842C0001")
    return card.sw(CommandAPDU(0x84, 0x2C, 0, 1, card.sm_body(key, header, bytes.fromhex(new))))


def test_reset_retry_counter_unblocks_with_the_issuer_key(pin_card):
    for _ in range(3):
        pin_card.sw("0020000103000000")
    assert pin_card.sw("0020000103123456") == 0x6983
    assert _reset_retry_counter(pin_card, "222222", key="BKMF") == 0x6988
    assert pin_card.sw("0020000103123456") == 0x6983  # still blocked
    assert pin_card.sw("842C000114" + "00" * 20) == 0x6985  # no challenge
    assert _reset_retry_counter(pin_card, "222222") == 0x9000
    assert pin_card.sw("00200001") == 0x63C3
    assert pin_card.sw("0020000103123456") == 0x63C2  # the old PIN is gone
    assert pin_card.sw("0020000103222222") == 0x9000


def test_power_on_clears_the_security_state(pin_card):
    card = pin_card
    assert card.sw("0020000103123456") == 0x9000
    card.select("DDF1", "DF01")
    card.auth_ok("RK1DF01")
    card.select("EF05")
    assert card.sw("00B2010400") == 0x9000
    card.os.power_on()
    assert card.os.session.df.fid == 0x3F00
    assert card.sw("00200001") == 0x63C3
    card.select("DDF1", "DF01", "EF05")
    assert card.sw("00B2010400") == 0x6982


# --- robustness (property tests) -----------------------------------------------------------------
KNOWN_INS = [
    0xA4,
    0xB0,
    0xD6,
    0xB2,
    0xDC,
    0xE2,
    0xD2,
    0x0C,
    0x84,
    0x82,
    0x20,
    0x24,
    0x2C,
    0xC0,
    0xE0,
    0xD4,
    0xE6,
    0x16,
    0x18,
]
KNOWN_CLA = [0x00, 0x04, 0x80, 0x84]
KNOWN_SW = {int(sw) for sw in SW}


def _plausible(sw: int) -> bool:
    """A status word the card may give: one of the table, or a counted 61xx / 63Cx / 6Cxx."""
    sw1, sw2 = sw >> 8, sw & 0xFF
    return sw in KNOWN_SW or sw1 in (0x61, 0x6C) or (sw1 == 0x63 and sw2 & 0xF0 == 0xC0)


def _check(response: bytes) -> None:
    assert isinstance(response, bytes)
    assert len(response) >= 2
    sw = int.from_bytes(response[-2:], "big")
    assert sw != 0x6F00, "6F00: an exception inside the card"
    assert _plausible(sw), f"{sw:04X}"


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300))
def test_process_never_fails_on_arbitrary_bytes(fresh_card, data):
    card = fresh_card()
    card.select("DDF1", "EF05")
    _check(card.os.process(data))


#: where a random command sequence starts: a DF, the keys authenticated in it, an EF
STARTS = [
    ("MF", (), None),
    ("DDF1", (), "EF05"),
    ("DDF1", ("RK1DDF1", "UK1DDF1"), "EF07"),
    ("DDF1", ("RK1DDF1", "UK1DDF1"), "EF08"),
    ("DF01", ("RK1DF01", "UK1DF01"), "EF05"),
    ("DF02", ("RK1DF02", "UK1DF02", "UK2DF02", "UK3DF02"), "EF07"),
    ("DF02", ("RK1DF02", "UK3DF02"), "EF08"),
    ("DF03", ("RK1DF03", "UK1DF03", "UK2DF03"), "EF06"),
    ("DF03", ("RK1DF03", "UK1DF03"), "ED01"),
]

commands = st.builds(
    CommandAPDU,
    cla=st.sampled_from(KNOWN_CLA),
    ins=st.sampled_from(KNOWN_INS),
    p1=st.one_of(st.sampled_from([0x00, 0x01, 0x03, 0x04, 0x05, 0x39]), st.integers(0, 255)),
    p2=st.one_of(st.sampled_from([0x00, 0x01, 0x03, 0x04, 0x05, 0x0C, 0x84, 0x85]), st.integers(0, 255)),
    data=st.one_of(st.binary(max_size=24), st.binary(max_size=300)),
    le=st.one_of(st.none(), st.integers(1, 256), st.integers(1, 65536)),
    extended=st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(
    start=st.sampled_from(STARTS), steps=st.lists(st.tuples(st.booleans(), commands), min_size=1, max_size=6)
)
def test_process_never_fails_on_structured_commands(fresh_card, start, steps):
    card = fresh_card()
    df, keys, ef = start
    if df != "MF":
        card.select("DDF1")
        if df != "DDF1":
            card.select(df)
    for key in keys:
        card.auth_ok(key)
    if ef is not None:
        card.select(ef)
    for with_challenge, cmd in steps:
        if with_challenge:
            _check(card.os.process(bytes.fromhex("0084000008")))
        _check(card.os.process(cmd.to_bytes()))


def test_process_is_total_even_when_a_handler_raises(card):
    """The 6F00 fallback: a bug in a handler still gets a status word, not an exception."""

    def broken(cmd):
        raise KeyError("a bug")

    card.os.commands[0xB2] = (frozenset({0x00}), broken)
    assert card.send("00B2010400") == (b"", 0x6F00)


# --- regression: extended-length secure-messaging bodies -----------------------------------------
# Found by these tests: a body of 256+ bytes made recipes.sm_check_mac / sm_unwrap compute
# bytes([len(body)]) -> ValueError, which process() answered with 6F00.
@pytest.mark.parametrize("kind", ["card-lock MAC", "SM update record"])
def test_sm_body_over_255_bytes_is_a_length_or_sm_error(card, kind):
    body = bytes(16 * 16 + 4)  # whole blocks + MAC: passes the shape check, then breaks
    if kind == "card-lock MAC":
        card.challenge()
        cmd = CommandAPDU(0x84, 0x16, 0, 0, body, extended=True)
    else:
        _df01_update_ready(card)
        card.challenge()
        cmd = CommandAPDU(0x04, 0xDC, 1, 4, body, extended=True)
    before = copy.deepcopy(card.state)
    assert card.sw(cmd) in (0x6700, 0x6988)
    assert card.state == before
