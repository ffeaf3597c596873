"""Staff login (工作人员登录) for every staff role, and the dependency a staff area's pages declare.

The resident portal keeps its own login (it refuses staff); every staff area — the
administrators' dashboards under ``/admin`` today, the clinic console later — shares this one:
the same session cookie and CSRF machinery as the portal (:mod:`healthcard.web.session`), the
same ``node.login`` (audited, failure counts), a new session at login.

A staff page declares who may see it with :func:`staff`::

    CardAdminDep = Annotated[Actor, Depends(staff(Role.CARD_ADMIN, Role.ADMIN))]

Nobody logged in (or an expired token) → a redirect to ``/staff/login?next=…``; someone logged
in with another role → the 403 page (they are who they are: logging in again would not help,
and a redirect would hide why).  After login a person lands on ``next``, else on their role's
home (:data:`LANDING`; a console registers its own there), else on ``/admin``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Form, Query
from starlette.requests import Request
from starlette.responses import Response

from healthcard.errors import PermissionDenied
from healthcard.platform.access import Actor, Role
from healthcard.web.pages import (
    LoginForm,
    LoginRequired,
    actor_of,
    end_session,
    page_router,
    password_login,
    redirect,
    render,
    safe_next,
    sessions_of,
)

router = page_router("/staff")

LOGIN = "/staff/login"
#: who logs in here: every role but the resident (the portal), a terminal (its SAM) and a bank
STAFF_ROLES = frozenset(Role) - {Role.RESIDENT, Role.TERMINAL, Role.BANK}
#: where a role lands after login when no ``next`` was asked for (a console adds its own)
LANDING: dict[Role, str] = {}
DEFAULT_LANDING = "/admin"


def staff(*roles: Role) -> Callable[[Request], Actor]:
    """A dependency: the logged-in staff member, who must have one of ``roles``.  No valid
    session → the staff login page; another role (a resident too) → 403."""
    allowed = frozenset(roles)
    if not allowed or not allowed <= STAFF_ROLES:
        raise ValueError(f"staff pages are for staff roles, not {sorted(allowed - STAFF_ROLES)}")

    def dependency(request: Request) -> Actor:
        actor = actor_of(request)
        if actor is None:
            raise LoginRequired(LOGIN)
        request.state.actor = actor  # the 403 page still shows the logout button
        if actor.role not in allowed:
            raise PermissionDenied(f"this page is for {', '.join(sorted(r.value for r in allowed))}")
        return actor

    return dependency


#: any staff member (the dashboards' index)
AnyStaffDep = Annotated[Actor, Depends(staff(*STAFF_ROLES))]


def landing(role: Role) -> str:
    return LANDING.get(role, DEFAULT_LANDING)


@router.get("/login")
def login_page(
    request: Request,
    next: Annotated[str | None, Query(max_length=300)] = None,
    expired: Annotated[str | None, Query(max_length=1)] = None,
) -> Response:
    return render(
        request,
        "staff/login.html",
        {"next": safe_next(next, ""), "expired": expired == "1", "values": {"username": ""}},
    )


#: the staff login: every staff role
LOGIN_FORM = LoginForm(
    template="staff/login.html",
    username_hint="your username",
    wrong="the username or the password is wrong",
    refused_key="staff.login.refused",
    admits=lambda actor: actor.role in STAFF_ROLES,
    outsider="staff login: residents log in at the portal",
    default_next="",
)


@router.post("/login")
def login(
    request: Request,
    username: Annotated[str, Form(max_length=40)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    return password_login(
        request,
        LOGIN_FORM,
        username=username,
        password=password,
        next=next,
        landing=lambda actor: landing(actor.role),
    )


@router.post("/logout")
def logout(request: Request) -> Response:
    end_session(request)
    response = redirect(request, LOGIN)
    sessions_of(request).clear(request, response)
    return response


__all__ = ["DEFAULT_LANDING", "LANDING", "LOGIN", "STAFF_ROLES", "AnyStaffDep", "landing", "router", "staff"]
