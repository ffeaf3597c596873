"""Appointments over HTTP (a real uvicorn), on SQLite and PostgreSQL: the admin keeps the
schedule, the resident books on the portal, the hospital's terminal checks the card in, the
doctor reads the visit; errors as ``{code, message, field}``; and the FHIR R4 views Schedule,
Slot and Appointment, validated by the R4B models."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from fhir.resources.R4B.appointment import Appointment
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.schedule import Schedule
from fhir.resources.R4B.slot import Slot

from healthcard.api import fhir_appointments
from healthcard.clock import local_date
from healthcard.terminal.platform import PlatformClient

from .platform_fixtures import CARD, HOSPITAL, PASSWORD, Platform, served

V1 = "/v1/appointments"


def login(http: httpx.Client, username: str) -> dict[str, str]:
    answer = http.post("/v1/auth/token", json={"username": username, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def problem(answer: httpx.Response, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    assert body["code"] == code and body["field"] == field and body["message"], body
    return body


def schedule_by_http(http: httpx.Client, admin: dict[str, str], today: dt.date) -> int:
    """内科 at the hospital, dr-wang its doctor, a morning session every day: its id."""
    department = http.post(f"{V1}/institutions/{HOSPITAL}/departments", json={"code": "300"}, headers=admin)
    assert department.status_code == 201, department.text
    doctor = http.post(
        f"{V1}/institutions/{HOSPITAL}/doctors",
        json={
            "department_code": "300",
            "name": "王建华",
            "title": "主任医师",
            "username": "dr-wang",
            "fee_fen": 600,
        },
        headers=admin,
    )
    assert doctor.status_code == 201, doctor.text
    doctor_id: int = doctor.json()["id"]
    for weekday in range(1, 8):
        template = http.post(
            f"{V1}/doctors/{doctor_id}/templates",
            json={
                "weekday": weekday,
                "period": "morning",
                "slots": 3,
                "walk_in": 1,
                "valid_from": today.isoformat(),
            },
            headers=admin,
        )
        assert template.status_code == 201, template.text
    opened = http.post(f"{V1}/institutions/{HOSPITAL}/sessions/open", json={}, headers=admin)
    assert opened.status_code == 200, opened.text
    assert opened.json()["sessions"] == 8  # today and the 7 days of the window
    return doctor_id


def test_book_check_in_and_the_fhir_views_over_http(platform: Platform) -> None:
    rid = platform.resident_id
    today = local_date(platform.clock)
    with (
        served(platform.app) as url,
        httpx.Client(base_url=url) as http,
        platform.terminal() as workstation,
        PlatformClient(url) as client,
    ):
        admin = login(http, "admin")
        doctor_id = schedule_by_http(http, admin, today)

        # bad input: field-named problems, nothing made
        problem(
            http.post(f"{V1}/institutions/{HOSPITAL}/departments", json={"code": "999"}, headers=admin),
            422,
            "invalid",
            "code",
        )
        problem(
            http.post(
                f"{V1}/doctors/{doctor_id}/templates",
                json={"weekday": 1, "period": "evening", "slots": 40, "valid_from": today.isoformat()},
                headers=admin,
            ),
            422,
            "invalid",
            "slots",
        )
        problem(
            http.post(
                f"{V1}/doctors/{doctor_id}/templates",
                json={"weekday": 9, "period": "evening", "slots": 4, "valid_from": today.isoformat()},
                headers=admin,
            ),
            422,
            "invalid",
            "weekday",
        )

        # the resident finds today's session and books it on the portal
        me = login(http, CARD)
        problem(
            http.post(f"{V1}/institutions/{HOSPITAL}/departments", json={"code": "700"}, headers=me),
            403,
            "forbidden",
        )
        departments = http.get(f"{V1}/institutions/{HOSPITAL}/departments", headers=me)
        assert [d["code"] for d in departments.json()] == ["300"]
        found = http.get(
            f"{V1}/institutions/{HOSPITAL}/sessions",
            params={"department": "300", "last_day": today.isoformat()},
            headers=me,
        )
        assert found.status_code == 200, found.text
        (session,) = found.json()
        assert session["free"] == {"public": 2, "walk-in": 1} and session["doctor"] == "王建华"
        slots = http.get(f"{V1}/sessions/{session['id']}/slots", headers=me).json()
        assert [s["pool"] for s in slots] == ["public", "public", "walk-in"]
        booked = http.post(f"{V1}/bookings", json={"session_id": session["id"]}, headers=me)
        assert booked.status_code == 201, booked.text
        booking = booked.json()
        assert (booking["channel"], booking["number"], booking["status"]) == ("portal", 1, "BOOKED")
        problem(
            http.post(f"{V1}/bookings", json={"session_id": session["id"]}, headers=me),
            409,
            "duplicate",
            "session_id",
        )
        problem(http.post(f"{V1}/bookings", json={"session_id": 10**9}, headers=me), 404, "not-found")
        mine = http.get(f"{V1}/bookings", headers=me)
        assert [b["id"] for b in mine.json()] == [booking["id"]]
        suspension = http.get(f"{V1}/suspension", headers=me)
        assert suspension.status_code == 200 and suspension.json() == {"suspension": None}

        # a booking for tomorrow, cancelled again
        tomorrow = http.get(
            f"{V1}/institutions/{HOSPITAL}/sessions",
            params={
                "first_day": (today + dt.timedelta(days=1)).isoformat(),
                "last_day": (today + dt.timedelta(days=1)).isoformat(),
            },
            headers=me,
        ).json()[0]
        second = http.post(f"{V1}/bookings", json={"session_id": tomorrow["id"]}, headers=me).json()
        cancelled = http.post(f"{V1}/bookings/{second['id']}/cancel", headers=me)
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED"
        problem(http.post(f"{V1}/bookings/{second['id']}/cancel", headers=me), 409, "conflict")

        # the card at the hospital's terminal: checked in, the visit opened for dr-wang
        client.login(workstation, platform.terminal_id)
        assert client.token is not None
        device = {"Authorization": f"Bearer {client.token}"}
        checked = http.post(
            f"{V1}/check-in", json={"card_number": CARD, "chip_serial": platform.chip_serial}, headers=device
        )
        assert checked.status_code == 200, checked.text
        assert checked.json()["booking"]["status"] == "CHECKED_IN"
        encounter_id = checked.json()["encounter_id"]
        doctor = login(http, "dr-wang")
        visit = http.get(f"/v1/residents/{rid}/encounters/{encounter_id}", headers=doctor)
        assert visit.status_code == 200, visit.text
        assert (visit.json()["department"], visit.json()["clinician"]) == ("内科", "dr-wang")
        problem(
            http.post(
                f"{V1}/check-in",
                json={"card_number": CARD, "chip_serial": platform.chip_serial},
                headers=device,
            ),
            409,
            "conflict",
        )
        problem(
            http.post(f"{V1}/check-in", json={"card_number": CARD, "chip_serial": "XYZ"}, headers=device),
            422,
            "invalid",
            "chip_serial",
        )
        problem(
            http.post(
                f"{V1}/check-in", json={"card_number": CARD, "chip_serial": platform.chip_serial}, headers=me
            ),
            403,
            "forbidden",
        )

        # FHIR: Schedule, Slot, Appointment — valid R4 (R4B) resources
        fhir_json = {"Accept": "application/fhir+json", **me}
        schedule = http.get(f"/fhir/Schedule/{doctor_id}", headers=fhir_json)
        assert schedule.status_code == 200, schedule.text
        assert schedule.headers["content-type"].startswith("application/fhir+json")
        Schedule.model_validate(schedule.json())
        assert schedule.json()["serviceType"][0]["coding"][0]["code"] == "300"
        assert schedule.json()["planningHorizon"]["start"] == today.isoformat()
        schedules = http.get("/fhir/Schedule", params={"institution": HOSPITAL}, headers=fhir_json).json()
        Bundle.model_validate(schedules)
        assert [e["resource"]["id"] for e in schedules["entry"]] == [str(doctor_id)]

        slot_bundle = http.get(
            "/fhir/Slot",
            params=[("schedule", f"Schedule/{doctor_id}"), ("start", f"ge{today}"), ("start", f"le{today}")],
            headers=fhir_json,
        )
        assert slot_bundle.status_code == 200, slot_bundle.text
        Bundle.model_validate(slot_bundle.json())
        fhir_slots = [e["resource"] for e in slot_bundle.json()["entry"]]
        for resource in fhir_slots:
            Slot.model_validate(resource)
            fhir_appointments.validate(resource)
        assert [s["status"] for s in fhir_slots] == ["busy", "free", "free"]
        assert fhir_slots[0]["schedule"]["reference"] == f"Schedule/{doctor_id}"
        assert fhir_slots[2]["appointmentType"]["coding"][1]["code"] == "WALKIN"
        problem(
            http.get("/fhir/Slot", params={"schedule": f"Schedule/{doctor_id}", "start": "soon"}, headers=me),
            422,
            "invalid",
            "start",
        )

        appointments = http.get("/fhir/Appointment", params={"patient": f"Patient/{rid}"}, headers=fhir_json)
        assert appointments.status_code == 200, appointments.text
        Bundle.model_validate(appointments.json())
        resources = [e["resource"] for e in appointments.json()["entry"]]
        for resource in resources:
            Appointment.model_validate(resource)
        assert sorted(r["status"] for r in resources) == ["cancelled", "checked-in"]
        patient = resources[0]["participant"][0]["actor"]
        assert patient["reference"] == f"Patient/{rid}"
        assert patient["identifier"] == {"system": "urn:oid:2.16.156.10011.1.19", "value": CARD}
        one = http.get(f"/fhir/Appointment/{booking['id']}", headers=fhir_json)
        assert one.status_code == 200 and one.json()["slot"] == [{"reference": f"Slot/{booking['slot_id']}"}]
        # the other FHIR views still answer (routes in order)
        assert http.get("/fhir/Encounter", params={"patient": rid}, headers=me).status_code == 200
        stranger = login(http, "dr-li")
        problem(http.get("/fhir/Appointment", params={"patient": rid}, headers=stranger), 403, "forbidden")


def test_a_booking_retried_with_its_idempotency_key_is_made_once(platform: Platform) -> None:
    """The answer of a booking is lost (the network, the database dying after the commit): the
    retry with the same Idempotency-Key gets the first booking (200), not "already booked";
    concurrent retries make one booking; a key is the booker's own and names one request."""
    today = local_date(platform.clock)
    with served(platform.app) as url, httpx.Client(base_url=url) as http:
        admin = login(http, "admin")
        schedule_by_http(http, admin, today)
        me = login(http, CARD)

        def sessions(on: dt.date) -> dict[str, Any]:
            found = http.get(
                f"{V1}/institutions/{HOSPITAL}/sessions",
                params={"first_day": on.isoformat(), "last_day": on.isoformat()},
                headers=me,
            )
            assert found.status_code == 200, found.text
            (session,) = found.json()
            return session

        # the first booking tomorrow (it is cancelled later: today's cut-off has passed), the others today
        later, now = sessions(today + dt.timedelta(days=1)), sessions(today)
        key = {**me, "Idempotency-Key": "portal-7f3c2a"}
        first = http.post(f"{V1}/bookings", json={"session_id": later["id"]}, headers=key)
        assert first.status_code == 201, first.text
        again = http.post(f"{V1}/bookings", json={"session_id": later["id"]}, headers=key)
        assert again.status_code == 200, again.text
        assert again.json() == first.json()
        assert sessions(today + dt.timedelta(days=1))["free"]["public"] == later["free"]["public"] - 1

        # without the key the same request is a second booking, refused as one
        problem(
            http.post(f"{V1}/bookings", json={"session_id": later["id"]}, headers=me),
            409,
            "duplicate",
            "session_id",
        )
        # the key names one request: another session with it is refused, nothing booked
        used = problem(
            http.post(f"{V1}/bookings", json={"session_id": now["id"]}, headers=key),
            409,
            "duplicate",
            "idempotency_key",
        )
        assert str(first.json()["id"]) in used["message"]
        assert sessions(today)["free"] == now["free"]
        # a key too long is named
        problem(
            http.post(
                f"{V1}/bookings",
                json={"session_id": now["id"]},
                headers={**me, "Idempotency-Key": "k" * 65},
            ),
            422,
            "invalid",
            "Idempotency-Key",
        )

        # cancelled since: the retry answers the booking as it stands, it does not book again
        cancelled = http.post(f"{V1}/bookings/{first.json()['id']}/cancel", headers=me)
        assert cancelled.status_code == 200, cancelled.text
        late = http.post(f"{V1}/bookings", json={"session_id": later["id"]}, headers=key)
        assert late.status_code == 200 and late.json()["status"] == "CANCELLED", late.text
        assert sessions(today + dt.timedelta(days=1))["free"] == later["free"]

        # six retries at once (the client's timeout fired six times): one booking
        racing = {**me, "Idempotency-Key": "portal-9e41d0"}

        def book(_: int) -> httpx.Response:
            with httpx.Client(base_url=url, timeout=30) as own:
                return own.post(f"{V1}/bookings", json={"session_id": now["id"]}, headers=racing)

        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(book, range(6)))
        assert sorted(a.status_code for a in answers) == [200] * 5 + [201], [a.text for a in answers]
        assert len({a.json()["id"] for a in answers}) == 1
        assert sessions(today)["free"]["public"] == now["free"]["public"] - 1
