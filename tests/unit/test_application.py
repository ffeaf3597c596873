"""Applications from collection points (``healthcard.issuance.application``): checking, JSON,
batch-file rows, and the card data they become (CARD-SPEC.md §4.1–4.6, §8; DECISIONS.md §8–9)."""

from __future__ import annotations

import base64
import copy
import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from healthcard.card.cos import CardOS, CardState
from healthcard.card.personalise import CardContents, Personaliser
from healthcard.card.profile import PROFILE_32K
from healthcard.card.sam import SamOS
from healthcard.clock import FixedClock
from healthcard.demo import tiny_jpeg
from healthcard.errors import InvalidValue
from healthcard.issuance.application import (
    ALERT_FLAGS,
    CSV_COLUMNS,
    Application,
    Contact,
    application_from_row,
    application_to_row,
    card_contents,
    parse_application,
)
from healthcard.issuance.cards import issue_simulated_card
from healthcard.issuance.identity import IdType, check_digit
from healthcard.issuance.keycentre import KeyCentre, SamRequest, terminal_number
from healthcard.issuance.photo import PHOTO_LIMIT
from healthcard.keys import ceremony
from healthcard.keys.kek import PassphraseKek
from healthcard.keys.keystore import KeyStore
from healthcard.terminal.records import Code
from healthcard.terminal.sdk import HealthCardTerminal
from healthcard.terminal.transport import SimulatorTransport

TODAY = dt.date(2026, 11, 24)
CLOCK = FixedClock(dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC))
ZHANG_SAN = "410102199003070019"


def raw(**overrides: object) -> dict[str, object]:
    """张三 of Zhengzhou with everything a collection point can take."""
    data: dict[str, object] = {
        "name": "张三",
        "sex": 1,
        "ethnicity": "01",
        "birth_date": "1990-03-07",
        "id_type": "01",
        "id_number": ZHANG_SAN,
        "photo": tiny_jpeg(),
        "addresses": [
            ["1", "河南省郑州市中原区建设路100号"],
            {"type": "2", "text": "河南省郑州市金水区花园路8号"},
        ],
        "phones": ["13800138000", "0371-6555 1234"],
        "contacts": [
            {"name": "李四", "relation": "1", "phone": "13900139000"},
            ["张大山", "5", "+86 139 0000 0001"],
        ],
        "occupation": "2",
        "marital_status": "20",
        "education": "20",
        "ncms_number": "410102000001",
        "health_record_number": "41010200100100001",
        "abo": 1,
        "rh": "1",
        "asthma": False,
        "diabetes": True,
        "other_alert": "高血压",
        "psychiatric": False,
        "allergies": [["青霉素", "皮疹、呼吸困难"], {"allergen": "花粉", "reaction": ""}],
        "immunizations": [["卡介苗", "19900308"], ["乙肝疫苗(第2剂)", "1990-04-07"]],
        "payment_methods": ["03", "07"],
    }
    data.update(overrides)
    return data


def refused(**overrides: object) -> InvalidValue:
    with pytest.raises(InvalidValue) as caught:
        parse_application(raw(**overrides), today=TODAY)
    return caught.value


@pytest.fixture(scope="module")
def app() -> Application:
    return parse_application(raw(), today=TODAY)


# --- the profile and the dataclass agree ---------------------------------------------------


def test_alert_flags_are_the_profile_flag_items() -> None:
    flags = [i.name for i in PROFILE_32K.items("DF02", "EF05") if i.valueset == "alert_flag"]
    assert list(ALERT_FLAGS) == flags
    fields = Application.__dataclass_fields__
    assert all(name in fields for name in ALERT_FLAGS)


# --- parsing -------------------------------------------------------------------------------


