"""The terminal's HTTP client to the regional health information platform (ARCHITECTURE.md §6,
the visit flow): a clinic terminal logs in with its SAM, reports a swipe, and uploads the visit.

::

    terminal                                   platform
    ── POST /v1/auth/terminal/challenge ──────▶  {"nonce": hex}
       SAM signs SM3("HEALTHCARD-TERMINAL-LOGIN" ‖ nonce)   (HealthCardTerminal.sign_challenge)
    ── POST /v1/auth/terminal  {certificate, signature} ──▶  {"access_token", …}
    ── POST /v1/swipes            (Bearer) ──▶  resident, card use, presence grant, summary
    ── POST /v1/encounters/uploads (Bearer) ──▶  201 created / 200 already there (same upload_key)

The login proves possession of the SAM: the platform checks the SAM certificate against the
national root and the signature against the certificate's key, so no password lives on the
terminal.  The token is kept in the client only; when the platform answers 401 (the token
expired, the platform restarted) the client logs in again once with the same SAM and repeats
the request.

Failures split the way the offline queue (:mod:`healthcard.terminal.uplink`) needs them:

* the platform could not be asked or did not answer properly — connection refused, timeout,
  HTTP 5xx, a reply that is not the documented JSON — is a
  :class:`~healthcard.errors.TransportError` ("platform unreachable: …"): try again later;
* the platform answered and said no (HTTP 4xx with ``{"code", "message", "field"}``) is a
  :class:`PlatformRefused`: trying the same request again will not help.

No message carries the access token or the request body.

:func:`upload_payload` builds an encounter upload.  Its ``upload_key`` is
``SM3("HEALTHCARD-UPLOAD" ‖ terminal id ‖ card number ‖ kind ‖ start time)`` in hex (64 chars)
rather than a random UUID: the key is a fact of the visit, so a terminal program that crashes
after writing the card and builds the same visit's upload again gets the same key, and the
platform (unique on ``institution_code, upload_key``) keeps one encounter instead of two.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Protocol

import httpx

from healthcard.errors import HealthCardError, InvalidValue, TransitionRefused, TransportError
from healthcard.keys import sm3


class ChallengeSigner(Protocol):
    """What :meth:`PlatformClient.login` needs of a terminal: its SAM's answer to a nonce
    (:meth:`healthcard.terminal.sdk.HealthCardTerminal.sign_challenge`)."""

    def sign_challenge(self, nonce: bytes) -> tuple[bytes, bytes]: ...


class PlatformRefused(HealthCardError):
    """The platform answered a request with HTTP 4xx: ``status``, and from the body
    ``{"code", "message", "field"}`` (``field`` names the bad input, None when not about one)."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        where = f" ({field})" if field else ""
        super().__init__(f"platform refused (HTTP {status} {code}){where}: {message}")

    @property
    def about_request(self) -> bool:
        """True when the refusal is about this request's content (400, 404, 409, 422 …), so
        sending it again can never succeed; False for 401, 403, 408 and 429, which are about the
        terminal's login, its rights or the platform's load, and may pass later."""
        return self.status not in (401, 403, 408, 429)


class NotLoggedIn(TransitionRefused):
    """The client was asked for something that needs a login before :meth:`PlatformClient.login`
    succeeded (an offline clinic that started while the platform was down)."""


LOGIN_CONTEXT: Final = b"HEALTHCARD-TERMINAL-LOGIN"
"""Prefix of the signed login message: the SAM signs ``SM3(LOGIN_CONTEXT ‖ nonce)``."""

UPLOAD_KEY_CONTEXT: Final = b"HEALTHCARD-UPLOAD"

#: the item keys of an encounter upload's lists: the documented ones, then the optional extras
#: the platform also takes (a diagnosis date, an observation time, a drug code)
ITEM_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "diagnoses": ("code", "name", "primary", "diagnosed_on"),
    "observations": ("kind", "code", "name", "value", "unit", "low", "high", "observed_at"),
    "prescriptions": ("drug", "dose", "dose_unit", "route_code", "frequency", "days", "drug_code"),
    "procedures": ("code", "name", "performed_on"),
    "fees": ("category", "code", "amount_fen"),
}


