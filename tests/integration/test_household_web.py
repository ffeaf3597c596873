"""Household proxy links over HTTP, on SQLite and PostgreSQL: the API's routes for staff
(establish, revoke, list) and for a resident (my dependants, then the dependant's vaccinations
through the policy), and the portal's vaccination pages — one section per dependant below my own
plan, a page per dependant addressed by the link's id, and another guardian's link id a 404."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from healthcard.api.app import create_app
from healthcard.storage import tables as t

from .household_fixtures import (
    BABY,
    CARD_ADMIN,
    OTHER_CHILD,
    OTHER_PARENT,
    OTHER_PARENT_USER,
    REGISTRATION,
    Household,
    make_household,
)
from .platform_fixtures import CARD, PASSWORD, Platform


@pytest.fixture
def household(platform: Platform) -> Household:
    return make_household(platform)


@pytest.fixture
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(platform.app)) as http:
        yield http


def token(http: TestClient | httpx.Client, username: str) -> dict[str, str]:
    answer = http.post("/v1/auth/token", json={"username": username, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def _links(platform: Platform) -> int:
    with platform.app.db.uow() as uow:
        return int(uow.session.scalar(select(func.count()).select_from(t.HouseholdLink)) or 0)


BODY = {
    "dependant_id": BABY,
    "relation": "parent",
    "evidence_kind": "birth-certificate",
    "evidence": "O410012345",
}


# --- the API ---------------------------------------------------------------------------------------
def test_staff_establish_list_and_revoke_links_over_the_api(household: Household, client: TestClient) -> None:
    platform = household.platform
    staff, desk = token(client, CARD_ADMIN.id), token(client, REGISTRATION.id)
    resident = token(client, CARD)
    body = {**BODY, "guardian_id": platform.resident_id}
    made = client.post("/v1/household-links", json=body, headers=staff)
    assert made.status_code == 201, made.text
    link = made.json()
    assert link["dependant_id"] == BABY and link["valid_until"] == "2044-09-01" and link["state"] == "live"
    # refusals: a duplicate (409), a field-named error (422), shape (422), a resident (403)
    again = client.post("/v1/household-links", json=body, headers=desk)
    assert (again.status_code, again.json()["field"]) == (409, "dependant_id")
    short = client.post("/v1/household-links", json={**body, "evidence": "12"}, headers=staff)
    assert (short.status_code, short.json()["field"]) == (422, "evidence")
    self_link = client.post(
        "/v1/household-links", json={**body, "dependant_id": body["guardian_id"]}, headers=staff
    )
    assert (self_link.status_code, self_link.json()["field"]) == (422, "dependant_id")
    unknown = client.post("/v1/household-links", json={**body, "guardian_id": "nobody"}, headers=staff)
    assert (unknown.status_code, unknown.json()["field"]) == (422, "guardian_id")
    extra = client.post("/v1/household-links", json={**body, "resident_id": "x"}, headers=staff)
    assert extra.status_code == 422
    assert client.post("/v1/household-links", json=body, headers=resident).status_code == 403
    assert _links(platform) == 1
    # listed for either side, by staff only
    for rid in (platform.resident_id, BABY):
        listed = client.get(f"/v1/residents/{rid}/household-links", headers=desk)
        assert listed.status_code == 200 and [v["id"] for v in listed.json()] == [link["id"]]
    assert client.get(f"/v1/residents/{BABY}/household-links", headers=resident).status_code == 403
    # revoked (a reason is required)
    path = f"/v1/household-links/{link['id']}/revoke"
    assert client.post(path, json={"reason": ""}, headers=staff).status_code == 422
    assert client.post(path, json={"reason": "错录"}, headers=resident).status_code == 403
    revoked = client.post(path, json={"reason": "错录"}, headers=staff)
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    assert client.post(path, json={"reason": "again"}, headers=staff).status_code == 409
    assert (
        client.post("/v1/household-links/999999/revoke", json={"reason": "x"}, headers=staff).status_code
        == 404
    )


def test_a_resident_lists_dependants_and_reads_their_vaccinations_only(
    household: Household, client: TestClient
) -> None:
    platform = household.platform
    rid = platform.resident_id
    resident = token(client, CARD)
    household.link()
    household.link(OTHER_CHILD, guardian=OTHER_PARENT)
    mine = client.get(f"/v1/residents/{rid}/dependants", headers=resident)
    assert mine.status_code == 200, mine.text
    (baby,) = mine.json()
    assert baby["name"] == "张小宝" and baby["resident_id"] == BABY and "id_number" not in baby
    # someone else's list: refused
    assert client.get(f"/v1/residents/{OTHER_PARENT}/dependants", headers=resident).status_code == 403
    # the dependant's vaccinations through the policy; nothing else of the child
    plan = client.get(f"/v1/residents/{BABY}/vaccination-plan", headers=resident)
    assert plan.status_code == 200 and any(d["state"] == "overdue" for d in plan.json())
    assert client.get(f"/v1/residents/{BABY}/immunizations", headers=resident).status_code == 200
    for what in ("summary", "archive", "encounters", "allergies", "access-log"):
        assert client.get(f"/v1/residents/{BABY}/{what}", headers=resident).status_code == 403, what
    # another family's child: nothing
    assert client.get(f"/v1/residents/{OTHER_CHILD}/vaccination-plan", headers=resident).status_code == 403
    # staff have no dependants of their own
    staff = token(client, CARD_ADMIN.id)
    assert client.get(f"/v1/residents/{rid}/dependants", headers=staff).status_code == 403


# --- the portal -------------------------------------------------------------------------------------
def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def portal_login(client: TestClient, username: str = CARD) -> None:
    csrf = csrf_of(client.get("/portal/login").text)
    answer = client.post("/portal/login", data={"username": username, "password": PASSWORD, "csrf": csrf})
    assert answer.status_code == 200 and answer.url.path == "/portal", answer.text[:500]


def test_the_vaccination_page_shows_each_dependant_below_my_own_plan(
    household: Household, client: TestClient
) -> None:
    link = household.link()
    portal_login(client)
    page = client.get("/portal/vaccinations")
    assert page.status_code == 200, page.text[:800]
    html = page.text
    mine, theirs = html.index("国家免疫规划"), html.index("张小宝的预防接种")
    assert mine < theirs  # below my own plan
    section = html[theirs:]
    assert "0岁2个月" in section and "父母" in section
    assert "乙肝疫苗" in section and "逾期" in section and "应种" in section
    assert f'href="/portal/vaccinations/{link.id}"' in section
    assert BABY not in html  # no resident id anywhere on the page
    english = client.get("/portal/lang/en", params={"next": "/portal/vaccinations"}).text
    assert "Vaccinations of 张小宝" in english and "0 years 2 months" in english


def test_a_dependants_page_is_addressed_by_the_link_and_only_the_guardians_own(
    household: Household, client: TestClient
) -> None:
    platform = household.platform
    mine = household.link()
    theirs = household.link(OTHER_CHILD, guardian=OTHER_PARENT)
    portal_login(client)
    page = client.get(f"/portal/vaccinations/{mine.id}")
    assert page.status_code == 200, page.text[:800]
    assert "张小宝的预防接种" in page.text and "卡介苗" in page.text and "2044-09-01" in page.text
    assert BABY not in page.text
    # changing the id in the URL reaches no other child: another guardian's link, none, nonsense
    for other in (theirs.id, 999_999):
        answer = client.get(f"/portal/vaccinations/{other}", headers={"Accept": "text/html"})
        assert answer.status_code == 404, other
        assert "李小妹" not in answer.text and "<html" in answer.text
    for bad in ("0", "-1", "abc", BABY, "1.5"):
        assert client.get(f"/portal/vaccinations/{bad}").status_code in (404, 422), bad
    assert client.get(f"/portal/vaccinations?resident_id={OTHER_CHILD}").text.count("李小妹") == 0
    # the other parent sees their child, not mine
    other = TestClient(create_app(platform.app))
    with other:
        portal_login(other, OTHER_PARENT_USER)
        assert "李小妹的预防接种" in other.get("/portal/vaccinations").text
        assert other.get(f"/portal/vaccinations/{mine.id}").status_code == 404
    # revoked: the section goes, the page is refused
    platform.app.node.households.revoke(CARD_ADMIN, mine.id, reason="监护权变更")
    assert "张小宝" not in client.get("/portal/vaccinations").text
    assert client.get(f"/portal/vaccinations/{mine.id}").status_code == 403


def test_an_anonymous_browser_goes_to_the_login_page(household: Household, client: TestClient) -> None:
    link = household.link()
    answer = client.get(f"/portal/vaccinations/{link.id}", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/portal/login")
