"""The tables (SQLAlchemy 2 declarative), the same on SQLite and PostgreSQL.

Conventions (ARCHITECTURE.md §5):

* every table that holds a resident's data carries ``resident_id`` — the future shard key —
  and every query that touches a resident's data names it;
* times are aware UTC datetimes (:class:`UTCDateTime`: ``timestamptz`` on PostgreSQL, ISO text
  in UTC on SQLite), shown in Asia/Shanghai by the entry points;
* money is integer fen (the fee lines of an encounter);
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
    CheckConstraint,
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
    kind: Mapped[str] = mapped_column(
        String(24)
    )  # province-centre | city-centre | hospital | clinic | cdc | ncms-office
    area_code: Mapped[str] = mapped_column(String(6))  # GB/T 2260
    issues_cards: Mapped[bool] = mapped_column(default=False)
    #: the five levels of medical institution: province | city | county | township | village
    level: Mapped[str | None] = mapped_column(String(10))


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
    __table_args__ = (
        UniqueConstraint("id_type", "id_number"),
        # the MPI's candidate search: same pinyin, same name, or same birth date and sex
        Index("ix_residents_name_pinyin", "name_pinyin"),
        Index("ix_residents_name", "name"),
        Index("ix_residents_birth_date_sex", "birth_date", "sex"),
    )
    resident_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    id_type: Mapped[str] = mapped_column(String(2))
    id_number: Mapped[str] = mapped_column(String(18))
    name: Mapped[str] = mapped_column(String(60))
    sex: Mapped[int] = mapped_column(Integer)
    birth_date: Mapped[dt.date] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    #: MPI (healthcard.platform.mpi): where the resident lives (GB/T 2260), the name in pinyin
    #: without tones (for matching records that arrive without a card), and — once merged as a
    #: duplicate — the surviving resident; un-merge clears it (nothing is moved, only linked)
    area_code: Mapped[str | None] = mapped_column(String(6), index=True)
    name_pinyin: Mapped[str | None] = mapped_column(String(120))
    merged_into: Mapped[str | None] = mapped_column(String(32), index=True)


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
        # the card centre's dashboard: cards issued per day and city
        Index("ix_cards_issue_date_city_code", "issue_date", "city_code"),
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


# ==== the platform (healthcard.platform) ============================================================
# Every table below that holds a resident's data names ``resident_id`` (the shard key) and is
# indexed on it first.  Sensitive clinical items carry ``category`` (healthcard.platform.access
# Category: general | psychiatric | hiv | reproductive | substance) so that a resident's hidden
# categories are filtered by the database, not after the fact.


def _big_id() -> Mapped[int]:
    return mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)


class ResidentIdentifier(Base):
    """One of a resident's identifiers: ``system`` card | citizen-id | ncms | archive | visit-card
    | passport …; ``assigner`` is the institution for a hospital's own visit card (一院一卡), ''
    for national systems, so that (system, assigner, value) is unique."""

    __tablename__ = "resident_identifiers"
    __table_args__ = (UniqueConstraint("system", "assigner", "value"),)
    id: Mapped[int] = _big_id()
    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.resident_id"), index=True)
    system: Mapped[str] = mapped_column(String(16))
    assigner: Mapped[str] = mapped_column(String(22), default="")
    value: Mapped[str] = mapped_column(String(40))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class MatchCandidate(Base):
    """A demographic record that arrived without a card (a hospital's legacy register, a
    paper archive) waiting in the MPI review queue: PENDING → LINKED (to ``resident_id``) |
    CREATED (a new resident) | REJECTED.  ``matches``: the scored candidates as JSON."""

    __tablename__ = "mpi_candidates"
    __table_args__ = (UniqueConstraint("source", "local_id"),)
    id: Mapped[int] = _big_id()
    source: Mapped[str] = mapped_column(String(22))  # institution code that sent it
    local_id: Mapped[str] = mapped_column(String(40))  # its number there (old visit card …)
    name: Mapped[str] = mapped_column(String(60))
    sex: Mapped[int] = mapped_column(Integer)
    birth_date: Mapped[dt.date] = mapped_column(Date)
    area_code: Mapped[str | None] = mapped_column(String(6))
    id_number: Mapped[str | None] = mapped_column(String(18))
    status: Mapped[str] = mapped_column(String(10), index=True)
    matches: Mapped[list[Any]] = mapped_column(JSON)
    resident_id: Mapped[str | None] = mapped_column(String(32), index=True)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(40))
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    note: Mapped[str | None] = mapped_column(String(200))  # the reviewer's reason (a rejection)


class MergeEvent(Base):
    """MPI history: ``action`` MERGE (``source`` now resolves to ``target``) or UNMERGE."""

    __tablename__ = "mpi_merges"
    id: Mapped[int] = _big_id()
    resident_id: Mapped[str] = mapped_column(String(32), index=True)  # the surviving resident
    source_resident_id: Mapped[str] = mapped_column(String(32), index=True)
    action: Mapped[str] = mapped_column(String(8))
    actor: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(String(200))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class HealthArchive(Base):
    """居民健康档案: the resident's basic health information — what DF02 carries (blood type,
    alerts, the psychiatric flag) plus history and family history (JSON lists)."""

    __tablename__ = "health_archives"
    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.resident_id"), primary_key=True)
    archive_number: Mapped[str | None] = mapped_column(String(17), unique=True)
    abo: Mapped[int | None] = mapped_column(Integer)  # CV04.50.005
    rh: Mapped[str | None] = mapped_column(String(1))
    alerts: Mapped[dict[str, Any]] = mapped_column(JSON)  # ALERT_FLAGS name → true/false
    other_alert: Mapped[str] = mapped_column(String(80), default="")
    psychiatric: Mapped[bool | None] = mapped_column()
    history: Mapped[list[Any]] = mapped_column(JSON)  # past illnesses, operations, trauma …
    family_history: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str | None] = mapped_column(String(40))


class Encounter(Base):
    """A visit: outpatient | inpatient | emergency; OPEN while the clinician records, CLOSED
    when written back.  ``upload_key`` makes a terminal's offline upload idempotent."""

    __tablename__ = "encounters"
    __table_args__ = (
        Index("ix_encounters_resident_started", "resident_id", "started_at"),
        UniqueConstraint("institution_code", "upload_key"),
    )
    id: Mapped[int] = _big_id()
    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.resident_id"))
    institution_code: Mapped[str] = mapped_column(ForeignKey("institutions.code"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(8))
    number: Mapped[str] = mapped_column(String(18))  # 门诊号 / 住院号
    department: Mapped[str] = mapped_column(String(50))
    department_code: Mapped[str | None] = mapped_column(String(10))
    clinician: Mapped[str | None] = mapped_column(String(40))
    category: Mapped[str] = mapped_column(String(12), default="general")
    card_number: Mapped[str | None] = mapped_column(String(18))
    carrier: Mapped[str] = mapped_column(String(8))  # card | qr | login | upload | none
    payment_method: Mapped[str | None] = mapped_column(String(2))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    upload_key: Mapped[str | None] = mapped_column(String(64))
    card_slot: Mapped[int | None] = mapped_column(Integer)  # the ED/EE file it was written to
    fees: Mapped[list[Any]] = mapped_column(JSON)  # [{category, code, amount_fen}]
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class Diagnosis(Base):
    __tablename__ = "diagnoses"
    id: Mapped[int] = _big_id()
    resident_id: Mapped[str] = mapped_column(String(32), index=True)
    encounter_id: Mapped[int] = mapped_column(ForeignKey("encounters.id"), index=True)
    code: Mapped[str] = mapped_column(String(10))  # ICD-10
    name: Mapped[str] = mapped_column(String(100))
    primary: Mapped[bool] = mapped_column(default=False)
    category: Mapped[str] = mapped_column(String(12), default="general")
    diagnosed_on: Mapped[dt.date] = mapped_column(Date)


class Observation(Base):
    """A lab or exam result: ``value`` as text, ``value_num`` when numeric, the unit and the
    normal range, ``flag`` H | L | N | A (abnormal, qualitative)."""

    __tablename__ = "observations"
    id: Mapped[int] = _big_id()
    resident_id: Mapped[str] = mapped_column(String(32), index=True)
    encounter_id: Mapped[int | None] = mapped_column(ForeignKey("encounters.id"), index=True)
    kind: Mapped[str] = mapped_column(String(6))  # lab | exam
    code: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(80))
    value: Mapped[str] = mapped_column(String(200))
    value_num: Mapped[float | None] = mapped_column()
    unit: Mapped[str] = mapped_column(String(20), default="")
    low: Mapped[float | None] = mapped_column()
    high: Mapped[float | None] = mapped_column()
    flag: Mapped[str | None] = mapped_column(String(1))
    category: Mapped[str] = mapped_column(String(12), default="general")
    observed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class Prescription(Base):
    __tablename__ = "prescriptions"
    id: Mapped[int] = _big_id()
    resident_id: Mapped[str] = mapped_column(String(32), index=True)
    encounter_id: Mapped[int] = mapped_column(ForeignKey("encounters.id"), index=True)
    drug: Mapped[str] = mapped_column(String(50))
    drug_code: Mapped[str | None] = mapped_column(String(20))
    dose: Mapped[str] = mapped_column(String(10))
    dose_unit: Mapped[str] = mapped_column(String(6))
    route_code: Mapped[str] = mapped_column(String(2))  # CV06.00.102
    frequency: Mapped[str] = mapped_column(String(20))
    days: Mapped[int] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(12), default="general")
    prescribed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class Procedure(Base):
    __tablename__ = "procedures"
    id: Mapped[int] = _big_id()
    resident_id: Mapped[str] = mapped_column(String(32), index=True)
    encounter_id: Mapped[int] = mapped_column(ForeignKey("encounters.id"), index=True)
    code: Mapped[str] = mapped_column(String(10))  # ICD-9-CM-3
    name: Mapped[str] = mapped_column(String(80))
    category: Mapped[str] = mapped_column(String(12), default="general")
    performed_on: Mapped[dt.date] = mapped_column(Date)


