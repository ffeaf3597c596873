"""schemathesis over the reader agent's own OpenAPI (the workstation service on :7700 that the
clinic console and the kiosk call): whatever the generated request — wrong types, odd Unicode,
huge numbers, unknown readers — the agent never answers 500, every error is
``{code, message, field}``, and the card in its slot still loads and answers afterwards.

The platform's OpenAPI has its own sweep (tests/integration/test_api_fuzz.py).  The agent has no
platform here, so an operation that needs one answers its documented 503; a crash would be a
500.  Bounded like the rest of ``make test``; ``make fuzz`` raises HEALTHCARD_API_FUZZ_EXAMPLES.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings

from healthcard.agent import create_app
from healthcard.card.cos import CardState

from .test_agent import AGENT, CONSOLE, make_agent, slot_of

EXAMPLES = int(os.environ.get("HEALTHCARD_API_FUZZ_EXAMPLES", "25"))


def test_no_request_crashes_the_agent(issued_state: CardState) -> None:
    agent = make_agent(issued_state)
    host = AGENT.removeprefix("http://")
    # the agent answers only its own host name (DNS-rebinding guard), also for its schema
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(agent), headers={"Host": host})
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8  # status, readers, swipe, pin, writes …
    tried = 0
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def one(case: Any) -> None:
            nonlocal tried
            tried += 1
            # the console's origin and the agent's own host: the request reaches the operation
            # instead of stopping at the origin and DNS-rebinding guards
            response = case.call(headers={"Host": host, "Origin": CONSOLE})
            where = f"{case.method} {case.formatted_path}"
            assert response.status_code != 500, f"{where}: {response.text[:500]}"
            if response.status_code >= 400:
                body = response.json()
                assert set(body) == {"code", "message", "field"}, (where, body)

        one()
    # the card survived whatever was sent (the fuzz may have taken it out with /remove: put it
    # back): it answers a swipe, its files and keys whole
    slot_of(agent).insert()
    assert agent.swipe(None)["card"]["card_number"]
    print(f"\nagent fuzz: {len(operations)} operations, {tried} generated requests, no 500")
