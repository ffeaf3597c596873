"""What every page of the web layer shares: rendering a template, knowing who is logged in, the
CSRF check, turning errors into pages, and forms that show a field-named error next to the field.

A router of pages is made with :func:`page_router` (its routes are :class:`PageRoute`), so that
nothing of this can be forgotten on a new page:

* every **POST** (any method but GET/HEAD) is refused with a 403 page — before the route runs,
  so nothing is written — unless it carries the session's CSRF token (form field ``csrf``, or
  the ``X-CSRF-Token`` header that htmx sends from ``hx-headers`` on ``<body>``);
* a page that needs a login declares ``actor: ResidentDep`` (or another ``*Dep`` of
  :func:`logged_in`); no valid session → a redirect to the login page (htmx: ``HX-Redirect``);
* an error a route lets through becomes a page with the API's status and message (the API's
  handlers of :mod:`healthcard.api.problems` are asked for both, so the two never disagree); an
  unexpected one a plain 500 page — never a stack trace;
* every page is sent with a strict Content-Security-Policy (scripts and styles from ``/static``
  only: no inline script, no inline style) and ``no-store`` (a resident's data is not cached by
  the browser or a proxy).
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import logging
import os
from collections.abc import Callable, Collection, Coroutine, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Annotated, Any, Generic, TypeVar

from fastapi import APIRouter, Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from healthcard import __version__
from healthcard.api.deps import client_address
from healthcard.api.tokens import TERMINAL_MINUTES, Tokens
from healthcard.errors import (
    HealthCardError,
    InvalidValue,
    NotAuthenticated,
    PermissionDenied,
    TooManyAttempts,
)
from healthcard.platform.access import Actor, Role
from healthcard.platform.node import Node
from healthcard.web import i18n
from healthcard.web.session import CSRF_FIELD, CSRF_HEADER, LANG_COOKIE, Session, Sessions

log = logging.getLogger("healthcard.web")

T = TypeVar("T")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # frame-ancestors 'none' for browsers that predate it
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
#: the local reader agent the clinic console and the kiosk call from the browser (docs/agent.md),
#: unless ``mount(agent_url=…)`` says otherwise
AGENT_URL = "http://127.0.0.1:7700"


def agent_origin(url: str | None = None, setting: str = "HEALTHCARD_AGENT_URL") -> str:
    """The agent's origin, checked: ``http(s)://host:port`` and nothing more (it goes into the
    Content-Security-Policy of the pages that use it).  Default: the environment's ``setting``
    (``HEALTHCARD_AGENT_URL``), else :data:`AGENT_URL`."""
    value = (url if url is not None else os.environ.get(setting, AGENT_URL)).strip()
    value = value.rstrip("/")
    scheme, _, rest = value.partition("://")
    host, _, port = rest.partition(":")
    if (
        scheme not in ("http", "https")
        or not host
        or not all(c.isalnum() or c in ".-[]" for c in host)
        or (port and not (port.isdigit() and 0 < int(port) < 65536))
    ):
        raise InvalidValue(setting, f"{value!r}: http://host:port of the local reader agent")
    return value


def kiosk_agent_origin(url: str | None = None, default: str | None = None) -> str:
    """The origin of the kiosk's reader agent (a kiosk session's pages call it): ``url``, else
    ``HEALTHCARD_KIOSK_AGENT_URL``, else ``default`` (the workstation's agent: one machine may
    be both)."""
    if url is None and not os.environ.get("HEALTHCARD_KIOSK_AGENT_URL"):
        return agent_origin(default)
    return agent_origin(url, "HEALTHCARD_KIOSK_AGENT_URL")


#: a kiosk's session ends after this long without a touch or a key (static/kiosk.js, web/kiosk.py)
KIOSK_IDLE_SECONDS = 120

#: the areas whose pages are staff's: their error pages keep the staff frame
STAFF_AREAS = ("/admin", "/staff", "/clinic")
#: where the static assets are served; their URLs carry ``?v=<version>`` (a new release: new URLs)
STATIC = "/static"
ASSET_VERSION = __version__


def _environment() -> Environment:
    folder = resources.files("healthcard.web").joinpath("templates")
    env = Environment(
        loader=FileSystemLoader(str(folder)),
        autoescape=select_autoescape(["html"], default_for_string=True),
        undefined=StrictUndefined,  # a misspelt variable is an error in tests, not a blank
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["yuan"] = i18n.yuan
    env.filters["local"] = i18n.local
    env.filters["local_time"] = i18n.local_time
    env.filters["tojson_attr"] = lambda value: json.dumps(value, ensure_ascii=True).replace("'", "\\u0027")
    return env


TEMPLATES = _environment()


# --- who is asking ------------------------------------------------------------------------------
class LoginRequired(Exception):
    """No valid session for a page that needs one: the route class sends the login page —
    ``login``, the resident portal's unless a staff area says its own (``/staff/login``)."""

    def __init__(self, login: str = "/portal/login") -> None:
        super().__init__(login)
        self.login = login


