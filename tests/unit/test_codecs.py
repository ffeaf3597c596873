"""The card codings ans / cn / b, dates, and the ATR."""

from __future__ import annotations

import datetime as dt
from functools import reduce

import pytest
from hypothesis import given
from hypothesis import strategies as st

from healthcard.card import codecs
from healthcard.card.atr import KeyInfo, build_atr, chip_serial, historical_bytes, key_info
from healthcard.errors import EncodingError, InvalidValue


def _gbk_ok(ch: str) -> bool:
    try:
        ch.encode("gbk")
    except UnicodeEncodeError:
        return False
    return True


#: every character GBK can encode, except NUL (which ans cannot hold)
GBK_CHARS = [chr(cp) for cp in range(1, 0x10000) if not 0xD800 <= cp < 0xE000 and _gbk_ok(chr(cp))]


# --- ans --------------------------------------------------------------------------------------


def test_ans_is_gbk_padded_with_zeros() -> None:
    assert codecs.encode_ans("name", "张三", 6) == "张三".encode("gbk") + b"\x00\x00"
    assert codecs.encode_ans("name", "张三", 6) == bytes.fromhex("D5C5C8FD0000")
    assert codecs.encode_ans("card_number", "410102199003070019", 18) == b"410102199003070019"
    assert codecs.encode_ans("x", "", 3) == bytes(3)
    assert codecs.decode_ans(bytes.fromhex("D5C5C8FD0000")) == "张三"
    assert codecs.decode_ans(b"\xff" * 4) == ""  # an erased (FF-filled) field reads as empty
    assert codecs.decode_ans(b"") == ""


def test_ans_too_long_names_the_item() -> None:
    with pytest.raises(EncodingError) as info:
        codecs.encode_ans("issuer_name", "河南省卫生健康委员会", 10)
    assert info.value.field == "issuer_name"
    assert "issuer_name" in str(info.value)
    assert "20" in str(info.value) and "10" in str(info.value)
    assert isinstance(info.value, InvalidValue)


@pytest.mark.parametrize("text", ["😀", "张😀三", "a\U00020000"])
def test_ans_character_outside_gbk_names_item_and_character(text: str) -> None:
    with pytest.raises(EncodingError) as info:
        codecs.encode_ans("other_alert", text, 40)
    bad = next(ch for ch in text if not _gbk_ok(ch))
    assert info.value.field == "other_alert"
    assert "other_alert" in str(info.value)
    assert bad in str(info.value)


def test_ans_refuses_nul() -> None:
    with pytest.raises(EncodingError) as info:
        codecs.encode_ans("name", "a\x00b", 10)
    assert info.value.field == "name"


@given(st.data())
def test_ans_round_trip(data: st.DataObject) -> None:
    text = data.draw(st.text(alphabet=st.sampled_from(GBK_CHARS), max_size=30))
    size = len(text.encode("gbk"))
    length = data.draw(st.integers(max(size, 1), size + 10))
    raw = codecs.encode_ans("item", text, length)
    assert len(raw) == length
    assert codecs.decode_ans(raw) == text
    assert codecs.decode("ans", raw) == text


@given(st.text(alphabet=st.sampled_from(GBK_CHARS), min_size=1, max_size=30))
def test_ans_too_long_for_any_shorter_field(text: str) -> None:
    size = len(text.encode("gbk"))
    with pytest.raises(EncodingError):
        codecs.encode_ans("item", text, size - 1)


# --- cn ---------------------------------------------------------------------------------------


def test_cn_is_bcd_padded_with_f() -> None:
    assert codecs.encode_cn("city_code", "410100", 3) == bytes.fromhex("410100")
    assert codecs.encode_cn("issue_date", "20261123", 4) == bytes.fromhex("20261123")
    assert codecs.encode_cn("x", "123", 3) == bytes.fromhex("123FFF")
    assert codecs.encode_cn("x", "", 2) == bytes.fromhex("FFFF")
    assert codecs.encode_cn("x", "12.5", 3) == bytes.fromhex("12A5FF")  # '.' is nibble A
    assert codecs.decode_cn(bytes.fromhex("12A5FF")) == "12.5"
    assert codecs.decode_cn(bytes.fromhex("123FFF")) == "123"
    assert codecs.decode_cn(bytes.fromhex("1F23")) == "1"  # the first F ends the number
    assert codecs.decode_cn(bytes.fromhex("1B")) == "1?"


@pytest.mark.parametrize("value", ["12a", "-1", "1 2", "１２", "٣", "1e5", "F"])
def test_cn_non_digit_names_the_item(value: str) -> None:
    with pytest.raises(EncodingError) as info:
        codecs.encode_cn("phone1", value, 8)
    assert info.value.field == "phone1"
    assert "phone1" in str(info.value)


