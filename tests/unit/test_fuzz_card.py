"""Property-based fuzzing (Hypothesis) of everything on the card side that reads untrusted bytes:
the APDU parser, the TLV records and card codecs, the vpcd bridge's framing and the card OS's
command processor in every security state.  Issue 9, "Fuzzing".

Each property says what *must* hold for any input — not only "no exception":

* the parser returns a command or raises :class:`MalformedAPDU` (never another exception);
* every codec decodes any bytes, and decode(encode(v)) gives ``v`` back;
* the vpcd reader answers every complete frame, ends a truncated stream with its documented
  ``_Closed`` (then reconnects), and never hangs;
* the card answers every C-APDU with a well-formed R-APDU (data only with a success status, a
  status word of the card's table, never the 6F00 of an internal error), and no file changes
  unless an authorised write succeeded.

Bounded for ``make test`` (about 30 s on the 2-core CI machine altogether); ``make soak`` can run
them longer with ``HEALTHCARD_FUZZ_EXAMPLES=5000`` (examples per property; the parser gets five
times as many, the card OS in its states three times).
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from healthcard.card import codecs
from healthcard.card.apdu import CommandAPDU, MalformedAPDU, ResponseAPDU
from healthcard.card.cos import CardOS, CardState
from healthcard.card.filesystem import EF, FREE, FileKind, KeyUse, LifeCycle
from healthcard.card.personalise import tlv
from healthcard.card.profile import PROFILE_32K, tlv_items
from healthcard.card.sw import SW, describe, is_success
from healthcard.errors import EncodingError
from healthcard.terminal import vpcd
from healthcard.terminal.sdk import HealthCardTerminal

from .conftest import CardDriver

#: examples per property; ``make soak`` raises it (HEALTHCARD_FUZZ_EXAMPLES=5000)
EXAMPLES = int(os.environ.get("HEALTHCARD_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: the card OS and the parser: the most input paths, so five times as many
MORE = settings(FUZZ, max_examples=5 * EXAMPLES)
SHAPES = Path(__file__).parents[1] / "vectors" / "apdu-shapes.txt"


def _seed_apdus() -> list[bytes]:
    """The concrete C-APDUs of the real exchanges (tests/vectors/apdu-shapes.txt)."""
    out = []
    for line in SHAPES.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or "->" not in line:
            continue
        command = line.split(":", 1)[1].split("->")[0].strip()
        if "<" not in command:
            out.append(bytes.fromhex(command))
    return out


SEEDS = _seed_apdus()


def _mutate(seed: bytes, flips: list[tuple[int, int]], cut: int | None) -> bytes:
    raw = bytearray(seed)
    for at, mask in flips:
        raw[at % len(raw)] ^= mask
    return bytes(raw[:cut] if cut is not None else raw)


#: any byte string, a near-valid one (a real APDU with bits flipped or cut), or a structured one
KNOWN_INS = [0xA4, 0xB0, 0xD6, 0xB2, 0xDC, 0xE2, 0xD2, 0x0C, 0x84, 0x82, 0x20, 0x24, 0x2C, 0xC0]
KNOWN_INS += [0xE0, 0xD4, 0xE6, 0x16, 0x18]
structured = st.builds(
    CommandAPDU,
    cla=st.sampled_from([0x00, 0x04, 0x80, 0x84]),
    ins=st.sampled_from(KNOWN_INS),
    p1=st.integers(0, 255),
    p2=st.one_of(st.sampled_from([0x00, 0x01, 0x03, 0x04, 0x05, 0x0C]), st.integers(0, 255)),
    data=st.binary(max_size=40),
    le=st.one_of(st.none(), st.integers(1, 256)),
).map(CommandAPDU.to_bytes)
apdus = st.one_of(
    st.binary(max_size=300),
    st.builds(
        _mutate,
        st.sampled_from(SEEDS),
        st.lists(st.tuples(st.integers(0, 255), st.integers(1, 255)), max_size=3),
        st.one_of(st.none(), st.integers(0, 30)),
    ),
    structured,
)


# --- 1. the APDU parser ----------------------------------------------------------------------
@MORE
@given(apdus)
def test_parser_gives_a_command_or_its_documented_error(raw: bytes) -> None:
    try:
        cmd = CommandAPDU.parse(raw)
    except MalformedAPDU as bad:
        assert bad.sw == SW.WRONG_LENGTH
        assert len(raw) < 4 or raw[4:]  # a header alone is always case 1
        return
    assert cmd.header == raw[:4]
    assert cmd.to_bytes() == raw  # whatever parses encodes back to the same bytes
    assert CommandAPDU.parse(cmd.to_bytes()) == cmd


@FUZZ
@given(st.binary(max_size=300))
def test_response_parser_gives_a_response_or_value_error(raw: bytes) -> None:
    try:
        response = ResponseAPDU.parse(raw)
    except ValueError:
        assert len(raw) < 2
        return
    assert response.to_bytes() == raw
    assert isinstance(describe(response.sw), str)


# --- 2. TLV records and the card codecs ---------------------------------------------------------
def _value_for(item: Any) -> st.SearchStrategy[Any]:
    """A value that fits ``item`` (coding and length)."""
    if item.coding == "cn":
        return st.text(alphabet="0123456789", min_size=1, max_size=2 * item.length)
    if item.coding == "b":
        return st.binary(min_size=1, max_size=item.length).map(lambda b: b.hex().upper())
    gbk = st.characters(codec="gbk", exclude_characters="\x00")
    return st.text(alphabet=gbk, min_size=1, max_size=item.length).filter(
        lambda s: len(s.encode("gbk")) <= item.length
    )


TLV_FILES = sorted({(i.df, i.ef) for i in tlv_items() if i.tag is not None})


class _Records:
    """Stands in for a terminal: ``read_items`` reads its records from here."""

    def __init__(self, raw: bytes) -> None:
        self.profile = PROFILE_32K
        self.raw = raw

    def _read_all_records(self, df: str, ef: str, expected: int) -> bytes:
        return self.raw


def _read_items(raw: bytes, df: str, ef: str) -> dict[str, str]:
    return HealthCardTerminal.read_items(_Records(raw), df, ef)  # type: ignore[arg-type]


@FUZZ
@given(st.data())
def test_tlv_records_round_trip(data: st.DataObject) -> None:
    df, ef = data.draw(st.sampled_from(TLV_FILES))
    items = [i for i in PROFILE_32K.items(df, ef) if i.tag is not None]
    chosen = data.draw(st.lists(st.sampled_from(items), min_size=1, unique_by=lambda i: i.tag))
    values = {i.name: data.draw(_value_for(i)) for i in chosen}
    raw = b"".join(tlv(i, values[i.name]) for i in chosen)
    decoded = _read_items(raw, df, ef)
    for item in chosen:
        value = values[item.name]
        want = value if item.coding != "b" else value.ljust(2 * item.length, "0")
        assert decoded[item.name] == want, item.name


@FUZZ
@given(st.sampled_from(TLV_FILES), st.binary(max_size=400))
def test_tlv_decoding_of_any_bytes(where: tuple[str, str], raw: bytes) -> None:
    decoded = _read_items(raw, *where)
    names = {i.name for i in PROFILE_32K.items(*where)}
    assert set(decoded) <= names
    assert all(isinstance(v, str) for v in decoded.values())


@FUZZ
@given(st.sampled_from(["ans", "cn", "b"]), st.binary(max_size=64))
def test_every_codec_decodes_any_bytes(coding: str, raw: bytes) -> None:
    text = codecs.decode(coding, raw)
    assert isinstance(text, str)
    if coding == "cn":
        assert set(text) <= set("0123456789.?")
        assert len(text) <= 2 * len(raw)
    if coding == "b":
        assert bytes.fromhex(text) == raw


@FUZZ
@given(
    st.sampled_from(["ans", "cn", "b"]),
    st.one_of(st.text(max_size=40), st.binary(max_size=40)),
    st.integers(0, 40),
)
def test_every_codec_encodes_or_names_the_item(coding: str, value: str | bytes, length: int) -> None:
    try:
        raw = codecs.encode("DF01/EF05/item", coding, value, length)
    except EncodingError as error:
        assert "DF01/EF05/item" in str(error) or getattr(error, "field", "") == "DF01/EF05/item"
        return
    assert len(raw) == length
    back = codecs.decode(coding, raw)
    if coding in ("ans", "cn"):
        assert back == value
    else:
        plain = value if isinstance(value, bytes) else bytes.fromhex(value)
        assert back == plain.ljust(length, b"\0").hex().upper()


@FUZZ
@given(st.text(max_size=20))
def test_date_parsers_give_a_date_or_name_the_item(digits: str) -> None:
    for parse, width in ((codecs.parse_date, 8), (codecs.parse_datetime, 14)):
        try:
            value = parse("DF01/EF05/date", digits)
        except EncodingError as error:
            assert "DF01/EF05/date" in str(error) or getattr(error, "field", "") == "DF01/EF05/date"
            continue
        if value is None:
            assert digits == ""
        else:
            assert isinstance(value, dt.date)
            assert len(digits) == width
            assert value.strftime("%Y%m%d%H%M%S")[:width] == digits


# --- 3. the vpcd bridge's framing -----------------------------------------------------------------
def _expected_replies(stream: bytes) -> tuple[int, int]:
    """(replies, complete messages): what vpcd's peer must answer for ``stream``."""
    pos = replies = messages = 0
    while pos + 2 <= len(stream):
        length = int.from_bytes(stream[pos : pos + 2], "big")
        if pos + 2 + length > len(stream):
            break
        payload = stream[pos + 2 : pos + 2 + length]
        pos += 2 + length
        messages += 1
        if len(payload) > 1 or payload == bytes([vpcd.GET_ATR]):
            replies += 1
    return replies, messages


