"""An application for a health card, as a collection point (信息采集点) takes it.

An :class:`Application` holds what the card will carry about its holder (CARD-SPEC.md §4.2–4.6):
DDF1/EF06 name, sex, ethnicity, birth date, citizen ID; DDF1/EF07 the photo; DDF1/EF08 phones
and payment methods; DF01/EF05–EF08 addresses, contacts, education / marital status /
occupation, ID document, health-record and NCMS numbers; DF02/EF05–EF06 the medical alerts;
DF02/EF07–EF08 allergies and immunizations.  Limits (text lengths in GBK bytes, a Chinese
character being two; how many addresses, contacts, allergies…) are read from the card profile
(``healthcard.card.profile``), codes from the national value sets (``healthcard.codes``,
CARD-SPEC.md §8).

* :func:`parse_application` checks everything from a JSON-like mapping (the first error
  raised as :class:`~healthcard.errors.InvalidValue` naming its field, list entries as
  ``contacts[1].phone``, counted from 0);
* :meth:`Application.to_json` / :meth:`Application.from_json` store a checked application;
* :data:`CSV_COLUMNS`, :func:`application_from_row`, :func:`application_to_row` are the flat
  rows of a batch-issuance file (集中发卡);
* :func:`card_contents` is the full card data for personalisation.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

from healthcard.card.personalise import CardContents, Value
from healthcard.card.profile import ALERT_FLAGS, PROFILE_32K, item
from healthcard.codes import meaning, value_set
from healthcard.errors import InvalidValue
from healthcard.issuance.identity import (
    CITIZEN_NUMBER_TYPES,
    SEXES,
    Identity,
    IdType,
    area,
    check_identity,
    identity_area,
)
from healthcard.issuance.photo import normalise_photo


def _count(df: str, ef: str, pattern: str) -> int:
    return sum(1 for i in PROFILE_32K.items(df, ef) if re.fullmatch(pattern, i.name))


# --- limits from the card profile (CARD-SPEC.md §4) ------------------------------------------
NAME_BYTES = item("DDF1", "EF06", "name").length
PHONE_BYTES = item("DDF1", "EF08", "phone1").length
ADDRESS_BYTES = item("DF01", "EF05", "address1").length
CONTACT_NAME_BYTES = item("DF01", "EF06", "contact_name1").length
OCCUPATION_LENGTH = item("DF01", "EF07", "occupation").length
HEALTH_RECORD_LENGTH = item("DF01", "EF08", "health_record_number").length
NCMS_LENGTH = item("DF01", "EF08", "ncms_number").length
OTHER_ALERT_BYTES = item("DF02", "EF05", "other_alert").length
ALLERGEN_BYTES = item("DF02", "EF07", "allergen").length
REACTION_BYTES = item("DF02", "EF07", "reaction").length
VACCINE_BYTES = item("DF02", "EF08", "vaccine").length
MAX_PHONES = _count("DDF1", "EF08", r"phone\d")
MAX_PAYMENT_METHODS = _count("DDF1", "EF08", r"payment_method\d")
MAX_ADDRESSES = _count("DF01", "EF05", r"address\d")
MAX_CONTACTS = _count("DF01", "EF06", r"contact_name\d")
MAX_ALLERGIES = PROFILE_32K.file("DF02", "EF07").record_count
MAX_IMMUNIZATIONS = PROFILE_32K.file("DF02", "EF08").record_count

_ABO_LETTERS = {"A": 1, "B": 2, "O": 3, "AB": 4}
_YES = {"1", "01", "y", "yes", "true", "t", "是"}
_NO = {"0", "00", "n", "no", "false", "f", "否"}


@dataclass(frozen=True)
class Contact:
    """A contact person (DF01/EF06): name, GB/T 4761 relation code, phone."""

    name: str
    relation: str
    phone: str = ""


@dataclass(kw_only=True)
class Application:
    """What a collection point takes for one card (checked by :func:`parse_application`)."""

    name: str
    sex: int  # GB/T 2261.1: 0, 1 男, 2 女, 9
    ethnicity: str  # GB 3304, two digits
    birth_date: dt.date
    id_type: IdType
    id_number: str
    city_code: str  # GB/T 2260 code of the application city; [:2] selects the province's keys
    photo: bytes = b""  # a normalised JPEG (healthcard.issuance.photo), or none
    addresses: list[tuple[str, str]] = field(default_factory=list)  # (type 1 户籍 / 2 现居住, text)
    phones: list[str] = field(default_factory=list)
    contacts: list[Contact] = field(default_factory=list)
    occupation: str = ""  # GB/T 6565, up to 3 characters
    marital_status: str = ""  # GB/T 2261.2, two digits
    education: str = ""  # GB/T 4658, two digits
    ncms_number: str = ""  # 新农合证号, up to 18 digits
    health_record_number: str = ""  # 健康档案编号, 17 digits (DECISIONS.md §9)
    abo: int | None = None  # CV04.50.005: 1 A, 2 B, 3 O, 4 AB, 5 不详
    rh: str | None = None  # 1 阳性, 2 阴性, 3 不详 (DECISIONS.md §8)
    asthma: bool | None = None
    heart_disease: bool | None = None
    cerebrovascular: bool | None = None
    epilepsy: bool | None = None
    coagulation_disorder: bool | None = None
    diabetes: bool | None = None
    glaucoma: bool | None = None
    dialysis: bool | None = None
    organ_transplant: bool | None = None
    organ_loss: bool | None = None
    prosthesis: bool | None = None
    pacemaker: bool | None = None
    other_alert: str = ""
    psychiatric: bool | None = None  # DF02/EF06 精神病标志
    allergies: list[tuple[str, str]] = field(default_factory=list)  # (allergen, reaction)
    immunizations: list[tuple[str, dt.date]] = field(default_factory=list)  # (vaccine, date)
    payment_methods: list[str] = field(default_factory=list)  # CV07.10.003 codes

    @property
    def identity(self) -> Identity:
        return Identity(
            self.id_type,
            self.id_number,
            self.birth_date,
            self.sex,
            identity_area(self.id_type, self.id_number),
        )

    @property
    def card_number(self) -> str:
        """CARD-SPEC.md §2: the ID number (no area look-up: this is asked for every row of a batch)."""
        return self.id_number

    @property
    def flags(self) -> dict[str, bool | None]:
        """The DF02/EF05 medical-alert flags by item name."""
        return {name: getattr(self, name) for name in ALERT_FLAGS}

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict (dates ISO, photo base64) that :meth:`from_json` reads back."""
        out: dict[str, object] = {
            "name": self.name,
            "sex": self.sex,
            "ethnicity": self.ethnicity,
            "birth_date": self.birth_date.isoformat(),
            "id_type": self.id_type.value,
            "id_number": self.id_number,
            "city_code": self.city_code,
            "photo": base64.b64encode(self.photo).decode("ascii"),
            "addresses": [[kind, text] for kind, text in self.addresses],
            "phones": list(self.phones),
            "contacts": [{"name": c.name, "relation": c.relation, "phone": c.phone} for c in self.contacts],
            "occupation": self.occupation,
            "marital_status": self.marital_status,
            "education": self.education,
            "ncms_number": self.ncms_number,
            "health_record_number": self.health_record_number,
            "abo": self.abo,
            "rh": self.rh,
        }
        out.update(self.flags)
        out.update(
            {
                "other_alert": self.other_alert,
                "psychiatric": self.psychiatric,
                "allergies": [[allergen, reaction] for allergen, reaction in self.allergies],
                "immunizations": [[vaccine, date.isoformat()] for vaccine, date in self.immunizations],
                "payment_methods": list(self.payment_methods),
            }
        )
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, object]) -> Application:
        """Read what :meth:`to_json` wrote (already checked: no validation here)."""

        def text(key: str) -> str:
            value = d.get(key, "")
            return value if isinstance(value, str) else str(value)

        def rows(key: str) -> list[Sequence[object]]:
            value = d.get(key) or []
            assert isinstance(value, list)
            return value

        def flag(key: str) -> bool | None:
            value = d.get(key)
            return None if value is None else bool(value)

        abo, rh, sex = d.get("abo"), d.get("rh"), d.get("sex")
        assert isinstance(sex, int) and (abo is None or isinstance(abo, int))
        contacts = d.get("contacts") or []
        assert isinstance(contacts, list) and all(isinstance(c, Mapping) for c in contacts)
        return cls(
            name=text("name"),
            sex=sex,
            ethnicity=text("ethnicity"),
            birth_date=dt.date.fromisoformat(text("birth_date")),
            id_type=IdType(text("id_type")),
            id_number=text("id_number"),
            city_code=text("city_code"),
            photo=base64.b64decode(text("photo")),
            addresses=[(str(kind), str(value)) for kind, value in rows("addresses")],
            phones=[str(p) for p in rows("phones")],
            contacts=[Contact(str(c["name"]), str(c["relation"]), str(c.get("phone", ""))) for c in contacts],
            occupation=text("occupation"),
            marital_status=text("marital_status"),
            education=text("education"),
            ncms_number=text("ncms_number"),
            health_record_number=text("health_record_number"),
            abo=abo,
            rh=None if rh is None else str(rh),
            other_alert=text("other_alert"),
            psychiatric=flag("psychiatric"),
            allergies=[(str(a), str(r)) for a, r in rows("allergies")],
            immunizations=[(str(v), dt.date.fromisoformat(str(day))) for v, day in rows("immunizations")],
            payment_methods=[str(c) for c in rows("payment_methods")],
            **{name: flag(name) for name in ALERT_FLAGS},
        )