class Allergy(Base):
    __tablename__ = "allergies"
    __table_args__ = (UniqueConstraint("resident_id", "allergen"),)
    id: Mapped[int] = _big_id()
    resident_id: Mapped[str] = mapped_column(String(32), index=True)
    allergen: Mapped[str] = mapped_column(String(20))  # DF02/EF07 过敏物质 ans20
    reaction: Mapped[str] = mapped_column(String(100))
    severity: Mapped[str | None] = mapped_column(String(8))  # mild | moderate | severe
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    recorded_by: Mapped[str] = mapped_column(String(40))


class ImmunizationDose(Base):
    """A dose given: vaccine code (CARD-SPEC.md §10.3), dose number, date, lot, institution."""

    __tablename__ = "immunizations"
    __table_args__ = (
        UniqueConstraint("resident_id", "vaccine", "dose"),
        Index("ix_immunizations_vaccine_given", "vaccine", "given_on"),
    )
    id: Mapped[int] = _big_id()
    resident_id: Mapped[str] = mapped_column(String(32), index=True)
    vaccine: Mapped[str] = mapped_column(String(4))
    dose: Mapped[int] = mapped_column(Integer)
    given_on: Mapped[dt.date] = mapped_column(Date)
    lot: Mapped[str] = mapped_column(String(30), default="")
    institution_code: Mapped[str] = mapped_column(ForeignKey("institutions.code"))
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    recorded_by: Mapped[str] = mapped_column(String(40))


