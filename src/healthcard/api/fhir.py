"""FHIR R4 read views of the platform's data (ARCHITECTURE.md §3 api/).

Each function here turns the platform's rows (``healthcard.storage.tables``: the API loads them
through the platform services, after the access policy has decided what may be seen — nothing is
masked here) into one FHIR resource: Patient, Encounter, Condition, Observation,
MedicationRequest, AllergyIntolerance, Immunization, and a searchset Bundle of them.

The resources are built as plain JSON-ready dicts and then validated by the models of
``fhir.resources.R4B``.  fhir.resources 8 has R5 as its default package; R4B (FHIR 4.3.0) is the
R4 line, and the seven resources have the same shape as R4 for every element emitted here
(``Immunization.protocolApplied.doseNumberPositiveInt``, ``AllergyIntolerance.reaction
.manifestation`` as CodeableConcept, ``Encounter.class`` as Coding — the places where R5 differs).
What a function returns is the validated model dumped back to JSON, so a mapper that builds an
invalid resource fails loudly (``pydantic.ValidationError``: a bug, never bad user input).  The
models check structure, types, cardinality and primitive formats, but not required value-set
bindings (``gender: "man"`` passes); the bindings are kept by construction below.

Identifiers and code systems — national OIDs where one is known, else a local URL:

=========================== ====================================================================
card number (健康卡号)      ``urn:oid:2.16.156.10011.1.19`` (WS/T 500, CARD-SPEC.md §10)
citizen ID (身份证号)        ``urn:oid:2.16.156.10011.1.3`` (WS/T 500)
health archive number       ``urn:oid:2.16.156.10011.1.2`` 健康档案标识号 (WS/T 500)
门(急)诊号 / 住院号          ``urn:oid:2.16.156.10011.1.11`` / ``.1.12`` (WS/T 500 CDA headers),
                            assigned by the institution (``Identifier.assigner``)
route (用药途径)             ``urn:oid:2.16.156.10011.2.3.1.158`` 用药途径代码表 = WS 364.12
                            CV06.00.102, the code system WS/T 500 documents use for routeCode
ICD-10                      ``http://hl7.org/fhir/sid/icd-10`` (China's clinical edition extends
                            WHO ICD-10 codes with more digits)
vaccine, drug, lab/exam     local (:data:`LOCAL_BASE`): the national immunization-programme
item, department,           vaccine codes (CARD-SPEC.md §10.3) have no OID we could confirm;
visit card, NCMS number …   the others are each institution's or region's own codes
=========================== ====================================================================

Sensitive items (``category`` other than ``general``) carry the HL7 v3 ActCode sensitivity
label in ``meta.security`` (PSY, HIV, SEX, ETH) so that a receiving system can keep honouring
the resident's choice after the data leaves the platform.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any

from fhir.resources.R4B.allergyintolerance import AllergyIntolerance
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.immunization import Immunization
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir_core.fhirabstractmodel import FHIRAbstractModel

from healthcard import codes
from healthcard.clock import SHANGHAI
from healthcard.storage import tables as t

JSON = dict[str, Any]

# ---- identifier systems and code systems -------------------------------------------------------

CARD_NUMBER_SYSTEM = "urn:oid:2.16.156.10011.1.19"  # 健康卡号 (WS/T 500)
CITIZEN_ID_SYSTEM = "urn:oid:2.16.156.10011.1.3"  # 居民身份证号 (WS/T 500)
ARCHIVE_NUMBER_SYSTEM = "urn:oid:2.16.156.10011.1.2"  # 健康档案标识号 (WS/T 500)
OUTPATIENT_NUMBER_SYSTEM = "urn:oid:2.16.156.10011.1.11"  # 门(急)诊号 (WS/T 500)
INPATIENT_NUMBER_SYSTEM = "urn:oid:2.16.156.10011.1.12"  # 住院号 (WS/T 500)
ROUTE_SYSTEM = "urn:oid:2.16.156.10011.2.3.1.158"  # 用药途径代码表, WS 364.12 CV06.00.102
ICD10_SYSTEM = "http://hl7.org/fhir/sid/icd-10"

#: Where the platform's own identifier and code systems live.  A placeholder domain until a
#: deployment publishes its own (these URLs name systems; nothing is fetched from them).
LOCAL_BASE = "https://healthcard.example/fhir"
VACCINE_SYSTEM = f"{LOCAL_BASE}/CodeSystem/vaccine"  # CARD-SPEC.md §10.3 vaccine codes
DRUG_SYSTEM = f"{LOCAL_BASE}/CodeSystem/drug"
OBSERVATION_ITEM_SYSTEM = f"{LOCAL_BASE}/CodeSystem/observation-item"  # 检查/检验项目代码
DEPARTMENT_SYSTEM = f"{LOCAL_BASE}/CodeSystem/department"
INSTITUTION_SYSTEM = f"{LOCAL_BASE}/sid/institution"

_HL7 = "http://terminology.hl7.org/CodeSystem"
_ACT_CODE = f"{_HL7}/v3-ActCode"
_INTERPRETATION = f"{_HL7}/v3-ObservationInterpretation"
_UCUM = "http://unitsofmeasure.org"

#: GB/T 2261.1 sex code → FHIR administrative gender; 0 未知的性别 and 9 未说明的性别 are both
#: "unknown" (FHIR's "other" means something else)
_GENDER = {1: "male", 2: "female", 0: "unknown", 9: "unknown"}

#: Encounter kind → v3 ActCode encounter class
_ENCOUNTER_CLASS = {
    "outpatient": ("AMB", "ambulatory"),
    "inpatient": ("IMP", "inpatient encounter"),
    "emergency": ("EMER", "emergency"),
}
_ENCOUNTER_STATUS = {"open": "in-progress", "closed": "finished"}

#: Sensitivity (healthcard.platform.access.Sensitivity values) → v3 ActCode security label
_SECURITY = {
    "psychiatric": ("PSY", "psychiatry disorder information sensitivity"),
    "hiv": ("HIV", "HIV/AIDS information sensitivity"),
    "reproductive": ("SEX", "sexuality and reproductive health information sensitivity"),
    "substance": ("ETH", "substance abuse information sensitivity"),
}

_OBSERVATION_CATEGORY = {
    "lab": ("laboratory", "Laboratory", "检验"),
    # 检查 is mostly imaging (X-ray, CT, ultrasound); FHIR "exam" means a physical examination
    "exam": ("imaging", "Imaging", "检查"),
}
_INTERPRETATION_CODES = {"H": "High", "L": "Low", "N": "Normal", "A": "Abnormal"}

#: WS 364.12 CV06.00.102 用药途径代码.  CARD-SPEC.md §8 lists the set as "not retrieved"; these
#: are the codes as used by public WS/T 500 implementations (checked against several).
ROUTE_NAMES = {
    "1": "口服",
    "2": "直肠用药",
    "3": "舌下用药",
    "4": "注射用药",
    "401": "皮下注射",
    "402": "皮内注射",
    "403": "肌肉注射",
    "404": "静脉注射或静脉滴注",
    "5": "吸入用药",
    "6": "局部用药",
    "601": "椎管内用药",
    "602": "关节腔内用药",
    "603": "胸膜腔用药",
    "604": "腹腔用药",
    "605": "阴道用药",
    "606": "气管内用药",
    "607": "滴眼",
    "608": "滴鼻",
    "609": "喷喉",
    "610": "含化",
    "611": "敷伤口",
    "612": "擦皮肤",
    "699": "其他局部用药途径",
    "9": "其他用药途径",
}

#: Prescription frequency (as written: qd, bid, tid …) → HL7 timing abbreviation and repeat
_FREQUENCY = {
    "QD": (1, 1, "d"),
    "BID": (2, 1, "d"),
    "TID": (3, 1, "d"),
    "QID": (4, 1, "d"),
    "QOD": (1, 2, "d"),
}
_EVERY_HOURS = re.compile(r"^Q(\d{1,2})H$")
_TIMING_ABBREVIATION = f"{_HL7}/v3-GTSAbbreviation"
#: the codes of FHIR's TimingAbbreviation value set that the mapping above can produce
_TIMING_CODES = frozenset({"QD", "BID", "TID", "QID", "QOD", "Q1H", "Q2H", "Q3H", "Q4H", "Q6H", "Q8H"})

#: two-character (复姓) surnames: the family name of a Chinese name is its first character
#: unless the name starts with one of these
COMPOUND_SURNAMES = frozenset(
    {
        "欧阳",
        "司马",
        "诸葛",
        "上官",
        "东方",
        "皇甫",
        "尉迟",
        "公孙",
        "慕容",
        "长孙",
        "宇文",
        "司徒",
        "司空",
        "夏侯",
        "轩辕",
        "令狐",
        "钟离",
        "闻人",
        "澹台",
        "公冶",
        "太史",
        "端木",
        "申屠",
        "南宫",
        "独孤",
        "百里",
        "呼延",
        "万俟",
        "濮阳",
        "赫连",
        "第五",
        "西门",
        "东郭",
        "左丘",
        "拓跋",
        "司寇",
        "淳于",
        "单于",
        "鲜于",
        "闾丘",
        "亓官",
        "颛孙",
        "壤驷",
        "公良",
        "漆雕",
        "乐正",
        "宰父",
        "谷梁",
        "段干",
        "东门",
        "梁丘",
        "公羊",
        "羊舌",
        "微生",
        "公西",
        "巫马",
        "纳兰",
        "完颜",
    }
)
_HAN = re.compile(r"^[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]+$")
_NUMBER = re.compile(r"^\d+(\.\d+)?$")


# ---- resources ---------------------------------------------------------------------------------


def patient(
    resident: t.Resident,
    identifiers: Sequence[t.ResidentIdentifier] = (),
    card_number: str | None = None,
) -> JSON:
    """A resident as a Patient (id = ``resident_id``).

    Identifiers: the card number (``official``), the ID document on the resident row, then the
    MPI's other identifiers (a hospital's own visit card carries the hospital as assigner);
    inactive ones are ``old``.  A resident merged into another is inactive with a
    ``replaced-by`` link, so a client holding the old id is led to the surviving record."""
    ids: list[JSON] = []
    if card_number:
        ids.append(_identifier(CARD_NUMBER_SYSTEM, card_number, "official", "居民健康卡号"))
    ids.append(_id_document(resident.id_type, resident.id_number))
    ids += [_resident_identifier(row) for row in identifiers]
    merged_into = resident.merged_into
    d: JSON = {
        "resourceType": "Patient",
        "id": resident.resident_id,
        "identifier": _unique_identifiers(ids),
        "active": merged_into is None,
        "name": [{"use": "official", **split_name(resident.name)}],
        "gender": _GENDER.get(resident.sex, "unknown"),
        "birthDate": resident.birth_date.isoformat(),
        # the GB/T 2260 area code (county level) is all the platform keeps of the address
        "address": [{"use": "home", "district": resident.area_code}] if resident.area_code else [],
        "link": [{"other": _ref("Patient", merged_into), "type": "replaced-by"}] if merged_into else [],
    }
    return _validated(Patient, d)


def encounter(
    row: t.Encounter,
    institution_name: str | None = None,
    *,
    diagnoses: Sequence[t.Diagnosis] = (),
) -> JSON:
    """A visit as an Encounter: class from the kind, status from OPEN/CLOSED, the 门诊号/住院号
    as identifier assigned by the institution; ``diagnoses`` (optional) are listed with the
    primary one ranked 1."""
    kind = row.kind.lower()
    code, display = _ENCOUNTER_CLASS.get(kind, ("", ""))
    klass = (
        {"system": _ACT_CODE, "code": code, "display": display}
        if code
        else {"system": f"{_HL7}/v3-NullFlavor", "code": "UNK", "display": "unknown"}
    )
    provider = _organization(row.institution_code, institution_name)
    number_system = INPATIENT_NUMBER_SYSTEM if kind == "inpatient" else OUTPATIENT_NUMBER_SYSTEM
    d: JSON = {
        "resourceType": "Encounter",
        "id": str(row.id),
        "meta": _security(row.category),
        "identifier": [{"use": "usual", "system": number_system, "value": row.number, "assigner": provider}],
        "status": _ENCOUNTER_STATUS.get(row.status.lower(), "unknown"),
        "class": klass,
        "serviceType": _concept(DEPARTMENT_SYSTEM, row.department_code, row.department),
        "subject": _ref("Patient", row.resident_id),
        "participant": [{"individual": {"display": row.clinician}}] if row.clinician else [],
        "period": {"start": _instant(row.started_at), "end": _instant(row.ended_at)},
        "diagnosis": [
            {"condition": _ref("Condition", str(dx.id)), "rank": 1 if dx.primary else None}
            for dx in sorted(diagnoses, key=lambda dx: not dx.primary)
        ],
        "serviceProvider": provider,
    }
    return _validated(Encounter, d)


def condition(row: t.Diagnosis) -> JSON:
    """A diagnosis as an encounter-diagnosis Condition coded in ICD-10.  No clinical status:
    a visit's diagnosis says nothing about whether the condition has since resolved."""
    d: JSON = {
        "resourceType": "Condition",
        "id": str(row.id),
        "meta": _security(row.category),
        "category": [
            {
                "coding": [
                    {
                        "system": f"{_HL7}/condition-category",
                        "code": "encounter-diagnosis",
                        "display": "Encounter Diagnosis",
                    }
                ]
            }
        ],
        "code": _concept(ICD10_SYSTEM, row.code, row.name),
        "subject": _ref("Patient", row.resident_id),
        "encounter": _ref("Encounter", str(row.encounter_id)),
        "recordedDate": row.diagnosed_on.isoformat(),
    }
    return _validated(Condition, d)


