"""Health records on both databases: archive, allergies, encounters, idempotent uploads, hidden
categories, the on-card summary and what a replacement card carries."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import event, func, select

from healthcard.clock import FixedClock
from healthcard.errors import Duplicate, InvalidValue, NotFound, TransitionRefused
from healthcard.issuance.application import card_contents, parse_application
from healthcard.platform.records import (
    DiagnosisIn,
    EncounterIn,
    EncounterKind,
    EncounterStatus,
    FeeLine,
    ObservationIn,
    PrescriptionIn,
    ProcedureIn,
    Records,
    card_record,
)
from healthcard.storage import tables as t
from healthcard.storage.db import Database
from healthcard.terminal.sdk import decode_visit, encode_visit

from .cardcentre_fixtures import application

NOW = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)  # 10:00 in Zhengzhou
HOSPITAL = "410102001"
CLINIC = "410102002"
ZHANG, LI = "R-zhang", "R-li"
_ids = itertools.count(1)


@pytest.fixture
def db(database: Database) -> Database:
    with database.uow() as uow:
        uow.session.add_all(
            [
                t.Institution(
                    code=HOSPITAL,
                    name="郑州市中原区人民医院",
                    kind="hospital",
                    area_code="410102",
                    level="county",
                ),
                t.Institution(
                    code=CLINIC,
                    name="中原区建设路社区卫生服务中心",
                    kind="clinic",
                    area_code="410102",
                    level="township",
                ),
            ]
        )
        for rid, name, number in ((ZHANG, "张三", "410102199003070019"), (LI, "李四", "410102198805120027")):
            uow.session.add(
                t.Resident(
                    resident_id=rid,
                    id_type="01",
                    id_number=number,
                    name=name,
                    sex=1 if rid == ZHANG else 2,
                    birth_date=dt.date(1990, 3, 7),
                    created_at=NOW,
                    area_code="410102",
                )
            )
        uow.commit()
    return database


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def records(clock: FixedClock) -> Records:
    return Records(clock)


TABLES = (t.HealthArchive, t.Allergy, t.Encounter, t.Diagnosis, t.Observation, t.Prescription, t.Procedure)


def counts(db: Database) -> dict[str, int]:
    with db.uow() as uow:
        return {
            table.__tablename__: uow.session.scalar(select(func.count()).select_from(table)) or 0
            for table in TABLES
        }


def visit(**changes: Any) -> EncounterIn:
    """An outpatient visit of 张三 at the hospital this morning, with one of everything."""
    data = EncounterIn(
        institution_code=HOSPITAL,
        kind=EncounterKind.OUTPATIENT,
        department="内科",
        clinician="王医生",
        started_at=NOW - dt.timedelta(hours=1),
        diagnoses=(DiagnosisIn("J06.900", primary=True),),
        observations=(ObservationIn("lab", "WBC", "白细胞计数", "12.3", "10^9/L", 3.5, 9.5),),
        prescriptions=(PrescriptionIn("阿莫西林胶囊", "0.5", "g", "01", "每日3次", 5),),
        procedures=(ProcedureIn("93.39", "物理治疗"),),
        fees=(FeeLine("西药费", "1", 2350),),
        payment_method="03",
    )
    return replace(data, **changes)


# --- the archive and allergies ---------------------------------------------------------------------
def test_archive_upsert_keeps_what_is_not_given(db: Database, records: Records, clock: FixedClock) -> None:
    with db.uow() as uow:
        assert records.archive(uow, ZHANG) is None
        first = records.put_archive(
            uow,
            ZHANG,
            by="doctor-wang",
            abo=1,
            rh="1",
            alerts={"asthma": True, "diabetes": False},
            other_alert="高血压",
            history=[{"condition": "阑尾切除术", "year": 2010}],
            archive_number="41010200000000001",
        )
        uow.commit()
    assert first.alerts["asthma"] is True and first.alerts["diabetes"] is False
    assert first.alerts["pacemaker"] is None and len(first.alerts) == 12
    clock.advance(dt.timedelta(days=1))
    with db.uow() as uow:
        second = records.put_archive(
            uow, ZHANG, by="doctor-li", abo=3, alerts={"pacemaker": True}, family_history=["父亲: 高血压"]
        )
        uow.commit()
    with db.uow() as uow:
        stored = records.archive(uow, ZHANG)
    assert stored == second
    assert (stored.abo, stored.rh, stored.other_alert) == (3, "1", "高血压")
    assert stored.alerts["asthma"] is True and stored.alerts["pacemaker"] is True
    assert stored.history == [{"condition": "阑尾切除术", "year": 2010}]
    assert stored.family_history == ["父亲: 高血压"]
    assert stored.archive_number == "41010200000000001"
    assert stored.updated_at == NOW + dt.timedelta(days=1)
    assert counts(db)["health_archives"] == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"abo": 6}, "abo"),
        ({"abo": True}, "abo"),
        ({"rh": "4"}, "rh"),
        ({"alerts": {"hypertension": True}}, "alerts.hypertension"),
        ({"alerts": {"asthma": "yes"}}, "alerts.asthma"),
        ({"other_alert": "高血压" * 7}, "other_alert"),  # 42 bytes of GBK, DF02/EF05 holds 40
        ({"other_alert": "😀"}, "other_alert"),
        ({"psychiatric": "no"}, "psychiatric"),
        ({"history": "阑尾炎"}, "history"),
        ({"family_history": [object()]}, "family_history"),
        ({"archive_number": "4101020000000001"}, "archive_number"),  # 16 digits
        ({"archive_number": "99999900000000001"}, "archive_number"),  # no such county
    ],
)
def test_archive_refusals_write_nothing(
    db: Database, records: Records, changes: dict[str, Any], field: str
) -> None:
    with db.uow() as uow, pytest.raises(InvalidValue) as caught:
        records.put_archive(uow, ZHANG, by="doctor-wang", **{"abo": 1, **changes})
    assert caught.value.field == field
    assert counts(db)["health_archives"] == 0


def test_an_archive_number_belongs_to_one_resident(db: Database, records: Records) -> None:
    with db.uow() as uow:
        records.put_archive(uow, ZHANG, by="x", archive_number="41010200000000001")
        uow.commit()
    with db.uow() as uow, pytest.raises(Duplicate):
        records.put_archive(uow, LI, by="x", abo=2, archive_number="41010200000000001")
    with db.uow() as uow, pytest.raises(NotFound):
        records.put_archive(uow, "R-nobody", by="x", abo=2)
    assert counts(db)["health_archives"] == 1


def test_allergies(db: Database, records: Records, clock: FixedClock) -> None:
    with db.uow() as uow:
        penicillin = records.add_allergy(
            uow, ZHANG, allergen="青霉素", reaction="皮疹", severity="severe", by="w"
        )
        clock.advance(dt.timedelta(minutes=1))
        records.add_allergy(uow, ZHANG, allergen="磺胺类药物", reaction="荨麻疹", by="w")
        uow.commit()
    with db.uow() as uow:
        with pytest.raises(Duplicate) as duplicate:
            records.add_allergy(uow, ZHANG, allergen="青霉素", reaction="呼吸困难", by="w")
        assert duplicate.value.field == "allergen"
        with pytest.raises(InvalidValue) as caught:
            records.add_allergy(
                uow, ZHANG, allergen="对乙酰氨基酚缓释片剂型", reaction="", by="w"
            )  # 22 bytes
        assert caught.value.field == "allergen"
        with pytest.raises(InvalidValue) as caught:
            records.add_allergy(uow, ZHANG, allergen="花粉", reaction="", severity="deadly", by="w")
        assert caught.value.field == "severity"
        found = records.allergies(uow, [ZHANG, LI])
    assert [a.allergen for a in found] == ["磺胺类药物", "青霉素"]  # newest first
    assert found[1] == penicillin and penicillin.severity == "severe"
    assert counts(db)["allergies"] == 2


# --- encounters ------------------------------------------------------------------------------------
def test_open_add_close(db: Database, records: Records, clock: FixedClock) -> None:
    with db.uow() as uow:
        opened = records.open_encounter(uow, ZHANG, visit(fees=(), payment_method=None))
        second = records.open_encounter(uow, LI, visit(diagnoses=()))
        uow.commit()
    assert opened.status == EncounterStatus.OPEN and opened.ended_at is None
    assert (opened.number, second.number) == ("MZ000000000001", "MZ000000000002")  # institution-unique
    assert opened.institution_name == "郑州市中原区人民医院"
    assert [(d.code, d.name, d.primary) for d in opened.diagnoses] == [("J06.9", "急性上呼吸道感染", True)]
    assert opened.diagnoses[0].diagnosed_on == dt.date(2026, 11, 24)
    (wbc,) = opened.observations
    assert (wbc.value_num, wbc.flag, wbc.observed_at) == (12.3, "H", NOW - dt.timedelta(hours=1))

    clock.advance(dt.timedelta(minutes=10))
    with db.uow() as uow:
        added = records.add_items(
            uow,
            ZHANG,
            opened.id,
            diagnoses=[DiagnosisIn("R50.9", name="发热")],
            observations=[
                ObservationIn("lab", "HGB", "血红蛋白", "95", "g/L", low=115, high=150),
                ObservationIn("exam", "CXR", "胸部X线", "双肺纹理增粗"),
            ],
        )
        uow.commit()
    assert [d.code for d in added.diagnoses] == ["J06.9", "R50.9"]
    assert [(o.code, o.flag) for o in added.observations] == [("WBC", "H"), ("HGB", "L"), ("CXR", None)]
    assert added.observations[1].observed_at == NOW + dt.timedelta(minutes=10)

    with db.uow() as uow:
        closed = records.close_encounter(
            uow,
            ZHANG,
            opened.id,
            fees=[FeeLine("西药费", "1", 2350), FeeLine("化验费", "5", 800)],
            payment_method="03",
        )
        uow.commit()
    assert closed.status == EncounterStatus.CLOSED
    assert closed.ended_at == NOW + dt.timedelta(minutes=10)
    assert [f.amount_fen for f in closed.fees] == [2350, 800] and closed.payment_method == "03"
    assert closed.category == "general"

    with db.uow() as uow:
        with pytest.raises(TransitionRefused):
            records.add_items(uow, ZHANG, opened.id, diagnoses=[DiagnosisIn("I10")])
        with pytest.raises(TransitionRefused):
            records.close_encounter(uow, ZHANG, opened.id)
        with pytest.raises(NotFound):  # 李四's visit is not 张三's
            records.add_items(uow, ZHANG, second.id, diagnoses=[DiagnosisIn("I10")])
        with pytest.raises(NotFound):
            records.close_encounter(uow, ZHANG, second.id)
        with pytest.raises(NotFound):
            records.encounter(uow, [ZHANG], second.id)
        assert records.encounter(uow, [LI, ZHANG], second.id).resident_id == LI
    assert counts(db)["diagnoses"] == 2


def test_a_given_number_is_kept_and_numbers_are_per_institution_and_kind(
    db: Database, records: Records
) -> None:
    with db.uow() as uow:
        given = records.open_encounter(uow, ZHANG, visit(number="20261124-0007"))
        clinic = records.open_encounter(uow, ZHANG, visit(institution_code=CLINIC))
        stay = records.open_encounter(
            uow, ZHANG, visit(kind=EncounterKind.INPATIENT, department="心内科病房")
        )
        uow.commit()
    assert (given.number, clinic.number, stay.number) == ("20261124-0007", "MZ000000000001", "ZY000000000001")


def test_closing_computes_the_most_sensitive_category(db: Database, records: Records) -> None:
    with db.uow() as uow:
        opened = records.open_encounter(uow, ZHANG, visit())
        records.add_items(uow, ZHANG, opened.id, diagnoses=[DiagnosisIn("F32.9")])
        closed = records.close_encounter(uow, ZHANG, opened.id)
        uow.commit()
    assert closed.category == "psychiatric"
    assert [d.category for d in closed.diagnoses] == ["general", "psychiatric"]
    # the other items of a psychiatric visit are psychiatric too
    categories = {o.category for o in closed.observations} | {p.category for p in closed.prescriptions}
    assert categories | {s.category for s in closed.procedures} == {"psychiatric"}


def test_record_encounter_is_idempotent(db: Database, records: Records, clock: FixedClock) -> None:
    upload = visit(upload_key="T01-000123", card_slot=2)
    with db.uow() as uow:
        first, created = records.record_encounter(uow, ZHANG, upload)
        uow.commit()
    assert created and first.status == EncounterStatus.CLOSED
    assert first.ended_at == upload.started_at and first.card_slot == 2
    clock.advance(dt.timedelta(hours=3))  # the answer was lost; the terminal retries later
    with db.uow() as uow:
        again, created = records.record_encounter(uow, ZHANG, upload)
        uow.commit()
    assert not created and again == first
    with db.uow() as uow:
        with pytest.raises(Duplicate) as duplicate:
            records.record_encounter(uow, ZHANG, replace(upload, diagnoses=(DiagnosisIn("J18.9"),)))
        assert duplicate.value.field == "upload_key"
        with pytest.raises(Duplicate):
            records.record_encounter(uow, LI, upload)
        with pytest.raises(Duplicate):  # an open visit cannot take a key already used either
            records.open_encounter(uow, ZHANG, upload)
        with pytest.raises(InvalidValue) as caught:
            records.record_encounter(uow, ZHANG, replace(upload, upload_key=None))
        assert caught.value.field == "upload_key"
        # the same key at another institution is another upload
        other, created = records.record_encounter(uow, ZHANG, replace(upload, institution_code=CLINIC))
        assert created and other.id != first.id
    assert counts(db)["encounters"] == 1 and counts(db)["diagnoses"] == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"diagnoses": (DiagnosisIn("J06.9"), DiagnosisIn("Q99.99.9"))}, "diagnoses[1].code"),
        ({"diagnoses": (DiagnosisIn("XX"),)}, "diagnoses[0].code"),
        ({"institution_code": "999999999"}, "institution_code"),
        ({"kind": "home-visit"}, "kind"),
        ({"started_at": NOW + dt.timedelta(minutes=20)}, "started_at"),  # past CLOCK_SKEW (15 min)
        ({"started_at": dt.datetime(2026, 11, 24, 9, 0)}, "started_at"),  # no time zone
        ({"ended_at": NOW - dt.timedelta(hours=2)}, "ended_at"),  # before it started
        ({"ended_at": NOW + dt.timedelta(hours=2)}, "ended_at"),
        ({"department": " "}, "department"),
        ({"payment_method": "3"}, "payment_method"),
        ({"carrier": "pigeon"}, "carrier"),
        ({"card_slot": 6}, "card_slot"),
        ({"number": "门诊" * 10}, "number"),
        ({"fees": (FeeLine("西药费", "1", -1),)}, "fees[0].amount_fen"),
        ({"fees": (FeeLine("西药费", "1", 100_000_000),)}, "fees[0].amount_fen"),  # ED holds 8 digits
        ({"fees": (FeeLine("西药费", "A", 1),)}, "fees[0].code"),
        (
            {"prescriptions": (PrescriptionIn("阿莫西林", "0.5", "g", "01", "tid", 0),)},
            "prescriptions[0].days",
        ),
        (
            {"prescriptions": (PrescriptionIn("阿莫西林", "0.5", "g", "1", "tid", 3),)},
            "prescriptions[0].route_code",
        ),
        ({"prescriptions": (PrescriptionIn("阿莫西林", "", "g", "01", "tid", 3),)}, "prescriptions[0].dose"),
        ({"observations": (ObservationIn("xray", "C", "胸片", "正常"),)}, "observations[0].kind"),
        (
            {"observations": (ObservationIn("lab", "G", "血糖", "5.1", low=6.1, high=3.9),)},
            "observations[0].high",
        ),
        (
            {
                "observations": (
                    ObservationIn("lab", "G", "血糖", "5.1", observed_at=NOW + dt.timedelta(days=1)),
                )
            },
            "observations[0].observed_at",
        ),
        (
            {"diagnoses": (DiagnosisIn("I10", diagnosed_on=dt.date(2026, 11, 25)),)},
            "diagnoses[0].diagnosed_on",
        ),
        (
            {"diagnoses": (DiagnosisIn("I10", primary=True), DiagnosisIn("E11.9", primary=True))},
            "diagnoses[1].primary",
        ),
        (
            {"procedures": (ProcedureIn("93.39", "物理治疗", dt.date(2026, 12, 1)),)},
            "procedures[0].performed_on",
        ),
    ],
)
def test_refused_encounters_write_nothing(
    db: Database, records: Records, changes: dict[str, Any], field: str
) -> None:
    before = counts(db)
    for call in (records.open_encounter, lambda uow, rid, data: records.record_encounter(uow, rid, data)):
        with db.uow() as uow:
            with pytest.raises(InvalidValue) as caught:
                call(uow, ZHANG, visit(upload_key="T01-9", **changes))
            uow.commit()  # even a caller that commits after the refusal stores nothing
        assert caught.value.field == field
    assert counts(db) == before


def test_refused_items_and_closing_write_nothing(db: Database, records: Records) -> None:
    with db.uow() as uow:
        opened = records.open_encounter(uow, ZHANG, visit())
        uow.commit()
    before = counts(db)
    with db.uow() as uow:
        with pytest.raises(InvalidValue) as caught:
            records.add_items(uow, ZHANG, opened.id, diagnoses=[DiagnosisIn("I10"), DiagnosisIn("ZZZ")])
        assert caught.value.field == "diagnoses[1].code"
        with pytest.raises(InvalidValue) as caught:
            records.close_encounter(uow, ZHANG, opened.id, fees=[FeeLine("西药费", "1", -5)])
        assert caught.value.field == "fees[0].amount_fen"
        with pytest.raises(InvalidValue) as caught:
            records.close_encounter(uow, ZHANG, opened.id, ended_at=NOW - dt.timedelta(days=1))
        assert caught.value.field == "ended_at"
        uow.commit()
    assert counts(db) == before
    with db.uow() as uow:
        assert records.encounter(uow, [ZHANG], opened.id).status == EncounterStatus.OPEN


# --- hidden categories -----------------------------------------------------------------------------
def test_hidden_categories_are_left_out_by_the_query(db: Database, records: Records) -> None:
    with db.uow() as uow:
        cold, _ = records.record_encounter(
            uow, ZHANG, visit(upload_key="k1", started_at=NOW - dt.timedelta(days=3))
        )
        depression, _ = records.record_encounter(
            uow,
            ZHANG,
            visit(upload_key="k2", started_at=NOW - dt.timedelta(days=2), diagnoses=(DiagnosisIn("F32.9"),)),
        )
        both, _ = records.record_encounter(
            uow,
            ZHANG,
            visit(
                upload_key="k3",
                started_at=NOW - dt.timedelta(days=1),
                diagnoses=(DiagnosisIn("F32.9"), DiagnosisIn("Z21")),
            ),
        )
        uow.commit()
    assert (depression.category, both.category) == ("psychiatric", "hiv")
    with db.uow() as uow:
        assert [e.id for e in records.encounters(uow, [ZHANG])] == [both.id, depression.id, cold.id]
        # a psychiatric diagnosis under a more sensitive one is hidden all the same
        assert [e.id for e in records.encounters(uow, [ZHANG], hidden=frozenset({"psychiatric"}))] == [
            cold.id
        ]
        assert [e.id for e in records.encounters(uow, [ZHANG], hidden=frozenset({"hiv"}))] == [
            depression.id,
            cold.id,
        ]
        assert [e.id for e in records.encounters(uow, [ZHANG], hidden=frozenset({"reproductive"}))] == [
            both.id,
            depression.id,
            cold.id,
        ]
        assert [e.id for e in records.encounters(uow, [ZHANG], limit=1)] == [both.id]
        assert records.encounters(uow, [ZHANG], kind="inpatient") == []
        assert records.encounters(uow, [LI]) == []
        summary = records.summary(uow, [ZHANG], hidden=frozenset({"psychiatric"}))
    assert [e.id for e in summary.recent] == [cold.id]


# --- the summary and the replacement card ----------------------------------------------------------
@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def seed_history(db: Database, records: Records, clock: FixedClock) -> list[int]:
    """张三: an archive, three allergies, twelve doses, five visits (the newest an inpatient stay,
    one still open), one visit under a merged duplicate id."""
    with db.uow() as uow:
        uow.session.add(
            t.Resident(
                resident_id="R-zhang-old",
                id_type="01",
                id_number="410102199003070035",
                name="张三",
                sex=1,
                birth_date=dt.date(1990, 3, 7),
                created_at=NOW,
                merged_into=ZHANG,
            )
        )
        records.put_archive(
            uow,
            ZHANG,
            by="w",
            abo=1,
            rh="1",
            alerts={"asthma": True, "diabetes": True, "glaucoma": False},
            other_alert="高血压",
            psychiatric=True,
            archive_number="41010200000000001",
        )
        for allergen in ("青霉素", "磺胺类药物", "头孢类", "花粉"):
            clock.advance(dt.timedelta(minutes=1))
            records.add_allergy(uow, ZHANG, allergen=allergen, reaction="皮疹", by="w")
        for n, (vaccine, dose) in enumerate(
            [("0201", d) for d in (1, 2, 3)] + [("0402", d) for d in range(1, 6)]
        ):
            uow.session.add(
                t.ImmunizationDose(
                    resident_id=ZHANG,
                    vaccine=vaccine,
                    dose=dose,
                    given_on=dt.date(1990, 4, 1) + dt.timedelta(days=40 * n),
                    institution_code=CLINIC,
                    recorded_at=NOW,
                    recorded_by="w",
                )
            )
        for n, vaccine in enumerate(("1201", "1801", "1901", "9999")):
            uow.session.add(
                t.ImmunizationDose(
                    resident_id="R-zhang-old",
                    vaccine=vaccine,
                    dose=1,
                    given_on=dt.date(1995, 1, 1) + dt.timedelta(days=n),
                    institution_code=CLINIC,
                    recorded_at=NOW,
                    recorded_by="w",
                )
            )
        ids = []
        for days in (40, 30, 20, 10):
            view, _ = records.record_encounter(
                uow, ZHANG, visit(upload_key=f"k{days}", started_at=NOW - dt.timedelta(days=days))
            )
            ids.append(view.id)
        old, _ = records.record_encounter(
            uow, "R-zhang-old", visit(upload_key="old", started_at=NOW - dt.timedelta(days=15))
        )
        ids.append(old.id)
        records.record_encounter(
            uow,
            ZHANG,
            visit(upload_key="stay", kind=EncounterKind.INPATIENT, started_at=NOW - dt.timedelta(days=5)),
        )
        records.open_encounter(uow, ZHANG, visit(started_at=NOW - dt.timedelta(minutes=5)))
        uow.commit()
    return ids


def test_summary_is_the_card_summary_in_a_handful_of_queries(
    db: Database, records: Records, clock: FixedClock
) -> None:
    ids = seed_history(db, records, clock)
    with db.uow() as uow, statements(db) as seen:
        summary = records.summary(uow, [ZHANG, "R-zhang-old"])
    selects = [s for s in seen if s.lstrip().upper().startswith("SELECT")]
    # the residents with their archives, allergies and doses (one union), the visits, their items
    # (the 4 item tables, one union)
    assert len(selects) == 3, selects
    assert (summary.resident_id, summary.name, summary.sex) == (ZHANG, "张三", 1)
    assert (summary.abo, summary.rh, summary.other_alert, summary.psychiatric) == (1, "1", "高血压", True)
    assert summary.alerts == ["asthma", "diabetes"]
    assert [a.allergen for a in summary.allergies] == ["花粉", "头孢类", "磺胺类药物", "青霉素"]
    assert len(summary.immunizations) == 10
    assert summary.immunizations[0] == ("9999", "9999", 1, dt.date(1995, 1, 4))  # unknown code: named by it
    assert summary.immunizations[1] == ("1901", "甲肝减毒活疫苗", 1, dt.date(1995, 1, 3))
    assert summary.immunizations[3][:2] == ("1201", "麻腮风疫苗")
    # the 3 newest closed outpatient visits, over both ids; no inpatient stay, no open visit
    assert [e.id for e in summary.recent] == [ids[3], ids[4], ids[2]]
    newest = summary.recent[0]
    assert [d.code for d in newest.diagnoses] == ["J06.9"]
    assert [o.code for o in newest.observations] == ["WBC"]
    assert [p.drug for p in newest.prescriptions] == ["阿莫西林胶囊"]
    assert [p.code for p in newest.procedures] == ["93.39"]
    with db.uow() as uow:
        hidden = records.summary(uow, [ZHANG], hidden=frozenset({"psychiatric"}))
        assert hidden.psychiatric is None
        with pytest.raises(NotFound):
            records.summary(uow, ["R-nobody"])
        bare = records.summary(uow, [LI])
    assert (bare.abo, bare.alerts, bare.allergies, bare.immunizations, bare.recent) == (None, [], (), (), ())


def test_the_summary_record_goes_on_the_card(db: Database, records: Records, clock: FixedClock) -> None:
    seed_history(db, records, clock)
    with db.uow() as uow:
        newest = records.summary(uow, [ZHANG]).recent[0]
    read = decode_visit("ED", encode_visit("ED", card_record(newest)))
    assert read["JZJGMC"] == "郑州市中原区人民医院" and read["MZZDDM1"] == "J06.9"
    assert read["JZRQSJ"] == (NOW - dt.timedelta(days=10)).strftime("%Y%m%d") + "100000"  # local time


def test_card_application_rebuilds_df02_from_the_platform(
    db: Database, records: Records, clock: FixedClock
) -> None:
    base = parse_application(application(), today=NOW.date())
    assert base.allergies == [("青霉素", "皮疹、呼吸困难")] and base.abo == 1
    with db.uow() as uow:
        untouched = records.card_application(uow, LI, base)
    assert untouched == base  # nothing on the platform: the old card's data is kept

    seed_history(db, records, clock)
    with db.uow() as uow:
        rebuilt = records.card_application(uow, ZHANG, base)
    assert (rebuilt.name, rebuilt.id_number, rebuilt.photo, rebuilt.addresses) == (
        base.name,
        base.id_number,
        base.photo,
        base.addresses,
    )
    assert (rebuilt.abo, rebuilt.rh, rebuilt.other_alert, rebuilt.psychiatric) == (1, "1", "高血压", True)
    assert (rebuilt.asthma, rebuilt.diabetes, rebuilt.glaucoma, rebuilt.pacemaker) == (
        True,
        True,
        False,
        None,
    )
    assert rebuilt.health_record_number == "41010200000000001"
    assert [a for a, _ in rebuilt.allergies] == ["花粉", "头孢类", "磺胺类药物"]  # the newest DF02/EF07 holds
    assert len(rebuilt.immunizations) == 10 and rebuilt.immunizations[0] == ("9999", dt.date(1995, 1, 4))
    assert ("乙肝疫苗", dt.date(1990, 4, 1)) not in rebuilt.immunizations  # the oldest fell off
    contents = card_contents(
        rebuilt,
        issue_serial="0000000002",
        issuer_name="河南省卫生健康委员会",
        issuer_code="41000000001",
        issue_date=NOW.date(),
        expiry=NOW.date() + dt.timedelta(days=3650),
    )
    assert contents.allergies[0] == ("花粉", "皮疹")
    assert contents.items["DF02/EF05"]["asthma"] == 1
    assert base.abo == 1 and base.allergies == [("青霉素", "皮疹、呼吸困难")]  # base itself unchanged
    with db.uow() as uow, pytest.raises(NotFound):
        records.card_application(uow, "R-nobody", base)


def test_many_uploads_get_distinct_numbers(db: Database, records: Records) -> None:
    with db.uow() as uow:
        numbers = {
            records.record_encounter(uow, ZHANG, visit(upload_key=f"u{next(_ids)}"))[0].number
            for _ in range(5)
        }
        uow.commit()
    assert len(numbers) == 5


def test_two_terminals_racing_with_one_upload_store_it_once(
    db: Database, records: Records, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both look, find nothing, insert: the database's unique key stops the second, which then
    answers with the first's encounter.  (SQLite serialises the two transactions instead.)"""
    upload = visit(upload_key="T01-race")
    looked = threading.Barrier(2, timeout=10)
    first_look = threading.local()
    original = Records._uploaded

    looks: list[bool] = []

    def look_then_wait(self: Records, uow: Any, resident_id: str, checked: Any) -> Any:
        found = original(self, uow, resident_id, checked)
        looks.append(found is not None)
        if db.dialect == "postgresql" and not getattr(first_look, "done", False):
            first_look.done = True
            looked.wait()  # both have looked before either inserts
        return found

    monkeypatch.setattr(Records, "_uploaded", look_then_wait)
    results: list[tuple[int, bool]] = []
    errors: list[BaseException] = []

    def terminal() -> None:
        try:
            with db.uow() as uow:
                view, created = records.record_encounter(uow, ZHANG, upload)
                uow.commit()
            results.append((view.id, created))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=terminal) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    assert sorted(created for _, created in results) == [False, True]
    assert len({view_id for view_id, _ in results}) == 1
    assert counts(db)["encounters"] == 1 and counts(db)["diagnoses"] == 1
    if db.dialect == "postgresql":  # the loser looked again after its insert was refused
        assert looks == [False, False, True]
