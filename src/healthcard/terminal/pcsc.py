"""A real (or vpcd-virtual) reader through pcscd, with pyscard's low-level ``smartcard.scard`` API.

pyscard is optional (``pip install 'healthcard[pcsc]'``): it is imported only when a function
here needs it, so this module imports without it.  Every PC/SC failure becomes a
:class:`PcscError` (a :class:`~healthcard.errors.TransportError`) whose message names the
operation, the reader and the PC/SC reason, e.g. ``transmit to 'Virtual PCD 00 00' failed:
Card was removed. (0x80100069)``.

The low-level API is used on purpose: pyscard's ``PCSCCardConnection`` releases its context in
``__del__`` and raises there when pcscd has gone away in the meantime.

After pcscd restarts, or the card is removed or reset by someone else, the connection is dead:
``transmit`` raises and the caller decides whether to :meth:`PcscTransport.connect` again
(the card's security state is gone either way, so this is never done silently).
"""

from __future__ import annotations

import logging
import time
from types import ModuleType

from healthcard.errors import TransportError
from healthcard.terminal.transport import Transport

__all__ = ["PcscError", "PcscTransport", "list_readers"]

logger = logging.getLogger(__name__)

_POLL = 0.1  # seconds between attempts while waiting for pcscd, the reader or the card
_SCARD_ABSENT = 0x0002  # SCardStatus's state bit (pcsclite.h): no card in the reader


class PcscError(TransportError):
    """A PC/SC call failed; ``hresult`` is the PC/SC return code when there is one."""

    def __init__(self, message: str, hresult: int | None = None) -> None:
        super().__init__(message)
        self.hresult = hresult


class _NotYet(Exception):
    """Waiting is worth it: pcscd, the reader or the card may still come."""


def _scard() -> ModuleType:
    try:
        from smartcard import scard
    except ImportError as error:
        raise TransportError("pyscard is not installed: pip install 'healthcard[pcsc]'") from error
    module: ModuleType = scard
    return module


def _reason(scard: ModuleType, hresult: int) -> str:
    try:
        text = str(scard.SCardGetErrorMessage(hresult)).strip()
    except Exception:  # pragma: no cover - an unknown code must not hide the original failure
        text = "PC/SC error"
    return f"{text} (0x{hresult & 0xFFFFFFFF:08X})"


def _establish(scard: ModuleType) -> int:
    try:
        hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    except scard.error as error:
        raise PcscError(f"cannot reach pcscd: {error}") from None
    if hresult != scard.SCARD_S_SUCCESS:
        if hresult in (scard.SCARD_E_NO_SERVICE, scard.SCARD_E_SERVICE_STOPPED):
            raise PcscError(f"pcscd is not running: {_reason(scard, hresult)}", int(hresult))
        raise PcscError(f"cannot reach pcscd: {_reason(scard, hresult)}", int(hresult))
    return int(context)


def _release(scard: ModuleType, context: int) -> None:
    try:
        scard.SCardReleaseContext(context)
    except Exception as error:  # pragma: no cover - only logging on the way out
        logger.debug("SCardReleaseContext failed: %s", error)


def _list(scard: ModuleType, context: int) -> list[str]:
    try:
        hresult, readers = scard.SCardListReaders(context, [])
    except scard.error as error:
        raise PcscError(f"cannot list PC/SC readers: {error}") from None
    if hresult == scard.SCARD_E_NO_READERS_AVAILABLE:
        return []
    if hresult != scard.SCARD_S_SUCCESS:
        raise PcscError(f"cannot list PC/SC readers: {_reason(scard, hresult)}", int(hresult))
    return [str(name) for name in readers]


def list_readers() -> list[str]:
    """The names of the readers pcscd knows now (empty if none); :class:`PcscError` if pcscd is down."""
    scard = _scard()
    context = _establish(scard)
    try:
        return _list(scard, context)
    finally:
        _release(scard, context)


