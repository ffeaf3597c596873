"""Appointments (预约挂号, ARCHITECTURE.md §3 platform/appointments, §6 flow 4).

Institutions have **departments** by the standard department code (标准科室代码, CARD-SPEC.md
§9.2; ``data/departments.json``), departments have **doctors**, doctors have **weekly
templates** (周一上午: how many slots, how many kept for walk-in patients and for referrals
from township clinics) and **exceptions** (a doctor's leave, an institution's holiday, for a day
or one period of it).  :meth:`Appointments.open_sessions` turns templates minus exceptions into
**clinic sessions** (出诊: one doctor, one date, one period) with numbered **slots** (号源), and
running it twice adds nothing.  Numbers are laid out public first, then referral, then walk-in
(:func:`slot_pools`): a walk-in patient comes on the day and takes the later numbers.

The rules are data (:class:`BookingPolicy`, ``data/booking-policy.json``): the booking window
(7 days ahead), the cancellation cut-off (2 h before the session starts), the no-show rule (3
no-shows in 90 days suspend online booking for 90 days), the check-in window (from 60 min
before the session to its end), the session hours of each period, and which pools each channel
may take — the portal and the kiosk the public pool; the registration desk its walk-in pool on
the day, then the public one; a referral the referral pool, then the public one.

A booking (:meth:`Appointments.book`) is real-name: it names the resident (the person: the MPI
survivor, merged records included).  The rules, in the order they are checked: the session
exists, the desk books at its own institution, a referral goes upward to another institution,
the session is open and has not ended, it lies inside the window, online booking is not
suspended (portal and kiosk only), the resident has no live booking in that session (one per
resident per doctor per session), and a slot is free in a pool the channel may take.  A booking sent with the booker's
``Idempotency-Key`` keeps it: a retry with the key (the first answer lost) gets that booking
(:meth:`AppointmentUseCases.book_once`), not "already booked".

**Concurrency is the database's.**  A slot is taken by ``UPDATE slots SET status = 'BOOKED'
WHERE id = :id AND status = 'FREE'`` and the row count says whether this transaction got it.
On PostgreSQL the candidate is picked with ``SELECT … FOR UPDATE SKIP LOCKED`` (concurrent
bookers take different slots instead of queueing on one), then — only when every free slot is
locked by another booker — with a waiting ``FOR UPDATE``, so that "no free slot" is said only
once the others have committed or rolled back.  On SQLite every transaction is ``BEGIN
IMMEDIATE`` (healthcard.storage.db): bookers run one after the other.  Behind both, the
partial unique indexes of ``bookings`` keep one live booking per slot and per resident and
session; a violation comes back as :class:`~healthcard.errors.Duplicate` naming the field.
No lock is held in Python: two processes, or two machines, get the same guarantee.

No-shows: a booking still BOOKED when its session's check-in window has closed becomes
NO_SHOW — lazily for the resident when they book (:meth:`Appointments.book`) and for everyone by
:meth:`Appointments.mark_no_shows` (the sweep).  The ``limit``-th no-show within ``within_days``
(counted since the resident's last suspension began) suspends online booking for
``suspend_days`` from that session's end; the registration desk can lift it.

Check-in by swiping the card (:meth:`AppointmentUseCases.check_in`): a terminal of the
institution authenticates the card (card use, presence grant — the swipe of
:meth:`~healthcard.platform.node.Node.swipe`), the resident's booking of today there becomes
CHECKED_IN and the encounter is opened for the doctor, who now has the presence tie.  A live
booking today at an institution is also a CARE tie there (:func:`booked_here_today`, plugged
into :class:`~healthcard.platform.access.Access`).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import BindParameter, CursorResult, Table, bindparam, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from healthcard.clock import SHANGHAI, Clock, local_date
from healthcard.errors import Duplicate, InvalidValue, NotFound, PermissionDenied, TransitionRefused
from healthcard.platform import fields
from healthcard.platform import records as rec
from healthcard.platform.access import Access, Action, Actor, Carrier, Category, Relationship, Role
from healthcard.platform.desk import Desk
from healthcard.storage import tables as t

if TYPE_CHECKING:
    from healthcard.platform.audit import Audit
    from healthcard.platform.mpi import Mpi
    from healthcard.storage.db import Database
    from healthcard.storage.uow import UnitOfWork


# ==== the vocabulary ===============================================================================
class Period(StrEnum):
    """The periods of a clinic day; their hours are policy (:attr:`BookingPolicy.periods`)."""

    MORNING = "morning"  # 上午
    AFTERNOON = "afternoon"  # 下午
    EVENING = "evening"  # 夜间门诊


class Pool(StrEnum):
    """Who a slot is kept for."""

    PUBLIC = "public"  # anyone, through any channel
    WALK_IN = "walk-in"  # the registration desk, on the day (现场号)
    REFERRAL = "referral"  # township clinics referring upward (转诊号)


class Channel(StrEnum):
    """Where a booking is made."""

    PORTAL = "portal"  # the resident online (web, app, QR e-card)
    KIOSK = "kiosk"  # the resident at a self-service kiosk, logged in with the card
    DESK = "desk"  # the registration desk (挂号窗口) for a patient in front of it
    REFERRAL = "referral"  # a clinician of a lower-level institution (双向转诊, upward)


class SessionStatus(StrEnum):
    OPEN = "OPEN"  # bookable until it ends
    CANCELLED = "CANCELLED"  # 停诊: an exception added after it was opened; bookings cancelled


class SlotStatus(StrEnum):
    FREE = "FREE"
    BOOKED = "BOOKED"  # held by a live booking (BOOKED or CHECKED_IN)


class BookingStatus(StrEnum):
    BOOKED = "BOOKED"  # holds its slot, waiting for the patient
    CHECKED_IN = "CHECKED_IN"  # the card was swiped at the institution: the encounter is open
    CANCELLED = "CANCELLED"  # by the resident or staff before the cut-off, or by a 停诊
    NO_SHOW = "NO_SHOW"  # the check-in window closed without a check-in


#: doctors' titles (职称)
TITLES = ("主任医师", "副主任医师", "主治医师", "医师")
#: the five levels, lowest first: a referral goes up this list
LEVELS = ("village", "township", "county", "city", "province")
WEEKDAYS = range(1, 8)  # ISO: 1 Monday … 7 Sunday
#: the longest range :meth:`Appointments.open_sessions` opens at once
MAX_OPEN_DAYS = 92
LIVE = t.LIVE_BOOKING
_PERIOD_CN = {"morning": "上午", "afternoon": "下午", "evening": "晚间"}


def booking_key(key: object) -> str:
    """A booker's idempotency key: 1 to 64 characters (a UUID, the desk's ticket number …)."""
    return fields.text("idempotency_key", key, 64)


def _enum(kind: type[StrEnum], name: str, value: object) -> Any:
    try:
        return kind(str(value))
    except ValueError:
        raise InvalidValue(name, f"{value!r}: one of {', '.join(m.value for m in kind)}") from None


# ==== standard department codes ===================================================================
@cache
def department_codes() -> Mapping[str, str]:
    """标准科室代码 → name (CARD-SPEC.md §9.2; ``data/departments.json``)."""
    text = resources.files("healthcard.platform").joinpath("data", "departments.json").read_text("utf-8")
    return MappingProxyType(dict(json.loads(text)["codes"]))


def department_name(code: str) -> str:
    """The standard name of a department code; an unknown code is refused (field ``code``)."""
    name = department_codes().get(str(code).strip())
    if name is None:
        raise InvalidValue(
            "code", f"{code!r} is not a standard department code (标准科室代码, CARD-SPEC.md §9.2)"
        )
    return name


# ==== the policy ==================================================================================
@dataclass(frozen=True)
class Hours:
    """A period's hours, local time (Asia/Shanghai)."""

    starts: dt.time
    ends: dt.time

    @property
    def minutes(self) -> int:
        return (self.ends.hour * 60 + self.ends.minute) - (self.starts.hour * 60 + self.starts.minute)


@dataclass(frozen=True)
class ChannelRule:
    pools: tuple[Pool, ...]  # in the order they are tried
    online: bool  # subject to a no-show suspension


@dataclass(frozen=True)
class BookingPolicy:
    """The booking rules as data (``data/booking-policy.json``)."""

    version: int
    name: str
    window_days: int  # a session may be booked this many days ahead (today counts as 0)
    cancel_minutes: int  # cancellation closes this long before the session starts
    no_show_limit: int  # this many no-shows …
    no_show_days: int  # … within this many days …
    suspend_days: int  # … suspend online booking this long
    check_in_before_minutes: int  # check-in opens this long before the session starts …
    check_in_after_minutes: int  # … and closes this long after it ends
    periods: Mapping[Period, Hours]
    channels: Mapping[Channel, ChannelRule]
    same_day_pools: frozenset[Pool]  # pools taken only for a session of today

    def hours(self, period: Period | str) -> Hours:
        found = self.periods.get(Period(period))
        if found is None:
            raise InvalidValue("period", f"{period}: the policy has no hours for it")
        return found


def _int(data: Mapping[str, Any], key: str, where: str, *, low: int = 0, high: int = 10_000) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidValue(f"{where}{key}", f"{value!r}: an integer from {low} to {high}")
    return value


