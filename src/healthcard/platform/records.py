"""The resident's health records on the platform (ARCHITECTURE.md §3 platform/records).

What the platform holds about a resident's health, and the one place that checks it:

* the **health archive** (居民健康档案): blood group, the DF02 medical alerts and the psychiatric
  flag, past history and family history — one row per resident, upserted;
* **allergies** (one per allergen, in the card's own limits: DF02/EF07 holds 20 bytes of GBK for
  the allergen, 100 for the reaction);
* **encounters** — outpatient, inpatient and emergency visits — with their diagnoses (ICD-10,
  :mod:`healthcard.platform.icd10`), lab and exam results (value, unit, normal range, H/L/N
  flag), prescriptions (drug, dose, route, frequency, days), procedures and fee lines.

An encounter is OPEN while the clinician records and CLOSED when the visit is over; an offline
terminal uploads a whole closed encounter at once, idempotently on (institution, upload key), so
a retried upload after a lost answer never makes a second visit.

Sensitivity: every diagnosis is tagged with its category (:func:`~healthcard.platform.icd10.
sensitivity`) and every other item of the encounter with the encounter's category — the most
sensitive of its diagnoses — so that a resident's hidden categories are left out by the query
itself, never after the fact.

The **on-card summary** is a view computed from these (:meth:`Records.summary`): what DF02 holds
plus the newest outpatient visits of DF03, read in a handful of indexed queries at every swipe.
:meth:`Records.card_application` turns it into what a replacement chip carries, and
:func:`card_record` turns a visit into the record the terminal writes at the end of it: the ED
(门诊信息) items of an outpatient or emergency visit, the EE (住院信息) items of an inpatient stay
with its fee lines and the card's fee totals (:func:`ee_fee_items`, :data:`EE_TOTALS` — card
layout, kept here so that the settlement, which writes the fees, depends on records and not
the other way round).

Every input is checked before anything is written; a refusal is an
:class:`~healthcard.errors.InvalidValue` naming the field (``diagnoses[0].code``), and nothing
of the call is stored.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    BindParameter,
    Boolean,
    Date,
    Float,
    Integer,
    String,
    Table,
    bindparam,
    cast,
    exists,
    insert,
    literal_column,
    null,
    select,
    union_all,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from healthcard.card.profile import ALERT_FLAGS, visit_item
from healthcard.clock import SHANGHAI, Clock
from healthcard.codes import meaning
from healthcard.errors import Duplicate, InvalidValue, NotFound, TransitionRefused
from healthcard.issuance.application import (
    ALLERGEN_BYTES,
    HEALTH_RECORD_LENGTH,
    MAX_ALLERGIES,
    MAX_IMMUNIZATIONS,
    OTHER_ALERT_BYTES,
    REACTION_BYTES,
    VACCINE_BYTES,
    Application,
)
from healthcard.issuance.identity import area
from healthcard.platform import icd10
from healthcard.platform.access import Carrier, Sensitivity
from healthcard.platform.fields import text as _text
from healthcard.platform.immunization import vaccines
from healthcard.storage.tables import (
    Allergy,
    Base,
    Diagnosis,
    Encounter,
    HealthArchive,
    ImmunizationDose,
    Institution,
    Observation,
    Prescription,
    Procedure,
    Resident,
    UTCDateTime,
)
from healthcard.storage.uow import UnitOfWork


class EncounterKind(StrEnum):
    OUTPATIENT = "outpatient"  # 门诊: written to a DF03/ED file of the card
    INPATIENT = "inpatient"  # 住院: DF03/EE
    EMERGENCY = "emergency"  # 急诊: an outpatient visit of the emergency department (ED files)


class EncounterStatus(StrEnum):
    OPEN = "open"  # the clinician is still recording: items may be added
    CLOSED = "closed"  # the visit is over: fees and payment set, written back to the card


# --- what callers give ----------------------------------------------------------------------------
@dataclass(frozen=True)
class DiagnosisIn:
    code: str  # ICD-10, WHO or a national extension ("J06.900"); stored in the WHO form
    name: str | None = None  # the clinician's wording; default the Chinese (else English) name
    primary: bool = False  # 主要诊断: first on the card
    diagnosed_on: dt.date | None = None  # default: the local day the encounter started


@dataclass(frozen=True)
class ObservationIn:
    kind: str  # "lab" (检验) | "exam" (检查)
    code: str
    name: str
    value: str  # as reported; a plain number is also kept as a number and flagged H / L / N
    unit: str = ""
    low: float | None = None  # the normal range
    high: float | None = None
    observed_at: dt.datetime | None = None


@dataclass(frozen=True)
class PrescriptionIn:
    drug: str
    dose: str  # 次剂量: "0.5", "1"
    dose_unit: str  # "g", "mg", "片"
    route_code: str  # WS 364.12 CV06.00.102, two digits ("01" 口服)
    frequency: str  # "bid", "每日3次"
    days: int
    drug_code: str | None = None


@dataclass(frozen=True)
class ProcedureIn:
    code: str  # ICD-9-CM-3
    name: str
    performed_on: dt.date | None = None


@dataclass(frozen=True)
class FeeLine:
    category: str  # 费用分类名称: "西药费"
    code: str  # WS 364.13 CV07.10.001, one digit
    amount_fen: int


@dataclass(frozen=True)
class EncounterIn:
    institution_code: str
    kind: EncounterKind
    department: str
    clinician: str | None
    started_at: dt.datetime
    ended_at: dt.datetime | None = None
    number: str | None = None  # 门诊号 / 住院号; generated when not given
    department_code: str | None = None
    carrier: str = "card"  # healthcard.platform.access.Carrier, or "none"
    card_number: str | None = None
    payment_method: str | None = None  # WS 364.13 CV07.10.003, two digits
    diagnoses: tuple[DiagnosisIn, ...] = ()
    observations: tuple[ObservationIn, ...] = ()
    prescriptions: tuple[PrescriptionIn, ...] = ()
    procedures: tuple[ProcedureIn, ...] = ()
    fees: tuple[FeeLine, ...] = ()
    upload_key: str | None = None  # an offline terminal's idempotency key
    card_slot: int | None = None  # the ED/EE file the visit was written to


# --- what the platform answers --------------------------------------------------------------------
@dataclass(frozen=True)
class DiagnosisView:
    id: int
    code: str
    name: str
    primary: bool
    category: str
    diagnosed_on: dt.date


@dataclass(frozen=True)
class ObservationView:
    id: int
    kind: str
    code: str
    name: str
    value: str
    value_num: float | None
    unit: str
    low: float | None
    high: float | None
    flag: str | None  # H above the range, L below, N within, None without a number or range
    category: str
    observed_at: dt.datetime


@dataclass(frozen=True)
class PrescriptionView:
    id: int
    drug: str
    drug_code: str | None
    dose: str
    dose_unit: str
    route_code: str
    frequency: str
    days: int
    category: str
    prescribed_at: dt.datetime


@dataclass(frozen=True)
class ProcedureView:
    id: int
    code: str
    name: str
    category: str
    performed_on: dt.date


@dataclass(frozen=True)
class EncounterView:
    id: int
    resident_id: str
    institution_code: str
    institution_name: str
    kind: str
    status: str
    number: str
    department: str
    clinician: str | None
    category: str  # the most sensitive category of its diagnoses
    started_at: dt.datetime
    ended_at: dt.datetime | None
    diagnoses: tuple[DiagnosisView, ...]
    observations: tuple[ObservationView, ...]
    prescriptions: tuple[PrescriptionView, ...]
    procedures: tuple[ProcedureView, ...]
    fees: tuple[FeeLine, ...]
    payment_method: str | None
    card_slot: int | None
    upload_key: str | None


@dataclass(frozen=True)
class ArchiveView:
    resident_id: str
    archive_number: str | None
    abo: int | None  # CV04.50.005: 1 A, 2 B, 3 O, 4 AB, 5 不详
    rh: str | None  # 1 阳性, 2 阴性, 3 不详
    alerts: dict[str, bool | None]  # every ALERT_FLAGS name: True / False / None (not recorded)
    other_alert: str
    psychiatric: bool | None
    history: list[Any]
    family_history: list[Any]
    updated_at: dt.datetime
    updated_by: str | None = None


@dataclass(frozen=True)
class AllergyView:
    id: int
    allergen: str
    reaction: str
    severity: str | None
    recorded_at: dt.datetime


@dataclass(frozen=True)
class SummaryView:
    resident_id: str
    name: str
    sex: int
    birth_date: dt.date
    abo: int | None
    rh: str | None
    alerts: list[str]  # the ALERT_FLAGS names recorded as present
    other_alert: str
    psychiatric: bool | None
    allergies: tuple[AllergyView, ...]
    immunizations: tuple[tuple[str, str, int, dt.date], ...]  # (vaccine code, name, dose, date), newest 10
    recent: tuple[EncounterView, ...]  # the newest 3 closed outpatient / emergency visits


# --- checking -------------------------------------------------------------------------------------
#: the categories from least to most sensitive: an encounter takes the highest of its diagnoses
_RANK = {
    Sensitivity.GENERAL: 0,
    Sensitivity.REPRODUCTIVE: 1,
    Sensitivity.PSYCHIATRIC: 2,
    Sensitivity.SUBSTANCE: 3,
    Sensitivity.HIV: 4,
}
_SEVERITIES = ("mild", "moderate", "severe")
_OBSERVATION_KINDS = ("lab", "exam")
_CARRIERS = frozenset({*(c.value for c in Carrier), "none"})
_NUMBER = re.compile(r"[-+]?\d+(\.\d+)?")
_PREFIX = {EncounterKind.OUTPATIENT: "MZ", EncounterKind.INPATIENT: "ZY", EncounterKind.EMERGENCY: "JZ"}
#: the card's visit files: ED01–ED05 (outpatient, emergency), EE01–EE03 (inpatient)
_SLOTS = {EncounterKind.INPATIENT: 3, EncounterKind.OUTPATIENT: 5, EncounterKind.EMERGENCY: 5}
#: the largest fee line a visit file holds: ED 4 bytes cn (8 digits), EE 5 bytes (10 digits)
_MAX_FEE = {EncounterKind.INPATIENT: 10**10 - 1, EncounterKind.OUTPATIENT: 10**8 - 1}
_MAX_DAYS = 999  # YYTS: the card holds 3 bytes cn, the platform a sane prescription
_NUMBER_LENGTH = visit_item("ED", "MZH").length


def _most_sensitive(categories: Iterable[str]) -> str:
    return max(
        (Sensitivity(c) for c in categories), key=lambda c: _RANK[c], default=Sensitivity.GENERAL
    ).value


def _gbk(field: str, value: object, limit: int, noun: str, *, required: bool = True) -> str:
    """Text that fits a card item of ``limit`` bytes of GBK (a Chinese character takes 2)."""
    text = _text(field, value, limit, required=required)
    try:
        size = len(text.encode("gbk"))
    except UnicodeEncodeError as exc:
        bad = text[exc.start : exc.end]
        raise InvalidValue(field, f"{bad!r} cannot be written on the card (not in GBK)") from None
    if size > limit:
        raise InvalidValue(field, f"over-long {noun}: {size} bytes in GBK, the card holds {limit}")
    return text


#: how far a reported time (a terminal's clock: an offline visit's start, an observation) may run
#: ahead of the platform's clock and still be taken, as reported (docs/platform.md "Clock skew");
#: the platform's own receipt time is kept beside it (``created_at``)
CLOCK_SKEW = dt.timedelta(minutes=15)


def _aware(field: str, value: object, now: dt.datetime) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise InvalidValue(field, "expected a date and time")
    if value.tzinfo is None:
        raise InvalidValue(field, "a time needs its time zone (e.g. +08:00)")
    if value > now + CLOCK_SKEW:
        raise InvalidValue(field, f"{value.isoformat()} is in the future")
    return value.astimezone(dt.UTC)


def _day(field: str, value: object, today: dt.date) -> dt.date:
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise InvalidValue(field, "expected a date")
    if value > today:
        raise InvalidValue(field, f"{value.isoformat()} is in the future")
    return value


def _payment(field: str, code: object) -> str | None:
    if code is None or code == "":
        return None
    if not isinstance(code, str) or meaning("payment_method", code) is None:
        raise InvalidValue(field, f"{code!r} is not a payment method (WS 364.13 CV07.10.003, e.g. 03 新农合)")
    return code


def _kind(value: object) -> EncounterKind:
    try:
        return EncounterKind(str(value))
    except ValueError:
        raise InvalidValue("kind", f"{value!r}: outpatient, inpatient or emergency") from None


def _slot(kind: EncounterKind, slot: object) -> int | None:
    if slot is None:
        return None
    top = _SLOTS[kind]
    if isinstance(slot, bool) or not isinstance(slot, int) or not 1 <= slot <= top:
        files = "EE01–EE03" if kind == EncounterKind.INPATIENT else "ED01–ED05"
        raise InvalidValue("card_slot", f"{slot!r}: an {kind.value} visit is written to {files} (1..{top})")
    return slot


def _number_value(value: str) -> float | None:
    if not _NUMBER.fullmatch(value):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _flag(value: float | None, low: float | None, high: float | None) -> str | None:
    if value is None or (low is None and high is None):
        return None
    if high is not None and value > high:
        return "H"
    if low is not None and value < low:
        return "L"
    return "N"


def _bound(field: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidValue(field, f"{value!r} is not a number")
    return float(value)


class _Check:
    """The checks of one call: the clock read once, every refusal before anything is written."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now
        self.today = now.astimezone(SHANGHAI).date()
        self.latest_day = (now + CLOCK_SKEW).astimezone(SHANGHAI).date()  # a terminal past midnight

    def diagnoses(
        self, items: Sequence[DiagnosisIn], day: dt.date, at: str = "diagnoses"
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for n, d in enumerate(items):
            field = f"{at}[{n}]"
            if not isinstance(d, DiagnosisIn):
                raise InvalidValue(field, "expected a DiagnosisIn")
            try:
                code = icd10.lookup(d.code)
            except InvalidValue as exc:
                raise InvalidValue(f"{field}.code", exc.message) from None
            name = _text(f"{field}.name", d.name, 100, required=False) or code.name[:100]
            if d.primary and any(r["primary"] for r in rows):
                raise InvalidValue(f"{field}.primary", "a second primary diagnosis")
            rows.append(
                {
                    "code": code.code,
                    "name": name,
                    "primary": bool(d.primary),
                    "category": icd10.sensitivity(code.code).value,
                    "diagnosed_on": day
                    if d.diagnosed_on is None
                    else _day(f"{field}.diagnosed_on", d.diagnosed_on, self.latest_day),
                }
            )
        return rows

    def observations(
        self, items: Sequence[ObservationIn], at_time: dt.datetime, at: str = "observations"
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for n, o in enumerate(items):
            field = f"{at}[{n}]"
            if not isinstance(o, ObservationIn):
                raise InvalidValue(field, "expected an ObservationIn")
            if o.kind not in _OBSERVATION_KINDS:
                raise InvalidValue(f"{field}.kind", f"{o.kind!r}: lab or exam")
            value = _text(f"{field}.value", o.value, 200)
            low, high = _bound(f"{field}.low", o.low), _bound(f"{field}.high", o.high)
            if low is not None and high is not None and low > high:
                raise InvalidValue(f"{field}.high", f"the normal range {low}–{high} ends before it starts")
            number = _number_value(value)
            rows.append(
                {
                    "kind": o.kind,
                    "code": _text(f"{field}.code", o.code, 20),
                    "name": _text(f"{field}.name", o.name, 80),
                    "value": value,
                    "value_num": number,
                    "unit": _text(f"{field}.unit", o.unit, 20, required=False),
                    "low": low,
                    "high": high,
                    "flag": _flag(number, low, high),
                    "observed_at": at_time
                    if o.observed_at is None
                    else _aware(f"{field}.observed_at", o.observed_at, self.now),
                }
            )
        return rows

    def prescriptions(
        self, items: Sequence[PrescriptionIn], at_time: dt.datetime, at: str = "prescriptions"
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for n, p in enumerate(items):
            field = f"{at}[{n}]"
            if not isinstance(p, PrescriptionIn):
                raise InvalidValue(field, "expected a PrescriptionIn")
            if isinstance(p.days, bool) or not isinstance(p.days, int) or p.days <= 0:
                raise InvalidValue(f"{field}.days", f"{p.days!r}: a whole number of days, at least 1")
            if p.days > _MAX_DAYS:
                raise InvalidValue(f"{field}.days", f"{p.days} days, at most {_MAX_DAYS}")
            if not isinstance(p.route_code, str) or not re.fullmatch(r"[0-9]{2}", p.route_code):
                raise InvalidValue(
                    f"{field}.route_code", f"{p.route_code!r}: two digits (WS 364.12 CV06.00.102, 01 口服)"
                )
            rows.append(
                {
                    "drug": _text(f"{field}.drug", p.drug, 50),
                    "drug_code": _text(f"{field}.drug_code", p.drug_code, 20, required=False) or None,
                    "dose": _text(f"{field}.dose", p.dose, 10),
                    "dose_unit": _text(f"{field}.dose_unit", p.dose_unit, 6),
                    "route_code": p.route_code,
                    "frequency": _text(f"{field}.frequency", p.frequency, 20),
                    "days": p.days,
                    "prescribed_at": at_time,
                }
            )
        return rows

    def procedures(
        self, items: Sequence[ProcedureIn], day: dt.date, at: str = "procedures"
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for n, p in enumerate(items):
            field = f"{at}[{n}]"
            if not isinstance(p, ProcedureIn):
                raise InvalidValue(field, "expected a ProcedureIn")
            rows.append(
                {
                    "code": _text(f"{field}.code", p.code, 10),
                    "name": _text(f"{field}.name", p.name, 80),
                    "performed_on": day
                    if p.performed_on is None
                    else _day(f"{field}.performed_on", p.performed_on, self.latest_day),
                }
            )
        return rows

    def fees(self, items: Sequence[FeeLine], kind: EncounterKind) -> list[dict[str, Any]]:
        top = _MAX_FEE.get(kind, _MAX_FEE[EncounterKind.OUTPATIENT])
        rows: list[dict[str, Any]] = []
        for n, f in enumerate(items):
            field = f"fees[{n}]"
            if not isinstance(f, FeeLine):
                raise InvalidValue(field, "expected a FeeLine")
            if isinstance(f.amount_fen, bool) or not isinstance(f.amount_fen, int):
                raise InvalidValue(f"{field}.amount_fen", "an amount is whole fen")
            if f.amount_fen < 0:
                raise InvalidValue(f"{field}.amount_fen", f"{f.amount_fen}: a fee cannot be negative")
            if f.amount_fen > top:
                raise InvalidValue(f"{field}.amount_fen", f"{f.amount_fen} fen: the card holds at most {top}")
            if not isinstance(f.code, str) or not re.fullmatch(r"[0-9]", f.code):
                raise InvalidValue(f"{field}.code", f"{f.code!r}: one digit (WS 364.13 CV07.10.001)")
            rows.append(
                {
                    "category": _text(f"{field}.category", f.category, 20),
                    "code": f.code,
                    "amount_fen": f.amount_fen,
                }
            )
        return rows

    def ended(self, started: dt.datetime, ended: dt.datetime | None) -> dt.datetime | None:
        if ended is None:
            return None
        ended = _aware("ended_at", ended, self.now)
        if ended < started:
            raise InvalidValue("ended_at", f"{ended.isoformat()} is before the start {started.isoformat()}")
        return ended


@dataclass
class _Checked:
    """An encounter as it will be stored (columns), with its items."""

    encounter: dict[str, Any]
    diagnoses: list[dict[str, Any]]
    observations: list[dict[str, Any]]
    prescriptions: list[dict[str, Any]]
    procedures: list[dict[str, Any]]


def _check_encounter(uow: UnitOfWork, check: _Check, data: EncounterIn) -> _Checked:
    if not isinstance(data, EncounterIn):
        raise InvalidValue("data", "expected an EncounterIn")
    code = _text("institution_code", data.institution_code, 22)
    if uow.reference.institution(code) is None:
        raise InvalidValue("institution_code", f"{code}: no such institution")
    kind = _kind(data.kind)
    started = _aware("started_at", data.started_at, check.now)
    ended = check.ended(started, data.ended_at)
    if data.carrier not in _CARRIERS:
        raise InvalidValue("carrier", f"{data.carrier!r}: one of {', '.join(sorted(_CARRIERS))}")
    number = None
    if data.number is not None:
        number = _gbk("number", data.number, _NUMBER_LENGTH, "visit number")
    upload_key = _text("upload_key", data.upload_key, 64, required=False) or None
    day = started.astimezone(SHANGHAI).date()
    return _Checked(
        encounter={
            "institution_code": code,
            "kind": kind.value,
            "number": number,
            "department": _text("department", data.department, 50),
            "department_code": _text("department_code", data.department_code, 10, required=False) or None,
            "clinician": _text("clinician", data.clinician, 40, required=False) or None,
            "card_number": _text("card_number", data.card_number, 18, required=False) or None,
            "carrier": str(data.carrier),
            "payment_method": _payment("payment_method", data.payment_method),
            "started_at": started,
            "ended_at": ended,
            "upload_key": upload_key,
            "card_slot": _slot(kind, data.card_slot),
            "fees": check.fees(data.fees, kind),
        },
        diagnoses=check.diagnoses(data.diagnoses, day),
        observations=check.observations(data.observations, started),
        prescriptions=check.prescriptions(data.prescriptions, started),
        procedures=check.procedures(data.procedures, day),
    )


# the columns that make an upload "the same visit" (the derived ones — ids, categories, flags,
# the generated number — left out)
_SAME_ENCOUNTER = (
    "institution_code",
    "kind",
    "department",
    "department_code",
    "clinician",
    "card_number",
    "payment_method",
    "started_at",
    "ended_at",
    "card_slot",
    "fees",
)
_SAME_ITEMS = {
    "diagnoses": ("code", "name", "primary", "diagnosed_on"),
    "observations": ("kind", "code", "name", "value", "unit", "low", "high", "observed_at"),
    "prescriptions": ("drug", "drug_code", "dose", "dose_unit", "route_code", "frequency", "days"),
    "procedures": ("code", "name", "performed_on"),
}


def _fingerprint(encounter: Mapping[str, Any], items: Mapping[str, Sequence[Mapping[str, Any]]]) -> object:
    head = tuple(encounter[k] for k in _SAME_ENCOUNTER)
    return head, tuple(
        tuple(sorted(tuple(repr(row[k]) for k in keys) for row in items[name]))
        for name, keys in _SAME_ITEMS.items()
    )


def _view_fingerprint(view: EncounterView, department_code: str | None, card_number: str | None) -> object:
    encounter = {
        "institution_code": view.institution_code,
        "kind": view.kind,
        "department": view.department,
        "department_code": department_code,
        "clinician": view.clinician,
        "card_number": card_number,
        "payment_method": view.payment_method,
        "started_at": view.started_at,
        "ended_at": view.ended_at,
        "card_slot": view.card_slot,
        "fees": [{"category": f.category, "code": f.code, "amount_fen": f.amount_fen} for f in view.fees],
    }
    items = {
        "diagnoses": [vars(d) for d in view.diagnoses],
        "observations": [vars(o) for o in view.observations],
        "prescriptions": [vars(p) for p in view.prescriptions],
        "procedures": [vars(p) for p in view.procedures],
    }
    return _fingerprint(encounter, items)


# --- reading rows into views ----------------------------------------------------------------------
def _fees(raw: Sequence[Mapping[str, Any]] | None) -> tuple[FeeLine, ...]:
    return tuple(FeeLine(str(f["category"]), str(f["code"]), int(f["amount_fen"])) for f in raw or ())


def _encounter_view(
    e: Any,
    institution_name: str,
    diagnoses: Mapping[int, list[DiagnosisView]],
    observations: Mapping[int, list[ObservationView]],
    prescriptions: Mapping[int, list[PrescriptionView]],
    procedures: Mapping[int, list[ProcedureView]],
) -> EncounterView:
    """An encounter (an ORM row or a Core row: the same column names) with its items."""
    return EncounterView(
        id=e.id,
        resident_id=e.resident_id,
        institution_code=e.institution_code,
        institution_name=institution_name,
        kind=e.kind,
        status=e.status,
        number=e.number,
        department=e.department,
        clinician=e.clinician,
        category=e.category,
        started_at=e.started_at,
        ended_at=e.ended_at,
        diagnoses=tuple(diagnoses.get(e.id, ())),
        observations=tuple(observations.get(e.id, ())),
        prescriptions=tuple(prescriptions.get(e.id, ())),
        procedures=tuple(procedures.get(e.id, ())),
        fees=_fees(e.fees),
        payment_method=e.payment_method,
        card_slot=e.card_slot,
        upload_key=e.upload_key,
    )


def _archive_view(row: HealthArchive) -> ArchiveView:
    stored = row.alerts or {}
    return ArchiveView(
        resident_id=row.resident_id,
        archive_number=row.archive_number,
        abo=row.abo,
        rh=row.rh,
        alerts={name: stored.get(name) for name in ALERT_FLAGS},
        other_alert=row.other_alert or "",
        psychiatric=row.psychiatric,
        history=list(row.history or []),
        family_history=list(row.family_history or []),
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


def _allergy_view(row: Allergy) -> AllergyView:
    return AllergyView(row.id, row.allergen, row.reaction, row.severity, row.recorded_at)


def _encounter_query(resident_ids: Sequence[str], hidden: frozenset[str]) -> Any:
    query = (
        select(Encounter, Institution.name)
        .join(Institution, Institution.code == Encounter.institution_code)
        .where(Encounter.resident_id.in_(list(resident_ids)))
    )
    if hidden:
        # the encounter's own category is its most sensitive diagnosis; a visit with a hidden
        # diagnosis under a more sensitive one (F32.9 beside Z21) is left out all the same
        query = query.where(
            Encounter.category.not_in(sorted(hidden)),
            ~exists().where(
                Diagnosis.encounter_id == Encounter.id,
                Diagnosis.resident_id == Encounter.resident_id,
                Diagnosis.category.in_(sorted(hidden)),
            ),
        )
    return query


def _views(uow: UnitOfWork, resident_ids: Sequence[str], rows: Sequence[Any]) -> list[EncounterView]:
    """Encounter views for (Encounter, institution name) rows: one query per item table."""
    if not rows:
        return []
    session = uow.session
    ids = [r[0].id for r in rows]
    owners = sorted({r[0].resident_id for r in rows})
    diagnoses: dict[int, list[DiagnosisView]] = defaultdict(list)
    query_d = select(Diagnosis).where(Diagnosis.resident_id.in_(owners), Diagnosis.encounter_id.in_(ids))
    for d in session.scalars(query_d.order_by(Diagnosis.id)):
        diagnoses[d.encounter_id].append(
            DiagnosisView(d.id, d.code, d.name, d.primary, d.category, d.diagnosed_on)
        )
    observations: dict[int, list[ObservationView]] = defaultdict(list)
    query_o = select(Observation).where(
        Observation.resident_id.in_(owners), Observation.encounter_id.in_(ids)
    )
    for o in session.scalars(query_o.order_by(Observation.id)):
        assert o.encounter_id is not None
        observations[o.encounter_id].append(
            ObservationView(
                o.id,
                o.kind,
                o.code,
                o.name,
                o.value,
                o.value_num,
                o.unit,
                o.low,
                o.high,
                o.flag,
                o.category,
                o.observed_at,
            )
        )
    prescriptions: dict[int, list[PrescriptionView]] = defaultdict(list)
    query_p = select(Prescription).where(
        Prescription.resident_id.in_(owners), Prescription.encounter_id.in_(ids)
    )
    for p in session.scalars(query_p.order_by(Prescription.id)):
        prescriptions[p.encounter_id].append(
            PrescriptionView(
                p.id,
                p.drug,
                p.drug_code,
                p.dose,
                p.dose_unit,
                p.route_code,
                p.frequency,
                p.days,
                p.category,
                p.prescribed_at,
            )
        )
    procedures: dict[int, list[ProcedureView]] = defaultdict(list)
    query_s = select(Procedure).where(Procedure.resident_id.in_(owners), Procedure.encounter_id.in_(ids))
    for s in session.scalars(query_s.order_by(Procedure.id)):
        procedures[s.encounter_id].append(ProcedureView(s.id, s.code, s.name, s.category, s.performed_on))
    return [_encounter_view(e, name, diagnoses, observations, prescriptions, procedures) for e, name in rows]


def _vaccine_names() -> dict[str, str]:
    """Every vaccine code the platform knows (the schedule's and the others: flu, PPV23 …)."""
    return {v.code: v.name for v in vaccines()}


# --- the summary's statements ---------------------------------------------------------------------
# The summary is read at every swipe.  Its statements are built once (SQLAlchemy caches their
# compiled form) and select columns from the tables, not ORM entities: plain rows, no identity
# map, no per-row instance state.
def _table(entity: Any) -> Table:
    return Base.metadata.tables[entity.__tablename__]


_r, _a = _table(Resident).c, _table(HealthArchive).c
_al, _im = _table(Allergy).c, _table(ImmunizationDose).c
_en, _in = _table(Encounter).c, _table(Institution).c
_di, _ob, _pr, _pc = _table(Diagnosis).c, _table(Observation).c, _table(Prescription).c, _table(Procedure).c
_IDS: BindParameter[str] = bindparam("ids", expanding=True)
_PERSON_SLOTS: dict[str, Any] = {
    **{f"s{n}": String() for n in range(1, 6)},
    "i1": Integer(),
    "i2": Integer(),
    "b1": Boolean(),
    "d1": Date(),
    "t1": UTCDateTime(),
    "j1": JSON(),
}
_RESIDENT, _ALLERGY, _DOSE = 0, 1, 2


def _slotted(tag: int, key: Any, source: Any, **slots: Any) -> Any:
    """One branch of :data:`_PERSON`: the tag, a key (an allergy's or a dose's id), then every
    slot — the column given for it, or a NULL of the slot's type."""
    columns = [literal_column(str(tag), Integer).label("tag"), key.label("key")]
    for name, kind in _PERSON_SLOTS.items():
        columns.append((slots[name] if name in slots else cast(null(), kind)).label(name))
    return select(*columns).select_from(source)


_newest_doses = (
    select(_im.id, _im.vaccine, _im.dose, _im.given_on)
    .where(_im.resident_id.in_(_IDS))
    .order_by(_im.given_on.desc(), _im.id.desc())
    .limit(MAX_IMMUNIZATIONS)
    .subquery("newest_doses")
)
#: the summary's person in one round trip: each of the person's residents with its archive's
#: DF02 data (one archive per resident), their allergies, and their newest doses; the rows
#: come unordered (a UNION's branches keep no order) and are sorted by the caller
_PERSON = union_all(
    _slotted(
        _RESIDENT,
        cast(null(), BigInteger),
        _table(Resident).outerjoin(_table(HealthArchive), _a.resident_id == _r.resident_id),
        s1=_r.resident_id,
        s2=_r.name,
        i1=_r.sex,
        d1=_r.birth_date,
        s3=_a.resident_id,
        i2=_a.abo,
        s4=_a.rh,
        j1=_a.alerts,
        s5=_a.other_alert,
        b1=_a.psychiatric,
    ).where(_r.resident_id.in_(_IDS)),
    _slotted(
        _ALLERGY,
        _al.id,
        _table(Allergy),
        s1=_al.allergen,
        s2=_al.reaction,
        s3=_al.severity,
        t1=_al.recorded_at,
    ).where(_al.resident_id.in_(_IDS)),
    _slotted(
        _DOSE,
        _newest_doses.c.id,
        _newest_doses,
        s1=_newest_doses.c.vaccine,
        i1=_newest_doses.c.dose,
        d1=_newest_doses.c.given_on,
    ),
)
_RECENT = (
    select(
        _en.id,
        _en.resident_id,
        _en.institution_code,
        _in.name,
        _en.kind,
        _en.status,
        _en.number,
        _en.department,
        _en.clinician,
        _en.category,
        _en.started_at,
        _en.ended_at,
        _en.fees,
        _en.payment_method,
        _en.card_slot,
        _en.upload_key,
    )
    .join_from(_table(Encounter), _table(Institution), _in.code == _en.institution_code)
    .where(
        _en.resident_id.in_(_IDS),
        _en.kind.in_([EncounterKind.OUTPATIENT.value, EncounterKind.EMERGENCY.value]),
        _en.status == EncounterStatus.CLOSED.value,
    )
    .order_by(_en.started_at.desc(), _en.id.desc())
    .limit(3)
)
_HIDDEN_SET: BindParameter[str] = bindparam("hidden", expanding=True)
#: the same without the visits of a hidden category — by the visit's own category (its most
#: sensitive diagnosis) and by any diagnosis (F32.9 beside Z21 is left out all the same)
_RECENT_SHOWN = _RECENT.where(
    _en.category.not_in(_HIDDEN_SET),
    ~exists().where(
        _di.encounter_id == _en.id,
        _di.resident_id == _en.resident_id,
        _di.category.in_(_HIDDEN_SET),
    ),
)
_VISITS: BindParameter[int] = bindparam("visits", expanding=True)
_OWNERS: BindParameter[str] = bindparam("owners", expanding=True)


def _items(tag: int, table: Any, **slots: Any) -> Any:
    """One item table's rows of the summary's visits in the layout of :data:`_ITEMS`: the tag,
    the visit, the item's id, then each slot — the table's column, or a NULL of the slot's type."""
    c = _table(table).c
    columns = [literal_column(str(tag), Integer).label("tag"), c.encounter_id, c.id]
    for name, kind in _ITEM_SLOTS.items():
        columns.append((slots[name] if name in slots else cast(null(), kind)).label(name))
    return select(*columns).where(c.resident_id.in_(_OWNERS), c.encounter_id.in_(_VISITS))


#: the union's columns after (tag, encounter_id, id): a slot per value, typed (SQLite and
#: PostgreSQL want one type per column of a UNION)
_ITEM_SLOTS: dict[str, Any] = {
    **{f"s{n}": String() for n in range(1, 8)},
    **{f"f{n}": Float() for n in range(1, 4)},
    "i1": Integer(),
    "b1": Boolean(),
    "d1": Date(),
    "t1": UTCDateTime(),
}
_D, _O, _P, _S = 0, 1, 2, 3
#: the items of the summary's visits, the four item tables in one round trip
_ITEMS = union_all(
    _items(_D, Diagnosis, s1=_di.code, s2=_di.name, s3=_di.category, b1=_di.primary, d1=_di.diagnosed_on),
    _items(
        _O,
        Observation,
        s1=_ob.kind,
        s2=_ob.code,
        s3=_ob.name,
        s4=_ob.value,
        s5=_ob.unit,
        s6=_ob.flag,
        s7=_ob.category,
        f1=_ob.value_num,
        f2=_ob.low,
        f3=_ob.high,
        t1=_ob.observed_at,
    ),
    _items(
        _P,
        Prescription,
        s1=_pr.drug,
        s2=_pr.drug_code,
        s3=_pr.dose,
        s4=_pr.dose_unit,
        s5=_pr.route_code,
        s6=_pr.frequency,
        s7=_pr.category,
        i1=_pr.days,
        t1=_pr.prescribed_at,
    ),
    _items(_S, Procedure, s1=_pc.code, s2=_pc.name, s3=_pc.category, d1=_pc.performed_on),
).order_by("tag", "id")


def _recent_views(session: Session, rows: Sequence[Any]) -> tuple[EncounterView, ...]:
    """The summary's visits from :data:`_RECENT` rows, their items in one query."""
    if not rows:
        return ()
    params = {"visits": [r.id for r in rows], "owners": sorted({r.resident_id for r in rows})}
    diagnoses: dict[int, list[DiagnosisView]] = defaultdict(list)
    observations: dict[int, list[ObservationView]] = defaultdict(list)
    prescriptions: dict[int, list[PrescriptionView]] = defaultdict(list)
    procedures: dict[int, list[ProcedureView]] = defaultdict(list)
    for i in session.execute(_ITEMS, params):
        if i.tag == _D:
            diagnoses[i.encounter_id].append(DiagnosisView(i.id, i.s1, i.s2, i.b1, i.s3, i.d1))
        elif i.tag == _O:
            observations[i.encounter_id].append(
                ObservationView(i.id, i.s1, i.s2, i.s3, i.s4, i.f1, i.s5, i.f2, i.f3, i.s6, i.s7, i.t1)
            )
        elif i.tag == _P:
            prescriptions[i.encounter_id].append(
                PrescriptionView(i.id, i.s1, i.s2, i.s3, i.s4, i.s5, i.s6, i.i1, i.s7, i.t1)
            )
        else:
            procedures[i.encounter_id].append(ProcedureView(i.id, i.s1, i.s2, i.s3, i.d1))
    return tuple(_encounter_view(e, e.name, diagnoses, observations, prescriptions, procedures) for e in rows)


# --- the service ----------------------------------------------------------------------------------
class Records:
    """The health records service: archive, allergies, encounters and the card summary."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        #: told of every visit closed here (closed by its clinician, or uploaded closed), in its
        #: transaction: a city node announces the record pointer to its province (wired by
        #: bootstrap; healthcard.federation.nodes.CityAnnouncer.record).  None: nobody is told
        self.on_closed: Callable[[UnitOfWork, EncounterView], None] | None = None

    # --- the archive ----------------------------------------------------------------------------
    def archive(self, uow: UnitOfWork, resident_id: str) -> ArchiveView | None:
        row = uow.session.get(HealthArchive, resident_id)
        return None if row is None else _archive_view(row)

    def put_archive(
        self,
        uow: UnitOfWork,
        resident_id: str,
        *,
        by: str,
        abo: int | None = None,
        rh: str | None = None,
        alerts: Mapping[str, bool | None] | None = None,
        other_alert: str | None = None,
        psychiatric: bool | None = None,
        history: Sequence[Any] | None = None,
        family_history: Sequence[Any] | None = None,
        archive_number: str | None = None,
    ) -> ArchiveView:
        """Create or update the resident's archive.  A field left at None keeps what is stored;
        ``alerts`` updates the flags it names (a None value there means "not recorded").

        Each value is checked against its card coding, because the archive is what a
        replacement card is written from: ABO 1–5 (CV04.50.005), Rh 1–3, alert names of DF02/EF05,
        ``other_alert`` within DF02/EF05's 40 bytes of GBK, a 17-digit archive number whose first
        six digits are a GB/T 2260 area (DECISIONS.md §9)."""
        self._resident(uow, resident_id)
        _text("by", by, 40)
        if abo is not None and (
            isinstance(abo, bool) or not isinstance(abo, int) or meaning("abo", f"{abo:02d}") is None
        ):
            raise InvalidValue("abo", f"{abo!r}: an ABO code (CV04.50.005: 1 A, 2 B, 3 O, 4 AB, 5 不详)")
        if rh is not None:
            rh = str(rh)
            if meaning("rh", rh) is None:
                raise InvalidValue("rh", f"{rh!r}: an Rh code (1 Rh阳性, 2 Rh阴性, 3 不详)")
        flags: dict[str, bool | None] = {}
        for name, value in (alerts or {}).items():
            if name not in ALERT_FLAGS:
                raise InvalidValue(
                    f"alerts.{name}", f"not a medical alert (DF02/EF05: {', '.join(ALERT_FLAGS)})"
                )
            if value is not None and not isinstance(value, bool):
                raise InvalidValue(f"alerts.{name}", "true, false or null (not recorded)")
            flags[name] = value
        if other_alert is not None:
            other_alert = _gbk("other_alert", other_alert, OTHER_ALERT_BYTES, "medical alert", required=False)
        if psychiatric is not None and not isinstance(psychiatric, bool):
            raise InvalidValue("psychiatric", "true, false or null (not recorded)")
        lists = {"history": history, "family_history": family_history}
        for field, entries in lists.items():
            if entries is None:
                continue
            if isinstance(entries, str | bytes) or not isinstance(entries, Sequence):
                raise InvalidValue(field, "expected a list")
            try:
                json.dumps(list(entries), ensure_ascii=False)
            except (TypeError, ValueError):
                raise InvalidValue(field, "entries must be text, numbers or mappings of them") from None
        if archive_number is not None:
            archive_number = self._archive_number(uow, resident_id, archive_number)

        now = self.clock.now()
        row = uow.session.get(HealthArchive, resident_id, with_for_update=True)
        if row is None:
            row = HealthArchive(
                resident_id=resident_id,
                archive_number=None,
                abo=None,
                rh=None,
                alerts=dict.fromkeys(ALERT_FLAGS),
                other_alert="",
                psychiatric=None,
                history=[],
                family_history=[],
                created_at=now,
            )
            uow.session.add(row)
        if abo is not None:
            row.abo = abo
        if rh is not None:
            row.rh = rh
        if flags:
            row.alerts = {**dict.fromkeys(ALERT_FLAGS), **(row.alerts or {}), **flags}
        if other_alert is not None:
            row.other_alert = other_alert
        if psychiatric is not None:
            row.psychiatric = psychiatric
        if history is not None:
            row.history = list(history)
        if family_history is not None:
            row.family_history = list(family_history)
        if archive_number is not None:
            row.archive_number = archive_number
        row.updated_at = now
        row.updated_by = by
        uow.session.flush()
        return _archive_view(row)

    def _archive_number(self, uow: UnitOfWork, resident_id: str, value: object) -> str:
        if not isinstance(value, str) or not re.fullmatch(rf"[0-9]{{{HEALTH_RECORD_LENGTH}}}", value):
            raise InvalidValue(
                "archive_number", f"{value!r}: a health-archive number is {HEALTH_RECORD_LENGTH} digits"
            )
        if area(value[:6]) is None:
            raise InvalidValue(
                "archive_number", f"{value}: its first 6 digits are not a GB/T 2260 county code"
            )
        holder = uow.session.scalar(
            select(HealthArchive.resident_id).where(HealthArchive.archive_number == value)
        )
        if holder is not None and holder != resident_id:
            raise Duplicate("archive_number", f"{value} is another resident's archive number")
        return value

    # --- allergies ------------------------------------------------------------------------------
    def add_allergy(
        self,
        uow: UnitOfWork,
        resident_id: str,
        *,
        allergen: str,
        reaction: str,
        severity: str | None = None,
        by: str,
    ) -> AllergyView:
        """Record an allergy, in what DF02/EF07 holds (allergen 20 bytes, reaction 100 bytes of
        GBK); one row per allergen."""
        self._resident(uow, resident_id)
        allergen = _gbk("allergen", allergen, ALLERGEN_BYTES, "allergen name")
        reaction = _gbk("reaction", reaction, REACTION_BYTES, "reaction", required=False)
        if severity is not None and severity not in _SEVERITIES:
            raise InvalidValue("severity", f"{severity!r}: one of {', '.join(_SEVERITIES)}")
        by = _text("by", by, 40)
        known = uow.session.scalar(
            select(Allergy.id).where(Allergy.resident_id == resident_id, Allergy.allergen == allergen)
        )
        if known is not None:
            raise Duplicate("allergen", f"{allergen} is already recorded")
        row = Allergy(
            resident_id=resident_id,
            allergen=allergen,
            reaction=reaction,
            severity=severity,
            recorded_at=self.clock.now(),
            recorded_by=by,
        )
        uow.session.add(row)
        uow.session.flush()
        return _allergy_view(row)

    def allergies(self, uow: UnitOfWork, resident_ids: Sequence[str]) -> list[AllergyView]:
        """Newest first."""
        query = (
            select(Allergy)
            .where(Allergy.resident_id.in_(list(resident_ids)))
            .order_by(Allergy.recorded_at.desc(), Allergy.id.desc())
        )
        return [_allergy_view(row) for row in uow.session.scalars(query)]

    # --- encounters -----------------------------------------------------------------------------
    def open_encounter(self, uow: UnitOfWork, resident_id: str, data: EncounterIn) -> EncounterView:
        """Start a visit (OPEN) with whatever items are known already; the visit number (门诊号 /
        住院号) is the institution's next one when not given."""
        self._resident(uow, resident_id)
        checked = _check_encounter(uow, _Check(self.clock.now()), data)
        key = checked.encounter["upload_key"]
        if key is not None and uow.session.scalar(
            select(Encounter.id).where(
                Encounter.institution_code == checked.encounter["institution_code"],
                Encounter.upload_key == key,
            )
        ):
            raise Duplicate("upload_key", f"{key} is already taken at this institution")
        encounter = self._insert(uow, resident_id, checked, EncounterStatus.OPEN)
        return self.encounter(uow, [resident_id], encounter.id)

    def add_items(
        self,
        uow: UnitOfWork,
        resident_id: str,
        encounter_id: int,
        *,
        diagnoses: Sequence[DiagnosisIn] = (),
        observations: Sequence[ObservationIn] = (),
        prescriptions: Sequence[PrescriptionIn] = (),
        procedures: Sequence[ProcedureIn] = (),
    ) -> EncounterView:
        """Add items to an OPEN encounter of this resident; the encounter's category follows its
        diagnoses."""
        encounter = self._own(uow, resident_id, encounter_id)
        if encounter.status != EncounterStatus.OPEN:
            raise TransitionRefused(f"encounter {encounter_id} is {encounter.status}: items go on open ones")
        check = _Check(self.clock.now())
        checked = _Checked(
            encounter={},
            diagnoses=check.diagnoses(diagnoses, check.today),
            observations=check.observations(observations, check.now),
            prescriptions=check.prescriptions(prescriptions, check.now),
            procedures=check.procedures(procedures, check.today),
        )
        self._add_rows(uow, resident_id, encounter, checked)
        return self.encounter(uow, [resident_id], encounter_id)

    def close_encounter(
        self,
        uow: UnitOfWork,
        resident_id: str,
        encounter_id: int,
        *,
        fees: Sequence[FeeLine] = (),
        payment_method: str | None = None,
        ended_at: dt.datetime | None = None,
        card_slot: int | None = None,
    ) -> EncounterView:
        """End an OPEN visit: fees, payment method, end time (default now) and the card file it
        was written to."""
        encounter = self._own(uow, resident_id, encounter_id)
        if encounter.status != EncounterStatus.OPEN:
            raise TransitionRefused(f"encounter {encounter_id} is already {encounter.status}")
        check = _Check(self.clock.now())
        kind = EncounterKind(encounter.kind)
        lines = check.fees(fees, kind)
        method = _payment("payment_method", payment_method)
        ended = check.ended(encounter.started_at, ended_at) or check.ended(encounter.started_at, check.now)
        slot = _slot(kind, card_slot)
        encounter.status = EncounterStatus.CLOSED.value
        encounter.ended_at = ended
        if lines:
            encounter.fees = lines
        if method is not None:
            encounter.payment_method = method
        if slot is not None:
            encounter.card_slot = slot
        self._categorise(uow, resident_id, encounter)
        view = self.encounter(uow, [resident_id], encounter_id)
        if self.on_closed is not None:
            self.on_closed(uow, view)
        return view

    def record_encounter(
        self, uow: UnitOfWork, resident_id: str, data: EncounterIn
    ) -> tuple[EncounterView, bool]:
        """A whole visit at once, CLOSED — an offline terminal's queued upload.  Idempotent on
        (institution, upload key): the same upload again returns the first encounter and False;
        the same key with other content is refused (:class:`Duplicate`), never merged."""
        self._resident(uow, resident_id)
        if not data.upload_key:
            raise InvalidValue("upload_key", "an upload needs its idempotency key")
        checked = _check_encounter(uow, _Check(self.clock.now()), data)
        if checked.encounter["ended_at"] is None:
            # an upload arrives late: "now" is not when the visit ended, its start is closer
            checked.encounter["ended_at"] = checked.encounter["started_at"]
        known = self._uploaded(uow, resident_id, checked)
        if known is not None:
            return known, False
        try:
            with uow.session.begin_nested():
                encounter = self._insert(uow, resident_id, checked, EncounterStatus.CLOSED)
        except IntegrityError:
            # another process stored the same upload between our look and our insert
            known = self._uploaded(uow, resident_id, checked)
            if known is None:
                raise
            return known, False
        view = self.encounter(uow, [resident_id], encounter.id)
        if self.on_closed is not None:
            self.on_closed(uow, view)
        return view, True

    def _uploaded(self, uow: UnitOfWork, resident_id: str, checked: _Checked) -> EncounterView | None:
        """The encounter already stored under this upload key, if it is this very upload."""
        head = checked.encounter
        row = uow.session.scalars(
            select(Encounter).where(
                Encounter.institution_code == head["institution_code"],
                Encounter.upload_key == head["upload_key"],
            )
        ).one_or_none()
        if row is None:
            return None
        if row.resident_id != resident_id:
            raise Duplicate("upload_key", f"{head['upload_key']} was uploaded for another resident")
        view = self.encounter(uow, [resident_id], row.id)
        items = {
            "diagnoses": checked.diagnoses,
            "observations": checked.observations,
            "prescriptions": checked.prescriptions,
            "procedures": checked.procedures,
        }
        number_differs = head["number"] is not None and head["number"] != view.number
        if number_differs or _fingerprint(head, items) != _view_fingerprint(
            view, row.department_code, row.card_number
        ):
            raise Duplicate(
                "upload_key", f"{head['upload_key']} was already uploaded with other content (visit {row.id})"
            )
        return view

    def import_encounters(self, uow: UnitOfWork, visits: Sequence[tuple[str, EncounterIn]]) -> int:
        """Past visits in bulk (a legacy HIS's history, the demo city): each checked exactly as
        :meth:`record_encounter` checks an upload — the first refusal refuses the lot, nothing
        written — then inserted in a few multi-row statements instead of a flush per visit.
        Numbers come from the institutions' counters (one ``take`` per institution and kind);
        each visit is CLOSED with the category of its most sensitive diagnosis.  No
        idempotency: an import is run once (the caller knows what it already imported)."""
        if not visits:
            return 0
        for resident_id, _ in visits:
            self._resident(uow, resident_id)
        check = _Check(self.clock.now())
        checked = [(resident_id, _check_encounter(uow, check, data)) for resident_id, data in visits]
        unnumbered: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for _, c in checked:
            if c.encounter["number"] is None:
                prefix = _PREFIX[EncounterKind(c.encounter["kind"])]
                unnumbered[(prefix, c.encounter["institution_code"])].append(c.encounter)
        for (prefix, institution), heads in unnumbered.items():
            first = uow.counters.take(f"encounter-{prefix}:{institution}", len(heads))
            for n, head in enumerate(heads):
                head["number"] = f"{prefix}{first + n:012d}"
        now = self.clock.now()
        rows = [
            {
                **c.encounter,
                "resident_id": resident_id,
                "status": EncounterStatus.CLOSED.value,
                "category": _most_sensitive(d["category"] for d in c.diagnoses),
                "created_at": now,
            }
            for resident_id, c in checked
        ]
        ids = uow.session.scalars(
            insert(Encounter).returning(Encounter.id, sort_by_parameter_order=True), rows
        ).all()
        items: dict[Any, list[dict[str, Any]]] = {
            Diagnosis: [],
            Observation: [],
            Prescription: [],
            Procedure: [],
        }
        for encounter_id, row, (resident_id, c) in zip(ids, rows, checked, strict=True):
            common = {"resident_id": resident_id, "encounter_id": encounter_id}
            items[Diagnosis] += [{**common, **d} for d in c.diagnoses]
            for table, found in (
                (Observation, c.observations),
                (Prescription, c.prescriptions),
                (Procedure, c.procedures),
            ):
                items[table] += [{**common, **item, "category": row["category"]} for item in found]
        for table, found in items.items():
            if found:
                uow.session.execute(insert(table), found)
        return len(ids)

    def encounter(self, uow: UnitOfWork, resident_ids: Sequence[str], encounter_id: int) -> EncounterView:
        query = _encounter_query(resident_ids, frozenset()).where(Encounter.id == encounter_id)
        rows = list(uow.session.execute(query))
        if not rows:
            raise NotFound("encounter", str(encounter_id))
        return _views(uow, resident_ids, rows)[0]

    def encounters(
        self,
        uow: UnitOfWork,
        resident_ids: Sequence[str],
        *,
        hidden: frozenset[str] = frozenset(),
        kind: EncounterKind | str | None = None,
        limit: int = 50,
    ) -> list[EncounterView]:
        """The resident's visits, newest first, without those of a ``hidden`` category."""
        query = _encounter_query(resident_ids, hidden)
        if kind is not None:
            query = query.where(Encounter.kind == _kind(kind).value)
        query = query.order_by(Encounter.started_at.desc(), Encounter.id.desc()).limit(max(0, limit))
        return _views(uow, resident_ids, list(uow.session.execute(query)))

    # --- the summary ----------------------------------------------------------------------------
    def summary(
        self, uow: UnitOfWork, resident_ids: Sequence[str], *, hidden: frozenset[str] = frozenset()
    ) -> SummaryView:
        """The on-card summary as the platform holds it: who, blood group and alerts, allergies,
        the newest immunizations and the 3 newest closed outpatient / emergency visits.

        Read at every swipe, so three round trips, each a union of indexed reads over the
        person's ids (:data:`_PERSON`: the residents with their archives, the allergies, the
        newest doses; :data:`_RECENT`: the visits, hidden categories left out in the query;
        :data:`_ITEMS`: the four item tables of those visits), plain rows rather than ORM
        entities.  ``resident_ids`` lists the surviving id first (a merged person's records
        live under several); the psychiatric flag is not shown when ``psychiatric`` is hidden."""
        ids = list(resident_ids)
        session = uow.session
        if session.autoflush:  # Core statements below: flush pending work as an ORM query would
            session.flush()
        people: dict[str, Any] = {}
        allergy_rows: list[Any] = []
        dose_rows: list[Any] = []
        for row in session.execute(_PERSON, {"ids": ids}):
            if row.tag == _RESIDENT:
                people[row.s1] = row
            elif row.tag == _ALLERGY:
                allergy_rows.append(row)
            else:
                dose_rows.append(row)
        resident = next((people[i] for i in ids if i in people), None)
        if resident is None:
            raise NotFound("resident", ",".join(ids))
        archive = next((people[i] for i in ids if i in people and people[i].s3 is not None), None)
        names = _vaccine_names()
        dose_rows.sort(key=lambda d: (d.d1, d.key), reverse=True)  # newest first
        immunizations = tuple((d.s1, names.get(d.s1, d.s1), d.i1, d.d1) for d in dose_rows)
        allergy_rows.sort(key=lambda a: (a.t1, a.key), reverse=True)  # newest first
        allergies = tuple(AllergyView(a.key, a.s1, a.s2, a.s3, a.t1) for a in allergy_rows)
        if hidden:
            recent = session.execute(_RECENT_SHOWN, {"ids": ids, "hidden": sorted(hidden)}).all()
        else:
            recent = session.execute(_RECENT, {"ids": ids}).all()
        psychiatric = archive.b1 if archive is not None else None
        if Sensitivity.PSYCHIATRIC.value in hidden:
            psychiatric = None
        stored = (archive.j1 or {}) if archive is not None else {}
        return SummaryView(
            resident_id=resident.s1,
            name=resident.s2,
            sex=resident.i1,
            birth_date=resident.d1,
            abo=archive.i2 if archive is not None else None,
            rh=archive.s4 if archive is not None else None,
            alerts=[name for name in ALERT_FLAGS if stored.get(name)],
            other_alert=(archive.s5 or "") if archive is not None else "",
            psychiatric=psychiatric,
            allergies=allergies,
            immunizations=immunizations,
            recent=_recent_views(session, recent),
        )

    def card_application(self, uow: UnitOfWork, resident_id: str, base: Application) -> Application:
        """What a replacement chip carries: ``base`` (the original application: identity, photo,
        addresses, contacts) with the DF02 data the platform holds now — blood group, alerts,
        psychiatric flag, the newest allergies and immunizations as many as DF02/EF07 and EF08
        hold — and the archive number in DF01/EF08.

        What the platform does not hold (no archive, no allergy, no dose on record) is kept from
        ``base``: a replacement never loses what the old card carried."""
        self._resident(uow, resident_id)
        merged = list(
            uow.session.scalars(select(Resident.resident_id).where(Resident.merged_into == resident_id))
        )
        ids = [resident_id, *sorted(merged)]
        summary = self.summary(uow, ids)
        archive = self.archive(uow, resident_id)
        changes: dict[str, Any] = {}
        if archive is not None:
            changes.update(
                abo=archive.abo,
                rh=archive.rh,
                other_alert=archive.other_alert,
                psychiatric=archive.psychiatric,
                **archive.alerts,
            )
            if archive.archive_number:
                changes["health_record_number"] = archive.archive_number
        # an allergy or a dose the old card carried but the platform never heard of stays: the
        # platform's come first (newest first), then the card's own, as many as the files hold
        if summary.allergies:
            allergies = [
                (_fit(a.allergen, ALLERGEN_BYTES), _fit(a.reaction, REACTION_BYTES))
                for a in summary.allergies
            ]
            known = {allergen for allergen, _ in allergies}
            allergies += [(a, r) for a, r in base.allergies if a not in known]
            changes["allergies"] = allergies[:MAX_ALLERGIES]
        if summary.immunizations:
            doses = [(_fit(name, VACCINE_BYTES), day) for _code, name, _dose, day in summary.immunizations]
            doses += [d for d in base.immunizations if d not in doses]
            changes["immunizations"] = doses[:MAX_IMMUNIZATIONS]
        return replace(base, **changes)

    # --- helpers --------------------------------------------------------------------------------
    def _resident(self, uow: UnitOfWork, resident_id: str) -> Resident:
        resident = uow.residents.get(resident_id)
        if resident is None:
            raise NotFound("resident", resident_id)
        return resident

    def _own(self, uow: UnitOfWork, resident_id: str, encounter_id: int) -> Encounter:
        """The encounter, locked, if it is this resident's; NotFound otherwise (whether it exists
        under another resident is not told)."""
        query = (
            select(Encounter)
            .where(Encounter.id == encounter_id, Encounter.resident_id == resident_id)
            .with_for_update()
        )
        row = uow.session.scalars(query).one_or_none()
        if row is None:
            raise NotFound("encounter", str(encounter_id))
        return row

    def _insert(
        self, uow: UnitOfWork, resident_id: str, checked: _Checked, status: EncounterStatus
    ) -> Encounter:
        head = dict(checked.encounter)
        if head["number"] is None:
            prefix = _PREFIX[EncounterKind(head["kind"])]
            serial = uow.counters.take(f"encounter-{prefix}:{head['institution_code']}")
            head["number"] = f"{prefix}{serial:012d}"
        encounter = Encounter(
            resident_id=resident_id,
            status=status.value,
            category=Sensitivity.GENERAL.value,
            created_at=self.clock.now(),
            **head,
        )
        uow.session.add(encounter)
        uow.session.flush()
        self._add_rows(uow, resident_id, encounter, checked)
        return encounter

    def _add_rows(self, uow: UnitOfWork, resident_id: str, encounter: Encounter, checked: _Checked) -> None:
        common = {"resident_id": resident_id, "encounter_id": encounter.id}
        uow.session.add_all(
            [
                *(Diagnosis(**common, **row) for row in checked.diagnoses),
                *(Observation(**common, **row) for row in checked.observations),
                *(Prescription(**common, **row) for row in checked.prescriptions),
                *(Procedure(**common, **row) for row in checked.procedures),
            ]
        )
        uow.session.flush()
        self._categorise(uow, resident_id, encounter)

    def _categorise(self, uow: UnitOfWork, resident_id: str, encounter: Encounter) -> None:
        """The encounter takes its most sensitive diagnosis's category, and its other items the
        encounter's: a psychiatric visit's prescriptions are psychiatric too."""
        categories = uow.session.scalars(
            select(Diagnosis.category).where(
                Diagnosis.resident_id == resident_id, Diagnosis.encounter_id == encounter.id
            )
        )
        category = _most_sensitive(categories)
        encounter.category = category
        for table in (Observation, Prescription, Procedure):
            uow.session.execute(
                update(table)
                .where(table.resident_id == resident_id, table.encounter_id == encounter.id)
                .values(category=category)
            )
        uow.session.flush()


# --- the card's visit records (ED, EE) -----------------------------------------------------------
def _fit(text: str, limit: int) -> str:
    """``text`` cut at a character boundary to ``limit`` bytes of GBK (characters GBK lacks
    become "?", NULs are dropped): what an ans item of the card can hold."""
    out: list[str] = []
    size = 0
    for ch in text.replace("\x00", ""):
        try:
            raw = ch.encode("gbk")
        except UnicodeEncodeError:
            ch, raw = "?", b"?"
        if size + len(raw) > limit:
            break
        out.append(ch)
        size += len(raw)
    return "".join(out)


def _ans(param: str, text: str | None, file: str = "ED") -> str:
    """``text`` as the ans item ``param`` of the ``file`` (ED or EE) records holds it."""
    return _fit(text or "", visit_item(file, param).length)


def _digits(param: str, text: str, file: str = "ED") -> str | None:
    """A decimal number as a cn item holds it (digits and ".", no sign), or None if it does not
    fit."""
    if not re.fullmatch(r"\d+(\.\d+)?", text):
        return None
    return text if len(text) <= 2 * visit_item(file, param).length else None


def _quantity(value: float) -> str:
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text or "0"


def _primary_first(diagnoses: Iterable[DiagnosisView]) -> list[DiagnosisView]:
    """The order a visit file lists diagnoses in: the primary one first, then as recorded."""
    return sorted(diagnoses, key=lambda d: (not d.primary, d.id))


def _newest_first(procedures: Iterable[ProcedureView]) -> list[ProcedureView]:
    return sorted(procedures, key=lambda s: (-s.performed_on.toordinal(), s.id))


#: ED 检查/检验结果代码: 1 异常, 2 正常, 3 不确定
_RESULT = {"H": "1", "L": "1", "A": "1", "N": "2"}


def card_record(view: EncounterView) -> dict[str, str | int]:
    """The visit record the terminal writes to the card at the end of the visit, by SDK tag:
    the DF03/ED (门诊信息) items of an outpatient or emergency visit, for
    :meth:`~healthcard.terminal.sdk.HealthCardTerminal.write_outpatient_record`, or the
    DF03/EE (住院信息) items of an inpatient stay, for
    :meth:`~healthcard.terminal.sdk.HealthCardTerminal.write_inpatient_record` (the encounter's
    ``kind`` tells the terminal which)."""
    if view.kind == EncounterKind.INPATIENT:
        return _inpatient_items(view)
    return _outpatient_items(view)


def _outpatient_items(view: EncounterView) -> dict[str, str | int]:
    """The ED items (CARD-SPEC.md §4.7.2).

    The file holds 5 diagnoses (the primary first), 10 lab / exam results (the newest first),
    5 medications, 3 procedures and 10 fee lines; text longer than its item is cut at a
    character boundary, numbers that a cn item cannot hold (negative, too long) are left out.
    The time of the visit is written in China's local time."""
    values: dict[str, str | int] = {
        "JZJGMC": _ans("JZJGMC", view.institution_name),
        "JZJGZZJGDM": view.institution_code[: visit_item("ED", "JZJGZZJGDM").length],
        "JZRQSJ": view.started_at.astimezone(SHANGHAI).strftime("%Y%m%d%H%M%S"),
        "MZH": _ans("MZH", view.number),
        "JYKSMC": _ans("JYKSMC", view.department),
    }
    if view.payment_method:
        values["YLFKFS"] = view.payment_method
    for n, d in enumerate(_primary_first(view.diagnoses)[:5], start=1):
        values[f"MZZDMC{n}"] = _ans(f"MZZDMC{n}", d.name)
        values[f"MZZDDM{n}"] = _ans(f"MZZDDM{n}", d.code)
        values[f"ZDRQ{n}"] = d.diagnosed_on.strftime("%Y%m%d")
        if d.code.startswith("R"):  # ICD-10 chapter XVIII: a symptom, the card's 症状 items
            values[f"ZZMC{n}"] = _ans(f"ZZMC{n}", d.name)
            values[f"ZZDM{n}"] = _ans(f"ZZDM{n}", d.code)
    observations = sorted(view.observations, key=lambda o: (-o.observed_at.timestamp(), o.id))
    for n, o in enumerate(observations[:10], start=1):
        values[f"JCJYXMMC{n}"] = _ans(f"JCJYXMMC{n}", o.name)
        values[f"JCJYJGDM{n}"] = _RESULT.get(o.flag or "", "3")
        if o.value_num is not None and (number := _digits(f"JCJYDLJG{n}", _quantity(o.value_num))):
            values[f"JCJYDLJG{n}"] = number
        values[f"JCJYJLDW{n}"] = _ans(f"JCJYJLDW{n}", o.unit)
        values[f"JCJYXMDM{n}"] = _ans(f"JCJYXMDM{n}", o.code)
    prescriptions = sorted(view.prescriptions, key=lambda p: (-p.prescribed_at.timestamp(), p.id))
    for n, p in enumerate(prescriptions[:5], start=1):
        values[f"YWMC{n}"] = _ans(f"YWMC{n}", p.drug)
        values[f"YYTS{n}"] = p.days
        values[f"YWSYPL{n}"] = _ans(f"YWSYPL{n}", p.frequency)
        values[f"YWSYJLDW{n}"] = _ans(f"YWSYJLDW{n}", p.dose_unit)
        if dose := _digits(f"YWSYCJL{n}", p.dose):
            values[f"YWSYCJL{n}"] = dose
        values[f"YWSYTJDM{n}"] = p.route_code
    for n, s in enumerate(_newest_first(view.procedures)[:3], start=1):
        values[f"SSCZMC{n}"] = _ans(f"SSCZMC{n}", s.name)
        values[f"SSCZDM{n}"] = _ans(f"SSCZDM{n}", s.code)
        values[f"SSCZRQ{n}"] = s.performed_on.strftime("%Y%m%d")
    for n, f in enumerate(view.fees[:10], start=1):
        values[f"MZFYFLMC{n}"] = _ans(f"MZFYFLMC{n}", f.category)
        values[f"MZFYFLDM{n}"] = f.code
        if amount := _digits(f"MZFYJE{n}", str(f.amount_fen)):
            values[f"MZFYJE{n}"] = amount
    return values


def _inpatient_items(view: EncounterView) -> dict[str, str | int]:
    """The EE items (CARD-SPEC.md §4.7.1, Appendix A).

    The header (institution, 入院日期 as the local day the stay began, 病案号 = the encounter
    number, the admitting department), 3 diagnoses (the primary first) with the 3 newest
    procedures in the same groups, the discharge (出院日期, the department again — the platform
    keeps one department per stay — and 住院天数) once the stay has ended, and the fees
    (:func:`ee_fee_items`).  Cut and left out as the ED items are."""
    admitted = view.started_at.astimezone(SHANGHAI).date()
    values: dict[str, str | int] = {
        "ZYJGMC": _ans("ZYJGMC", view.institution_name, "EE"),
        "ZYJGZZJGDM": _ans("ZYJGZZJGDM", view.institution_code, "EE"),
        "RYRQ": admitted.strftime("%Y%m%d"),
        "BAH": _ans("BAH", view.number, "EE"),
        "ZYHZRYKSMC": _ans("ZYHZRYKSMC", view.department, "EE"),
    }
    for n, d in enumerate(_primary_first(view.diagnoses)[:3], start=1):
        values[f"JBZDMC{n}"] = _ans(f"JBZDMC{n}", d.name, "EE")
        values[f"JBZDDM{n}"] = _ans(f"JBZDDM{n}", d.code, "EE")
        values[f"QZRQ{n}"] = d.diagnosed_on.strftime("%Y%m%d")
    for n, s in enumerate(_newest_first(view.procedures)[:3], start=1):
        values[f"SSCZMC{n}"] = _ans(f"SSCZMC{n}", s.name, "EE")
        values[f"SSCZDM{n}"] = _ans(f"SSCZDM{n}", s.code, "EE")
        values[f"SSCZRQ{n}"] = s.performed_on.strftime("%Y%m%d")
    if view.ended_at is not None:
        discharged = view.ended_at.astimezone(SHANGHAI).date()
        values["CYRQ"] = discharged.strftime("%Y%m%d")
        values["ZYHZCYKSMC"] = _ans("ZYHZCYKSMC", view.department, "EE")
        # 实际住院天数 (病案首页): the days between admission and discharge, a same-day stay 1
        if days := _digits("ZYHZZYTS", str(max(1, (discharged - admitted).days)), "EE"):
            values["ZYHZZYTS"] = days
    values.update(ee_fee_items(view.fees, view.payment_method))
    return values


#: 费用分类代码 → the EE total it adds to, in the card's order (offset 1594: 床位费, 护理费, 西药费,
#: 中药费, 化验费, 诊疗费, 手术费, 检查费, 其他); 住院总费用 ZYZFY (offset 1589) holds them all.
#: CV07.10.001's own value list was not retrieved (CARD-SPEC.md §11): the codes are this order,
#: 1 to 9, and :data:`healthcard.platform.settlement.fees.CATEGORIES` names them.
EE_TOTALS: Mapping[str, str] = {
    "1": "CWF",
    "2": "ZYHLF",
    "3": "ZYXYF",
    "4": "ZYZYF",
    "5": "ZYHYF",
    "6": "ZYZLF",
    "7": "ZYSSF",
    "8": "ZYJCF",
    "9": "QTZYFY",
}
#: the EE total of a fee whose code has none of its own
_EE_OTHER = "QTZYFY"
_EE_FEE_LINES = 20


def ee_fee_items(fees: Sequence[FeeLine], payment_method: str | None) -> dict[str, str | int]:
    """The EE (住院信息) fee items of an inpatient stay by SDK tag: the payment method, up to 20
    fee lines, 住院总费用 and the nine category totals (a fee of a code without a total of its
    own adds to 其他; lines past the 20th still count in the totals).  Amounts are fen, as the
    card's cn items hold them; a stay without fees has no fee items at all (nothing billed is
    not "billed 0")."""
    values: dict[str, str | int] = {}
    if payment_method:
        values["ZYFYYLFKFSDM"] = payment_method
    if not fees:
        return values
    totals = dict.fromkeys(EE_TOTALS.values(), 0)
    for n, fee in enumerate(fees, start=1):
        if n <= _EE_FEE_LINES:
            values[f"ZYFYFL{n}"] = _ans(f"ZYFYFL{n}", fee.category, "EE")
            values[f"ZYFYFLDM{n}"] = _ans(f"ZYFYFLDM{n}", fee.code, "EE")
            if amount := _digits(f"ZYFYJE{n}", str(fee.amount_fen), "EE"):
                values[f"ZYFYJE{n}"] = amount
        totals[EE_TOTALS.get(fee.code, _EE_OTHER)] += fee.amount_fen
    for tag, total in {"ZYZFY": sum(fee.amount_fen for fee in fees), **totals}.items():
        if digits := _digits(tag, str(total), "EE"):
            values[tag] = digits
    return values


__all__ = [
    "EE_TOTALS",
    "AllergyView",
    "ArchiveView",
    "DiagnosisIn",
    "DiagnosisView",
    "EncounterIn",
    "EncounterKind",
    "EncounterStatus",
    "EncounterView",
    "FeeLine",
    "ObservationIn",
    "ObservationView",
    "PrescriptionIn",
    "PrescriptionView",
    "ProcedureIn",
    "ProcedureView",
    "Records",
    "SummaryView",
    "card_record",
    "ee_fee_items",
]
