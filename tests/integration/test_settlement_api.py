"""Instant settlement over HTTP (a real uvicorn), on SQLite and PostgreSQL: the NCMS office enrols
张三, the clinician opens his admission, the cashier quotes and settles the bill exactly once
(the ``Idempotency-Key`` header), refunds a line, and the resident, the office and FHIR clients
read what happened — with the refusals answered as ``{code, message, field}``."""

from __future__ import annotations

import httpx
from sqlalchemy import update

from healthcard.api import fhir, fhir_claims
from healthcard.issuance.organisation import Organisation
from healthcard.platform.access import Role
from healthcard.platform.settlement import ledger
from healthcard.storage import tables as t

from .platform_fixtures import CARD, HOSPITAL, PASSWORD, Platform, served
from .test_visit_flow import login

OFFICE = "410122902"
#: 阑尾切除术 and four days' bed: 1,300 yuan at a county hospital, 300 deductible, 75 %
BILL = [
    {"item": "FW0501", "quantity": 1, "unit_price_fen": 120000},
    {"item": "FW0401", "quantity": 4, "unit_price_fen": 2500},
]


def _set_up(platform: Platform) -> None:
    """The hospital is a county hospital; the pool's office and two staff accounts; the card was
    swiped at the hospital (a presence grant)."""
    db, node = platform.app.db, platform.app.node
    Organisation(db).add_institution(
        OFFICE, name="中牟县新型农村合作医疗管理中心", area="410122", kind="ncms-office", issues=False
    )
    with db.uow() as uow:
        uow.session.execute(
            update(t.Institution).where(t.Institution.code == HOSPITAL).values(level="county")
        )
        for username, role, institution in (
            ("cashier", Role.CASHIER, HOSPITAL),
            ("ncms", Role.INSURER, OFFICE),
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
        uow.commit()


def test_settlement_over_http(platform: Platform) -> None:
    _set_up(platform)
    rid = platform.resident_id
    with served(platform.app) as url, httpx.Client(base_url=url) as http:
        office, cashier, doctor, resident = (login(http, who) for who in ("ncms", "cashier", "dr-wang", CARD))

        enrolled = http.post(
            "/v1/ncms/enrolments",
            headers=office,
            json={"resident_id": rid, "pool": "demo", "year": 2026, "premium_fen": 40000},
        )
        assert enrolled.status_code == 201, enrolled.text
        assert enrolled.json()["insured"] is True
        assert (
            http.post(
                "/v1/ncms/enrolments",
                headers=cashier,
                json={"resident_id": rid, "pool": "demo", "year": 2026, "premium_fen": 1},
            ).status_code
            == 403
        )

        opened = http.post(
            f"/v1/residents/{rid}/encounters",
            headers=doctor,
            json={"department": "普外科", "kind": "inpatient"},
        )
        assert opened.status_code == 201, opened.text
        body = {"resident_id": rid, "encounter_id": opened.json()["id"], "lines": BILL}

        quote = http.post("/v1/settlements/pre-settlement", headers=cashier, json=body)
        assert quote.status_code == 200, quote.text
        assert (quote.json()["fund_fen"], quote.json()["self_fen"]) == (75000, 55000)

        keyed = {**cashier, "Idempotency-Key": "ZY-2026-000001"}
        first = http.post("/v1/settlements", headers=keyed, json=body)
        assert first.status_code == 201, first.text
        sid = first.json()["id"]
        assert (first.json()["fund_fen"], first.json()["deductible_fen"], first.json()["level"]) == (
            75000,
            30000,
            "county",
        )
        again = http.post("/v1/settlements", headers=keyed, json=body)
        assert again.status_code == 200 and again.json() == first.json()

        # refusals: named, nothing written
        for bad_body, headers, status, field in (
            ({**body, "lines": BILL[:1]}, keyed, 409, "idempotency_key"),
            (
                {**body, "lines": [{"item": "NOPE", "quantity": 1, "unit_price_fen": 1}]},
                {**cashier, "Idempotency-Key": "b1"},
                422,
                "lines[0].item",
            ),
            (
                {**body, "lines": [{**BILL[0], "quantity": -1}]},
                {**cashier, "Idempotency-Key": "b2"},
                422,
                "lines[0].quantity",
            ),
            (
                {**body, "lines": [{**BILL[0], "unit_price_fen": 99}]},
                {**cashier, "Idempotency-Key": "b3"},
                422,
                "lines[0].unit_price_fen",
            ),
            (body, cashier, 422, "idempotency_key"),
            ({**body, "idempotency_key": "other"}, keyed, 422, "idempotency_key"),
            ({**body, "encounter_id": 999999}, {**cashier, "Idempotency-Key": "b4"}, 404, None),
        ):
            refused = http.post("/v1/settlements", headers=headers, json=bad_body)
            assert (refused.status_code, refused.json()["field"]) == (status, field), refused.text
        assert (
            http.post("/v1/settlements", headers={**doctor, "Idempotency-Key": "b5"}, json=body).status_code
            == 403
        )

        # who reads it
        assert http.get(f"/v1/settlements/{sid}", headers=resident).json()["id"] == sid
        assert http.get(f"/v1/settlements/{sid}", headers=office).status_code == 200
        assert http.get(f"/v1/settlements/{sid}", headers=doctor).status_code == 403
        mine = http.get(f"/v1/residents/{rid}/settlements", headers=resident)
        assert [s["id"] for s in mine.json()] == [sid]
        status = http.get(f"/v1/residents/{rid}/ncms", params={"year": 2026}, headers=resident).json()
        assert (status["fund_paid_fen"], status["admissions"]) == (75000, 1)

        # FHIR: the bill and the fund's answer
        claim = http.get(f"/fhir/Claim/{sid}", headers=cashier)
        assert claim.status_code == 200 and claim.headers["content-type"].startswith("application/fhir+json")
        assert fhir_claims.validate(claim.json())["total"] == {"value": 1300.0, "currency": "CNY"}
        answer = http.get(f"/fhir/ClaimResponse/{sid}", headers=cashier).json()
        fhir_claims.validate(answer)
        assert answer["payment"]["amount"]["value"] == 750.0
        found = http.get("/fhir/Claim", params={"patient": rid}, headers=resident).json()
        assert fhir.validate(found)["total"] == 1 and found["entry"][0]["resource"]["id"] == str(sid)

        # a day of the bed given back: the rest is settled anew
        refunded = http.post(
            f"/v1/settlements/{sid}/refund",
            headers={**cashier, "Idempotency-Key": "TF-1"},
            json={"lines": [{"item": "FW0401", "quantity": 1}]},
        )
        assert refunded.status_code == 201, refunded.text
        # (127500 − 30000) × 75 % = 73125
        assert refunded.json()["replacement"]["fund_fen"] == 73125
        assert refunded.json()["refund"]["fund_fen"] == -75000
        retried = http.post(
            f"/v1/settlements/{sid}/refund",
            headers={**cashier, "Idempotency-Key": "TF-1"},
            json={"lines": [{"item": "FW0401", "quantity": 1}]},
        )
        assert retried.status_code == 200 and retried.json() == refunded.json()
        too_much = http.post(
            f"/v1/settlements/{refunded.json()['replacement']['id']}/refund",
            headers={**cashier, "Idempotency-Key": "TF-2"},
            json={"lines": [{"item": "FW0401", "quantity": 4}]},
        )
        assert (too_much.status_code, too_much.json()["field"]) == (422, "lines[0].quantity")
        cancelled = http.get(f"/fhir/Claim/{sid}", headers=cashier).json()
        assert cancelled["status"] == "cancelled"

        board = http.get("/v1/ncms/pools/demo/dashboard", params={"year": 2026}, headers=office)
        assert board.status_code == 200, board.text
        assert board.json()["by_level"] == [
            {
                "key": "county",
                "settlements": 2,
                "refunds": 1,
                "total_fen": 127500,
                "fund_fen": 73125,
                "self_fen": 54375,
            }
        ]
        assert board.json()["fund_balance_fen"] == 40000 - 73125
        assert http.get("/v1/ncms/pools/demo/dashboard", headers=cashier).status_code == 403

    with platform.app.db.uow() as uow:
        assert ledger.verify(uow).balanced
