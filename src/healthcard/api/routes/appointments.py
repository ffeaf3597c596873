"""Appointments (预约挂号): departments, doctors, sessions and slots to choose from; booking,
cancelling and reading bookings; check-in by swiping the card at a terminal; the admin's
schedules; and the FHIR R4 views Schedule, Slot and Appointment under ``/fhir``.

Every route calls :attr:`Node.appointments <healthcard.platform.node.Node.appointments>`
(:class:`~healthcard.platform.appointments.AppointmentUseCases`), which asks the access policy
first; the rules of a booking live there, not here (docs/appointments.md)."""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from healthcard.api import fhir_appointments as fa
from healthcard.api.deps import ActorDep, CountQuery, KeyHeader, NodeDep, PatientQuery
from healthcard.api.schemas import Strict
from healthcard.errors import InvalidValue
from healthcard.platform.appointments import (
    BookingView,
    CheckIn,
    DepartmentView,
    DoctorView,
    ExceptionView,
    NoShowReport,
    OpenReport,
    SessionView,
    SlotView,
    SuspensionView,
    TemplateView,
)

router = APIRouter()
V1 = "/v1/appointments"
TAGS: list[str | Enum] = ["appointments"]
ADMIN: list[str | Enum] = ["appointments: admin"]
FHIR_JSON = "application/fhir+json"

#: a database id: SQLite and PostgreSQL keep 64-bit integers, anything larger is no id of ours
Id = Annotated[int, Path(ge=1, le=2**62)]
Institution = Annotated[str, Path(pattern=r"^[0-9A-Za-z]{1,22}$", description="the institution code")]
DepartmentCode = Annotated[
    str, Field(pattern=r"^[0-9]{3,4}$", description="标准科室代码 (CARD-SPEC.md §9.2)")
]
PeriodName = Literal["morning", "afternoon", "evening"]


# --- request bodies -------------------------------------------------------------------------------
class DepartmentIn(Strict):
    code: DepartmentCode
    name: Annotated[
        str | None, Field(max_length=50, description="local name; the standard one by default")
    ] = None


class DoctorIn(Strict):
    department_code: DepartmentCode
    name: Annotated[str, Field(min_length=1, max_length=60)]
    title: Literal["主任医师", "副主任医师", "主治医师", "医师"]
    username: Annotated[str | None, Field(max_length=40, description="their clinician account")] = None
    fee_fen: Annotated[int, Field(ge=0, le=100_000, description="挂号费, fen")] = 0


class TemplateIn(Strict):
    weekday: Annotated[int, Field(ge=1, le=7, description="ISO: 1 Monday … 7 Sunday")]
    period: PeriodName
    slots: Annotated[int, Field(ge=1, le=500)]
    walk_in: Annotated[int, Field(ge=0, le=500)] = 0
    referral: Annotated[int, Field(ge=0, le=500)] = 0
    slot_minutes: Annotated[int, Field(ge=1, le=240)] = 10
    valid_from: dt.date
    valid_to: dt.date | None = None


class TemplateEnd(Strict):
    last_day: dt.date


class ExceptionIn(Strict):
    on: dt.date
    reason: Annotated[str, Field(min_length=1, max_length=60)]
    doctor_id: Annotated[int | None, Field(ge=1, le=2**62, description="none: the whole institution")] = None
    period: PeriodName | None = None


class OpenIn(Strict):
    first_day: dt.date | None = None
    last_day: dt.date | None = None


class BookingIn(Strict):
    session_id: Annotated[int, Field(ge=1, le=2**62)]
    resident_id: Annotated[str | None, Field(pattern=r"^[0-9A-Za-z_-]{1,32}$")] = None
    card_number: Annotated[
        str | None, Field(min_length=1, max_length=18, description="real-name by card")
    ] = None
    channel: Literal["portal", "kiosk", "desk", "referral"] | None = None


class CheckInIn(Strict):
    card_number: Annotated[str, Field(min_length=1, max_length=18)]
    chip_serial: Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{16}$")]
    booking_id: Annotated[int | None, Field(ge=1, le=2**62)] = None
    terminal_kind: Annotated[str, Field(max_length=16)] = "workstation"


