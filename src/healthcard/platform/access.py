"""Who may see what (ARCHITECTURE.md §3 platform/access): the one policy module.

SKELETON — the vocabulary every platform module shares.  The policy itself (decide, the
relationship lookup, presence grants, break-glass, hidden categories) is being written.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    RESIDENT = "resident"  # 持卡人: their own record, through the portal or a kiosk
    CLINICIAN = "clinician"  # 医生: the full record under a presence grant, care or break-glass
    REGISTRATION = "registration"  # 挂号: identity and card, no clinical data
    CASHIER = "cashier"  # 收费: identity, fees and settlement
    PUBLIC_HEALTH = "public-health"  # 疾控: immunization of its area
    INSURER = "insurer"  # 新农合经办: settlement data, diagnoses only as a claim carries them
    CARD_ADMIN = "card-admin"  # 卡管: identity and card status
    AUDITOR = "auditor"  # the audit trail, no clinical data
    ADMIN = "admin"  # platform operator: accounts, terminals, institutions; no clinical data
    TERMINAL = "terminal"  # a card terminal logged in with its SAM (swipe, upload)


class Category(StrEnum):
    """Categories of a resident's data, the columns of the policy table."""

    DEMOGRAPHICS = "demographics"  # name, sex, birth date, identifiers, addresses
    CARD = "card"  # card status and history
    SUMMARY = "summary"  # what the card carries: blood type, alerts, allergies
    ARCHIVE = "archive"  # 健康档案: history, family history
    ENCOUNTERS = "encounters"  # visits, diagnoses, labs, prescriptions, procedures
    IMMUNIZATION = "immunization"
    SETTLEMENT = "settlement"  # fees, claims
    AUDIT = "audit"  # who looked at the record


class Sensitivity(StrEnum):
    """What a clinical item is about; a resident may hide any but ``general``."""

    GENERAL = "general"
    PSYCHIATRIC = "psychiatric"
    HIV = "hiv"
    REPRODUCTIVE = "reproductive"
    SUBSTANCE = "substance"


class Carrier(StrEnum):
    """How the caller came to the record."""

    CARD = "card"  # the card authenticated at a terminal
    QR = "qr"  # the resident's electronic health card (dynamic QR)
    LOGIN = "login"  # username + password
    TERMINAL = "terminal"  # a terminal's own SAM identity
    UPLOAD = "upload"  # an offline terminal's queued upload


@dataclass(frozen=True)
class Actor:
    """The caller of a platform service: who, in which role, for which institution / area."""

    id: str  # account username, or terminal id
    role: Role
    institution_code: str | None = None
    area_code: str | None = None  # public health: the GB/T 2260 prefix of its area
    resident_id: str | None = None  # a resident's own id
    carrier: Carrier = Carrier.LOGIN