_FIELDS = tuple(f.name for f in fields(Application))

# --- checking one value ------------------------------------------------------------------------


def _text(name: str, value: object) -> str:
    """Stripped text; None is empty."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidValue(name, f"expected text, got {type(value).__name__}")
    return str(value).strip()


def _gbk(name: str, value: object, limit: int, noun: str, *, required: bool = False) -> str:
    """Text for an ``ans`` item: GBK, at most ``limit`` bytes, no control characters."""
    text = _text(name, value)
    if not text:
        if required:
            raise InvalidValue(name, f"no {noun} given: it is required")
        return ""
    for ch in text:
        if ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0:
            raise InvalidValue(name, f"control character U+{ord(ch):04X} in the {noun}")
    try:
        size = len(text.encode("gbk"))
    except UnicodeEncodeError as exc:
        bad = text[exc.start : exc.end]
        raise InvalidValue(
            name,
            f"character {bad!r} (U+{ord(bad[0]):04X}) cannot be written on the card (not in GBK); "
            "use the common form of the character",
        ) from None
    if size > limit:
        raise InvalidValue(
            name,
            f"over-long {noun}: {size} bytes in GBK, the card holds {limit} (a Chinese character takes 2)",
        )
    return text


def _code(name: str, value: object, valueset: str, width: int, noun: str, *, required: bool = False) -> str:
    """A code of a national value set; digit codes shorter than ``width`` are zero-filled."""
    code = _text(name, value)
    if not code:
        if required:
            raise InvalidValue(name, f"no {noun} code given: it is required")
        return ""
    if code.isdigit() and len(code) < width:
        code = code.zfill(width)
    if meaning(valueset, code) is None:
        raise InvalidValue(name, f"unknown {noun} code {code!r} ({_standard(valueset)})")
    return code


def _standard(valueset: str) -> str:
    vs = value_set(valueset)
    known = ", ".join(f"{c} {m}" for c, m in list(vs.codes.items())[:10])
    more = ", …" if len(vs.codes) > 10 else ""
    return f"{vs.standard}: {known}{more}"


def _digits(name: str, value: object, noun: str, *, exactly: int | None = None, most: int = 0) -> str:
    text = _text(name, value)
    if not text:
        return ""
    if not text.isascii() or not text.isdigit():
        raise InvalidValue(name, f"{text}: a {noun} is digits only")
    if exactly is not None and len(text) != exactly:
        raise InvalidValue(name, f"{text}: {len(text)} digits, a {noun} has {exactly}")
    if most and len(text) > most:
        raise InvalidValue(name, f"{text}: {len(text)} digits, a {noun} has at most {most}")
    return text


_DATE = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})")


def _date(name: str, value: object, *, required: bool = False) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = _text(name, value)
    if not text:
        if required:
            raise InvalidValue(name, "no date given: it is required")
        return None
    match = _DATE.fullmatch(text)
    if not match:
        raise InvalidValue(name, f"{text!r} is not a date: write YYYY-MM-DD or YYYYMMDD")
    try:
        return dt.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise InvalidValue(name, f"{text} is not a date") from None


def _sex(value: object) -> int:
    if isinstance(value, bool):
        raise InvalidValue("sex", "expected a GB/T 2261.1 code (0, 1 男, 2 女, 9), not true/false")
    text = _text("sex", value)
    if not text:
        raise InvalidValue("sex", "no sex code given: it is required (GB/T 2261.1: 1 男, 2 女)")
    if not text.isdigit() or int(text) not in SEXES:
        raise InvalidValue("sex", f"unknown sex code {text!r} (GB/T 2261.1: 0 未知, 1 男, 2 女, 9 未说明)")
    return int(text)


_PHONE = re.compile(r"\+?[0-9 -]+")


def _phone(name: str, value: object) -> str:
    text = _text(name, value)
    if not text:
        return ""
    if not _PHONE.fullmatch(text) or sum(ch.isdigit() for ch in text) < 3:
        raise InvalidValue(name, f"{text!r} is not a phone number (digits, +, - and spaces)")
    if len(text) > PHONE_BYTES:
        raise InvalidValue(name, f"{text}: {len(text)} characters, the card holds {PHONE_BYTES}")
    return text


def _flag(name: str, value: object) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = _text(name, value).lower()
    if not text:
        return None
    if text in _YES:
        return True
    if text in _NO:
        return False
    raise InvalidValue(name, f"{text!r}: write 1 (yes 是) or 0 (no 否), or leave empty (not recorded)")


def _abo(value: object) -> int | None:
    if isinstance(value, bool):
        raise InvalidValue("abo", "expected an ABO code (1 A, 2 B, 3 O, 4 AB, 5 不详)")
    text = _text("abo", value).upper()
    if not text:
        return None
    code = _ABO_LETTERS.get(text) or (int(text) if text.isdigit() else 0)
    if meaning("abo", f"{code:02d}") is None:
        raise InvalidValue("abo", f"unknown ABO code {text!r} (CV04.50.005: 1 A, 2 B, 3 O, 4 AB, 5 不详)")
    return code


def _rh(value: object) -> str | None:
    text = _text("rh", value)
    if not text:
        return None
    if meaning("rh", text) is None:
        raise InvalidValue("rh", f"unknown Rh code {text!r} (1 Rh阳性, 2 Rh阴性, 3 不详)")
    return text


def _entries(name: str, value: object, limit: int, noun: str) -> list[object]:
    if value is None or value == "":
        return []
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise InvalidValue(name, f"expected a list of {noun}")
    if len(value) > limit:
        raise InvalidValue(name, f"{len(value)} {noun}, the card holds {limit}")
    return list(value)


def _parts(name: str, entry: object, keys: Sequence[str]) -> list[object]:
    """An entry given as a list/tuple of ``len(keys)`` values or a mapping with those keys."""
    if isinstance(entry, Contact):
        return [entry.name, entry.relation, entry.phone]
    if isinstance(entry, Mapping):
        extra = sorted(str(k) for k in entry if k not in keys)
        if extra:
            raise InvalidValue(f"{name}.{extra[0]}", f"unknown key (expected {', '.join(keys)})")
        return [entry.get(k) for k in keys]
    if isinstance(entry, Sequence) and not isinstance(entry, str | bytes) and len(entry) == len(keys):
        return list(entry)
    raise InvalidValue(name, f"expected ({', '.join(keys)})")


def _photo(value: object) -> bytes:
    if value is None or value == "" or value == b"":
        return b""
    if isinstance(value, str):
        try:
            data = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidValue("photo", "not base64 text (give the JPEG's bytes or base64)") from None
    elif isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
    else:
        raise InvalidValue("photo", f"expected JPEG bytes or base64 text, got {type(value).__name__}")
    return normalise_photo(data)


def _city_code(value: object, identity: Identity, today: dt.date) -> str:
    code = _text("city_code", value)
    derived = not code
    if derived:
        if identity.area is None:
            raise InvalidValue(
                "city_code",
                f"required for a {identity.id_type.label} holder: the 6-digit GB/T 2260 code of the "
                "application city (its first two digits choose the province's card keys)",
            )
        code = identity.area[:4] + "00"
    if len(code) != 6 or not code.isascii() or not code.isdigit():
        raise InvalidValue("city_code", f"{code!r}: a GB/T 2260 code is 6 digits, e.g. 410100")
    if meaning("province", code[:2]) is None:
        raise InvalidValue("city_code", f"{code}: {code[:2]} is not a GB/T 2260 province code")
    found = area(code)
    source = " (taken from the ID number; give the application city)" if derived else ""
    if found is None:
        raise InvalidValue("city_code", f"{code} is not a GB/T 2260 code{source}")
    if not found.valid_in(today.year):
        raise InvalidValue("city_code", f"{code} ({found.name}) is no longer in use{source}")
    return code


def _health_record(value: object) -> str:
    text = _digits(
        "health_record_number", value, "health-record number (健康档案编号)", exactly=HEALTH_RECORD_LENGTH
    )
    if text and area(text[:6]) is None:
        raise InvalidValue(
            "health_record_number",
            f"{text}: its first 6 digits {text[:6]} are not a GB/T 2260 county code (DECISIONS.md §9)",
        )
    return text


def _occupation(value: object) -> str:
    text = _text("occupation", value).upper()
    if text and not re.fullmatch(rf"[0-9A-Z]{{1,{OCCUPATION_LENGTH}}}", text):
        raise InvalidValue(
            "occupation", f"{text!r}: a GB/T 6565 occupation code of 1-{OCCUPATION_LENGTH} letters or digits"
        )
    return text


# --- the whole application ---------------------------------------------------------------------


def parse_application(raw: Mapping[str, object], *, today: dt.date) -> Application:
    """Check everything a collection point took; the first problem is raised as
    :class:`~healthcard.errors.InvalidValue` naming its field (keys are the
    :class:`Application` field names; dates ``YYYY-MM-DD`` or ``YYYYMMDD``; the photo as bytes
    or base64)."""
    unknown = sorted(str(k) for k in raw if k not in _FIELDS)
    if unknown:
        raise InvalidValue(unknown[0], "not a field of an application")
    name = _gbk("name", raw.get("name"), NAME_BYTES, "name", required=True)
    sex = _sex(raw.get("sex"))
    ethnicity = _code(
        "ethnicity", raw.get("ethnicity"), "ethnicity", 2, "ethnicity (民族, GB 3304)", required=True
    )
    birth_date = _date("birth_date", raw.get("birth_date"), required=True)
    assert birth_date is not None
    id_type = _text("id_type", raw.get("id_type"))
    if id_type.isdigit() and len(id_type) == 1:
        id_type = id_type.zfill(2)
    identity = check_identity(
        id_type, _text("id_number", raw.get("id_number")), birth_date=birth_date, sex=sex, today=today
    )
    city_code = _city_code(raw.get("city_code"), identity, today)
    photo = _photo(raw.get("photo"))

    addresses = []
    for n, entry in enumerate(_entries("addresses", raw.get("addresses"), MAX_ADDRESSES, "addresses")):
        at = f"addresses[{n}]"
        kind, text = _parts(at, entry, ("type", "text"))
        addresses.append(
            (
                _code(
                    f"{at}.type", kind, "address_type", 1, "address type (1 户籍, 2 现居住)", required=True
                ),
                _gbk(f"{at}.text", text, ADDRESS_BYTES, "address", required=True),
            )
        )
    phones = []
    for n, entry in enumerate(_entries("phones", raw.get("phones"), MAX_PHONES, "phone numbers")):
        phone = _phone(f"phones[{n}]", entry)
        if not phone:
            raise InvalidValue(f"phones[{n}]", "empty phone number")
        phones.append(phone)
    contacts = []
    for n, entry in enumerate(_entries("contacts", raw.get("contacts"), MAX_CONTACTS, "contacts")):
        at = f"contacts[{n}]"
        c_name, relation, c_phone = _parts(at, entry, ("name", "relation", "phone"))
        contacts.append(
            Contact(
                _gbk(f"{at}.name", c_name, CONTACT_NAME_BYTES, "contact name", required=True),
                _code(f"{at}.relation", relation, "relation", 1, "relation (GB/T 4761)", required=True),
                _phone(f"{at}.phone", c_phone),
            )
        )
    occupation = _occupation(raw.get("occupation"))
    marital = _code(
        "marital_status", raw.get("marital_status"), "marital_status", 2, "marital status (GB/T 2261.2)"
    )
    education = _code("education", raw.get("education"), "education", 2, "education (GB/T 4658)")
    ncms = _digits("ncms_number", raw.get("ncms_number"), "NCMS number (新农合证号)", most=NCMS_LENGTH)
    health_record = _health_record(raw.get("health_record_number"))
    abo = _abo(raw.get("abo"))
    rh = _rh(raw.get("rh"))
    flags = {flag: _flag(flag, raw.get(flag)) for flag in ALERT_FLAGS}
    other_alert = _gbk("other_alert", raw.get("other_alert"), OTHER_ALERT_BYTES, "medical alert text")
    psychiatric = _flag("psychiatric", raw.get("psychiatric"))

    allergies = []
    for n, entry in enumerate(_entries("allergies", raw.get("allergies"), MAX_ALLERGIES, "allergies")):
        at = f"allergies[{n}]"
        allergen, reaction = _parts(at, entry, ("allergen", "reaction"))
        allergies.append(
            (
                _gbk(f"{at}.allergen", allergen, ALLERGEN_BYTES, "allergen name", required=True),
                _gbk(f"{at}.reaction", reaction, REACTION_BYTES, "reaction"),
            )
        )
    immunizations = []
    for n, entry in enumerate(
        _entries("immunizations", raw.get("immunizations"), MAX_IMMUNIZATIONS, "immunizations")
    ):
        at = f"immunizations[{n}]"
        vaccine, when = _parts(at, entry, ("vaccine", "date"))
        vaccine_name = _gbk(f"{at}.vaccine", vaccine, VACCINE_BYTES, "vaccine name", required=True)
        date = _date(f"{at}.date", when, required=True)
        assert date is not None
        if date > today:
            raise InvalidValue(f"{at}.date", f"vaccination date {date.isoformat()} is in the future")
        if date < birth_date:
            raise InvalidValue(
                f"{at}.date",
                f"vaccination date {date.isoformat()} is before the birth date {birth_date.isoformat()}",
            )
        immunizations.append((vaccine_name, date))
    payments: list[str] = []
    for n, entry in enumerate(
        _entries("payment_methods", raw.get("payment_methods"), MAX_PAYMENT_METHODS, "payment methods")
    ):
        code = _code(
            f"payment_methods[{n}]", entry, "payment_method", 2, "payment method (CV07.10.003)", required=True
        )
        if code in payments:
            raise InvalidValue(f"payment_methods[{n}]", f"payment method {code} given twice")
        payments.append(code)

    return Application(
        name=name,
        sex=sex,
        ethnicity=ethnicity,
        birth_date=birth_date,
        id_type=identity.id_type,
        id_number=identity.id_number,
        city_code=city_code,
        photo=photo,
        addresses=addresses,
        phones=phones,
        contacts=contacts,
        occupation=occupation,
        marital_status=marital,
        education=education,
        ncms_number=ncms,
        health_record_number=health_record,
        abo=abo,
        rh=rh,
        other_alert=other_alert,
        psychiatric=psychiatric,
        allergies=allergies,
        immunizations=immunizations,
        payment_methods=payments,
        **flags,
    )


# --- batch-issuance rows (集中发卡) ----------------------------------------------------------

#: the columns of a batch-issuance CSV file, in order.  ``photo_file`` is a path relative to the
#: batch's photo directory, ``photo_b64`` the JPEG in base64 (give one of them); ``allergies`` is
#: ``青霉素:皮疹;磺胺:荨麻疹``, ``immunizations`` ``卡介苗@2026-01-02;乙肝疫苗@2026-02-02``,
#: ``payment_methods`` ``03;07`` (a backslash escapes ``;``, ``:``, ``@`` and itself); flags are
#: ``1`` / ``0`` / empty.
CSV_COLUMNS: tuple[str, ...] = (
    "name",
    "sex",
    "ethnicity",
    "birth_date",
    "id_type",
    "id_number",
    "city_code",
    "photo_file",
    "photo_b64",
    *(col for n in range(1, MAX_ADDRESSES + 1) for col in (f"address{n}_type", f"address{n}")),
    *(f"phone{n}" for n in range(1, MAX_PHONES + 1)),
    *(
        col
        for n in range(1, MAX_CONTACTS + 1)
        for col in (f"contact{n}_name", f"contact{n}_relation", f"contact{n}_phone")
    ),
    "occupation",
    "marital_status",
    "education",
    "ncms_number",
    "health_record_number",
    "abo",
    "rh",
    *ALERT_FLAGS,
    "other_alert",
    "psychiatric",
    "allergies",
    "immunizations",
    "payment_methods",
)
_SCALARS = (
    "name",
    "sex",
    "ethnicity",
    "birth_date",
    "id_type",
    "id_number",
    "city_code",
    "occupation",
    "marital_status",
    "education",
    "ncms_number",
    "health_record_number",
    "abo",
    "rh",
    *ALERT_FLAGS,
    "other_alert",
    "psychiatric",
)


def _escape(text: str, specials: str) -> str:
    out = text.replace("\\", "\\\\")
    for ch in specials:
        out = out.replace(ch, "\\" + ch)
    return out


def _split_cell(text: str, pair: str | None) -> list[tuple[str, str]]:
    """``a:b;c:d`` → [(a, b), (c, d)]: entries split on ``;``, each on its first ``pair``
    character (when ``pair`` is given); a backslash makes the next character literal."""
    entries: list[tuple[str, str]] = []
    parts = ["", ""]
    side, escaped, split = 0, False, False
    for ch in text:
        if escaped:
            parts[side] += ch
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ";":
            entries.append((parts[0].strip(), parts[1].strip()))
            parts, side, split = ["", ""], 0, False
        elif pair is not None and ch == pair and not split:
            side, split = 1, True
        else:
            parts[side] += ch
    entries.append((parts[0].strip(), parts[1].strip()))
    return [e for e in entries if e != ("", "")]


def application_from_row(
    row: Mapping[str, str], *, today: dt.date, photo_dir: Path | None = None
) -> Application:
    """One batch-file row (:data:`CSV_COLUMNS`; empty cells are not given) checked by
    :func:`parse_application`; errors name the column (``contact2_phone``, ``photo_file``)."""
    for key, value in row.items():
        if key is None:
            raise InvalidValue("row", "more cells than columns")
        if key not in CSV_COLUMNS and value:
            raise InvalidValue(key, "not a column of a batch-issuance file")

    def cell(column: str) -> str:
        return (row.get(column) or "").strip()

    raw: dict[str, object] = {col: cell(col) for col in _SCALARS if cell(col)}
    where: dict[str, str] = {}
    photo_file, photo_b64 = cell("photo_file"), cell("photo_b64")
    if photo_file and photo_b64:
        raise InvalidValue("photo_file", "give photo_file or photo_b64, not both")
    if photo_file:
        raw["photo"] = _read_photo(photo_file, photo_dir)
        where["photo"] = "photo_file"
    elif photo_b64:
        raw["photo"] = photo_b64
        where["photo"] = "photo_b64"

    addresses: list[list[str]] = []
    for n in range(1, MAX_ADDRESSES + 1):
        kind, text = cell(f"address{n}_type"), cell(f"address{n}")
        if kind or text:
            at = f"addresses[{len(addresses)}]"
            where[f"{at}.type"], where[f"{at}.text"], where[at] = (
                f"address{n}_type",
                f"address{n}",
                f"address{n}",
            )
            addresses.append([kind, text])
    phones: list[str] = []
    for n in range(1, MAX_PHONES + 1):
        if phone := cell(f"phone{n}"):
            where[f"phones[{len(phones)}]"] = f"phone{n}"
            phones.append(phone)
    contacts: list[list[str]] = []
    for n in range(1, MAX_CONTACTS + 1):
        values = [cell(f"contact{n}_{part}") for part in ("name", "relation", "phone")]
        if any(values):
            at = f"contacts[{len(contacts)}]"
            where[at] = f"contact{n}_name"
            for part in ("name", "relation", "phone"):
                where[f"{at}.{part}"] = f"contact{n}_{part}"
            contacts.append(values)
    raw.update(addresses=addresses, phones=phones, contacts=contacts)
    raw["allergies"] = [list(pair) for pair in _split_cell(cell("allergies"), ":")]
    immunizations: list[list[str]] = []
    for n, (vaccine, date) in enumerate(_split_cell(cell("immunizations"), "@")):
        if not date:
            raise InvalidValue(f"immunizations[{n}]", f"{vaccine!r}: write vaccine@YYYY-MM-DD")
        immunizations.append([vaccine, date])
    raw["immunizations"] = immunizations
    raw["payment_methods"] = [code for code, _ in _split_cell(cell("payment_methods"), None)]
    try:
        return parse_application(raw, today=today)
    except InvalidValue as exc:
        column = where.get(exc.field)
        if column is None:
            raise
        raise InvalidValue(column, exc.message) from None


def _read_photo(name: str, photo_dir: Path | None) -> bytes:
    if photo_dir is None:
        raise InvalidValue("photo_file", f"{name}: a photo file is named but no photo directory was given")
    base = photo_dir.resolve()
    path = (base / name).resolve()
    if not path.is_relative_to(base):
        raise InvalidValue("photo_file", f"{name}: outside the batch's photo directory")
    if not path.is_file():
        raise InvalidValue("photo_file", f"{name}: no such file in the photo directory")
    return path.read_bytes()


def application_to_row(app: Application) -> dict[str, str]:
    """The batch-file row of ``app`` (every column of :data:`CSV_COLUMNS`; the photo as
    ``photo_b64``); :func:`application_from_row` reads it back equal."""

    def flag(value: bool | None) -> str:
        return "" if value is None else str(int(value))

    row = dict.fromkeys(CSV_COLUMNS, "")
    row.update(
        name=app.name,
        sex=str(app.sex),
        ethnicity=app.ethnicity,
        birth_date=app.birth_date.isoformat(),
        id_type=app.id_type.value,
        id_number=app.id_number,
        city_code=app.city_code,
        photo_b64=base64.b64encode(app.photo).decode("ascii"),
        occupation=app.occupation,
        marital_status=app.marital_status,
        education=app.education,
        ncms_number=app.ncms_number,
        health_record_number=app.health_record_number,
        abo="" if app.abo is None else str(app.abo),
        rh=app.rh or "",
        other_alert=app.other_alert,
        psychiatric=flag(app.psychiatric),
        allergies=";".join(f"{_escape(a, ';:@')}:{_escape(r, ';:@')}" for a, r in app.allergies),
        immunizations=";".join(f"{_escape(v, ';:@')}@{d.isoformat()}" for v, d in app.immunizations),
        payment_methods=";".join(app.payment_methods),
    )
    for name, value in app.flags.items():
        row[name] = flag(value)
    for n, (kind, text) in enumerate(app.addresses, start=1):
        row[f"address{n}_type"], row[f"address{n}"] = kind, text
    for n, phone in enumerate(app.phones, start=1):
        row[f"phone{n}"] = phone
    for n, contact in enumerate(app.contacts, start=1):
        row[f"contact{n}_name"] = contact.name
        row[f"contact{n}_relation"] = contact.relation
        row[f"contact{n}_phone"] = contact.phone
    return row


# --- the card --------------------------------------------------------------------------------


def _yyyymmdd(date: dt.date) -> str:
    return f"{date.year:04d}{date.month:02d}{date.day:02d}"


def card_contents(
    app: Application,
    *,
    issue_serial: str,
    issuer_name: str,
    issuer_code: str,
    issue_date: dt.date,
    expiry: dt.date,
) -> CardContents:
    """The card data of ``app`` for the personaliser (CARD-SPEC.md §4.1–4.6): DDF1/EF05 (the
    issuer certificate is added at personalisation), EF06, EF07 photo, EF08; DF01/EF05–EF08;
    DF02/EF05–EF06, allergies and immunizations (newest first)."""
    if expiry <= issue_date:
        raise InvalidValue(
            "expiry", f"{expiry.isoformat()} is not after the issue date {issue_date.isoformat()}"
        )

    def present(values: Mapping[str, Value | None]) -> dict[str, Value]:
        return {k: v for k, v in values.items() if v is not None and v != ""}

    ef08: dict[str, Value | None] = {"expiry_date": _yyyymmdd(expiry)}
    ef08.update({f"phone{n}": phone for n, phone in enumerate(app.phones, start=1)})
    ef08.update({f"payment_method{n}": code for n, code in enumerate(app.payment_methods, start=1)})
    addresses: dict[str, Value | None] = {}
    for n, (kind, text) in enumerate(app.addresses, start=1):
        addresses[f"address_type{n}"], addresses[f"address{n}"] = kind, text
    contacts: dict[str, Value | None] = {}
    for n, c in enumerate(app.contacts, start=1):
        contacts[f"contact_name{n}"] = c.name
        contacts[f"contact_relation{n}"] = c.relation
        contacts[f"contact_phone{n}"] = c.phone
    alerts: dict[str, Value | None] = {
        # an unrecorded ABO group is FF on real cards (CARD-SPEC.md §4.6), so that it reads as none
        "abo": 0xFF if app.abo is None else app.abo,
        "rh": app.rh,
        "other_alert": app.other_alert,
    }
    alerts.update({name: None if on is None else int(on) for name, on in app.flags.items()})
    citizen = app.id_type in CITIZEN_NUMBER_TYPES
    items = {
        "DDF1/EF05": present(
            {
                "card_category": "1",
                "spec_version": "V1.1",
                "issuer_name": issuer_name,
                "issuer_code": issuer_code,
                "issue_date": _yyyymmdd(issue_date),
                "card_number": app.card_number,
                "security_code": "000",
                "issue_serial": issue_serial,
                "city_code": app.city_code,
            }
        ),
        "DDF1/EF06": present(
            {
                "name": app.name,
                "sex": app.sex,
                "ethnicity": app.ethnicity,
                "birth_date": _yyyymmdd(app.birth_date),
                "citizen_id": app.id_number if citizen else None,
            }
        ),
        "DDF1/EF08": present(ef08),
        "DF01/EF05": present(addresses),
        "DF01/EF06": present(contacts),
        "DF01/EF07": present(
            {"education": app.education, "marital_status": app.marital_status, "occupation": app.occupation}
        ),
        "DF01/EF08": present(
            {
                "id_type": app.id_type.value,
                "id_number": app.id_number,
                "health_record_number": app.health_record_number,
                "ncms_number": app.ncms_number,
            }
        ),
        "DF02/EF05": present(alerts),
        "DF02/EF06": present({"psychiatric": None if app.psychiatric is None else int(app.psychiatric)}),
    }
    newest_first = sorted(app.immunizations, key=lambda entry: entry[1], reverse=True)
    return CardContents(
        items=items,
        photo=app.photo,
        allergies=list(app.allergies),
        immunizations=[(vaccine, _yyyymmdd(date)) for vaccine, date in newest_first],
    )


__all__ = [
    "ALERT_FLAGS",
    "CSV_COLUMNS",
    "Application",
    "Contact",
    "application_from_row",
    "application_to_row",
    "card_contents",
    "parse_application",
]
