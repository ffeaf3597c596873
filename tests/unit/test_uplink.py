"""The terminal's side of the visit flow: SAM login, the platform client, the offline queue.

No real server: :class:`FakePlatform` answers through ``httpx.MockTransport`` the API the
platform serves (``/v1/auth/terminal/challenge``, ``/v1/auth/terminal``, ``/v1/swipes``,
``/v1/encounters/uploads``) and checks the SAM's login signature the way the platform must:
the certificate against the national root, the signature against the certificate's key.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from healthcard.card.cos import CardOS, CardState
from healthcard.card.sam import SamOS
from healthcard.clock import SHANGHAI, FixedClock
from healthcard.demo import DEMO_SAM_SERIAL, demo_sam, demo_trust
from healthcard.errors import (
    CertificateError,
    Duplicate,
    InvalidValue,
    TransportError,
)
from healthcard.keys import sm2, sm3
from healthcard.keys.certificates import parse_certificate, verify_certificate
from healthcard.terminal.platform import (
    NotLoggedIn,
    PlatformClient,
    PlatformRefused,
    login_digest,
    make_upload_key,
    upload_payload,
)
from healthcard.terminal.sdk import HealthCardTerminal
from healthcard.terminal.transport import SimulatorTransport
from healthcard.terminal.uplink import UploadQueue

TERMINAL_ID = DEMO_SAM_SERIAL.hex().upper()  # the SAM certificate's subject id
TODAY = dt.date(2026, 3, 2)
START = dt.datetime(2026, 3, 2, 9, 30, tzinfo=SHANGHAI)
BASE = "https://platform.test"


def expected_digest(nonce: bytes) -> bytes:
    """What the platform recomputes, written out here rather than imported."""
    return sm3(b"HEALTHCARD-TERMINAL-LOGIN" + nonce)


# --- the fake platform ---------------------------------------------------------------------------


class FakePlatform:
    """The platform's terminal API in memory, with switches to make it fail."""

    def __init__(self) -> None:
        self.nonces: dict[str, bytes] = {}
        self.tokens: set[str] = set()
        self.encounters: dict[str, int] = {}  # upload_key -> encounter id
        self.logins = 0
        self.uploads_seen = 0  # upload requests that reached the handler
        self.down = False  # every request: ConnectError
        self.lose_answers = 0  # the next N uploads commit, then the answer is lost
        self.fail_status: int | None = None  # every upload answers this status
        self.headers: list[httpx.Headers] = []
        #: when set, asked first; its answer (or exception) replaces the platform's, None passes
        self.override: Callable[[httpx.Request], httpx.Response | None] | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.override is not None and (answer := self.override(request)) is not None:
            return answer
        if self.down:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        self.headers.append(request.headers)
        body = json.loads(request.content)
        path = request.url.path
        if path == "/v1/auth/terminal/challenge":
            nonce = secrets.token_bytes(32)
            self.nonces[body["terminal_id"]] = nonce
            return httpx.Response(200, json={"nonce": nonce.hex()})
        if path == "/v1/auth/terminal":
            return self._login(body)
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token not in self.tokens:
            return _error(401, "not-authenticated", "token expired or unknown")
        if path == "/v1/swipes":
            return httpx.Response(
                200,
                json={
                    "resident_id": "R1",
                    "card_use_id": 7,
                    "grant": {"institution_code": "410100001", "expires_at": "2026-03-02T13:30:00+08:00"},
                    "summary": {"card_number": body["card_number"], "chip_serial": body["chip_serial"]},
                },
            )
        if path == "/v1/encounters/uploads":
            return self._upload(request, body)
        return _error(404, "not-found", path)

    def _login(self, body: dict[str, Any]) -> httpx.Response:
        nonce = self.nonces.pop(body["terminal_id"], None)
        if nonce is None or nonce.hex() != body["nonce"]:
            return _error(401, "not-authenticated", "no such challenge")
        try:
            cert = verify_certificate(bytes.fromhex(body["certificate"]), demo_trust(), TODAY, kind="sam")
        except CertificateError as bad:
            return _error(401, "not-authenticated", str(bad))
        if cert.subject != body["terminal_id"]:
            return _error(401, "not-authenticated", "the certificate is another terminal's")
        if not sm2.verify(cert.public_key, expected_digest(nonce), bytes.fromhex(body["signature"])):
            return _error(401, "not-authenticated", "the SAM signature does not verify")
        token = secrets.token_urlsafe(24)
        self.tokens.add(token)
        self.logins += 1
        return httpx.Response(200, json={"access_token": token, "token_type": "bearer", "expires_in": 3600})

    def _upload(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        self.uploads_seen += 1
        if self.fail_status is not None:
            return _error(self.fail_status, "refused", "as told")
        for n, diagnosis in enumerate(body["diagnoses"]):
            if not diagnosis["code"][:1].isalpha():
                return _error(422, "invalid", "not an ICD-10 code", f"diagnoses[{n}].code")
        key = body["upload_key"]
        created = key not in self.encounters
        if created:
            self.encounters[key] = 1000 + len(self.encounters)
        if self.lose_answers:  # committed, but the answer never reaches the terminal
            self.lose_answers -= 1
            raise httpx.ReadError("connection reset by peer", request=request)
        return httpx.Response(
            201 if created else 200, json={"encounter_id": self.encounters[key], "created": created}
        )


def _error(status: int, code: str, message: str, field: str | None = None) -> httpx.Response:
    return httpx.Response(status, json={"code": code, "message": message, "field": field})


@pytest.fixture
def platform() -> FakePlatform:
    return FakePlatform()


@pytest.fixture
def client(platform: FakePlatform, terminal: HealthCardTerminal) -> Iterator[PlatformClient]:
    """A client of the fake platform, logged in with the demo terminal's SAM."""
    with PlatformClient(BASE, transport=httpx.MockTransport(platform)) as c:
        c.login(terminal, TERMINAL_ID)
        yield c


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[UploadQueue]:
    with UploadQueue(tmp_path / "uplink" / "queue.sqlite3", FixedClock(START)) as q:
        yield q


def visit(n: int = 0, **change: Any) -> dict[str, Any]:
    """The n-th visit's upload (a different card number each)."""
    args: dict[str, Any] = {
        "terminal_id": TERMINAL_ID,
        "card_number": f"41010219800101{n:04d}",
        "chip_serial": bytes.fromhex("0081866B00001015"),
        "department": "内科",
        "clinician": "王医生",
        "started_at": START,
        "ended_at": START + dt.timedelta(minutes=12),
        "diagnoses": [{"code": "J06.9", "name": "急性上呼吸道感染", "primary": True}],
        "observations": [
            {
                "kind": "lab",
                "code": "WBC",
                "name": "白细胞",
                "value": "11.2",
                "unit": "10^9/L",
                "low": 4,
                "high": 10,
            }
        ],
        "prescriptions": [
            {
                "drug": "阿莫西林胶囊",
                "dose": "0.5",
                "dose_unit": "g",
                "route_code": "1",
                "frequency": "tid",
                "days": 3,
            }
        ],
        "procedures": [{"code": "93.39", "name": "物理治疗", "performed_on": START.date()}],
        "fees": [{"category": "西药费", "code": "1", "amount_fen": 2350}],
        "payment_method": "01",
        "card_slot": 1,
    }
    args.update(change)
    return upload_payload(**args)


# --- 1. the SAM signs the login challenge ----------------------------------------------------


def test_sign_challenge_verifies_under_the_key_of_the_sam_certificate(terminal: HealthCardTerminal) -> None:
    nonce = bytes(range(32))
    certificate, signature = terminal.sign_challenge(nonce)
    cert = verify_certificate(certificate, demo_trust(), TODAY, kind="sam")
    assert cert.subject == TERMINAL_ID and len(signature) == 64
    assert login_digest(nonce) == expected_digest(nonce)
    assert sm2.verify(cert.public_key, expected_digest(nonce), signature)
    # bound to the nonce and to the login context
    assert not sm2.verify(cert.public_key, expected_digest(bytes(32)), signature)
    assert not sm2.verify(cert.public_key, sm3(nonce), signature)


def test_sign_challenge_without_a_session_powers_only_the_sam(issued_state: CardState) -> None:
    card = SimulatorTransport(CardOS(copy.deepcopy(issued_state)))
    t = HealthCardTerminal(card, SimulatorTransport(SamOS(demo_sam())))
    certificate, signature = t.sign_challenge(b"\x5a" * 16)
    assert card.trace.count == 0  # no card in the slot is needed to log in
    public = parse_certificate(certificate).public_key
    assert sm2.verify(public, expected_digest(b"\x5a" * 16), signature)
    # a later open() still works on the same SAM
    t.open()
    assert t.sign_challenge(b"\x01" * 8)[0] == certificate


@pytest.mark.parametrize("nonce", [b"", b"1234567", bytes(257), "00" * 16])
def test_sign_challenge_refuses_a_bad_nonce_before_the_sam(terminal: HealthCardTerminal, nonce: Any) -> None:
    before = terminal.sam.trace.count
    with pytest.raises(InvalidValue) as bad:
        terminal.sign_challenge(nonce)
    assert bad.value.field == "nonce"
    assert terminal.sam.trace.count == before


# --- 2. the platform client ----------------------------------------------------------------------


def test_login_then_swipe_with_the_bearer_token(client: PlatformClient, platform: FakePlatform) -> None:
    assert client.logged_in and client.terminal_id == TERMINAL_ID and client.expires_in == 3600
    assert client.token in platform.tokens
    assert platform.logins == 1
    answer = client.swipe("410102198001010000", bytes.fromhex("0081866b00001015"))
    assert answer["resident_id"] == "R1" and answer["grant"]["institution_code"] == "410100001"
    assert answer["summary"]["chip_serial"] == "0081866B00001015"
    assert platform.headers[-1]["authorization"].startswith("Bearer ")


class ForgingTerminal:
    """The demo SAM's certificate with a signature of something else."""

    def __init__(self, terminal: HealthCardTerminal) -> None:
        self.terminal = terminal

    def sign_challenge(self, nonce: bytes) -> tuple[bytes, bytes]:
        return self.terminal.sign_challenge(bytes(len(nonce)))


def test_a_forged_login_is_refused_and_leaves_the_client_logged_out(
    platform: FakePlatform, terminal: HealthCardTerminal
) -> None:
    with PlatformClient(BASE, transport=httpx.MockTransport(platform)) as c:
        with pytest.raises(PlatformRefused) as refused:
            c.login(ForgingTerminal(terminal), TERMINAL_ID)
        assert refused.value.status == 401 and refused.value.code == "not-authenticated"
        assert "does not verify" in refused.value.message
        assert not c.logged_in and platform.logins == 0 and not platform.tokens


def test_a_401_logs_in_again_once_with_the_same_sam(client: PlatformClient, platform: FakePlatform) -> None:
    platform.tokens.clear()  # the platform restarted: every token is gone
    assert client.swipe("410102198001010000", "0081866B00001015")["card_use_id"] == 7
    assert platform.logins == 2


def test_a_platform_that_keeps_saying_401_is_not_asked_forever(
    client: PlatformClient, platform: FakePlatform
) -> None:
    def refuse_tokens(request: httpx.Request) -> httpx.Response | None:
        if request.url.path.startswith("/v1/auth/"):
            return None  # logging in still works
        return _error(401, "not-authenticated", "terminal deactivated")

    platform.override = refuse_tokens
    with pytest.raises(PlatformRefused) as refused:
        client.swipe("410102198001010000", "0081866B00001015")
    assert refused.value.status == 401
    assert platform.logins == 2  # the first login and exactly one more


def test_using_the_client_before_login_is_refused_without_a_request(platform: FakePlatform) -> None:
    with PlatformClient(BASE, transport=httpx.MockTransport(platform)) as c, pytest.raises(NotLoggedIn):
        c.upload(visit())
    assert platform.headers == [] and platform.uploads_seen == 0


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), "ConnectError"),
        (httpx.ReadTimeout("timed out"), "timed out"),
        (httpx.Response(503, text="<html>busy</html>"), "HTTP 503"),
        (httpx.Response(502, json={"code": "bad-gateway", "message": "upstream"}), "HTTP 502"),
        (httpx.Response(201, text="not json"), "without a JSON object"),
        (httpx.Response(201, json={"encounter_id": "x", "created": True}), "not the documented"),
    ],
)
def test_unreachable_platform_is_a_transport_error_without_the_token(
    client: PlatformClient, platform: FakePlatform, fault: Exception | httpx.Response, words: str
) -> None:
    (token,) = platform.tokens

    def broken(request: httpx.Request) -> httpx.Response:
        if isinstance(fault, httpx.Response):
            return fault
        raise fault

    platform.override = broken
    with pytest.raises(TransportError) as down:
        client.upload(visit())
    message = str(down.value)
    assert message.startswith("platform unreachable: ") and words in message
    assert token not in message


