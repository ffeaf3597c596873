"""A resident's day at the township health centre, end to end over HTTP (a real uvicorn) on
SQLite and PostgreSQL — every part of issue 6 in the order a person meets it:

the bank tops up the co-branded health account → the resident books a slot on the portal → the
card is swiped at check-in (the visit opens for the booked doctor) → the doctor records the
diagnosis → the cashier shows the pre-settlement, then settles: the NCMS fund pays its share,
the self-pay part comes out of the health account → the terminal writes the visit, its fee
lines and payment method 03 (新农合) to the card, signed by its SAM → the resident sees the
settlement, the new balance on the statement, and the cashier in "who looked"."""

from __future__ import annotations

import httpx

from healthcard.clock import local_date
from healthcard.platform.access import Role
from healthcard.platform.settlement import ledger
from healthcard.terminal.platform import PlatformClient

from .platform_fixtures import CARD, HOSPITAL, Platform, insured_here, served
from .test_appointments_api import V1, schedule_by_http
from .test_visit_flow import login

BANK = "demo-bank"
#: the bill: 2 × 阿莫西林 (A, 8.50), 1 × 头孢克肟 (B, 26.80), 诊查费 (A, 5.00) = 48.80 yuan
BILL = [
    {"item": "YP0001", "quantity": 2, "unit_price_fen": 850},
    {"item": "YP0002", "quantity": 1, "unit_price_fen": 2680},
    {"item": "FW0001", "quantity": 1, "unit_price_fen": 500},
]
#: township outpatient inside the pool: deductible 0, ratio 50 %; B-class eligible at 90 %
ELIGIBLE = 1700 + 2412 + 500
FUND = ELIGIBLE // 2  # 2306 (exact: 4612 is even)
SELF = 4880 - FUND  # 2574


def test_a_resident_s_day_books_checks_in_settles_from_the_account_and_lands_on_the_card(
    platform: Platform,
) -> None:
    insured_here(platform, "township", staff=(("cashier-1", Role.CASHIER, HOSPITAL), (BANK, Role.BANK, None)))
    rid = platform.resident_id
    today = local_date(platform.clock)
    with (
        served(platform.app) as url,
        httpx.Client(base_url=url) as http,
        platform.terminal() as terminal,
        PlatformClient(url) as device,
    ):
        schedule_by_http(http, login(http, "admin"), today)
        me = login(http, CARD)

        # the health account, funded by the bank's notice
        opened = http.post(f"/v1/residents/{rid}/health-account", json={"bank": BANK}, headers=me)
        assert opened.status_code == 201, opened.text
        notice = {
            "bank_ref": "TOPUP-0001",
            "account_number": opened.json()["account_number"],
            "amount_fen": 10_000,
            "value_date": today.isoformat(),
        }
        bank = login(http, BANK)
        assert http.post(f"/v1/banks/{BANK}/notices", json=notice, headers=bank).status_code == 201
        assert http.post(f"/v1/banks/{BANK}/notices", json=notice, headers=bank).status_code == 200  # once

        # the portal: today's session, booked
        (session,) = http.get(
            f"{V1}/institutions/{HOSPITAL}/sessions", params={"last_day": today.isoformat()}, headers=me
        ).json()
        booked = http.post(f"{V1}/bookings", json={"session_id": session["id"]}, headers=me)
        assert booked.status_code == 201, booked.text

        # the card at the hospital's terminal: checked in, the visit open for the booked doctor
        device.login(terminal, platform.terminal_id)
        checked = device.check_in(CARD, platform.chip_serial)
        assert checked["booking"]["status"] == "CHECKED_IN"
        eid = checked["encounter_id"]
        doctor = login(http, "dr-wang")
        items = http.post(
            f"/v1/residents/{rid}/encounters/{eid}/items",
            json={"diagnoses": [{"code": "J06.9", "primary": True}]},
            headers=doctor,
        )
        assert items.status_code == 200, items.text

        # the cashier: the pre-settlement, then the settlement paid from the health account
        cashier = login(http, "cashier-1")
        bill = {"resident_id": rid, "encounter_id": eid, "lines": BILL, "paid_by": "account"}
        quote = http.post("/v1/settlements/pre-settlement", json=bill, headers=cashier)
        assert quote.status_code == 200, quote.text
        assert (quote.json()["total_fen"], quote.json()["fund_fen"], quote.json()["self_fen"]) == (
            4880,
            FUND,
            SELF,
        )
        key = {**cashier, "Idempotency-Key": f"bill-{eid}"}
        settled = http.post("/v1/settlements", json=bill, headers=key)
        assert settled.status_code == 201, settled.text
        figures = settled.json()
        assert (figures["level"], figures["inside_pool"], figures["eligible_fen"]) == (
            "township",
            True,
            ELIGIBLE,
        )
        assert (figures["fund_fen"], figures["self_fen"], figures["diagnosis_code"]) == (FUND, SELF, "J06.9")
        again = http.post("/v1/settlements", json=bill, headers=key)  # the cashier's retry
        assert again.status_code == 200 and again.json()["id"] == figures["id"]
        account = http.get(f"/v1/residents/{rid}/health-account", headers=me).json()
        assert account["balance_fen"] == 10_000 - SELF

        # the terminal writes the visit with its fee lines to the card, signed by its SAM
        values = http.get(f"/v1/residents/{rid}/encounters/{eid}/card-record", headers=doctor)
        assert values.status_code == 200, values.text
        slot = terminal.write_outpatient_record(values.json())
        on_card = terminal.read_outpatient(slot)
        assert [(f.category, f.code, f.amount_fen) for f in on_card.fees] == [
            ("西药费", "3", 1700 + 2680),
            ("诊疗费", "6", 500),
        ]
        assert on_card.total_fen == 4880
        assert on_card.payment_method is not None and on_card.payment_method.code == "03"
        assert terminal.verify_visit("ED", slot, today).kind == "sam"
        closed = http.post(
            f"/v1/residents/{rid}/encounters/{eid}/close", json={"card_slot": slot}, headers=doctor
        )
        assert closed.status_code == 200, closed.text
        assert sum(f["amount_fen"] for f in closed.json()["fees"]) == 4880  # closing kept the bill

        # the resident: the settlement, the statement, and who looked
        mine = http.get(f"/v1/residents/{rid}/settlements", headers=me)
        assert [(s["id"], s["fund_fen"], s["self_fen"]) for s in mine.json()] == [(figures["id"], FUND, SELF)]
        statement = http.get(f"/v1/residents/{rid}/health-account/statement", headers=me)
        assert statement.status_code == 200, statement.text
        assert [
            (x["amount_fen"], x["balance_fen"], x["counterparty"]) for x in statement.json()["lines"]
        ] == [
            (10_000, 10_000, ledger.bank(BANK)),
            (-SELF, 10_000 - SELF, ledger.cash(HOSPITAL)),
        ]
        looked = http.get(f"/v1/residents/{rid}/access-log", headers=me).json()
        assert ("cashier-1", HOSPITAL) in {(e["actor"], e["institution_code"]) for e in looked}

    with platform.app.db.uow() as uow:
        check = ledger.verify(uow)
        assert check.balanced, check
        assert ledger.balance(uow, ledger.receivable(HOSPITAL)) == FUND
        assert ledger.balance(uow, ledger.cash(HOSPITAL)) == SELF