class Account(Base):
    """Someone who logs in to the platform: staff (``role`` of healthcard.platform.access.Role,
    an institution, an area for public health) or a resident (``resident_id``).  The password
    is an argon2 hash; ``failed`` / ``locked_until`` throttle guessing."""

    __tablename__ = "accounts"
    username: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(60))
    role: Mapped[str] = mapped_column(String(20))
    institution_code: Mapped[str | None] = mapped_column(ForeignKey("institutions.code"))
    area_code: Mapped[str | None] = mapped_column(String(6))
    resident_id: Mapped[str | None] = mapped_column(ForeignKey("residents.resident_id"), index=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(default=True)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class Terminal(Base):
    """A card terminal of an institution, known by its SAM (the SAM certificate's subject id):
    it logs in by having the SAM sign the platform's challenge."""

    __tablename__ = "terminals"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # SAM subject id (hex)
    institution_code: Mapped[str] = mapped_column(ForeignKey("institutions.code"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # workstation | kiosk | registration | cashier
    public_key: Mapped[str] = mapped_column(String(130))  # the SAM's SM2 key, hex
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class CardUse(Base):
    """刷卡记录: a card authenticated at a terminal (time, card, chip, institution, terminal
    type, 诊疗环节)."""

    __tablename__ = "card_uses"
    __table_args__ = (Index("ix_card_uses_resident_at", "resident_id", "at"),)
    id: Mapped[int] = _big_id()
    resident_id: Mapped[str] = mapped_column(String(32))
    card_number: Mapped[str] = mapped_column(String(18))
    chip_serial: Mapped[str] = mapped_column(String(16))
    institution_code: Mapped[str] = mapped_column(String(22))
    terminal_id: Mapped[str] = mapped_column(String(40))
    terminal_kind: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str] = mapped_column(
        String(16)
    )  # registration | consultation | lab | pharmacy | cashier | inpatient
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class PresenceGrant(Base):
    """The card was present at ``institution_code``: its clinicians may read the full record
    until ``expires_at``."""

    __tablename__ = "presence_grants"
    __table_args__ = (Index("ix_presence_grants_resident_institution", "resident_id", "institution_code"),)
    id: Mapped[int] = _big_id()
    resident_id: Mapped[str] = mapped_column(String(32))
    institution_code: Mapped[str] = mapped_column(String(22))
    card_use_id: Mapped[int | None] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(16))  # card | qr | break-glass
    granted_to: Mapped[str | None] = mapped_column(String(40))  # break-glass: the one account
    why: Mapped[str | None] = mapped_column(String(200))
    granted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class HiddenCategory(Base):
    """A category of the resident's record they hide from everyone but themselves (and
    break-glass)."""

    __tablename__ = "hidden_categories"
    resident_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    category: Mapped[str] = mapped_column(String(12), primary_key=True)
    hidden_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class Notification(Base):
    """A message to a resident (a break-glass access to their record, …)."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_resident_at", "resident_id", "at"),)
    id: Mapped[int] = _big_id()
    resident_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(String(400))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    read_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class AuditEntry(Base):
    """One access to personal data, chained: ``hash`` = SM3(``prev_hash`` ‖ canonical entry).
    A chain per resident (``chain`` = resident_id, or "-" for entries about no resident): the
    chains shard with the resident and writers to different residents never wait for each
    other.  Append-only: nothing updates or deletes a row (healthcard.platform.audit)."""

    __tablename__ = "audit_log"
    __table_args__ = (
        UniqueConstraint("chain", "seq"),
        Index("ix_audit_log_resident_at", "resident_id", "at"),
    )
    id: Mapped[int] = _big_id()
    chain: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(Integer)  # 1, 2, … within the chain
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(40))
    role: Mapped[str] = mapped_column(String(20))
    institution_code: Mapped[str | None] = mapped_column(String(22))
    resident_id: Mapped[str | None] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(12))  # read | write | deny | break-glass | login
    what: Mapped[str] = mapped_column(String(60))  # the resource / data category
    why: Mapped[str] = mapped_column(String(200))  # the purpose or the relationship that allowed it
    carrier: Mapped[str] = mapped_column(String(8))  # card | qr | login | terminal
    outcome: Mapped[str] = mapped_column(String(8))  # allowed | denied
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The newest entry of each audit chain: writers lock it to append, the verifier checks a
    chain ends where its head says (a deleted tail is found too)."""

    __tablename__ = "audit_heads"
    chain: Mapped[str] = mapped_column(String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class AuditArchive(Base):
    """One archived segment of the audit log (healthcard.platform.auditarchive): a gzip file of
    JSON lines moved out of ``audit_log`` in one run, its number (1, 2, …), its SHA-256 and size.
    Written in the transaction that deletes the entries it holds, after the file is on disk."""

    __tablename__ = "audit_archives"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)  # the number
    segment: Mapped[str] = mapped_column(String(64), unique=True)  # the file name
    before: Mapped[dt.datetime] = mapped_column(UTCDateTime())  # entries older than this moved
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    entries: Mapped[int] = mapped_column(BigInteger)
    chains: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(BigInteger)  # bytes of the file
    sha256: Mapped[str] = mapped_column(String(64))  # of the file, lower-case hex


class AuditArchiveChain(Base):
    """The part of one chain inside one segment: entries ``first_seq``–``last_seq``, the hash of
    the last (the checkpoint the next segment or the hot table chains from), and the byte range
    of the chain's gzip member in the file (a resident's archived entries read without the rest)."""

    __tablename__ = "audit_archive_chains"
    __table_args__ = (Index("ix_audit_archive_chains_chain", "chain", "last_seq"),)
    archive_id: Mapped[int] = mapped_column(ForeignKey("audit_archives.id"), primary_key=True)
    chain: Mapped[str] = mapped_column(String(32), primary_key=True)
    first_seq: Mapped[int] = mapped_column(Integer)
    last_seq: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))
    offset: Mapped[int] = mapped_column(BigInteger)
    length: Mapped[int] = mapped_column(BigInteger)


