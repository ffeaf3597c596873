"""Repositories: the queries of each aggregate, named by what they answer.

Services never write SQL; they ask these.  Every query that touches a resident's data can name
``resident_id`` (the future shard key); row locks (``FOR UPDATE``) guard the read-modify-write
of a card's status on PostgreSQL, and SQLite's ``BEGIN IMMEDIATE`` serialises writers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from healthcard.storage.tables import (
    LIVE_CARD,
    OPEN_APPLICATION,
    Application,
    Base,
    Batch,
    Card,
    CardEvent,
    CollectionPoint,
    Counter,
    HotListEntry,
    HotListVersion,
    Institution,
    Operator,
    Resident,
)


class _Repository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def _bump(self, bump: Executable, table: type[Base], first: dict[str, object]) -> int:
        """Run ``bump`` (an ``UPDATE … RETURNING`` of one row); when the row does not exist yet,
        create it as ``first`` (``INSERT … ON CONFLICT DO NOTHING``: two processes racing to
        create it both succeed) and bump again.  Atomic across processes on both databases."""
        value = self.session.execute(bump).scalar_one_or_none()
        if value is None:
            postgres = self.session.get_bind().dialect.name == "postgresql"
            insert = (postgresql.insert if postgres else sqlite.insert)(table)
            self.session.execute(insert.values(**first).on_conflict_do_nothing())
            value = self.session.execute(bump).scalar_one()
        return int(value)


class ReferenceRepository(_Repository):
    """Institutions, collection points, operators: reference data, not a resident's."""

    def institution(self, code: str) -> Institution | None:
        return self.session.get(Institution, code)

    def collection_point(self, code: str) -> CollectionPoint | None:
        return self.session.get(CollectionPoint, code)

    def operator(self, operator_id: str) -> Operator | None:
        return self.session.get(Operator, operator_id)

    def issuers(self, province: str) -> list[Institution]:
        query = select(Institution).where(
            Institution.issues_cards, Institution.area_code.startswith(province)
        )
        return list(self.session.scalars(query.order_by(Institution.code)))

    def add(self, row: Institution | CollectionPoint | Operator) -> None:
        self.session.add(row)

    def batch(self, batch_id: str) -> Batch | None:
        return self.session.get(Batch, batch_id)

    def add_batch(self, batch: Batch) -> None:
        self.session.add(batch)


class ResidentRepository(_Repository):
    def get(self, resident_id: str) -> Resident | None:
        return self.session.get(Resident, resident_id)

    def by_identity(self, id_type: str, id_number: str) -> Resident | None:
        query = select(Resident).where(Resident.id_type == id_type, Resident.id_number == id_number)
        return self.session.scalars(query).one_or_none()

    def by_identities(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Resident]:
        """The residents known by these (ID type, ID number) pairs: one query for a chunk."""
        numbers = sorted({number for _, number in keys})
        if not numbers:
            return {}
        types = sorted({kind for kind, _ in keys})
        # both columns, so the (id_type, id_number) unique index serves the look-up
        query = select(Resident).where(Resident.id_type.in_(types), Resident.id_number.in_(numbers))
        wanted = set(keys)
        return {
            (r.id_type, r.id_number): r
            for r in self.session.scalars(query)
            if (r.id_type, r.id_number) in wanted
        }

    def add(self, resident: Resident) -> None:
        self.session.add(resident)