def test_a_full_application_is_parsed(app: Application) -> None:
    assert app.name == "张三" and app.sex == 1 and app.ethnicity == "01"
    assert app.birth_date == dt.date(1990, 3, 7)
    assert app.id_type is IdType.CITIZEN_ID
    assert app.card_number == ZHANG_SAN
    assert app.identity.area == "410102"
    assert app.city_code == "410100"  # from the ID number's area
    assert app.photo == tiny_jpeg()
    assert app.addresses == [("1", "河南省郑州市中原区建设路100号"), ("2", "河南省郑州市金水区花园路8号")]
    assert app.contacts[1] == Contact("张大山", "5", "+86 139 0000 0001")
    assert app.abo == 1 and app.rh == "1"
    assert app.flags["diabetes"] is True and app.flags["asthma"] is False and app.flags["glaucoma"] is None
    assert app.allergies == [("青霉素", "皮疹、呼吸困难"), ("花粉", "")]
    assert app.immunizations == [("卡介苗", dt.date(1990, 3, 8)), ("乙肝疫苗(第2剂)", dt.date(1990, 4, 7))]
    assert app.payment_methods == ["03", "07"]


def test_the_minimum_is_name_sex_ethnicity_birth_date_and_id() -> None:
    minimal = {k: raw()[k] for k in ("name", "sex", "ethnicity", "birth_date", "id_type", "id_number")}
    app = parse_application(minimal, today=TODAY)
    assert app.photo == b"" and app.contacts == [] and app.abo is None and app.psychiatric is None


def test_codes_are_zero_filled_and_text_is_stripped() -> None:
    app = parse_application(
        raw(name=" 张三 ", ethnicity="1", id_type="1", sex="1", payment_methods=["3"], abo="AB"), today=TODAY
    )
    assert (app.name, app.ethnicity, app.id_type, app.payment_methods, app.abo) == (
        "张三",
        "01",
        "01",
        ["03"],
        4,
    )


def test_the_photo_may_be_base64() -> None:
    app = parse_application(raw(photo=base64.b64encode(tiny_jpeg()).decode()), today=TODAY)
    assert app.photo == tiny_jpeg()


def test_a_large_photo_is_normalised() -> None:
    out = io.BytesIO()
    Image.new("RGB", (1200, 1600), (120, 140, 160)).save(out, "JPEG", quality=100)
    app = parse_application(raw(photo=out.getvalue()), today=TODAY)
    assert len(app.photo) <= PHOTO_LIMIT


def test_a_passport_holder_names_the_city() -> None:
    app = parse_application(
        raw(id_type="03", id_number="e12345678", city_code="440600", ncms_number=""), today=TODAY
    )
    assert app.card_number == "E12345678"
    assert app.identity.area is None
    assert app.city_code == "440600"


# --- refusals: one field per error ----------------------------------------------------------


def test_an_over_long_name_is_refused() -> None:
    error = refused(name="欧阳" * 8)
    assert error.field == "name"
    assert "over-long name" in error.message and "32 bytes" in error.message


def test_a_name_outside_gbk_is_refused() -> None:
    error = refused(name="张😀")
    assert error.field == "name"
    assert "GBK" in error.message


def test_an_empty_name_is_refused() -> None:
    assert refused(name="  ").field == "name"