def test_a_4xx_is_platform_refused_with_code_message_and_field(client: PlatformClient) -> None:
    with pytest.raises(PlatformRefused) as refused:
        client.upload(visit(diagnoses=[{"code": "123", "name": "?", "primary": True}]))
    err = refused.value
    assert (err.status, err.code, err.field) == (422, "invalid", "diagnoses[0].code")
    assert err.message == "not an ICD-10 code" and err.about_request


def test_a_4xx_without_the_error_body_still_says_what_it_can(
    client: PlatformClient, platform: FakePlatform
) -> None:
    platform.override = lambda request: httpx.Response(413, text="too large")
    with pytest.raises(PlatformRefused) as refused:
        client.upload(visit())
    assert (refused.value.status, refused.value.code, refused.value.field) == (413, "http-413", None)


def test_upload_created_then_repeat(client: PlatformClient, platform: FakePlatform) -> None:
    payload = visit()
    encounter_id, created = client.upload(payload)
    assert created and platform.encounters == {payload["upload_key"]: encounter_id}
    assert client.upload(payload) == (encounter_id, False)
    assert len(platform.encounters) == 1


# --- the upload payload ----------------------------------------------------------------------------


def test_upload_payload_has_the_documented_keys_and_is_json() -> None:
    payload = visit()
    assert set(payload) == {
        "upload_key", "card_number", "chip_serial", "kind", "department", "clinician", "started_at",
        "ended_at", "diagnoses", "observations", "prescriptions", "procedures", "fees",
        "payment_method", "card_slot",
    }  # fmt: skip
    assert payload["started_at"] == "2026-03-02T09:30:00+08:00"
    assert payload["procedures"][0]["performed_on"] == "2026-03-02"
    assert payload["chip_serial"] == "0081866B00001015" and payload["kind"] == "outpatient"
    assert json.loads(json.dumps(payload)) == payload


