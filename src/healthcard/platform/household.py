"""Household proxy links (家庭代理): a parent or guardian sees a minor child's vaccinations.

A child has no portal account of their own worth the name; their vaccination plan is their
parent's business.  A **link** from a guardian resident to a dependant resident says so:

* **established** by card-centre or registration staff (:data:`ESTABLISHERS`) at a collection
  point, on **evidence** they saw — the 户口簿 (household register) or the 出生医学证明 (birth
  certificate) and its number (:class:`Evidence`, 4–40 characters as written on it);
* **relation** (:class:`Relation`): ``parent`` or ``guardian`` (another guardian under 民法典
  art. 27: a grandparent, an older sibling, a person appointed by the residents' committee).
  GB/T 4761 (家庭关系代码) is not used on purpose: it codes a person's relation to the head of the
  household register, not who is a child's guardian;
* **valid** from ``valid_from`` (default today) until the day before ``valid_until`` — by
  default, and at the latest, the dependant's 18th birthday (:func:`~healthcard.platform.access.
  coming_of_age`): a child who comes of age is nobody's dependant;
* **revoked** by staff with a reason (a custody change, an error); never deleted.

The database keeps one unrevoked link per (guardian, dependant): a new link for a pair whose
link has merely ended (a temporary guardianship) closes the old one in the same transaction.

What the link allows is the access policy's business, not this module's: the
:attr:`~healthcard.platform.access.Relationship.PROXY` tie lets the guardian's resident account
read the dependant's IMMUNIZATION and DEMOGRAPHICS (name and age) — nothing else — and every such
read is audited on the child's record with the guardian as the actor, so the child's "who
looked" shows it.  The portal addresses a dependant by the **link id**, never by a resident id:
:meth:`HouseholdDesk.vaccinations` finds the link among the logged-in guardian's own, and someone
else's link is "not found".

:class:`Households` works inside a caller's transaction (the demo city seeds with it);
:class:`HouseholdDesk` holds the use cases with the :class:`~healthcard.platform.access.Actor`:
one transaction each, the role checked, audited.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from healthcard.clock import Clock, local_date
from healthcard.errors import Duplicate, InvalidValue, NotFound, PermissionDenied, TransitionRefused
from healthcard.platform.access import Access, Action, Actor, Category, Role, coming_of_age
from healthcard.platform.audit import Audit
from healthcard.platform.desk import Desk
from healthcard.platform.immunization import DoseStatus, DoseView, Immunizations
from healthcard.platform.mpi import Mpi
from healthcard.storage import tables as t
from healthcard.storage.db import Database
from healthcard.storage.uow import UnitOfWork


class Relation(StrEnum):
    """How the guardian stands to the dependant."""

    PARENT = "parent"  # 父母
    GUARDIAN = "guardian"  # 其他监护人 (民法典 art. 27)


class Evidence(StrEnum):
    """The document the staff saw."""

    HUKOU = "hukou"  # 户口簿: the household register, both on the same page or linked pages
    BIRTH_CERTIFICATE = "birth-certificate"  # 出生医学证明: names the mother and the father


class LinkState(StrEnum):
    LIVE = "live"  # valid today, not revoked: the guardian sees the dependant
    PENDING = "pending"  # valid_from is still ahead
    ENDED = "ended"  # valid_until has come (by default: the dependant turned 18)
    REVOKED = "revoked"  # revoked by staff (whatever the dates say)


#: who establishes and revokes links: a collection point's or a desk's staff, who see the papers
ESTABLISHERS = (Role.CARD_ADMIN, Role.REGISTRATION)
#: the evidence's number as written: 4 to 40 characters (a 户口簿 number, a birth certificate's
#: letter-and-digits serial)
EVIDENCE_LENGTH = (4, 40)
MAX_REASON = 200


@dataclass(frozen=True)
class LinkView:
    """A household link, as staff see it."""

    id: int
    guardian_id: str
    dependant_id: str
    relation: str
    evidence_kind: str
    evidence: str
    valid_from: dt.date
    valid_until: dt.date
    established_at: dt.datetime
    established_by: str
    institution_code: str | None
    revoked_at: dt.datetime | None
    revoked_by: str | None
    revoke_reason: str | None
    state: LinkState  # on the day it was read


@dataclass(frozen=True)
class DependantView:
    """A dependant as their guardian sees them: the link's id (the portal's address of the
    child), the name and age — no ID number, no address."""

    link_id: int
    resident_id: str
    relation: str
    name: str
    sex: int
    birth_date: dt.date
    age_months: int
    valid_until: dt.date


@dataclass(frozen=True)
class DependantVaccinations:
    """What the guardian's portal shows of one dependant: the same plan and doses as the
    child's own page would."""

    dependant: DependantView
    plan: list[DoseStatus]
    doses: list[DoseView]


