"""The health account over HTTP (a real uvicorn), on SQLite and PostgreSQL: the resident opens
the account and reads it, the bank logs in as itself and sends its notices (201 booked, 200 a
repeat, 409 a reused reference, 422 a withdrawal past the balance, each naming the field), the
cashier reads the balance of the patient at the window, and the admin reconciles the bank's file
of the day."""

from __future__ import annotations

from pathlib import Path

import httpx

from healthcard.platform.settlement import bank as bk
from healthcard.platform.settlement import ledger

from .platform_fixtures import CARD, Platform, served
from .test_health_account import BANK, make_setup
from .test_visit_flow import login


def test_the_health_account_over_http(platform: Platform, tmp_path: Path) -> None:
    s = make_setup(platform, tmp_path)
    rid = s.rid
    today = s.today.isoformat()
    with served(platform.app) as url, httpx.Client(base_url=url) as http:
        resident, bank, admin = login(http, CARD), login(http, BANK), login(http, "admin")
        account = f"/v1/residents/{rid}/health-account"

        # the resident opens the account; nobody else sees it without a tie
        opened = http.post(account, json={"bank": BANK}, headers=resident)
        assert opened.status_code == 201, opened.text
        number = opened.json()["account_number"]
        assert bk.check_account_number(number, BANK) == number and opened.json()["balance_fen"] == 0
        again = http.post(account, json={"bank": BANK}, headers=resident)
        assert (again.status_code, again.json()["field"]) == (409, "resident_id")
        unknown = http.post(account, json={"bank": "no-bank"}, headers=resident)
        assert (unknown.status_code, unknown.json()["field"]) == (422, "bank")
        assert http.get(account, headers=login(http, "cashier")).status_code == 403

        # the bank's top-up: booked once
        notice = {"bank_ref": "TOPUP-1", "account_number": number, "amount_fen": 50_000, "value_date": today}
        first = http.post(f"/v1/banks/{BANK}/notices", json=notice, headers=bank)
        assert first.status_code == 201, first.text
        assert first.json()["direction"] == "in" and "resident_id" not in first.json()
        repeat = http.post(f"/v1/banks/{BANK}/notices", json=notice, headers=bank)
        assert (repeat.status_code, repeat.json()) == (200, first.json())
        reused = http.post(f"/v1/banks/{BANK}/notices", json={**notice, "amount_fen": 1}, headers=bank)
        assert (reused.status_code, reused.json()["code"], reused.json()["field"]) == (
            409,
            "duplicate",
            "bank_ref",
        )
        # only the bank itself, and only for its own accounts
        assert http.post(f"/v1/banks/{BANK}/notices", json=notice, headers=resident).status_code == 403
        other = login(http, "demo-rural")
        assert http.post(f"/v1/banks/{BANK}/notices", json=notice, headers=other).status_code == 403
        assert http.post("/v1/banks/demo-rural/notices", json=notice, headers=other).status_code == 422
        float_amount = http.post(
            f"/v1/banks/{BANK}/notices", json={**notice, "amount_fen": 1.5}, headers=bank
        )
        assert (float_amount.status_code, float_amount.json()["field"]) == (422, "amount_fen")

        # a withdrawal past the balance is refused on amount_fen; within it, booked
        out = {**notice, "bank_ref": "OUT-1", "amount_fen": 50_001}
        too_much = http.post(f"/v1/banks/{BANK}/withdrawals", json=out, headers=bank)
        assert (too_much.status_code, too_much.json()["field"]) == (422, "amount_fen")
        paid = http.post(f"/v1/banks/{BANK}/withdrawals", json={**out, "amount_fen": 20_000}, headers=bank)
        assert paid.status_code == 201 and paid.json()["direction"] == "out"

        # the resident's balance and statement
        assert http.get(account, headers=resident).json()["balance_fen"] == 30_000
        statement = http.get(f"{account}/statement", params={"limit": 1}, headers=resident)
        assert statement.status_code == 200, statement.text
        page = statement.json()
        assert [line["balance_fen"] for line in page["lines"]] == [50_000] and page["next_after"]
        rest = http.get(f"{account}/statement", params={"after": page["next_after"]}, headers=resident).json()
        assert [(line["kind"], line["balance_fen"]) for line in rest["lines"]] == [("withdrawal", 30_000)]
        wrong = http.get(
            f"{account}/statement", params={"start": today, "end": "2026-01-01"}, headers=resident
        )
        assert (wrong.status_code, wrong.json()["field"]) == (422, "start")

        # the patient at the window: the cashier reads the balance
        s.swipe_at_hospital()
        assert http.get(account, headers=login(http, "cashier")).json()["balance_fen"] == 30_000

        # the day's reconciliation: the bank's file as the body
        text = bk.statement_text(
            BANK,
            s.today,
            [
                bk.Transfer(BANK, "TOPUP-1", bk.Direction.IN, number, 50_000, s.today),
                bk.Transfer(BANK, "OUT-1", bk.Direction.OUT, number, 20_000, s.today),
            ],
        )
        route = f"/v1/banks/{BANK}/reconciliation"
        clean = http.post(route, params={"date": today}, content=text.encode(), headers=admin)
        assert clean.status_code == 200, clean.text
        assert clean.json()["clean"] is True and clean.json()["ledger"] == clean.json()["statement"]
        doubled = text + text.splitlines()[-1] + "\n"
        dirty = http.post(route, params={"date": today}, content=doubled.encode(), headers=bank).json()
        assert [(m["kind"], m["bank_ref"], m["line"]) for m in dirty["mismatches"]] == [
            ("duplicate", "OUT-1", 5)
        ]
        assert (
            http.post(route, params={"date": today}, content=text.encode(), headers=resident).status_code
            == 403
        )
        broken = http.post(route, params={"date": today}, content=b"\xff\xfe", headers=admin)
        assert (broken.status_code, broken.json()["field"]) == (422, "statement")
        bad_line = http.post(
            route, params={"date": today}, content=text.replace("500.00", "5e2"), headers=admin
        )
        assert (bad_line.status_code, bad_line.json()["field"]) == (422, "statement[3].amount")

        # frozen by the resident: the bank's next top-up is refused
        frozen = http.put(f"{account}/status", json={"status": "FROZEN"}, headers=resident)
        assert frozen.status_code == 200 and frozen.json()["status"] == "FROZEN"
        late = {**notice, "bank_ref": "TOPUP-2"}
        assert http.post(f"/v1/banks/{BANK}/notices", json=late, headers=bank).status_code == 409
    with platform.app.db.uow() as uow:
        assert ledger.verify(uow).balanced
        assert ledger.balance(uow, ledger.health(rid)) == 30_000
