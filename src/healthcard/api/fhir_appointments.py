"""FHIR R4 views of appointments: Schedule (a doctor's schedule at an institution), Slot (号源)
and Appointment (预约), validated by the ``fhir.resources`` R4B models as the other views of
:mod:`healthcard.api.fhir` are (R4B = FHIR 4.3, the R4 line; these three resources have the R4
shape for every element emitted here).

============================ =====================================================================
Schedule.id                  the doctor's id; ``actor``: the doctor (Practitioner, by a local
                             identifier) and the institution (Location, by its code);
                             ``serviceType``: the department (标准科室代码); ``planningHorizon``:
                             the days opened from today
Slot.id                      the slot's id; ``schedule``: ``Schedule/<doctor id>``; ``status``:
                             free | busy; ``appointmentType``: the pool (v2-0276 ROUTINE for
                             public, WALKIN for walk-in; the local pool code always)
Appointment.id               the booking's id; ``status`` from the booking: BOOKED → booked,
                             CHECKED_IN → checked-in, CANCELLED → cancelled, NO_SHOW → noshow;
                             the patient participant carries the card number in the system
                             ``urn:oid:2.16.156.10011.1.19``; ``slot``, ``serviceType``,
                             ``appointmentType`` as above; a referral says where from in
                             ``comment``
============================ =====================================================================
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from fhir.resources.R4B.appointment import Appointment
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.schedule import Schedule
from fhir.resources.R4B.slot import Slot
from fhir_core.fhirabstractmodel import FHIRAbstractModel

from healthcard.api import fhir
from healthcard.platform.appointments import BookingView, DoctorView, SessionView, SlotView

JSON = dict[str, Any]

DOCTOR_SYSTEM = f"{fhir.LOCAL_BASE}/sid/doctor"
BOOKING_SYSTEM = f"{fhir.LOCAL_BASE}/sid/booking"
POOL_SYSTEM = f"{fhir.LOCAL_BASE}/CodeSystem/slot-pool"
_V2_0276 = "http://terminology.hl7.org/CodeSystem/v2-0276"
#: pool → (code, display) in HL7 v2 table 0276 (appointment reason codes), where one fits
_APPOINTMENT_TYPE = {
    "public": ("ROUTINE", "Routine appointment"),
    "walk-in": ("WALKIN", "A walk in appointment"),
}
_POOL_NAMES = {"public": "普通号", "walk-in": "现场号", "referral": "转诊号"}
_STATUS = {"BOOKED": "booked", "CHECKED_IN": "checked-in", "CANCELLED": "cancelled", "NO_SHOW": "noshow"}
_PERIOD_NAMES = {"morning": "上午", "afternoon": "下午", "evening": "晚间"}


def schedule(
    doctor: DoctorView, institution_name: str | None, first_day: dt.date | None, last_day: dt.date | None
) -> JSON:
    """A doctor's schedule at their institution."""
    horizon = None
    if first_day is not None and last_day is not None:
        horizon = {"start": first_day.isoformat(), "end": last_day.isoformat()}
    d: JSON = {
        "resourceType": "Schedule",
        "id": str(doctor.id),
        "identifier": [{"system": DOCTOR_SYSTEM, "value": str(doctor.id)}],
        "active": doctor.active,
        "serviceType": [_department(doctor.department_code, doctor.department)],
        "actor": [
            {
                "identifier": {"system": DOCTOR_SYSTEM, "value": str(doctor.id)},
                "display": f"{doctor.name}（{doctor.title}）",
            },
            _location(doctor.institution_code, institution_name),
        ],
        "planningHorizon": horizon,
        "comment": f"挂号费 {doctor.fee_fen / 100:.2f} 元",
    }
    return _validated(Schedule, d)


