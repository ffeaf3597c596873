"""ID documents as a collection point checks them (``healthcard.issuance.identity``; CARD-SPEC.md
§2 card number, §8 CV02.01.101 ID-document types; GB 11643 citizen ID numbers)."""

from __future__ import annotations

import datetime as dt

import pytest
from stdnum.cn import ric

from healthcard.codes import meaning
from healthcard.errors import InvalidValue
from healthcard.issuance.identity import IdType, area, check_digit, check_identity, identity_area

TODAY = dt.date(2026, 11, 24)
ZHANG_SAN = "410102199003070019"  # the demo resident: 郑州市中原区, 1990-03-07, male
BORN = dt.date(1990, 3, 7)


def citizen(first17: str) -> str:
    """A number with the right check digit."""
    return first17 + check_digit(first17)


def refused(id_type: str, number: str, born: dt.date = BORN, sex: int = 1) -> InvalidValue:
    with pytest.raises(InvalidValue) as caught:
        check_identity(id_type, number, birth_date=born, sex=sex, today=TODAY)
    return caught.value


# --- the document types ----------------------------------------------------------------------


def test_id_types_are_the_cv02_01_101_codes_with_chinese_labels() -> None:
    assert [t.value for t in IdType] == ["01", "02", "03", "04", "05", "06", "07", "08", "99"]
    assert IdType.CITIZEN_ID.label == "居民身份证"
    assert IdType.BIRTH_CERTIFICATE.label == "出生医学证明"
    assert IdType("07").label == "台湾居民来往内地通行证"


def test_every_id_type_is_in_the_value_set_the_terminal_shows() -> None:
    for kind in IdType:
        assert meaning("id_type", kind.value) == kind.label


def test_an_unknown_id_type_is_refused_with_the_known_ones() -> None:
    error = refused("10", ZHANG_SAN)
    assert error.field == "id_type"
    assert "01 居民身份证" in error.message


# --- citizen ID numbers -----------------------------------------------------------------------


def test_a_valid_citizen_id_gives_the_identity() -> None:
    identity = check_identity("01", f" {ZHANG_SAN.lower()} ", birth_date=BORN, sex=1, today=TODAY)
    assert identity.id_type is IdType.CITIZEN_ID
    assert identity.id_number == ZHANG_SAN
    assert identity.area == "410102"
    assert identity.card_number == ZHANG_SAN


def test_an_x_check_character_is_upper_cased() -> None:
    number = "41012119520115883X"
    assert ric.is_valid(number)
    identity = check_identity("01", number.lower(), birth_date=dt.date(1952, 1, 15), sex=1, today=TODAY)
    assert identity.id_number == number


def test_check_digit_agrees_with_stdnum() -> None:
    for first17 in ("41010219900307001", "11010519491231002", "44060420050101002", "51012119300101001"):
        assert check_digit(first17) == ric.calc_check_digit(first17 + "0")


def test_a_bad_check_digit_says_which_digit_it_should_be() -> None:
    error = refused("01", "410102199003070018")
    assert error.field == "id_number"
    assert "check digit should be 9" in error.message
    assert "GB 11643" in error.message


def test_a_future_birth_year_with_a_valid_check_digit_is_refused() -> None:
    number = citizen("41010221990101001")
    error = refused("01", number, born=dt.date(2199, 1, 1))
    assert error.field in ("id_number", "birth_date")
    assert "birth date 21990101 is in the future" in error.message


def test_february_30_is_not_a_date() -> None:
    error = refused("01", citizen("41010219900230001"), born=dt.date(1990, 2, 28))
    assert error.field == "id_number"
    assert "19900230 is not a date" in error.message


def test_a_birth_before_1900_is_refused() -> None:
    error = refused("01", citizen("41010218991231001"), born=dt.date(1899, 12, 31))
    assert error.field == "id_number"
    assert "before 1900" in error.message


def test_an_unknown_area_code_is_refused() -> None:
    error = refused("01", citizen("99010219900307001"))
    assert error.field == "id_number"
    assert "area code 990102 is not a GB/T 2260 county code" in error.message


def test_an_unknown_county_of_a_known_province_is_refused() -> None:
    # stdnum's get_birth_place raises KeyError here, not a ValidationError
    error = refused("01", citizen("41990219900307001"))
    assert error.field == "id_number"
    assert "area code 419902" in error.message


def test_a_code_abolished_before_the_birth_year_is_refused() -> None:
    # 110103 崇文区 [-2010]: nobody born in 2015 was registered under it
    error = refused("01", citizen("11010320150101001"), born=dt.date(2015, 1, 1))
    assert error.field == "id_number"
    assert "110103" in error.message and "2010" in error.message