class ApplicationRepository(_Repository):
    def get(self, number: str, *, lock: bool = False) -> Application | None:
        query = select(Application).where(Application.number == number)
        if lock:
            query = query.with_for_update()
        return self.session.scalars(query).one_or_none()

    def get_many(self, numbers: Sequence[str], *, lock: bool = False) -> dict[str, Application]:
        query = select(Application).where(Application.number.in_(list(numbers)))
        if lock:
            query = query.with_for_update()
        return {a.number: a for a in self.session.scalars(query)}

    def open_many(self, card_numbers: Sequence[str]) -> dict[str, Application]:
        """The applications still being worked on for these card numbers, by card number."""
        query = select(Application).where(
            Application.card_number.in_(list(card_numbers)), Application.status.in_(OPEN_APPLICATION)
        )
        return {a.card_number: a for a in self.session.scalars(query)}

    def open_for(self, card_number: str) -> Application | None:
        """The application of this card number still being worked on, if any."""
        query = select(Application).where(
            Application.card_number == card_number, Application.status.in_(OPEN_APPLICATION)
        )
        return self.session.scalars(query).one_or_none()

    def by_batch(self, batch_id: str, first: int, last: int) -> list[Application]:
        """The applications taken from rows ``first``..``last`` of a batch file."""
        query = select(Application).where(
            Application.batch_id == batch_id, Application.batch_row.between(first, last)
        )
        return list(self.session.scalars(query))

    def listing(self, status: str | None = None, limit: int = 100, offset: int = 0) -> list[Application]:
        query = select(Application).order_by(Application.submitted_at.desc(), Application.number.desc())
        if status:
            query = query.where(Application.status == status)
        return list(self.session.scalars(query.limit(limit).offset(offset)))

    def add(self, application: Application) -> None:
        self.session.add(application)

    def add_all(self, applications: Sequence[Application]) -> None:
        self.session.add_all(applications)


class CardRepository(_Repository):
    def get(self, card_id: int, *, lock: bool = False) -> Card | None:
        query = select(Card).where(Card.id == card_id)
        if lock:
            query = query.with_for_update()
        return self.session.scalars(query).one_or_none()

    def live(self, card_number: str, *, lock: bool = False) -> Card | None:
        """The person's one live card (PERSONALISING, ISSUED, ACTIVE or LOST), if any."""
        query = select(Card).where(Card.card_number == card_number, Card.status.in_(LIVE_CARD))
        if lock:
            query = query.with_for_update()
        return self.session.scalars(query).one_or_none()

    def live_many(self, card_numbers: Sequence[str]) -> dict[str, Card]:
        """The live cards of these card numbers, by card number: one query for a chunk."""
        query = select(Card).where(Card.card_number.in_(list(card_numbers)), Card.status.in_(LIVE_CARD))
        return {c.card_number: c for c in self.session.scalars(query)}

    def get_many(self, card_ids: Sequence[int], *, lock: bool = False) -> dict[int, Card]:
        query = select(Card).where(Card.id.in_(list(card_ids)))
        if lock:
            query = query.with_for_update()
        return {c.id: c for c in self.session.scalars(query)}

    def latest(self, card_number: str) -> Card | None:
        """The newest card of this number, whatever its status."""
        query = select(Card).where(Card.card_number == card_number).order_by(Card.id.desc()).limit(1)
        return self.session.scalars(query).first()

    def all_of(self, card_number: str) -> list[Card]:
        return list(
            self.session.scalars(select(Card).where(Card.card_number == card_number).order_by(Card.id))
        )

    def by_chip(self, chip_serial: str) -> Card | None:
        return self.session.scalars(select(Card).where(Card.chip_serial == chip_serial)).one_or_none()

    def for_application(self, number: str) -> list[Card]:
        query = select(Card).where(Card.application_number == number).order_by(Card.id)
        return list(self.session.scalars(query))

    def personalising(self) -> list[Card]:
        """Cards whose personalisation was started and never finished (a crash, a pulled card)."""
        return list(
            self.session.scalars(select(Card).where(Card.status == "PERSONALISING").order_by(Card.id))
        )

    def events(self, resident_id: str, card_number: str) -> list[CardEvent]:
        query = select(CardEvent).where(
            CardEvent.resident_id == resident_id, CardEvent.card_number == card_number
        )
        return list(self.session.scalars(query.order_by(CardEvent.id)))

    def count_by_status(self) -> dict[str, int]:
        rows = self.session.execute(select(Card.status, func.count()).group_by(Card.status))
        return {status: count for status, count in rows.tuples()}

    def expiring(self, before: dt.date, limit: int = 1000) -> list[Card]:
        query = select(Card).where(Card.status.in_(("ISSUED", "ACTIVE")), Card.expiry_date < before)
        return list(self.session.scalars(query.order_by(Card.id).limit(limit)))

    def add(self, card: Card) -> None:
        self.session.add(card)

    def add_all(self, cards: Sequence[Card]) -> None:
        self.session.add_all(cards)

    def add_event(self, event: CardEvent) -> None:
        self.session.add(event)

    def add_events(self, events: Sequence[dict[str, object]]) -> None:
        """Many history rows in one INSERT (a batch's chunk): no ORM objects to track."""
        if events:
            self.session.execute(insert(CardEvent), list(events))


