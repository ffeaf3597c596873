"""Command and response APDUs (cases 1–4, short and extended) and status words."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from healthcard import errors
from healthcard.card.apdu import CommandAPDU, MalformedAPDU, ResponseAPDU
from healthcard.card.sw import EXCEPTIONS, SW, describe, exception_for, is_success

SHAPES = Path(__file__).resolve().parents[1] / "vectors" / "apdu-shapes.txt"


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# --- the exchanges of apdu-shapes.txt ---------------------------------------------------------

EXAMPLES = [
    # (hex, case, expected command)
    ("00A4000002DDF1", 3, CommandAPDU(0x00, 0xA4, 0x00, 0x00, h("DDF1"))),
    ("00A4000002EF05", 3, CommandAPDU(0x00, 0xA4, 0x00, 0x00, h("EF05"))),
    ("00B2080014", 2, CommandAPDU(0x00, 0xB2, 0x08, 0x00, le=0x14)),
    ("00B2390005", 2, CommandAPDU(0x00, 0xB2, 0x39, 0x00, le=5)),
    ("00B2010003", 2, CommandAPDU(0x00, 0xB2, 0x01, 0x00, le=3)),
    ("00B2010400", 2, CommandAPDU(0x00, 0xB2, 0x01, 0x04, le=256)),
    ("0084000008", 2, CommandAPDU(0x00, 0x84, 0x00, 0x00, le=8)),
    (
        "0082008411" + "A1A2A3A4A5A6A7A8" + "1122334455667788" + "01",
        3,
        CommandAPDU(0x00, 0x82, 0x00, 0x84, h("A1A2A3A4A5A6A7A8 1122334455667788 01")),
    ),
    ("00B0000080", 2, CommandAPDU(0x00, 0xB0, 0x00, 0x00, le=0x80)),
]


@pytest.mark.parametrize(("raw", "case", "expected"), EXAMPLES, ids=[e[0][:14] for e in EXAMPLES])
def test_observed_commands_parse_and_encode(raw: str, case: int, expected: CommandAPDU) -> None:
    cmd = CommandAPDU.parse(h(raw))
    assert cmd == expected
    assert cmd.case == case
    assert not cmd.extended
    assert cmd.to_bytes() == h(raw)
    assert str(cmd) == raw.upper()
    assert cmd.header == h(raw)[:4]


def _shape_lines() -> list[tuple[str, str, str]]:
    out = []
    for line in SHAPES.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or "->" not in line:
            continue
        label, _, rest = line.partition(":")
        command, _, response = rest.partition("->")
        out.append((label.strip(), command.strip(), response.strip()))
    return out


SHAPE_LINES = _shape_lines()


def test_every_concrete_command_of_the_shapes_file_round_trips() -> None:
    concrete = [(label, c) for label, c, _ in SHAPE_LINES if re.fullmatch(r"[0-9A-F]+", c)]
    assert len(concrete) >= 10
    for label, command in concrete:
        assert CommandAPDU.parse(h(command)).to_bytes() == h(command), label


def test_every_concrete_response_of_the_shapes_file_round_trips() -> None:
    concrete = [(label, r) for label, _, r in SHAPE_LINES if re.fullmatch(r"[0-9A-F ]+", r)]
    assert len(concrete) >= 5
    for label, response in concrete:
        rsp = ResponseAPDU.parse(h(response))
        assert rsp.sw == 0x9000, label
        assert rsp.to_bytes() == h(response)


def test_select_ddf1_response() -> None:
    rsp = ResponseAPDU.parse(h("6F10840C57532E5359532E4444463031A500 9000"))
    assert rsp.data == h("6F10840C") + b"WS.SYS.DDF01" + h("A500")
    assert (rsp.sw, rsp.sw1, rsp.sw2) == (0x9000, 0x90, 0x00)
    assert str(rsp) == "6F10840C57532E5359532E4444463031A500 9000"
    assert str(ResponseAPDU(b"", 0x6A82)) == "6A82"


def test_response_needs_two_bytes() -> None:
    for raw in (b"", b"\x90"):
        with pytest.raises(ValueError):
            ResponseAPDU.parse(raw)
    assert ResponseAPDU.parse(h("9000")) == ResponseAPDU(b"", 0x9000)


@given(st.binary(max_size=300), st.integers(0, 0xFFFF))
def test_response_round_trip(data: bytes, sw: int) -> None:
    rsp = ResponseAPDU(data, sw)
    assert ResponseAPDU.parse(rsp.to_bytes()) == rsp
    assert rsp.sw1 << 8 | rsp.sw2 == sw


# --- all cases, short and extended ------------------------------------------------------------

CASES = [
    # hex, expected
    ("00A40000", CommandAPDU(0, 0xA4, 0, 0)),  # 1
    ("00B0000000", CommandAPDU(0, 0xB0, 0, 0, le=256)),  # 2S, Le 00 -> 256
    ("00B00000FF", CommandAPDU(0, 0xB0, 0, 0, le=255)),
    ("00D6000003AABBCC", CommandAPDU(0, 0xD6, 0, 0, h("AABBCC"))),  # 3S
    ("00A4040002DDF100", CommandAPDU(0, 0xA4, 4, 0, h("DDF1"), le=256)),  # 4S, Le 00
    ("00A4040002DDF110", CommandAPDU(0, 0xA4, 4, 0, h("DDF1"), le=16)),
    ("00B0000000ABCD", CommandAPDU(0, 0xB0, 0, 0, le=0xABCD, extended=True)),  # 2E
    ("00B0000000 0000", CommandAPDU(0, 0xB0, 0, 0, le=65536, extended=True)),  # 2E, 0000 -> 65536
    ("00B0000000 0100", CommandAPDU(0, 0xB0, 0, 0, le=256, extended=True)),
    ("00D6000000 0002 AABB", CommandAPDU(0, 0xD6, 0, 0, h("AABB"), extended=True)),  # 3E
    ("00D6000000 0002 AABB 0000", CommandAPDU(0, 0xD6, 0, 0, h("AABB"), le=65536, extended=True)),  # 4E
    ("00D6000000 0002 AABB 0101", CommandAPDU(0, 0xD6, 0, 0, h("AABB"), le=257, extended=True)),
]


@pytest.mark.parametrize(("raw", "expected"), CASES, ids=[c[0].replace(" ", "") for c in CASES])
def test_cases_parse_and_encode(raw: str, expected: CommandAPDU) -> None:
    assert CommandAPDU.parse(h(raw)) == expected
    assert expected.to_bytes() == h(raw)


def test_case_numbers() -> None:
    assert CommandAPDU(0, 0, 0, 0).case == 1
    assert CommandAPDU(0, 0, 0, 0, le=1).case == 2
    assert CommandAPDU(0, 0, 0, 0, b"x").case == 3
    assert CommandAPDU(0, 0, 0, 0, b"x", le=1).case == 4


def test_extended_length_is_chosen_when_needed() -> None:
    big = bytes(300)
    assert CommandAPDU(0, 0xD6, 0, 0, big).to_bytes() == h("00D6000000012C") + big
    assert CommandAPDU(0, 0xB0, 0, 0, le=257).to_bytes() == h("00B00000000101")
    assert CommandAPDU(0, 0xD6, 0, 0, b"\x01", le=65536).to_bytes() == h("00D60000 000001 01 0000")
    assert CommandAPDU(0, 0xB0, 0, 0, le=256).to_bytes() == h("00B0000000")
    assert CommandAPDU(0, 0xB0, 0, 0, le=256, extended=True).to_bytes() == h("00B00000000100")
    assert CommandAPDU.parse(h("00D6000000012C") + big).data == big


@pytest.mark.parametrize(
    "kwargs",
    [{"le": 0}, {"le": 65537}, {"le": -1}, {"data": bytes(65536)}],
    ids=["le0", "le65537", "le-1", "data64k"],
)
def test_out_of_range_fields_cannot_be_encoded(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        CommandAPDU(0, 0xB0, 0, 0, **kwargs).to_bytes()  # type: ignore[arg-type]


MALFORMED = [
    ("", "empty"),
    ("00", "one byte"),
    ("00A400", "three bytes"),
    ("00A4000002DD", "Lc 2, one data byte"),
    ("00A4000002DDF1EF05", "Lc 2, four data bytes"),
    ("00A4000003DDF1", "Lc 3, two data bytes"),
    ("00B0000000AB", "extended marker, one length byte"),
    ("00D60000000005AABB", "extended Lc 5, two data bytes"),
    ("00D6000000000000", "extended Lc 0"),
    ("00D60000000002AABB00", "extended Lc 2, Le one byte"),
    ("00D60000000002AABB000000", "extended Lc 2, Le three bytes"),
]


@pytest.mark.parametrize(("raw", "why"), MALFORMED, ids=[m[1] for m in MALFORMED])
def test_malformed_commands_raise_6700(raw: str, why: str) -> None:
    with pytest.raises(MalformedAPDU) as info:
        CommandAPDU.parse(h(raw))
    assert info.value.sw == SW.WRONG_LENGTH == 0x6700
    assert str(info.value)


@given(st.binary(max_size=600))
def test_parse_of_any_bytes_is_a_command_or_malformed(raw: bytes) -> None:
    try:
        cmd = CommandAPDU.parse(raw)
    except MalformedAPDU as bad:
        assert bad.sw == SW.WRONG_LENGTH
        return
    assert isinstance(cmd, CommandAPDU)
    assert cmd.to_bytes() == raw  # every accepted encoding is canonical


@st.composite
def structured_bytes(draw: st.DrawFn) -> bytes:
    """Bytes near the valid shapes: a header, a length field (short or extended, right or off by
    a little), data and an optional Le, so that the parser's branches all get exercised."""
    header = draw(st.binary(min_size=4, max_size=4))
    n = draw(st.integers(0, 300))
    data = draw(st.binary(min_size=n, max_size=n))
    delta = draw(st.sampled_from([0, 0, 0, -1, 1, 2]))
    extended = draw(st.booleans()) or n > 255
    lc = max(0, n + delta)
    length = b"\x00" + (lc % 65536).to_bytes(2, "big") if extended else bytes([lc % 256])
    le = draw(st.sampled_from([b"", b"", b"\x00", b"\x10", b"\x00\x00", b"\x01\x00"]))
    return header + (length + data if n else b"") + le


