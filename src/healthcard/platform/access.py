"""Who may see what (ARCHITECTURE.md §3 platform/access): the one policy module.

A request for a resident's data is three facts and a table:

* the **actor** — who calls, in which :class:`Role`, for which institution or area;
* the **category** of data asked for (:class:`Category`) and the :class:`Action` (read / write);
* the **relationship** between the actor and this resident (:class:`Relationship`), looked up
  from the database *now*: the resident themselves, a presence grant (the card was authenticated
  at a terminal of the actor's institution, 24 h), care (an open encounter there — appointments
  plug in through ``Access(care=…)``), break-glass (an emergency, granted to one account with a
  reason, 4 h, the resident is notified), the public-health area, a household proxy link (a
  guardian resident and a minor dependant: :mod:`healthcard.platform.household`), or merely
  "staff of some institution".

:data:`POLICY` is the table: for each (role, category, action) the relationships that allow it,
each row with the reason it exists (:data:`REASONS`).  :func:`decide` reads it and nothing else;
:meth:`Access.check` looks up the relationships, decides, and writes the audit entry — an allowed
access in the caller's transaction (so it commits with the work it describes), a refusal in a
transaction of its own (so that it survives the caller's rollback) — then returns the
:class:`Decision` or raises :class:`~healthcard.errors.PermissionDenied`.

Hidden categories: a resident may hide any :class:`Sensitivity` but ``general`` (psychiatric,
HIV, reproductive, substance use).  The decision carries them in ``hidden`` for every caller but
the resident themselves and break-glass; the records module filters those items in its queries.

Relationships are facts, not ranks of trust: a stronger tie does not by itself allow what a
weaker one allows (public health reads immunization of its *area*; that a card was swiped at a
CDC clinic does not widen that).  :meth:`Access.check` therefore tries every relationship the
table allows for the request and uses the strongest that holds; :meth:`Access.relationship`
answers the single strongest one for display.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sqlalchemy import BindParameter, and_, bindparam, case, delete, event, func, insert, or_, select, update

from healthcard.clock import SHANGHAI, Clock
from healthcard.errors import InvalidValue, NotFound, PermissionDenied
from healthcard.storage import tables as t

if TYPE_CHECKING:
    from healthcard.platform.audit import Audit
    from healthcard.storage.db import Database
    from healthcard.storage.uow import UnitOfWork


class Role(StrEnum):
    RESIDENT = "resident"  # 持卡人: their own record, through the portal or a kiosk
    CLINICIAN = "clinician"  # 医生: the full record under a presence grant, care or break-glass
    REGISTRATION = "registration"  # 挂号: identity and card, no clinical data
    CASHIER = "cashier"  # 收费: identity, fees and settlement
    PUBLIC_HEALTH = "public-health"  # 疾控: immunization of its area
    INSURER = "insurer"  # 新农合经办: settlement data, diagnoses only as a claim carries them
    CARD_ADMIN = "card-admin"  # 卡管: identity and card status
    AUDITOR = "auditor"  # the audit trail, no clinical data
    ADMIN = "admin"  # platform operator: accounts, terminals, institutions; no clinical data
    TERMINAL = "terminal"  # a card terminal logged in with its SAM (swipe, upload)
    BANK = "bank"  # 联名卡 bank: notices of the health accounts it holds (account named by its code)


class Category(StrEnum):
    """Categories of a resident's data, the columns of the policy table."""

    DEMOGRAPHICS = "demographics"  # name, sex, birth date, identifiers, addresses
    CARD = "card"  # card status and history
    SUMMARY = "summary"  # what the card carries: blood type, alerts, allergies
    ARCHIVE = "archive"  # 健康档案: history, family history
    ENCOUNTERS = "encounters"  # visits, diagnoses, labs, prescriptions, procedures
    IMMUNIZATION = "immunization"
    SETTLEMENT = "settlement"  # fees, claims
    AUDIT = "audit"  # who looked at the record
    APPOINTMENTS = "appointments"  # bookings, check-ins, no-show suspensions


class Sensitivity(StrEnum):
    """What a clinical item is about; a resident may hide any but ``general``."""

    GENERAL = "general"
    PSYCHIATRIC = "psychiatric"
    HIV = "hiv"
    REPRODUCTIVE = "reproductive"
    SUBSTANCE = "substance"


class Carrier(StrEnum):
    """How the caller came to the record."""

    CARD = "card"  # the card authenticated at a terminal
    QR = "qr"  # the resident's electronic health card (dynamic QR)
    LOGIN = "login"  # username + password
    TERMINAL = "terminal"  # a terminal's own SAM identity
    UPLOAD = "upload"  # an offline terminal's queued upload


@dataclass(frozen=True)
class Actor:
    """The caller of a platform service: who, in which role, for which institution / area."""

    id: str  # account username, or terminal id
    role: Role
    institution_code: str | None = None
    area_code: str | None = None  # public health: the GB/T 2260 prefix of its area
    resident_id: str | None = None  # a resident's own id
    carrier: Carrier = Carrier.LOGIN