def login_digest(nonce: bytes) -> bytes:
    """The 32-byte message the SAM signs to log in: ``SM3(b"HEALTHCARD-TERMINAL-LOGIN" ‖ nonce)``
    (what a verifier recomputes before ``sm2.verify(public_key, digest, signature)``)."""
    return sm3(LOGIN_CONTEXT + nonce)


class PlatformClient:
    """A synchronous client of the platform's terminal API over httpx.

    ``transport`` replaces the network (``httpx.MockTransport`` in tests); ``timeout`` bounds
    every request in seconds."""

    def __init__(
        self, base_url: str, *, transport: httpx.BaseTransport | None = None, timeout: float = 5.0
    ) -> None:
        self._http = httpx.Client(base_url=base_url, transport=transport, timeout=timeout)
        self._token: str | None = None
        self._terminal: ChallengeSigner | None = None
        self._terminal_id = ""
        self.expires_in: int | None = None  # seconds the current token was granted for

    # --- life cycle --------------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PlatformClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def logged_in(self) -> bool:
        return self._token is not None

    @property
    def terminal_id(self) -> str:
        return self._terminal_id

    @property
    def token(self) -> str | None:
        """The current access token (for a caller that talks to the API itself)."""
        return self._token

    # --- the API -----------------------------------------------------------------------------
    def login(self, terminal: ChallengeSigner, terminal_id: str) -> None:
        """Challenge → the SAM signs → token.  The terminal is remembered so that a 401 later
        logs in again without the caller."""
        if not isinstance(terminal_id, str) or not terminal_id:
            raise InvalidValue("terminal_id", "a terminal id (the SAM's subject id, hex) is required")
        answer = self._json("POST", "/v1/auth/terminal/challenge", {"terminal_id": terminal_id})
        nonce_hex = answer.get("nonce")
        try:
            nonce = bytes.fromhex(nonce_hex) if isinstance(nonce_hex, str) else b""
        except ValueError:
            nonce = b""
        if not nonce:
            raise TransportError("platform unreachable: the challenge carries no hex nonce")
        certificate, signature = terminal.sign_challenge(nonce)
        answer = self._json(
            "POST",
            "/v1/auth/terminal",
            {
                "terminal_id": terminal_id,
                "nonce": nonce.hex(),
                "certificate": certificate.hex(),
                "signature": signature.hex(),
            },
        )
        token = answer.get("access_token")
        if (
            not isinstance(token, str)
            or not token
            or str(answer.get("token_type") or "bearer").lower() != "bearer"
        ):
            raise TransportError("platform unreachable: the login answer carries no bearer token")
        expires = answer.get("expires_in")
        self._token = token
        self.expires_in = expires if isinstance(expires, int) else None
        self._terminal, self._terminal_id = terminal, terminal_id

    def swipe(
        self,
        card_number: str,
        chip_serial: bytes | str,
        stage: str = "consultation",
        terminal_kind: str = "workstation",
    ) -> dict[str, Any]:
        """Report a card authenticated at this terminal; the platform answers who the resident
        is, the card use, the presence grant it opened and the summary to show."""
        body = {
            "card_number": card_number,
            "chip_serial": _hex(chip_serial, "chip_serial"),
            "stage": stage,
            "terminal_kind": terminal_kind,
        }
        return self._authorised("/v1/swipes", body, expect=(200,))[1]

    def check_in(
        self,
        card_number: str,
        chip_serial: bytes | str,
        booking_id: int | None = None,
        terminal_kind: str = "registration",
    ) -> dict[str, Any]:
        """Check in the card holder's booking of today here (报到): the platform records the
        swipe, opens the visit for the booked doctor and answers the booking, the encounter id,
        the card use and when the presence grant ends.  ``booking_id`` picks one booking when
        the holder has several today."""
        body: dict[str, Any] = {
            "card_number": card_number,
            "chip_serial": _hex(chip_serial, "chip_serial"),
            "terminal_kind": terminal_kind,
        }
        if booking_id is not None:
            body["booking_id"] = booking_id
        return self._authorised("/v1/appointments/check-in", body, expect=(200,))[1]

    def card_login(self, card_number: str, chip_serial: bytes | str) -> dict[str, Any]:
        """A self-service kiosk (a terminal of kind ``kiosk``) asks for the session of the
        resident whose card it authenticated and whose PIN the card accepted: the platform
        answers the resident's ``{access_token, expires_in, role}``."""
        body = {"card_number": card_number, "chip_serial": _hex(chip_serial, "chip_serial")}
        return self._authorised("/v1/auth/card", body, expect=(200,))[1]

    def report_refusals(self, refusals: Sequence[Mapping[str, Any]]) -> int:
        """Report what cards refused at this terminal (``{chip_serial, command, sw, at,
        card_number?}`` each, at most 100): the platform audits each; the number it wrote."""
        body = {"refusals": [dict(r) for r in refusals]}
        return int(self._authorised("/v1/terminals/card-refusals", body, expect=(201,))[1]["recorded"])

    def encounter(self, resident_id: str, encounter_id: int) -> dict[str, Any]:
        """The visit as the platform holds it (its ``status``, ``card_slot`` …): read by the
        terminal the card was swiped at, before it writes the visit back."""
        path = f"/v1/residents/{_segment(resident_id, 'resident_id')}/encounters/{int(encounter_id)}"
        return self._authorised(path, None, expect=(200,), method="GET")[1]

    def self_service_issue(self, id_number: str, name: str, pin: str) -> dict[str, Any]:
        """A self-service kiosk (a terminal of kind ``kiosk``) issues the approved application of
        the person whose ID card it read, with the cardholder PIN they chose: the platform's card
        centre personalises the card on its dispenser and hands it over; the answer is the card
        (``card_number``, ``chip_serial``, ``status`` …).  The PIN is in this request's body only."""
        body = {"id_number": id_number, "name": name, "pin": pin}
        return self._authorised("/v1/cards/self-service", body, expect=(201,))[1]

    def card_record(self, resident_id: str, encounter_id: int) -> dict[str, Any]:
        """The visit record to write to the card in the slot (the ED items of an outpatient
        visit, the EE items of an inpatient stay): the platform answers it to the terminal the
        card was swiped at (its presence tie)."""
        path = (
            f"/v1/residents/{_segment(resident_id, 'resident_id')}/encounters/{int(encounter_id)}/card-record"
        )
        return self._authorised(path, None, expect=(200,), method="GET")[1]

    def close_encounter(self, resident_id: str, encounter_id: int, card_slot: int) -> dict[str, Any]:
        """Close the visit once it is on the card, with the slot it went to (the bill's fee lines
        stay as the settlement wrote them)."""
        path = f"/v1/residents/{_segment(resident_id, 'resident_id')}/encounters/{int(encounter_id)}/close"
        return self._authorised(path, {"card_slot": card_slot}, expect=(200,))[1]

    def upload(self, payload: Mapping[str, Any]) -> tuple[int, bool]:
        """Send one encounter upload: ``(encounter_id, created)``; ``created`` is False when
        the platform already had this ``upload_key`` (a repeat, harmless)."""
        status, answer = self._authorised("/v1/encounters/uploads", dict(payload), expect=(200, 201))
        encounter_id, created = answer.get("encounter_id"), answer.get("created")
        if (
            not isinstance(encounter_id, int)
            or isinstance(encounter_id, bool)
            or not isinstance(created, bool)
        ):
            raise TransportError(
                f"platform unreachable: HTTP {status} upload answer is not the documented one"
            )
        return encounter_id, created

    # --- plumbing ----------------------------------------------------------------------------
    def _authorised(
        self, path: str, body: dict[str, Any] | None, expect: tuple[int, ...], *, method: str = "POST"
    ) -> tuple[int, dict[str, Any]]:
        """``method`` (POST) with the bearer token; on 401 log in again once and repeat."""
        if self._token is None or self._terminal is None:
            raise NotLoggedIn("the terminal is not logged in to the platform: call login() first")
        try:
            return self._send(method, path, body, expect)
        except PlatformRefused as refused:
            if refused.status != 401:
                raise
        self._token = None
        self.login(self._terminal, self._terminal_id)
        return self._send(method, path, body, expect)

    def _json(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._send(method, path, body, (200,))[1]

    def _send(
        self, method: str, path: str, body: dict[str, Any] | None, expect: tuple[int, ...]
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        try:
            response = self._http.request(method, path, json=body, headers=headers)
        except httpx.TimeoutException:
            raise TransportError(f"platform unreachable: {method} {path} timed out") from None
        except httpx.TransportError as exc:
            # the class name and the OS's words; never the request (it may carry the token)
            raise TransportError(
                f"platform unreachable: {method} {path}: {type(exc).__name__}: {exc}"
            ) from None
        status = response.status_code
        if 400 <= status < 500:
            raise _refusal(response)
        if status not in expect:
            raise TransportError(f"platform unreachable: {method} {path} answered HTTP {status}")
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise TransportError(
                f"platform unreachable: {method} {path} answered HTTP {status} without a JSON object"
            )
        return status, answer


def _refusal(response: httpx.Response) -> PlatformRefused:
    """A 4xx answer as :class:`PlatformRefused`, from the ``{"code", "message", "field"}`` body
    (FastAPI's own ``{"detail": …}`` and non-JSON bodies are read as well as they can be)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    status = response.status_code
    if not isinstance(body, dict):
        return PlatformRefused(status, f"http-{status}", response.reason_phrase or "refused")
    code = body.get("code")
    message = body.get("message", body.get("detail"))
    field = body.get("field")
    return PlatformRefused(
        status,
        code if isinstance(code, str) and code else f"http-{status}",
        message if isinstance(message, str) else json.dumps(message, ensure_ascii=False),
        field if isinstance(field, str) and field else None,
    )


def _hex(value: bytes | str, field: str) -> str:
    """A chip serial as upper-case hex, from bytes or hex text."""
    if isinstance(value, bytes):
        text = value.hex()
    else:
        text = value
        try:
            bytes.fromhex(text)
        except (TypeError, ValueError):
            raise InvalidValue(field, "must be bytes or hex text") from None
    if not text:
        raise InvalidValue(field, "must not be empty")
    return text.upper()


# --- the encounter upload ---------------------------------------------------------------------


def _segment(value: str, field: str) -> str:
    """A path segment of ours (a resident id): letters, digits, ``-`` — nothing that moves the path."""
    if not value or len(value) > 64 or not all(c.isascii() and (c.isalnum() or c == "-") for c in value):
        raise InvalidValue(field, f"{value!r}: letters, digits and '-'")
    return value


def make_upload_key(terminal_id: str, card_number: str, kind: str, started_at: dt.datetime) -> str:
    """64 hex chars: ``SM3("HEALTHCARD-UPLOAD" ‖ 0x1F-separated terminal id, card number, kind,
    start time in UTC ISO 8601)``.  The separator keeps ("ab", "c") and ("a", "bc") apart; the
    start time in UTC makes the key the same whichever offset the terminal wrote it with."""
    moment = _aware("started_at", started_at).astimezone(dt.UTC).isoformat()
    text = "\x1f".join((terminal_id, card_number, kind, moment))
    return sm3(UPLOAD_KEY_CONTEXT + text.encode("utf-8")).hex()


def _aware(field: str, value: object) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidValue(field, "must be a timezone-aware datetime (ISO 8601 with offset)")
    return value


def _jsonable(field: str, value: object) -> object:
    """Dates to ISO 8601; anything else must already be JSON (str, int, float, bool, None)."""
    if isinstance(value, dt.datetime):
        return _aware(field, value).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float):
        return value
    raise InvalidValue(field, f"{type(value).__name__} is not a JSON value")


def _items(name: str, items: Iterable[Mapping[str, object]]) -> list[dict[str, object]]:
    """Each item with the keys it was given (a missing one takes the platform's default), dates
    as ISO 8601; an unknown key is refused here, as the platform would, before it is queued (a
    typo would otherwise come back as a rejection hours later)."""
    keys = ITEM_KEYS[name]
    out: list[dict[str, object]] = []
    for n, item in enumerate(items):
        where = f"{name}[{n}]"
        if not isinstance(item, Mapping):
            raise InvalidValue(where, "must be a mapping of " + ", ".join(keys))
        unknown = sorted(set(item) - set(keys))
        if unknown:
            raise InvalidValue(f"{where}.{unknown[0]}", f"not an item of {name} ({', '.join(keys)})")
        out.append({k: _jsonable(f"{where}.{k}", item[k]) for k in keys if k in item})
    return out


def upload_payload(
    *,
    card_number: str,
    chip_serial: bytes | str,
    department: str,
    started_at: dt.datetime,
    ended_at: dt.datetime,
    clinician: str | None = None,
    terminal_id: str = "",
    diagnoses: Iterable[Mapping[str, object]] = (),
    observations: Iterable[Mapping[str, object]] = (),
    prescriptions: Iterable[Mapping[str, object]] = (),
    procedures: Iterable[Mapping[str, object]] = (),
    fees: Iterable[Mapping[str, object]] = (),
    payment_method: str | None = None,
    card_slot: int | None = None,
    kind: str = "outpatient",
    upload_key: str | None = None,
) -> dict[str, Any]:
    """An encounter upload for ``POST /v1/encounters/uploads``, checked before it is queued.

    ``upload_key`` defaults to :func:`make_upload_key` of ``terminal_id`` (give it: two
    terminals of one institution then never share a key), the card, the kind and the start; a
    caller's own key must be 32 to 64 characters.  Fees are integer fen, never negative; ``card_slot`` is the ED file (1-5) the
    visit was written to on the card, None when it was not written."""
    if not card_number:
        raise InvalidValue("card_number", "a card number is required")
    started, ended = _aware("started_at", started_at), _aware("ended_at", ended_at)
    if ended < started:
        raise InvalidValue("ended_at", "the visit cannot end before it started")
    key = upload_key if upload_key is not None else make_upload_key(terminal_id, card_number, kind, started)
    if not isinstance(key, str) or not 32 <= len(key) <= 64:
        raise InvalidValue("upload_key", "must be 32 to 64 characters")
    if card_slot is not None and (
        isinstance(card_slot, bool) or not isinstance(card_slot, int) or card_slot < 1
    ):
        raise InvalidValue("card_slot", "the card's record number, 1 or more, or None")
    lists = {
        "diagnoses": _items("diagnoses", diagnoses),
        "observations": _items("observations", observations),
        "prescriptions": _items("prescriptions", prescriptions),
        "procedures": _items("procedures", procedures),
        "fees": _items("fees", fees),
    }
    for n, diagnosis in enumerate(lists["diagnoses"]):
        if not isinstance(diagnosis.get("primary", False), bool):
            raise InvalidValue(f"diagnoses[{n}].primary", "must be true or false")
    for n, fee in enumerate(lists["fees"]):
        amount = fee.get("amount_fen")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise InvalidValue(f"fees[{n}].amount_fen", "a fee is a whole, non-negative number of fen")
    return {
        "upload_key": key,
        "card_number": card_number,
        "chip_serial": _hex(chip_serial, "chip_serial"),
        "kind": kind,
        "department": department,
        "clinician": clinician,
        "started_at": started.isoformat(),
        "ended_at": ended.isoformat(),
        **lists,
        "payment_method": payment_method,
        "card_slot": card_slot,
    }


__all__ = [
    "ITEM_KEYS",
    "LOGIN_CONTEXT",
    "ChallengeSigner",
    "NotLoggedIn",
    "PlatformClient",
    "PlatformRefused",
    "login_digest",
    "make_upload_key",
    "upload_payload",
]
