"""Card images: round trip, sealing of the keys, damaged files, and atomic saves under SIGKILL."""

from __future__ import annotations

import base64
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from healthcard.card import image
from healthcard.card.cos import CardState
from healthcard.card.filesystem import Key
from healthcard.demo import issue_demo_card
from healthcard.errors import ImageError

WRITER = Path(__file__).resolve().with_name("image_writer.py")
DDF1, EF07 = 0xDDF1, 0xEF07


@pytest.fixture(scope="module")
def sealer() -> image.Sealer:
    """One sealer (one scrypt run) for the whole module."""
    return image.Sealer(image.DEMO_PASSPHRASE)


@pytest.fixture
def card() -> CardState:
    return issue_demo_card()


def keys_of(state: CardState) -> dict[str, dict[tuple[int, int], Key]]:
    return {df.path(): dict(df.keys) for df in state.mf.walk()}


def public(state: CardState, sealer: image.Sealer) -> dict[str, Any]:
    doc = image.to_dict(state, sealer)
    del doc["keys"]
    return doc


def saved(state: CardState, path: Path, sealer: image.Sealer) -> dict[str, Any]:
    image.save(state, path, sealer)
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


# --- round trip -------------------------------------------------------------------------------


def test_save_load_round_trip(card: CardState, sealer: image.Sealer, tmp_path: Path) -> None:
    path = tmp_path / "card.img"
    image.save(card, path, sealer)
    loaded = image.load(path, sealer)
    assert public(loaded, sealer) == public(card, sealer)
    assert keys_of(loaded) == keys_of(card)
    assert sum(len(k) for k in keys_of(card).values()) >= 10
    assert loaded == card
    assert loaded.atr == card.atr
    assert [df.path() for df in loaded.mf.walk()] == [df.path() for df in card.mf.walk()]
    assert all(df.parent is not None for df in loaded.mf.walk()[1:])


def test_a_fresh_sealer_with_the_passphrase_opens_the_image(
    card: CardState, sealer: image.Sealer, tmp_path: Path
) -> None:
    path = tmp_path / "card.img"
    image.save(card, path, sealer)
    loaded = image.load(path, image.Sealer(image.DEMO_PASSPHRASE))
    assert keys_of(loaded) == keys_of(card)


def test_changes_survive_a_save(card: CardState, sealer: image.Sealer, tmp_path: Path) -> None:
    path = tmp_path / "card.img"
    photo = card.mf.children[DDF1].children[EF07]
    photo.data[0:4] = b"\x01\x02\x03\x04"  # type: ignore[union-attr]
    image.save(card, path, sealer)
    again = image.load(path, sealer)
    assert again.mf.children[DDF1].children[EF07].data[0:4] == b"\x01\x02\x03\x04"  # type: ignore[union-attr]


def test_save_overwrites_and_leaves_no_temporary_file(
    card: CardState, sealer: image.Sealer, tmp_path: Path
) -> None:
    path = tmp_path / "card.img"
    image.save(card, path, sealer)
    card.profile = "changed"
    image.save(card, path, sealer)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.img"]
    assert image.load(path, sealer).profile == "changed"


