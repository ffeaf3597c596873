"""The card centre's pages (/admin/cards/…) and the resident's online report of a lost card
(/portal/card/lost, POST /v1/residents/{id}/card/lost) through HTTP, on SQLite and PostgreSQL:
who may open what (anonymous → the staff login, a clinician → 403, the platform admin only the
hot lists), the queue's approve / reject / issue forms with CSRF and field-named errors, a card
looked up by number and moved through lost / recovered / replaced / cancelled, the hot-list
versions, a process without a chip source — and every refusal leaves the database as it was."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from healthcard.api.app import create_app
from healthcard.issuance.chips import SimulatedChips
from healthcard.issuance.lifecycle import ApplicationStatus, CardStatus
from healthcard.web import i18n

from .carddesk_fixtures import applicant, card_admins, id_number
from .platform_fixtures import CARD, PASSWORD, Platform

PAGES = (
    "/admin/cards/applications",
    "/admin/cards/card",
    f"/admin/cards/card/{CARD}",
    "/admin/cards/hotlist",
)


@dataclass
class Site:
    platform: Platform
    client: TestClient
    tray: SimulatedChips

    def login(self, username: str, *, path: str = "/staff/login") -> None:
        self.client.cookies.clear()
        token = csrf_of(self.client.get(path).text)
        answer = self.client.post(path, data={"username": username, "password": PASSWORD, "csrf": token})
        assert answer.status_code == 200, answer.text[:500]

    def csrf(self, path: str) -> str:
        return csrf_of(self.client.get(path).text)

    def tables(self) -> dict[str, int]:
        """Rows per table, the audit log aside: a re-rendered page audits its own reads."""
        counts = self.platform.app.db.status().tables
        return {k: v for k, v in counts.items() if k not in ("audit_log", "audit_heads")}

    def submit(self, serial: int) -> str:
        return self.platform.app.cards.submit(
            "clerk-41", applicant(serial), collection_point="410102-01"
        ).number


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


@pytest.fixture
def site(platform: Platform) -> Iterator[Site]:
    card_admins(platform)
    tray = SimulatedChips()
    platform.app.chips = lambda: tray  # the node's card tray (HEALTHCARD_CARD_TRAY in a server)
    with TestClient(create_app(platform.app)) as client:
        yield Site(platform, client, tray)


# --- who may open what -----------------------------------------------------------------------------------
@pytest.mark.parametrize("path", PAGES)
def test_anonymous_goes_to_the_staff_login_and_a_clinician_gets_403(site: Site, path: str) -> None:
    answer = site.client.get(path, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/staff/login?next=")
    site.login("dr-wang")
    assert site.client.get(path).status_code == 403
    site.login("admin")  # the platform admin: the hot lists only (no one's application or card)
    assert site.client.get(path).status_code == (200 if path.endswith("hotlist") else 403)
    site.login("card-admin")
    assert site.client.get(path).status_code == 200


def test_the_index_lists_the_card_centre_pages(site: Site) -> None:
    site.login("card-admin")
    index = site.client.get("/admin").text
    for href in ("/admin/cards", *PAGES[:2], "/admin/cards/hotlist"):
        assert f'href="{href}"' in index
    site.login("admin")
    index = site.client.get("/admin").text
    assert 'href="/admin/cards/hotlist"' in index and 'href="/admin/cards/applications"' not in index


# --- the applications queue ----------------------------------------------------------------------------
def test_approve_reject_and_issue_from_the_queue(site: Site) -> None:
    first, second = site.submit(1), site.submit(2)
    site.login("card-admin")
    queue = site.client.get("/admin/cards/applications")
    assert first in queue.text and second in queue.text and "申领人1" in queue.text
    token = csrf_of(queue.text)
    before = site.tables()
    refused = site.client.post(f"/admin/cards/applications/{first}/approve", data={"status": "SUBMITTED"})
    assert refused.status_code == 403 and site.tables() == before  # no CSRF token: nothing runs
    done = site.client.post(
        f"/admin/cards/applications/{first}/approve", data={"csrf": token, "status": "SUBMITTED"}
    )
    assert done.url.path == "/admin/cards/applications" and "done=approved" in str(done.url)
    assert i18n.CATALOG["cc.done.approved"][0] in done.text
    assert site.platform.app.cards.application(first).status is ApplicationStatus.APPROVED
    # reject without a reason: the error under that row's field, nothing written
    before = site.tables()
    bad = site.client.post(f"/admin/cards/applications/{second}/reject", data={"csrf": token, "reason": " "})
    assert bad.status_code == 422 and site.tables() == before
    assert f'id="e-reason-{second}"' in bad.text and 'aria-invalid="true"' in bad.text
    rejected = site.client.post(
        f"/admin/cards/applications/{second}/reject",
        data={"csrf": token, "reason": "<b>photo</b> unreadable"},
    )
    assert rejected.status_code == 200
    assert site.platform.app.cards.application(second).status is ApplicationStatus.REJECTED
    shown = site.client.get("/admin/cards/applications?status=REJECTED").text
    assert "&lt;b&gt;photo&lt;/b&gt; unreadable" in shown and "<b>photo" not in shown
    # issue the approved one into the tray
    approved = site.client.get("/admin/cards/applications?status=APPROVED").text
    assert f'action="/admin/cards/applications/{first}/issue"' in approved
    issued = site.client.post(
        f"/admin/cards/applications/{first}/issue", data={"csrf": token, "status": "APPROVED"}
    )
    assert issued.status_code == 200 and i18n.CATALOG["cc.done.issued"][0] in issued.text
    card = site.platform.app.cards.card(id_number(1)).current
    assert card is not None and card.status is CardStatus.ISSUED
    assert bytes.fromhex(card.chip_serial) in site.tray.delivered
    # an unknown application, or one decided already: refused at the top, nothing written
    before = site.tables()
    again = site.client.post(f"/admin/cards/applications/{first}/approve", data={"csrf": token})
    assert again.status_code == 409 and 'id="e-_form"' in again.text
    missing = site.client.post("/admin/cards/applications/SQ41999999999999/approve", data={"csrf": token})
    assert missing.status_code == 404 and site.tables() == before


def test_the_queue_pages(site: Site) -> None:
    numbers = [site.submit(n) for n in range(10, 37)]  # 27 waiting: two pages of 25
    site.login("card-admin")
    first = site.client.get("/admin/cards/applications").text
    second = site.client.get("/admin/cards/applications?status=SUBMITTED&page=2").text
    assert sum(n in first for n in numbers) == 25 and sum(n in second for n in numbers) == 2
    assert "page=2" in first and i18n.CATALOG["apps.prev"][0] in second


def test_without_a_chip_source_the_page_says_so(site: Site) -> None:
    number = site.submit(3)
    site.platform.app.cards.approve("admin-41", number)
    site.platform.app.chips = None
    site.login("card-admin")
    page = site.client.get("/admin/cards/applications?status=APPROVED")
    assert page.status_code == 200 and 'id="no-chips"' in page.text
    assert f"/applications/{number}/issue" not in page.text
    before = site.tables()
    refused = site.client.post(f"/admin/cards/applications/{number}/issue", data={"csrf": csrf_of(page.text)})
    assert refused.status_code == 422 and "HEALTHCARD_CARD_TRAY" in refused.text and site.tables() == before
    assert 'id="no-chips"' in site.client.get(f"/admin/cards/card/{CARD}").text  # no replace either


# --- one card ------------------------------------------------------------------------------------------
def test_look_up_a_card_and_move_it_through_its_life(site: Site) -> None:
    site.login("card-admin")
    unknown = site.client.get(f"/admin/cards/card?card_number={id_number(99)}")
    assert unknown.status_code == 404 and 'id="e-card_number"' in unknown.text
    found = site.client.get(f"/admin/cards/card?card_number={CARD.lower()}", follow_redirects=False)
    assert found.status_code == 303 and found.headers["location"] == f"/admin/cards/card/{CARD}"
    page = site.client.get(f"/admin/cards/card/{CARD}")
    assert 'id="history-table"' in page.text and site.platform.chip_serial in page.text
    assert 'id="act-lost"' in page.text and 'id="act-recover"' not in page.text
    token = csrf_of(page.text)
    url = f"/admin/cards/card/{CARD}"
    before = site.tables()
    bad = site.client.post(f"{url}/lost", data={"csrf": token, "reason": ""})
    assert bad.status_code == 422 and 'id="e-reason-lost"' in bad.text and site.tables() == before
    lost = site.client.post(f"{url}/lost", data={"csrf": token, "reason": "lost at the market"})
    assert lost.url.path == url and i18n.CATALOG["cc.done.lost"][0] in lost.text
    assert site.platform.app.cards.hotlist_version("41") == 1
    assert 'id="act-recover"' in lost.text and 'id="act-lost"' not in lost.text
    before = site.tables()
    twice = site.client.post(f"{url}/lost", data={"csrf": token, "reason": "again"})
    assert twice.status_code == 409 and site.tables() == before
    site.client.post(f"{url}/recover", data={"csrf": token, "reason": "found"})
    replaced = site.client.post(f"{url}/replace", data={"csrf": token, "reason": "chip cracked"})
    assert i18n.CATALOG["cc.done.replaced"][0] in replaced.text
    current = site.platform.app.cards.card(CARD).current
    assert current is not None and current.chip_serial != site.platform.chip_serial
    history = re.search(r'<table id="history-table">.*?</table>', replaced.text, re.S)
    assert history and "card-admin" in history.group(0) and "replaced: SQ41" in history.group(0)
    cancelled = site.client.post(f"{url}/cancel", data={"csrf": token, "reason": "emigrated"})
    assert i18n.CATALOG["cc.done.cancelled"][0] in cancelled.text
    assert i18n.CATALOG["cc.no_action"][0] in cancelled.text
    hotlist = site.client.get("/admin/cards/hotlist").text
    versions = re.search(r'<table id="hotlist-table">.*?</table>', hotlist, re.S)
    assert versions and '<th scope="row">41</th>' in versions.group(0)
    assert f'href="/admin/cards/card/{CARD}"' in hotlist


# --- the resident reports their own card lost ---------------------------------------------------------
def test_a_resident_reports_their_card_lost_with_a_confirmation(site: Site) -> None:
    site.login(CARD, path="/portal/login")
    home = site.client.get("/portal").text
    assert 'href="/portal/card/lost"' in home
    confirm = site.client.get("/portal/card/lost")
    assert confirm.status_code == 200 and 'name="confirm"' in confirm.text and CARD in confirm.text
    token = csrf_of(confirm.text)
    before = site.tables()
    assert site.client.post("/portal/card/lost", data={"confirm": "yes"}).status_code == 403  # no CSRF
    unticked = site.client.post("/portal/card/lost", data={"csrf": token, "reason": "taxi"})
    assert unticked.status_code == 422 and 'id="e-confirm"' in unticked.text
    assert i18n.CATALOG["card.lost.need_confirm"][0] in unticked.text and site.tables() == before
    done = site.client.post("/portal/card/lost", data={"csrf": token, "confirm": "yes", "reason": "taxi"})
    assert done.url.path == "/portal" and i18n.CATALOG["done.lost"][0] in done.text
    assert i18n.CATALOG["card.status.LOST"][0] in done.text and 'id="card-replace"' in done.text
    assert 'href="/portal/card/lost"' not in done.text
    assert site.platform.app.cards.hotlist_version("41") == 1
    event = site.platform.app.cards.card(CARD).events[-1]
    assert (event.to_status, event.operator) == ("LOST", CARD)
    ehc = site.client.get("/portal/ehc").text  # the electronic card refuses a LOST card
    assert i18n.CATALOG["ehc.no_card"][0] in ehc and "<svg" not in ehc
    before = site.tables()
    twice = site.client.post("/portal/card/lost", data={"csrf": token, "confirm": "yes"})
    assert twice.status_code == 409 and site.tables() == before
    assert 'name="confirm"' not in site.client.get("/portal/card/lost").text


def test_the_api_reports_the_holders_card_lost(site: Site) -> None:
    def bearer(username: str) -> dict[str, str]:
        answer = site.client.post("/v1/auth/token", json={"username": username, "password": PASSWORD})
        return {"Authorization": f"Bearer {answer.json()['access_token']}"}

    me, rid = bearer(CARD), site.platform.resident_id
    assert site.client.get(f"/v1/residents/{rid}/card", headers=me).json()["status"] == "ACTIVE"
    clinician = site.client.post(f"/v1/residents/{rid}/card/lost", json={}, headers=bearer("dr-wang"))
    assert clinician.status_code == 403
    bad = site.client.post(f"/v1/residents/{rid}/card/lost", json={"reason": "x" * 201}, headers=me)
    assert bad.status_code == 422
    lost = site.client.post(f"/v1/residents/{rid}/card/lost", json={"reason": "stolen"}, headers=me)
    assert lost.status_code == 200 and lost.json()["status"] == "LOST"
    twice = site.client.post(f"/v1/residents/{rid}/card/lost", json={}, headers=me)
    assert twice.status_code == 409 and twice.json()["code"]
    assert site.client.get(f"/v1/residents/{rid}/card", headers=me).json()["status"] == "LOST"
