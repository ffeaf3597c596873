"""The card centre's pages (卡管中心) under ``/admin/cards/…``: the applications queue (approve,
reject, issue), one card by number (status, chips, history; report lost, recover, replace,
cancel) and the provinces' hot lists.  The chart of cards issued per day stays at
``/admin/cards`` (:mod:`healthcard.web.admin`).

Every page calls :class:`~healthcard.platform.carddesk.CardDesk` with the logged-in actor: the
card administrator acts in the card centre as an account (``Acting``), which the card centre
checks as it checks its own operators — the role may take the step, the account's card centre
is of the card's province — and whose username goes into the card's history.  Personalising a
card needs a chip source: the node's card tray (``app.chips``, ``HEALTHCARD_CARD_TRAY``); a
process without one says so on the page and offers no button that would fail.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Form, Path, Query
from starlette.requests import Request
from starlette.responses import Response

from healthcard.errors import InvalidValue, NotFound
from healthcard.issuance.cardcentre import CardHistory
from healthcard.issuance.chips import ChipSource
from healthcard.issuance.lifecycle import STEPS, Action, ApplicationStatus, CardStatus
from healthcard.platform.access import Actor, Role
from healthcard.platform.carddesk import CardDesk, card_number
from healthcard.web.admin import boards_of
from healthcard.web.pages import attempt, page_router, redirect, render
from healthcard.web.staff import staff

router = page_router("/admin/cards")

CardAdminDep = Annotated[Actor, Depends(staff(Role.CARD_ADMIN))]
HotListDep = Annotated[Actor, Depends(staff(Role.CARD_ADMIN, Role.ADMIN))]

#: applications per page of the queue
PAGE = 25
#: an application number (``SQ`` + province + 12 digits) or a card number in a URL
AppNumber = Annotated[str, Path(pattern=r"^[A-Z0-9]{1,20}$")]
CardNumber = Annotated[str, Path(pattern=r"^[0-9A-Za-z]{1,18}$")]
Reason = Annotated[str, Form(max_length=400)]
#: the confirmations a redirect may show (``?done=…``): catalog keys, nothing else
DONE = {
    k: f"cc.done.{k}"
    for k in ("approved", "rejected", "issued", "lost", "recovered", "replaced", "cancelled")
}
#: the card page's actions: URL word → (the step, its confirmation, needs a chip)
ACTIONS: dict[str, tuple[Action, str, bool]] = {
    "lost": (Action.REPORT_LOST, "lost", False),
    "recover": (Action.RECOVER, "recovered", False),
    "replace": (Action.REPLACE, "replaced", True),
    "cancel": (Action.CANCEL, "cancelled", False),
}


def _desk(request: Request) -> CardDesk:
    found: CardDesk = request.app.state.app.card_desk
    return found


def _chips(request: Request) -> Callable[[], ChipSource] | None:
    """The node's card tray, or None: this process personalises no card."""
    found: Callable[[], ChipSource] | None = getattr(request.app.state.app, "chips", None)
    return found


def _page(
    request: Request, actor: Actor, template: str, nav: str, context: dict[str, Any], **kw: Any
) -> Response:
    return render(request, template, {"boards": boards_of(actor), "nav": nav, **context}, **kw)


# --- the applications queue ------------------------------------------------------------------------
def _queue(request: Request, actor: Actor, status: str, page: int) -> dict[str, Any]:
    rows = _desk(request).applications(actor, status or None, offset=(page - 1) * PAGE, limit=PAGE + 1)
    return {
        "rows": rows[:PAGE],
        "status": status,
        "page": page,
        "more": len(rows) > PAGE,
        "statuses": [s.value for s in ApplicationStatus],
        "can_issue": _chips(request) is not None,
        "failed": None,
    }


def _back(status: str, page: int, done: str | None = None) -> str:
    query = {
        k: v for k, v in (("status", status), ("page", str(page) if page > 1 else ""), ("done", done)) if v
    }
    return "/admin/cards/applications" + (f"?{urlencode(query)}" if query else "")


StatusQuery = Annotated[str, Query(pattern=r"^(|SUBMITTED|APPROVED|ISSUED|REJECTED)$")]
PageQuery = Annotated[int, Query(ge=1, le=100_000)]
StatusForm = Annotated[str, Form(pattern=r"^(|SUBMITTED|APPROVED|ISSUED|REJECTED)$")]
PageForm = Annotated[int, Form(ge=1, le=100_000)]