def test_an_unknown_field_is_refused() -> None:
    assert refused(phone="13800138000").field == "phone"


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"id_number": "410102199003070018"}, "id_number", "check digit should be 9"),
        ({"birth_date": "1990-03-08"}, "birth_date", "differs"),
        ({"sex": 2}, "sex", "does not match"),
        ({"sex": 3}, "sex", "unknown sex code"),
        ({"sex": True}, "sex", "GB/T 2261.1"),
        ({"birth_date": "1990-02-30"}, "birth_date", "not a date"),
        ({"birth_date": "7 March 1990"}, "birth_date", "YYYY-MM-DD"),
        ({"id_type": "10"}, "id_type", "unknown ID-document type"),
        ({"ethnicity": "57"}, "ethnicity", "unknown ethnicity"),
        ({"ethnicity": ""}, "ethnicity", "required"),
        ({"marital_status": "50"}, "marital_status", "GB/T 2261.2"),
        ({"education": "11"}, "education", "GB/T 4658"),
        ({"abo": 6}, "abo", "unknown ABO"),
        ({"rh": "4"}, "rh", "unknown Rh"),
        ({"asthma": "maybe"}, "asthma", "1 (yes"),
        ({"other_alert": "高血压" * 7}, "other_alert", "over-long"),
        ({"occupation": "1234"}, "occupation", "GB/T 6565"),
        ({"ncms_number": "41010200000A"}, "ncms_number", "digits only"),
        ({"ncms_number": "4" * 19}, "ncms_number", "at most 18"),
        ({"health_record_number": "4101020010010001"}, "health_record_number", "has 17"),
        ({"health_record_number": "99010200100100001"}, "health_record_number", "GB/T 2260"),
        ({"photo": "not base64!"}, "photo", "base64"),
        ({"photo": 12}, "photo", "JPEG bytes"),
    ],
)
def test_each_bad_value_names_its_field(overrides: dict[str, object], field: str, words: str) -> None:
    error = refused(**overrides)
    assert error.field == field
    assert words in error.message


def test_a_png_photo_is_refused() -> None:
    out = io.BytesIO()
    Image.new("RGB", (102, 126), (255, 255, 255)).save(out, "PNG")
    error = refused(photo=out.getvalue())
    assert error.field == "photo"
    assert "PNG" in error.message and "JPEG" in error.message


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"addresses": [["3", "某地"]]}, "addresses[0].type", "address type"),
        ({"addresses": [["1", ""]]}, "addresses[0].text", "required"),
        ({"addresses": [["1", "路" * 51]]}, "addresses[0].text", "over-long address"),
        ({"addresses": [["1", "a"]] * 3}, "addresses", "3 addresses, the card holds 2"),
        ({"addresses": "河南省"}, "addresses", "expected a list"),
        ({"phones": ["138-0013-8000x"]}, "phones[0]", "not a phone number"),
        ({"phones": ["1" * 21]}, "phones[0]", "holds 20"),
        ({"phones": ["1", "2", "3"]}, "phones", "the card holds 2"),
        (
            {"contacts": [["李四", "1", "110"], ["王五", "9", "13900139000"], ["赵六", "2", "ab"]]},
            "contacts[2].phone",
            "",
        ),
        ({"contacts": [["李四", "x", "13900139000"]]}, "contacts[0].relation", "GB/T 4761"),
        ({"contacts": [["", "1", "13900139000"]]}, "contacts[0].name", "required"),
        ({"contacts": [["李四", "1"]]}, "contacts[0]", "expected"),
        (
            {"contacts": [{"name": "李四", "relation": "1", "mobile": "1"}]},
            "contacts[0].mobile",
            "unknown key",
        ),
        ({"contacts": [["a", "1", "123"]] * 4}, "contacts", "4 contacts, the card holds 3"),
        (
            {"allergies": [["青霉素", "皮疹"], ["青霉素和磺胺类抗生素药物", "皮疹"]]},
            "allergies[1].allergen",
            "over-long",
        ),
        ({"allergies": [["青霉素", "疹" * 51]]}, "allergies[0].reaction", "holds 100"),
        ({"allergies": [["a", "b"]] * 4}, "allergies", "the card holds 3"),
        ({"immunizations": [["卡介苗", "2026-11-25"]]}, "immunizations[0].date", "in the future"),
        ({"immunizations": [["卡介苗", "1990-03-06"]]}, "immunizations[0].date", "before the birth date"),
        ({"immunizations": [["卡介苗", "19900230"]]}, "immunizations[0].date", "not a date"),
        (
            {"immunizations": [["脊髓灰质炎减毒活疫苗糖丸", "19900308"]]},
            "immunizations[0].vaccine",
            "over-long",
        ),
        ({"immunizations": [["卡介苗", "19900308"]] * 11}, "immunizations", "the card holds 10"),
        ({"payment_methods": ["03", "10"]}, "payment_methods[1]", "CV07.10.003"),
        ({"payment_methods": ["03", "3"]}, "payment_methods[1]", "twice"),
        ({"payment_methods": ["01", "02", "03", "07"]}, "payment_methods", "the card holds 3"),
    ],
)
def test_list_entries_name_their_index(overrides: dict[str, object], field: str, words: str) -> None:
    error = refused(**overrides)
    assert error.field == field
    assert words in error.message


