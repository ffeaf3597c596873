"""The resident portal in a real browser: Debian's Chromium driven by Playwright against the
platform served by a real uvicorn (SQLite — the pages call the same services the API tests run
on both databases).  A resident logs in, books a slot through the htmx steps, sees it, cancels
it; every page visited is saved as a screenshot (artifacts/screenshots, and the README's with
HEALTHCARD_UPDATE_SCREENSHOTS=1)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from .appointment_fixtures import make_clinic
from .conftest import screenshot
from .platform_fixtures import CARD, HOSPITAL, PASSWORD, Platform, served

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _settled(page: Page) -> None:
    """Wait until htmx has swapped in and wired up the answer to the last step (a person is
    slower than that; a test is not)."""
    page.wait_for_function("() => !document.querySelector('.htmx-request, .htmx-settling, .htmx-swapping')")


def _log_in(page: Page, base: str) -> None:
    page.goto(f"{base}/portal/login")
    screenshot(page, "portal-login")
    page.get_by_label(re.compile("身份证|证件|账号")).fill(CARD)
    page.locator("#f-password").fill(PASSWORD)
    page.locator("form button[type=submit]").click()
    expect(page).to_have_url(f"{base}/portal")


def test_a_resident_books_sees_and_cancels_an_appointment(platform: Platform, browser_page: Page) -> None:
    make_clinic(platform.app.node, HOSPITAL, level="county", username="dr-wang", days=3)
    page = browser_page
    with served(platform.app) as base:
        _log_in(page, base)
        expect(page.locator("main")).to_contain_text("张三")
        screenshot(page, "portal-home")

        page.goto(f"{base}/portal/appointments/new")
        page.locator("#f-institution").select_option(HOSPITAL)
        _settled(page)
        page.locator("#f-department").select_option("300")  # htmx brought the next step
        _settled(page)
        page.locator("#f-doctor").select_option(index=1)
        _settled(page)
        # the last session offered: days ahead, well before the cancellation cut-off
        page.locator("input[name=session_id]:not([disabled])").last.check()
        screenshot(page, "portal-book")
        page.get_by_role("button", name=re.compile("确认|预约")).click()
        expect(page).to_have_url(re.compile(r"/portal/appointments\?done=booked$"))
        booking = page.locator("ul.cards > li").first
        expect(booking).to_contain_text("王建华")
        screenshot(page, "portal-appointments")

        booking.get_by_role("button", name=re.compile("取消")).click()
        expect(page.locator("ul.cards > li").first.locator(".badge")).to_have_class(
            re.compile("status-cancelled")
        )

        for path, name in (
            ("/portal/archive", "portal-archive"),
            ("/portal/visits", "portal-visits"),
            ("/portal/vaccinations", "portal-vaccinations"),
            ("/portal/fees", "portal-fees"),
            ("/portal/privacy", "portal-privacy"),
            ("/portal/ehc", "portal-ehc"),
        ):
            answer = page.goto(base + path)
            assert answer is not None and answer.status == 200, path
            screenshot(page, name)


def test_the_language_switch_and_a_keyboard_only_login(platform: Platform, browser_page: Page) -> None:
    page = browser_page
    with served(platform.app) as base:
        page.goto(f"{base}/portal/login")
        assert page.locator("html").get_attribute("lang", timeout=2000) in ("zh", "zh-CN", "zh-Hans")
        page.goto(f"{base}/portal/lang/en?next=/portal/login")
        assert page.locator("html").get_attribute("lang") == "en"
        screenshot(page, "portal-login-en")
        # the whole form by keyboard: Tab to each field, Enter to send
        page.locator("#f-username").focus()
        page.keyboard.type(CARD)
        page.keyboard.press("Tab")
        page.keyboard.type(PASSWORD)
        page.keyboard.press("Enter")
        expect(page).to_have_url(f"{base}/portal")


def test_the_administrators_dashboards(platform: Platform, browser_page: Page) -> None:
    """The platform's operator logs in at the staff login and opens the dashboards; public health
    sees its area's coverage chart."""
    page = browser_page
    with served(platform.app) as base:
        for username, pages in (
            ("admin", (("/admin/platform", "admin-platform"), ("/admin/cards", "admin-cards"))),
            ("cdc-zz", (("/admin/coverage", "admin-coverage"),)),
        ):
            page.context.clear_cookies()
            page.goto(f"{base}/staff/login")
            page.locator("#f-username").fill(username)
            page.locator("#f-password").fill(PASSWORD)
            page.locator("form button[type=submit]").click()
            page.wait_for_url(re.compile(r"/admin"))
            for path, name in pages:
                answer = page.goto(base + path)
                assert answer is not None and answer.status == 200, path
                expect(page.locator("svg.chart").first).to_be_visible()
                screenshot(page, name)
