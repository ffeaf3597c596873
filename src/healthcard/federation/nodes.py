"""The node roles of the three-level platform and the indexes that flow upward.

One codebase, three roles (``HEALTHCARD_NODE_ROLE`` / ``HEALTHCARD_NODE_CODE``):

* a **city** node (``4101``) is the home of its residents' cards and records.  Its card centre
  announces every change of a card the index knows (issued, handed over, lost, recovered,
  replaced, cancelled, expired) and the platform every closed visit, each in the transaction of
  the change (:class:`CityAnnouncer`, wired by the composition root as the card centre's and the
  records' hooks): ``up.<province>.<city>.card`` and ``up.<province>.<city>.record``; it
  consumes the hot list flowing down (``down.hotlist.>``, :mod:`healthcard.federation.hotlist`);
* a **province** node (``41``) consumes ``up.<province>.>`` into its card index
  (:class:`~healthcard.storage.tables.ProvinceCard`: card → home city, resident id there,
  status) and record locator (:class:`~healthcard.storage.tables.RecordPointer`), and forwards
  each card change it applied to the nation as ``up.national.<province>.card`` — in the same
  transaction (its outbox), so the chain city → province → nation is exactly-once end to end;
* the **national** node (``CN``) consumes ``up.national.>`` into the national card index
  (:class:`~healthcard.storage.tables.NationalCard`: card → home province and city, status,
  chip) and announces each change that lists or unlists a chip down to every city
  (``down.hotlist.<province>``), in the same transaction.

Why ``up.national.<province>`` and not ``up.<province>.national``: a province filters
``up.<province>.>`` and must not receive its own forwards.

**Versions.**  Delivery is exactly-once but not in order (docs/federation.md), so a card event
carries a version: the id of the card's newest history row (``card_events``) at its home city —
transitions of one card number are serialised by the lock on its live chip, and a replacement's
new chip gets its history after the old one's, so the id grows with every change of the number.
An index applies an event only when its version is greater than the one it holds; an older or a
repeated one changes nothing (and is not forwarded).

:class:`FederationRunner` runs a node's relay and its role's consumers (threads with a stop
event); :func:`verify` compares a city's cards with the province's and the nation's indexes
(``healthcard federation verify``).
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import func, select

from healthcard.clock import Clock
from healthcard.errors import InvalidValue, NotFound
from healthcard.federation import hotlist, regions
from healthcard.federation.bus import CROSS, DOWN, UP, Bus
from healthcard.federation.outbox import (
    Announcement,
    InboxConsumer,
    InboxHandler,
    Relay,
    announce,
    message_id,
)
from healthcard.federation.queries import Answer, Served, serve_queries
from healthcard.storage import tables as t
from healthcard.storage.db import Database
from healthcard.storage.uow import UnitOfWork

log = logging.getLogger(__name__)

#: statuses a card has before the index may know it: a chip still being written, or one that
#: never became a card (its personalisation failed)
UNANNOUNCED = frozenset({"PERSONALISING", "SPOILED"})


class NodeRole(enum.StrEnum):
    CITY = "city"
    PROVINCE = "province"
    NATIONAL = "national"


@dataclass(frozen=True)
class NodeIdentity:
    """What a node is: its role and code (``4101``, ``41``, ``CN``; a city may have none — the
    embedded default, which announces nothing upward)."""

    role: NodeRole
    code: str | None = None

    def __post_init__(self) -> None:
        digits = {NodeRole.CITY: 4, NodeRole.PROVINCE: 2}.get(self.role)
        if self.role is NodeRole.NATIONAL:
            if self.code != "CN":
                raise InvalidValue("code", "the national node is CN")
        elif self.code is None:
            if self.role is NodeRole.PROVINCE:
                raise InvalidValue("code", "a province node needs its 2-digit code")
        elif len(self.code) != digits or not self.code.isdigit():
            raise InvalidValue("code", f"a {self.role}'s code is {digits} digits")

    @classmethod
    def of(cls, role: str, code: str | None) -> NodeIdentity:
        try:
            return cls(NodeRole(role), code)
        except ValueError:
            raise InvalidValue("role", f"{role!r}: city, province or national") from None

    @property
    def province(self) -> str | None:
        """The province a city or province node belongs to."""
        return None if self.code is None or self.role is NodeRole.NATIONAL else self.code[:2]

    @property
    def announces(self) -> bool:
        """A city node with a code announces its cards and records upward."""
        return self.role is NodeRole.CITY and self.code is not None


# --- subjects --------------------------------------------------------------------------------------
def city_subject(city: str, event: str) -> str:
    """``up.<province>.<city>.<event>`` — a city's card or record event, for its province."""
    return f"up.{city[:2]}.{city}.{event}"


