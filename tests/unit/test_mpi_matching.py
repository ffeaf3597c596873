"""The MPI's pure parts: pinyin of names, the score of two sets of demographics, and the
checks of each identifier system (no database)."""

from __future__ import annotations

import datetime as dt

import pytest

from healthcard.errors import InvalidValue
from healthcard.platform.mpi import (
    AUTO_LINK,
    REVIEW_MIN,
    Demographics,
    IdSystem,
    check_identifier,
    pinyin_key,
    score,
    syllables,
    upgrade_citizen_id,
)

TODAY = dt.date(2026, 11, 24)
BORN = dt.date(1980, 3, 12)


def person(name: str, born: dt.date = BORN, sex: int = 1, area: str | None = "410102") -> Demographics:
    return Demographics(name, born, sex, area)


# --- names in pinyin ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("张三", ("zhang", "san")),
        ("单田芳", ("shan", "tian", "fang")),  # 单 as a surname is shan, not dan
        ("曾小贤", ("zeng", "xiao", "xian")),  # not ceng
        ("区小红", ("ou", "xiao", "hong")),  # not qu
        ("尉迟恭", ("yu", "chi", "gong")),  # compound surname
        ("买买提·艾力", ("mai", "mai", "ti", "ai", "li")),  # the middle dot is dropped
        ("Zhang San", ("zhang", "san")),  # already romanised
        ("吕布", ("lv", "bu")),
    ],
)
def test_syllables(name: str, expected: tuple[str, ...]) -> None:
    assert syllables(name) == expected


def test_pinyin_key_runs_syllables_together() -> None:
    assert pinyin_key("张三") == pinyin_key("章三") == pinyin_key("Zhang San") == "zhangsan"
    assert pinyin_key("李四") == "lisi"


# --- the score ----------------------------------------------------------------------------------


def test_homophone_scores_high() -> None:
    match = score(person("张三"), person("章三"), resident_id="r1")
    assert match.resident_id == "r1"
    assert match.score >= AUTO_LINK
    assert "name: same pinyin" in match.reasons


def test_same_name_everything_same_is_one() -> None:
    match = score(person("张三"), person("张三"))
    assert match.score == 1.0
    assert match.reasons == ("name: same", "birth: same", "sex: same", "area: same county")


def test_different_name_scores_low_even_with_same_birth_sex_area() -> None:
    match = score(person("张三"), person("李四"))
    assert match.score < 0.4
    assert match.reasons[1:] == ("birth: same", "sex: same", "area: same county")


@pytest.mark.parametrize(
    ("other", "reason"),
    [
        (dt.date(1980, 12, 3), "birth: day and month swapped"),
        (dt.date(1980, 3, 13), "birth: one digit differs"),
        (dt.date(1980, 3, 21), "birth: two digits swapped"),  # 19800312 / 19800321
        (dt.date(1908, 3, 12), "birth: two digits swapped"),  # 1980 / 1908
    ],
)
def test_birth_typo_scores_partially(other: dt.date, reason: str) -> None:
    exact = score(person("张三"), person("张三")).score
    typo = score(person("张三"), person("张三", born=other))
    assert reason in typo.reasons
    assert REVIEW_MIN <= typo.score < AUTO_LINK < exact


def test_wholly_different_birth_date_is_weak() -> None:
    match = score(person("张三"), person("张三", born=dt.date(1975, 7, 1)))
    assert "birth: differs" in match.reasons
    assert match.score < REVIEW_MIN


def test_similar_sound_scores_between() -> None:
    match = score(person("张三"), person("张山"))  # san / shan: flat and curled tongue
    assert "name: similar sound (模糊音)" in match.reasons
    assert REVIEW_MIN < match.score < AUTO_LINK


def test_one_character_typo_in_given_name_is_reviewable() -> None:
    match = score(person("王小明"), person("王小敏"))
    assert REVIEW_MIN < match.score < AUTO_LINK


def test_sex_and_area() -> None:
    base = score(person("张三"), person("张三")).score
    other_sex = score(person("张三"), person("张三", sex=2))
    unknown_sex = score(person("张三"), person("张三", sex=0))
    city = score(person("张三"), person("张三", area="410105"))
    province = score(person("张三"), person("张三", area="411302"))
    elsewhere = score(person("张三"), person("张三", area="110105"))
    no_area = score(person("张三"), person("张三", area=None))
    assert "sex: differs" in other_sex.reasons and "sex: not stated" in unknown_sex.reasons
    assert other_sex.score < unknown_sex.score < base
    assert "area: same city" in city.reasons and "area: same province" in province.reasons
    assert elsewhere.score < province.score < city.score < base
    assert "area: not known" in no_area.reasons and elsewhere.score < no_area.score < city.score


def test_missing_query_fields_are_not_compared() -> None:
    match = score(Demographics("张三"), person("章三"))
    assert match.reasons == ("name: same pinyin",)
    assert match.score == 0.95


# --- identifiers --------------------------------------------------------------------------------


def test_old_fifteen_digit_id_is_upgraded() -> None:
    assert upgrade_citizen_id("410102800312001") == "410102198003120018"
    assert upgrade_citizen_id("410102198003120018") == "410102198003120018"
    kind, value, assigner = check_identifier("citizen-id", " 410102800312001 ", "", TODAY)
    assert (kind, value, assigner) == (IdSystem.CITIZEN_ID, "410102198003120018", "")


@pytest.mark.parametrize(
    ("system", "value", "assigner", "stored"),
    [
        ("citizen-id", "11010519491231002x", "", "11010519491231002X"),
        ("card", "410102198003120018", "", "410102198003120018"),
        ("card", "E12345678", "", "E12345678"),  # a holder without a citizen ID: the document number
        ("ncms", "410102000123456789", "", "410102000123456789"),
        ("archive", "41010200100200001", "", "41010200100200001"),
        ("visit-card", "mz-0012345", "410102001", "MZ-0012345"),
        ("passport", "e12345678", "", "E12345678"),
        ("other", "X/1", "", "X/1"),
    ],
)
def test_valid_identifiers(system: str, value: str, assigner: str, stored: str) -> None:
    kind, value, assigner_out = check_identifier(system, value, assigner, TODAY)
    assert kind == system and value == stored and assigner_out == assigner


@pytest.mark.parametrize(
    ("system", "value", "assigner", "field", "words"),
    [
        ("nhs", "1", "", "system", "unknown identifier system"),
        ("citizen-id", "410102198003120019", "", "value", "check digit"),
        ("citizen-id", "410102198002300015", "", "value", "not a date"),
        ("card", "410102198003120019", "", "value", "check digit"),
        ("card", "张三", "", "value", "card number"),
        ("ncms", "12345678901234567890", "", "value", "1-18 digits"),
        ("ncms", "12A", "", "value", "1-18 digits"),
        ("archive", "4101020010020001", "", "value", "exactly 17 digits"),
        ("archive", "99999900100200001", "", "value", "GB/T 2260"),
        ("visit-card", "123", "", "assigner", "hospital"),
        ("visit-card", "12 3", "410102001", "value", "visit-card"),
        ("ncms", "123", "410102001", "assigner", "national"),
        ("passport", "E12", "", "value", "5-17"),
        ("archive", "  ", "", "value", "no archive number"),
    ],
)
def test_invalid_identifiers(system: str, value: str, assigner: str, field: str, words: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        check_identifier(system, value, assigner, TODAY)
    assert caught.value.field == field
    assert words in caught.value.message
