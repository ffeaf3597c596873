"""Appointments on SQLite and PostgreSQL through the node's use cases: sessions from templates
minus exceptions, every booking rule, cancellation, no-shows and the suspension, check-in by
swiping the card (the encounter opened, the presence grant), the CARE tie of a booking today,
and bad input refused by field with nothing written.

The clock: Tuesday 24 November 2026, 10:00 in Zhengzhou.  The doctor (dr-wang's account) holds a
morning (08:00–12:00) and an afternoon (14:00–17:30) session every day, 6 slots each: numbers
1–3 public, 4 referral, 5–6 walk-in."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from healthcard.errors import (
    Duplicate,
    HotListed,
    InvalidValue,
    NotFound,
    PermissionDenied,
    TransitionRefused,
)
from healthcard.issuance.organisation import Organisation
from healthcard.platform.access import Actor, Carrier, Relationship, Role
from healthcard.platform.appointments import Appointments, seed_demo
from healthcard.platform.node import Node
from healthcard.storage import tables as t

from .appointment_fixtures import ADMIN, Clinic, make_clinic, make_residents, resident
from .platform_fixtures import CARD, HOSPITAL, OTHER, Platform

TOWNSHIP = "410102101"  # 中原区建设路社区卫生服务中心 (township level)
DESK = Actor("desk-zy", Role.REGISTRATION, institution_code=HOSPITAL)
DR_WANG = Actor("dr-wang", Role.CLINICIAN, institution_code=HOSPITAL)
DR_TOWN = Actor("dr-town", Role.CLINICIAN, institution_code=TOWNSHIP)


@pytest.fixture
def clinic(platform: Platform) -> Clinic:
    Organisation(platform.app.db).add_institution(
        TOWNSHIP,
        name="中原区建设路社区卫生服务中心",
        area="410102",
        kind="clinic",
        issues=False,
        level="township",
    )
    return make_clinic(platform.app.node, HOSPITAL, level="county", username="dr-wang")


def node_of(platform: Platform) -> Node:
    return platform.app.node


def me(platform: Platform, carrier: Carrier = Carrier.LOGIN) -> Actor:
    return Actor(CARD, Role.RESIDENT, resident_id=platform.resident_id, carrier=carrier)


def terminal(platform: Platform) -> Actor:
    return Actor(platform.terminal_id, Role.TERMINAL, institution_code=HOSPITAL, carrier=Carrier.TERMINAL)


def swipe(platform: Platform) -> None:
    """The card authenticated at the hospital's workstation: a presence grant there."""
    node_of(platform).swipe(terminal(platform), card_number=CARD, chip_serial=platform.chip_serial)


def present_at(platform: Platform, institution: str, resident_id: str) -> None:
    node = node_of(platform)
    with node.db.uow() as uow:
        node.access.grant_presence(
            uow, resident_id=resident_id, institution_code=institution, card_use_id=None
        )
        uow.commit()


def count(platform: Platform, table: Any, **where: object) -> int:
    with platform.app.db.uow() as uow:
        query = select(func.count()).select_from(table)
        for column, value in where.items():
            query = query.where(getattr(table, column) == value)
        return int(uow.session.scalar(query) or 0)


WRITTEN = (
    t.Booking,
    t.BookingSuspension,
    t.CardUse,
    t.PresenceGrant,
    t.Encounter,
    t.Department,
    t.Doctor,
    t.ScheduleTemplate,
    t.ScheduleException,
    t.ClinicSession,
    t.Notification,
)


def snapshot(platform: Platform) -> dict[str, int]:
    """Row counts of what appointments write, and the slots taken."""
    counts = {table.__tablename__: count(platform, table) for table in WRITTEN}
    counts["slots booked"] = count(platform, t.Slot, status="BOOKED")
    counts["audit allowed"] = count(platform, t.AuditEntry, outcome="allowed")
    return counts


def refused(
    platform: Platform,
    kind: type[Exception],
    call: Callable[[], object],
    *,
    field: str | None = None,
    says: str = "",
) -> Exception:
    """``call`` raises ``kind`` (naming ``field``, saying ``says``) and writes nothing."""
    before = snapshot(platform)
    with pytest.raises(kind) as raised:
        call()
    if field is not None:
        assert isinstance(raised.value, InvalidValue) and raised.value.field == field, raised.value
    assert says in str(raised.value)
    assert snapshot(platform) == before
    return raised.value


def local(at: dt.datetime) -> str:
    return at.astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m-%d %H:%M")


