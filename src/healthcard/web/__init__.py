"""The web front end of a platform node: server-rendered pages (Jinja2 + htmx, Chinese first with
English) for the people of ARCHITECTURE.md §1 — today the resident portal (居民健康网) under
``/portal``; the kiosk, the clinic console and the dashboards are added the same way
(docs/web.md).

:func:`mount` adds it to the API's FastAPI app (``healthcard.api.app.create_app`` calls it): the
static assets under ``/static``, the pages, ``/`` → ``/portal``.  Pages call the node's use cases
with the logged-in actor — never SQL (tests/unit/test_layers.py holds the web layer to that).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import Scope

from healthcard.web import admin, cardcentre, clinic, kiosk, pages, portal, printing, staff
from healthcard.web.ehealth import EhcKeys
from healthcard.web.session import CookiePolicy, Sessions


class Assets(StaticFiles):
    """The stylesheets and scripts under ``/static``: never sniffed as another type, and cached
    for a year when asked for by the release (``?v=``, as every page links them), else checked
    again each time."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["X-Content-Type-Options"] = "nosniff"
        versioned = b"v=" in scope.get("query_string", b"")
        response.headers["Cache-Control"] = (
            "public, max-age=31536000, immutable"
            if versioned and response.status_code in (200, 304)
            else "no-cache"
        )
        return response


def mount(
    api: FastAPI,
    *,
    cookies: CookiePolicy | None = None,
    agent_url: str | None = None,
    kiosk_agent_url: str | None = None,
) -> None:
    """Serve the web layer from ``api`` (which already holds ``state.node`` and
    ``state.tokens``).  ``cookies``: when the session cookie is ``Secure`` (default: from
    ``HEALTHCARD_COOKIE_SECURE``, ``auto`` — over https).  ``agent_url``: the local reader
    agent the clinic console and the kiosk use (default: ``HEALTHCARD_AGENT_URL``, else
    ``http://127.0.0.1:7700``).  ``kiosk_agent_url``: the kiosk's agent, which a kiosk session's
    pages call (default: ``HEALTHCARD_KIOSK_AGENT_URL``, else the same as ``agent_url``)."""
    secret: bytes = api.state.node.token_secret
    api.state.agent_url = pages.agent_origin(agent_url)
    api.state.kiosk_agent_url = pages.kiosk_agent_origin(kiosk_agent_url, api.state.agent_url)
    api.state.web_sessions = Sessions(secret, cookies or CookiePolicy.from_env())
    api.state.ehc_keys = EhcKeys.from_secret(secret)
    api.mount(pages.STATIC, Assets(packages=[("healthcard.web", "static")]), name="static")
    api.include_router(printing.router)  # before the portal's: /visits/{id} would take "5.pdf"
    api.include_router(portal.router)
    api.include_router(kiosk.router)
    api.include_router(staff.router)
    api.include_router(admin.router)
    api.include_router(cardcentre.router)
    api.include_router(clinic.router)
    pages.install(api)

    @api.get("/", include_in_schema=False)
    def root(request: Request) -> Response:
        return RedirectResponse("/portal", status_code=307)


__all__ = ["mount"]
