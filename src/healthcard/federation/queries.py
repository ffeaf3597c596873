"""Questions between platform nodes: request/reply over the bus, refusals carried across.

A node asks another one a question on ``q.<node>.<query>`` — ``q.CN.card`` (the nation: where
does this card live?), ``q.41.card`` (the province: which city, which resident there?),
``q.4101.swipe`` (the home city: the person and summary for a card swiped elsewhere).  Questions
are not stored: a node that is down does not answer, and the asker gets
:class:`~healthcard.errors.MessagingError` (the terminal then works from the card alone).

Both sides speak JSON objects (:func:`~healthcard.federation.outbox.encode`).  A reply is either
``{"ok": {...}}`` or ``{"error": {...}}``; the error is one of HealthCard's own refusals
(:class:`~healthcard.errors.InvalidValue`, :class:`~healthcard.errors.NotFound`,
:class:`~healthcard.errors.HotListed`, …) with its fields, and :func:`ask` raises it again on the
asker's side — so a card reported lost at home is refused in Foshan with the same
``HotListed`` its own city would raise, and the API answers it with the same problem document.
Anything else that goes wrong in a responder reaches the asker as ``MessagingError`` naming only
the exception's class (never its text: it could hold a record's content).

::

    responders = {"card": lambda payload: {...}}            # query name → payload → reply dict
    served = serve_queries(bus, "CN", responders)           # q.CN.card …; served.close()
    reply = ask(bus, "CN", "card", {"card": number})        # a dict, or the refusal raised

:func:`locate` is the first hop of a cross-region swipe: the nation says which province, the
province says which city and which resident there (:class:`CardHome`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from healthcard import errors
from healthcard.errors import HealthCardError, InvalidValue, MessagingError, NotFound
from healthcard.federation.bus import Bus, Responder
from healthcard.federation.outbox import encode

log = logging.getLogger(__name__)

#: how long a node waits for another node's answer (loopback p99 is a few ms; a WAN hop ~50 ms)
QUERY_TIMEOUT = 2.0

#: payload → reply, for one query a node answers
Answer = Callable[[dict[str, Any]], dict[str, Any]]

#: the refusals carried across nodes, by name: each is rebuilt on the asker's side
_CARRIED: dict[str, type[HealthCardError]] = {
    cls.__name__: cls
    for cls in (
        errors.InvalidValue,
        errors.Duplicate,
        errors.NotFound,
        errors.TransitionRefused,
        errors.PermissionDenied,
        errors.NotAuthenticated,
        errors.HotListed,
        errors.StorageError,
    )
}


def query_subject(node: str, query: str) -> str:
    """``q.<node>.<query>``: ``node`` is a city (``4101``), a province (``41``) or ``CN``."""
    if not node or not (node.isdigit() or node == "CN") or not query.replace("-", "").isalnum():
        raise InvalidValue("node", f"q.{node}.{query}: a node code (4101, 41, CN) and a query name")
    return f"q.{node}.{query}"


def refusal_document(exc: HealthCardError) -> dict[str, Any]:
    """A refusal as a reply carries it: its class and the fields it was built from."""
    kind = type(exc).__name__ if type(exc).__name__ in _CARRIED else None
    if kind is None:  # a subclass of a carried refusal travels as that refusal
        kind = next((c.__name__ for c in type(exc).__mro__ if c.__name__ in _CARRIED), "HealthCardError")
    document: dict[str, Any] = {"type": kind}
    if isinstance(exc, InvalidValue):
        document |= {"field": exc.field, "message": exc.message}
    elif isinstance(exc, NotFound):
        document |= {"what": exc.what, "key": exc.key}
    elif isinstance(exc, errors.HotListed):
        document |= {"message": str(exc), "card_number": exc.card_number, "reason": exc.reason}
    else:
        document["message"] = str(exc)
    return document


def raise_refusal(document: Any, subject: str) -> None:
    """Raise again, on the asker's side, the refusal a responder sent."""
    if not isinstance(document, dict):
        raise MessagingError(f"{subject}: a malformed refusal")
    cls = _CARRIED.get(str(document.get("type")))
    text = str(document.get("message", ""))
    if cls is None:
        raise MessagingError(f"{subject}: the responder failed ({document.get('type')})")
    if issubclass(cls, InvalidValue):
        raise cls(str(document.get("field", "")), text)
    if cls is NotFound:
        raise NotFound(str(document.get("what", "")), str(document.get("key", "")))
    if cls is errors.HotListed:
        raise errors.HotListed(
            text, card_number=str(document.get("card_number", "")), reason=str(document.get("reason", ""))
        )
    raise cls(text)


