"""Key sets per level and version (``healthcard.keys.keyset``; DECISIONS.md §10–12, §17)."""

from __future__ import annotations

import pytest

from healthcard.errors import InvalidValue
from healthcard.keys import keyset, recipes
from healthcard.keys.keyset import (
    CardKeyDeriver,
    KeySet,
    KeySetId,
    Level,
    card_key_set,
    city_factor,
    derive_city,
    derive_province,
    national_set,
    province_factor,
)
from healthcard.keys.primitives import Algorithm, ecb_encrypt
from healthcard.keys.table import KEY_TABLE, Depth, KeySpec

from .vectorfiles import records

DIVERSIFY_VECTORS = records("diversify.txt", "PARENT_KEY", "FACTOR", "CHILD_KEY")
PROVINCE_VECTORS = records("diversify.txt", "CITY_CODE", "PROVINCE_FACTOR")

ROOT = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
ROOT2 = bytes.fromhex("F0E1D2C3B4A5968778695A4B3C2D1E0F")
SERIALS = [bytes.fromhex("0081866B00001015"), bytes.fromhex("008586530002E8E4"), bytes(8), b"\xff" * 8]
ALGORITHMS = [Algorithm.SM4, Algorithm.TDES]
NAMES = [s.name for s in KEY_TABLE]


@pytest.fixture(scope="module", params=ALGORITHMS, ids=lambda a: a.name)
def national(request: pytest.FixtureRequest) -> KeySet:
    return national_set(ROOT, 1, request.param)


@pytest.fixture(scope="module")
def province(national: KeySet) -> KeySet:
    return derive_province(national, "41")


@pytest.fixture(scope="module")
def city(province: KeySet) -> KeySet:
    return derive_city(province, "4101")


# --- the diversification vector and the factors ---------------------------------------------


def test_vector_file_is_read() -> None:
    assert len(DIVERSIFY_VECTORS) == 1
    assert [v["CITY_CODE"] for v in PROVINCE_VECTORS] == ["210000", "130185"]


@pytest.mark.parametrize("vector", DIVERSIFY_VECTORS, ids=lambda v: v["FACTOR"])
def test_diversify_vector(vector: dict[str, str]) -> None:
    parent, factor = bytes.fromhex(vector["PARENT_KEY"]), bytes.fromhex(vector["FACTOR"])
    child = bytes.fromhex(vector["CHILD_KEY"])
    assert recipes.diversify(parent, factor) == child
    assert recipes.diversify(parent, factor, Algorithm.SM4) == child
    # a card-level deriver is exactly D(K, serial) for the vector's parent and factor
    issuing = KeySet(KeySetId(Level.PROVINCE, "41", 1), Algorithm.SM4, dict.fromkeys(NAMES, parent))
    derived = CardKeyDeriver(issuing).derive(factor)
    assert all(derived[n] == child for n in NAMES)


@pytest.mark.parametrize("vector", PROVINCE_VECTORS, ids=lambda v: v["CITY_CODE"])
def test_province_factor_vector(vector: dict[str, str]) -> None:
    expected = bytes.fromhex(vector["PROVINCE_FACTOR"])
    assert keyset.province_factor(vector["CITY_CODE"]) == expected
    assert recipes.province_factor(vector["CITY_CODE"]) == expected


def test_province_and_city_factors() -> None:
    assert province_factor("41") == b"41000000"
    assert province_factor("410100") == b"41000000"
    assert city_factor("4101") == b"41010000"
    assert city_factor("410102") == b"41010000"
    assert len(province_factor("44")) == len(city_factor("4401")) == 8


