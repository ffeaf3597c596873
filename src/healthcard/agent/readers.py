"""The card slots the agent drives: simulated slots holding a card image, PC/SC readers, and
the SAM.

A :class:`Reader` hands out a fresh :class:`~healthcard.terminal.transport.Transport` for each
card operation and carries the lock that keeps one operation at a time on it.  Removing a card
is a state of the reader, not of the transport: a simulated slot's transport fails the next
APDU after :meth:`SimulatedSlot.remove` exactly as a PC/SC transport fails after the card is
pulled out (``SCARD_W_REMOVED_CARD``), and both become :class:`CardRemoved`.

Errors added here (under the tree of :mod:`healthcard.errors`)::

    TransportError
    ├── NoCard          no card in the reader when the operation starts
    ├── CardRemoved     the card left the reader during the operation
    └── SamMissing      the agent has no SAM, or the SAM's reader holds no card
    TransitionRefused
    └── ReaderBusy      another operation holds the reader (or the SAM) longer than the wait
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from healthcard.card import image
from healthcard.card.apdu import CommandAPDU
from healthcard.card.cos import CardOS, CardState
from healthcard.card.profile import PROFILE_32K, PROFILES, Profile
from healthcard.card.sam import SamOS
from healthcard.card.sw import exception_for, is_success
from healthcard.errors import InvalidValue, NotFound, TransitionRefused, TransportError
from healthcard.keys.certificates import SAM_CERTIFICATE_LENGTH
from healthcard.terminal.pcsc import PcscError, PcscTransport
from healthcard.terminal.transport import SimulatorTransport, Transport

logger = logging.getLogger(__name__)

# PC/SC codes (pcsclite.h) that mean the card went away or was reset under us
_REMOVED = frozenset({0x80100069, 0x80100068, 0x8010000C})  # W_REMOVED_CARD, W_RESET_CARD, E_NO_SMARTCARD


class NoCard(TransportError):
    """No card in the reader when an operation starts."""

    def __init__(self, reader: str) -> None:
        self.reader = reader
        super().__init__(f"no card in reader {reader!r}: insert the card")


class CardRemoved(TransportError):
    """The card left the reader during an operation.  A visit record being written is left
    marked invalid on the card (the SDK erases the index first and signs it last), never half
    valid."""

    def __init__(self, reader: str) -> None:
        self.reader = reader
        super().__init__(f"the card was removed from reader {reader!r} during the operation; insert it again")


class SamMissing(TransportError):
    """The agent has no SAM (no ``--sam`` / ``--sam-reader``), or the SAM's reader is empty."""


class ReaderBusy(TransitionRefused):
    """Another card operation holds the reader (or the shared SAM) longer than the agent waits."""


class Reader:
    """One card slot.  ``kind`` is ``"simulated"`` or ``"pcsc"``."""

    kind = "reader"

    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.Lock()

    def present(self) -> bool | None:
        """Whether a card is in the slot now (None: cannot tell, pcscd did not answer)."""
        raise NotImplementedError

    def transport(self) -> Transport:
        """A transport to the card for one operation (connect it; it raises :class:`NoCard`)."""
        raise NotImplementedError

    def profile(self) -> Profile:
        return PROFILE_32K

    @property
    def busy(self) -> bool:
        return self.lock.locked()

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "kind": self.kind, "card_present": self.present(), "busy": self.busy}


@contextmanager
def held(lock: threading.Lock | threading.RLock, wait: float, what: str) -> Iterator[None]:
    """Hold ``lock`` for one operation, waiting up to ``wait`` seconds for it; else
    :class:`ReaderBusy`."""
    if not lock.acquire(timeout=wait):
        raise ReaderBusy(f"{what} is busy with another card operation; try again")
    try:
        yield
    finally:
        lock.release()


