"""The authorization sweep (issue 9), on SQLite and PostgreSQL: every route the node serves, called
as every kind of caller of :data:`healthcard.api.policy.CALLERS`, about a resident in the caller's
scope and one outside it, compared with :data:`healthcard.api.policy.TABLE`.

Two residents: 张三 (A, 中原区 410102: his card was swiped at dr-wang's hospital, which gives the
hospital a presence grant; he has a visit, a booking and a settlement there) and 赵六六 (B, 金水区
410105: no tie to the hospital; a closed visit, a booking and a settlement at another hospital).
Each column names a caller and the resident it asks about (policy.py's docstring); path
parameters are filled with that resident's id and objects.

A cell is checked as the policy module says: ``+`` never 401/403 (a write may be refused for
its body), ``L`` 401 or a redirect to a login page, ``D`` exactly 403 (a write may fail
validation first: 422 — counted, never 2xx), ``N`` 404.  Every answer — allowed or not — is
searched for the name and ID number of each resident the caller may not see (lists, searches,
FHIR searchsets, paging links, redirects: the HAPI partition-leak pattern).  A summary line
gives the figures."""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select, update
from starlette.requests import Request
from starlette.responses import Response

from healthcard.api import policy
from healthcard.api.app import create_app
from healthcard.api.policy import CALLERS, TABLE, Outcome
from healthcard.clock import local_date
from healthcard.issuance.organisation import OperatorSpec, Organisation
from healthcard.platform.access import Actor, Carrier, Role
from healthcard.platform.settlement.desk import bill_of
from healthcard.storage import tables as t
from healthcard.web.session import COOKIE, CSRF_HEADER, Session

from .platform_fixtures import CARD, HOSPITAL, OTHER, PASSWORD, Platform
from .test_appointments_api import schedule_by_http

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"
OFFICE = "410122902"  # 中牟县新农合管理中心 (the insurer's institution)
CENTRE = "41000000001"  # the province's card centre
B_ID, B_NAME, B_NUMBER = "R-ZHAO-B", "赵六六", "410105198805050022"
A_NAME = "张三"
BILL = [{"item": "FW0401", "quantity": 1, "unit_price_fen": 2500}]


@dataclass
class Target:
    """A resident a column asks about, and the ids of that resident's own objects."""

    resident_id: str
    area: str
    card: str
    encounter: int = 0
    booking: int = 0
    settlement: int = 0
    notice: int = 0  # a notification of the resident's own (0: none)


@dataclass
class World:
    client: TestClient
    a: Target
    b: Target
    today: dt.date
    terminal_id: str
    chip_serial: str
    session_id: int = 0
    doctor_id: int = 0
    kiosk_token: str = ""
    minted: int = 0
    b_session: int = 0  # the session B booked (tomorrow's)
    bearer: dict[str, str] = field(default_factory=dict)  # account → token
    cookies: dict[str, Session] = field(default_factory=dict)  # account → web session


#: column → (the account that calls, "a" or "b": the resident it asks about); None: no account
COLUMNS: dict[str, tuple[str | None, str]] = {
    "anonymous": (None, "a"),
    "resident-self": (CARD, "a"),
    "resident-other": (CARD, "b"),
    "clinician-tie": ("dr-wang", "a"),
    "clinician-no-tie": ("dr-li", "a"),
    "public-health-in": ("cdc-zy", "a"),
    "public-health-out": ("cdc-zy", "b"),
    "insurer": ("ncms", "a"),
    "cashier": ("cashier-1", "a"),
    "card-centre": ("card-1", "a"),
    "auditor": ("auditor", "a"),
    "admin": ("admin", "a"),
    "terminal-card": ("terminal", "a"),
    "terminal-no-card": ("terminal", "b"),
}

#: the residents whose name or ID number an account may ever see in an answer; the leak check
#: looks for the others' in every answer it gets (the card centre and the insurer see anyone's:
#: cards and claims wherever the insured were treated; the auditor the trail of anyone)
VISIBLE: dict[str | None, frozenset[str]] = {
    None: frozenset(),
    CARD: frozenset({"a"}),
    "dr-wang": frozenset({"a"}),
    "dr-li": frozenset(),
    "cdc-zy": frozenset({"a"}),
    "ncms": frozenset({"a", "b"}),
    "cashier-1": frozenset({"a"}),
    "card-1": frozenset({"a", "b"}),
    "auditor": frozenset({"a", "b"}),
    "admin": frozenset(),
    "terminal": frozenset({"a"}),
}

#: query strings: {placeholders} of :func:`_fill`
QUERIES: dict[tuple[str, str], dict[str, str]] = {
    ("GET", "/v1/residents/lookup"): {"system": "citizen-id", "value": "{card}"},
    ("GET", "/v1/appointments/bookings"): {"resident_id": "{rid}"},
    ("GET", "/v1/appointments/suspension"): {"resident_id": "{rid}"},
    ("GET", "/v1/appointments/institutions/{code}/exceptions"): {
        "first_day": "{today}",
        "last_day": "{today}",
    },
    ("GET", "/fhir/Schedule"): {"institution": HOSPITAL},
    ("GET", "/fhir/Slot"): {"schedule": "Schedule/{doctor}"},
    ("GET", "/fhir/Appointment"): {"patient": "{rid}"},
    ("GET", "/fhir/Claim"): {"patient": "{rid}"},
    ("GET", "/fhir/{resource}"): {"patient": "{rid}"},
    ("POST", "/v1/banks/{bank}/reconciliation"): {"date": "{today}"},
    ("GET", "/admin/cards/card"): {"card_number": "{card}"},
    ("GET", "/clinic/patient/{resident_id}/visits/{encounter_id}/icd10"): {"q": "I10"},
}

