"""The self-service kiosk (自助终端): a full-screen browser in a hospital hall, a card slot and a
PIN pad; the resident's own portal pages in the kiosk's layout once the card and its PIN say who
is there.

::

    /kiosk          "请插入居民健康卡" — static/kiosk.js asks the local reader agent (GET /status)
                    until a card is in, then →
    /kiosk/pin      the PIN pad: the PIN goes from the browser to the agent (POST /login) and the
                    card judges it; the agent has the platform open the resident's session for
                    this kiosk (its SAM, a terminal of kind ``kiosk``) and hands back the token →
    POST /kiosk/session   the token, checked (a RESIDENT carried by the CARD), becomes a new
                    session marked ``kiosk`` →
    /kiosk/issue    自助发卡: an approved application's card made at the kiosk, with the PIN
                    the resident chooses (browser → agent → platform; never this page's server)
    /kiosk/menu     big tiles to the portal's pages, which render in the kiosk's layout (base.html
                    switches on ``kiosk``): full screen, large targets, an "退卡" button, and
                    kiosk.js ends the session after :data:`IDLE_SECONDS` without a touch or when
                    the card leaves the slot.

**The PIN never reaches this server**: it is typed into a field with no ``name`` (a form that
could not be scripted would send nothing) and travels only to the agent on 127.0.0.1.  Three
wrong PINs block the card (the card counts, not us).

The kiosk's pages are the portal's pages — no copy: a kiosk session differs from a portal one by
a flag in the signed session cookie (:attr:`healthcard.web.session.Session.kiosk`), which makes
``render`` load the agent's client and the kiosk's script, and a lost login go back to
``/kiosk`` instead of the portal's login form.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Form
from starlette.requests import Request
from starlette.responses import Response

from healthcard.errors import NotAuthenticated
from healthcard.platform.access import Carrier, Role
from healthcard.web.pages import (
    KIOSK_IDLE_SECONDS,
    ResidentDep,
    end_session,
    error_page,
    node_of,
    own_resident,
    page_router,
    redirect,
    render,
    session_of,
    sessions_of,
    token_revoked,
)
from healthcard.web.session import Session

router = page_router("/kiosk")

#: a kiosk session ends after this long without a touch or a key (kiosk.js; base.html passes it)
IDLE_SECONDS = KIOSK_IDLE_SECONDS
#: the resident's menu at the kiosk: (catalog key, the portal page); the pages are the portal's
MENU = (
    ("kiosk.menu.card", "/portal"),
    ("kiosk.menu.book", "/portal/appointments/new"),
    ("kiosk.menu.bookings", "/portal/appointments"),
    ("nav.visits", "/portal/visits"),
    ("nav.vaccinations", "/portal/vaccinations"),
    ("nav.fees", "/portal/fees"),
    ("nav.account", "/portal/account"),
    ("nav.archive", "/portal/archive"),
    ("nav.privacy", "/portal/privacy"),
    ("nav.ehc", "/portal/ehc"),
)


def _kiosk_session() -> Session:
    """A kiosk's session without a resident: whoever used the kiosk before is gone."""
    return Session.fresh(kiosk=True)


@router.get("")
def attract(request: Request) -> Response:
    """The attract screen: insert the card.  Any session of the previous resident ends here."""
    return render(request, "kiosk/attract.html", {}, session=_kiosk_session(), agent=True)


@router.get("/pin")
def pin_pad(request: Request) -> Response:
    current = session_of(request)
    session = None if current is not None and current.kiosk and current.token is None else _kiosk_session()
    return render(request, "kiosk/pin.html", {}, session=session, agent=True)


@router.get("/issue")
def issue(request: Request) -> Response:
    """自助发卡: the ID number and name the kiosk read off the ID card (typed, in the demo) and
    the PIN chosen twice on the keypad.  Nothing of it is posted here: kiosk.js sends it to the
    kiosk's reader agent (``POST /issue``), which asks the platform for the card over the kiosk's
    SAM-authenticated session and dispenses it into the slot.  Any resident's session ends."""
    return render(request, "kiosk/issue.html", {}, session=_kiosk_session(), agent=True)


@router.post("/session")
def start(request: Request, token: Annotated[str, Form(max_length=4096)] = "") -> Response:
    """The resident's token the agent got for this kiosk, as a kiosk session.  Only a resident
    whose card was at a kiosk (carrier CARD) is let in: a password token pasted here is not a
    card at the kiosk."""
    try:
        actor = request.app.state.tokens.actor(token, node_of(request).clock.now())
    except NotAuthenticated:
        return error_page(request, 403, "", title="kiosk.session.refused")
    if token_revoked(request, token):  # a session that ended (退卡) does not come back
        return error_page(request, 403, "", title="kiosk.session.refused")
    if actor.role != Role.RESIDENT or actor.carrier != Carrier.CARD or actor.resident_id is None:
        return error_page(request, 403, "", title="kiosk.session.refused")
    response = redirect(request, "/kiosk/menu")
    sessions_of(request).save(request, response, Session.fresh(token, kiosk=True))
    return response


@router.get("/menu")
def menu(request: Request, actor: ResidentDep) -> Response:
    person = node_of(request).person(actor, own_resident(actor))
    return render(request, "kiosk/menu.html", {"name": person.name, "menu": MENU, "nav": "kiosk"})


@router.post("/exit")
def exit_(request: Request) -> Response:
    """退卡: the session ends (idle, the card taken out, or the button); back to the attract
    screen with a kiosk session that holds no one."""
    end_session(request)
    response = redirect(request, "/kiosk")
    sessions_of(request).save(request, response, _kiosk_session())
    return response


__all__ = ["IDLE_SECONDS", "MENU", "router"]