def answer(query: str, respond: Answer) -> Callable[[str, bytes], bytes]:
    """A bus handler for one query: the JSON payload in, ``{"ok": reply}`` out, or the refusal
    as ``{"error": …}``.  A failure that is not a refusal is logged here (with its text: the
    log is the node's own) and answered as ``{"error": {"type": <its class>}}``."""

    def handle(subject: str, data: bytes) -> bytes:
        try:
            payload = json.loads(data)
            if not isinstance(payload, dict):
                raise InvalidValue("payload", "a JSON object")
            return encode({"ok": respond(payload)})
        except json.JSONDecodeError:
            return encode({"error": refusal_document(InvalidValue("payload", "not JSON"))})
        except HealthCardError as exc:
            return encode({"error": refusal_document(exc)})
        except Exception as exc:
            log.exception("query %s failed", query)
            return encode({"error": {"type": type(exc).__name__}})

    return handle


class Served:
    """The responders one node runs (:func:`serve_queries`); :meth:`close` stops them all."""

    def __init__(self, responders: list[Responder]) -> None:
        self.responders = responders

    def close(self) -> None:
        for responder in self.responders:
            responder.close()
        self.responders.clear()


def serve_queries(bus: Bus, node: str, answers: Mapping[str, Answer]) -> Served:
    """Answer ``q.<node>.<name>`` for each query of ``answers`` (a queue group per query, so
    several processes of one node share the work)."""
    responders = []
    for name, respond in answers.items():
        subject = query_subject(node, name)
        responders.append(bus.serve(subject, answer(name, respond), queue=subject))
    return Served(responders)


def ask(
    bus: Bus, node: str, query: str, payload: Mapping[str, Any], *, timeout: float = QUERY_TIMEOUT
) -> Any:
    """Ask ``node`` ``query``: its reply, or the refusal it sent raised here.
    ``MessagingError`` when it cannot be reached or answered nothing readable in time."""
    subject = query_subject(node, query)
    data = bus.request(subject, encode(dict(payload)), timeout=timeout)
    try:
        reply = json.loads(data)
    except json.JSONDecodeError:
        raise MessagingError(f"{subject}: a reply that is not JSON") from None
    if isinstance(reply, dict) and "ok" in reply:
        return reply["ok"]
    if isinstance(reply, dict) and "error" in reply:
        raise_refusal(reply["error"], subject)
    raise MessagingError(f"{subject}: a malformed reply")


# --- where a card lives ----------------------------------------------------------------------------
@dataclass(frozen=True)
class CardHome:
    """Where a card lives: its home province and city, the resident's id there, its status as
    the province's index knows it."""

    card_number: str
    province: str
    city: str
    resident_id: str
    status: str


def locate(bus: Bus, card_number: str, *, timeout: float = QUERY_TIMEOUT) -> CardHome:
    """Resolve a card through the national index (→ province) and the province's (→ city and
    resident): two questions.  ``NotFound("card", …)`` when either index does not know it."""
    national = ask(bus, "CN", "card", {"card": card_number}, timeout=timeout)
    province = str(national["province"])
    home = ask(bus, province, "card", {"card": card_number}, timeout=timeout)
    return CardHome(card_number, province, str(home["city"]), str(home["resident"]), str(home["status"]))