class LiftIn(Strict):
    resident_id: Annotated[str, Field(pattern=r"^[0-9A-Za-z_-]{1,32}$")]
    reason: Annotated[str, Field(min_length=4, max_length=200)]


class Suspension(BaseModel):
    suspension: SuspensionView | None


# --- reference data: what there is to book ----------------------------------------------------------
@router.get(f"{V1}/institutions/{{code}}/departments", tags=TAGS, summary="Departments of an institution")
def departments(code: Institution, node: NodeDep, actor: ActorDep) -> list[DepartmentView]:
    return node.appointments.departments(code)


@router.get(f"{V1}/institutions/{{code}}/doctors", tags=TAGS, summary="Doctors of an institution")
def doctors(
    code: Institution,
    node: NodeDep,
    actor: ActorDep,
    department: Annotated[str | None, Query(pattern=r"^[0-9]{3,4}$")] = None,
) -> list[DoctorView]:
    return node.appointments.doctors(code, department)


@router.get(
    f"{V1}/institutions/{{code}}/sessions",
    tags=TAGS,
    summary="Search sessions (default: today to the end of the booking window), free slots per pool",
)
def sessions(
    code: Institution,
    node: NodeDep,
    actor: ActorDep,
    department: Annotated[str | None, Query(pattern=r"^[0-9]{3,4}$")] = None,
    doctor_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    first_day: dt.date | None = None,
    last_day: dt.date | None = None,
) -> list[SessionView]:
    return node.appointments.sessions(
        code, first_day=first_day, last_day=last_day, department_code=department, doctor_id=doctor_id
    )


@router.get(f"{V1}/sessions/{{session_id}}", tags=TAGS, summary="One session")
def session(session_id: Id, node: NodeDep, actor: ActorDep) -> SessionView:
    return node.appointments.session(session_id)


@router.get(f"{V1}/sessions/{{session_id}}/slots", tags=TAGS, summary="The slots of a session")
def slots(session_id: Id, node: NodeDep, actor: ActorDep) -> list[SlotView]:
    return node.appointments.slots(session_id)


# --- bookings -------------------------------------------------------------------------------------
@router.post(
    f"{V1}/bookings",
    status_code=201,
    tags=TAGS,
    summary="Book a slot: the resident (portal/kiosk), the desk (card present), a referring clinician "
    "(201; a retry with the same Idempotency-Key: 200, the first booking)",
)
def book(
    body: BookingIn, response: Response, node: NodeDep, actor: ActorDep, key: KeyHeader = None
) -> BookingView:
    view, created = node.appointments.book_once(
        actor,
        body.session_id,
        resident_id=body.resident_id,
        card_number=body.card_number,
        channel=body.channel,
        key=key,
    )
    if not created:
        response.status_code = 200
    return view