def _frames(stream: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(stream):
        assert pos + 2 <= len(stream), "a reply cut inside its length"
        length = int.from_bytes(stream[pos : pos + 2], "big")
        assert pos + 2 + length <= len(stream), "a reply shorter than its length"
        out.append(stream[pos + 2 : pos + 2 + length])
        pos += 2 + length
    return out


frame = st.one_of(
    st.sampled_from([b"\x04", b"\x00", b"\x01", b"\x02", b"\x07", b""]),
    apdus,
).map(lambda payload: len(payload).to_bytes(2, "big") + payload)
streams = st.one_of(
    st.lists(frame, max_size=6).map(b"".join),  # well-framed
    st.tuples(st.lists(frame, max_size=4).map(b"".join), st.binary(max_size=40)).map(
        b"".join
    ),  # garbage tail
    st.binary(max_size=200),  # anything
)


@FUZZ
@given(stream=streams, cuts=st.lists(st.integers(0, 300), max_size=8))
def test_vpcd_reader_answers_every_frame_and_closes_cleanly(
    fresh_card: Callable[[], CardDriver], stream: bytes, cuts: list[int]
) -> None:
    card = fresh_card()
    bridge = vpcd.VpcdBridge(card.os, idle_timeout=10.0)
    ours, theirs = socket.socketpair()
    ours.settimeout(0.5)
    theirs.settimeout(20.0)  # hang guard
    received = bytearray()

    def vpcd_side() -> None:
        points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
        for start, end in itertools.pairwise(points):
            theirs.sendall(stream[start:end])  # the stream split at arbitrary points
        theirs.shutdown(socket.SHUT_WR)
        while chunk := theirs.recv(65536):
            received.extend(chunk)

    peer = threading.Thread(target=vpcd_side, daemon=True)
    peer.start()
    try:
        with pytest.raises(vpcd._Closed):  # the bridge's documented end of a connection
            bridge._serve(ours)
    finally:
        ours.close()
        peer.join(20.0)
        theirs.close()
    assert not peer.is_alive(), "the exchange hung"
    replies, messages = _expected_replies(stream)
    frames = _frames(bytes(received))
    assert len(frames) == replies
    assert bridge.apdu_count + bridge.control_count <= messages
    for payload in frames:
        if payload != card.os.state.atr:
            assert len(payload) >= 2 and _plausible(int.from_bytes(payload[-2:], "big")), payload.hex()


def test_vpcd_bridge_reconnects_after_a_garbled_connection(fresh_card: Callable[[], CardDriver]) -> None:
    """A stream cut inside a frame closes the connection; the bridge connects again and the
    next connection is served normally (the protocol has no resync marker: the reconnect is it)."""
    card = fresh_card()
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(20.0)
    bridge = vpcd.VpcdBridge(card.os, port=server.getsockname()[1], retry_interval=0.05, idle_timeout=5.0)
    bridge.start_in_thread()
    try:
        first, _ = server.accept()
        first.sendall(b"\x00\x05\x00\xa4")  # a length of 5, 2 bytes, then the end
        first.close()
        second, _ = server.accept()
        second.settimeout(20.0)
        second.sendall(b"\x00\x01\x04")
        length = int.from_bytes(second.recv(2), "big")
        atr = b""
        while len(atr) < length:
            atr += second.recv(length - len(atr))
        assert atr == card.os.state.atr
        second.close()
    finally:
        bridge.stop(timeout=10.0)
        server.close()
    assert bridge.connections >= 2


# --- 4. the card OS in every state ------------------------------------------------------------------
KNOWN_SW = {int(sw) for sw in SW}


def _plausible(sw: int) -> bool:
    sw1, sw2 = sw >> 8, sw & 0xFF
    return sw in KNOWN_SW or sw1 in (0x61, 0x6C) or (sw1 == 0x63 and sw2 & 0xF0 == 0xC0)


def _snapshot(state: CardState) -> dict[str, Any]:
    """Every file's bytes and every key's value (not the try counters, which failures change)."""
    out: dict[str, Any] = {"lifecycle": state.lifecycle}
    for df in state.mf.walk():
        for fid, node in df.children.items():
            if isinstance(node, EF):
                out[f"{df.path()}/{fid:04X}"] = (bytes(node.data), tuple(bytes(r) for r in node.records))
        for (use, kid), key in df.keys.items():
            out[f"{df.path()}/key{use:02X}{kid:02X}"] = bytes(key.value)
    return out


def _path_of(state: CardState, ef: EF) -> str:
    for df in state.mf.walk():
        for fid, node in df.children.items():
            if node is ef:
                return f"{df.path()}/{fid:04X}"
    raise AssertionError("EF not in the tree")


WRITES = {0xD6, 0xDC, 0xE2, 0xD2, 0x0C}

#: the starting states: (name, DF path, keys authenticated, EF, PIN verified, challenge pending)
STATES = [
    ("powered on", (), (), None, False, False),
    ("DDF1 selected", ("DDF1",), (), "EF05", False, False),
    ("DDF1 read+update", ("DDF1",), ("RK1DDF1", "UK1DDF1"), "EF07", False, False),
    ("DF01 read+update, SM file, challenge", ("DDF1", "DF01"), ("RK1DF01", "UK1DF01"), "EF05", False, True),
    ("DF02 all keys", ("DDF1", "DF02"), ("RK1DF02", "UK1DF02", "UK2DF02", "UK3DF02"), "EF07", False, False),
    ("DF03 index, challenge", ("DDF1", "DF03"), ("RK1DF03", "UK1DF03", "UK2DF03"), "EF06", False, True),
    ("DF03 visits", ("DDF1", "DF03"), ("RK1DF03", "UK1DF03"), "ED01", False, False),
    ("PIN verified", (), (), None, True, False),
    ("PIN verified, DF01", ("DDF1", "DF01"), ("RK1DF01",), "EF05", True, True),
    ("blocked card", ("DDF1",), (), "EF05", False, True),
    # an EF selected whose update key is *not* held: the writes below must all be refused
    ("DDF1 read only, photo", ("DDF1",), ("RK1DDF1",), "EF07", False, False),
    ("DF01 read only, SM file, challenge", ("DDF1", "DF01"), ("RK1DF01",), "EF06", False, True),
    ("DF02 read only, cyclic", ("DDF1", "DF02"), ("RK1DF02",), "EF07", False, True),
    ("DF03 read only, index, challenge", ("DDF1", "DF03"), ("RK1DF03",), "EF05", False, True),
    ("DF03 read only, visits", ("DDF1", "DF03"), ("RK1DF03",), "ED01", True, False),
]


def _write_for(ef: EF | None, data: st.DataObject) -> bytes:
    """A write shaped for the current EF (right kind, record number, length, tag): the
    commands most likely to change a file, with or without (random) secure messaging."""
    if ef is None:
        return data.draw(apdus)
    cla = data.draw(st.sampled_from([0x00, 0x04]))
    blob = st.binary
    if ef.kind is FileKind.TRANSPARENT:
        offset = data.draw(st.integers(0, len(ef.data) - 1))
        body = data.draw(blob(min_size=1, max_size=min(64, len(ef.data) - offset)))
        return CommandAPDU(cla, 0xD6, offset >> 8, offset & 0xFF, body).to_bytes()
    if ef.kind is FileKind.CYCLIC:
        body = data.draw(blob(min_size=ef.record_length, max_size=ef.record_length))
        ins, p2 = data.draw(st.sampled_from([(0xE2, 0x00), (0xDC, 0x03)]))
        return CommandAPDU(cla, ins, 0, p2, body).to_bytes()
    number = data.draw(st.integers(1, max(1, len(ef.records))))
    old = ef.records[number - 1] if ef.records else bytearray(2)
    if ef.kind is FileKind.LINEAR_FIXED and data.draw(st.booleans()):
        ins = data.draw(st.sampled_from([0xD2, 0x0C]))  # the DF03 index flags, with a random MAC
        return CommandAPDU(0x84, ins, number, 0x04, data.draw(blob(min_size=4, max_size=4))).to_bytes()
    size = len(old) if ef.kind is FileKind.TLV_RECORD else ef.record_length
    body = bytes(old[:2]) + data.draw(blob(min_size=max(0, size - 2), max_size=max(0, size - 2)))
    if ef.kind is not FileKind.TLV_RECORD:
        body = data.draw(blob(min_size=size, max_size=size))
    if cla == 0x04:
        body += data.draw(blob(min_size=4, max_size=20))  # a made-up MAC (and ciphertext)
    return CommandAPDU(cla, 0xDC, number, 0x04, body or b"\0").to_bytes()


def _prepare(card: CardDriver, state: tuple[Any, ...]) -> None:
    name, dfs, keys, ef, pin, challenge = state
    if name == "blocked card":
        card.challenge()
        header = bytes.fromhex("84160000")
        assert card.sw(CommandAPDU(0x84, 0x16, 0, 0, card.mac_body("BKMF", header))) == 0x9000
    if pin:
        assert card.sw("0020000103123456") == 0x9000
    card.select(*dfs)
    for key in keys:
        card.auth_ok(key)
    if ef is not None:
        card.select(ef)
    if challenge:
        card.challenge()


@pytest.fixture(scope="module")
def pin_issued(pin_state: CardState, card_keys: dict[str, bytes]) -> Callable[[], CardDriver]:
    def make() -> CardDriver:
        os_ = CardOS(copy.deepcopy(pin_state))
        os_.power_on()
        return CardDriver(os_, card_keys)

    return make


@settings(FUZZ, max_examples=3 * EXAMPLES)
@given(state=st.sampled_from(STATES), steps=st.integers(1, 8), data=st.data())
def test_card_answers_every_apdu_in_every_state_and_writes_only_when_authorised(
    pin_issued: Callable[[], CardDriver], state: tuple[Any, ...], steps: int, data: st.DataObject
) -> None:
    card = pin_issued()
    _prepare(card, state)
    os_ = card.os
    for _ in range(steps):
        shaped = data.draw(st.booleans())
        raw = _write_for(os_.session.ef, data) if shaped else data.draw(apdus)
        before = _snapshot(os_.state)
        ef, df = os_.session.ef, os_.session.df
        held = set(os_.session.authenticated)
        response = os_.process(raw)

        # a well-formed R-APDU with a valid status word
        assert isinstance(response, bytes) and len(response) >= 2
        answer, sw = response[:-2], int.from_bytes(response[-2:], "big")
        assert sw != SW.NO_PRECISE_DIAGNOSIS, f"6F00 (an exception inside the card) for {raw.hex()}"
        assert _plausible(sw), f"{sw:04X} for {raw.hex()}"
        assert is_success(sw) or not answer, f"data with {sw:04X} for {raw.hex()}"

        after = _snapshot(os_.state)
        if after == before:
            continue
        # something changed: it must be an authorised write that succeeded, on the current EF only
        changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
        ins = raw[1]
        if changed and all("/key" in k for k in changed):  # a PIN change knows the old PIN
            assert sw == 0x9000 and ins in (0x24, 0x2C), (changed, raw.hex())
            assert ins == 0x2C or CommandAPDU.parse(raw).data[:3] == bytes.fromhex("123456")
            continue
        assert sw == 0x9000 and ins in WRITES, (changed, raw.hex(), f"{sw:04X}")
        assert ef is not None and changed == {_path_of(os_.state, ef)}, (changed, raw.hex())
        condition = ef.erase if ins == 0x0C else ef.update
        assert condition == FREE or condition in held, (changed, raw.hex())
        if ef.sm and os_.state.lifecycle is not LifeCycle.CREATED:
            assert raw[0] & 0x04, "a file demanding SM was written without it"
        assert df is os_.session.df


@FUZZ
@given(st.lists(apdus, min_size=1, max_size=8))
def test_a_blank_card_being_personalised_answers_every_apdu(sequence: list[bytes]) -> None:
    """CREATED: everything is open (the issuer's secure room), still every answer is well-formed."""
    os_ = CardOS(CardState.blank(bytes(8), bytes(16)))
    os_.power_on()
    for raw in sequence:
        response = os_.process(raw)
        sw = int.from_bytes(response[-2:], "big")
        assert sw != SW.NO_PRECISE_DIAGNOSIS, raw.hex()
        assert _plausible(sw), f"{sw:04X}"
        assert os_.state.mf.keys[(KeyUse.TRANSPORT, 0)].value == bytes(16)