def slot(view: SlotView, session: SessionView) -> JSON:
    """A numbered place of a session."""
    d: JSON = {
        "resourceType": "Slot",
        "id": str(view.id),
        "schedule": {"reference": f"Schedule/{session.doctor_id}", "display": session.doctor},
        "serviceType": [_department(session.department_code, session.department)],
        "appointmentType": _pool(view.pool),
        "status": "free" if view.status == "FREE" and session.status == "OPEN" else "busy",
        "start": fhir._instant(view.starts_at),
        "end": fhir._instant(view.ends_at),
        "comment": f"{session.on} {_PERIOD_NAMES.get(session.period, session.period)} 第 {view.number} 号",
    }
    return _validated(Slot, d)


def appointment(
    view: BookingView,
    card_number: str | None,
    institution_names: Mapping[str, str] | None = None,
) -> JSON:
    """A booking."""
    names = institution_names or {}
    patient: JSON = {"reference": f"Patient/{view.resident_id}"}
    if card_number:
        patient["identifier"] = {"system": fhir.CARD_NUMBER_SYSTEM, "value": card_number}
    referral = None
    if view.referred_by:
        referral = f"转诊自 {names.get(view.referred_by, view.referred_by)}（{view.referred_by}）"
    d: JSON = {
        "resourceType": "Appointment",
        "id": str(view.id),
        "identifier": [{"system": BOOKING_SYSTEM, "value": str(view.id)}],
        "status": _STATUS.get(view.status, "entered-in-error"),
        "serviceType": [_department(view.department_code, view.department)],
        "appointmentType": _pool(view.pool),
        "description": f"{view.department} {view.doctor} {view.on} "
        f"{_PERIOD_NAMES.get(view.period, view.period)} 第 {view.number} 号",
        "start": fhir._instant(view.starts_at),
        "end": fhir._instant(view.ends_at),
        "created": fhir._instant(view.booked_at),
        "slot": [{"reference": f"Slot/{view.slot_id}"}],
        "comment": referral,
        "participant": [
            {"actor": patient, "required": "required", "status": "accepted"},
            {
                "actor": {
                    "identifier": {"system": DOCTOR_SYSTEM, "value": str(view.doctor_id)},
                    "display": view.doctor,
                },
                "required": "required",
                "status": "accepted",
            },
            {
                "actor": _location(view.institution_code, names.get(view.institution_code)),
                "required": "required",
                "status": "accepted",
            },
        ],
    }
    return _validated(Appointment, d)


def bundle(resources: Sequence[Mapping[str, Any]], *, self_url: str | None = None) -> JSON:
    """A searchset Bundle (one page)."""
    return fhir.bundle(resources, self_url=self_url)


_MODELS: dict[str, type[FHIRAbstractModel]] = {m.__name__: m for m in (Schedule, Slot, Appointment, Bundle)}


def validate(resource: Mapping[str, Any]) -> JSON:
    """Validate a Schedule, Slot, Appointment or Bundle with its R4B model (``pydantic.
    ValidationError`` when invalid, ``ValueError`` for another resource type)."""
    kind = resource.get("resourceType")
    model = _MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise ValueError(f"not a resource type of the appointment views: {kind!r}")
    return _validated(model, resource)


def _validated(model: type[FHIRAbstractModel], d: Mapping[str, Any]) -> JSON:
    return fhir._validated(model, d)


def _department(code: str, name: str) -> JSON:
    return fhir._concept(fhir.DEPARTMENT_SYSTEM, code, name)


def _location(code: str, name: str | None) -> JSON:
    return {"identifier": {"system": fhir.INSTITUTION_SYSTEM, "value": code}, "display": name or code}


def _pool(pool: str) -> JSON:
    coding = [{"system": POOL_SYSTEM, "code": pool, "display": _POOL_NAMES.get(pool, pool)}]
    if pool in _APPOINTMENT_TYPE:
        code, display = _APPOINTMENT_TYPE[pool]
        coding.append({"system": _V2_0276, "code": code, "display": display})
    return {"coding": coding, "text": _POOL_NAMES.get(pool, pool)}


__all__ = [
    "BOOKING_SYSTEM",
    "DOCTOR_SYSTEM",
    "POOL_SYSTEM",
    "appointment",
    "bundle",
    "schedule",
    "slot",
    "validate",
]