def _section(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    if not isinstance(value, Mapping):
        raise InvalidValue(key, "an object")
    return value


def _clock_time(value: object, name: str) -> dt.time:
    try:
        if not isinstance(value, str) or len(value) != 5:
            raise ValueError
        return dt.time.fromisoformat(value)
    except ValueError:
        raise InvalidValue(name, f"{value!r}: a local time HH:MM") from None


def parse_policy(data: Mapping[str, Any]) -> BookingPolicy:
    """A booking policy from its JSON form; every figure checked (field-named refusals)."""
    if not isinstance(data, Mapping):
        raise InvalidValue("policy", "a JSON object")
    no_show = _section(data, "no_show")
    check_in = _section(data, "check_in")
    periods: dict[Period, Hours] = {}
    for name, hours in _section(data, "periods").items():
        period = _enum(Period, "periods", name)
        if not isinstance(hours, Mapping):
            raise InvalidValue(f"periods.{name}", "an object {starts, ends}")
        span = Hours(
            _clock_time(hours.get("starts"), f"periods.{name}.starts"),
            _clock_time(hours.get("ends"), f"periods.{name}.ends"),
        )
        if span.minutes <= 0:
            raise InvalidValue(f"periods.{name}.ends", "after the start, on the same day")
        periods[period] = span
    if not periods:
        raise InvalidValue("periods", "at least one period with its hours")
    channels: dict[Channel, ChannelRule] = {}
    for name, rule in _section(data, "channels").items():
        channel = _enum(Channel, "channels", name)
        if not isinstance(rule, Mapping):
            raise InvalidValue(f"channels.{name}", "an object {pools, online}")
        pools = rule.get("pools")
        if not isinstance(pools, list) or not pools:
            raise InvalidValue(f"channels.{name}.pools", "a non-empty list of pools")
        parsed = tuple(_enum(Pool, f"channels.{name}.pools", p) for p in pools)
        if len(set(parsed)) != len(parsed):
            raise InvalidValue(f"channels.{name}.pools", "a pool listed twice")
        online = rule.get("online")
        if not isinstance(online, bool):
            raise InvalidValue(f"channels.{name}.online", "true or false")
        channels[channel] = ChannelRule(parsed, online)
    missing = [c.value for c in Channel if c not in channels]
    if missing:
        raise InvalidValue("channels", f"no rule for {', '.join(missing)}")
    same_day = data.get("same_day_pools", [])
    if not isinstance(same_day, list):
        raise InvalidValue("same_day_pools", "a list of pools")
    name = data.get("name", "")
    if not isinstance(name, str):
        raise InvalidValue("name", "text")
    return BookingPolicy(
        version=_int(data, "version", "", low=1),
        name=name,
        window_days=_int(data, "booking_window_days", "", high=365),
        cancel_minutes=_int(data, "cancel_until_minutes_before", "", high=7 * 24 * 60),
        no_show_limit=_int(no_show, "limit", "no_show.", low=1, high=100),
        no_show_days=_int(no_show, "within_days", "no_show.", low=1, high=3650),
        suspend_days=_int(no_show, "suspend_days", "no_show.", low=1, high=3650),
        check_in_before_minutes=_int(check_in, "opens_minutes_before", "check_in.", high=24 * 60),
        check_in_after_minutes=_int(check_in, "closes_minutes_after_end", "check_in.", high=24 * 60),
        periods=MappingProxyType(periods),
        channels=MappingProxyType(channels),
        same_day_pools=frozenset(_enum(Pool, "same_day_pools", p) for p in same_day),
    )


def load_policy(path: Path | None = None) -> BookingPolicy:
    """The shipped booking policy (``data/booking-policy.json``), or the file at ``path``."""
    if path is not None:
        text = path.read_text(encoding="utf-8")
    else:
        text = (
            resources.files("healthcard.platform").joinpath("data", "booking-policy.json").read_text("utf-8")
        )
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidValue("policy", f"not JSON: {exc}") from None
    return parse_policy(data)


@cache
def default_policy() -> BookingPolicy:
    return load_policy()


# ==== the arithmetic (pure) =======================================================================
def session_times(
    policy: BookingPolicy, on: dt.date, period: Period | str
) -> tuple[dt.datetime, dt.datetime]:
    """When a session of ``period`` on the local date ``on`` starts and ends (aware UTC)."""
    hours = policy.hours(period)
    starts = dt.datetime.combine(on, hours.starts, tzinfo=SHANGHAI).astimezone(dt.UTC)
    ends = dt.datetime.combine(on, hours.ends, tzinfo=SHANGHAI).astimezone(dt.UTC)
    return starts, ends


def slot_pools(slots: int, walk_in: int, referral: int) -> list[Pool]:
    """The pool of each slot number 1 … ``slots``: public first, then referral, then walk-in."""
    public = slots - walk_in - referral
    if min(slots, walk_in, referral, public) < 0:
        raise InvalidValue("slots", f"{slots} slots cannot keep {walk_in} walk-in and {referral} referral")
    return [Pool.PUBLIC] * public + [Pool.REFERRAL] * referral + [Pool.WALK_IN] * walk_in


@dataclass(frozen=True)
class WeeklySession:
    """A template, as the arithmetic needs it."""

    template_id: int
    doctor_id: int
    weekday: int
    period: str
    valid_from: dt.date
    valid_to: dt.date | None


@dataclass(frozen=True)
class Closure:
    """An exception, as the arithmetic needs it: ``doctor_id`` None = the whole institution,
    ``period`` None = the whole day."""

    on: dt.date
    doctor_id: int | None = None
    period: str | None = None

    def closes(self, doctor_id: int, on: dt.date, period: str) -> bool:
        return (
            self.on == on
            and (self.doctor_id is None or self.doctor_id == doctor_id)
            and (self.period is None or self.period == period)
        )


@dataclass(frozen=True)
class PlannedSession:
    doctor_id: int
    on: dt.date
    period: str
    template_id: int


def planned_sessions(
    templates: Iterable[WeeklySession], closures: Iterable[Closure], first_day: dt.date, last_day: dt.date
) -> tuple[list[PlannedSession], list[PlannedSession]]:
    """The sessions the templates make from ``first_day`` to ``last_day`` (both included):
    ``(open, closed)`` — closed ones fall on an exception.  Where two templates of a doctor's
    weekday and period are both valid (the service refuses that), the newer one wins."""
    closures = list(closures)
    by_weekday: dict[int, list[WeeklySession]] = {}
    for template in sorted(templates, key=lambda w: w.valid_from, reverse=True):
        by_weekday.setdefault(template.weekday, []).append(template)
    made: list[PlannedSession] = []
    closed: list[PlannedSession] = []
    day = first_day
    while day <= last_day:
        seen: set[tuple[int, str]] = set()
        for w in by_weekday.get(day.isoweekday(), ()):
            if w.valid_from > day or (w.valid_to is not None and w.valid_to < day):
                continue
            key = (w.doctor_id, w.period)
            if key in seen:
                continue
            seen.add(key)
            planned = PlannedSession(w.doctor_id, day, w.period, w.template_id)
            if any(c.closes(w.doctor_id, day, w.period) for c in closures):
                closed.append(planned)
            else:
                made.append(planned)
        day += dt.timedelta(days=1)
    order = {p.value: n for n, p in enumerate(Period)}
    made.sort(key=lambda p: (p.on, order.get(p.period, 9), p.doctor_id))
    return made, closed


# ==== what the service answers ====================================================================
@dataclass(frozen=True)
class DepartmentView:
    id: int
    institution_code: str
    code: str
    name: str
    standard_name: str
    active: bool


@dataclass(frozen=True)
class DoctorView:
    id: int
    institution_code: str
    department_id: int
    department_code: str
    department: str
    name: str
    title: str
    username: str | None
    fee_fen: int
    active: bool


@dataclass(frozen=True)
class TemplateView:
    id: int
    doctor_id: int
    weekday: int
    period: str
    slots: int
    walk_in: int
    referral: int
    slot_minutes: int
    valid_from: dt.date
    valid_to: dt.date | None


@dataclass(frozen=True)
class ExceptionView:
    id: int
    institution_code: str
    doctor_id: int | None
    on: dt.date
    period: str | None
    reason: str
    created_by: str
    created_at: dt.datetime
    cancelled_sessions: int = 0  # sessions already opened that it cancelled (停诊) …
    cancelled_bookings: int = 0  # … and their bookings (the residents were told)


@dataclass(frozen=True)
class OpenReport:
    institution_code: str
    first_day: dt.date
    last_day: dt.date
    sessions: int  # sessions made by this call
    slots: int
    existing: int  # sessions that were there already
    closed: int  # sessions the templates would make but an exception closes


@dataclass(frozen=True)
class SessionView:
    id: int
    institution_code: str
    department_id: int
    department_code: str
    department: str
    doctor_id: int
    doctor: str
    title: str
    on: dt.date
    period: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    status: str
    fee_fen: int
    slots: dict[str, int] = field(default_factory=dict)  # pool → slots
    free: dict[str, int] = field(default_factory=dict)  # pool → free slots


@dataclass(frozen=True)
class SlotView:
    id: int
    session_id: int
    number: int
    pool: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    status: str


@dataclass(frozen=True)
class BookingView:
    id: int
    resident_id: str
    session_id: int
    slot_id: int
    number: int  # the queue number
    pool: str
    institution_code: str
    department_code: str
    department: str
    doctor_id: int
    doctor: str
    doctor_username: str | None
    on: dt.date
    period: str
    starts_at: dt.datetime  # the slot's time
    ends_at: dt.datetime  # the session's end
    channel: str
    referred_by: str | None
    status: str
    booked_at: dt.datetime
    booked_by: str
    cancelled_at: dt.datetime | None
    cancelled_by: str | None
    checked_in_at: dt.datetime | None
    encounter_id: int | None


@dataclass(frozen=True)
class SuspensionView:
    id: int
    resident_id: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    reason: str
    lifted_at: dt.datetime | None
    lifted_by: str | None


@dataclass(frozen=True)
class NoShowReport:
    marked: int  # bookings that became NO_SHOW
    suspended: tuple[str, ...]  # residents whose online booking this suspended


# ==== the statements ==============================================================================
def _table(model: type[t.Base]) -> Table:
    return model.metadata.tables[model.__tablename__]


_SLOTS = _table(t.Slot)
_BOOKINGS = _table(t.Booking)
_SESSIONS = _table(t.ClinicSession)
_sl, _b, _s = _SLOTS.c, _BOOKINGS.c, _SESSIONS.c
_IDS: BindParameter[str] = bindparam("ids", expanding=True)
#: a booking today at an institution: the CARE tie (one indexed probe per access check)
_BOOKED_HERE_TODAY = (
    select(_b.id)
    .join(_SESSIONS, _s.id == _b.session_id)
    .where(
        _b.resident_id.in_(_IDS),
        _b.institution_code == bindparam("institution"),
        _b.status.in_(LIVE),
        _s.on == bindparam("today", type_=_s.on.type),
    )
    .limit(1)
)
#: the first free slot of a pool, by queue number
_FIRST_FREE = (
    select(_sl.id)
    .where(
        _sl.session_id == bindparam("session"), _sl.pool == bindparam("pool"), _sl.status == SlotStatus.FREE
    )
    .order_by(_sl.number)
    .limit(1)
)
#: PostgreSQL: take the first free slot no other transaction holds, in one statement that never
#: waits for a row lock (so bookers can never deadlock on slots); None when every free slot is
#: held or none is left
_TAKE_UNHELD = (
    update(_SLOTS)
    .where(
        _sl.id
        == select(_sl.id)
        .where(
            _sl.session_id == bindparam("free_session"),  # an UPDATE reserves the column names
            _sl.pool == bindparam("free_pool"),
            _sl.status == SlotStatus.FREE,
        )
        .order_by(_sl.number)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    .values(status=SlotStatus.BOOKED)
    .returning(_sl.id)
)
#: how long a booker waits for free slots other bookers hold (they may roll back) before it
#: says "no free slot"; a booking transaction takes milliseconds
HELD_WAIT_S = 2.0
#: take a slot: only if it is still free — the row count says whether this transaction got it
_TAKE = (
    update(_SLOTS)
    .where(_sl.id == bindparam("slot"), _sl.status == SlotStatus.FREE)
    .values(status=SlotStatus.BOOKED)
)
_FREE_AGAIN = (
    update(_SLOTS)
    .where(_sl.id == bindparam("slot"), _sl.status == SlotStatus.BOOKED)
    .values(status=SlotStatus.FREE)
)


def _rowcount(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount)


def _local(at: dt.datetime) -> str:
    return at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def booked_here_today(uow: UnitOfWork, actor: Actor, ids: Sequence[str], now: dt.datetime) -> bool:
    """The :data:`~healthcard.platform.access.CareSource` of appointments: the person has a live
    booking (booked or checked in) for a session today at the actor's institution."""
    if not actor.institution_code or not ids:
        return False
    today = now.astimezone(SHANGHAI).date()
    params = {"ids": list(ids), "institution": actor.institution_code, "today": today}
    return uow.session.execute(_BOOKED_HERE_TODAY, params).first() is not None


def _text(name: str, value: object, longest: int, *, shortest: int = 1) -> str:
    if not isinstance(value, str):
        raise InvalidValue(name, "text")
    text = " ".join(value.split())
    if not shortest <= len(text) <= longest:
        raise InvalidValue(name, f"{shortest} to {longest} characters")
    if any(ord(c) < 32 for c in text):
        raise InvalidValue(name, "control characters are not allowed")
    return text


def _count(name: str, value: object, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidValue(name, f"{value!r}: a whole number from {low} to {high}")
    return value


def _day(name: str, value: object) -> dt.date:
    if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
        raise InvalidValue(name, f"{value!r}: a date")
    return value


# ==== the service =================================================================================
class Appointments:
    """The appointment rules over the database (one unit of work per call, the caller's)."""

    def __init__(self, clock: Clock, policy: BookingPolicy | None = None) -> None:
        self.clock = clock
        self.policy = policy or default_policy()

    def today(self) -> dt.date:
        return local_date(self.clock)

    # --- reference: departments, doctors, templates, exceptions --------------------------------
    @staticmethod
    def _institution(uow: UnitOfWork, code: object, name: str = "institution_code") -> t.Institution:
        if not isinstance(code, str) or not code:
            raise InvalidValue(name, "an institution code")
        row = uow.reference.institution(code)
        if row is None:
            raise NotFound("institution", code)
        return row

    def departments(self, uow: UnitOfWork, institution: str) -> list[DepartmentView]:
        self._institution(uow, institution)
        d = t.Department
        rows = uow.session.scalars(select(d).where(d.institution_code == institution).order_by(d.code))
        return [_department_view(r) for r in rows]

    def add_department(
        self, uow: UnitOfWork, institution: str, code: str, name: str | None = None
    ) -> DepartmentView:
        """A department of ``institution`` by its standard code; ``name``: the local name (心内科
        for 304), the standard name by default."""
        self._institution(uow, institution)
        code = str(code).strip()
        standard = department_name(code)
        local = standard if name is None else _text("name", name, 50)
        d = t.Department
        if uow.session.scalar(select(d.id).where(d.institution_code == institution, d.code == code)):
            raise Duplicate("code", f"department {code} exists at {institution} already")
        row = d(institution_code=institution, code=code, name=local, active=True)
        uow.session.add(row)
        try:
            uow.flush()
        except IntegrityError:
            raise Duplicate("code", f"department {code} exists at {institution} already") from None
        return _department_view(row)

    def _department(self, uow: UnitOfWork, institution: str, code: str) -> t.Department:
        d = t.Department
        row = uow.session.scalar(select(d).where(d.institution_code == institution, d.code == code))
        if row is None:
            department_name(code)  # an unknown code says so
            raise NotFound("department", f"{code} at {institution}")
        return row

    def doctors(
        self, uow: UnitOfWork, institution: str, department_code: str | None = None
    ) -> list[DoctorView]:
        self._institution(uow, institution)
        query = _doctor_query().where(t.Doctor.institution_code == institution)
        if department_code:
            query = query.where(t.Department.code == department_code)
        return [
            _doctor_view(*row) for row in uow.session.execute(query.order_by(t.Department.code, t.Doctor.id))
        ]

    def doctor(self, uow: UnitOfWork, doctor_id: int) -> DoctorView:
        row = uow.session.execute(_doctor_query().where(t.Doctor.id == doctor_id)).first()
        if row is None:
            raise NotFound("doctor", str(doctor_id))
        return _doctor_view(*row)

    def add_doctor(
        self,
        uow: UnitOfWork,
        institution: str,
        *,
        department_code: str,
        name: str,
        title: str,
        username: str | None = None,
        fee_fen: int = 0,
    ) -> DoctorView:
        """A doctor who holds sessions in a department; ``username``: their clinician account at
        this institution (the encounter of a check-in names it), ``fee_fen``: 挂号费."""
        self._institution(uow, institution)
        department = self._department(uow, institution, str(department_code).strip())
        name = _text("name", name, 60)
        if title not in TITLES:
            raise InvalidValue("title", f"{title!r}: one of {', '.join(TITLES)}")
        fee = _count("fee_fen", fee_fen, 0, 100_000)
        if username is not None:
            account = uow.session.get(t.Account, username)
            if account is None or not account.active:
                raise InvalidValue("username", f"{username!r}: no such active account")
            if account.role != Role.CLINICIAN.value or account.institution_code != institution:
                raise InvalidValue("username", f"{username!r} is not a clinician of {institution}")
            taken = uow.session.scalar(
                select(t.Doctor.id).where(t.Doctor.username == username, t.Doctor.active.is_(True))
            )
            if taken is not None:
                raise Duplicate("username", f"{username!r} is doctor {taken} already")
        row = t.Doctor(
            institution_code=institution,
            department_id=department.id,
            name=name,
            title=title,
            username=username,
            fee_fen=fee,
            active=True,
        )
        uow.session.add(row)
        uow.flush()
        return self.doctor(uow, row.id)

    def templates(self, uow: UnitOfWork, doctor_id: int) -> list[TemplateView]:
        w = t.ScheduleTemplate
        rows = uow.session.scalars(
            select(w).where(w.doctor_id == doctor_id).order_by(w.weekday, w.period, w.valid_from)
        )
        return [_template_view(r) for r in rows]

    def add_template(
        self,
        uow: UnitOfWork,
        *,
        doctor_id: int,
        weekday: int,
        period: str,
        slots: int,
        walk_in: int = 0,
        referral: int = 0,
        slot_minutes: int = 10,
        valid_from: dt.date,
        valid_to: dt.date | None = None,
    ) -> TemplateView:
        """A weekly session of a doctor.  The slots must fit in the period's hours; a template
        may not overlap another of the same doctor, weekday and period (end the old one first)."""
        doctor = uow.session.get(t.Doctor, doctor_id)
        if doctor is None or not doctor.active:
            raise NotFound("doctor", str(doctor_id))
        weekday = _count("weekday", weekday, 1, 7)
        period = _enum(Period, "period", period).value
        slots = _count("slots", slots, 1, 500)
        walk_in = _count("walk_in", walk_in, 0, slots)
        referral = _count("referral", referral, 0, slots)
        if walk_in + referral > slots:
            raise InvalidValue(
                "referral", f"walk-in {walk_in} + referral {referral} exceed the {slots} slots"
            )
        minutes = _count("slot_minutes", slot_minutes, 1, 240)
        span = self.policy.hours(period).minutes
        if slots * minutes > span:
            raise InvalidValue(
                "slots", f"{slots} slots of {minutes} min do not fit in the {period} ({span} min)"
            )
        valid_from = _day("valid_from", valid_from)
        if valid_to is not None and _day("valid_to", valid_to) < valid_from:
            raise InvalidValue("valid_to", "on or after valid_from")
        w = t.ScheduleTemplate
        clash = uow.session.scalar(
            select(w.id).where(
                w.doctor_id == doctor_id,
                w.weekday == weekday,
                w.period == period,
                (w.valid_to.is_(None)) | (w.valid_to >= valid_from),
                *([w.valid_from <= valid_to] if valid_to is not None else []),
            )
        )
        if clash is not None:
            raise Duplicate("valid_from", f"overlaps template {clash} of this doctor, weekday and period")
        row = w(
            doctor_id=doctor_id,
            weekday=weekday,
            period=period,
            slots=slots,
            walk_in=walk_in,
            referral=referral,
            slot_minutes=minutes,
            valid_from=valid_from,
            valid_to=valid_to,
        )
        uow.session.add(row)
        try:
            uow.flush()
        except IntegrityError:
            raise Duplicate(
                "valid_from", "a template of this doctor, weekday and period starts that day"
            ) from None
        return _template_view(row)

    def end_template(self, uow: UnitOfWork, template_id: int, last_day: dt.date) -> TemplateView:
        """The template's last day (sessions opened beyond it stay: add an exception for them)."""
        row = uow.session.get(t.ScheduleTemplate, template_id)
        if row is None:
            raise NotFound("template", str(template_id))
        last_day = _day("last_day", last_day)
        if last_day < row.valid_from:
            raise InvalidValue("last_day", f"on or after the template's first day {row.valid_from}")
        row.valid_to = last_day
        uow.flush()
        return _template_view(row)

    def exceptions(
        self, uow: UnitOfWork, institution: str, first_day: dt.date, last_day: dt.date
    ) -> list[ExceptionView]:
        x = t.ScheduleException
        rows = uow.session.scalars(
            select(x)
            .where(x.institution_code == institution, x.on >= first_day, x.on <= last_day)
            .order_by(x.on, x.id)
        )
        return [_exception_view(r) for r in rows]

    def add_exception(
        self,
        uow: UnitOfWork,
        institution: str,
        *,
        on: dt.date,
        reason: str,
        by: str,
        doctor_id: int | None = None,
        period: str | None = None,
    ) -> ExceptionView:
        """No session on ``on`` (``period``, or the whole day) for ``doctor_id`` (or the whole
        institution: a holiday).  Sessions already opened are cancelled (停诊): their bookings are
        cancelled, their slots freed and each resident is sent a notice.  Refused when a patient
        of such a session has checked in already."""
        self._institution(uow, institution)
        on = _day("on", on)
        if on < self.today():
            raise InvalidValue("on", f"{on} is in the past")
        reason = _text("reason", reason, 60, shortest=2)
        if period is not None:
            period = _enum(Period, "period", period).value
        if doctor_id is not None:
            doctor = uow.session.get(t.Doctor, doctor_id)
            if doctor is None or doctor.institution_code != institution:
                raise NotFound("doctor", f"{doctor_id} at {institution}")
        x = t.ScheduleException
        same = uow.session.scalar(
            select(x.id).where(
                x.institution_code == institution,
                x.on == on,
                x.doctor_id.is_(None) if doctor_id is None else x.doctor_id == doctor_id,
                x.period.is_(None) if period is None else x.period == period,
            )
        )
        if same is not None:
            raise Duplicate("on", f"exception {same} says so already")
        now = self.clock.now()
        row = x(
            institution_code=institution,
            doctor_id=doctor_id,
            on=on,
            period=period,
            reason=reason,
            created_by=by[:40],
            created_at=now,
        )
        uow.session.add(row)
        uow.flush()
        s = t.ClinicSession
        query = select(s).where(s.institution_code == institution, s.on == on, s.status == SessionStatus.OPEN)
        if doctor_id is not None:
            query = query.where(s.doctor_id == doctor_id)
        if period is not None:
            query = query.where(s.period == period)
        sessions = list(uow.session.scalars(query.with_for_update()))
        cancelled = 0
        if sessions:
            ids = [s_.id for s_ in sessions]
            b = t.Booking
            arrived = uow.session.scalar(
                select(b.id).where(b.session_id.in_(ids), b.status == BookingStatus.CHECKED_IN).limit(1)
            )
            if arrived is not None:
                raise TransitionRefused(
                    f"a patient has checked in already (booking {arrived}): cancel the session's visits first"
                )
            hit = uow.session.execute(
                update(_BOOKINGS)
                .where(_b.session_id.in_(ids), _b.status == BookingStatus.BOOKED)
                .values(status=BookingStatus.CANCELLED, cancelled_at=now, cancelled_by=by[:40])
                .returning(_b.resident_id, _b.slot_id, _b.session_id)
            ).all()
            cancelled = len(hit)
            if hit:
                uow.session.execute(
                    update(_SLOTS).where(_sl.id.in_([h.slot_id for h in hit])).values(status=SlotStatus.FREE)
                )
            names = {
                v.id: v
                for v in (
                    _session_view(*r) for r in uow.session.execute(_session_query().where(s.id.in_(ids)))
                )
            }
            for h in hit:
                view = names[h.session_id]
                message = (
                    f"您预约的 {view.on} {_PERIOD_CN.get(view.period, view.period)} {view.department} "
                    f"{view.doctor} 医生门诊停诊（{reason}），预约已取消。"
                )
                uow.session.add(
                    t.Notification(
                        resident_id=h.resident_id, kind="appointment", message=message[:400], at=now
                    )
                )
            for session in sessions:
                session.status = SessionStatus.CANCELLED
            uow.flush()
        return replace(_exception_view(row), cancelled_sessions=len(sessions), cancelled_bookings=cancelled)

    # --- sessions and slots --------------------------------------------------------------------
    def open_sessions(
        self, uow: UnitOfWork, institution: str, first_day: dt.date, last_day: dt.date
    ) -> OpenReport:
        """Make the sessions and slots of ``first_day`` … ``last_day`` from the templates, minus
        the exceptions; sessions already there are kept as they are (running it twice adds
        nothing)."""
        self._institution(uow, institution)
        first_day, last_day = _day("first_day", first_day), _day("last_day", last_day)
        if first_day < self.today():
            raise InvalidValue("first_day", f"{first_day} is in the past")
        if last_day < first_day:
            raise InvalidValue("last_day", "on or after first_day")
        if (last_day - first_day).days >= MAX_OPEN_DAYS:
            raise InvalidValue("last_day", f"at most {MAX_OPEN_DAYS} days at once")
        w, d, dep = t.ScheduleTemplate, t.Doctor, t.Department
        rows = uow.session.execute(
            select(w, d.department_id, d.fee_fen)
            .join(d, d.id == w.doctor_id)
            .join(dep, dep.id == d.department_id)
            .where(
                d.institution_code == institution,
                d.active.is_(True),
                dep.active.is_(True),
                w.valid_from <= last_day,
                (w.valid_to.is_(None)) | (w.valid_to >= first_day),
            )
        ).all()
        templates = {row[0].id: row for row in rows}
        x = t.ScheduleException
        closures = [
            Closure(e.on, e.doctor_id, e.period)
            for e in uow.session.scalars(
                select(x).where(x.institution_code == institution, x.on >= first_day, x.on <= last_day)
            )
        ]
        weekly = [
            WeeklySession(r[0].id, r[0].doctor_id, r[0].weekday, r[0].period, r[0].valid_from, r[0].valid_to)
            for r in rows
        ]
        planned, closed = planned_sessions(weekly, closures, first_day, last_day)
        s = t.ClinicSession
        existing = {
            (doctor, on, period)
            for doctor, on, period in uow.session.execute(
                select(s.doctor_id, s.on, s.period).where(
                    s.institution_code == institution, s.on >= first_day, s.on <= last_day
                )
            )
        }
        todo = [p for p in planned if (p.doctor_id, p.on, p.period) not in existing]
        now = self.clock.now()
        made: list[tuple[t.ClinicSession, t.ScheduleTemplate]] = []
        for p in todo:
            template, department_id, fee = templates[p.template_id]
            starts, ends = session_times(self.policy, p.on, p.period)
            made.append(
                (
                    s(
                        institution_code=institution,
                        department_id=department_id,
                        doctor_id=p.doctor_id,
                        on=p.on,
                        period=p.period,
                        starts_at=starts,
                        ends_at=ends,
                        status=SessionStatus.OPEN.value,
                        fee_fen=fee,
                        created_at=now,
                    ),
                    template,
                )
            )
        uow.session.add_all([m[0] for m in made])
        try:
            uow.flush()
        except IntegrityError:
            raise Duplicate(
                "first_day", "another request is opening sessions of these days; run it again"
            ) from None
        slots = [
            {
                "session_id": session.id,
                "number": n,
                "pool": pool.value,
                "starts_at": session.starts_at + dt.timedelta(minutes=template.slot_minutes * (n - 1)),
                "status": SlotStatus.FREE.value,
            }
            for session, template in made
            for n, pool in enumerate(slot_pools(template.slots, template.walk_in, template.referral), start=1)
        ]
        if slots:
            uow.session.execute(insert(_SLOTS), slots)
        return OpenReport(
            institution, first_day, last_day, len(made), len(slots), len(planned) - len(todo), len(closed)
        )

    def sessions(
        self,
        uow: UnitOfWork,
        institution: str,
        *,
        first_day: dt.date,
        last_day: dt.date,
        department_code: str | None = None,
        doctor_id: int | None = None,
    ) -> list[SessionView]:
        """The sessions of an institution in a date range (a department's, a doctor's), with
        the slots and the free slots of each pool."""
        self._institution(uow, institution)
        first_day, last_day = _day("first_day", first_day), _day("last_day", last_day)
        if last_day < first_day:
            raise InvalidValue("last_day", "on or after first_day")
        if (last_day - first_day).days >= MAX_OPEN_DAYS:
            raise InvalidValue("last_day", f"at most {MAX_OPEN_DAYS} days at once")
        s = t.ClinicSession
        query = _session_query().where(s.institution_code == institution, s.on >= first_day, s.on <= last_day)
        if department_code:
            department_name(department_code)
            query = query.where(t.Department.code == department_code)
        if doctor_id is not None:
            query = query.where(s.doctor_id == doctor_id)
        views = [
            _session_view(*r) for r in uow.session.execute(query.order_by(s.on, s.starts_at, s.doctor_id))
        ]
        return self._with_counts(uow, views)

    def session(self, uow: UnitOfWork, session_id: int) -> SessionView:
        row = uow.session.execute(_session_query().where(t.ClinicSession.id == session_id)).first()
        if row is None:
            raise NotFound("session", str(session_id))
        return self._with_counts(uow, [_session_view(*row)])[0]

    @staticmethod
    def _with_counts(uow: UnitOfWork, views: list[SessionView]) -> list[SessionView]:
        if not views:
            return views
        counts = uow.session.execute(
            select(_sl.session_id, _sl.pool, _sl.status, func.count())
            .where(_sl.session_id.in_([v.id for v in views]))
            .group_by(_sl.session_id, _sl.pool, _sl.status)
        ).all()
        for session_id, pool, status, n in counts:
            view = next(v for v in views if v.id == session_id)
            view.slots[pool] = view.slots.get(pool, 0) + n
            if status == SlotStatus.FREE:
                view.free[pool] = view.free.get(pool, 0) + n
        for view in views:
            for pool in view.slots:
                view.free.setdefault(pool, 0)
        return views

    def slots(self, uow: UnitOfWork, session_id: int) -> list[SlotView]:
        """The slots of a session, by number; each ends where the next begins (the last one
        after the same step, or at the session's end)."""
        session = uow.session.get(t.ClinicSession, session_id)
        if session is None:
            raise NotFound("session", str(session_id))
        rows = uow.session.execute(
            select(_sl.id, _sl.number, _sl.pool, _sl.starts_at, _sl.status)
            .where(_sl.session_id == session_id)
            .order_by(_sl.number)
        ).all()
        views = []
        for n, row in enumerate(rows):
            if n + 1 < len(rows):
                ends = rows[n + 1].starts_at
            elif n > 0:
                ends = min(row.starts_at + (row.starts_at - rows[n - 1].starts_at), session.ends_at)
            else:
                ends = session.ends_at
            views.append(SlotView(row.id, session_id, row.number, row.pool, row.starts_at, ends, row.status))
        return views

    # --- booking -------------------------------------------------------------------------------
    def _referral(self, uow: UnitOfWork, origin: str | None, target: str) -> str:
        if not origin:
            raise PermissionDenied("a referral comes from a clinician of an institution")
        if origin == target:
            raise InvalidValue("session_id", "a referral goes to another institution, not one's own")
        here, there = uow.reference.institution(origin), uow.reference.institution(target)
        low = here.level if here is not None else None
        high = there.level if there is not None else None
        if low in LEVELS and high in LEVELS and LEVELS.index(high) <= LEVELS.index(low):
            raise InvalidValue(
                "session_id", f"a referral goes upward: {target} ({high}) is not above {origin} ({low})"
            )
        return origin

    def book(
        self,
        uow: UnitOfWork,
        ids: Sequence[str],
        session_id: int,
        *,
        channel: Channel | str,
        by: str,
        origin: str | None = None,
        key: str | None = None,
    ) -> BookingView:
        """Book a slot of ``session_id`` for the person ``ids`` (survivor first) through
        ``channel``; ``origin``: the caller's institution (the desk's own, the referring clinic);
        ``key``: the booker's idempotency key, kept with the booking (:meth:`keyed` finds it).
        See the module docstring for the rules and the concurrency guarantee."""
        if key is not None:
            key = booking_key(key)
        used: Channel = _enum(Channel, "channel", channel)
        rule = self.policy.channels[used]
        if not ids:
            raise InvalidValue("resident_id", "whose booking")
        now, today = self.clock.now(), self.today()
        session = uow.session.get(t.ClinicSession, session_id)
        if session is None:
            raise NotFound("session", str(session_id))
        referred_by = None
        if used is Channel.DESK and origin != session.institution_code:
            raise PermissionDenied("the registration desk books sessions of its own institution")
        if used is Channel.REFERRAL:
            referred_by = self._referral(uow, origin, session.institution_code)
        if session.status != SessionStatus.OPEN:
            raise TransitionRefused(f"session {session_id} is cancelled (停诊)")
        if session.ends_at <= now:
            raise TransitionRefused(f"session {session_id} has ended")
        last = today + dt.timedelta(days=self.policy.window_days)
        if session.on > last:
            raise InvalidValue(
                "session_id",
                f"{session.on} is beyond the booking window: at most {self.policy.window_days} days ahead (until {last})",
            )
        self.mark_no_shows(uow, ids)  # the resident's own, lazily: the suspension below is current
        if rule.online:
            suspended = self.suspension(uow, ids)
            if suspended is not None:
                raise TransitionRefused(
                    f"online booking is suspended until {_local(suspended.ends_at)} ({suspended.reason}); "
                    "the registration desk can still book"
                )
        b = t.Booking
        live = uow.session.scalar(
            select(b.id).where(b.session_id == session_id, b.resident_id.in_(list(ids)), b.status.in_(LIVE))
        )
        if live is not None:
            raise Duplicate(
                "session_id",
                f"already booked in this session (booking {live}): one booking per doctor and session",
            )
        pools = [p for p in rule.pools if p not in self.policy.same_day_pools or session.on == today]
        slot_id = None
        for pool in pools:
            slot_id = self._take(uow, session_id, pool)
            if slot_id is not None:
                break
        if slot_id is None:
            raise TransitionRefused(
                f"no free slot in session {session_id} for a {used.value} booking ({', '.join(pools)})"
            )
        row = b(
            resident_id=ids[0],
            session_id=session_id,
            slot_id=slot_id,
            institution_code=session.institution_code,
            channel=used.value,
            referred_by=referred_by,
            status=BookingStatus.BOOKED.value,
            booked_at=now,
            booked_by=by[:40],
            idempotency_key=key,
        )
        uow.session.add(row)
        try:
            uow.flush()
        except IntegrityError:  # a concurrent booking of this person in this session (or with this key) won
            raise Duplicate(
                "session_id", "already booked in this session: one booking per doctor and session"
            ) from None
        return self.booking(uow, row.id)

    def keyed(
        self, uow: UnitOfWork, ids: Sequence[str], session_id: int, *, by: str, key: str
    ) -> BookingView | None:
        """The booking ``by`` made with ``key`` — as it stands now (it may have been cancelled
        since) — when this request is a retry of it; None when the key is new.  The same key
        with another session or person is refused on ``idempotency_key``."""
        key = booking_key(key)
        b = t.Booking
        row = uow.session.execute(
            select(b.id, b.session_id, b.resident_id).where(b.booked_by == by[:40], b.idempotency_key == key)
        ).first()
        if row is None:
            return None
        if row.session_id != session_id or row.resident_id not in ids:
            raise Duplicate("idempotency_key", f"{key} was used for another booking (booking {row.id})")
        return self.booking(uow, row.id)

    def _take(self, uow: UnitOfWork, session_id: int, pool: Pool) -> int | None:
        """A free slot of ``pool`` taken for this transaction, or None when there is none."""
        params = {"session": session_id, "pool": pool.value}
        if uow.session.get_bind().dialect.name != "postgresql":
            # SQLite: the transaction holds the database's write lock already (BEGIN IMMEDIATE)
            slot_id = uow.session.execute(_FIRST_FREE, params).scalar()
            if slot_id is None or _rowcount(uow.session.execute(_TAKE, {"slot": slot_id})) != 1:
                return None
            return int(slot_id)
        # PostgreSQL: skip the slots other bookers hold.  When every free slot is held, wait a
        # little for them (a holder may roll back) rather than say "none" too early — polling,
        # never queueing on their row locks: a booker that waits holds no slot of its own, and
        # one that holds a slot never waits for another, so there is no cycle to deadlock in.
        deadline = time.monotonic() + HELD_WAIT_S
        pause = 0.002
        while True:
            slot_id = uow.session.execute(
                _TAKE_UNHELD, {"free_session": session_id, "free_pool": pool.value}
            ).scalar()
            if slot_id is not None:
                return int(slot_id)
            if uow.session.execute(_FIRST_FREE, params).first() is None or time.monotonic() > deadline:
                return None  # none left, or the holders kept them
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def booking(self, uow: UnitOfWork, booking_id: int) -> BookingView:
        row = uow.session.execute(_booking_query().where(t.Booking.id == booking_id)).first()
        if row is None:
            raise NotFound("booking", str(booking_id))
        return _booking_view(*row)

    def resident_of(self, uow: UnitOfWork, booking_id: int) -> str:
        """Whose booking ``booking_id`` is (the caller asks the access policy about them)."""
        resident = uow.session.scalar(select(t.Booking.resident_id).where(t.Booking.id == booking_id))
        if resident is None:
            raise NotFound("booking", str(booking_id))
        return resident

    def bookings(
        self, uow: UnitOfWork, ids: Sequence[str], *, status: str | None = None, limit: int = 50
    ) -> list[BookingView]:
        """The person's bookings, the latest sessions first."""
        limit = _count("limit", limit, 1, 500)
        b, s = t.Booking, t.ClinicSession
        query = _booking_query().where(b.resident_id.in_(list(ids)))
        if status is not None:
            query = query.where(b.status == _enum(BookingStatus, "status", status).value)
        rows = uow.session.execute(query.order_by(s.starts_at.desc(), b.id.desc()).limit(limit))
        return [_booking_view(*r) for r in rows]

    def cancel(self, uow: UnitOfWork, ids: Sequence[str], booking_id: int, *, by: str) -> BookingView:
        """Cancel a BOOKED booking of the person until the cut-off; its slot is free again."""
        b = uow.session.get(t.Booking, booking_id)
        if b is None or b.resident_id not in ids:
            raise NotFound("booking", str(booking_id))
        if b.status != BookingStatus.BOOKED:
            raise TransitionRefused(
                f"booking {booking_id} is {b.status.lower()}: only a booked one is cancelled"
            )
        session = uow.session.get(t.ClinicSession, b.session_id)
        assert session is not None
        cutoff = session.starts_at - dt.timedelta(minutes=self.policy.cancel_minutes)
        now = self.clock.now()
        if now > cutoff:
            raise TransitionRefused(
                f"cancellation closed at {_local(cutoff)}, {self.policy.cancel_minutes} minutes before the session"
            )
        done = uow.session.execute(
            update(_BOOKINGS)
            .where(_b.id == booking_id, _b.status == BookingStatus.BOOKED)
            .values(status=BookingStatus.CANCELLED, cancelled_at=now, cancelled_by=by[:40])
        )
        if _rowcount(done) != 1:  # checked in or cancelled by another request meanwhile
            raise TransitionRefused(f"booking {booking_id} changed meanwhile; look again")
        uow.session.execute(_FREE_AGAIN, {"slot": b.slot_id})
        return self.booking(uow, booking_id)

    # --- no-shows and suspensions --------------------------------------------------------------
    def mark_no_shows(self, uow: UnitOfWork, ids: Sequence[str] | None = None) -> NoShowReport:
        """Bookings still BOOKED after their check-in window closed become NO_SHOW — the person
        ``ids``' (at booking time), or everyone's (the sweep).  The update takes each booking
        once even with concurrent sweeps (its WHERE re-checks the status under the row lock), so
        only the transaction that made a no-show counts it toward a suspension."""
        closed = self.clock.now() - dt.timedelta(minutes=self.policy.check_in_after_minutes)
        # correlated: a primary-key probe per booking of the person, not a list of every session
        # that ever ended
        ended = exists().where(_s.id == _b.session_id, _s.ends_at <= closed)
        statement = (
            update(_BOOKINGS)
            .where(_b.status == BookingStatus.BOOKED, ended)
            .values(status=BookingStatus.NO_SHOW)
            .returning(_b.resident_id)
        )
        if ids is not None:
            statement = statement.where(_b.resident_id.in_(list(ids)))
        marked = [r for (r,) in uow.session.execute(statement)]
        suspended: list[str] = []
        if ids is not None:
            if marked and self._suspend_if_due(uow, list(ids)):
                suspended.append(ids[0])
        else:
            for resident in sorted(set(marked)):
                if self._suspend_if_due(uow, [resident]):
                    suspended.append(resident)
        return NoShowReport(len(marked), tuple(suspended))

    def _suspend_if_due(self, uow: UnitOfWork, ids: list[str]) -> bool:
        """Suspend when ``limit`` no-shows fall within ``within_days``, counting only no-shows
        after the person's last suspension began (the ones that caused it count once)."""
        p = self.policy
        x = t.BookingSuspension
        since = uow.session.scalar(select(func.max(x.starts_at)).where(x.resident_id.in_(ids)))
        query = (
            select(_s.ends_at)
            .join(_BOOKINGS, _b.session_id == _s.id)
            .where(_b.resident_id.in_(ids), _b.status == BookingStatus.NO_SHOW)
        )
        if since is not None:
            query = query.where(_s.ends_at > since)
        ends = sorted(uow.session.scalars(query))
        window = dt.timedelta(days=p.no_show_days)
        made = False
        start = 0
        for i in range(len(ends)):
            if i - start + 1 < p.no_show_limit:
                continue
            first = ends[i - p.no_show_limit + 1]
            if ends[i] - first <= window:
                uow.session.add(
                    x(
                        resident_id=ids[0],
                        starts_at=ends[i],
                        ends_at=ends[i] + dt.timedelta(days=p.suspend_days),
                        reason=f"{p.no_show_limit} no-shows within {p.no_show_days} days",
                    )
                )
                made, start = True, i + 1
        if made:
            uow.flush()
        return made

    def suspension(self, uow: UnitOfWork, ids: Sequence[str]) -> SuspensionView | None:
        """The person's suspension in force now, if any (the one that ends last)."""
        now = self.clock.now()
        x = t.BookingSuspension
        row = uow.session.scalar(
            select(x)
            .where(x.resident_id.in_(list(ids)), x.starts_at <= now, x.ends_at > now, x.lifted_at.is_(None))
            .order_by(x.ends_at.desc())
            .limit(1)
        )
        return None if row is None else _suspension_view(row)

    def lift_suspension(self, uow: UnitOfWork, ids: Sequence[str], *, by: str) -> list[SuspensionView]:
        """Staff lift the person's suspensions in force (the no-shows behind them do not count
        again)."""
        now = self.clock.now()
        x = t.BookingSuspension
        rows = list(
            uow.session.scalars(
                select(x).where(x.resident_id.in_(list(ids)), x.ends_at > now, x.lifted_at.is_(None))
            )
        )
        if not rows:
            raise NotFound("suspension", f"in force for {ids[0]}")
        for row in rows:
            row.lifted_at, row.lifted_by = now, by[:40]
        uow.flush()
        return [_suspension_view(r) for r in rows]

    # --- check-in ------------------------------------------------------------------------------
    def check_in(
        self, uow: UnitOfWork, ids: Sequence[str], institution: str, *, booking_id: int | None = None
    ) -> BookingView:
        """The person's booking of today at ``institution`` (``booking_id``, or the one whose
        check-in window is open now, earliest first) becomes CHECKED_IN."""
        now = self.clock.now()
        b = t.Booking
        query = (
            select(b.id, b.status, _s.starts_at, _s.ends_at)
            .join(_SESSIONS, _s.id == b.session_id)
            .where(
                b.resident_id.in_(list(ids)),
                b.institution_code == institution,
                _s.on == self.today(),
                b.status.in_(LIVE),
            )
            .order_by(_s.starts_at)
        )
        if booking_id is not None:
            query = query.where(b.id == booking_id)
        rows = uow.session.execute(query).all()
        if not rows:
            raise NotFound("booking", f"today at {institution}" if booking_id is None else str(booking_id))
        waiting = [r for r in rows if r.status == BookingStatus.BOOKED]
        if not waiting:
            raise TransitionRefused(f"booking {rows[0].id} is checked in already")
        before = dt.timedelta(minutes=self.policy.check_in_before_minutes)
        after = dt.timedelta(minutes=self.policy.check_in_after_minutes)
        inside = [r for r in waiting if r.starts_at - before <= now <= r.ends_at + after]
        if not inside:
            first = waiting[0]
            if now < first.starts_at - before:
                raise TransitionRefused(
                    f"check-in opens at {_local(first.starts_at - before)}, "
                    f"{self.policy.check_in_before_minutes} minutes before the session"
                )
            raise TransitionRefused(f"check-in closed at {_local(waiting[-1].ends_at + after)}")
        chosen = inside[0].id
        done = uow.session.execute(
            update(_BOOKINGS)
            .where(_b.id == chosen, _b.status == BookingStatus.BOOKED)
            .values(status=BookingStatus.CHECKED_IN, checked_in_at=now)
        )
        if _rowcount(done) != 1:
            raise TransitionRefused(f"booking {chosen} changed meanwhile; swipe again")
        return self.booking(uow, chosen)

    def attach_encounter(self, uow: UnitOfWork, booking_id: int, encounter_id: int) -> BookingView:
        uow.session.execute(update(_BOOKINGS).where(_b.id == booking_id).values(encounter_id=encounter_id))
        return self.booking(uow, booking_id)


# ==== rows → views ================================================================================
def _department_view(row: t.Department) -> DepartmentView:
    return DepartmentView(
        row.id,
        row.institution_code,
        row.code,
        row.name,
        department_codes().get(row.code, row.name),
        row.active,
    )


def _doctor_query() -> Any:
    d, dep = t.Doctor, t.Department
    return select(d, dep.code, dep.name).join(dep, dep.id == d.department_id)


def _doctor_view(row: t.Doctor, code: str, department: str) -> DoctorView:
    return DoctorView(
        row.id,
        row.institution_code,
        row.department_id,
        code,
        department,
        row.name,
        row.title,
        row.username,
        row.fee_fen,
        row.active,
    )


def _template_view(row: t.ScheduleTemplate) -> TemplateView:
    return TemplateView(
        row.id,
        row.doctor_id,
        row.weekday,
        row.period,
        row.slots,
        row.walk_in,
        row.referral,
        row.slot_minutes,
        row.valid_from,
        row.valid_to,
    )


def _exception_view(row: t.ScheduleException) -> ExceptionView:
    return ExceptionView(
        row.id,
        row.institution_code,
        row.doctor_id,
        row.on,
        row.period,
        row.reason,
        row.created_by,
        row.created_at,
    )


def _session_query() -> Any:
    s, d, dep = t.ClinicSession, t.Doctor, t.Department
    return (
        select(s, dep.code, dep.name, d.name, d.title)
        .join(d, d.id == s.doctor_id)
        .join(dep, dep.id == s.department_id)
    )


def _session_view(row: t.ClinicSession, code: str, department: str, doctor: str, title: str) -> SessionView:
    return SessionView(
        row.id,
        row.institution_code,
        row.department_id,
        code,
        department,
        row.doctor_id,
        doctor,
        title,
        row.on,
        row.period,
        row.starts_at,
        row.ends_at,
        row.status,
        row.fee_fen,
        {},
        {},
    )


def _booking_query() -> Any:
    b, sl, s, d, dep = t.Booking, t.Slot, t.ClinicSession, t.Doctor, t.Department
    return (
        select(
            b.id,
            b.resident_id,
            b.session_id,
            b.slot_id,
            sl.number,
            sl.pool,
            b.institution_code,
            dep.code,
            dep.name,
            s.doctor_id,
            d.name,
            d.username,
            s.on,
            s.period,
            sl.starts_at,
            s.ends_at,
            b.channel,
            b.referred_by,
            b.status,
            b.booked_at,
            b.booked_by,
            b.cancelled_at,
            b.cancelled_by,
            b.checked_in_at,
            b.encounter_id,
        )
        .join(sl, sl.id == b.slot_id)
        .join(s, s.id == b.session_id)
        .join(d, d.id == s.doctor_id)
        .join(dep, dep.id == s.department_id)
    )


def _booking_view(*row: Any) -> BookingView:
    return BookingView(*row)


def _suspension_view(row: t.BookingSuspension) -> SuspensionView:
    return SuspensionView(
        row.id, row.resident_id, row.starts_at, row.ends_at, row.reason, row.lifted_at, row.lifted_by
    )


# ==== the use cases (what the API calls through the node) ========================================
#: (uow, card number, chip serial) → the live card's row (``resident_id``, ``card_number``,
#: ``chip_serial``); refuses an unknown card, a lost or otherwise unusable chip (HotListed)
CardLookup = Callable[["UnitOfWork", str, str], Any]


@dataclass(frozen=True)
class CheckIn:
    """What a terminal gets back for a check-in swipe."""

    booking: BookingView
    encounter_id: int
    card_use_id: int
    grant_expires_at: dt.datetime


@dataclass(frozen=True)
class ScheduleRows:
    """A doctor's schedule at an institution (the FHIR Schedule): the doctor, the institution's
    name and the first and last day with an opened session from today (None: none)."""

    doctor: DoctorView
    institution_name: str
    first_day: dt.date | None
    last_day: dt.date | None


class AppointmentUseCases(Desk):
    """The appointment use cases of a node: each one transaction, each one through the access
    policy (category ``appointments``) like the others of :class:`~healthcard.platform.node.Node`.

    Who may do what (the access table says which ties; the channel rules are checked here):

    * a **resident** books (portal, or kiosk when logged in with the card), cancels and reads
      their own bookings;
    * the **registration desk** books for a patient whose card is present or who is in care
      there — at its own institution, its walk-in pool on the day — cancels those, reads them,
      and lifts a no-show suspension;
    * a **clinician** refers a patient whose card is present or who is in care at their
      institution upward: the referral pool of a higher-level institution;
    * a **terminal** checks in the booking of the card in its slot;
    * the **platform admin** keeps departments, doctors, templates and exceptions, opens
      sessions and runs the no-show sweep (no resident's data: audited without a resident).

    Departments, doctors, sessions and slots are reference data: any logged-in caller reads them.
    """

    category = Category.APPOINTMENTS

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        access: Access,
        audit: Audit,
        mpi: Mpi,
        records: rec.Records,
        card: CardLookup,
        policy: BookingPolicy | None = None,
    ) -> None:
        super().__init__(db, clock, access=access, audit=audit, mpi=mpi)
        self.records = records
        self.card = card
        self.service = Appointments(clock, policy)

    @property
    def policy(self) -> BookingPolicy:
        return self.service.policy

    # --- reference data ------------------------------------------------------------------------
    def departments(self, institution: str) -> list[DepartmentView]:
        with self.db.uow() as uow:
            return self.service.departments(uow, institution)

    def doctors(self, institution: str, department_code: str | None = None) -> list[DoctorView]:
        with self.db.uow() as uow:
            return self.service.doctors(uow, institution, department_code)

    def sessions(
        self,
        institution: str,
        *,
        first_day: dt.date | None = None,
        last_day: dt.date | None = None,
        department_code: str | None = None,
        doctor_id: int | None = None,
    ) -> list[SessionView]:
        """Sessions from ``first_day`` (today) to ``last_day`` (the end of the booking window)."""
        first = first_day or self.service.today()
        last = last_day or self.service.today() + dt.timedelta(days=self.policy.window_days)
        with self.db.uow() as uow:
            return self.service.sessions(
                uow,
                institution,
                first_day=first,
                last_day=last,
                department_code=department_code,
                doctor_id=doctor_id,
            )

    def session(self, session_id: int) -> SessionView:
        with self.db.uow() as uow:
            return self.service.session(uow, session_id)

    def slots(self, session_id: int) -> list[SlotView]:
        with self.db.uow() as uow:
            return self.service.slots(uow, session_id)

    def templates(self, actor: Actor, doctor_id: int) -> list[TemplateView]:
        self._admin(actor)
        with self.db.uow() as uow:
            return self.service.templates(uow, doctor_id)

    def schedule(self, doctor_id: int) -> ScheduleRows:
        """A doctor's schedule (FHIR Schedule): the doctor and the days opened from today."""
        with self.db.uow() as uow:
            doctor = self.service.doctor(uow, doctor_id)
            s = t.ClinicSession
            first, last = uow.session.execute(
                select(func.min(s.on), func.max(s.on)).where(
                    s.doctor_id == doctor_id, s.on >= self.service.today()
                )
            ).one()
            institution = uow.reference.institution(doctor.institution_code)
            name = institution.name if institution is not None else doctor.institution_code
            return ScheduleRows(doctor, name, first, last)

    def doctor_slots(
        self, doctor_id: int, *, first_day: dt.date | None = None, last_day: dt.date | None = None
    ) -> list[tuple[SessionView, list[SlotView]]]:
        """A doctor's sessions of a date range with their slots (FHIR Slot search)."""
        with self.db.uow() as uow:
            doctor = self.service.doctor(uow, doctor_id)
            first = first_day or self.service.today()
            last = last_day or first + dt.timedelta(days=self.policy.window_days)
            sessions = self.service.sessions(
                uow, doctor.institution_code, first_day=first, last_day=last, doctor_id=doctor_id
            )
            return [(s, self.service.slots(uow, s.id)) for s in sessions]

    # --- the admin's ---------------------------------------------------------------------------
    @staticmethod
    def _admin(actor: Actor) -> None:
        if actor.role is not Role.ADMIN:
            raise PermissionDenied("departments, doctors and schedules are kept by platform admins")

    def _kept(self, uow: UnitOfWork, actor: Actor, what: str, why: str) -> None:
        self.audit.record(uow, actor, action="write", what=what, why=why[:200], resident_id=None)

    def add_department(
        self, actor: Actor, institution: str, code: str, name: str | None = None
    ) -> DepartmentView:
        self._admin(actor)
        with self.db.uow() as uow:
            view = self.service.add_department(uow, institution, code, name)
            self._kept(uow, actor, "schedule: department", f"{institution} {view.code} {view.name}")
            uow.commit()
            return view

    def add_doctor(
        self,
        actor: Actor,
        institution: str,
        *,
        department_code: str,
        name: str,
        title: str,
        username: str | None = None,
        fee_fen: int = 0,
    ) -> DoctorView:
        self._admin(actor)
        with self.db.uow() as uow:
            view = self.service.add_doctor(
                uow,
                institution,
                department_code=department_code,
                name=name,
                title=title,
                username=username,
                fee_fen=fee_fen,
            )
            self._kept(uow, actor, "schedule: doctor", f"{institution} doctor {view.id}")
            uow.commit()
            return view

    def add_template(self, actor: Actor, **fields: Any) -> TemplateView:
        self._admin(actor)
        with self.db.uow() as uow:
            view = self.service.add_template(uow, **fields)
            self._kept(uow, actor, "schedule: template", f"doctor {view.doctor_id} template {view.id}")
            uow.commit()
            return view

    def end_template(self, actor: Actor, template_id: int, last_day: dt.date) -> TemplateView:
        self._admin(actor)
        with self.db.uow() as uow:
            view = self.service.end_template(uow, template_id, last_day)
            self._kept(uow, actor, "schedule: template", f"template {template_id} ends {last_day}")
            uow.commit()
            return view

    def exceptions(
        self, actor: Actor, institution: str, first_day: dt.date, last_day: dt.date
    ) -> list[ExceptionView]:
        self._admin(actor)
        with self.db.uow() as uow:
            return self.service.exceptions(uow, institution, first_day, last_day)

    def add_exception(
        self,
        actor: Actor,
        institution: str,
        *,
        on: dt.date,
        reason: str,
        doctor_id: int | None = None,
        period: str | None = None,
    ) -> ExceptionView:
        self._admin(actor)
        with self.db.uow() as uow:
            view = self.service.add_exception(
                uow, institution, on=on, reason=reason, by=actor.id, doctor_id=doctor_id, period=period
            )
            self._kept(uow, actor, "schedule: exception", f"{institution} {on} {reason}")
            uow.commit()
            return view

    def open_sessions(
        self,
        actor: Actor,
        institution: str,
        first_day: dt.date | None = None,
        last_day: dt.date | None = None,
    ) -> OpenReport:
        """Open the sessions of ``first_day`` (today) … ``last_day`` (the window's end)."""
        self._admin(actor)
        first = first_day or self.service.today()
        last = last_day or self.service.today() + dt.timedelta(days=self.policy.window_days)
        with self.db.uow() as uow:
            report = self.service.open_sessions(uow, institution, first, last)
            self._kept(
                uow, actor, "schedule: sessions", f"{institution} {first}..{last}: {report.sessions} opened"
            )
            uow.commit()
            return report

    def sweep_no_shows(self, actor: Actor) -> NoShowReport:
        """Mark every no-show and suspend whoever reached the limit (a nightly job)."""
        self._admin(actor)
        with self.db.uow() as uow:
            report = self.service.mark_no_shows(uow)
            self._kept(
                uow, actor, "no-show sweep", f"{report.marked} no-shows, {len(report.suspended)} suspended"
            )
            uow.commit()
            return report

    # --- the resident's bookings ---------------------------------------------------------------
    @staticmethod
    def _channel(actor: Actor, channel: str | None) -> Channel:
        """The channel of the caller: a resident books on the portal (the kiosk when logged in
        with the card), the desk at the desk, a clinician by referral."""
        wanted = None if channel is None else _enum(Channel, "channel", channel)
        if actor.role is Role.RESIDENT:
            allowed = {Channel.PORTAL, Channel.KIOSK}
            default = Channel.KIOSK if actor.carrier is Carrier.CARD else Channel.PORTAL
        elif actor.role is Role.REGISTRATION:
            allowed, default = {Channel.DESK}, Channel.DESK
        elif actor.role is Role.CLINICIAN:
            allowed, default = {Channel.REFERRAL}, Channel.REFERRAL
        else:
            raise PermissionDenied(
                "bookings are made by residents, registration desks and referring clinicians"
            )
        if wanted is not None and wanted not in allowed:
            raise InvalidValue(
                "channel", f"{wanted.value}: a {actor.role.value} books by {', '.join(sorted(allowed))}"
            )
        return wanted or default

    def _whose(
        self, uow: UnitOfWork, actor: Actor, resident_id: str | None, card_number: str | None
    ) -> list[str]:
        """The person's ids: by resident id, by card number (real-name), or the resident caller."""
        if resident_id and card_number:
            raise InvalidValue("card_number", "either resident_id or card_number, not both")
        if card_number:
            resident_id = self.mpi.resolve(uow, "card", card_number)
        resident_id = resident_id or actor.resident_id
        if not resident_id:
            raise InvalidValue("resident_id", "whose booking: a resident id or a card number")
        return self.mpi.linked_ids(uow, resident_id)

    def book(
        self,
        actor: Actor,
        session_id: int,
        *,
        resident_id: str | None = None,
        card_number: str | None = None,
        channel: str | None = None,
        key: str | None = None,
    ) -> BookingView:
        return self.book_once(
            actor, session_id, resident_id=resident_id, card_number=card_number, channel=channel, key=key
        )[0]

    def book_once(
        self,
        actor: Actor,
        session_id: int,
        *,
        resident_id: str | None = None,
        card_number: str | None = None,
        channel: str | None = None,
        key: str | None = None,
    ) -> tuple[BookingView, bool]:
        """:meth:`book`, and whether this call made the booking: with the booker's idempotency
        ``key``, a retry of an earlier call (its answer lost) gets that booking and False.  A
        booking that loses the race on the key's unique index (the same key sent for two patients
        at once; one patient's tries queue on their audit chain instead) is tried once more, and
        the second try answers as a retry does."""
        used = self._channel(actor, channel)
        for attempt in (1, 2):
            try:
                with self.db.uow() as uow:
                    ids = self._whose(uow, actor, resident_id, card_number)
                    self.access.check(
                        uow,
                        actor,
                        ids,
                        Category.APPOINTMENTS,
                        Action.WRITE,
                        what=f"booking session {session_id}",
                        why=used.value,
                    )
                    earlier = (
                        None
                        if key is None
                        else self.service.keyed(uow, ids, session_id, by=actor.id, key=key)
                    )
                    if earlier is not None:
                        uow.commit()  # the audit entry of the retry
                        return earlier, False
                    view = self.service.book(
                        uow,
                        ids,
                        session_id,
                        channel=used,
                        by=actor.id,
                        origin=actor.institution_code,
                        key=key,
                    )
                    uow.commit()
                    return view, True
            except Duplicate as refused:
                if key is None or refused.field != "session_id" or attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def bookings(
        self, actor: Actor, resident_id: str | None = None, *, status: str | None = None, limit: int = 50
    ) -> list[BookingView]:
        with self.db.uow() as uow:
            ids = self._whose(uow, actor, resident_id, None)
            self.access.check(uow, actor, ids, Category.APPOINTMENTS, what="bookings")
            views = self.service.bookings(uow, ids, status=status, limit=limit)
            uow.commit()
            return views

    def booking(self, actor: Actor, booking_id: int) -> BookingView:
        with self.db.uow() as uow:
            ids = self.mpi.linked_ids(uow, self.service.resident_of(uow, booking_id))
            self.access.check(uow, actor, ids, Category.APPOINTMENTS, what=f"booking {booking_id}")
            view = self.service.booking(uow, booking_id)
            uow.commit()
            return view

    def cancel(self, actor: Actor, booking_id: int) -> BookingView:
        """Cancel a booking: the resident's own, the desk's at its institution, the referring
        clinic's referral."""
        with self.db.uow() as uow:
            ids = self.mpi.linked_ids(uow, self.service.resident_of(uow, booking_id))
            self.access.check(
                uow,
                actor,
                ids,
                Category.APPOINTMENTS,
                Action.WRITE,
                what=f"booking {booking_id}",
                why="cancel",
            )
            booking = self.service.booking(uow, booking_id)
            if actor.role is Role.REGISTRATION and booking.institution_code != actor.institution_code:
                raise PermissionDenied("the desk cancels bookings at its own institution")
            if actor.role is Role.CLINICIAN and booking.referred_by != actor.institution_code:
                raise PermissionDenied("a clinician cancels the referrals of their own institution")
            view = self.service.cancel(uow, ids, booking_id, by=actor.id)
            uow.commit()
            return view

    def suspension(self, actor: Actor, resident_id: str | None = None) -> SuspensionView | None:
        with self.db.uow() as uow:
            ids = self._whose(uow, actor, resident_id, None)
            self.access.check(uow, actor, ids, Category.APPOINTMENTS, what="booking suspension")
            self.service.mark_no_shows(uow, ids)
            view = self.service.suspension(uow, ids)
            uow.commit()
            return view

    def lift_suspension(self, actor: Actor, resident_id: str, *, reason: str) -> list[SuspensionView]:
        """The registration desk lifts a resident's no-show suspension (with a reason)."""
        if actor.role is not Role.REGISTRATION:
            raise PermissionDenied("a no-show suspension is lifted by a registration desk")
        reason = _text("reason", reason, 200, shortest=4)
        with self.db.uow() as uow:
            ids = self.mpi.linked_ids(uow, resident_id)
            self.access.check(
                uow,
                actor,
                ids,
                Category.APPOINTMENTS,
                Action.WRITE,
                what="booking suspension",
                why=f"lift: {reason}",
            )
            views = self.service.lift_suspension(uow, ids, by=actor.id)
            uow.commit()
            return views

    # --- check-in by swiping the card ----------------------------------------------------------
    def check_in(
        self,
        actor: Actor,
        *,
        card_number: str,
        chip_serial: str,
        booking_id: int | None = None,
        terminal_kind: str = "workstation",
    ) -> CheckIn:
        """The card swiped at a terminal of the institution (a swipe at the registration stage:
        card use and presence grant), the booking of today checked in, the encounter opened for
        the doctor — one transaction: a refusal leaves none of it."""
        if actor.role is not Role.TERMINAL or not actor.institution_code:
            raise PermissionDenied("check-in is a card swiped at a terminal logged in with its SAM")
        institution = actor.institution_code
        now = self.clock.now()
        with self.db.uow() as uow:
            card = self.card(uow, card_number, chip_serial)
            ids = self.mpi.linked_ids(uow, card.resident_id)
            use = t.CardUse(
                resident_id=ids[0],
                card_number=card_number,
                chip_serial=card.chip_serial,
                institution_code=institution,
                terminal_id=actor.id,
                terminal_kind=terminal_kind[:16],
                stage="registration",
                at=now,
            )
            uow.session.add(use)
            uow.flush()
            grant = self.access.grant_presence(
                uow, resident_id=ids[0], institution_code=institution, card_use_id=use.id
            )
            present = frozenset({Relationship.PRESENCE})
            self.access.check(
                uow,
                actor,
                ids,
                Category.APPOINTMENTS,
                Action.WRITE,
                what="booking",
                why="check-in",
                known=present,
            )
            booking = self.service.check_in(uow, ids, institution, booking_id=booking_id)
            self.access.check(
                uow,
                actor,
                ids,
                Category.ENCOUNTERS,
                Action.WRITE,
                what="encounter",
                why="open: check-in",
                known=present,
            )
            encounter = self.records.open_encounter(
                uow,
                ids[0],
                rec.EncounterIn(
                    institution_code=institution,
                    kind=rec.EncounterKind.OUTPATIENT,
                    department=booking.department,
                    department_code=booking.department_code,
                    clinician=booking.doctor_username,
                    started_at=now,
                    carrier="card",
                    card_number=card_number,
                ),
            )
            view = self.service.attach_encounter(uow, booking.id, encounter.id)
            uow.commit()
            return CheckIn(view, encounter.id, use.id, grant.expires_at)

    # --- rows for the FHIR views ---------------------------------------------------------------
    def appointment_rows(
        self, actor: Actor, resident_id: str, *, limit: int = 100
    ) -> tuple[list[BookingView], str | None, dict[str, str]]:
        """The person's bookings (FHIR Appointment), their live card number, institution names."""
        with self.db.uow() as uow:
            ids = self.mpi.linked_ids(uow, resident_id)
            self.access.check(uow, actor, ids, Category.APPOINTMENTS, what="Appointment", why="fhir")
            views = self.service.bookings(uow, ids, limit=limit)
            card, names = self._fhir_context(uow, ids, views)
            uow.commit()
            return views, card, names

    def appointment_row(
        self, actor: Actor, booking_id: int
    ) -> tuple[BookingView, str | None, dict[str, str]]:
        with self.db.uow() as uow:
            ids = self.mpi.linked_ids(uow, self.service.resident_of(uow, booking_id))
            self.access.check(uow, actor, ids, Category.APPOINTMENTS, what="Appointment", why="fhir")
            view = self.service.booking(uow, booking_id)
            card, names = self._fhir_context(uow, ids, [view])
            uow.commit()
            return view, card, names

    @staticmethod
    def _fhir_context(
        uow: UnitOfWork, ids: Sequence[str], views: Sequence[BookingView]
    ) -> tuple[str | None, dict[str, str]]:
        card = uow.session.scalar(
            select(t.Card.card_number).where(
                t.Card.resident_id.in_(list(ids)), t.Card.status.in_(t.LIVE_CARD)
            )
        )
        codes = sorted({v.institution_code for v in views} | {v.referred_by for v in views if v.referred_by})
        rows = uow.session.execute(
            select(t.Institution.code, t.Institution.name).where(t.Institution.code.in_(codes))
        )
        names = {code: name for code, name in rows}
        return card, names


# ==== the demo city ===============================================================================
#: departments by level (standard codes) and their doctors' titles (the first doctor of the
#: first department is the institution's demo clinician account, when there is one)
_DEMO_DEPARTMENTS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "province": (
        ("304", ("主任医师", "副主任医师")),
        ("302", ("主任医师", "主治医师")),
        ("403", ("副主任医师",)),
        ("500", ("主任医师", "主治医师")),
        ("700", ("副主任医师", "主治医师")),
        ("1000", ("主治医师",)),
    ),
    "city": (
        ("300", ("主任医师", "主治医师")),
        ("400", ("副主任医师",)),
        ("500", ("主治医师",)),
        ("700", ("副主任医师", "主治医师")),
        ("1200", ("主治医师",)),
    ),
    "county": (
        ("300", ("副主任医师", "主治医师")),
        ("400", ("主治医师",)),
        ("500", ("主治医师",)),
        ("700", ("医师",)),
    ),
    "township": (("200", ("主治医师", "医师")), ("100", ("医师",))),
}
_DEMO_FEE = {"province": 1500, "city": 1000, "county": 600, "township": 300, "village": 100}
_DEMO_TITLE_EXTRA = {"主任医师": 2000, "副主任医师": 1000, "主治医师": 0, "医师": 0}
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾"
_GIVEN = "建华秀兰国庆丽娟志刚海燕文博雪梅晓东春生玉兰明辉静怡卫东"  # two characters each


def seed_demo(
    db: Database,
    clock: Clock,
    institutions: Sequence[tuple[str, str | None]],
    clinicians: Mapping[str, str] | None = None,
    *,
    policy: BookingPolicy | None = None,
) -> list[OpenReport]:
    """The demo city's appointments: for each ``(institution code, level)`` with no department
    yet, departments, doctors (``clinicians``: institution → its demo clinician's username, the
    first doctor) and weekly templates (Monday–Friday mornings and afternoons, Saturday
    mornings at hospitals); then the sessions of today and the booking window are opened (on
    every call: the days move on).  Idempotent; a fraction of a second on SQLite."""
    service = Appointments(clock, policy)
    clinicians = clinicians or {}
    today = service.today()
    reports = []
    with db.uow() as uow:
        names = iter(f"{s}{_GIVEN[g : g + 2]}" for g in range(0, len(_GIVEN), 2) for s in _SURNAMES)
        for code, level in institutions:
            plan = _DEMO_DEPARTMENTS.get(level or "")
            if plan is None or uow.reference.institution(code) is None:
                continue
            if uow.session.scalar(
                select(t.Department.id).where(t.Department.institution_code == code).limit(1)
            ):
                continue
            username = clinicians.get(code)
            for department_code, titles in plan:
                service.add_department(uow, code, department_code)
                for title in titles:
                    doctor = service.add_doctor(
                        uow,
                        code,
                        department_code=department_code,
                        name=next(names),
                        title=title,
                        username=username,
                        fee_fen=_DEMO_FEE[level or "county"] + _DEMO_TITLE_EXTRA[title],
                    )
                    username = None
                    hospital = level in ("province", "city", "county")
                    days = [(d, p) for d in range(1, 6) for p in (Period.MORNING, Period.AFTERNOON)]
                    if hospital:
                        days.append((6, Period.MORNING))
                    for weekday, period in days:
                        service.add_template(
                            uow,
                            doctor_id=doctor.id,
                            weekday=weekday,
                            period=period,
                            slots=20,
                            walk_in=4,
                            referral=3 if hospital else 0,
                            slot_minutes=10,
                            valid_from=today,
                        )
        uow.commit()
    last = today + dt.timedelta(days=service.policy.window_days)
    with db.uow() as uow:
        for code, level in institutions:
            if level in _DEMO_DEPARTMENTS and uow.reference.institution(code) is not None:
                reports.append(service.open_sessions(uow, code, today, last))
        uow.commit()
    return reports


__all__ = [
    "LEVELS",
    "TITLES",
    "AppointmentUseCases",
    "Appointments",
    "BookingPolicy",
    "BookingStatus",
    "BookingView",
    "Channel",
    "ChannelRule",
    "CheckIn",
    "Closure",
    "DepartmentView",
    "DoctorView",
    "ExceptionView",
    "Hours",
    "NoShowReport",
    "OpenReport",
    "Period",
    "PlannedSession",
    "Pool",
    "ScheduleRows",
    "SessionStatus",
    "SessionView",
    "SlotStatus",
    "SlotView",
    "SuspensionView",
    "TemplateView",
    "WeeklySession",
    "booked_here_today",
    "default_policy",
    "department_codes",
    "department_name",
    "load_policy",
    "parse_policy",
    "planned_sessions",
    "seed_demo",
    "session_times",
    "slot_pools",
]
