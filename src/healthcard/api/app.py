"""The FastAPI application of a platform node.

``create_app(app)`` serves an already wired :class:`~healthcard.bootstrap.App` (tests, the demo);
``from_environment()`` is the factory uvicorn's workers call: each worker wires its own app from
the ``HEALTHCARD_*`` settings (the token secret comes in the environment from ``healthcard
serve``, so that every worker accepts the tokens of every other).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI

from healthcard import __version__, web
from healthcard.api import problems
from healthcard.api.metrics import Metrics, MetricsMiddleware
from healthcard.api.routes import (
    appointments,
    areas,
    audit,
    auth,
    cards,
    fhir,
    health_account,
    households,
    ops,
    residents,
    selfservice,
    settlement,
    swipes,
    uploads,
)
from healthcard.api.tokens import Tokens
from healthcard.bootstrap import App, bootstrap, federation_runner, kek_from_environment
from healthcard.platform.ratelimit import RateLimitPolicy, RateLimits, RevokedTokens
from healthcard.settings import Settings

DESCRIPTION = """\
The regional health information platform of a city (居民健康卡 · 区域卫生信息平台).

* **Staff and residents** log in at `/v1/auth/token`; **terminals** log in with their SAM at
  `/v1/auth/terminal/challenge` then `/v1/auth/terminal`.  Send the token as
  `Authorization: Bearer …`.
* Every read and write of a resident's data goes through one access policy and leaves an entry
  in a hash-chained audit log that the resident can read (`/v1/residents/{id}/access-log`).
* Errors are `{"code", "message", "field"}`.
* FHIR R4 read views live under `/fhir`.
"""


#: threads per worker that run the (synchronous) routes: no more than the database pool holds
#: (5), so no request opens a connection of its own, and few enough that they do not fight over
#: the GIL — measured: 16 connections on 2 workers gave 175 req/s with Starlette's default 40
#: threads, 319 req/s with 4 (docs/benchmarks.md)
ROUTE_THREADS = 4


def create_app(
    app: App,
    *,
    threads: int = ROUTE_THREADS,
    agent_url: str | None = None,
    kiosk_agent_url: str | None = None,
    federation: bool = False,
) -> FastAPI:
    """``federation``: run the node's messaging while the app runs (its relay, consumers and
    answers to other nodes — :func:`~healthcard.bootstrap.federation_runner`; a node without a
    code has none).  Each worker runs its own: a second relay only repeats publishes that the
    bus stores once, and the consumers of one durable name share the messages."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        runner = federation_runner(app) if federation else None
        if runner is not None:
            runner.start()
        try:
            yield
        finally:
            if runner is not None:
                await anyio.to_thread.run_sync(runner.stop)

    api = FastAPI(
        lifespan=lifespan,
        title="HealthCard platform",
        version=__version__,
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    api.state.app = app
    api.state.node = app.node
    api.state.tokens = Tokens(app.node.token_secret)
    # logins and terminal challenges per client address, shared by the workers (in the database)
    api.state.rate_limits = RateLimits(app.node.db, app.node.clock, RateLimitPolicy.from_env())
    api.state.revoked_tokens = RevokedTokens(app.node.db, app.node.clock)
    problems.install(api)
    api.state.metrics = Metrics()
    api.add_middleware(MetricsMiddleware, metrics=api.state.metrics)
    # appointments before fhir: its /fhir/Schedule, /fhir/Slot, /fhir/Appointment come before fhir's /fhir/{resource}
    # settlement before fhir too: its /fhir/Claim search
    for module in (
        auth,
        swipes,
        uploads,
        residents,
        areas,
        audit,
        cards,
        selfservice,
        appointments,
        settlement,
        fhir,
        health_account,
        households,
        ops,
    ):
        api.include_router(module.router)

    @api.get("/health", tags=["ops"], summary="Liveness: the process answers")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    web.mount(
        api, agent_url=agent_url, kiosk_agent_url=kiosk_agent_url
    )  # the pages (portal …) and /static: the same node, tokens and error table
    return api


def from_environment() -> FastAPI:
    """uvicorn factory (``healthcard.api.app:from_environment``)."""
    settings = Settings.from_env()
    # the key store opens from the environment when the card centre's pages first need a key
    return create_app(bootstrap(settings, kek=kek_from_environment(settings)), federation=True)