def test_save_to_a_relative_path(
    card: CardState, sealer: image.Sealer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    image.save(card, "card.img", sealer)
    assert image.load("card.img", sealer) == card


def test_image_is_json_readable_apart_from_the_keys(
    card: CardState, sealer: image.Sealer, tmp_path: Path
) -> None:
    doc = saved(card, tmp_path / "card.img", sealer)
    assert doc["format"] == image.FORMAT
    assert doc["serial"] == card.serial.hex().upper()
    assert doc["lifecycle"] == "ISSUED"
    assert set(doc["keys"]) == {"alg", "salt", "nonce", "ciphertext"}


# --- the keys are sealed ----------------------------------------------------------------------


def test_key_values_never_appear_in_clear(card: CardState, sealer: image.Sealer, tmp_path: Path) -> None:
    path = tmp_path / "card.img"
    image.save(card, path, sealer)
    blob = path.read_bytes()
    values = [k.value for keys in keys_of(card).values() for k in keys.values()]
    assert len(values) >= 10
    for value in values:
        forms = [
            value,
            value.hex().encode(),
            value.hex().upper().encode(),
            base64.b64encode(value),
            base64.b64encode(value).rstrip(b"="),
            json.dumps(list(value)).encode(),
        ]
        for form in forms:
            assert form not in blob, "a key value is in the image in clear"
    assert image.DEMO_PASSPHRASE.encode() not in blob
    assert "<passphrase hidden>" in repr(sealer)


def test_wrong_passphrase_is_refused(card: CardState, sealer: image.Sealer, tmp_path: Path) -> None:
    path = tmp_path / "card.img"
    image.save(card, path, sealer)
    with pytest.raises(ImageError, match="passphrase"):
        image.load(path, image.Sealer("not-the-demo-passphrase"))


# --- damaged files ----------------------------------------------------------------------------


def _corrupt_keys(doc: dict[str, Any]) -> None:
    blob = bytearray(base64.b64decode(doc["keys"]["ciphertext"]))
    blob[0] ^= 1
    doc["keys"]["ciphertext"] = base64.b64encode(bytes(blob)).decode()


def _set(path: tuple[str | int, ...], value: Any) -> Any:
    def edit(doc: dict[str, Any]) -> None:
        node: Any = doc
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value

    return edit


def _delete(key: str) -> Any:
    return lambda doc: doc.pop(key)


DOC_CORRUPTIONS = {
    "wrong format": (_set(("format",), "something-else/1"), "format"),
    "no files": (_delete("files"), "damaged"),
    "no serial": (_delete("serial"), "damaged"),
    "serial not hex": (_set(("serial",), "zz"), "damaged"),
    "serial a number": (_set(("serial",), 5), "damaged"),
    "bad lifecycle": (_set(("lifecycle",), "LOST"), "damaged"),
    "files a list": (_set(("files",), []), "damaged"),
    "child kind unknown": (_set(("files", "children", 0, "children", 0, "kind"), "NOPE"), "damaged"),
    "children a string": (_set(("files", "children"), "abc"), "damaged"),
    "no keys": (_delete("keys"), "damaged"),
    "keys a string": (_set(("keys",), "x"), "damaged"),
    "keys without salt": (lambda doc: doc["keys"].pop("salt"), "cannot be opened"),
    "keys tampered": (_corrupt_keys, "cannot be opened"),
    "nonce swapped": (_set(("keys", "nonce"), base64.b64encode(bytes(12)).decode()), "cannot be opened"),
}


@pytest.mark.parametrize("name", list(DOC_CORRUPTIONS))
def test_damaged_image_raises_image_error(
    name: str, card: CardState, sealer: image.Sealer, tmp_path: Path
) -> None:
    edit, phrase = DOC_CORRUPTIONS[name]
    path = tmp_path / "card.img"
    doc = saved(card, path, sealer)
    edit(doc)
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ImageError, match=phrase) as info:
        image.load(path, sealer)
    _assert_clean_message(info.value, card)


def _assert_clean_message(exc: BaseException, card: CardState) -> None:
    text = str(exc)
    assert text and "Traceback" not in text
    assert exc.__suppress_context__ or exc.__context__ is None
    for keys in keys_of(card).values():
        for key in keys.values():
            assert key.value.hex() not in text.lower()


@pytest.mark.parametrize("keep", [0, 1, 10, 0.5, -1], ids=["empty", "1byte", "10bytes", "half", "minus1"])
def test_truncated_image_raises_image_error(
    keep: float, card: CardState, sealer: image.Sealer, tmp_path: Path
) -> None:
    path = tmp_path / "card.img"
    image.save(card, path, sealer)
    blob = path.read_bytes()
    cut = int(len(blob) * keep) if isinstance(keep, float) else keep if keep >= 0 else len(blob) + keep
    path.write_bytes(blob[:cut])
    with pytest.raises(ImageError, match=r"cannot read card image") as info:
        image.load(path, sealer)
    assert "card.img" in str(info.value)
    _assert_clean_message(info.value, card)


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        (b"\xff\xfe\x00garbage\x80", "cannot read card image"),
        (b"[1, 2, 3]", "not a card image"),
        (b'"a string"', "not a card image"),
        (b"null", "not a card image"),
        (b"{}", "format"),
    ],
    ids=["binary", "list", "string", "null", "empty-object"],
)
def test_not_an_image_raises_image_error(
    content: bytes, phrase: str, sealer: image.Sealer, tmp_path: Path
) -> None:
    path = tmp_path / "card.img"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=phrase):
        image.load(path, sealer)


def test_missing_image_raises_image_error(sealer: image.Sealer, tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="no card image"):
        image.load(tmp_path / "absent.img", sealer)
    with pytest.raises(ImageError):
        image.load(tmp_path, sealer)  # a folder


def test_duplicate_fid_in_image_raises_image_error(
    card: CardState, sealer: image.Sealer, tmp_path: Path
) -> None:
    """Regression: filesystem.Status(6A89) from DF.add used to escape load()."""
    path = tmp_path / "card.img"
    doc = saved(card, path, sealer)
    children = doc["files"]["children"][0]["children"]
    children.append(dict(children[0]))
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ImageError):
        image.load(path, sealer)


