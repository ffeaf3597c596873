"""The self-service kiosk in a real browser: Debian's Chromium driven by Playwright against the
platform and the kiosk's reader agent, each on a real uvicorn and knowing the other (SQLite).
The resident inserts the card (the simulated slot), enters the PIN on the pad — it goes to the
agent, never to the platform — gets the resident's menu of portal pages in the kiosk's layout,
opens a visit and prints it as PDF, and leaves with 退卡 or by pulling the card; three wrong
PINs lock the card for good; the PIN pad works by keyboard alone.  Every page is saved as a
screenshot (artifacts/screenshots; kiosk-menu also in the README's with
HEALTHCARD_UPDATE_SCREENSHOTS=1)."""

from __future__ import annotations

import datetime as dt
import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from .agent_fixtures import console
from .appointment_fixtures import make_clinic
from .conftest import allow_console_errors, screenshot
from .kiosk_fixtures import KIOSK_NAME, PIN, WRONG_PIN, Kiosk, make_kiosk
from .platform_fixtures import HOSPITAL, Platform

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def kiosk(platform: Platform) -> Kiosk:
    return make_kiosk(platform)


def _pad(page: Page, pin: str) -> None:
    for digit in pin:
        page.locator(f".keypad button[data-digit='{digit}']").click()


def _menu_by_card(page: Page, base: str, agent: httpx.Client) -> None:
    """Card out, the attract screen; card in, the PIN pad; the PIN on the pad, the menu."""
    agent.post("/remove", json={})
    page.goto(f"{base}/kiosk")
    expect(page.locator("h1")).to_have_text("请插入居民健康卡")
    screenshot(page, "kiosk-attract")
    agent.post("/insert", json={})
    expect(page).to_have_url(f"{base}/kiosk/pin")  # kiosk.js saw the card through the agent
    _pad(page, PIN)
    screenshot(page, "kiosk-pin")
    page.get_by_role("button", name="确认").click()
    expect(page).to_have_url(f"{base}/kiosk/menu")


def test_card_pin_menu_visit_and_its_pdf(platform: Platform, kiosk: Kiosk, browser_page: Page) -> None:
    make_clinic(platform.app.node, HOSPITAL, level="county", username="dr-wang", days=3)
    page = browser_page
    pins: list[str] = []
    page.on(
        "request", lambda r: pins.append(r.url + (r.post_data or "")) if PIN in (r.post_data or "") else None
    )
    with console(platform, lambda url: kiosk.agent(platform, url)) as (base, agent):
        _menu_by_card(page, base, agent)
        expect(page.locator("main h1")).to_contain_text(KIOSK_NAME)
        screenshot(page, "kiosk-menu")
        # the PIN went to the agent alone
        assert pins and all(url.startswith(str(agent.base_url).rstrip("/")) for url in pins), pins

        page.get_by_role("link", name="就诊记录").click()
        expect(page).to_have_url(f"{base}/portal/visits")
        expect(page.locator("body")).to_have_class(re.compile("kiosk"))
        screenshot(page, "kiosk-visits")
        page.locator(f"a[href='/portal/visits/{kiosk.visit_id}']").first.click()
        expect(page.locator("main")).to_contain_text("白细胞计数")
        screenshot(page, "kiosk-visit")
        link = page.get_by_role("link", name=re.compile("打印"))
        href = link.get_attribute("href")
        assert href == f"/portal/visits/{kiosk.visit_id}.pdf"
        printed = page.request.get(base + href)  # the browser's own cookies: the kiosk session
        assert printed.status == 200 and printed.headers["content-type"] == "application/pdf"
        assert printed.body().startswith(b"%PDF-")

        for path, name in (
            ("/portal", "kiosk-home"),
            ("/portal/appointments/new", "kiosk-book"),
            ("/portal/appointments", "kiosk-appointments"),
            ("/portal/vaccinations", "kiosk-vaccinations"),
            ("/portal/fees", "kiosk-fees"),
            ("/portal/archive", "kiosk-archive"),
            ("/portal/privacy", "kiosk-privacy"),
            ("/portal/ehc", "kiosk-ehc"),
        ):
            answer = page.goto(base + path)
            assert answer is not None and answer.status == 200, path
            expect(page.get_by_role("button", name="退卡")).to_be_visible()
            screenshot(page, name)

        # 退卡 ends the session: the attract screen, and the pages need the card again
        page.get_by_role("button", name="退卡").click()
        expect(page).to_have_url(re.compile(r"/kiosk(/pin)?$"))
        answer = page.goto(f"{base}/portal/visits")
        assert answer is not None
        expect(page).to_have_url(re.compile(r"/kiosk(/pin)?$"))

        # pulling the card out ends a session too
        _menu_by_card(page, base, agent)
        agent.post("/remove", json={})
        expect(page).to_have_url(f"{base}/kiosk", timeout=10_000)
        expect(page.locator("h1")).to_have_text("请插入居民健康卡")