# ==== household proxy links (healthcard.platform.household) ========================================
#: a household link still standing (not revoked): one per (guardian, dependant)
LIVE_LINK = "revoked_at IS NULL"


class HouseholdLink(Base):
    """家庭代理: ``guardian_id`` (a parent or other guardian) sees the vaccinations of
    ``dependant_id`` (a minor) on the portal, from ``valid_from`` until the day before
    ``valid_until`` (by default the dependant's 18th birthday), unless revoked.  Established by
    card-centre or registration staff on ``evidence`` (户口簿 / 出生医学证明 number).  The database
    keeps one unrevoked link per (guardian, dependant)."""

    __tablename__ = "household_links"
    __table_args__ = (
        Index(
            "uq_household_links_live_pair",
            "guardian_id",
            "dependant_id",
            unique=True,
            sqlite_where=text(LIVE_LINK),
            postgresql_where=text(LIVE_LINK),
        ),
        CheckConstraint("guardian_id <> dependant_id", name="not_self"),
        CheckConstraint("valid_until > valid_from", name="valid_period"),
    )
    id: Mapped[int] = _big_id()
    guardian_id: Mapped[str] = mapped_column(ForeignKey("residents.resident_id"), index=True)
    dependant_id: Mapped[str] = mapped_column(ForeignKey("residents.resident_id"), index=True)
    relation: Mapped[str] = mapped_column(String(10))  # parent | guardian (household.Relation)
    evidence_kind: Mapped[str] = mapped_column(String(20))  # hukou | birth-certificate
    evidence: Mapped[str] = mapped_column(String(40))  # the document's number, as written on it
    valid_from: Mapped[dt.date] = mapped_column(Date)  # local dates: the first day it holds
    valid_until: Mapped[dt.date] = mapped_column(Date)  # the first day it no longer holds
    established_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    established_by: Mapped[str] = mapped_column(String(40))
    institution_code: Mapped[str | None] = mapped_column(String(22))  # where (the staff's)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    revoked_by: Mapped[str | None] = mapped_column(String(40))
    revoke_reason: Mapped[str | None] = mapped_column(String(200))


# ==== appointments (healthcard.platform.appointments) ===============================================
#: bookings that hold their slot (one per resident per session; one per slot)
LIVE_BOOKING = ("BOOKED", "CHECKED_IN")


class Department(Base):
    """A department of an institution, by the standard department code (标准科室代码,
    CARD-SPEC.md §9.2: 100 预防保健科, 200 全科, 300 内科 …)."""

    __tablename__ = "departments"
    __table_args__ = (UniqueConstraint("institution_code", "code"),)
    id: Mapped[int] = _big_id()
    institution_code: Mapped[str] = mapped_column(ForeignKey("institutions.code"))
    code: Mapped[str] = mapped_column(String(6))
    name: Mapped[str] = mapped_column(String(50))
    active: Mapped[bool] = mapped_column(default=True)


class Doctor(Base):
    """A doctor who holds clinic sessions (出诊); ``username``: their platform account, if any."""

    __tablename__ = "doctors"
    id: Mapped[int] = _big_id()
    institution_code: Mapped[str] = mapped_column(ForeignKey("institutions.code"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    name: Mapped[str] = mapped_column(String(60))
    title: Mapped[str] = mapped_column(String(20))  # 主任医师 | 副主任医师 | 主治医师 | 医师
    username: Mapped[str | None] = mapped_column(ForeignKey("accounts.username"))
    fee_fen: Mapped[int] = mapped_column(Integer, default=0)  # registration fee (挂号费)
    active: Mapped[bool] = mapped_column(default=True)


class ScheduleTemplate(Base):
    """A doctor's weekly session (周一上午 …) from ``valid_from`` (to ``valid_to``): how many
    slots, how many of them kept for walk-in patients and for referrals from township clinics."""

    __tablename__ = "schedule_templates"
    __table_args__ = (UniqueConstraint("doctor_id", "weekday", "period", "valid_from"),)
    id: Mapped[int] = _big_id()
    doctor_id: Mapped[int] = mapped_column(ForeignKey("doctors.id"), index=True)
    weekday: Mapped[int] = mapped_column(Integer)  # ISO: 1 Monday … 7 Sunday
    period: Mapped[str] = mapped_column(String(10))  # morning | afternoon | evening
    slots: Mapped[int] = mapped_column(Integer)  # all of them, walk-in and referral included
    walk_in: Mapped[int] = mapped_column(Integer, default=0)
    referral: Mapped[int] = mapped_column(Integer, default=0)
    slot_minutes: Mapped[int] = mapped_column(Integer, default=10)
    valid_from: Mapped[dt.date] = mapped_column(Date)
    valid_to: Mapped[dt.date | None] = mapped_column(Date)


class ScheduleException(Base):
    """No session: a doctor's leave (``doctor_id``) or an institution's holiday (no doctor), for
    a day or one period of it."""

    __tablename__ = "schedule_exceptions"
    __table_args__ = (Index("ix_schedule_exceptions_institution_on", "institution_code", "on"),)
    id: Mapped[int] = _big_id()
    institution_code: Mapped[str] = mapped_column(ForeignKey("institutions.code"))
    doctor_id: Mapped[int | None] = mapped_column(ForeignKey("doctors.id"))
    on: Mapped[dt.date] = mapped_column(Date)
    period: Mapped[str | None] = mapped_column(String(10))  # None: the whole day
    reason: Mapped[str] = mapped_column(String(60))
    created_by: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class ClinicSession(Base):
    """出诊: one doctor, one date, one period — made from the templates, minus the exceptions.
    OPEN | CANCELLED (the doctor's leave after booking: the bookings are cancelled and the
    residents told)."""

    __tablename__ = "clinic_sessions"
    __table_args__ = (
        UniqueConstraint("doctor_id", "on", "period"),
        Index("ix_clinic_sessions_institution_on", "institution_code", "on"),
        Index("ix_clinic_sessions_department_on", "department_id", "on"),
    )
    id: Mapped[int] = _big_id()
    institution_code: Mapped[str] = mapped_column(ForeignKey("institutions.code"))
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    doctor_id: Mapped[int] = mapped_column(ForeignKey("doctors.id"))
    on: Mapped[dt.date] = mapped_column(Date)
    period: Mapped[str] = mapped_column(String(10))
    starts_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(10))
    fee_fen: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class Slot(Base):
    """号源: a numbered place in a session, in one pool (public: bookable by anyone | walk-in:
    the registration desk on the day | referral: kept for township clinics referring upward).
    FREE | BOOKED; a booking takes a slot with ``UPDATE … WHERE status = 'FREE'`` so that two
    processes can never both get it."""

    __tablename__ = "slots"
    __table_args__ = (
        UniqueConstraint("session_id", "number"),
        Index("ix_slots_session_pool_status", "session_id", "pool", "status"),
    )
    id: Mapped[int] = _big_id()
    session_id: Mapped[int] = mapped_column(ForeignKey("clinic_sessions.id"))
    number: Mapped[int] = mapped_column(Integer)  # 1, 2, … in the session: the queue number
    pool: Mapped[str] = mapped_column(String(8))  # public | walk-in | referral
    starts_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(8))