@pytest.mark.parametrize("bad", ["99", "4", "", "xx", "00"])
def test_province_factor_refuses_a_bad_province(bad: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        province_factor(bad)
    assert caught.value.field == "province"


@pytest.mark.parametrize(
    ("bad", "field"), [("4100", "city"), ("410", "city"), ("41ab", "city"), ("9901", "province")]
)
def test_city_factor_refuses_a_bad_city(bad: str, field: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        city_factor(bad)
    assert caught.value.field == field


# --- KeySetId -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("national/v1", KeySetId(Level.NATIONAL, "", 1)),
        ("national/v255", KeySetId(Level.NATIONAL, "", 255)),
        ("province/41/v1", KeySetId(Level.PROVINCE, "41", 1)),
        ("province/44/v12", KeySetId(Level.PROVINCE, "44", 12)),
        ("city/4101/v3", KeySetId(Level.CITY, "4101", 3)),
    ],
)
def test_key_set_id_round_trip(text: str, expected: KeySetId) -> None:
    assert KeySetId.parse(text) == expected
    assert str(expected) == text
    assert KeySetId.parse(str(expected)) == expected
    assert KeySetId.parse(f"  {text} ") == expected


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("province/41/v0", "key_set"),
        ("national/v256", "key_set"),
        ("national/1", "key_set"),
        ("national", "key_set"),
        ("national/v1/x", "key_set"),
        ("province/v1", "key_set"),
        ("country/41/v1", "key_set"),
        ("province/41/vx", "key_set"),
        ("", "key_set"),
        ("province/99/v1", "province"),
        ("province/4/v1", "province"),
        ("city/4100/v1", "city"),
        ("city/9901/v1", "province"),
    ],
)
def test_key_set_id_refuses_bad_names_by_field(text: str, field: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        KeySetId.parse(text)
    assert caught.value.field == field
    if field == "key_set":
        assert repr(text) in caught.value.message


@pytest.mark.parametrize("text", ["province/4101/v1", "city/410100/v1", "national/v+1"])
def test_key_set_id_refuses_non_canonical_names(text: str) -> None:
    with pytest.raises(InvalidValue):
        KeySetId.parse(text)


def test_key_set_ids_sort_by_level_region_version() -> None:
    ids = [KeySetId.parse(t) for t in ["city/4101/v1", "province/41/v2", "national/v2", "province/41/v1"]]
    assert [str(i) for i in sorted(ids)] == [
        "national/v2",
        "province/41/v1",
        "province/41/v2",
        "city/4101/v1",
    ]


# --- national sets ------------------------------------------------------------------------------


def test_national_set_is_deterministic_per_root_version_algorithm() -> None:
    a = national_set(ROOT, 1, Algorithm.SM4)
    assert a.id == KeySetId(Level.NATIONAL, "", 1) and a.version == 1
    assert a.algorithm is Algorithm.SM4
    assert list(a) == NAMES
    assert dict(national_set(ROOT, 1, Algorithm.SM4).keys) == dict(a.keys)
    assert national_set(ROOT).keys == a.keys  # defaults: version 1, SM4
    # K1 = D(root, first 8 bytes of SM3("healthcard/K1/<name>/v<version>"))
    for name in NAMES:
        assert a[name] == recipes.diversify(ROOT, keyset.national_label(name, 1))
    assert len({a[n] for n in NAMES}) == len(NAMES)  # every key its own value
    others = [
        national_set(ROOT, 2, Algorithm.SM4),
        national_set(ROOT, 1, Algorithm.TDES),
        national_set(ROOT2, 1, Algorithm.SM4),
    ]
    for other in others:
        assert all(other[n] != a[n] for n in NAMES), other.id
    assert national_set(ROOT, 2).id == KeySetId(Level.NATIONAL, "", 2)
    assert national_set(ROOT, 1, Algorithm.TDES).algorithm is Algorithm.TDES


@pytest.mark.parametrize(
    ("root", "version", "field"),
    [(bytes(15), 1, "root"), (bytes(17), 1, "root"), (ROOT, 0, "version"), (ROOT, 256, "version")],
)
def test_national_set_refuses_bad_parameters(root: bytes, version: int, field: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        national_set(root, version)
    assert caught.value.field == field


def test_key_set_needs_every_key_of_16_bytes() -> None:
    full = dict.fromkeys(NAMES, bytes(16))
    set_id = KeySetId(Level.NATIONAL, "", 1)
    KeySet(set_id, Algorithm.SM4, full)
    with pytest.raises(InvalidValue, match="TKMF") as caught:
        KeySet(set_id, Algorithm.SM4, {n: v for n, v in full.items() if n != "TKMF"})
    assert caught.value.field == "key_set"
    with pytest.raises(InvalidValue) as caught:
        KeySet(set_id, Algorithm.SM4, dict(full, RK1DF01=bytes(8)))
    assert caught.value.field == "key_set"


def test_kcv_is_three_bytes_of_e_k_zero(national: KeySet) -> None:
    block = bytes(national.algorithm.block_size)
    for name in NAMES:
        assert national.kcv(name) == ecb_encrypt(national.algorithm, national[name], block)[:3]
    assert national.kcvs() == {n: national.kcv(n).hex().upper() for n in NAMES}


# --- province and city sets ---------------------------------------------------------------------


def test_derive_province_keeps_card_depth_keys_and_diversifies_the_others(
    national: KeySet, province: KeySet
) -> None:
    assert province.id == KeySetId(Level.PROVINCE, "41", 1)
    assert province.algorithm is national.algorithm
    factor = b"41000000"
    for spec in KEY_TABLE:
        if spec.depth is Depth.CARD:
            assert province[spec.name] == national[spec.name], spec.name
        else:
            assert province[spec.name] == recipes.diversify(national[spec.name], factor, national.algorithm)
            assert province[spec.name] != national[spec.name]
    other = derive_province(national, "44")
    assert all((other[s.name] == province[s.name]) == (s.depth is Depth.CARD) for s in KEY_TABLE), (
        "another province shares exactly the card-depth keys"
    )
    assert derive_province(national, "410100").keys == province.keys  # first two digits


def test_derive_province_of_another_version_differs(national: KeySet, province: KeySet) -> None:
    v2 = derive_province(national_set(ROOT, 2, national.algorithm), "41")
    assert v2.id == KeySetId(Level.PROVINCE, "41", 2)
    assert all(v2[n] != province[n] for n in NAMES)


@pytest.mark.parametrize("spec", KEY_TABLE, ids=lambda s: s.name)
def test_card_key_from_the_province_set_is_what_the_sam_computes(
    national: KeySet, province: KeySet, spec: KeySpec
) -> None:
    """The issuer derives ``D(K2, serial)`` from its province set; a SAM holding ``K1`` computes
    ``card_key(K1, serial, province factor)`` (no province factor for card-depth keys)."""
    deriver = CardKeyDeriver(province)
    pf = b"41000000" if spec.depth is Depth.PROVINCE_CARD else None
    for serial in SERIALS:
        card = deriver.derive(serial)
        expected = recipes.card_key(national[spec.name], serial, pf, national.algorithm)
        assert card[spec.name] == expected, serial.hex()
        assert card_key_set(province, serial)[spec.name] == expected


def test_card_key_set_fields(province: KeySet) -> None:
    card = card_key_set(province, SERIALS[0])
    assert card.serial == SERIALS[0]
    assert card.version == 1
    assert card.algorithm is province.algorithm
    assert card.city_level is False
    assert set(card.keys) == set(NAMES)
    assert all(len(v) == 16 for v in card.keys.values())
    assert card_key_set(province, SERIALS[1])["RK1DDF1"] != card["RK1DDF1"]


def test_city_level_equals_card_key_with_province_and_city(
    national: KeySet, province: KeySet, city: KeySet
) -> None:
    assert city.id == KeySetId(Level.CITY, "4101", 1)
    assert city.algorithm is national.algorithm
    for spec in KEY_TABLE:
        if spec.depth is Depth.CARD:
            assert city[spec.name] == province[spec.name] == national[spec.name]
        else:
            assert city[spec.name] == recipes.diversify(province[spec.name], b"41010000", national.algorithm)
    for serial in SERIALS[:2]:
        card = card_key_set(city, serial)
        assert card.city_level is True
        for spec in KEY_TABLE:
            if spec.depth is Depth.PROVINCE_CARD:
                expected = recipes.card_key(
                    national[spec.name], serial, b"41000000", national.algorithm, city=b"41010000"
                )
            else:
                expected = recipes.card_key(national[spec.name], serial, None, national.algorithm)
            assert card[spec.name] == expected, spec.name
        province_card = card_key_set(province, serial)
        for spec in KEY_TABLE:
            assert (card[spec.name] == province_card[spec.name]) == (spec.depth is Depth.CARD)


def test_derive_city_refuses_a_city_of_another_province(province: KeySet) -> None:
    with pytest.raises(InvalidValue) as caught:
        derive_city(province, "4401")
    assert caught.value.field == "city"
    assert "4401" in caught.value.message and "41" in caught.value.message


def test_derivations_refuse_the_wrong_level(national: KeySet, province: KeySet, city: KeySet) -> None:
    for bad in (province, city):
        with pytest.raises(InvalidValue) as caught:
            derive_province(bad, "41")
        assert caught.value.field == "key_set"
    for bad in (national, city):
        with pytest.raises(InvalidValue) as caught:
            derive_city(bad, "4101")
        assert caught.value.field == "key_set"
    with pytest.raises(InvalidValue) as caught:
        CardKeyDeriver(national)
    assert caught.value.field == "key_set"
    with pytest.raises(InvalidValue) as caught:
        derive_province(national, "99")
    assert caught.value.field == "province"


# --- CardKeyDeriver -----------------------------------------------------------------------------


def test_derive_many_equals_derive_per_serial(province: KeySet, city: KeySet) -> None:
    serials = [*SERIALS, *(bytes([i]) * 8 for i in range(1, 40))]
    for issuing in (province, city):
        deriver = CardKeyDeriver(issuing)
        many = deriver.derive_many(serials)
        assert len(many) == len(serials)
        for serial, card in zip(serials, many, strict=True):
            one = deriver.derive(serial)
            assert card.serial == serial
            assert dict(card.keys) == dict(one.keys)
            assert (card.version, card.algorithm, card.city_level) == (
                one.version,
                one.algorithm,
                one.city_level,
            )
        assert deriver.derive_many([]) == []
        assert deriver.derive_many(iter(serials[:2]))[1].keys == many[1].keys  # any iterable


@pytest.mark.parametrize("length", [0, 7, 9, 16])
def test_wrong_serial_length_is_refused(province: KeySet, length: int) -> None:
    deriver = CardKeyDeriver(province)
    with pytest.raises(InvalidValue) as caught:
        deriver.derive(bytes(length))
    assert caught.value.field == "chip_serial"
    with pytest.raises(InvalidValue) as caught:
        deriver.derive_many([SERIALS[0], bytes(length)])
    assert caught.value.field == "chip_serial"
    with pytest.raises(InvalidValue) as caught:
        card_key_set(province, bytes(length))
    assert caught.value.field == "chip_serial"


def test_reprs_show_no_key(national: KeySet, province: KeySet) -> None:
    card = card_key_set(province, SERIALS[0])
    deriver = CardKeyDeriver(province)
    texts = [repr(national), repr(province), repr(card), repr(deriver), str(national), str(card)]
    secrets = [*national.keys.values(), *province.keys.values(), *card.keys.values()]
    for text in texts:
        for value in secrets:
            assert value.hex() not in text.lower()
            assert repr(value) not in text
    assert "province/41/v1" in repr(deriver)
    assert "PROVINCE" in repr(province) or "province" in repr(province)