def node_of(request: Request) -> Node:
    found: Node = request.app.state.node
    return found


def sessions_of(request: Request) -> Sessions:
    found: Sessions = request.app.state.web_sessions
    return found


def session_of(request: Request) -> Session | None:
    """The request's session (read once per request, then kept on ``request.state``)."""
    if not hasattr(request.state, "web_session"):
        request.state.web_session = sessions_of(request).load(request)
    found: Session | None = request.state.web_session
    return found


def lang_of(request: Request) -> str:
    lang = request.cookies.get(LANG_COOKIE, "")
    return lang if lang in i18n.LANGS else i18n.DEFAULT


def actor_of(request: Request) -> Actor | None:
    """The actor of the session's access token; None without a session, or with an expired
    or forged token."""
    session = session_of(request)
    if session is None or session.token is None:
        return None
    tokens: Tokens = request.app.state.tokens
    try:
        actor = tokens.actor(session.token, node_of(request).clock.now())
    except NotAuthenticated:
        return None
    return None if token_revoked(request, session.token) else actor


def token_revoked(request: Request, token: str) -> bool:
    """Whether a logout ended ``token`` (:class:`~healthcard.platform.ratelimit.RevokedTokens`,
    shared by the node's workers)."""
    revoked = getattr(request.app.state, "revoked_tokens", None)
    return revoked is not None and bool(revoked.revoked(token))


def end_session(request: Request) -> None:
    """A logout: the session's access token is revoked on the node, so a copy of the cookie
    (kept by a shared computer's browser, or stolen) opens no page afterwards."""
    session = session_of(request)
    revoked = getattr(request.app.state, "revoked_tokens", None)
    if session is None or session.token is None or revoked is None:
        return
    now = node_of(request).clock.now()
    revoked.revoke(session.token, now + dt.timedelta(minutes=TERMINAL_MINUTES))  # no token lives longer


def logged_in(*roles: Role) -> Callable[[Request], Actor]:
    """A dependency: the logged-in actor, who must have one of ``roles``."""

    def dependency(request: Request) -> Actor:
        actor = actor_of(request)
        if actor is None or actor.role not in roles:
            raise LoginRequired()
        request.state.actor = actor
        return actor

    return dependency


def own_resident(actor: Actor) -> str:
    """The resident id of a resident's own pages: always from the token, never from the URL."""
    if actor.resident_id is None:
        raise LoginRequired()
    return actor.resident_id


ResidentDep = Annotated[Actor, Depends(logged_in(Role.RESIDENT))]


# --- rendering ----------------------------------------------------------------------------------
def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
    session: Session | None = None,
    agent: bool = False,
) -> HTMLResponse:
    """``template`` rendered for the request's language, with what every page uses: ``_`` (the
    catalog), ``lang``, ``csrf``, ``actor``, ``static``, ``path``.  ``session``: a new session to
    set with this response (a login).  ``agent``: the page talks to the local reader agent — its
    origin is added to the page's ``connect-src`` and given to the page (``agent_url``, which
    loads ``agent.js``)."""
    lang = lang_of(request)
    current = session or session_of(request)
    if current is None:  # the first visit: a session for the CSRF token of the login form
        current = Session.fresh()
        session = current
    agent = agent or current.kiosk  # a kiosk's page watches the card slot (static/kiosk.js)
    values: dict[str, Any] = {
        "_": i18n.Translator(lang),
        "lang": lang,
        "html_lang": i18n.HTML_LANG[lang],
        "csrf": current.csrf,
        "csrf_field": CSRF_FIELD,
        "csrf_header": CSRF_HEADER,
        "actor": getattr(request.state, "actor", None),
        "static": STATIC,
        "v": ASSET_VERSION,
        "path": request.url.path,
        "query": request.url.query,
        "errors": {},
        "values": {},
        "agent_url": _agent_url(request, current) if agent else None,
        "kiosk": current.kiosk,
        "kiosk_idle": KIOSK_IDLE_SECONDS,
    }
    values.update(context or {})
    response = HTMLResponse(TEMPLATES.get_template(template).render(values), status_code=status)
    response.headers.update(HEADERS)
    if agent:
        response.headers["Content-Security-Policy"] = CSP.replace(
            "connect-src 'self'", f"connect-src 'self' {_agent_url(request, current)}"
        )
    if session is not None:
        sessions_of(request).save(request, response, session)
    return response


def _agent_url(request: Request, session: Session) -> str:
    """The reader agent a page calls: the kiosk's for a kiosk session's pages, else the
    workstation's."""
    state = request.app.state
    found: str = getattr(state, "kiosk_agent_url", state.agent_url) if session.kiosk else state.agent_url
    return found