def test_random_byte_damage_gives_an_image_error_or_a_state(
    card: CardState, sealer: image.Sealer, tmp_path: Path
) -> None:
    """Any single damaged byte: load() either succeeds or raises ImageError, nothing else.
    (Bytes of FIDs are left alone: duplicate FIDs have their own test above.)"""
    path = tmp_path / "card.img"
    image.save(card, path, sealer)
    blob = path.read_bytes()
    fids = [m.span() for m in re.finditer(rb'"fid": "[0-9A-F]{4}"', blob)]
    rng = random.Random(20261123)
    outcomes = {"state": 0, "error": 0}
    for _ in range(300):
        at = rng.randrange(len(blob))
        if any(a <= at < b for a, b in fids):
            continue
        damaged = bytearray(blob)
        damaged[at] = rng.choice(b'0123456789abcdefABCDEF"{}[],: \x00\xff')
        path.write_bytes(bytes(damaged))
        try:
            image.load(path, sealer)
        except ImageError:
            outcomes["error"] += 1
        else:
            outcomes["state"] += 1
    assert outcomes["error"] > 0 and sum(outcomes.values()) > 200


# --- atomic save under SIGKILL ----------------------------------------------------------------


def _counter(state: CardState) -> tuple[int, bytes]:
    photo = bytes(state.mf.children[DDF1].children[EF07].data)  # type: ignore[union-attr]
    return int.from_bytes(photo[-4:], "big"), photo[-260:-4]


def _log_lines(log: Path) -> list[tuple[str, int]]:
    if not log.exists():
        return []
    text = log.read_text(encoding="ascii")
    complete = text[: text.rfind("\n") + 1]  # ignore a line cut by the kill
    out = []
    for line in complete.splitlines():
        word, number = line.split()
        out.append((word, int(number)))
    return out


@pytest.mark.slow
def test_save_is_atomic_under_sigkill(card: CardState, sealer: image.Sealer, tmp_path: Path) -> None:
    path = tmp_path / "card.img"
    log = tmp_path / "writer.log"
    photo = card.mf.children[DDF1].children[EF07].data  # type: ignore[union-attr]
    photo[-260:] = bytes(260)  # counter 0, fill byte 0
    image.save(card, path, sealer)
    original_keys = keys_of(card)

    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    where = f"(random seed {seed})"
    started = {0}
    rounds = 20
    for round_ in range(rounds):
        done_before = sum(1 for word, _ in _log_lines(log) if word == "done")
        proc = subprocess.Popen(
            [sys.executable, str(WRITER), str(path), str(log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 30
            while sum(1 for word, _ in _log_lines(log) if word == "done") <= done_before:
                if proc.poll() is not None:
                    pytest.fail(f"writer died: {proc.stderr.read().decode() if proc.stderr else ''} {where}")
                if time.monotonic() > deadline:
                    pytest.fail(f"writer made no progress in 30 s {where}")
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 0.06))
        finally:
            proc.kill()  # SIGKILL
            _, err = proc.communicate()
        assert proc.returncode == -9, f"writer ended by itself: {err.decode()} {where}"

        lines = _log_lines(log)
        started |= {n for word, n in lines if word == "start"}
        last_word, last_n = lines[-1]
        allowed = {last_n} if last_word == "done" else {last_n - 1, last_n}

        loaded = image.load(path, sealer)  # the image is never torn
        counter, fill = _counter(loaded)
        assert counter in allowed, f"round {round_}: counter {counter}, log ends {lines[-1]} {where}"
        assert counter in started, where
        assert fill == bytes([counter & 0xFF]) * 256, (
            f"round {round_}: photo bytes of two saves mixed {where}"
        )
        assert keys_of(loaded) == original_keys, where

        # leftovers of a killed save are temporary files beside the image, never the image itself
        assert path.is_file() and not path.is_symlink()
        for entry in tmp_path.iterdir():
            if entry.name in (path.name, log.name):
                continue
            assert re.fullmatch(rf"\.{re.escape(path.name)}\..+\.tmp", entry.name), entry.name
            assert not entry.samefile(path), f"{entry.name} is the image {where}"
    assert _counter(image.load(path, sealer))[0] >= rounds


def test_dumps_writes_what_json_with_indent_writes(issued_state: CardState) -> None:
    """image.dumps has its own fast encoder: the bytes must stay those of json.dumps(indent=1)."""
    import json

    from healthcard.card.image import Sealer, dumps, to_dict

    sealer = Sealer("x")
    doc = to_dict(issued_state, sealer)
    assert json.loads(dumps(issued_state, sealer)).keys() == doc.keys()
    fixed = Sealer("x")
    fixed.salt = sealer.salt
    expected = json.dumps(to_dict(issued_state, fixed), indent=1).encode("utf-8")
    got = dumps(issued_state, fixed)
    assert len(got) == len(expected) and got.count(b"\n") == expected.count(b"\n")