class CounterRepository(_Repository):
    def take(self, name: str, count: int = 1) -> int:
        """Reserve ``count`` consecutive values of counter ``name`` (starting at 1); the first.

        One ``UPDATE … RETURNING`` (:meth:`_bump`), atomic across processes."""
        bump = update(Counter).where(Counter.name == name).values(value=Counter.value + count)
        return self._bump(bump.returning(Counter.value), Counter, {"name": name, "value": 0}) - count + 1


class HotListRepository(_Repository):
    def version(self, province: str) -> int:
        row = self.session.get(HotListVersion, province)
        return row.version if row else 0

    def bump(self, province: str, now: dt.datetime) -> int:
        """The next version of ``province``'s list (row-locked: one change at a time)."""
        bump = (
            update(HotListVersion)
            .where(HotListVersion.province == province)
            .values(version=HotListVersion.version + 1, changed_at=now)
        )
        first = {"province": province, "version": 0, "changed_at": now}
        return self._bump(bump.returning(HotListVersion.version), HotListVersion, first)

    def listed(self, province: str, chip_serial: str) -> HotListEntry | None:
        query = select(HotListEntry).where(
            HotListEntry.province == province,
            HotListEntry.chip_serial == chip_serial,
            HotListEntry.removed_version.is_(None),
        )
        return self.session.scalars(query).one_or_none()

    def add(self, entry: HotListEntry) -> None:
        self.session.add(entry)

    def full(self, province: str) -> Iterator[HotListEntry]:
        """Every chip on the list now, streamed in listing order."""
        query = (
            select(HotListEntry)
            .where(HotListEntry.province == province, HotListEntry.removed_version.is_(None))
            .order_by(HotListEntry.listed_version, HotListEntry.id)
            .execution_options(yield_per=5000)
        )
        yield from self.session.scalars(query)

    def delta(self, province: str, base: int) -> tuple[list[HotListEntry], list[HotListEntry]]:
        """(added, removed) since version ``base``: chips listed after ``base`` and still on the
        list; chips listed at or before ``base`` and taken off after it."""
        added = select(HotListEntry).where(
            HotListEntry.province == province,
            HotListEntry.listed_version > base,
            HotListEntry.removed_version.is_(None),
        )
        removed = select(HotListEntry).where(
            HotListEntry.province == province,
            HotListEntry.listed_version <= base,
            HotListEntry.removed_version > base,
        )
        return (
            list(self.session.scalars(added.order_by(HotListEntry.listed_version, HotListEntry.id))),
            list(self.session.scalars(removed.order_by(HotListEntry.removed_version, HotListEntry.id))),
        )

    def provinces(self) -> Sequence[str]:
        return list(self.session.scalars(select(HotListVersion.province).order_by(HotListVersion.province)))

    def state(self, province: str) -> tuple[int, dt.datetime | None]:
        """(version, when it last changed) of ``province``'s list; (0, None) before its first."""
        row = self.session.get(HotListVersion, province)
        return (row.version, row.changed_at) if row else (0, None)

    def count_listed(self, province: str) -> int:
        query = select(func.count()).where(
            HotListEntry.province == province, HotListEntry.removed_version.is_(None)
        )
        return int(self.session.scalar(query) or 0)

    def latest_changes(self, province: str, limit: int) -> list[tuple[HotListEntry, bool]]:
        """The ``limit`` newest changes of the list, newest first: (entry, taken off?) — a chip
        listed and later taken off is two changes.  Two index range scans, merged here."""
        listed = select(HotListEntry).where(HotListEntry.province == province)
        removed = listed.where(HotListEntry.removed_version.is_not(None))
        changes = [
            (e, False, e.listed_version)
            for e in self.session.scalars(listed.order_by(HotListEntry.listed_version.desc()).limit(limit))
        ] + [
            (e, True, e.removed_version or 0)
            for e in self.session.scalars(removed.order_by(HotListEntry.removed_version.desc()).limit(limit))
        ]
        changes.sort(key=lambda c: (c[2], c[1]), reverse=True)
        return [(e, gone) for e, gone, _ in changes[:limit]]