def test_upload_items_carry_only_the_keys_given() -> None:
    """A missing optional key is left out (the platform's default applies), never sent as null."""
    payload = visit(
        observations=[{"kind": "exam", "code": "US", "name": "B超", "value": "未见异常"}],
        diagnoses=[{"code": "I10", "name": "高血压", "diagnosed_on": dt.date(2026, 3, 1)}],
    )
    assert payload["observations"] == [{"kind": "exam", "code": "US", "name": "B超", "value": "未见异常"}]
    assert payload["diagnoses"] == [{"code": "I10", "name": "高血压", "diagnosed_on": "2026-03-01"}]


def test_upload_payload_needs_only_the_card_the_department_and_the_times() -> None:
    payload = upload_payload(
        card_number="410102198001010000",
        chip_serial="0081866b00001015",
        department="全科",
        started_at=START,
        ended_at=START,
    )
    assert payload["clinician"] is None and payload["diagnoses"] == [] and payload["card_slot"] is None
    assert payload["upload_key"] == make_upload_key("", "410102198001010000", "outpatient", START)
    assert (
        payload["upload_key"]
        != visit(terminal_id=TERMINAL_ID, card_number="410102198001010000")["upload_key"]
    )


def test_the_upload_key_is_a_fact_of_the_visit() -> None:
    key = visit()["upload_key"]
    assert len(key) == 64 and int(key, 16) >= 0
    assert visit()["upload_key"] == key  # built again after a crash: the same key
    same_moment = START.astimezone(dt.UTC)
    assert make_upload_key(TERMINAL_ID, "41010219800101" + "0000", "outpatient", same_moment) == key
    assert visit(1)["upload_key"] != key
    assert visit(started_at=START + dt.timedelta(seconds=1))["upload_key"] != key
    assert make_upload_key("AB", "C", "outpatient", START) != make_upload_key("A", "BC", "outpatient", START)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"started_at": dt.datetime(2026, 3, 2, 9, 30)}, "started_at"),
        ({"ended_at": START - dt.timedelta(minutes=1)}, "ended_at"),
        ({"fees": [{"category": "x", "code": "1", "amount_fen": -1}]}, "fees[0].amount_fen"),
        ({"fees": [{"category": "x", "code": "1", "amount_fen": 12.5}]}, "fees[0].amount_fen"),
        ({"diagnoses": [{"code": "J06.9", "name": "x", "primary": "yes"}]}, "diagnoses[0].primary"),
        (
            {"diagnoses": [{"code": "J06.9", "name": "x", "primary": True, "prmary": 1}]},
            "diagnoses[0].prmary",
        ),
        ({"observations": [{"value": object()}]}, "observations[0].value"),
        ({"upload_key": "short"}, "upload_key"),
        ({"card_number": ""}, "card_number"),
        ({"chip_serial": "not hex"}, "chip_serial"),
        ({"card_slot": 0}, "card_slot"),
    ],
)
def test_upload_payload_refuses_bad_input_by_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidValue) as bad:
        visit(**change)
    assert bad.value.field == field


