"""The platform operator's view of a running worker: its request metrics (routes, errors,
latency) — no resident's data, so no access policy row: the operator's role decides."""

from __future__ import annotations

from fastapi import APIRouter, Request

from healthcard.api.deps import ActorDep
from healthcard.api.metrics import Metrics, MetricsView
from healthcard.errors import PermissionDenied
from healthcard.platform.access import Role

router = APIRouter(tags=["ops"])


@router.get("/v1/ops/metrics", summary="This worker's requests per route: counts, 4xx, 5xx, p50/p95/p99")
def metrics(request: Request, actor: ActorDep) -> MetricsView:
    if actor.role is not Role.ADMIN:
        raise PermissionDenied("request metrics are for the platform's operator")
    found: Metrics = request.app.state.metrics
    return found.snapshot()
