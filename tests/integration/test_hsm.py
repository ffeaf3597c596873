"""The PKCS#11 KEK of the key store through a real SoftHSM2 token.

Needs ``SOFTHSM2_CONF`` pointing at the config of ``scripts/hsm-up.sh`` (``make test`` exports
it) with its token ``healthcard`` (user PIN 1234).  When the config or the token is missing the
script is run once; if SoftHSM2 still cannot be had the tests skip locally and FAIL under
``CI=true`` — a missing HSM in CI is a failure, as for PC/SC (see conftest.py).
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from healthcard.errors import KeyStoreError
from healthcard.keys.kek import DEFAULT_KEY_LABEL, Pkcs11Kek, create_pkcs11_kek, open_kek

pytestmark = pytest.mark.hsm

TOKEN, PIN = "healthcard", "1234"
AAD = b"healthcard-key-store/1:test"


@pytest.fixture
def temp_label(hsm: str) -> Iterator[str]:
    """A fresh key label; whatever key gets that label is destroyed afterwards."""
    import pkcs11

    label = f"test-kek-{secrets.token_hex(4)}"
    try:
        yield label
    finally:
        with pkcs11.lib(hsm).get_token(token_label=TOKEN).open(rw=True, user_pin=PIN) as session:
            for key in list(session.get_objects({pkcs11.Attribute.LABEL: label})):
                key.destroy()


def test_create_is_idempotent(hsm: str, temp_label: str) -> None:
    assert create_pkcs11_kek(hsm, TOKEN, PIN, temp_label) is True
    assert create_pkcs11_kek(hsm, TOKEN, PIN, temp_label) is False
    assert create_pkcs11_kek(hsm, TOKEN, PIN) is False  # the default KEK, made by the fixture


def test_round_trip(hsm: str) -> None:
    kek = Pkcs11Kek(hsm, TOKEN, PIN)
    dek = secrets.token_bytes(32)
    box = kek.wrap(dek, AAD)
    assert box["kind"] == "pkcs11" and box["key_label"] == DEFAULT_KEY_LABEL
    assert len(base64.b64decode(box["iv"])) == 12
    assert len(base64.b64decode(box["wrapped"])) == len(dek) + 16
    assert dek.hex() not in str(box)
    assert kek.unwrap(box, AAD) == dek
    assert kek.wrap(dek, AAD)["iv"] != box["iv"]
    assert kek.unwrap(kek.wrap(dek, b""), b"") == dek  # no aad is an aad too


def test_a_second_instance_unwraps(hsm: str) -> None:
    dek = secrets.token_bytes(16)
    box = Pkcs11Kek(hsm, TOKEN, PIN).wrap(dek, AAD)
    assert open_kek("pkcs11", token=TOKEN, pin=PIN).unwrap(box, AAD) == dek


def test_the_kek_never_leaves_the_token(hsm: str) -> None:
    import pkcs11

    attr = pkcs11.Attribute
    with pkcs11.lib(hsm).get_token(token_label=TOKEN).open(user_pin=PIN) as session:
        key = session.get_key(object_class=pkcs11.ObjectClass.SECRET_KEY, label=DEFAULT_KEY_LABEL)
        with pytest.raises(pkcs11.PKCS11Error):  # AttributeSensitive: CKA_VALUE cannot be read
            key[attr.VALUE]
        assert key.key_type == pkcs11.KeyType.AES and key[attr.VALUE_LEN] == 32
        assert key[attr.TOKEN] and key[attr.PRIVATE] and key[attr.SENSITIVE]
        assert key[attr.NEVER_EXTRACTABLE] and key[attr.ALWAYS_SENSITIVE]
        assert not key[attr.EXTRACTABLE]
        assert key[attr.ENCRYPT] and key[attr.DECRYPT] and not key[attr.WRAP] and not key[attr.SIGN]


def test_tampered_box_wrong_aad_and_wrong_kek(hsm: str, temp_label: str) -> None:
    kek = Pkcs11Kek(hsm, TOKEN, PIN)
    box = kek.wrap(secrets.token_bytes(32), AAD)
    raw = bytearray(base64.b64decode(box["wrapped"]))
    raw[0] ^= 1
    for bad, aad in [
        (dict(box, wrapped=base64.b64encode(bytes(raw)).decode()), AAD),
        (box, AAD + b"x"),
        (dict(box, iv="not base64"), AAD),
    ]:
        with pytest.raises(KeyStoreError, match=r"wrong KEK .* or a damaged key store"):
            kek.unwrap(bad, aad)
    # another key of the same token is the wrong KEK
    create_pkcs11_kek(hsm, TOKEN, PIN, temp_label)
    with pytest.raises(KeyStoreError, match="wrong KEK"):
        kek.unwrap(dict(box, key_label=temp_label), AAD)
    # a box whose key is gone
    with pytest.raises(KeyStoreError, match="does not hold"):
        kek.unwrap(dict(box, key_label="no-such-kek"), AAD)
    with pytest.raises(KeyStoreError, match="'passphrase' KEK"):
        kek.unwrap(dict(box, kind="passphrase"), AAD)


def test_missing_token_is_named(hsm: str) -> None:
    with pytest.raises(KeyStoreError) as caught:
        Pkcs11Kek(hsm, "no-such-token", PIN)
    message = str(caught.value)
    assert "'no-such-token'" in message and f"'{TOKEN}'" in message  # and the labels that exist
    assert PIN not in message


def test_wrong_pin(hsm: str) -> None:
    with pytest.raises(KeyStoreError, match=re.escape(f"wrong PIN for PKCS#11 token '{TOKEN}'")) as caught:
        Pkcs11Kek(hsm, TOKEN, "9999")
    assert "9999" not in str(caught.value) and PIN not in str(caught.value)
    assert Pkcs11Kek(hsm, TOKEN, PIN).label  # a wrong PIN does not lock SoftHSM2 out


def test_missing_key_says_hsm_init(hsm: str) -> None:
    with pytest.raises(KeyStoreError, match=r"no key labelled 'no-such-kek'.*healthcard keys hsm-init"):
        Pkcs11Kek(hsm, TOKEN, PIN, "no-such-kek")


def test_missing_or_broken_module(hsm: str, tmp_path: Path) -> None:
    missing = str(tmp_path / "libnothere.so")
    with pytest.raises(KeyStoreError, match=re.escape(f"module {missing} does not exist")):
        Pkcs11Kek(missing, TOKEN, PIN)
    broken = tmp_path / "libbroken.so"
    broken.write_bytes(b"not an ELF file")
    with pytest.raises(KeyStoreError, match=re.escape(f"cannot load PKCS#11 module {broken}")):
        open_kek("pkcs11", module=str(broken), token=TOKEN, pin=PIN)


def test_repr_and_label_hide_the_pin(hsm: str) -> None:
    kek = Pkcs11Kek(hsm, TOKEN, PIN)
    assert PIN not in repr(kek) and PIN not in kek.label
    assert kek.label == f"PKCS#11 token '{TOKEN}', key '{DEFAULT_KEY_LABEL}'"