# --- 3. the offline queue ------------------------------------------------------------------------


def test_offline_then_back_online_delivers_each_upload_once(
    queue: UploadQueue, client: PlatformClient, platform: FakePlatform
) -> None:
    keys = [queue.put(visit(n)) for n in range(20)]
    assert [q.upload_key for q in queue.pending()] == keys  # first in, first out

    platform.down = True
    report = queue.drain(client)
    assert (report.delivered, report.failed, report.remaining) == (0, 1, 20)
    assert report.error is not None and report.error.startswith("platform unreachable")
    pending = queue.pending()
    assert pending[0].attempts == 1 and pending[0].last_error == report.error
    assert all(q.attempts == 0 for q in pending[1:])  # the drain stopped at the first failure

    platform.down = False
    report = queue.drain(client)
    assert (report.delivered, report.duplicates, report.failed, report.remaining) == (20, 0, 0, 0)
    assert set(platform.encounters) == set(keys)
    delivered = queue.get(keys[3])
    assert delivered is not None and delivered.status == "delivered"
    assert delivered.encounter_id == platform.encounters[keys[3]] and delivered.delivered_at == START
    assert [q.upload_key for q in queue.delivered()] == keys and queue.pending() == []

    seen = platform.uploads_seen
    again = queue.drain(client)
    assert (again.delivered, again.failed, again.remaining) == (0, 0, 0)
    assert platform.uploads_seen == seen  # nothing was sent


