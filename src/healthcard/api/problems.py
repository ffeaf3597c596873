"""Every error of the API as ``{code, message, field}`` — the one place where the exception tree
of :mod:`healthcard.errors` meets HTTP (STYLE.md habit 10).  Routes raise no HTTP errors for
business rules; they let the domain's errors through and this table answers."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from healthcard import errors as e

log = logging.getLogger("healthcard.api")

#: exception class → (HTTP status, code); the first match in order wins (subclasses first)
TABLE: tuple[tuple[type[e.HealthCardError], int, str], ...] = (
    (e.Duplicate, 409, "duplicate"),
    (e.InvalidValue, 422, "invalid"),
    (e.NotFound, 404, "not-found"),
    (e.NotAuthenticated, 401, "unauthenticated"),
    (e.PermissionDenied, 403, "forbidden"),
    (e.TooManyAttempts, 429, "too-many-attempts"),
    (e.HotListed, 409, "hot-listed"),
    (e.TransitionRefused, 409, "conflict"),
    (e.CertificateError, 422, "certificate"),
    (e.StorageError, 503, "unavailable"),
    # another platform node (a cross-region card's home) cannot be reached: try again, or work
    # from the card alone
    (e.MessagingError, 503, "node-unavailable"),
)


def problem(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        {"code": code, "message": message, "field": field}, status_code=status, headers=headers
    )


def _domain(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, e.HealthCardError)
    for kind, status, code in TABLE:
        if isinstance(exc, kind):
            if isinstance(exc, e.InvalidValue):
                return problem(status, code, exc.message, exc.field)
            answer = problem(status, code, str(exc))
            if isinstance(exc, e.TooManyAttempts):
                answer.headers["Retry-After"] = str(exc.retry_after)
            return answer
    log.warning("unmapped domain error %s on %s", type(exc).__name__, request.url.path)
    return problem(400, "refused", str(exc))


def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    field = ""
    for part in first.get("loc", ()):
        if part in ("body", "query", "path", "header"):
            continue
        # the services' spelling: diagnoses[0].code
        field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
    return problem(422, "invalid", str(first.get("msg", "invalid request")), field or None)


def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {401: "unauthenticated", 403: "forbidden", 404: "not-found", 405: "method-not-allowed"}.get(
        exc.status_code, "http"
    )
    return problem(exc.status_code, code, str(exc.detail))


def _database(request: Request, exc: Exception) -> JSONResponse:
    # the message of a driver error can name tables and values: never send it to the caller
    if isinstance(exc, DataError):  # a value the database cannot hold that no check caught
        log.error("data error on %s", request.url.path)
        return problem(422, "invalid", "a value cannot be stored (out of range or a forbidden character)")
    if isinstance(exc, IntegrityError):  # a race the service did not translate: a conflict
        log.error("integrity error on %s", request.url.path)
        return problem(409, "conflict", "a concurrent change conflicts with this request; retry")
    log.error("database error on %s: %s", request.url.path, type(exc).__name__)
    return problem(503, "unavailable", "the database is unavailable; try again shortly")


def install(app: FastAPI) -> None:
    app.add_exception_handler(e.HealthCardError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(DBAPIError, _database)
    # every pooled connection busy for the pool's timeout: the database is, to this caller, unavailable
    app.add_exception_handler(PoolTimeout, _database)