def national_subject(province: str) -> str:
    """``up.national.<province>.card`` — a card change a province forwards to the nation."""
    return f"up.national.{province}.card"


# --- the city side ---------------------------------------------------------------------------------
class CityAnnouncer:
    """A city node's hooks: the card centre's ``on_card_change`` and the records' ``on_closed``
    announce, in the caller's transaction, what the province's indexes need."""

    def __init__(self, city: str, clock: Clock) -> None:
        NodeIdentity(NodeRole.CITY, city)
        self.city, self.province, self.clock = city, city[:2], clock

    def cards(self, uow: UnitOfWork, cards: Sequence[t.Card], now: dt.datetime) -> None:
        """The card centre changed these chips' status (history rows written already)."""
        known = [card for card in cards if card.status not in UNANNOUNCED]
        if not known:
            return
        e = t.CardEvent
        versions = {
            card_id: newest
            for card_id, newest in uow.session.execute(
                select(e.card_id, func.max(e.id))
                .where(e.card_id.in_({c.id for c in known}))
                .group_by(e.card_id)
            )
        }
        subject = city_subject(self.city, "card")
        for card in known:
            version = int(versions[card.id])
            payload = {
                "card": card.card_number,
                "resident": card.resident_id,
                "chip": card.chip_serial,
                "status": card.status,
                "version": version,
                "city": self.city,
                "at": now.isoformat(),
            }
            announce(uow, subject, payload, message_id("card", self.city, card.card_number, version), at=now)

    def record(
        self,
        uow: UnitOfWork,
        resident_id: str,
        encounter_id: int,
        *,
        kind: str,
        day: dt.date,
        institution_code: str,
    ) -> None:
        """A visit of ``resident_id`` was closed (or uploaded closed) here: its pointer."""
        card = uow.session.scalar(select(t.Encounter.card_number).where(t.Encounter.id == encounter_id))
        if card is None:  # a visit without the card: the person's newest card, if any
            card = uow.session.scalar(
                select(t.Card.card_number)
                .where(t.Card.resident_id == resident_id, t.Card.status.not_in(UNANNOUNCED))
                .order_by(t.Card.id.desc())
                .limit(1)
            )
        payload = {
            "city": self.city,
            "resident": resident_id,
            "card": card,
            "encounter": encounter_id,
            "kind": kind,
            "day": day.isoformat(),
            "institution": institution_code,
        }
        announce(
            uow,
            city_subject(self.city, "record"),
            payload,
            message_id("record", self.city, encounter_id),
            at=self.clock.now(),
        )


def resync_city(db: Database, city: str, clock: Clock, *, batch: int = 1000) -> int:
    """Announce every card of a city whose current state was never announced (a city that joins
    the federation with cards of its own, the demo city seeded before its node had a code, or a
    node that was down for longer than the streams keep messages): its newest version, unless
    the outbox holds that very announcement already.  Idempotent; how many it announced."""
    announcer = CityAnnouncer(city, clock)
    e, c = t.CardEvent, t.Card
    announced, after = 0, 0
    while True:
        with db.uow() as uow:
            cards = list(
                uow.session.scalars(
                    select(c).where(c.id > after, c.status.not_in(UNANNOUNCED)).order_by(c.id).limit(batch)
                )
            )
            if not cards:
                return announced
            after = cards[-1].id
            versions = dict(
                uow.session.execute(
                    select(e.card_id, func.max(e.id))
                    .where(e.card_id.in_({k.id for k in cards}))
                    .group_by(e.card_id)
                ).all()
            )
            wanted = {
                message_id("card", city, k.card_number, int(versions[k.id])): k
                for k in cards
                if k.id in versions
            }
            known = set(
                uow.session.scalars(select(t.OutboxMessage.msg_id).where(t.OutboxMessage.msg_id.in_(wanted)))
            )
            missing = [k for msg, k in wanted.items() if msg not in known]
            announcer.cards(uow, missing, clock.now())
            uow.commit()
            announced += len(missing)


