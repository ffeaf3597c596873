"""Staff login and the administrators' dashboards through HTTP, on SQLite and PostgreSQL: each
dashboard for its role with its figures (the same figures in the SVG chart and in the table
beside it), the 403 page for another role, the staff login page for an anonymous or expired
visitor, CSRF on the login form, and well-formed SVG."""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from healthcard.api.app import create_app
from healthcard.clock import local_date
from healthcard.issuance.organisation import Organisation
from healthcard.platform.access import Actor, Role
from healthcard.platform.immunization import DoseState
from healthcard.platform.records import EncounterIn, EncounterKind
from healthcard.platform.settlement.desk import bill_of
from healthcard.storage import tables as t
from healthcard.web import admin, i18n

from .platform_fixtures import CARD, HOSPITAL, PASSWORD, Platform

OFFICE = "410122902"  # 中牟县新农合管理中心: the demo pool's office
INSURER = Actor("ncms", Role.INSURER, institution_code=OFFICE)
CASHIER = Actor("cashier", Role.CASHIER, institution_code=HOSPITAL)
SVG = "{http://www.w3.org/2000/svg}"
BOARDS = ("/admin/cards", "/admin/ncms", "/admin/coverage", "/admin/platform")
#: who may open each dashboard (the accounts of the fixture below)
OWNERS = {
    "/admin/cards": ("card-admin", "admin"),
    "/admin/ncms": ("ncms",),
    "/admin/coverage": ("cdc-zz",),
    "/admin/platform": ("admin",),
}
STAFF = ("admin", "card-admin", "ncms", "cdc-zz", "auditor", "dr-wang")


@dataclass
class Staff:
    platform: Platform
    client: TestClient
    children: tuple[str, str]

    def login(self, username: str, password: str = PASSWORD, *, next: str = "") -> str:
        """Log in through the form; the path the browser lands on."""
        self.client.cookies.clear()
        token = csrf_of(self.client.get("/staff/login").text)
        answer = self.client.post(
            "/staff/login", data={"username": username, "password": password, "csrf": token, "next": next}
        )
        assert answer.status_code == 200, answer.text[:500]
        return answer.url.path


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def svgs(html: str) -> list[ET.Element]:
    """Every chart of the page, parsed as XML (a malformed one fails here)."""
    return [ET.fromstring(svg) for svg in re.findall(r"<svg\b.*?</svg>", html, flags=re.S)]


