"""The passphrase KEK of the key store and ``open_kek`` (the PKCS#11 KEK: tests/integration/test_hsm.py).

scrypt runs with the real parameters (n=2**15), so the tests share a few KEK instances and
boxes: each new (passphrase, salt) costs one KDF run."""

from __future__ import annotations

import base64
import json
import secrets

import pytest

from healthcard.errors import InvalidValue, KeyStoreError
from healthcard.keys.kek import SCRYPT_N, Kek, PassphraseKek, open_kek

PASSPHRASE = "correct horse battery staple"
AAD = b"healthcard-key-store/1:province-44"
DEK = secrets.token_bytes(32)


@pytest.fixture(scope="module")
def kek() -> PassphraseKek:
    return PassphraseKek(PASSPHRASE)


@pytest.fixture(scope="module")
def box(kek: PassphraseKek) -> dict[str, str]:
    return kek.wrap(DEK, AAD)


def _flip(text: str, index: int) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def test_round_trip_and_box(kek: PassphraseKek, box: dict[str, str]) -> None:
    assert kek.unwrap(box, AAD) == DEK
    assert box["kind"] == "passphrase"
    assert (box["kdf"], box["n"], box["r"], box["p"]) == ("scrypt", str(SCRYPT_N), "8", "1")
    assert len(base64.b64decode(box["salt"])) == 16
    assert len(base64.b64decode(box["nonce"])) == 12
    assert json.loads(json.dumps(box)) == box  # JSON-able, all strings
    assert DEK.hex() not in json.dumps(box)


def test_a_second_instance_opens_the_box(box: dict[str, str]) -> None:
    other: Kek = PassphraseKek(PASSPHRASE)
    assert other.unwrap(box, AAD) == DEK
    # re-wrapping re-uses the opened box's salt (no new KDF run) but never the nonce
    again = other.wrap(DEK, AAD)
    assert again["salt"] == box["salt"] and again["nonce"] != box["nonce"]
    assert other.unwrap(again, AAD) == DEK


def test_wrong_passphrase_says_so_without_secrets(box: dict[str, str]) -> None:
    wrong = "correct horse battery stapler"
    with pytest.raises(KeyStoreError) as caught:
        PassphraseKek(wrong).unwrap(box, AAD)
    message = str(caught.value)
    assert "passphrase" in message
    for secret in (DEK.hex(), DEK.hex().upper(), PASSPHRASE, wrong):
        assert secret not in message
    assert repr(DEK)[2:-1] not in message
    assert caught.value.__suppress_context__


@pytest.mark.parametrize("field", ["wrapped", "nonce", "salt"])
def test_tampered_box_is_refused(kek: PassphraseKek, box: dict[str, str], field: str) -> None:
    bad = dict(box, **{field: _flip(box[field], 0)})
    with pytest.raises(KeyStoreError, match="passphrase is wrong, or the key store is damaged"):
        kek.unwrap(bad, AAD)


@pytest.mark.parametrize(
    "change",
    [
        {"wrapped": "not base64!"},
        {"n": "3"},  # not a power of two
        {"n": str(2**30)},  # more memory than any key store may ask for
        {"alg": "AES-GCM/scrypt"},
        {"wrapped": base64.b64encode(b"short").decode()},
    ],
)
def test_damaged_box_is_refused(kek: PassphraseKek, box: dict[str, str], change: dict[str, str]) -> None:
    with pytest.raises(KeyStoreError, match="damaged"):
        kek.unwrap(dict(box, **change), AAD)


def test_missing_field_is_refused(kek: PassphraseKek, box: dict[str, str]) -> None:
    with pytest.raises(KeyStoreError, match="damaged"):
        kek.unwrap({k: v for k, v in box.items() if k != "nonce"}, AAD)


def test_wrong_aad_is_refused(kek: PassphraseKek, box: dict[str, str]) -> None:
    with pytest.raises(KeyStoreError, match="passphrase is wrong"):
        kek.unwrap(box, AAD + b"-other")
    with pytest.raises(KeyStoreError):
        kek.unwrap(box, b"")


def test_box_of_another_kind_is_named(kek: PassphraseKek, box: dict[str, str]) -> None:
    with pytest.raises(KeyStoreError, match="'pkcs11' KEK"):
        kek.unwrap(dict(box, kind="pkcs11"), AAD)


def test_repr_hides_the_passphrase(kek: PassphraseKek) -> None:
    assert PASSPHRASE not in repr(kek) and PASSPHRASE not in str(kek)
    assert "hidden" in repr(kek)
    assert PASSPHRASE not in kek.label and "scrypt" in kek.label


def test_empty_passphrase_refused() -> None:
    with pytest.raises(InvalidValue) as caught:
        PassphraseKek("")
    assert caught.value.field == "passphrase"


def test_empty_dek_refused(kek: PassphraseKek) -> None:
    with pytest.raises(InvalidValue) as caught:
        kek.wrap(b"", AAD)
    assert caught.value.field == "dek"


def test_open_kek_passphrase(box: dict[str, str]) -> None:
    opened = open_kek("passphrase", passphrase=PASSPHRASE)
    assert isinstance(opened, PassphraseKek)
    assert opened.unwrap(box, AAD) == DEK


@pytest.mark.parametrize(
    ("kind", "kwargs", "field"),
    [
        ("passphrase", {}, "passphrase"),
        ("passphrase", {"passphrase": ""}, "passphrase"),
        ("pkcs11", {"pin": "1234"}, "token"),
        ("pkcs11", {"token": "healthcard"}, "pin"),
        ("pkcs11", {"token": "healthcard", "pin": ""}, "pin"),
        ("pkcs11", {"token": "healthcard", "pin": "1234", "key_label": ""}, "key_label"),
        ("vault", {"passphrase": PASSPHRASE}, "kind"),
    ],
)
def test_open_kek_errors_are_field_named(kind: str, kwargs: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        open_kek(kind, **kwargs)
    assert caught.value.field == field
    assert "1234" not in str(caught.value)
