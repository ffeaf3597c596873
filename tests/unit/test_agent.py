"""The local reader agent with a simulated card slot and a SAM image, no network: its HTTP API,
its card errors, and the guard that keeps other web pages from driving the card reader."""

from __future__ import annotations

import copy
import datetime as dt
import logging
import threading
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from healthcard.agent import Agent, SamSlot, SimulatedSlot, create_app
from healthcard.card.cos import CardState
from healthcard.demo import demo_sam, demo_trust
from healthcard.errors import InvalidValue

NOW = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)
CONSOLE = "http://127.0.0.1:8000"
AGENT = "http://127.0.0.1:7700"
SLOT = "sim-1"

VISIT = {
    "JZJGMC": "郑州市中心医院",
    "JZJGZZJGDM": "41010001X",
    "JZRQSJ": "20261123100000",
    "MZH": "MZ1",
    "JYKSMC": "内科",
    "MZZDMC1": "上呼吸道感染",
    "MZZDDM1": "J06.9",
    "MZFYFLMC1": "诊查费",
    "MZFYFLDM1": "1",
    "MZFYJE1": "2500",
}


class Clock:
    def now(self) -> dt.datetime:
        return NOW


def make_agent(state: CardState | None, **options: object) -> Agent:
    readers = [SimulatedSlot(SLOT, copy.deepcopy(state))] if state is not None else []
    settings: dict[str, object] = {"sam": SamSlot.from_image(demo_sam(), "sam-demo"), "trust": demo_trust()}
    settings.update(options)
    return Agent(readers=readers, clock=Clock(), **settings)  # type: ignore[arg-type]


@pytest.fixture
def agent(issued_state: CardState) -> Agent:
    return make_agent(issued_state)


@pytest.fixture
def client(agent: Agent) -> Iterator[TestClient]:
    with TestClient(create_app(agent), base_url=AGENT) as http:
        yield http


def slot_of(agent: Agent) -> SimulatedSlot:
    reader = agent.readers()[0]
    assert isinstance(reader, SimulatedSlot)
    return reader


def apdus_to(slot: SimulatedSlot) -> list[bytes]:
    """Every APDU the slot's card receives from now on."""
    seen: list[bytes] = []
    process = slot.card.process

    def spy(raw: bytes) -> bytes:
        seen.append(raw)
        return process(raw)

    slot.card.process = spy  # type: ignore[method-assign]
    return seen


def problem(answer: httpx.Response, status: int, code: str, field: str | None = None) -> dict[str, object]:
    assert answer.status_code == status, answer.text
    body: dict[str, object] = answer.json()
    assert body["code"] == code and body["field"] == field and body["message"], body
    return body


# --- status and readers ---------------------------------------------------------------------------
def test_status_names_the_agent_its_readers_its_sam_and_no_platform(client: TestClient) -> None:
    answer = client.get("/status")
    assert answer.status_code == 200, answer.text
    status = answer.json()
    assert status["agent"] == "healthcard-agent" and status["version"]
    assert status["readers"] == [{"name": SLOT, "kind": "simulated", "card_present": True, "busy": False}]
    assert status["card_present"] is True
    assert status["sam"]["source"] == "image" and len(status["sam"]["subject"]) == 16
    assert status["platform"] == {"configured": False, "url": None}
    assert answer.headers["cache-control"] == "no-store"


def test_readers_follow_the_simulated_card_in_and_out(client: TestClient) -> None:
    assert client.get("/readers").json()[0]["card_present"] is True
    removed = client.post("/remove", json={"reader": SLOT})
    assert removed.status_code == 200 and removed.json()["card_present"] is False
    assert client.get("/readers").json()[0]["card_present"] is False
    assert client.get("/status").json()["card_present"] is False
    assert client.post("/insert", json={}).json()["card_present"] is True  # the only slot
    problem(client.post("/insert", json={"reader": "sim-9"}), 404, "not-found")


