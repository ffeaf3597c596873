"""The reader agent's limit on PIN submissions per reader (healthcard.agent.service.PinThrottle):
beyond it ``/pin`` and ``/login`` answer 429 with Retry-After before the card is touched, the
window ends on the agent's clock, and another reader is not affected.  The card's own count
(three wrong PINs block it) is test_agent.py's."""

from __future__ import annotations

import copy
import datetime as dt

import pytest
from fastapi.testclient import TestClient

from healthcard.agent import Agent, SamSlot, SimulatedSlot, create_app
from healthcard.agent.service import PinThrottle
from healthcard.card.cos import CardState
from healthcard.clock import FixedClock
from healthcard.demo import demo_sam, demo_trust
from healthcard.errors import InvalidValue, TooManyAttempts

AGENT = "http://127.0.0.1:7700"
NOW = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)


def test_the_n_plus_first_pin_at_a_reader_gets_429_until_the_window_ends(pin_state: CardState) -> None:
    clock = FixedClock(NOW)
    readers = [SimulatedSlot(name, copy.deepcopy(pin_state)) for name in ("sim-1", "sim-2")]
    agent = Agent(
        readers=readers,
        clock=clock,
        sam=SamSlot.from_image(demo_sam(), "sam-demo"),
        trust=demo_trust(),
        pin_limit=(4, 60),
    )
    with TestClient(create_app(agent), base_url=AGENT) as client:
        for _ in range(4):  # the right PIN: the card is happy, the agent counts
            assert client.post("/pin", json={"pin": "123456", "reader": "sim-1"}).status_code == 200
        refused = client.post("/pin", json={"pin": "123456", "reader": "sim-1"})
        assert refused.status_code == 429 and refused.json()["code"] == "too-many-attempts"
        assert refused.headers["retry-after"] == "60" and refused.json()["retry_after"] == 60
        assert client.post("/login", json={"pin": "123456", "reader": "sim-1"}).status_code == 429
        # the card was not asked: its PIN tries are untouched (a wrong one still leaves 2)
        assert client.post("/pin", json={"pin": "123456", "reader": "sim-2"}).status_code == 200
        clock.advance(dt.timedelta(seconds=30))
        assert client.post("/pin", json={"pin": "123456", "reader": "sim-1"}).headers["retry-after"] == "30"
        clock.advance(dt.timedelta(seconds=30))
        wrong = client.post("/pin", json={"pin": "975310", "reader": "sim-1"})
        assert wrong.status_code == 422 and wrong.json()["tries_left"] == 2


def test_the_throttle_alone() -> None:
    clock = FixedClock(NOW)
    throttle = PinThrottle(clock, limit=2, window=10)
    throttle.attempt("a")
    throttle.attempt("a")
    with pytest.raises(TooManyAttempts) as refused:
        throttle.attempt("a")
    assert refused.value.retry_after == 10
    throttle.attempt("b")
    clock.advance(dt.timedelta(seconds=10))
    throttle.attempt("a")
    with pytest.raises(InvalidValue):
        PinThrottle(clock, limit=0)
