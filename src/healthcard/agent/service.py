"""The local reader agent's use cases, without HTTP: what a clinic console or a kiosk asks of
the card readers on its workstation.

::

    browser ──fetch──▶ agent (this) ──APDUs──▶ card in a reader  (+ the SAM, shared)
                             └──────HTTPS──────▶ platform (PlatformClient, logged in with the SAM)

Every card operation takes the reader's lock (one operation per reader; a second waits
``busy_wait`` seconds, then :class:`~healthcard.agent.readers.ReaderBusy`), then the SAM's,
opens a :class:`~healthcard.terminal.sdk.HealthCardTerminal` session and closes it again: no
card session outlives a request, so a card swapped between two requests is never written
with the previous holder's session.  Platform calls happen after the card is released.

Nothing secret leaves this module: answers carry what the chip and the platform said, never a
key, the SAM PIN or the cardholder PIN, and the transports keep no APDU trace.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from itertools import islice
from typing import Any, TypeVar

import httpx

from healthcard import __version__
from healthcard.agent.readers import (
    CardTray,
    NoCard,
    PcscReader,
    Reader,
    SamMissing,
    SamSlot,
    SimulatedSlot,
    held,
)
from healthcard.card.apdu import CommandAPDU
from healthcard.card.atr import chip_serial as atr_chip_serial
from healthcard.card.personalise import Value
from healthcard.card.sw import exception_for
from healthcard.clock import Clock, local_date
from healthcard.errors import (
    CardError,
    CertificateError,
    HealthCardError,
    InvalidValue,
    NotFound,
    TooManyAttempts,
    TransitionRefused,
    TransportError,
)
from healthcard.keys.certificates import TrustStore, parse_certificate
from healthcard.terminal.hotlist import TerminalHotList
from healthcard.terminal.pcsc import list_readers
from healthcard.terminal.platform import PlatformClient, PlatformRefused
from healthcard.terminal.records import Summary
from healthcard.terminal.sdk import HealthCardTerminal
from healthcard.terminal.transport import Transport

logger = logging.getLogger(__name__)
#: card refusals an agent keeps while the platform cannot be reached; a report carries at most
#: REFUSAL_REPORT; after a failed report the next waits REFUSAL_RETRY_S
REFUSAL_BACKLOG = 1000
REFUSAL_REPORT = 100
REFUSAL_RETRY_S = 60.0

T = TypeVar("T")

#: ``00 20 00 01 03 PIN`` — VERIFY of the cardholder PIN (MF, reference 01), DECISIONS.md §7
PIN_REFERENCE = 0x01


class WrongCard(TransitionRefused):
    """The card in the reader is not the one the request is about (the clerk swapped cards)."""


class VisitClosed(TransitionRefused):
    """The visit to write is closed at the platform: it is on a card already (or was closed
    without one); writing it again would take a second slot."""


class NotSimulated(TransitionRefused):
    """Insert / remove asked of a real reader: only a person can do that."""


class NoPlatform(TransitionRefused):
    """The request needs the platform and the agent was started without ``--platform``."""


class PlatformUnreachable(TransportError):
    """The platform could not be asked (connection refused, timeout, HTTP 5xx)."""


class PinWrong(InvalidValue):
    """The cardholder PIN was wrong; ``tries_left`` before the card blocks it."""

    def __init__(self, tries_left: int) -> None:
        self.tries_left = tries_left
        word = "try" if tries_left == 1 else "tries"
        super().__init__("pin", f"wrong PIN, {tries_left} {word} left before the card blocks it")


class PinBlocked(TransitionRefused):
    """The card's PIN is blocked (6983, or the last try failed): the card centre unblocks it."""

    tries_left = 0


class NoPin(TransitionRefused):
    """The card carries no cardholder PIN (6A88: it was issued without one)."""


class NoTray(TransitionRefused):
    """A card to dispense and the agent has no dispenser (started without ``--tray``)."""


