"""The kiosk's pages and the visit PDF through HTTP, on SQLite and PostgreSQL: the kiosk session
takes only a resident's token that a kiosk got with the card (not a password login's, not a
staff's), renders the portal's pages in the kiosk's layout, ends with 退卡 (or a lost token) on
the attract screen; the PDF of a visit holds the visit, and another resident's is 404."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pypdf
import pytest
from fastapi.testclient import TestClient

from healthcard.api.app import create_app
from healthcard.platform.access import Actor, Role
from healthcard.web import i18n
from healthcard.web import kiosk as kiosk_pages

from .kiosk_fixtures import KIOSK_CARD, KIOSK_NAME, Kiosk, make_kiosk
from .platform_fixtures import CARD, PASSWORD, Platform
from .test_web_portal import csrf_of


@dataclass
class Hall:
    platform: Platform
    kiosk: Kiosk
    client: TestClient

    def card_token(self) -> str:
        """What the kiosk's agent gets from ``POST /v1/auth/card`` after the card and its PIN."""
        node = self.platform.app.node
        with self.platform.app.db.uow() as uow:
            terminal = node.terminals.get(uow, self.kiosk.terminal_id).actor()
        serial = self.kiosk.chip_serial
        resident = node.card_login(terminal, card_number=KIOSK_CARD, chip_serial=serial)
        return str(self.client.app.state.tokens.issue(resident, node.clock.now()).access_token)  # type: ignore[attr-defined]

    def start(self, token: str) -> object:
        csrf = csrf_of_hidden(self.client.get("/kiosk/pin").text)
        return self.client.post("/kiosk/session", data={"token": token, "csrf": csrf}, follow_redirects=False)


def csrf_of_hidden(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


@pytest.fixture
def hall(platform: Platform) -> Iterator[Hall]:
    kiosk = make_kiosk(platform)
    with TestClient(create_app(platform.app)) as client:
        yield Hall(platform, kiosk, client)


def test_the_menu_is_the_portals_pages_in_both_languages() -> None:
    for key, href in kiosk_pages.MENU:
        assert key in i18n.CATALOG and href.startswith("/portal"), key


def test_the_attract_screen_and_the_pin_pad(hall: Hall) -> None:
    page = hall.client.get("/kiosk")
    assert page.status_code == 200 and "请插入居民健康卡" in page.text
    assert (
        'class="kiosk"' in page.text and "/static/kiosk.js" in page.text and "/static/agent.js" in page.text
    )
    assert hall.client.app.state.agent_url in page.headers["content-security-policy"]  # type: ignore[attr-defined]
    pad = hall.client.get("/kiosk/pin")
    assert pad.status_code == 200
    # the PIN field has a label and no name: a form that is not scripted sends no PIN anywhere
    assert '<label for="pin">' in pad.text
    field = re.search(r"<input id=\"pin\"[^>]*>", pad.text)
    assert field is not None and "name=" not in field.group(0)
    assert pad.text.count("data-digit=") == 10


def test_a_card_token_opens_a_kiosk_session_in_the_kiosk_layout(hall: Hall) -> None:
    answer = hall.start(hall.card_token())
    assert answer.status_code == 303 and answer.headers["location"] == "/kiosk/menu"  # type: ignore[attr-defined]
    menu = hall.client.get("/kiosk/menu")
    assert menu.status_code == 200 and f"{KIOSK_NAME}，您好" in menu.text
    for href in ("/portal/visits", "/portal/appointments/new", "/portal/privacy", "/portal/ehc"):
        assert f'href="{href}"' in menu.text
    visits = hall.client.get("/portal/visits")
    assert visits.status_code == 200
    assert 'class="kiosk"' in visits.text and 'data-kiosk-session="120"' in visits.text
    assert 'action="/kiosk/exit"' in visits.text and "/portal/logout" not in visits.text
    # 退卡: the session ends, the next resident gets the attract screen
    csrf = csrf_of(visits.text)
    out = hall.client.post("/kiosk/exit", data={"csrf": csrf}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/kiosk"
    again = hall.client.get("/portal/visits", follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == "/kiosk"


def test_only_a_residents_card_token_is_taken(hall: Hall) -> None:
    node = hall.platform.app.node
    tokens = hall.client.app.state.tokens  # type: ignore[attr-defined]
    password = tokens.issue(node.login(CARD, PASSWORD), node.clock.now()).access_token
    staff = tokens.issue(node.login("dr-wang", PASSWORD), node.clock.now()).access_token
    with hall.platform.app.db.uow() as uow:
        terminal = node.terminals.get(uow, hall.kiosk.terminal_id).actor()
    kiosk_itself = tokens.issue(terminal, node.clock.now()).access_token
    forged = Actor(KIOSK_CARD, Role.RESIDENT, resident_id=hall.kiosk.resident_id)
    for token in (
        password,
        staff,
        kiosk_itself,
        "not-a-token",
        tokens.issue(forged, node.clock.now()).access_token,
    ):
        answer = hall.start(token)
        assert answer.status_code == 403, token  # type: ignore[attr-defined]
        assert hall.client.get("/kiosk/menu", follow_redirects=False).status_code == 303
    # and no CSRF token: refused before anything
    refused = hall.client.post("/kiosk/session", data={"token": hall.card_token()}, follow_redirects=False)
    assert refused.status_code == 403


def test_the_visit_pdf_holds_the_visit_and_only_ones_own(hall: Hall) -> None:
    hall.start(hall.card_token())
    page = hall.client.get(f"/portal/visits/{hall.kiosk.visit_id}")
    assert f'href="/portal/visits/{hall.kiosk.visit_id}.pdf"' in page.text
    answer = hall.client.get(f"/portal/visits/{hall.kiosk.visit_id}.pdf")
    assert answer.status_code == 200, answer.text[:300]
    assert answer.headers["content-type"] == "application/pdf"
    assert answer.content.startswith(b"%PDF-")
    text = "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(answer.content)).pages)
    for expected in (
        "就诊记录",
        KIOSK_NAME,
        "郑州市中原区人民医院",
        "内科",
        "J06.9",
        "白细胞计数",
        "12.3",
        "23.50",
    ):
        assert expected in text, (expected, text)
    # the same visit is the same bytes (reportlab's invariant mode)
    assert hall.client.get(f"/portal/visits/{hall.kiosk.visit_id}.pdf").content == answer.content
    # 张三's visit (another resident) is not found, nor an id that does not exist
    mine = _visit_of_zhang(hall.platform)
    assert hall.client.get(f"/portal/visits/{mine}.pdf").status_code == 404
    assert hall.client.get("/portal/visits/999999.pdf").status_code == 404


def test_the_pdf_needs_a_login(hall: Hall) -> None:
    answer = hall.client.get(f"/portal/visits/{hall.kiosk.visit_id}.pdf", follow_redirects=False)
    assert answer.status_code == 303 and "/portal/login" in answer.headers["location"]


def _visit_of_zhang(platform: Platform) -> int:
    from .kiosk_fixtures import kiosk_visit

    with platform.app.db.uow() as uow:
        visit, _ = platform.app.node.records.record_encounter(
            uow, platform.resident_id, kiosk_visit("zhang-visit")
        )
        uow.commit()
    return visit.id
