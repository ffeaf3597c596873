"""The vpcd bridge and PcscTransport, end to end through a real pcscd with vsmartcard-vpcd.

Tests marked ``pcsc`` need pcscd (see conftest.py: they fail under ``CI=true`` when it cannot be
had, and skip elsewhere).  The first tests below need no pcscd: they play vpcd's part with a
socket, to pin the wire protocol and the bridge's stop/reconnect behaviour.
"""

from __future__ import annotations

import shutil
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from healthcard.card.cos import CardOS, CardState
from healthcard.errors import TransportError
from healthcard.terminal.pcsc import PcscTransport, list_readers
from healthcard.terminal.transport import SimulatorTransport
from healthcard.terminal.vpcd import VpcdBridge

USER_READER = "Virtual PCD 00 00"  # vpcd port 35963
SAM_READER = "Virtual PCD 00 01"  # vpcd port 35964
SELECT_MF = bytes.fromhex("00A40000023F00")
SERIAL = bytes.fromhex("0102030405060708")
TRANSPORT_KEY = bytes(range(16))


def blank_card(serial: bytes = SERIAL) -> CardOS:
    return CardOS(CardState.blank(serial, TRANSPORT_KEY))


class BigFileCard(CardOS):
    """A stub card for length tests: READ BINARY answers ``size`` bytes whatever Le says,
    UPDATE BINARY answers 9000; every C-APDU is kept in ``received``."""

    def __init__(self, size: int = 3013) -> None:
        super().__init__(CardState.blank(SERIAL, TRANSPORT_KEY))
        self.content = bytes(i * 7 & 0xFF for i in range(size))
        self.received: list[bytes] = []

    def process(self, raw: bytes) -> bytes:
        self.received.append(raw)
        if len(raw) >= 4 and raw[1] == 0xB0:
            return self.content + b"\x90\x00"
        if len(raw) >= 4 and raw[1] == 0xD6:
            return b"\x90\x00"
        return super().process(raw)


# --- the wire protocol, against a fake vpcd (no pcscd needed) ----------------------------------
class FakeVpcd:
    """vpcd's side of the socket: listens, accepts one card, sends framed messages."""

    def __init__(self, port: int = 0) -> None:
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", port))
        self.server.listen(0)
        self.port: int = self.server.getsockname()[1]
        self.conn: socket.socket | None = None

    def accept(self, timeout: float = 5.0) -> None:
        self.server.settimeout(timeout)
        self.conn, _ = self.server.accept()
        self.conn.settimeout(timeout)

    def send(self, payload: bytes) -> None:
        assert self.conn is not None
        self.conn.sendall(len(payload).to_bytes(2, "big") + payload)

    def recv(self) -> bytes:
        assert self.conn is not None
        length = int.from_bytes(self._exact(2), "big")
        return self._exact(length)

    def _exact(self, size: int) -> bytes:
        assert self.conn is not None
        data = b""
        while len(data) < size:
            chunk = self.conn.recv(size - len(data))
            if not chunk:
                raise EOFError("the bridge closed the connection")
            data += chunk
        return data

    def close(self) -> None:
        self.server.close()  # first, so the bridge's reconnect is refused, not queued
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@pytest.fixture
def fake_vpcd() -> Iterator[FakeVpcd]:
    fake = FakeVpcd()
    yield fake
    fake.close()


