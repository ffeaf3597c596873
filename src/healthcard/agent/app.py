"""The agent over HTTP: a FastAPI app for ``127.0.0.1`` that the clinic console's pages call
with ``fetch``.

Security model (docs/agent.md): any page the workstation's browser opens can send requests to
``127.0.0.1``, so the agent answers only

* requests whose ``Host`` is a loopback name (``127.0.0.1``, ``localhost``, ``[::1]``): a
  DNS-rebinding page (``evil.example`` resolving to 127.0.0.1) is refused;
* browser requests whose ``Origin`` is one of the configured platform origins (403 otherwise,
  also on preflight); requests without ``Origin`` (curl, the platform's own tests) pass;
* ``POST`` bodies of ``Content-Type: application/json`` (a cross-site HTML form cannot send it
  without a preflight), 415 otherwise.

CORS answers name the one allowed origin that asked (never ``*``), take no credentials, and
answer Chrome's Private Network Access preflight (``Access-Control-Request-Private-Network``)
with ``Access-Control-Allow-Private-Network: true`` for the allowed origins only.

Errors are ``{code, message, field}`` like the platform API, from one table (card errors keep
their status word phrase in ``message``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from healthcard import __version__
from healthcard import errors as e
from healthcard.agent.readers import CardRemoved, NoCard, ReaderBusy, SamMissing
from healthcard.agent.service import (
    Agent,
    NoPin,
    NoPlatform,
    NoTray,
    NotSimulated,
    PinBlocked,
    PinWrong,
    PlatformUnreachable,
    VisitClosed,
    WrongCard,
)
from healthcard.terminal.platform import PlatformRefused

log = logging.getLogger("healthcard.agent")

DEFAULT_ORIGINS = ("http://127.0.0.1:8000", "http://localhost:8000")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})

#: exception class → (HTTP status, code); the first match wins (subclasses first)
TABLE: tuple[tuple[type[e.HealthCardError], int, str], ...] = (
    (PinWrong, 422, "pin-wrong"),
    (PinBlocked, 423, "pin-blocked"),
    (e.TooManyAttempts, 429, "too-many-attempts"),
    (NoPin, 409, "no-pin"),
    (NoCard, 409, "no-card"),
    (CardRemoved, 409, "card-removed"),
    (SamMissing, 503, "sam-missing"),
    (ReaderBusy, 409, "busy"),
    (WrongCard, 409, "wrong-card"),
    (VisitClosed, 409, "visit-closed"),
    (NotSimulated, 409, "not-simulated"),
    (NoPlatform, 409, "no-platform"),
    (NoTray, 409, "no-tray"),
    (PlatformUnreachable, 502, "platform-unreachable"),
    (e.HotListed, 409, "hot-listed"),
    (e.Duplicate, 409, "duplicate"),
    (e.InvalidValue, 422, "invalid"),
    (e.NotFound, 404, "not-found"),
    (e.KeyVersionError, 409, "key-version"),
    (e.CertificateError, 422, "certificate"),
    (e.RecordInvalid, 409, "record-invalid"),
    (e.SamError, 502, "sam-error"),
    (e.AuthenticationBlocked, 409, "card-blocked"),
    (e.CardBlocked, 409, "card-blocked"),
    (e.CardError, 502, "card-error"),
    (e.ImageError, 500, "card-image"),
    (e.TransportError, 503, "reader-unavailable"),
    (e.TransitionRefused, 409, "conflict"),
)


def problem(status: int, code: str, message: str, field: str | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "field": field, **extra}, status_code=status)


def _domain(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, e.HealthCardError)
    if isinstance(exc, PlatformRefused):  # the platform said no: its status and code, as it said them
        return problem(exc.status, exc.code, exc.message, exc.field, source="platform")
    for kind, status, code in TABLE:
        if isinstance(exc, kind):
            extra: dict[str, Any] = {}
            if isinstance(exc, PinWrong | PinBlocked):
                extra["tries_left"] = exc.tries_left
            if isinstance(exc, e.CardError):
                extra["sw"] = f"{exc.sw:04X}"
            if isinstance(exc, e.InvalidValue):
                return problem(status, code, exc.message, exc.field, **extra)
            if isinstance(exc, e.TooManyAttempts):
                answer = problem(status, code, str(exc), retry_after=exc.retry_after)
                answer.headers["Retry-After"] = str(exc.retry_after)
                return answer
            return problem(status, code, str(exc), **extra)
    log.warning("unmapped error %s on %s", type(exc).__name__, request.url.path)
    return problem(400, "refused", str(exc))


def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    field = ""
    for part in first.get("loc", ()):
        if part in ("body", "query", "path", "header"):
            continue
        field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
    return problem(422, "invalid", str(first.get("msg", "invalid request")), field or None)


def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http")
    return problem(exc.status_code, code, str(exc.detail))


# --- the guard ---------------------------------------------------------------------------------
def normalise_origin(origin: str) -> str:
    """``scheme://host[:port]`` as browsers send it in ``Origin`` (no path, no trailing slash)."""
    text = origin.strip().rstrip("/")
    scheme, sep, rest = text.partition("://")
    if not sep or scheme not in ("http", "https") or not rest or "/" in rest or "*" in text:
        raise e.InvalidValue("allow_origin", f"{origin!r} is not an origin like http://127.0.0.1:8000")
    return f"{scheme}://{rest.lower()}"


