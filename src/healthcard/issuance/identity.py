"""Who the applicant is: the ID document a collection point (信息采集点) sees, checked.

The card number is the citizen ID number (公民身份号码, GB 11643), or the number of the
holder's ID document when there is none (CARD-SPEC.md §2, DDF1/EF05 tag 08 ``ans 18``); the
document type is WS 364.3 CV02.01.101 (CARD-SPEC.md §8, DF01/EF08 tag 25, ``cn 1``).

Rules of :func:`check_identity` (each refusal names the field and says what is wrong):

* every ID number: stripped and upper-cased, 1–18 characters (the card's ID fields are
  ``ans 18``); the birth date lies between 1900-01-01 and ``today``; the sex is a GB/T 2261.1
  code (0 unknown, 1 男, 2 女, 9 unspecified);
* ``01`` 居民身份证, ``02`` 居民户口簿 (the register carries the citizen ID number), ``05``
  驾驶证 (a Chinese driving licence number is the holder's citizen ID number): a GB 11643
  number — 6-digit GB/T 2260 area, 8-digit birth date, 3-digit sequence (odd = male, even =
  female), check character (ISO 7064 MOD 11-2, ``X`` = 10).  Checked one cause at a time:
  length and format, a birth date that exists, the check character, a birth date not in the
  future and not before 1900, an area code that GB/T 2260 knows, the birth date and sex given
  matching the number;
* ``03`` 护照: 5–17 letters or digits (Chinese passports E12345678 / EA1234567 / G12345678,
  foreign passports of any country);
* ``06`` 港澳居民来往内地通行证 (回乡证): ``H`` (Hong Kong) or ``M`` (Macau) and 8 digits
  (card since 2013) or 10 digits (older booklet: 8 digits + 2-digit issue count);
* ``07`` 台湾居民来往内地通行证 (台胞证): 8 digits (card since 2015, and the older booklets'
  own number) or 10 letters/digits (older booklets with the issue letters appended);
* ``08`` 出生医学证明: one letter (the form's edition, e.g. ``O``, ``P``, ``Q``) and 9 digits;
* ``04`` 军官证 and ``99`` 其他法定有效证件: 1–18 ASCII letters, digits or hyphens (the card
  number is printed as a Code 128 barcode, CARD-SPEC.md §2, which holds no Chinese text).

GB/T 2260 area codes come from python-stdnum's ``cn/loc`` table, which records for each code
the years it was in use.  A code is refused when the table does not know it, or when it was
abolished before the holder was born (nobody born later can have been registered under it).  A
code created *after* the birth year is accepted, unlike ``stdnum.cn.ric.get_birth_place``: an
ID number carries the area of the first registration (1984 onwards for the first ID cards), so
a resident of 郑州市中原区 born in 1950 rightly holds a 410102… number although 410102 dates
from 1983.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from stdnum import numdb
from stdnum.cn import ric

from healthcard.errors import InvalidValue

#: the oldest birth date a collection point accepts
EARLIEST_BIRTH = dt.date(1900, 1, 1)
#: the card's ID fields (DDF1/EF05 card_number, DDF1/EF06 citizen_id, DF01/EF08 id_number) are ans 18
ID_LENGTH = 18


class IdType(StrEnum):
    """ID-document type, WS 364.3 CV02.01.101 (CARD-SPEC.md §8; 08 from the e-card platform)."""

    CITIZEN_ID = "01"
    HOUSEHOLD_REGISTER = "02"
    PASSPORT = "03"
    OFFICER = "04"
    DRIVING_LICENCE = "05"
    HK_MACAU_PERMIT = "06"
    TAIWAN_PERMIT = "07"
    BIRTH_CERTIFICATE = "08"
    OTHER = "99"

    @property
    def label(self) -> str:
        """The Chinese name of the document type."""
        return _LABELS[self]


_LABELS = {
    IdType.CITIZEN_ID: "居民身份证",
    IdType.HOUSEHOLD_REGISTER: "居民户口簿",
    IdType.PASSPORT: "护照",
    IdType.OFFICER: "军官证",
    IdType.DRIVING_LICENCE: "驾驶证",
    IdType.HK_MACAU_PERMIT: "港澳居民来往内地通行证",
    IdType.TAIWAN_PERMIT: "台湾居民来往内地通行证",
    IdType.BIRTH_CERTIFICATE: "出生医学证明",
    IdType.OTHER: "其他法定有效证件",
}

#: document types whose number is a GB 11643 citizen ID number
CITIZEN_NUMBER_TYPES = frozenset({IdType.CITIZEN_ID, IdType.HOUSEHOLD_REGISTER, IdType.DRIVING_LICENCE})

#: GB/T 2261.1 sex codes
SEXES = {0: "未知的性别", 1: "男", 2: "女", 9: "未说明的性别"}

_FORMATS: dict[IdType, tuple[re.Pattern[str], str]] = {
    IdType.PASSPORT: (re.compile(r"[A-Z0-9]{5,17}"), "a passport number is 5-17 letters or digits"),
    IdType.HK_MACAU_PERMIT: (
        re.compile(r"[HM](?:\d{8}|\d{10})"),
        "a Hong Kong/Macau permit (港澳居民来往内地通行证) number is H or M and 8 or 10 digits",
    ),
    IdType.TAIWAN_PERMIT: (
        re.compile(r"\d{8}|[A-Z0-9]{10}"),
        "a Taiwan permit (台湾居民来往内地通行证) number is 8 digits, or 10 letters/digits on old booklets",
    ),
    IdType.BIRTH_CERTIFICATE: (
        re.compile(r"[A-Z]\d{9}"),
        "a birth certificate (出生医学证明) number is one letter and 9 digits, e.g. O410012345",
    ),
    IdType.OFFICER: (
        re.compile(r"[A-Z0-9-]{1,18}"),
        "write the officer's ID (军官证) number with letters, digits and hyphens only",
    ),
    IdType.OTHER: (
        re.compile(r"[A-Z0-9-]{1,18}"),
        "write the document number with letters, digits and hyphens only",
    ),
}


@dataclass(frozen=True)
class Identity:
    """A checked identity: what :func:`check_identity` returns."""

    id_type: IdType
    id_number: str  # normalised: stripped, upper case
    birth_date: dt.date
    sex: int  # GB/T 2261.1: 0, 1, 2, 9
    area: str | None  # GB/T 2260 area of a citizen ID number, None for other documents

    @property
    def card_number(self) -> str:
        """居民健康卡号码 (CARD-SPEC.md §2): the citizen ID number, or the ID-document number."""
        return self.id_number


# --- GB/T 2260 areas -----------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """One name an area code had, and the years it had it (None = open)."""

    start: int | None
    end: int | None
    name: str

    def covers(self, year: int) -> bool:
        return (self.start is None or self.start <= year) and (self.end is None or year <= self.end)


@dataclass(frozen=True)
class Area:
    """A GB/T 2260 code as python-stdnum's ``cn/loc`` table records it."""

    code: str
    province: str
    periods: tuple[Period, ...]

    @property
    def name(self) -> str:
        """The latest name (a code may have been renamed: 410611 郊区 → 淇滨区)."""
        return self.periods[-1].name

    def valid_in(self, year: int) -> bool:
        """The code was in use in ``year`` (what ``stdnum.cn.ric`` demands of a birth year)."""
        return any(p.covers(year) for p in self.periods)

    def abolished_before(self, year: int) -> int | None:
        """The year the code went out of use, when that was before ``year``; else None."""
        ends = [p.end for p in self.periods]
        if any(end is None or end >= year for end in ends):
            return None
        return max(end for end in ends if end is not None)


