"""Serve a simulated card to pcscd through vsmartcard's vpcd driver.

vpcd runs *inside* pcscd as a TCP server (``127.0.0.1:35963`` is reader "Virtual PCD 00 00",
``35964`` is "Virtual PCD 00 01"); the virtual card (this bridge) connects to it as a client.
Every message, both ways, is a 2-byte big-endian length followed by the payload:

* a 1-byte payload from vpcd is a control code — ``00`` power off, ``01`` power on, ``02`` reset,
  ``04`` get ATR; only ``04`` is answered (with the framed ATR);
* anything longer is a C-APDU, answered with the framed R-APDU.

vpcd polls ``04`` about every 0.44 s for as long as the card is connected, so the bridge answers
all the time, not only while a PC/SC client holds the card.  When pcscd stops, the socket closes
and connecting is refused until pcscd is back: :meth:`VpcdBridge.serve_forever` retries every
``retry_interval`` seconds until :meth:`VpcdBridge.stop`.

vpcd accepts a single card per port and listens with a backlog of 0: a second bridge (or a stale
one from an earlier run) on the same port connects at TCP level but is never served.  The bridge
logs a warning when it hears nothing for ``idle_timeout`` seconds and then connects again.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading

from healthcard.card.cos import CardOS
from healthcard.errors import TransportError

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "GET_ATR",
    "POWER_OFF",
    "POWER_ON",
    "RESET",
    "VpcdBridge",
]

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
#: vpcd's first port; the second reader is on ``DEFAULT_PORT + 1``
DEFAULT_PORT = 35963

POWER_OFF = 0x00
POWER_ON = 0x01
RESET = 0x02
GET_ATR = 0x04

_MAX_PAYLOAD = 0xFFFF  # the length prefix is two bytes
_SW_NO_PRECISE_DIAGNOSIS = b"\x6f\x00"
_TCP_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only


class _Closed(Exception):
    """The connection to vpcd ended (pcscd stopped, or :meth:`VpcdBridge.stop` was called)."""


class VpcdBridge:
    """Connect a :class:`~healthcard.card.cos.CardOS` to vpcd as its virtual card.

    ``card`` is only touched while holding :attr:`lock`; code that uses the same card object
    from another thread at the same time should hold it too.  A bridge serves until
    :meth:`stop`; it cannot be started again afterwards.
    """

    def __init__(
        self,
        card: CardOS,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        retry_interval: float = 0.2,
        idle_timeout: float = 5.0,
        connect_timeout: float = 2.0,
    ) -> None:
        self.card = card
        self.host = host
        self.port = port
        self.retry_interval = retry_interval
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self.lock = threading.RLock()
        #: C-APDUs answered, control codes received, and successful connections to vpcd
        self.apdu_count = 0
        self.control_count = 0
        self.connections = 0
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._sock_lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        with self.lock:
            self.card.power_on()

    def __repr__(self) -> str:
        return f"VpcdBridge({self.host}:{self.port}, connected={self.connected})"

    # --- state ---------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """True while a TCP connection to vpcd is open (vpcd may not serve it yet if another
        virtual card holds the port: see ``idle_timeout``)."""
        return self._connected.is_set()

    @property
    def stopped(self) -> bool:
        return self._stopping.is_set()

    def wait_connected(self, timeout: float | None = None) -> bool:
        """Block until the bridge is connected to vpcd (or ``timeout``); returns whether it is."""
        return self._connected.wait(timeout)

    # --- control -------------------------------------------------------------------------
    def start_in_thread(self) -> threading.Thread:
        """Run :meth:`serve_forever` in a daemon thread and return the (started) thread."""
        if self._thread is not None:
            raise TransportError(f"vpcd bridge on port {self.port} was already started")
        thread = threading.Thread(target=self.serve_forever, name=f"vpcd-bridge-{self.port}", daemon=True)
        self._thread = thread
        thread.start()
        return thread

    def stop(self, timeout: float | None = None) -> None:
        """Stop serving: close the socket so :meth:`serve_forever` returns promptly.

        Thread-safe and idempotent.  If the bridge runs in the thread made by
        :meth:`start_in_thread` and ``timeout`` is given, waits that long for it to end.
        """
        self._stopping.set()
        with self._sock_lock:
            sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)  # wakes a recv() blocked in the serving thread
        thread = self._thread
        if timeout is not None and thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # --- serving -------------------------------------------------------------------------
    def serve_forever(self) -> None:
        """Connect to vpcd and answer it; reconnect whenever the connection ends; until :meth:`stop`."""
        refused_logged = False
        while not self._stopping.is_set():
            sock = self._connect()
            if sock is None:
                if not refused_logged:
                    logger.info(
                        "vpcd %s:%d not reachable; retrying every %.1f s",
                        self.host,
                        self.port,
                        self.retry_interval,
                    )
                    refused_logged = True
                self._stopping.wait(self.retry_interval)
                continue
            refused_logged = False
            self.connections += 1
            logger.info("connected to vpcd %s:%d", self.host, self.port)
            self._connected.set()
            try:
                self._serve(sock)
            except _Closed as closed:
                if not self._stopping.is_set():
                    logger.info(
                        "vpcd %s:%d closed the connection (%s); reconnecting", self.host, self.port, closed
                    )
            finally:
                self._connected.clear()
                with self._sock_lock:
                    self._sock = None
                sock.close()
        logger.info("vpcd bridge %s:%d stopped", self.host, self.port)

    def _connect(self) -> socket.socket | None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except OSError as error:
            logger.debug("connect to vpcd %s:%d failed: %s", self.host, self.port, error)
            return None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._quickack(sock)
        # a recv timeout lets the loop notice stop() even if shutdown() could not wake it
        sock.settimeout(min(0.5, self.idle_timeout))
        with self._sock_lock:
            if self._stopping.is_set():
                sock.close()
                return None
            self._sock = sock
        return sock

    def _serve(self, sock: socket.socket) -> None:
        while True:
            length = int.from_bytes(self._recv_exact(sock, 2), "big")
            payload = self._recv_exact(sock, length) if length else b""
            reply = self._handle(payload)
            if reply is not None:
                try:
                    sock.sendall(len(reply).to_bytes(2, "big") + reply)
                except OSError as error:
                    raise _Closed(f"send failed: {error}") from error

    def _recv_exact(self, sock: socket.socket, size: int) -> bytes:
        buffer = bytearray()
        idle = 0.0
        timeout = sock.gettimeout() or 0.5
        while len(buffer) < size:
            if self._stopping.is_set():
                raise _Closed("stopped")
            try:
                chunk = sock.recv(size - len(buffer))
            except TimeoutError:
                idle += timeout
                if idle >= self.idle_timeout:
                    logger.warning(
                        "nothing from vpcd %s:%d for %.1f s: is another virtual card connected to "
                        "this port? reconnecting",
                        self.host,
                        self.port,
                        idle,
                    )
                    raise _Closed("idle") from None
                continue
            except OSError as error:
                raise _Closed(str(error)) from error
            if not chunk:
                raise _Closed("end of stream")
            self._quickack(sock)
            buffer += chunk
            idle = 0.0
        return bytes(buffer)

    @staticmethod
    def _quickack(sock: socket.socket) -> None:
        # vpcd writes the length prefix and the payload with two send() calls and no
        # TCP_NODELAY: Nagle holds the payload back until the prefix is acknowledged, and a
        # delayed ACK here would cost ~40 ms per message.  Linux resets QUICKACK after use.
        if _TCP_QUICKACK is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)

    def _handle(self, payload: bytes) -> bytes | None:
        """The reply to one message from vpcd (``None``: no reply)."""
        if len(payload) == 1:
            self.control_count += 1
            code = payload[0]
            with self.lock:
                if code == GET_ATR:
                    return self.card.state.atr
                if code in (POWER_ON, RESET):
                    logger.debug("vpcd %d: %s", self.port, "power on" if code == POWER_ON else "reset")
                    self.card.power_on()
                elif code == POWER_OFF:
                    logger.debug("vpcd %d: power off", self.port)
                else:
                    logger.warning("vpcd %d: unknown control code %02X ignored", self.port, code)
            return None
        if not payload:
            logger.warning("vpcd %d: empty message ignored", self.port)
            return None
        with self.lock:
            response = self.card.process(payload)
        self.apdu_count += 1
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("vpcd %d: %s -> %s", self.port, payload.hex(), response.hex())
        if len(response) > _MAX_PAYLOAD:
            logger.error(
                "vpcd %d: %d-byte response does not fit a vpcd frame; answering 6F00",
                self.port,
                len(response),
            )
            return _SW_NO_PRECISE_DIAGNOSIS
        return response
