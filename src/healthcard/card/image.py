"""Card images: a whole card (files, keys, counters, life cycle) in one file.

Saved atomically — written to a temporary file in the same folder, fsync'ed, renamed over the
old one, and the folder fsync'ed — so a crash at any moment leaves either the previous image or
the new one, never a torn file.  Keys and PINs are never in the file in clear: they are sealed
with SM4-GCM under a key-encryption key (KEK) derived from a passphrase with scrypt (a
memory-hard KDF); the file itself is JSON, readable for everything else.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from healthcard.card.cos import CardState
from healthcard.card.filesystem import DF, Key, KeyUse, LifeCycle, Status
from healthcard.errors import ImageError
from healthcard.keys.atomicfile import write_atomically
from healthcard.keys.primitives import Algorithm

FORMAT = "healthcard-card-image/1"
#: the passphrase of demo images (``make run``, tests); anything else is chosen by the operator
DEMO_PASSPHRASE = "healthcard-demo"


class Sealer:
    """Seals the secret part of an image under a KEK derived from a passphrase (scrypt)."""

    def __init__(self, passphrase: str) -> None:
        self._passphrase = passphrase.encode("utf-8")
        self._cache: dict[bytes, bytes] = {}
        # one salt per sealer (re-used from the image it opened), so a save costs no new KDF run
        self.salt = secrets.token_bytes(16)

    def __repr__(self) -> str:
        return "Sealer(<passphrase hidden>)"

    def _kek(self, salt: bytes) -> bytes:
        if salt not in self._cache:
            self._cache[salt] = hashlib.scrypt(self._passphrase, salt=salt, n=2**14, r=8, p=1, dklen=16)
        return self._cache[salt]

    def seal(self, plaintext: bytes) -> dict[str, str]:
        salt = self.salt
        nonce = secrets.token_bytes(12)
        enc = Cipher(algorithms.SM4(self._kek(salt)), modes.GCM(nonce)).encryptor()
        enc.authenticate_additional_data(FORMAT.encode())
        ct = enc.update(plaintext) + enc.finalize()
        b64 = base64.b64encode
        return {
            "alg": "SM4-GCM/scrypt",
            "salt": b64(salt).decode(),
            "nonce": b64(nonce).decode(),
            "ciphertext": b64(ct + enc.tag).decode(),
        }

    def unseal(self, box: dict[str, str]) -> bytes:
        try:
            salt, nonce = base64.b64decode(box["salt"]), base64.b64decode(box["nonce"])
            blob = base64.b64decode(box["ciphertext"])
            dec = Cipher(algorithms.SM4(self._kek(salt)), modes.GCM(nonce, blob[-16:])).decryptor()
            dec.authenticate_additional_data(FORMAT.encode())
            plain = dec.update(blob[:-16]) + dec.finalize()
            self.salt = salt
            return plain
        except (KeyError, ValueError, InvalidTag):
            raise ImageError(
                "the card image's keys cannot be opened (wrong passphrase or damaged file)"
            ) from None


def _keys_of(mf: DF) -> list[dict[str, Any]]:
    return [
        {
            "df": df.path(),
            "kid": k.kid,
            "use": int(k.use),
            "alg": int(k.algorithm),
            "version": k.version,
            "value": k.value.hex(),
            "max_tries": k.max_tries,
            "tries_left": k.tries_left,
        }
        for df in mf.walk()
        for k in df.keys.values()
    ]


def to_dict(state: CardState, sealer: Sealer) -> dict[str, Any]:
    secret = json.dumps(_keys_of(state.mf)).encode()
    return {
        "format": FORMAT,
        "application": state.application,
        "profile": state.profile,
        "serial": state.serial.hex().upper(),
        "lifecycle": state.lifecycle.value,
        "files": state.mf.to_dict(),
        "keys": sealer.seal(secret),
    }


def from_dict(doc: dict[str, Any], sealer: Sealer) -> CardState:
    if doc.get("format") != FORMAT:
        raise ImageError(f"not a card image (format {doc.get('format')!r}, expected {FORMAT!r})")
    try:
        mf = DF.from_dict(doc["files"])
        by_path = {df.path(): df for df in mf.walk()}
        for k in json.loads(sealer.unseal(doc["keys"])):
            key = Key(
                k["kid"],
                KeyUse(k["use"]),
                Algorithm(k["alg"]),
                k["version"],
                bytes.fromhex(k["value"]),
                k["max_tries"],
                k["tries_left"],
            )
            by_path[k["df"]].keys[(k["use"], k["kid"])] = key
        return CardState(
            serial=bytes.fromhex(doc["serial"]),
            mf=mf,
            lifecycle=LifeCycle(doc["lifecycle"]),
            application=doc["application"],
            profile=doc["profile"],
        )
    except (KeyError, ValueError, TypeError, Status) as exc:
        raise ImageError(f"damaged card image: {type(exc).__name__}") from None


class _NotPlain(Exception):
    """A value :func:`_json_indent1` leaves to the json module (floats, odd keys, deep nests)."""


_json_string = json.encoder.encode_basestring_ascii  # json.dumps's own (C) string encoder


def _json_indent1(value: Any, level: int, out: list[str]) -> None:
    """Append ``json.dumps(value, indent=1)`` to ``out``, for the plain values an image holds
    (dicts with text keys, lists, text, integers, booleans, None): the same characters, about
    twice as fast, since ``json`` drops its C encoder whenever ``indent`` is given."""
    if isinstance(value, str):
        out.append(_json_string(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif level > 64:
        raise _NotPlain
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        inner = "\n" + " " * (level + 1)
        out.append("{")
        separator = inner
        for key, item in value.items():
            if not isinstance(key, str):
                raise _NotPlain
            out.append(separator)
            out.append(_json_string(key))
            out.append(": ")
            _json_indent1(item, level + 1, out)
            separator = "," + inner
        out.append("\n" + " " * level + "}")
    elif isinstance(value, list | tuple):
        if not value:
            out.append("[]")
            return
        inner = "\n" + " " * (level + 1)
        out.append("[")
        separator = inner
        for item in value:
            out.append(separator)
            _json_indent1(item, level + 1, out)
            separator = "," + inner
        out.append("\n" + " " * level + "]")
    else:
        raise _NotPlain


def _dumps_indent1(doc: dict[str, Any]) -> str:
    """``json.dumps(doc, indent=1)``."""
    out: list[str] = []
    try:
        _json_indent1(doc, 0, out)
    except _NotPlain:
        return json.dumps(doc, indent=1)
    return "".join(out)


def dumps(state: CardState, sealer: Sealer) -> bytes:
    """The image file's bytes (JSON, secrets sealed)."""
    return _dumps_indent1(to_dict(state, sealer)).encode("utf-8")


def save(state: CardState, path: str | os.PathLike[str], sealer: Sealer) -> None:
    """Write the image atomically (write, fsync, rename, fsync the folder), mode 0600."""
    write_atomically(path, dumps(state, sealer))


def load(path: str | os.PathLike[str], sealer: Sealer) -> CardState:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ImageError(f"no card image at {path}") from None
    except (OSError, ValueError) as exc:
        raise ImageError(f"cannot read card image {path}: {type(exc).__name__}") from None
    if not isinstance(doc, dict):
        raise ImageError(f"{path} is not a card image")
    return from_dict(doc, sealer)
