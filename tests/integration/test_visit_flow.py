"""The visit, end to end, against the API served by a real uvicorn, on SQLite and PostgreSQL:
a terminal logs in with its SAM, the card is swiped, the clinician records the visit, the
terminal writes it to the card (signed by the SAM), the audit chain verifies, and the resident
sees the clinician in "who looked".  Then the refusals, and the offline clinic."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from healthcard.clock import local_date
from healthcard.storage import tables as t
from healthcard.terminal.platform import PlatformClient, upload_payload
from healthcard.terminal.sdk import HealthCardTerminal
from healthcard.terminal.uplink import UploadQueue

from .cardcentre_fixtures import NOW
from .platform_fixtures import CARD, HOSPITAL, OTHER, PASSWORD, Platform, free_port, served


@contextmanager
def at_the_hospital(
    platform: Platform, *, with_hotlist: bool = False
) -> Iterator[tuple[httpx.Client, HealthCardTerminal, PlatformClient]]:
    """The API served, a browser-ish client, and the hospital's workstation with the card in its
    slot, logged in to the platform with its SAM."""
    with (
        served(platform.app) as url,
        httpx.Client(base_url=url) as http,
        platform.terminal(with_hotlist=with_hotlist) as terminal,
        PlatformClient(url) as client,
    ):
        client.login(terminal, platform.terminal_id)
        yield http, terminal, client


def login(http: httpx.Client, username: str) -> dict[str, str]:
    answer = http.post("/v1/auth/token", json={"username": username, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def count(platform: Platform, table: Any, **where: object) -> int:
    with platform.app.db.uow() as uow:
        query = select(func.count()).select_from(table)
        for column, value in where.items():
            query = query.where(getattr(table, column) == value)
        return int(uow.session.scalar(query) or 0)


def test_the_visit_end_to_end(platform: Platform) -> None:
    rid = platform.resident_id
    with at_the_hospital(platform, with_hotlist=True) as (http, terminal, client):
        # the card first, offline: identity and the summary it carries
        offline = terminal.swipe()
        assert offline.holder.name == "张三" and offline.allergies[0].allergen == "青霉素"

        # the swipe: card use, presence grant, the platform's summary
        swiped = client.swipe(CARD, platform.chip_serial, stage="consultation")
        assert swiped["resident_id"] == rid
        assert swiped["grant"]["institution_code"] == HOSPITAL
        assert dt.datetime.fromisoformat(swiped["grant"]["expires_at"]) == NOW + dt.timedelta(hours=24)
        assert swiped["summary"]["name"] == "张三"
        assert count(platform, t.CardUse, resident_id=rid) == 1

        # the clinician of that hospital, under the grant
        doctor = login(http, "dr-wang")
        opened = http.post(
            f"/v1/residents/{rid}/encounters",
            json={"department": "内科", "kind": "outpatient"},
            headers=doctor,
        )
        assert opened.status_code == 201, opened.text
        eid = opened.json()["id"]
        items = http.post(
            f"/v1/residents/{rid}/encounters/{eid}/items",
            headers=doctor,
            json={
                "diagnoses": [{"code": "J06.9", "primary": True}],
                "observations": [
                    {
                        "kind": "lab",
                        "code": "WBC",
                        "name": "白细胞计数",
                        "value": "11.2",
                        "unit": "10^9/L",
                        "low": 3.5,
                        "high": 9.5,
                    }
                ],
                "prescriptions": [
                    {
                        "drug": "阿莫西林胶囊",
                        "dose": "0.5",
                        "dose_unit": "g",
                        "route_code": "01",
                        "frequency": "tid",
                        "days": 5,
                    }
                ],
            },
        )
        assert items.status_code == 200, items.text
        assert items.json()["diagnoses"][0]["code"] == "J06.9"
        assert items.json()["observations"][0]["flag"] == "H"

        # the terminal writes the visit to the card, signed by its SAM
        values = http.get(f"/v1/residents/{rid}/encounters/{eid}/card-record", headers=doctor)
        assert values.status_code == 200, values.text
        slot = terminal.write_outpatient_record(values.json())
        certificate = terminal.verify_visit("ED", slot, local_date(platform.clock))
        assert certificate.kind == "sam"
        on_card = terminal.read_outpatient(slot)
        assert on_card.diagnoses[0].code.startswith("J06") and on_card.institution_code == HOSPITAL[:10]

        closed = http.post(
            f"/v1/residents/{rid}/encounters/{eid}/close",
            headers=doctor,
            json={
                "fees": [{"category": "西药费", "code": "1", "amount_fen": 3650}],
                "payment_method": "03",
                "card_slot": slot,
            },
        )
        assert closed.status_code == 200, closed.text
        assert closed.json()["status"] == "closed" and closed.json()["card_slot"] == slot

        # the auditor: every chain verifies
        verified = http.get("/v1/audit/verify", headers=login(http, "auditor"))
        assert verified.status_code == 200, verified.text
        assert verified.json()["ok"] is True and verified.json()["entries"] > 0

        # the resident: who looked
        looked = http.get(f"/v1/residents/{rid}/access-log", headers=login(http, CARD))
        assert looked.status_code == 200, looked.text
        seen = {(e["actor"], e["institution_code"], e["carrier"]) for e in looked.json()}
        assert ("dr-wang", HOSPITAL, "login") in seen
        assert (platform.terminal_id, HOSPITAL, "card") in seen


def test_a_clinician_elsewhere_is_refused_and_the_attempt_audited(platform: Platform) -> None:
    rid = platform.resident_id
    with served(platform.app) as url, httpx.Client(base_url=url) as http:
        stranger = login(http, "dr-li")
        before = count(platform, t.Encounter, resident_id=rid)
        for method, path, body in (
            ("GET", f"/v1/residents/{rid}/encounters", None),
            ("GET", f"/v1/residents/{rid}/summary", None),
            ("POST", f"/v1/residents/{rid}/encounters", {"department": "内科"}),
        ):
            answer = http.request(method, path, json=body, headers=stranger)
            assert answer.status_code == 403, answer.text
            assert answer.json()["code"] == "forbidden" and "张三" not in answer.text
        assert count(platform, t.Encounter, resident_id=rid) == before
        assert count(platform, t.AuditEntry, actor="dr-li", outcome="denied") == 3

        # break-glass opens it, with a reason, and the resident is told
        glass = http.post(
            f"/v1/residents/{rid}/break-glass",
            headers=stranger,
            json={"reason": "unconscious in the emergency room"},
        )
        assert glass.status_code == 201, glass.text
        assert http.get(f"/v1/residents/{rid}/encounters", headers=stranger).status_code == 200
        notices = http.get(f"/v1/residents/{rid}/notifications", headers=login(http, CARD))
        assert notices.status_code == 200 and len(notices.json()) == 1


def test_bad_input_is_refused_by_field_and_writes_nothing(platform: Platform) -> None:
    rid = platform.resident_id
    with at_the_hospital(platform) as (http, _, client):
        client.swipe(CARD, platform.chip_serial)
        doctor = login(http, "dr-wang")
        eid = http.post(
            f"/v1/residents/{rid}/encounters", json={"department": "内科"}, headers=doctor
        ).json()["id"]
        before = {table: count(platform, table) for table in (t.Diagnosis, t.Observation, t.Prescription)}
        for body, field in (
            ({"diagnoses": [{"code": "ZZ9.9"}]}, "diagnoses[0].code"),
            (
                {
                    "prescriptions": [
                        {
                            "drug": "x",
                            "dose": "1",
                            "dose_unit": "g",
                            "route_code": "01",
                            "frequency": "qd",
                            "days": 0,
                        }
                    ]
                },
                "days",
            ),
        ):
            answer = http.post(f"/v1/residents/{rid}/encounters/{eid}/items", json=body, headers=doctor)
            assert answer.status_code == 422, answer.text
            assert field in (answer.json()["field"] or ""), answer.json()
        tomorrow = (local_date(platform.clock) + dt.timedelta(days=1)).isoformat()
        dose = http.post(
            f"/v1/residents/{rid}/immunizations",
            headers=doctor,
            json={"vaccine": "0201", "dose": 1, "given_on": tomorrow},
        )
        assert dose.status_code == 422 and dose.json()["field"] == "given_on", dose.text
        before_birth = http.post(
            f"/v1/residents/{rid}/immunizations",
            headers=doctor,
            json={"vaccine": "0201", "dose": 1, "given_on": "1980-01-01"},
        )
        assert before_birth.status_code == 422 and before_birth.json()["field"] == "given_on"
        unknown = http.post(
            f"/v1/residents/{rid}/immunizations",
            headers=doctor,
            json={"vaccine": "9999", "dose": 1, "given_on": "2020-01-01"},
        )
        assert unknown.status_code == 422 and unknown.json()["field"] == "vaccine"
        assert {table: count(platform, table) for table in before} == before
        assert count(platform, t.ImmunizationDose) == 0
        # an upload naming another institution than the terminal's
        upload = upload_payload(
            card_number=CARD,
            chip_serial=platform.chip_serial,
            department="内科",
            started_at=NOW - dt.timedelta(hours=1),
            ended_at=NOW,
        )
        upload["institution_code"] = OTHER
        answer = http.post(
            "/v1/encounters/uploads", json=upload, headers={"Authorization": f"Bearer {client.token}"}
        )
        assert answer.status_code == 422 and answer.json()["field"] == "institution_code", answer.text


def test_offline_clinic_uploads_exactly_once(platform: Platform, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    queue = UploadQueue(tmp_path / "uplink.db", clock=platform.clock)
    with platform.terminal() as terminal, PlatformClient(url, timeout=2.0) as client:
        for n in range(20):  # the platform is down: the card alone serves, the visits queue
            started = NOW - dt.timedelta(hours=20 - n)
            queue.put(
                upload_payload(
                    card_number=CARD,
                    chip_serial=platform.chip_serial,
                    department="全科",
                    started_at=started,
                    ended_at=started + dt.timedelta(minutes=10),
                    diagnoses=[{"code": "I10", "name": "原发性高血压", "primary": True}],
                )
            )
        down = queue.drain(client)
        assert down.delivered == 0 and down.remaining == 20
        with served(platform.app, port):
            client.login(terminal, platform.terminal_id)
            up = queue.drain(client)
            assert up.delivered == 20 and up.remaining == 0
            assert count(platform, t.Encounter, resident_id=platform.resident_id) == 20
            # a terminal that lost its bookkeeping sends everything again: nothing is duplicated
            for payload in [p.payload for p in queue.delivered()][:5]:
                encounter_id, created = client.upload(payload)
                assert created is False and encounter_id > 0
            assert count(platform, t.Encounter, resident_id=platform.resident_id) == 20
            assert count(platform, t.CardUse, resident_id=platform.resident_id) == 20


def test_an_open_visit_outlasts_the_grant_and_closing_it_ends_the_access(platform: Platform) -> None:
    """(b) of the policy: an open encounter at the clinician's institution is a tie of its own."""
    rid = platform.resident_id
    with at_the_hospital(platform) as (http, _, client):
        client.swipe(CARD, platform.chip_serial)
        doctor = login(http, "dr-wang")
        eid = http.post(
            f"/v1/residents/{rid}/encounters", json={"department": "内科"}, headers=doctor
        ).json()["id"]
        platform.clock.advance(dt.timedelta(hours=25))  # the presence grant is gone
        doctor = login(http, "dr-wang")
        assert http.get(f"/v1/residents/{rid}/encounters", headers=doctor).status_code == 200
        closed = http.post(f"/v1/residents/{rid}/encounters/{eid}/close", json={}, headers=doctor)
        assert closed.status_code == 200, closed.text
        assert http.get(f"/v1/residents/{rid}/encounters", headers=doctor).status_code == 403