@router.get(f"{V1}/bookings", tags=TAGS, summary="A resident's bookings (a resident: their own)")
def bookings(
    node: NodeDep,
    actor: ActorDep,
    resident_id: Annotated[str | None, Query(pattern=r"^[0-9A-Za-z_-]{1,32}$")] = None,
    status: Literal["BOOKED", "CHECKED_IN", "CANCELLED", "NO_SHOW"] | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[BookingView]:
    return node.appointments.bookings(actor, resident_id, status=status, limit=limit)


@router.get(f"{V1}/bookings/{{booking_id}}", tags=TAGS, summary="One booking")
def booking(booking_id: Id, node: NodeDep, actor: ActorDep) -> BookingView:
    return node.appointments.booking(actor, booking_id)


@router.post(
    f"{V1}/bookings/{{booking_id}}/cancel",
    tags=TAGS,
    summary="Cancel a booking (until the cut-off); frees the slot",
)
def cancel(booking_id: Id, node: NodeDep, actor: ActorDep) -> BookingView:
    return node.appointments.cancel(actor, booking_id)


@router.post(
    f"{V1}/check-in",
    tags=TAGS,
    summary="Check in by swiping the card at a terminal: the booking of today, the encounter opened",
)
def check_in(body: CheckInIn, node: NodeDep, actor: ActorDep) -> CheckIn:
    return node.appointments.check_in(
        actor,
        card_number=body.card_number,
        chip_serial=body.chip_serial,
        booking_id=body.booking_id,
        terminal_kind=body.terminal_kind,
    )


@router.get(
    f"{V1}/suspension", tags=TAGS, summary="A resident's no-show suspension of online booking, if any"
)
def suspension(
    node: NodeDep,
    actor: ActorDep,
    resident_id: Annotated[str | None, Query(pattern=r"^[0-9A-Za-z_-]{1,32}$")] = None,
) -> Suspension:
    return Suspension(suspension=node.appointments.suspension(actor, resident_id))


@router.post(f"{V1}/suspension/lift", tags=TAGS, summary="The registration desk lifts a no-show suspension")
def lift(body: LiftIn, node: NodeDep, actor: ActorDep) -> list[SuspensionView]:
    return node.appointments.lift_suspension(actor, body.resident_id, reason=body.reason)


# --- the admin's: schedules -------------------------------------------------------------------------
@router.post(
    f"{V1}/institutions/{{code}}/departments", status_code=201, tags=ADMIN, summary="Add a department"
)
def add_department(code: Institution, body: DepartmentIn, node: NodeDep, actor: ActorDep) -> DepartmentView:
    return node.appointments.add_department(actor, code, body.code, body.name)


@router.post(f"{V1}/institutions/{{code}}/doctors", status_code=201, tags=ADMIN, summary="Add a doctor")
def add_doctor(code: Institution, body: DoctorIn, node: NodeDep, actor: ActorDep) -> DoctorView:
    return node.appointments.add_doctor(
        actor,
        code,
        department_code=body.department_code,
        name=body.name,
        title=body.title,
        username=body.username,
        fee_fen=body.fee_fen,
    )


@router.get(f"{V1}/doctors/{{doctor_id}}/templates", tags=ADMIN, summary="A doctor's weekly templates")
def templates(doctor_id: Id, node: NodeDep, actor: ActorDep) -> list[TemplateView]:
    return node.appointments.templates(actor, doctor_id)


@router.post(
    f"{V1}/doctors/{{doctor_id}}/templates", status_code=201, tags=ADMIN, summary="Add a weekly template"
)
def add_template(doctor_id: Id, body: TemplateIn, node: NodeDep, actor: ActorDep) -> TemplateView:
    return node.appointments.add_template(actor, doctor_id=doctor_id, **body.model_dump())


@router.post(f"{V1}/templates/{{template_id}}/end", tags=ADMIN, summary="End a weekly template")
def end_template(template_id: Id, body: TemplateEnd, node: NodeDep, actor: ActorDep) -> TemplateView:
    return node.appointments.end_template(actor, template_id, body.last_day)


@router.get(
    f"{V1}/institutions/{{code}}/exceptions", tags=ADMIN, summary="Leave and holidays of a date range"
)
def exceptions(
    code: Institution, first_day: dt.date, last_day: dt.date, node: NodeDep, actor: ActorDep
) -> list[ExceptionView]:
    return node.appointments.exceptions(actor, code, first_day, last_day)


@router.post(
    f"{V1}/institutions/{{code}}/exceptions",
    status_code=201,
    tags=ADMIN,
    summary="Add leave or a holiday; sessions already opened are cancelled (停诊) and residents told",
)
def add_exception(code: Institution, body: ExceptionIn, node: NodeDep, actor: ActorDep) -> ExceptionView:
    return node.appointments.add_exception(
        actor, code, on=body.on, reason=body.reason, doctor_id=body.doctor_id, period=body.period
    )


@router.post(
    f"{V1}/institutions/{{code}}/sessions/open",
    tags=ADMIN,
    summary="Open sessions and slots from the templates (default: today to the window's end); idempotent",
)
def open_sessions(code: Institution, body: OpenIn, node: NodeDep, actor: ActorDep) -> OpenReport:
    return node.appointments.open_sessions(actor, code, body.first_day, body.last_day)


@router.post(f"{V1}/no-shows/sweep", tags=ADMIN, summary="Mark no-shows and suspend (a nightly job)")
def sweep(node: NodeDep, actor: ActorDep) -> NoShowReport:
    return node.appointments.sweep_no_shows(actor)


# --- FHIR R4 views ------------------------------------------------------------------------------------
def _fhir(resource: dict[str, object]) -> JSONResponse:
    return JSONResponse(resource, media_type=FHIR_JSON)


@router.get("/fhir/Schedule/{doctor_id}", tags=["fhir"], summary="FHIR Schedule: a doctor's schedule")
def fhir_schedule(doctor_id: Id, node: NodeDep, actor: ActorDep) -> JSONResponse:
    rows = node.appointments.schedule(doctor_id)
    return _fhir(fa.schedule(rows.doctor, rows.institution_name, rows.first_day, rows.last_day))


@router.get("/fhir/Schedule", tags=["fhir"], summary="FHIR Schedule search by institution")
def fhir_schedules(
    request: Request,
    node: NodeDep,
    actor: ActorDep,
    institution: Annotated[str, Query(pattern=r"^[0-9A-Za-z]{1,22}$", description="the institution code")],
) -> JSONResponse:
    found = [node.appointments.schedule(d.id) for d in node.appointments.doctors(institution)]
    resources = [fa.schedule(r.doctor, r.institution_name, r.first_day, r.last_day) for r in found]
    return _fhir(fa.bundle(resources, self_url=str(request.url)))


def _day_range(start: list[str]) -> tuple[dt.date | None, dt.date | None]:
    """FHIR date search: ``ge2026-11-24``, ``le2026-11-30``, ``eq``/plain for one day."""
    first = last = None
    for value in start:
        prefix, text = (
            (value[:2], value[2:]) if value[:2] in ("ge", "le", "eq", "gt", "lt") else ("eq", value)
        )
        try:
            day = dt.date.fromisoformat(text[:10])
        except ValueError:
            raise InvalidValue("start", f"{value!r}: a date, with ge / le / gt / lt / eq") from None
        if prefix in ("ge", "eq"):
            first = day
        if prefix in ("le", "eq"):
            last = day
        if prefix == "gt":
            first = day + dt.timedelta(days=1)
        if prefix == "lt":
            last = day - dt.timedelta(days=1)
    return first, last


@router.get("/fhir/Slot", tags=["fhir"], summary="FHIR Slot search by schedule (and start date)")
def fhir_slots(
    request: Request,
    node: NodeDep,
    actor: ActorDep,
    schedule: Annotated[str, Query(pattern=r"^(Schedule/)?[0-9]{1,18}$", description="Schedule/<doctor id>")],
    start: Annotated[list[str] | None, Query(max_length=2)] = None,
) -> JSONResponse:
    first, last = _day_range(start or [])
    found = node.appointments.doctor_slots(
        int(schedule.removeprefix("Schedule/")), first_day=first, last_day=last
    )
    resources = [fa.slot(view, session) for session, views in found for view in views]
    return _fhir(fa.bundle(resources, self_url=str(request.url)))


@router.get("/fhir/Appointment/{booking_id}", tags=["fhir"], summary="FHIR Appointment")
def fhir_appointment(booking_id: Id, node: NodeDep, actor: ActorDep) -> JSONResponse:
    view, card, names = node.appointments.appointment_row(actor, booking_id)
    return _fhir(fa.appointment(view, card, names))


@router.get("/fhir/Appointment", tags=["fhir"], summary="FHIR Appointment search by patient")
def fhir_appointments(
    request: Request,
    node: NodeDep,
    actor: ActorDep,
    patient: PatientQuery,
    count: CountQuery = 50,
) -> JSONResponse:
    views, card, names = node.appointments.appointment_rows(
        actor, patient.removeprefix("Patient/"), limit=count
    )
    resources = [fa.appointment(v, card, names) for v in views]
    return _fhir(fa.bundle(resources, self_url=str(request.url)))