# --- sessions from templates ----------------------------------------------------------------------
def test_sessions_are_opened_once_with_their_pools(platform: Platform, clinic: Clinic) -> None:
    appointments = node_of(platform).appointments
    again = appointments.open_sessions(ADMIN, HOSPITAL, clinic.today, clinic.today + dt.timedelta(days=7))
    assert (again.sessions, again.slots, again.existing) == (0, 0, 16)
    assert count(platform, t.ClinicSession) == 16 and count(platform, t.Slot) == 96

    found = appointments.sessions(HOSPITAL)  # today to the end of the window
    assert len(found) == 16 and found[0].on == clinic.today and found[0].period == "morning"
    assert found[0].free == {"public": 3, "referral": 1, "walk-in": 2} == found[0].slots
    assert found[0].department == "内科" and found[0].doctor == "王建华" and found[0].fee_fen == 600
    assert appointments.sessions(HOSPITAL, department_code="300") == found
    assert appointments.sessions(HOSPITAL, department_code="700") == []
    with pytest.raises(InvalidValue) as bad:
        appointments.sessions(HOSPITAL, department_code="999")
    assert bad.value.field == "code"

    slots = appointments.slots(clinic.session(days=0))
    assert [(s.number, s.pool) for s in slots] == [
        (1, "public"),
        (2, "public"),
        (3, "public"),
        (4, "referral"),
        (5, "walk-in"),
        (6, "walk-in"),
    ]
    assert local(slots[0].starts_at) == "2026-11-24 08:00" and local(slots[5].ends_at) == "2026-11-24 09:00"
    departments = appointments.departments(HOSPITAL)
    assert [(d.code, d.name, d.standard_name) for d in departments] == [("300", "内科", "内科")]
    assert [d.username for d in appointments.doctors(HOSPITAL)] == ["dr-wang"]


# --- booking ----------------------------------------------------------------------------------------
def test_a_resident_books_reads_and_cancels_their_own(platform: Platform, clinic: Clinic) -> None:
    appointments = node_of(platform).appointments
    session_id = clinic.session(days=1)
    booked = appointments.book(me(platform), session_id)
    assert (booked.status, booked.channel, booked.pool, booked.number) == ("BOOKED", "portal", "public", 1)
    assert booked.resident_id == platform.resident_id and booked.institution_code == HOSPITAL
    assert local(booked.starts_at) == "2026-11-25 08:00" and booked.doctor_username == "dr-wang"
    assert appointments.session(session_id).free["public"] == 2
    assert appointments.bookings(me(platform)) == [booked]
    assert appointments.booking(me(platform), booked.id) == booked
    assert count(platform, t.AuditEntry, actor=CARD, what=f"booking session {session_id}") == 1

    cancelled = appointments.cancel(me(platform), booked.id)
    assert cancelled.status == "CANCELLED" and cancelled.cancelled_by == CARD
    assert appointments.session(session_id).free["public"] == 3
    again = appointments.book(me(platform, Carrier.CARD), session_id)  # at a kiosk, with the card
    assert (again.channel, again.number, again.slot_id) == ("kiosk", 1, booked.slot_id)
    assert [b.status for b in appointments.bookings(me(platform))] == ["BOOKED", "CANCELLED"]
    refused(
        platform, TransitionRefused, lambda: appointments.cancel(me(platform), booked.id), says="cancelled"
    )


def test_one_booking_per_resident_per_doctor_and_session(platform: Platform, clinic: Clinic) -> None:
    appointments = node_of(platform).appointments
    session_id = clinic.session(days=1)
    appointments.book(me(platform), session_id)
    refused(
        platform,
        Duplicate,
        lambda: appointments.book(me(platform), session_id),
        field="session_id",
        says="already booked",
    )
    # the desk cannot add a second one either
    swipe(platform)
    refused(
        platform, Duplicate, lambda: appointments.book(DESK, session_id, resident_id=platform.resident_id)
    )
    assert appointments.book(me(platform), clinic.session(days=1, period="afternoon")).number == 1


