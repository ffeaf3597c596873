"""The card centre (卡管中心): applications, personalisation, issue, loss, replacement, hot list.

Every operation is one service call that checks the operator's role (:mod:`.lifecycle`), works
in units of work, and writes nothing when it refuses.  Personalisation is split so that the
database can never say "issued" for a chip that is not::

    tx 1   application APPROVED → card row PERSONALISING (issue serial taken, chip serial known)
    chip   SELECT … WRITE KEY … CREATE FILE … UPDATE … END PERSONALISATION   (no transaction open)
    tray   the card is delivered (image saved / card taken from the reader)
    tx 2   card ISSUED, application ISSUED

A crash between the two transactions leaves a PERSONALISING row; :meth:`CardCentre.resume`
asks the chip source whether that chip finished and completes or voids it, so a re-run issues
every application exactly once.  A failure on the chip voids the row (SPOILED) and leaves the
application APPROVED, ready to be run again.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import socket
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError

from healthcard.card.personalise import CardContents
from healthcard.card.profile import PROFILE_32K, Profile
from healthcard.clock import SHANGHAI, Clock, local_date
from healthcard.errors import (
    CardError,
    Duplicate,
    HealthCardError,
    InvalidValue,
    NotFound,
    PermissionDenied,
    TransitionRefused,
)
from healthcard.issuance.application import Application, card_contents, parse_application
from healthcard.issuance.cards import personalise
from healthcard.issuance.chips import Chip, ChipSource, PendingChip, PersonalisationJob, PooledChips
from healthcard.issuance.keycentre import KeyCentre, issuer_code
from healthcard.issuance.lifecycle import (
    Action,
    ApplicationKind,
    ApplicationStatus,
    CardStatus,
    Role,
    require_role,
    step,
)
from healthcard.keys.keyset import CardKeySet, KeySet
from healthcard.keys.primitives import Algorithm
from healthcard.storage import tables as t
from healthcard.storage.db import Database
from healthcard.storage.uow import UnitOfWork
from healthcard.terminal import hotlist as hot

#: a personalisation not finished after this long is taken for abandoned, wherever it ran
LEASE = dt.timedelta(minutes=15)
#: validity of a new card: DDF1/EF08 expiry = issue date + 10 years - 1 day
VALIDITY_YEARS = 10
#: a hook told of chips whose status changed (cards, the time), in the transaction of the change
CardChange = Callable[[UnitOfWork, Sequence[t.Card], dt.datetime], None]
#: the hot-list reason of each status that lists a chip
LISTED_AS = {
    CardStatus.LOST: hot.HotListReason.LOST,
    CardStatus.REPLACED: hot.HotListReason.REPLACED,
    CardStatus.CANCELLED: hot.HotListReason.CANCELLED,
    CardStatus.SPOILED: hot.HotListReason.CANCELLED,
}


@dataclass(frozen=True)
class CardView:
    """A card as the card centre shows it."""

    card_number: str
    status: CardStatus
    chip_serial: str
    issue_serial: str
    issuer_code: str
    province: str
    city_code: str
    key_version: int
    issue_date: dt.date
    expiry_date: dt.date
    status_at: dt.datetime
    resident_id: str
    application_number: str

    @classmethod
    def of(cls, row: t.Card) -> CardView:
        return cls(
            row.card_number,
            CardStatus(row.status),
            row.chip_serial,
            row.issue_serial,
            row.issuer_code,
            row.province,
            row.city_code,
            row.key_version,
            row.issue_date,
            row.expiry_date,
            row.status_at,
            row.resident_id,
            row.application_number,
        )

    def expired(self, today: dt.date) -> bool:
        return self.expiry_date < today


@dataclass(frozen=True)
class ApplicationView:
    number: str
    kind: ApplicationKind
    status: ApplicationStatus
    card_number: str
    name: str
    province: str
    submitted_at: dt.datetime
    resident_id: str
    note: str | None

    @classmethod
    def of(cls, row: t.Application) -> ApplicationView:
        return cls(
            row.number,
            ApplicationKind(row.kind),
            ApplicationStatus(row.status),
            row.card_number,
            str(row.data.get("name", "")),
            row.province,
            row.submitted_at,
            row.resident_id,
            row.note,
        )


@dataclass(frozen=True)
class CardEventView:
    at: dt.datetime
    chip_serial: str
    from_status: str | None
    to_status: str
    operator: str
    reason: str | None


@dataclass(frozen=True)
class CardHistory:
    """Everything the card centre knows of one card number: its chips and their history."""

    card_number: str
    name: str
    cards: list[CardView]
    events: list[CardEventView]

    @property
    def current(self) -> CardView | None:
        live = [c for c in self.cards if c.status.live]
        return live[-1] if live else (self.cards[-1] if self.cards else None)


@dataclass
class IssueOutcome:
    """What one personalisation run did: cards issued, and applications whose chip failed."""

    issued: list[CardView] = field(default_factory=list)
    failed: dict[str, HealthCardError] = field(default_factory=dict)  # application number → error


@dataclass(frozen=True)
class HotListChange:
    """One chip put on, or taken off, a province's hot list."""

    version: int  # the list's version this change made
    at: dt.datetime
    chip_serial: str
    card_number: str
    reason: hot.HotListReason
    removed: bool  # taken off (a recovered card), else listed


@dataclass(frozen=True)
class HotListStatus:
    """A province's hot list as the card centre's page shows it: no signature, no key needed."""

    province: str
    version: int
    changed_at: dt.datetime | None
    listed: int  # chips on the list now
    latest: list[HotListChange]  # newest first