def test_bridge_speaks_the_vpcd_protocol(fake_vpcd: FakeVpcd) -> None:
    card, twin = blank_card(), blank_card()
    twin.power_on()
    bridge = VpcdBridge(card, port=fake_vpcd.port)
    thread = bridge.start_in_thread()
    try:
        fake_vpcd.accept()
        assert bridge.wait_connected(5)
        fake_vpcd.send(b"\x04")
        assert fake_vpcd.recv() == card.state.atr
        for code in (b"\x00", b"\x01", b"\x02"):  # power off / on / reset: no reply
            fake_vpcd.send(code)
        fake_vpcd.send(SELECT_MF)
        assert fake_vpcd.recv() == twin.process(SELECT_MF)  # the first reply after them
        fake_vpcd.send(b"\x04")
        assert fake_vpcd.recv() == card.state.atr
        assert bridge.apdu_count == 1
        assert bridge.control_count == 5
    finally:
        started = time.monotonic()
        bridge.stop(timeout=5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 2, "stop() must end serve_forever promptly"


def test_bridge_reconnects_after_vpcd_goes_away_and_stops_while_retrying() -> None:
    fake = FakeVpcd()
    port = fake.port
    bridge = VpcdBridge(blank_card(), port=port, retry_interval=0.05)
    thread = bridge.start_in_thread()
    try:
        fake.accept()
        fake.send(b"\x04")
        assert fake.recv() == bridge.card.state.atr
        fake.close()  # pcscd stops: the connection ends, connecting is refused
        deadline = time.monotonic() + 5
        while bridge.connected and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not bridge.connected
        time.sleep(0.3)  # a few refused attempts
        assert thread.is_alive()
        fake = FakeVpcd(port)  # pcscd is back
        fake.accept()
        fake.send(b"\x04")
        assert fake.recv() == bridge.card.state.atr
        assert bridge.connections == 2
        fake.close()
        time.sleep(0.2)  # refused again: stop() must also end the retry loop
    finally:
        started = time.monotonic()
        bridge.stop(timeout=5)
        fake.close()
    assert not thread.is_alive()
    assert time.monotonic() - started < 2


# --- through pcscd -------------------------------------------------------------------------------
@pytest.mark.pcsc
def test_bridged_card_is_listed_with_its_atr(pcsc, vpcd) -> None:
    card = blank_card()
    vpcd(card)
    assert USER_READER in list_readers()
    assert pcsc.card_state(USER_READER) == (True, card.state.atr)
    transport = PcscTransport(USER_READER)
    try:
        assert transport.connect() == card.state.atr
        assert transport.atr == card.state.atr
        assert transport.reader_name == USER_READER
        assert transport.protocol in ("T=0", "T=1")
    finally:
        transport.disconnect()


@pytest.mark.pcsc
def test_select_mf_matches_the_in_process_card(vpcd) -> None:
    vpcd(blank_card())
    local = SimulatorTransport(blank_card())
    local.connect()
    with PcscTransport(USER_READER) as remote:
        response = remote.transmit(SELECT_MF)
    expected = local.transmit(SELECT_MF)
    assert response == expected
    assert response.sw == 0x9000
    assert remote.trace.exchanges[-1].response == local.trace.exchanges[-1].response


@pytest.mark.pcsc
def test_200_apdus_in_a_row(vpcd, record_property) -> None:
    bridge = vpcd(blank_card())
    expected = blank_card().process(SELECT_MF)
    transport = PcscTransport(USER_READER)
    transport.connect()
    try:
        for _ in range(200):
            assert transport.transmit(SELECT_MF).to_bytes() == expected
    finally:
        transport.disconnect()
    assert transport.trace.count == 200
    assert bridge.apdu_count >= 200
    median_ms = statistics.median(e.seconds for e in transport.trace.exchanges) * 1000
    record_property("select_mf_median_ms", round(median_ms, 3))
    # vpcd sends each message as two writes without TCP_NODELAY; if the bridge's quick ACKs are
    # lost, Nagle + delayed ACK make every APDU take ~40 ms.
    assert median_ms < 25, f"median round trip {median_ms:.1f} ms"


@pytest.mark.pcsc
def test_extended_length_apdus_pass_end_to_end(vpcd) -> None:
    card = BigFileCard(3013)
    vpcd(card)
    with PcscTransport(USER_READER) as transport:
        # case 2E: READ BINARY, Le = 0BC5 (3013) -> 3013 data bytes + 9000
        read = bytes.fromhex("00B00000000BC5")
        response = transport.transmit(read)
        assert card.received[-1] == read
        assert response.sw == 0x9000
        assert response.data == card.content
        # case 3E: UPDATE BINARY with a 2-byte Lc, 3000 data bytes
        update = bytes.fromhex("00D60000000BB8") + bytes(range(256)) * 11 + bytes(184)
        assert transport.transmit(update).sw == 0x9000
        assert card.received[-1] == update
        # the largest response a vpcd frame (2-byte length) can carry: 65533 data + SW
        card.content = bytes(65533)
        big = transport.transmit(bytes.fromhex("00B00000000000"))
        assert (len(big.data), big.sw) == (65533, 0x9000)


@pytest.mark.pcsc
def test_two_readers_at_once(vpcd) -> None:
    user, sam = blank_card(SERIAL), blank_card(bytes.fromhex("A1A2A3A4A5A6A7A8"))
    user_bridge, sam_bridge = vpcd(user, 35963), vpcd(sam, 35964)
    with PcscTransport(USER_READER) as to_user, PcscTransport("00 01") as to_sam:
        assert to_user.atr == user.state.atr
        assert to_sam.atr == sam.state.atr
        assert to_user.atr != to_sam.atr
        for _ in range(20):
            assert to_user.transmit(SELECT_MF).sw == 0x9000
            assert to_sam.transmit(SELECT_MF).sw == 0x9000
    assert user_bridge.apdu_count >= 20
    assert sam_bridge.apdu_count >= 20


@pytest.mark.pcsc
@pytest.mark.slow
def test_bridge_survives_a_pcscd_restart(pcsc, vpcd) -> None:
    card = blank_card()
    bridge = vpcd(card)
    transport = PcscTransport(USER_READER, timeout=10)
    transport.connect()
    assert transport.transmit(SELECT_MF).sw == 0x9000
    connections = bridge.connections
    try:
        down = pcsc.down()
        assert down.returncode == 0, down.stdout + down.stderr
        if pcsc.reader_names() is not None:
            pcsc.unavailable("pcscd was not started by scripts/pcsc-up.sh, so the test cannot restart it")
        with pytest.raises(TransportError, match=USER_READER):
            transport.transmit(SELECT_MF)
        deadline = time.monotonic() + 5
        while bridge.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not bridge.connected, "the bridge should have seen vpcd close the connection"
    finally:
        up, output = pcsc.up()
    assert up, output
    assert bridge.wait_connected(10), "the bridge did not reconnect to vpcd within 10 s"
    # at least one new connection (a dying pcscd may still accept one before it closes)
    assert bridge.connections > connections
    assert pcsc.wait_card(USER_READER, card.state.atr, timeout=10)
    assert transport.connect() == card.state.atr  # the same transport, connected again
    try:
        assert transport.transmit(SELECT_MF).sw == 0x9000
    finally:
        transport.disconnect()


@pytest.mark.pcsc
def test_pcsc_scan_lists_the_reader(pcsc, vpcd) -> None:
    if shutil.which("pcsc_scan") is None:
        pcsc.unavailable("pcsc_scan (package pcsc-tools) is not installed; scripts/pcsc-up.sh installs it")
    vpcd(blank_card())
    try:
        output = subprocess.run(
            ["pcsc_scan", "-r"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except subprocess.TimeoutExpired as expired:  # an older pcsc_scan keeps watching
        raw = expired.stdout or b""
        output = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    assert USER_READER in output
    assert SAM_READER in output


@pytest.mark.pcsc
def test_pcsc_errors_are_transport_errors_with_a_clear_message(pcsc) -> None:
    with pytest.raises(TransportError, match="No Such Reader") as by_name:
        PcscTransport("No Such Reader", timeout=0.3).connect()
    assert "Virtual PCD 00 00" in str(by_name.value)  # lists the readers there are
    with pytest.raises(TransportError, match="#42"):
        PcscTransport(42, timeout=0.3).connect()
    idle = PcscTransport(USER_READER)
    with pytest.raises(TransportError, match="not connected"):
        idle.transmit(SELECT_MF)
    idle.disconnect()  # harmless when not connected


def test_transport_error_without_a_connection_does_not_need_pcscd() -> None:
    with pytest.raises(TransportError, match="not connected"):
        PcscTransport().transmit(SELECT_MF)


def test_bridge_thread_is_named_and_not_started_twice() -> None:
    bridge = VpcdBridge(blank_card(), port=1, retry_interval=0.05)  # port 1: always refused
    thread = bridge.start_in_thread()
    try:
        assert thread.name == "vpcd-bridge-1"
        assert thread.daemon
        with pytest.raises(TransportError):
            bridge.start_in_thread()
    finally:
        bridge.stop(timeout=5)
    assert not thread.is_alive()
    assert isinstance(thread, threading.Thread)