class Action(StrEnum):
    READ = "read"
    WRITE = "write"


class Relationship(StrEnum):
    """How the actor stands to this resident now; declared strongest first."""

    SELF = "self"  # the actor is the resident (one of the person's linked ids)
    PROXY = "proxy"  # a resident with a live household link to this minor (household.py)
    BREAK_GLASS = "break-glass"  # an unexpired break-glass grant to this very account
    PRESENCE = "presence"  # the card (or QR) was authenticated at the actor's institution
    CARE = "care"  # an open encounter at the actor's institution (appointments: Access(care=…))
    AREA = "area"  # public health: the resident lives in the actor's area
    INSTITUTION = "institution"  # staff of an institution, no tie to this resident
    NONE = "none"  # nothing at all


#: strongest first (the order of declaration)
STRENGTH: tuple[Relationship, ...] = tuple(Relationship)


def strongest(relationships: Iterable[Relationship]) -> Relationship:
    """The strongest of ``relationships`` (NONE for none)."""
    held = set(relationships)
    return next((r for r in STRENGTH if r in held), Relationship.NONE)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    relationship: Relationship  # the tie the decision was made on
    why: str  # the policy row's reason, or what was missing (no personal data)
    hidden: frozenset[str]  # sensitivity categories the caller must not see


# ==== the table ====================================================================================
R = Relationship
#: the resident themselves only
_SELF = frozenset({R.SELF})
#: the resident themselves, or their guardian through a live household link
_SELF_OR_GUARDIAN = frozenset({R.SELF, R.PROXY})
#: a clinician's ties to a patient: the card present, in care here, or break-glass
_CLINICAL = frozenset({R.PRESENCE, R.CARE, R.BREAK_GLASS})
#: a desk's ties: the card present or the patient in care here (desks cannot break the glass)
_DESK = frozenset({R.PRESENCE, R.CARE})
#: the card present at this institution
_PRESENT = frozenset({R.PRESENCE})
#: staff of any institution; the ties that imply an institution are listed too, so the row
#: allows whichever of them :meth:`Access.relationship` reports as the strongest
_ANY_STAFF = frozenset({R.PRESENCE, R.CARE, R.BREAK_GLASS, R.INSTITUTION})
_AREA = frozenset({R.AREA})
_ANYONE = frozenset(Relationship)

_ALL = tuple(Category)
_RW = (Action.READ, Action.WRITE)
_R = (Action.READ,)
_W = (Action.WRITE,)
C = Category


@dataclass(frozen=True)
class Rule:
    """One row group of the table: ``role`` may do ``actions`` on ``categories`` under any of
    ``relationships``, because ``reason``."""

    role: Role
    categories: tuple[Category, ...]
    actions: tuple[Action, ...]
    relationships: frozenset[Relationship]
    reason: str


