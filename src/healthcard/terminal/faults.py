"""Fault injection for terminal programs: a card pulled, or a SAM removed, at a chosen APDU.

:class:`PulledTransport` wraps any :class:`~healthcard.terminal.transport.Transport`: it lets
``after`` exchanges through, then the card is gone — the next exchange and every one after it
(and a new ``connect``) raise the error a PC/SC reader raises, a
:class:`~healthcard.terminal.pcsc.PcscError` with pcscd's own reason and code
(``SCARD_W_REMOVED_CARD`` for a user card, ``SCARD_E_READER_UNAVAILABLE`` for a SAM whose
reader went away).  The command that meets the removal never reaches the card, as with a card
pulled before its bytes went out; a card that loses power *while* executing a command keeps it
whole or not at all (per-APDU atomicity, docs/card.md "Faults"), which is the same to the host.

A reader integrator uses it to test their own error handling::

    term = HealthCardTerminal(PulledTransport(card_transport, after=7), sam_transport)
    term.open()  # raises CardRemoved("... during READ RECORD DDF1/EF05 ...") at the 8th card APDU
"""

from __future__ import annotations

from healthcard.terminal.pcsc import PcscError
from healthcard.terminal.transport import Transport

__all__ = ["SCARD_E_READER_UNAVAILABLE", "SCARD_W_REMOVED_CARD", "PulledTransport"]

#: pcscd's codes (winscard.h) and messages, as ``SCardGetErrorMessage`` gives them
SCARD_W_REMOVED_CARD = 0x80100069
SCARD_E_READER_UNAVAILABLE = 0x80100017
_REASONS = {
    SCARD_W_REMOVED_CARD: "Card was removed.",
    SCARD_E_READER_UNAVAILABLE: "Reader/Card unavailable",
}


class PulledTransport(Transport):
    """``inner`` until ``after`` exchanges went through; then removed for good."""

    def __init__(
        self, inner: Transport, after: int, *, sam: bool = False, reader: str = "Virtual PCD 00 00"
    ) -> None:
        super().__init__()
        self.inner = inner
        self.after = after
        self.sam = sam
        self.reader = reader
        self.exchanges = 0
        self.removed = False
        self.name = f"pulled({inner.name})"

    def _error(self, what: str) -> PcscError:
        code = SCARD_E_READER_UNAVAILABLE if self.sam else SCARD_W_REMOVED_CARD
        return PcscError(f"{what} {self.reader!r} failed: {_REASONS[code]} (0x{code:08X})", code)

    def connect(self) -> bytes:
        if self.removed:
            raise self._error("connect to")
        self.atr = self.inner.connect()
        return self.atr

    def disconnect(self) -> None:
        if not self.removed:
            self.inner.disconnect()

    def _exchange(self, raw: bytes) -> bytes:
        if self.exchanges >= self.after:
            self.removed = True
        if self.removed:
            raise self._error("transmit to")
        self.exchanges += 1
        return self.inner.transmit(raw).to_bytes()
