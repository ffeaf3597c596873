"""Request metrics of one API worker, for the platform operator's dashboard: per route (its
template, ``GET /v1/residents/{resident_id}``, never a resident's id) the requests, the client
errors (4xx), the server errors (5xx) and a latency histogram from which p50 / p95 / p99 are read.

Kept in memory by an ASGI middleware that runs on the worker's event loop (no lock needed, a few
microseconds a request); each worker counts its own requests and says which process it is, so the
dashboard shows one worker's view — a fleet would scrape every worker (ARCHITECTURE.md: no
metrics server is part of the embedded default)."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

#: upper bounds of the latency buckets, milliseconds (the last one catches the rest)
BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, float("inf"))

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class _Route:
    requests: int = 0
    client_errors: int = 0
    server_errors: int = 0
    histogram: list[int] = field(default_factory=lambda: [0] * len(BUCKETS_MS))


@dataclass(frozen=True)
class RouteMetrics:
    route: str  # "GET /v1/residents/{resident_id}"
    requests: int
    client_errors: int  # 4xx
    server_errors: int  # 5xx
    p50_ms: float  # upper bound of the bucket the median falls in
    p95_ms: float
    p99_ms: float


@dataclass(frozen=True)
class MetricsView:
    pid: int
    uptime_s: float
    requests: int
    client_errors: int
    server_errors: int
    routes: tuple[RouteMetrics, ...]  # busiest first


def _quantile(histogram: list[int], q: float) -> float:
    total = sum(histogram)
    if not total:
        return 0.0
    rank, seen = q * total, 0
    for bound, count in zip(BUCKETS_MS, histogram, strict=True):
        seen += count
        if seen >= rank:
            return bound
    return BUCKETS_MS[-1]


class Metrics:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self._routes: dict[str, _Route] = {}

    def record(self, route: str, status: int, seconds: float) -> None:
        entry = self._routes.get(route)
        if entry is None:
            entry = self._routes[route] = _Route()
        entry.requests += 1
        if 400 <= status < 500:
            entry.client_errors += 1
        elif status >= 500:
            entry.server_errors += 1
        ms = seconds * 1000
        entry.histogram[next(i for i, bound in enumerate(BUCKETS_MS) if ms <= bound)] += 1

    def snapshot(self) -> MetricsView:
        routes = tuple(
            sorted(
                (
                    RouteMetrics(
                        name,
                        r.requests,
                        r.client_errors,
                        r.server_errors,
                        _quantile(r.histogram, 0.50),
                        _quantile(r.histogram, 0.95),
                        _quantile(r.histogram, 0.99),
                    )
                    for name, r in self._routes.items()
                ),
                key=lambda r: (-r.requests, r.route),
            )
        )
        return MetricsView(
            os.getpid(),
            time.monotonic() - self.started,
            sum(r.requests for r in routes),
            sum(r.client_errors for r in routes),
            sum(r.server_errors for r in routes),
            routes,
        )


class MetricsMiddleware:
    """Counts every HTTP request under its route's template once routing has run (an unmatched
    path counts as ``(unmatched)``: a scan of random URLs cannot grow the table)."""

    def __init__(self, app: Asgi, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "(unmatched)"
            self.metrics.record(f"{scope.get('method', '?')} {path}", status, time.perf_counter() - start)


__all__ = ["BUCKETS_MS", "Metrics", "MetricsMiddleware", "MetricsView", "RouteMetrics"]