#: Every grant of the policy; anything not listed is refused.  No role writes AUDIT: the audit
#: log is written by the platform itself (healthcard.platform.audit), never through an endpoint.
RULES: tuple[Rule, ...] = (
    # --- 持卡人 ---------------------------------------------------------------------------------
    Rule(
        Role.RESIDENT,
        tuple(c for c in _ALL if c not in (C.DEMOGRAPHICS, C.IMMUNIZATION)),
        _R,
        _SELF,
        "a resident sees all of their own record, and who looked at it",
    ),
    Rule(
        Role.RESIDENT,
        (C.DEMOGRAPHICS, C.IMMUNIZATION),
        _R,
        _SELF_OR_GUARDIAN,
        "a resident sees their own; a parent or guardian with a live household link sees a "
        "minor dependant's vaccinations, and the name and age to show them — nothing else",
    ),
    Rule(
        Role.RESIDENT,
        (C.DEMOGRAPHICS, C.CARD),
        _W,
        _SELF,
        "a resident updates their own contact details and reports their own card lost",
    ),
    Rule(
        Role.RESIDENT,
        (C.APPOINTMENTS,),
        _W,
        _SELF,
        "a resident books and cancels their own appointments (portal, or a kiosk with the card)",
    ),
    Rule(
        Role.RESIDENT,
        (C.SETTLEMENT,),
        _W,
        _SELF,
        "a resident opens, freezes and closes their own health account (its money is theirs)",
    ),
    # --- 医生 -----------------------------------------------------------------------------------
    Rule(
        Role.CLINICIAN,
        (C.DEMOGRAPHICS, C.CARD, C.SUMMARY, C.ARCHIVE, C.ENCOUNTERS, C.IMMUNIZATION),
        _R,
        _CLINICAL,
        "a clinician reads the full record with the card present, a patient in care here, or by break-glass",
    ),
    Rule(
        Role.CLINICIAN,
        (C.SUMMARY, C.ARCHIVE, C.ENCOUNTERS, C.IMMUNIZATION),
        _W,
        _CLINICAL,
        "a clinician records the visit of a patient they may read; an emergency is documented too",
    ),
    Rule(
        Role.CLINICIAN,
        (C.APPOINTMENTS,),
        _R,
        _CLINICAL,
        "a clinician sees the appointments of a patient they may read (a referral, a follow-up)",
    ),
    Rule(
        Role.CLINICIAN,
        (C.APPOINTMENTS,),
        _W,
        _DESK,
        "a clinician refers a patient whose card is present or who is in care here upward (the "
        "referral pool of a higher-level institution); an emergency needs no booking",
    ),
    # --- 挂号 -----------------------------------------------------------------------------------
    Rule(
        Role.REGISTRATION,
        (C.DEMOGRAPHICS, C.CARD),
        _R,
        _DESK,
        "the desk identifies a patient with the card present or in care here, "
        "not any resident of the province",
    ),
    Rule(Role.REGISTRATION, (C.DEMOGRAPHICS,), _W, _DESK, "the desk corrects contact details of its patient"),
    Rule(
        Role.REGISTRATION,
        (C.ENCOUNTERS,),
        _W,
        _DESK,
        "挂号 opens the visit (number, department); reading visits is clinical and stays closed",
    ),
    Rule(
        Role.REGISTRATION,
        (C.APPOINTMENTS,),
        _RW,
        _DESK,
        "the desk books, cancels and reads the appointments of a patient whose card is present or "
        "who is in care here, and lifts a no-show suspension",
    ),
    # --- 收费 -----------------------------------------------------------------------------------
    Rule(Role.CASHIER, (C.DEMOGRAPHICS, C.CARD), _R, _DESK, "the cashier identifies the payer of the visit"),
    Rule(
        Role.CASHIER,
        (C.SETTLEMENT,),
        _RW,
        _DESK,
        "the cashier settles the bill of a visit at this institution",
    ),
    # --- 疾控 -----------------------------------------------------------------------------------
    Rule(
        Role.PUBLIC_HEALTH,
        (C.IMMUNIZATION,),
        _RW,
        _AREA,
        "public health keeps the immunization records of residents of its area",
    ),
    Rule(
        Role.PUBLIC_HEALTH,
        (C.DEMOGRAPHICS,),
        _R,
        _AREA,
        "due and overdue lists need the child's name, birth date and address in its area",
    ),
    # --- 新农合经办 -------------------------------------------------------------------------------
    Rule(
        Role.INSURER,
        (C.SETTLEMENT,),
        _R,
        _ANY_STAFF,
        "the fund reviews settlements wherever its insured were treated (cross-region care); "
        "a claim carries its own diagnoses, so encounters stay closed",
    ),
    # --- 卡管 -----------------------------------------------------------------------------------
    Rule(
        Role.CARD_ADMIN,
        (C.DEMOGRAPHICS, C.CARD),
        _RW,
        _ANY_STAFF,
        "the card centre issues, replaces and cancels anyone's card; no clinical data",
    ),
    # --- 审计 -----------------------------------------------------------------------------------
    Rule(
        Role.AUDITOR, (C.AUDIT,), _R, _ANYONE, "the auditor reads anyone's audit trail and nothing clinical"
    ),
    # --- platform admin: no rows (accounts, terminals and institutions are no resident's data) ---
    # --- bank: no rows (it has no tie to a resident the table could name: the health-account desk
    #     lets it book notices of the accounts it holds, and audits them) ---
    # --- 终端 (a terminal logged in with its SAM) -------------------------------------------------
    Rule(
        Role.TERMINAL,
        (C.DEMOGRAPHICS, C.SUMMARY),
        _R,
        _PRESENT,
        "the terminal shows the holder and the summary of the card in its slot",
    ),
    Rule(
        Role.TERMINAL,
        (C.CARD,),
        _R,
        _ANY_STAFF,
        "a terminal checks a card's status before it authenticates; the hot list is published "
        "to every terminal anyway",
    ),
    Rule(
        Role.TERMINAL,
        (C.CARD, C.SUMMARY, C.ENCOUNTERS, C.IMMUNIZATION),
        _W,
        _PRESENT,
        "the terminal records the swipe and uploads what it wrote on the card (the visit, a dose, "
        "the summary); an offline upload grants presence from the card use it carries",
    ),
    Rule(
        Role.TERMINAL,
        (C.ENCOUNTERS,),
        _R,
        _PRESENT,
        "the terminal fetches the visit it writes back to the card in its slot (the ED record)",
    ),
    Rule(
        Role.TERMINAL,
        (C.APPOINTMENTS,),
        _W,
        _PRESENT,
        "the card swiped at check-in checks in its holder's appointment of today here",
    ),
)


Key = tuple[Role, Category, Action]


def _table(rules: Sequence[Rule]) -> tuple[dict[Key, frozenset[Relationship]], dict[Key, str]]:
    policy: dict[Key, frozenset[Relationship]] = {}
    reasons: dict[Key, str] = {}
    for rule in rules:
        for category in rule.categories:
            for action in rule.actions:
                key = (rule.role, category, action)
                if key in policy:  # one row, one reason: a second rule would hide the first
                    raise ValueError(f"policy row {key} is listed twice")
                policy[key] = rule.relationships
                reasons[key] = rule.reason
    return policy, reasons