def observation(row: t.Observation) -> JSON:
    """A lab (检验) or exam (检查) result: a Quantity with its reference range when numeric,
    else the text; the H/L/N/A flag as a v3 interpretation."""
    unit = row.unit or ""
    category = _OBSERVATION_CATEGORY.get(row.kind)
    value: JSON
    if row.value_num is not None:
        value = {"valueQuantity": {"value": row.value_num, "unit": unit}}
    else:
        value = {"valueString": row.value}
    reference_range = (
        [{"low": _quantity(row.low, unit), "high": _quantity(row.high, unit)}]
        if row.low is not None or row.high is not None
        else []
    )
    flag = (row.flag or "").upper()
    interpretation = (
        [_coded(_INTERPRETATION, flag, _INTERPRETATION_CODES[flag])] if flag in _INTERPRETATION_CODES else []
    )
    d: JSON = {
        "resourceType": "Observation",
        "id": str(row.id),
        "meta": _security(row.category),
        "status": "final",
        "category": (
            [_coded(f"{_HL7}/observation-category", category[0], category[1], text=category[2])]
            if category
            else []
        ),
        "code": _concept(OBSERVATION_ITEM_SYSTEM, row.code, row.name),
        "subject": _ref("Patient", row.resident_id),
        "encounter": _ref("Encounter", str(row.encounter_id)) if row.encounter_id is not None else None,
        "effectiveDateTime": _instant(row.observed_at),
        **value,
        "interpretation": interpretation,
        "referenceRange": reference_range,
    }
    return _validated(Observation, d)


