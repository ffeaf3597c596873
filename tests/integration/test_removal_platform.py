"""The settlement write with a card pulled mid-write, against the platform (HealthCard issue 9,
"Faults"), on SQLite and PostgreSQL: the agent fetches the visit's card record, the card leaves
the reader after the record's UPDATE BINARY and before the index is signed — the clinic sees
``card-removed``, the card's slot stays invalid, and nothing is half-written at the platform:
the visit is still open, with no card slot.  Put back, the same call writes and closes it."""

from __future__ import annotations

import httpx

from healthcard.agent.readers import SimulatedSlot
from healthcard.storage import tables as t

from .agent_fixtures import agent_served, workstation
from .platform_fixtures import CARD, Platform, served
from .test_visit_flow import login


def test_a_card_pulled_mid_write_leaves_the_visit_open_at_the_platform(platform: Platform) -> None:
    rid = platform.resident_id
    with served(platform.app) as url:
        station = workstation(platform, url)
        (slot,) = station.readers()
        assert isinstance(slot, SimulatedSlot)
        with httpx.Client(base_url=url) as api, agent_served(station) as agent:
            assert agent.post("/swipe", json={}).json()["platform"]["ok"] is True
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
            process = slot.card.process
            sent: list[int] = []

            def pulled_after_the_record(raw: bytes) -> bytes:
                response = process(raw)
                sent.append(raw[1])
                if raw[1] == 0xD6:  # the record went in; the card leaves before the index is signed
                    slot.remove()
                return response

            slot.card.process = pulled_after_the_record  # type: ignore[method-assign]
            body = {"resident_id": rid, "encounter_id": eid, "card_number": CARD}
            torn = agent.post("/write/visit", json=body)
            assert torn.status_code == 409 and torn.json()["code"] == "card-removed", torn.text
            assert 0xD2 not in sent  # the index was never signed
            slot.card.process = process  # type: ignore[method-assign]

            # the platform: the visit open, no slot, no card use from the write
            visit = api.get(f"/v1/residents/{rid}/encounters/{eid}", headers=doctor).json()
            assert visit["status"] == "open" and visit.get("card_slot") is None, visit
            with platform.app.db.uow() as uow:
                row = uow.session.get(t.Encounter, eid)
                assert row is not None and row.ended_at is None and row.card_slot is None

            # the card: the slot is marked invalid, so it reads as no visit
            assert agent.post("/insert", json={"reader": "sim-1"}).status_code == 200
            assert agent.post("/swipe", json={}).json()["card"]["recent_visits"] == []

            # put back: the same call writes the record whole and closes the visit
            written = agent.post("/write/visit", json=body)
            assert written.status_code == 200, written.text
            answer = written.json()
            assert (answer["closed"], answer["slot"]) == (True, 1)
            assert answer["encounter"]["status"] == "closed" and answer["encounter"]["card_slot"] == 1
            assert len(agent.post("/swipe", json={}).json()["card"]["recent_visits"]) == 1