def test_three_wrong_pins_lock_the_card(platform: Platform, kiosk: Kiosk, browser_page: Page) -> None:
    page = browser_page
    allow_console_errors(page, "status of 422", "status of 423")
    with console(platform, lambda url: kiosk.agent(platform, url)) as (base, agent):
        page.goto(f"{base}/kiosk/pin")
        message = page.locator("#pin-message")
        for left in ("2", "1"):
            _pad(page, WRONG_PIN)
            page.get_by_role("button", name="确认").click()
            expect(message).to_contain_text(f"还可以再试 {left} 次")
        screenshot(page, "kiosk-pin-wrong")
        _pad(page, WRONG_PIN)
        page.get_by_role("button", name="确认").click()
        locked = page.locator("#pin-locked")
        expect(locked).to_be_visible()
        expect(locked).to_contain_text("卡已锁定")
        expect(locked).to_contain_text("服务台")
        expect(page.locator("#pin-entry")).to_be_hidden()
        screenshot(page, "kiosk-locked")
        # the card itself is blocked: the right PIN is refused now
        fourth = agent.post("/login", json={"pin": PIN})
        assert fourth.status_code == 423 and fourth.json()["code"] == "pin-blocked"


def test_too_many_pins_at_one_reader_are_told_how_long_to_wait(
    platform: Platform, kiosk: Kiosk, browser_page: Page
) -> None:
    """The agent's own limit on PIN submissions per reader (here 1 a minute): the pad says how
    many seconds to wait, not a code; the refused try never reaches the card."""
    page = browser_page
    allow_console_errors(page, "status of 422", "status of 429")
    with console(platform, lambda url: kiosk.agent(platform, url, pin_limit=(1, 60))) as (base, agent):
        page.goto(f"{base}/kiosk/pin")
        message = page.locator("#pin-message")
        _pad(page, WRONG_PIN)
        page.get_by_role("button", name="确认").click()
        expect(message).to_contain_text("还可以再试 2 次")
        _pad(page, WRONG_PIN)
        page.get_by_role("button", name="确认").click()
        expect(message).to_contain_text("尝试次数过多，请在 60 秒后再试")
        expect(page).to_have_url(f"{base}/kiosk/pin")
        screenshot(page, "kiosk-pin-too-many")
        # the refused try never reached the card: a minute later a wrong PIN leaves one try, not none
        platform.clock.advance(dt.timedelta(seconds=61))
        _pad(page, WRONG_PIN)
        page.get_by_role("button", name="确认").click()
        expect(message).to_contain_text("还可以再试 1 次")
        platform.clock.advance(dt.timedelta(seconds=61))
        _pad(page, PIN)
        page.get_by_role("button", name="确认").click()
        expect(page).to_have_url(f"{base}/kiosk/menu")
        agent.post("/remove", json={})
        page.goto("about:blank")  # no page left polling the agent as it stops


def test_the_pin_pad_and_the_menu_by_keyboard_alone(
    platform: Platform, kiosk: Kiosk, browser_page: Page
) -> None:
    page = browser_page
    with console(platform, lambda url: kiosk.agent(platform, url)) as (base, _agent):
        page.goto(f"{base}/kiosk/pin")
        pin_field = page.locator("#pin")
        expect(pin_field).to_be_focused()  # autofocus: the resident types at once
        page.keyboard.type(PIN[:-1] + "9")
        page.keyboard.press("Backspace")
        page.keyboard.type(PIN[-1])
        # Tab reaches the keypad, its buttons are real buttons (Space/Enter); back to the field
        page.keyboard.press("Tab")
        expect(page.locator(".keypad button").first).to_be_focused()
        page.keyboard.press("Shift+Tab")
        expect(pin_field).to_be_focused()
        page.keyboard.press("Enter")
        expect(page).to_have_url(f"{base}/kiosk/menu")
        for _ in range(30):  # Tab through the page to the visits tile
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.getAttribute('href')") == "/portal/visits":
                break
        else:
            pytest.fail("Tab never reached the visits tile")
        page.keyboard.press("Enter")
        expect(page).to_have_url(f"{base}/portal/visits")