def medication_request(row: t.Prescription, *, as_of: dt.date | None = None) -> JSON:
    """A prescription line as a MedicationRequest (intent ``order``).

    Status: without ``as_of`` the platform cannot tell whether the course is still running, so
    ``unknown``; with it, ``active`` until the prescribed days have passed, then ``completed``.
    """
    route_code = row.route_code.strip()
    # the card and the records keep the code in two digits ("01"); the value set writes "1"
    route_name = ROUTE_NAMES.get(route_code) or ROUTE_NAMES.get(route_code.lstrip("0"))
    dose = row.dose.strip()
    text = " ".join(
        part
        for part in (
            f"{dose} {row.dose_unit}".strip(),
            route_name or route_code,
            row.frequency,
            f"{row.days}天",
        )
        if part
    )
    status = "unknown"
    if as_of is not None:
        last_day = row.prescribed_at.astimezone(SHANGHAI).date() + dt.timedelta(days=max(row.days, 1) - 1)
        status = "active" if as_of <= last_day else "completed"
    dosage: JSON = {
        "text": text,
        "timing": _timing(row.frequency),
        "route": _concept(ROUTE_SYSTEM, route_code, route_name),
        "doseAndRate": (
            [{"doseQuantity": {"value": float(dose), "unit": row.dose_unit}}] if _NUMBER.match(dose) else []
        ),
    }
    d: JSON = {
        "resourceType": "MedicationRequest",
        "id": str(row.id),
        "meta": _security(row.category),
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": _concept(DRUG_SYSTEM, row.drug_code, row.drug),
        "subject": _ref("Patient", row.resident_id),
        "encounter": _ref("Encounter", str(row.encounter_id)),
        "authoredOn": _instant(row.prescribed_at),
        "dosageInstruction": [dosage],
        "dispenseRequest": {
            "expectedSupplyDuration": {"value": row.days, "unit": "d", "system": _UCUM, "code": "d"}
        },
    }
    return _validated(MedicationRequest, d)