# --- simulated slots ---------------------------------------------------------------------------
class SimulatedSlot(Reader):
    """A slot holding one simulated card (a card image), for demos and browser tests: the card
    can be taken out and put back (:meth:`remove`, :meth:`insert`).  Every change the card makes
    goes to ``save`` (the image file, atomically) as ``healthcard card serve`` does."""

    kind = "simulated"

    def __init__(self, name: str, state: CardState, save: Callable[[CardState], None] | None = None) -> None:
        super().__init__(name)
        self.card = CardOS(state, on_change=save)
        self._profile = PROFILES.get(state.profile, PROFILE_32K)
        self.inserted = True
        #: bumped by every insert and remove: a transport connected before a removal stays dead
        self.generation = 0

    def present(self) -> bool:
        return self.inserted

    def insert(self) -> None:
        if not self.inserted:
            self.inserted, self.generation = True, self.generation + 1

    def remove(self) -> None:
        """Take the card out, even during an operation (the reader lock is not taken: pulling a
        card out is what a person does while the reader is busy)."""
        self.inserted, self.generation = False, self.generation + 1

    def transport(self) -> Transport:
        return _SlotTransport(self)

    def profile(self) -> Profile:
        return self._profile

    def load(self, state: CardState, save: Callable[[CardState], None] | None = None) -> None:
        """Another card in the slot, inserted (a kiosk's dispenser handing out the card it made):
        the card that was there is gone, and a transport connected to it fails its next APDU.
        The caller holds the slot's lock."""
        self.card = CardOS(state, on_change=save)
        self._profile = PROFILES.get(state.profile, PROFILE_32K)
        self.inserted, self.generation = True, self.generation + 1


class CardTray:
    """The output tray of a kiosk's card dispenser in the demo: the folder where the card centre
    saves each card it personalised on a simulated chip, ``<folder>/<CHIP SERIAL>.card``
    (:func:`healthcard.issuance.chips.image_path`).  Only such names are opened — the serial is
    16 hex digits, the path stays inside the folder — so a request cannot load any other file."""

    def __init__(self, folder: Path, sealer: image.Sealer) -> None:
        self.folder = folder
        self._sealer = sealer

    def __repr__(self) -> str:
        return f"CardTray({str(self.folder)!r})"

    def path(self, chip_serial: object) -> Path:
        serial = chip_serial.strip().upper() if isinstance(chip_serial, str) else ""
        if not _SERIAL.fullmatch(serial):
            raise InvalidValue("chip_serial", "the chip serial is 16 hex digits")
        path = self.folder / f"{serial}.card"
        if path.resolve().parent != self.folder.resolve():  # a link out of the tray
            raise InvalidValue("chip_serial", "that card is not in the dispenser's tray")
        return path

    def take(self, chip_serial: object) -> tuple[CardState, Callable[[CardState], None]]:
        """The card image of ``chip_serial`` and where its changes go (the same file)."""
        path = self.path(chip_serial)
        if not path.is_file():
            raise NotFound("card in the dispenser's tray", path.stem)
        state = image.load(path, self._sealer)

        def save(changed: CardState) -> None:
            image.save(changed, path, self._sealer)

        return state, save


_SERIAL = re.compile(r"[0-9A-F]{16}")


class _SlotTransport(SimulatorTransport):
    name = "simulated-slot"

    def __init__(self, slot: SimulatedSlot) -> None:
        super().__init__(slot.card)
        self.slot = slot
        self.trace.enabled = False  # a long-lived agent keeps no APDUs (they may carry a PIN)
        self._generation = -1

    def connect(self) -> bytes:
        if not self.slot.inserted:
            raise NoCard(self.slot.name)
        self._generation = self.slot.generation
        return super().connect()

    def _exchange(self, raw: bytes) -> bytes:
        if not self.slot.inserted or self.slot.generation != self._generation:
            raise CardRemoved(self.slot.name)
        return super()._exchange(raw)


# --- PC/SC readers ------------------------------------------------------------------------------
def _scard() -> ModuleType | None:
    try:
        from smartcard import scard
    except ImportError:
        return None
    module: ModuleType = scard
    return module


def pcsc_card_present(reader: str) -> bool | None:
    """Whether pcscd sees a card in ``reader`` now; None when pyscard or pcscd does not answer."""
    scard = _scard()
    if scard is None:
        return None
    try:
        hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    except scard.error:
        return None
    if hresult != scard.SCARD_S_SUCCESS:
        return None
    try:
        hresult, states = scard.SCardGetStatusChange(context, 0, [(reader, scard.SCARD_STATE_UNAWARE)])
        if hresult != scard.SCARD_S_SUCCESS:
            return None
        _name, event, _atr = states[0]
        return bool(event & scard.SCARD_STATE_PRESENT)
    except scard.error:
        return None
    finally:
        scard.SCardReleaseContext(context)