_policy, _reasons = _table(RULES)
#: THE table: (role, category, action) → the relationships that allow it; missing = never
POLICY: Mapping[Key, frozenset[Relationship]] = MappingProxyType(_policy)
#: why each row of :data:`POLICY` exists
REASONS: Mapping[Key, str] = MappingProxyType(_reasons)


def _names(relationships: Iterable[Relationship]) -> str:
    ordered = [r.value for r in STRENGTH if r in set(relationships)]
    return ordered[0] if len(ordered) == 1 else ", ".join(ordered[:-1]) + " or " + ordered[-1]


def decide(
    actor: Actor,
    category: Category,
    action: Action,
    relationship: Relationship,
    hidden: frozenset[str] = frozenset(),
) -> Decision:
    """What the table says about ``actor`` doing ``action`` on ``category`` of a resident it
    stands to as ``relationship``; ``hidden`` (the resident's hidden categories) is passed on
    unless the actor is the resident or broke the glass.  Pure: no database, no clock."""
    key = (actor.role, category, action)
    allowed_by = POLICY.get(key, frozenset())
    shown = (
        frozenset() if relationship in (Relationship.SELF, Relationship.BREAK_GLASS) else frozenset(hidden)
    )
    if relationship in allowed_by:
        return Decision(True, relationship, REASONS[key], shown)
    if not allowed_by:
        why = f"{actor.role.value} may never {action.value} {category.value}"
    else:
        why = (
            f"{actor.role.value} may {action.value} {category.value} only under "
            f"{_names(allowed_by)} (has {relationship.value})"
        )
    return Decision(False, relationship, why, shown)


# ==== views ========================================================================================
@dataclass(frozen=True)
class GrantView:
    id: int
    resident_id: str
    institution_code: str
    reason: str  # card | qr | break-glass
    granted_to: str | None  # break-glass: the one account
    why: str | None
    granted_at: dt.datetime
    expires_at: dt.datetime


@dataclass(frozen=True)
class NotificationView:
    id: int
    resident_id: str
    kind: str
    message: str
    at: dt.datetime
    read_at: dt.datetime | None


def _grant_view(row: t.PresenceGrant) -> GrantView:
    return GrantView(
        row.id,
        row.resident_id,
        row.institution_code,
        row.reason,
        row.granted_to,
        row.why,
        row.granted_at,
        row.expires_at,
    )


#: a source of CARE besides open encounters: (uow, actor, resident ids, now) → in care?
#: The appointments module plugs in "an appointment at the actor's institution today" here.
CareSource = Callable[["UnitOfWork", Actor, Sequence[str], dt.datetime], bool]

PRESENCE_REASONS = ("card", "qr")
BREAK_GLASS = "break-glass"
MIN_REASON = 10
_PENDING = "healthcard.access.pending_denials"
_HOOKED = "healthcard.access.hooked"


@dataclass(frozen=True)
class _Denial:
    actor: Actor
    resident_id: str | None
    what: str
    why: str
    at: dt.datetime