def allergy_intolerance(row: t.Allergy) -> JSON:
    """An allergy as an active AllergyIntolerance (the allergen as text, as on the card:
    DF02/EF07 holds free text); severity gives the reaction's severity and the criticality."""
    severity = (row.severity or "").lower()
    criticality = {"severe": "high", "moderate": "low", "mild": "low"}.get(severity)
    d: JSON = {
        "resourceType": "AllergyIntolerance",
        "id": str(row.id),
        "clinicalStatus": _coded(f"{_HL7}/allergyintolerance-clinical", "active", "Active"),
        "criticality": criticality,
        "code": {"text": row.allergen},
        "patient": _ref("Patient", row.resident_id),
        "recordedDate": _instant(row.recorded_at),
        "reaction": (
            [
                {
                    "manifestation": [{"text": row.reaction}],
                    "severity": severity if criticality else None,
                }
            ]
            if row.reaction and row.reaction.strip()
            else []
        ),
    }
    return _validated(AllergyIntolerance, d)


def immunization(
    row: t.ImmunizationDose,
    vaccine_name: str | None = None,
    institution_name: str | None = None,
) -> JSON:
    """A dose given, as a completed Immunization: the vaccine code (CARD-SPEC.md §10.3), the
    dose number, lot, and the institution as performer and location."""
    institution = _organization(row.institution_code, institution_name)
    d: JSON = {
        "resourceType": "Immunization",
        "id": str(row.id),
        "status": "completed",
        "vaccineCode": _concept(VACCINE_SYSTEM, row.vaccine, vaccine_name),
        "patient": _ref("Patient", row.resident_id),
        "occurrenceDateTime": row.given_on.isoformat(),
        "recorded": _instant(row.recorded_at),
        "location": {"display": institution["display"]},
        "lotNumber": row.lot,
        "performer": [{"actor": institution}],
        "protocolApplied": [{"doseNumberPositiveInt": row.dose}],
    }
    return _validated(Immunization, d)