class Booking(Base):
    """预约: a resident's booking of a slot.  BOOKED → CHECKED_IN (the card swiped at the
    hospital: ``encounter_id``) | CANCELLED | NO_SHOW (the session ended without a check-in).
    The database keeps one live booking per resident per session and per slot."""

    __tablename__ = "bookings"
    __table_args__ = (
        Index(
            "uq_bookings_live_session_resident",
            "session_id",
            "resident_id",
            unique=True,
            sqlite_where=_in(LIVE_BOOKING),
            postgresql_where=_in(LIVE_BOOKING),
        ),
        Index(
            "uq_bookings_live_slot",
            "slot_id",
            unique=True,
            sqlite_where=_in(LIVE_BOOKING),
            postgresql_where=_in(LIVE_BOOKING),
        ),
        Index("ix_bookings_resident_booked", "resident_id", "booked_at"),
        Index("ix_bookings_session_status", "session_id", "status"),
        # a key is the booker's own; NULLs (a booking made without one) never collide
        Index("uq_bookings_booked_by_key", "booked_by", "idempotency_key", unique=True),
    )
    id: Mapped[int] = _big_id()
    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.resident_id"))
    session_id: Mapped[int] = mapped_column(ForeignKey("clinic_sessions.id"))
    slot_id: Mapped[int] = mapped_column(ForeignKey("slots.id"))
    institution_code: Mapped[str] = mapped_column(String(22))
    channel: Mapped[str] = mapped_column(String(10))  # portal | kiosk | desk | referral
    referred_by: Mapped[str | None] = mapped_column(String(22))  # the referring institution
    status: Mapped[str] = mapped_column(String(10))
    booked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    booked_by: Mapped[str] = mapped_column(String(40))
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    cancelled_by: Mapped[str | None] = mapped_column(String(40))
    checked_in_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    encounter_id: Mapped[int | None] = mapped_column(ForeignKey("encounters.id"))
    idempotency_key: Mapped[str | None] = mapped_column(String(64))  # the booker's Idempotency-Key


class BookingSuspension(Base):
    """Online booking suspended (three no-shows in 90 days → 90 days, by policy), until
    ``ends_at`` or until lifted by staff."""

    __tablename__ = "booking_suspensions"
    __table_args__ = (Index("ix_booking_suspensions_resident_ends", "resident_id", "ends_at"),)
    id: Mapped[int] = _big_id()
    resident_id: Mapped[str] = mapped_column(String(32))
    starts_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(String(100))
    lifted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    lifted_by: Mapped[str | None] = mapped_column(String(40))


# ==== NCMS settlement and the health account (healthcard.platform.settlement) =====================
# Money is integer fen (BigInteger: a pool's fund passes 2**31 fen).  The ledger is double entry:
# every transaction's entries sum to zero; an entry is never edited, a refund is new entries.


