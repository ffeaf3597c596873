"""The clinic console through HTTP, on SQLite and PostgreSQL: who may open it, the electronic
health card's QR code as the presence tie (a valid code opens the record, an expired or forged
one is refused next to the field and writes nothing), no record without presence, the visit's
forms refusing bad values by field, and the cashier's window — pre-settlement, settlement from
the health account once under the form's key however often it is sent, bad lines refused with
nothing written."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from healthcard.api.app import create_app
from healthcard.platform.access import Role
from healthcard.storage import tables as t
from healthcard.web import ehealth

from .platform_fixtures import CARD, PASSWORD, Platform, insured_here
from .test_visit_flow import count

BANK = "demo-bank"
AGENT = "http://127.0.0.1:7700"


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


@pytest.fixture
def client(platform: Platform) -> Iterator[TestClient]:
    insured_here(platform, "township")
    with TestClient(create_app(platform.app, agent_url=AGENT), follow_redirects=True) as http:
        yield http


def staff_login(http: TestClient, username: str) -> str:
    http.cookies.clear()
    token = csrf_of(http.get("/staff/login").text)
    answer = http.post("/staff/login", data={"username": username, "password": PASSWORD, "csrf": token})
    assert answer.status_code == 200, answer.text[:300]
    return csrf_of(answer.text)


def qr(http: TestClient, platform: Platform, *, minutes_ago: int = 0) -> str:
    keys = http.app.state.ehc_keys  # type: ignore[attr-defined]
    return ehealth.issue(keys, CARD, platform.clock.now() - dt.timedelta(minutes=minutes_ago)).text


def scan(http: TestClient, csrf: str, code: str) -> tuple[int, str, str]:
    answer = http.post("/clinic/scan", data={"qr_code": code, "csrf": csrf})
    return answer.status_code, answer.url.path, answer.text


def test_the_console_is_for_the_clinic_s_staff(platform: Platform, client: TestClient) -> None:
    assert client.get("/clinic").url.path == "/staff/login"  # anonymous
    staff_login(client, "admin")
    refused = client.get("/clinic")
    assert refused.status_code == 403
    assert 'action="/staff/logout"' in refused.text and 'action="/portal/logout"' not in refused.text
    staff_login(client, "dr-wang")  # lands on the console
    page = client.get("/clinic")
    assert page.status_code == 200 and 'id="swipe"' in page.text
    assert f"connect-src 'self' {AGENT}" in page.headers["content-security-policy"]
    assert f'data-agent="{AGENT}"' in page.text and "/static/agent.js" in page.text
    assert "connect-src 'self';" in client.get("/portal/login").headers["content-security-policy"]


def test_the_electronic_health_card_opens_the_record_like_a_swipe(
    platform: Platform, client: TestClient
) -> None:
    rid = platform.resident_id
    csrf = staff_login(client, "dr-wang")
    # no presence yet: the record is refused, and the refusal is audited
    assert client.get(f"/clinic/patient/{rid}").status_code == 403

    for code, why in ((qr(client, platform, minutes_ago=6), "expired"), ("ABCD:0:1234", "not")):
        status, _, html = scan(client, csrf, code)
        assert status == 422 and 'id="e-qr_code"' in html and why in html
        assert count(platform, t.CardUse, resident_id=rid) == 0
    forged = qr(client, platform)[:-2] + ("00" if not qr(client, platform).endswith("00") else "11")
    assert scan(client, csrf, forged)[0] == 422

    status, path, html = scan(client, csrf, qr(client, platform))
    assert (status, path) == (200, f"/clinic/patient/{rid}") and "张三" in html
    assert count(platform, t.CardUse, resident_id=rid, terminal_kind="ehc-qr") == 1
    assert count(platform, t.PresenceGrant, resident_id=rid, reason="qr") == 1
    # the summary at a glance: four reads in one transaction, each in the resident's "who looked"
    for what in ("person", "summary", "vaccination plan", "encounters"):
        assert count(platform, t.AuditEntry, actor="dr-wang", what=what, outcome="allowed") == 1, what
    # a missing CSRF token writes nothing
    assert client.post("/clinic/scan", data={"qr_code": qr(client, platform)}).status_code == 403
    assert count(platform, t.CardUse, resident_id=rid) == 1


def _open_visit(client: TestClient, platform: Platform) -> tuple[str, int]:
    rid = platform.resident_id
    csrf = staff_login(client, "dr-wang")
    scan(client, csrf, qr(client, platform))
    refused = client.post(f"/clinic/patient/{rid}/visits", data={"department": " ", "csrf": csrf})
    assert refused.status_code == 422 and 'id="e-department"' in refused.text
    assert count(platform, t.Encounter, resident_id=rid) == 0
    opened = client.post(f"/clinic/patient/{rid}/visits", data={"department": "内科", "csrf": csrf})
    assert opened.status_code == 200, opened.text[:300]
    found = re.search(rf"/clinic/patient/{rid}/visits/(\d+)", str(opened.url))
    assert found, opened.url
    return csrf, int(found.group(1))


def test_the_visit_s_forms_refuse_by_field_and_write_nothing(platform: Platform, client: TestClient) -> None:
    rid = platform.resident_id
    csrf, eid = _open_visit(client, platform)
    visit = f"/clinic/patient/{rid}/visits/{eid}"

    hits = client.get(f"{visit}/icd10", params={"q": "J06"}, headers={"HX-Request": "true"})
    assert hits.status_code == 200 and 'value="J06.9"' in hits.text
    assert "<html" not in hits.text  # a fragment for htmx

    cases = (
        ("diagnoses", {"code": "ZZ9"}, "code"),
        ("labs", {"name": "白细胞", "value": "12", "low": "four"}, "low"),
        ("labs", {"name": "", "value": "12"}, "name"),
        ("prescriptions", {"drug_code": "NOPE", "dose": "1", "days": "3"}, "drug_code"),
        ("prescriptions", {"drug_code": "YP0001", "dose": "1", "route_code": "01", "days": "0"}, "days"),
        ("prescriptions", {"drug_code": "YP0001", "dose": "1", "route_code": "1", "days": "3"}, "route_code"),
    )
    for form, data, field in cases:
        answer = client.post(f"{visit}/{form}", data={**data, "csrf": csrf})
        assert answer.status_code == 422, (form, field, answer.status_code)
        assert f'id="e-{field}"' in answer.text, (form, field)
    for table in (t.Diagnosis, t.Observation, t.Prescription):
        assert count(platform, table, encounter_id=eid) == 0

    added = client.post(f"{visit}/diagnoses", data={"code": "J06.9", "csrf": csrf})
    assert added.status_code == 200 and "J06.9" in added.text
    assert count(platform, t.Diagnosis, encounter_id=eid, primary=True) == 1


def _account(client: TestClient, platform: Platform, amount_fen: int) -> None:
    """The resident opens the co-branded health account; the bank's notice funds it."""
    rid = platform.resident_id
    api = client
    me = {"Authorization": "Bearer " + _token(api, CARD)}
    opened = api.post(f"/v1/residents/{rid}/health-account", json={"bank": BANK}, headers=me)
    assert opened.status_code == 201, opened.text
    with platform.app.db.uow() as uow:
        platform.app.node.accounts.create(uow, username=BANK, name=BANK, role=Role.BANK, password=PASSWORD)
        uow.commit()
    notice = {
        "bank_ref": "TOPUP-1",
        "account_number": opened.json()["account_number"],
        "amount_fen": amount_fen,
        "value_date": platform.clock.now().date().isoformat(),
    }
    bank = {"Authorization": "Bearer " + _token(api, BANK)}
    assert api.post(f"/v1/banks/{BANK}/notices", json=notice, headers=bank).status_code == 201


