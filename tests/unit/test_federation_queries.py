"""Questions between nodes (healthcard.federation.queries): replies, refusals carried across as
the same HealthCard errors, failures that are not refusals, and the card's home through the
national and the provincial index."""

from __future__ import annotations

import json
from typing import Any

import pytest

from healthcard.errors import (
    Duplicate,
    HotListed,
    InvalidValue,
    MessagingError,
    NotFound,
    PermissionDenied,
    TransitionRefused,
)
from healthcard.federation import InProcessBus, open_bus
from healthcard.federation.queries import (
    CardHome,
    ask,
    locate,
    query_subject,
    refusal_document,
    serve_queries,
)


@pytest.fixture
def bus() -> InProcessBus:
    return InProcessBus()


def test_a_reply_comes_back_as_sent(bus: InProcessBus) -> None:
    served = serve_queries(bus, "4101", {"echo": lambda payload: {"got": payload, "名": "张三"}})
    assert ask(bus, "4101", "echo", {"n": 1}) == {"got": {"n": 1}, "名": "张三"}
    served.close()
    with pytest.raises(MessagingError, match="no responder"):
        ask(bus, "4101", "echo", {})


@pytest.mark.parametrize(
    "refusal",
    [
        InvalidValue("lines[0].quantity", "a whole number above 0"),
        Duplicate("idempotency_key", "used for another request"),
        NotFound("card", "410102199003070019"),
        PermissionDenied("only a terminal records a swipe"),
        TransitionRefused("the card is cancelled"),
        HotListed(
            "card 410102199003070019 is reported lost", card_number="410102199003070019", reason="lost"
        ),
    ],
)
def test_a_refusal_is_raised_again_on_the_askers_side(bus: InProcessBus, refusal: Exception) -> None:
    def respond(payload: dict[str, Any]) -> dict[str, Any]:
        raise refusal

    serve_queries(bus, "41", {"card": respond})
    with pytest.raises(type(refusal)) as raised:
        ask(bus, "41", "card", {"card": "x"})
    assert str(raised.value) == str(refusal)
    for name in ("field", "message", "what", "key", "card_number", "reason"):
        assert getattr(raised.value, name, None) == getattr(refusal, name, None)


def test_a_failure_that_is_not_a_refusal_names_only_its_class(bus: InProcessBus) -> None:
    def respond(payload: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("secret record content")

    serve_queries(bus, "CN", {"card": respond})
    with pytest.raises(MessagingError) as raised:
        ask(bus, "CN", "card", {})
    assert "RuntimeError" in str(raised.value)
    assert "secret" not in str(raised.value)


def test_a_payload_that_is_not_an_object_is_refused_by_name(bus: InProcessBus) -> None:
    serve_queries(bus, "CN", {"card": lambda payload: {}})
    reply = json.loads(bus.request("q.CN.card", b"[1, 2]"))
    assert reply == {"error": {"type": "InvalidValue", "field": "payload", "message": "a JSON object"}}
    reply = json.loads(bus.request("q.CN.card", b"{not json"))
    assert reply["error"]["field"] == "payload"


def test_a_subclass_travels_as_the_refusal_it_extends() -> None:
    class Special(NotFound):
        pass

    assert refusal_document(Special("card", "1"))["type"] == "NotFound"


@pytest.mark.parametrize("node, query", [("", "card"), ("4101x", "card"), ("cn", "card"), ("41", "a.b")])
def test_a_bad_node_or_query_name_is_refused(node: str, query: str) -> None:
    with pytest.raises(InvalidValue) as raised:
        query_subject(node, query)
    assert raised.value.field == "node"


def test_locate_asks_the_nation_then_the_province(bus: InProcessBus) -> None:
    asked: list[str] = []

    def national(payload: dict[str, Any]) -> dict[str, Any]:
        asked.append("CN")
        if payload["card"] != "410102199003070019":
            raise NotFound("card", payload["card"])
        return {"province": "41", "city": "4101", "status": "ACTIVE"}

    def province(payload: dict[str, Any]) -> dict[str, Any]:
        asked.append("41")
        return {"city": "4101", "resident": "r-1", "status": "LOST"}

    serve_queries(bus, "CN", {"card": national})
    serve_queries(bus, "41", {"card": province})
    assert locate(bus, "410102199003070019") == CardHome("410102199003070019", "41", "4101", "r-1", "LOST")
    assert asked == ["CN", "41"]
    with pytest.raises(NotFound):
        locate(bus, "440604199001010011")
    assert asked == ["CN", "41", "CN"]  # the province is not asked about a card the nation lacks


def test_the_in_process_bus_is_one_per_process_and_namespace() -> None:
    first = open_bus(None, namespace="test-queries")
    assert open_bus(None, namespace="test-queries") is first
    assert open_bus(None, namespace="test-queries-other") is not first
    first.close()
    assert open_bus(None, namespace="test-queries") is not first  # a closed one is replaced