@router.get("/applications")
def applications(
    request: Request,
    actor: CardAdminDep,
    status: StatusQuery = "SUBMITTED",
    page: PageQuery = 1,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """The queue: SUBMITTED first (the default filter), newest first, 25 a page."""
    context = _queue(request, actor, status, page)
    return _page(
        request, actor, "admin/applications.html", "applications", {**context, "done": DONE.get(done or "")}
    )


def _decided(
    request: Request,
    actor: Actor,
    number: str,
    status: str,
    page: int,
    action: Callable[[], object],
    done: str,
) -> Response:
    """Run one decision on application ``number``; refused, the queue again with the error next
    to that row's field (or at the top), nothing written."""
    outcome = attempt(request, action, fields=("reason",))
    if outcome.ok:
        return redirect(request, _back(status, page, done))
    context = {
        **_queue(request, actor, status, page),
        "failed": number,
        "errors": outcome.errors,
        "done": None,
    }
    return _page(request, actor, "admin/applications.html", "applications", context, status=outcome.status)


@router.post("/applications/{number}/approve")
def approve(
    request: Request, actor: CardAdminDep, number: AppNumber, status: StatusForm = "", page: PageForm = 1
) -> Response:
    return _decided(
        request, actor, number, status, page, lambda: _desk(request).approve(actor, number), "approved"
    )


@router.post("/applications/{number}/reject")
def reject(
    request: Request,
    actor: CardAdminDep,
    number: AppNumber,
    reason: Reason = "",
    status: StatusForm = "",
    page: PageForm = 1,
) -> Response:
    return _decided(
        request, actor, number, status, page, lambda: _desk(request).reject(actor, number, reason), "rejected"
    )


@router.post("/applications/{number}/issue")
def issue(
    request: Request, actor: CardAdminDep, number: AppNumber, status: StatusForm = "", page: PageForm = 1
) -> Response:
    """Personalise the card of an approved application on a chip of the node's card tray."""
    chips = _chips(request)

    def action() -> object:
        if chips is None:
            raise InvalidValue("chips", "this server has no chip source (HEALTHCARD_CARD_TRAY) configured")
        return _desk(request).issue(actor, number, chips())

    return _decided(request, actor, number, status, page, action, "issued")


# --- one card ----------------------------------------------------------------------------------------
@router.get("/card")
def lookup(
    request: Request,
    actor: CardAdminDep,
    card_number_: Annotated[str | None, Query(alias="card_number", max_length=40)] = None,
) -> Response:
    """The look-up form; with a number, that card's page (an unknown one: the error under the
    field, 404)."""
    if card_number_ is None:
        return _page(request, actor, "admin/card_lookup.html", "card", {"values": {"card_number": ""}})

    unknown: list[str] = []

    def find() -> str:
        number = card_number(card_number_ or "")
        try:
            return _desk(request).card(actor, number).card_number
        except NotFound:
            unknown.append(number)
            raise InvalidValue("card_number", f"no card has the number {number}") from None

    outcome = attempt(request, find, fields=("card_number",))
    if outcome.result is not None:
        return redirect(request, f"/admin/cards/card/{outcome.result}")
    return _page(
        request,
        actor,
        "admin/card_lookup.html",
        "card",
        {"values": {"card_number": card_number_}, "errors": outcome.errors},
        status=404 if unknown else outcome.status,
    )


def _actions(history: CardHistory) -> list[str]:
    """The actions the current chip's status allows (the card centre checks again)."""
    current = history.current
    if current is None or not current.status.live or current.status is CardStatus.PERSONALISING:
        return []
    return [word for word, (step, _, _) in ACTIONS.items() if current.status in STEPS[step].sources]


def _card_context(request: Request, actor: Actor, number: str) -> dict[str, Any]:
    history = _desk(request).card(actor, number)
    return {
        "history": history,
        "current": history.current,
        "actions": _actions(history),
        "can_issue": _chips(request) is not None,
        "failed": None,
        "values": {},
    }


@router.get("/card/{number}")
def card(
    request: Request,
    actor: CardAdminDep,
    number: CardNumber,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    context = _card_context(request, actor, card_number(number))
    return _page(request, actor, "admin/card.html", "card", {**context, "done": DONE.get(done or "")})


@router.post("/card/{number}/{word}")
def act(
    request: Request,
    actor: CardAdminDep,
    number: CardNumber,
    word: Annotated[str, Path(pattern="^(lost|recover|replace|cancel)$")],
    reason: Reason = "",
) -> Response:
    """Report lost, recover, replace (a new chip from the tray) or cancel — with a reason."""
    desk, number = _desk(request), card_number(number)
    chips = _chips(request)

    def action() -> object:
        if word == "lost":
            return desk.report_lost(actor, number, reason)
        if word == "recover":
            return desk.recover(actor, number, reason)
        if word == "cancel":
            return desk.cancel(actor, number, reason)
        if chips is None:
            raise InvalidValue("chips", "this server has no chip source (HEALTHCARD_CARD_TRAY) configured")
        return desk.replace(actor, number, reason, chips())

    outcome = attempt(request, action, fields=("reason",))
    if outcome.ok:
        return redirect(request, f"/admin/cards/card/{number}?done={ACTIONS[word][1]}")
    context = {
        **_card_context(request, actor, number),
        "failed": word,
        "errors": outcome.errors,
        "values": {"reason": reason},
        "done": None,
    }
    return _page(request, actor, "admin/card.html", "card", context, status=outcome.status)


# --- hot lists ---------------------------------------------------------------------------------------
@router.get("/hotlist")
def hotlist(request: Request, actor: HotListDep) -> Response:
    """Each province's hot list: version, when it changed, chips listed, the latest changes."""
    return _page(request, actor, "admin/hotlist.html", "hotlist", {"lists": _desk(request).hotlists(actor)})


__all__ = ["ACTIONS", "DONE", "PAGE", "router"]