def bundle(
    resources: Sequence[Mapping[str, Any]],
    *,
    total: int | None = None,
    self_url: str | None = None,
    base_url: str | None = None,
) -> JSON:
    """A searchset Bundle of ``resources`` (one page of results): ``total`` is the number of
    matches over all pages (default: this page's count); ``base_url`` (the FHIR base, absolute)
    gives each entry its ``fullUrl``."""
    entries = []
    for resource in resources:
        entry: JSON = {"resource": dict(resource), "search": {"mode": "match"}}
        if base_url:
            entry["fullUrl"] = f"{base_url.rstrip('/')}/{resource['resourceType']}/{resource['id']}"
        entries.append(entry)
    d: JSON = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(entries) if total is None else total,
        "link": [{"relation": "self", "url": self_url}] if self_url else [],
        "entry": entries,
    }
    return _validated(Bundle, d)


_MODELS: dict[str, type[FHIRAbstractModel]] = {
    model.__name__: model
    for model in (
        Patient,
        Encounter,
        Condition,
        Observation,
        MedicationRequest,
        AllergyIntolerance,
        Immunization,
        Bundle,
    )
}


def validate(resource: Mapping[str, Any]) -> JSON:
    """Validate one of the resources this module emits (by its ``resourceType``) with the R4B
    model and return it as JSON; raises ``pydantic.ValidationError`` when it is not valid,
    ``ValueError`` for a resource type this module does not produce."""
    kind = resource.get("resourceType")
    model = _MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise ValueError(f"not a resource type of the FHIR views: {kind!r}")
    return _validated(model, resource)


