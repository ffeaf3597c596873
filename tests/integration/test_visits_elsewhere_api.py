"""``GET /v1/residents/{id}/visits-elsewhere``: the pointers of the visits a resident made in
other cities (cross-region care sends them home), read under the same policy as the visits
here — the resident sees their own, nobody else's; a clinician without a tie sees none."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient

from healthcard.api.app import create_app
from healthcard.storage import tables as t

from .platform_fixtures import Platform
from .test_visit_flow import login


def test_a_resident_sees_the_visits_made_in_other_cities(platform: Platform) -> None:
    with platform.app.db.uow() as uow:
        for day, encounter in ((dt.date(2026, 11, 20), 41), (dt.date(2026, 11, 22), 42)):
            uow.session.add(
                t.RemoteVisit(
                    resident_id=platform.resident_id,
                    city_code="4406",
                    encounter_id=encounter,
                    kind="outpatient",
                    day=day,
                    institution_code="440604001",
                    institution_name="佛山市第一人民医院",
                    received_at=platform.clock.now(),
                )
            )
        uow.commit()
    with TestClient(create_app(platform.app)) as http:
        url = f"/v1/residents/{platform.resident_id}/visits-elsewhere"
        me = http.get(url, headers=login(http, "410102199003070019"))
        assert me.status_code == 200, me.text
        assert [(v["encounter_id"], v["city_name"], v["day"]) for v in me.json()] == [
            (42, "佛山市", "2026-11-22"),
            (41, "佛山市", "2026-11-20"),
        ]
        assert me.json()[0]["institution_name"] == "佛山市第一人民医院"
        assert len(http.get(url, params={"limit": 1}, headers=login(http, "410102199003070019")).json()) == 1
        bad = http.get(url, params={"limit": 0}, headers=login(http, "410102199003070019"))
        assert bad.status_code == 422 and bad.json()["field"] == "limit"
        stranger = http.get(url, headers=login(http, "dr-li"))  # another hospital, no tie
        assert stranger.status_code == 403
        assert http.get(url).status_code == 401
