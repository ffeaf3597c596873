"""The hot list flowing downward: chips of other cities reported lost, replaced or cancelled,
known at every city node so that its terminals and its desk refuse them.

::

    city 4101 ──up.41.4101.card──▶ province 41 ──up.national.41.card──▶ nation CN
      (card, chip, status, version)                                       │ applied, and it puts
                                                                          │ the chip on or off
    every city ◀──────────── down.hotlist.41 ◀────────────────────────────┘ the list

* The **nation** (:func:`national_delta`, called by its consumer in the transaction that applied
  the card event) announces ``down.hotlist.<home province>`` with ``card``, ``chip``,
  ``province``, ``city``, ``status``, ``listed``, ``reason``, ``version``, ``at`` when the event
  lists the chip (LOST, REPLACED, CANCELLED — the card centre's reasons,
  :data:`~healthcard.issuance.cardcentre.LISTED_AS`) or takes it off (back to ISSUED / ACTIVE
  from a listed status, the same chip).  ``msg_id`` = ``message_id("hotlist", card, chip,
  version)``.  An older event the index did not apply is still announced when it lists a chip
  that is no longer the card's newest (a replaced card's old chip can never come back, so
  listing it late is always right).
* Every **city** with a code consumes ``down.hotlist.>`` (durable ``city-<code>-hotlist``,
  :func:`city_handler`) into ``federated_hotlist`` — one row per chip, the newest version wins,
  an older or repeated one changes nothing (:func:`apply_delta`).  A chip of **another city** is
  also put on (or taken off) the city's own signed hot list of the card's province
  (``hotlist_entries`` with ``resident_id`` empty: not a resident of here), so the terminals
  that download ``GET /v1/hotlist/{province}`` from this city refuse it offline.  Its own cards
  coming back are only recorded: its card centre lists them itself.
* :func:`refusal` is the check of a swipe of a card of another city.

Versions are the home city's (the id of the card's newest history row there), so the chips of
one card number compare across replacements.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from healthcard.clock import Clock
from healthcard.errors import HotListed, InvalidValue
from healthcard.federation.outbox import Announcement, InboxHandler, announce, message_id
from healthcard.issuance.cardcentre import LISTED_AS
from healthcard.issuance.lifecycle import CardStatus
from healthcard.storage import tables as t
from healthcard.storage.uow import UnitOfWork
from healthcard.terminal.hotlist import HotListReason

log = logging.getLogger(__name__)

#: statuses a chip taken off the list comes back to (a lost card found: LOST → ACTIVE)
UNLISTED_AS = frozenset({CardStatus.ISSUED, CardStatus.ACTIVE})
#: ``resident_id`` of a row of ``hotlist_entries`` put there by the hot list flowing down (a chip
#: of another city: no resident of here)
FEDERATED = ""
_HEX = frozenset("0123456789ABCDEF")


def hotlist_subject(province: str) -> str:
    """``down.hotlist.<province>`` — the nation's hot-list deltas of a province's cards."""
    return f"down.hotlist.{province}"


def check_chip(value: Any, field: str = "chip_serial") -> str:
    """A chip serial as stored: 16 upper-case hex digits (the diversification factor of the ATR)."""
    chip = value.strip().upper() if isinstance(value, str) else ""
    if len(chip) != 16 or not set(chip) <= _HEX:
        raise InvalidValue(field, "16 hex digits (the chip serial of the card's ATR)")
    return chip


def listing(status: str) -> HotListReason | None:
    """The reason a chip of ``status`` is on the hot list (the card centre's), None: not listed."""
    try:
        return LISTED_AS.get(CardStatus(status))
    except ValueError:
        return None


# --- the nation ------------------------------------------------------------------------------------
def national_delta(
    before: tuple[str, str | None] | None, applied: bool, payload: dict[str, Any], province: str
) -> dict[str, Any] | None:
    """The hot-list delta a card event makes at the nation, or None.  ``before``: the index's
    (status, chip) before the event (None: a card it did not know); ``applied``: the index took
    the event (it is newer).  ``payload`` is the province's forward, already checked by the
    index; one without ``chip`` (from before chips were announced) makes none."""
    if payload.get("chip") is None:
        return None
    chip = check_chip(payload["chip"], "payload.chip")
    status = payload["status"]
    reason = listing(status)
    if reason is not None:
        # applied; or late, for a chip that is no longer the card's newest (it never comes back)
        late_old_chip = before is not None and before[1] is not None and before[1] != chip
        if not (applied or late_old_chip):
            return None
    else:
        try:
            back = CardStatus(status) in UNLISTED_AS
        except ValueError:
            back = False
        if not (applied and back and before is not None and before[1] == chip and listing(before[0])):
            return None
    return {
        "card": payload["card"],
        "chip": chip,
        "province": province,
        "city": payload["city"],
        "status": status,
        "listed": reason is not None,
        "reason": None if reason is None else reason.value,
        "version": payload["version"],
        "at": payload.get("at"),
    }


def announce_delta(uow: UnitOfWork, delta: dict[str, Any], now: dt.datetime) -> bool:
    """Announce ``delta`` (:func:`national_delta`) in the caller's transaction."""
    msg_id = message_id("hotlist", delta["card"], delta["chip"], delta["version"])
    return announce(uow, hotlist_subject(delta["province"]), delta, msg_id, at=now)


# --- a city ----------------------------------------------------------------------------------------
def _value(
    payload: dict[str, Any], name: str, kind: type | tuple[type, ...], *, optional: bool = False
) -> Any:
    value = payload.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise InvalidValue(f"payload.{name}", f"expected {names}")
    return value


def _digits(payload: dict[str, Any], name: str, length: int) -> str:
    value = _value(payload, name, str)
    if len(value) != length or not value.isdigit():
        raise InvalidValue(f"payload.{name}", f"{length} digits")
    return str(value)


def check_delta(payload: Any) -> dict[str, Any]:
    """A ``down.hotlist`` payload, checked field by field (InvalidValue naming ``payload.<field>``)."""
    if not isinstance(payload, dict):
        raise InvalidValue("payload", "a JSON object")
    card = _value(payload, "card", str)
    if not 1 <= len(card) <= 18:
        raise InvalidValue("payload.card", "1 to 18 characters")
    listed = _value(payload, "listed", bool)
    reason = _value(payload, "reason", str, optional=True)
    if listed and reason not in {r.value for r in HotListReason}:
        raise InvalidValue("payload.reason", "lost, replaced, cancelled or expired for a listed chip")
    version = _value(payload, "version", int)
    if version < 0:
        raise InvalidValue("payload.version", "not negative")
    status = _value(payload, "status", str)
    if not 1 <= len(status) <= 16:
        raise InvalidValue("payload.status", "1 to 16 characters")
    return {
        "card": card,
        "chip": check_chip(payload.get("chip"), "payload.chip"),
        "province": _digits(payload, "province", 2),
        "city": _digits(payload, "city", 4),
        "status": status,
        "listed": listed,
        "reason": reason if listed else None,
        "version": version,
    }


def apply_delta(uow: UnitOfWork, payload: Any, now: dt.datetime, *, city: str | None = None) -> bool:
    """Put a hot-list delta into ``federated_hotlist`` when its version is newer than the chip's
    row (True), else change nothing (False).  ``city``: this node's code — a chip of another
    city changed here is also put on or taken off this node's signed hot list of its province."""
    delta = check_delta(payload)
    chip = delta["chip"]
    row = uow.session.get(t.FederatedHotListEntry, chip, with_for_update=True)
    values = {
        "card_number": delta["card"],
        "province": delta["province"],
        "city_code": delta["city"],
        "status": delta["status"],
        "listed": delta["listed"],
        "reason": delta["reason"],
        "version": delta["version"],
        "updated_at": now,
    }
    if row is None:
        uow.session.add(t.FederatedHotListEntry(chip_serial=chip, **values))
        uow.session.flush()
    elif row.version >= delta["version"]:
        return False
    else:
        for name, value in values.items():
            setattr(row, name, value)
    if city is not None and delta["city"] != city:
        _local_list(uow, delta, now)
    return True


def _local_list(uow: UnitOfWork, delta: dict[str, Any], now: dt.datetime) -> None:
    """The city's own signed hot list of the card's province follows the delta (a chip the card
    centre listed itself is never touched: only rows marked :data:`FEDERATED` come off)."""
    province, chip = delta["province"], delta["chip"]
    entry = uow.hotlist.listed(province, chip)
    if delta["listed"] and entry is None:
        version = uow.hotlist.bump(province, now)
        uow.hotlist.add(
            t.HotListEntry(
                province=province,
                chip_serial=chip,
                card_number=delta["card"],
                resident_id=FEDERATED,
                reason=delta["reason"],
                listed_version=version,
                listed_at=now,
            )
        )
    elif not delta["listed"] and entry is not None and entry.resident_id == FEDERATED:
        entry.removed_version = uow.hotlist.bump(province, now)
        entry.removed_at = now


def city_handler(city: str, clock: Clock) -> InboxHandler:
    """A city's consumer of ``down.hotlist.>``: each delta into ``federated_hotlist`` (and, for a
    chip of another city, into its signed hot list), in the inbox's transaction."""

    def handle(uow: UnitOfWork, message: Announcement) -> None:
        parts = message.subject.split(".")
        if len(parts) != 3 or parts[:2] != ["down", "hotlist"]:
            log.warning("city %s: subject %s skipped", city, message.subject)
            return
        apply_delta(uow, message.payload, clock.now(), city=city)

    return handle


# --- the check of a swipe --------------------------------------------------------------------------
def refusal(session: Session, card_number: str, chip_serial: str) -> HotListed | None:
    """The refusal for a card of another city that the hot list received here lists — its chip
    ``chip_serial`` (16 hex digits) of card ``card_number`` — or None when it is not listed.

    A chip the list knows is refused while it is listed.  A chip it does not know (or ``""``)
    is judged by the card number's newest entry: refused when that chip was lost or cancelled,
    not when it was replaced (the number lives on another chip — the one swiped, perhaps)."""
    row = None
    if chip_serial:
        row = session.get(t.FederatedHotListEntry, check_chip(chip_serial))
    if row is None:
        entry = t.FederatedHotListEntry
        row = session.scalars(
            select(entry).where(entry.card_number == card_number).order_by(entry.version.desc()).limit(1)
        ).first()
        if row is not None and row.reason == HotListReason.REPLACED:
            return None
    if row is None or not row.listed:
        return None
    return HotListed(
        f"card {row.card_number} (chip {row.chip_serial}) of city {row.city_code} is on the hot list: "
        f"{row.reason}",
        card_number=row.card_number,
        reason=row.reason or "",
    )
