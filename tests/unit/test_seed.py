"""Demo residents (``healthcard.issuance.seed``): unique, valid, plausible, deterministic."""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
from collections import Counter
from pathlib import Path
from random import Random

import pytest
from PIL import Image
from stdnum.cn import ric

from healthcard.errors import InvalidValue
from healthcard.issuance.application import Application, application_from_row, parse_application
from healthcard.issuance.identity import area, check_digit
from healthcard.issuance.photo import PHOTO_LIMIT, normalise_photo
from healthcard.issuance.seed import DEFAULT_AREAS, SCHEDULE, generate_applications, portraits, write_csv

TODAY = dt.date(2026, 11, 24)


@pytest.fixture(scope="module")
def residents() -> list[Application]:
    return list(generate_applications(5000, rng=Random(2026), today=TODAY))


# --- the areas ---------------------------------------------------------------------------------


def test_every_default_area_is_a_gb_t_2260_code() -> None:
    assert len(set(DEFAULT_AREAS)) == len(DEFAULT_AREAS)
    for code in DEFAULT_AREAS:
        assert area(code) is not None, code


def test_every_default_area_gives_numbers_stdnum_accepts_in_its_years() -> None:
    for code in DEFAULT_AREAS:
        found = area(code)
        assert found is not None
        years = [y for y in range(1930, TODAY.year + 1) if found.valid_in(y)]
        assert years, code
        for year in years:
            first17 = f"{code}{year}0101001"
            assert ric.is_valid(first17 + check_digit(first17)), (code, year)


def test_every_birth_year_has_a_default_area() -> None:
    for year in range(1930, TODAY.year + 1):
        assert any(a is not None and a.valid_in(year) for a in map(area, DEFAULT_AREAS)), year


def test_the_defaults_are_mostly_henan() -> None:
    henan = [c for c in DEFAULT_AREAS if c.startswith("41")]
    assert len(henan) > len(DEFAULT_AREAS) / 2
    assert {"410102", "410103", "410105", "410122", "410602", "410603", "410611", "410621", "410622"} <= set(
        DEFAULT_AREAS
    )


# --- unique and valid --------------------------------------------------------------------------


def test_citizen_numbers_are_unique(residents: list[Application]) -> None:
    numbers = [app.id_number for app in residents]
    assert len(set(numbers)) == len(numbers) == 5000


def test_citizen_numbers_are_valid_for_stdnum(residents: list[Application]) -> None:
    for app in residents:
        assert ric.is_valid(app.id_number), app.id_number  # check digit and area for the birth year


def test_every_resident_passes_the_collection_point_checks(residents: list[Application]) -> None:
    for app in residents:
        assert parse_application(app.to_json(), today=TODAY) == app


def test_numbers_stay_unique_when_everybody_comes_from_one_county() -> None:
    numbers = [
        app.id_number
        for app in generate_applications(6000, rng=Random(1), today=TODAY, areas=["110101"], photo_fraction=0)
    ]
    assert len(set(numbers)) == len(numbers)
    assert {n[:6] for n in numbers} == {"110101"}


def test_numbers_stay_unique_when_few_birth_years_are_possible() -> None:
    # 440604 禅城区 [2002-] only: about 25 birth years, still no collision
    apps = list(generate_applications(3000, rng=Random(3), today=TODAY, areas=["440604"], photo_fraction=0))
    assert len({a.id_number for a in apps}) == 3000
    assert min(a.birth_date for a in apps).year >= 2002


# --- plausible ---------------------------------------------------------------------------------


def test_sex_matches_the_17th_digit(residents: list[Application]) -> None:
    for app in residents:
        assert app.sex == (1 if int(app.id_number[16]) % 2 else 2)
    assert 0.45 < sum(app.sex == 1 for app in residents) / len(residents) < 0.55


def test_birth_dates_spread_from_1930_to_today_with_children(residents: list[Application]) -> None:
    births = [app.birth_date for app in residents]
    assert min(births) >= dt.date(1930, 1, 1) and max(births) <= TODAY
    assert min(births).year < 1940 and max(births).year >= 2024
    children = [b for b in births if (TODAY - b).days < 14 * 365]
    assert 0.08 < len(children) / len(births) < 0.25
    assert len({b.year for b in births}) > 80


def test_the_birth_date_is_in_the_number(residents: list[Application]) -> None:
    for app in residents:
        assert app.id_number[6:14] == app.birth_date.strftime("%Y%m%d")


def test_names_are_chinese_and_fit_the_card(residents: list[Application]) -> None:
    surnames = Counter(app.name[0] for app in residents)
    assert surnames.most_common(3)[0][0] in "王李张"
    for app in residents:
        assert 2 <= len(app.name) <= 4
        assert len(app.name.encode("gbk")) <= 30


def test_ethnicity_is_mostly_han(residents: list[Application]) -> None:
    han = sum(app.ethnicity == "01" for app in residents) / len(residents)
    assert 0.85 < han < 0.97
    assert len({app.ethnicity for app in residents}) > 5