@given(structured_bytes())
def test_parse_of_near_valid_bytes_is_a_command_or_malformed(raw: bytes) -> None:
    try:
        cmd = CommandAPDU.parse(raw)
    except MalformedAPDU as bad:
        assert bad.sw == SW.WRONG_LENGTH
        return
    assert cmd.to_bytes() == raw


@st.composite
def commands(draw: st.DrawFn) -> CommandAPDU:
    byte = st.integers(0, 255)
    data = draw(st.one_of(st.binary(max_size=260), st.binary(min_size=256, max_size=1000)))
    le = draw(st.one_of(st.none(), st.integers(1, 256), st.integers(1, 65536)))
    return CommandAPDU(draw(byte), draw(byte), draw(byte), draw(byte), data, le, draw(st.booleans()))


def _normalised(cmd: CommandAPDU) -> CommandAPDU:
    """The extended flag as the encoding carries it: only when there is a body, and whenever
    the data or Le need it."""
    needs = len(cmd.data) > 255 or (cmd.le is not None and cmd.le > 256)
    has_body = bool(cmd.data) or cmd.le is not None
    return CommandAPDU(
        cmd.cla, cmd.ins, cmd.p1, cmd.p2, cmd.data, cmd.le, has_body and (cmd.extended or needs)
    )