# --- the province and the nation -------------------------------------------------------------------
def _field(payload: Any, name: str, kind: type, *, optional: bool = False) -> Any:
    value = payload.get(name) if isinstance(payload, dict) else None
    if value is None and optional:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InvalidValue(f"payload.{name}", f"expected {kind.__name__}")
    return value


#: the two card indexes: the province's and the nation's
_Index = TypeVar("_Index", t.ProvinceCard, t.NationalCard)


def _apply_card(
    uow: UnitOfWork,
    table: type[_Index],
    number: str,
    version: int,
    values: dict[str, Any],
) -> tuple[bool, str | None]:
    """Put a card's event into an index (``table``, keyed by card number) when it is newer than
    what the index holds for the same home city: (changed, the home city it had before)."""
    row = uow.session.get(table, number, with_for_update=True)
    if row is None:
        uow.session.add(table(card_number=number, version=version, **values))
        uow.session.flush()
        return True, None
    if row.city_code == values["city_code"] and row.version >= version:
        return False, row.city_code
    before = row.city_code
    for name, value in {**values, "version": version}.items():
        setattr(row, name, value)
    return True, before


def apply_province_card(uow: UnitOfWork, city: str, payload: Any, now: dt.datetime) -> bool:
    """Put a city's card event into the province's index: True when it changed the index (a
    newer version), False for an older or repeated one."""
    number = _field(payload, "card", str)
    version = _field(payload, "version", int)
    values = {
        "city_code": city,
        "resident_id": _field(payload, "resident", str),
        "status": _field(payload, "status", str),
        "updated_at": now,
    }
    changed, before = _apply_card(uow, t.ProvinceCard, number, version, values)
    if changed and before is not None and before != city:
        # versions of two cities do not compare; a number moves only with its person (not yet)
        log.warning("card index: card of city %s announced by city %s: taken", before, city)
    return changed


def apply_record_pointer(uow: UnitOfWork, city: str, payload: Any, now: dt.datetime) -> bool:
    """Put a city's closed visit into the province's record locator (once per city and visit)."""
    encounter = _field(payload, "encounter", int)
    try:
        day = dt.date.fromisoformat(_field(payload, "day", str))
    except ValueError:
        raise InvalidValue("payload.day", "YYYY-MM-DD") from None
    if uow.session.scalar(
        select(t.RecordPointer.id).where(
            t.RecordPointer.city_code == city, t.RecordPointer.encounter_id == encounter
        )
    ):
        return False
    uow.session.add(
        t.RecordPointer(
            city_code=city,
            encounter_id=encounter,
            resident_id=_field(payload, "resident", str),
            card_number=_field(payload, "card", str, optional=True),
            kind=_field(payload, "kind", str),
            day=day,
            institution_code=_field(payload, "institution", str),
            received_at=now,
        )
    )
    uow.session.flush()
    return True


def apply_national_card(uow: UnitOfWork, province: str, payload: Any, now: dt.datetime) -> bool:
    """Put a province's forwarded card change into the national index (newer versions only)."""
    number = _field(payload, "card", str)
    version = _field(payload, "version", int)
    chip = _field(payload, "chip", str, optional=True)
    values = {
        "province": province,
        "city_code": _field(payload, "city", str),
        "status": _field(payload, "status", str),
        "chip_serial": None if chip is None else hotlist.check_chip(chip, "payload.chip"),
        "updated_at": now,
    }
    return _apply_card(uow, t.NationalCard, number, version, values)[0]


def province_handler(province: str, clock: Clock) -> InboxHandler:
    """The province's consumer of ``up.<province>.>``: card events into the card index (each one
    applied also forwarded to the nation, in the same transaction), record pointers into the
    locator.  An event it does not know (a newer city) is logged and skipped."""

    def handle(uow: UnitOfWork, message: Announcement) -> None:
        parts = message.subject.split(".")
        if len(parts) != 4 or parts[0] != "up" or parts[1] != province:
            log.warning("province %s: subject %s is not for it, skipped", province, message.subject)
            return
        city, event = parts[2], parts[3]
        now = clock.now()
        if event == "card":
            if apply_province_card(uow, city, message.payload, now):
                payload = {k: message.payload[k] for k in ("card", "status", "version", "city")}
                # the chip and the time, for the hot list flowing down (absent from old events)
                payload |= {k: message.payload[k] for k in ("chip", "at") if k in message.payload}
                announce(
                    uow,
                    national_subject(province),
                    payload,
                    message_id("card.national", province, payload["card"], payload["version"]),
                    at=now,
                )
        elif event == "record":
            apply_record_pointer(uow, city, message.payload, now)
        else:
            log.warning("province %s: unknown event %s, skipped", province, message.subject)

    return handle