def test_cn_too_long() -> None:
    with pytest.raises(EncodingError) as info:
        codecs.encode_cn("city_code", "4101001", 3)
    assert info.value.field == "city_code"


@given(st.data())
def test_cn_round_trip(data: st.DataObject) -> None:
    length = data.draw(st.integers(1, 12))
    digits = data.draw(st.text(alphabet="0123456789.", max_size=2 * length))
    raw = codecs.encode_cn("item", digits, length)
    assert len(raw) == length
    assert codecs.decode_cn(raw) == digits
    assert codecs.decode("cn", raw) == digits


# --- b ----------------------------------------------------------------------------------------


def test_b_is_raw_bytes_padded_with_zeros() -> None:
    assert codecs.encode_b("x", b"\x01\x02", 4) == bytes.fromhex("01020000")
    assert codecs.encode("x", "b", 3, 1) == b"\x03"
    assert codecs.encode("x", "b", "0A0B", 3) == bytes.fromhex("0A0B00")
    assert codecs.decode("b", bytes.fromhex("0a0b")) == "0A0B"
    with pytest.raises(EncodingError) as info:
        codecs.encode_b("photo", bytes(5), 4)
    assert info.value.field == "photo"


@given(st.data())
def test_b_round_trip(data: st.DataObject) -> None:
    length = data.draw(st.integers(1, 64))
    value = data.draw(st.binary(max_size=length))
    raw = codecs.encode_b("item", value, length)
    assert len(raw) == length
    assert raw[: len(value)] == value and not any(raw[len(value) :])
    assert codecs.decode("b", raw) == raw.hex().upper()
    assert codecs.encode("item", "b", value.hex(), length) == raw


@pytest.mark.parametrize(
    ("coding", "value", "length"),
    [
        ("ans", b"bytes", 8),
        ("ans", 5, 8),
        ("cn", b"12", 2),
        ("cn", True, 2),
        ("b", 256, 1),
        ("b", -1, 1),
        ("b", 1, 2),
        ("b", "zz", 2),
        ("b", "0102", 1),
        ("xx", "1", 1),
    ],
)
def test_encode_refuses_wrong_types_and_values(coding: str, value: object, length: int) -> None:
    with pytest.raises(EncodingError) as info:
        codecs.encode("the_item", coding, value, length)  # type: ignore[arg-type]
    assert info.value.field == "the_item"


def test_encode_dispatches() -> None:
    assert codecs.encode("x", "ans", "AB", 3) == b"AB\x00"
    assert codecs.encode("x", "cn", 410100, 3) == bytes.fromhex("410100")
    assert codecs.encode("x", "cn", "41", 2) == bytes.fromhex("41FF")


# --- dates ------------------------------------------------------------------------------------


def test_dates() -> None:
    assert codecs.parse_date("birth_date", "19900307") == dt.date(1990, 3, 7)
    assert codecs.parse_date("birth_date", "") is None
    assert codecs.parse_datetime("visit_time", "20261123083015") == dt.datetime(2026, 11, 23, 8, 30, 15)
    assert codecs.parse_datetime("visit_time", "") is None


BAD_DATES = [
    "20260230",
    "20261301",
    "20260000",
    "2026-01-01",
    "abcdefgh",
    "199003070",
    "1990030",
    " 19900307",
    "00000101",
]


@pytest.mark.parametrize("value", BAD_DATES)
def test_bad_dates_name_the_item(value: str) -> None:
    with pytest.raises(EncodingError) as info:
        codecs.parse_date("birth_date", value)
    assert info.value.field == "birth_date"
    assert repr(value) in str(info.value)


BAD_DATETIMES = [
    "20260101246000",
    "20260101126000",
    "20260101120060",
    "2026010112",
    "2026-01-01T12:00:00",
    "20260230120000",
]


@pytest.mark.parametrize("value", BAD_DATETIMES)
def test_bad_datetimes_name_the_item(value: str) -> None:
    with pytest.raises(EncodingError) as info:
        codecs.parse_datetime("visit_time", value)
    assert info.value.field == "visit_time"


@pytest.mark.parametrize(
    ("parse", "value"),
    [
        (codecs.parse_date, "2026111"),
        (codecs.parse_date, "202611"),
        (codecs.parse_date, "20261 1"),
        (codecs.parse_datetime, "202601011212"),
        (codecs.parse_datetime, "2026010112121"),
    ],
    ids=["date-7-digits", "date-6-digits", "date-space", "datetime-12-digits", "datetime-13-digits"],
)
def test_dates_of_the_wrong_width_are_refused(parse: object, value: str) -> None:
    """Regression: strptime accepts one-digit fields, so '2026111' used to parse as 2026-11-01."""
    with pytest.raises(EncodingError):
        parse("item", value)  # type: ignore[operator]


