"""Where blank chips come from and where personalised cards go.

A :class:`ChipSource` hands the card centre a blank chip — as the factory delivers it, holding
only its transport key ``TK = D(TKM, serial)`` — to personalise, takes the personalised card
back (``deliver``), and after a crash answers whether a chip finished (``finished``), so that a
re-run neither issues a card twice nor leaves one the database does not know.

* :class:`SimulatedChips` — a simulated chip factory and an output tray of card images (the
  embedded default, batch issuance, benchmarks);
* :class:`ReaderChip` — the one card in a reader (PC/SC — a desktop issuing station, a hospital
  kiosk — or any :class:`~healthcard.terminal.transport.Transport`).
"""

from __future__ import annotations

import multiprocessing
import os
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from healthcard.card import image
from healthcard.card.atr import chip_serial, key_info
from healthcard.card.cos import CardOS, CardState
from healthcard.card.filesystem import LifeCycle
from healthcard.card.personalise import CardContents, Personaliser
from healthcard.card.profile import Profile
from healthcard.errors import HealthCardError, ImageError, InvalidValue, TransportError
from healthcard.keys.keyset import CardKeySet
from healthcard.keys.primitives import Algorithm
from healthcard.terminal.transport import Transport

#: the transport key of a chip serial, as the issuing centre derives it: (key, algorithm)
TransportKeyOf = Callable[[bytes], tuple[bytes, Algorithm]]


class Chip(Protocol):
    serial: bytes

    def transmit(self, raw: bytes) -> bytes: ...


class ChipSource(Protocol):
    def blank(self, transport_key: TransportKeyOf) -> Chip:
        """A blank chip, powered and ready for the first personalisation APDU."""
        ...

    def deliver(self, chip: Chip, card_number: str) -> None:
        """The chip answered END PERSONALISATION: keep the card."""
        ...

    def sync(self) -> None:
        """Make every delivered card durable (a batch calls this once per chunk)."""
        ...

    def finished(self, serial: bytes) -> bool | None:
        """After a crash: did chip ``serial`` finish personalisation and reach the tray?
        ``None``: this source cannot tell."""
        ...


def image_path(folder: Path, serial: bytes) -> Path:
    """Where the tray keeps the image of chip ``serial``: ``<folder>/<SERIAL>.card``."""
    return folder / f"{serial.hex().upper()}.card"


def _write_unsynced(path: Path, data: bytes) -> None:
    """Write + rename now (mode 0600), fsync at ``sync()``: never a torn file, and one flush per
    chunk instead of one per card."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


@dataclass
class SimulatedChip:
    serial: bytes
    state: CardState
    card: CardOS = field(repr=False)

    def transmit(self, raw: bytes) -> bytes:
        return self.card.process(raw)


class SimulatedChips:
    """A simulated chip factory (8-byte serials: a 2-byte vendor prefix and 6 random bytes) and
    an output tray: each personalised card is saved as ``<out>/<SERIAL>.card`` (sealed image).

    ``durable_each``: fsync every image as it is written (one card at the desk); a batch turns it
    off and calls :meth:`sync` once per chunk, before the database says "issued".
    Without ``out`` the cards are kept in :attr:`delivered` (tests) or dropped (``keep=False``,
    benchmarks)."""

    def __init__(
        self,
        out: Path | None = None,
        sealer: image.Sealer | None = None,
        *,
        vendor: bytes = b"\x00\x86",
        rng: Callable[[int], bytes] = secrets.token_bytes,
        durable_each: bool = True,
        keep: bool = True,
    ) -> None:
        if out is not None and sealer is None:
            raise InvalidValue("sealer", "card images are sealed: give a Sealer with an output folder")
        if len(vendor) != 2:
            raise InvalidValue("vendor", "a 2-byte chip vendor prefix")
        self.out = out
        self.sealer = sealer
        self.vendor = vendor
        self.rng = rng
        self.durable_each = durable_each
        self.keep = keep
        self.delivered: dict[bytes, CardState] = {}
        self._unsynced: list[Path] = []
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)

    def path(self, serial: bytes) -> Path:
        assert self.out is not None
        return image_path(self.out, serial)

    def blank(self, transport_key: TransportKeyOf) -> SimulatedChip:
        serial = self.vendor + self.rng(6)
        key, algorithm = transport_key(serial)
        state = CardState.blank(serial, key, algorithm)
        card = CardOS(state)
        card.power_on()
        return SimulatedChip(serial, state, card)

    def deliver(self, chip: Chip, card_number: str) -> None:
        assert isinstance(chip, SimulatedChip)
        if self.out is None:
            if self.keep:
                self.delivered[chip.serial] = chip.state
            return
        assert self.sealer is not None
        path = self.path(chip.serial)
        if self.durable_each:
            image.save(chip.state, path, self.sealer)
        else:
            _write_unsynced(path, image.dumps(chip.state, self.sealer))
            self._unsynced.append(path)

    def sync(self) -> None:
        if not self._unsynced:
            return
        for path in self._unsynced:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        assert self.out is not None
        fd = os.open(self.out, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self._unsynced.clear()

    def finished(self, serial: bytes) -> bool | None:
        if self.out is None:
            return serial in self.delivered
        assert self.sealer is not None
        try:
            state = image.load(self.path(serial), self.sealer)
        except ImageError:
            return False
        return state.serial == serial and state.lifecycle is LifeCycle.ISSUED


@dataclass
class ReaderCard:
    serial: bytes
    transport: Transport = field(repr=False)

    def transmit(self, raw: bytes) -> bytes:
        return self.transport.transmit(raw).to_bytes()


class ReaderChip:
    """The blank card in a reader: its serial from the ATR; refused when it carries keys already."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def blank(self, transport_key: TransportKeyOf) -> ReaderCard:
        atr = self.transport.connect()
        serial, keys = chip_serial(atr), key_info(atr)
        if keys.version:
            raise InvalidValue(
                "chip",
                f"the card in the reader (chip {serial.hex().upper()}) is personalised already "
                f"(key version {keys.version}): insert a blank card",
            )
        return ReaderCard(serial, self.transport)

    def deliver(self, chip: Chip, card_number: str) -> None:
        """Nothing to keep: the operator takes the card out of the reader."""

    def sync(self) -> None:
        pass

    def finished(self, serial: bytes) -> bool | None:
        """A card whose ATR still shows no keys never got far; anything else cannot be told
        apart from the outside (a chip stopped just before END PERSONALISATION looks the same)."""
        try:
            atr = self.transport.connect()
        except Exception:
            return None
        if chip_serial(atr) == serial and not key_info(atr).version:
            return False
        return None