def national_handler(clock: Clock) -> InboxHandler:
    """The national node's consumer of ``up.national.>``: card changes into the card index, and
    each one that puts a chip on or off the hot list announced down to every city
    (``down.hotlist.<province>``, :mod:`healthcard.federation.hotlist`) in the same transaction."""

    def handle(uow: UnitOfWork, message: Announcement) -> None:
        parts = message.subject.split(".")
        if len(parts) != 4 or parts[:2] != ["up", "national"] or parts[3] != "card":
            log.warning("national: subject %s skipped", message.subject)
            return
        province, now = parts[2], clock.now()
        number = _field(message.payload, "card", str)
        row = uow.session.get(t.NationalCard, number, with_for_update=True)
        before = None if row is None else (row.status, row.chip_serial)
        applied = apply_national_card(uow, province, message.payload, now)
        delta = hotlist.national_delta(before, applied, message.payload, province)
        if delta is not None:
            hotlist.announce_delta(uow, delta, now)

    return handle


# --- the questions a province and the nation answer ----------------------------------------------
def _card_answers(db: Database, table: type[_Index], reply: Any) -> dict[str, Answer]:
    """``card``: the index's entry for the card number, as ``reply(row)`` makes it."""

    def card(payload: dict[str, Any]) -> dict[str, Any]:
        number = _field(payload, "card", str)
        with db.session() as session:
            row = session.get(table, number)
            if row is None:
                raise NotFound("card", number)
            return dict(reply(row))

    return {"card": card}


def province_answers(db: Database) -> dict[str, Answer]:
    """``q.<province>.card``: the card's home city, the resident's id there and its status."""
    return _card_answers(
        db, t.ProvinceCard, lambda r: {"city": r.city_code, "resident": r.resident_id, "status": r.status}
    )


def national_answers(db: Database) -> dict[str, Answer]:
    """``q.CN.card``: the card's home province and city and its status."""
    return _card_answers(
        db, t.NationalCard, lambda r: {"province": r.province, "city": r.city_code, "status": r.status}
    )


