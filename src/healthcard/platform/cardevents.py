"""Refusals by the card itself, reported by the terminal that saw them (docs/card.md §13).

The card refuses a replayed EXTERNAL AUTHENTICATE, a secure-messaging MAC with a bit flipped, a
write MACed on a stale challenge and a wrong PIN on its own, offline — the platform is not asked.
What the card keeps is a counter; what the terminal keeps is its log.  So the terminal (its
reader agent) reports each refusal here when it can reach the platform, and each becomes a
**denied audit entry** (``what`` = :data:`CARD_REFUSED`) in the hash chain of the resident whose
chip it was (a chip unknown here — a clone — goes in the chain of the card number it carried): the resident's "who looked" shows it, and the card centre lists it with the refused
chips (:meth:`~healthcard.platform.node.Node.card_security_events`).

A report names the chip, the command's header (CLA INS P1 P2 — never its data: no cryptogram,
MAC or PIN is sent), the status word and when the terminal saw it.  Only the status words of a
refusal are taken (§5: ``63Cx``, ``6300``, ``6982``, ``6983``, ``6985``, ``6988``); a report is
refused whole, naming the field, when any of its items is malformed.  The terminal's time is
kept as reported, in the entry's text, and may be up to ``CLOCK_SKEW`` ahead of the platform's
clock and :data:`MAX_AGE` behind it (a terminal that was offline for weeks reports late).
Delivery is at least once: an agent whose answer was lost reports again, and the entry is
written again — a security event said twice is better than one lost.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import select

from healthcard.card.sw import describe, is_refusal
from healthcard.clock import SHANGHAI
from healthcard.errors import InvalidValue, PermissionDenied
from healthcard.platform.access import Actor, Role
from healthcard.platform.audit import Audit
from healthcard.platform.records import CLOCK_SKEW
from healthcard.storage import tables as t
from healthcard.storage.uow import UnitOfWork

#: the audit ``what`` of a refusal the card made and its terminal reported
CARD_REFUSED = "card refused"
#: the most refusals in one report
MAX_REPORT = 100
#: how late a refusal may be reported (a terminal offline for a while)
MAX_AGE = dt.timedelta(days=30)
#: what the command was, by its INS
_COMMANDS = {
    0x82: "EXTERNAL AUTHENTICATE",
    0x20: "VERIFY (PIN)",
    0xD6: "UPDATE BINARY",
    0xDC: "UPDATE RECORD",
    0xE2: "APPEND RECORD",
    0xB0: "READ BINARY",
    0xB2: "READ RECORD",
    0x2C: "RESET RETRY COUNTER",
}


@dataclass(frozen=True)
class CardRefusal:
    """One refusal as the terminal saw it."""

    chip_serial: str  # 16 hex digits
    command: str  # the header, 8 hex digits: CLA INS P1 P2
    sw: str  # 4 hex digits
    at: dt.datetime  # the terminal's clock
    card_number: str | None = None  # when the terminal had read it

    @classmethod
    def parse(cls, item: Mapping[str, object], n: int) -> CardRefusal:
        """From a report's ``n``-th item; a malformed field is named ``refusals[n].<field>``."""

        def hex_field(name: str, digits: int) -> str:
            value = item.get(name)
            text = value.strip().upper() if isinstance(value, str) else ""
            if len(text) != digits or any(c not in "0123456789ABCDEF" for c in text):
                raise InvalidValue(f"refusals[{n}].{name}", f"{digits} hex digits")
            return text

        chip, command, sw = hex_field("chip_serial", 16), hex_field("command", 8), hex_field("sw", 4)
        if not is_refusal(int(sw, 16)):
            raise InvalidValue(f"refusals[{n}].sw", f"{sw} is not a refusal (63Cx, 6982, 6983, 6985, 6988)")
        at = item.get("at")
        if not isinstance(at, dt.datetime) or at.tzinfo is None:
            raise InvalidValue(f"refusals[{n}].at", "a time with its offset")
        number = item.get("card_number")
        if number is not None and (not isinstance(number, str) or not 1 <= len(number.strip()) <= 40):
            raise InvalidValue(f"refusals[{n}].card_number", "1 to 40 characters")
        return cls(chip, command, sw, at, number.strip() if isinstance(number, str) else None)

    def meaning(self) -> str:
        ins = int(self.command[2:4], 16)
        what = _COMMANDS.get(ins, f"INS {ins:02X}")
        return f"{what} refused: {self.sw} {describe(int(self.sw, 16))}"


def record(
    uow: UnitOfWork,
    audit: Audit,
    actor: Actor,
    items: Sequence[Mapping[str, object]],
    *,
    now: dt.datetime,
) -> int:
    """Write the report ``items`` of terminal ``actor`` as denied audit entries, in ``uow``:
    each in the chain of the chip's resident (the chain of no resident for a chip unknown here).
    Nothing is written when any item is refused."""
    if actor.role != Role.TERMINAL or not actor.institution_code:
        raise PermissionDenied("only a terminal logged in with its SAM reports card refusals")
    if not 1 <= len(items) <= MAX_REPORT:
        raise InvalidValue("refusals", f"1 to {MAX_REPORT} refusals a report")
    refusals = [CardRefusal.parse(item, n) for n, item in enumerate(items)]
    for n, refusal in enumerate(refusals):
        if refusal.at > now + CLOCK_SKEW:
            raise InvalidValue(f"refusals[{n}].at", f"{refusal.at.isoformat()} is in the future")
        if refusal.at < now - MAX_AGE:
            raise InvalidValue(f"refusals[{n}].at", f"older than {MAX_AGE.days} days: no longer taken")
    chips = {r.chip_serial for r in refusals}
    owners = {
        str(chip): str(resident)
        for chip, resident in uow.session.execute(
            select(t.Card.chip_serial, t.Card.resident_id).where(t.Card.chip_serial.in_(chips))
        )
    }
    numbers = {r.card_number for r in refusals if r.card_number and r.chip_serial not in owners}
    holders = {
        str(number): str(resident)
        for number, resident in uow.session.execute(
            select(t.Card.card_number, t.Card.resident_id).where(t.Card.card_number.in_(numbers))
        )
    }
    for refusal in refusals:
        # the chip's resident; a chip unknown here (a clone) is put in the card number's chain
        whose = owners.get(refusal.chip_serial) or holders.get(refusal.card_number or "")
        seen = refusal.at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")
        number = f" card {refusal.card_number}" if refusal.card_number else ""
        audit.record(
            uow,
            actor,
            action="deny",
            what=CARD_REFUSED,
            why=f"{refusal.meaning()} — chip {refusal.chip_serial}{number}, {refusal.command}, at {seen}"[
                :200
            ],
            resident_id=whose,
            outcome="denied",
        )
    return len(refusals)


__all__ = ["CARD_REFUSED", "MAX_AGE", "MAX_REPORT", "CardRefusal", "record"]