def test_the_vaccination_on_the_birth_day_is_accepted() -> None:
    app = parse_application(raw(immunizations=[["卡介苗", "1990-03-07"]]), today=TODAY)
    assert app.immunizations == [("卡介苗", dt.date(1990, 3, 7))]


@pytest.mark.parametrize(
    ("city", "words"),
    [
        ("990100", "not a GB/T 2260 province"),
        ("419900", "not a GB/T 2260 code"),
        ("4101", "6 digits"),
        ("110103", "no longer in use"),  # 崇文区 [-2010]
    ],
)
def test_an_unknown_city_code_is_refused(city: str, words: str) -> None:
    error = refused(city_code=city)
    assert error.field == "city_code"
    assert words in error.message


def test_a_city_code_is_required_without_a_citizen_number() -> None:
    error = refused(id_type="03", id_number="E12345678")
    assert error.field == "city_code"
    assert "护照" in error.message


def test_a_city_derived_from_an_abolished_area_asks_for_the_city() -> None:
    # 412425 中牟县 of 开封地区 [-1983]: its city 412400 is gone
    number = "41242519500101001" + check_digit("41242519500101001")
    error = refused(id_number=number, birth_date="1950-01-01", immunizations=[])
    assert error.field == "city_code"
    assert "taken from the ID number" in error.message
    app = parse_application(
        raw(id_number=number, birth_date="1950-01-01", immunizations=[], city_code="410100"), today=TODAY
    )
    assert app.city_code == "410100"


# --- JSON --------------------------------------------------------------------------------------


def test_json_round_trip(app: Application) -> None:
    stored = json.loads(json.dumps(app.to_json(), ensure_ascii=False))
    assert Application.from_json(stored) == app


def test_json_is_parseable_again(app: Application) -> None:
    assert parse_application(app.to_json(), today=TODAY) == app


def test_from_json_does_not_check_again(app: Application) -> None:
    stored = app.to_json()
    stored["name"] = "欧阳" * 20  # over-long: parse would refuse, from_json reads what is stored
    assert Application.from_json(stored).name == "欧阳" * 20


def test_json_of_a_minimal_application_round_trips() -> None:
    app = Application(
        name="李四",
        sex=2,
        ethnicity="03",
        birth_date=dt.date(2001, 1, 2),
        id_type=IdType.BIRTH_CERTIFICATE,
        id_number="O410012345",
        city_code="410100",
    )
    assert Application.from_json(app.to_json()) == app


# --- batch-file rows -----------------------------------------------------------------------


def test_csv_columns_are_flat_and_unique() -> None:
    assert len(set(CSV_COLUMNS)) == len(CSV_COLUMNS)
    assert CSV_COLUMNS[:6] == ("name", "sex", "ethnicity", "birth_date", "id_type", "id_number")
    for column in ("contact3_phone", "address2_type", "photo_file", "photo_b64", "pacemaker", "allergies"):
        assert column in CSV_COLUMNS


def test_a_row_round_trips(app: Application) -> None:
    row = application_to_row(app)
    assert set(row) == set(CSV_COLUMNS)
    assert row["allergies"] == "青霉素:皮疹、呼吸困难;花粉:"
    assert row["immunizations"] == "卡介苗@1990-03-08;乙肝疫苗(第2剂)@1990-04-07"
    assert row["payment_methods"] == "03;07"
    assert row["diabetes"] == "1" and row["asthma"] == "0" and row["glaucoma"] == ""
    assert application_from_row(row, today=TODAY) == app