def test_one_key_racing_for_two_patients_books_one(
    platform: Platform, clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The desk's software sends one key for two patients at once: both look for the key, find
    nothing, book; the database's unique index on the booker's key stops the second, which is
    tried once more and is refused naming the key — not "already booked", which would be untrue.
    (The same patient's two retries never race like this: the audit entry of the first locks the
    patient's audit chain until it commits, so the second finds the key.  SQLite serialises the
    two transactions instead.)"""
    appointments = node_of(platform).appointments
    session_id = clinic.session(days=1)
    people = make_residents(platform.app.db, 2, "race", platform.clock)
    for person in people:
        present_at(platform, HOSPITAL, person)
    postgres = platform.app.db.dialect == "postgresql"
    looked = threading.Barrier(2, timeout=10)
    first_look = threading.local()
    original = Appointments.keyed

    def look_then_wait(self: Appointments, *args: Any, **kwargs: Any) -> Any:
        found = original(self, *args, **kwargs)
        if postgres and not getattr(first_look, "done", False):
            first_look.done = True
            looked.wait()  # both have looked before either books
        return found

    monkeypatch.setattr(Appointments, "keyed", look_then_wait)
    results: list[tuple[str, int, bool]] = []
    errors: list[BaseException] = []

    def book(person: str) -> None:
        try:
            view, created = appointments.book_once(DESK, session_id, resident_id=person, key="desk-4411")
            results.append((person, view.id, created))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=book, args=(person,)) for person in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    ((winner, booking_id, created),) = results
    assert created
    (error,) = errors
    assert isinstance(error, Duplicate) and error.field == "idempotency_key", error
    assert f"booking {booking_id}" in str(error)
    assert count(platform, t.Booking) == 1 and count(platform, t.Slot, status="BOOKED") == 1
    monkeypatch.undo()
    # the winner's retry is answered with its booking; a key with a control character is named
    again, created = appointments.book_once(DESK, session_id, resident_id=winner, key="desk-4411")
    assert (again.id, created) == (booking_id, False)
    refused(
        platform,
        InvalidValue,
        lambda: appointments.book_once(DESK, clinic.session(days=2), resident_id=winner, key="a\x00b"),
        field="idempotency_key",
    )


def test_the_window_and_the_session_state(platform: Platform, clinic: Clinic) -> None:
    appointments = node_of(platform).appointments
    appointments.open_sessions(ADMIN, HOSPITAL, clinic.today, clinic.today + dt.timedelta(days=9))
    refused(
        platform,
        InvalidValue,
        lambda: appointments.book(me(platform), clinic.session(days=8)),
        field="session_id",
        says="beyond the booking window",
    )
    assert appointments.book(me(platform), clinic.session(days=7)).status == "BOOKED"
    refused(platform, NotFound, lambda: appointments.book(me(platform), 10**9), says="no session")
    # today's morning is under way: bookable until it ends at 12:00
    assert appointments.book(me(platform), clinic.session(days=0)).number == 1
    platform.clock.advance(dt.timedelta(hours=2, minutes=30))
    others = make_residents(platform.app.db, 1, "late", platform.clock)
    refused(
        platform,
        TransitionRefused,
        lambda: appointments.book(resident(others[0]), clinic.session(days=0)),
        says="ended",
    )


def test_the_portal_takes_public_slots_only(platform: Platform, clinic: Clinic) -> None:
    appointments = node_of(platform).appointments
    session_id = clinic.session(days=1)
    people = make_residents(platform.app.db, 4, "pub", platform.clock)
    assert [appointments.book(resident(p), session_id).number for p in people[:3]] == [1, 2, 3]
    refused(
        platform,
        TransitionRefused,
        lambda: appointments.book(resident(people[3]), session_id),
        says=f"no free slot in session {session_id} for a portal booking (public)",
    )
    assert appointments.session(session_id).free == {"public": 0, "referral": 1, "walk-in": 2}


def test_cancellation_closes_two_hours_before_the_session(platform: Platform, clinic: Clinic) -> None:
    appointments = node_of(platform).appointments
    afternoon = clinic.session(days=0, period="afternoon")  # 14:00: cancellable until 12:00
    first = appointments.book(me(platform), afternoon)
    appointments.cancel(me(platform), first.id)
    second = appointments.book(me(platform), afternoon)
    platform.clock.advance(dt.timedelta(hours=2, minutes=1))  # 12:01
    refused(
        platform,
        TransitionRefused,
        lambda: appointments.cancel(me(platform), second.id),
        says="cancellation closed at 2026-11-24 12:00",
    )
    assert appointments.booking(me(platform), second.id).status == "BOOKED"


def test_the_desk_books_a_patient_whose_card_is_present(platform: Platform, clinic: Clinic) -> None:
    appointments = node_of(platform).appointments
    today = clinic.session(days=0, period="afternoon")
    refused(
        platform,
        PermissionDenied,
        lambda: appointments.book(DESK, today, resident_id=platform.resident_id),
        says="registration may write appointments only under presence or care",
    )
    assert count(platform, t.AuditEntry, actor="desk-zy", outcome="denied") == 1

    swipe(platform)
    walk_in = appointments.book(DESK, today, card_number=CARD)  # real-name by the card number
    assert (walk_in.channel, walk_in.pool, walk_in.number, walk_in.booked_by) == (
        "desk",
        "walk-in",
        5,
        "desk-zy",
    )
    # a later day: no walk-in pool (it is for the day itself), a public slot
    later = appointments.book(DESK, clinic.session(days=1), resident_id=platform.resident_id)
    assert (later.pool, later.number) == ("public", 1)
    # the walk-in pool full: the desk falls back on public slots
    people = make_residents(platform.app.db, 2, "walk", platform.clock)
    for person in people:
        present_at(platform, HOSPITAL, person)
        assert appointments.book(DESK, today, resident_id=person).pool in ("walk-in", "public")
    assert appointments.session(today).free == {"public": 2, "referral": 1, "walk-in": 0}
    # the desk books at its own institution only
    other_desk = Actor("desk-other", Role.REGISTRATION, institution_code=OTHER)
    present_at(platform, OTHER, platform.resident_id)
    refused(
        platform,
        PermissionDenied,
        lambda: appointments.book(other_desk, clinic.session(days=2), resident_id=platform.resident_id),
        says="its own institution",
    )
    refused(
        platform, PermissionDenied, lambda: appointments.cancel(other_desk, later.id), says="own institution"
    )
    assert appointments.cancel(DESK, later.id).status == "CANCELLED"


def test_a_township_clinician_refers_upward(platform: Platform, clinic: Clinic) -> None:
    appointments = node_of(platform).appointments
    session_id = clinic.session(days=1)
    refused(
        platform,
        PermissionDenied,
        lambda: appointments.book(DR_TOWN, session_id, resident_id=platform.resident_id),
        says="presence or care",
    )
    present_at(platform, TOWNSHIP, platform.resident_id)
    referral = appointments.book(DR_TOWN, session_id, resident_id=platform.resident_id)
    assert (referral.channel, referral.pool, referral.number, referral.referred_by) == (
        "referral",
        "referral",
        4,
        TOWNSHIP,
    )
    # the referral pool full: a public slot
    other = make_residents(platform.app.db, 1, "ref", platform.clock)[0]
    present_at(platform, TOWNSHIP, other)
    assert appointments.book(DR_TOWN, session_id, resident_id=other).pool == "public"
    # the referring clinic sees and cancels its referral; the resident sees it too
    assert appointments.bookings(DR_TOWN, platform.resident_id)[0].id == referral.id
    assert appointments.bookings(me(platform))[0].referred_by == TOWNSHIP
    # not upward: a hospital of the same level, or one's own institution
    with platform.app.db.uow() as uow:
        row = uow.session.get(t.Institution, OTHER)
        assert row is not None
        row.level = "county"
        uow.commit()
    dr_li = Actor("dr-li", Role.CLINICIAN, institution_code=OTHER)
    present_at(platform, OTHER, other)
    refused(
        platform,
        InvalidValue,
        lambda: appointments.book(dr_li, clinic.session(days=2), resident_id=other),
        field="session_id",
        says="a referral goes upward",
    )
    swipe(platform)
    refused(
        platform,
        InvalidValue,
        lambda: appointments.book(DR_WANG, clinic.session(days=2), resident_id=platform.resident_id),
        field="session_id",
        says="another institution",
    )
    refused(platform, PermissionDenied, lambda: appointments.cancel(DR_WANG, referral.id), says="referrals")
    assert appointments.cancel(DR_TOWN, referral.id).status == "CANCELLED"


# --- no-shows -------------------------------------------------------------------------------------
def test_three_no_shows_in_ninety_days_suspend_online_booking(platform: Platform, clinic: Clinic) -> None:
    appointments = node_of(platform).appointments
    rid = platform.resident_id
    missed = [appointments.book(me(platform), clinic.session(days=d)) for d in (0, 1, 2)]
    platform.clock.advance(dt.timedelta(days=3))  # Friday 10:00: three sessions went by, no check-in

    # the portal refuses; the marking that found out is rolled back with the refusal
    refused(
        platform,
        TransitionRefused,
        lambda: appointments.book(me(platform), clinic.session(days=4)),
        says="online booking is suspended until 2027-02-24 12:00 (3 no-shows within 90 days)",
    )
    assert {b.status for b in appointments.bookings(me(platform))} == {"BOOKED"}
    # reading the suspension marks them (lazily, for this resident) and keeps it
    suspension = appointments.suspension(me(platform))
    assert suspension is not None and local(suspension.starts_at) == "2026-11-26 12:00"
    assert suspension.ends_at - suspension.starts_at == dt.timedelta(days=90)
    assert [b.status for b in appointments.bookings(me(platform))] == ["NO_SHOW"] * 3
    assert {b.id for b in appointments.bookings(me(platform), status="NO_SHOW")} == {b.id for b in missed}

    # the desk still books (not an online channel), and lifts it; the resident cannot
    swipe(platform)
    assert appointments.book(DESK, clinic.session(days=4), resident_id=rid).channel == "desk"
    refused(
        platform, PermissionDenied, lambda: appointments.lift_suspension(me(platform), rid, reason="sorry")
    )
    lifted = appointments.lift_suspension(DESK, rid, reason="住院未能就诊，有证明")
    assert lifted[0].lifted_by == "desk-zy"
    assert appointments.suspension(me(platform)) is None
    online = appointments.book(me(platform), clinic.session(days=4, period="afternoon"))
    # two more no-shows after it (the desk's and this one): the three before it do not count again
    platform.clock.advance(dt.timedelta(days=1, hours=8))  # day 4, 18:00
    assert appointments.suspension(me(platform)) is None
    assert appointments.booking(me(platform), online.id).status == "NO_SHOW"
    swipe(platform)  # the next day: the card again at the desk
    refused(platform, NotFound, lambda: appointments.lift_suspension(DESK, rid, reason="nothing to lift"))


def test_the_sweep_marks_everyone_and_suspends_at_the_limit(platform: Platform, clinic: Clinic) -> None:
    appointments = node_of(platform).appointments
    people = make_residents(platform.app.db, 2, "sweep", platform.clock)
    for days in (0, 1, 2):
        appointments.book(resident(people[0]), clinic.session(days=days))
    appointments.book(resident(people[1]), clinic.session(days=1))
    kept = appointments.book(resident(people[1]), clinic.session(days=5))
    refused(platform, PermissionDenied, lambda: appointments.sweep_no_shows(DESK))
    platform.clock.advance(dt.timedelta(days=3))
    report = appointments.sweep_no_shows(ADMIN)
    assert (report.marked, report.suspended) == (4, (people[0],))
    assert count(platform, t.BookingSuspension, resident_id=people[0]) == 1
    assert appointments.sweep_no_shows(ADMIN).marked == 0  # nothing twice
    assert appointments.booking(resident(people[1]), kept.id).status == "BOOKED"


# --- check-in -----------------------------------------------------------------------------------------
def test_check_in_by_swiping_the_card_opens_the_encounter(platform: Platform, clinic: Clinic) -> None:
    node = node_of(platform)
    rid = platform.resident_id
    booked = node.appointments.book(me(platform), clinic.session(days=0))
    checked = node.appointments.check_in(
        terminal(platform), card_number=CARD, chip_serial=platform.chip_serial
    )
    assert checked.booking.id == booked.id and checked.booking.status == "CHECKED_IN"
    assert checked.booking.checked_in_at == platform.clock.now()
    assert checked.booking.encounter_id == checked.encounter_id
    encounter = node.encounter(DR_WANG, rid, checked.encounter_id)
    assert (encounter.status, encounter.department, encounter.clinician, encounter.institution_code) == (
        "open",
        "内科",
        "dr-wang",
        HOSPITAL,
    )
    with platform.app.db.uow() as uow:
        row = uow.session.get(t.Encounter, checked.encounter_id)
        assert row is not None and row.department_code == "300" and row.card_number == CARD
        assert row.carrier == "card"
        use = uow.session.get(t.CardUse, checked.card_use_id)
        assert use is not None and use.stage == "registration" and use.terminal_id == platform.terminal_id
        assert node.access.relationship(uow, DR_WANG, [rid]) is Relationship.PRESENCE
    assert checked.grant_expires_at == platform.clock.now() + dt.timedelta(hours=24)
    assert count(platform, t.AuditEntry, actor=platform.terminal_id, what="encounter") == 1

    refused(
        platform,
        TransitionRefused,
        lambda: node.appointments.check_in(
            terminal(platform), card_number=CARD, chip_serial=platform.chip_serial
        ),
        says="checked in already",
    )
    refused(platform, TransitionRefused, lambda: node.appointments.cancel(me(platform), booked.id))


def test_check_in_refusals_write_nothing(platform: Platform, clinic: Clinic) -> None:
    node = node_of(platform)
    appointments = node.appointments

    def check_in(chip: str | None = None) -> object:
        return appointments.check_in(
            terminal(platform), card_number=CARD, chip_serial=chip or platform.chip_serial
        )

    refused(platform, NotFound, check_in, says="no booking today at 410102001")
    appointments.book(me(platform), clinic.session(days=1))  # tomorrow: not today
    refused(platform, NotFound, check_in, says="no booking today")
    appointments.book(me(platform), clinic.session(days=0, period="afternoon"))
    refused(platform, TransitionRefused, check_in, says="check-in opens at 2026-11-24 13:00")
    refused(platform, NotFound, lambda: check_in("0011223344556677"), says="no card")
    refused(
        platform,
        PermissionDenied,
        lambda: appointments.check_in(DESK, card_number=CARD, chip_serial=platform.chip_serial),
    )
    platform.clock.advance(dt.timedelta(hours=3, minutes=30))  # 13:30: the window is open …
    platform.app.cards.report_lost("clerk-41", CARD, "lost on the bus")  # … but the card is lost
    refused(platform, HotListed, check_in, says="lost")


def test_a_booking_today_puts_the_patient_in_care_there(platform: Platform, clinic: Clinic) -> None:
    node = node_of(platform)
    rid = platform.resident_id
    with platform.app.db.uow() as uow:
        assert node.access.relationship(uow, DESK, [rid]) is Relationship.INSTITUTION
    refused(platform, PermissionDenied, lambda: node.person(DESK, rid))
    booked = node.appointments.book(me(platform), clinic.session(days=1))  # tomorrow: no care yet
    with platform.app.db.uow() as uow:
        assert node.access.relationship(uow, DESK, [rid]) is Relationship.INSTITUTION
    node.appointments.book(me(platform), clinic.session(days=0, period="afternoon"))
    with platform.app.db.uow() as uow:
        assert node.access.relationship(uow, DESK, [rid]) is Relationship.CARE
        assert node.access.relationship(uow, DR_WANG, [rid]) is Relationship.CARE
        other = Actor("dr-li", Role.CLINICIAN, institution_code=OTHER)
        assert node.access.relationship(uow, other, [rid]) is Relationship.INSTITUTION
    assert node.person(DESK, rid).name == "张三"
    # in care, the desk manages the bookings without the card
    assert node.appointments.cancel(DESK, booked.id).status == "CANCELLED"
    assert [b.status for b in node.appointments.bookings(DR_WANG, rid)] == ["CANCELLED", "BOOKED"]


# --- exceptions ------------------------------------------------------------------------------------
def test_leave_after_opening_cancels_the_session_and_tells_the_residents(
    platform: Platform, clinic: Clinic
) -> None:
    appointments = node_of(platform).appointments
    session_id = clinic.session(days=2)
    booked = appointments.book(me(platform), session_id)
    notices = count(platform, t.Notification, resident_id=platform.resident_id)
    leave = appointments.add_exception(
        ADMIN,
        HOSPITAL,
        on=clinic.today + dt.timedelta(days=2),
        reason="外出学习",
        doctor_id=clinic.doctor_id,
        period="morning",
    )
    assert (leave.cancelled_sessions, leave.cancelled_bookings) == (1, 1)
    assert appointments.session(session_id).status == "CANCELLED"
    assert appointments.session(session_id).free["public"] == 3
    assert appointments.booking(me(platform), booked.id).status == "CANCELLED"
    assert appointments.session(clinic.session(days=2, period="afternoon")).status == "OPEN"
    assert (
        count(platform, t.Notification, resident_id=platform.resident_id, kind="appointment") == notices + 1
    )
    refused(
        platform, TransitionRefused, lambda: appointments.book(me(platform), session_id), says="cancelled"
    )
    refused(
        platform,
        Duplicate,
        lambda: appointments.add_exception(
            ADMIN,
            HOSPITAL,
            on=clinic.today + dt.timedelta(days=2),
            reason="again",
            doctor_id=clinic.doctor_id,
            period="morning",
        ),
        field="on",
    )


def test_a_holiday_before_opening_makes_no_sessions(platform: Platform, clinic: Clinic) -> None:
    appointments = node_of(platform).appointments
    holiday = clinic.today + dt.timedelta(days=9)
    assert appointments.add_exception(ADMIN, HOSPITAL, on=holiday, reason="元旦").cancelled_sessions == 0
    report = appointments.open_sessions(ADMIN, HOSPITAL, clinic.today, holiday)
    assert (report.sessions, report.existing, report.closed) == (2, 16, 2)  # day 8 made, day 9 closed
    assert [e.reason for e in appointments.exceptions(ADMIN, HOSPITAL, holiday, holiday)] == ["元旦"]


def test_no_leave_over_a_checked_in_patient(platform: Platform, clinic: Clinic) -> None:
    node = node_of(platform)
    node.appointments.book(me(platform), clinic.session(days=0))
    node.appointments.check_in(terminal(platform), card_number=CARD, chip_serial=platform.chip_serial)
    refused(
        platform,
        TransitionRefused,
        lambda: node.appointments.add_exception(ADMIN, HOSPITAL, on=clinic.today, reason="停电"),
        says="checked in",
    )


# --- bad input ---------------------------------------------------------------------------------------
def test_schedule_bad_input_is_refused_by_field_and_writes_nothing(
    platform: Platform, clinic: Clinic
) -> None:
    a = node_of(platform).appointments
    today, doctor = clinic.today, clinic.doctor_id

    def template(**change: Any) -> Callable[[], object]:
        fields: dict[str, Any] = {
            "doctor_id": doctor,
            "weekday": 1,
            "period": "evening",
            "slots": 10,
            "walk_in": 0,
            "referral": 0,
            "slot_minutes": 10,
            "valid_from": today,
        }
        return lambda: a.add_template(ADMIN, **{**fields, **change})

    cases: list[tuple[Callable[[], object], type[Exception], str | None]] = [
        (lambda: a.add_department(ADMIN, HOSPITAL, "999"), InvalidValue, "code"),
        (lambda: a.add_department(ADMIN, HOSPITAL, "300"), Duplicate, "code"),
        (lambda: a.add_department(ADMIN, "nowhere", "300"), NotFound, None),
        (lambda: a.add_department(ADMIN, HOSPITAL, "700", "x" * 51), InvalidValue, "name"),
        (
            lambda: a.add_doctor(ADMIN, HOSPITAL, department_code="700", name="李", title="医师"),
            NotFound,
            None,
        ),
        (
            lambda: a.add_doctor(ADMIN, HOSPITAL, department_code="300", name="", title="医师"),
            InvalidValue,
            "name",
        ),
        (
            lambda: a.add_doctor(ADMIN, HOSPITAL, department_code="300", name="李", title="教授"),
            InvalidValue,
            "title",
        ),
        (
            lambda: a.add_doctor(ADMIN, HOSPITAL, department_code="300", name="李", title="医师", fee_fen=-1),
            InvalidValue,
            "fee_fen",
        ),
        (
            lambda: a.add_doctor(
                ADMIN, HOSPITAL, department_code="300", name="李", title="医师", username="dr-li"
            ),
            InvalidValue,
            "username",
        ),
        (
            lambda: a.add_doctor(
                ADMIN, HOSPITAL, department_code="300", name="李", title="医师", username="dr-wang"
            ),
            Duplicate,
            "username",
        ),
        (template(weekday=8), InvalidValue, "weekday"),
        (template(period="night"), InvalidValue, "period"),
        (template(slots=0), InvalidValue, "slots"),
        (template(slots=30, slot_minutes=10), InvalidValue, "slots"),  # 300 min in a 180 min evening
        (template(walk_in=6, referral=6), InvalidValue, "referral"),
        (template(slot_minutes=0), InvalidValue, "slot_minutes"),
        (template(valid_to=today - dt.timedelta(days=1)), InvalidValue, "valid_to"),
        (template(valid_from="2026-11-24"), InvalidValue, "valid_from"),
        (template(period="morning"), Duplicate, "valid_from"),  # overlaps the Monday morning one
        (template(doctor_id=10**9), NotFound, None),
        (lambda: a.end_template(ADMIN, 10**9, today), NotFound, None),
        (
            lambda: a.add_exception(ADMIN, HOSPITAL, on=today - dt.timedelta(days=1), reason="过去"),
            InvalidValue,
            "on",
        ),
        (lambda: a.add_exception(ADMIN, HOSPITAL, on=today, reason=""), InvalidValue, "reason"),
        (
            lambda: a.add_exception(ADMIN, HOSPITAL, on=today, reason="休息", period="noon"),
            InvalidValue,
            "period",
        ),
        (lambda: a.add_exception(ADMIN, HOSPITAL, on=today, reason="休息", doctor_id=10**9), NotFound, None),
        (
            lambda: a.open_sessions(ADMIN, HOSPITAL, today - dt.timedelta(days=1), today),
            InvalidValue,
            "first_day",
        ),
        (
            lambda: a.open_sessions(ADMIN, HOSPITAL, today, today - dt.timedelta(days=1)),
            InvalidValue,
            "last_day",
        ),
        (
            lambda: a.open_sessions(ADMIN, HOSPITAL, today, today + dt.timedelta(days=200)),
            InvalidValue,
            "last_day",
        ),
        (lambda: a.add_department(DESK, HOSPITAL, "700"), PermissionDenied, None),
        (lambda: a.open_sessions(DR_WANG, HOSPITAL), PermissionDenied, None),
    ]
    for call, kind, field in cases:
        refused(platform, kind, call, field=field)


def test_booking_bad_input_is_refused_and_writes_nothing(platform: Platform, clinic: Clinic) -> None:
    a = node_of(platform).appointments
    session_id = clinic.session(days=1)
    someone = make_residents(platform.app.db, 1, "else", platform.clock)[0]
    swipe(platform)
    cases: list[tuple[Callable[[], object], type[Exception], str | None]] = [
        (lambda: a.book(me(platform), session_id, resident_id=someone), PermissionDenied, None),
        (lambda: a.book(me(platform), session_id, channel="desk"), InvalidValue, "channel"),
        (lambda: a.book(me(platform), session_id, channel="fax"), InvalidValue, "channel"),
        (lambda: a.book(DESK, session_id, channel="portal", resident_id=someone), InvalidValue, "channel"),
        (
            lambda: a.book(Actor("auditor", Role.AUDITOR), session_id, resident_id=someone),
            PermissionDenied,
            None,
        ),
        (lambda: a.book(terminal(platform), session_id, card_number=CARD), PermissionDenied, None),
        (lambda: a.book(DESK, session_id), InvalidValue, "resident_id"),
        (lambda: a.book(DESK, session_id, resident_id="nobody"), NotFound, None),
        (lambda: a.book(DESK, session_id, card_number="410102199001010000"), NotFound, None),
        (
            lambda: a.book(DESK, session_id, resident_id=someone, card_number=CARD),
            InvalidValue,
            "card_number",
        ),
        (lambda: a.bookings(me(platform), someone), PermissionDenied, None),
        (lambda: a.bookings(me(platform), status="LOST"), InvalidValue, "status"),
        (lambda: a.bookings(me(platform), limit=0), InvalidValue, "limit"),
        (lambda: a.cancel(me(platform), 10**9), NotFound, None),
        (lambda: a.lift_suspension(DESK, platform.resident_id, reason="x"), InvalidValue, "reason"),
    ]
    for call, kind, field in cases:
        refused(platform, kind, call, field=field)
    theirs = a.book(resident(someone), session_id)
    refused(platform, PermissionDenied, lambda: a.cancel(me(platform), theirs.id))
    refused(platform, PermissionDenied, lambda: a.booking(me(platform), theirs.id))


# --- the demo city's schedules -----------------------------------------------------------------------
def test_the_demo_seed_opens_something_to_book_once(platform: Platform) -> None:
    node = node_of(platform)
    with platform.app.db.uow() as uow:
        row = uow.session.get(t.Institution, HOSPITAL)
        assert row is not None
        row.level = "county"
        uow.commit()
    places = [(HOSPITAL, "county"), (OTHER, None)]  # no level: not seeded
    first = seed_demo(platform.app.db, platform.clock, places, {HOSPITAL: "dr-wang"})
    assert [r.institution_code for r in first] == [HOSPITAL] and first[0].sessions > 0
    doctors = node.appointments.doctors(HOSPITAL)
    assert doctors[0].username == "dr-wang" and {d.department_code for d in doctors} == {
        "300",
        "400",
        "500",
        "700",
    }
    again = seed_demo(platform.app.db, platform.clock, places, {HOSPITAL: "dr-wang"})
    assert again[0].sessions == 0 and again[0].existing == first[0].sessions
    assert len(node.appointments.doctors(HOSPITAL)) == len(doctors)
    found = node.appointments.sessions(HOSPITAL, department_code="700")
    assert found and all(s.status == "OPEN" for s in found)
    assert node.appointments.book(me(platform), found[-1].id).status == "BOOKED"