class Enrollment(Base):
    """参合: the resident is insured in ``pool`` for ``year`` (one pool per resident per year)."""

    __tablename__ = "ncms_enrollments"
    __table_args__ = (Index("ix_ncms_enrollments_pool_year", "pool", "year"),)
    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.resident_id"), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    pool: Mapped[str] = mapped_column(String(16))
    ncms_number: Mapped[str | None] = mapped_column(String(18))  # 新农合证（卡）号
    premium_fen: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(8))  # ACTIVE | ENDED
    enrolled_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class Accumulator(Base):
    """The resident's year-to-date figures in a pool (rule inputs of SETTLEMENT.md).  A
    settlement locks this row (``SELECT … FOR UPDATE``; SQLite: the database lock) and updates
    it in its own transaction: two settlements of one resident run one after the other."""

    __tablename__ = "ncms_accumulators"
    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.resident_id"), primary_key=True)
    pool: Mapped[str] = mapped_column(String(16), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    fund_paid_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    outpatient_fund_paid_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    outpatient_deductible_met_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    admissions: Mapped[int] = mapped_column(Integer, default=0)
    settlements: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class LedgerTransaction(Base):
    """One balanced movement of money: settlement | refund | top-up | payment | withdrawal |
    funding; ``ref``: the settlement id, the bank reference …"""

    __tablename__ = "ledger_transactions"
    __table_args__ = (Index("ix_ledger_transactions_at", "at"),)
    id: Mapped[int] = _big_id()
    kind: Mapped[str] = mapped_column(String(12))
    ref: Mapped[str] = mapped_column(String(64))
    resident_id: Mapped[str | None] = mapped_column(String(32), index=True)
    actor: Mapped[str] = mapped_column(String(40))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class LedgerEntry(Base):
    """A line of a transaction: ``amount_fen`` into (+) or out of (−) ``account`` — fund:<pool>,
    receivable:<institution>, cash:<institution>, health:<resident>, bank:<bank>, pocket (the
    resident's own cash), premiums:<pool>.  Never updated, never deleted."""

    __tablename__ = "ledger_entries"
    __table_args__ = (Index("ix_ledger_entries_account_id", "account", "id"),)
    id: Mapped[int] = _big_id()
    txn_id: Mapped[int] = mapped_column(ForeignKey("ledger_transactions.id"), index=True)
    account: Mapped[str] = mapped_column(String(48))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    resident_id: Mapped[str | None] = mapped_column(String(32))


class Settlement(Base):
    """One settlement (or the refund of one: ``kind`` refund, ``reverses_id``) of a visit's
    bill at the cashier, with the figures of SETTLEMENT.md's rules and the policy version that
    made them.  ``(institution_code, idempotency_key)`` is unique: a retried request finds the
    first result.  ``review``: why the NCMS office should look at it (random | threshold |
    outlier), or None."""

    __tablename__ = "settlements"
    __table_args__ = (
        UniqueConstraint("institution_code", "idempotency_key"),
        Index("ix_settlements_resident_settled", "resident_id", "settled_at"),
        Index("ix_settlements_settled_at", "settled_at"),
        Index("ix_settlements_encounter", "encounter_id"),
    )
    id: Mapped[int] = _big_id()
    idempotency_key: Mapped[str] = mapped_column(String(64))
    request_hash: Mapped[str] = mapped_column(String(64))  # SM3 of the request: a reused key
    kind: Mapped[str] = mapped_column(String(10))  # settlement | refund
    status: Mapped[str] = mapped_column(String(10))  # SETTLED | REVERSED
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("settlements.id"), unique=True)
    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.resident_id"))
    encounter_id: Mapped[int] = mapped_column(ForeignKey("encounters.id"))
    institution_code: Mapped[str] = mapped_column(ForeignKey("institutions.code"))
    level: Mapped[str] = mapped_column(String(10))
    visit: Mapped[str] = mapped_column(String(10))
    inside_pool: Mapped[bool] = mapped_column()
    referral: Mapped[bool] = mapped_column()
    referred_by: Mapped[str | None] = mapped_column(String(22))
    pool: Mapped[str] = mapped_column(String(16))
    year: Mapped[int] = mapped_column(Integer)
    policy_version: Mapped[int] = mapped_column(Integer)
    total_fen: Mapped[int] = mapped_column(BigInteger)
    eligible_fen: Mapped[int] = mapped_column(BigInteger)
    deductible_fen: Mapped[int] = mapped_column(BigInteger)
    ratio_percent: Mapped[int] = mapped_column(Integer)
    fund_fen: Mapped[int] = mapped_column(BigInteger)
    self_fen: Mapped[int] = mapped_column(BigInteger)
    village_eligible_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    capped: Mapped[bool] = mapped_column(default=False)
    paid_by: Mapped[str] = mapped_column(String(8))  # account | cash
    diagnosis_code: Mapped[str | None] = mapped_column(String(10))
    review: Mapped[str | None] = mapped_column(String(60))
    cashier: Mapped[str] = mapped_column(String(40))
    settled_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    txn_id: Mapped[int] = mapped_column(ForeignKey("ledger_transactions.id"))


class SettlementLine(Base):
    """A line of a settled bill: the catalog item, its class, quantity, price and amount, and the
    fee category (WS 364.13 CV07.10.001) the card's fee lines are summed by."""

    __tablename__ = "settlement_lines"
    id: Mapped[int] = _big_id()
    settlement_id: Mapped[int] = mapped_column(ForeignKey("settlements.id"), index=True)
    resident_id: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(Integer)
    item: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(60))
    item_class: Mapped[str] = mapped_column(String(1))
    fee_category: Mapped[str] = mapped_column(String(2))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_fen: Mapped[int] = mapped_column(BigInteger)
    amount_fen: Mapped[int] = mapped_column(BigInteger)


class HealthAccount(Base):
    """The resident's health account (co-branded with a bank, 联名卡): its balance never goes
    below zero — the database refuses it (a CHECK), whatever the code does."""

    __tablename__ = "health_accounts"
    __table_args__ = (CheckConstraint("balance_fen >= 0", name="balance_not_negative"),)
    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.resident_id"), primary_key=True)
    bank: Mapped[str] = mapped_column(String(12))
    account_number: Mapped[str] = mapped_column(String(32), unique=True)
    balance_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(8))  # ACTIVE | FROZEN | CLOSED
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class BankTransfer(Base):
    """A transfer the bank told us of (a top-up ``in``, a withdrawal ``out``), once per bank
    reference: a repeated notice finds it and moves nothing."""

    __tablename__ = "bank_transfers"
    __table_args__ = (
        UniqueConstraint("bank", "bank_ref"),
        Index("ix_bank_transfers_bank_value_date", "bank", "value_date"),
    )
    id: Mapped[int] = _big_id()
    bank: Mapped[str] = mapped_column(String(12))
    bank_ref: Mapped[str] = mapped_column(String(40))
    resident_id: Mapped[str] = mapped_column(String(32), index=True)
    account_number: Mapped[str] = mapped_column(String(32))
    direction: Mapped[str] = mapped_column(String(3))  # in | out
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    value_date: Mapped[dt.date] = mapped_column(Date)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    txn_id: Mapped[int] = mapped_column(ForeignKey("ledger_transactions.id"))


# ==== federation: the transactional outbox and the consumers' inbox (healthcard.federation) =========
#: outbox rows the relay has still to publish
PENDING_OUTBOX = "published_at IS NULL"


