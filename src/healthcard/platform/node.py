"""A platform node (a city's regional health information platform): the use cases the API, the
portal and the CLI call, each one transaction, each one through the access policy.

Every method that touches a resident's data takes the :class:`~healthcard.platform.access.Actor`
first, resolves the resident to the person (the MPI's survivor and every record merged into
it), asks :meth:`Access.check` for the data category — which writes the audit entry in the same
transaction, or a denial entry in its own and raises — and only then reads or writes.  No entry
point reads a table itself (ARCHITECTURE.md §2).

The visit flow (ARCHITECTURE.md §6 flow 2)::

    terminal: card + SAM authenticate, hot list   →  swipe()          card use, presence grant,
                                                                         summary for the clinician
    clinician                                     →  open_encounter() add_items() card_record()
    terminal: write ED/EE to the card (SAM)       →  close_encounter(card_slot=…)
    offline terminal, later                       →  upload()          exactly once per upload_key
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol

from sqlalchemy import Row, bindparam, func, insert, or_, select

from healthcard.clock import Clock, local_date
from healthcard.errors import HotListed, InvalidValue, NotAuthenticated, NotFound, PermissionDenied
from healthcard.issuance.application import Application
from healthcard.issuance.identity import area
from healthcard.keys.certificates import TrustStore
from healthcard.platform import cardevents
from healthcard.platform import records as rec
from healthcard.platform.access import (
    Access,
    Action,
    Actor,
    Carrier,
    Category,
    Decision,
    GrantView,
    NotificationView,
    Relationship,
    Role,
)
from healthcard.platform.accounts import Accounts
from healthcard.platform.appointments import AppointmentUseCases, booked_here_today
from healthcard.platform.audit import Audit, AuditView, VerifyReport
from healthcard.platform.household import HouseholdDesk
from healthcard.platform.immunization import CoverageRow, DoseStatus, DoseView, DueEntry, Immunizations
from healthcard.platform.mpi import CandidateView, IdentifierView, IdSystem, MergeView, Mpi, PersonView
from healthcard.platform.settlement.desk import SettlementDesk
from healthcard.platform.settlement.health_account import HealthAccountDesk
from healthcard.platform.terminals import Terminals
from healthcard.storage import tables as t
from healthcard.storage.db import Database
from healthcard.storage.uow import UnitOfWork

#: 诊疗环节: where in the visit the card was used
STAGES = ("registration", "consultation", "lab", "exam", "pharmacy", "cashier", "inpatient", "vaccination")
#: card statuses a terminal accepts (ISSUED: handed over but not yet activated at the desk)
USABLE_CARD = ("ISSUED", "ACTIVE")


@dataclass(frozen=True)
class GrantInfo:
    institution_code: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class Swipe:
    """What a terminal gets back for a card: the person, the presence grant, the summary."""

    resident_id: str
    card_number: str
    card_use_id: int
    grant: GrantInfo
    summary: rec.SummaryView


@dataclass(frozen=True)
class AreaCoverage:
    """One county of the public-health map: its coverage by vaccine and dose."""

    area_code: str
    name: str
    rows: tuple[CoverageRow, ...]

    def by_vaccine(self) -> dict[str, float | None]:
        """Vaccine → doses given / doses due over all its doses (None: no child old enough)."""
        given: dict[str, int] = {}
        eligible: dict[str, int] = {}
        for r in self.rows:
            given[r.vaccine] = given.get(r.vaccine, 0) + r.given
            eligible[r.vaccine] = eligible.get(r.vaccine, 0) + r.eligible
        return {v: (given[v] / eligible[v] if eligible[v] else None) for v in eligible}


@dataclass(frozen=True)
class Presence:
    """The electronic health card shown at a desk: who, the card use, the presence grant."""

    resident_id: str
    card_number: str
    card_use_id: int
    grant: GrantInfo


@dataclass(frozen=True)
class Glance:
    """The patient at a glance, as a clinic's clinician sees them after the swipe."""

    person: PersonView
    summary: rec.SummaryView
    plan: list[DoseStatus]
    visits: list[rec.EncounterView]


@dataclass(frozen=True)
class IssuedDay:
    """Cards issued on one local day by one city's card centre (a dashboard's bar)."""

    day: dt.date
    city_code: str
    cards: int


@dataclass(frozen=True)
class Upload:
    """An offline terminal's visit: the card it authenticated, and the encounter."""

    card_number: str
    chip_serial: str
    encounter: rec.EncounterIn


@dataclass(frozen=True)
class VisitElsewhere:
    """A visit the resident made in another city: its pointer (the record stays there)."""

    city_code: str
    encounter_id: int
    kind: str
    day: dt.date
    institution_code: str
    institution_name: str

    @property
    def city_name(self) -> str:
        """The city where the visit was made (GB/T 2260): 佛山市."""
        found = area(f"{self.city_code}00")
        return found.name if found is not None else self.city_code


class Elsewhere(Protocol):
    """Cross-region care (healthcard.federation.regions.Regions, wired by the composition root for
    a city node with a code and a bus): a card not found here is another city's, and a visitor's
    record is read from their home city."""

    def swipe(
        self, actor: Actor, *, card_number: str, chip_serial: str, stage: str, terminal_kind: str
    ) -> Swipe: ...

    def visiting(self, uow: UnitOfWork, resident_id: str) -> bool:
        """Whether ``resident_id`` (a survivor) is a visitor here, read in the caller's
        transaction: one key look-up, so a read of a resident of this city pays no more."""
        ...

    def glance(self, actor: Actor, resident_id: str, *, visits: int) -> Glance | None: ...

    def summary(self, actor: Actor, resident_id: str) -> rec.SummaryView | None: ...