#: request bodies (JSON for the API, a form for the pages): valid where a valid one is cheap
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/auth/token"): {"username": "auditor", "password": PASSWORD},
    ("POST", "/v1/auth/terminal/challenge"): {"terminal_id": "{terminal}"},
    ("POST", "/v1/auth/terminal"): {"terminal_id": "{terminal}", "nonce": "00" * 40, "signature": "00" * 64},
    ("POST", "/v1/auth/card"): {"card_number": "{card}", "chip_serial": "{chip}"},
    ("POST", "/v1/swipes"): {"card_number": "{card}", "chip_serial": "{chip}"},
    ("POST", "/v1/terminals/card-refusals"): {
        "refusals": [
            {"chip_serial": "{chip}", "command": "00820001", "sw": "63C2", "at": "{today}T00:00:00+08:00"}
        ]
    },
    ("POST", "/v1/residents/{resident_id}/identifiers"): {"system": "other", "value": "SWEEP-{nonce}"},
    ("PUT", "/v1/residents/{resident_id}/archive"): {},
    ("POST", "/v1/residents/{resident_id}/allergies"): {"allergen": "花粉", "reaction": "喷嚏"},
    ("POST", "/v1/residents/{resident_id}/encounters"): {"department": "内科"},
    ("POST", "/v1/residents/{resident_id}/encounters/{encounter_id}/items"): {},
    ("POST", "/v1/residents/{resident_id}/encounters/{encounter_id}/close"): {},
    ("POST", "/v1/residents/{resident_id}/immunizations"): {
        "vaccine": "2601",
        "dose": 2,
        "given_on": "{today}",
        "institution_code": HOSPITAL,
    },
    ("POST", "/v1/residents/{resident_id}/break-glass"): {"reason": "unconscious, no card, allergy check"},
    ("PUT", "/v1/residents/{resident_id}/hidden-categories"): {"category": "hiv", "hidden": False},
    ("POST", "/v1/mpi/candidates"): {
        "local_id": "L-{nonce}",
        "name": "无名",
        "sex": 1,
        "birth_date": "1990-01-01",
    },
    ("POST", "/v1/mpi/candidates/{candidate_id}/decision"): {"decision": "reject"},
    ("POST", "/v1/mpi/merges"): {
        "survivor": "NOPE-1",
        "duplicate": "NOPE-2",
        "reason": "sweep: no such pair",
    },
    ("POST", "/v1/mpi/unmerges"): {"duplicate": "NOPE-2", "reason": "sweep: no such merge"},
    ("POST", "/v1/residents/{resident_id}/card/lost"): {},
    ("POST", "/v1/cards/self-service"): {"id_number": "{card}", "name": "nobody", "pin": "000000"},
    ("POST", "/v1/appointments/institutions/{code}/departments"): {"code": "300"},
    ("POST", "/v1/appointments/institutions/{code}/doctors"): {
        "department_code": "300",
        "name": "赵医生",
        "title": "医师",
    },
    ("POST", "/v1/appointments/bookings"): {"session_id": "{session}", "resident_id": "{rid}"},
    ("POST", "/v1/appointments/check-in"): {"card_number": "{card}", "chip_serial": "{chip}"},
    ("POST", "/v1/appointments/suspension/lift"): {"resident_id": "{rid}", "reason": "sweep: not suspended"},
    ("POST", "/v1/appointments/doctors/{doctor_id}/templates"): {
        "weekday": 1,
        "period": "evening",
        "slots": 2,
        "valid_from": "{today}",
    },
    ("POST", "/v1/appointments/templates/{template_id}/end"): {"last_day": "{today}"},
    ("POST", "/v1/appointments/institutions/{code}/exceptions"): {"on": "{today}", "reason": "sweep"},
    ("POST", "/v1/appointments/institutions/{code}/sessions/open"): {},
    ("POST", "/v1/settlements/pre-settlement"): {
        "resident_id": "{rid}",
        "encounter_id": "{encounter}",
        "lines": BILL,
    },
    ("POST", "/v1/settlements"): {"resident_id": "{rid}", "encounter_id": "{encounter}", "lines": BILL},
    ("POST", "/v1/settlements/{settlement_id}/refund"): {},
    ("POST", "/v1/ncms/enrolments"): {"resident_id": "{rid}", "pool": "demo", "year": 2026, "premium_fen": 1},
    ("POST", "/v1/residents/{resident_id}/health-account"): {"bank": "demo-bank"},
    ("PUT", "/v1/residents/{resident_id}/health-account/status"): {"status": "FROZEN"},
    ("POST", "/v1/banks/{bank}/notices"): {
        "bank_ref": "N-{nonce}",
        "account_number": "0",
        "amount_fen": 1,
        "value_date": "{today}",
    },
    ("POST", "/v1/banks/{bank}/withdrawals"): {
        "bank_ref": "W-{nonce}",
        "account_number": "0",
        "amount_fen": 1,
        "value_date": "{today}",
    },
    ("POST", "/v1/household-links"): {
        "guardian_id": "{rid}",
        "dependant_id": "NOPE-3",
        "relation": "parent",
        "evidence_kind": "hukou",
        "evidence": "sweep",
    },
    ("POST", "/v1/household-links/{link_id}/revoke"): {"reason": "sweep: no such link"},
    # pages: forms
    ("POST", "/portal/login"): {"username": CARD, "password": PASSWORD},
    ("POST", "/staff/login"): {"username": "auditor", "password": PASSWORD},
    ("POST", "/kiosk/session"): {"token": "{kiosk_token}"},
    ("POST", "/portal/card/lost"): {},
    ("POST", "/portal/privacy/hidden"): {"category": "hiv", "hidden": "0"},
    ("POST", "/clinic/scan"): {},
    ("POST", "/clinic/patient/{resident_id}/visits"): {"department": "内科"},
}