def _state(row: t.HouseholdLink, today: dt.date) -> LinkState:
    if row.revoked_at is not None:
        return LinkState.REVOKED
    if today < row.valid_from:
        return LinkState.PENDING
    if today >= row.valid_until:
        return LinkState.ENDED
    return LinkState.LIVE


def _view(row: t.HouseholdLink, today: dt.date) -> LinkView:
    return LinkView(
        row.id,
        row.guardian_id,
        row.dependant_id,
        row.relation,
        row.evidence_kind,
        row.evidence,
        row.valid_from,
        row.valid_until,
        row.established_at,
        row.established_by,
        row.institution_code,
        row.revoked_at,
        row.revoked_by,
        row.revoke_reason,
        _state(row, today),
    )


def age_months(birth: dt.date, today: dt.date) -> int:
    """Whole months of age on ``today``."""
    return (today.year - birth.year) * 12 + today.month - birth.month - (today.day < birth.day)


def _choice(field: str, value: str, kind: type[StrEnum]) -> str:
    if value not in {k.value for k in kind}:
        raise InvalidValue(field, f"{value!r}: one of {', '.join(k.value for k in kind)}")
    return value


class Households:
    """The links, inside the caller's transaction; no policy (the desk checks who calls)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def _resident(self, uow: UnitOfWork, field: str, resident_id: str) -> t.Resident:
        row = uow.session.get(t.Resident, resident_id) if resident_id else None
        if row is None:
            raise InvalidValue(field, f"no resident {resident_id!r}")
        if row.merged_into is not None:  # a merged duplicate: the link is the survivor's
            survivor = uow.session.get(t.Resident, row.merged_into)
            if survivor is None:
                raise InvalidValue(field, f"resident {resident_id!r} was merged into an unknown one")
            return survivor
        return row

    def establish(
        self,
        uow: UnitOfWork,
        *,
        guardian_id: str,
        dependant_id: str,
        relation: str,
        evidence_kind: str,
        evidence: str,
        by: str,
        institution_code: str | None = None,
        valid_from: dt.date | None = None,
        valid_until: dt.date | None = None,
    ) -> LinkView:
        """A new link; every refusal is a field-named error raised before anything is written."""
        today = local_date(self.clock)
        guardian = self._resident(uow, "guardian_id", guardian_id)
        dependant = self._resident(uow, "dependant_id", dependant_id)
        if guardian.resident_id == dependant.resident_id:
            raise InvalidValue("dependant_id", "a resident cannot be their own dependant")
        _choice("relation", relation, Relation)
        _choice("evidence_kind", evidence_kind, Evidence)
        evidence = " ".join(evidence.split())
        low, high = EVIDENCE_LENGTH
        if not low <= len(evidence) <= high:
            raise InvalidValue(
                "evidence", f"the document's number as written on it: {low} to {high} characters"
            )
        of_age = coming_of_age(dependant.birth_date)
        if of_age <= today:
            raise InvalidValue("dependant_id", f"{dependant.name} is 18 or older: nobody's dependant")
        valid_from = valid_from or today
        valid_until = valid_until or of_age
        if valid_from < dependant.birth_date:
            raise InvalidValue("valid_from", f"{valid_from} is before the dependant's birth")
        if valid_until > of_age:
            raise InvalidValue("valid_until", f"at the latest the dependant's 18th birthday, {of_age}")
        if valid_until <= valid_from:
            raise InvalidValue("valid_until", f"after the link starts ({valid_from})")
        if valid_until <= today:
            raise InvalidValue("valid_until", "a link that has already ended")
        h = t.HouseholdLink
        pair = (h.guardian_id == guardian.resident_id, h.dependant_id == dependant.resident_id)
        standing = uow.session.scalars(select(h).where(*pair, h.revoked_at.is_(None))).first()
        if standing is not None and _state(standing, today) is not LinkState.ENDED:
            raise Duplicate(
                "dependant_id", f"{dependant.name} is already linked to this guardian (link {standing.id})"
            )
        now = self.clock.now()
        if standing is not None:  # ended without a revocation: closed, so the new one may stand
            standing.revoked_at, standing.revoked_by = now, by
            standing.revoke_reason = "ended; superseded by a new link"
        row = h(
            guardian_id=guardian.resident_id,
            dependant_id=dependant.resident_id,
            relation=relation,
            evidence_kind=evidence_kind,
            evidence=evidence,
            valid_from=valid_from,
            valid_until=valid_until,
            established_at=now,
            established_by=by,
            institution_code=institution_code,
        )
        try:  # two desks at once: the partial unique index decides, the transaction stays usable
            with uow.session.begin_nested():
                uow.session.add(row)
        except IntegrityError:
            raise Duplicate("dependant_id", f"{dependant.name} is already linked to this guardian") from None
        return _view(row, today)

    def get(self, uow: UnitOfWork, link_id: int) -> t.HouseholdLink:
        row = uow.session.get(t.HouseholdLink, link_id)
        if row is None:
            raise NotFound("household link", str(link_id))
        return row

    def revoke(self, uow: UnitOfWork, link_id: int, *, by: str, reason: str) -> LinkView:
        reason = " ".join(reason.split())
        if not reason:
            raise InvalidValue("reason", "why the link is revoked (a custody change, an error …)")
        if len(reason) > MAX_REASON:
            raise InvalidValue("reason", f"at most {MAX_REASON} characters")
        row = self.get(uow, link_id)
        if row.revoked_at is not None:
            raise TransitionRefused(f"household link {link_id} is already revoked")
        h = t.HouseholdLink
        now = self.clock.now()
        # compare-and-set: of two revocations at once, one wins and the other is refused
        done = uow.session.execute(
            update(h)
            .where(h.id == link_id, h.revoked_at.is_(None))
            .values(revoked_at=now, revoked_by=by, revoke_reason=reason)
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            raise TransitionRefused(f"household link {link_id} is already revoked")
        uow.session.refresh(row)
        return _view(row, local_date(self.clock))

    def links_of(self, uow: UnitOfWork, resident_ids: list[str]) -> list[LinkView]:
        """Every link the person is in, as guardian or dependant, revoked ones too; newest first."""
        h = t.HouseholdLink
        rows = uow.session.scalars(
            select(h)
            .where(or_(h.guardian_id.in_(resident_ids), h.dependant_id.in_(resident_ids)))
            .order_by(h.established_at.desc(), h.id.desc())
        )
        today = local_date(self.clock)
        return [_view(row, today) for row in rows]

    def live_dependants(self, uow: UnitOfWork, guardian_id: str) -> list[tuple[t.HouseholdLink, t.Resident]]:
        """The guardian's live links with their dependants, youngest child first."""
        h, r = t.HouseholdLink, t.Resident
        today = local_date(self.clock)
        rows = uow.session.execute(
            select(h, r)
            .join(r, r.resident_id == h.dependant_id)
            .where(
                h.guardian_id == guardian_id,
                h.revoked_at.is_(None),
                h.valid_from <= today,
                h.valid_until > today,
            )
            .order_by(r.birth_date.desc(), h.id)
        ).all()
        return [(link, child) for link, child in rows if coming_of_age(child.birth_date) > today]


