"""The clinic console in a real browser (Debian's Chromium through Playwright) against the
platform and the workstation's local reader agent, both on real uvicorns (SQLite — the pages call
the same services the API tests run on both databases):

the doctor swipes the resident's simulated card at the console (the agent authenticates it with
the workstation's SAM and reports the swipe), sees the summary, opens the visit, finds the
diagnosis by typing "J06", adds a lab result and a prescription from the catalog; the cashier
swipes the same card, pre-settles the bill, settles it and writes the visit with its fees to the
card through the agent (which closes the visit); the resident then finds the visit, the fee and
both staff members in "who looked" on the portal."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from healthcard.storage import tables as t

from .agent_fixtures import console
from .conftest import allow_console_errors, screenshot
from .platform_fixtures import CARD, PASSWORD, Platform, insured_here

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _settled(page: Page) -> None:
    page.wait_for_function("() => !document.querySelector('.htmx-request, .htmx-settling, .htmx-swapping')")


def _staff_login(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/staff/login")
    page.locator("#f-username").fill(username)
    page.locator("#f-password").fill(PASSWORD)
    page.locator("form button[type=submit]").click()
    expect(page).to_have_url(f"{base}/clinic")


def _log_out(page: Page) -> None:
    page.locator("form.logout button").click()


def _swipe(page: Page, base: str, rid: str) -> None:
    expect(page.locator("#agent-status")).to_have_class("ready")  # the agent sees the card
    page.locator("#swipe").click()
    expect(page).to_have_url(f"{base}/clinic/patient/{rid}")


def _history(platform: Platform) -> None:
    """What the platform knew of the resident before today: blood type, two alerts, an allergy."""
    node = platform.app.node
    with platform.app.db.uow() as uow:
        rid = platform.resident_id
        node.records.put_archive(
            uow, rid, by="dr-zhao", abo=1, rh="1", alerts={"asthma": True, "diabetes": True}
        )
        node.records.add_allergy(
            uow, rid, allergen="青霉素", reaction="皮疹", severity="moderate", by="dr-zhao"
        )
        uow.commit()


def test_swipe_record_settle_write_then_the_resident_sees_it(platform: Platform, browser_page: Page) -> None:
    insured_here(platform, "township")
    _history(platform)
    rid = platform.resident_id
    page = browser_page
    allow_console_errors(page, "status of 422")  # the bad lab value below, refused on purpose
    with console(platform) as (base, agent):
        # --- the doctor ---------------------------------------------------------------------
        _staff_login(page, base, "dr-wang")
        screenshot(page, "clinic-desk")
        _swipe(page, base, rid)
        expect(page.locator("h1")).to_contain_text("张三")
        expect(page.locator("#photo")).to_be_visible()  # the chip's photo, from the swipe
        expect(page.locator("#allergies")).to_contain_text("青霉素")
        expect(page.locator("#blood")).to_contain_text("A")
        screenshot(page, "clinic-summary")

        page.locator("#f-department").fill("内科")
        page.get_by_role("button", name="接诊").click()
        expect(page).to_have_url(re.compile(rf"/clinic/patient/{rid}/visits/\d+\?done=opened$"))
        eid = int(page.url.split("/visits/")[1].split("?")[0])

        page.locator("#f-icd").fill("J06")
        _settled(page)
        page.locator("#icd-results button.hit", has_text="J06.9").click()
        expect(page.locator("section[aria-labelledby=dx]")).to_contain_text("J06.9")

        page.locator("#f-name").fill("白细胞计数")
        page.locator("#f-value").fill("12.5")
        page.locator("#f-unit").fill("10^9/L")
        page.locator("#f-low").fill("4")
        page.locator("#f-high").fill("10")
        page.locator("form[action$=labs] button[type=submit]").click()
        expect(page.locator("section[aria-labelledby=labs] tr.out")).to_contain_text("白细胞计数")

        page.locator("#f-drug_code").select_option("YP0001")
        page.locator("#f-dose").fill("0.5")
        page.locator("#f-dose_unit").fill("g")
        page.locator("#f-frequency").fill("tid")
        page.locator("#f-days").fill("3")
        page.locator("form[action$=prescriptions] button[type=submit]").click()
        expect(page.locator("section[aria-labelledby=rx]")).to_contain_text("阿莫西林")
        screenshot(page, "clinic-visit")

        # a bad value is refused next to its field, and nothing is added
        page.locator("#f-name").fill("血红蛋白")
        page.locator("#f-value").fill("135")
        page.locator("#f-low").fill("low")
        page.locator("form[action$=labs] button[type=submit]").click()
        expect(page.locator("#e-low")).to_be_visible()
        with platform.app.db.uow() as uow:
            assert uow.session.query(t.Observation).count() == 1
        _log_out(page)

        # --- the cashier --------------------------------------------------------------------
        _staff_login(page, base, "cashier-1")
        _swipe(page, base, rid)
        page.locator(f"a[href='/clinic/patient/{rid}/bill/{eid}']").click()
        page.locator("#f-item-0").select_option("YP0001")
        page.locator("#f-qty-0").fill("2")
        page.locator("#f-item-1").select_option("FW0001")
        page.locator("#f-qty-1").fill("1")
        page.get_by_role("button", name="试算").click()
        # 2 × 8.50 (A) + 5.00 (A) at a township: 50 % of 22.00
        expect(page.locator("#quote-fund")).to_have_text("¥11.00")
        expect(page.locator("#quote-self")).to_have_text("¥11.00")
        screenshot(page, "clinic-bill")
        page.get_by_role("button", name="确认结算").click()
        expect(page).to_have_url(re.compile(rf"/bill/{eid}\?done=settled$"))
        expect(page.locator("#fund")).to_have_text("¥11.00")

        page.locator("#write-card").click()
        expect(page.locator("#write")).to_contain_text("第 1 条")  # reloaded: the platform's slot
        screenshot(page, "clinic-written")
        visits = agent.post("/swipe", json={}).json()["card"]["recent_visits"]
        assert visits[0]["diagnoses"][0]["code"].startswith("J06")
        with platform.app.db.uow() as uow:
            encounter = uow.session.get(t.Encounter, eid)
            assert encounter is not None
            assert (encounter.status, encounter.card_slot) == ("closed", 1)
            assert sum(f["amount_fen"] for f in encounter.fees) == 2200
        _log_out(page)

    # --- the resident, at home ---------------------------------------------------------------
    with console(platform) as (base, _):
        page.goto(f"{base}/portal/login")
        page.locator("#f-username").fill(CARD)
        page.locator("#f-password").fill(PASSWORD)
        page.locator("form button[type=submit]").click()
        page.goto(f"{base}/portal/visits")
        expect(page.locator("main")).to_contain_text("内科")
        page.goto(f"{base}/portal/fees")
        expect(page.locator("main")).to_contain_text("11.00")
        page.goto(f"{base}/portal/privacy")
        looked = page.locator("section[aria-labelledby=who-title]")
        expect(looked).to_contain_text("dr-wang")
        expect(looked).to_contain_text("cashier-1")
        screenshot(page, "clinic-resident-who-looked")