@dataclass(frozen=True)
class Acting:
    """A platform account acting in the card centre — a card administrator on the staff pages.

    The platform authenticated the account (login, access token) and says who it is; the card
    centre authorises it as one of its own operators: the account must be registered as an
    operator under its username (``healthcard org add-operator``), active, of the account's own
    institution — and then the operator's checks apply as they do to the CLI's ``--operator``
    (the role may take the step, :data:`~healthcard.issuance.lifecycle.ALLOWED`; the operator's
    card centre is of the card's or the application's province).  Deactivating the operator
    stops the account's card-centre work at once, whatever its token says."""

    id: str  # the account's username = the operator's id
    role: str  # the platform role's value (``card-admin``)
    institution_code: str | None


#: who acts: an operator id of the card system, or a platform account
OperatorRef = str | Acting


def _name(operator: OperatorRef) -> str:
    return operator.id if isinstance(operator, Acting) else operator


@dataclass(frozen=True)
class _Operator:
    id: str
    role: Role
    province: str


@dataclass
class _Job:
    card_id: int
    application_number: str
    card_number: str
    chip: Chip
    issuing: KeySet
    keys: CardKeySet
    contents: CardContents


#: (unit of work, resident id, the card's original application) → the replacement's contents
CardData = Callable[[UnitOfWork, str, Application], Application]