@given(st.dates(min_value=dt.date(1000, 1, 1)))
def test_date_round_trip(day: dt.date) -> None:
    assert codecs.parse_date("d", day.strftime("%Y%m%d")) == day


# --- ATR --------------------------------------------------------------------------------------


def _xor(data: bytes) -> int:
    return reduce(lambda a, b: a ^ b, data, 0)


def test_demo_atr_layout() -> None:
    serial = bytes.fromhex("0081866B00001015")
    atr = build_atr(serial, KeyInfo(0x01, 1))
    assert atr == bytes.fromhex("3B8D8001" + "80" + "520101" + "48" + "0081866B00001015") + bytes([atr[-1]])
    assert historical_bytes(atr) == bytes.fromhex("8052010148") + serial
    assert chip_serial(atr) == serial
    assert key_info(atr) == KeyInfo(0x01, 1)


def test_atr_key_info_city_level_and_sam_versions() -> None:
    serial = bytes.fromhex("5341304100000001")
    card = build_atr(serial, KeyInfo(0x02, 3, city_level=True))
    assert historical_bytes(card)[1:4] == bytes.fromhex("520283")  # 3DES, version 3 | city bit
    assert key_info(card) == KeyInfo(0x02, 3, city_level=True)
    sam = build_atr(serial, KeyInfo(0x01, 2, previous=1), sam=True)
    assert historical_bytes(sam)[1:5] == bytes.fromhex("53010201")
    assert key_info(sam) == KeyInfo(0x01, 2, previous=1)
    assert key_info(build_atr(serial, KeyInfo(0x01, 2), sam=True)).previous is None
    assert chip_serial(sam) == serial


@given(st.binary(min_size=8, max_size=8))
def test_atr_round_trip(serial: bytes) -> None:
    atr = build_atr(serial)
    assert chip_serial(atr) == serial
    assert atr[0] == 0x3B
    assert atr[-1] == _xor(atr[1:-1])  # TCK: XOR of T0 .. the last byte before it
    assert _xor(atr[1:]) == 0
    assert len(historical_bytes(atr)) == atr[1] & 0x0F


@pytest.mark.parametrize("size", [0, 7, 9, 16])
def test_build_atr_needs_an_8_byte_serial(size: int) -> None:
    with pytest.raises(ValueError):
        build_atr(bytes(size))


def _with_tck(hex_without_tck: str) -> bytes:
    body = bytes.fromhex(hex_without_tck)
    return body + bytes([_xor(body[1:])])


def test_historical_bytes_of_a_real_world_style_atr() -> None:
    # T0 = 8E: TD1 present, 14 historical bytes; TD1 = 80: TD2 present, T=0; TD2 = 01: T=1 -> TCK
    atr = _with_tck("3B8E8001" + "52455349444530454E5443415244")
    assert historical_bytes(atr) == b"RESIDE0ENTCARD"
    assert chip_serial(atr) == b"0ENTCARD"


def test_historical_bytes_of_the_atr_with_t0_8c() -> None:
    # 3B 8C 80 01 announces K = 12 historical bytes, so of the 14 bytes that follow only the
    # first 12 are historical (the ATR as quoted has two bytes more than its T0 announces).
    atr = _with_tck("3B8C8001" + "52455349444530454E5443415244")
    assert historical_bytes(atr) == b"RESIDE0ENTCA"
    assert chip_serial(atr) == b"DE0ENTCA"


def test_historical_bytes_of_an_atr_without_interface_bytes() -> None:
    atr = bytes.fromhex("3B0412345678")  # T0 = 04: 4 historical bytes, T=0 only, no TCK
    assert historical_bytes(atr) == bytes.fromhex("12345678")
    with pytest.raises(ValueError):
        chip_serial(atr)  # fewer than 8 historical bytes


@pytest.mark.parametrize("atr", ["", "3B", "3B8E8001", "3B0412", "3B8E800180730000C0480081866B000010"])
def test_short_atrs_are_refused(atr: str) -> None:
    with pytest.raises(ValueError):
        historical_bytes(bytes.fromhex(atr))


@pytest.mark.parametrize("atr", ["3B80", "3B8E", "3B8E80"])
def test_atr_cut_in_its_interface_bytes_is_refused_with_value_error(atr: str) -> None:
    """Regression: a TDi announced but missing used to raise IndexError."""
    with pytest.raises(ValueError):
        historical_bytes(bytes.fromhex(atr))