def _plain(value: object) -> Any:
    """A terminal record as JSON: dates in ISO 8601, codes as ``{code, meaning}``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex().upper()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _visit(record: object) -> dict[str, Any]:
    """A visit record without its 170 raw items (the typed fields carry what a console shows)."""
    out: dict[str, Any] = _plain(record)
    out.pop("values", None)
    total = getattr(record, "total_fen", None)
    if isinstance(total, int):
        out["total_fen"] = total
    return out


def card_view(summary: Summary, chip_serial: bytes, photo: bytes) -> dict[str, Any]:
    """What the chip says, for the console's "一目了然" panel."""
    issuer = summary.issuer
    return {
        "card_number": issuer.card_number,
        "chip_serial": chip_serial.hex().upper(),
        "issuer": {
            "name": issuer.issuer_name,
            "code": issuer.issuer_code,
            "city_code": issuer.city_code,
            "issue_date": _plain(issuer.issue_date),
            "card_category": _plain(issuer.card_category),
        },
        "holder": _plain(summary.holder),
        "photo": f"data:image/jpeg;base64,{base64.b64encode(photo).decode()}" if photo else None,
        "alerts": {
            "abo": _plain(summary.alerts.abo),
            "rh": _plain(summary.alerts.rh),
            "present": summary.alerts.present,
            "other": summary.alerts.other,
            "psychiatric": summary.psychiatric,
        },
        "allergies": _plain(summary.allergies),
        "immunizations": _plain(summary.immunizations),
        "recent_visits": [_visit(r) for r in summary.outpatient],
    }


def problem_of(error: HealthCardError) -> dict[str, Any]:
    """``{code, message, field}`` of a platform failure, for the ``platform`` part of an answer."""
    if isinstance(error, PlatformRefused):
        return {"code": error.code, "message": error.message, "field": error.field, "status": error.status}
    if isinstance(error, NoPlatform):
        return {"code": "no-platform", "message": str(error), "field": None}
    if isinstance(error, InvalidValue):
        return {"code": "invalid", "message": error.message, "field": error.field}
    if isinstance(error, SamMissing):
        return {"code": "sam-missing", "message": str(error), "field": None}
    if isinstance(error, CardError):  # the SAM refused to sign the login (its PIN, its keys)
        return {"code": "sam-error", "message": str(error), "field": None}
    return {"code": "platform-unreachable", "message": str(error), "field": None}


def resolve(names: Sequence[str], wanted: str) -> str | None:
    """The reader ``wanted`` names the way :class:`~healthcard.terminal.pcsc.PcscTransport`
    picks it: the exact name, else the first name containing it."""
    if wanted in names:
        return wanted
    return next((n for n in names if wanted in n), None)


class _SamSigner:
    """The SAM's answer to the platform's login challenge, taken under the SAM's lock: the
    client may log in again by itself (on a 401) in the middle of any platform call."""

    def __init__(self, sam: SamSlot, sam_pin: str) -> None:
        self._sam = sam
        self._sam_pin = sam_pin

    def __repr__(self) -> str:
        return f"_SamSigner({self._sam.name!r}, pin=<hidden>)"

    def sign_challenge(self, nonce: bytes) -> tuple[bytes, bytes]:
        with self._sam.lock:
            transport = self._sam.transport
            transport.atr = b""  # power the SAM up afresh: a previous session's state is gone
            terminal = HealthCardTerminal(_NoCard(), transport, sam_pin=self._sam_pin)
            try:
                return terminal.sign_challenge(nonce)
            finally:
                transport.disconnect()


class _NoCard(Transport):
    """The user-card side of a SAM-only terminal (a login touches no card)."""

    name = "no-card"

    def connect(self) -> bytes:
        raise NoCard("(none)")