class CardCentre:
    """The card management service.  ``keys`` gives the key centre (opened only when a card is
    personalised or a hot list signed: most operations need no key store)."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        keys: Callable[[], KeyCentre],
        *,
        profile: Profile = PROFILE_32K,
        validity_years: int = VALIDITY_YEARS,
        new_id: Callable[[], str] = lambda: secrets.token_hex(16),
        lease: dt.timedelta = LEASE,
        card_data: CardData | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self._keys = keys
        self._centre: KeyCentre | None = None
        self.profile = profile
        self.validity_years = validity_years
        self.new_id = new_id
        self.lease = lease
        #: what a replacement chip carries, from the platform's records (wired by bootstrap)
        self.card_data = card_data
        #: told of every status change of chips, in its transaction, after their history rows
        #: are written: a city node announces them to its province (wired by bootstrap;
        #: healthcard.federation.nodes.CityAnnouncer.cards).  None: nobody is told
        self.on_card_change: CardChange | None = None
        #: who personalises: a crashed run is told from one in flight by this (host, process)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    @property
    def keys(self) -> KeyCentre:
        if self._centre is None:
            self._centre = self._keys()
        return self._centre

    # --- who is acting ----------------------------------------------------------------------
    def _operator(self, uow: UnitOfWork, operator_id: OperatorRef, action: Action) -> _Operator:
        if isinstance(operator_id, Acting):
            return self._account(uow, operator_id, action)
        row = uow.reference.operator(operator_id)
        if row is None or not row.active:
            raise PermissionDenied(f"no active operator {operator_id!r}")
        role = require_role(action, row.role, operator_id)
        institution = uow.reference.institution(row.institution_code)
        assert institution is not None  # a foreign key
        return _Operator(row.id, role, institution.area_code[:2])

    def _account(self, uow: UnitOfWork, acting: Acting, action: Action) -> _Operator:
        """A platform account checked as the card centre checks its operators (see :class:`Acting`):
        it must be registered as an operator under its username, active, of the same institution."""
        if acting.role == Role.RESIDENT:  # a holder acts through report_lost_by_holder, on their own card
            raise PermissionDenied(f"{acting.id}: a resident reports their own card lost, nothing else")
        row = uow.reference.operator(acting.id)
        if row is None or not row.active:
            raise PermissionDenied(
                f"account {acting.id} is no active operator of the card centre "
                f"(register it: healthcard org add-operator {acting.id} --role card-admin …)"
            )
        if row.institution_code != acting.institution_code:
            raise PermissionDenied(
                f"account {acting.id} belongs to {acting.institution_code or 'no institution'}, "
                f"operator {acting.id} to {row.institution_code}: not the same card centre"
            )
        return self._operator(uow, row.id, action)

    @staticmethod
    def _same_province(op: _Operator, province: str, what: str) -> None:
        if op.role not in (Role.SYSTEM, Role.RESIDENT) and op.province != province:
            raise PermissionDenied(
                f"operator {op.id} works for province {op.province}; {what} is province {province}"
            )

    # --- applications -----------------------------------------------------------------------
    def submit(
        self,
        operator_id: OperatorRef,
        application: Application | Mapping[str, object],
        *,
        collection_point: str | None = None,
    ) -> ApplicationView:
        """Take an application (申领): checked field by field, one per person nationally."""
        now = self.clock.now()
        app = (
            application
            if isinstance(application, Application)
            else parse_application(application, today=local_date(self.clock))
        )
        with self.db.uow() as uow, _races(app.card_number):
            op = self._operator(uow, operator_id, Action.SUBMIT)
            taken, refused = self._submit(uow, op, [(0, app)], now, collection_point)
            if refused:
                raise refused[0][2]
            uow.commit()
            return ApplicationView.of(taken[0][1])

    def _submit(
        self,
        uow: UnitOfWork,
        op: _Operator,
        items: Sequence[tuple[int, Application]],
        now: dt.datetime,
        collection_point: str | None,
        *,
        kind: ApplicationKind = ApplicationKind.NEW,
        replaces: t.Card | None = None,
        batch: str | None = None,
        approve: bool = False,
    ) -> tuple[list[tuple[int, t.Application]], list[tuple[int, Application, InvalidValue]]]:
        """Take applications (one at a desk, a chunk of a batch): a few queries for all of them,
        one INSERT each for residents and applications.  A refused one is returned with its
        reason and writes nothing; the others go on."""
        if collection_point is not None and uow.reference.collection_point(collection_point) is None:
            raise InvalidValue("collection_point", f"no collection point {collection_point!r}")
        numbers = [app.card_number for _, app in items]
        live = uow.cards.live_many(numbers) if kind is ApplicationKind.NEW else {}
        pending = uow.applications.open_many(numbers)
        residents = uow.residents.by_identities([(app.id_type.value, app.id_number) for _, app in items])
        accepted: list[tuple[int, Application]] = []
        refused: list[tuple[int, Application, InvalidValue]] = []
        seen: dict[str, int] = {}
        for row, app in items:
            try:
                self._check_submission(op, app, live.get(app.card_number), pending.get(app.card_number))
                if app.card_number in seen:
                    raise Duplicate(
                        "id_number", f"{app.card_number} is in this batch twice (row {seen[app.card_number]})"
                    )
            except InvalidValue as exc:
                refused.append((row, app, exc))
                continue
            seen[app.card_number] = row
            accepted.append((row, app))
        if not accepted:
            return [], refused
        first = uow.counters.take("application", len(accepted))
        status = ApplicationStatus.APPROVED if approve else ApplicationStatus.SUBMITTED
        taken: list[tuple[int, t.Application]] = []
        for offset, (row, app) in enumerate(accepted):
            key = (app.id_type.value, app.id_number)
            resident = residents.get(key)
            if resident is None:
                resident = residents[key] = t.Resident(
                    resident_id=self.new_id(),
                    id_type=app.id_type.value,
                    id_number=app.id_number,
                    name=app.name,
                    sex=app.sex,
                    birth_date=app.birth_date,
                    created_at=now,
                    area_code=app.city_code,
                )
                uow.residents.add(resident)
            province = app.city_code[:2]
            taken.append(
                (
                    row,
                    t.Application(
                        number=f"SQ{province}{first + offset:012d}",
                        resident_id=resident.resident_id,
                        card_number=app.card_number,
                        kind=kind.value,
                        status=status.value,
                        province=province,
                        collection_point_code=collection_point,
                        submitted_by=op.id,
                        submitted_at=now,
                        decided_by=op.id if approve else None,
                        decided_at=now if approve else None,
                        replaces_card_id=replaces.id if replaces is not None else None,
                        batch_id=batch,
                        batch_row=row if batch else None,
                        data=app.to_json(),
                    ),
                )
            )
        uow.flush()  # new residents first: the applications refer to them (no ORM relationship orders it)
        uow.applications.add_all([application for _, application in taken])
        return taken, refused

    @staticmethod
    def _check_submission(
        op: _Operator, app: Application, live: t.Card | None, pending: t.Application | None
    ) -> None:
        province = app.city_code[:2]
        if op.role is not Role.SYSTEM and op.province != province:
            raise InvalidValue(
                "city_code",
                f"{app.city_code} is in province {province}; {op.id} takes applications of {op.province}",
            )
        if live is not None:
            status = CardStatus(live.status)
            raise Duplicate(
                "id_number",
                f"{app.card_number} already holds card {live.issue_serial} ({status.value} {status.label}, "
                f"chip {live.chip_serial}, issued {live.issue_date:%Y-%m-%d} by {live.issuer_code}): "
                "one card per person; report it lost and ask for a replacement instead",
            )
        if pending is not None:
            raise Duplicate(
                "id_number", f"application {pending.number} for {app.card_number} is already {pending.status}"
            )

    def approve(self, operator_id: OperatorRef, number: str) -> ApplicationView:
        return self._decide(operator_id, number, Action.APPROVE, None)

    def reject(self, operator_id: OperatorRef, number: str, reason: str) -> ApplicationView:
        if not reason.strip():
            raise InvalidValue("reason", "say why the application is rejected")
        return self._decide(operator_id, number, Action.REJECT, reason)

    def _decide(
        self, operator_id: OperatorRef, number: str, action: Action, reason: str | None
    ) -> ApplicationView:
        with self.db.uow() as uow:
            op = self._operator(uow, operator_id, action)
            row = self._application(uow, number, lock=True)
            self._same_province(op, row.province, f"application {number}")
            if row.status != ApplicationStatus.SUBMITTED:
                raise TransitionRefused(
                    f"application {number} is {row.status}: only SUBMITTED ones are decided"
                )
            row.status = (
                ApplicationStatus.APPROVED if action is Action.APPROVE else ApplicationStatus.REJECTED
            ).value
            row.decided_by, row.decided_at, row.note = op.id, self.clock.now(), reason
            uow.commit()
            return ApplicationView.of(row)

    @staticmethod
    def _application(uow: UnitOfWork, number: str, lock: bool = False) -> t.Application:
        row = uow.applications.get(number, lock=lock)
        if row is None:
            raise NotFound("application", number)
        return row

    def application(self, number: str) -> ApplicationView:
        with self.db.uow() as uow:
            return ApplicationView.of(self._application(uow, number))

    def applications(
        self, status: ApplicationStatus | None = None, limit: int = 100, *, offset: int = 0
    ) -> list[ApplicationView]:
        """The newest applications (of ``status``), a page of ``limit`` from ``offset``."""
        if not 1 <= limit <= 1000:
            raise InvalidValue("limit", f"{limit}: 1 to 1000")
        if offset < 0:
            raise InvalidValue("offset", f"{offset}: 0 or more")
        with self.db.uow() as uow:
            return [ApplicationView.of(r) for r in uow.applications.listing(status, limit, offset)]

    # --- batches ------------------------------------------------------------------------------
    def open_batch(self, operator_id: OperatorRef, batch_id: str, source: str, rows: int) -> None:
        """Register a batch file (once: a re-run finds it)."""
        with self.db.uow() as uow:
            op = self._operator(uow, operator_id, Action.ISSUE)
            if uow.reference.batch(batch_id) is None:
                uow.reference.add_batch(
                    t.Batch(
                        id=batch_id,
                        source=source[:255],
                        rows=rows,
                        operator_id=op.id,
                        created_at=self.clock.now(),
                    )
                )
                uow.commit()

    def batch_rows(self, batch_id: str, first: int, last: int) -> dict[int, tuple[str, str]]:
        """Row number → (application number, status) of the rows of a batch already taken."""
        with self.db.uow() as uow:
            return {
                row.batch_row: (row.number, row.status)
                for row in uow.applications.by_batch(batch_id, first, last)
                if row.batch_row is not None
            }

    def submit_batch(
        self, operator_id: OperatorRef, batch_id: str, items: Sequence[tuple[int, Application]]
    ) -> tuple[list[str], list[tuple[int, Application, InvalidValue]]]:
        """Take a chunk of a batch's rows as approved applications in one transaction; a row
        refused (a person holding a card already) is returned, the others go on."""
        now = self.clock.now()
        if not items:
            return [], []
        with self.db.uow() as uow, _races(items[0][1].card_number):
            op = self._operator(uow, operator_id, Action.SUBMIT)
            self._operator(uow, operator_id, Action.APPROVE)
            rows, refused = self._submit(uow, op, items, now, None, batch=batch_id, approve=True)
            uow.commit()
        return [row.number for _, row in rows], refused

    # --- personalisation ----------------------------------------------------------------------
    def issue(
        self, operator_id: OperatorRef, number: str, chips: ChipSource, *, pin: str | None = None
    ) -> CardView:
        """Personalise a card for approved application ``number`` on a chip from ``chips``.
        ``pin``: the cardholder PIN the resident chose (6 digits, DECISIONS.md §7), written into
        the chip's key file and nowhere else — never stored, logged or put in an error."""
        pins = {number: pin} if pin is not None else None
        outcome = self.issue_many(operator_id, [number], chips, pins=pins)
        if outcome.failed:
            raise outcome.failed[number]
        return outcome.issued[0]

    def issue_many(
        self,
        operator_id: OperatorRef,
        numbers: Sequence[str],
        chips: ChipSource,
        *,
        pins: Mapping[str, str] | None = None,
    ) -> IssueOutcome:
        """Personalise cards for approved applications: one reserving transaction, the chips,
        one finishing transaction (a batch's chunk).  ``pins``: application number → the
        cardholder PIN of its card (the others get none)."""
        for pin in (pins or {}).values():
            check_pin(pin)  # before anything is written
        outcome = IssueOutcome()
        jobs = self._reserve(operator_id, numbers, chips, pins or {})
        done: list[_Job] = []
        for job, error in zip(jobs, self._personalise(jobs, chips), strict=True):
            if error is not None:
                outcome.failed[job.application_number] = error
                self._void(job.card_id, _name(operator_id), f"personalisation failed: {error}", listed=False)
            else:
                done.append(job)
        chips.sync()
        self._finish(done, _name(operator_id), outcome)
        return outcome

    def _personalise(self, jobs: Sequence[_Job], chips: ChipSource) -> list[HealthCardError | None]:
        """Every chip's personalisation (in this process, or in a pool of workers); per job the
        error that stopped it, or None."""
        if isinstance(chips, PooledChips):
            verdicts = chips.personalise_all(
                [
                    PersonalisationJob(
                        job.chip.serial,
                        job.chip.transport_key,
                        job.chip.algorithm,
                        job.keys,
                        job.contents,
                        self.profile,
                    )
                    for job in jobs
                    if isinstance(job.chip, PendingChip)
                ]
            )
            return [None if text is None else CardError(0x6F00, text) for text in verdicts]
        errors: list[HealthCardError | None] = []
        for job in jobs:
            try:
                personalise(
                    job.chip.transmit,
                    job.issuing,
                    job.chip.serial,
                    job.contents,
                    self.keys,
                    self.profile,
                    job.keys,
                )
                chips.deliver(job.chip, job.card_number)
            except HealthCardError as exc:
                errors.append(exc)
                continue
            errors.append(None)
        return errors

    def issue_at_kiosk(
        self,
        operator_id: OperatorRef,
        *,
        id_number: str,
        name: str,
        chips: ChipSource,
        pin: str | None = None,
    ) -> CardView:
        """Self-service issuance at a hospital kiosk (医疗机构自助发卡): the resident's ID card is
        read by the kiosk (number and name), the approved application of that person is found,
        the card is personalised in the kiosk's reader and handed over (ACTIVE) at once.
        ``pin``: the cardholder PIN the resident chose at the kiosk (as :meth:`issue`)."""
        if pin is not None:
            check_pin(pin)
        with self.db.uow() as uow:
            op = self._operator(uow, operator_id, Action.ISSUE)
            pending = uow.applications.open_for(id_number.strip().upper())
            if pending is None or pending.status != ApplicationStatus.APPROVED:
                what = (
                    "no application"
                    if pending is None
                    else f"application {pending.number} is {pending.status}"
                )
                raise NotFound(
                    "approved application for", f"{id_number} ({what}): apply at a collection point first"
                )
            if str(pending.data.get("name", "")).strip() != name.strip():
                raise InvalidValue("name", "the name on the ID card does not match the application")
            self._same_province(op, pending.province, f"application {pending.number}")
            number = pending.number
        card = self.issue(operator_id, number, chips, pin=pin)
        return self.activate(operator_id, card.card_number)

    def _reserve(
        self, operator_id: OperatorRef, numbers: Sequence[str], chips: ChipSource, pins: Mapping[str, str]
    ) -> list[_Job]:
        """One transaction for a chunk: the applications locked and checked, issue serials taken
        as one block per issuer, a blank chip for each, the card rows PERSONALISING."""
        now = self.clock.now()
        today = local_date(self.clock)
        expiry = _years_after(today, self.validity_years) - dt.timedelta(days=1)
        with self.db.uow() as uow, _races(", ".join(numbers)):
            op = self._operator(uow, operator_id, Action.ISSUE)
            found = uow.applications.get_many(numbers, lock=True)
            rows = []
            for number in numbers:
                if number not in found:
                    raise NotFound("application", number)
                row = found[number]
                self._same_province(op, row.province, f"application {row.number}")
                if row.status != ApplicationStatus.APPROVED:
                    raise TransitionRefused(
                        f"application {row.number} is {row.status}: only APPROVED applications are personalised"
                    )
                rows.append(row)
            live = uow.cards.live_many([r.card_number for r in rows if r.kind == ApplicationKind.NEW])
            issuers: dict[str, tuple[str, str, KeySet]] = {}
            serials: dict[str, int] = {}
            certificates: dict[str, bytes] = {}
            for province in sorted({r.province for r in rows}):
                code = issuer_code(province)
                institution = uow.reference.institution(code)
                name = institution.name if institution else f"{province} 卡管中心"
                issuers[province] = (code, name, self.keys.province(province))
                certificates[province] = self.keys.issuer_certificate(province)
                count = sum(1 for r in rows if r.province == province)
                serials[province] = uow.counters.take(f"issue-serial:{code}", count)
            derived: dict[bytes, CardKeySet] = {}  # the card keys the transport key came from
            cards: list[t.Card] = []
            pending: list[tuple[t.Application, Chip, KeySet, CardContents]] = []
            for row in rows:
                code, name, issuing = issuers[row.province]
                if row.kind == ApplicationKind.REPLACEMENT:
                    self._retire_replaced(uow, row, op, now)
                elif (held := live.get(row.card_number)) is not None:
                    raise Duplicate(
                        "id_number",
                        f"{row.card_number} already holds chip {held.chip_serial} ({held.status})",
                    )
                serial = f"{serials[row.province]:010d}"
                serials[row.province] += 1
                app = Application.from_json(row.data)
                contents = card_contents(
                    app,
                    issue_serial=serial,
                    issuer_name=name,
                    issuer_code=code,
                    issue_date=today,
                    expiry=expiry,
                )
                contents.items["DDF1/EF05"]["issuer_certificate"] = certificates[row.province]
                contents.pin = pins.get(row.number)

                def transport_key(chip: bytes, issuing: KeySet = issuing) -> tuple[bytes, Algorithm]:
                    keys = derived[chip] = self.keys.card_keys(issuing, chip)
                    return keys["TKMF"], issuing.algorithm

                chip = chips.blank(transport_key)  # a reader's chip needs no key from us to start
                cards.append(
                    t.Card(
                        resident_id=row.resident_id,
                        card_number=row.card_number,
                        chip_serial=chip.serial.hex().upper(),
                        issue_serial=serial,
                        issuer_code=code,
                        province=row.province,
                        city_code=app.city_code,
                        key_version=issuing.id.version,
                        algorithm=issuing.algorithm.name,
                        profile=self.profile.id,
                        status=CardStatus.PERSONALISING.value,
                        application_number=row.number,
                        replaces_card_id=row.replaces_card_id,
                        issued_by=op.id,
                        issue_date=today,
                        expiry_date=expiry,
                        created_at=now,
                        status_at=now,
                        claimed_by=self.worker,
                    )
                )
                pending.append((row, chip, issuing, contents))
            uow.cards.add_all(cards)
            uow.flush()  # the card ids, in one INSERT … RETURNING
            uow.cards.add_events(
                [
                    _event_row(
                        c, None, CardStatus.PERSONALISING, op.id, f"application {c.application_number}", now
                    )
                    for c in cards
                ]
            )
            jobs = [
                _Job(
                    card.id,
                    row.number,
                    row.card_number,
                    chip,
                    issuing,
                    derived.get(chip.serial) or self.keys.card_keys(issuing, chip.serial),
                    contents,
                )
                for card, (row, chip, issuing, contents) in zip(cards, pending, strict=True)
            ]
            uow.commit()
        return jobs

    def _retire_replaced(self, uow: UnitOfWork, row: t.Application, op: _Operator, now: dt.datetime) -> None:
        """The card a replacement replaces turns REPLACED (hot-listed) before the new chip is
        made: one live card per number, and the lost chip refused from this moment on."""
        if row.replaces_card_id is None:
            return
        old = uow.cards.get(row.replaces_card_id, lock=True)
        assert old is not None
        if CardStatus(old.status).live:
            self._move(
                uow,
                old,
                step(Action.REPLACE, old.status, old.card_number),
                op.id,
                f"replaced: {row.number}",
                now,
            )

    def _finish(self, jobs: Sequence[_Job], operator_id: str, outcome: IssueOutcome) -> None:
        if not jobs:
            return
        now = self.clock.now()
        with self.db.uow() as uow:
            cards = uow.cards.get_many([job.card_id for job in jobs], lock=True)
            issued = []
            for job in jobs:
                card = cards[job.card_id]
                if card.status != CardStatus.PERSONALISING:
                    # another process took this run for dead and voided the row: the chip works,
                    # but no record says it is the person's card — it goes on the hot list
                    self._list(uow, card, hot.HotListReason.CANCELLED, now)
                    outcome.failed[job.application_number] = TransitionRefused(
                        f"chip {card.chip_serial} was voided while it was personalised: hot-listed; issue again"
                    )
                    continue
                issued.append(card)
            self._issued(uow, issued, operator_id, now)
            uow.commit()
        outcome.issued.extend(CardView.of(card) for card in issued)

    def _issued(self, uow: UnitOfWork, cards: Sequence[t.Card], operator_id: str, now: dt.datetime) -> None:
        """PERSONALISING → ISSUED for cards whose chips answered END PERSONALISATION, and their
        applications ISSUED: a few statements for a whole chunk."""
        if not cards:
            return
        applications = uow.applications.get_many([c.application_number for c in cards], lock=True)
        events = []
        for card in cards:
            card.status, card.status_at, card.claimed_by = CardStatus.ISSUED.value, now, None
            applications[card.application_number].status = ApplicationStatus.ISSUED.value
            events.append(
                _event_row(
                    card,
                    CardStatus.PERSONALISING,
                    CardStatus.ISSUED,
                    operator_id,
                    "END PERSONALISATION answered 9000",
                    now,
                )
            )
        uow.cards.add_events(events)
        if self.on_card_change is not None:
            self.on_card_change(uow, cards, now)

    def _void(self, card_id: int, operator_id: str, reason: str, *, listed: bool) -> bool:
        now = self.clock.now()
        with self.db.uow() as uow:
            card = uow.cards.get(card_id, lock=True)
            assert card is not None
            if card.status != CardStatus.PERSONALISING:
                return False  # settled meanwhile (another resume, the run itself)
            self._move(uow, card, CardStatus.SPOILED, operator_id, reason[:200], now, list_chip=listed)
            uow.commit()
            return True

    def resume(self, operator_id: OperatorRef, chips: ChipSource) -> tuple[int, int]:
        """Settle personalisations a crash left unfinished: a chip the source shows finished is
        ISSUED; one it shows never finished is SPOILED; one it cannot tell about is SPOILED and
        hot-listed, so it is refused should it be a working card after all.  Only abandoned rows
        are touched — their process is gone (same host, no such pid) or their lease ran out;
        a personalisation in flight elsewhere is left alone.  (completed, voided)"""
        completed = voided = 0
        now = self.clock.now()
        with self.db.uow() as uow:
            self._operator(uow, operator_id, Action.ISSUE)
            pending = [
                (c.id, c.chip_serial)
                for c in uow.cards.personalising()
                if self._abandoned(c.claimed_by, c.status_at, now)
            ]
        for card_id, serial in pending:
            finished = chips.finished(bytes.fromhex(serial))
            if finished:
                with self.db.uow() as uow:
                    card = uow.cards.get(card_id, lock=True)
                    assert card is not None
                    if card.status == CardStatus.PERSONALISING:
                        self._issued(uow, [card], _name(operator_id), self.clock.now())
                        uow.commit()
                        completed += 1
            else:
                why = "never finished (crash)" if finished is False else "unknown after a crash: hot-listed"
                voided += self._void(
                    card_id, _name(operator_id), f"personalisation {why}", listed=finished is None
                )
        return completed, voided

    def _abandoned(self, claimed_by: str | None, since: dt.datetime, now: dt.datetime) -> bool:
        if claimed_by is None or now - since > self.lease:
            return True
        host, _, pid = claimed_by.rpartition(":")
        if host != socket.gethostname() or not pid.isdigit():
            return False  # another machine's run: wait for its lease
        if int(pid) == os.getpid():
            return False  # this process's own run, in flight
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    # --- life cycle -----------------------------------------------------------------------------
    def activate(self, operator_id: OperatorRef, card_number: str) -> CardView:
        """Hand the card over to the resident (领卡)."""
        return self._transition(operator_id, card_number, Action.ACTIVATE, "handed over")

    def report_lost(
        self, operator_id: OperatorRef, card_number: str, reason: str = "reported lost"
    ) -> CardView:
        return self._transition(operator_id, card_number, Action.REPORT_LOST, reason)

    def recover(self, operator_id: OperatorRef, card_number: str, reason: str = "found again") -> CardView:
        return self._transition(operator_id, card_number, Action.RECOVER, reason)

    def cancel(self, operator_id: OperatorRef, card_number: str, reason: str) -> CardView:
        if not reason.strip():
            raise InvalidValue("reason", "say why the card is cancelled (e.g. death, emigration)")
        return self._transition(operator_id, card_number, Action.CANCEL, reason)

    def _transition(
        self, operator_id: OperatorRef, card_number: str, action: Action, reason: str
    ) -> CardView:
        now = self.clock.now()
        with self.db.uow() as uow:
            op = self._operator(uow, operator_id, action)
            card = self._live_card(uow, card_number, action)
            self._same_province(op, card.province, f"card {card_number}")
            self._move(uow, card, step(action, card.status, card_number), op.id, reason, now)
            uow.commit()
            return CardView.of(card)

    def report_lost_by_holder(
        self,
        holder: str,
        card_number: str,
        *,
        owners: Collection[str],
        reason: str = "reported lost by the holder",
        witness: Callable[[UnitOfWork, CardView], None] | None = None,
    ) -> CardView:
        """挂失 by the cardholder (the portal, the API): ``holder`` — the resident's login —
        reports their own card lost.  ``owners``: the resident ids of the person (the platform's
        survivor and the records merged into it); a card of anyone else is "not found", as is a
        number without a card.  ``witness`` runs in the same transaction before the commit (the
        platform's access check and audit entry): a refusal there writes nothing here either.
        The chip goes on the province's hot list (its version moves) like any LOST card."""
        require_role(Action.REPORT_LOST, Role.RESIDENT.value, holder)
        reason = reason.strip()[:200] or "reported lost by the holder"
        now = self.clock.now()
        with self.db.uow() as uow:
            card = uow.cards.live(card_number, lock=True)
            if card is None or card.resident_id not in owners:
                latest = uow.cards.latest(card_number)
                if latest is None or latest.resident_id not in owners:
                    raise NotFound("card", card_number)
                step(Action.REPORT_LOST, latest.status, card_number)  # raises: says what it is now
                raise TransitionRefused(f"card {card_number} has no live chip")  # pragma: no cover
            self._move(uow, card, step(Action.REPORT_LOST, card.status, card_number), holder, reason, now)
            view = CardView.of(card)
            if witness is not None:
                witness(uow, view)
            uow.commit()
            return view

    @staticmethod
    def _live_card(uow: UnitOfWork, card_number: str, action: Action) -> t.Card:
        """The card number's live chip, locked; without one, NotFound or the refusal that names
        the status of its newest chip (e.g. "CANCELLED: recover needs LOST")."""
        card = uow.cards.live(card_number, lock=True)
        if card is not None:
            return card
        latest = uow.cards.latest(card_number)
        if latest is None:
            raise NotFound("card", card_number)
        step(action, latest.status, card_number)  # raises: no action starts from a dead status
        raise TransitionRefused(f"card {card_number} has no live chip")  # pragma: no cover

    def replace(
        self, operator_id: OperatorRef, card_number: str, chips: ChipSource, reason: str = "lost"
    ) -> CardView:
        """补卡 / 换卡: a new chip carrying the same card number and the same on-card data (from
        what the platform holds for the resident), the old chip hot-listed."""
        with self.db.uow() as uow, _races(card_number):
            op = self._operator(uow, operator_id, Action.REPLACE)
            number = self._replacement(uow, op, card_number, reason)
        return self.issue(operator_id, number, chips)

    def _replacement(self, uow: UnitOfWork, op: _Operator, card_number: str, reason: str) -> str:
        """The approved replacement application to personalise: a new one, or the one of an
        earlier replacement whose chip failed (its old chip is retired already)."""
        old = uow.cards.live(card_number, lock=True)
        pending = uow.applications.open_for(card_number)
        if old is None and pending is not None and pending.kind == ApplicationKind.REPLACEMENT:
            self._same_province(op, pending.province, f"card {card_number}")
            if pending.status != ApplicationStatus.APPROVED:
                raise TransitionRefused(f"replacement {pending.number} is {pending.status}: approve it first")
            return pending.number
        if old is None:
            old = self._live_card(uow, card_number, Action.REPLACE)  # raises: says why there is none
        step(Action.REPLACE, old.status, card_number)
        self._same_province(op, old.province, f"card {card_number}")
        source = uow.applications.get(old.application_number)
        assert source is not None
        app = self.on_card_data(uow, old, source)
        taken, refused = self._submit(
            uow,
            op,
            [(0, app)],
            self.clock.now(),
            None,
            kind=ApplicationKind.REPLACEMENT,
            replaces=old,
            approve=True,
        )
        if refused:
            raise refused[0][2]
        row = taken[0][1]
        row.note = reason[:200]
        uow.commit()
        return row.number

    def on_card_data(self, uow: UnitOfWork, card: t.Card, application: t.Application) -> Application:
        """What the replacement chip carries: the resident's on-card data as the platform holds it
        (``card_data``, in the same transaction); without a platform, the application the card
        was made from."""
        base = Application.from_json(application.data)
        return base if self.card_data is None else self.card_data(uow, card.resident_id, base)

    def expire_due(self, operator_id: OperatorRef) -> int:
        """Mark every ISSUED / ACTIVE card past its validity date EXPIRED; how many."""
        today = local_date(self.clock)
        count = 0
        while True:
            with self.db.uow() as uow:
                op = self._operator(uow, operator_id, Action.EXPIRE)
                due = uow.cards.expiring(today, limit=500)
                for card in due:
                    self._move(
                        uow,
                        card,
                        CardStatus.EXPIRED,
                        op.id,
                        f"validity ended {card.expiry_date}",
                        self.clock.now(),
                    )
                uow.commit()
            count += len(due)
            if len(due) < 500:
                return count

    def _move(
        self,
        uow: UnitOfWork,
        card: t.Card,
        target: CardStatus,
        operator_id: str,
        reason: str | None,
        now: dt.datetime,
        *,
        list_chip: bool = True,
    ) -> None:
        before = card.status
        card.status, card.status_at = target.value, now
        uow.cards.add_events([_event_row(card, before, target, operator_id, reason, now)])
        if self.on_card_change is not None:
            self.on_card_change(uow, [card], now)
        if target in LISTED_AS and list_chip:
            self._list(uow, card, LISTED_AS[target], now)
        elif target is CardStatus.ACTIVE and before == CardStatus.LOST:
            self._unlist(uow, card, now)

    # --- hot list ---------------------------------------------------------------------------------
    @staticmethod
    def _list(uow: UnitOfWork, card: t.Card, reason: hot.HotListReason, now: dt.datetime) -> None:
        if uow.hotlist.listed(card.province, card.chip_serial) is not None:
            return  # a lost chip that is then replaced or cancelled stays listed as it was
        version = uow.hotlist.bump(card.province, now)
        uow.hotlist.add(
            t.HotListEntry(
                province=card.province,
                chip_serial=card.chip_serial,
                card_number=card.card_number,
                resident_id=card.resident_id,
                reason=reason.value,
                listed_version=version,
                listed_at=now,
            )
        )

    @staticmethod
    def _unlist(uow: UnitOfWork, card: t.Card, now: dt.datetime) -> None:
        entry = uow.hotlist.listed(card.province, card.chip_serial)
        if entry is not None:
            entry.removed_version = uow.hotlist.bump(card.province, now)
            entry.removed_at = now

    def hotlist_version(self, province: str) -> int:
        with self.db.uow() as uow:
            return uow.hotlist.version(province)

    def hotlist(self, province: str, since: int | None = None) -> hot.HotList:
        """The province's signed hot list now: full, or the delta from version ``since``."""
        now = self.clock.now()
        with self.db.uow() as uow:
            version = uow.hotlist.version(province)
            if since is not None and not 0 <= since <= version:
                raise InvalidValue(
                    "since", f"version {since}: province {province}'s list is at version {version}"
                )
            if since is None:
                unsigned = hot.full_list(
                    province, version, [_entry(e) for e in uow.hotlist.full(province)], now
                )
            else:
                added, removed = uow.hotlist.delta(province, since)
                unsigned = hot.delta_list(
                    province,
                    since,
                    version,
                    [_entry(e) for e in added],
                    [bytes.fromhex(e.chip_serial) for e in removed],
                    now,
                )
        return hot.sign_hotlist(unsigned, lambda message: self.keys.sign_as_issuer(province, message))

    def hotlist_status(self, province: str, *, latest: int = 10) -> HotListStatus:
        """Province ``province``'s hot list for people: its version, when it last changed, how
        many chips are on it, and the ``latest`` changes (listed or taken off), newest first."""
        if len(province) != 2 or not province.isdigit():
            raise InvalidValue("province", f"{province!r}: the 2-digit province code")
        with self.db.uow() as uow:
            version, changed_at = uow.hotlist.state(province)
            changes = [
                HotListChange(
                    (e.removed_version or 0) if removed else e.listed_version,
                    (e.removed_at or e.listed_at) if removed else e.listed_at,
                    e.chip_serial,
                    e.card_number,
                    hot.HotListReason(e.reason),
                    removed,
                )
                for e, removed in uow.hotlist.latest_changes(province, latest)
            ]
            return HotListStatus(province, version, changed_at, uow.hotlist.count_listed(province), changes)

    def hotlist_provinces(self) -> list[str]:
        """The provinces that have a hot list (a version row)."""
        with self.db.uow() as uow:
            return list(uow.hotlist.provinces())

    # --- queries ------------------------------------------------------------------------------------
    def card(self, card_number: str) -> CardHistory:
        with self.db.uow() as uow:
            cards = uow.cards.all_of(card_number)
            if not cards:
                raise NotFound("card", card_number)
            resident = uow.residents.get(cards[-1].resident_id)
            serials = {c.id: c.chip_serial for c in cards}
            events = [
                CardEventView(e.at, serials[e.card_id], e.from_status, e.to_status, e.operator_id, e.reason)
                for e in uow.cards.events(cards[-1].resident_id, card_number)
            ]
            return CardHistory(
                card_number, resident.name if resident else "", [CardView.of(c) for c in cards], events
            )

    def counts(self) -> dict[str, int]:
        with self.db.uow() as uow:
            return uow.cards.count_by_status()