def test_a_replacement_card_is_rebuilt_from_the_platform(platform: Platform) -> None:
    """Flow 5: the platform's allergies and alerts, not the old application's, go on the new chip."""
    from healthcard.issuance.chips import SimulatedChips
    from healthcard.platform.access import Actor, Carrier, Role

    node = platform.app.node
    terminal_actor = Actor(
        platform.terminal_id, Role.TERMINAL, institution_code=HOSPITAL, carrier=Carrier.CARD
    )
    node.swipe(terminal_actor, card_number=CARD, chip_serial=platform.chip_serial)
    doctor = Actor("dr-wang", Role.CLINICIAN, institution_code=HOSPITAL)
    node.add_allergy(doctor, platform.resident_id, allergen="头孢类", reaction="荨麻疹", severity="moderate")
    node.put_archive(doctor, platform.resident_id, alerts={"diabetes": True}, other_alert="2型糖尿病")
    platform.app.cards.report_lost("clerk-41", CARD, "lost at the market")
    chips = SimulatedChips()
    new = platform.app.cards.replace("admin-41", CARD, chips, "lost")
    state = chips.delivered[bytes.fromhex(new.chip_serial)]
    from .cardcentre_fixtures import terminal_for

    with terminal_for(platform.key_centre, state) as reader:
        allergens = {a.allergen for a in reader.read_allergies()}
        alerts = reader.read_medical_alerts()
    assert {"青霉素", "头孢类"} <= allergens
    assert alerts.flags["diabetes"] is True and alerts.other == "2型糖尿病"


def test_a_resident_logs_in_with_the_card_at_a_kiosk_only(platform: Platform) -> None:
    with at_the_hospital(platform) as (http, _, client):
        terminal_auth = {"Authorization": f"Bearer {client.token}"}
        body = {"card_number": CARD, "chip_serial": platform.chip_serial}
        refused = http.post("/v1/auth/card", json=body, headers=terminal_auth)
        assert refused.status_code == 403, refused.text  # a workstation is not a kiosk
        with platform.app.db.uow() as uow:
            row = uow.session.get(t.Terminal, platform.terminal_id)
            assert row is not None
            row.kind = "kiosk"
            uow.commit()
        session = http.post("/v1/auth/card", json=body, headers=terminal_auth)
        assert session.status_code == 200, session.text
        mine = {"Authorization": f"Bearer {session.json()['access_token']}"}
        summary = http.get(f"/v1/residents/{platform.resident_id}/summary", headers=mine)
        assert summary.status_code == 200 and summary.json()["name"] == "张三"
        other = http.get("/v1/residents/" + "0" * 32 + "/summary", headers=mine)
        assert other.status_code in (403, 404)
