"""The storage layer on both databases: migrations, the unit of work, counters, constraints."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy.exc import IntegrityError

from healthcard.errors import StorageError
from healthcard.storage import tables as t
from healthcard.storage.db import Database

NOW = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)


def test_upgrade_from_empty_and_status(database_url: str) -> None:
    db = Database(database_url)
    try:
        before = db.status()
        assert before.current is None and not before.up_to_date and before.tables == {}
        with pytest.raises(StorageError, match="healthcard db upgrade"):
            db.require_current()
        db.upgrade()
        after = db.status()
        assert after.up_to_date and after.current == db.head()
        assert after.tables["cards"] == 0 and "hotlist_entries" in after.tables
        db.downgrade("base")
        assert db.current() is None
        db.upgrade()
        db.require_current()
    finally:
        db.dispose()


def test_password_never_shown() -> None:
    db = Database("postgresql+psycopg://card:s3cret@127.0.0.1:1/none")
    assert "s3cret" not in repr(db)
    with pytest.raises(StorageError) as caught:
        db.current()
    assert "s3cret" not in str(caught.value)
    db.dispose()


def test_counter_blocks_are_disjoint_across_threads(database: Database) -> None:
    taken: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(20):
            with database.uow() as uow:
                first = uow.counters.take("issue-serial:41000000001", 5)
                uow.commit()
            with lock:
                taken.extend(range(first, first + 5))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == list(range(1, 401))


def test_rollback_without_commit(database: Database) -> None:
    with database.uow() as uow:
        uow.reference.add(
            t.Institution(code="41000000001", name="河南", kind="province-centre", area_code="410000")
        )
    with database.uow() as uow:
        assert uow.reference.institution("41000000001") is None


def zhang(created_at: dt.datetime = NOW) -> t.Resident:
    return t.Resident(
        resident_id="r1",
        id_type="01",
        id_number="410102199003070019",
        name="张三",
        sex=1,
        birth_date=dt.date(1990, 3, 7),
        created_at=created_at,
    )


def test_times_come_back_aware_utc(database: Database) -> None:
    local = NOW.astimezone(dt.timezone(dt.timedelta(hours=8)))
    with database.uow() as uow:
        uow.residents.add(zhang(created_at=local))
        uow.commit()
    with database.uow() as uow:
        row = uow.residents.get("r1")
        assert row is not None
        assert row.created_at == NOW and row.created_at.tzinfo is not None
        assert row.created_at.utcoffset() == dt.timedelta(0)


def _card(serial: str, status: str, card_id: int) -> t.Card:
    return t.Card(
        id=card_id,
        resident_id="r1",
        card_number="410102199003070019",
        chip_serial=serial,
        issue_serial=f"{card_id:010d}",
        issuer_code="41000000001",
        province="41",
        city_code="410100",
        key_version=1,
        algorithm="SM4",
        profile="health-card-32k/1",
        status=status,
        application_number="SQ41000000000001",
        issued_by="admin",
        issue_date=NOW.date(),
        expiry_date=NOW.date(),
        created_at=NOW,
        status_at=NOW,
    )


def test_one_live_card_per_card_number(database: Database) -> None:
    with database.uow() as uow:
        uow.reference.add(
            t.Institution(code="41000000001", name="河南", kind="province-centre", area_code="410000")
        )
        uow.flush()
        uow.reference.add(
            t.Operator(id="admin", name="管理员", role="card-admin", institution_code="41000000001")
        )
        uow.residents.add(zhang())
        uow.flush()
        uow.applications.add(
            t.Application(
                number="SQ41000000000001",
                resident_id="r1",
                card_number="410102199003070019",
                kind="NEW",
                status="ISSUED",
                province="41",
                submitted_by="admin",
                submitted_at=NOW,
                data={},
            )
        )
        uow.flush()
        uow.cards.add(_card("0086000000000001", "REPLACED", 1))
        uow.cards.add(_card("0086000000000002", "ACTIVE", 2))
        uow.commit()
    with database.uow() as uow:
        uow.cards.add(_card("0086000000000003", "ISSUED", 3))
        with pytest.raises(IntegrityError):
            uow.flush()


def test_migrations_match_the_tables(database: Database) -> None:
    """The Alembic revisions build exactly what tables.py declares (no forgotten migration)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with database.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), t.Base.metadata)
    assert diff == []
