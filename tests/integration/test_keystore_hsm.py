"""The key store under the PKCS#11 KEK, through a real SoftHSM2 token.

Same rule as tests/integration/test_hsm.py (whose ``hsm`` fixture logic is copied here, since it
is not in a conftest): needs ``SOFTHSM2_CONF`` (``make test`` exports it) with the token
``healthcard`` (user PIN 1234); when it cannot be had the tests skip locally and FAIL under
``CI=true``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from healthcard.errors import KeyStoreError
from healthcard.keys.kek import DEFAULT_KEY_LABEL, PassphraseKek, Pkcs11Kek
from healthcard.keys.keyset import KeySet, derive_province, national_set
from healthcard.keys.keystore import KeyStore

pytestmark = pytest.mark.hsm

TOKEN, PIN = "healthcard", "1234"
PASSPHRASE = "passphrase before the HSM"
SECRET_ROOT = bytes.fromhex("00112233445566778899AABBCCDDEEFF")


@pytest.fixture(scope="module")
def national() -> KeySet:
    return national_set(SECRET_ROOT, 1)


def _same(a: KeySet, b: KeySet) -> bool:
    return (a.id, a.algorithm, dict(a.keys)) == (b.id, b.algorithm, dict(b.keys))


def test_store_under_the_hsm_opens_under_a_second_instance(
    hsm: str, tmp_path: Path, national: KeySet
) -> None:
    path = tmp_path / "keystore.json"
    store = KeyStore.create(path, Pkcs11Kek(hsm, TOKEN, PIN))
    store.put_keyset(national)
    store.put_keyset(derive_province(national, "41"))
    store.put_secret("transport/p41", "transport", bytes(range(16)))
    box = json.loads(path.read_text(encoding="utf-8"))["kek"]
    assert box["kind"] == "pkcs11" and box["key_label"] == DEFAULT_KEY_LABEL
    again = KeyStore.open(path, Pkcs11Kek(hsm, TOKEN, PIN))
    assert _same(again.keyset("national/v1"), national)
    assert _same(again.keyset("province/41/v1"), derive_province(national, "41"))
    assert again.secret("transport/p41") == bytes(range(16))
    assert again.versions() == [1]
    data = path.read_bytes()
    for value in national.keys.values():
        assert value.hex().encode() not in data and value.hex().upper().encode() not in data
    assert PIN.encode() not in json.dumps(box).encode()


def test_hsm_store_does_not_open_with_a_passphrase(hsm: str, tmp_path: Path, national: KeySet) -> None:
    path = tmp_path / "keystore.json"
    KeyStore.create(path, Pkcs11Kek(hsm, TOKEN, PIN)).put_keyset(national)
    with pytest.raises(KeyStoreError) as caught:
        KeyStore.open(path, PassphraseKek(PASSPHRASE))
    message = str(caught.value)
    assert "'pkcs11' KEK" in message and "'passphrase'" in message
    assert PASSPHRASE not in message


def test_store_moved_from_passphrase_to_hsm(hsm: str, tmp_path: Path, national: KeySet) -> None:
    path = tmp_path / "keystore.json"
    passphrase_kek = PassphraseKek(PASSPHRASE)
    store = KeyStore.create(path, passphrase_kek)
    store.put_keyset(national)
    store.change_kek(Pkcs11Kek(hsm, TOKEN, PIN))
    assert json.loads(path.read_text(encoding="utf-8"))["kek"]["kind"] == "pkcs11"
    moved = KeyStore.open(path, Pkcs11Kek(hsm, TOKEN, PIN))
    assert _same(moved.keyset("national/v1"), national)
    with pytest.raises(KeyStoreError, match="'pkcs11' KEK"):
        KeyStore.open(path, passphrase_kek)
    # and back again
    moved.change_kek(PassphraseKek(PASSPHRASE))
    assert _same(KeyStore.open(path, PassphraseKek(PASSPHRASE)).keyset("national/v1"), national)


def test_a_store_under_another_hsm_key_does_not_open(hsm: str, tmp_path: Path, national: KeySet) -> None:
    path = tmp_path / "keystore.json"
    KeyStore.create(path, Pkcs11Kek(hsm, TOKEN, PIN)).put_keyset(national)
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["kek"]["key_label"] = "no-such-kek"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(KeyStoreError, match="does not hold"):
        KeyStore.open(path, Pkcs11Kek(hsm, TOKEN, PIN))


def test_missing_token_label_creates_no_file(hsm: str, tmp_path: Path) -> None:
    path = tmp_path / "new" / "keystore.json"
    with pytest.raises(KeyStoreError) as caught:
        KeyStore.create(path, Pkcs11Kek(hsm, "no-such-token", PIN))
    assert "'no-such-token'" in str(caught.value)
    assert PIN not in str(caught.value)
    assert not path.exists()
    assert not path.parent.exists()
