"""The key store (``healthcard.keys.keystore``) under the passphrase KEK.

scrypt runs with the real parameters, so the KEK instances are module-scoped: each one runs the
KDF once per salt it meets."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from healthcard.clock import FixedClock
from healthcard.errors import InvalidValue, KeyStoreError
from healthcard.keys.kek import PassphraseKek
from healthcard.keys.keyset import KeySet, KeySetId, Level, derive_city, derive_province, national_set
from healthcard.keys.keystore import FORMAT, KeyStore
from healthcard.keys.primitives import Algorithm

PASSPHRASE = "store passphrase for tests"
NEW_PASSPHRASE = "a new and different passphrase"
ROOT = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
SM2_PRIVATE = bytes.fromhex("3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8")
TRANSPORT = bytes.fromhex("A0A1A2A3A4A5A6A7A8A9AAABACADAEAF")
NOW = dt.datetime(2026, 3, 1, 8, 30, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def kek() -> PassphraseKek:
    return PassphraseKek(PASSPHRASE)


@pytest.fixture(scope="module")
def new_kek() -> PassphraseKek:
    return PassphraseKek(NEW_PASSPHRASE)


@pytest.fixture(scope="module")
def sets() -> dict[str, KeySet]:
    v1 = national_set(ROOT, 1)
    v2 = national_set(ROOT, 2, Algorithm.TDES)
    province = derive_province(v1, "41")
    return {
        "national/v1": v1,
        "national/v2": v2,
        "province/41/v1": province,
        "city/4101/v1": derive_city(province, "4101"),
        "province/44/v2": derive_province(v2, "44"),
    }


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "keystore.json"


def _fill(store: KeyStore, sets: dict[str, KeySet]) -> None:
    for keyset in sets.values():
        store.put_keyset(keyset)
    store.put_secret("sm2/root/1", "sm2", SM2_PRIVATE, algorithm="SM2", public={"public": "04AB"})
    store.put_secret("transport/p41", "transport", TRANSPORT, algorithm="SM4", kcv="123456")


@pytest.fixture
def filled(path: Path, kek: PassphraseKek, sets: dict[str, KeySet]) -> KeyStore:
    store = KeyStore.create(path, kek, FixedClock(NOW))
    _fill(store, sets)
    return store


def _doc(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _same(a: KeySet, b: KeySet) -> bool:
    return (a.id, a.algorithm, dict(a.keys)) == (b.id, b.algorithm, dict(b.keys))


# --- create / open ------------------------------------------------------------------------------


def test_create_and_open_round_trip(
    filled: KeyStore, path: Path, kek: PassphraseKek, sets: dict[str, KeySet]
) -> None:
    assert path.is_file()
    for store in (filled, KeyStore.open(path, kek), KeyStore.open(path, PassphraseKek(PASSPHRASE))):
        for name, keyset in sets.items():
            assert _same(store.keyset(name), keyset), name
            assert _same(store.keyset(KeySetId.parse(name)), keyset), name
            assert store.has(name)
        assert store.secret("sm2/root/1") == SM2_PRIVATE
        assert store.secret("transport/p41") == TRANSPORT
        assert store.public("sm2/root/1") == {"public": "04AB"}
        assert not store.has("national/v3")


def test_entries_show_only_public_parts(filled: KeyStore, sets: dict[str, KeySet]) -> None:
    infos = {e.id: e for e in filled.entries()}
    assert set(infos) == {*sets, "sm2/root/1", "transport/p41"}
    national = infos["national/v1"]
    assert national.kind == "keyset" and national.algorithm == "SM4"
    assert national.kcv == sets["national/v1"].kcvs()
    assert national.created == "2026-03-01T08:30:00+00:00"
    assert infos["national/v2"].algorithm == "TDES"
    assert infos["transport/p41"].kcv == "123456" and infos["transport/p41"].kind == "transport"
    assert infos["sm2/root/1"].public == {"public": "04AB"}


def test_file_format(filled: KeyStore, path: Path) -> None:
    doc = _doc(path)
    assert doc["format"] == FORMAT == "healthcard-keystore/1"
    assert doc["kek"]["kind"] == "passphrase"
    assert doc["entries"]["national/v1"]["sealed"]["alg"] == "SM4-GCM"
    assert len(base64.b64decode(doc["entries"]["national/v1"]["sealed"]["nonce"])) == 12
    nonces = {e["sealed"]["nonce"] for e in doc["entries"].values()}
    assert len(nonces) == len(doc["entries"])


def test_file_mode_is_0600(filled: KeyStore, path: Path) -> None:
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    filled.put_secret("transport/p44", "transport", TRANSPORT)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["keystore.json"]  # no temporary left


def test_nothing_secret_is_in_the_file_in_clear(
    filled: KeyStore, path: Path, sets: dict[str, KeySet]
) -> None:
    data = path.read_bytes()
    secrets = [v for keyset in sets.values() for v in keyset.keys.values()]
    secrets += [SM2_PRIVATE, TRANSPORT, filled._dek]
    assert len(secrets) > 100
    for value in secrets:
        forms = [
            value,
            value.hex().encode(),
            value.hex().upper().encode(),
            base64.b64encode(value),
            base64.b64encode(value).rstrip(b"="),
            base64.urlsafe_b64encode(value).rstrip(b"="),
        ]
        for form in forms:
            assert form not in data
    assert PASSPHRASE.encode() not in data


def test_wrong_passphrase_is_named(filled: KeyStore, path: Path) -> None:
    with pytest.raises(KeyStoreError, match="passphrase") as caught:
        KeyStore.open(path, PassphraseKek("not the passphrase"))
    assert "not the passphrase" not in str(caught.value)
    assert PASSPHRASE not in str(caught.value)


def test_open_missing_or_not_a_store(tmp_path: Path, kek: PassphraseKek) -> None:
    with pytest.raises(KeyStoreError, match="no key store"):
        KeyStore.open(tmp_path / "none.json", kek)
    (tmp_path / "junk.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(KeyStoreError, match="cannot read"):
        KeyStore.open(tmp_path / "junk.json", kek)
    (tmp_path / "other.json").write_text(json.dumps({"format": "something-else"}), encoding="utf-8")
    with pytest.raises(KeyStoreError, match="is not a key store"):
        KeyStore.open(tmp_path / "other.json", kek)


def test_create_over_an_existing_file_is_refused(filled: KeyStore, path: Path, kek: PassphraseKek) -> None:
    before = path.read_bytes()
    with pytest.raises(KeyStoreError, match="already exists"):
        KeyStore.create(path, kek)
    assert path.read_bytes() == before
    other = path.parent / "other.json"
    other.write_text("anything", encoding="utf-8")
    with pytest.raises(KeyStoreError):
        KeyStore.create(other, kek)
    assert other.read_text(encoding="utf-8") == "anything"


def test_open_or_create(tmp_path: Path, kek: PassphraseKek, sets: dict[str, KeySet]) -> None:
    target = tmp_path / "ks.json"
    first = KeyStore.open_or_create(target, kek)
    first.put_keyset(sets["national/v1"])
    again = KeyStore.open_or_create(target, kek)
    assert _same(again.keyset("national/v1"), sets["national/v1"])


# --- AAD: the entry id is bound ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "copy_as"), [("national/v1", "national/v3"), ("sm2/root/1", "sm2/root/2")]
)
def test_entry_copied_under_another_id_does_not_open(
    filled: KeyStore, path: Path, kek: PassphraseKek, source: str, copy_as: str
) -> None:
    doc = _doc(path)
    doc["entries"][copy_as] = doc["entries"][source]
    path.write_text(json.dumps(doc), encoding="utf-8")
    store = KeyStore.open(path, kek)
    with pytest.raises(KeyStoreError, match=copy_as):
        if copy_as.startswith("national/"):
            store.keyset(copy_as)
        else:
            store.secret(copy_as)
    # the original still opens
    assert store.keyset("national/v1").id == KeySetId(Level.NATIONAL, "", 1)
    assert store.secret("sm2/root/1") == SM2_PRIVATE


def test_entry_sealed_in_another_store_does_not_open(
    filled: KeyStore, path: Path, kek: PassphraseKek, tmp_path: Path, sets: dict[str, KeySet]
) -> None:
    """Same id, another store (another data key): the sealed box does not open."""
    other = KeyStore.create(tmp_path / "other.json", kek)
    other.put_keyset(national_set(bytes(16)))
    doc = _doc(path)
    doc["entries"]["national/v1"] = _doc(tmp_path / "other.json")["entries"]["national/v1"]
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(KeyStoreError, match="damaged"):
        KeyStore.open(path, kek).keyset("national/v1")


def test_a_tampered_kcv_is_detected_when_the_set_is_read(
    filled: KeyStore, path: Path, kek: PassphraseKek
) -> None:
    doc = _doc(path)
    kcv = doc["entries"]["province/41/v1"]["kcv"]
    kcv["UK1DF02"] = "000000" if kcv["UK1DF02"] != "000000" else "111111"
    path.write_text(json.dumps(doc), encoding="utf-8")
    store = KeyStore.open(path, kek)
    with pytest.raises(KeyStoreError, match="province/41/v1") as caught:
        store.keyset("province/41/v1")
    assert "check value" in str(caught.value)
    store.keyset("national/v1")  # the other entries are fine


def test_a_tampered_ciphertext_or_algorithm_is_detected(
    filled: KeyStore, path: Path, kek: PassphraseKek
) -> None:
    doc = _doc(path)
    sealed = doc["entries"]["national/v1"]["sealed"]
    raw = bytearray(base64.b64decode(sealed["ct"]))
    raw[10] ^= 0x01
    sealed["ct"] = base64.b64encode(bytes(raw)).decode()
    doc["entries"]["national/v2"]["algorithm"] = "SM4"  # the v2 set is TDES: its KCVs no longer match
    path.write_text(json.dumps(doc), encoding="utf-8")
    store = KeyStore.open(path, kek)
    with pytest.raises(KeyStoreError, match="damaged"):
        store.keyset("national/v1")
    with pytest.raises(KeyStoreError, match="check value"):
        store.keyset("national/v2")


# --- puts, versions -----------------------------------------------------------------------------


def test_put_of_an_existing_set_is_refused_and_the_file_unchanged(
    filled: KeyStore, path: Path, kek: PassphraseKek, sets: dict[str, KeySet]
) -> None:
    before = path.read_bytes()
    impostor = national_set(bytes(range(16)), 1)
    with pytest.raises(KeyStoreError, match="already holds national/v1"):
        filled.put_keyset(impostor)
    assert path.read_bytes() == before
    with pytest.raises(KeyStoreError, match="already holds"):
        filled.put_secret("sm2/root/1", "sm2", bytes(32))
    assert path.read_bytes() == before
    assert _same(KeyStore.open(path, kek).keyset("national/v1"), sets["national/v1"])
    assert filled.secret("sm2/root/1") == SM2_PRIVATE
    filled.put_secret("sm2/root/1", "sm2", bytes(32), replace=True)
    assert KeyStore.open(path, kek).secret("sm2/root/1") == bytes(32)


@pytest.mark.parametrize("entry_id", ["national/v9", "province/41/v9", "city/4101/v9", ""])
def test_put_secret_refuses_key_set_names(filled: KeyStore, entry_id: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        filled.put_secret(entry_id, "secret", bytes(16))
    assert caught.value.field == "entry"


def test_missing_entries_are_named(filled: KeyStore) -> None:
    with pytest.raises(KeyStoreError, match="no national/v7"):
        filled.keyset("national/v7")
    with pytest.raises(KeyStoreError, match="no sm2/issuer/41"):
        filled.secret("sm2/issuer/41")
    with pytest.raises(KeyStoreError, match="no sm2/issuer/41"):
        filled.set_public("sm2/issuer/41", certificate="00")


def test_set_public(filled: KeyStore, path: Path, kek: PassphraseKek) -> None:
    filled.set_public("sm2/root/1", certificate="ABCD")
    assert KeyStore.open(path, kek).public("sm2/root/1") == {"public": "04AB", "certificate": "ABCD"}


def test_versions_and_current_version(filled: KeyStore) -> None:
    assert filled.versions() == [1, 2]
    assert filled.current_version() == 2
    assert filled.versions(Level.NATIONAL) == [1, 2]
    assert filled.versions(Level.PROVINCE, "41") == [1]
    assert filled.versions(Level.PROVINCE, "44") == [2]
    assert filled.versions(Level.CITY, "4101") == [1]
    assert filled.current_version(Level.PROVINCE, "44") == 2
    assert filled.versions(Level.PROVINCE, "45") == []
    assert filled.current_version(Level.PROVINCE, "45") is None
    filled.put_keyset(national_set(ROOT, 10))
    assert filled.versions() == [1, 2, 10]  # numeric, not text order
    assert filled.current_version() == 10


def test_empty_store_has_no_versions(path: Path, kek: PassphraseKek) -> None:
    store = KeyStore.create(path, kek)
    assert store.versions() == [] and store.current_version() is None
    assert store.entries() == []
    assert KeyStore.open(path, kek).entries() == []


# --- change_kek ---------------------------------------------------------------------------------


def test_change_kek_to_a_new_passphrase(
    filled: KeyStore, path: Path, new_kek: PassphraseKek, sets: dict[str, KeySet]
) -> None:
    entries_before = _doc(path)["entries"]
    filled.change_kek(new_kek)
    assert _doc(path)["entries"] == entries_before  # only the data key box changes
    with pytest.raises(KeyStoreError, match="passphrase"):
        KeyStore.open(path, PassphraseKek(PASSPHRASE))
    reopened = KeyStore.open(path, PassphraseKek(NEW_PASSPHRASE))
    for name, keyset in sets.items():
        assert _same(reopened.keyset(name), keyset)
    assert reopened.secret("transport/p41") == TRANSPORT
    # writes after the change are under the new KEK as well
    filled.put_secret("transport/p44", "transport", TRANSPORT)
    assert KeyStore.open(path, new_kek).secret("transport/p44") == TRANSPORT
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_repr_shows_no_secret(filled: KeyStore, path: Path) -> None:
    text = repr(filled)
    assert str(path) in text and "passphrase" in text
    assert PASSPHRASE not in text and filled._dek.hex() not in text.lower()
