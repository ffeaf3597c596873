"""The immunization service on SQLite and PostgreSQL: recording doses (and refusing what cannot
be true, writing nothing), a resident's plan, the due list of an area and coverage by area."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from healthcard.clock import FixedClock
from healthcard.errors import Duplicate, InvalidValue, NotFound
from healthcard.platform.immunization import (
    CoverageRow,
    DoseState,
    Immunizations,
    add_months,
    schedule,
)
from healthcard.storage.db import Database
from healthcard.storage.tables import ImmunizationDose, Institution, Resident

NOW = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)  # 10:00 in Zhengzhou
TODAY = dt.date(2026, 11, 24)
CLINIC = "410102001"
_serial = itertools.count(1)

Seed = Callable[..., str]


def seed_clinic(db: Database) -> None:
    with db.uow() as uow:
        uow.session.add(
            Institution(
                code=CLINIC,
                name="中原区建设路社区卫生服务中心",
                kind="clinic",
                area_code="410102",
                level="township",
            )
        )
        uow.commit()


@pytest.fixture
def db(database: Database) -> Database:
    seed_clinic(database)
    return database


@pytest.fixture
def child(db: Database) -> Seed:
    """Adds a resident; returns the resident id."""

    def add(
        birth: dt.date, area: str | None = "410102", merged_into: str | None = None, name: str = ""
    ) -> str:
        n = next(_serial)
        rid = f"R{n:08d}"
        with db.uow() as uow:
            uow.session.add(
                Resident(
                    resident_id=rid,
                    id_type="01",
                    id_number=f"41010220{n:010d}",
                    name=name or f"儿童{n}",
                    sex=1 + n % 2,
                    birth_date=birth,
                    created_at=NOW,
                    area_code=area,
                    merged_into=merged_into,
                )
            )
            uow.commit()
        return rid

    return add


def give(db: Database, resident_id: str, *doses: tuple[str, int, dt.date]) -> None:
    service = Immunizations(FixedClock(NOW))
    with db.uow() as uow:
        for code, number, on in doses:
            service.record(
                uow,
                resident_id=resident_id,
                vaccine=code,
                dose=number,
                given_on=on,
                institution_code=CLINIC,
                by="nurse-1",
            )
        uow.commit()


def count(db: Database) -> int:
    with db.uow() as uow:
        return uow.session.scalar(select(func.count()).select_from(ImmunizationDose)) or 0


# ---- recording -----------------------------------------------------------------------------------


def test_record_and_list_doses_newest_first(db: Database, child: Seed) -> None:
    birth = dt.date(2026, 8, 1)
    baby = child(birth)
    service = Immunizations(FixedClock(NOW))
    with db.uow() as uow:
        first = service.record(
            uow,
            resident_id=baby,
            vaccine="0201",
            dose=1,
            given_on=birth,
            lot=" 202607A ",
            institution_code=CLINIC,
            by="nurse-1",
        )
        # dose 2 of IPV before dose 1: records arrive out of order, and that is allowed
        service.record(
            uow,
            resident_id=baby,
            vaccine="0303",
            dose=2,
            given_on=dt.date(2026, 11, 1),
            institution_code=CLINIC,
            by="nurse-1",
        )
        uow.commit()
    assert first.vaccine_name == "乙肝疫苗" and first.lot == "202607A"
    assert first.institution_name == "中原区建设路社区卫生服务中心"
    assert first.recorded_at == NOW and first.id > 0
    with db.uow() as uow:
        doses = service.doses(uow, [baby])
        stored = uow.session.scalars(select(ImmunizationDose.recorded_by)).all()
    assert [(d.vaccine, d.dose, d.given_on) for d in doses] == [
        ("0303", 2, dt.date(2026, 11, 1)),
        ("0201", 1, birth),
    ]
    assert doses[1] == first
    assert stored == ["nurse-1", "nurse-1"]


def test_doses_of_a_merged_person_come_from_all_ids(db: Database, child: Seed) -> None:
    birth = dt.date(2026, 3, 3)
    survivor = child(birth)
    duplicate = child(birth, merged_into=survivor)
    other = child(birth)
    give(db, survivor, ("0101", 1, birth))
    give(db, duplicate, ("0201", 1, dt.date(2026, 3, 4)))
    give(db, other, ("0201", 1, birth))
    service = Immunizations(FixedClock(NOW))
    with db.uow() as uow:
        doses = service.doses(uow, [survivor, duplicate])
        assert service.doses(uow, []) == []
        plan = {(s.scheduled.code, s.scheduled.dose): s for s in service.plan_for(uow, survivor)}
    assert [(d.resident_id, d.vaccine) for d in doses] == [(duplicate, "0201"), (survivor, "0101")]
    # the plan of the survivor counts the dose recorded under the duplicate's id
    assert plan[("0201", 1)].state is DoseState.GIVEN
    assert plan[("0201", 1)].given_on == dt.date(2026, 3, 4)


def test_plan_for_a_resident(db: Database, child: Seed) -> None:
    birth = dt.date(2026, 8, 1)
    baby = child(birth)
    give(db, baby, ("0101", 1, birth), ("0201", 1, birth))
    service = Immunizations(FixedClock(NOW))
    with db.uow() as uow:
        now = {(s.scheduled.short, s.scheduled.dose): s.state for s in service.plan_for(uow, baby)}
        then = {
            (s.scheduled.short, s.scheduled.dose): s.state
            for s in service.plan_for(uow, baby, today=dt.date(2026, 8, 15))
        }
        with pytest.raises(NotFound):
            service.plan_for(uow, "R-nobody")
    assert now[("HepB", 1)] is DoseState.GIVEN and now[("HepB", 2)] is DoseState.OVERDUE
    # on an earlier day, doses given later do not count yet
    assert then[("HepB", 1)] is DoseState.GIVEN  # given on the birth day, before 15 August
    assert then[("HepB", 2)] is DoseState.UPCOMING


def test_every_refusal_writes_nothing(db: Database, child: Seed) -> None:
    birth = dt.date(2026, 8, 1)
    baby = child(birth)
    give(db, baby, ("0101", 1, birth))
    before = count(db)
    # 10:00 UTC on 24 November is 18:00 in China: 25 November is still the future there
    service = Immunizations(FixedClock(dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.UTC)))
    good = {
        "resident_id": baby,
        "vaccine": "0201",
        "dose": 1,
        "given_on": birth,
        "institution_code": CLINIC,
        "by": "nurse-1",
    }
    bad: list[tuple[dict[str, object], str]] = [
        ({"vaccine": "9999"}, "vaccine"),
        ({"vaccine": ""}, "vaccine"),
        ({"dose": 0}, "dose"),
        ({"dose": 4}, "dose"),  # HepB has 3 doses in the schedule
        ({"vaccine": "0101", "dose": 2}, "dose"),  # BCG: one
        ({"vaccine": "2801", "dose": 6}, "dose"),  # outside the schedule: at most 5
        ({"given_on": dt.date(2026, 7, 31)}, "given_on"),  # before the birth
        ({"given_on": dt.date(2026, 11, 25)}, "given_on"),  # tomorrow in Asia/Shanghai
        ({"given_on": dt.datetime(2026, 8, 1, 9, 0)}, "given_on"),
        ({"institution_code": "999999999"}, "institution_code"),
        ({"lot": "L" * 31}, "lot"),
        ({"by": ""}, "by"),
    ]
    with db.uow() as uow:
        for change, field in bad:
            with pytest.raises(InvalidValue) as caught:
                service.record(uow, **{**good, **change})  # type: ignore[arg-type]
            assert caught.value.field == field, change
            assert not isinstance(caught.value, Duplicate)
        with pytest.raises(Duplicate) as duplicate:
            service.record(uow, **{**good, "vaccine": "0101"})  # type: ignore[arg-type]
        assert duplicate.value.field == "dose"
        with pytest.raises(NotFound):
            service.record(uow, **{**good, "resident_id": "R-nobody"})  # type: ignore[arg-type]
        uow.commit()
    assert count(db) == before == 1
    # the same input with the good values is accepted: the refusals were about the values;
    # today in China (the 24th), 5 doses of a non-schedule vaccine are fine
    with db.uow() as uow:
        service.record(uow, **{**good, "given_on": dt.date(2026, 11, 24)})  # type: ignore[arg-type]
        service.record(uow, **{**good, "vaccine": "2801", "dose": 5})  # type: ignore[arg-type]
        uow.commit()
    assert count(db) == 3


def test_the_unique_constraint_backs_the_check(
    db: Database, child: Seed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two clinics recording the same dose at once: the loser's IntegrityError becomes Duplicate,
    and the caller's transaction stays usable (the insert ran in a savepoint)."""
    birth = dt.date(2026, 8, 1)
    baby = child(birth)
    give(db, baby, ("0201", 1, birth))
    service = Immunizations(FixedClock(NOW))
    with db.uow() as uow:
        # blind the check, as if the other clinic's row were committed just after it
        monkeypatch.setattr(uow.session, "scalar", lambda *args, **kwargs: None)
        with pytest.raises(Duplicate) as caught:
            service.record(
                uow,
                resident_id=baby,
                vaccine="0201",
                dose=1,
                given_on=birth,
                institution_code=CLINIC,
                by="nurse-2",
            )
        assert caught.value.field == "dose"
        service.record(
            uow,
            resident_id=baby,
            vaccine="0101",
            dose=1,
            given_on=birth,
            institution_code=CLINIC,
            by="nurse-2",
        )
        uow.commit()
    with db.uow() as uow:
        rows = uow.session.execute(
            select(ImmunizationDose.vaccine, ImmunizationDose.recorded_by).order_by(ImmunizationDose.vaccine)
        ).all()
    assert [tuple(r) for r in rows] == [("0101", "nurse-2"), ("0201", "nurse-1")]


