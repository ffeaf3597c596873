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
