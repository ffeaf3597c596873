"""The tables (SQLAlchemy 2 declarative), the same on SQLite and PostgreSQL.

Conventions (ARCHITECTURE.md §5):

* every table that holds a resident's data carries ``resident_id`` — the future shard key —
  and every query that touches a resident's data names it;
* times are aware UTC datetimes (:class:`UTCDateTime`: ``timestamptz`` on PostgreSQL, ISO text
  in UTC on SQLite), shown in Asia/Shanghai by the entry points;
* money is integer fen (no table of this issue holds money yet);
* statuses are short strings whose meaning lives in the domain enums
  (:mod:`healthcard.issuance.lifecycle`); the database enforces what must never be broken even
  by two processes at once: one live card per card number, one open application per card
  number, unique chip serials and unique issue serials per issuer.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

#: statuses of a card that count as "the person's card" (one per card number, nationally)
LIVE_CARD = ("PERSONALISING", "ISSUED", "ACTIVE", "LOST")
#: statuses of an application still being worked on (one per card number)
OPEN_APPLICATION = ("SUBMITTED", "APPROVED")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _in(values: tuple[str, ...]) -> Any:
    return text("status IN (" + ", ".join(f"'{v}'" for v in values) + ")")


class UTCDateTime(TypeDecorator[dt.datetime]):
    """An aware UTC datetime on both databases (SQLite keeps no time zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: the project stores aware UTC times only")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Institution(Base):
    """A body of the card system: a province / city card centre (卡管中心), a hospital that
    issues at self-service kiosks, a collection-point host."""

    __tablename__ = "institutions"
    code: Mapped[str] = mapped_column(String(22), primary_key=True)  # WS 218 / issuer code
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(24))  # province-centre | city-centre | hospital
    area_code: Mapped[str] = mapped_column(String(6))  # GB/T 2260
    issues_cards: Mapped[bool] = mapped_column(default=False)


class CollectionPoint(Base):
    """信息采集点: where residents apply (a township health centre, a community office)."""

    __tablename__ = "collection_points"
    code: Mapped[str] = mapped_column(String(20), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    area_code: Mapped[str] = mapped_column(String(6))
    institution_code: Mapped[str] = mapped_column(ForeignKey("institutions.code"))


class Operator(Base):
    """A person or kiosk that acts in the card system; ``role`` decides what it may do."""

    __tablename__ = "operators"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(60))
    role: Mapped[str] = mapped_column(String(24))
    institution_code: Mapped[str] = mapped_column(ForeignKey("institutions.code"))
    collection_point_code: Mapped[str | None] = mapped_column(ForeignKey("collection_points.code"))
    active: Mapped[bool] = mapped_column(default=True)