# ---- due lists -----------------------------------------------------------------------------------


def test_due_list_of_an_area(db: Database, child: Seed) -> None:
    birth = dt.date(2026, 8, 1)  # 3 months and 23 days old on 24 November
    late = child(birth, name="迟到")  # HepB dose 2 (1 month + 30 days) is overdue
    give(db, late, ("0101", 1, birth), ("0201", 1, birth))
    on_time = child(birth, name="按时")
    give(
        db,
        on_time,
        ("0101", 1, birth),
        ("0201", 1, birth),
        ("0201", 2, dt.date(2026, 9, 1)),
        ("0303", 1, dt.date(2026, 10, 1)),
        ("0402", 1, dt.date(2026, 10, 1)),
    )
    # the on-time child's last dose was recorded under a duplicate since merged into it
    duplicate = child(birth, merged_into=on_time, name="按时(重复)")
    give(db, duplicate, ("0303", 2, dt.date(2026, 11, 2)))
    elsewhere = child(birth, area="410203", name="开封")  # another city of Henan
    too_old = child(dt.date(2019, 11, 24), name="七岁")  # 7 today: past the schedule
    child(dt.date(2026, 11, 20), area=None, name="无地址")

    service = Immunizations(FixedClock(NOW))
    with db.uow() as uow:
        entries = service.due_in_area(uow, "410102")
        city = service.due_in_area(uow, "4101")
        province = service.due_in_area(uow, "41")
        overdue = service.due_in_area(uow, "410102", states=[DoseState.OVERDUE])
        first_two = service.due_in_area(uow, "410102", limit=2)
        service.page = 1  # one child per query: the keyset paging gives the same list
        paged = service.due_in_area(uow, "410102")
        future = service.due_in_area(uow, "410102", today=dt.date(2026, 12, 15))

    got = {
        (e.resident_id, e.status.scheduled.short, e.status.scheduled.dose, e.status.state) for e in entries
    }
    assert got == {
        (late, "HepB", 2, DoseState.OVERDUE),
        (late, "IPV", 1, DoseState.OVERDUE),
        (late, "DTaP", 1, DoseState.OVERDUE),
        (late, "IPV", 2, DoseState.DUE),
    }
    hepb2 = next(e for e in entries if e.status.scheduled.short == "HepB")
    assert hepb2.name == "迟到" and hepb2.birth_date == birth and hepb2.area_code == "410102"
    assert hepb2.status.overdue_from == add_months(birth, 1) + dt.timedelta(days=30)
    assert {e.resident_id for e in city} == {late}
    assert {e.resident_id for e in province} == {late, elsewhere}
    assert too_old not in {e.resident_id for e in province}
    assert duplicate not in {e.resident_id for e in province}
    assert {e.status.scheduled.short for e in overdue} == {"HepB", "IPV", "DTaP"}
    assert all(e.status.state is DoseState.OVERDUE for e in overdue)
    assert first_two == entries[:2] and len(first_two) == 2
    assert paged == entries
    # three weeks on: the 4-month doses are due, and they are all the on-time child has
    later = {(e.resident_id, e.status.scheduled.short) for e in future}
    assert (late, "bOPV") in later
    assert {short for rid, short in later if rid == on_time} == {"bOPV", "DTaP"}


