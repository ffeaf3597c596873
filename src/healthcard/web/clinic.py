"""The clinic console (医生工作站 / 挂号收费窗口): the workstation pages of a clinic's staff.

One console, three desks, chosen by the logged-in staff member's role:

* the **clinician** (医生工作站): the card swiped (or the electronic health card's QR code
  scanned) → the summary "一目了然" (photo from the chip, name, age, blood type, medical alerts,
  allergies, recent visits, vaccinations due) → the visit recorded (diagnosis searched by
  ICD-10 code or Chinese name, labs, prescriptions) → written back to the card;
* the **cashier** (收费窗口): the payer identified → the visits here to settle → the bill from
  the pool's catalog → the pre-settlement shown → settled, paid from the health account or in
  cash → the visit with its fee lines written to the card;
* **registration** (挂号): the patient identified → a visit opened for the doctor.

The browser reaches the card reader through the local reader agent (``healthcard agent``,
docs/agent.md) with ``static/agent.js`` and ``static/clinic.js``; the pages themselves call the
node's use cases with the logged-in actor, as the API does, so the access policy decides what
each desk sees (the presence grant of the swipe or the QR scan, for this institution) and every
read lands in the resident's "who looked".  A resident id in these URLs is not a secret: without
the presence tie (or care here) the policy refuses it, and the refusal is audited.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Depends, Form, Path, Query
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from healthcard.clock import SHANGHAI
from healthcard.errors import CryptoError, HealthCardError, InvalidValue, NotFound
from healthcard.platform import icd10
from healthcard.platform import records as rec
from healthcard.platform.access import Actor, Role
from healthcard.platform.mpi import PersonView
from healthcard.platform.settlement.service import Bill, LineIn
from healthcard.web import ehealth
from healthcard.web.pages import Outcome, attempt, node_of, page_router, redirect, render
from healthcard.web.portal import attention
from healthcard.web.staff import LANDING, staff

router = page_router("/clinic")

DESK_ROLES = (Role.CLINICIAN, Role.CASHIER, Role.REGISTRATION)
for _role in DESK_ROLES:
    LANDING.setdefault(_role, "/clinic")

DeskDep = Annotated[Actor, Depends(staff(*DESK_ROLES))]
ClinicianDep = Annotated[Actor, Depends(staff(Role.CLINICIAN))]
CashierDep = Annotated[Actor, Depends(staff(Role.CASHIER))]
#: a resident id in a URL: as the API takes it
ResidentId = Annotated[str, Path(pattern=r"^[A-Za-z0-9-]{1,64}$")]
Id = Annotated[int, Path(ge=1, le=2**62)]

#: where in the visit each desk swipes the card (the platform's card-use stage)
STAGE = {Role.CLINICIAN: "consultation", Role.CASHIER: "cashier", Role.REGISTRATION: "registration"}
#: WS 364.12 CV06.00.102 用药途径, as two digits
ROUTES = (
    ("01", "口服"),
    ("02", "直肠用药"),
    ("03", "舌下用药"),
    ("04", "注射用药"),
    ("05", "吸入用药"),
    ("06", "局部用药"),
    ("09", "其他"),
)
#: the lists of :meth:`Node.add_items`, whose errors name a field of one item ("diagnoses[0].code")
_ITEM_LISTS = ("diagnoses[", "observations[", "prescriptions[")
#: how many empty lines the bill form offers
BILL_LINES = 6
#: the confirmations a redirect may show (``?done=…``): catalog keys, nothing else
DONE = {"opened": "clinic.done.opened", "recorded": "clinic.done.recorded", "settled": "clinic.done.settled"}


def _done(value: str | None) -> str | None:
    return DONE.get(value or "")


def _today(request: Request) -> dt.date:
    return node_of(request).clock.now().astimezone(SHANGHAI).date()


def _age(born: dt.date, today: dt.date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


# --- the workstation ----------------------------------------------------------------------------
@router.get("")
def console(request: Request, actor: DeskDep) -> Response:
    return render(request, "clinic/index.html", {"stage": STAGE[actor.role]}, agent=True)


@router.post("/scan")
def scan(request: Request, actor: DeskDep, qr_code: Annotated[str, Form(max_length=400)] = "") -> Response:
    """The resident's electronic health card, scanned (a scanner types the code into the field):
    checked here, then the same presence tie as a swipe."""
    node = node_of(request)

    def action() -> str:
        text = qr_code.strip()
        if not text:
            raise InvalidValue("qr_code", "scan the code on the resident's phone")
        try:
            verified = ehealth.verify(request.app.state.ehc_keys, text, node.clock.now())
        except CryptoError:
            raise InvalidValue("qr_code", "not an electronic health card code of this platform") from None
        return node.present_qr(actor, card_number=verified.card_number, stage=STAGE[actor.role]).resident_id

    outcome = attempt(request, action, fields=("qr_code",))
    if outcome.result is not None:
        return redirect(request, f"/clinic/patient/{outcome.result}")
    context = {"stage": STAGE[actor.role], "errors": outcome.errors, "values": {"qr_code": ""}}
    return render(request, "clinic/index.html", context, status=outcome.status, agent=True)


# --- the patient ----------------------------------------------------------------------------------
def _card_of(person: PersonView) -> str | None:
    numbers = [i.value for i in person.identifiers if i.system == "card" and i.active]
    return numbers[0] if numbers else None


def _card_number(request: Request, actor: Actor, resident_id: str) -> str | None:
    return _card_of(node_of(request).person(actor, resident_id))


def _open_here(visits: Sequence[rec.EncounterView], actor: Actor) -> list[rec.EncounterView]:
    return [v for v in visits if v.status == "open" and v.institution_code == actor.institution_code]


def _clinician_view(request: Request, actor: Actor, resident_id: str) -> dict[str, Any]:
    seen = node_of(request).glance(actor, resident_id)  # one transaction, four audited reads
    return {
        "summary": seen.summary,
        "due": attention(seen.plan),
        "open_visits": _open_here(seen.visits, actor),
        "card_number": _card_of(seen.person),
    }


def _cashier_view(request: Request, actor: Actor, resident_id: str) -> dict[str, Any]:
    node = node_of(request)
    person = node.person(actor, resident_id)
    return {
        "person": person,
        "card_number": _card_of(person),
        "insured": node.settlement.insured(actor, resident_id),
        "to_bill": node.settlement.to_bill(actor, resident_id),
    }


def _patient_page(
    request: Request,
    actor: Actor,
    resident_id: str,
    *,
    done: str | None = None,
    outcome: Outcome[Any] | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    """The patient's page of the actor's desk (again, with a form's errors, after a refusal)."""
    context: dict[str, Any] = {
        "rid": resident_id,
        "done": _done(done),
        "today": _today(request),
        "values": values or {"department": ""},
        "errors": outcome.errors if outcome else {},
        "age": _age,
    }
    if actor.role == Role.CLINICIAN:
        context.update(_clinician_view(request, actor, resident_id))
    elif actor.role == Role.CASHIER:
        context.update(_cashier_view(request, actor, resident_id))
    else:
        context["person"] = node_of(request).person(actor, resident_id)
        context["card_number"] = _card_of(context["person"])
    status = outcome.status if outcome else 200
    return render(request, f"clinic/{actor.role.value}.html", context, status=status, agent=True)


@router.get("/patient/{resident_id}")
def patient(
    request: Request,
    actor: DeskDep,
    resident_id: ResidentId,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    return _patient_page(request, actor, resident_id, done=done)


@router.post("/patient/{resident_id}/visits")
def open_visit(
    request: Request,
    actor: DeskDep,
    resident_id: ResidentId,
    department: Annotated[str, Form(max_length=50)] = "",
) -> Response:
    """接诊 / 挂号: a visit opened here today (the clinician is the one who opens it, at the desk
    the doctor is named later)."""
    node = node_of(request)

    def action() -> rec.EncounterView:
        if not department.strip():
            raise InvalidValue("department", "the department of the visit")
        data = rec.EncounterIn(
            institution_code=actor.institution_code or "",
            kind=rec.EncounterKind.OUTPATIENT,
            department=department.strip(),
            clinician=None,
            started_at=node.clock.now(),
            card_number=_card_number(request, actor, resident_id),
        )
        return node.open_encounter(actor, resident_id, data)

    outcome = attempt(request, action, fields=("department",))
    if outcome.result is not None:
        if actor.role == Role.CLINICIAN:
            return redirect(request, f"/clinic/patient/{resident_id}/visits/{outcome.result.id}?done=opened")
        return redirect(request, f"/clinic/patient/{resident_id}?done=opened")
    return _patient_page(request, actor, resident_id, outcome=outcome, values={"department": department})


# --- the visit (the clinician) ----------------------------------------------------------------------
def _catalog_drugs(request: Request, actor: Actor) -> list[tuple[str, str]]:
    """The drugs of the catalog of the institution's pool (a prescription from it is billed by
    its code); none outside every pool."""
    items = node_of(request).settlement.catalog_here(actor)
    return [(i.code, f"{i.name} ({i.unit})") for i in items if i.kind == "drug"]


def _visit_context(request: Request, actor: Actor, resident_id: str, encounter_id: int) -> dict[str, Any]:
    node = node_of(request)
    return {
        "rid": resident_id,
        "visit": node.encounter(actor, resident_id, encounter_id),
        "card_number": _card_number(request, actor, resident_id),
        "routes": ROUTES,
        "drugs": _catalog_drugs(request, actor),
        "results": [],
        "q": "",
        "done": None,
    }


@router.get("/patient/{resident_id}/visits/{encounter_id}")
def visit(
    request: Request,
    actor: ClinicianDep,
    resident_id: ResidentId,
    encounter_id: Id,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    context = {**_visit_context(request, actor, resident_id, encounter_id), "done": _done(done)}
    return render(request, "clinic/visit.html", context, agent=True)


@router.get("/patient/{resident_id}/visits/{encounter_id}/icd10")
def icd10_search(
    request: Request,
    actor: ClinicianDep,
    resident_id: ResidentId,
    encounter_id: Id,
    q: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    """The diagnosis search (htmx, as the clinician types): ICD-10 codes by code or by name,
    Chinese first; each hit is a small form that adds it to the visit."""
    results = icd10.search(q.strip(), limit=12) if len(q.strip()) >= 1 else []
    context = {"rid": resident_id, "eid": encounter_id, "results": results, "q": q}
    return render(request, "clinic/_icd10.html", context)


def _number(value: str, field: str) -> float | None:
    text = value.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise InvalidValue(field, f"{text!r}: a number") from None


def _add(
    request: Request,
    actor: Actor,
    resident_id: str,
    encounter_id: int,
    build: Any,
    *,
    fields: Sequence[str],
    values: dict[str, str],
) -> Response:
    node = node_of(request)

    def action() -> rec.EncounterView:
        try:
            return node.add_items(actor, resident_id, encounter_id, **build())
        except InvalidValue as exc:  # "prescriptions[0].route_code": the form's own field
            name = exc.field.rsplit(".", 1)[-1] if exc.field.startswith(_ITEM_LISTS) else exc.field
            raise InvalidValue(name, exc.message) from None

    outcome = attempt(request, action, fields=fields)
    if outcome.ok:
        return redirect(request, f"/clinic/patient/{resident_id}/visits/{encounter_id}?done=recorded")
    context = {
        **_visit_context(request, actor, resident_id, encounter_id),
        "errors": outcome.errors,
        "values": values,
    }
    return render(request, "clinic/visit.html", context, status=outcome.status, agent=True)


@router.post("/patient/{resident_id}/visits/{encounter_id}/diagnoses")
def add_diagnosis(
    request: Request,
    actor: ClinicianDep,
    resident_id: ResidentId,
    encounter_id: Id,
    code: Annotated[str, Form(max_length=20)] = "",
    primary: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    def build() -> dict[str, Any]:
        if not code.strip():
            raise InvalidValue("code", "search and choose a diagnosis")
        found = icd10.lookup(code.strip())  # field "code" on an unknown code
        visit = node_of(request).encounter(actor, resident_id, encounter_id)
        first = primary == "true" or not visit.diagnoses
        return {"diagnoses": [rec.DiagnosisIn(code=found.code, primary=first)]}

    return _add(request, actor, resident_id, encounter_id, build, fields=("code",), values={"code": code})


@router.post("/patient/{resident_id}/visits/{encounter_id}/labs")
def add_lab(
    request: Request,
    actor: ClinicianDep,
    resident_id: ResidentId,
    encounter_id: Id,
    name: Annotated[str, Form(max_length=50)] = "",
    value: Annotated[str, Form(max_length=30)] = "",
    unit: Annotated[str, Form(max_length=20)] = "",
    low: Annotated[str, Form(max_length=20)] = "",
    high: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    def build() -> dict[str, Any]:
        if not name.strip():
            raise InvalidValue("name", "the test, as the laboratory names it")
        if not value.strip():
            raise InvalidValue("value", "the result")
        observation = rec.ObservationIn(
            kind="lab",
            code=name.strip()[:20],
            name=name.strip(),
            value=value.strip(),
            unit=unit.strip(),
            low=_number(low, "low"),
            high=_number(high, "high"),
        )
        return {"observations": [observation]}

    values = {"name": name, "value": value, "unit": unit, "low": low, "high": high}
    return _add(request, actor, resident_id, encounter_id, build, fields=tuple(values), values=values)


@router.post("/patient/{resident_id}/visits/{encounter_id}/prescriptions")
def add_prescription(
    request: Request,
    actor: ClinicianDep,
    resident_id: ResidentId,
    encounter_id: Id,
    drug_code: Annotated[str, Form(max_length=20)] = "",
    dose: Annotated[str, Form(max_length=10)] = "",
    dose_unit: Annotated[str, Form(max_length=10)] = "",
    route_code: Annotated[str, Form(max_length=2)] = "",
    frequency: Annotated[str, Form(max_length=20)] = "",
    days: Annotated[str, Form(max_length=3)] = "",
) -> Response:
    def build() -> dict[str, Any]:
        drugs = dict(_catalog_drugs(request, actor))
        if drug_code not in drugs:
            raise InvalidValue("drug_code", "choose the drug from the catalog")
        if not dose.strip():
            raise InvalidValue("dose", "the single dose")
        if not days.strip().isdigit() or not 1 <= int(days) <= 90:
            raise InvalidValue("days", f"{days!r}: 1 to 90 days")
        prescription = rec.PrescriptionIn(
            drug=drugs[drug_code].rsplit(" (", 1)[0],
            drug_code=drug_code,
            dose=dose.strip(),
            dose_unit=dose_unit.strip(),
            route_code=route_code,
            frequency=frequency.strip(),
            days=int(days),
        )
        return {"prescriptions": [prescription]}

    values = {
        "drug_code": drug_code,
        "dose": dose,
        "dose_unit": dose_unit,
        "route_code": route_code,
        "frequency": frequency,
        "days": days,
    }
    return _add(request, actor, resident_id, encounter_id, build, fields=tuple(values), values=values)


# --- the bill (the cashier) ----------------------------------------------------------------------------
def _bill_lines(form: FormData) -> list[tuple[int, str, int]]:
    """The bill form's lines as (row, item, quantity): item ``item-N`` and quantity ``qty-N``
    for N = 0 … ; an empty row is skipped, a half-filled one refused by its field."""
    lines = []
    for n in range(BILL_LINES):
        item = str(form.get(f"item-{n}") or "").strip()
        qty = str(form.get(f"qty-{n}") or "").strip()
        if not item and not qty:
            continue
        if not item:
            raise InvalidValue(f"item-{n}", "choose the item of this line")
        if not qty.isdigit() or not 1 <= int(qty) <= 9999:
            raise InvalidValue(f"qty-{n}", f"{qty!r}: how many, 1 to 9999")
        lines.append((n, item, int(qty)))
    if not lines:
        raise InvalidValue("item-0", "a bill needs at least one line")
    return lines


_LINE_FIELD = re.compile(r"lines\[(\d+)\]\.(item|quantity|unit_price_fen)")


def _on_the_form(exc: InvalidValue, rows: Sequence[int]) -> InvalidValue:
    """The service's ``lines[k].item`` is the form's ``item-N`` of the k-th filled row."""
    found = _LINE_FIELD.fullmatch(exc.field)
    if found is None or int(found.group(1)) >= len(rows):
        return exc
    name = "qty" if found.group(2) == "quantity" else "item"
    return InvalidValue(f"{name}-{rows[int(found.group(1))]}", exc.message)


def _bill_context(request: Request, actor: Actor, resident_id: str, encounter_id: int) -> dict[str, Any]:
    node = node_of(request)
    insured = node.settlement.insured(actor, resident_id)
    visits = {v.encounter_id: v for v in node.settlement.to_bill(actor, resident_id)}
    if encounter_id not in visits:
        raise NotFound("visit to bill", str(encounter_id))
    items = node.settlement.catalog_items(insured.pool) if insured.pool else []
    try:
        account = node.health_accounts.account(actor, resident_id)
    except HealthCardError:  # none opened, or not this desk's to see: the page offers cash
        account = None
    return {
        "rid": resident_id,
        "eid": encounter_id,
        "billed": visits[encounter_id],
        "insured": insured,
        "items": items,
        "prices": {i.code: i.price_fen for i in items},
        "rows": range(BILL_LINES),
        "account": account,
        "card_number": _card_number(request, actor, resident_id),
        "quote": None,
        "settled": None,
        "key": secrets.token_urlsafe(12),
    }


@router.get("/patient/{resident_id}/bill/{encounter_id}")
def bill(
    request: Request,
    actor: CashierDep,
    resident_id: ResidentId,
    encounter_id: Id,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    context = {**_bill_context(request, actor, resident_id, encounter_id), "done": _done(done)}
    billed = context["billed"]
    if billed.settlement_id is not None:
        context["settled"] = node_of(request).settlement.settlement(actor, billed.settlement_id)
    return render(request, "clinic/bill.html", {**context, "values": {"paid_by": "cash"}}, agent=True)


@router.post("/patient/{resident_id}/bill/{encounter_id}")
async def settle(request: Request, actor: CashierDep, resident_id: ResidentId, encounter_id: Id) -> Response:
    """试算 (``step`` quote: the figures, nothing written) or 结算 (``step`` settle, under the
    form's idempotency key: a double click or a retry settles once)."""
    form = await request.form()  # the lines are a variable list: read here, settled in a thread
    return await run_in_threadpool(_settle, request, actor, resident_id, encounter_id, form)


def _settle(request: Request, actor: Actor, resident_id: str, encounter_id: int, form: FormData) -> Response:
    node = node_of(request)
    step = str(form.get("step") or "quote")
    paid_by = str(form.get("paid_by") or "")
    key = str(form.get("key") or "")[:64]
    fields = ("paid_by", *(f"item-{n}" for n in range(BILL_LINES)), *(f"qty-{n}" for n in range(BILL_LINES)))

    def run() -> Any:
        if paid_by not in ("account", "cash"):
            raise InvalidValue("paid_by", "from the health account or in cash")
        if step == "settle" and not key:
            raise InvalidValue("key", "the form's key is missing: open the bill again")
        prices = _bill_context(request, actor, resident_id, encounter_id)["prices"]
        lines = _bill_lines(form)
        # the catalog's price: the cashier picks the item, the catalog says what it costs
        bill = Bill(encounter_id, tuple(LineIn(i, q, prices.get(i, 0)) for _, i, q in lines), paid_by)
        try:
            if step == "settle":
                return node.settlement.settle(actor, resident_id, bill, key=f"console-{key}")[0]
            return node.settlement.quote(actor, resident_id, bill)
        except InvalidValue as exc:
            raise _on_the_form(exc, [row for row, _, _ in lines]) from None

    outcome: Outcome[Any] = attempt(request, run, fields=fields)
    if outcome.ok and step == "settle":
        return redirect(request, f"/clinic/patient/{resident_id}/bill/{encounter_id}?done=settled")
    context = _bill_context(request, actor, resident_id, encounter_id)
    values = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    context.update(
        {
            "errors": outcome.errors,
            "values": values,
            "quote": outcome.result if step != "settle" else None,
            "key": key or context["key"],
            "done": None,
        }
    )
    return render(request, "clinic/bill.html", context, status=outcome.status, agent=True)


__all__ = ["router"]