#: the audit ``what`` of a card number presented with a chip that is not its own (a cloned image)
CHIP_REFUSED = "card chip"
#: the audit ``what`` of a swipe or kiosk login with a chip that is lost, replaced or cancelled
HOTLIST_REFUSED = "card hot-listed"
_CARD_TABLE = t.Card.metadata.tables[t.Card.__tablename__]
_CARDS = _CARD_TABLE.c
#: a swipe's card, by the chip serial (unique): built once, a plain row
_CARD_BY_CHIP = select(_CARDS.resident_id, _CARDS.card_number, _CARDS.chip_serial, _CARDS.status).where(
    _CARDS.chip_serial == bindparam("chip")
)
_RESIDENTS = t.Resident.metadata.tables[t.Resident.__tablename__]
_HIDDEN = t.HiddenCategory.metadata.tables[t.HiddenCategory.__tablename__]
_merged = _RESIDENTS.alias("merged")
#: a swipe's card and person: a row per (resident merged into the card's resident, hidden
#: category of either) — one row for most people
_SWIPE_CARD = (
    select(
        _CARDS.resident_id,
        _CARDS.card_number,
        _CARDS.chip_serial,
        _CARDS.status,
        _RESIDENTS.c.merged_into,
        _merged.c.resident_id.label("linked"),
        _HIDDEN.c.category.label("hidden"),
    )
    .join_from(_CARD_TABLE, _RESIDENTS, _RESIDENTS.c.resident_id == _CARDS.resident_id)
    .outerjoin(_merged, _merged.c.merged_into == _CARDS.resident_id)
    .outerjoin(
        _HIDDEN,
        or_(_HIDDEN.c.resident_id == _CARDS.resident_id, _HIDDEN.c.resident_id == _merged.c.resident_id),
    )
    .where(_CARDS.chip_serial == bindparam("chip"))
    .order_by(_merged.c.resident_id)
)
#: a swipe's card use (刷卡记录), its id back in the same round trip
_CARD_USES = t.CardUse.metadata.tables[t.CardUse.__tablename__]
_NEW_CARD_USE = insert(_CARD_USES).returning(_CARD_USES.c.id)


def _chip(chip_serial: str) -> str:
    """A chip serial as stored: 16 upper-case hex digits."""
    chip = chip_serial.strip().upper()
    if len(chip) != 16 or any(c not in "0123456789ABCDEF" for c in chip):
        raise InvalidValue("chip_serial", "16 hex digits (the chip serial of the card's ATR)")
    return chip


def _usable(row: Any, card_number: str, chip: str, *, live: bool) -> None:
    """Refuse ``row`` (a card read by its chip) unless it is ``card_number``'s — and, ``live``, a
    usable chip."""
    if row is None or row.card_number != card_number:
        raise NotFound("card", f"{card_number} with chip {chip}")
    if live:
        if row.status == "LOST":
            raise HotListed(f"card {card_number} is reported lost", card_number=card_number, reason="lost")
        if row.status not in USABLE_CARD:
            raise HotListed(
                f"chip {chip} of card {card_number} is {row.status.lower()}",
                card_number=card_number,
                reason=row.status.lower(),
            )


