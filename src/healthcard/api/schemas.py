"""Request bodies of the API (pydantic), separate from the tables and from the domain's
dataclasses (STYLE.md habit 11).  They check shape — types, lengths, required fields; the
services check meaning (an ICD-10 code that exists, a date not in the future) and answer with
field-named errors either way."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from healthcard.platform import records as rec

Text = Annotated[str, Field(min_length=1, max_length=200)]
Code = Annotated[str, Field(min_length=1, max_length=20)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_control_characters(cls, data: object) -> object:
        """No text of ours holds a NUL or another C0 control character (PostgreSQL cannot store
        NUL; the card's GBK fields have no use for the others): refused with the field's name."""
        if isinstance(data, dict):
            for key, value in data.items():
                if isinstance(value, str) and any(ord(c) < 32 and c not in "\t\n\r" for c in value):
                    raise ValueError(f"{key}: control characters are not allowed")
        return data


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("a time needs its UTC offset, e.g. 2026-11-24T09:30:00+08:00")
    return value


class Login(Strict):
    username: Annotated[str, Field(min_length=1, max_length=40)]
    password: Annotated[str, Field(min_length=1, max_length=200)]


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    role: str


class CardLogin(Strict):
    card_number: Annotated[str, Field(min_length=1, max_length=18)]
    chip_serial: Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{16}$")]


class ChallengeIn(Strict):
    terminal_id: Annotated[str, Field(min_length=1, max_length=40)]


class ChallengeOut(BaseModel):
    nonce: str


class TerminalLogin(Strict):
    terminal_id: Annotated[str, Field(min_length=1, max_length=40)]
    nonce: Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{80}$")]
    certificate: Annotated[str | None, Field(default=None, pattern=r"^([0-9A-Fa-f]{2}){1,200}$")] = None
    signature: Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{128}$")]


class SwipeIn(Strict):
    card_number: Annotated[str, Field(min_length=1, max_length=18)]
    chip_serial: Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{16}$")]
    stage: str = "consultation"
    terminal_kind: Annotated[str, Field(max_length=16)] = "workstation"


class DiagnosisIn(Strict):
    code: Annotated[str, Field(min_length=1, max_length=20)]  # national extensions: I10.x00x002
    name: Annotated[str | None, Field(max_length=100)] = None
    primary: bool = False
    diagnosed_on: dt.date | None = None

    def domain(self) -> rec.DiagnosisIn:
        return rec.DiagnosisIn(self.code, self.name, self.primary, self.diagnosed_on)


class ObservationIn(Strict):
    kind: Literal["lab", "exam"]
    code: Code
    name: Annotated[str, Field(min_length=1, max_length=80)]
    value: Annotated[str, Field(min_length=1, max_length=200)]
    unit: Annotated[str, Field(max_length=20)] = ""
    low: float | None = Field(default=None, allow_inf_nan=False)
    high: float | None = Field(default=None, allow_inf_nan=False)
    observed_at: dt.datetime | None = None

    _aware = field_validator("observed_at")(_aware)

    def domain(self) -> rec.ObservationIn:
        return rec.ObservationIn(
            self.kind, self.code, self.name, self.value, self.unit, self.low, self.high, self.observed_at
        )


class PrescriptionIn(Strict):
    drug: Annotated[str, Field(min_length=1, max_length=50)]
    dose: Annotated[str, Field(min_length=1, max_length=10)]
    dose_unit: Annotated[str, Field(min_length=1, max_length=6)]
    route_code: Annotated[str, Field(min_length=1, max_length=2)]
    frequency: Annotated[str, Field(min_length=1, max_length=20)]
    days: int = Field(ge=-100000, le=100000)
    drug_code: Annotated[str | None, Field(max_length=20)] = None

    def domain(self) -> rec.PrescriptionIn:
        return rec.PrescriptionIn(
            self.drug, self.dose, self.dose_unit, self.route_code, self.frequency, self.days, self.drug_code
        )


class ProcedureIn(Strict):
    code: Annotated[str, Field(min_length=1, max_length=10)]
    name: Annotated[str, Field(min_length=1, max_length=80)]
    performed_on: dt.date | None = None

    def domain(self) -> rec.ProcedureIn:
        return rec.ProcedureIn(self.code, self.name, self.performed_on)


class FeeIn(Strict):
    category: Annotated[str, Field(min_length=1, max_length=20)]
    code: Annotated[str, Field(min_length=1, max_length=1)]
    amount_fen: int = Field(ge=-(10**12), le=10**12)

    def domain(self) -> rec.FeeLine:
        return rec.FeeLine(self.category, self.code, self.amount_fen)


class EncounterOpen(Strict):
    kind: Literal["outpatient", "inpatient", "emergency"] = "outpatient"
    department: Annotated[str, Field(min_length=1, max_length=50)]
    department_code: Annotated[str | None, Field(max_length=10)] = None
    clinician: Annotated[str | None, Field(max_length=40)] = None
    started_at: dt.datetime | None = None
    number: Annotated[str | None, Field(max_length=18)] = None
    card_number: Annotated[str | None, Field(max_length=18)] = None
    carrier: Literal["card", "qr", "login", "none"] = "card"

    _aware = field_validator("started_at")(_aware)


class Items(Strict):
    diagnoses: list[DiagnosisIn] = Field(default_factory=list, max_length=20)
    observations: list[ObservationIn] = Field(default_factory=list, max_length=50)
    prescriptions: list[PrescriptionIn] = Field(default_factory=list, max_length=20)
    procedures: list[ProcedureIn] = Field(default_factory=list, max_length=10)


class Close(Strict):
    fees: list[FeeIn] = Field(default_factory=list, max_length=10)
    payment_method: Annotated[str | None, Field(max_length=2)] = None
    card_slot: int | None = Field(default=None, ge=-1000, le=1000)


class UploadIn(Items):
    upload_key: Annotated[str, Field(min_length=16, max_length=64, pattern=r"^[0-9A-Za-z_-]+$")]
    card_number: Annotated[str, Field(min_length=1, max_length=18)]
    chip_serial: Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{16}$")]
    kind: Literal["outpatient", "inpatient", "emergency"] = "outpatient"
    department: Annotated[str, Field(min_length=1, max_length=50)]
    clinician: Annotated[str | None, Field(max_length=40)] = None
    started_at: dt.datetime
    ended_at: dt.datetime | None = None
    fees: list[FeeIn] = Field(default_factory=list, max_length=10)
    payment_method: Annotated[str | None, Field(max_length=2)] = None
    card_slot: int | None = Field(default=None, ge=-1000, le=1000)
    institution_code: Annotated[str | None, Field(max_length=22)] = None

    _aware = field_validator("started_at", "ended_at")(_aware)


class UploadOut(BaseModel):
    encounter_id: int
    created: bool


class AllergyIn(Strict):
    allergen: Annotated[str, Field(min_length=1, max_length=20)]
    reaction: Annotated[str, Field(min_length=1, max_length=100)]
    severity: Literal["mild", "moderate", "severe"] | None = None


class ArchiveIn(Strict):
    archive_number: Annotated[str | None, Field(max_length=17)] = None
    abo: int | None = Field(default=None, ge=-100, le=100)
    rh: Annotated[str | None, Field(max_length=1)] = None
    alerts: dict[str, bool | None] | None = None
    other_alert: Annotated[str | None, Field(max_length=80)] = None
    psychiatric: bool | None = None
    history: list[dict[str, str]] | None = Field(default=None, max_length=50)
    family_history: list[dict[str, str]] | None = Field(default=None, max_length=50)


class DoseIn(Strict):
    vaccine: Annotated[str, Field(min_length=1, max_length=4)]
    dose: int = Field(ge=-100, le=100)
    given_on: dt.date
    lot: Annotated[str, Field(max_length=30)] = ""
    institution_code: Annotated[str | None, Field(max_length=22)] = None


class BreakGlassIn(Strict):
    reason: Annotated[str, Field(min_length=1, max_length=200)]


class HideIn(Strict):
    category: Annotated[str, Field(min_length=1, max_length=12)]
    hidden: bool


class MergeIn(Strict):
    survivor: Annotated[str, Field(min_length=1, max_length=32)]
    duplicate: Annotated[str, Field(min_length=1, max_length=32)]
    reason: Annotated[str, Field(min_length=1, max_length=200)]


class UnmergeIn(Strict):
    duplicate: Annotated[str, Field(min_length=1, max_length=32)]
    reason: Annotated[str, Field(min_length=1, max_length=200)]


IdSystemName = Literal["card", "citizen-id", "ncms", "archive", "visit-card", "passport", "other"]


class IdentifierIn(Strict):
    system: IdSystemName
    value: Annotated[str, Field(min_length=1, max_length=40)]


class CandidateIn(Strict):
    local_id: Annotated[str, Field(min_length=1, max_length=40)]
    name: Annotated[str, Field(min_length=1, max_length=60)]
    sex: int = Field(ge=0, le=9)
    birth_date: dt.date
    area_code: Annotated[str | None, Field(max_length=6)] = None
    id_number: Annotated[str | None, Field(max_length=18)] = None


class DecisionIn(Strict):
    decision: Literal["link", "create", "reject"]
    resident_id: Annotated[str | None, Field(max_length=32)] = None
    reason: Annotated[str, Field(max_length=200)] = ""


class ResidentRef(BaseModel):
    resident_id: str


class GrantOut(BaseModel):
    institution_code: str
    expires_at: dt.datetime


class VisitElsewhereOut(BaseModel):
    """A visit the resident made in another city (cross-region care): where, when, what kind;
    the record itself stays in that city."""

    city_code: str
    city_name: str
    encounter_id: int
    kind: str
    day: dt.date
    institution_code: str
    institution_name: str
