"""The operator's request metrics: per route template (never an id from the path), 4xx and 5xx
counted apart, latency quantiles; the operator only."""

from __future__ import annotations

from fastapi.testclient import TestClient

from healthcard.api.app import create_app
from healthcard.api.metrics import BUCKETS_MS, Metrics

from .platform_fixtures import PASSWORD, Platform


def test_metrics_count_each_route_by_its_template(platform: Platform) -> None:
    with TestClient(create_app(platform.app)) as client:
        token = client.post("/v1/auth/token", json={"username": "admin", "password": PASSWORD}).json()
        admin = {"Authorization": f"Bearer {token['access_token']}"}
        for _ in range(3):
            assert client.get("/health").status_code == 200
        assert client.get("/v1/residents/R-NOBODY-1", headers=admin).status_code in (403, 404)
        assert client.get("/v1/residents/R-NOBODY-2", headers=admin).status_code in (403, 404)
        assert client.get("/no/such/page").status_code == 404
        assert client.get("/v1/ops/metrics").status_code == 401  # counted too
        view = client.get("/v1/ops/metrics", headers=admin)
        assert view.status_code == 200, view.text
        routes = {r["route"]: r for r in view.json()["routes"]}
        assert routes["GET /health"]["requests"] == 3 and routes["GET /health"]["client_errors"] == 0
        person = routes["GET /v1/residents/{resident_id}"]
        assert (person["requests"], person["client_errors"]) == (2, 2)  # two ids, one line
        assert not any("R-NOBODY" in name for name in routes)
        assert routes["GET (unmatched)"]["requests"] == 1
        assert view.json()["server_errors"] == 0
        assert routes["GET /health"]["p50_ms"] in BUCKETS_MS

        doctor = client.post("/v1/auth/token", json={"username": "dr-wang", "password": PASSWORD}).json()
        refused = client.get("/v1/ops/metrics", headers={"Authorization": f"Bearer {doctor['access_token']}"})
        assert refused.status_code == 403


def test_quantiles_come_from_the_histogram() -> None:
    metrics = Metrics()
    for ms in [0.5] * 90 + [30] * 9 + [700]:
        metrics.record("GET /x", 200, ms / 1000)
    metrics.record("GET /x", 503, 0.001)
    (route,) = metrics.snapshot().routes
    assert (route.requests, route.server_errors) == (101, 1)
    assert (route.p50_ms, route.p95_ms, route.p99_ms) == (1, 50, 50)
