"""schemathesis over the whole OpenAPI of the platform, on SQLite and PostgreSQL: whatever the
generated input — wrong types, huge numbers, odd Unicode, unknown ids — the answer is never a
5xx, and every error is ``{code, message, field}``.  Bounded: a few examples per operation, so
that ``make test`` stays quick; ``make fuzz`` runs it longer."""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from healthcard.api.app import create_app

from .platform_fixtures import CARD, PASSWORD, Platform

#: generated requests per operation; ``make fuzz`` raises it (HEALTHCARD_API_FUZZ_EXAMPLES=200)
EXAMPLES = int(os.environ.get("HEALTHCARD_API_FUZZ_EXAMPLES", "25"))


@pytest.fixture
def tokens(platform: Platform) -> dict[str, str]:
    """A token per kind of caller; the clinician's hospital has the card's presence grant."""
    client = TestClient(create_app(platform.app))
    found: dict[str, str] = {}
    for user in ("dr-wang", "admin", "cdc-zz", CARD):
        answer = client.post("/v1/auth/token", json={"username": user, "password": PASSWORD})
        found[user] = answer.json()["access_token"]
    with platform.terminal() as terminal:
        nonce = client.post("/v1/auth/terminal/challenge", json={"terminal_id": platform.terminal_id}).json()[
            "nonce"
        ]
        _, signature = terminal.sign_challenge(bytes.fromhex(nonce))
        answer = client.post(
            "/v1/auth/terminal",
            json={"terminal_id": platform.terminal_id, "nonce": nonce, "signature": signature.hex()},
        )
        found["terminal"] = answer.json()["access_token"]
    swipe = client.post(
        "/v1/swipes",
        json={"card_number": CARD, "chip_serial": platform.chip_serial},
        headers={"Authorization": f"Bearer {found['terminal']}"},
    )
    assert swipe.status_code == 200, swipe.text
    return found


def _who(path: str) -> str:
    if path.startswith(("/v1/swipes", "/v1/encounters/uploads")):
        return "terminal"
    if path.startswith("/v1/areas"):
        return "cdc-zz"
    if path.startswith(("/v1/audit", "/v1/mpi")):
        return "admin"
    return "dr-wang"


def test_no_input_makes_a_server_error(tokens: dict[str, str], platform: Platform) -> None:
    """Every operation of the OpenAPI, EXAMPLES generated requests each (derandomised, so a
    failure repeats)."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(platform.app))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25  # every router is in the schema
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
            # a known resident makes the generated requests reach the services, not only 404s
            if case.path_parameters and "resident_id" in case.path_parameters:
                case.path_parameters["resident_id"] = platform.resident_id
            response = case.call(headers={"Authorization": f"Bearer {tokens[_who(case.path)]}"})
            where = f"{case.method} {case.formatted_path}"
            assert response.status_code < 500, f"{where}: {response.status_code} {response.text[:500]}"
            if response.status_code >= 400:
                body = response.json()
                assert set(body) == {"code", "message", "field"}, (where, body)

        one()