# ---- names -------------------------------------------------------------------------------------


def split_name(name: str) -> JSON:
    """A HumanName for a name as written on the ID card: ``text`` always; ``family`` and
    ``given`` when it is a Han name of two characters or more (a 复姓 from
    :data:`COMPOUND_SURNAMES` takes two).  Names with a middle dot (维吾尔族 names such as
    买买提·艾力) or in Latin letters are not split: their order is not surname-first."""
    text = name.strip()
    out: JSON = {"text": text}
    if len(text) < 2 or not _HAN.match(text):
        return out
    family_len = 2 if text[:2] in COMPOUND_SURNAMES and len(text) > 2 else 1
    out["family"] = text[:family_len]
    out["given"] = [text[family_len:]]
    return out


# ---- helpers -----------------------------------------------------------------------------------


def _validated(model: type[FHIRAbstractModel], d: Mapping[str, Any]) -> JSON:
    """``d`` without its empty parts, through the R4B model, back to JSON."""
    return model.model_validate(_prune(dict(d))).model_dump(mode="json", exclude_none=True)


def _prune(value: Any) -> Any:
    """Drop None, empty strings, lists and dicts (FHIR forbids empty elements); keep 0/False."""
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if not _empty(v)}
    if isinstance(value, list):
        return [v for v in (_prune(v) for v in value) if not _empty(v)]
    if isinstance(value, str):
        return value.strip()
    return value


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | dict) and len(value) == 0)


def _ref(resource_type: str, resource_id: str | None) -> JSON | None:
    return {"reference": f"{resource_type}/{resource_id}"} if resource_id else None


def _organization(code: str, name: str | None) -> JSON:
    """A display reference to an institution (no Organization resource is served yet)."""
    return {"identifier": {"system": INSTITUTION_SYSTEM, "value": code}, "display": name or code}


def _instant(value: dt.datetime | None) -> str | None:
    """An aware datetime in China time (the rows keep UTC; FHIR wants the offset)."""
    if value is None:
        return None
    if value.tzinfo is None:  # the storage layer never returns one; refuse to guess its zone
        raise ValueError("naive datetime: the platform keeps aware UTC times only")
    return value.astimezone(SHANGHAI).isoformat()


def _quantity(value: float | None, unit: str) -> JSON | None:
    return None if value is None else {"value": value, "unit": unit}


def _coded(system: str, code: str, display: str | None = None, *, text: str | None = None) -> JSON:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": text}


def _concept(system: str, code: str | None, text: str | None) -> JSON:
    """A CodeableConcept with the code when there is one and the name as text."""
    code = (code or "").strip()
    coding = [{"system": system, "code": code, "display": text}] if code else []
    return {"coding": coding, "text": text}