class Agent:
    """The readers, the SAM and the platform login of one workstation.

    ``readers`` are the simulated slots (PC/SC readers are listed from pcscd on each call when
    ``pcsc`` is true; the SAM's reader is left out).  ``platform_url`` None: offline, the card
    answers alone.  ``terminal_id`` defaults to the SAM certificate's subject (the id the
    platform registered the terminal under).  ``trust`` verifies the visit records written."""

    def __init__(
        self,
        *,
        readers: Sequence[SimulatedSlot] = (),
        sam: SamSlot | None = None,
        sam_pin: str = "123456",
        clock: Clock,
        platform_url: str | None = None,
        terminal_id: str | None = None,
        trust: TrustStore | None = None,
        hotlist: TerminalHotList | None = None,
        pcsc: bool = False,
        pcsc_timeout: float = 1.0,
        busy_wait: float = 2.0,
        platform_transport: httpx.BaseTransport | None = None,
        platform_timeout: float = 5.0,
        tray: CardTray | None = None,
        pin_limit: tuple[int, int] | None = None,
    ) -> None:
        names = [r.name for r in readers]
        if len(set(names)) != len(names):
            raise InvalidValue("card", "two simulated slots have the same name")
        self._simulated: dict[str, SimulatedSlot] = {r.name: r for r in readers}
        self._pcsc_readers: dict[str, PcscReader] = {}
        self.pcsc = pcsc
        self.pcsc_timeout = pcsc_timeout
        self.sam = sam
        self._sam_pin = sam_pin
        self.clock = clock
        self.pins = PinThrottle(clock, *(pin_limit or PIN_LIMIT))  # PIN submissions per reader
        self.trust = trust
        self.hotlist = hotlist
        self.busy_wait = busy_wait
        #: a kiosk's card dispenser (the demo's: the card centre's tray of simulated chips)
        self.tray = tray
        self.platform_url = platform_url
        #: what cards refused here (a failed authentication, a bad MAC, a wrong PIN), kept until
        #: the platform has them (docs/card.md §13); the oldest go beyond REFUSAL_BACKLOG
        self._refusals: deque[dict[str, str]] = deque(maxlen=REFUSAL_BACKLOG)
        self._refusal_lock = threading.Lock()
        self._refusals_due = 0.0  # time.monotonic() of the next report after a failed one
        self._terminal_id = terminal_id
        self._platform_lock = threading.Lock()
        self._client: PlatformClient | None = None
        self._platform_error: dict[str, Any] | None = None
        if platform_url is not None:
            self._client = PlatformClient(
                platform_url, transport=platform_transport, timeout=platform_timeout
            )

    def __repr__(self) -> str:
        return f"Agent(readers={list(self._simulated)}, pcsc={self.pcsc}, platform={self.platform_url!r})"

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    # --- readers -----------------------------------------------------------------------------
    def _pcsc_names(self) -> tuple[list[str], str | None]:
        """The PC/SC readers pcscd lists now (without the SAM's), and why not when it cannot."""
        if not self.pcsc:
            return [], None
        try:
            names = list_readers()
        except TransportError as error:
            return [], str(error)
        if self.sam is None or self.sam.source != "pcsc":
            return names, None
        held_by_sam = resolve(names, self.sam.name)
        return [n for n in names if n != held_by_sam], None

    def readers(self) -> list[Reader]:
        return self._readers()[0]

    def _readers(self) -> tuple[list[Reader], str | None]:
        names, error = self._pcsc_names()
        for name in names:
            self._pcsc_readers.setdefault(name, PcscReader(name, self.pcsc_timeout))
        return [*self._simulated.values(), *(self._pcsc_readers[n] for n in names)], error

    def reader(self, name: str | None) -> Reader:
        """The reader by name; without a name the first one holding a card."""
        readers = self.readers()
        if name is not None:
            for reader in readers:
                if reader.name == name:
                    return reader
            raise NotFound("reader", name)
        for reader in readers:
            if reader.present():
                return reader
        if not readers:
            raise NoCard("(no reader)")
        raise NoCard(readers[0].name if len(readers) == 1 else "any reader")

    def simulated(self, name: str | None) -> SimulatedSlot:
        if name is None:
            if len(self._simulated) == 1:
                return next(iter(self._simulated.values()))
            raise InvalidValue("reader", "name the simulated slot")
        if name in self._simulated:
            return self._simulated[name]
        if any(r.name == name for r in self.readers()):
            raise NotSimulated(f"reader {name!r} is a real reader: put the card in or take it out by hand")
        raise NotFound("reader", name)

    # --- status --------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        found, pcsc_error = self._readers()
        readers = [r.describe() for r in found]
        sam: dict[str, Any] | None = None
        if self.sam is not None:
            sam = {"source": self.sam.source, "name": self.sam.name, "present": self.sam.present()}
            try:
                sam["subject"] = self._sam_subject()
            except HealthCardError as error:
                sam["error"] = str(error)
        platform: dict[str, Any] = {"configured": self._client is not None, "url": self.platform_url}
        if self._client is not None:
            platform["logged_in"] = self._client.logged_in
            platform["terminal_id"] = self._terminal_id
            platform["error"] = self._platform_error
            platform["card_refusals_pending"] = self.pending_refusals()  # not yet reported
        return {
            "agent": "healthcard-agent",
            "version": __version__,
            "readers": readers,
            "card_present": any(r["card_present"] for r in readers),
            "pcsc": {"enabled": self.pcsc, "error": pcsc_error},
            "sam": sam,
            "platform": platform,
        }

    def _sam_subject(self) -> str:
        if self.sam is None:
            raise SamMissing("the agent has no SAM: start it with --sam or --sam-reader")
        return parse_certificate(self.sam.certificate()).subject

    # --- card sessions -------------------------------------------------------------------------
    @contextmanager
    def _session(self, name: str | None) -> Iterator[tuple[Reader, HealthCardTerminal]]:
        """A card session on reader ``name`` with the SAM; afterwards (the reader and the SAM
        free again) what the card refused in it is reported to the platform."""
        try:
            with self._card_session(name) as session:
                yield session
        finally:
            self.report_refusals()

    @contextmanager
    def _card_session(self, name: str | None) -> Iterator[tuple[Reader, HealthCardTerminal]]:
        reader = self.reader(name)
        sam = self.sam
        if sam is None:
            raise SamMissing("the agent has no SAM: start it with --sam or --sam-reader")
        with (
            held(reader.lock, self.busy_wait, f"reader {reader.name!r}"),
            held(sam.lock, self.busy_wait, "the SAM"),
        ):
            terminal = HealthCardTerminal(
                reader.transport(),
                sam.transport,
                sam_pin=self._sam_pin,
                profile=reader.profile(),
                trust=self.trust,
                hotlist=self.hotlist,
                on_refusal=self._refused,
            )
            try:
                try:
                    terminal.open()
                except NoCard as error:
                    if error.reader == sam.name:
                        raise SamMissing(f"no SAM in reader {sam.name!r}") from None
                    raise
                yield reader, terminal
            finally:
                terminal.close()

    # --- what cards refused ------------------------------------------------------------------------
    def _refused(self, chip: bytes, header: bytes, sw: int, card_number: str | None = None) -> None:
        """Keep a refusal by the card (its chip, the command's header — never its data — and the
        SW) for the platform's audit."""
        if not chip:
            return  # no chip serial yet: nothing to attribute it to
        item = {
            "chip_serial": chip.hex().upper(),
            "command": header.hex().upper(),
            "sw": f"{sw:04X}",
            "at": self.clock.now().isoformat(),
        }
        if card_number:
            item["card_number"] = card_number
        with self._refusal_lock:
            self._refusals.append(item)

    def pending_refusals(self) -> int:
        with self._refusal_lock:
            return len(self._refusals)

    def report_refusals(self, *, force: bool = False) -> int:
        """Send the refusals kept to the platform, 100 a report; the number it took.  A platform
        that cannot be reached keeps them (the next card session tries again, not before
        :data:`REFUSAL_RETRY_S`, unless ``force``); a report it refuses as malformed is dropped
        with a warning, as an upload the platform refused is not sent again."""
        if self._client is None or (not force and time.monotonic() < self._refusals_due):
            return 0
        sent = 0
        while True:
            with self._refusal_lock:
                batch = list(islice(self._refusals, REFUSAL_REPORT))
            if not batch:
                return sent
            try:
                sent += self._platform(partial(PlatformClient.report_refusals, refusals=batch))
            except PlatformRefused as refused:
                if refused.status in (401, 403, 408, 429) or refused.status >= 500:
                    return self._refusals_later(sent, refused)
                logger.warning("card refusals dropped: the platform refused the report (%s)", refused.code)
            except HealthCardError as error:
                return self._refusals_later(sent, error)
            with self._refusal_lock:
                for item in batch:
                    if item in self._refusals:
                        self._refusals.remove(item)

    def _refusals_later(self, sent: int, error: HealthCardError) -> int:
        self._refusals_due = time.monotonic() + REFUSAL_RETRY_S
        logger.warning(
            "card refusals kept for the platform (%s): %d pending",
            type(error).__name__,
            self.pending_refusals(),
        )
        return sent

    # --- the platform --------------------------------------------------------------------------
    def _platform(self, call: Callable[[PlatformClient], T]) -> T:
        """Call the platform, logged in with the SAM (once; the client logs in again on a 401)."""
        client = self._client
        if client is None:
            raise NoPlatform("the agent was started without --platform")
        with self._platform_lock:
            try:
                if not client.logged_in:
                    if self.sam is None:
                        raise SamMissing("the agent has no SAM to log in to the platform with")
                    if self._terminal_id is None:
                        self._terminal_id = self._sam_subject()
                    client.login(_SamSigner(self.sam, self._sam_pin), self._terminal_id)
                    logger.info("logged in to %s as terminal %s", self.platform_url, self._terminal_id)
                answer = call(client)
            except PlatformRefused as refused:
                self._platform_error = problem_of(refused) if refused.status in (401, 403) else None
                raise
            except (TransportError, TransitionRefused) as error:
                if not isinstance(error, SamMissing | NoPlatform):
                    error = PlatformUnreachable(str(error))
                self._platform_error = problem_of(error)
                raise error from None
            self._platform_error = None
            return answer

    def _platform_part(self, call: Callable[[PlatformClient], dict[str, Any]]) -> dict[str, Any] | None:
        """``{"ok": true, "answer": …}`` or ``{"ok": false, "error": {code, message, field}}``;
        None when no platform is configured."""
        if self._client is None:
            return None
        try:
            return {"ok": True, "answer": self._platform(call)}
        except HealthCardError as error:
            return {"ok": False, "error": problem_of(error)}

    # --- use cases ---------------------------------------------------------------------------------
    def swipe(self, reader: str | None = None, stage: str = "consultation") -> dict[str, Any]:
        """Authenticate the card with the SAM and read the summary (offline), then report the
        swipe to the platform when there is one.  The card part answers even when the platform
        does not."""
        with self._session(reader) as (slot, terminal):
            summary = terminal.swipe()
            photo = terminal.read_photo()
            card = card_view(summary, terminal.serial, photo)
        logger.info("swipe at %r", slot.name)
        number, serial = card["card_number"], terminal.serial
        platform = self._platform_part(lambda c: c.swipe(number, serial, stage=stage))
        return {"reader": slot.name, "card": card, "platform": platform}

    def check_in(self, reader: str | None = None, booking_id: int | None = None) -> dict[str, Any]:
        """The card holder's booking of today checked in here (报到), through the platform."""
        if self._client is None:
            raise NoPlatform("check-in needs the platform: start the agent with --platform")
        with self._session(reader) as (slot, terminal):
            number = terminal.read_issuer().card_number
            holder = terminal.read_holder()
            serial = terminal.serial
        logger.info("check-in at %r", slot.name)
        answer = self._platform(lambda c: c.check_in(number, serial, booking_id=booking_id))
        return {
            "reader": slot.name,
            "card": {"card_number": number, "chip_serial": serial.hex().upper(), "name": holder.name},
            "platform": answer,
        }

    def write(
        self,
        kind: str,
        values: Mapping[str, Value],
        reader: str | None = None,
        card_number: str | None = None,
    ) -> dict[str, Any]:
        """Write the visit record the platform's ``card-record`` gave the browser (``kind``
        ``outpatient`` → DF03/ED, ``inpatient`` → DF03/EE), signed by the SAM; read it back and
        verify its signature.  ``card_number`` given: refused unless that card is in the reader."""
        if kind not in ("outpatient", "inpatient"):
            raise InvalidValue("kind", "outpatient or inpatient")
        ef = "ED" if kind == "outpatient" else "EE"
        with self._session(reader) as (slot, terminal):
            on_card = terminal.read_issuer().card_number
            if card_number is not None and on_card != card_number:
                raise WrongCard(
                    f"the card in reader {slot.name!r} is {on_card}, not {card_number}: nothing was written"
                )
            if kind == "outpatient":
                number = terminal.write_outpatient_record(values)
                record = _visit(terminal.read_outpatient(number))
            else:
                number = terminal.write_inpatient_record(values)
                record = _visit(terminal.read_inpatient(number))
            verification = self._verify(terminal, ef, number)
        logger.info("%s record written at %r, slot %s", kind, slot.name, number)
        return {
            "reader": slot.name,
            "card_number": on_card,
            "kind": kind,
            "slot": number,
            "record": record,
            "verification": verification,
        }

    def write_visit(
        self,
        resident_id: str,
        encounter_id: int,
        reader: str | None = None,
        card_number: str | None = None,
    ) -> dict[str, Any]:
        """The end of the visit in one call, as the console's "写卡" button wants it: the agent
        (the terminal the card was swiped at) fetches the visit's card record from the platform
        itself — the page never handles it — writes it to the card in the reader (ED for an
        outpatient or emergency visit, EE for an inpatient stay), then closes the encounter at
        the platform with the slot.  The answer is :meth:`write`'s plus ``encounter`` (the
        platform's closed visit).  Written but not closed (the platform went away between the
        two): ``closed`` is False and the page may ask again — a second write takes another slot,
        so the agent asks the platform first and writes nothing for a visit already closed
        (:class:`VisitClosed`)."""
        if self._client is None:
            raise NoPlatform("writing a visit needs the platform: start the agent with --platform")
        visit = self._platform(lambda c: c.encounter(resident_id, encounter_id))
        if visit.get("status") != "open":
            where = f" (slot {visit['card_slot']})" if visit.get("card_slot") else ""
            raise VisitClosed(f"visit {encounter_id} is closed{where}: nothing was written")
        values = self._platform(lambda c: c.card_record(resident_id, encounter_id))
        kind = "inpatient" if "RYRQ" in values else "outpatient"
        written = self.write(kind, values, reader, card_number)
        slot = written["slot"]
        try:
            closed = self._platform(lambda c: c.close_encounter(resident_id, encounter_id, slot))
        except HealthCardError as error:
            return {**written, "closed": False, "error": problem_of(error)}
        return {**written, "closed": True, "encounter": closed}

    def _verify(self, terminal: HealthCardTerminal, ef: str, slot: int) -> dict[str, Any]:
        if terminal.trust is None:
            return {"verified": False, "reason": "unknown-root", "message": "the agent has no trust store"}
        try:
            certificate = terminal.verify_visit(ef, slot, local_date(self.clock))
        except CertificateError as error:
            return {"verified": False, "reason": error.reason, "message": str(error)}
        return {
            "verified": True,
            "signer": certificate.title,
            "valid_until": certificate.valid_until.isoformat(),
        }

    def verify_pin(self, pin: str, reader: str | None = None) -> dict[str, Any]:
        """VERIFY the cardholder PIN (``00 20 00 01 03`` + 6 digits in BCD, DECISIONS.md §7): a
        kiosk's check that the person at it holds the card.  Three wrong PINs block it; the SAM
        is not needed.  The PIN is never logged nor kept."""
        _check_pin(pin)
        slot = self.reader(reader)
        self.pins.attempt(slot.name)
        try:
            with held(slot.lock, self.busy_wait, f"reader {slot.name!r}"):
                transport = slot.transport()
                chip = _chip_of(transport.connect())
                try:
                    _verify(transport, slot.name, pin, lambda header, sw: self._refused(chip, header, sw))
                finally:
                    transport.disconnect()
        finally:
            self.report_refusals()
        return {"reader": slot.name, "verified": True}

    def login(self, pin: str, reader: str | None = None) -> dict[str, Any]:
        """A resident's session at a self-service kiosk: in one card session the card is
        authenticated with the SAM (its holder file needs the SAM's read key) and its holder's
        PIN verified by the card; then the platform, asked by this kiosk's terminal (logged in
        with its SAM), opens the resident's session (``POST /v1/auth/card``).  The answer is the
        resident's access token for the kiosk page — the PIN went from the browser to the card
        and no further."""
        _check_pin(pin)
        self.pins.attempt(self.reader(reader).name)
        if self._client is None:
            raise NoPlatform("a kiosk login needs the platform: start the agent with --platform")
        with self._session(reader) as (slot, terminal):
            number = terminal.read_issuer().card_number
            name = terminal.read_holder().name
            serial = terminal.serial
            _verify(
                terminal.card, slot.name, pin, lambda header, sw: self._refused(serial, header, sw, number)
            )
        answer = self._platform(lambda c: c.card_login(number, serial))
        logger.info("kiosk login at %r", slot.name)
        return {
            "reader": slot.name,
            "access_token": answer.get("access_token"),
            "expires_in": answer.get("expires_in"),
            "card_number": number,
            "name": name,
        }

    # --- self-service issuance (a kiosk) -----------------------------------------------------------
    def dispense(self, chip_serial: str, reader: str | None = None) -> dict[str, Any]:
        """The card of ``chip_serial`` from the dispenser's tray into the simulated slot
        ``reader`` (or the only one; an agent without slots gets ``sim-dispenser``), inserted —
        the card that was in the slot is gone.  Only ``<tray>/<16 hex digits>.card`` is opened."""
        if self.tray is None:
            raise NoTray("this agent has no card dispenser: start it with --tray")
        state, save = self.tray.take(chip_serial)
        if reader is None and not self._simulated:
            slot = self._simulated["sim-dispenser"] = SimulatedSlot("sim-dispenser", state, save=save)
        else:
            slot = self.simulated(reader)
            with held(slot.lock, self.busy_wait, f"reader {slot.name!r}"):
                slot.load(state, save)
        logger.info("card dispensed into %r", slot.name)
        return {**slot.describe(), "chip_serial": str(chip_serial).strip().upper()}

    def issue(
        self, id_number: str, name: str, pin: str, pin_again: str, reader: str | None = None
    ) -> dict[str, Any]:
        """Self-service issuance (自助发卡) of the approved application of the person whose ID card
        the kiosk read: the PIN chosen twice is checked here (6 digits, the same twice), then the
        platform — asked by this kiosk's terminal, logged in with its SAM — has the card centre
        personalise a card with that PIN and hand it over; the card it made is then dispensed into
        the slot (when the agent has a tray).  The PIN goes to the platform in that one request
        and is not logged, kept or answered.  Issued but not dispensed: ``dispensed`` is null and
        ``error`` says why (the card is the resident's: the service desk hands it out)."""
        _check_pin(pin)
        if pin_again != pin:
            raise InvalidValue("pin_again", "the two PINs differ")
        if self._client is None:
            raise NoPlatform("issuing a card needs the platform: start the agent with --platform")
        card = self._platform(lambda c: c.self_service_issue(id_number, name, pin))
        logger.info("self-service issuance: card issued")
        answer: dict[str, Any] = {
            "card": {
                k: card.get(k) for k in ("card_number", "chip_serial", "status", "issue_date", "expiry_date")
            },
            "dispensed": None,
        }
        if self.tray is not None:
            try:
                answer["dispensed"] = self.dispense(str(card.get("chip_serial", "")), reader)
            except HealthCardError as error:
                answer["error"] = problem_of(error)
        return answer


