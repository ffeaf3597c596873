"""Key sets between key centres, wrapped under a transport key (``healthcard.keys.exchange``)."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from healthcard.errors import InvalidValue
from healthcard.keys import exchange
from healthcard.keys.exchange import export_set, import_set
from healthcard.keys.keyset import KeySet, derive_city, derive_province, national_set
from healthcard.keys.primitives import Algorithm, ecb_encrypt

ROOT = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
TRANSPORT = bytes.fromhex("A0A1A2A3A4A5A6A7A8A9AAABACADAEAF")
OTHER_TRANSPORT = bytes.fromhex("B0B1B2B3B4B5B6B7B8B9BABBBCBDBEBF")


def kcv(key: bytes) -> str:
    return ecb_encrypt(Algorithm.SM4, key, bytes(16))[:3].hex().upper()


@pytest.fixture(scope="module", params=[Algorithm.SM4, Algorithm.TDES], ids=lambda a: a.name)
def province(request: pytest.FixtureRequest) -> KeySet:
    return derive_province(national_set(ROOT, 1, request.param), "41")


@pytest.fixture(scope="module")
def export(province: KeySet) -> dict[str, Any]:
    return export_set(province, TRANSPORT, "transport/p41")


def test_round_trip(province: KeySet, export: dict[str, Any]) -> None:
    back = import_set(export, TRANSPORT)
    assert back.id == province.id
    assert back.algorithm is province.algorithm
    assert dict(back.keys) == dict(province.keys)
    # through JSON text as it travels
    assert dict(import_set(json.loads(json.dumps(export)), TRANSPORT).keys) == dict(province.keys)


def test_round_trip_of_national_and_city_sets() -> None:
    national = national_set(ROOT, 3, Algorithm.TDES)
    city = derive_city(derive_province(national_set(ROOT, 2), "44"), "4401")
    for keyset in (national, city):
        back = import_set(export_set(keyset, TRANSPORT, "tk"), TRANSPORT)
        assert (back.id, back.algorithm, dict(back.keys)) == (keyset.id, keyset.algorithm, dict(keyset.keys))


def test_export_document(province: KeySet, export: dict[str, Any]) -> None:
    assert export["format"] == exchange.FORMAT == "healthcard-key-export/1"
    assert export["key_set"] == "province/41/v1"
    assert export["algorithm"] == province.algorithm.name
    assert export["transport"] == {"name": "transport/p41", "kcv": kcv(TRANSPORT)}
    assert set(export["keys"]) == set(province.keys)
    for name, entry in export["keys"].items():
        assert entry["wrapped"] == ecb_encrypt(Algorithm.SM4, TRANSPORT, province[name]).hex().upper()
        assert entry["kcv"] == province.kcv(name).hex().upper()
    assert len(bytes.fromhex(export["mac"])) == 4


def test_export_holds_no_key_in_clear(province: KeySet, export: dict[str, Any]) -> None:
    text = json.dumps(export)
    for value in [*province.keys.values(), TRANSPORT]:
        for form in (value.hex(), value.hex().upper(), base64.b64encode(value).decode().rstrip("=")):
            assert form not in text
        assert value.decode("latin-1") not in text


def test_wrong_transport_key_names_both_check_values(export: dict[str, Any]) -> None:
    with pytest.raises(InvalidValue) as caught:
        import_set(export, OTHER_TRANSPORT)
    error = caught.value
    assert error.field == "transport_key"
    assert kcv(TRANSPORT) in error.message and kcv(OTHER_TRANSPORT) in error.message
    assert TRANSPORT.hex().upper() not in str(error) and OTHER_TRANSPORT.hex().upper() not in str(error)


def test_transport_key_of_wrong_length_is_refused(province: KeySet) -> None:
    with pytest.raises(InvalidValue) as caught:
        export_set(province, bytes(8), "tk")
    assert caught.value.field == "transport_key"


def _flip_hex(text: str, index: int) -> str:
    raw = bytearray(bytes.fromhex(text))
    raw[index] ^= 0x01
    return raw.hex().upper()


@pytest.mark.parametrize("index", [0, 7, 15])
def test_a_flipped_wrapped_byte_is_refused(export: dict[str, Any], index: int) -> None:
    doc = copy.deepcopy(export)
    doc["keys"]["UK1DF03"]["wrapped"] = _flip_hex(doc["keys"]["UK1DF03"]["wrapped"], index)
    with pytest.raises(InvalidValue) as caught:
        import_set(doc, TRANSPORT)
    assert caught.value.field in {"export", "export/UK1DF03"}
    assert "MAC" in caught.value.message or "check value" in caught.value.message


def test_a_flipped_wrapped_byte_with_a_recomputed_mac_fails_the_kcv(export: dict[str, Any]) -> None:
    """An attacker who knew the MAC key would still hit the per-key check value."""
    doc = copy.deepcopy(export)
    doc["keys"]["RK1DF02"]["wrapped"] = _flip_hex(doc["keys"]["RK1DF02"]["wrapped"], 3)
    body = {k: v for k, v in doc.items() if k != "mac"}
    doc["mac"] = exchange._mac(TRANSPORT, body)
    with pytest.raises(InvalidValue) as caught:
        import_set(doc, TRANSPORT)
    assert caught.value.field == "export/RK1DF02"


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("key_set",), "province/44/v1"),
        (("key_set",), "province/41/v2"),
        (("transport", "name"), "transport/other"),
        (("keys", "RK1DDF1", "kcv"), "000000"),
        (("mac",), None),  # flipped below
    ],
)
def test_altered_fields_fail_the_mac(
    export: dict[str, Any], path: tuple[str, ...], value: str | None
) -> None:
    doc = copy.deepcopy(export)
    target = doc
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = _flip_hex(target[path[-1]], 0) if value is None else value
    with pytest.raises(InvalidValue) as caught:
        import_set(doc, TRANSPORT)
    assert caught.value.field == "export"
    assert "MAC" in caught.value.message


def test_a_dropped_or_added_key_fails_the_mac(export: dict[str, Any]) -> None:
    dropped = copy.deepcopy(export)
    del dropped["keys"]["TKMF"]
    added = copy.deepcopy(export)
    added["keys"]["EXTRA"] = dict(added["keys"]["TKMF"])
    for doc in (dropped, added):
        with pytest.raises(InvalidValue) as caught:
            import_set(doc, TRANSPORT)
        assert caught.value.field == "export"


def test_a_changed_algorithm_is_refused(province: KeySet, export: dict[str, Any]) -> None:
    doc = copy.deepcopy(export)
    doc["algorithm"] = "TDES" if province.algorithm is Algorithm.SM4 else "SM4"
    with pytest.raises(InvalidValue) as caught:
        import_set(doc, TRANSPORT)
    assert caught.value.field == "export"


@pytest.mark.parametrize("field", ["key_set", "algorithm", "transport", "keys", "mac"])
def test_a_missing_field_is_refused(export: dict[str, Any], field: str) -> None:
    doc = copy.deepcopy(export)
    del doc[field]
    with pytest.raises(InvalidValue) as caught:
        import_set(doc, TRANSPORT)
    assert caught.value.field == "export"


@pytest.mark.parametrize(
    "doc",
    [
        {},
        [],
        "not a document",
        {"format": "healthcard-key-export/2"},
    ],
    ids=["empty", "list", "string", "other-format"],
)
def test_not_an_export(doc: Any) -> None:
    with pytest.raises(InvalidValue) as caught:
        import_set(doc, TRANSPORT)
    assert caught.value.field == "export"


def test_missing_format_is_refused(export: dict[str, Any]) -> None:
    doc = copy.deepcopy(export)
    del doc["format"]
    with pytest.raises(InvalidValue) as caught:
        import_set(doc, TRANSPORT)
    assert caught.value.field == "export"


@pytest.mark.parametrize(("field", "value"), [("mac", "ZZ"), ("algorithm", "AES"), ("transport", "x")])
def test_damaged_fields_are_refused(export: dict[str, Any], field: str, value: str) -> None:
    doc = dict(copy.deepcopy(export), **{field: value})
    with pytest.raises(InvalidValue) as caught:
        import_set(doc, TRANSPORT)
    assert caught.value.field == "export"


def test_errors_carry_no_key_material(province: KeySet, export: dict[str, Any]) -> None:
    doc = copy.deepcopy(export)
    doc["keys"]["RK1DF02"]["wrapped"] = _flip_hex(doc["keys"]["RK1DF02"]["wrapped"], 0)
    doc["mac"] = exchange._mac(TRANSPORT, {k: v for k, v in doc.items() if k != "mac"})
    with pytest.raises(InvalidValue) as caught:
        import_set(doc, TRANSPORT)
    text = str(caught.value).lower()
    for value in [*province.keys.values(), TRANSPORT]:
        assert value.hex() not in text
