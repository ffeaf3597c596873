"""FHIR R4 views of an NCMS settlement: the bill as a **Claim** (what the institution asked the
fund for, line by line) and the fund's answer as a **ClaimResponse** (adjudicated totals: the
bill, its eligible part, the deductible, what the fund pays and what the resident pays).

Built like :mod:`healthcard.api.fhir`: plain dicts, validated by the ``fhir.resources.R4B``
models (a mapper that builds an invalid resource fails loudly — a bug, never user input).
Amounts are yuan (``Money.value``, currency CNY) made exactly from the integer fen.

Mapping choices:

* ``Claim.type``: ``institutional`` for an admission, ``professional`` for an outpatient or
  emergency visit (HL7 claim-type); ``use`` is always ``claim`` (a pre-settlement is not kept);
* a refund row is a Claim of its own, ``related`` to the settlement it reverses
  (relationship ``prior``), with negative quantities and amounts; a refunded settlement's
  Claim and ClaimResponse are ``cancelled``;
* the NCMS pool is the insurer and the coverage (display references: no Coverage or
  Organization resources are served); the catalog item is ``productOrService`` in a code system
  per pool and year; the fee category (CV07.10.001 as :mod:`~healthcard.platform.settlement.fees`
  writes it) is the item's ``category``;
* ClaimResponse totals use the HL7 adjudication categories ``submitted``, ``eligible``,
  ``deductible``, ``benefit`` (the fund) and ``copay`` (the resident); the ratio is the
  ``eligpercent`` adjudication of every item; ``payment`` is the fund's share.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from fhir.resources.R4B.claim import Claim
from fhir.resources.R4B.claimresponse import ClaimResponse
from fhir_core.fhirabstractmodel import FHIRAbstractModel

from healthcard.api.fhir import ICD10_SYSTEM, LOCAL_BASE, _instant, _organization, _ref, _validated
from healthcard.clock import SHANGHAI
from healthcard.platform.settlement.fees import CATEGORIES
from healthcard.platform.settlement.service import SettlementView

JSON = dict[str, Any]
_HL7 = "http://terminology.hl7.org/CodeSystem"
CATALOG_SYSTEM = f"{LOCAL_BASE}/CodeSystem/ncms-catalog"  # + /<pool>-<year>
FEE_CATEGORY_SYSTEM = f"{LOCAL_BASE}/CodeSystem/fee-category"  # CV07.10.001 as written here
POOL_SYSTEM = f"{LOCAL_BASE}/sid/ncms-pool"
SETTLEMENT_SYSTEM = f"{LOCAL_BASE}/sid/settlement"  # + /<institution>: the idempotency key


def money(fen: int) -> JSON:
    """fen → Money in yuan, exact (Decimal)."""
    return {"value": Decimal(fen).scaleb(-2), "currency": "CNY"}


def _coding(system: str, code: str, display: str | None = None) -> JSON:
    return {"coding": [{"system": system, "code": code, "display": display}]}


def _type(view: SettlementView) -> JSON:
    code = "institutional" if view.visit == "inpatient" else "professional"
    return _coding(f"{_HL7}/claim-type", code)


def _status(view: SettlementView) -> str:
    return "cancelled" if view.status == "REVERSED" else "active"


def _pool(view: SettlementView) -> JSON:
    return {
        "identifier": {"system": POOL_SYSTEM, "value": view.pool},
        "display": f"新农合 {view.pool} 统筹区",
    }


def claim(view: SettlementView, institution_name: str | None = None) -> JSON:
    """A settlement (or a refund) as a Claim; id = the settlement id."""
    provider = _organization(view.institution_code, institution_name)
    d: JSON = {
        "resourceType": "Claim",
        "id": str(view.id),
        "identifier": [
            {"system": f"{SETTLEMENT_SYSTEM}/{view.institution_code}", "value": view.idempotency_key}
        ],
        "status": _status(view),
        "type": _type(view),
        "use": "claim",
        "patient": _ref("Patient", view.resident_id),
        "created": _instant(view.settled_at),
        "insurer": _pool(view),
        "provider": provider,
        "priority": _coding(f"{_HL7}/processpriority", "normal"),
        "related": [
            {
                "claim": _ref("Claim", str(view.reverses_id)),
                "relationship": _coding(f"{_HL7}/related-claim-relationship", "prior"),
            }
        ]
        if view.reverses_id
        else [],
        "referral": {"display": f"转诊 {view.referred_by}"} if view.referred_by else None,
        "insurance": [
            {
                "sequence": 1,
                "focal": True,
                "coverage": {
                    "identifier": {"system": POOL_SYSTEM, "value": f"{view.pool}-{view.year}"},
                    "display": f"新农合 {view.pool} {view.year}",
                },
            }
        ],
        "diagnosis": [
            {
                "sequence": 1,
                "diagnosisCodeableConcept": _coding(ICD10_SYSTEM, view.diagnosis_code),
                "type": [_coding(f"{_HL7}/ex-diagnosistype", "principal")],
            }
        ]
        if view.diagnosis_code
        else [],
        "item": [
            {
                "sequence": line.seq,
                "category": _coding(
                    FEE_CATEGORY_SYSTEM, line.fee_category, CATEGORIES.get(line.fee_category)
                ),
                "productOrService": {
                    **_coding(f"{CATALOG_SYSTEM}/{view.pool}-{view.year}", line.item, line.name),
                    "text": line.name,
                },
                "quantity": {"value": line.quantity},
                "unitPrice": money(line.unit_price_fen),
                "net": money(line.amount_fen),
                "encounter": [_ref("Encounter", str(view.encounter_id))],
            }
            for line in view.lines
        ],
        "total": money(view.total_fen),
    }
    return _validated(Claim, d)


def _adjudication(category: str, fen: int) -> JSON:
    return {"category": _coding(f"{_HL7}/adjudication", category), "amount": money(fen)}


def claim_response(view: SettlementView, institution_name: str | None = None) -> JSON:
    """The fund's adjudication of a settlement as a ClaimResponse; id = the settlement id."""
    ratio = {"category": _coding(f"{_HL7}/adjudication", "eligpercent"), "value": Decimal(view.ratio_percent)}
    notes = [f"报销比例 {view.ratio_percent}%"]
    if view.capped:
        notes.append("已达封顶线 (an annual cap limited the fund's share)")
    if not view.inside_pool:
        notes.append("统筹区外就医 (outside the pool)")
    d: JSON = {
        "resourceType": "ClaimResponse",
        "id": str(view.id),
        "status": _status(view),
        "type": _type(view),
        "use": "claim",
        "patient": _ref("Patient", view.resident_id),
        "created": _instant(view.settled_at),
        "insurer": _pool(view),
        "requestor": _organization(view.institution_code, institution_name),
        "request": _ref("Claim", str(view.id)),
        "outcome": "complete",
        "disposition": "新农合即时结算" if view.kind == "settlement" else "新农合退费",
        "item": [
            {"itemSequence": line.seq, "adjudication": [_adjudication("submitted", line.amount_fen), ratio]}
            for line in view.lines
        ],
        "total": [
            _adjudication("submitted", view.total_fen),
            _adjudication("eligible", view.eligible_fen),
            _adjudication("deductible", view.deductible_fen),
            _adjudication("benefit", view.fund_fen),
            _adjudication("copay", view.self_fen),
        ],
        "payment": {
            "type": _coding(f"{_HL7}/ex-paymenttype", "complete"),
            "date": view.settled_at.astimezone(SHANGHAI).date().isoformat(),
            "amount": money(view.fund_fen),
        },
        "processNote": [
            {"number": n, "type": "display", "text": text} for n, text in enumerate(notes, start=1)
        ],
    }
    return _validated(ClaimResponse, d)


def validate(resource: Mapping[str, Any]) -> JSON:
    """Validate a Claim or ClaimResponse with its R4B model (``pydantic.ValidationError`` if not)."""
    models: dict[str, type[FHIRAbstractModel]] = {"Claim": Claim, "ClaimResponse": ClaimResponse}
    model = models.get(str(resource.get("resourceType")))
    if model is None:
        raise ValueError(f"not a Claim or ClaimResponse: {resource.get('resourceType')!r}")
    return _validated(model, resource)


__all__ = [
    "CATALOG_SYSTEM",
    "FEE_CATEGORY_SYSTEM",
    "POOL_SYSTEM",
    "claim",
    "claim_response",
    "money",
    "validate",
]