#: PIN submissions per reader (``/pin``, ``/login``) before the agent refuses more for a while:
#: (attempts, seconds).  The card blocks its PIN after three wrong ones by itself; this stops a
#: script on the workstation from hammering the reader (and the platform's card login) at all.
PIN_LIMIT = (10, 60)


class PinThrottle:
    """At most ``limit`` PIN submissions per reader in a fixed window of ``window`` seconds, on
    the agent's clock.  In memory: one agent process serves one workstation's readers."""

    def __init__(self, clock: Clock, limit: int = PIN_LIMIT[0], window: int = PIN_LIMIT[1]) -> None:
        if limit < 1 or window < 1:
            raise InvalidValue("pin_limit", "at least 1 attempt per 1 second")
        self.clock = clock
        self.limit = limit
        self.window = window
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int]] = {}  # reader → (window start, attempts)

    def attempt(self, reader: str) -> None:
        """Count one PIN submission at ``reader``; :class:`TooManyAttempts` beyond the limit."""
        now = self.clock.now().timestamp()
        with self._lock:
            start, count = self._windows.get(reader, (now, 0))
            if now - start >= self.window:
                start, count = now, 0
            if count >= self.limit:
                raise TooManyAttempts("PIN attempts at this reader", int(start + self.window - now + 0.999))
            self._windows[reader] = (start, count + 1)