#: headers a route needs besides the caller's credentials
HEADERS: dict[tuple[str, str], dict[str, str]] = {
    ("POST", "/v1/settlements"): {"Idempotency-Key": "{nonce}"},
    ("POST", "/v1/settlements/{settlement_id}/refund"): {"Idempotency-Key": "{nonce}"},
}

#: path parameters that are not the column's resident's objects
PATHS: dict[tuple[str, str], dict[str, str]] = {("GET", "/portal/lang/{code}"): {"code": "en"}}

#: pages whose answer is a redirect to the login or kiosk start page when they work
LEAVING = {("POST", "/portal/logout"), ("POST", "/staff/logout"), ("POST", "/kiosk/exit")}

#: writes that change what later calls see run last, in this order
LAST = (
    ("POST", "/v1/residents/{resident_id}/card/lost"),
    ("POST", "/portal/card/lost"),
    ("POST", "/v1/residents/{resident_id}/break-glass"),
    *sorted(LEAVING),
)

#: the public auth routes refuse a made-up credential with 401: a body's fault, not the caller's
CREDENTIAL_ROUTES = {
    ("POST", "/v1/auth/terminal"),
    ("POST", "/v1/auth/card"),
    ("POST", "/v1/cards/self-service"),
}


def _fill(value: Any, w: World, who: Target, nonce: str = "") -> Any:
    """``value`` with its {placeholders} filled for the resident ``who`` (``nonce``: a fixed
    one instead of a fresh random one)."""
    if isinstance(value, dict):
        return {k: _fill(v, w, who, nonce) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, w, who, nonce) for v in value]
    if not isinstance(value, str):
        return value
    names = {
        "rid": who.resident_id,
        "card": who.card,
        "encounter": str(who.encounter),
        "today": w.today.isoformat(),
        "session": str(w.session_id),
        "doctor": str(w.doctor_id),
        "terminal": w.terminal_id,
        "chip": w.chip_serial,
        "nonce": nonce or secrets.token_hex(4),
        "kiosk_token": w.kiosk_token,
    }
    filled = re.sub(r"\{(\w+)\}", lambda m: names[m.group(1)], value)
    if value in ("{encounter}", "{session}"):
        return int(filled)
    return filled


def _path(route: tuple[str, str], w: World, who: Target) -> str:
    params = {
        "resident_id": who.resident_id,
        "encounter_id": str(who.encounter),
        "encounter_id:int": str(who.encounter),
        "booking_id": str(who.booking),
        "settlement_id": str(who.settlement),
        "notification_id": str(who.notice),
        "area_code": who.area,
        "candidate_id": "1",
        "session_id": str(w.session_id),
        "code": HOSPITAL,
        "doctor_id": str(w.doctor_id),
        "template_id": "1",
        "pool": "demo",
        "resource": "Encounter",
        "bank": "demo-bank",
        "link_id": "1",
        "number": who.card,
        "word": "lost",
        **PATHS.get(route, {}),
    }
    return re.sub(r"\{([\w:]+)\}", lambda m: params[m.group(1)], route[1])


def _cookie(client: TestClient, session: Session) -> str:
    request = Request({"type": "http", "scheme": "http", "headers": [], "method": "GET", "path": "/"})
    response = Response()
    client.app.state.web_sessions.save(request, response, session)  # type: ignore[attr-defined]
    header = response.headers["set-cookie"]
    return header.split(";", 1)[0].split("=", 1)[1]


def _login(client: TestClient, username: str) -> str:
    answer = client.post("/v1/auth/token", json={"username": username, "password": PASSWORD})
    assert answer.status_code == 200, (username, answer.text)
    token: str = answer.json()["access_token"]
    return token


