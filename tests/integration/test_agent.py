"""The local reader agent against the platform, both on real uvicorns, on SQLite and PostgreSQL:
the hospital's workstation (its SAM image, the resident's card in a simulated slot) logs in with
the SAM on the first swipe, reports the swipe, checks a booking in, and writes the visit the
platform's ``card-record`` gave the browser onto the card — as the clinic console's page does
with ``fetch``."""

from __future__ import annotations

import httpx

from healthcard.clock import local_date
from healthcard.storage import tables as t

from .agent_fixtures import agent_served, workstation
from .platform_fixtures import CARD, HOSPITAL, PASSWORD, Platform, free_port, served
from .test_appointments_api import schedule_by_http
from .test_visit_flow import count


def login(http: httpx.Client, username: str) -> dict[str, str]:
    answer = http.post("/v1/auth/token", json={"username": username, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def test_swipe_then_write_the_visit_through_the_agent(platform: Platform) -> None:
    rid = platform.resident_id
    with (
        served(platform.app) as url,
        httpx.Client(base_url=url) as api,
        agent_served(workstation(platform, url)) as agent,
    ):
        before = agent.get("/status").json()["platform"]
        assert before["configured"] is True and before["logged_in"] is False

        swiped = agent.post("/swipe", json={"stage": "consultation"})
        assert swiped.status_code == 200, swiped.text
        body = swiped.json()
        assert body["card"]["holder"]["name"] == "张三"  # what the chip says
        assert body["card"]["chip_serial"] == platform.chip_serial.upper()
        assert body["platform"]["ok"] is True  # what the platform says
        answer = body["platform"]["answer"]
        assert answer["resident_id"] == rid and answer["grant"]["institution_code"] == HOSPITAL
        assert count(platform, t.CardUse, resident_id=rid) == 1
        after = agent.get("/status").json()["platform"]
        assert after["logged_in"] is True and after["terminal_id"] == platform.terminal_id

        # a second swipe reuses the login
        assert agent.post("/swipe", json={}).json()["platform"]["ok"] is True
        assert count(platform, t.CardUse, resident_id=rid) == 2

        # the clinician records the visit; the page hands the card-record to the agent
        doctor = login(api, "dr-wang")
        opened = api.post(
            f"/v1/residents/{rid}/encounters",
            json={"department": "内科", "kind": "outpatient"},
            headers=doctor,
        )
        assert opened.status_code == 201, opened.text
        eid = opened.json()["id"]
        items = api.post(
            f"/v1/residents/{rid}/encounters/{eid}/items",
            json={"diagnoses": [{"code": "J06.9", "primary": True}]},
            headers=doctor,
        )
        assert items.status_code == 200, items.text
        values = api.get(f"/v1/residents/{rid}/encounters/{eid}/card-record", headers=doctor).json()
        written = agent.post("/write/outpatient", json={"values": values, "card_number": CARD})
        assert written.status_code == 200, written.text
        result = written.json()
        assert result["slot"] == 1 and result["card_number"] == CARD
        assert result["record"]["diagnoses"][0]["code"].startswith("J06")
        assert result["record"]["institution_code"] == HOSPITAL[:10]
        assert result["verification"]["verified"] is True
        closed = api.post(
            f"/v1/residents/{rid}/encounters/{eid}/close",
            json={"fees": [], "card_slot": result["slot"]},
            headers=doctor,
        )
        assert closed.status_code == 200, closed.text
        visits = agent.post("/swipe", json={}).json()["card"]["recent_visits"]
        assert visits[0]["diagnoses"][0]["code"].startswith("J06")


def test_the_platform_going_away_leaves_the_card_answering(platform: Platform) -> None:
    port = free_port()
    with agent_served(workstation(platform, f"http://127.0.0.1:{port}")) as agent:
        body = agent.post("/swipe", json={}).json()
        assert body["card"]["holder"]["name"] == "张三"
        assert (
            body["platform"]
            == {
                "ok": False,
                "error": body["platform"]["error"],
            }
            and body["platform"]["error"]["code"] == "platform-unreachable"
        )
        # the platform comes up on that port: the next swipe logs in and reports
        with served(platform.app, port):
            again = agent.post("/swipe", json={}).json()
            assert again["platform"]["ok"] is True, again["platform"]
            assert again["platform"]["answer"]["resident_id"] == platform.resident_id


def test_check_in_through_the_agent(platform: Platform) -> None:
    today = local_date(platform.clock)
    with (
        served(platform.app) as url,
        httpx.Client(base_url=url) as api,
        agent_served(workstation(platform, url)) as agent,
    ):
        # no booking yet: the platform's refusal, as it said it
        refused = agent.post("/check-in", json={})
        assert refused.status_code in (404, 409), refused.text
        assert refused.json()["source"] == "platform" and refused.json()["code"]

        schedule_by_http(api, login(api, "admin"), today)
        me = login(api, CARD)
        (session,) = api.get(
            f"/v1/appointments/institutions/{HOSPITAL}/sessions",
            params={"department": "300", "last_day": today.isoformat()},
            headers=me,
        ).json()
        booked = api.post("/v1/appointments/bookings", json={"session_id": session["id"]}, headers=me)
        assert booked.status_code == 201, booked.text

        checked = agent.post("/check-in", json={"booking_id": booked.json()["id"]})
        assert checked.status_code == 200, checked.text
        body = checked.json()
        assert body["card"]["card_number"] == CARD and body["card"]["name"] == "张三"
        assert body["platform"]["booking"]["status"] == "CHECKED_IN"
        assert isinstance(body["platform"]["encounter_id"], int)


def test_a_swipe_when_the_card_is_out_touches_no_platform(platform: Platform) -> None:
    with served(platform.app) as url, agent_served(workstation(platform, url)) as agent:
        assert agent.post("/remove", json={"reader": "sim-1"}).status_code == 200
        answer = agent.post("/swipe", json={})
        assert answer.status_code == 409 and answer.json()["code"] == "no-card"
        assert count(platform, t.CardUse, resident_id=platform.resident_id) == 0
        assert agent.get("/status").json()["platform"]["logged_in"] is False


def test_write_visit_fetches_the_record_writes_it_and_closes_the_visit(platform: Platform) -> None:
    rid = platform.resident_id
    with (
        served(platform.app) as url,
        httpx.Client(base_url=url) as api,
        agent_served(workstation(platform, url)) as agent,
    ):
        assert agent.post("/swipe", json={}).json()["platform"]["ok"] is True  # the presence tie
        doctor = login(api, "dr-wang")
        eid = api.post(
            f"/v1/residents/{rid}/encounters",
            json={"department": "内科", "kind": "outpatient"},
            headers=doctor,
        ).json()["id"]
        api.post(
            f"/v1/residents/{rid}/encounters/{eid}/items",
            json={"diagnoses": [{"code": "J06.9", "primary": True}]},
            headers=doctor,
        )
        body = {"resident_id": rid, "encounter_id": eid}
        wrong = agent.post("/write/visit", json={**body, "card_number": "110101199001011234"})
        assert wrong.status_code == 409 and wrong.json()["code"] == "wrong-card"
        assert api.get(f"/v1/residents/{rid}/encounters/{eid}", headers=doctor).json()["status"] == "open"

        written = agent.post("/write/visit", json={**body, "card_number": CARD})
        assert written.status_code == 200, written.text
        answer = written.json()
        assert (answer["closed"], answer["slot"], answer["kind"]) == (True, 1, "outpatient")
        assert answer["verification"]["verified"] is True
        assert answer["encounter"]["status"] == "closed" and answer["encounter"]["card_slot"] == 1
        # asked again: the visit is closed — refused before the card is touched
        again = agent.post("/write/visit", json={**body, "card_number": CARD})
        assert again.status_code == 409 and again.json()["code"] == "visit-closed", again.text
        assert len(agent.post("/swipe", json={}).json()["card"]["recent_visits"]) == 1
        unknown = agent.post("/write/visit", json={"resident_id": "../x", "encounter_id": eid})
        assert unknown.status_code == 422 and unknown.json()["field"] == "resident_id"