def test_rows_round_trip_through_a_csv_file(app: Application, tmp_path: Path) -> None:
    path = tmp_path / "batch.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerow(application_to_row(app))
    with path.open(encoding="utf-8", newline="") as source:
        rows = list(csv.DictReader(source))
    assert [application_from_row(r, today=TODAY) for r in rows] == [app]


def test_separators_inside_text_are_escaped(app: Application) -> None:
    tricky = copy.deepcopy(app)
    tricky.allergies = [("药物:青霉素", "皮疹;呼吸困难\\喘"), ("花粉@春", "")]
    tricky.immunizations = [("疫苗;甲@乙", dt.date(1990, 3, 8))]
    assert application_from_row(application_to_row(tricky), today=TODAY) == tricky


def test_a_hand_written_row(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "zhangsan.jpg").write_bytes(tiny_jpeg())
    row = {
        "name": "张三",
        "sex": "1",
        "ethnicity": "01",
        "birth_date": "19900307",
        "id_type": "01",
        "id_number": ZHANG_SAN,
        "photo_file": "zhangsan.jpg",
        "address2_type": "2",
        "address2": "河南省郑州市金水区花园路8号",
        "contact2_name": "李四",
        "contact2_relation": "1",
        "allergies": "青霉素:皮疹; 磺胺 :荨麻疹",
        "immunizations": "卡介苗@1990-03-08",
        "payment_methods": "03;07",
        "asthma": "否",
        "diabetes": "是",
        "abo": "",
    }
    app = application_from_row(row, today=TODAY, photo_dir=tmp_path / "photos")
    assert app.photo == tiny_jpeg()
    assert app.addresses == [("2", "河南省郑州市金水区花园路8号")]
    assert app.contacts == [Contact("李四", "1", "")]
    assert app.allergies == [("青霉素", "皮疹"), ("磺胺", "荨麻疹")]
    assert (app.asthma, app.diabetes, app.abo) == (False, True, None)


def test_row_errors_name_the_column(app: Application) -> None:
    row = application_to_row(app)
    row["contact2_phone"] = "call me"
    with pytest.raises(InvalidValue) as caught:
        application_from_row(row, today=TODAY)
    assert caught.value.field == "contact2_phone"


def test_row_errors_name_the_column_of_a_later_address(app: Application) -> None:
    row = application_to_row(app)
    row["address1_type"] = row["address1"] = ""
    row["address2_type"] = "7"
    with pytest.raises(InvalidValue) as caught:
        application_from_row(row, today=TODAY)
    assert caught.value.field == "address2_type"


def test_row_photo_errors_name_the_photo_column(app: Application, tmp_path: Path) -> None:
    row = application_to_row(app)
    row["photo_b64"] = base64.b64encode(b"GIF89a" + bytes(20)).decode()
    with pytest.raises(InvalidValue) as caught:
        application_from_row(row, today=TODAY)
    assert caught.value.field == "photo_b64" and "GIF" in caught.value.message
    row["photo_b64"], row["photo_file"] = "", "../secret.jpg"
    with pytest.raises(InvalidValue) as caught:
        application_from_row(row, today=TODAY, photo_dir=tmp_path)
    assert caught.value.field == "photo_file" and "outside" in caught.value.message


@pytest.mark.parametrize(
    ("column", "value", "field", "words"),
    [
        ("photo_file", "missing.jpg", "photo_file", "no such file"),
        ("immunizations", "卡介苗", "immunizations[0]", "vaccine@YYYY-MM-DD"),
        ("remark", "VIP", "remark", "not a column"),
    ],
)
def test_row_refusals(
    app: Application, tmp_path: Path, column: str, value: str, field: str, words: str
) -> None:
    row = application_to_row(app)
    row["photo_b64"] = ""
    row[column] = value
    with pytest.raises(InvalidValue) as caught:
        application_from_row(row, today=TODAY, photo_dir=tmp_path)
    assert caught.value.field == field
    assert words in caught.value.message