# --- swipe -------------------------------------------------------------------------------------------
def test_swipe_offline_answers_what_the_chip_says(client: TestClient) -> None:
    answer = client.post("/swipe", json={"stage": "consultation"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["reader"] == SLOT and body["platform"] is None
    card = body["card"]
    assert card["holder"]["name"] == "张三" and card["holder"]["sex"]["code"] == "01"
    assert card["card_number"] == "410102199003070019" and len(card["chip_serial"]) == 16
    assert card["alerts"]["present"] == ["diabetes"]
    assert card["allergies"] and card["allergies"][0]["allergen"]
    assert card["photo"] is None or card["photo"].startswith("data:image/jpeg;base64,")
    assert card["recent_visits"] == []


def test_a_platform_that_does_not_answer_leaves_the_card_part_standing(issued_state: CardState) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    agent = make_agent(
        issued_state, platform_url="http://127.0.0.1:9", platform_transport=httpx.MockTransport(refuse)
    )
    with TestClient(create_app(agent), base_url=AGENT) as client:
        body = client.post("/swipe", json={}).json()
        assert body["card"]["holder"]["name"] == "张三"
        assert body["platform"]["ok"] is False
        assert body["platform"]["error"]["code"] == "platform-unreachable"
        status = client.get("/status").json()["platform"]
        assert status["configured"] is True and status["logged_in"] is False
        assert status["error"]["code"] == "platform-unreachable"
        problem(client.post("/check-in", json={}), 502, "platform-unreachable")


def test_check_in_needs_a_platform(client: TestClient) -> None:
    problem(client.post("/check-in", json={"booking_id": 1}), 409, "no-platform")


# --- errors of the card ------------------------------------------------------------------------------
def test_no_card_no_sam_and_an_unknown_reader_are_told_apart(issued_state: CardState) -> None:
    with TestClient(create_app(make_agent(issued_state, sam=None)), base_url=AGENT) as client:
        problem(client.post("/swipe", json={}), 503, "sam-missing")
    with TestClient(create_app(make_agent(issued_state)), base_url=AGENT) as client:
        client.post("/remove", json={"reader": SLOT})
        body = problem(client.post("/swipe", json={}), 409, "no-card")
        assert "insert" in str(body["message"])
        problem(client.post("/swipe", json={"reader": "Virtual PCD 00 07"}), 404, "not-found")
    with TestClient(create_app(make_agent(None)), base_url=AGENT) as client:
        problem(client.post("/swipe", json={}), 409, "no-card")


def test_a_second_operation_on_a_busy_reader_gets_409(issued_state: CardState) -> None:
    agent = make_agent(issued_state, busy_wait=0.1)
    with TestClient(create_app(agent), base_url=AGENT) as client:
        slot = slot_of(agent)
        with slot.lock:
            assert client.get("/readers").json()[0]["busy"] is True
            problem(client.post("/swipe", json={}), 409, "busy")
        assert client.post("/swipe", json={}).status_code == 200


def test_two_swipes_at_once_on_one_reader_take_turns(client: TestClient) -> None:
    answers: list[int] = []

    def swipe() -> None:
        answers.append(client.post("/swipe", json={}).status_code)

    threads = [threading.Thread(target=swipe) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200, 200, 200]  # each waited for the one before (busy_wait 2 s)


# --- writing the visit ---------------------------------------------------------------------------------
def test_write_outpatient_then_read_it_back_verified(client: TestClient) -> None:
    answer = client.post("/write/outpatient", json={"values": VISIT, "card_number": "410102199003070019"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["slot"] == 1 and body["kind"] == "outpatient"
    assert body["record"]["outpatient_no"] == "MZ1" and body["record"]["total_fen"] == 2500
    assert body["record"]["diagnoses"][0]["code"] == "J06.9"
    assert body["verification"]["verified"] is True and "SAM certificate" in body["verification"]["signer"]
    visits = client.post("/swipe", json={}).json()["card"]["recent_visits"]
    assert [v["outpatient_no"] for v in visits] == ["MZ1"]


def test_a_write_without_trust_store_says_it_is_unverified(issued_state: CardState) -> None:
    with TestClient(create_app(make_agent(issued_state, trust=None)), base_url=AGENT) as client:
        body = client.post("/write/outpatient", json={"values": VISIT}).json()
        assert body["slot"] == 1 and body["verification"]["verified"] is False
        assert body["verification"]["reason"] == "unknown-root"


def test_a_bad_value_or_another_card_writes_nothing(agent: Agent, client: TestClient) -> None:
    seen = apdus_to(slot_of(agent))
    problem(client.post("/write/outpatient", json={"values": {"NOPE": "x"}}), 422, "invalid", "DF03/ED/NOPE")
    problem(
        client.post("/write/outpatient", json={"values": {"MZH": ["x"]}}), 422, "invalid", "values.MZH.str"
    )
    problem(
        client.post("/write/outpatient", json={"values": VISIT, "card_number": "1" * 18}), 409, "wrong-card"
    )
    problem(client.post("/write/outbound", json={"values": VISIT}), 422, "invalid", "kind")
    assert not [c for c in seen if c[1] in (0xD6, 0xDC, 0xD2, 0x0C)]  # no write reached the card
    assert client.post("/swipe", json={}).json()["card"]["recent_visits"] == []


def test_a_card_pulled_out_mid_write_is_a_clear_error_and_no_half_record(
    agent: Agent, client: TestClient
) -> None:
    slot = slot_of(agent)
    process = slot.card.process

    def pull_after_first_update(raw: bytes) -> bytes:
        response = process(raw)
        if raw[1] == 0xD6:  # the first UPDATE BINARY of the record went through; then the card is gone
            slot.remove()
        return response

    slot.card.process = pull_after_first_update  # type: ignore[method-assign]
    body = problem(client.post("/write/outpatient", json={"values": VISIT}), 409, "card-removed")
    assert "insert it again" in str(body["message"])
    slot.card.process = process  # type: ignore[method-assign]
    assert client.post("/insert", json={"reader": SLOT}).status_code == 200
    assert client.post("/swipe", json={}).json()["card"]["recent_visits"] == []  # the torn slot is invalid
    # and the next write takes the slot again, whole
    assert client.post("/write/outpatient", json={"values": VISIT}).json()["slot"] == 1


# --- the cardholder PIN ---------------------------------------------------------------------------------
def test_a_wrong_pin_three_times_blocks_the_card(
    pin_state: CardState, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(make_agent(pin_state)), base_url=AGENT) as client:
        assert client.post("/pin", json={"pin": "123456"}).json() == {"reader": SLOT, "verified": True}
        tries = [
            problem(client.post("/pin", json={"pin": "975310"}), 422, "pin-wrong", "pin") for _ in (1, 2)
        ]
        assert [t["tries_left"] for t in tries] == [2, 1]
        blocked = problem(client.post("/pin", json={"pin": "975310"}), 423, "pin-blocked")
        assert blocked["tries_left"] == 0
        problem(client.post("/pin", json={"pin": "123456"}), 423, "pin-blocked")  # the right one too, now
        problem(client.post("/pin", json={"pin": "12345"}), 422, "invalid", "pin")
    assert "975310" not in caplog.text and "123456" not in caplog.text


def test_wrong_pins_are_kept_for_the_platform_with_the_chip_and_never_the_pin(pin_state: CardState) -> None:
    """An agent without a platform keeps what the card refused (it has no one to report to); a
    card whose ATR names no chip (not a health card) is still asked, and nothing is kept."""
    from healthcard.agent.service import _chip_of

    agent = make_agent(pin_state)
    with TestClient(create_app(agent), base_url=AGENT) as client:
        problem(client.post("/pin", json={"pin": "975310"}), 422, "pin-wrong", "pin")
    assert agent.pending_refusals() == 1 and agent.report_refusals(force=True) == 0
    (kept,) = list(agent._refusals)
    assert kept["chip_serial"] == pin_state.serial.hex().upper()
    assert (kept["command"], kept["sw"]) == ("00200001", "63C2")
    assert "975310" not in str(kept)
    assert _chip_of(bytes.fromhex("3B00")) == b""


def test_a_card_without_pin_says_so(client: TestClient) -> None:
    problem(client.post("/pin", json={"pin": "123456"}), 409, "no-pin")


# --- the guard ---------------------------------------------------------------------------------------------
def test_another_sites_page_cannot_drive_the_reader(agent: Agent, client: TestClient) -> None:
    seen = apdus_to(slot_of(agent))
    evil = {"Origin": "https://evil.example"}
    for answer in (
        client.post("/swipe", json={}, headers=evil),
        client.post("/remove", json={}, headers=evil),
        client.get("/status", headers=evil),
        client.post("/swipe", json={}, headers={"Origin": "null"}),
        client.post("/swipe", json={}, headers={"Origin": "http://127.0.0.1:8001"}),
    ):
        body = problem(answer, 403, "forbidden-origin")
        assert "access-control-allow-origin" not in answer.headers, body
    assert seen == [] and slot_of(agent).inserted


def test_a_dns_rebinding_host_is_refused(client: TestClient) -> None:
    problem(client.get("/status", headers={"Host": "evil.example:7700"}), 403, "forbidden-host")
    assert client.get("/status", headers={"Host": "localhost:7700"}).status_code == 200


def test_a_form_post_is_refused(client: TestClient) -> None:
    answer = client.post(
        "/swipe", content=b"stage=x", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    problem(answer, 415, "unsupported-media-type")
    answer = client.post("/swipe", content=b"{}", headers={"Content-Type": "text/plain", "Origin": CONSOLE})
    problem(answer, 415, "unsupported-media-type")


def test_the_platform_origin_gets_cors_and_private_network_answers(client: TestClient) -> None:
    preflight = client.options(
        "/swipe",
        headers={
            "Origin": CONSOLE,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
            "Access-Control-Request-Private-Network": "true",
        },
    )
    assert preflight.status_code == 204, preflight.text
    headers = preflight.headers
    assert headers["access-control-allow-origin"] == CONSOLE
    assert "POST" in headers["access-control-allow-methods"]
    assert headers["access-control-allow-headers"].lower() == "content-type"
    assert headers["access-control-allow-private-network"] == "true"
    assert "access-control-allow-credentials" not in headers
    assert "Origin" in headers["vary"]
    # the answer itself carries the origin back, never "*"
    answer = client.post("/swipe", json={}, headers={"Origin": "http://localhost:8000"})
    assert (
        answer.status_code == 200 and answer.headers["access-control-allow-origin"] == "http://localhost:8000"
    )
    # an error answer too: the page must be able to read {code, message, field}
    client.post("/remove", json={}, headers={"Origin": CONSOLE})
    refused = client.post("/swipe", json={}, headers={"Origin": CONSOLE})
    assert refused.status_code == 409 and refused.headers["access-control-allow-origin"] == CONSOLE
    # a preflight from elsewhere gets nothing to go on
    other = client.options(
        "/swipe", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert other.status_code == 403 and "access-control-allow-private-network" not in other.headers


def test_configured_origins_replace_the_default(issued_state: CardState) -> None:
    app = create_app(make_agent(issued_state), ["https://clinic.example/"])
    with TestClient(app, base_url=AGENT) as client:
        assert client.get("/status", headers={"Origin": "https://clinic.example"}).status_code == 200
        assert client.get("/status", headers={"Origin": CONSOLE}).status_code == 403
    for bad in ("*", "clinic.example", "https://clinic.example/path"):
        with pytest.raises(InvalidValue):
            create_app(make_agent(issued_state), [bad])


def test_no_secret_in_answers_or_reprs(agent: Agent, client: TestClient) -> None:
    texts = [client.get("/status").text, client.post("/swipe", json={}).text, repr(agent)]
    for text in texts:
        assert "123456" not in text.replace("410102199003070019", "")
    assert agent.sam is not None and agent.sam.transport.trace.count == 0  # no APDU (the SAM PIN) kept
