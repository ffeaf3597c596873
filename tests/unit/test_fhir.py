"""FHIR R4 views (healthcard.api.fhir): rows built in memory, no database; every output is
checked against the fhir.resources R4B models by the mappers themselves, and again here."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import ValidationError

from healthcard.api import fhir
from healthcard.storage import tables as t

UTC = dt.UTC
AT = dt.datetime(2025, 3, 4, 1, 30, tzinfo=UTC)  # 09:30 in China
CARD = "110101199003070019"


def resident(**changes: Any) -> t.Resident:
    values: dict[str, Any] = {
        "resident_id": "R0000001",
        "id_type": "01",
        "id_number": "110101199003070019",
        "name": "张三",
        "sex": 1,
        "birth_date": dt.date(1990, 3, 7),
        "created_at": AT,
        "area_code": "110101",
        "name_pinyin": "zhang san",
        "merged_into": None,
    }
    return t.Resident(**(values | changes))


def visit(**changes: Any) -> t.Encounter:
    values: dict[str, Any] = {
        "id": 71,
        "resident_id": "R0000001",
        "institution_code": "H110101001",
        "kind": "outpatient",
        "status": "closed",
        "number": "MZ2025000123",
        "department": "内科",
        "department_code": "300",
        "clinician": "李医生",
        "category": "general",
        "card_number": CARD,
        "carrier": "card",
        "started_at": AT,
        "ended_at": AT + dt.timedelta(minutes=20),
        "fees": [],
        "created_at": AT,
    }
    return t.Encounter(**(values | changes))


def diagnosis(**changes: Any) -> t.Diagnosis:
    values: dict[str, Any] = {
        "id": 31,
        "resident_id": "R0000001",
        "encounter_id": 71,
        "code": "J06.900",
        "name": "急性上呼吸道感染",
        "primary": True,
        "category": "general",
        "diagnosed_on": dt.date(2025, 3, 4),
    }
    return t.Diagnosis(**(values | changes))


def lab(**changes: Any) -> t.Observation:
    values: dict[str, Any] = {
        "id": 91,
        "resident_id": "R0000001",
        "encounter_id": 71,
        "kind": "lab",
        "code": "GLU",
        "name": "空腹血糖",
        "value": "7.8",
        "value_num": 7.8,
        "unit": "mmol/L",
        "low": 3.9,
        "high": 6.1,
        "flag": "H",
        "category": "general",
        "observed_at": AT,
    }
    return t.Observation(**(values | changes))


def prescription(**changes: Any) -> t.Prescription:
    values: dict[str, Any] = {
        "id": 111,
        "resident_id": "R0000001",
        "encounter_id": 71,
        "drug": "阿莫西林胶囊",
        "drug_code": "X-J01CA04",
        "dose": "0.5",
        "dose_unit": "g",
        "route_code": "1",
        "frequency": "tid",
        "days": 7,
        "category": "general",
        "prescribed_at": AT,
    }
    return t.Prescription(**(values | changes))


def allergy(**changes: Any) -> t.Allergy:
    values: dict[str, Any] = {
        "id": 21,
        "resident_id": "R0000001",
        "allergen": "青霉素",
        "reaction": "皮疹、呼吸困难",
        "severity": "severe",
        "recorded_at": AT,
        "recorded_by": "doctor-li",
    }
    return t.Allergy(**(values | changes))


def dose(**changes: Any) -> t.ImmunizationDose:
    values: dict[str, Any] = {
        "id": 41,
        "resident_id": "R0000001",
        "vaccine": "0201",
        "dose": 2,
        "given_on": dt.date(2025, 4, 4),
        "lot": "B20250101",
        "institution_code": "C110101002",
        "recorded_at": AT,
        "recorded_by": "nurse-wang",
    }
    return t.ImmunizationDose(**(values | changes))


def by_system(resource: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {i["system"]: i for i in resource["identifier"]}


# ---- Patient ---------------------------------------------------------------------------------


def test_patient_carries_the_card_number_in_the_ws_t_500_system() -> None:
    out = fhir.patient(resident(), card_number=CARD)

    assert out["resourceType"] == "Patient"
    assert out["id"] == "R0000001"
    ids = by_system(out)
    assert fhir.CARD_NUMBER_SYSTEM == "urn:oid:2.16.156.10011.1.19"
    assert ids[fhir.CARD_NUMBER_SYSTEM]["value"] == CARD
    assert ids[fhir.CARD_NUMBER_SYSTEM]["use"] == "official"
    assert ids[fhir.CITIZEN_ID_SYSTEM]["value"] == "110101199003070019"
    assert out["gender"] == "male"
    assert out["birthDate"] == "1990-03-07"
    assert out["address"] == [{"use": "home", "district": "110101"}]
    assert out["active"] is True
    assert out["name"] == [{"use": "official", "text": "张三", "family": "张", "given": ["三"]}]


def test_patient_with_a_compound_surname() -> None:
    out = fhir.patient(resident(name="欧阳修文", sex=2))

    assert out["name"][0]["family"] == "欧阳"
    assert out["name"][0]["given"] == ["修文"]
    assert out["gender"] == "female"
    assert fhir.CARD_NUMBER_SYSTEM not in by_system(out)  # no card: no card identifier


@pytest.mark.parametrize(
    ("name", "family", "given"),
    [
        ("王小明", "王", ["小明"]),
        ("司马光", "司马", ["光"]),
        ("诸葛亮", "诸葛", ["亮"]),
        ("欧阳", "欧", ["阳"]),  # two characters only: read as surname 欧 + given name
        ("买买提·艾力", None, None),  # not surname-first: text only
        ("John SMITH", None, None),
        ("李", None, None),
    ],
)
def test_split_name(name: str, family: str | None, given: list[str] | None) -> None:
    out = fhir.split_name(name)
    assert out["text"] == name
    assert out.get("family") == family
    assert out.get("given") == given


@pytest.mark.parametrize(("sex", "gender"), [(1, "male"), (2, "female"), (0, "unknown"), (9, "unknown")])
def test_gender_from_gb_t_2261_1(sex: int, gender: str) -> None:
    assert fhir.patient(resident(sex=sex))["gender"] == gender


def test_patient_identifiers_from_the_mpi() -> None:
    identifiers = [
        t.ResidentIdentifier(system="visit-card", assigner="H110101001", value="V000123", active=True),
        t.ResidentIdentifier(system="card", assigner="", value=CARD, active=True),  # same as passed
        t.ResidentIdentifier(system="ncms", assigner="", value="NH0001", active=False),
    ]
    out = fhir.patient(resident(), identifiers, card_number=CARD)

    values = [(i["system"], i["value"]) for i in out["identifier"]]
    assert len(values) == len(set(values)) == 4  # card, citizen id, visit card, NCMS
    visit_card = next(i for i in out["identifier"] if i["value"] == "V000123")
    assert visit_card["assigner"]["display"] == "H110101001"
    assert visit_card["system"].endswith("/visit-card/H110101001")
    ncms = next(i for i in out["identifier"] if i["value"] == "NH0001")
    assert ncms["use"] == "old"


def test_patient_with_another_id_document_is_not_given_the_citizen_id_system() -> None:
    out = fhir.patient(resident(id_type="03", id_number="E12345678"))

    assert fhir.CITIZEN_ID_SYSTEM not in by_system(out)
    passport = next(i for i in out["identifier"] if i["value"] == "E12345678")
    assert passport["type"]["text"] == "护照"


def test_merged_patient_points_to_the_survivor() -> None:
    out = fhir.patient(resident(merged_into="R0000002"))

    assert out["active"] is False
    assert out["link"] == [{"other": {"reference": "Patient/R0000002"}, "type": "replaced-by"}]


# ---- Encounter and Condition ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "klass", "fhir_status", "system"),
    [
        ("outpatient", "closed", "AMB", "finished", "urn:oid:2.16.156.10011.1.11"),
        ("inpatient", "open", "IMP", "in-progress", "urn:oid:2.16.156.10011.1.12"),
        ("emergency", "OPEN", "EMER", "in-progress", "urn:oid:2.16.156.10011.1.11"),
    ],
)
def test_encounter_class_status_and_number(
    kind: str, status: str, klass: str, fhir_status: str, system: str
) -> None:
    out = fhir.encounter(visit(kind=kind, status=status), "市第一人民医院")

    assert out["class"]["code"] == klass
    assert out["class"]["system"] == "http://terminology.hl7.org/CodeSystem/v3-ActCode"
    assert out["status"] == fhir_status
    assert out["identifier"][0]["system"] == system
    assert out["identifier"][0]["value"] == "MZ2025000123"
    assert out["identifier"][0]["assigner"]["display"] == "市第一人民医院"
    assert out["serviceProvider"]["display"] == "市第一人民医院"
    assert out["subject"] == {"reference": "Patient/R0000001"}


def test_encounter_period_in_china_time_and_no_end_while_open() -> None:
    closed = fhir.encounter(visit())
    assert closed["period"] == {"start": "2025-03-04T09:30:00+08:00", "end": "2025-03-04T09:50:00+08:00"}
    assert closed["serviceProvider"]["display"] == "H110101001"  # no name given: the code

    still_open = fhir.encounter(visit(status="open", ended_at=None))
    assert still_open["period"] == {"start": "2025-03-04T09:30:00+08:00"}


def test_encounter_lists_its_diagnoses_primary_first() -> None:
    secondary = diagnosis(id=32, code="I10", name="高血压", primary=False)
    out = fhir.encounter(visit(), diagnoses=[secondary, diagnosis()])

    assert out["diagnosis"] == [
        {"condition": {"reference": "Condition/31"}, "rank": 1},
        {"condition": {"reference": "Condition/32"}},
    ]


def test_sensitive_encounter_is_labelled() -> None:
    out = fhir.encounter(visit(category="psychiatric"))
    assert out["meta"]["security"][0]["code"] == "PSY"
    assert "meta" not in fhir.encounter(visit())


def test_condition_is_coded_in_icd_10() -> None:
    out = fhir.condition(diagnosis())

    assert out["code"]["coding"] == [
        {"system": "http://hl7.org/fhir/sid/icd-10", "code": "J06.900", "display": "急性上呼吸道感染"}
    ]
    assert out["subject"] == {"reference": "Patient/R0000001"}
    assert out["encounter"] == {"reference": "Encounter/71"}
    assert out["recordedDate"] == "2025-03-04"
    assert out["category"][0]["coding"][0]["code"] == "encounter-diagnosis"


# ---- Observation -----------------------------------------------------------------------------


def test_numeric_observation_with_range_and_high_flag() -> None:
    out = fhir.observation(lab())

    assert out["category"][0]["coding"][0]["code"] == "laboratory"
    assert out["valueQuantity"] == {"value": 7.8, "unit": "mmol/L"}
    assert out["referenceRange"] == [
        {"low": {"value": 3.9, "unit": "mmol/L"}, "high": {"value": 6.1, "unit": "mmol/L"}}
    ]
    assert out["interpretation"][0]["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
        "code": "H",
        "display": "High",
    }
    assert out["effectiveDateTime"] == "2025-03-04T09:30:00+08:00"
    assert "valueString" not in out


def test_text_observation_without_range() -> None:
    row = lab(
        kind="exam",
        code="CT01",
        name="胸部CT",
        value="双肺未见明显异常",
        value_num=None,
        unit="",
        low=None,
        high=None,
        flag="N",
        encounter_id=None,
    )
    out = fhir.observation(row)

    assert out["category"][0]["coding"][0]["code"] == "imaging"
    assert out["valueString"] == "双肺未见明显异常"
    assert "valueQuantity" not in out
    assert "referenceRange" not in out
    assert "encounter" not in out
    assert out["interpretation"][0]["coding"][0]["code"] == "N"


def test_observation_with_only_an_upper_limit() -> None:
    out = fhir.observation(lab(low=None, high=5.2, flag=None, value_num=4.1, value="4.1"))
    assert out["referenceRange"] == [{"high": {"value": 5.2, "unit": "mmol/L"}}]
    assert "interpretation" not in out


# ---- MedicationRequest ----------------------------------------------------------------------


def test_medication_request_dosage() -> None:
    out = fhir.medication_request(prescription())

    assert out["status"] == "unknown"  # no date to judge by
    assert out["intent"] == "order"
    assert out["medicationCodeableConcept"]["text"] == "阿莫西林胶囊"
    dosage = out["dosageInstruction"][0]
    assert dosage["text"] == "0.5 g 口服 tid 7天"
    assert dosage["route"]["coding"] == [
        {"system": "urn:oid:2.16.156.10011.2.3.1.158", "code": "1", "display": "口服"}
    ]
    assert dosage["doseAndRate"] == [{"doseQuantity": {"value": 0.5, "unit": "g"}}]
    assert dosage["timing"]["repeat"] == {"frequency": 3, "period": 1, "periodUnit": "d"}
    assert out["dispenseRequest"]["expectedSupplyDuration"] == {
        "value": 7,
        "unit": "d",
        "system": "http://unitsofmeasure.org",
        "code": "d",
    }


def test_medication_request_with_a_non_numeric_dose_and_unknown_route() -> None:
    out = fhir.medication_request(prescription(dose="适量", dose_unit="", route_code="7", frequency="prn"))

    dosage = out["dosageInstruction"][0]
    assert "doseAndRate" not in dosage
    assert dosage["route"]["coding"][0]["code"] == "7"
    assert "display" not in dosage["route"]["coding"][0]
    assert dosage["text"] == "适量 7 prn 7天"
    assert "repeat" not in dosage["timing"]


@pytest.mark.parametrize(
    ("as_of", "status"),
    [(dt.date(2025, 3, 4), "active"), (dt.date(2025, 3, 10), "active"), (dt.date(2025, 3, 11), "completed")],
)
def test_medication_request_status_as_of_a_day(as_of: dt.date, status: str) -> None:
    # prescribed 2025-03-04 (China time) for 7 days: the 4th to the 10th
    assert fhir.medication_request(prescription(), as_of=as_of)["status"] == status


# ---- AllergyIntolerance and Immunization ------------------------------------------------------


def test_allergy() -> None:
    out = fhir.allergy_intolerance(allergy())

    assert out["clinicalStatus"]["coding"][0]["code"] == "active"
    assert out["code"] == {"text": "青霉素"}
    assert out["patient"] == {"reference": "Patient/R0000001"}
    assert out["criticality"] == "high"
    assert out["reaction"] == [{"manifestation": [{"text": "皮疹、呼吸困难"}], "severity": "severe"}]


def test_allergy_without_severity_or_reaction() -> None:
    out = fhir.allergy_intolerance(allergy(severity=None, reaction=""))
    assert "criticality" not in out
    assert "reaction" not in out


def test_immunization() -> None:
    out = fhir.immunization(dose(), vaccine_name="乙肝疫苗", institution_name="东城社区卫生服务中心")

    assert out["status"] == "completed"
    assert out["vaccineCode"]["coding"][0]["code"] == "0201"
    assert out["vaccineCode"]["coding"][0]["system"] == fhir.VACCINE_SYSTEM
    assert out["vaccineCode"]["text"] == "乙肝疫苗"
    assert out["occurrenceDateTime"] == "2025-04-04"
    assert out["lotNumber"] == "B20250101"
    assert out["protocolApplied"] == [{"doseNumberPositiveInt": 2}]
    assert out["performer"][0]["actor"]["display"] == "东城社区卫生服务中心"
    assert out["location"] == {"display": "东城社区卫生服务中心"}


def test_immunization_without_lot_or_names() -> None:
    out = fhir.immunization(dose(lot=""))
    assert "lotNumber" not in out
    assert out["location"] == {"display": "C110101002"}
    assert "text" not in out["vaccineCode"]


def test_immunization_dose_number_must_be_positive() -> None:
    with pytest.raises(ValidationError):
        fhir.immunization(dose(dose=0))


# ---- Bundle and validation -------------------------------------------------------------------


def test_bundle_of_mixed_resources_validates() -> None:
    resources = [
        fhir.patient(resident(), card_number=CARD),
        fhir.encounter(visit(), "市第一人民医院"),
        fhir.condition(diagnosis()),
        fhir.observation(lab()),
        fhir.medication_request(prescription()),
        fhir.allergy_intolerance(allergy()),
        fhir.immunization(dose(), "乙肝疫苗"),
    ]
    out = fhir.bundle(
        resources,
        total=12,
        self_url="https://platform.example/fhir/Patient/R0000001/$everything",
        base_url="https://platform.example/fhir/",
    )

    assert out["type"] == "searchset"
    assert out["total"] == 12
    assert out["link"] == [
        {"relation": "self", "url": "https://platform.example/fhir/Patient/R0000001/$everything"}
    ]
    assert [e["resource"]["resourceType"] for e in out["entry"]] == [
        "Patient",
        "Encounter",
        "Condition",
        "Observation",
        "MedicationRequest",
        "AllergyIntolerance",
        "Immunization",
    ]
    assert out["entry"][2]["fullUrl"] == "https://platform.example/fhir/Condition/31"
    assert all(e["search"] == {"mode": "match"} for e in out["entry"])
    assert [e["resource"] for e in out["entry"]] == resources  # validation changed nothing
    assert fhir.validate(out) == out


def test_empty_bundle_counts_zero() -> None:
    out = fhir.bundle([])
    assert out["total"] == 0
    assert "entry" not in out


def test_every_view_survives_revalidation_unchanged() -> None:
    for resource in (
        fhir.patient(resident(name="司马光"), card_number=CARD),
        fhir.encounter(visit(kind="inpatient", status="open", ended_at=None)),
        fhir.observation(lab(value_num=None, value="阴性", flag="A")),
        fhir.medication_request(prescription(frequency="q8h")),
    ):
        assert fhir.validate(resource) == resource


@pytest.mark.parametrize(
    "broken",
    [
        {"resourceType": "Patient", "id": "R1", "gender": 1},  # not a code
        {"resourceType": "Patient", "id": "R1", "birthDate": "1990-13-45"},
        {"resourceType": "Patient", "id": "R 1/x"},  # not a FHIR id
        {"resourceType": "Patient", "id": "R1", "sex": "male"},  # no such element
        {"resourceType": "Encounter", "id": "1", "status": "finished"},  # class is required
        {"resourceType": "Observation", "id": "1", "status": "final"},  # code is required
        {"resourceType": "Immunization", "id": "1", "status": "completed"},  # vaccineCode, patient …
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": {"resourceType": "Condition", "id": "1"}}],  # subject required
        },
    ],
)
def test_validation_rejects_a_broken_resource(broken: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        fhir.validate(broken)


def test_validation_refuses_a_resource_type_it_does_not_serve() -> None:
    with pytest.raises(ValueError, match="Practitioner"):
        fhir.validate({"resourceType": "Practitioner", "id": "1"})


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        fhir.observation(lab(observed_at=dt.datetime(2025, 3, 4, 9, 30)))