def test_photo_file_and_photo_b64_together_are_refused(app: Application) -> None:
    row = application_to_row(app)
    row["photo_file"] = "zhangsan.jpg"
    with pytest.raises(InvalidValue) as caught:
        application_from_row(row, today=TODAY)
    assert caught.value.field == "photo_file"


def test_a_photo_file_needs_a_photo_directory(app: Application) -> None:
    row = application_to_row(app)
    row["photo_b64"], row["photo_file"] = "", "zhangsan.jpg"
    with pytest.raises(InvalidValue) as caught:
        application_from_row(row, today=TODAY)
    assert "no photo directory" in caught.value.message


# --- card contents -------------------------------------------------------------------------


def contents(app: Application, expiry: dt.date = dt.date(2036, 11, 23)) -> CardContents:
    return card_contents(
        app,
        issue_serial="4101000042",
        issuer_name="河南省卫生健康委员会",
        issuer_code="41000000001",
        issue_date=TODAY,
        expiry=expiry,
    )


def test_card_contents_fill_every_file(app: Application) -> None:
    card = contents(app)
    ef05 = card.items["DDF1/EF05"]
    assert ef05["card_number"] == ZHANG_SAN and ef05["city_code"] == "410100"
    assert (ef05["card_category"], ef05["spec_version"], ef05["security_code"]) == ("1", "V1.1", "000")
    assert ef05["issue_date"] == "20261124" and "issuer_certificate" not in ef05
    assert card.items["DDF1/EF06"] == {
        "name": "张三",
        "sex": 1,
        "ethnicity": "01",
        "birth_date": "19900307",
        "citizen_id": ZHANG_SAN,
    }
    ef08 = card.items["DDF1/EF08"]
    assert ef08["expiry_date"] == "20361123" and ef08["payment_method2"] == "07"
    assert card.items["DF02/EF05"]["diabetes"] == 1 and "glaucoma" not in card.items["DF02/EF05"]
    assert card.immunizations == [("乙肝疫苗(第2剂)", "19900407"), ("卡介苗", "19900308")]  # newest first
    assert card.photo == tiny_jpeg()


def test_card_contents_encode_for_the_profile(app: Application) -> None:
    plan = Personaliser(lambda apdu: b"\x90\x00", b"").plan(PROFILE_32K, contents(app))
    assert {"DDF1/EF05", "DF01/EF06", "DF02/EF08", "DDF1/EF07"} <= set(plan)


def test_a_non_citizen_card_has_no_citizen_id() -> None:
    passport = parse_application(raw(id_type="03", id_number="E12345678", city_code="410100"), today=TODAY)
    card = contents(passport)
    assert "citizen_id" not in card.items["DDF1/EF06"]
    assert card.items["DF01/EF08"]["id_type"] == "03"
    assert card.items["DDF1/EF05"]["card_number"] == "E12345678"


def test_an_expiry_before_the_issue_date_is_refused(app: Application) -> None:
    with pytest.raises(InvalidValue) as caught:
        contents(app, expiry=TODAY)
    assert caught.value.field == "expiry"


# --- personalised and read back ------------------------------------------------------------


@pytest.fixture(scope="module")
def centre(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyCentre]:
    store = KeyStore.create(tmp_path_factory.mktemp("keys") / "keystore.json", PassphraseKek("pw"), CLOCK)
    centre = KeyCentre(store, CLOCK)
    centre.ceremony(ceremony.combine(ceremony.generate(3)[1], 3))
    yield centre


@pytest.fixture(scope="module")
def issued(centre: KeyCentre, app: Application) -> tuple[CardState, CardState]:
    card = issue_simulated_card(
        centre, centre.derive_province("41"), bytes.fromhex("0081866B00002001"), contents(app)
    )
    sam = centre.sam(SamRequest(bytes.fromhex("4101000000000007"), terminal_number("410100000007")))
    return card, sam