class OutboxMessage(Base):
    """A message to another node, written in the same transaction as the change it announces,
    published by the relay in ``id`` order and marked ``published_at`` once the bus
    acknowledged it.  ``msg_id`` is the event's stable id: the bus and the consumers deduplicate
    by it, so publishing a row twice (a crash between publish and mark) is harmless."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index(
            "ix_outbox_pending",
            "id",
            sqlite_where=text(PENDING_OUTBOX),
            postgresql_where=text(PENDING_OUTBOX),
        ),
    )
    id: Mapped[int] = _big_id()
    msg_id: Mapped[str] = mapped_column(String(128), unique=True)
    subject: Mapped[str] = mapped_column(String(200))
    payload: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    published_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # publishes tried (1 when all went well)


class InboxEntry(Base):
    """A message a consumer has processed: written in the same transaction as the consumer's
    work, so a message delivered again (not acknowledged before a crash) finds it and is only
    acknowledged."""

    __tablename__ = "inbox"
    consumer: Mapped[str] = mapped_column(String(60), primary_key=True)
    msg_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    processed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


# --- the indexes that flow upward (healthcard.federation.nodes; every node has the tables, a
# province uses the first two, the national node the third) ----------------------------------------
class ProvinceCard(Base):
    """A province's MPI / card index: where each card number of the province lives — the home
    city node and the resident id there — and its status.  ``version`` is the city's (the id of
    the card's newest history row there): an older event never overwrites a newer one."""

    __tablename__ = "province_cards"
    card_number: Mapped[str] = mapped_column(String(18), primary_key=True)
    city_code: Mapped[str] = mapped_column(String(4), index=True)
    resident_id: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class RecordPointer(Base):
    """A province's record locator: a closed visit of a person, and which city holds it (the
    record stays there; only this pointer travels)."""

    __tablename__ = "record_locator"
    __table_args__ = (
        UniqueConstraint("city_code", "encounter_id"),
        Index("ix_record_locator_city_resident", "city_code", "resident_id"),
    )
    id: Mapped[int] = _big_id()
    city_code: Mapped[str] = mapped_column(String(4))
    encounter_id: Mapped[int] = mapped_column(BigInteger)
    resident_id: Mapped[str] = mapped_column(String(32))
    card_number: Mapped[str | None] = mapped_column(String(18), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    day: Mapped[dt.date] = mapped_column(Date)
    institution_code: Mapped[str] = mapped_column(String(22))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class NationalCard(Base):
    """The national card index: card number → home province and city, and its status (as the
    province forwarded it, with the city's ``version``)."""

    __tablename__ = "national_cards"
    card_number: Mapped[str] = mapped_column(String(18), primary_key=True)
    province: Mapped[str] = mapped_column(String(2), index=True)
    city_code: Mapped[str] = mapped_column(String(4))
    status: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    #: the chip of the newest event (16 hex; migration 0008): the hot list flowing down is per
    #: chip.  None: an event from before chips were announced
    chip_serial: Mapped[str | None] = mapped_column(String(16))


# --- the hot list flowing downward (healthcard.federation.hotlist; a city's, migration 0008) ------
class FederatedHotListEntry(Base):
    """A chip the nation announced on or off the hot list (``down.hotlist.<province>``), as a city
    node holds it: one row per chip (a replaced card has several), the newest ``version`` (the
    home city's) wins; ``listed`` says whether terminals must refuse it now."""

    __tablename__ = "federated_hotlist"
    chip_serial: Mapped[str] = mapped_column(String(16), primary_key=True)
    card_number: Mapped[str] = mapped_column(String(18), index=True)
    province: Mapped[str] = mapped_column(String(2))
    city_code: Mapped[str] = mapped_column(String(4))
    status: Mapped[str] = mapped_column(String(16))
    listed: Mapped[bool] = mapped_column()
    reason: Mapped[str | None] = mapped_column(String(12))
    version: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


# --- cross-region care (healthcard.federation.regions) ---------------------------------------------
class Visitor(Base):
    """A person of another city known here because their card was swiped here: the local
    resident (``resident_id``, a row of ``residents``) and where that person is at home."""

    __tablename__ = "visitors"
    __table_args__ = (UniqueConstraint("home_city", "home_resident_id"),)
    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.resident_id"), primary_key=True)
    card_number: Mapped[str] = mapped_column(String(18), index=True)
    home_province: Mapped[str] = mapped_column(String(2))
    home_city: Mapped[str] = mapped_column(String(4))
    home_resident_id: Mapped[str] = mapped_column(String(32))
    first_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class VisitingInstitution(Base):
    """At a home city: an institution of another city where one of its residents' cards was
    swiped or a visit made — so "who looked" and the visits list can name it."""

    __tablename__ = "visiting_institutions"
    code: Mapped[str] = mapped_column(String(22), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    city_code: Mapped[str] = mapped_column(String(4))
    level: Mapped[str | None] = mapped_column(String(10))
    area_code: Mapped[str | None] = mapped_column(String(6))
    first_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class RemoteVisit(Base):
    """At a home city: the pointer of a visit one of its residents made in another city (the
    record stays there)."""

    __tablename__ = "remote_visits"
    __table_args__ = (
        UniqueConstraint("city_code", "encounter_id"),
        Index("ix_remote_visits_resident_day", "resident_id", "day"),
    )
    id: Mapped[int] = _big_id()
    resident_id: Mapped[str] = mapped_column(String(32))
    city_code: Mapped[str] = mapped_column(String(4))
    encounter_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(10))
    day: Mapped[dt.date] = mapped_column(Date)
    institution_code: Mapped[str] = mapped_column(String(22))
    institution_name: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


# --- cross-region settlement (healthcard.platform.settlement.crossregion) ---------------------------
class CrossRegionSettlement(Base):
    """A visitor's bill settled by the home pool (SETTLEMENT.md, cross-region): one row at each of
    the two cities.  ``side`` home: the home city's record (its fund's share owed to the visiting
    city, ``clearing:<visiting city>`` in its ledger); ``side`` visiting: the visiting city's
    (its institution's receivable from the home pool, ``clearing:<home city>``), with its row of
    ``settlements`` (``settlement_id``).  ``(side, visiting_city, institution_code,
    idempotency_key)`` is unique: a retried request finds the first result at either side.
    ``month`` (YYYY-MM, China's, of the home's ``settled_at``) is the clearing month at both."""

    __tablename__ = "cross_region_settlements"
    __table_args__ = (
        UniqueConstraint("side", "visiting_city", "institution_code", "idempotency_key"),
        Index("ix_cross_region_settlements_clearing", "counterpart", "month"),
    )
    id: Mapped[int] = _big_id()
    side: Mapped[str] = mapped_column(String(8))  # home | visiting
    counterpart: Mapped[str] = mapped_column(String(4))  # the other city
    home_city: Mapped[str] = mapped_column(String(4))
    visiting_city: Mapped[str] = mapped_column(String(4))
    idempotency_key: Mapped[str] = mapped_column(String(64))
    request_hash: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(10))  # settlement | refund
    status: Mapped[str] = mapped_column(String(10))  # SETTLED | REVERSED
    resident_id: Mapped[str] = mapped_column(String(32), index=True)  # the person at this city
    home_resident_id: Mapped[str] = mapped_column(String(32))
    settlement_id: Mapped[int | None] = mapped_column(ForeignKey("settlements.id"))  # visiting side
    encounter_id: Mapped[int] = mapped_column(BigInteger)  # the visiting city's visit
    institution_code: Mapped[str] = mapped_column(String(22))
    institution_name: Mapped[str] = mapped_column(String(100))
    level: Mapped[str] = mapped_column(String(10))
    area_code: Mapped[str] = mapped_column(String(6))
    visit: Mapped[str] = mapped_column(String(10))
    inside_pool: Mapped[bool] = mapped_column()
    referral: Mapped[bool] = mapped_column()
    home_pool: Mapped[str] = mapped_column(String(16))
    visiting_pool: Mapped[str | None] = mapped_column(String(16))
    year: Mapped[int] = mapped_column(Integer)
    policy_version: Mapped[int] = mapped_column(Integer)
    total_fen: Mapped[int] = mapped_column(BigInteger)
    eligible_fen: Mapped[int] = mapped_column(BigInteger)
    deductible_fen: Mapped[int] = mapped_column(BigInteger)
    ratio_percent: Mapped[int] = mapped_column(Integer)
    fund_fen: Mapped[int] = mapped_column(BigInteger)
    self_fen: Mapped[int] = mapped_column(BigInteger)
    owed_fen: Mapped[int] = mapped_column(BigInteger)  # home → visiting: fund + a health-account payment
    capped: Mapped[bool] = mapped_column()
    paid_by: Mapped[str] = mapped_column(String(8))  # account | cash
    lines: Mapped[list[Any]] = mapped_column(JSON)  # [[item, class, quantity, unit price fen], …]
    month: Mapped[str] = mapped_column(String(7))
    settled_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())  # at the home
    #: None at the home when nothing moved there (the fund paid nothing, the patient paid cash)
    txn_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transactions.id"))