# --- simulated chips personalised in worker processes ---------------------------------------------
@dataclass(frozen=True)
class PersonalisationJob:
    """All a worker process needs to make and personalise one simulated chip (picklable)."""

    serial: bytes
    transport_key: bytes
    algorithm: Algorithm
    keys: CardKeySet
    contents: CardContents
    profile: Profile


@dataclass
class PendingChip:
    """A chip reserved in the main process, made and personalised in a worker."""

    serial: bytes
    transport_key: bytes = field(repr=False)
    algorithm: Algorithm

    def transmit(self, raw: bytes) -> bytes:
        raise TransportError("this chip is personalised in a worker process (PooledChips.personalise_all)")


_WORKER_SEALERS: dict[str, image.Sealer] = {}


def _follow_parent(parent: int) -> None:
    """Worker initialiser: leave when the batch process is gone (a SIGKILL leaves no one to shut
    the pool down; an orphan worker would wait on its queue for ever)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="follow-parent", daemon=True).start()


def _personalise_in_worker(job: PersonalisationJob, out: str | None, passphrase: str | None) -> str | None:
    """Worker side: the blank chip, every personalisation APDU, the sealed image written
    (renamed into place, fsync'ed later by the parent).  The error text, or None."""
    state = CardState.blank(job.serial, job.transport_key, job.algorithm)
    card = CardOS(state)
    card.power_on()
    try:
        Personaliser(card.process, job.transport_key, job.algorithm).run(job.profile, job.keys, job.contents)
    except HealthCardError as exc:
        return f"{type(exc).__name__}: {exc}"
    state.profile = job.profile.id
    if out is not None and passphrase is not None:
        sealer = _WORKER_SEALERS.get(passphrase) or _WORKER_SEALERS.setdefault(
            passphrase, image.Sealer(passphrase)
        )
        _write_unsynced(image_path(Path(out), job.serial), image.dumps(state, sealer))
    return None


class PooledChips(SimulatedChips):
    """Simulated chips personalised in ``workers`` processes: the batch issuer's way to use every
    core.  The main process reserves chips and does the database work; each worker makes its
    chips, runs every APDU and writes the sealed images; :meth:`sync` makes them durable before
    the database says "issued", as with :class:`SimulatedChips`."""

    def __init__(
        self,
        out: Path | None = None,
        passphrase: str | None = None,
        *,
        workers: int = 2,
        vendor: bytes = b"\x00\x86",
        rng: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        super().__init__(
            out,
            image.Sealer(passphrase) if out is not None and passphrase is not None else None,
            vendor=vendor,
            rng=rng,
            durable_each=False,
            keep=False,
        )
        if workers < 1:
            raise InvalidValue("workers", "at least one worker process")
        self.passphrase = passphrase
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def blank(self, transport_key: TransportKeyOf) -> PendingChip:  # type: ignore[override]
        serial = self.vendor + self.rng(6)
        key, algorithm = transport_key(serial)
        return PendingChip(serial, key, algorithm)

    def personalise_all(self, jobs: Sequence[PersonalisationJob]) -> list[str | None]:
        """Personalise every job's chip in the pool; per job, the error text or None."""
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_follow_parent,
                initargs=(os.getpid(),),
            )
        out = str(self.out) if self.out is not None else None
        chunk = max(1, len(jobs) // (self.workers * 4))
        results = list(
            self._pool.map(
                _personalise_in_worker,
                jobs,
                [out] * len(jobs),
                [self.passphrase] * len(jobs),
                chunksize=chunk,
            )
        )
        if self.out is not None:
            self._unsynced.extend(
                self.path(job.serial) for job, error in zip(jobs, results, strict=True) if not error
            )
        return results

    def deliver(self, chip: Chip, card_number: str) -> None:
        """The worker wrote the image already."""

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