@given(commands())
def test_parse_inverts_to_bytes(cmd: CommandAPDU) -> None:
    raw = cmd.to_bytes()
    assert CommandAPDU.parse(raw) == _normalised(cmd)
    assert CommandAPDU.parse(raw).case == cmd.case


# --- status words -----------------------------------------------------------------------------


def test_every_status_word_has_a_phrase() -> None:
    assert len(SW) >= 20
    for member in SW:
        assert isinstance(member.phrase, str) and member.phrase.strip(), member.name
        assert describe(member) == member.phrase
        assert member.hex == f"{member.value:04X}"
        assert SW(int(member)) is member
    assert len({m.value for m in SW}) == len(SW)


@pytest.mark.parametrize(
    ("sw", "text"),
    [
        (0x6110, "16 response bytes"),
        (0x6100, "0 response bytes"),
        (0x63C3, "3 tries left"),
        (0x63C0, "0 tries left"),
        (0x6C20, "exact length is 32"),
        (0x9000, "normal processing"),
        (0x6A82, "file not found"),
        (0x1234, "unknown status word"),
        (0x6310, "unknown status word"),
    ],
)
def test_describe(sw: int, text: str) -> None:
    assert text in describe(sw)


@pytest.mark.parametrize(
    ("sw", "exception"),
    [
        (0x6A82, errors.FileNotFound),
        (0x6A83, errors.RecordNotFound),
        (0x6982, errors.SecurityNotSatisfied),
        (0x6300, errors.AuthenticationFailed),
        (0x63C2, errors.AuthenticationFailed),
        (0x63C0, errors.AuthenticationFailed),
        (0x6983, errors.AuthenticationBlocked),
        (0x6985, errors.ConditionsNotSatisfied),
        (0x6988, errors.SecureMessagingError),
        (0x6A81, errors.CardBlocked),
        (0x6700, errors.WrongParameters),
        (0x6B00, errors.WrongParameters),
        (0x6A86, errors.WrongParameters),
        (0x6D00, errors.WrongParameters),
        (0x6E00, errors.WrongParameters),
        (0x6A80, errors.WrongParameters),
        (0x6F00, errors.CardError),
        (0x6581, errors.CardError),
        (0x1234, errors.CardError),
    ],
)
def test_exception_for(sw: int, exception: type[errors.CardError]) -> None:
    exc = exception_for(sw)
    assert type(exc) is exception
    assert isinstance(exc, errors.CardError) and isinstance(exc, errors.HealthCardError)
    assert exc.sw == sw
    assert f"{sw:04X}" in str(exc)
    assert describe(sw) in str(exc)


def test_exception_table_keys_are_status_words() -> None:
    for sw, exception in EXCEPTIONS.items():
        assert sw in set(SW)
        assert issubclass(exception, errors.CardError)


@pytest.mark.parametrize(
    ("sw", "ok"), [(0x9000, True), (0x6282, True), (0x6110, True), (0x6A82, False), (0x63C1, False)]
)
def test_is_success(sw: int, ok: bool) -> None:
    assert is_success(sw) is ok
