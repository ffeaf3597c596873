"""The master patient index on SQLite and PostgreSQL: identifiers and their resolution (the
health card, a hospital's old visit card), the review queue, merge and un-merge."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, func, select

from healthcard.clock import FixedClock
from healthcard.errors import Duplicate, InvalidValue, NotFound, TransitionRefused
from healthcard.platform.mpi import AUTO_LINK, CandidateStatus, IdentifierView, IdSystem, Mpi
from healthcard.storage import tables as t
from healthcard.storage.db import Database
from healthcard.storage.uow import UnitOfWork

NOW = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)
HOSPITAL = "410102001"  # 郑州市中原区人民医院
CLINIC = "410105002"  # 金水区 a township health centre
ZHANG_ID = "410102198003120018"  # 张三, born 1980-03-12, male
LI_ID = "410105198506010020"  # 李梅, born 1985-06-01, female


@pytest.fixture
def mpi() -> Mpi:
    return Mpi(FixedClock(NOW))


@pytest.fixture
def db(database: Database) -> Database:
    with database.uow() as uow:
        uow.session.add_all(
            [
                t.Institution(
                    code=HOSPITAL, name="郑州市中原区人民医院", kind="hospital", area_code="410102"
                ),
                t.Institution(code=CLINIC, name="金水区卫生院", kind="clinic", area_code="410105"),
            ]
        )
        uow.commit()
    return database


def add_resident(
    uow: UnitOfWork,
    name: str,
    *,
    id_number: str | None = None,
    id_type: str = "01",
    sex: int = 1,
    born: dt.date = dt.date(1980, 3, 12),
) -> str:
    """A resident as the card centre makes one (32 hex characters of id)."""
    resident_id = secrets.token_hex(16)
    uow.session.add(
        t.Resident(
            resident_id=resident_id,
            id_type=id_type,
            id_number=id_number or f"T-{secrets.token_hex(6).upper()}",
            name=name,
            sex=sex,
            birth_date=born,
            created_at=NOW,
        )
    )
    uow.session.flush()
    return resident_id


def add_live_card(uow: UnitOfWork, resident_id: str, card_number: str) -> None:
    """A card as the card centre leaves it after issue (its application and operator too)."""
    if uow.session.get(t.Operator, "admin-41") is None:
        uow.session.add(
            t.Institution(
                code="41000000001", name="河南省卡管中心", kind="province-centre", area_code="410000"
            )
        )
        uow.session.flush()
        uow.session.add(
            t.Operator(id="admin-41", name="卡管员", role="card-admin", institution_code="41000000001")
        )
        uow.session.flush()
    number = f"SQ41{secrets.randbelow(10**12):012d}"
    uow.session.add(
        t.Application(
            number=number,
            resident_id=resident_id,
            card_number=card_number,
            kind="NEW",
            status="DONE",
            province="41",
            submitted_by="admin-41",
            submitted_at=NOW,
            data={},
        )
    )
    uow.session.flush()
    uow.session.add(
        t.Card(
            resident_id=resident_id,
            card_number=card_number,
            chip_serial=secrets.token_hex(8).upper(),
            issue_serial=f"{secrets.randbelow(10**10):010d}",
            issuer_code="41000000001",
            province="41",
            city_code="410100",
            key_version=1,
            algorithm="SM4",
            profile="32K",
            status="ACTIVE",
            application_number=number,
            issued_by="admin-41",
            issue_date=NOW.date(),
            expiry_date=NOW.date() + dt.timedelta(days=3650),
            created_at=NOW,
            status_at=NOW,
        )
    )
    uow.session.flush()


def count(db: Database, table: type[t.Base]) -> int:
    with db.uow() as uow:
        return int(uow.session.scalar(select(func.count()).select_from(table)) or 0)


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """The SQL statements run inside the block (a transaction's BEGIN not counted)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.startswith("BEGIN"):
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


# --- identifiers ------------------------------------------------------------------------------------


def test_identifiers_resolve_and_a_second_holder_is_refused(db: Database, mpi: Mpi) -> None:
    with db.uow() as uow:
        zhang = add_resident(uow, "张三", id_number=ZHANG_ID)
        li = add_resident(uow, "李梅", id_number=LI_ID, sex=2, born=dt.date(1985, 6, 1))
        nobody = add_resident(uow, "王五", id_type="99", born=dt.date(1980, 3, 12))
        view = mpi.add_identifier(uow, zhang, "ncms", " 4101020001 ")
        assert view == IdentifierView("ncms", "4101020001", "", True)
        assert mpi.add_identifier(uow, zhang, IdSystem.NCMS, "4101020001") == view  # idempotent
        mpi.add_identifier(uow, zhang, "archive", "41010200100200001")
        uow.commit()

    with db.uow() as uow:
        assert mpi.resolve(uow, "ncms", "4101020001") == zhang
        assert mpi.resolve(uow, "archive", "41010200100200001") == zhang
        # the ID document of the resident row resolves without an identifier row, old numbers too
        assert mpi.resolve(uow, "citizen-id", ZHANG_ID) == zhang
        assert mpi.resolve(uow, "citizen-id", "410102800312001") == zhang
        assert mpi.resolve(uow, "citizen-id", LI_ID) == li
        with pytest.raises(NotFound) as missing:
            mpi.resolve(uow, "ncms", "999")
        assert missing.value.what == "identifier"
        person = mpi.person(uow, zhang)
        assert (person.name, person.id_number, person.merged_into) == ("张三", ZHANG_ID, None)
        assert {(i.system, i.value) for i in person.identifiers} == {
            ("archive", "41010200100200001"),
            ("citizen-id", ZHANG_ID),
            ("ncms", "4101020001"),
        }

    before = count(db, t.ResidentIdentifier)
    with db.uow() as uow:
        with pytest.raises(Duplicate) as taken:
            mpi.add_identifier(uow, li, "ncms", "4101020001")
        assert taken.value.field == "value"
        # 王五 has no citizen ID: 张三's number, held by the 张三 row itself, is still taken
        with pytest.raises(Duplicate):
            mpi.add_identifier(uow, nobody, "citizen-id", ZHANG_ID)
        # a citizen ID number carries its birth date: 李梅's is not 王五's
        with pytest.raises(InvalidValue, match="birth date"):
            mpi.add_identifier(uow, nobody, "citizen-id", LI_ID)
        with pytest.raises(InvalidValue) as bad:
            mpi.add_identifier(uow, li, "archive", "123")
        assert bad.value.field == "value"
        with pytest.raises(NotFound):
            mpi.add_identifier(uow, "0" * 32, "ncms", "77")
        uow.commit()
    assert count(db, t.ResidentIdentifier) == before


def test_a_hospitals_old_visit_card_resolves_to_the_resident(db: Database, mpi: Mpi) -> None:
    """一院一卡 ends: the hospital's legacy card keeps working, and means the resident."""
    with db.uow() as uow:
        zhang = add_resident(uow, "张三", id_number=ZHANG_ID)
        li = add_resident(uow, "李梅", id_number=LI_ID, sex=2, born=dt.date(1985, 6, 1))
        view = mpi.add_identifier(uow, zhang, "visit-card", "mz-0012345", assigner=HOSPITAL)
        assert (view.system, view.value, view.assigner) == ("visit-card", "MZ-0012345", HOSPITAL)
        # the same number at another hospital is another card: no clash
        mpi.add_identifier(uow, li, "visit-card", "MZ-0012345", assigner=CLINIC)
        uow.commit()
    with db.uow() as uow:
        assert mpi.resolve(uow, "visit-card", "MZ-0012345", HOSPITAL) == zhang
        assert mpi.resolve(uow, "visit-card", "mz-0012345", CLINIC) == li
        with pytest.raises(NotFound):
            mpi.resolve(uow, "visit-card", "MZ-0012345", "410000999")
        with pytest.raises(InvalidValue) as unknown:
            mpi.add_identifier(uow, zhang, "visit-card", "1", assigner="410000999")
        assert unknown.value.field == "assigner"
        with pytest.raises(InvalidValue) as none:
            mpi.add_identifier(uow, zhang, "visit-card", "1")
        assert none.value.field == "assigner"


def test_resolve_card_is_one_statement_and_follows_merges(db: Database, mpi: Mpi) -> None:
    with db.uow() as uow:
        zhang = add_resident(uow, "张三", id_number=ZHANG_ID)
        twin = add_resident(uow, "张三", id_type="99")
        add_live_card(uow, zhang, ZHANG_ID)
        # a card number known only as an identifier (a card of another province's centre)
        mpi.add_identifier(uow, twin, "card", "E12345678")
        uow.commit()
    with db.uow() as uow:
        with statements(db) as seen:
            assert mpi.resolve_card(uow, ZHANG_ID) == zhang
        assert len(seen) == 1
        assert mpi.resolve_card(uow, "e12345678") == twin
        assert mpi.resolve(uow, "card", ZHANG_ID) == zhang
        with pytest.raises(NotFound):
            mpi.resolve_card(uow, LI_ID)
        # the live card's number is the resident's: nobody else may take it as an identifier
        with pytest.raises(Duplicate):
            mpi.add_identifier(uow, twin, "card", ZHANG_ID)
        assert any(i.system == "card" and i.value == ZHANG_ID for i in mpi.person(uow, zhang).identifiers)
        mpi.merge(uow, twin, zhang, by="reviewer-1", reason="same man")
        uow.commit()
    with db.uow() as uow:
        with statements(db) as seen:
            assert mpi.resolve_card(uow, ZHANG_ID) == twin
        assert len(seen) == 1


# --- the review queue -------------------------------------------------------------------------------


def test_submit_links_on_an_exact_citizen_id(db: Database, mpi: Mpi) -> None:
    with db.uow() as uow:
        zhang = add_resident(uow, "张三", id_number=ZHANG_ID)
        uow.commit()
    record: dict[str, Any] = dict(
        source=HOSPITAL,
        local_id="MZ-7",
        name="张叁",
        sex=1,
        birth_date=dt.date(1980, 3, 12),
        id_number=ZHANG_ID,
    )
    with db.uow() as uow:
        done = mpi.submit(uow, **record)
        uow.commit()
    assert (done.status, done.resident_id, done.decided_by) == (CandidateStatus.LINKED, zhang, "mpi")
    with db.uow() as uow:
        assert mpi.resolve(uow, "visit-card", "MZ-7", HOSPITAL) == zhang
        again = mpi.submit(uow, **record)  # a re-send: the same candidate
        assert again.id == done.id and again.status == CandidateStatus.LINKED
        with pytest.raises(Duplicate) as other:
            mpi.submit(uow, **{**record, "name": "张四"})
        assert other.value.field == "local_id"
        with pytest.raises(InvalidValue) as bad:
            mpi.submit(uow, **{**record, "local_id": "MZ-8", "id_number": "410102198003120019"})
        assert bad.value.field == "id_number"
        with pytest.raises(InvalidValue) as source:
            mpi.submit(uow, **{**record, "local_id": "MZ-8", "source": "410000999"})
        assert source.value.field == "source"
        with pytest.raises(InvalidValue) as local:
            mpi.submit(uow, **{**record, "local_id": "MZ 8"})
        assert local.value.field == "local_id"
    assert count(db, t.MatchCandidate) == 1


def test_submit_links_one_very_strong_match_with_a_known_area(db: Database, mpi: Mpi) -> None:
    with db.uow() as uow:
        zhang = add_resident(uow, "张三", id_number=ZHANG_ID)
        add_resident(uow, "李四", id_type="99")  # same birthday, another name: scored low
        mpi.ensure_person(uow, resident_id=zhang)
        uow.commit()
    with db.uow() as uow:
        assert mpi.person(uow, zhang).area_code == "410102"
        linked = mpi.submit(
            uow,
            source=HOSPITAL,
            local_id="1001",
            name="章三",
            sex=1,
            birth_date=dt.date(1980, 3, 12),
            area_code="410102",
        )
        # without an area the same record is not unique enough: it waits for a reviewer
        waiting = mpi.submit(
            uow, source=CLINIC, local_id="2002", name="章三", sex=1, birth_date=dt.date(1980, 3, 12)
        )
        uow.commit()
    assert linked.status == CandidateStatus.LINKED and linked.resident_id == zhang
    assert linked.matches[0].resident_id == zhang and linked.matches[0].score >= AUTO_LINK
    assert len(linked.matches) == 1  # 李四 is below the review threshold
    assert waiting.status == CandidateStatus.PENDING and waiting.matches[0].resident_id == zhang
    with db.uow() as uow:
        assert mpi.resolve(uow, "visit-card", "1001", HOSPITAL) == zhang
        with pytest.raises(NotFound):
            mpi.resolve(uow, "visit-card", "2002", CLINIC)


def test_submit_pending_then_link_by_a_reviewer(db: Database, mpi: Mpi) -> None:
    with db.uow() as uow:
        zhang = add_resident(uow, "张三", id_number=ZHANG_ID)
        mpi.ensure_person(uow, resident_id=zhang)
        uow.commit()
    with db.uow() as uow:
        # day and month swapped in the hospital's register: found through the pinyin key
        pending = mpi.submit(
            uow,
            source=HOSPITAL,
            local_id="MZ-3",
            name="张三",
            sex=1,
            birth_date=dt.date(1980, 12, 3),
            area_code="410102",
        )
        uow.commit()
    assert pending.status == CandidateStatus.PENDING and pending.resident_id is None
    assert pending.matches[0].resident_id == zhang
    assert "birth: day and month swapped" in pending.matches[0].reasons
    with db.uow() as uow:
        assert [c.id for c in mpi.queue(uow)] == [pending.id]
        found = mpi.find(uow, name="章三", birth_date=dt.date(1980, 12, 3), sex=1)
        assert [m.resident_id for m in found] == [zhang]
        done = mpi.link(uow, pending.id, zhang, by="reviewer-1")
        uow.commit()
    assert (done.status, done.resident_id, done.decided_by, done.decided_at) == (
        CandidateStatus.LINKED,
        zhang,
        "reviewer-1",
        NOW,
    )
    before = count(db, t.ResidentIdentifier)
    with db.uow() as uow:
        assert mpi.queue(uow) == []
        assert [c.id for c in mpi.queue(uow, "LINKED")] == [pending.id]
        assert mpi.resolve(uow, "visit-card", "MZ-3", HOSPITAL) == zhang
        with pytest.raises(TransitionRefused):
            mpi.link(uow, pending.id, zhang, by="reviewer-2")
        with pytest.raises(TransitionRefused):
            mpi.reject(uow, pending.id, by="reviewer-2", reason="oops")
        with pytest.raises(NotFound):
            mpi.link(uow, 999_999, zhang, by="reviewer-2")
        uow.commit()
    assert count(db, t.ResidentIdentifier) == before


def test_create_and_reject_from_the_queue(db: Database, mpi: Mpi) -> None:
    with db.uow() as uow:
        first = mpi.submit(
            uow, source=HOSPITAL, local_id="A1", name="欧阳娜娜", sex=2, birth_date=dt.date(2000, 6, 15)
        )
        second = mpi.submit(
            uow, source=HOSPITAL, local_id="A2", name="测试", sex=0, birth_date=dt.date(2000, 1, 1)
        )
        uow.commit()
    assert first.status == second.status == CandidateStatus.PENDING and first.matches == ()
    with db.uow() as uow:
        created = mpi.create(uow, first.id, by="reviewer-1")
        rejected = mpi.reject(uow, second.id, by="reviewer-1", reason="a test record")
        uow.commit()
    assert created.status == CandidateStatus.CREATED and created.resident_id is not None
    assert len(created.resident_id) == 32
    assert rejected.status == CandidateStatus.REJECTED and rejected.resident_id is None
    with db.uow() as uow:
        person = mpi.person(uow, created.resident_id)
        assert (person.name, person.sex, person.id_type) == ("欧阳娜娜", 2, "99")
        assert person.id_number.startswith("MPI-") and len(person.id_number) == 18
        assert mpi.resolve(uow, "visit-card", "A1", HOSPITAL) == created.resident_id
        found = mpi.find(uow, name="Ouyang Nana", birth_date=dt.date(2000, 6, 15))
        assert [m.resident_id for m in found] == [created.resident_id]


# --- merge and un-merge -----------------------------------------------------------------------------


def test_merge_then_unmerge(db: Database, mpi: Mpi) -> None:
    with db.uow() as uow:
        zhang = add_resident(uow, "张三", id_number=ZHANG_ID)
        copy = add_resident(uow, "张三", id_type="99")
        mpi.add_identifier(uow, copy, "visit-card", "OLD-1", HOSPITAL)
        uow.commit()
    with db.uow() as uow:
        merged = mpi.merge(uow, zhang, copy, by="reviewer-1", reason="the same man twice")
        uow.commit()
    assert (merged.action, merged.survivor, merged.duplicate, merged.actor) == (
        "MERGE",
        zhang,
        copy,
        "reviewer-1",
    )
    with db.uow() as uow:
        assert mpi.survivor(uow, copy) == zhang
        assert mpi.resolve(uow, "visit-card", "OLD-1", HOSPITAL) == zhang
        assert mpi.linked_ids(uow, copy) == [zhang, copy]
        assert mpi.person(uow, copy).merged_into == zhang
        assert ("visit-card", "OLD-1") in {(i.system, i.value) for i in mpi.person(uow, zhang).identifiers}
        # the duplicate's visit card is already the person's: adding it to the survivor is a no-op
        mpi.add_identifier(uow, zhang, "visit-card", "OLD-1", HOSPITAL)
        uow.commit()
    with db.uow() as uow:
        undone = mpi.unmerge(uow, copy, by="reviewer-2", reason="twins, not one man")
        uow.commit()
    assert (undone.action, undone.survivor, undone.duplicate) == ("UNMERGE", zhang, copy)
    with db.uow() as uow:
        assert mpi.survivor(uow, copy) == copy
        assert mpi.resolve(uow, "visit-card", "OLD-1", HOSPITAL) == copy
        assert mpi.linked_ids(uow, zhang) == [zhang]
        history = mpi.history(uow, copy)
        assert [(h.action, h.actor, h.reason) for h in history] == [
            ("MERGE", "reviewer-1", "the same man twice"),
            ("UNMERGE", "reviewer-2", "twins, not one man"),
        ]
        assert mpi.history(uow, zhang) == history


def test_refused_merges_write_nothing(db: Database, mpi: Mpi) -> None:
    with db.uow() as uow:
        a, b, c, d = (add_resident(uow, "张三", id_type="99") for _ in range(4))
        mpi.merge(uow, a, b, by="reviewer-1", reason="same")
        uow.commit()
    events, links = count(db, t.MergeEvent), _links(db)
    with db.uow() as uow:
        with pytest.raises(InvalidValue):
            mpi.merge(uow, c, c, by="r", reason="itself")
        with pytest.raises(TransitionRefused, match="merge into that one"):
            mpi.merge(uow, b, c, by="r", reason="into a merged resident")
        with pytest.raises(TransitionRefused, match="already merged"):
            mpi.merge(uow, c, b, by="r", reason="merged twice")
        with pytest.raises(TransitionRefused, match="no chains"):
            mpi.merge(uow, c, a, by="r", reason="a survivor with a duplicate")
        with pytest.raises(TransitionRefused, match="not merged"):
            mpi.unmerge(uow, d, by="r", reason="never merged")
        with pytest.raises(NotFound):
            mpi.merge(uow, c, "f" * 32, by="r", reason="nobody")
        with pytest.raises(InvalidValue) as no_reason:
            mpi.merge(uow, c, d, by="r", reason=" ")
        assert no_reason.value.field == "reason"
        uow.commit()
    assert count(db, t.MergeEvent) == events
    assert _links(db) == links


def _links(db: Database) -> dict[str, str | None]:
    with db.uow() as uow:
        rows = uow.session.execute(select(t.Resident.resident_id, t.Resident.merged_into))
        return {resident_id: merged_into for resident_id, merged_into in rows}
