"""The key store: every key at rest envelope-encrypted (ARCHITECTURE.md §3 keys/).

One JSON file (``keystore.json`` in the data directory, mode 0600, replaced atomically)::

    {"format": "healthcard-keystore/1",
     "kek":     <the data key wrapped by the KEK: PKCS#11 HSM or passphrase (kek.py)>,
     "entries": {"national/v1":    {"kind": "keyset", "kcv": {...}, "sealed": {...}, ...},
                 "province/41/v1": {...},
                 "sm2/root/1":     {"kind": "sm2", "public": "…", "sealed": {...}},
                 "transport/p41":  {"kind": "transport", "kcv": "…", "sealed": {...}}}}

Each entry's secret part is sealed with SM4-GCM under a random 16-byte data key (DEK), the
entry's id bound as associated data (an entry copied under another name does not open); the DEK
is wrapped by the key-encryption key, which never leaves the HSM (or exists only while the
passphrase's scrypt output is in memory).  In clear there are only what is public anyway:
names, versions, algorithms, check values, SM2 public keys and certificates.  Nothing is
written until every check has passed, and the file is replaced atomically.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from healthcard.clock import Clock, SystemClock
from healthcard.errors import InvalidValue, KeyStoreError
from healthcard.keys.atomicfile import write_atomically
from healthcard.keys.kek import Kek
from healthcard.keys.keyset import KeySet, KeySetId, Level
from healthcard.keys.primitives import Algorithm

FORMAT = "healthcard-keystore/1"
_AAD = FORMAT.encode()


@dataclass(frozen=True)
class EntryInfo:
    """The public part of an entry."""

    id: str
    kind: str  # "keyset" | "sm2" | "transport" | "secret"
    created: str  # ISO 8601 UTC
    algorithm: str
    kcv: dict[str, str] | str | None
    public: dict[str, str]


class KeyStore:
    """Open with :meth:`create` or :meth:`open`; every ``put_…`` saves at once."""

    def __init__(
        self, path: Path, kek: Kek, dek: bytes, doc: dict[str, Any], clock: Clock
    ) -> None:  # use create() / open()
        self.path = path
        self.kek = kek
        self._dek = dek
        self._doc = doc
        self.clock = clock

    def __repr__(self) -> str:
        return f"KeyStore({str(self.path)!r}, kek={self.kek.label!r})"

    # --- opening -----------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike[str], kek: Kek, clock: Clock | None = None) -> KeyStore:
        target = Path(path)
        if target.exists():
            raise KeyStoreError(f"a key store already exists at {target}")
        dek = secrets.token_bytes(16)
        doc = {"format": FORMAT, "kek": kek.wrap(dek, _AAD), "entries": {}}
        target.parent.mkdir(parents=True, exist_ok=True)
        store = cls(target, kek, dek, doc, clock or SystemClock())
        store._save()
        return store

    @classmethod
    def open(cls, path: str | os.PathLike[str], kek: Kek, clock: Clock | None = None) -> KeyStore:
        target = Path(path)
        try:
            doc = json.loads(target.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise KeyStoreError(
                f"no key store at {target} (make one with `healthcard keys ceremony`)"
            ) from None
        except (OSError, ValueError) as exc:
            raise KeyStoreError(f"cannot read the key store {target}: {type(exc).__name__}") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or "kek" not in doc:
            raise KeyStoreError(f"{target} is not a key store ({FORMAT})")
        dek = kek.unwrap(doc["kek"], _AAD)
        return cls(target, kek, dek, doc, clock or SystemClock())

    @classmethod
    def open_or_create(cls, path: str | os.PathLike[str], kek: Kek, clock: Clock | None = None) -> KeyStore:
        return cls.open(path, kek, clock) if Path(path).exists() else cls.create(path, kek, clock)

    def change_kek(self, kek: Kek) -> None:
        """Re-wrap the data key under another KEK (e.g. move from a passphrase to the HSM)."""
        self._doc["kek"] = kek.wrap(self._dek, _AAD)
        self.kek = kek
        self._save()

    # --- sealing -------------------------------------------------------------------------
    def _seal(self, entry_id: str, plaintext: bytes) -> dict[str, str]:
        nonce = secrets.token_bytes(12)
        enc = Cipher(algorithms.SM4(self._dek), modes.GCM(nonce)).encryptor()
        enc.authenticate_additional_data(_AAD + b"/" + entry_id.encode())
        ct = enc.update(plaintext) + enc.finalize() + enc.tag
        return {
            "alg": "SM4-GCM",
            "nonce": base64.b64encode(nonce).decode(),
            "ct": base64.b64encode(ct).decode(),
        }

    def _unseal(self, entry_id: str, box: dict[str, str]) -> bytes:
        try:
            nonce, blob = base64.b64decode(box["nonce"]), base64.b64decode(box["ct"])
            dec = Cipher(algorithms.SM4(self._dek), modes.GCM(nonce, blob[-16:])).decryptor()
            dec.authenticate_additional_data(_AAD + b"/" + entry_id.encode())
            return dec.update(blob[:-16]) + dec.finalize()
        except (KeyError, ValueError, InvalidTag):
            raise KeyStoreError(f"the key store entry {entry_id} is damaged") from None

    def _save(self) -> None:
        write_atomically(self.path, json.dumps(self._doc, indent=1, ensure_ascii=False).encode("utf-8"))

    def _entry(self, entry_id: str) -> dict[str, Any]:
        entry = self._doc["entries"].get(entry_id)
        if entry is None:
            raise KeyStoreError(f"the key store has no {entry_id}")
        return dict(entry)

    def _put(self, entry_id: str, entry: dict[str, Any], secret: bytes, replace: bool = False) -> None:
        if entry_id in self._doc["entries"] and not replace:
            raise KeyStoreError(f"the key store already holds {entry_id}")
        entry = {**entry, "created": self.clock.now().isoformat(timespec="seconds")}
        entry["sealed"] = self._seal(entry_id, secret)
        self._doc["entries"][entry_id] = entry
        self._save()

    # --- queries -------------------------------------------------------------------------
    def has(self, entry_id: str) -> bool:
        return entry_id in self._doc["entries"]

    def entries(self) -> list[EntryInfo]:
        return [
            EntryInfo(
                id=key,
                kind=e["kind"],
                created=e.get("created", ""),
                algorithm=e.get("algorithm", ""),
                kcv=e.get("kcv"),
                public=dict(e.get("public", {})),
            )
            for key, e in sorted(self._doc["entries"].items())
        ]

    def versions(self, level: Level = Level.NATIONAL, region: str = "") -> list[int]:
        """The versions of the sets of one level and region that the store holds, ascending."""
        out = []
        for key in self._doc["entries"]:
            if self._doc["entries"][key]["kind"] != "keyset":
                continue
            set_id = KeySetId.parse(key)
            if set_id.level is level and set_id.region == region:
                out.append(set_id.version)
        return sorted(out)

    def current_version(self, level: Level = Level.NATIONAL, region: str = "") -> int | None:
        versions = self.versions(level, region)
        return versions[-1] if versions else None

    # --- key sets ------------------------------------------------------------------------
    def put_keyset(self, keyset: KeySet) -> None:
        entry = {"kind": "keyset", "algorithm": keyset.algorithm.name, "kcv": keyset.kcvs()}
        secret = json.dumps({n: v.hex() for n, v in keyset.keys.items()}).encode()
        self._put(str(keyset.id), entry, secret)

    def keyset(self, set_id: KeySetId | str) -> KeySet:
        key = str(set_id if isinstance(set_id, KeySetId) else KeySetId.parse(set_id))
        entry = self._entry(key)
        if entry["kind"] != "keyset":
            raise KeyStoreError(f"{key} is not a key set")
        values = json.loads(self._unseal(key, entry["sealed"]))
        keyset = KeySet(
            KeySetId.parse(key),
            Algorithm[entry["algorithm"]],
            {n: bytes.fromhex(v) for n, v in values.items()},
        )
        if keyset.kcvs() != entry["kcv"]:
            raise KeyStoreError(f"the key store entry {key} does not match its check values")
        return keyset

    # --- single secrets (SM2 private keys, transport keys) ----------------------------------
    def put_secret(
        self,
        entry_id: str,
        kind: str,
        value: bytes,
        *,
        algorithm: str = "",
        kcv: str | None = None,
        public: dict[str, str] | None = None,
        replace: bool = False,
    ) -> None:
        if not entry_id or entry_id.startswith(("national/", "province/", "city/")):
            raise InvalidValue("entry", f"{entry_id!r} is reserved for key sets")
        entry: dict[str, Any] = {"kind": kind, "algorithm": algorithm, "public": public or {}}
        if kcv is not None:
            entry["kcv"] = kcv
        self._put(entry_id, entry, value, replace=replace)

    def secret(self, entry_id: str) -> bytes:
        return self._unseal(entry_id, self._entry(entry_id)["sealed"])

    def public(self, entry_id: str) -> dict[str, str]:
        return dict(self._entry(entry_id).get("public", {}))

    def set_public(self, entry_id: str, **values: str) -> None:
        """Add public values (a certificate, say) to an entry."""
        entry = self._doc["entries"].get(entry_id)
        if entry is None:
            raise KeyStoreError(f"the key store has no {entry_id}")
        entry.setdefault("public", {}).update(values)
        self._save()