def test_a_code_created_after_the_birth_year_is_accepted() -> None:
    # 410102 中原区 dates from 1983; residents born earlier hold 410102… numbers all the same
    number = citizen("41010219500101001")
    assert not ric.is_valid(number)  # stdnum alone would refuse it
    identity = check_identity("01", number, birth_date=dt.date(1950, 1, 1), sex=1, today=TODAY)
    assert identity.area == "410102"


def test_the_birth_date_must_match_the_number() -> None:
    error = refused("01", ZHANG_SAN, born=dt.date(1990, 3, 8))
    assert error.field == "birth_date"
    assert "1990-03-07" in error.message


def test_the_sex_must_match_the_17th_digit() -> None:
    error = refused("01", ZHANG_SAN, sex=2)
    assert error.field == "sex"
    assert "odd" in error.message and "男" in error.message


def test_an_even_17th_digit_is_female() -> None:
    number = citizen("41010219900307002")
    assert check_identity("01", number, birth_date=BORN, sex=2, today=TODAY).sex == 2
    assert refused("01", number, sex=1).field == "sex"


def test_an_unknown_sex_code_is_refused() -> None:
    error = refused("03", "E12345678", sex=3)
    assert error.field == "sex"
    assert "GB/T 2261.1" in error.message


@pytest.mark.parametrize(
    ("number", "words"),
    [
        ("41010219900307001", "17 characters"),
        ("4101021990030700199", "holds 18"),
        ("41010219900307A019", "17 digits"),
        ("", "no 居民身份证 number"),
    ],
)
def test_malformed_citizen_numbers(number: str, words: str) -> None:
    error = refused("01", number)
    assert error.field == "id_number"
    assert words in error.message


@pytest.mark.parametrize("kind", ["02", "05"])
def test_household_register_and_driving_licence_carry_the_citizen_number(kind: str) -> None:
    assert check_identity(kind, ZHANG_SAN, birth_date=BORN, sex=1, today=TODAY).area == "410102"
    assert "check digit" in refused(kind, "410102199003070018").message


# --- other documents ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "number"),
    [
        ("03", "E12345678"),
        ("03", "EA1234567"),
        ("03", "X1234567890ABCDEF"),
        ("04", "2011-00123"),
        ("06", "H12345678"),
        ("06", "M1234567801"),
        ("07", "12345678"),
        ("07", "1234567890"),
        ("08", "O410012345"),
        ("99", "ABC-123"),
    ],
)
def test_other_documents_in_their_formats(kind: str, number: str) -> None:
    identity = check_identity(kind, number.lower(), birth_date=BORN, sex=2, today=TODAY)
    assert identity.id_number == number
    assert identity.area is None
    assert identity.card_number == number


@pytest.mark.parametrize(
    ("kind", "number", "words"),
    [
        ("03", "E123", "5-17"),
        ("03", "E1234-5678", "5-17"),
        ("06", "X12345678", "H or M"),
        ("06", "H123456789", "H or M"),
        ("07", "1234567", "8 digits"),
        ("08", "4100123456", "one letter"),
        ("04", "南字第123号", "letters, digits and hyphens"),
        ("99", "A B", "letters, digits and hyphens"),
        ("99", "A" * 19, "holds 18"),
    ],
)
def test_other_documents_out_of_format(kind: str, number: str, words: str) -> None:
    error = refused(kind, number)
    assert error.field == "id_number"
    assert words in error.message


def test_any_birth_date_in_the_future_is_refused() -> None:
    error = refused("03", "E12345678", born=TODAY + dt.timedelta(days=1))
    assert error.field == "birth_date"
    assert "in the future" in error.message


def test_any_birth_date_before_1900_is_refused() -> None:
    error = refused("08", "O410012345", born=dt.date(1899, 12, 31))
    assert error.field == "birth_date"
    assert "before 1900" in error.message


def test_born_today_is_accepted() -> None:
    number = citizen(f"410102{TODAY:%Y%m%d}002")
    assert check_identity("01", number, birth_date=TODAY, sex=2, today=TODAY).birth_date == TODAY


# --- GB/T 2260 areas ---------------------------------------------------------------------------


def test_area_knows_names_and_periods() -> None:
    qibin = area("410611")
    assert qibin is not None
    assert qibin.province == "河南省"
    assert qibin.name == "淇滨区"  # [1983-2000]郊区, [2001-]淇滨区
    assert qibin.valid_in(1990) and qibin.valid_in(2026) and not qibin.valid_in(1980)
    assert area("990102") is None
    assert area("419902") is None
    assert area("41010") is None


def test_identity_area_only_for_citizen_numbers() -> None:
    assert identity_area("01", ZHANG_SAN) == "410102"
    assert identity_area(IdType.HOUSEHOLD_REGISTER, ZHANG_SAN) == "410102"
    assert identity_area("03", "E12345678") is None
