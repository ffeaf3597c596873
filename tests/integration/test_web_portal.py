"""The resident portal (居民健康网) through HTTP, on SQLite and PostgreSQL: logging in and out, every
page of the demo-like resident of the ``platform`` fixture, the language switch, CSRF, the
session cookie, a resident who tries another resident's ids, escaping, booking and cancelling
through the forms, and field-named errors next to their field."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from healthcard import __version__
from healthcard.api.app import create_app
from healthcard.platform.access import Role
from healthcard.platform.records import (
    DiagnosisIn,
    EncounterIn,
    EncounterKind,
    FeeLine,
    ObservationIn,
    PrescriptionIn,
    ProcedureIn,
)
from healthcard.storage import tables as t

from .appointment_fixtures import Clinic, make_clinic, make_residents
from .cardcentre_fixtures import NOW
from .platform_fixtures import CARD, HOSPITAL, PASSWORD, Platform

OTHER_USER = "OTHER00000000000001"


@dataclass
class Portal:
    platform: Platform
    client: TestClient
    clinic: Clinic
    visit_id: int  # 张三's visit
    other_visit_id: int  # another resident's visit
    other_resident: str

    def csrf(self, path: str = "/portal") -> str:
        return csrf_of(self.client.get(path).text)

    def login(self, username: str = CARD, password: str = PASSWORD) -> None:
        token = self.csrf("/portal/login")
        answer = self.client.post(
            "/portal/login", data={"username": username, "password": password, "csrf": token}
        )
        assert answer.status_code == 200 and answer.url.path == "/portal", answer.text[:500]


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def _visit(institution: str, *, key: str, name: str = "白细胞计数") -> EncounterIn:
    return EncounterIn(
        institution_code=institution,
        kind=EncounterKind.OUTPATIENT,
        department="内科",
        clinician="王医生",
        started_at=NOW - dt.timedelta(days=2),
        ended_at=NOW - dt.timedelta(days=2) + dt.timedelta(minutes=20),
        diagnoses=(DiagnosisIn("J06.900", primary=True),),
        observations=(
            ObservationIn("lab", "WBC", name, "12.3", "10^9/L", 3.5, 9.5),
            ObservationIn("lab", "HGB", "血红蛋白", "140", "g/L", 130, 175),
        ),
        prescriptions=(PrescriptionIn("阿莫西林胶囊", "0.5", "g", "01", "每日3次", 5),),
        procedures=(ProcedureIn("93.39", "物理治疗"),),
        fees=(FeeLine("西药费", "1", 2350),),
        payment_method="03",
        upload_key=key,
    )


@pytest.fixture
def portal(platform: Platform) -> Iterator[Portal]:
    """张三 (the platform fixture's resident, with a password account) with an archive, an
    allergy and a closed visit; another resident with a visit of their own and an account; a
    clinic with open sessions to book."""
    node = platform.app.node
    other = make_residents(platform.app.db, 1, "webother", platform.clock)[0]
    with platform.app.db.uow() as uow:
        node.records.put_archive(
            uow,
            platform.resident_id,
            by="dr-wang",
            abo=1,
            rh="1",
            alerts={"asthma": True},
            other_alert="高血压",
        )
        node.records.add_allergy(uow, platform.resident_id, allergen="青霉素", reaction="皮疹", by="dr-wang")
        mine, _ = node.records.record_encounter(uow, platform.resident_id, _visit(HOSPITAL, key="web-1"))
        theirs, _ = node.records.record_encounter(uow, other, _visit(HOSPITAL, key="web-2", name="秘密检查"))
        node.accounts.create(
            uow, username=OTHER_USER, name="李四", role=Role.RESIDENT, password=PASSWORD, resident_id=other
        )
        uow.commit()
    clinic = make_clinic(node, HOSPITAL)
    with TestClient(create_app(platform.app)) as client:
        yield Portal(platform, client, clinic, mine.id, theirs.id, other)


def _count(platform: Platform, table: type[t.Base]) -> int:
    with platform.app.db.uow() as uow:
        return int(uow.session.scalar(select(func.count()).select_from(table)) or 0)


# --- logging in and out ---------------------------------------------------------------------------------
def test_root_and_pages_send_an_anonymous_browser_to_the_login_page(portal: Portal) -> None:
    answer = portal.client.get("/", follow_redirects=False)
    assert answer.status_code == 307 and answer.headers["location"] == "/portal"
    answer = portal.client.get("/portal/visits", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/portal/login?next=%2Fportal%2Fvisits")
    page = portal.client.get("/portal/login")
    assert page.status_code == 200 and '<html lang="zh-CN">' in page.text
    assert '<label for="f-username">身份证号</label>' in page.text


def test_login_renews_the_session_and_logout_clears_it(portal: Portal) -> None:
    before = portal.csrf("/portal/login")
    cookie_before = portal.client.cookies.get("hc_session")
    portal.login()
    home = portal.client.get("/portal")
    assert home.status_code == 200 and "张三，您好" in home.text
    after = csrf_of(home.text)
    assert after != before and portal.client.cookies.get("hc_session") != cookie_before
    logged_in = portal.client.cookies.get("hc_session")
    answer = portal.client.post("/portal/logout", data={"csrf": after}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/portal/login"
    assert 'hc_session=""' in answer.headers["set-cookie"] and "Max-Age=0" in answer.headers["set-cookie"]
    assert portal.client.cookies.get("hc_session") is None
    assert portal.client.get("/portal", follow_redirects=False).status_code == 303
    # the old cookie, kept by someone, still holds a token until it expires (a stateless token):
    # logging out ends the browser's session, the 15-minute token dies on its own
    assert logged_in is not None


def test_a_planted_session_is_worth_nothing_after_login(portal: Portal) -> None:
    """Session fixation: the cookie an attacker planted before the login is not the one after."""
    portal.csrf("/portal/login")
    planted = portal.client.cookies.get("hc_session")
    portal.login()
    assert portal.client.cookies.get("hc_session") != planted
    portal.client.cookies.clear()
    portal.client.cookies.set("hc_session", planted or "")
    assert portal.client.get("/portal", follow_redirects=False).status_code == 303


def test_wrong_password_is_shown_at_the_password_field_and_staff_are_refused(portal: Portal) -> None:
    token = portal.csrf("/portal/login")
    page = portal.client.post(
        "/portal/login", data={"username": CARD, "password": "wrong", "csrf": token, "next": "/portal"}
    )
    assert page.status_code == 401
    assert 'id="e-password"' in page.text and "身份证号或密码错误" in page.text
    assert f'value="{CARD}"' in page.text  # the input is kept
    empty = portal.client.post("/portal/login", data={"username": "", "password": "x", "csrf": token})
    assert empty.status_code == 422 and 'id="e-username"' in empty.text
    staff = portal.client.post(
        "/portal/login", data={"username": "dr-wang", "password": PASSWORD, "csrf": token}
    )
    assert staff.status_code == 403 and "portal is for residents" in staff.text


def test_the_session_cookie_is_httponly_and_samesite_and_secure_over_https(portal: Portal) -> None:
    page = portal.client.get("/portal/login")
    cookie = page.headers["set-cookie"]
    assert "hc_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain http (the demo on 127.0.0.1)
    with TestClient(create_app(portal.platform.app), base_url="https://testserver") as secure:
        assert "Secure" in secure.get("/portal/login").headers["set-cookie"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"


def test_an_expired_token_sends_the_browser_to_the_login_page(portal: Portal) -> None:
    portal.login()
    portal.platform.clock.advance(dt.timedelta(minutes=16))
    answer = portal.client.get("/portal/visits", follow_redirects=False)
    assert answer.status_code == 303 and "expired=1" in answer.headers["location"]
    assert "登录已过期" in portal.client.get(answer.headers["location"]).text


# --- every page ---------------------------------------------------------------------------------------------
PAGES = [
    "/portal",
    "/portal/archive",
    "/portal/visits",
    "/portal/vaccinations",
    "/portal/fees",
    "/portal/account",
    "/portal/appointments",
    "/portal/appointments/new",
    "/portal/privacy",
    "/portal/ehc",
]


def test_every_page_renders_for_the_resident_in_both_languages(portal: Portal) -> None:
    portal.login()
    for path in PAGES:
        page = portal.client.get(path)
        assert page.status_code == 200, (path, page.text[:800])
        assert '<html lang="zh-CN">' in page.text and len(page.content) < 150_000
        # every asset URL carries the release (a template variable named like it once blanked it)
        assets = re.findall(r'(?:href|src)="(/static/[^"]*)"', page.text)
        assert assets and all(a.endswith(f"?v={__version__}") for a in assets), (path, assets)
    home = portal.client.get("/portal").text
    assert "正常" in home and CARD in home and "A型" in home and "哮喘" in home and "青霉素" in home
    visit = portal.client.get(f"/portal/visits/{portal.visit_id}")
    assert visit.status_code == 200
    assert re.search(r'<tr class="out">\s*<th scope="row">白细胞计数', visit.text)  # 12.3 > 9.5
    assert "3.5–9.5" in visit.text and "↑ 偏高" in visit.text and "阿莫西林胶囊" in visit.text
    assert "¥23.50" in visit.text and "物理治疗" in visit.text
    switched = portal.client.get("/portal/lang/en", params={"next": "/portal/visits"})
    assert switched.url.path == "/portal/visits" and '<html lang="en">' in switched.text
    assert "Visits" in switched.text
    for path in PAGES:
        assert portal.client.get(path).status_code == 200, path
    # an off-site "next" is never followed
    away = portal.client.get("/portal/lang/zh", params={"next": "//evil.example/x"}, follow_redirects=False)
    assert away.headers["location"] == "/portal"


def test_the_vaccination_page_lists_due_and_overdue_doses(portal: Portal) -> None:
    """张三 is an adult: past the children's schedule, said so; the note on household links is shown."""
    portal.login()
    page = portal.client.get("/portal/vaccinations").text
    assert "应种与逾期" in page and "家庭代理关联" in page


# --- CSRF ---------------------------------------------------------------------------------------------------
def test_a_post_without_or_with_a_wrong_csrf_token_is_refused_and_writes_nothing(portal: Portal) -> None:
    portal.login()
    session_id = portal.clinic.session(days=1)
    bookings = _count(portal.platform, t.Booking)
    for data in ({"session_id": str(session_id)}, {"session_id": str(session_id), "csrf": "forged"}):
        answer = portal.client.post("/portal/appointments", data=data)
        assert answer.status_code == 403 and "表单已过期" in answer.text
    htmx = portal.client.post(
        "/portal/privacy/hidden",
        data={"category": "hiv", "hidden": "true"},
        headers={"HX-Request": "true", "X-CSRF-Token": "forged"},
    )
    assert htmx.status_code == 403
    assert _count(portal.platform, t.Booking) == bookings
    assert _count(portal.platform, t.HiddenCategory) == 0
    # a login without the token is refused too (login CSRF)
    portal.client.cookies.clear()
    assert (
        portal.client.post("/portal/login", data={"username": CARD, "password": PASSWORD}).status_code == 403
    )


# --- no one else's page ---------------------------------------------------------------------------------
def test_a_resident_never_reaches_another_residents_data_by_changing_the_url(portal: Portal) -> None:
    portal.login()
    # another resident's visit id: not found, and nothing of it shown
    answer = portal.client.get(f"/portal/visits/{portal.other_visit_id}")
    assert answer.status_code == 404 and "秘密检查" not in answer.text
    # a resident id in the query is ignored: the pages are the token's resident's
    for path in ("/portal", "/portal/visits", "/portal/privacy", "/portal/fees"):
        page = portal.client.get(
            path, params={"resident_id": portal.other_resident, "rid": portal.other_resident}
        )
        assert page.status_code == 200 and "李四" not in page.text and "秘密检查" not in page.text
    # there is no route that takes a resident id
    assert portal.client.get(f"/portal/residents/{portal.other_resident}").status_code == 404
    # another resident's booking cannot be cancelled
    node = portal.platform.app.node
    from .appointment_fixtures import resident

    booking = node.appointments.book(resident(portal.other_resident), portal.clinic.session(days=2))
    page = portal.client.post(f"/portal/appointments/{booking.id}/cancel", data={"csrf": portal.csrf()})
    assert page.status_code in (403, 404) and 'role="alert"' in page.text
    assert node.appointments.booking(resident(portal.other_resident), booking.id).status == "BOOKED"


def test_a_name_with_markup_is_shown_as_text(portal: Portal) -> None:
    with portal.platform.app.db.uow() as uow:
        row = uow.session.get(t.Resident, portal.platform.resident_id)
        assert row is not None
        row.name = "<script>alert(1)</script>"
        uow.commit()
    portal.login()
    page = portal.client.get("/portal").text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# --- booking and cancelling -------------------------------------------------------------------------------
def test_book_through_the_steps_then_cancel(portal: Portal) -> None:
    portal.login()
    headers = {"HX-Request": "true"}
    step = portal.client.get("/portal/appointments/new", params={"institution": HOSPITAL}, headers=headers)
    assert step.status_code == 200 and "<html" not in step.text and 'name="department"' in step.text
    step = portal.client.get(
        "/portal/appointments/new", params={"institution": HOSPITAL, "department": "300"}, headers=headers
    )
    assert "王建华" in step.text
    doctor = re.search(r'<option value="(\d+)"\s*>王建华', step.text)
    assert doctor
    step = portal.client.get(
        "/portal/appointments/new",
        params={"institution": HOSPITAL, "department": "300", "doctor": doctor.group(1)},
        headers=headers,
    )
    session_id = portal.clinic.session(days=1)
    assert f'value="{session_id}"' in step.text
    booked = portal.client.post(
        "/portal/appointments",
        data={
            "csrf": portal.csrf(),
            "institution": HOSPITAL,
            "department": "300",
            "doctor": doctor.group(1),
            "session_id": str(session_id),
        },
    )
    assert booked.status_code == 200 and booked.url.path == "/portal/appointments"
    assert "预约成功" in booked.text and "已预约" in booked.text and "王建华" in booked.text
    booking = re.search(r'action="/portal/appointments/(\d+)/cancel"', booked.text)
    assert booking
    cancelled = portal.client.post(
        f"/portal/appointments/{booking.group(1)}/cancel", data={"csrf": csrf_of(booked.text)}
    )
    assert "预约已取消" in cancelled.text and "已取消" in cancelled.text
    again = portal.client.post(
        f"/portal/appointments/{booking.group(1)}/cancel", data={"csrf": csrf_of(cancelled.text)}
    )
    assert again.status_code == 409 and 'role="alert"' in again.text and "only a booked one" in again.text


def test_a_double_tap_on_book_books_once(portal: Portal) -> None:
    """The booking page carries a one-time key: the form sent twice (a double tap, a resend
    after the answer was lost) makes one booking and both answers show it."""
    portal.login()
    page = portal.client.get("/portal/appointments/new")
    key = re.search(r'name="key" value="([0-9a-f]{32})"', page.text)
    assert key, page.text
    assert key.group(1) not in portal.client.get("/portal/appointments/new").text  # one per page drawn
    data = {"csrf": csrf_of(page.text), "key": key.group(1), "session_id": str(portal.clinic.session(days=1))}
    bookings = _count(portal.platform, t.Booking)
    answers = [portal.client.post("/portal/appointments", data=data) for _ in range(2)]
    for answer in answers:
        assert answer.status_code == 200 and answer.url.path == "/portal/appointments", answer.text[:300]
        assert "预约成功" in answer.text
    assert _count(portal.platform, t.Booking) == bookings + 1
    # without the key a second send is "already booked", as before
    del data["key"]
    refused = portal.client.post("/portal/appointments", data=data)
    assert refused.status_code == 409 and "already booked" in refused.text
    assert _count(portal.platform, t.Booking) == bookings + 1


def test_a_booking_error_is_shown_next_to_its_field_with_the_choices_kept(portal: Portal) -> None:
    portal.login()
    page = portal.client.post(
        "/portal/appointments",
        data={"csrf": portal.csrf(), "institution": HOSPITAL, "department": "300", "session_id": ""},
    )
    assert page.status_code == 422
    assert re.search(r'<p class="field-error" id="e-session_id" role="alert">choose a session</p>', page.text)
    # the chosen institution and department are kept
    assert re.search(rf'<option value="{HOSPITAL}"\s*selected', page.text)
    assert re.search(r'<option value="300"\s*selected', page.text)
    missing = portal.client.post(
        "/portal/appointments", data={"csrf": portal.csrf(), "session_id": "999999999"}
    )
    assert missing.status_code == 404 and "no session 999999999" in missing.text


# --- privacy -------------------------------------------------------------------------------------------------
def test_hide_a_category_with_htmx_and_see_who_looked(portal: Portal) -> None:
    portal.login()
    page = portal.client.get("/portal/privacy")
    assert "谁查看了我的记录" in page.text and 'aria-live="polite"' in page.text
    fragment = portal.client.post(
        "/portal/privacy/hidden",
        data={"category": "hiv", "hidden": "true"},
        headers={"HX-Request": "true", "X-CSRF-Token": csrf_of(page.text)},
    )
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert re.search(r'aria-checked="true" aria-labelledby="cat-hiv"', fragment.text)
    node = portal.platform.app.node
    from .appointment_fixtures import resident

    assert "hiv" in node.hidden(resident(portal.platform.resident_id), portal.platform.resident_id)
    bad = portal.client.post(
        "/portal/privacy/hidden",
        data={"category": "general", "hidden": "true", "csrf": csrf_of(page.text)},
    )
    assert bad.status_code == 422 and 'id="e-category"' in bad.text


def test_sessions_that_have_ended_are_not_offered(portal: Portal) -> None:
    today_morning = portal.clinic.session(days=0, period="morning")
    tomorrow = portal.clinic.session(days=1)
    portal.platform.clock.advance(dt.timedelta(hours=3))  # 13:00 in Zhengzhou: the morning is over
    portal.login()
    doctor = str(portal.clinic.doctor_id)
    step = portal.client.get(
        "/portal/appointments/new",
        params={"institution": HOSPITAL, "department": "300", "doctor": doctor},
        headers={"HX-Request": "true"},
    )
    offered = set(re.findall(r'name="session_id" value="(\d+)"', step.text))
    assert str(today_morning) not in offered and str(tomorrow) in offered