class Resident(Base):
    """A person the card system knows, by ID document (the platform's MPI extends this)."""

    __tablename__ = "residents"
    __table_args__ = (UniqueConstraint("id_type", "id_number"),)
    resident_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    id_type: Mapped[str] = mapped_column(String(2))
    id_number: Mapped[str] = mapped_column(String(18))
    name: Mapped[str] = mapped_column(String(60))
    sex: Mapped[int] = mapped_column(Integer)
    birth_date: Mapped[dt.date] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class Batch(Base):
    """One run of batch issuance over one CSV file (identified by its content digest), so a
    re-run after a crash finds the rows it already took."""

    __tablename__ = "batches"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the file
    source: Mapped[str] = mapped_column(String(255))
    rows: Mapped[int] = mapped_column(Integer)
    operator_id: Mapped[str] = mapped_column(ForeignKey("operators.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class Application(Base):
    """An application for a card (申领), new or replacement, with everything the collection
    point took (``data``: the checked application as JSON, photo included)."""

    __tablename__ = "applications"
    __table_args__ = (
        Index(
            "uq_applications_open_card_number",
            "card_number",
            unique=True,
            sqlite_where=_in(OPEN_APPLICATION),
            postgresql_where=_in(OPEN_APPLICATION),
        ),
        UniqueConstraint("batch_id", "batch_row"),
    )
    number: Mapped[str] = mapped_column(String(20), primary_key=True)
    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.resident_id"), index=True)
    card_number: Mapped[str] = mapped_column(String(18), index=True)
    kind: Mapped[str] = mapped_column(String(12))  # NEW | REPLACEMENT
    status: Mapped[str] = mapped_column(String(12))
    province: Mapped[str] = mapped_column(String(2))
    collection_point_code: Mapped[str | None] = mapped_column(ForeignKey("collection_points.code"))
    submitted_by: Mapped[str] = mapped_column(ForeignKey("operators.id"))
    submitted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    decided_by: Mapped[str | None] = mapped_column(ForeignKey("operators.id"))
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    note: Mapped[str | None] = mapped_column(String(200))
    replaces_card_id: Mapped[int | None] = mapped_column(Integer)  # the card a replacement replaces
    batch_id: Mapped[str | None] = mapped_column(ForeignKey("batches.id"))
    batch_row: Mapped[int | None] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class Card(Base):
    """A chip bound to a card number.  ``PERSONALISING`` is written before the first APDU and
    only turns ``ISSUED`` after the chip answered END PERSONALISATION: the database never says
    "issued" for a chip that is not."""

    __tablename__ = "cards"
    __table_args__ = (
        Index(
            "uq_cards_live_card_number",
            "card_number",
            unique=True,
            sqlite_where=_in(LIVE_CARD),
            postgresql_where=_in(LIVE_CARD),
        ),
        UniqueConstraint("issuer_code", "issue_serial"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.resident_id"), index=True)
    card_number: Mapped[str] = mapped_column(String(18), index=True)
    chip_serial: Mapped[str] = mapped_column(String(16), unique=True)  # hex, the ATR's 8 bytes
    issue_serial: Mapped[str] = mapped_column(String(10))  # 发卡序列号, DDF1/EF05 tag 0A
    issuer_code: Mapped[str] = mapped_column(String(22))
    province: Mapped[str] = mapped_column(String(2))
    city_code: Mapped[str] = mapped_column(String(6))
    key_version: Mapped[int] = mapped_column(Integer)
    algorithm: Mapped[str] = mapped_column(String(4))
    profile: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    application_number: Mapped[str] = mapped_column(ForeignKey("applications.number"))
    replaces_card_id: Mapped[int | None] = mapped_column(ForeignKey("cards.id"))
    issued_by: Mapped[str] = mapped_column(ForeignKey("operators.id"))
    issue_date: Mapped[dt.date] = mapped_column(Date)
    expiry_date: Mapped[dt.date] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    status_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    #: while PERSONALISING: the process at work ("host:pid"), so that a crash is told apart
    #: from a personalisation in flight in another process
    claimed_by: Mapped[str | None] = mapped_column(String(80))


class CardEvent(Base):
    """The card's auditable history: every status change, who, when, why."""

    __tablename__ = "card_events"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    resident_id: Mapped[str] = mapped_column(String(32), index=True)
    card_id: Mapped[int] = mapped_column(ForeignKey("cards.id"), index=True)
    card_number: Mapped[str] = mapped_column(String(18))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    operator_id: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str | None] = mapped_column(String(200))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class Counter(Base):
    """Named counters bumped with one ``UPDATE … RETURNING`` (atomic on both databases): the
    issue serial of each issuer, the chip serials of the simulated chip factory, application
    numbers."""

    __tablename__ = "counters"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class HotListVersion(Base):
    """The current hot-list version of a province: bumped by every change to its list."""

    __tablename__ = "hotlist_versions"
    province: Mapped[str] = mapped_column(String(2), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class HotListEntry(Base):
    """A chip on a province's hot list from ``listed_version`` until ``removed_version``."""

    __tablename__ = "hotlist_entries"
    __table_args__ = (
        Index("ix_hotlist_entries_listed", "province", "listed_version"),
        Index("ix_hotlist_entries_removed", "province", "removed_version"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    province: Mapped[str] = mapped_column(String(2))
    chip_serial: Mapped[str] = mapped_column(String(16), index=True)
    card_number: Mapped[str] = mapped_column(String(18))
    resident_id: Mapped[str] = mapped_column(String(32), index=True)
    reason: Mapped[str] = mapped_column(String(12))
    listed_version: Mapped[int] = mapped_column(Integer)
    listed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    removed_version: Mapped[int | None] = mapped_column(Integer)
    removed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


__all__ = [
    "LIVE_CARD",
    "OPEN_APPLICATION",
    "Application",
    "Base",
    "Batch",
    "Card",
    "CardEvent",
    "CollectionPoint",
    "Counter",
    "HotListEntry",
    "HotListVersion",
    "Institution",
    "Operator",
    "Resident",
    "UTCDateTime",
]
