"""The FHIR R4 views of a settlement: a Claim (the bill, line by line) and a ClaimResponse (the
fund's adjudication), validated by the fhir.resources R4B models — also for a refund (a Claim
related to the one it reverses) and a refunded settlement (cancelled)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest
from pydantic import ValidationError

from healthcard.api import fhir_claims
from healthcard.platform.settlement.service import LineView, SettlementView

AT = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)
WORKED = SettlementView(
    id=41,
    kind="settlement",
    status="SETTLED",
    reverses_id=None,
    reversed_by=None,
    idempotency_key="ZY-2026-000041",
    resident_id="R-ZHANG",
    encounter_id=7,
    institution_code="410122101",
    level="township",
    visit="inpatient",
    inside_pool=True,
    referral=False,
    referred_by=None,
    pool="demo",
    year=2026,
    policy_version=1,
    total_fen=200000,
    eligible_fen=200000,
    deductible_fen=10000,
    ratio_percent=90,
    fund_fen=171000,
    self_fen=29000,
    village_eligible_fen=0,
    capped=False,
    paid_by="cash",
    diagnosis_code="O82.0",
    review=None,
    cashier="cashier",
    settled_at=AT,
    txn_id=3,
    lines=(
        LineView(1, "FW0502", "剖宫产术", "A", "6", 1, 180000, 180000),
        LineView(2, "FW0401", "普通病房床位费", "A", "6", 8, 2500, 20000),
    ),
)


def test_a_settlement_is_a_claim() -> None:
    claim = fhir_claims.claim(WORKED, "韩寺镇卫生院")
    assert fhir_claims.validate(claim) == claim
    assert (claim["resourceType"], claim["id"], claim["status"], claim["use"]) == (
        "Claim",
        "41",
        "active",
        "claim",
    )
    assert claim["type"]["coding"][0]["code"] == "institutional"
    assert claim["patient"] == {"reference": "Patient/R-ZHANG"}
    assert claim["provider"]["display"] == "韩寺镇卫生院"
    assert claim["created"] == "2026-03-02T10:00:00+08:00"
    assert claim["total"] == {"value": 2000.0, "currency": "CNY"}
    assert claim["diagnosis"][0]["diagnosisCodeableConcept"]["coding"][0]["code"] == "O82.0"
    items = claim["item"]
    assert [(i["productOrService"]["coding"][0]["code"], i["quantity"]["value"]) for i in items] == [
        ("FW0502", 1),
        ("FW0401", 8),
    ]
    assert items[1]["net"]["value"] == 200.0 and items[1]["category"]["coding"][0]["display"] == "诊疗费"


def test_the_fund_s_answer_is_a_claim_response() -> None:
    answer = fhir_claims.claim_response(WORKED, "韩寺镇卫生院")
    assert fhir_claims.validate(answer) == answer
    totals = {t["category"]["coding"][0]["code"]: t["amount"]["value"] for t in answer["total"]}
    assert totals == {
        "submitted": 2000.0,
        "eligible": 2000.0,
        "deductible": 100.0,
        "benefit": 1710.0,
        "copay": 290.0,
    }
    assert answer["payment"]["amount"]["value"] == 1710.0 and answer["payment"]["date"] == "2026-03-02"
    assert answer["request"] == {"reference": "Claim/41"} and answer["outcome"] == "complete"
    assert answer["item"][0]["adjudication"][1]["value"] == 90


def test_a_refund_and_the_refunded_settlement() -> None:
    refund = dataclasses.replace(
        WORKED,
        id=42,
        kind="refund",
        reverses_id=41,
        total_fen=-200000,
        fund_fen=-171000,
        self_fen=-29000,
        lines=tuple(
            dataclasses.replace(line, quantity=-line.quantity, amount_fen=-line.amount_fen)
            for line in WORKED.lines
        ),
    )
    claim = fhir_claims.claim(refund)
    assert claim["related"][0]["claim"] == {"reference": "Claim/41"}
    assert claim["total"]["value"] == -2000.0 and claim["item"][0]["quantity"]["value"] == -1
    assert fhir_claims.claim_response(refund)["disposition"] == "新农合退费"
    reversed_ = dataclasses.replace(WORKED, status="REVERSED", reversed_by=42, visit="outpatient")
    assert fhir_claims.claim(reversed_)["status"] == "cancelled"
    assert fhir_claims.claim(reversed_)["type"]["coding"][0]["code"] == "professional"
    assert fhir_claims.claim_response(reversed_)["status"] == "cancelled"


def test_money_is_exact_and_a_broken_resource_is_refused() -> None:
    assert fhir_claims.money(7) == {"value": Decimal("0.07"), "currency": "CNY"}
    assert fhir_claims.money(171000)["value"] == Decimal("1710.00")
    claim = fhir_claims.claim(WORKED)
    with pytest.raises(ValidationError):
        fhir_claims.validate({**claim, "status": 5})
    with pytest.raises(ValueError):
        fhir_claims.validate({"resourceType": "Patient"})
