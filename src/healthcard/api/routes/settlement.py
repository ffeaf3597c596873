"""NCMS instant settlement (新农合即时结算): the cashier's pre-settlement, settlement and refund,
the resident's settlements and insured status, the NCMS office's enrolments and dashboard, and
the FHIR Claim / ClaimResponse views.  Every route calls the node's settlement desk
(``node.settlement``), which asks the access policy (or checks the office) and audits.

A settlement and a refund are made once per **idempotency key** — the ``Idempotency-Key``
header, or ``idempotency_key`` in the body (the same value if both): the first call answers
201, a retry of the same request 200 with the first result (nothing moves twice), the same key
with another request 409 on ``idempotency_key``."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import Field

from healthcard.api import fhir, fhir_claims
from healthcard.api.deps import ActorDep, CountQuery, KeyHeader, NodeDep, PatientQuery
from healthcard.api.schemas import Strict
from healthcard.errors import InvalidValue
from healthcard.platform.settlement.office import Dashboard
from healthcard.platform.settlement.service import (
    Bill,
    Insured,
    LineIn,
    Quote,
    Refunded,
    Returned,
    SettlementView,
)

router = APIRouter(tags=["settlement"])

FHIR_JSON = "application/fhir+json"
ResidentId = Annotated[str, Path(pattern=r"^[0-9A-Za-z_-]{1,32}$", description="the resident id")]
SettlementId = Annotated[int, Path(ge=1, le=2**62, description="the settlement id")]
Key = Annotated[str | None, Field(default=None, min_length=1, max_length=64)]


class LineBody(Strict):
    item: Annotated[str, Field(min_length=1, max_length=20, description="the catalog item code")]
    quantity: Annotated[int, Field(strict=True)]
    unit_price_fen: Annotated[int, Field(strict=True, description="the unit price charged, fen")]


class BillBody(Strict):
    resident_id: Annotated[str, Field(pattern=r"^[0-9A-Za-z_-]{1,32}$")]
    encounter_id: Annotated[int, Field(strict=True, ge=1, le=2**62)]
    lines: Annotated[list[LineBody], Field(max_length=500)]
    paid_by: Literal["account", "cash"] = "cash"
    referral: bool = False
    referred_by: Annotated[str | None, Field(default=None, min_length=1, max_length=22)] = None

    def bill(self) -> Bill:
        return Bill(
            self.encounter_id,
            tuple(LineIn(line.item, line.quantity, line.unit_price_fen) for line in self.lines),
            self.paid_by,
            self.referral,
            self.referred_by,
        )


class SettleBody(BillBody):
    idempotency_key: Key = None


class ReturnedBody(Strict):
    item: Annotated[str, Field(min_length=1, max_length=20)]
    quantity: Annotated[int, Field(strict=True)]


class RefundBody(Strict):
    lines: Annotated[
        list[ReturnedBody] | None,
        Field(default=None, max_length=500, description="the lines given back; leave out for the whole bill"),
    ] = None
    idempotency_key: Key = None


class EnrolBody(Strict):
    resident_id: Annotated[str, Field(pattern=r"^[0-9A-Za-z_-]{1,32}$")]
    pool: Annotated[str, Field(min_length=1, max_length=16)]
    year: Annotated[int, Field(strict=True, ge=2000, le=2100)]
    premium_fen: Annotated[int, Field(strict=True)]
    ncms_number: Annotated[str | None, Field(default=None, max_length=18)] = None


def _key(header: str | None, body: str | None) -> str:
    if header is not None and body is not None and header != body:
        raise InvalidValue("idempotency_key", "the Idempotency-Key header and the body's key differ")
    key = header if header is not None else body
    if key is None:
        raise InvalidValue("idempotency_key", "send an Idempotency-Key header (a UUID, the bill number …)")
    return key


@router.post(
    "/v1/settlements/pre-settlement",
    summary="试算: what the fund would pay for the bill now (nothing is written)",
)
def pre_settlement(body: BillBody, node: NodeDep, actor: ActorDep) -> Quote:
    return node.settlement.quote(actor, body.resident_id, body.bill())


@router.post(
    "/v1/settlements",
    status_code=201,
    summary="Settle a visit's bill at the cashier (201; a retry with the same key: 200, the first result)",
)
def settle(
    body: SettleBody, response: Response, node: NodeDep, actor: ActorDep, key: KeyHeader = None
) -> SettlementView:
    view, created = node.settlement.settle(
        actor, body.resident_id, body.bill(), key=_key(key, body.idempotency_key)
    )
    if not created:
        response.status_code = 200
    return view


@router.get("/v1/settlements/{settlement_id}", summary="A settlement or a refund")
def settlement(settlement_id: SettlementId, node: NodeDep, actor: ActorDep) -> SettlementView:
    return node.settlement.settlement(actor, settlement_id)


@router.post(
    "/v1/settlements/{settlement_id}/refund",
    status_code=201,
    summary="退费: the whole bill, or the lines given back (the rest is settled anew)",
)
def refund(
    settlement_id: SettlementId,
    body: RefundBody,
    response: Response,
    node: NodeDep,
    actor: ActorDep,
    key: KeyHeader = None,
) -> Refunded:
    returned = None if body.lines is None else [Returned(line.item, line.quantity) for line in body.lines]
    refunded, created = node.settlement.refund(
        actor, settlement_id, returned, key=_key(key, body.idempotency_key)
    )
    if not created:
        response.status_code = 200
    return refunded


@router.get("/v1/residents/{resident_id}/settlements", summary="The resident's settlements, newest first")
def settlements(
    resident_id: ResidentId, node: NodeDep, actor: ActorDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[SettlementView]:
    return node.settlement.settlements(actor, resident_id, limit=limit)


@router.get("/v1/residents/{resident_id}/ncms", summary="参合: insured status and the year's accumulators")
def insured(
    resident_id: ResidentId,
    node: NodeDep,
    actor: ActorDep,
    year: Annotated[int | None, Query(ge=2000, le=2100, description="default: this year")] = None,
) -> Insured:
    return node.settlement.insured(actor, resident_id, year)


@router.post("/v1/ncms/enrolments", status_code=201, summary="The pool's office enrols a resident for a year")
def enrol(body: EnrolBody, node: NodeDep, actor: ActorDep) -> Insured:
    return node.settlement.enrol(
        actor,
        body.resident_id,
        pool=body.pool,
        year=body.year,
        premium_fen=body.premium_fen,
        ncms_number=body.ncms_number,
    )


@router.get(
    "/v1/ncms/pools/{pool}/dashboard",
    summary="The office's view: fund balance, payments by level and month, largest, flagged for review",
)
def dashboard(
    pool: Annotated[str, Path(pattern=r"^[0-9A-Za-z-]{1,16}$")],
    node: NodeDep,
    actor: ActorDep,
    year: Annotated[int | None, Query(ge=2000, le=2100, description="default: this year")] = None,
) -> Dashboard:
    return node.settlement.dashboard(actor, pool, year)


# --- FHIR R4 -----------------------------------------------------------------------------------------
def _name(node: NodeDep, view: SettlementView) -> str | None:
    return node.institution_names({view.institution_code}).get(view.institution_code)


@router.get("/fhir/Claim/{settlement_id}", tags=["fhir"], summary="FHIR Claim of a settlement")
def fhir_claim(settlement_id: SettlementId, node: NodeDep, actor: ActorDep) -> JSONResponse:
    view = node.settlement.settlement(actor, settlement_id)
    return JSONResponse(fhir_claims.claim(view, _name(node, view)), media_type=FHIR_JSON)


@router.get(
    "/fhir/ClaimResponse/{settlement_id}", tags=["fhir"], summary="FHIR ClaimResponse of a settlement"
)
def fhir_claim_response(settlement_id: SettlementId, node: NodeDep, actor: ActorDep) -> JSONResponse:
    view = node.settlement.settlement(actor, settlement_id)
    return JSONResponse(fhir_claims.claim_response(view, _name(node, view)), media_type=FHIR_JSON)


@router.get("/fhir/Claim", tags=["fhir"], summary="FHIR search: a patient's Claims")
def fhir_claims_of(
    request: Request,
    node: NodeDep,
    actor: ActorDep,
    patient: PatientQuery,
    count: CountQuery = 50,
) -> JSONResponse:
    views = node.settlement.settlements(actor, patient.removeprefix("Patient/"), limit=count)
    names = node.institution_names({v.institution_code for v in views})
    resources = [fhir_claims.claim(v, names.get(v.institution_code)) for v in views]
    return JSONResponse(fhir.bundle(resources, self_url=str(request.url)), media_type=FHIR_JSON)
