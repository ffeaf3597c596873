"""The resident portal (居民健康网): a resident's own card, record, vaccinations, fees, bookings,
privacy controls and electronic health card, in Chinese first and English.

Every page calls the same use cases as the API (:class:`~healthcard.platform.node.Node` and its
desks) with the logged-in :class:`~healthcard.platform.access.Actor`, so the access policy and
the audit log see the portal exactly as they see the API.  **No URL carries a resident id**: the
resident is always the token's (:func:`~healthcard.web.pages.own_resident`); the ids that do
appear in URLs (a visit, a booking) are checked by the use case against the resident's own
records, and someone else's is "not found".
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from fastapi import Form, Path, Query
from starlette.requests import Request
from starlette.responses import Response

from healthcard.clock import SHANGHAI
from healthcard.errors import InvalidValue, NotFound
from healthcard.platform.access import Actor, Role, Sensitivity
from healthcard.platform.appointments import SessionView
from healthcard.platform.household import DependantVaccinations
from healthcard.platform.immunization import DoseState, DoseStatus
from healthcard.web import ehealth, i18n
from healthcard.web.pages import (
    LoginForm,
    ResidentDep,
    attempt,
    end_session,
    is_htmx,
    lang_of,
    node_of,
    own_resident,
    page_router,
    password_login,
    redirect,
    render,
    safe_next,
    sessions_of,
)
from healthcard.web.session import LANG_COOKIE

router = page_router("/portal")

#: a database id in a URL (a visit, a booking): 64-bit, as the API takes it
Id = Annotated[int, Path(ge=1, le=2**62)]
#: the confirmations a redirect may show (``?done=…``): catalog keys, nothing else
DONE = {"booked": "done.booked", "cancelled": "done.cancelled", "opened": "done.opened", "lost": "done.lost"}
#: the categories a resident may hide (all but ``general``)
HIDEABLE = tuple(s.value for s in Sensitivity if s is not Sensitivity.GENERAL)


def _done(done: str | None) -> str | None:
    return DONE.get(done or "")


# --- logging in and out ------------------------------------------------------------------------------
@router.get("/login")
def login_page(
    request: Request,
    next: Annotated[str | None, Query(max_length=300)] = None,
    expired: Annotated[str | None, Query(max_length=1)] = None,
) -> Response:
    return render(
        request,
        "portal/login.html",
        {"next": safe_next(next), "expired": expired == "1", "values": {"username": ""}},
    )


#: the portal's login: residents only
LOGIN = LoginForm(
    template="portal/login.html",
    username_hint="your ID number (the number on your card)",
    wrong="the ID number or the password is wrong",
    refused_key="login.refused",
    admits=lambda actor: actor.role == Role.RESIDENT,
    outsider="the portal is for residents; staff use their own console",
    default_next="/portal",
    normalise=lambda typed: _id_number(typed),
)


@router.post("/login")
def login(
    request: Request,
    username: Annotated[str, Form(max_length=40)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=300)] = "/portal",
) -> Response:
    return password_login(
        request, LOGIN, username=username, password=password, next=next, landing=lambda _: "/portal"
    )


def _id_number(username: str) -> str:
    """An ID number as typed: the check character X in either case (staff names as they are)."""
    name = username.strip()
    return name[:-1] + "X" if len(name) == 18 and name[:17].isdigit() and name[-1] == "x" else name


@router.post("/logout")
def logout(request: Request) -> Response:
    end_session(request)
    response = redirect(request, "/portal/login")
    sessions_of(request).clear(request, response)
    return response


@router.get("/lang/{code}")
def language(
    request: Request,
    code: Annotated[str, Path(pattern="^(zh|en)$")],
    next: Annotated[str | None, Query()] = None,
) -> Response:
    """Switch the language (a cookie, a year); back to the page the switch was pressed on."""
    response = redirect(request, safe_next(next))
    response.set_cookie(LANG_COOKIE, code, max_age=365 * 24 * 3600, path="/", httponly=True, samesite="lax")
    return response


# --- home: my card and my summary --------------------------------------------------------------------
def _card(request: Request, actor: Actor, resident_id: str) -> Any:
    """The resident's current card (status, validity) from the card centre, for the card number
    the MPI holds for the resident (read through the access policy: DEMOGRAPHICS)."""
    person = node_of(request).person(actor, resident_id)
    numbers = [i.value for i in person.identifiers if i.system == "card" and i.active]
    number = numbers[0] if numbers else person.id_number
    try:
        return request.app.state.app.cards.card(number).current
    except NotFound:
        return None


@router.get("")
def home(
    request: Request, actor: ResidentDep, done: Annotated[str | None, Query(max_length=20)] = None
) -> Response:
    rid = own_resident(actor)
    node = node_of(request)
    summary = node.summary(actor, rid)
    return render(
        request,
        "portal/home.html",
        {
            "nav": "home",
            "summary": summary,
            "card": _card(request, actor, rid),
            "today": _today(request),
            "done": _done(done),
        },
    )


# --- my card: report it lost (挂失) ------------------------------------------------------------------
#: the card statuses a holder may report lost online (the card centre checks again)
REPORTABLE = ("ISSUED", "ACTIVE")


@router.get("/card/lost")
def card_lost_page(request: Request, actor: ResidentDep) -> Response:
    """The confirmation step: what reporting the card lost does, a box to tick, a second POST."""
    card = _card(request, actor, own_resident(actor))
    return render(request, "portal/card_lost.html", {"nav": "home", "card": card, "reportable": REPORTABLE})


@router.post("/card/lost")
def card_lost(
    request: Request,
    actor: ResidentDep,
    confirm: Annotated[str, Form(max_length=10)] = "",
    reason: Annotated[str, Form(max_length=400)] = "",
) -> Response:
    """The holder's own current card → LOST (hot-listed at once), through the card desk: the
    access policy's ``card`` write for ``self``, audited with the resident as actor.  Without the
    ticked box, or for a card that is not ISSUED / ACTIVE, nothing is written."""
    rid = own_resident(actor)
    desk = request.app.state.app.card_desk

    def action() -> object:
        if confirm != "yes":
            raise InvalidValue("confirm", "tick the box to confirm")
        return desk.report_lost_by_holder(actor, rid, reason=reason)

    outcome = attempt(request, action, fields=("confirm", "reason"))
    if outcome.ok:
        return redirect(request, "/portal?done=lost")
    if "confirm" in outcome.errors:
        outcome.errors["confirm"] = i18n.Translator(lang_of(request))("card.lost.need_confirm")
    context = {
        "nav": "home",
        "card": _card(request, actor, rid),
        "reportable": REPORTABLE,
        "errors": outcome.errors,
        "values": {"reason": reason},
    }
    return render(request, "portal/card_lost.html", context, status=outcome.status)


def _today(request: Request) -> dt.date:
    return node_of(request).clock.now().astimezone(SHANGHAI).date()


@router.get("/archive")
def archive(request: Request, actor: ResidentDep) -> Response:
    view = node_of(request).archive(actor, own_resident(actor))
    return render(request, "portal/archive.html", {"nav": "archive", "archive": view})


# --- visits --------------------------------------------------------------------------------------------
@router.get("/visits")
def visits(request: Request, actor: ResidentDep) -> Response:
    node = node_of(request)
    found = node.encounters(actor, own_resident(actor), limit=50)
    elsewhere = node.visits_elsewhere(actor, own_resident(actor), limit=50)  # other cities: pointers
    return render(request, "portal/visits.html", {"nav": "visits", "visits": found, "elsewhere": elsewhere})


@router.get("/visits/{encounter_id}")
def visit(request: Request, actor: ResidentDep, encounter_id: Id) -> Response:
    view = node_of(request).encounter(actor, own_resident(actor), encounter_id)
    return render(request, "portal/visit.html", {"nav": "visits", "visit": view})


# --- vaccinations --------------------------------------------------------------------------------------
def attention(plan: list[DoseStatus]) -> list[DoseStatus]:
    """The doses due or overdue, overdue first, the longest overdue first."""
    attention = [d for d in plan if d.state in (DoseState.OVERDUE, DoseState.DUE)]
    return sorted(attention, key=lambda d: (d.state != DoseState.OVERDUE, d.overdue_from))


def _child(found: DependantVaccinations) -> dict[str, Any]:
    return {
        "dependant": found.dependant,
        "plan": found.plan,
        "doses": found.doses,
        "attention": attention(found.plan),
    }


@router.get("/vaccinations")
def vaccinations(request: Request, actor: ResidentDep) -> Response:
    node = node_of(request)
    rid = own_resident(actor)
    plan = node.vaccination_plan(actor, rid)
    children = [_child(found) for found in node.households.all_vaccinations(actor)]
    return render(
        request,
        "portal/vaccinations.html",
        {
            "nav": "vaccinations",
            "plan": plan,
            "attention": attention(plan),
            "doses": node.doses(actor, rid),
            "dependants": children,
        },
    )


@router.get("/vaccinations/{link_id}")
def dependant_vaccinations(request: Request, actor: ResidentDep, link_id: Id) -> Response:
    """One dependant's page, addressed by the household link's id (never a resident id): the use
    case checks that the link is the logged-in guardian's own (another's is "not found") and
    asks the access policy."""
    found = node_of(request).households.vaccinations(actor, link_id)
    return render(request, "portal/dependant.html", {"nav": "vaccinations", "child": _child(found)})


# --- money -----------------------------------------------------------------------------------------------
@router.get("/fees")
def fees(request: Request, actor: ResidentDep) -> Response:
    node = node_of(request)
    rid = own_resident(actor)
    settled = node.settlement.settlements(actor, rid, limit=50)
    names = node.institution_names({s.institution_code for s in settled})
    return render(
        request,
        "portal/fees.html",
        {
            "nav": "fees",
            "settlements": settled,
            "names": names,
            "insured": node.settlement.insured(actor, rid),
            "fund_total": sum(s.fund_fen for s in settled),
            "self_total": sum(s.self_fen for s in settled),
        },
    )


def _account_context(request: Request, actor: Actor) -> dict[str, Any]:
    node = node_of(request)
    rid = own_resident(actor)
    try:
        account = node.health_accounts.account(actor, rid)
    except NotFound:
        return {"nav": "account", "account": None, "statement": None, "banks": _banks()}
    statement = node.health_accounts.statement(actor, rid)
    return {"nav": "account", "account": account, "statement": statement, "banks": _banks()}


def _banks() -> dict[str, str]:
    from healthcard.platform.settlement.bank import BANKS

    return {code: bank.name for code, bank in BANKS.items()}


@router.get("/account")
def account(request: Request, actor: ResidentDep, done: Annotated[str | None, Query()] = None) -> Response:
    return render(request, "portal/account.html", {**_account_context(request, actor), "done": _done(done)})


@router.post("/account")
def open_account(
    request: Request, actor: ResidentDep, bank: Annotated[str, Form(max_length=12)] = ""
) -> Response:
    node = node_of(request)

    def action() -> object:
        if not bank:
            raise InvalidValue("bank", "choose the co-issuing bank")
        return node.health_accounts.open(actor, own_resident(actor), bank=bank)

    outcome = attempt(request, action, fields=("bank",))
    if outcome.ok:
        return redirect(request, "/portal/account?done=opened")
    context = _account_context(request, actor)
    return render(
        request,
        "portal/account.html",
        {**context, "errors": outcome.errors, "values": {"bank": bank}, "done": None},
        status=outcome.status,
    )


# --- appointments -----------------------------------------------------------------------------------------
def _bookings_page(request: Request, actor: Actor, **extra: Any) -> dict[str, Any]:
    node = node_of(request)
    found = node.appointments.bookings(actor, own_resident(actor), limit=50)
    names = node.institution_names({b.institution_code for b in found})
    return {"nav": "appointments", "bookings": found, "names": names, "now": node.clock.now(), **extra}


@router.get("/appointments")
def appointments(
    request: Request, actor: ResidentDep, done: Annotated[str | None, Query(max_length=20)] = None
) -> Response:
    return render(request, "portal/appointments.html", _bookings_page(request, actor, done=_done(done)))


def _chooser(
    request: Request, institution: str | None, department: str | None, doctor: int | None
) -> dict[str, Any]:
    """The booking form's steps so far: institution → department → doctor → session.  Every list
    is reference data from the appointment use cases; a choice that does not belong to the one
    before it is dropped (a stale form), never trusted."""
    book = node_of(request).appointments
    institutions = node_of(request).bookable_institutions()
    institution = institution if institution in institutions else None
    departments = book.departments(institution) if institution else []
    department = department if department in {d.code for d in departments if d.active} else None
    doctors = (
        [d for d in book.doctors(institution, department) if d.active] if institution and department else []
    )
    doctor = doctor if doctor in {d.id for d in doctors} else None
    sessions: list[SessionView] = []
    now = node_of(request).clock.now()
    if institution and department and doctor:
        sessions = [
            s
            for s in book.sessions(institution, department_code=department, doctor_id=doctor)
            if s.status == "OPEN" and s.ends_at > now  # an ended session is no choice
        ]
    return {
        "institutions": institutions,
        "department_options": [(d.code, d.name) for d in departments if d.active],
        "doctor_options": [(d.id, f"{d.name} · {d.title} · ¥{i18n.yuan(d.fee_fen)}") for d in doctors],
        "sessions": sessions,
        "chosen": {"institution": institution, "department": department, "doctor": doctor},
    }


def _number(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) <= 18 else None


@router.get("/appointments/new")
def new_booking(
    request: Request,
    actor: ResidentDep,
    institution: Annotated[str | None, Query(max_length=22)] = None,
    department: Annotated[str | None, Query(max_length=4)] = None,
    doctor: Annotated[str | None, Query(max_length=18)] = None,
) -> Response:
    context = {
        "nav": "appointments",
        "booking_key": uuid.uuid4().hex,
        **_chooser(request, institution, department, _number(doctor)),
    }
    template = "portal/_chooser.html" if is_htmx(request) else "portal/book.html"
    return render(request, template, context)


@router.post("/appointments")
def book(
    request: Request,
    actor: ResidentDep,
    institution: Annotated[str, Form(max_length=22)] = "",
    department: Annotated[str, Form(max_length=4)] = "",
    doctor: Annotated[str, Form(max_length=18)] = "",
    session_id: Annotated[str, Form(max_length=18)] = "",
    key: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """Book; the form's one-time ``key`` (made when the page was drawn) is the booking's
    idempotency key, so a double tap or a resend after a lost answer books once."""
    node = node_of(request)

    def action() -> object:
        chosen = _number(session_id)
        if chosen is None:
            raise InvalidValue("session_id", "choose a session")
        return node.appointments.book(actor, chosen, channel="portal", key=key or None)

    outcome = attempt(request, action, fields=("institution", "department", "doctor", "session_id"))
    if outcome.ok:
        return redirect(request, "/portal/appointments?done=booked")
    context = {
        "nav": "appointments",
        # the same key again: if the refusal was a lost answer (503) the resend finds the booking
        "booking_key": key or uuid.uuid4().hex,
        **_chooser(request, institution or None, department or None, _number(doctor)),
        "errors": outcome.errors,
        "values": {"session_id": session_id},
    }
    return render(request, "portal/book.html", context, status=outcome.status)


@router.post("/appointments/{booking_id}/cancel")
def cancel(request: Request, actor: ResidentDep, booking_id: Id) -> Response:
    node = node_of(request)
    outcome = attempt(request, lambda: node.appointments.cancel(actor, booking_id), fields=())
    if outcome.ok:
        return redirect(request, "/portal/appointments?done=cancelled")
    context = _bookings_page(request, actor, done=None)
    return render(
        request,
        "portal/appointments.html",
        {**context, "errors": outcome.errors, "failed": booking_id},
        status=outcome.status,
    )


# --- privacy: who looked, what I hide -------------------------------------------------------------------
def _privacy(request: Request, actor: Actor) -> dict[str, Any]:
    node = node_of(request)
    rid = own_resident(actor)
    looked = node.who_looked(actor, rid, limit=100)
    names = node.institution_names({e.institution_code for e in looked if e.institution_code})
    return {
        "nav": "privacy",
        "looked": looked,
        "names": names,
        "hidden": node.hidden(actor, rid),
        "hideable": HIDEABLE,
    }


@router.get("/privacy")
def privacy(request: Request, actor: ResidentDep) -> Response:
    return render(request, "portal/privacy.html", _privacy(request, actor))


@router.post("/privacy/hidden")
def hide(
    request: Request,
    actor: ResidentDep,
    category: Annotated[str, Form(max_length=20)] = "",
    hidden: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    node = node_of(request)
    outcome = attempt(
        request,
        lambda: node.hide(actor, own_resident(actor), category, hidden == "true"),
        fields=("category",),
    )
    if outcome.ok and not is_htmx(request):
        return redirect(request, "/portal/privacy")
    context = {**_privacy(request, actor), "errors": outcome.errors}
    template = "portal/_hidden.html" if is_htmx(request) else "portal/privacy.html"
    return render(request, template, context, status=outcome.status)


# --- my electronic health card ---------------------------------------------------------------------------
def _code(request: Request, actor: Actor) -> dict[str, Any]:
    node = node_of(request)
    card = _card(request, actor, own_resident(actor))
    if card is None or not card.status.live or card.status.value == "LOST":
        return {"code": None, "card": card}
    keys: ehealth.EhcKeys = request.app.state.ehc_keys
    now = node.clock.now()
    code = ehealth.issue(keys, card.card_number, now)
    title = i18n.Translator(lang_of(request))("ehc.qr_title")
    return {
        "code": code,
        "card": card,
        "svg": ehealth.svg(code.text, title=title),
        "seconds": int((code.expires_at - now).total_seconds()),
        "expires_local": code.expires_at.astimezone(SHANGHAI),
    }


@router.get("/ehc")
def ehc(request: Request, actor: ResidentDep) -> Response:
    return render(request, "portal/ehc.html", {"nav": "ehc", **_code(request, actor)})


@router.get("/ehc/code")
def ehc_code(request: Request, actor: ResidentDep) -> Response:
    return render(request, "portal/_ehc_code.html", _code(request, actor))


__all__ = ["router"]