def _terminal_token(client: TestClient, platform: Platform) -> str:
    with platform.terminal() as terminal:
        nonce = client.post("/v1/auth/terminal/challenge", json={"terminal_id": platform.terminal_id}).json()[
            "nonce"
        ]
        _, signature = terminal.sign_challenge(bytes.fromhex(nonce))
        answer = client.post(
            "/v1/auth/terminal",
            json={"terminal_id": platform.terminal_id, "nonce": nonce, "signature": signature.hex()},
        )
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


def _set_up(platform: Platform) -> World:
    app, node, db = platform.app, platform.app.node, platform.app.db
    today = local_date(platform.clock)
    now = platform.clock.now()
    Organisation(db).add_institution(
        OFFICE, name="中牟县新型农村合作医疗管理中心", area="410122", kind="ncms-office", issues=False
    )
    Organisation(db).add_operator(OperatorSpec("card-1", "card-1", "card-admin", CENTRE))
    with db.uow() as uow:
        uow.session.execute(  # A lives in 中原区, the district of cdc-zy and of dr-wang's hospital
            update(t.Resident)
            .where(t.Resident.resident_id == platform.resident_id)
            .values(area_code="410102")
        )
        uow.session.execute(
            update(t.Institution).where(t.Institution.code.in_((HOSPITAL, OTHER))).values(level="county")
        )
        uow.session.execute(
            insert(t.Resident),
            [
                {
                    "resident_id": B_ID,
                    "id_type": "01",
                    "id_number": B_NUMBER,
                    "name": B_NAME,
                    "sex": 2,
                    "birth_date": dt.date(1988, 5, 5),
                    "created_at": now,
                    "area_code": "410105",
                }
            ],
        )
        for username, role, institution, area, rid in (
            ("cdc-zy", Role.PUBLIC_HEALTH, None, "410102", None),
            ("ncms", Role.INSURER, OFFICE, None, None),
            ("cashier-1", Role.CASHIER, HOSPITAL, None, None),
            ("card-1", Role.CARD_ADMIN, CENTRE, None, None),
            ("resident-b", Role.RESIDENT, None, None, B_ID),
        ):
            node.accounts.create(
                uow,
                username=username,
                name=username,
                role=role,
                password=PASSWORD,
                institution_code=institution,
                area_code=area,
                resident_id=rid,
            )
        uow.commit()
    insurer = Actor("ncms", Role.INSURER, institution_code=OFFICE)
    for rid in (platform.resident_id, B_ID):
        node.settlement.enrol(insurer, rid, pool="demo", year=today.year, premium_fen=40_000)

    client = TestClient(create_app(app))
    a = Target(platform.resident_id, "410102", CARD)
    b = Target(B_ID, "410105", B_NUMBER)
    w = World(client, a, b, today, platform.terminal_id, platform.chip_serial)
    for username in ("dr-wang", "dr-li", "cdc-zy", "ncms", "cashier-1", "card-1", "auditor", "admin", CARD):
        w.bearer[username] = _login(client, username)
    w.bearer["resident-b"] = _login(client, "resident-b")
    w.bearer["terminal"] = _terminal_token(client, platform)

    def as_(who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {w.bearer[who]}"}

    # A's card in the hospital terminal's slot: the hospital's presence grant
    swipe = client.post(
        "/v1/swipes", json={"card_number": CARD, "chip_serial": platform.chip_serial}, headers=as_("terminal")
    )
    assert swipe.status_code == 200, swipe.text
    # A: a notice of A's own (a session of A's doctor called off), to mark read
    with db.uow() as uow:
        notice = t.Notification(resident_id=a.resident_id, kind="appointment", message="停诊", at=now)
        uow.session.add(notice)
        uow.flush()
        a.notice = notice.id
    # A: an open visit at the hospital, and its settlement
    opened = client.post(
        f"/v1/residents/{a.resident_id}/encounters", json={"department": "内科"}, headers=as_("dr-wang")
    )
    assert opened.status_code == 201, opened.text
    a.encounter = opened.json()["id"]
    settled = client.post(
        "/v1/settlements",
        json={"resident_id": a.resident_id, "encounter_id": a.encounter, "lines": BILL},
        headers={**as_("cashier-1"), "Idempotency-Key": "SWEEP-A"},
    )
    assert settled.status_code == 201, settled.text
    a.settlement = settled.json()["id"]
    # B: a visit at the other hospital, settled there, then closed (no tie left anywhere)
    with db.uow() as uow:
        row = t.Encounter(
            resident_id=B_ID,
            institution_code=OTHER,
            kind="outpatient",
            status="open",
            number="MZ-SWEEP-B",
            department="内科",
            carrier="card",
            started_at=now - dt.timedelta(hours=1),
            fees=[],
            created_at=now - dt.timedelta(hours=1),
        )
        uow.session.add(row)
        uow.commit()
        b.encounter = row.id
    view, _ = node.settlement.settle(
        Actor("cashier-other", Role.CASHIER, institution_code=OTHER),
        B_ID,
        bill_of(b.encounter, [(x["item"], x["quantity"], x["unit_price_fen"]) for x in BILL]),  # type: ignore[misc]
        key="SWEEP-B",
    )
    b.settlement = view.id
    with db.uow() as uow:
        uow.session.execute(update(t.Encounter).where(t.Encounter.id == b.encounter).values(status="closed"))
        uow.commit()
    # a schedule at the hospital: A books today's session (which puts him in care there too), B
    # tomorrow's (a booking for today would: access.py's care source)
    w.doctor_id = schedule_by_http(client, as_("admin"), today)
    sessions = client.get(
        f"/v1/appointments/institutions/{HOSPITAL}/sessions",
        params={"last_day": (today + dt.timedelta(days=1)).isoformat()},
        headers=as_(CARD),
    )
    assert sessions.status_code == 200 and len(sessions.json()) == 2, sessions.text
    w.session_id, w.b_session = (x["id"] for x in sessions.json())
    for who, target, session in ((CARD, a, w.session_id), ("resident-b", b, w.b_session)):
        booked = client.post("/v1/appointments/bookings", json={"session_id": session}, headers=as_(who))
        assert booked.status_code == 201, booked.text
        target.booking = booked.json()["id"]
    # A has a health account (opened by himself on the portal)
    opened = client.post(
        f"/v1/residents/{a.resident_id}/health-account", json={"bank": "demo-bank"}, headers=as_(CARD)
    )
    assert opened.status_code == 201, opened.text
    # what the kiosk's agent hands the kiosk page once A's card and PIN were checked there
    card_actor = Actor(a.resident_id, Role.RESIDENT, resident_id=a.resident_id, carrier=Carrier.CARD)
    w.kiosk_token = client.app.state.tokens.issue(card_actor, now).access_token  # type: ignore[attr-defined]
    for username, token in w.bearer.items():
        w.cookies[username] = Session.fresh(token)
    w.cookies["anonymous"] = Session.fresh()
    return w


@dataclass
class Call:
    route: tuple[str, str]
    column: str
    status: int
    outcome: str  # the observed class
    body: str
    sent: str  # the path, query and body of the request: what the caller knew already


def _classify(status: int, location: str) -> str:
    to = location.split("?", 1)[0]
    if status == 401 or (300 <= status < 400 and (to.endswith("/login") or to == "/kiosk")):
        return Outcome.LOGIN.value
    if status < 400:
        return Outcome.ALLOW.value
    if status == 403:
        return Outcome.DENY.value
    if status == 404:
        return Outcome.HIDDEN.value
    return str(status)


def _another_token(w: World, account: str) -> str:
    """A second token of ``account``, not equal to its first (the clock stands still: a login
    now would give the very same token)."""
    tokens = w.client.app.state.tokens  # type: ignore[attr-defined]
    now = w.client.app.state.node.clock.now()  # type: ignore[attr-defined]
    w.minted += 1
    token: str = tokens.issue(
        tokens.actor(w.bearer[account], now), now + dt.timedelta(seconds=w.minted)
    ).access_token
    return token


def _call(w: World, route: tuple[str, str], column: str) -> Call:
    method, template = route
    account, which = COLUMNS[column]
    who = w.a if which == "a" else w.b
    path = _path(route, w, who)
    headers: dict[str, str] = _fill(HEADERS.get(route, {}), w, who)
    w.client.cookies.clear()
    page = not template.startswith(("/v1", "/fhir", "/openapi", "/docs", "/health"))
    cookie_of = "anonymous" if account is None else account
    if page and cookie_of in w.cookies and account != "terminal":
        session = w.cookies[cookie_of]
        if route in LEAVING and account is not None:  # a logout revokes its token: a token of its own
            session = Session.fresh(_another_token(w, account))
        headers["Cookie"] = f"{COOKIE}={_cookie(w.client, session)}"
        headers[CSRF_HEADER] = session.csrf
    elif account is not None and not page:
        headers["Authorization"] = f"Bearer {w.bearer[account]}"
    params = _fill(QUERIES.get(route, {}), w, who)
    body = _fill(BODIES.get(route), w, who)
    kwargs: dict[str, Any] = {"headers": headers, "params": params, "follow_redirects": False}
    if method in ("POST", "PUT", "PATCH"):
        if route == ("POST", "/v1/banks/{bank}/reconciliation"):
            kwargs["content"] = b"bank_ref,account_number,amount_fen\n"
            headers["Content-Type"] = "text/csv"
        elif page:
            kwargs["data"] = body or {}
        else:
            kwargs["json"] = body if body is not None else {}
    answer = w.client.request(method, path, **kwargs)
    location = answer.headers.get("location", "") or answer.headers.get("hx-redirect", "")
    text = answer.text + " " + location + " " + answer.headers.get("link", "")
    outcome = _classify(answer.status_code, location)
    if route in LEAVING and 300 <= answer.status_code < 400:
        outcome = Outcome.ALLOW.value
    sent = f"{path} {params} {body}"
    return Call(route, column, answer.status_code, outcome, text, sent)


def _same_request(w: World, route: tuple[str, str], column: str) -> tuple[str, ...]:
    """What makes a request: two columns of one account (resident-self and -other on a portal
    page, the terminal's two on a schedule) that would send the very same one send it once."""
    account, which = COLUMNS[column]
    who = w.a if which == "a" else w.b
    sent = (
        _path(route, w, who),
        _fill(QUERIES.get(route, {}), w, who),
        _fill(BODIES.get(route), w, who, "-"),
    )
    return (*route, str(account), repr(sent))


def _order(routes: Iterable[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    """Reads first, then writes; the writes of :data:`LAST` at the end."""
    listed = list(routes)
    yield from (r for r in listed if r[0] == "GET")
    yield from (r for r in listed if r[0] != "GET" and r not in LAST)
    yield from (r for r in LAST if r in listed)


def test_the_docs_show_the_table() -> None:
    text = DOCS.read_text(encoding="utf-8")
    begin, end = "<!-- policy:begin -->\n", "<!-- policy:end -->"
    assert begin in text and end in text, "docs/api.md: the 'Who may call what' markers"
    shown = text.split(begin, 1)[1].split(end, 1)[0]
    assert shown == policy.markdown(), "docs/api.md is out of date: regenerate it from healthcard.api.policy"


def test_sweep_every_route_as_every_caller(platform: Platform) -> None:
    """One world per database (the setup is most of the cost): the table's coverage, the sweep,
    the searches and lists, the crossed ids (which break the glass to B), the look-up."""
    w = _set_up(platform)
    served = set(policy.served_routes(w.client.app))
    assert served - set(TABLE) == set(), "declare these routes in healthcard.api.policy"
    assert set(TABLE) - served == set(), "the table names routes the node does not serve"
    if os.environ.get("HC_SWEEP_DRAFT"):  # a maintainer's aid: the observed table, to review
        lines = []
        served = set(policy.served_routes(w.client.app))
        for route in _order(sorted(served)):
            cells = [_call(w, route, column) for column in CALLERS]
            lines.append(f"{route[0]:6} {route[1]:62} " + " ".join(f"{c.outcome:4}" for c in cells))
            for c in cells:
                if c.status >= 400 and c.outcome != "L":
                    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", c.body.split("<main", 1)[-1]))
                    lines.append(f"#   {c.column}: {c.status} {text[:200]!r}")
        Path(os.environ["HC_SWEEP_DRAFT"]).write_text("\n".join(lines) + "\n", encoding="utf-8")
        return
    secrets_of = {"a": (A_NAME, CARD, w.a.resident_id), "b": (B_NAME, B_NUMBER, B_ID)}
    calls: list[Call] = []
    mismatches: list[str] = []
    leaks: list[str] = []
    inconclusive = 0
    made: dict[tuple[str, ...], Call] = {}  # two columns of one account asking the same: one call
    for route in _order(TABLE):
        for column in CALLERS:
            same = _same_request(w, route, column)
            call = made.get(same) or _call(w, route, column)
            made[same] = call
            calls.append(call)
            want = policy.expected(*route, column)
            got = call.outcome
            where = f"{route[0]} {route[1]} as {column}: {call.status}"
            if call.status >= 500:
                mismatches.append(f"{where} (server error) {call.body[:200]}")
            elif want is Outcome.ALLOW:
                if got in (Outcome.LOGIN, Outcome.DENY) and not (
                    route in CREDENTIAL_ROUTES and call.status == 401
                ):
                    mismatches.append(f"{where}, table says allow: {call.body[:200]}")
            elif want is Outcome.DENY and got != want:
                if route[0] != "GET" and call.status in (400, 409, 422) and got != Outcome.ALLOW:
                    inconclusive += 1
                else:
                    mismatches.append(f"{where}, table says deny: {call.body[:200]}")
            elif want in (Outcome.LOGIN, Outcome.HIDDEN) and got != want:
                mismatches.append(f"{where}, table says {want.name.lower()}: {call.body[:200]}")
            account = COLUMNS[column][0]
            for resident, words in secrets_of.items():
                if resident in VISIBLE[account]:
                    continue
                for word in words:
                    if word in call.body and word not in call.sent:  # an echo is no leak
                        leaks.append(f"{where}: the answer names resident {resident.upper()} ({word})")
    counts = Counter(c.outcome for c in calls)
    print(
        f"\nauthz sweep: {len(TABLE)} routes × {len(CALLERS)} callers = {len(calls)} calls "
        f"({len(made)} requests: two columns of one account asking the same thing share one); "
        f"allowed {counts['+']}, login {counts['L']}, denied {counts['D']}, hidden/not found {counts['N']}, "
        f"other {len(calls) - sum(counts[k] for k in '+LDN')} (of which writes refused for their body "
        f"before the policy: {inconclusive}); mismatches {len(mismatches)}, leaks {len(leaks)}"
    )
    if mismatches or leaks:
        for line in (*mismatches, *leaks):
            print(line)
    assert not leaks, "\n".join(leaks)
    assert not mismatches, "\n".join(mismatches)
    _searches_and_lists_hold_only_the_callers_rows(w)
    _another_residents_object_under_ones_own_resident_is_refused(w)
    _a_role_that_never_reads_demographics_learns_nothing_from_a_lookup(w)


def _bearer(w: World, account: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {w.bearer[account]}", **extra}


def _page_headers(w: World, account: str) -> dict[str, str]:
    session = w.cookies[account]
    return {"Cookie": f"{COOKIE}={_cookie(w.client, session)}", CSRF_HEADER: session.csrf}


def _names_b(text: str) -> bool:
    return any(word in text for word in (B_ID, B_NAME, B_NUMBER))


def _searches_and_lists_hold_only_the_callers_rows(w: World) -> None:
    """The HAPI partition-leak pattern: a search by one patient, with every way of slipping a
    second one in (repeated or comma-joined parameters, a reference, _include/_revinclude, a
    paging link), answers that patient's rows or refuses — never B's; the lists without a
    patient (bookings, the access log) hold the caller's own rows only."""
    a, b = w.a.resident_id, w.b.resident_id
    w.client.cookies.clear()
    searches = (
        *("Encounter", "Condition", "Observation", "MedicationRequest", "AllergyIntolerance"),
        *("Immunization", "Appointment", "Claim"),
    )
    tricks: tuple[list[tuple[str, str]], ...] = (
        [("patient", a)],
        [("patient", f"Patient/{a}")],
        [("patient", a), ("patient", b)],
        [("patient", b), ("patient", a)],
        [("patient", f"{a},{b}")],
        [("patient", a), ("_include", "*"), ("_revinclude", "*")],
        [("patient", a), ("subject", b), ("_has:Encounter:patient:_id", b)],
        [("patient", a), ("_count", "1"), ("_offset", "1")],
    )
    checked = 0
    for account in ("dr-wang", CARD, "cashier-1"):
        for resource in searches:
            for params in tricks if account == "dr-wang" else tricks[2:5]:
                answer = w.client.get(f"/fhir/{resource}", params=params, headers=_bearer(w, account))
                assert answer.status_code < 500, answer.text
                where = f"{account} /fhir/{resource}?{params}: {answer.status_code}"
                if answer.status_code == 200:
                    bundle = answer.json()
                    shown = str(bundle.get("entry", [])) + str(bundle.get("link", []))
                    assert not _names_b(shown.replace(str(answer.url), "")), where
                    for entry in bundle.get("entry", []):
                        refs = re.findall(r"Patient/([\w-]+)", str(entry))
                        assert set(refs) <= {a}, (where, refs)
                else:
                    assert not _names_b(answer.text.replace(str(answer.url), "")), where
                checked += 1
    # the lists that name no patient: the caller's own rows only
    for column, (caller, _) in COLUMNS.items():
        if caller is None or "b" in VISIBLE[caller]:
            continue
        headers = _bearer(w, caller)
        for path in (
            "/v1/appointments/bookings",
            "/fhir/Appointment",
            "/v1/appointments/suspension",
            f"/v1/appointments/sessions/{w.b_session}",  # the session B booked: who booked stays out
            f"/v1/appointments/sessions/{w.b_session}/slots",
            f"/fhir/Slot?schedule=Schedule/{w.doctor_id}",
            f"/fhir/Schedule/{w.doctor_id}",
        ):
            answer = w.client.get(path, headers=headers)
            assert answer.status_code < 500 and not _names_b(answer.text), (column, path, answer.text[:300])
            checked += 1
    own = w.client.get("/v1/appointments/bookings", headers=_bearer(w, CARD))
    assert own.status_code == 200, own.text
    assert w.a.booking in {x["id"] for x in own.json()} and w.b.booking not in {x["id"] for x in own.json()}
    for account in (CARD, "auditor"):  # the trail of A: A's entries only, whoever reads it
        log = w.client.get(f"/v1/residents/{a}/access-log", headers=_bearer(w, account))
        assert log.status_code == 200 and a in log.text and not _names_b(log.text), (account, log.text[:300])
    print(f"\nauthz sweep, searches and lists: {checked + 2} answers, none names the other resident")


def _another_residents_object_under_ones_own_resident_is_refused(w: World) -> None:
    """Ids that do not belong together: B's visit, booking, settlement or notification under a
    path (or body) that names A, as a caller who may see A — refused, and nothing of B shown
    or changed."""
    a, b = w.a, w.b
    w.client.cookies.clear()
    # B has a notification (dr-li broke the glass to B's record)
    broke = w.client.post(
        f"/v1/residents/{b.resident_id}/break-glass",
        json={"reason": "unconscious, no card, allergy check"},
        headers=_bearer(w, "dr-li"),
    )
    assert broke.status_code == 201, broke.text
    (notice,) = w.client.get(
        f"/v1/residents/{b.resident_id}/notifications", headers=_bearer(w, "resident-b")
    ).json()
    cases: list[tuple[str, str, str, dict[str, Any] | None]] = [
        ("dr-wang", "GET", f"/v1/residents/{a.resident_id}/encounters/{b.encounter}", None),
        ("dr-wang", "GET", f"/v1/residents/{a.resident_id}/encounters/{b.encounter}/card-record", None),
        ("dr-wang", "POST", f"/v1/residents/{a.resident_id}/encounters/{b.encounter}/items", {}),
        ("dr-wang", "POST", f"/v1/residents/{a.resident_id}/encounters/{b.encounter}/close", {}),
        ("dr-wang", "GET", f"/v1/appointments/bookings/{b.booking}", None),
        ("dr-wang", "GET", f"/fhir/Appointment/{b.booking}", None),
        (
            "dr-wang",
            "POST",
            "/v1/appointments/bookings",
            {"session_id": w.session_id, "resident_id": b.resident_id},
        ),
        ("terminal", "GET", f"/v1/residents/{a.resident_id}/encounters/{b.encounter}", None),
        ("terminal", "POST", f"/v1/appointments/bookings/{b.booking}/cancel", None),
        ("cashier-1", "GET", f"/v1/settlements/{b.settlement}", None),
        ("cashier-1", "GET", f"/fhir/Claim/{b.settlement}", None),
        ("cashier-1", "GET", f"/fhir/ClaimResponse/{b.settlement}", None),
        ("cashier-1", "POST", f"/v1/settlements/{b.settlement}/refund", {}),
        (
            "cashier-1",
            "POST",
            "/v1/settlements/pre-settlement",
            {"resident_id": a.resident_id, "encounter_id": b.encounter, "lines": BILL},
        ),
        (CARD, "GET", f"/v1/appointments/bookings/{b.booking}", None),
        (CARD, "POST", f"/v1/appointments/bookings/{b.booking}/cancel", None),
        (CARD, "GET", f"/v1/settlements/{b.settlement}", None),
    ]
    pages: list[tuple[str, str, str]] = [
        ("dr-wang", "GET", f"/clinic/patient/{a.resident_id}/visits/{b.encounter}"),
        ("dr-wang", "POST", f"/clinic/patient/{a.resident_id}/visits/{b.encounter}/diagnoses"),
        ("cashier-1", "GET", f"/clinic/patient/{a.resident_id}/bill/{b.encounter}"),
        ("cashier-1", "POST", f"/clinic/patient/{a.resident_id}/bill/{b.encounter}"),
        (CARD, "GET", f"/portal/visits/{b.encounter}"),
        (CARD, "GET", f"/portal/visits/{b.encounter}.pdf"),
        (CARD, "POST", f"/portal/appointments/{b.booking}/cancel"),
    ]
    for account, method, path, body in cases:
        headers = _bearer(
            w, account, **({"Idempotency-Key": secrets.token_hex(4)} if "settlements" in path else {})
        )
        answer = w.client.request(method, path, json=body, headers=headers)
        where = f"{account} {method} {path}: {answer.status_code} {answer.text[:200]}"
        assert answer.status_code in (403, 404, 409, 422), where
        assert not _names_b(answer.text.replace(path, "")), where
    for account, method, path in pages:
        answer = w.client.request(method, path, headers=_page_headers(w, account), follow_redirects=False)
        where = f"{account} {method} {path}: {answer.status_code}"
        assert answer.status_code in (403, 404, 409, 422), where
        assert not _names_b(answer.text.replace(path, "")), where
    # B's notice under A's path: not A's, so not found (it answered 204 and did nothing before)
    marked = w.client.post(
        f"/v1/residents/{a.resident_id}/notifications/{notice['id']}/read", headers=_bearer(w, CARD)
    )
    assert marked.status_code == 404, marked.text
    # nothing of B's changed
    (after,) = w.client.get(
        f"/v1/residents/{b.resident_id}/notifications", headers=_bearer(w, "resident-b")
    ).json()
    assert after["read_at"] is None
    booking = w.client.get(f"/v1/appointments/bookings/{b.booking}", headers=_bearer(w, "resident-b")).json()
    assert booking["status"] == "BOOKED", booking
    print(
        f"\nauthz sweep, crossed ids: {len(cases) + len(pages)} requests refused, nothing of B shown or changed"
    )


def _a_role_that_never_reads_demographics_learns_nothing_from_a_lookup(w: World) -> None:
    """Fixed by the sweep: ``GET /v1/residents/lookup`` answered 404 for an unknown ID number and
    403 for a known one, so the admin, the auditor or the insurer — who may never read
    demographics — learned whether a person is registered.  Now such a role is refused (and
    audited, naming no resident) before the look-up: the same 403 for both."""
    db = w.client.app.state.app.db  # type: ignore[attr-defined]

    def denials() -> int:
        with db.uow() as uow:
            found = uow.session.scalar(
                select(func.count())
                .select_from(t.AuditEntry)
                .where(
                    t.AuditEntry.what == "identifier",
                    t.AuditEntry.action == "deny",
                    t.AuditEntry.resident_id.is_(None),
                )
            )
            return int(found or 0)

    before = denials()
    for account in ("admin", "auditor", "ncms"):
        answers = [
            w.client.get(
                "/v1/residents/lookup",
                params={"system": "citizen-id", "value": value},
                headers=_bearer(w, account),
            )
            for value in (CARD, "110101199001011234")
        ]
        assert [x.status_code for x in answers] == [403, 403], [x.text for x in answers]
        assert answers[0].json() == answers[1].json()
    assert denials() == before + 6
    # who may read demographics still finds the resident: the clinician with the card present
    found = w.client.get(
        "/v1/residents/lookup", params={"system": "citizen-id", "value": CARD}, headers=_bearer(w, "dr-wang")
    )
    assert found.status_code == 200 and found.json()["resident_id"] == w.a.resident_id, found.text