def _periods(text: str) -> tuple[Period, ...]:
    out = []
    for part in text.split(","):
        if part.startswith("[") and "]" in part:
            span, name = part[1:].split("]", 1)
            start, _, end = span.partition("-")
            out.append(Period(int(start) if start else None, int(end) if end else None, name))
        else:
            out.append(Period(None, None, part))
    return tuple(out)


@lru_cache(maxsize=4096)
def area(code: str) -> Area | None:
    """The GB/T 2260 code ``code`` (6 digits) from stdnum's table, or None when unknown."""
    if len(code) != 6 or not code.isdigit():
        return None
    info: dict[str, str] = {}
    for _part, props in numdb.get("cn/loc").info(code):
        info.update(props)
    if "county" not in info or "province" not in info:
        return None
    return Area(code, info["province"], _periods(info["county"]))


def check_digit(number: str) -> str:
    """The GB 11643 check character of the first 17 digits of ``number`` (ISO 7064 MOD 11-2)."""
    return str(ric.calc_check_digit(number[:17] + "0"))


# --- the check -----------------------------------------------------------------------------


def _id_type(code: str) -> IdType:
    try:
        return IdType(code.strip())
    except ValueError:
        known = ", ".join(f"{t.value} {t.label}" for t in IdType)
        raise InvalidValue("id_type", f"unknown ID-document type {code!r} (证件类别: {known})") from None


