"""Self-service card issuance at the kiosk in a real browser (Chromium via Playwright, SQLite):
the resident types the ID number and name (the ID card reader's, in the demo) and chooses a PIN
twice on the kiosk's keypad; the errors land under their fields (the PINs differ, the name is
not the application's, no approved application); the card is made and dispensed into the slot;
then the resident logs in with the new card and its new PIN.  The PIN goes to the reader agent
only.  Screenshots ``kiosk-issue`` and ``kiosk-issue-done``."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from .agent_fixtures import console
from .conftest import allow_console_errors, screenshot
from .kiosk_fixtures import Kiosk, make_kiosk
from .platform_fixtures import Platform
from .selfservice_fixtures import APPLICANT, APPLICANT_NAME, NEW_PIN, SelfService, make_self_service

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def desk(platform: Platform, tmp_path: Path) -> SelfService:
    kiosk: Kiosk = make_kiosk(platform)
    return make_self_service(platform, kiosk, tmp_path / "tray")


def _pad(page: Page, pin: str) -> None:
    for digit in pin:
        page.locator(f".keypad button[data-digit='{digit}']").click()


def _fill(page: Page, id_number: str, name: str, pin: str, again: str) -> None:
    page.get_by_label("身份证号").fill(id_number)
    page.get_by_label("姓名").fill(name)
    page.get_by_label("设置卡密码").click()
    _pad(page, pin)  # six digits, then the keypad types into the second field
    _pad(page, again)


def test_issue_a_card_at_the_kiosk_then_log_in_with_it(
    platform: Platform, desk: SelfService, browser_page: Page
) -> None:
    page = browser_page
    allow_console_errors(page, "status of 422", "status of 404")
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if NEW_PIN in (r.post_data or "") else None)
    with console(platform, lambda url: desk.agent(platform, url)) as (base, agent):
        page.goto(f"{base}/kiosk/issue")
        expect(page.locator("h1")).to_have_text("自助领取居民健康卡")

        _fill(page, APPLICANT, APPLICANT_NAME, NEW_PIN, "975311")  # checked in the page
        page.get_by_role("button", name="领取新卡").click()
        expect(page.locator("#pin_again-error")).to_have_text("两次输入的密码不一致。")

        _fill(page, APPLICANT, "赵明", NEW_PIN, NEW_PIN)  # the platform: not the application's name
        page.get_by_role("button", name="领取新卡").click()
        expect(page.locator("#name-error")).to_contain_text("姓名与申请不一致")
        expect(page.get_by_label("姓名")).to_have_attribute("aria-invalid", "true")

        _fill(page, "11010519491231002X", APPLICANT_NAME, NEW_PIN, NEW_PIN)
        page.get_by_role("button", name="领取新卡").click()
        expect(page.locator("#id_number-error")).to_contain_text("没有此身份证号的已审批申请")

        _fill(page, APPLICANT, APPLICANT_NAME, NEW_PIN, NEW_PIN)
        screenshot(page, "kiosk-issue")
        page.get_by_role("button", name="领取新卡").click()
        done = page.locator("#issue-done")
        expect(done).to_be_visible()
        expect(done).to_contain_text(APPLICANT)
        screenshot(page, "kiosk-issue-done")

        # the new card is in the slot: log in with it and the PIN just chosen
        page.get_by_role("link", name="用新卡登录").click()
        expect(page).to_have_url(f"{base}/kiosk/pin")
        _pad(page, NEW_PIN)
        page.get_by_role("button", name="确认").click()
        expect(page).to_have_url(f"{base}/kiosk/menu")
        expect(page.locator("main h1")).to_contain_text(APPLICANT_NAME)
        agent_base = str(agent.base_url).rstrip("/")
    assert sent and all(url.startswith(agent_base) for url in sent), sent