class PcscTransport(Transport):
    """A card in a PC/SC reader.

    ``reader`` is an index into :func:`list_readers` or a name: an exact reader name, else the
    first reader whose name contains it (``"00 01"`` picks ``"Virtual PCD 00 01"``).
    :meth:`connect` waits up to ``timeout`` seconds for pcscd, the reader and a card.
    """

    name = "pcsc"

    def __init__(self, reader: str | int = 0, *, timeout: float = 5.0, exclusive: bool = False) -> None:
        super().__init__()
        self.reader = reader
        self.timeout = timeout
        self.exclusive = exclusive
        #: the reader actually connected to, and the protocol pcscd chose ("T=0" / "T=1")
        self.reader_name: str | None = None
        self.protocol: str | None = None
        self._context: int | None = None
        self._card: int | None = None
        self._pci: object = None

    def __repr__(self) -> str:
        where = self.reader_name or self.reader
        return f"PcscTransport({where!r}, connected={self.connected})"

    @property
    def connected(self) -> bool:
        return self._card is not None

    def _describe(self) -> str:
        if self.reader_name is not None:
            return repr(self.reader_name)
        return f"#{self.reader}" if isinstance(self.reader, int) else repr(self.reader)

    # --- connect ---------------------------------------------------------------------------
    def connect(self, timeout: float | None = None) -> bytes:
        """Connect to the card (waiting for it up to ``timeout``, default ``self.timeout``); the ATR."""
        scard = _scard()
        self.disconnect()
        wait = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        while True:
            try:
                self.atr = self._attempt(scard)
                return self.atr
            except _NotYet as not_yet:
                reason = str(not_yet)
            if time.monotonic() >= deadline:
                self.disconnect()
                raise PcscError(f"no card in reader {self._describe()} after {wait:g} s: {reason}")
            time.sleep(_POLL)

    def _attempt(self, scard: ModuleType) -> bytes:
        if self._context is None:
            try:
                self._context = _establish(scard)
            except PcscError as error:
                if error.hresult in (scard.SCARD_E_NO_SERVICE, scard.SCARD_E_SERVICE_STOPPED):
                    raise _NotYet(str(error)) from None
                raise
        try:
            readers = _list(scard, self._context)
        except PcscError as error:
            # pcscd restarted since the context was made: make a new one next time
            self._drop_context(scard)
            raise _NotYet(str(error)) from None
        name = self._resolve(readers)
        share = scard.SCARD_SHARE_EXCLUSIVE if self.exclusive else scard.SCARD_SHARE_SHARED
        protocols = scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
        try:
            hresult, card, active = scard.SCardConnect(self._context, name, share, protocols)
        except scard.error as error:
            raise PcscError(f"cannot connect to {name!r}: {error}") from None
        if hresult != scard.SCARD_S_SUCCESS:
            retry = {
                scard.SCARD_E_NO_SMARTCARD: "no card present",
                scard.SCARD_W_REMOVED_CARD: "no card present",
                scard.SCARD_E_UNKNOWN_READER: "reader is gone",
                scard.SCARD_E_READER_UNAVAILABLE: "reader is unavailable",
                scard.SCARD_W_UNPOWERED_CARD: "card is not powered",
                scard.SCARD_W_UNRESPONSIVE_CARD: "card does not answer",
                scard.SCARD_E_SHARING_VIOLATION: "card is held exclusively by another program",
                scard.SCARD_E_NO_SERVICE: "pcscd went away",
                scard.SCARD_E_INVALID_HANDLE: "pcscd restarted",
            }
            if hresult in retry:
                if hresult in (scard.SCARD_E_NO_SERVICE, scard.SCARD_E_INVALID_HANDLE):
                    self._drop_context(scard)
                raise _NotYet(f"{retry[hresult]}: {_reason(scard, hresult)}")
            raise PcscError(f"cannot connect to {name!r}: {_reason(scard, hresult)}", int(hresult))
        self._card = int(card)
        self.reader_name = name
        if active == scard.SCARD_PROTOCOL_T0:
            self.protocol, self._pci = "T=0", scard.SCARD_PCI_T0
        elif active == scard.SCARD_PROTOCOL_T1:
            self.protocol, self._pci = "T=1", scard.SCARD_PCI_T1
        else:
            self.protocol, self._pci = "RAW", scard.SCARD_PCI_RAW
        atr = self._status_atr(scard)
        logger.info("connected to %r (%s), ATR %s", name, self.protocol, atr.hex().upper())
        return atr

    def _resolve(self, readers: list[str]) -> str:
        if isinstance(self.reader, int):
            if 0 <= self.reader < len(readers):
                return readers[self.reader]
            raise _NotYet(f"no reader #{self.reader} (readers: {readers or 'none'})")
        if self.reader in readers:
            return self.reader
        for name in readers:
            if self.reader in name:
                return name
        raise _NotYet(f"no reader matching {self.reader!r} (readers: {readers or 'none'})")

    def _status_atr(self, scard: ModuleType) -> bytes:
        try:
            hresult, _reader, _state, _protocol, atr = scard.SCardStatus(self._card)
        except scard.error as error:
            raise PcscError(f"cannot read the ATR in {self._describe()}: {error}") from None
        if hresult != scard.SCARD_S_SUCCESS:
            raise PcscError(
                f"cannot read the ATR in {self._describe()}: {_reason(scard, hresult)}", int(hresult)
            )
        return bytes(atr)

    # --- use -------------------------------------------------------------------------------
    def reset(self, cold: bool = False) -> bytes:
        """Warm (or cold: power off and on) reset of the connected card; returns the new ATR."""
        scard = _scard()
        if self._card is None:
            raise PcscError("not connected to a card")
        share = scard.SCARD_SHARE_EXCLUSIVE if self.exclusive else scard.SCARD_SHARE_SHARED
        protocols = scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
        disposition = scard.SCARD_UNPOWER_CARD if cold else scard.SCARD_RESET_CARD
        try:
            hresult, _active = scard.SCardReconnect(self._card, share, protocols, disposition)
        except scard.error as error:
            raise PcscError(f"cannot reset the card in {self._describe()}: {error}") from None
        if hresult != scard.SCARD_S_SUCCESS:
            raise PcscError(
                f"cannot reset the card in {self._describe()}: {_reason(scard, hresult)}", int(hresult)
            )
        self.atr = self._status_atr(scard)
        return self.atr

    def _exchange(self, raw: bytes) -> bytes:
        scard = _scard()
        if self._card is None:
            raise PcscError("not connected to a card")
        try:
            hresult, response = scard.SCardTransmit(self._card, self._pci, list(raw))
        except scard.error as error:
            raise PcscError(f"transmit to {self._describe()} failed: {error}") from None
        if hresult != scard.SCARD_S_SUCCESS:
            raise PcscError(f"transmit to {self._describe()} failed: {_reason(scard, hresult)}", int(hresult))
        data = bytes(response)
        if len(data) < 2:
            raise self._without_status_word(scard, data)
        return data

    def _without_status_word(self, scard: ModuleType, data: bytes) -> PcscError:
        """A reply without a status word.  vpcd (and some readers) give that when the card left
        in the middle of the command, and pcscd learns of the removal a moment later: ask it,
        for up to a second, so the error says "Card was removed" rather than nothing."""
        assert self._card is not None
        deadline = time.monotonic() + 1.0
        while True:
            try:
                hresult, _reader, state, _protocol, _atr = scard.SCardStatus(self._card)
            except scard.error:
                break
            if hresult != scard.SCARD_S_SUCCESS:
                reason = _reason(scard, hresult)
                return PcscError(f"transmit to {self._describe()} failed: {reason}", int(hresult))
            if int(state) & _SCARD_ABSENT:
                code = scard.SCARD_W_REMOVED_CARD
                return PcscError(f"transmit to {self._describe()} failed: {_reason(scard, code)}", int(code))
            if time.monotonic() >= deadline:
                break
            time.sleep(_POLL / 2)
        return PcscError(f"transmit to {self._describe()}: response without a status word ({data.hex()})")

    # --- release ---------------------------------------------------------------------------
    def disconnect(self) -> None:
        """Power the card off and release the PC/SC context; never raises (pcscd may be gone)."""
        if self._card is None and self._context is None:
            return
        scard = _scard()
        if self._card is not None:
            card, self._card = self._card, None
            try:
                hresult = scard.SCardDisconnect(card, scard.SCARD_UNPOWER_CARD)
                if hresult != scard.SCARD_S_SUCCESS:
                    logger.debug("SCardDisconnect: %s", _reason(scard, hresult))
            except Exception as error:  # pragma: no cover - only logging on the way out
                logger.debug("SCardDisconnect failed: %s", error)
        self._drop_context(scard)

    def _drop_context(self, scard: ModuleType) -> None:
        if self._context is not None:
            context, self._context = self._context, None
            _release(scard, context)
