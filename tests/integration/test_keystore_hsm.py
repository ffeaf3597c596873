"""The key store under the PKCS#11 KEK, through a real SoftHSM2 token.

Same rule as tests/integration/test_hsm.py (whose ``hsm`` fixture logic is copied here, since it
is not in a conftest): needs ``SOFTHSM2_CONF`` (``make test`` exports it) with the token
``healthcard`` (user PIN 1234); when it cannot be had the tests skip locally and FAIL under
``CI=true``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

from healthcard.errors import KeyStoreError
from healthcard.keys.kek import DEFAULT_KEY_LABEL, DEFAULT_MODULE, PassphraseKek, Pkcs11Kek, create_pkcs11_kek
from healthcard.keys.keyset import KeySet, derive_province, national_set
from healthcard.keys.keystore import KeyStore

pytestmark = pytest.mark.hsm

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI") == "true"
TOKEN, PIN = "healthcard", "1234"
PASSPHRASE = "passphrase before the HSM"
SECRET_ROOT = bytes.fromhex("00112233445566778899AABBCCDDEEFF")


def unavailable(reason: str) -> NoReturn:
    """Skip the test, except in CI, where a missing SoftHSM2 is a failure."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: HSM tests must run, not skip)", pytrace=False)
    pytest.skip(reason)


def _problem() -> str | None:
    """What keeps the HSM tests from running, or None."""
    conf = os.environ.get("SOFTHSM2_CONF")
    if not conf:
        return "SOFTHSM2_CONF is not set (run `make test`, or scripts/hsm-up.sh and export it)"
    if not Path(conf).is_file():
        return f"SOFTHSM2_CONF={conf} does not exist (scripts/hsm-up.sh writes it)"
    if not Path(DEFAULT_MODULE).is_file() or shutil.which("softhsm2-util") is None:
        return f"SoftHSM2 is not installed ({DEFAULT_MODULE} missing; scripts/hsm-up.sh installs it)"
    # softhsm2-util in a child process: loading the module here would fix its view of the tokens
    slots = subprocess.run(
        ["softhsm2-util", "--show-slots"], capture_output=True, text=True, timeout=30, check=False
    )
    labels = [line.split(":", 1)[1].strip() for line in slots.stdout.splitlines() if "Label:" in line]
    if TOKEN not in labels:
        return f"no SoftHSM2 token labelled {TOKEN!r} under SOFTHSM2_CONF={conf} (tokens: {labels})"
    return None


@pytest.fixture(scope="module")
def hsm() -> str:
    """The PKCS#11 module, with the ``healthcard`` token and its default KEK in place."""
    try:
        import pkcs11  # noqa: F401
    except ImportError:
        unavailable("python-pkcs11 is not installed (pip install python-pkcs11==0.10.1)")
    problem = _problem()
    conf = os.environ.get("SOFTHSM2_CONF", "")
    if problem and conf and Path(conf).name == "softhsm2.conf":
        env = dict(os.environ, HEALTHCARD_SOFTHSM_DIR=str(Path(conf).parent))
        try:
            result = subprocess.run(
                ["bash", str(ROOT / "scripts" / "hsm-up.sh")],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
                cwd=ROOT,
                env=env,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            unavailable(f"scripts/hsm-up.sh could not run: {error}")
        problem = _problem()
        if problem and result.returncode:
            tail = " | ".join((result.stdout + result.stderr).strip().splitlines()[-3:])
            problem = f"{problem}; scripts/hsm-up.sh failed: {tail}"
    if problem:
        unavailable(problem)
    # create_pkcs11_kek first: idempotent, the token persists across runs
    create_pkcs11_kek(DEFAULT_MODULE, TOKEN, PIN)
    return DEFAULT_MODULE


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