def _event_row(
    card: t.Card,
    before: str | None,
    target: CardStatus,
    operator_id: str,
    reason: str | None,
    now: dt.datetime,
) -> dict[str, object]:
    """One line of a card's history (card_events)."""
    return {
        "resident_id": card.resident_id,
        "card_id": card.id,
        "card_number": card.card_number,
        "from_status": before,
        "to_status": target.value,
        "operator_id": operator_id,
        "reason": reason,
        "at": now,
    }


@contextmanager
def _races(who: str) -> Iterator[None]:
    """A unique index that caught a race — another desk took the same person in the same
    instant, at a flush or at the commit — is the duplicate it is, not a crash."""
    try:
        yield
    except IntegrityError as exc:
        text = str(exc.orig)
        if "card_number" in text or "residents" in text:
            raise Duplicate(
                "id_number", f"{who}: the same person was taken at the same moment elsewhere"
            ) from None
        raise


def _entry(row: t.HotListEntry) -> hot.HotListEntry:
    return hot.HotListEntry(
        bytes.fromhex(row.chip_serial), row.card_number, hot.HotListReason(row.reason), row.listed_at
    )


def check_pin(pin: object) -> None:
    """A cardholder PIN is 6 digits (DECISIONS.md §7); the error never repeats what was given."""
    if not isinstance(pin, str) or len(pin) != 6 or not pin.isascii() or not pin.isdigit():
        raise InvalidValue("pin", "the PIN is 6 digits")


def _years_after(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def local_time(at: dt.datetime) -> str:
    """A stored UTC time as the people of the system read it (Asia/Shanghai)."""
    return at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


__all__ = [
    "Acting",
    "ApplicationView",
    "CardCentre",
    "CardEventView",
    "CardHistory",
    "CardView",
    "HotListChange",
    "HotListStatus",
    "IssueOutcome",
    "OperatorRef",
    "local_time",
]