def _chip_of(atr: bytes) -> bytes:
    """The chip serial in ``atr``; empty for a card whose ATR carries none (not a health card)."""
    try:
        return atr_chip_serial(atr)
    except ValueError:
        return b""


def _check_pin(pin: object) -> None:
    if not isinstance(pin, str) or len(pin) != 6 or not pin.isascii() or not pin.isdigit():
        raise InvalidValue("pin", "the PIN is 6 digits")


def _verify(
    transport: Transport, reader: str, pin: str, refused: Callable[[bytes, int], None] | None = None
) -> None:
    """VERIFY ``pin`` on the card behind ``transport``; the PIN errors of docs/agent.md.
    ``refused`` is told of a wrong PIN or a blocked one (the command's header and the SW)."""
    header = bytes((0x00, 0x20, 0x00, PIN_REFERENCE))
    response = transport.transmit(CommandAPDU(0x00, 0x20, 0x00, PIN_REFERENCE, bytes.fromhex(pin)))
    sw = response.sw
    logger.info("PIN verification at %r: %04X", reader, sw)
    if sw == 0x9000:
        return
    if refused is not None and (sw == 0x6983 or sw >> 4 == 0x63C):
        refused(header, sw)
    if sw == 0x6983 or sw == 0x63C0:
        raise PinBlocked("the PIN is blocked after three wrong tries: the card centre unblocks it")
    if sw >> 4 == 0x63C:
        raise PinWrong(sw & 0x0F)
    if sw == 0x6A88:
        raise NoPin("this card has no cardholder PIN")
    raise exception_for(sw)


__all__ = [
    "Agent",
    "NoPin",
    "NoPlatform",
    "NoTray",
    "NotSimulated",
    "PinBlocked",
    "PinThrottle",
    "PinWrong",
    "PlatformUnreachable",
    "WrongCard",
    "card_view",
]