# ==== the statements =============================================================================
# Built once: SQLAlchemy caches their compiled form, and Core statements on the tables skip the
# ORM's per-row work.  The checks run at every access (a swipe: several per second per terminal).
_GRANTS = t.PresenceGrant.metadata.tables[t.PresenceGrant.__tablename__]
_g = _GRANTS.c
_e = t.Encounter.metadata.tables[t.Encounter.__tablename__].c
_r = t.Resident.metadata.tables[t.Resident.__tablename__].c
_h = t.HiddenCategory.metadata.tables[t.HiddenCategory.__tablename__].c
_IDS: BindParameter[str] = bindparam("ids", expanding=True)
_BROKE_GLASS = and_(_g.reason == BREAK_GLASS, _g.granted_to == bindparam("account"))
_PRESENT_HERE = and_(_g.reason.in_(PRESENCE_REASONS), _g.institution_code == bindparam("institution"))
_UNEXPIRED = (_g.resident_id.in_(_IDS), _g.expires_at > bindparam("now", type_=_g.expires_at.type))
#: the grant ties of an actor: its own break-glass grants, and presence at its institution
_GRANTS_HERE = select(_g.reason).where(*_UNEXPIRED, or_(_BROKE_GLASS, _PRESENT_HERE)).distinct()
_GRANTS_TO = select(_g.reason).where(*_UNEXPIRED, _BROKE_GLASS).distinct()
#: an open encounter at the actor's institution ("open": records.EncounterStatus.OPEN — records
#: imports this module, not the reverse)
_OPEN_HERE = (
    select(_e.id)
    .where(_e.resident_id.in_(_IDS), _e.institution_code == bindparam("institution"), _e.status == "open")
    .limit(1)
)
_IN_AREA = (
    select(_r.resident_id)
    .where(_r.resident_id.in_(_IDS), _r.area_code.startswith(bindparam("area")))
    .limit(1)
)
_HIDDEN = select(_h.category).where(_h.resident_id.in_(_IDS))
_LINKS = t.HouseholdLink.metadata.tables[t.HouseholdLink.__tablename__]
_l = _LINKS.c
#: a live household link from the guardian to the person, who is still a minor (the link's end
#: is the 18th birthday at the latest; the birth date is read again in case it was corrected)
_PROXY = (
    select(_l.id)
    .join_from(
        _LINKS, t.Resident.metadata.tables[t.Resident.__tablename__], _r.resident_id == _l.dependant_id
    )
    .where(
        _l.guardian_id == bindparam("guardian"),
        _l.dependant_id.in_(_IDS),
        _l.revoked_at.is_(None),
        _l.valid_from <= bindparam("today", type_=_l.valid_from.type),
        _l.valid_until > bindparam("today", type_=_l.valid_until.type),
        _r.birth_date > bindparam("adult_born", type_=_r.birth_date.type),
    )
    .limit(1)
)
#: a re-swipe: the newest unexpired card / QR grant at the institution, extended (never shortened)
_NEWEST_GRANT = (
    select(_g.id)
    .where(
        _g.resident_id == bindparam("resident"),
        _g.institution_code == bindparam("institution"),
        _g.reason.in_(PRESENCE_REASONS),
        _g.expires_at > bindparam("now", type_=_g.expires_at.type),
    )
    .order_by(_g.expires_at.desc())
    .limit(1)
    .scalar_subquery()
)
_NEW_EXPIRY = bindparam("expires", type_=_g.expires_at.type)
_EXTEND_GRANT = (
    update(_GRANTS)
    .where(_g.id == _NEWEST_GRANT)
    .values(
        expires_at=case((_g.expires_at > _NEW_EXPIRY, _g.expires_at), else_=_NEW_EXPIRY),
        card_use_id=func.coalesce(bindparam("use", type_=_g.card_use_id.type), _g.card_use_id),
        reason=bindparam("why_reason"),
    )
    .returning(_g.id, _g.granted_to, _g.why, _g.granted_at, _g.expires_at)
)
_NEW_GRANT = (
    insert(_GRANTS)
    .values(
        resident_id=bindparam("resident"),
        institution_code=bindparam("institution"),
        card_use_id=bindparam("use", type_=_g.card_use_id.type),
        reason=bindparam("why_reason"),
        granted_to=None,
        why=None,
        granted_at=bindparam("now", type_=_g.granted_at.type),
        expires_at=_NEW_EXPIRY,
    )
    .returning(_g.id)
)


#: a dependant comes of age at 18 (民法典 art. 17) and is no longer anyone's dependant
ADULT_YEARS = 18


def adults_born_by(today: dt.date) -> dt.date:
    """The latest birth date of someone who is an adult on ``today``: 18 years before (29
    February → 28 February), so that :func:`coming_of_age` and this agree on every day."""
    try:
        return today.replace(year=today.year - ADULT_YEARS)
    except ValueError:  # today is 29 February, 18 years ago was no leap year
        return dt.date(today.year - ADULT_YEARS, 2, 28)


def coming_of_age(birth: dt.date) -> dt.date:
    """The 18th birthday: the first day ``birth``'s child is an adult (born on 29 February: on
    1 March of a year without one)."""
    try:
        return birth.replace(year=birth.year + ADULT_YEARS)
    except ValueError:
        return dt.date(birth.year + ADULT_YEARS, 3, 1)


def _autoflush(uow: UnitOfWork) -> None:
    """Flush pending ORM changes before the Core statements read, as an ORM query would."""
    if uow.session.autoflush:
        uow.session.flush()