def _token(api: TestClient, username: str) -> str:
    answer = api.post("/v1/auth/token", json={"username": username, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def test_the_cashier_settles_from_the_account_once(platform: Platform, client: TestClient) -> None:
    rid = platform.resident_id
    _account(client, platform, 10_000)
    _, eid = _open_visit(client, platform)
    csrf = staff_login(client, "cashier-1")
    scan(client, csrf, qr(client, platform))
    window = client.get(f"/clinic/patient/{rid}")
    assert window.status_code == 200 and f"/clinic/patient/{rid}/bill/{eid}" in window.text
    assert "J06" not in window.text  # the cashier sees visits to bill, not diagnoses

    bill = f"/clinic/patient/{rid}/bill/{eid}"
    page = client.get(bill)
    key = re.search(r'name="key" value="([^"]+)"', page.text)
    assert key and "¥100.00" in page.text  # the balance beside "health account"
    lines = {"item-0": "YP0001", "qty-0": "2", "item-1": "FW0001", "qty-1": "1"}

    for bad, field in (({"qty-0": "two"}, "qty-0"), ({"item-0": ""}, "item-0"), ({"item-1": "XX"}, "item-1")):
        answer = client.post(
            bill,
            data={**lines, **bad, "paid_by": "account", "step": "settle", "key": key.group(1), "csrf": csrf},
        )
        assert answer.status_code == 422 and f'id="e-{field}"' in answer.text, (bad, answer.text[:200])
    missing = client.post(bill, data={**lines, "step": "quote", "key": key.group(1), "csrf": csrf})
    assert missing.status_code == 422 and 'id="e-paid_by"' in missing.text
    assert count(platform, t.Settlement, resident_id=rid) == 0

    form = {**lines, "paid_by": "account", "key": key.group(1), "csrf": csrf}
    quote = client.post(bill, data={**form, "step": "quote"})
    assert quote.status_code == 200 and 'id="quote-fund">¥11.00' in quote.text
    assert count(platform, t.Settlement, resident_id=rid) == 0  # a pre-settlement writes nothing
    for _ in range(3):  # a double click, a retry after a timeout: one settlement
        settled = client.post(bill, data={**form, "step": "settle"})
        assert settled.status_code == 200 and 'id="fund">¥11.00' in settled.text
    assert count(platform, t.Settlement, resident_id=rid) == 1
    me = {"Authorization": "Bearer " + _token(client, CARD)}
    balance = client.get(f"/v1/residents/{rid}/health-account", headers=me).json()["balance_fen"]
    assert balance == 10_000 - 1100
    assert 'id="write-card"' in client.get(bill).text  # next: the card