class LocalGuard:
    """Pure ASGI middleware: loopback ``Host`` only, allowed ``Origin`` only, CORS and PNA."""

    def __init__(self, app: ASGIApp, origins: Iterable[str]) -> None:
        self.app = app
        self.origins = frozenset(normalise_origin(o) for o in origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        hostname = host.split("]")[0] + "]" if host.startswith("[") else host.split(":")[0]
        if hostname.lower() not in LOOPBACK_HOSTS:
            await self._refuse(
                scope, receive, send, 403, "forbidden-host", "the agent answers on 127.0.0.1 only"
            )
            return
        origin = headers.get("origin")
        if origin is not None and origin not in self.origins:
            log.warning("refused a request from origin %r", origin[:100])
            await self._refuse(
                scope,
                receive,
                send,
                403,
                "forbidden-origin",
                "this page's origin may not use the card readers",
            )
            return
        method = scope["method"]
        if method == "OPTIONS" and origin is not None and "access-control-request-method" in headers:
            await self._preflight(headers, origin, send)
            return
        if method == "POST":
            kind = headers.get("content-type", "").split(";")[0].strip().lower()
            if kind != "application/json":
                await self._refuse(
                    scope, receive, send, 415, "unsupported-media-type", "send the body as application/json"
                )
                return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                out.append("Vary", "Origin")
                out["Cache-Control"] = "no-store"
                if origin is not None:
                    out["Access-Control-Allow-Origin"] = origin
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, status: int, code: str, message: str
    ) -> None:
        response = problem(status, code, message)
        response.headers["Vary"] = "Origin"
        await response(scope, receive, send)

    async def _preflight(self, headers: Headers, origin: str, send: Send) -> None:
        out = [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-methods", b"GET, POST"),
            (b"access-control-allow-headers", b"Content-Type"),
            (b"access-control-max-age", b"600"),
            (
                b"vary",
                b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers, "
                b"Access-Control-Request-Private-Network",
            ),
            (b"content-length", b"0"),
        ]
        if headers.get("access-control-request-private-network", "").lower() == "true":
            out.append((b"access-control-allow-private-network", b"true"))
        await send({"type": "http.response.start", "status": 204, "headers": out})
        await send({"type": "http.response.body", "body": b""})


# --- requests ------------------------------------------------------------------------------------
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReaderBody(_Body):
    reader: str | None = Field(
        default=None, description="a reader name from GET /readers; none: the first with a card"
    )


class SwipeBody(ReaderBody):
    stage: str = Field(default="consultation", description="the platform's swipe stage")


class CheckInBody(ReaderBody):
    booking_id: int | None = None


class WriteBody(ReaderBody):
    values: dict[str, str | int] = Field(description="the platform's card-record answer, by SDK tag")
    card_number: str | None = Field(
        default=None, description="refuse unless this card is in the reader (recommended)"
    )


class VisitBody(ReaderBody):
    resident_id: str = Field(max_length=64, description="the platform's resident id (the swipe's answer)")
    encounter_id: int = Field(ge=1, description="the visit to write and close")
    card_number: str | None = Field(
        default=None, description="refuse unless this card is in the reader (recommended)"
    )


class PinBody(ReaderBody):
    pin: str = Field(description="the cardholder PIN, 6 digits (never logged)")