def _citizen_number(number: str, today: dt.date) -> dt.date:
    """Check a GB 11643 number; its birth date."""
    what = "a citizen ID number (公民身份号码, GB 11643)"
    if len(number) != 18:
        raise InvalidValue("id_number", f"{number}: {len(number)} characters, {what} has 18")
    if not number[:17].isdigit() or not (number[17].isdigit() or number[17] == "X"):
        raise InvalidValue("id_number", f"{number}: {what} is 17 digits and a last digit or X")
    digits = number[6:14]
    try:
        born = dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        raise InvalidValue("id_number", f"{number}: birth date {digits} is not a date") from None
    expected = check_digit(number)
    if number[17] != expected:
        raise InvalidValue(
            "id_number",
            f"{number}: check digit should be {expected} (GB 11643 校验码); re-read every digit",
        )
    if born > today:
        raise InvalidValue("id_number", f"{number}: birth date {digits} is in the future")
    if born < EARLIEST_BIRTH:
        raise InvalidValue("id_number", f"{number}: birth date {digits} is before 1900")
    code = number[:6]
    found = area(code)
    if found is None:
        raise InvalidValue("id_number", f"{number}: area code {code} is not a GB/T 2260 county code")
    gone = found.abolished_before(born.year)
    if gone is not None:
        raise InvalidValue(
            "id_number",
            f"{number}: area code {code} ({found.name}) went out of use in {gone}, "
            f"before the birth year {born.year}",
        )
    return born


def check_identity(
    id_type: str, id_number: str, *, birth_date: dt.date, sex: int, today: dt.date
) -> Identity:
    """Check an ID document as a collection point takes it; raises
    :class:`~healthcard.errors.InvalidValue` naming ``id_type``, ``id_number``, ``birth_date``
    or ``sex`` (rules in the module docstring)."""
    kind = _id_type(id_type)
    number = id_number.strip().upper()
    if not number:
        raise InvalidValue("id_number", f"no {kind.label} number given")
    if len(number) > ID_LENGTH:
        raise InvalidValue(
            "id_number", f"{len(number)} characters, the card's ID field holds {ID_LENGTH} (ans 18)"
        )
    born: dt.date | None = None
    if kind in CITIZEN_NUMBER_TYPES:
        born = _citizen_number(number, today)
    else:
        pattern, rule = _FORMATS[kind]
        if not pattern.fullmatch(number):
            raise InvalidValue("id_number", f"{number}: {rule}")
    if birth_date > today:
        raise InvalidValue("birth_date", f"birth date {birth_date.isoformat()} is in the future")
    if birth_date < EARLIEST_BIRTH:
        raise InvalidValue("birth_date", f"birth date {birth_date.isoformat()} is before 1900")
    if isinstance(sex, bool) or sex not in SEXES:
        raise InvalidValue("sex", f"unknown sex code {sex!r} (GB/T 2261.1: 0 未知, 1 男, 2 女, 9 未说明)")
    if born is None:
        return Identity(kind, number, birth_date, sex, None)
    if birth_date != born:
        raise InvalidValue(
            "birth_date",
            f"{birth_date.isoformat()} differs from the birth date {born.isoformat()} in the ID number",
        )
    implied = 1 if int(number[16]) % 2 else 2
    if sex != implied:
        parity = "odd" if implied == 1 else "even"
        raise InvalidValue(
            "sex",
            f"sex {sex} ({SEXES[sex]}) does not match the ID number: its 17th digit {number[16]} is "
            f"{parity}, i.e. {implied} {SEXES[implied]}",
        )
    return Identity(kind, number, birth_date, sex, number[:6])


def identity_area(id_type: str, id_number: str) -> str | None:
    """The GB/T 2260 area of an (already checked) ID number: its first 6 digits for the types
    that carry a citizen ID number, else None."""
    return id_number[:6] if id_type in CITIZEN_NUMBER_TYPES else None


__all__ = [
    "CITIZEN_NUMBER_TYPES",
    "EARLIEST_BIRTH",
    "ID_LENGTH",
    "SEXES",
    "Area",
    "IdType",
    "Identity",
    "Period",
    "area",
    "check_digit",
    "check_identity",
    "identity_area",
]
