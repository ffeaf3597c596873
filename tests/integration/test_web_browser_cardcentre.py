"""The card centre's applications queue in a real browser (Debian's Chromium through Playwright,
SQLite): a card administrator logs in at the staff login, finds a submitted application in the
queue and approves it; the screenshot ``admin-applications`` is the queue before the click."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from healthcard.issuance.chips import SimulatedChips

from .carddesk_fixtures import applicant, card_admins
from .conftest import screenshot
from .platform_fixtures import PASSWORD, Platform, served

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_a_card_admin_approves_an_application_in_the_queue(platform: Platform, browser_page: Page) -> None:
    card_admins(platform)
    platform.app.chips = lambda: SimulatedChips()  # the node's card tray: the queue offers "issue"
    number = platform.app.cards.submit("clerk-41", applicant(1), collection_point="410102-01").number
    platform.app.cards.submit("clerk-41", applicant(2), collection_point="410102-01")
    page = browser_page
    with served(platform.app) as base:
        page.goto(f"{base}/admin/cards/applications")  # anonymous: the staff login, then back here
        page.locator("#f-username").fill("card-admin")
        page.locator("#f-password").fill(PASSWORD)
        page.locator("form button[type=submit]").click()
        expect(page).to_have_url(f"{base}/admin/cards/applications")
        row = page.locator(f"#app-{number}")
        expect(row).to_contain_text("申领人1")
        expect(row.locator(".badge")).to_have_class(re.compile("status-submitted"))
        screenshot(page, "admin-applications")

        row.get_by_role("button", name=re.compile("批准")).click()
        expect(page).to_have_url(re.compile(r"/admin/cards/applications\?status=SUBMITTED&done=approved$"))
        expect(page.locator(".alert.ok")).to_be_visible()
        expect(page.locator(f"#app-{number}")).to_have_count(0)  # no longer waiting

        page.goto(f"{base}/admin/cards/applications?status=APPROVED")
        expect(page.locator(f"#app-{number} .badge")).to_have_class(re.compile("status-approved"))
    assert platform.app.cards.application(number).status.value == "APPROVED"