def test_addresses_lie_in_the_residents_city(residents: list[Application]) -> None:
    for app in residents:
        city = area(app.city_code)
        assert city is not None and city.valid_in(TODAY.year)
        kind, text = app.addresses[0]
        assert kind == "1" and text.startswith(city.province)
        assert text.endswith(("号", "室"))


def test_most_residents_have_a_mobile_phone_and_children_a_parent(residents: list[Application]) -> None:
    for app in residents:
        for phone in app.phones + [c.phone for c in app.contacts]:
            assert len(phone) == 11 and phone.startswith("1") and phone.isdigit()
        if (TODAY - app.birth_date).days < 18 * 365:
            assert app.contacts and app.contacts[0].relation == "5"
    assert sum(bool(app.phones) for app in residents) / len(residents) > 0.7


def test_children_are_vaccinated_by_the_national_schedule(residents: list[Application]) -> None:
    names = {name for name, _months in SCHEDULE}
    babies = [app for app in residents if 2 <= (TODAY - app.birth_date).days // 365 < 6]
    assert babies
    for app in babies:
        assert len(app.immunizations) == 10  # the card keeps the latest ten
        assert {name for name, _ in app.immunizations} <= names
    for app in residents:
        for _name, date in app.immunizations:
            assert app.birth_date <= date <= TODAY


def test_some_have_allergies_alerts_and_blood_groups(residents: list[Application]) -> None:
    with_allergy = [app for app in residents if app.allergies]
    assert 0.05 < len(with_allergy) / len(residents) < 0.2
    assert {"青霉素", "磺胺", "花粉"} <= {a for app in with_allergy for a, _ in app.allergies}
    assert any(app.diabetes for app in residents)
    assert any(app.other_alert == "高血压" for app in residents)
    assert Counter(app.abo for app in residents if app.abo).most_common(1)[0][0] == 3  # O


def test_rural_residents_pay_by_ncms(residents: list[Application]) -> None:
    rural = [
        app for app in residents if app.addresses[0][1].split("市")[-1].startswith(("中牟县", "浚县", "淇县"))
    ]
    assert rural
    assert sum("03" in app.payment_methods for app in rural) / len(rural) > 0.8
    for app in residents:
        assert bool(app.ncms_number) == ("03" in app.payment_methods)


# --- photos ------------------------------------------------------------------------------------


def test_portraits_are_small_jpegs() -> None:
    pool = portraits()
    assert len(set(pool)) == len(pool) >= 4
    for jpeg in pool:
        assert len(jpeg) <= PHOTO_LIMIT
        assert normalise_photo(jpeg) == jpeg
        image = Image.open(io.BytesIO(jpeg))
        assert image.format == "JPEG" and image.size == (102, 126)


def test_every_resident_has_a_photo_by_default(residents: list[Application]) -> None:
    assert all(app.photo in portraits() for app in residents)


@pytest.mark.parametrize(("fraction", "low", "high"), [(0.0, 0, 0), (0.5, 150, 250)])
def test_the_photo_fraction_is_honoured(fraction: float, low: int, high: int) -> None:
    apps = generate_applications(400, rng=Random(5), today=TODAY, photo_fraction=fraction)
    assert low <= sum(bool(app.photo) for app in apps) <= high


# --- deterministic and streaming ----------------------------------------------------------------


def test_the_same_seed_gives_the_same_residents() -> None:
    first = list(generate_applications(300, rng=Random(99), today=TODAY))
    second = list(generate_applications(300, rng=Random(99), today=TODAY))
    assert first == second
    assert first != list(generate_applications(300, rng=Random(100), today=TODAY))


def test_applications_stream_one_at_a_time() -> None:
    many = generate_applications(1_000_000, rng=Random(7), today=TODAY, photo_fraction=0)
    first = list(itertools.islice(many, 5))
    assert len(first) == 5 and len({a.id_number for a in first}) == 5


def test_zero_applications() -> None:
    assert list(generate_applications(0, rng=Random(1), today=TODAY)) == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"count": -1}, "count"),
        ({"count": 10, "areas": ["990102"]}, "areas"),
        ({"count": 10, "areas": []}, "areas"),
        ({"count": 10, "areas": ["110103"]}, "areas"),  # 崇文区 [-2010]: nobody lives there now
        ({"count": 10, "photo_fraction": 1.5}, "photo_fraction"),
    ],
)
def test_bad_arguments_are_refused_before_the_first_resident(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        generate_applications(rng=Random(1), today=TODAY, **kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field


# --- files -------------------------------------------------------------------------------------


def test_write_csv_round_trips(tmp_path: Path) -> None:
    apps = list(generate_applications(200, rng=Random(11), today=TODAY, photo_fraction=0.3))
    path = tmp_path / "batch.csv"
    assert write_csv(iter(apps), path) == 200
    with path.open(encoding="utf-8", newline="") as source:
        rows = list(csv.DictReader(source))
    assert [application_from_row(row, today=TODAY) for row in rows] == apps
