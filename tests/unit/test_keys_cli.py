"""``healthcard keys`` / ``healthcard sam`` / ``healthcard demo`` through the CLI: the published
vectors, the custodians' flow, bad input leaving nothing written, and no key in clear on disk,
in a log or on the screen."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from healthcard.card import image
from healthcard.cli.main import app
from healthcard.keys import ceremony
from healthcard.keys.kek import PassphraseKek
from healthcard.keys.keystore import KeyStore

from .vectorfiles import records

PASS = "custodians-only"


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("HEALTHCARD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HEALTHCARD_KEYSTORE_PASSPHRASE", PASS)
    monkeypatch.delenv("HEALTHCARD_KEYSTORE", raising=False)
    monkeypatch.delenv("HEALTHCARD_KEK", raising=False)
    monkeypatch.chdir(tmp_path)
    yield CliRunner()


def cli(runner: CliRunner, *args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return " ".join(result.output.split())


def components_args(texts: list[str]) -> list[str]:
    return [arg for text in texts for arg in ("--component", text)]


def store_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "keys" / "keystore.json"


# --- vectors through the CLI ----------------------------------------------------------------


def test_the_diversification_vector_through_the_cli(run: CliRunner) -> None:
    v = records("diversify.txt", "PARENT_KEY", "FACTOR", "CHILD_KEY")[0]
    out = cli(run, "keys", "diversify", "--key", v["PARENT_KEY"], "--factor", v["FACTOR"])
    assert f"child {v['CHILD_KEY']}" in out


@pytest.mark.parametrize(("city", "factor"), [("210000", "3231303030303030"), ("130185", "3133303030303030")])
def test_the_province_factor_vectors_through_the_cli(run: CliRunner, city: str, factor: str) -> None:
    out = cli(run, "keys", "diversify", "--key", "00" * 16, "--province", city)
    assert f"factor {factor}" in out


def test_the_electronic_health_card_id_vector_through_the_cli(run: CliRunner) -> None:
    v = records("ehealth-id.txt", "MASTER_INDEX_ID", "SECURITY_ROOT_KEY", "ID_TYPE", "ID_NUMBER", "EHC_ID")[0]
    out = cli(
        run,
        "keys",
        "ehc-id",
        "--master-index",
        v["MASTER_INDEX_ID"],
        "--id-type",
        v["ID_TYPE"],
        "--id-number",
        v["ID_NUMBER"],
        "--root-key",
        v["SECURITY_ROOT_KEY"],
    )
    assert out == v["EHC_ID"]


# --- the custodians' flow ---------------------------------------------------------------------


def test_ceremony_from_entered_components_then_province_sam_and_exchange(
    run: CliRunner, tmp_path: Path
) -> None:
    secret, parts = ceremony.generate(3, 2)
    entered = [f"{p.text()}:{p.kcv}" for p in parts[1:]]  # custodians 2 and 3 of a 2-of-3 split
    out = cli(
        run,
        "keys",
        "ceremony",
        "--components",
        "3",
        "--threshold",
        "2",
        *components_args(entered),
    )
    assert "stored national/v1" in out
    assert secret.hex().upper() not in out
    store = KeyStore.open(store_path(tmp_path), PassphraseKek(PASS))
    national = store.keyset("national/v1")
    from healthcard.keys.keyset import national_set

    assert national.keys == national_set(secret).keys  # the components rebuilt the same root
    cli(run, "keys", "ceremony", "--components", "2", code=2)  # a second ceremony is a rotation
    assert "stored province/41/v1" in cli(run, "keys", "derive-province", "--province", "41")
    out = cli(run, "sam", "new", "--province", "41", "--terminal", "410100000001", "--out", "sam.img.json")
    assert "national keys v1" in out
    sam = image.load(tmp_path / "sam.img.json", image.Sealer(image.DEMO_PASSPHRASE))
    assert sam.mf.children[0x0016].data == bytearray.fromhex("410100000001")
    cli(run, "keys", "transport-key", "--name", "p41", "--components", "2")
    cli(run, "keys", "export", "--set", "province/41/v1", "--transport", "p41", "--out", "p41.json")
    export = (tmp_path / "p41.json").read_text()
    store = KeyStore.open(store_path(tmp_path), PassphraseKek(PASS))  # re-read: the CLI wrote to it
    for value in store.keyset("province/41/v1").keys.values():
        assert value.hex() not in export.lower()
    out = cli(run, "keys", "list")
    assert "province/41/v1" in out and "sm2/root/1" in out


def test_rotate_makes_the_next_version(run: CliRunner, tmp_path: Path) -> None:
    cli(run, "keys", "ceremony", "--components", "2")
    out = cli(run, "keys", "rotate", "--components", "2", "--algorithm", "3des")
    assert "v1 → v2" in out
    store = KeyStore.open(store_path(tmp_path), PassphraseKek(PASS))
    assert store.versions() == [1, 2]
    assert store.keyset("national/v2").algorithm.name == "TDES"


# --- bad input: a clear error naming what is wrong, nothing written ---------------------------


def test_a_component_with_the_wrong_kcv_is_refused_and_nothing_is_written(
    run: CliRunner, tmp_path: Path
) -> None:
    _, parts = ceremony.generate(3)
    texts = [f"{p.text()}:{p.kcv}" for p in parts]
    texts[1] = f"{parts[1].text()}:000000" if parts[1].kcv != "000000" else f"{parts[1].text()}:111111"
    out = cli(run, "keys", "ceremony", "--components", "3", *components_args(texts), code=2)
    assert "component 2" in out and "check value" in out
    assert parts[1].value.hex().upper() not in out
    assert not store_path(tmp_path).exists()


def test_a_component_of_the_wrong_length_is_refused(run: CliRunner, tmp_path: Path) -> None:
    _, parts = ceremony.generate(2)
    short = f"1-{parts[0].value.hex()[:30]}:{parts[0].kcv}"
    out = cli(
        run,
        "keys",
        "ceremony",
        "--components",
        "2",
        "--component",
        short,
        "--component",
        f"{parts[1].text()}:{parts[1].kcv}",
        code=2,
    )
    assert "component 1" in out and "15 bytes" in out
    assert not store_path(tmp_path).exists()


def test_a_wrong_passphrase_is_named_and_changes_nothing(
    run: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli(run, "keys", "ceremony", "--components", "2")
    before = store_path(tmp_path).read_bytes()
    monkeypatch.setenv("HEALTHCARD_KEYSTORE_PASSPHRASE", "not-the-one")
    out = cli(run, "keys", "derive-province", "--province", "41", code=2)
    assert "passphrase is wrong" in out
    assert store_path(tmp_path).read_bytes() == before


def test_a_wrong_province_is_named(run: CliRunner) -> None:
    cli(run, "keys", "ceremony", "--components", "2")
    assert "province" in cli(run, "keys", "derive-province", "--province", "99", code=2)
    assert "terminal" in cli(
        run, "sam", "new", "--province", "41", "--terminal", "440600000001", "--out", "x", code=2
    )


def test_an_import_under_the_wrong_transport_key_stores_nothing(run: CliRunner, tmp_path: Path) -> None:
    cli(run, "keys", "ceremony", "--components", "2")
    cli(run, "keys", "derive-province", "--province", "41")
    cli(run, "keys", "transport-key", "--name", "a", "--components", "2")
    cli(run, "keys", "transport-key", "--name", "b", "--components", "2")
    cli(run, "keys", "export", "--set", "province/41/v1", "--transport", "a", "--out", "p41.json")
    other = tmp_path / "other" / "keystore.json"
    cli(run, "keys", "transport-key", "--name", "a", "--components", "2", "--store", str(other))
    out = cli(run, "keys", "import", "p41.json", "--transport", "a", "--store", str(other), code=2)
    assert "transport key" in out and "check value" in out
    assert not KeyStore.open(other, PassphraseKek(PASS)).has("province/41/v1")


# --- no key in clear anywhere -----------------------------------------------------------------


def _forms(secret: bytes) -> list[bytes]:
    return [
        secret,
        secret.hex().encode(),
        secret.hex().upper().encode(),
        base64.b64encode(secret),
    ]


def test_after_a_full_demo_run_no_key_is_in_clear_on_disk_in_logs_or_on_screen(
    run: CliRunner, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    screen = run.invoke(app, ["demo"], catch_exceptions=False)
    assert screen.exit_code == 0, screen.output
    assert "demo complete" in screen.output
    folder = tmp_path / "data" / "demo"
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    assert {p.name for p in files} >= {
        "keystore.json",
        "sam-foshan.img.json",
        "card-41.img.json",
        "trust.json",
    }

    secrets: dict[str, bytes] = {}
    store = KeyStore.open(folder / "keystore.json", PassphraseKek(PASS))  # the demo honours the env
    secrets["data key"] = store._dek
    for entry in store.entries():
        if entry.kind == "keyset":
            for name, value in store.keyset(entry.id).keys.items():
                secrets[f"{entry.id}/{name}"] = value
        else:
            secrets[entry.id] = store.secret(entry.id)
    sealer = image.Sealer(image.DEMO_PASSPHRASE)
    for path in files:
        if path.name.endswith(".img.json"):
            state = image.load(path, sealer)
            for df in state.mf.walk():
                for (use, kid), key in df.keys.items():
                    if len(key.value) >= 16:  # keys, not the 3-byte PINs
                        secrets[f"{path.name}/{df.path()}/{use}/{kid}"] = key.value
    assert len(secrets) > 200

    def leaks(paths: list[Path]) -> list[str]:
        return [
            f"{name} in {path.name}"
            for path in paths
            for name, secret in secrets.items()
            for form in _forms(secret)
            if form in path.read_bytes()
        ]

    assert not leaks(files)
    planted = tmp_path / "planted.txt"  # the scanner itself: it would see a key written in clear
    planted.write_text(f"oops {secrets['province/41/v1/UK1DF03'].hex()}")
    assert leaks([planted]) == ["province/41/v1/UK1DF03 in planted.txt"]
    text = screen.output + caplog.text
    shown = [name for name, secret in secrets.items() if secret.hex().upper() in text or secret.hex() in text]
    assert not shown
    assert json.loads((folder / "trust.json").read_text())["roots"]