def _security(category: str | None) -> JSON:
    label = _SECURITY.get((category or "general").lower())
    if label is None:
        return {}
    return {"security": [{"system": _ACT_CODE, "code": label[0], "display": label[1]}]}


def _timing(frequency: str) -> JSON:
    """The frequency as written (text), coded and repeated when it is a common abbreviation."""
    abbreviation = frequency.strip().upper()
    repeat: JSON | None = None
    if abbreviation in _FREQUENCY:
        times, period, unit = _FREQUENCY[abbreviation]
        repeat = {"frequency": times, "period": period, "periodUnit": unit}
    elif match := _EVERY_HOURS.match(abbreviation):
        repeat = {"frequency": 1, "period": int(match.group(1)), "periodUnit": "h"}
    code: JSON = {"text": frequency}
    if abbreviation in _TIMING_CODES:
        code["coding"] = [{"system": _TIMING_ABBREVIATION, "code": abbreviation}]
    return {"code": code, "repeat": repeat}


def _id_document(id_type: str, id_number: str) -> JSON:
    """The ID document on the resident row: the 身份证 in its WS/T 500 system, other documents
    (户口簿, passport …, CV02.01.101) in a local system per document type."""
    if id_type == "01":
        return _identifier(CITIZEN_ID_SYSTEM, id_number, "official", "居民身份证号")
    label = codes.meaning("id_type", id_type) or f"证件类别 {id_type}"
    return _identifier(f"{LOCAL_BASE}/sid/id-document/{id_type}", id_number, "secondary", label)


_IDENTIFIER_SYSTEMS = {
    "card": (CARD_NUMBER_SYSTEM, "official", "居民健康卡号"),
    "citizen-id": (CITIZEN_ID_SYSTEM, "official", "居民身份证号"),
    "archive": (ARCHIVE_NUMBER_SYSTEM, "secondary", "健康档案标识号"),
    "ncms": (f"{LOCAL_BASE}/sid/ncms", "secondary", "新农合证号"),
    "visit-card": (f"{LOCAL_BASE}/sid/visit-card", "usual", "就诊卡号"),
}


def _resident_identifier(row: t.ResidentIdentifier) -> JSON:
    """An MPI identifier.  Numbers an institution assigns (a visit card: 一院一卡) are unique
    only within it, so its code is part of the system and it is the assigner."""
    system, use, label = _IDENTIFIER_SYSTEMS.get(
        row.system, (f"{LOCAL_BASE}/sid/{row.system}", "secondary", row.system)
    )
    assigner = (row.assigner or "").strip()
    if assigner:
        system = f"{system}/{assigner}"
    identifier = _identifier(system, row.value, use if row.active is not False else "old", label)
    if assigner:
        identifier["assigner"] = {
            "identifier": {"system": INSTITUTION_SYSTEM, "value": assigner},
            "display": assigner,
        }
    return identifier


def _identifier(system: str, value: str, use: str, label: str) -> JSON:
    return {"use": use, "type": {"text": label}, "system": system, "value": value}


def _unique_identifiers(identifiers: Sequence[JSON]) -> list[JSON]:
    """The first of each (system, value): the card number passed in wins over the MPI's copy."""
    seen: set[tuple[str, str]] = set()
    out = []
    for identifier in identifiers:
        key = (identifier["system"], identifier["value"].strip())
        if key not in seen:
            seen.add(key)
            out.append(identifier)
    return out


__all__ = [
    "CARD_NUMBER_SYSTEM",
    "CITIZEN_ID_SYSTEM",
    "COMPOUND_SURNAMES",
    "ROUTE_NAMES",
    "ROUTE_SYSTEM",
    "VACCINE_SYSTEM",
    "allergy_intolerance",
    "bundle",
    "condition",
    "encounter",
    "immunization",
    "medication_request",
    "observation",
    "patient",
    "split_name",
    "validate",
]