class Node:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        token_secret: bytes,
        trust: TrustStore,
        audit_archive_dir: Path | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.token_secret = token_secret  # signs access tokens and terminal challenges
        # "who looked" reads a resident's archived audit entries there too (auditarchive)
        self.audit = Audit(clock, archive_dir=audit_archive_dir)
        self.access = Access(db, clock, self.audit, care=(booked_here_today,))
        self.mpi = Mpi(clock)
        self.records = rec.Records(clock)
        self.immunizations = Immunizations(clock)
        self.accounts = Accounts(clock)
        self.terminals = Terminals(clock, token_secret, trust)
        self.appointments = AppointmentUseCases(
            db,
            clock,
            access=self.access,
            audit=self.audit,
            mpi=self.mpi,
            records=self.records,
            card=lambda uow, number, chip: self._card(uow, number, chip, live=True),
        )
        self.health_accounts = HealthAccountDesk(
            db, clock, access=self.access, audit=self.audit, mpi=self.mpi
        )
        self.settlement = SettlementDesk(db, clock, access=self.access, audit=self.audit, mpi=self.mpi)
        self.households = HouseholdDesk(
            db, clock, access=self.access, audit=self.audit, mpi=self.mpi, immunizations=self.immunizations
        )
        #: cross-region care (set by the composition root for a federated city); None: a card not
        #: found here is not found
        self.regions: Elsewhere | None = None

    # --- the person ----------------------------------------------------------------------------
    def _ids(self, uow: UnitOfWork, resident_id: str) -> list[str]:
        """The person's ids: the survivor first, then every resident merged into it."""
        return self.mpi.linked_ids(uow, resident_id)  # it resolves the survivor itself

    @contextmanager
    def _record(
        self,
        actor: Actor,
        resident_id: str,
        category: Category,
        action: Action = Action.READ,
        *,
        what: str,
        why: str = "",
    ) -> Iterator[tuple[UnitOfWork, list[str], Decision]]:
        """One transaction on a person's record: the person's ids (survivor first), the policy's
        decision (audited with the work, or a refusal audited on its own), commit at the end."""
        with self.db.uow() as uow:
            ids = self._ids(uow, resident_id)
            decision = self.access.check(uow, actor, ids, category, action, what=what, why=why)
            yield uow, ids, decision
            uow.commit()

    def _card(
        self, uow: UnitOfWork, card_number: str, chip_serial: str, *, live: bool
    ) -> Row[str, str, str, str]:
        """The card of ``card_number`` whose chip is ``chip_serial`` (its ``resident_id``,
        ``card_number``, ``chip_serial`` and ``status``: a plain row, read at every swipe).
        ``live``: the chip must be the card's current, usable chip (a swipe); otherwise any chip
        the number ever had (an upload of a visit made before the chip was replaced)."""
        chip = _chip(chip_serial)
        row = uow.session.execute(_CARD_BY_CHIP, {"chip": chip}).first()
        _usable(row, card_number, chip, live=live)
        assert row is not None
        return row

    def login(self, username: str, password: str) -> Actor:
        """Staff and residents with a password; every attempt is audited (a refusal too, in its
        own transaction with the failure count)."""
        with self.db.uow() as uow:
            try:
                account = self.accounts.authenticate(uow, username, password)
            except NotAuthenticated:
                known = uow.session.get(t.Account, username) if username else None
                # the audit names the account tried (its role when it exists); the caller learns nothing
                who = Actor(username[:40] or "-", Role(known.role) if known else Role.RESIDENT)
                self.audit.record(
                    uow,
                    who,
                    action="login",
                    what="login",
                    why="password refused",
                    resident_id=None,
                    outcome="denied",
                )
                uow.commit()  # the failure count stays, and so does the attempt
                raise
            actor = account.actor()
            self.audit.record(
                uow, actor, action="login", what="login", why="password", resident_id=account.resident_id
            )
            uow.commit()
            return actor

    def terminal_login(
        self, *, terminal_id: str, nonce: bytes, signature: bytes, certificate: bytes | None = None
    ) -> Actor:
        with self.db.uow() as uow:
            try:
                view = self.terminals.login(
                    uow, terminal_id=terminal_id, nonce=nonce, signature=signature, certificate=certificate
                )
            except NotAuthenticated:
                who = Actor(terminal_id[:40] or "-", Role.TERMINAL, carrier=Carrier.TERMINAL)
                self.audit.record(
                    uow,
                    who,
                    action="login",
                    what="login",
                    why="SAM refused",
                    resident_id=None,
                    outcome="denied",
                )
                uow.commit()
                raise
            actor = view.actor()
            self.audit.record(
                uow,
                replace(actor, carrier=Carrier.TERMINAL),
                action="login",
                what="login",
                why="SAM",
                resident_id=None,
            )
            uow.commit()
            return actor

    def card_login(self, actor: Actor, *, card_number: str, chip_serial: str) -> Actor:
        """A resident at a self-service kiosk: the kiosk's SAM authenticated the card and the
        cardholder verified the card's PIN (the card itself judges the PIN, the platform never
        sees it); the kiosk — a terminal of kind ``kiosk`` — asks for the resident's session."""
        if actor.role != Role.TERMINAL:
            raise PermissionDenied("a card login comes from a self-service kiosk")
        with self.db.uow() as uow:
            if self.terminals.get(uow, actor.id).kind != "kiosk":
                raise PermissionDenied("only a self-service kiosk opens a resident's session with the card")
            try:
                card = self._card(uow, card_number, chip_serial, live=True)
            except NotFound:
                uow.rollback()
                self._chip_refused(actor, card_number=card_number, chip=_chip(chip_serial), use="card login")
                raise
            except HotListed as listed:
                row = uow.session.execute(_CARD_BY_CHIP, {"chip": _chip(chip_serial)}).first()
                uow.rollback()
                self._hotlisted_use(actor, row.resident_id if row else None, use="card login", refused=listed)
                raise
            resident_id = self.mpi.survivor(uow, card.resident_id)
            resident = Actor(
                card_number,
                Role.RESIDENT,
                institution_code=actor.institution_code,
                resident_id=resident_id,
                carrier=Carrier.CARD,
            )
            self.audit.record(
                uow,
                resident,
                action="login",
                what="login",
                why=f"card at kiosk {actor.id}",
                resident_id=resident_id,
            )
            uow.commit()
            return resident

    def resolve(self, actor: Actor, system: str, value: str, assigner: str = "") -> str:
        """The resident an identifier belongs to (card number, ID number, a hospital's visit card
        …), if the caller may see that resident's demographics."""
        with self.db.uow() as uow:
            self.access.refuse_role(uow, actor, Category.DEMOGRAPHICS, what="identifier")
            resident_id = self.mpi.resolve(uow, system, value, assigner)
            self.access.check(
                uow, actor, self._ids(uow, resident_id), Category.DEMOGRAPHICS, what="identifier", why=system
            )
            uow.commit()
            return resident_id

    def person(self, actor: Actor, resident_id: str) -> PersonView:
        with self._record(actor, resident_id, Category.DEMOGRAPHICS, what="person") as (uow, ids, _):
            return self.mpi.person(uow, ids[0])

    def card_data(self, uow: UnitOfWork, resident_id: str, base: Application) -> Application:
        """What a replacement chip carries (the card centre calls this inside its transaction):
        the platform's DF02 data for the person over the original application."""
        return self.records.card_application(uow, self.mpi.survivor(uow, resident_id), base)

    # --- the swipe -----------------------------------------------------------------------------
    def swipe(
        self,
        actor: Actor,
        *,
        card_number: str,
        chip_serial: str,
        stage: str = "consultation",
        terminal_kind: str = "workstation",
    ) -> Swipe:
        """A card authenticated at ``actor``'s terminal: the card use (刷卡记录), a presence grant
        for the terminal's institution, and the summary its clinicians see."""
        if actor.role != Role.TERMINAL or not actor.institution_code:
            raise PermissionDenied("only a terminal logged in with its SAM records a swipe")
        if stage not in STAGES:
            raise InvalidValue("stage", f"{stage!r}: one of {', '.join(STAGES)}")
        now = self.clock.now()
        chip = _chip(chip_serial)
        with self.db.uow() as uow:
            # the card with the person in one round trip: its resident, whoever is merged into
            # that resident (the MPI's links are one hop) and the categories they hide
            rows = uow.session.execute(_SWIPE_CARD, {"chip": chip}).all()
            if not rows and self.regions is not None:  # no such chip here: another city's card?
                uow.rollback()
                # a chip refused there is audited by the card's home node, whose answer is this swipe
                return self.regions.swipe(
                    actor, card_number=card_number, chip_serial=chip, stage=stage, terminal_kind=terminal_kind
                )
            try:
                _usable(rows[0] if rows else None, card_number, chip, live=True)
            except NotFound:
                uow.rollback()
                self._chip_refused(actor, card_number=card_number, chip=chip, use="swipe")
                raise
            except HotListed as listed:
                uow.rollback()
                self._hotlisted_use(actor, rows[0].resident_id, use="swipe", refused=listed)
                raise
            card = rows[0]
            hidden: frozenset[str] | None = None
            if card.merged_into is None:
                ids = list(dict.fromkeys([card.resident_id, *(r.linked for r in rows if r.linked)]))
                hidden = frozenset(r.hidden for r in rows if r.hidden)
            else:  # the card's resident was merged into another: the person is the survivor's
                ids = self._ids(uow, card.resident_id)
            use_id = uow.session.execute(
                _NEW_CARD_USE,
                {
                    "resident_id": ids[0],
                    "card_number": card_number,
                    "chip_serial": card.chip_serial,
                    "institution_code": actor.institution_code,
                    "terminal_id": actor.id,
                    "terminal_kind": terminal_kind[:16],
                    "stage": stage,
                    "at": now,
                },
            ).scalar_one()
            grant = self.access.grant_presence(
                uow, resident_id=ids[0], institution_code=actor.institution_code, card_use_id=use_id
            )
            # the grant just made is the presence tie: the check need not read it back
            decision = self.access.check(
                uow,
                actor,
                ids,
                Category.SUMMARY,
                what="summary",
                why=f"swipe {stage}",
                known=frozenset({Relationship.PRESENCE}),
                hidden=hidden,
            )
            summary = self.records.summary(uow, ids, hidden=decision.hidden)
            uow.commit()
            return Swipe(
                ids[0], card_number, use_id, GrantInfo(actor.institution_code, grant.expires_at), summary
            )

    def present_qr(self, actor: Actor, *, card_number: str, stage: str = "consultation") -> Presence:
        """The resident showed their electronic health card (the dynamic QR code, already
        verified by the scanning page: :func:`healthcard.web.ehealth.verify`) to ``actor``, a
        staff member of an institution: the card use (terminal kind ``ehc-qr``, the current chip
        of the card), a presence grant of reason ``qr`` for the institution — the same tie a
        swipe gives — and the audit entry, carried by the QR.  A lost or cancelled card opens
        nothing (its code is refused as its chip would be).  The page then reads what the
        desk may see (the clinician: :meth:`glance`)."""
        if actor.role not in (Role.CLINICIAN, Role.REGISTRATION, Role.CASHIER) or not actor.institution_code:
            raise PermissionDenied("a clinic's staff scan the electronic health card")
        if stage not in STAGES:
            raise InvalidValue("stage", f"{stage!r}: one of {', '.join(STAGES)}")
        c = t.Card
        with self.db.uow() as uow:
            rows = uow.session.execute(
                select(c.resident_id, c.card_number, c.chip_serial, c.status)
                .where(c.card_number == card_number)
                .order_by(c.id.desc())
            ).all()
            live = [r for r in rows if r.status in USABLE_CARD]
            if not live:
                if rows:  # the newest chip says why: lost, cancelled, expired
                    _usable(rows[0], card_number, rows[0].chip_serial, live=True)
                raise NotFound("card", card_number)
            card = live[0]
            ids = self._ids(uow, card.resident_id)
            now = self.clock.now()
            use = t.CardUse(
                resident_id=ids[0],
                card_number=card_number,
                chip_serial=card.chip_serial,
                institution_code=actor.institution_code,
                terminal_id=actor.id[:40],
                terminal_kind="ehc-qr",
                stage=stage,
                at=now,
            )
            uow.session.add(use)
            uow.flush()
            grant = self.access.grant_presence(
                uow,
                resident_id=ids[0],
                institution_code=actor.institution_code,
                card_use_id=use.id,
                reason="qr",
            )
            self.audit.record(
                uow,
                replace(actor, carrier=Carrier.QR),
                action="read",
                what="presence",
                why=f"e-health card QR {stage}",
                resident_id=ids[0],
            )
            uow.commit()
            return Presence(ids[0], card_number, use.id, GrantInfo(actor.institution_code, grant.expires_at))

    # --- reading the record --------------------------------------------------------------------
    def _visiting(self, uow: UnitOfWork, ids: list[str]) -> bool:
        """A visitor from another city, whose record is read at home (:attr:`regions`)."""
        return self.regions is not None and self.regions.visiting(uow, ids[0])

    def summary(self, actor: Actor, resident_id: str) -> rec.SummaryView:
        with self.db.uow() as uow:
            ids = self._ids(uow, resident_id)
            if not self._visiting(uow, ids):
                decision = self.access.check(uow, actor, ids, Category.SUMMARY, what="summary")
                found = self.records.summary(uow, ids, hidden=decision.hidden)
                uow.commit()
                return found
        assert self.regions is not None  # a visitor from another city: read at home
        away = self.regions.summary(actor, resident_id)
        if away is None:  # pragma: no cover - a visitor row is never taken away
            raise NotFound("visitor", resident_id)
        return away

    def glance(self, actor: Actor, resident_id: str, *, visits: int = 20) -> Glance:
        """The clinic console's "一目了然": the person, the summary, the vaccination plan and the
        latest visits in one transaction — each category checked and audited as its own read
        would be (the resident's "who looked" lists the four), the tie found by the first check
        not looked up again by the next ones.  A visitor from another city is read at home."""
        with self.db.uow() as uow:
            ids = self._ids(uow, resident_id)
            if not self._visiting(uow, ids):
                return self._glance_here(uow, actor, ids, visits)
        assert self.regions is not None  # a visitor from another city: read at home
        away = self.regions.glance(actor, resident_id, visits=visits)
        if away is None:  # pragma: no cover - a visitor row is never taken away
            raise NotFound("visitor", resident_id)
        return away

    def _glance_here(self, uow: UnitOfWork, actor: Actor, ids: list[str], visits: int) -> Glance:
        """:meth:`glance` of a person whose record is here, in the caller's transaction."""
        first = self.access.check(uow, actor, ids, Category.DEMOGRAPHICS, what="person", why="glance")
        known = frozenset({first.relationship})

        def check(category: Category, what: str) -> Decision:
            return self.access.check(uow, actor, ids, category, what=what, why="glance", known=known)

        person = self.mpi.person(uow, ids[0])
        summary = self.records.summary(uow, ids, hidden=check(Category.SUMMARY, "summary").hidden)
        check(Category.IMMUNIZATION, "vaccination plan")
        plan = self.immunizations.plan_for(uow, ids[0], local_date(self.clock))
        hidden = check(Category.ENCOUNTERS, "encounters").hidden
        found = self.records.encounters(uow, ids, hidden=hidden, limit=visits)
        uow.commit()
        return Glance(person, summary, plan, found)

    def archive(self, actor: Actor, resident_id: str) -> rec.ArchiveView | None:
        with self._record(actor, resident_id, Category.ARCHIVE, what="archive") as (uow, ids, _):
            return self.records.archive(uow, ids[0])

    def encounters(
        self, actor: Actor, resident_id: str, *, kind: str | None = None, limit: int = 50
    ) -> list[rec.EncounterView]:
        with self._record(actor, resident_id, Category.ENCOUNTERS, what="encounters") as (uow, ids, decision):
            return self.records.encounters(uow, ids, hidden=decision.hidden, kind=kind, limit=limit)

    def visits_elsewhere(self, actor: Actor, resident_id: str, *, limit: int = 50) -> list[VisitElsewhere]:
        """The resident's visits made in other cities (their pointers, newest first): the visit
        itself stays where it was made."""
        v = t.RemoteVisit
        with self._record(actor, resident_id, Category.ENCOUNTERS, what="visits elsewhere") as (uow, ids, _):
            rows = uow.session.scalars(
                select(v)
                .where(v.resident_id.in_(ids))
                .order_by(v.day.desc(), v.id.desc())
                .limit(max(0, limit))
            )
            return [
                VisitElsewhere(
                    r.city_code, r.encounter_id, r.kind, r.day, r.institution_code, r.institution_name
                )
                for r in rows
            ]

    def encounter(self, actor: Actor, resident_id: str, encounter_id: int) -> rec.EncounterView:
        what = f"encounter {encounter_id}"
        with self._record(actor, resident_id, Category.ENCOUNTERS, what=what) as (uow, ids, decision):
            view = self.records.encounter(uow, ids, encounter_id)
            if view.category in decision.hidden:
                raise NotFound("encounter", str(encounter_id))  # hidden: as if it were not there
            return view

    def allergies(self, actor: Actor, resident_id: str) -> list[rec.AllergyView]:
        with self._record(actor, resident_id, Category.SUMMARY, what="allergies") as (uow, ids, _):
            return self.records.allergies(uow, ids)

    def doses(self, actor: Actor, resident_id: str) -> list[DoseView]:
        with self._record(actor, resident_id, Category.IMMUNIZATION, what="immunizations") as (uow, ids, _):
            return self.immunizations.doses(uow, ids)

    def vaccination_plan(self, actor: Actor, resident_id: str) -> list[DoseStatus]:
        with self._record(actor, resident_id, Category.IMMUNIZATION, what="vaccination plan") as (
            uow,
            ids,
            _,
        ):
            return self.immunizations.plan_for(uow, ids[0], local_date(self.clock))

    # --- writing the record --------------------------------------------------------------------
    def _at_own_institution(self, actor: Actor, data: rec.EncounterIn) -> rec.EncounterIn:
        if not actor.institution_code:
            raise PermissionDenied("records are written by staff or terminals of an institution")
        if data.institution_code and data.institution_code != actor.institution_code:
            raise InvalidValue(
                "institution_code",
                f"{data.institution_code}: you record visits of {actor.institution_code} only",
            )
        return replace(data, institution_code=actor.institution_code)

    def put_archive(self, actor: Actor, resident_id: str, **fields: Any) -> rec.ArchiveView:
        with self._record(actor, resident_id, Category.ARCHIVE, Action.WRITE, what="archive") as (
            uow,
            ids,
            _,
        ):
            return self.records.put_archive(uow, ids[0], by=actor.id, **fields)

    def add_allergy(
        self, actor: Actor, resident_id: str, *, allergen: str, reaction: str, severity: str | None = None
    ) -> rec.AllergyView:
        with self._record(actor, resident_id, Category.SUMMARY, Action.WRITE, what="allergy") as (
            uow,
            ids,
            _,
        ):
            return self.records.add_allergy(
                uow, ids[0], allergen=allergen, reaction=reaction, severity=severity, by=actor.id
            )

    def open_encounter(self, actor: Actor, resident_id: str, data: rec.EncounterIn) -> rec.EncounterView:
        data = self._at_own_institution(actor, data)
        if data.clinician is None and actor.role == Role.CLINICIAN:
            data = replace(data, clinician=actor.id)
        with self._record(
            actor, resident_id, Category.ENCOUNTERS, Action.WRITE, what="encounter", why="open"
        ) as (uow, ids, _):
            return self.records.open_encounter(uow, ids[0], data)

    @contextmanager
    def _own_encounter(
        self, actor: Actor, resident_id: str, encounter_id: int, why: str
    ) -> Iterator[tuple[UnitOfWork, list[str]]]:
        """Writing to an encounter: a clinician (or the terminal at the desk) of the encounter's
        own institution — the registration desk opens a visit, it does not diagnose."""
        if actor.role not in (Role.CLINICIAN, Role.TERMINAL):
            raise PermissionDenied(f"a {actor.role.value} opens visits; clinicians record and close them")
        with self._record(
            actor, resident_id, Category.ENCOUNTERS, Action.WRITE, what=f"encounter {encounter_id}", why=why
        ) as (uow, ids, _):
            if self.records.encounter(uow, ids, encounter_id).institution_code != actor.institution_code:
                raise PermissionDenied(f"encounter {encounter_id} is another institution's")
            yield uow, ids

    def add_items(
        self,
        actor: Actor,
        resident_id: str,
        encounter_id: int,
        *,
        diagnoses: Sequence[rec.DiagnosisIn] = (),
        observations: Sequence[rec.ObservationIn] = (),
        prescriptions: Sequence[rec.PrescriptionIn] = (),
        procedures: Sequence[rec.ProcedureIn] = (),
    ) -> rec.EncounterView:
        with self._own_encounter(actor, resident_id, encounter_id, "record") as (uow, ids):
            return self.records.add_items(
                uow,
                ids[0],
                encounter_id,
                diagnoses=tuple(diagnoses),
                observations=tuple(observations),
                prescriptions=tuple(prescriptions),
                procedures=tuple(procedures),
            )

    def card_record(self, actor: Actor, resident_id: str, encounter_id: int) -> dict[str, str | int]:
        """The item values the terminal writes to the card for this encounter: ED for an
        outpatient or emergency visit, EE for an inpatient stay (:func:`rec.card_record`)."""
        what = f"encounter {encounter_id}"
        with self._record(actor, resident_id, Category.ENCOUNTERS, what=what, why="card") as (uow, ids, _):
            return rec.card_record(self.records.encounter(uow, ids, encounter_id))

    def close_encounter(
        self,
        actor: Actor,
        resident_id: str,
        encounter_id: int,
        *,
        fees: Sequence[rec.FeeLine] = (),
        payment_method: str | None = None,
        card_slot: int | None = None,
    ) -> rec.EncounterView:
        if card_slot is not None and not 1 <= card_slot <= 5:
            raise InvalidValue("card_slot", "the card keeps visits in ED01–ED05 and stays in EE01–EE03")
        with self._own_encounter(actor, resident_id, encounter_id, "close") as (uow, ids):
            return self.records.close_encounter(
                uow,
                ids[0],
                encounter_id,
                fees=tuple(fees),
                payment_method=payment_method,
                card_slot=card_slot,
            )

    @contextmanager
    def _presence_at(
        self, uow: UnitOfWork, resident_id: str, institution: str, card_use_id: int, at: dt.datetime
    ) -> Iterator[None]:
        """The card was presented at ``at`` (an offline visit, uploaded later): the presence tie
        holds for the upload, but the grant it leaves runs from the visit, not from the upload —
        a week-old visit opens no fresh 24 hours on the record."""
        g = t.PresenceGrant
        now = self.clock.now()
        earlier = uow.session.execute(
            select(g.id, g.expires_at).where(
                g.resident_id == resident_id, g.institution_code == institution, g.expires_at > now
            )
        ).all()
        grant = self.access.grant_presence(
            uow, resident_id=resident_id, institution_code=institution, card_use_id=card_use_id
        )
        yield
        visit_ends = at + dt.timedelta(hours=self.access.grant_hours)
        if visit_ends < grant.expires_at:
            row = uow.session.get(g, grant.id)
            assert row is not None
            kept = max([e for i, e in earlier if i == grant.id], default=now)
            row.expires_at = max(visit_ends, kept)

    def upload(self, actor: Actor, upload: Upload) -> tuple[rec.EncounterView, bool]:
        """A visit an offline terminal recorded: stored once per ``upload_key``.  A repeat returns
        the stored encounter and ``False`` and writes nothing (no second card use, no audit)."""
        if actor.role != Role.TERMINAL:
            raise PermissionDenied("uploads come from terminals logged in with their SAM")
        data = self._at_own_institution(actor, upload.encounter)
        if not data.upload_key:
            raise InvalidValue("upload_key", "an upload needs its idempotency key")
        assert actor.institution_code is not None
        with self.db.uow() as uow:
            card = self._card(uow, upload.card_number, upload.chip_serial, live=False)
            ids = self._ids(uow, card.resident_id)
            use = t.CardUse(
                resident_id=ids[0],
                card_number=upload.card_number,
                chip_serial=card.chip_serial,
                institution_code=actor.institution_code,
                terminal_id=actor.id,
                terminal_kind="offline",
                stage="consultation",
                at=data.started_at,
            )
            uow.session.add(use)
            uow.flush()
            uploader = replace(actor, carrier=Carrier.UPLOAD)
            with self._presence_at(uow, ids[0], actor.institution_code, use.id, data.started_at):
                self.access.check(
                    uow,
                    uploader,
                    ids,
                    Category.ENCOUNTERS,
                    Action.WRITE,
                    what="encounter",
                    why="offline upload",
                )
            view, created = self.records.record_encounter(uow, ids[0], replace(data, carrier="upload"))
            if not created:
                uow.rollback()  # a replay: the card use, grant and audit entry of this call go
                return view, False
            uow.commit()
            return view, True

    # --- immunization --------------------------------------------------------------------------
    def record_dose(
        self,
        actor: Actor,
        resident_id: str,
        *,
        vaccine: str,
        dose: int,
        given_on: dt.date,
        lot: str = "",
        institution_code: str | None = None,
    ) -> DoseView:
        where = institution_code or actor.institution_code
        if not where:
            raise InvalidValue("institution_code", "which institution gave the dose")
        what = f"dose {vaccine}/{dose}"
        with self._record(actor, resident_id, Category.IMMUNIZATION, Action.WRITE, what=what) as (
            uow,
            ids,
            _,
        ):
            return self.immunizations.record(
                uow,
                resident_id=ids[0],
                vaccine=vaccine,
                dose=dose,
                given_on=given_on,
                lot=lot,
                institution_code=where,
                by=actor.id,
            )

    def _area(self, actor: Actor, area_code: str) -> None:
        if not (area_code.isdigit() and len(area_code) in (2, 4, 6)):
            raise InvalidValue("area_code", "a 2, 4 or 6 digit GB/T 2260 prefix")
        if actor.role == Role.PUBLIC_HEALTH and actor.area_code and area_code.startswith(actor.area_code):
            return
        raise PermissionDenied(f"area {area_code}: public health of that area only")

    def due_in_area(self, actor: Actor, area_code: str) -> list[DueEntry]:
        """Children of an area due or overdue for a dose: public health of that area only; one
        audit entry for the list (a population query, about no single resident)."""
        self._area(actor, area_code)
        with self.db.uow() as uow:
            entries = self.immunizations.due_in_area(uow, area_code, today=local_date(self.clock))
            self.audit.record(
                uow, actor, action="read", what=f"due list {area_code}", why="public health", resident_id=None
            )
            uow.commit()
            return entries

    def coverage(self, actor: Actor, area_code: str) -> list[CoverageRow]:
        """Coverage by vaccine and dose: counts, no personal data."""
        self._area(actor, area_code)
        with self.db.uow() as uow:
            return self.immunizations.coverage(uow, area_code, today=local_date(self.clock))

    def coverage_map(self, actor: Actor, area_code: str) -> list[AreaCoverage]:
        """Coverage by vaccine in each county (GB/T 2260, 6 digits) of a city's area (4 digits)
        that has children of schedule age: the public-health map.  Counts only; one transaction."""
        self._area(actor, area_code)
        if len(area_code) != 4:
            raise InvalidValue("area_code", "the map is drawn for a city (4 digits): its counties")
        counties = [a for a in (area(f"{area_code}{n:02d}") for n in range(1, 100)) if a is not None]
        today = local_date(self.clock)
        out = []
        with self.db.uow() as uow:
            for county in counties:
                rows = self.immunizations.coverage(uow, county.code, today=today)
                if any(r.eligible for r in rows):
                    out.append(AreaCoverage(county.code, county.name, tuple(rows)))
        return out

    # --- the resident's controls ---------------------------------------------------------------
    def break_glass(self, actor: Actor, resident_id: str, *, reason: str) -> GrantView:
        with self.db.uow() as uow:
            grant = self.access.break_glass(uow, actor, self._ids(uow, resident_id)[0], reason=reason)
            uow.commit()
            return grant

    def hide(self, actor: Actor, resident_id: str, category: str, hidden: bool) -> frozenset[str]:
        with self.db.uow() as uow:
            ids = self._ids(uow, resident_id)
            self.access.hide(uow, actor, ids[0], category, hidden)
            uow.commit()
            return self.access.hidden_of(uow, ids)  # as GET answers: a merged duplicate's count too

    def _own(self, actor: Actor, what: str) -> None:
        """What only the resident sees: which categories they hide (itself telling), and their
        notices (break-glass reasons)."""
        if actor.role != Role.RESIDENT:
            raise PermissionDenied(f"{what}: the resident's own")

    def hidden(self, actor: Actor, resident_id: str) -> frozenset[str]:
        self._own(actor, "hidden categories")
        with self._record(actor, resident_id, Category.AUDIT, what="hidden categories") as (uow, ids, _):
            return self.access.hidden_of(uow, ids)

    def who_looked(self, actor: Actor, resident_id: str, *, limit: int = 100) -> list[AuditView]:
        with self._record(actor, resident_id, Category.AUDIT, what="who looked") as (uow, ids, _):
            return self.audit.who_looked(uow, ids, limit=limit)

    def notifications(self, actor: Actor, resident_id: str) -> list[NotificationView]:
        self._own(actor, "notifications")
        with self._record(actor, resident_id, Category.AUDIT, what="notifications") as (uow, ids, _):
            return self.access.notifications(uow, ids[0])

    def _chip_refused(self, actor: Actor, *, card_number: str, chip: str, use: str) -> None:
        """A card number presented with a chip that is not its chip — a card image copied to
        another chip, or a forged one: a denied audit entry (the terminal, its institution, the
        card number, the chip presented and the card's registered chip), in its own transaction
        (the caller's is rolled back) and in the chain of the card's resident when the number is
        known here, so that the resident's "who looked" shows it too.
        :meth:`card_security_events` lists them for the card centre."""
        with self.db.uow() as uow:
            rows = uow.session.execute(
                select(_CARDS.resident_id, _CARDS.chip_serial, _CARDS.status).where(
                    _CARDS.card_number == card_number[:40]
                )
            ).all()
            current = next((r for r in rows if r.status in USABLE_CARD), rows[-1] if rows else None)
            registered = current.chip_serial if current is not None else "none"
            self.audit.record(
                uow,
                actor,
                action="deny",
                what=CHIP_REFUSED,
                why=f"{use} refused: chip {chip} is not the chip of card {card_number[:40]} ({registered})",
                resident_id=current.resident_id if current is not None else None,
                outcome="denied",
            )
            uow.commit()

    def _hotlisted_use(self, actor: Actor, resident_id: str | None, *, use: str, refused: HotListed) -> None:
        """A chip that is lost, replaced or cancelled presented at a terminal — a stolen card, or
        an old one kept: a denied audit entry in the resident's chain, in its own transaction
        (the caller's is rolled back); listed by :meth:`card_security_events`."""
        with self.db.uow() as uow:
            self.audit.record(
                uow,
                actor,
                action="deny",
                what=HOTLIST_REFUSED,
                why=f"{use} refused: {refused}"[:200],
                resident_id=resident_id,
                outcome="denied",
            )
            uow.commit()

    def report_card_refusals(self, actor: Actor, refusals: Sequence[Mapping[str, object]]) -> int:
        """A terminal reports what its cards refused offline (a replayed authentication, a bad
        MAC, a wrong PIN …): each a denied audit entry in the chip's resident's chain
        (:mod:`healthcard.platform.cardevents`); the number written."""
        with self.db.uow() as uow:
            written = cardevents.record(uow, self.audit, actor, refusals, now=self.clock.now())
            uow.commit()
            return written

    def card_security_events(self, actor: Actor, *, limit: int = 100) -> list[AuditView]:
        """The card centre's security events, newest first: swipes and kiosk logins refused
        because the chip was not the card's (:meth:`_chip_refused`) or is lost, replaced or
        cancelled (:meth:`_hotlisted_use`), and what cards refused at terminals
        (:meth:`report_card_refusals`); the read is audited."""
        if actor.role not in (Role.CARD_ADMIN, Role.AUDITOR, Role.ADMIN):
            raise PermissionDenied("card security events are read by the card centre, auditors and admins")
        with self.db.uow() as uow:
            views = self.audit.denials(
                uow, (CHIP_REFUSED, HOTLIST_REFUSED, cardevents.CARD_REFUSED), limit=limit
            )
            self.audit.record(
                uow, actor, action="read", what="card security events", why="security", resident_id=None
            )
            uow.commit()
            return views

    def verify_audit(self, actor: Actor) -> VerifyReport:
        if actor.role not in (Role.AUDITOR, Role.ADMIN):
            raise PermissionDenied("the audit chain is verified by auditors and platform admins")
        with self.db.uow() as uow:
            report = self.audit.verify(uow)
            self.audit.record(
                uow, actor, action="read", what="audit verify", why="verification", resident_id=None
            )
            uow.commit()
            return report

    # --- rows for the FHIR views -------------------------------------------------------------
    #: FHIR resource → (data category, table); the clinical tables carry the sensitivity
    #: ``category`` that a resident's hidden categories filter in the query
    FHIR_SOURCES: ClassVar[dict[str, tuple[Category, type[t.Base]]]] = {
        "Encounter": (Category.ENCOUNTERS, t.Encounter),
        "Condition": (Category.ENCOUNTERS, t.Diagnosis),
        "Observation": (Category.ENCOUNTERS, t.Observation),
        "MedicationRequest": (Category.ENCOUNTERS, t.Prescription),
        "AllergyIntolerance": (Category.SUMMARY, t.Allergy),
        "Immunization": (Category.IMMUNIZATION, t.ImmunizationDose),
    }

    def patient_rows(
        self, actor: Actor, resident_id: str
    ) -> tuple[t.Resident, list[t.ResidentIdentifier], str | None]:
        """The resident row, their identifiers and their live card number (FHIR Patient)."""
        with self._record(actor, resident_id, Category.DEMOGRAPHICS, what="Patient", why="fhir") as (
            uow,
            ids,
            _,
        ):
            resident = uow.session.get(t.Resident, ids[0])
            assert resident is not None
            identifiers = list(
                uow.session.scalars(
                    select(t.ResidentIdentifier).where(t.ResidentIdentifier.resident_id.in_(ids))
                )
            )
            card = uow.session.scalar(
                select(t.Card.card_number).where(t.Card.resident_id.in_(ids), t.Card.status.in_(t.LIVE_CARD))
            )
            archive = uow.session.scalar(
                select(t.HealthArchive.archive_number).where(t.HealthArchive.resident_id == ids[0])
            )
            if archive:  # the archive number lives on the archive; FHIR shows it as an identifier
                identifiers.append(
                    t.ResidentIdentifier(
                        resident_id=ids[0], system="archive", assigner="", value=archive, active=True
                    )
                )
            return resident, identifiers, card

    def fhir_rows(self, actor: Actor, resident_id: str, resource: str, *, limit: int = 100) -> list[t.Base]:
        """The rows behind a FHIR search ``resource?patient=resident_id``, newest first, with the
        categories the resident hides left out (unless the caller may see them)."""
        category, source = self.FHIR_SOURCES[resource]
        table: Any = source  # every source has resident_id, id and category columns
        with self._record(actor, resident_id, category, what=resource, why="fhir") as (uow, ids, decision):
            query = select(table).where(table.resident_id.in_(ids))
            if decision.hidden and hasattr(table, "category"):
                hidden = sorted(decision.hidden)
                query = query.where(table.category.not_in(hidden))
                # as the records do: a visit with any hidden diagnosis is hidden whole, items too
                d = t.Diagnosis
                veiled = select(d.encounter_id).where(d.resident_id.in_(ids), d.category.in_(hidden))
                column = table.id if table is t.Encounter else table.encounter_id
                query = query.where(column.is_(None) | column.not_in(veiled))
            return list(uow.session.scalars(query.order_by(table.id.desc()).limit(limit)))

    def institution_names(self, codes: set[str]) -> dict[str, str]:
        """Reference data (not personal): institution code → name."""
        if not codes:
            return {}
        with self.db.uow() as uow:
            rows = uow.session.execute(
                select(t.Institution.code, t.Institution.name).where(t.Institution.code.in_(sorted(codes)))
            )
            names = {code: name for code, name in rows}
            if len(names) < len(codes):  # institutions of other cities that read for residents here
                v = t.VisitingInstitution
                rows = uow.session.execute(
                    select(v.code, v.name).where(v.code.in_(sorted(codes - names.keys())))
                )
                names |= {code: name for code, name in rows}
            return names

    def bookable_institutions(self) -> dict[str, str]:
        """Reference data (not personal): the institutions with departments to book, code →
        name, in code order — the first choice of a booking form (portal, kiosk)."""
        with self.db.uow() as uow:
            rows = uow.session.execute(
                select(t.Institution.code, t.Institution.name)
                .where(t.Institution.code.in_(select(t.Department.institution_code)))
                .order_by(t.Institution.code)
            )
            return {code: name for code, name in rows}

    # --- statistics (the administrators' dashboards: counts, no one's data) ---------------------
    def cards_issued(self, actor: Actor, *, days: int = 30) -> list[IssuedDay]:
        """Cards issued per day and city over the last ``days`` local days (today included),
        for the card centre and the platform's operator, in one grouped query on an index of
        (issue date, city)."""
        if actor.role not in (Role.CARD_ADMIN, Role.ADMIN):
            raise PermissionDenied("issuance figures are for card administrators and platform admins")
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 366:
            raise InvalidValue("days", f"{days!r}: 1 to 366 days")
        since = local_date(self.clock) - dt.timedelta(days=days - 1)
        c = t.Card
        query = (
            select(c.issue_date, c.city_code, func.count())
            .where(c.issue_date >= since)
            .group_by(c.issue_date, c.city_code)
            .order_by(c.issue_date, c.city_code)
        )
        with self.db.uow() as uow:
            return [IssuedDay(day, city, int(n)) for day, city, n in uow.session.execute(query)]

    # --- MPI stewardship -----------------------------------------------------------------------
    def _steward(self, actor: Actor) -> None:
        if actor.role not in (Role.ADMIN, Role.REGISTRATION, Role.CARD_ADMIN):
            raise PermissionDenied("MPI review is for registration, card administrators and platform admins")

    def merge(self, actor: Actor, survivor: str, duplicate: str, *, reason: str) -> MergeView:
        if actor.role != Role.ADMIN:
            raise PermissionDenied("merging residents is for platform admins")
        with self.db.uow() as uow:
            view = self.mpi.merge(uow, survivor, duplicate, by=actor.id, reason=reason)
            for rid in (survivor, duplicate):
                self.audit.record(
                    uow, actor, action="write", what="mpi merge", why=reason[:200], resident_id=rid
                )
            uow.commit()
            return view

    def unmerge(self, actor: Actor, duplicate: str, *, reason: str) -> MergeView:
        if actor.role != Role.ADMIN:
            raise PermissionDenied("un-merging residents is for platform admins")
        with self.db.uow() as uow:
            view = self.mpi.unmerge(uow, duplicate, by=actor.id, reason=reason)
            self.audit.record(
                uow, actor, action="write", what="mpi unmerge", why=reason[:200], resident_id=duplicate
            )
            uow.commit()
            return view

    def add_identifier(self, actor: Actor, resident_id: str, system: str, value: str) -> IdentifierView:
        """A number for the person — a hospital registering its old visit card (一院一卡: the
        assigner is the caller's institution), an NCMS number, a health-archive number."""
        assigner = actor.institution_code or "" if system == IdSystem.VISIT_CARD else ""
        with self._record(
            actor, resident_id, Category.DEMOGRAPHICS, Action.WRITE, what=f"identifier {system}"
        ) as (uow, ids, _):
            return self.mpi.add_identifier(uow, ids[0], system, value, assigner)

    def submit_candidate(
        self,
        actor: Actor,
        *,
        local_id: str,
        name: str,
        sex: int,
        birth_date: dt.date,
        area_code: str | None = None,
        id_number: str | None = None,
    ) -> CandidateView:
        """A record of the caller's institution that came without a card (a legacy register): the
        MPI links it, or queues it for review."""
        if actor.role not in (Role.REGISTRATION, Role.ADMIN, Role.CARD_ADMIN) or not actor.institution_code:
            raise PermissionDenied("records without a card are sent by an institution's registration desk")
        with self.db.uow() as uow:
            view = self.mpi.submit(
                uow,
                source=actor.institution_code,
                local_id=local_id,
                name=name,
                sex=sex,
                birth_date=birth_date,
                area_code=area_code,
                id_number=id_number,
            )
            self.audit.record(
                uow,
                actor,
                action="write",
                what="mpi candidate",
                why=view.status,
                resident_id=view.resident_id,
            )
            uow.commit()
            return view

    def decide_candidate(
        self,
        actor: Actor,
        candidate_id: int,
        *,
        decision: str,
        resident_id: str | None = None,
        reason: str = "",
    ) -> CandidateView:
        """A reviewer's decision on a queued record: ``link`` (to ``resident_id``), ``create`` (a
        new person) or ``reject`` (with a reason)."""
        self._steward(actor)
        with self.db.uow() as uow:
            if decision == "link":
                if not resident_id:
                    raise InvalidValue("resident_id", "link to which resident")
                view = self.mpi.link(uow, candidate_id, resident_id, by=actor.id)
            elif decision == "create":
                view = self.mpi.create(uow, candidate_id, by=actor.id)
            elif decision == "reject":
                view = self.mpi.reject(uow, candidate_id, by=actor.id, reason=reason)
            else:
                raise InvalidValue("decision", f"{decision!r}: link, create or reject")
            self.audit.record(
                uow, actor, action="write", what="mpi review", why=decision, resident_id=view.resident_id
            )
            uow.commit()
            return view

    def merge_history(self, actor: Actor, resident_id: str) -> list[MergeView]:
        self._steward(actor)
        with self.db.uow() as uow:
            return self.mpi.history(uow, resident_id)

    def review_queue(self, actor: Actor) -> list[CandidateView]:
        self._steward(actor)
        with self.db.uow() as uow:
            queue = self.mpi.queue(uow)
            self.audit.record(uow, actor, action="read", what="mpi queue", why="review", resident_id=None)
            uow.commit()
            return queue

    def mark_read(self, actor: Actor, resident_id: str, notification_id: int) -> None:
        self._own(actor, "notifications")
        with self._record(actor, resident_id, Category.AUDIT, what="notification read") as (uow, ids, _):
            self.access.mark_read(uow, ids, notification_id)


__all__ = ["STAGES", "Elsewhere", "GrantInfo", "Node", "Swipe", "Upload", "VisitElsewhere"]