class DispenseBody(ReaderBody):
    chip_serial: str = Field(
        max_length=32, description="the chip serial of the card in the tray (16 hex digits)"
    )


class IssueBody(ReaderBody):
    id_number: str = Field(
        min_length=1, max_length=18, description="the ID number the kiosk read off the ID card"
    )
    name: str = Field(min_length=1, max_length=30, description="the name the kiosk read off the ID card")
    pin: str = Field(max_length=16, description="the cardholder PIN chosen, 6 digits (never logged)")
    pin_again: str = Field(max_length=16, description="the same PIN again")


def create_app(agent: Agent, allow_origins: Iterable[str] = DEFAULT_ORIGINS) -> FastAPI:
    """The agent's HTTP app behind :class:`LocalGuard` (an origin that is not one like
    ``http://host:port`` is refused with :class:`~healthcard.errors.InvalidValue`)."""
    origins = tuple(normalise_origin(o) for o in allow_origins)  # refused here, at start-up
    app = FastAPI(
        title="HealthCard local reader agent",
        version=__version__,
        docs_url=None,  # Swagger UI loads from a CDN: not on a clinic workstation
        redoc_url=None,
    )
    app.add_exception_handler(e.HealthCardError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)

    @app.get("/status")
    def status() -> dict[str, Any]:
        """The agent, its readers, the SAM and the platform login."""
        return agent.status()

    @app.get("/readers")
    def readers() -> list[dict[str, object]]:
        return [r.describe() for r in agent.readers()]

    @app.post("/swipe")
    def swipe(body: SwipeBody) -> dict[str, Any]:
        """The card, authenticated with the SAM (``card``), and the platform's answer to the swipe
        (``platform``: null offline, ``{ok: false, error}`` when it could not be asked)."""
        return agent.swipe(body.reader, body.stage)

    @app.post("/check-in")
    def check_in(body: CheckInBody) -> dict[str, Any]:
        return agent.check_in(body.reader, body.booking_id)

    @app.post("/write/visit")
    def write_visit(body: VisitBody) -> dict[str, Any]:
        """The visit fetched from the platform by the agent, written to the card, SAM-signed, and
        closed at the platform with its slot: :meth:`Agent.write_visit`."""
        return agent.write_visit(body.resident_id, body.encounter_id, body.reader, body.card_number)

    @app.post("/write/{kind}")
    def write(kind: Literal["outpatient", "inpatient"], body: WriteBody) -> dict[str, Any]:
        """The visit record onto the card, SAM-signed; the slot, the record read back and the
        signature's verification."""
        return agent.write(kind, body.values, body.reader, body.card_number)

    @app.post("/pin")
    def pin(body: PinBody) -> dict[str, Any]:
        return agent.verify_pin(body.pin, body.reader)

    @app.post("/login")
    def login(body: PinBody) -> dict[str, Any]:
        """Kiosk: the card authenticated with the SAM, its PIN verified by the card, and the
        resident's session the platform opened for this kiosk: ``{access_token, expires_in,
        card_number, name}``.  PIN errors as ``/pin``."""
        return agent.login(body.pin, body.reader)

    @app.post("/issue")
    def issue(body: IssueBody) -> dict[str, Any]:
        """Kiosk: self-service issuance of the approved application of the person whose ID card
        was read, with the PIN chosen twice; the card made is dispensed into the slot:
        ``{card, dispensed}`` (:meth:`Agent.issue`)."""
        return agent.issue(body.id_number, body.name, body.pin, body.pin_again, body.reader)

    @app.post("/dispense")
    def dispense(body: DispenseBody) -> dict[str, object]:
        """Kiosk (demo): the card ``<tray>/<chip_serial>.card`` into the simulated slot."""
        return agent.dispense(body.chip_serial, body.reader)

    @app.post("/insert")
    def insert(body: ReaderBody) -> dict[str, object]:
        """Put the simulated card back in its slot (demos, browser tests)."""
        slot = agent.simulated(body.reader)
        slot.insert()
        return slot.describe()

    @app.post("/remove")
    def remove(body: ReaderBody) -> dict[str, object]:
        """Take the simulated card out of its slot, even during an operation."""
        slot = agent.simulated(body.reader)
        slot.remove()
        return slot.describe()

    app.add_middleware(LocalGuard, origins=origins)
    return app