# --- running a node --------------------------------------------------------------------------------
class FederationRunner:
    """A node's messaging: the relay of its outbox and the consumers of its role, as threads
    (:meth:`start` / :meth:`stop`, or a ``with`` block), or step by step (:meth:`step`, tests).

    City ``4101``: the relay and the durable consumer ``city-4101-hotlist`` of ``down.hotlist.>``
    (the hot list flowing down, :mod:`healthcard.federation.hotlist`) and ``city-4101-visits`` of
    ``x.4101.>`` (its residents' visits in other cities, :mod:`healthcard.federation.regions`).  Province ``41``: the relay
    (its forwards to the nation) and the durable consumer ``province-41`` of ``up.41.>``.
    National: the relay and the durable consumer ``national`` of ``up.national.>``.

    Queries (``q.<code>.<name>``, :mod:`healthcard.federation.queries`): a province and the
    nation answer their own (``card``); ``answers`` adds more — a city's, which need its
    platform and are built by the composition root.  :meth:`serve` starts answering (``start``
    does it too); a node without a code answers nothing."""

    def __init__(
        self,
        db: Database,
        bus: Bus,
        clock: Clock,
        identity: NodeIdentity,
        *,
        ack_wait: float = 30.0,
        batch: int = 100,
        answers: dict[str, Answer] | None = None,
    ) -> None:
        self.db, self.bus, self.clock, self.identity, self.batch = db, bus, clock, identity, batch
        bus.ensure_streams()
        self.relay = Relay(db, bus, clock)
        self.consumers: list[InboxConsumer] = []
        self.answers: dict[str, Answer] = {}
        if identity.role is NodeRole.PROVINCE:
            self.answers = province_answers(db)
        elif identity.role is NodeRole.NATIONAL:
            self.answers = national_answers(db)
        self.answers |= answers or {}
        self._served: Served | None = None
        if identity.role is NodeRole.PROVINCE:
            assert identity.code is not None
            name = f"province-{identity.code}"
            consumer = bus.consumer(UP.name, name, filter_subject=f"up.{identity.code}.>", ack_wait=ack_wait)
            self.consumers.append(
                InboxConsumer(db, consumer, name, province_handler(identity.code, clock), clock)
            )
        elif identity.role is NodeRole.NATIONAL:
            consumer = bus.consumer(UP.name, "national", filter_subject="up.national.>", ack_wait=ack_wait)
            self.consumers.append(InboxConsumer(db, consumer, "national", national_handler(clock), clock))
        elif identity.code is not None:  # a city
            name = f"city-{identity.code}-hotlist"
            consumer = bus.consumer(DOWN.name, name, filter_subject="down.hotlist.>", ack_wait=ack_wait)
            self.consumers.append(
                InboxConsumer(db, consumer, name, hotlist.city_handler(identity.code, clock), clock)
            )
            # cross-region care: visits of this city's residents made in other cities
            name = regions.visits_consumer(identity.code)
            consumer = bus.consumer(
                CROSS.name, name, filter_subject=f"x.{identity.code}.>", ack_wait=ack_wait
            )
            self.consumers.append(
                InboxConsumer(db, consumer, name, regions.visits_handler(identity.code, clock), clock)
            )
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def serve(self) -> None:
        """Start answering this node's queries (idempotent)."""
        if self._served is None and self.identity.code is not None and self.answers:
            self._served = serve_queries(self.bus, self.identity.code, self.answers)

    def step(self, timeout: float = 0.05) -> int:
        """One round by hand: publish what is pending, process what is waiting; how much was done."""
        done = self.relay.drain()
        for consumer in self.consumers:
            done += consumer.poll(self.batch, timeout)
        return done

    def start(self) -> None:
        if self._threads:
            return
        self.serve()
        self._stop.clear()
        label = f"{self.identity.role}-{self.identity.code or 'local'}"
        work: list[tuple[str, Any]] = [("relay", lambda: self.relay.run(self._stop))]
        for consumer in self.consumers:
            work.append((consumer.name, lambda c=consumer: c.run(self._stop, batch=self.batch)))
        for name, target in work:
            thread = threading.Thread(target=target, name=f"{label}:{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
        for consumer in self.consumers:
            consumer.consumer.close()
        if self._served is not None:
            self._served.close()
            self._served = None

    def __enter__(self) -> FederationRunner:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def until_quiet(runners: Iterable[FederationRunner], *, rounds: int = 100, timeout: float = 0.05) -> int:
    """Step every runner until a whole round does nothing (tests, the embedded demo); how much
    was done in all."""
    runners = list(runners)
    total = 0
    for _ in range(rounds):
        done = sum(runner.step(timeout) for runner in runners)
        total += done
        if done == 0:
            return total
    raise RuntimeError(f"still busy after {rounds} rounds")


# --- reconciliation --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Mismatch:
    """A card on which a city and an index disagree: ``index`` says where (province | national),
    ``city_status`` / ``index_status`` what each holds (None: it has no such card)."""

    index: str
    card_number: str
    city_status: str | None
    index_status: str | None


def city_cards(db: Database) -> dict[str, str]:
    """A city's truth: each card number and the status of its newest chip the index may know."""
    with db.session() as session:
        rows = session.execute(
            select(t.Card.card_number, t.Card.status)
            .where(t.Card.status.not_in(UNANNOUNCED))
            .order_by(t.Card.card_number, t.Card.id)
        )
        # the newest chip of a number comes last and wins
        return {number: status for number, status in rows}


def verify(city_db: Database, city: str, province_db: Database, national_db: Database) -> list[Mismatch]:
    """Compare a city's cards (number, status) with its province's card index and the national
    card index (the entries that name this city as the card's home); every disagreement."""
    NodeIdentity(NodeRole.CITY, city)
    here = city_cards(city_db)
    with province_db.session() as session:
        province = {
            number: status
            for number, status in session.execute(
                select(t.ProvinceCard.card_number, t.ProvinceCard.status).where(
                    t.ProvinceCard.city_code == city
                )
            )
        }
    with national_db.session() as session:
        national = {
            number: status
            for number, status in session.execute(
                select(t.NationalCard.card_number, t.NationalCard.status).where(
                    t.NationalCard.city_code == city
                )
            )
        }
    found = []
    for name, index in (("province", province), ("national", national)):
        for number in sorted(here.keys() | index.keys()):
            if here.get(number) != index.get(number):
                found.append(Mismatch(name, number, here.get(number), index.get(number)))
    return found