# ==== the service ==================================================================================
class Access:
    """The policy applied to the database: relationships, grants, hidden categories, checks."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        audit: Audit,
        grant_hours: int = 24,
        break_glass_hours: int = 4,
        *,
        care: Sequence[CareSource] = (),
    ) -> None:
        if grant_hours <= 0 or break_glass_hours <= 0:
            raise ValueError("grants must last a positive number of hours")
        self.db = db
        self.clock = clock
        self.audit = audit
        self.grant_hours = grant_hours
        self.break_glass_hours = break_glass_hours
        self.care = tuple(care)

    # --- relationships -------------------------------------------------------------------------
    @staticmethod
    def _ids(resident_ids: Sequence[str]) -> list[str]:
        if isinstance(resident_ids, str):  # a bare id would be read as its characters
            raise InvalidValue("resident_ids", "a sequence of the person's linked ids, not one string")
        ids = list(dict.fromkeys(i for i in resident_ids if i))
        if not ids:
            raise InvalidValue("resident_ids", "whose record: at least one resident id")
        return ids

    def _holding(
        self, uow: UnitOfWork, actor: Actor, ids: Sequence[str], wanted: Iterable[Relationship]
    ) -> set[Relationship]:
        """Which of ``wanted`` hold now; one indexed query per kind of tie asked for, none for
        ties the request cannot use."""
        wanted = set(wanted)
        now = self.clock.now()
        held: set[Relationship] = set()
        if R.SELF in wanted and actor.resident_id is not None and actor.resident_id in ids:
            held.add(R.SELF)
        if R.PROXY in wanted and R.SELF not in held and self._guardian(uow, actor, ids, now):
            held.add(R.PROXY)
        if wanted & {R.BREAK_GLASS, R.PRESENCE}:
            held |= self._grants(uow, actor, ids, now) & wanted
        if R.CARE in wanted and actor.institution_code and self._in_care(uow, actor, ids, now):
            held.add(R.CARE)
        if (
            R.AREA in wanted
            and actor.role is Role.PUBLIC_HEALTH
            and actor.area_code
            and uow.session.execute(_IN_AREA, {"ids": ids, "area": actor.area_code}).first()
        ):
            held.add(R.AREA)
        if R.INSTITUTION in wanted and actor.institution_code:
            held.add(R.INSTITUTION)
        if R.NONE in wanted:
            held.add(R.NONE)
        return held

    def _guardian(self, uow: UnitOfWork, actor: Actor, ids: Sequence[str], now: dt.datetime) -> bool:
        """A resident with a live household link to the person, who is still a minor today."""
        if actor.role is not Role.RESIDENT or not actor.resident_id:
            return False
        today = now.astimezone(SHANGHAI).date()
        params = {
            "guardian": actor.resident_id,
            "ids": ids,
            "today": today,
            "adult_born": adults_born_by(today),
        }
        return uow.session.execute(_PROXY, params).first() is not None

    def _grants(
        self, uow: UnitOfWork, actor: Actor, ids: Sequence[str], now: dt.datetime
    ) -> set[Relationship]:
        query = _GRANTS_HERE if actor.institution_code else _GRANTS_TO
        params = {"ids": ids, "now": now, "account": actor.id, "institution": actor.institution_code}
        reasons = uow.session.scalars(query, params)
        return {R.BREAK_GLASS if reason == BREAK_GLASS else R.PRESENCE for reason in reasons}

    def _in_care(self, uow: UnitOfWork, actor: Actor, ids: Sequence[str], now: dt.datetime) -> bool:
        open_here = uow.session.execute(
            _OPEN_HERE, {"ids": ids, "institution": actor.institution_code}
        ).first()
        return open_here is not None or any(source(uow, actor, ids, now) for source in self.care)

    def relationships(
        self, uow: UnitOfWork, actor: Actor, resident_ids: Sequence[str]
    ) -> frozenset[Relationship]:
        """Every relationship that holds between ``actor`` and the person now."""
        ids = self._ids(resident_ids)
        _autoflush(uow)
        return frozenset(self._holding(uow, actor, ids, STRENGTH))

    def relationship(self, uow: UnitOfWork, actor: Actor, resident_ids: Sequence[str]) -> Relationship:
        """The strongest relationship that holds now (``resident_ids``: the person's linked ids,
        merged duplicates included)."""
        return strongest(self.relationships(uow, actor, resident_ids))

    # --- the check -----------------------------------------------------------------------------
    def check(
        self,
        uow: UnitOfWork,
        actor: Actor,
        resident_ids: Sequence[str],
        category: Category,
        action: Action = Action.READ,
        *,
        what: str,
        why: str = "",
        known: frozenset[Relationship] = frozenset(),
        hidden: frozenset[str] | None = None,
    ) -> Decision:
        """Decide, audit, and return the decision — or raise PermissionDenied.

        Allowed: an audit entry (``read`` / ``write``) in ``uow``, committed with the caller's
        work; the decision carries the person's hidden categories unless SELF or BREAK_GLASS.
        Denied: a ``deny`` entry in a transaction of its own — at once when ``uow`` holds no
        transaction, otherwise as soon as the caller's transaction ends, commit or rollback (the
        caller's transaction may hold the database lock on SQLite, or the row lock of the same
        audit chain on PostgreSQL, so writing it from a second connection now could wait for
        ever) — then PermissionDenied saying which relationship was missing.

        ``known``: ties the caller made itself in this very transaction (the presence grant a
        swipe has just written) — they are not read back; only the ties the table allows that
        are *stronger* than the strongest of them are looked up, since only those could change
        the decision.  ``hidden``: the person's hidden categories, when the caller has just read
        them in this transaction (a swipe reads them with the card); otherwise they are read here."""
        if not what.strip():
            raise InvalidValue("what", "the resource being accessed, for the audit log")
        ids = self._ids(resident_ids)
        _autoflush(uow)
        allowed_by = POLICY.get((actor.role, category, action), frozenset())
        held = set(known & allowed_by)
        if held:
            floor = STRENGTH.index(strongest(held))
            held |= self._holding(uow, actor, ids, [r for r in allowed_by if STRENGTH.index(r) < floor])
        else:
            held = self._holding(uow, actor, ids, allowed_by)
        if held:
            tie = strongest(held)
        elif actor.resident_id is not None and actor.resident_id in ids:
            tie = R.SELF
        else:  # what the actor has without a query, for the message
            tie = R.INSTITUTION if actor.institution_code else R.NONE
        if not held or tie in (R.SELF, R.BREAK_GLASS):
            hidden = frozenset()
        elif hidden is None:
            hidden = frozenset(uow.session.scalars(_HIDDEN, {"ids": ids}))
        decision = decide(actor, category, action, tie, hidden)
        if not decision.allowed:
            self._deny(uow, actor, ids[0], what=what, why=f"{action.value}: {decision.why}")
            raise PermissionDenied(decision.why)
        self.audit.record(
            uow,
            actor,
            action=action.value,
            what=what,
            why=f"{tie.value}: {why}" if why else tie.value,
            resident_id=ids[0],
        )
        return decision

    def refuse_role(
        self, uow: UnitOfWork, actor: Actor, category: Category, action: Action = Action.READ, *, what: str
    ) -> None:
        """Refuse — before anything is looked up — what the table never allows ``actor``'s role
        (no row for its role, ``category`` and ``action``), audited like any refusal: a caller
        that may never read demographics learns nothing from a look-up either, not even whether
        the identifier it tried is known (a 404 for an unknown one would say so)."""
        if POLICY.get((actor.role, category, action)):
            return
        why = f"{actor.role.value} may never {action.value} {category.value}"
        self._deny(uow, actor, None, what=what, why=f"{action.value}: {why}")
        raise PermissionDenied(why)

    def _deny(self, uow: UnitOfWork, actor: Actor, resident_id: str | None, *, what: str, why: str) -> None:
        denial = _Denial(actor, resident_id, what, why, self.clock.now())
        session = uow.session
        if not session.in_transaction():
            self._write_denials([denial])
            return
        session.info.setdefault(_PENDING, []).append(denial)
        if not session.info.get(_HOOKED):
            session.info[_HOOKED] = True
            event.listen(session, "after_transaction_end", self._after_transaction_end)

    def _after_transaction_end(self, session: Any, transaction: Any) -> None:
        """The caller's transaction ended (commit, rollback or close): its connection is back in
        the pool and its locks are gone, so the denials can be written now."""
        if transaction.parent is not None:  # a savepoint or subtransaction: not yet
            return
        pending: list[_Denial] = session.info.pop(_PENDING, [])
        if pending:
            self._write_denials(pending)

    def _write_denials(self, denials: Sequence[_Denial]) -> None:
        with self.db.uow() as own:
            for d in denials:
                self.audit.record(
                    own,
                    d.actor,
                    action="deny",
                    what=d.what,
                    why=d.why,
                    resident_id=d.resident_id,
                    outcome="denied",
                    at=d.at,
                )
            own.commit()

    # --- presence and break-glass --------------------------------------------------------------
    def grant_presence(
        self,
        uow: UnitOfWork,
        *,
        resident_id: str,
        institution_code: str,
        card_use_id: int | None,
        reason: str = "card",
    ) -> GrantView:
        """The card (``reason`` card) or the electronic health card QR (qr) was authenticated at
        ``institution_code``: its staff may use the PRESENCE tie for ``grant_hours``.  A fresh
        swipe extends the unexpired grant rather than adding a row (one row per visit day)."""
        if reason not in PRESENCE_REASONS:
            raise InvalidValue("reason", f"{reason!r}: card or qr (break-glass has its own call)")
        if not resident_id:
            raise InvalidValue("resident_id", "whose card was presented")
        if not institution_code:
            raise InvalidValue("institution_code", "where the card was presented")
        now = self.clock.now()
        expires = now + dt.timedelta(hours=self.grant_hours)
        _autoflush(uow)
        params = {
            "resident": resident_id,
            "institution": institution_code,
            "now": now,
            "expires": expires,
            "use": card_use_id,
            "why_reason": reason,
        }
        # one round trip for a re-swipe: extend the newest unexpired grant (never shorten it)
        row = uow.session.execute(_EXTEND_GRANT, params).first()
        if row is not None:
            grant_id, granted_to, why, granted_at, expires = row
        else:
            grant_id = uow.session.execute(_NEW_GRANT, params).scalar_one()
            granted_to, why, granted_at = None, None, now
        return GrantView(
            grant_id, resident_id, institution_code, reason, granted_to, why, granted_at, expires
        )

    def break_glass(self, uow: UnitOfWork, actor: Actor, resident_id: str, *, reason: str) -> GrantView:
        """An emergency: ``actor`` (a clinician) reads the full record, hidden categories too, for
        ``break_glass_hours`` without the card.  The reason is required and kept; the resident is
        notified; the audit entry is ``break-glass``."""
        if actor.role is not Role.CLINICIAN or not actor.institution_code:
            why = "break-glass is for clinicians of an institution"
            self._deny(uow, actor, resident_id, what="break-glass", why=why)
            raise PermissionDenied(why)
        reason = " ".join(reason.split())
        if len(reason) < MIN_REASON:
            raise InvalidValue(
                "reason", f"say why the emergency needs the record (at least {MIN_REASON} characters)"
            )
        if len(reason) > 200:
            raise InvalidValue("reason", "at most 200 characters")
        if uow.session.get(t.Resident, resident_id) is None:
            raise NotFound("resident", resident_id)
        now = self.clock.now()
        row = t.PresenceGrant(
            resident_id=resident_id,
            institution_code=actor.institution_code,
            card_use_id=None,
            reason=BREAK_GLASS,
            granted_to=actor.id,
            why=reason,
            granted_at=now,
            expires_at=now + dt.timedelta(hours=self.break_glass_hours),
        )
        uow.session.add(row)
        institution = uow.session.get(t.Institution, actor.institution_code)
        where = f"{institution.name}（{actor.institution_code}）" if institution else actor.institution_code
        local = now.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
        message = (
            f"{local} {where}的医生 {actor.id} 因紧急情况（破窗访问）查看了您的健康记录，"
            f"有效期 {self.break_glass_hours} 小时。理由：{reason}"
        )
        uow.session.add(
            t.Notification(resident_id=resident_id, kind=BREAK_GLASS, message=message[:400], at=now)
        )
        uow.flush()
        self.audit.record(uow, actor, action=BREAK_GLASS, what="record", why=reason, resident_id=resident_id)
        return _grant_view(row)

    # --- hidden categories ---------------------------------------------------------------------
    def hide(
        self, uow: UnitOfWork, actor: Actor, resident_id: str, category: str, hidden: bool
    ) -> frozenset[str]:
        """The resident hides (or shows again) a sensitivity category of their own record;
        returns the categories hidden now.  Only the resident themselves may."""
        if actor.role is not Role.RESIDENT or actor.resident_id != resident_id:
            why = "only the resident hides categories of their own record"
            self._deny(uow, actor, resident_id, what="hidden categories", why=why)
            raise PermissionDenied(why)
        hideable = [s.value for s in Sensitivity if s is not Sensitivity.GENERAL]
        if category not in hideable:
            raise InvalidValue("category", f"{category!r}: one of {', '.join(hideable)}")
        h = t.HiddenCategory
        present = uow.session.get(h, (resident_id, category)) is not None
        if hidden and not present:
            uow.session.add(h(resident_id=resident_id, category=category, hidden_at=self.clock.now()))
        elif not hidden and present:
            uow.session.execute(delete(h).where(h.resident_id == resident_id, h.category == category))
        uow.flush()
        self.audit.record(
            uow,
            actor,
            action="write",
            what="hidden categories",
            why=f"self: {'hide' if hidden else 'show'} {category}",
            resident_id=resident_id,
        )
        return self.hidden(uow, resident_id)

    def hidden(self, uow: UnitOfWork, resident_id: str) -> frozenset[str]:
        """The categories ``resident_id`` hides."""
        return self.hidden_of(uow, [resident_id])

    def hidden_of(self, uow: UnitOfWork, resident_ids: Sequence[str]) -> frozenset[str]:
        """The categories hidden by any of the person's linked ids (a merged duplicate's choice
        still counts)."""
        h = t.HiddenCategory
        return frozenset(uow.session.scalars(select(h.category).where(h.resident_id.in_(list(resident_ids)))))

    # --- notifications -------------------------------------------------------------------------
    def notifications(self, uow: UnitOfWork, resident_id: str, limit: int = 50) -> list[NotificationView]:
        """The resident's notifications, newest first."""
        if not 1 <= limit <= 500:
            raise InvalidValue("limit", "1 to 500")
        n = t.Notification
        rows = uow.session.scalars(
            select(n).where(n.resident_id == resident_id).order_by(n.at.desc(), n.id.desc()).limit(limit)
        )
        return [NotificationView(r.id, r.resident_id, r.kind, r.message, r.at, r.read_at) for r in rows]

    def mark_read(self, uow: UnitOfWork, resident_ids: Sequence[str], notification_id: int) -> None:
        """The resident has seen a notification — one filed under any of the person's ids (a
        merged duplicate's too); marking it again changes nothing.  A notification that is not
        the person's is :class:`NotFound`, whether it is another's or no one's."""
        n = t.Notification
        mine = and_(n.resident_id.in_(list(resident_ids)), n.id == notification_id)
        if uow.session.execute(select(n.id).where(mine)).first() is None:
            raise NotFound("notification", str(notification_id))
        uow.session.execute(update(n).where(mine, n.read_at.is_(None)).values(read_at=self.clock.now()))


__all__ = [
    "ADULT_YEARS",
    "POLICY",
    "REASONS",
    "RULES",
    "STRENGTH",
    "Access",
    "Action",
    "Actor",
    "CareSource",
    "Carrier",
    "Category",
    "Decision",
    "GrantView",
    "NotificationView",
    "Relationship",
    "Role",
    "Rule",
    "Sensitivity",
    "adults_born_by",
    "coming_of_age",
    "decide",
    "strongest",
]
