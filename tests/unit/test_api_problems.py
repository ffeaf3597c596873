"""The API's problem documents for refusals that come from another node."""

from __future__ import annotations

import json

from starlette.requests import Request

from healthcard.api import problems
from healthcard.errors import HotListed, MessagingError


def _request() -> Request:
    return Request(
        {"type": "http", "method": "GET", "path": "/v1/swipes", "headers": [], "query_string": b""}
    )


def test_an_unreachable_node_is_503_not_a_refusal() -> None:
    response = problems._domain(_request(), MessagingError("q.4101.swipe: no responder"))
    assert response.status_code == 503
    assert json.loads(bytes(response.body))["code"] == "node-unavailable"


def test_a_refusal_carried_from_the_home_node_is_answered_as_a_local_one() -> None:
    response = problems._domain(_request(), HotListed("card 410102199003070019 is reported lost"))
    assert (response.status_code, json.loads(bytes(response.body))["code"]) == (409, "hot-listed")


def test_a_pool_with_every_connection_busy_is_503_through_the_installed_handlers() -> None:
    """``sqlalchemy.exc.TimeoutError`` (the pool's timeout) is no DBAPIError: without its own
    handler it would be a 500."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    app = FastAPI()
    problems.install(app)

    @app.get("/busy")
    def busy() -> None:
        raise PoolTimeout("QueuePool limit of size 5 overflow 10 reached")

    answer = TestClient(app, raise_server_exceptions=False).get("/busy")
    assert answer.status_code == 503
    assert answer.json()["code"] == "unavailable"
    assert "QueuePool" not in answer.text