class HouseholdDesk(Desk):
    """The use cases: staff establish, revoke and list links; a resident lists their dependants
    and reads a dependant's vaccinations through the policy's PROXY tie."""

    category: ClassVar[Category] = Category.IMMUNIZATION

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        access: Access,
        audit: Audit,
        mpi: Mpi,
        immunizations: Immunizations,
    ) -> None:
        super().__init__(db, clock, access=access, audit=audit, mpi=mpi)
        self.households = Households(clock)
        self.immunizations = immunizations

    # --- staff ---------------------------------------------------------------------------------
    @staticmethod
    def _staff(actor: Actor, what: str) -> None:
        if actor.role not in ESTABLISHERS:
            raise PermissionDenied(f"{what}: card-centre and registration staff, who see the papers")

    def establish(
        self,
        actor: Actor,
        *,
        guardian_id: str,
        dependant_id: str,
        relation: str,
        evidence_kind: str,
        evidence: str,
        valid_from: dt.date | None = None,
        valid_until: dt.date | None = None,
    ) -> LinkView:
        """A new link; audited on the guardian's and the dependant's record."""
        self._staff(actor, "household links")
        with self.db.uow() as uow:
            link = self.households.establish(
                uow,
                guardian_id=guardian_id,
                dependant_id=dependant_id,
                relation=relation,
                evidence_kind=evidence_kind,
                evidence=evidence,
                valid_from=valid_from,
                valid_until=valid_until,
                by=actor.id,
                institution_code=actor.institution_code,
            )
            self._audit(uow, actor, link, "establish")
            uow.commit()
            return link

    def revoke(self, actor: Actor, link_id: int, *, reason: str) -> LinkView:
        self._staff(actor, "household links")
        with self.db.uow() as uow:
            link = self.households.revoke(uow, link_id, by=actor.id, reason=reason)
            self._audit(uow, actor, link, "revoke")
            uow.commit()
            return link

    def _audit(self, uow: UnitOfWork, actor: Actor, link: LinkView, verb: str) -> None:
        why = f"{verb} {link.relation} {link.guardian_id} → {link.dependant_id}"
        for resident_id in (link.guardian_id, link.dependant_id):
            self.audit.record(
                uow, actor, action="write", what=f"household link {link.id}", why=why, resident_id=resident_id
            )

    def links(self, actor: Actor, resident_id: str) -> list[LinkView]:
        """Every link of a resident (as guardian or dependant), revoked and ended ones too."""
        self._staff(actor, "household links")
        with self.db.uow() as uow:
            ids = self.mpi.linked_ids(uow, resident_id)
            found = self.households.links_of(uow, ids)
            self.audit.record(
                uow, actor, action="read", what="household links", why="staff", resident_id=ids[0]
            )
            uow.commit()
            return found

    # --- the guardian --------------------------------------------------------------------------
    @staticmethod
    def _guardian(actor: Actor) -> str:
        if actor.role is not Role.RESIDENT or not actor.resident_id:
            raise PermissionDenied("dependants are their guardian's: a resident's own list")
        return actor.resident_id

    def _shown(self, uow: UnitOfWork, actor: Actor, link: t.HouseholdLink) -> tuple[DependantView, list[str]]:
        """The child's name and age, read through the policy (DEMOGRAPHICS under PROXY: audited
        on the child's record, the guardian as the actor); and the child's ids (survivor first)."""
        ids = self.mpi.linked_ids(uow, link.dependant_id)
        self.access.check(
            uow, actor, ids, Category.DEMOGRAPHICS, what="person", why=f"household link {link.id}"
        )
        child = uow.session.get(t.Resident, ids[0])
        assert child is not None  # the MPI resolved it
        today = local_date(self.clock)
        return DependantView(
            link.id,
            ids[0],
            link.relation,
            child.name,
            child.sex,
            child.birth_date,
            age_months(child.birth_date, today),
            link.valid_until,
        ), ids

    def dependants(self, actor: Actor, resident_id: str | None = None) -> list[DependantView]:
        """The logged-in resident's dependants (live links only), youngest first; ``resident_id``
        (the API's path) must be the resident's own."""
        guardian = self._guardian(actor)
        if resident_id is not None and resident_id != guardian:
            raise PermissionDenied("a resident lists their own dependants")
        with self.db.uow() as uow:
            shown = [
                self._shown(uow, actor, link)[0] for link, _ in self.households.live_dependants(uow, guardian)
            ]
            uow.commit()
            return shown

    def _own_link(self, uow: UnitOfWork, actor: Actor, link_id: int) -> t.HouseholdLink:
        """The guardian's own link ``link_id``; another guardian's link (or none) is "not
        found" — the id says nothing about whose it is."""
        guardian = self._guardian(actor)
        row = uow.session.get(t.HouseholdLink, link_id)
        if row is None or row.guardian_id != guardian:
            raise NotFound("dependant", str(link_id))
        return row

    def _live(self, link: t.HouseholdLink, link_id: int) -> None:
        # the policy allowed (some live link of the pair holds); this link must be that one —
        # an old, revoked link's id of a pair linked again shows nothing
        if _state(link, local_date(self.clock)) is not LinkState.LIVE:
            raise NotFound("dependant", str(link_id))

    def vaccinations(self, actor: Actor, link_id: int) -> DependantVaccinations:
        """A dependant's vaccination plan and doses, as on the child's own page: one transaction,
        the policy asked for DEMOGRAPHICS and IMMUNIZATION (both audited on the child's record)."""
        with self.db.uow() as uow:
            link = self._own_link(uow, actor, link_id)
            found = self._vaccinations(uow, actor, link)
            uow.commit()
            return found

    def all_vaccinations(self, actor: Actor) -> list[DependantVaccinations]:
        """Every dependant's plan (live links, youngest first) in one transaction: the guardian's
        own vaccination page."""
        guardian = self._guardian(actor)
        with self.db.uow() as uow:
            found = [
                self._vaccinations(uow, actor, link)
                for link, _ in self.households.live_dependants(uow, guardian)
            ]
            uow.commit()
            return found

    def _vaccinations(self, uow: UnitOfWork, actor: Actor, link: t.HouseholdLink) -> DependantVaccinations:
        shown, ids = self._shown(uow, actor, link)
        self._live(link, link.id)
        self.access.check(
            uow,
            actor,
            ids,
            Category.IMMUNIZATION,
            Action.READ,
            what="vaccination plan",
            why=f"household link {link.id}",
        )
        plan = self.immunizations.plan_for(uow, ids[0], local_date(self.clock))
        return DependantVaccinations(shown, plan, self.immunizations.doses(uow, ids))


__all__ = [
    "ESTABLISHERS",
    "EVIDENCE_LENGTH",
    "DependantVaccinations",
    "DependantView",
    "Evidence",
    "HouseholdDesk",
    "Households",
    "LinkState",
    "LinkView",
    "Relation",
    "age_months",
]
