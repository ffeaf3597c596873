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
    terminal: write ED record to the card (SAM)   →  close_encounter(card_slot=…)
    offline terminal, later                       →  upload()          exactly once per upload_key
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from sqlalchemy import select

from healthcard.clock import Clock, local_date
from healthcard.errors import HotListed, InvalidValue, NotFound, PermissionDenied
from healthcard.issuance.application import Application
from healthcard.keys.certificates import TrustStore
from healthcard.platform import records as rec
from healthcard.platform.access import (
    Access,
    Action,
    Actor,
    Category,
    Decision,
    GrantView,
    NotificationView,
    Role,
)
from healthcard.platform.accounts import Accounts
from healthcard.platform.audit import Audit, AuditView, VerifyReport
from healthcard.platform.immunization import CoverageRow, DoseStatus, DoseView, DueEntry, Immunizations
from healthcard.platform.mpi import CandidateView, MergeView, Mpi, PersonView
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
class Upload:
    """An offline terminal's visit: the card it authenticated, and the encounter."""

    card_number: str
    chip_serial: str
    encounter: rec.EncounterIn


class Node:
    def __init__(self, db: Database, clock: Clock, *, token_secret: bytes, trust: TrustStore) -> None:
        self.db = db
        self.clock = clock
        self.token_secret = token_secret  # signs access tokens and terminal challenges
        self.audit = Audit(clock)
        self.access = Access(db, clock, self.audit)
        self.mpi = Mpi(clock)
        self.records = rec.Records(clock)
        self.immunizations = Immunizations(clock)
        self.accounts = Accounts(clock)
        self.terminals = Terminals(clock, token_secret, trust)

    # --- the person ----------------------------------------------------------------------------
    def _ids(self, uow: UnitOfWork, resident_id: str) -> list[str]:
        """The person's ids: the survivor first, then every resident merged into it."""
        return self.mpi.linked_ids(uow, self.mpi.survivor(uow, resident_id))

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

    def _card(self, uow: UnitOfWork, card_number: str, chip_serial: str, *, live: bool) -> t.Card:
        """The card row of ``card_number`` whose chip is ``chip_serial``.  ``live``: the chip must
        be the card's current, usable chip (a swipe); otherwise any chip the number ever had (an
        upload of a visit made before the chip was replaced)."""
        chip = chip_serial.strip().upper()
        if len(chip) != 16 or any(c not in "0123456789ABCDEF" for c in chip):
            raise InvalidValue("chip_serial", "16 hex digits (the chip serial of the card's ATR)")
        row = uow.session.scalars(select(t.Card).where(t.Card.chip_serial == chip)).first()
        if row is None or row.card_number != card_number:
            raise NotFound("card", f"{card_number} with chip {chip}")
        if live:
            if row.status == "LOST":
                raise HotListed(
                    f"card {card_number} is reported lost", card_number=card_number, reason="lost"
                )
            if row.status not in USABLE_CARD:
                raise HotListed(
                    f"chip {chip} of card {card_number} is {row.status.lower()}",
                    card_number=card_number,
                    reason=row.status.lower(),
                )
        return row

    def resolve(self, actor: Actor, system: str, value: str, assigner: str = "") -> str:
        """The resident an identifier belongs to (card number, ID number, a hospital's visit card
        …), if the caller may see that resident's demographics."""
        with self.db.uow() as uow:
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
        with self.db.uow() as uow:
            card = self._card(uow, card_number, chip_serial, live=True)
            ids = self._ids(uow, card.resident_id)
            use = t.CardUse(
                resident_id=ids[0],
                card_number=card_number,
                chip_serial=card.chip_serial,
                institution_code=actor.institution_code,
                terminal_id=actor.id,
                terminal_kind=terminal_kind[:16],
                stage=stage,
                at=now,
            )
            uow.session.add(use)
            uow.flush()
            grant = self.access.grant_presence(
                uow, resident_id=ids[0], institution_code=actor.institution_code, card_use_id=use.id
            )
            decision = self.access.check(
                uow, actor, ids, Category.SUMMARY, what="summary", why=f"swipe {stage}"
            )
            summary = self.records.summary(uow, ids, hidden=decision.hidden)
            uow.commit()
            return Swipe(
                ids[0], card_number, use.id, GrantInfo(actor.institution_code, grant.expires_at), summary
            )

    # --- reading the record --------------------------------------------------------------------
    def summary(self, actor: Actor, resident_id: str) -> rec.SummaryView:
        with self._record(actor, resident_id, Category.SUMMARY, what="summary") as (uow, ids, decision):
            return self.records.summary(uow, ids, hidden=decision.hidden)

    def archive(self, actor: Actor, resident_id: str) -> rec.ArchiveView | None:
        with self._record(actor, resident_id, Category.ARCHIVE, what="archive") as (uow, ids, _):
            return self.records.archive(uow, ids[0])

    def encounters(
        self, actor: Actor, resident_id: str, *, kind: str | None = None, limit: int = 50
    ) -> list[rec.EncounterView]:
        with self._record(actor, resident_id, Category.ENCOUNTERS, what="encounters") as (uow, ids, decision):
            return self.records.encounters(uow, ids, hidden=decision.hidden, kind=kind, limit=limit)

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
        """Writing to an encounter: allowed to write the person's encounters, and the encounter
        is one of the caller's own institution."""
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
        """The ED item values the terminal writes to the card for this encounter."""
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
            raise InvalidValue("card_slot", "the card keeps outpatient records in ED01 to ED05")
        with self._own_encounter(actor, resident_id, encounter_id, "close") as (uow, ids):
            return self.records.close_encounter(
                uow,
                ids[0],
                encounter_id,
                fees=tuple(fees),
                payment_method=payment_method,
                card_slot=card_slot,
            )

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
            self.access.grant_presence(
                uow, resident_id=ids[0], institution_code=actor.institution_code, card_use_id=use.id
            )
            self.access.check(
                uow, actor, ids, Category.ENCOUNTERS, Action.WRITE, what="encounter", why="offline upload"
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
        if actor.role == Role.ADMIN:
            return
        raise PermissionDenied(f"area {area_code} is not in your area")

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

    # --- the resident's controls ---------------------------------------------------------------
    def break_glass(self, actor: Actor, resident_id: str, *, reason: str) -> GrantView:
        with self.db.uow() as uow:
            grant = self.access.break_glass(uow, actor, self._ids(uow, resident_id)[0], reason=reason)
            uow.commit()
            return grant

    def hide(self, actor: Actor, resident_id: str, category: str, hidden: bool) -> frozenset[str]:
        with self.db.uow() as uow:
            result = self.access.hide(uow, actor, self._ids(uow, resident_id)[0], category, hidden)
            uow.commit()
            return result

    def hidden(self, actor: Actor, resident_id: str) -> frozenset[str]:
        with self._record(actor, resident_id, Category.AUDIT, what="hidden categories") as (uow, ids, _):
            return self.access.hidden_of(uow, ids)

    def who_looked(self, actor: Actor, resident_id: str, *, limit: int = 100) -> list[AuditView]:
        with self._record(actor, resident_id, Category.AUDIT, what="who looked") as (uow, ids, _):
            return self.audit.who_looked(uow, ids, limit=limit)

    def notifications(self, actor: Actor, resident_id: str) -> list[NotificationView]:
        with self._record(actor, resident_id, Category.AUDIT, what="notifications") as (uow, ids, _):
            return self.access.notifications(uow, ids[0])

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
            return resident, identifiers, card

    def fhir_rows(self, actor: Actor, resident_id: str, resource: str, *, limit: int = 100) -> list[t.Base]:
        """The rows behind a FHIR search ``resource?patient=resident_id``, newest first, with the
        categories the resident hides left out (unless the caller may see them)."""
        category, source = self.FHIR_SOURCES[resource]
        table: Any = source  # every source has resident_id, id and category columns
        with self._record(actor, resident_id, category, what=resource, why="fhir") as (uow, ids, decision):
            query = select(table).where(table.resident_id.in_(ids))
            if decision.hidden and hasattr(table, "category"):
                query = query.where(table.category.not_in(sorted(decision.hidden)))
            return list(uow.session.scalars(query.order_by(table.id.desc()).limit(limit)))

    def institution_names(self, codes: set[str]) -> dict[str, str]:
        """Reference data (not personal): institution code → name."""
        if not codes:
            return {}
        with self.db.uow() as uow:
            rows = uow.session.execute(
                select(t.Institution.code, t.Institution.name).where(t.Institution.code.in_(sorted(codes)))
            )
            return {code: name for code, name in rows}

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

    def review_queue(self, actor: Actor) -> list[CandidateView]:
        self._steward(actor)
        with self.db.uow() as uow:
            return self.mpi.queue(uow)


__all__ = ["STAGES", "GrantInfo", "Node", "Swipe", "Upload"]
