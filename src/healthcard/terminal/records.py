"""What the terminal returns: dataclasses with decoded values (dates as dates, codes with
their meaning from the national value sets, money in integer fen)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from healthcard.card import codecs
from healthcard.codes import meaning


@dataclass(frozen=True)
class Code:
    """A coded value and what it means (None when the code is not in the value set)."""

    code: str
    meaning: str | None

    @classmethod
    def of(cls, valueset: str, code: str) -> Code | None:
        return cls(code, meaning(valueset, code)) if code else None

    def __str__(self) -> str:
        return f"{self.code} {self.meaning}" if self.meaning else self.code


def _date(item: str, text: str) -> dt.date | None:
    return codecs.parse_date(item, text)


@dataclass(frozen=True)
class IssuerInfo:
    """DDF1/EF05 发卡机构基本数据."""

    card_category: Code | None
    spec_version: str
    issuer_name: str
    issuer_code: str
    issuer_certificate: bytes
    issue_date: dt.date | None
    card_number: str
    security_code: str
    issue_serial: str
    city_code: str


@dataclass(frozen=True)
class Holder:
    """DDF1/EF06 持卡人基本信息."""

    name: str
    sex: Code | None
    ethnicity: Code | None
    birth_date: dt.date | None
    citizen_id: str


@dataclass(frozen=True)
class CardValidity:
    """DDF1/EF08: expiry, phones, payment methods."""

    expiry_date: dt.date | None
    phones: list[str]
    payment_methods: list[Code]


@dataclass(frozen=True)
class Address:
    type: Code | None
    address: str


@dataclass(frozen=True)
class Contact:
    name: str
    relation: Code | None
    phone: str


@dataclass(frozen=True)
class Occupation:
    """DF01/EF07."""

    education: Code | None
    marital_status: Code | None
    occupation: str


@dataclass(frozen=True)
class Documents:
    """DF01/EF08 证件记录."""

    id_type: Code | None
    id_number: str
    health_record_number: str
    ncms_number: str


@dataclass(frozen=True)
class MedicalAlerts:
    """DF02/EF05 医学警示 + DF02/EF06 特殊信息 (the psychiatric flag, read separately)."""

    abo: Code | None
    rh: Code | None
    flags: dict[str, bool | None]  # name → True yes / False no / None not recorded
    other: str

    @property
    def present(self) -> list[str]:
        return [name for name, on in self.flags.items() if on]


@dataclass(frozen=True)
class Allergy:
    allergen: str
    reaction: str


@dataclass(frozen=True)
class Immunization:
    vaccine: str
    date: dt.date | None


@dataclass(frozen=True)
class Diagnosis:
    symptom: str
    symptom_code: str
    date: dt.date | None
    name: str
    code: str


@dataclass(frozen=True)
class Medication:
    drug: str
    days: str
    frequency: str
    dose_unit: str
    dose: str
    route_code: str


@dataclass(frozen=True)
class Fee:
    category: str
    code: str
    amount_fen: int


@dataclass
class OutpatientRecord:
    """DF03/ED0n 门诊信息. ``values`` holds all 170 items by SDK tag (decoded text)."""

    institution_name: str = ""
    institution_code: str = ""
    visit_time: dt.datetime | None = None
    outpatient_no: str = ""
    department: str = ""
    payment_method: Code | None = None
    diagnoses: list[Diagnosis] = field(default_factory=list)
    medications: list[Medication] = field(default_factory=list)
    fees: list[Fee] = field(default_factory=list)
    values: dict[str, str] = field(default_factory=dict)
    slot: int = 0  # ED file number, 1..5

    @property
    def total_fen(self) -> int:
        return sum(f.amount_fen for f in self.fees)


@dataclass
class InpatientRecord:
    """DF03/EE0n 住院信息. ``values`` holds all 147 items by SDK tag."""

    institution_name: str = ""
    admission_date: dt.date | None = None
    discharge_date: dt.date | None = None
    case_no: str = ""
    department: str = ""
    diagnoses: list[tuple[str, str]] = field(default_factory=list)  # (name, ICD-10)
    total_fen: int = 0
    values: dict[str, str] = field(default_factory=dict)
    slot: int = 0


@dataclass
class Summary:
    """What one swipe gives a clinician offline."""

    issuer: IssuerInfo
    holder: Holder
    alerts: MedicalAlerts
    psychiatric: bool | None
    allergies: list[Allergy]
    immunizations: list[Immunization]
    outpatient: list[OutpatientRecord]