class PcscReader(Reader):
    """A reader pcscd knows (a real one, or vsmartcard-vpcd's virtual ones)."""

    kind = "pcsc"

    def __init__(self, name: str, timeout: float = 1.0) -> None:
        super().__init__(name)
        self.timeout = timeout

    def present(self) -> bool | None:
        return pcsc_card_present(self.name)

    def transport(self) -> Transport:
        return _PcscCard(self.name, timeout=self.timeout)


class _PcscCard(PcscTransport):
    """A PC/SC transport whose failures say "no card" and "card removed" in the agent's words."""

    def __init__(self, reader: str, *, timeout: float) -> None:
        super().__init__(reader, timeout=timeout)
        self.trace.enabled = False

    def connect(self, timeout: float | None = None) -> bytes:
        try:
            return super().connect(timeout)
        except PcscError as error:
            if str(error).startswith("no card in reader") and "no card present" in str(error):
                raise NoCard(str(self.reader)) from None
            raise

    def _exchange(self, raw: bytes) -> bytes:
        try:
            return super()._exchange(raw)
        except PcscError as error:
            if error.hresult is not None and error.hresult & 0xFFFFFFFF in _REMOVED:
                raise CardRemoved(self.reader_name or str(self.reader)) from None
            raise


# --- the SAM ---------------------------------------------------------------------------------------
class SamSlot:
    """The terminal's SAM, shared by every reader (one operation at a time: ``lock``).

    ``source`` is ``"image"`` (a SAM image file in this process) or ``"pcsc"`` (a reader
    holding the PSAM)."""

    def __init__(self, transport: Transport, source: str, name: str) -> None:
        self.transport = transport
        self.transport.trace.enabled = False  # the SAM PIN goes through it: keep no APDUs
        self.source = source
        self.name = name
        self.lock = threading.RLock()
        self._certificate: bytes | None = None

    @classmethod
    def from_image(
        cls, state: CardState, name: str, save: Callable[[CardState], None] | None = None
    ) -> SamSlot:
        return cls(SimulatorTransport(SamOS(state, on_change=save)), "image", name)

    @classmethod
    def from_reader(cls, reader: str, timeout: float = 2.0) -> SamSlot:
        return cls(_PcscCard(reader, timeout=timeout), "pcsc", reader)

    def present(self) -> bool | None:
        if self.source == "pcsc":
            connected = getattr(self.transport, "reader_name", None)
            return pcsc_card_present(connected or self.name)
        return True

    def certificate(self) -> bytes:
        """The SAM's certificate (DF01/001C, free to read: no PIN), read once."""
        if self._certificate is None:
            with self.lock:
                try:
                    self.transport.connect()
                except TransportError as error:
                    raise SamMissing(f"the SAM in {self.name!r} does not answer: {error}") from None
                try:
                    for fid in ("3F00", "DF01", "001C"):
                        self._apdu(CommandAPDU(0x00, 0xA4, 0, 0, bytes.fromhex(fid)))
                    self._certificate = self._apdu(CommandAPDU(0x00, 0xB0, 0, 0, le=SAM_CERTIFICATE_LENGTH))
                finally:
                    self.transport.disconnect()
        return self._certificate

    def _apdu(self, command: CommandAPDU) -> bytes:
        response = self.transport.transmit(command)
        if response.sw1 == 0x61:
            response = self.transport.transmit(CommandAPDU(0x00, 0xC0, 0, 0, le=response.sw2 or 256))
        if not is_success(response.sw):
            raise exception_for(response.sw)
        return response.data


__all__ = [
    "CardRemoved",
    "CardTray",
    "NoCard",
    "PcscReader",
    "Reader",
    "ReaderBusy",
    "SamMissing",
    "SamSlot",
    "SimulatedSlot",
    "held",
    "pcsc_card_present",
]