def redirect(request: Request, to: str, *, status: int = 303) -> Response:
    """Go to ``to``: a 303 for a plain form, ``HX-Redirect`` for htmx (which follows no 3xx to a
    full page)."""
    if is_htmx(request):
        response: Response = Response(status_code=200, headers={"HX-Redirect": to})
    else:
        response = RedirectResponse(to, status_code=status)
    response.headers.update(HEADERS)
    return response


def safe_next(target: str | None, default: str = "/portal") -> str:
    """A redirect target after login or a language switch: a path of this site only (no
    ``//host`` or ``https://…``, no backslash tricks)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    if any(c in target for c in "\r\n\t") or len(target) > 300:
        return default
    return target


# --- errors -------------------------------------------------------------------------------------
def status_and_message(request: Request, exc: Exception) -> tuple[int, str, str | None]:
    """The HTTP status, message and field the API answers for ``exc`` (its own handlers, looked
    up as Starlette does: the nearest class in the exception's MRO)."""
    handlers = request.app.exception_handlers
    for kind in type(exc).__mro__:
        handler = handlers.get(kind)
        if handler is None or kind in (Exception, BaseException) or inspect.iscoroutinefunction(handler):
            continue
        answer = handler(request, exc)
        if isinstance(answer, Response):
            try:
                body = json.loads(bytes(answer.body))
            except (ValueError, TypeError):
                body = {}
            return answer.status_code, str(body.get("message", "")), body.get("field")
    return 500, "", None


def error_page(request: Request, status: int, message: str, *, title: str = "") -> HTMLResponse:
    lang_title = title or {
        400: "error.bad_request",
        401: "error.login",
        403: "error.forbidden",
        404: "error.not_found",
        409: "error.conflict",
        422: "error.invalid",
        429: "error.too_many",
        503: "error.unavailable",
    }.get(status, "error.server")
    staff_area = request.url.path.startswith(STAFF_AREAS)
    context = {
        "title_key": lang_title,
        "message": message,
        "frame": "staff/base.html" if staff_area else "base.html",
        "home": ("/clinic" if request.url.path.startswith("/clinic") else "/admin")
        if staff_area
        else "/portal",
    }
    return render(request, "error.html", context, status=status)


async def _csrf_refused(request: Request) -> bool:
    session = session_of(request)
    presented = request.headers.get(CSRF_HEADER)
    if presented is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            value = (await request.form()).get(CSRF_FIELD)
            presented = value if isinstance(value, str) else None
    return session is None or not session.csrf_ok(presented)


class PageRoute(APIRoute):
    """A route of the web layer: CSRF on every state change, login redirects, error pages."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                if request.method not in SAFE_METHODS and await _csrf_refused(request):
                    log.warning("CSRF refused on %s", request.url.path)
                    return error_page(request, 403, "", title="error.csrf")
                return await handler(request)
            except LoginRequired as exc:
                login = exc.login
                current = session_of(request)
                if current is not None and current.kiosk:  # a kiosk's session ended: the card slot
                    return redirect(request, "/kiosk")
                if request.method == "GET" and not is_htmx(request):
                    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                    login += "?" + _query({"next": target, "expired": "1" if _had_token(request) else ""})
                return redirect(request, login)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body"))
                return error_page(request, 422, f"{where}: {first.get('msg', '')}".strip(": "))
            except HealthCardError as exc:
                status, message, _ = status_and_message(request, exc)
                return error_page(request, status if status != 500 else 400, message)
            except HTTPException:
                raise  # the app's handler (install below) answers 404 / 405
            except Exception as exc:  # the one place a page turns any error into a page
                status, message, _ = status_and_message(request, exc)
                if status == 500:
                    log.exception("page %s failed", request.url.path)
                    message = ""
                return error_page(request, status, message)

        return page


def _had_token(request: Request) -> bool:
    session = session_of(request)
    return session is not None and session.token is not None


def _query(params: Mapping[str, str]) -> str:
    from urllib.parse import urlencode

    return urlencode({k: v for k, v in params.items() if v})


def page_router(prefix: str = "") -> APIRouter:
    """A router whose routes are pages (not in the OpenAPI document)."""
    return APIRouter(prefix=prefix, route_class=PageRoute, include_in_schema=False)


# --- forms --------------------------------------------------------------------------------------
@dataclass
class Outcome(Generic[T]):
    """What a form's action gave: its result, or the errors to show (field → message; ``_form``
    for an error of no field of this form) with the status of the re-rendered page."""

    result: T | None = None
    errors: dict[str, str] = field(default_factory=dict)
    status: int = 200

    @property
    def ok(self) -> bool:
        return not self.errors


def attempt(request: Request, action: Callable[[], T], *, fields: Collection[str]) -> Outcome[T]:
    """Run a form's action; a domain error becomes the form's errors (the field's own message
    next to the field when the form has that field, else at the top), with the API's status.
    :class:`NotAuthenticated` goes on (the login page)."""
    try:
        return Outcome(action())
    except NotAuthenticated:
        raise LoginRequired() from None
    except HealthCardError as exc:
        status, message, _ = status_and_message(request, exc)
        if isinstance(exc, InvalidValue):
            name = exc.field if exc.field in fields else "_form"
            text = exc.message if name != "_form" else f"{exc.field}: {exc.message}"
            return Outcome(errors={name: text}, status=status)
        return Outcome(errors={"_form": message or str(exc)}, status=status if status != 500 else 400)


@dataclass(frozen=True)
class LoginForm:
    """A password login page: the portal's (residents) or the staff's (every staff role)."""

    template: str
    username_hint: str  # the message of an empty username field
    wrong: str  # the message of a wrong username or password (the page shows ``refused_key``)
    refused_key: str  # the catalog's words for it, in the page's language
    admits: Callable[[Actor], bool]
    outsider: str  # the refusal of an account this page does not admit
    default_next: str  # the ``next`` of the form when none is asked for
    normalise: Callable[[str], str] = str.strip  # the username as typed → the account's name


def password_login(
    request: Request,
    form: LoginForm,
    *,
    username: str,
    password: str,
    next: str,
    landing: Callable[[Actor], str],
) -> Response:
    """Log in through ``form``: the node's audited ``login``, field-named refusals shown on the
    page again (401 for a wrong password), and on success a **new session** — a new id and a
    new CSRF token, whatever session came before is dropped — then ``next`` (a path of this
    site) or ``landing(actor)``."""
    node = node_of(request)
    limits = getattr(request.app.state, "rate_limits", None)
    address = client_address(request)
    failed = False
    context = {"next": safe_next(next, form.default_next), "expired": False, "values": {"username": username}}
    if limits is not None:
        try:
            limits.check_login(address)
        except TooManyAttempts as exc:
            return too_many(request, form.template, exc, context)

    def action() -> Actor:
        nonlocal failed
        if not username.strip():
            raise InvalidValue("username", form.username_hint)
        if not password:
            raise InvalidValue("password", "your password")
        try:
            actor = node.login(form.normalise(username), password)
        except NotAuthenticated:
            failed = True
            raise InvalidValue("password", form.wrong) from None
        if not form.admits(actor):
            raise PermissionDenied(form.outsider)
        return actor

    outcome = attempt(request, action, fields=("username", "password"))
    if failed and limits is not None:
        limits.login_failed(address)
    if outcome.result is None:
        if "password" in outcome.errors and outcome.status == 422:
            outcome.errors["password"] = i18n.Translator(lang_of(request))(form.refused_key)
        context["errors"] = outcome.errors
        return render(
            request, form.template, context, status=401 if "password" in outcome.errors else outcome.status
        )
    token = request.app.state.tokens.issue(outcome.result, node.clock.now())
    response = redirect(request, safe_next(next, landing(outcome.result)))
    sessions_of(request).save(request, response, Session.fresh(token.access_token))
    return response


def too_many(request: Request, template: str, exc: TooManyAttempts, context: Mapping[str, Any]) -> Response:
    """A form refused by a rate limit: the form again, with the wait in the page's language,
    429 and ``Retry-After``."""
    message = i18n.Translator(lang_of(request))("error.too_many.wait", seconds=exc.retry_after)
    log.warning("rate limit on %s", request.url.path)
    response = render(request, template, {**context, "errors": {"_form": message}}, status=429)
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


def install(api: FastAPI) -> None:
    """Chain the app's 404/405 handler: an HTML page for a browser on a page's path, the API's
    JSON problem for everything else."""
    json_handler = api.exception_handlers.get(HTTPException)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        wants_page = request.url.path.startswith(
            ("/portal", "/lang", "/staff", "/admin", "/clinic", "/kiosk")
        ) and "text/html" in request.headers.get("accept", "")
        if wants_page or json_handler is None:
            return error_page(request, exc.status_code, "")
        answer = json_handler(request, exc)
        if isinstance(answer, Response):
            return answer
        response: Response = await answer
        return response

    api.add_exception_handler(HTTPException, http_error)


__all__ = [
    "AGENT_URL",
    "STATIC",
    "LoginForm",
    "LoginRequired",
    "Outcome",
    "PageRoute",
    "ResidentDep",
    "actor_of",
    "agent_origin",
    "attempt",
    "end_session",
    "error_page",
    "install",
    "is_htmx",
    "kiosk_agent_origin",
    "lang_of",
    "logged_in",
    "node_of",
    "own_resident",
    "page_router",
    "password_login",
    "redirect",
    "render",
    "safe_next",
    "session_of",
    "token_revoked",
    "too_many",
]