def test_an_answer_lost_after_the_platform_committed_is_a_harmless_repeat(
    queue: UploadQueue, client: PlatformClient, platform: FakePlatform
) -> None:
    key = queue.put(visit())
    platform.lose_answers = 1
    lost = queue.drain(client)
    assert (lost.delivered, lost.failed, lost.remaining) == (0, 1, 1)
    assert "ReadError" in (lost.error or "")
    assert list(platform.encounters) == [key]  # the platform has it; the terminal does not know

    retry = queue.drain(client)
    assert (retry.delivered, retry.duplicates, retry.remaining) == (1, 1, 0)
    assert len(platform.encounters) == 1
    item = queue.get(key)
    assert item is not None and item.status == "delivered" and item.attempts == 2
    assert item.encounter_id == platform.encounters[key]


def test_a_422_is_rejected_for_good_and_the_rest_goes_on(
    queue: UploadQueue, client: PlatformClient, platform: FakePlatform
) -> None:
    good = queue.put(visit(0))
    bad = queue.put(visit(1, diagnoses=[{"code": "0000", "name": "?", "primary": True}]))
    after = queue.put(visit(2))
    report = queue.drain(client)
    assert (report.delivered, report.rejected, report.failed, report.remaining) == (2, 1, 0, 0)
    (rejection,) = report.rejections
    assert (rejection.upload_key, rejection.status, rejection.field) == (bad, 422, "diagnoses[0].code")
    assert set(platform.encounters) == {good, after}
    (held,) = queue.rejected()
    assert held.upload_key == bad and held.status == "rejected"
    assert held.last_error is not None and "422" in held.last_error and "diagnoses[0].code" in held.last_error

    seen = platform.uploads_seen
    assert queue.drain(client).rejected == 0
    assert platform.uploads_seen == seen  # not retried