@pytest.fixture
def terminal(issued: tuple[CardState, CardState]) -> HealthCardTerminal:
    card, sam = issued
    t = HealthCardTerminal(
        SimulatorTransport(CardOS(copy.deepcopy(card))), SimulatorTransport(SamOS(copy.deepcopy(sam)))
    )
    t.open()
    return t


def test_the_card_reads_back_the_holder(terminal: HealthCardTerminal) -> None:
    issuer = terminal.read_issuer()
    assert issuer.card_number == ZHANG_SAN and issuer.city_code == "410100"
    assert issuer.issue_serial == "4101000042" and issuer.issue_date == TODAY
    holder = terminal.read_holder()
    assert holder.name == "张三"
    assert holder.sex == Code("01", "男")
    assert holder.ethnicity == Code("01", "汉")
    assert holder.birth_date == dt.date(1990, 3, 7)
    assert holder.citizen_id == ZHANG_SAN
    assert terminal.read_photo() == tiny_jpeg()


def test_the_card_reads_back_validity_addresses_and_contacts(terminal: HealthCardTerminal) -> None:
    validity = terminal.read_validity()
    assert validity.expiry_date == dt.date(2036, 11, 23)
    assert validity.phones == ["13800138000", "0371-6555 1234"]
    assert [c.code for c in validity.payment_methods] == ["03", "07"]
    assert [(a.type.code if a.type else "", a.address) for a in terminal.read_addresses()] == [
        ("1", "河南省郑州市中原区建设路100号"),
        ("2", "河南省郑州市金水区花园路8号"),
    ]
    contacts = terminal.read_contacts()
    assert [(c.name, c.relation, c.phone) for c in contacts] == [
        ("李四", Code("1", "配偶"), "13900139000"),
        ("张大山", Code("5", "父母"), "+86 139 0000 0001"),
    ]


def test_the_card_reads_back_documents_and_health(terminal: HealthCardTerminal) -> None:
    documents = terminal.read_documents()
    assert documents.id_type == Code("01", "居民身份证")
    assert documents.id_number == ZHANG_SAN
    assert documents.health_record_number == "41010200100100001"
    assert documents.ncms_number == "410102000001"
    occupation = terminal.read_occupation()
    assert (occupation.education, occupation.marital_status, occupation.occupation) == (
        Code("20", "本科"),
        Code("20", "已婚"),
        "2",
    )
    alerts = terminal.read_medical_alerts()
    assert alerts.abo == Code("01", "A") and alerts.rh == Code("1", "Rh阳性")
    assert alerts.flags["diabetes"] is True and alerts.flags["asthma"] is False
    assert alerts.flags["glaucoma"] is None  # not recorded: FF
    assert alerts.other == "高血压"
    assert terminal.read_special() is False
    assert [(a.allergen, a.reaction) for a in terminal.read_allergies()] == [
        ("青霉素", "皮疹、呼吸困难"),
        ("花粉", ""),
    ]
    assert [(i.vaccine, i.date) for i in terminal.read_immunizations()] == [
        ("乙肝疫苗(第2剂)", dt.date(1990, 4, 7)),
        ("卡介苗", dt.date(1990, 3, 8)),
    ]


def test_an_unrecorded_blood_group_reads_as_none(
    centre: KeyCentre, issued: tuple[CardState, CardState]
) -> None:
    bare = parse_application(raw(abo=None, rh=None, psychiatric=None, photo=None), today=TODAY)
    card = issue_simulated_card(
        centre, centre.province("41"), bytes.fromhex("0081866B00002002"), contents(bare)
    )
    t = HealthCardTerminal(
        SimulatorTransport(CardOS(card)), SimulatorTransport(SamOS(copy.deepcopy(issued[1])))
    )
    t.open()
    alerts = t.read_medical_alerts()
    assert alerts.abo is None and alerts.rh is None
    assert t.read_special() is None
    assert t.read_photo() == b""