def test_due_list_refuses_bad_parameters(db: Database) -> None:
    service = Immunizations(FixedClock(NOW))
    with db.uow() as uow:
        for area in ("4", "41010", "4101020", "41A1", ""):
            with pytest.raises(InvalidValue) as caught:
                service.due_in_area(uow, area)
            assert caught.value.field == "area_code"
        with pytest.raises(InvalidValue) as caught:
            service.due_in_area(uow, "41", limit=0)
        assert caught.value.field == "limit"
        with pytest.raises(InvalidValue) as caught:
            service.due_in_area(uow, "41", states=["late"])  # type: ignore[list-item]
        assert caught.value.field == "states"
        with pytest.raises(InvalidValue) as caught:
            service.coverage(uow, "410")
        assert caught.value.field == "area_code"


# ---- coverage ------------------------------------------------------------------------------------


def test_coverage_of_a_small_area_computed_by_hand(db: Database, child: Seed) -> None:
    """On 24 November 2026 a dose counts for a child whose age is at least its months plus 30
    days, i.e. born by (25 October 2026 minus the months):

    ====  ==========  ==================================================================
    P1    2026-01-10  eligible up to 9 months; BCG, HepB 1, HepB 2 (under its merged
                      duplicate P6), HepB 3, MMR 1
    P2    2026-05-01  eligible up to 4 months; BCG, HepB 1
    P3    2026-11-01  eligible for nothing yet (the birth doses are due, not overdue); HepB 1
    P4    2019-12-01  6 years 11 months, eligible for everything; BCG, HepB 1-3, DTaP 5
    P5    2019-11-01  7 years old: not a child of the schedule any more; BCG
    P6    2026-01-10  merged into P1: not counted as a child
    P7    2026-01-10  another district; BCG
    ====  ==========  ==================================================================
    """
    area = "410105"
    p1 = child(dt.date(2026, 1, 10), area=area)
    p2 = child(dt.date(2026, 5, 1), area=area)
    p3 = child(dt.date(2026, 11, 1), area=area)
    p4 = child(dt.date(2019, 12, 1), area=area)
    p5 = child(dt.date(2019, 11, 1), area=area)
    p6 = child(dt.date(2026, 1, 10), area=area, merged_into=p1)
    p7 = child(dt.date(2026, 1, 10), area="410106")
    give(
        db,
        p1,
        ("0101", 1, dt.date(2026, 1, 10)),
        ("0201", 1, dt.date(2026, 1, 10)),
        ("0201", 3, dt.date(2026, 7, 10)),
        ("1201", 1, dt.date(2026, 9, 10)),
    )
    give(db, p6, ("0201", 2, dt.date(2026, 2, 10)))
    give(db, p2, ("0101", 1, dt.date(2026, 5, 1)), ("0201", 1, dt.date(2026, 5, 1)))
    give(db, p3, ("0201", 1, dt.date(2026, 11, 1)))
    give(
        db,
        p4,
        ("0101", 1, dt.date(2019, 12, 1)),
        ("0201", 1, dt.date(2019, 12, 1)),
        ("0201", 2, dt.date(2020, 1, 1)),
        ("0201", 3, dt.date(2020, 6, 1)),
        ("0402", 5, dt.date(2025, 12, 5)),
    )
    give(db, p5, ("0101", 1, dt.date(2019, 11, 1)))
    give(db, p7, ("0101", 1, dt.date(2026, 1, 10)))

    service = Immunizations(FixedClock(NOW))
    with db.uow() as uow:
        rows = service.coverage(uow, area)
        empty = service.coverage(uow, "420000")
        province = service.coverage(uow, "41")

    assert [(r.vaccine, r.dose) for r in rows] == [(d.code, d.dose) for d in schedule()]
    got = {(r.vaccine, r.dose): (r.eligible, r.given) for r in rows}
    expected = {
        ("0101", 1): (3, 3),  # P1, P2, P4
        ("0201", 1): (3, 3),  # P3's dose does not count: P3 is not eligible yet
        ("0201", 2): (3, 2),  # P1 (through P6) and P4; P2 missed it
        ("0201", 3): (2, 2),  # P1, P4
        ("0303", 1): (3, 0),
        ("0303", 2): (3, 0),
        ("0402", 1): (3, 0),
        ("0311", 1): (3, 0),
        ("0402", 2): (3, 0),
        ("0402", 3): (2, 0),
        ("1601", 1): (2, 0),
        ("1201", 1): (2, 1),  # P1 has it, P4 not
        ("1801", 1): (2, 0),
        ("1601", 2): (2, 0),
        ("0402", 4): (1, 0),
        ("1201", 2): (1, 0),
        ("1901", 1): (1, 0),
        ("1801", 2): (1, 0),
        ("1701", 1): (1, 0),
        ("0311", 2): (1, 0),
        ("0402", 5): (1, 1),
        ("1701", 2): (1, 0),
    }
    assert got == expected
    by_key = {(r.vaccine, r.dose): r for r in rows}
    assert by_key[("0201", 2)] == CoverageRow("0201", "乙肝疫苗", 2, 3, 2, 2 / 3)
    assert by_key[("1201", 1)].rate == 0.5 and by_key[("0101", 1)].rate == 1.0
    assert by_key[("0303", 1)].rate == 0.0
    assert all(r.eligible == 0 and r.given == 0 and r.rate == 0.0 for r in empty)
    assert len(empty) == len(schedule())
    # the province adds P7 (410106) to the children; it has BCG
    assert {(r.vaccine, r.dose): (r.eligible, r.given) for r in province}[("0101", 1)] == (4, 4)
    assert {(r.vaccine, r.dose): (r.eligible, r.given) for r in province}[("0201", 1)] == (4, 3)