@pytest.mark.parametrize("status", [403, 429])
def test_a_refusal_about_the_terminal_stops_the_drain_and_keeps_the_upload(
    queue: UploadQueue, client: PlatformClient, platform: FakePlatform, status: int
) -> None:
    queue.put(visit(0))
    queue.put(visit(1))
    platform.fail_status = status
    report = queue.drain(client)
    assert (report.delivered, report.rejected, report.failed, report.remaining) == (0, 0, 1, 2)
    assert platform.uploads_seen == 1 and queue.rejected() == []
    platform.fail_status = None
    assert queue.drain(client).delivered == 2


def test_an_expired_token_mid_drain_logs_in_again(
    queue: UploadQueue, client: PlatformClient, platform: FakePlatform
) -> None:
    for n in range(3):
        queue.put(visit(n))
    queue.drain(client, max_items=1)
    platform.tokens.clear()
    report = queue.drain(client)
    assert (report.delivered, report.remaining) == (2, 0)
    assert platform.logins == 2 and len(platform.encounters) == 3


def test_a_clinic_that_started_offline_keeps_its_queue_until_it_logs_in(
    queue: UploadQueue, platform: FakePlatform, terminal: HealthCardTerminal
) -> None:
    keys = [queue.put(visit(n)) for n in range(3)]
    with PlatformClient(BASE, transport=httpx.MockTransport(platform)) as never_logged_in:
        report = queue.drain(never_logged_in)
        assert (report.delivered, report.failed, report.remaining) == (0, 1, 3)
        assert report.error is not None and "not logged in" in report.error
        assert platform.uploads_seen == 0 and all(q.attempts == 0 for q in queue.pending())
        never_logged_in.login(terminal, TERMINAL_ID)
        assert queue.drain(never_logged_in).delivered == 3
    assert set(platform.encounters) == set(keys)


def test_max_items_bounds_a_drain(queue: UploadQueue, client: PlatformClient, platform: FakePlatform) -> None:
    keys = [queue.put(visit(n)) for n in range(5)]
    report = queue.drain(client, max_items=2)
    assert (report.delivered, report.remaining) == (2, 3)
    assert set(platform.encounters) == set(keys[:2])
    assert queue.drain(client, max_items=0).delivered == 0
    with pytest.raises(InvalidValue):
        queue.drain(client, max_items=-1)


def test_put_is_idempotent_and_refuses_other_content_under_a_key(queue: UploadQueue) -> None:
    payload = visit()
    assert queue.put(payload) == queue.put(dict(reversed(list(payload.items())))) == payload["upload_key"]
    assert len(queue.pending()) == 1
    changed = dict(payload, department="外科")
    with pytest.raises(Duplicate) as dup:
        queue.put(changed)
    assert dup.value.field == "upload_key"
    (held,) = queue.pending()
    assert held.payload == payload and held.queued_at == START


@pytest.mark.parametrize("payload", [{}, {"upload_key": "x" * 31}, {"upload_key": "k" * 32, "v": {1, 2}}])
def test_put_refuses_what_cannot_be_sent(queue: UploadQueue, payload: dict[str, Any]) -> None:
    with pytest.raises(InvalidValue):
        queue.put(payload)
    assert queue.pending() == []


def test_the_queue_survives_a_killed_process(tmp_path: Path) -> None:
    path = tmp_path / "queue.sqlite3"
    payloads = [visit(n) for n in range(3)]
    script = (
        "import json, os, sys\n"
        "from pathlib import Path\n"
        "from healthcard.terminal.uplink import UploadQueue\n"
        "q = UploadQueue(Path(sys.argv[1]))\n"
        "for p in json.loads(sys.argv[2]):\n"
        "    q.put(p)\n"
        "os._exit(9)  # no close, no flush, no atexit: as if killed\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path), json.dumps(payloads)], capture_output=True, timeout=60
    )
    assert done.returncode == 9, done.stderr.decode()
    with UploadQueue(path, FixedClock(START)) as reopened:
        assert [q.payload for q in reopened.pending()] == payloads
