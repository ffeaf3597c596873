"""Node roles and the upward indexes on their own (SQLite files, the in-process bus): the settings,
the province's and the nation's handlers (versions, idempotency, the forward to the nation) and
the runner.  Three nodes with real card centres, on SQLite, PostgreSQL and NATS:
tests/integration/test_federation_nodes.py."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from healthcard.clock import FixedClock
from healthcard.errors import InvalidValue
from healthcard.federation import InProcessBus, announce, message_id
from healthcard.federation.nodes import (
    FederationRunner,
    NodeIdentity,
    NodeRole,
    apply_national_card,
    apply_province_card,
    city_subject,
    national_subject,
    province_handler,
    until_quiet,
)
from healthcard.settings import Settings, check_node
from healthcard.storage import tables as t
from healthcard.storage.db import Database

NOW = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC)
CLOCK = FixedClock(NOW)
CARD = "410102199003070019"


def card_event(status: str, version: int, city: str = "4101") -> dict[str, object]:
    return {"card": CARD, "resident": "r-1", "status": status, "version": version, "city": city, "at": ""}


def database(path: Path) -> Database:
    db = Database(f"sqlite:///{path}")
    t.Base.metadata.create_all(db.engine)
    return db


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    made = database(tmp_path / "node.db")
    try:
        yield made
    finally:
        made.dispose()


# --- settings ----------------------------------------------------------------------------------------
def test_the_node_role_and_code_come_from_the_environment() -> None:
    assert (Settings.from_env({}).node_role, Settings.from_env({}).node_code) == ("city", None)
    s = Settings.from_env({"HEALTHCARD_NODE_ROLE": "province", "HEALTHCARD_NODE_CODE": "41"})
    assert (s.node_role, s.node_code) == ("province", "41")
    assert check_node("national", None) == ("national", "CN")
    assert check_node("city", " 4101 ") == ("city", "4101")


@pytest.mark.parametrize(
    ("role", "code", "field"),
    [
        ("county", None, "HEALTHCARD_NODE_ROLE"),
        ("province", None, "HEALTHCARD_NODE_CODE"),
        ("province", "4101", "HEALTHCARD_NODE_CODE"),
        ("city", "41", "HEALTHCARD_NODE_CODE"),
        ("city", "4100", "HEALTHCARD_NODE_CODE"),
        ("city", "99x1", "HEALTHCARD_NODE_CODE"),
        ("national", "41", "HEALTHCARD_NODE_CODE"),
    ],
)
def test_a_bad_role_or_code_is_refused_by_name(role: str, code: str | None, field: str) -> None:
    env = {"HEALTHCARD_NODE_ROLE": role} | ({"HEALTHCARD_NODE_CODE": code} if code else {})
    with pytest.raises(InvalidValue) as refused:
        Settings.from_env(env)
    assert refused.value.field == field


def test_identities_and_subjects() -> None:
    city = NodeIdentity.of("city", "4101")
    assert (city.province, city.announces) == ("41", True)
    assert not NodeIdentity(NodeRole.CITY).announces
    assert city_subject("4101", "card") == "up.41.4101.card"
    assert national_subject("41") == "up.national.41.card"
    with pytest.raises(InvalidValue):
        NodeIdentity(NodeRole.PROVINCE, "4101")


# --- the handlers ------------------------------------------------------------------------------------
def _province_card(db: Database) -> t.ProvinceCard | None:
    with db.session() as session:
        return session.get(t.ProvinceCard, CARD)


def test_the_province_keeps_the_newest_version_whatever_the_order(db: Database) -> None:
    with db.uow() as uow:
        assert apply_province_card(uow, "4101", card_event("ISSUED", 3), NOW)
        assert apply_province_card(uow, "4101", card_event("LOST", 7), NOW)
        assert not apply_province_card(uow, "4101", card_event("ACTIVE", 5), NOW)  # older: late
        assert not apply_province_card(uow, "4101", card_event("LOST", 7), NOW)  # the same again
        uow.commit()
    row = _province_card(db)
    assert row is not None
    assert (row.status, row.version, row.city_code, row.resident_id) == ("LOST", 7, "4101", "r-1")


def test_a_malformed_payload_is_refused_by_field(db: Database) -> None:
    with db.uow() as uow, pytest.raises(InvalidValue) as refused:
        apply_province_card(uow, "4101", {"card": CARD, "status": "LOST", "version": "7"}, NOW)
    assert refused.value.field == "payload.version"


def test_the_nation_keeps_the_newest_version(db: Database) -> None:
    with db.uow() as uow:
        payload = {"card": CARD, "status": "ACTIVE", "version": 4, "city": "4101"}
        assert apply_national_card(uow, "41", payload, NOW)
        assert not apply_national_card(uow, "41", payload | {"status": "ISSUED", "version": 2}, NOW)
        assert apply_national_card(uow, "41", payload | {"status": "LOST", "version": 9}, NOW)
        uow.commit()
    with db.session() as session:
        row = session.get(t.NationalCard, CARD)
        assert row is not None and (row.province, row.status, row.version) == ("41", "LOST", 9)


def _outbox(db: Database) -> list[tuple[str, dict[str, object]]]:
    with db.session() as session:
        return [
            (r.subject, r.payload)
            for r in session.scalars(select(t.OutboxMessage).order_by(t.OutboxMessage.id))
        ]


def test_the_province_forwards_only_what_it_applied_in_the_same_transaction(db: Database) -> None:
    from healthcard.federation import Announcement

    handle = province_handler("41", CLOCK)
    with db.uow() as uow:
        handle(uow, Announcement("up.41.4101.card", card_event("LOST", 7), "m1"))
        handle(uow, Announcement("up.41.4101.card", card_event("ACTIVE", 5), "m2"))  # older
        handle(uow, Announcement("up.44.4401.card", card_event("LOST", 8), "m3"))  # not its province
        uow.rollback()
    assert _outbox(db) == [] and _province_card(db) is None  # rolled back: nothing, not even the forward
    with db.uow() as uow:
        handle(uow, Announcement("up.41.4101.card", card_event("LOST", 7), "m1"))
        handle(uow, Announcement("up.41.4101.card", card_event("ACTIVE", 5), "m2"))
        uow.commit()
    assert _outbox(db) == [
        # "at" (and "chip", when the city sent one) travel on for the hot list flowing down
        ("up.national.41.card", {"card": CARD, "status": "LOST", "version": 7, "city": "4101", "at": ""})
    ]


def test_a_record_pointer_is_kept_once(db: Database) -> None:
    from healthcard.federation import Announcement

    handle = province_handler("41", CLOCK)
    pointer = {
        "city": "4101",
        "resident": "r-1",
        "card": CARD,
        "encounter": 12,
        "kind": "outpatient",
        "day": "2026-11-24",
        "institution": "410102001",
    }
    with db.uow() as uow:
        handle(uow, Announcement("up.41.4101.record", pointer, "a"))
        handle(uow, Announcement("up.41.4101.record", pointer, "b"))  # the same visit under another id
        uow.commit()
    with db.session() as session:
        rows = session.scalars(select(t.RecordPointer)).all()
        assert [(r.city_code, r.encounter_id, r.card_number, r.day) for r in rows] == [
            ("4101", 12, CARD, dt.date(2026, 11, 24))
        ]


# --- three nodes over the in-process bus -------------------------------------------------------------
def _announce_card(db: Database, status: str, version: int) -> None:
    with db.uow() as uow:
        announce(
            uow,
            city_subject("4101", "card"),
            card_event(status, version),
            message_id("card", "4101", CARD, version),
            at=NOW,
        )
        uow.commit()


def test_a_card_event_travels_city_to_province_to_nation_once(tmp_path: Path) -> None:
    city, province, nation = (database(tmp_path / f"{n}.db") for n in ("city", "province", "nation"))
    bus = InProcessBus()
    runners = [
        FederationRunner(city, bus, CLOCK, NodeIdentity.of("city", "4101")),
        FederationRunner(province, bus, CLOCK, NodeIdentity.of("province", "41")),
        FederationRunner(nation, bus, CLOCK, NodeIdentity.of("national", "CN")),
    ]
    _announce_card(city, "ISSUED", 3)
    _announce_card(city, "LOST", 6)
    until_quiet(runners)
    # the same event published again (the relay's row marked pending after a crash): nothing changes
    with city.uow() as uow:
        uow.session.execute(t.OutboxMessage.__table__.update().values(published_at=None))
        uow.commit()
    bus._streams["HC_UP"].seen.clear()  # past the duplicate window: only the inboxes stand guard
    until_quiet(runners)
    with nation.session() as session:
        row = session.get(t.NationalCard, CARD)
        assert row is not None and (row.status, row.version, row.city_code) == ("LOST", 6, "4101")
    with province.session() as session:
        assert session.scalar(select(func.count()).select_from(t.OutboxMessage)) == 2  # forwarded once each
        assert session.scalar(select(func.count()).select_from(t.InboxEntry)) == 2
    for db in (city, province, nation):
        db.dispose()


def test_the_runner_threads_start_and_stop(tmp_path: Path) -> None:
    city, province, nation = (database(tmp_path / f"{n}.db") for n in ("city", "province", "nation"))
    bus = InProcessBus()
    identities = [("city", "4101"), ("province", "41"), ("national", "CN")]
    runners = [
        FederationRunner(db, bus, CLOCK, NodeIdentity.of(*who), ack_wait=1)
        for db, who in zip((city, province, nation), identities, strict=True)
    ]
    for runner in runners:
        runner.start()
    try:
        _announce_card(city, "ACTIVE", 4)
        deadline = time.monotonic() + 10
        while True:
            with nation.session() as session:
                if session.get(t.NationalCard, CARD) is not None:
                    break
            assert time.monotonic() < deadline, "the card never reached the nation"
            time.sleep(0.05)
    finally:
        for runner in runners:
            runner.stop()
    assert not [
        th for th in threading.enumerate() if th.name.startswith(("city-4101", "province-41", "national"))
    ]
    for db in (city, province, nation):
        db.dispose()