def table(html: str, table_id: str) -> list[list[str]]:
    """The rows of a table (header cells and data cells, tags stripped)."""
    found = re.search(rf'<table id="{table_id}">(.*?)</table>', html, flags=re.S)
    assert found, f"no table {table_id}"
    rows = re.findall(r"<tr>(.*?)</tr>", found.group(1), flags=re.S)
    return [
        [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", r, re.S)]
        for r in rows
    ]


@pytest.fixture
def staff(platform: Platform) -> Iterator[Staff]:
    """The platform fixture, plus: the demo pool's NCMS office with an insurer account, a
    card-centre administrator, a cashier; the resident insured and one inpatient visit settled
    at the (county) hospital; two children in Zhengzhou, one of them given BCG."""
    app, node = platform.app, platform.app.node
    Organisation(app.db).add_institution(
        OFFICE, name="中牟县新型农村合作医疗管理中心", area="410122", kind="ncms-office", issues=False
    )
    today = local_date(platform.clock)
    children = ("R-WEB-KID-1", "R-WEB-KID-2")
    with app.db.uow() as uow:
        uow.session.execute(
            update(t.Institution).where(t.Institution.code == HOSPITAL).values(level="county")
        )
        for username, role, institution in (
            ("card-admin", Role.CARD_ADMIN, "41000000001"),
            ("ncms", Role.INSURER, OFFICE),
            ("cashier", Role.CASHIER, HOSPITAL),
        ):
            node.accounts.create(
                uow,
                username=username,
                name=username,
                role=role,
                password=PASSWORD,
                institution_code=institution,
            )
        node.access.grant_presence(
            uow, resident_id=platform.resident_id, institution_code=HOSPITAL, card_use_id=None
        )
        for n, rid in enumerate(children, start=1):
            uow.session.add(
                t.Resident(
                    resident_id=rid,
                    id_type="01",
                    id_number=f"41010220260101{n:04d}",
                    name=f"儿童{n}",
                    sex=1,
                    birth_date=today - dt.timedelta(days=300),
                    created_at=platform.clock.now(),
                    area_code="410102",
                )
            )
        uow.flush()
        node.immunizations.record(
            uow,
            resident_id=children[0],
            vaccine="0101",
            dose=1,
            given_on=today - dt.timedelta(days=299),
            institution_code=HOSPITAL,
            by="dr-wang",
        )
        encounter = node.records.open_encounter(
            uow,
            platform.resident_id,
            EncounterIn(
                institution_code=HOSPITAL,
                kind=EncounterKind.INPATIENT,
                department="普外科",
                clinician="dr-wang",
                started_at=platform.clock.now() - dt.timedelta(days=4),
            ),
        )
        uow.commit()
    node.settlement.enrol(INSURER, platform.resident_id, pool="demo", year=today.year, premium_fen=40_000)
    # 阑尾切除术 and four days' bed at a county hospital: 1,300 yuan, the fund pays 750
    bill = bill_of(encounter.id, [("FW0501", 1, 120_000), ("FW0401", 4, 2_500)])
    settled, _ = node.settlement.settle(CASHIER, platform.resident_id, bill, key="ZY-WEB-1")
    assert settled.fund_fen == 75_000
    with TestClient(create_app(app)) as client:
        yield Staff(platform, client, children)


# --- the staff login ----------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/admin", *BOARDS])
def test_an_anonymous_visitor_is_sent_to_the_staff_login(staff: Staff, path: str) -> None:
    answer = staff.client.get(path, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/staff/login?next={path.replace('/', '%2F')}"
    page = staff.client.get(answer.headers["location"])
    assert page.status_code == 200 and 'action="/staff/login"' in page.text
    assert f'name="next" value="{path}"' in page.text


def test_login_goes_to_next_or_the_index_and_logout_ends_the_session(staff: Staff) -> None:
    assert staff.login("admin") == "/admin"
    index = staff.client.get("/admin").text
    assert 'action="/staff/logout"' in index and "/portal/logout" not in index
    assert staff.login("card-admin", next="/admin/cards") == "/admin/cards"
    assert staff.login("ncms", next="https://evil.example/") == "/admin"  # a local path only
    logout = staff.client.post("/staff/logout", data={"csrf": csrf_of(staff.client.get("/admin").text)})
    assert logout.url.path == "/staff/login"
    assert staff.client.get("/admin", follow_redirects=False).status_code == 303


def test_an_expired_session_is_sent_to_the_staff_login(staff: Staff) -> None:
    staff.login("admin")
    staff.platform.clock.advance(dt.timedelta(hours=13))
    answer = staff.client.get("/admin/platform", follow_redirects=False)
    assert answer.status_code == 303
    assert (
        answer.headers["location"].startswith("/staff/login?") and "expired=1" in answer.headers["location"]
    )


def test_a_wrong_password_or_a_resident_is_refused(staff: Staff) -> None:
    token = csrf_of(staff.client.get("/staff/login").text)
    wrong = staff.client.post("/staff/login", data={"username": "admin", "password": "nope", "csrf": token})
    assert wrong.status_code == 401
    assert i18n.CATALOG["staff.login.refused"][0] in wrong.text and 'aria-invalid="true"' in wrong.text
    resident = staff.client.post("/staff/login", data={"username": CARD, "password": PASSWORD, "csrf": token})
    assert resident.status_code == 403 and "hc_session=" not in resident.headers.get("set-cookie", "")
    assert staff.client.get("/admin", follow_redirects=False).status_code == 303  # still nobody


def test_the_login_form_needs_its_csrf_token(staff: Staff) -> None:
    staff.client.get("/staff/login")
    for data in (
        {"username": "admin", "password": PASSWORD},
        {"username": "admin", "password": PASSWORD, "csrf": "forged"},
    ):
        answer = staff.client.post("/staff/login", data=data, follow_redirects=False)
        assert answer.status_code == 403 and i18n.CATALOG["error.csrf"][0] in answer.text
    assert staff.client.get("/admin", follow_redirects=False).status_code == 303


# --- who sees which dashboard -------------------------------------------------------------------------
@pytest.mark.parametrize("username", STAFF)
def test_the_index_lists_the_dashboards_of_the_role_and_each_other_is_refused(
    staff: Staff, username: str
) -> None:
    staff.login(username)
    index = staff.client.get("/admin")
    assert index.status_code == 200
    for path, owners in OWNERS.items():
        assert (f'href="{path}"' in index.text) == (username in owners), path
        answer = staff.client.get(path)
        if username in owners:
            assert answer.status_code == 200, (path, answer.text[:300])
        else:
            assert answer.status_code == 403, path
            assert i18n.CATALOG["error.forbidden"][0] in answer.text


def test_a_logged_in_resident_gets_the_403_page(staff: Staff) -> None:
    token = csrf_of(staff.client.get("/portal/login").text)
    staff.client.post("/portal/login", data={"username": CARD, "password": PASSWORD, "csrf": token})
    for path in ("/admin", *BOARDS):
        assert staff.client.get(path, follow_redirects=False).status_code == 403, path


def test_every_dashboard_title_is_in_the_catalog() -> None:
    for board in admin.BOARDS:
        assert board.title in i18n.CATALOG and board.help in i18n.CATALOG


# --- the figures ------------------------------------------------------------------------------------------
def test_card_centre_shows_cards_issued_per_day_by_city(staff: Staff) -> None:
    staff.login("card-admin")
    page = staff.client.get("/admin/cards").text
    issued = staff.platform.app.node.cards_issued(Actor("admin", Role.ADMIN), days=30)
    assert len(issued) == 1 and issued[0].cards == 1
    rows = table(page, "issued-table")
    assert rows[0][1:] == [i18n.Translator("zh")("cards.city", city=issued[0].city_code)]
    assert rows[1] == [issued[0].day.isoformat(), "1"] and rows[-1][1:] == ["1"]
    (chart,) = svgs(page)
    assert chart.get("role") == "img"
    bars = [r for r in chart.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert len(bars) == 30  # a column per day, one city
    drawn = [r for r in bars if float(r.get("height", "0")) > 0]
    assert len(drawn) == 1 and drawn[0].findtext(f"{SVG}title", "").endswith(": 1")


def test_ncms_office_sees_its_fund(staff: Staff) -> None:
    staff.login("ncms")
    page = staff.client.get("/admin/ncms").text
    assert re.search(r'id="fund-balance"[^>]*>¥-350\.00<', page)  # 400 premium − 750 paid
    assert table(page, "by-level")[1] == ["县级", "1", "0", "¥1,300.00", "¥750.00", "¥550.00"]
    assert table(page, "by-month")[1][1:] == ["1", "0", "¥1,300.00", "¥750.00", "¥550.00"]
    largest = table(page, "largest")
    assert len(largest) == 2 and largest[1][-1] == "¥750.00"
    (chart,) = svgs(page)
    assert "县级 750.00" in chart.findtext(f"{SVG}desc", "")
    assert staff.client.get("/admin/ncms", params={"pool": "nowhere"}).status_code == 422  # no such pool
    assert staff.client.get("/admin/ncms", params={"year": "1999"}).status_code == 422


def test_public_health_sees_coverage_and_the_due_count_of_its_area(staff: Staff) -> None:
    staff.login("cdc-zz")
    page = staff.client.get("/admin/coverage").text
    rows = table(page, "coverage-table")
    assert rows[1] == ["卡介苗", "1", "2", "1", "50.0%"]  # BCG: one child of two
    (chart,) = svgs(page)
    assert "卡介苗 1 50.0%" in chart.findtext(f"{SVG}desc", "")
    due = staff.platform.app.node.due_in_area(Actor("cdc-zz", Role.PUBLIC_HEALTH, area_code="4101"), "4101")
    overdue = sum(1 for e in due if e.status.state is DoseState.OVERDUE)
    assert overdue > 0
    assert re.search(rf'id="overdue-count"[^>]*>{overdue}<', page)
    assert re.search(r'id="children-count">2<', page)
    # the map: a row per county with children of schedule age, a column per vaccine
    county_map = table(page, "coverage-map")
    header, counties = county_map[0], county_map[1:]
    bcg = header.index("卡介苗")
    assert counties and all(len(row) == len(header) for row in counties)
    given = [row[bcg] for row in counties if row[bcg] != "—"]
    assert given and all(cell.endswith("%") for cell in given)
    assert any(cell != "0%" for cell in given)  # the one BCG on record shows in its county


def test_platform_shows_request_metrics_and_the_audit_verification(staff: Staff) -> None:
    staff.login("admin")
    staff.client.get("/v1/residents/nobody")  # a 4xx on the API (no token)
    page = staff.client.get("/admin/platform").text
    assert 'id="audit-ok"' in page
    routes = {row[0]: row for row in table(page, "routes")[1:]}
    assert "GET /v1/residents/{resident_id}" in routes
    row = routes["GET /v1/residents/{resident_id}"]
    assert row[1:4] == ["1", "1", "0"] and row[4].startswith("≤")
    assert "POST /staff/login" in routes
    (chart,) = svgs(page)
    assert "4xx" in chart.findtext(f"{SVG}desc", "")


def test_a_dashboard_in_english(staff: Staff) -> None:
    staff.login("ncms")
    staff.client.get("/portal/lang/en?next=/admin/ncms")
    page = staff.client.get("/admin/ncms").text
    assert '<html lang="en">' in page and "Fund spending by institution level" in page
    assert table(page, "by-level")[1][0] == "county"