# ==== rate limits and revoked sessions (healthcard.platform.ratelimit) ===========================
class RateLimit(Base):
    """One fixed window of one rate limit (``login:<client address>``, ``challenge:<address>``):
    when it started and how many attempts it has counted.  Shared by every worker of a node;
    a window that ended is started again by the next attempt, rows idle for a day are removed."""

    __tablename__ = "rate_limits"
    bucket: Mapped[str] = mapped_column(String(160), primary_key=True)
    window_start: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    hits: Mapped[int] = mapped_column(Integer)


class RevokedToken(Base):
    """An access token ended before its expiry (a web logout): the SHA-256 of the token, never
    the token; kept until the token would have expired anyway."""

    __tablename__ = "revoked_tokens"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)  # lower-case hex
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)


__all__ = [
    "LIVE_BOOKING",
    "LIVE_CARD",
    "LIVE_LINK",
    "OPEN_APPLICATION",
    "PENDING_OUTBOX",
    "Account",
    "Accumulator",
    "Allergy",
    "Application",
    "AuditArchive",
    "AuditArchiveChain",
    "AuditEntry",
    "AuditHead",
    "BankTransfer",
    "Base",
    "Batch",
    "Booking",
    "BookingSuspension",
    "Card",
    "CardEvent",
    "CardUse",
    "ClinicSession",
    "CollectionPoint",
    "Counter",
    "CrossRegionSettlement",
    "Department",
    "Diagnosis",
    "Doctor",
    "Encounter",
    "Enrollment",
    "FederatedHotListEntry",
    "HealthAccount",
    "HealthArchive",
    "HiddenCategory",
    "HotListEntry",
    "HotListVersion",
    "HouseholdLink",
    "ImmunizationDose",
    "InboxEntry",
    "Institution",
    "LedgerEntry",
    "LedgerTransaction",
    "MatchCandidate",
    "MergeEvent",
    "NationalCard",
    "Notification",
    "Observation",
    "Operator",
    "OutboxMessage",
    "Prescription",
    "PresenceGrant",
    "Procedure",
    "ProvinceCard",
    "RateLimit",
    "RecordPointer",
    "RemoteVisit",
    "Resident",
    "ResidentIdentifier",
    "RevokedToken",
    "ScheduleException",
    "ScheduleTemplate",
    "Settlement",
    "SettlementLine",
    "Slot",
    "Terminal",
    "UTCDateTime",
    "VisitingInstitution",
    "Visitor",
]
