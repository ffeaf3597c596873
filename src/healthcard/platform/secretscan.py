"""A scan for the project's secrets where they must never be: logs, card images, the database
and the repository (``healthcard security scan-secrets``, docs/security.md).

The scan *knows* the secrets it looks for (:class:`Secret`): the key values of the key store
(national, province and city key sets, SM2 private keys, the e-health-card security root —
unsealed in memory only), card keys derived for given chips, the token secret, passwords, PINs
and passphrases, issued access tokens and session cookies, and the password hashes of the
accounts.  Each is searched in every form it could take in a text or a dump: raw bytes, hex (either
case), base64 and base64url — a short one (a 6-digit PIN) only as a whole word, so that a PIN is
not "found" inside a longer number.  On top, patterns that are secrets whoever made them: PEM
private keys, argon2 password hashes, JSON Web Tokens, session cookies, and a long hex string
right after a word like ``key`` or ``secret``.

A finding names the place (file and line, or table, column and row) and the kind of secret, and
a **fingerprint** (the first 12 hex digits of its SHA-256) — never the secret itself, so the
report can be pasted into a ticket.

What is *not* a finding, on purpose:

* the columns designed to hold hashed or sealed material (:data:`SEALED_COLUMNS`) — they are
  checked to *be* hashed instead (an argon2 string, not a clear password);
* public demo values (the demo SAM PIN, the demo image passphrase, :class:`Secret` with
  ``public=True``) in the repository, where they are written down on purpose — they are still
  searched in logs, images and the database;
* the generic "long hex after ``key``" pattern in the repository, which holds published test
  vectors (tests/vectors) and the public demo root (keys/cardkeys.py) on purpose.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import LargeBinary, String, Text, select
from sqlalchemy.types import JSON

from healthcard.keys.keyset import CardKeySet
from healthcard.keys.keystore import KeyStore
from healthcard.storage import tables as t
from healthcard.storage.db import Database

#: secrets this short are searched as whole words only (a PIN inside a card number is not a PIN)
SHORT = 8
#: a file bigger than this is read in its first part only (a log rotated at 50 MB is not read whole)
MAX_FILE = 64 * 1024 * 1024
#: (table, column) → what the column holds by design; checked to be that, not searched
SEALED_COLUMNS: dict[tuple[str, str], str] = {("accounts", "password_hash"): "argon2"}
ARGON2 = re.compile(rb"^\$argon2(?:id|i|d)\$v=\d+\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$")


@dataclass(frozen=True)
class Secret:
    """A secret the scan looks for: ``kind`` (``key``, ``token-secret``, ``password``, ``pin``,
    ``passphrase``, ``token``, ``session``, ``password-hash``), ``name`` (where it comes from,
    e.g. ``province/41/v1:MK_DF01`` — never the value), ``value``.  ``public``: a demo value
    written down in the repository on purpose (not searched there)."""

    kind: str
    name: str
    value: bytes = field(repr=False)
    public: bool = False

    @classmethod
    def text(cls, kind: str, name: str, value: str, *, public: bool = False) -> Secret:
        return cls(kind, name, value.encode("utf-8"), public)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.value)


@dataclass(frozen=True, order=True)
class Finding:
    """One secret (or secret-looking thing) found: where, what kind, and its fingerprint."""

    location: str  # "logs/app.log:12", "db accounts.name[dr-wang]", "repo src/x.py:3"
    kind: str  # the secret's kind, or the pattern's ("pem-private-key", "jwt", …)
    fingerprint: str
    name: str = ""  # the known secret's name (never its value)

    def __str__(self) -> str:
        what = f"{self.kind} {self.name}".strip()
        return f"{self.location}: {what} (fingerprint {self.fingerprint})"


def fingerprint(value: bytes) -> str:
    """The first 12 hex digits of the SHA-256 of ``value``: enough to tell two secrets apart,
    nothing to learn the secret from."""
    return "sha256:" + hashlib.sha256(value).hexdigest()[:12]


# --- what the scan knows ----------------------------------------------------------------------------
def keystore_secrets(store: KeyStore) -> list[Secret]:
    """Every key value of the key store, unsealed in memory: each key of each key set, each
    single secret (SM2 private keys, transport keys, the e-health-card security root)."""
    found: list[Secret] = []
    for entry in store.entries():
        if entry.kind == "keyset":
            keyset = store.keyset(entry.id)
            found += [Secret("key", f"{entry.id}:{name}", keyset[name]) for name in keyset]
        else:
            found.append(Secret("key", entry.id, store.secret(entry.id)))
    return found


def card_key_secrets(keysets: Iterable[CardKeySet]) -> list[Secret]:
    """The card keys of given chips (a card's keys live sealed in its image and on the chip,
    nowhere else)."""
    return [
        Secret("key", f"card/{keys.serial.hex().upper()}:{name}", value)
        for keys in keysets
        for name, value in keys.keys.items()
    ]


def password_hash_secrets(db: Database) -> list[Secret]:
    """The accounts' password hashes: at home in ``accounts.password_hash``, a finding anywhere
    else (a log line, another column)."""
    with db.uow() as uow:
        rows = uow.session.execute(select(t.Account.username, t.Account.password_hash)).all()
    return [Secret.text("password-hash", f"account {username}", hashed) for username, hashed in rows]


# --- how a secret can look --------------------------------------------------------------------------
@dataclass(frozen=True)
class _Needle:
    secret: Secret
    pattern: re.Pattern[bytes]


def _forms(secret: Secret) -> list[re.Pattern[bytes]]:
    value = secret.value
    if not value:
        return []
    literal: set[bytes] = set()
    patterns: list[re.Pattern[bytes]] = []
    if len(value) < SHORT:
        patterns.append(re.compile(rb"(?<![0-9A-Za-z])" + re.escape(value) + rb"(?![0-9A-Za-z])"))
    else:
        literal.add(value)
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None:
            literal.add(urllib.parse.quote_plus(text).encode())  # a form post in a log
    if len(value) >= SHORT // 2:  # binary keys (16 bytes) and text secrets alike: their encodings
        patterns.append(re.compile(re.escape(value.hex().encode()), re.IGNORECASE))
        b64 = base64.b64encode(value).rstrip(b"=")
        literal.add(b64)
        literal.add(base64.urlsafe_b64encode(value).rstrip(b"="))
    if len(value) >= SHORT:
        patterns += [re.compile(re.escape(form)) for form in sorted(literal) if len(form) >= SHORT]
    return patterns


#: secrets whoever made them: (kind, pattern, where it applies)
PATTERNS: tuple[tuple[str, re.Pattern[bytes], frozenset[str]], ...] = (
    (
        "pem-private-key",
        re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"),
        frozenset({"logs", "images", "db", "repo"}),
    ),
    (
        "password-hash",
        re.compile(rb"\$argon2(?:id|i|d)\$v=\d+\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]{8,}"),
        frozenset({"logs", "images", "db", "repo"}),
    ),
    (
        "jwt",
        re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{20,}"),
        frozenset({"logs", "images", "db", "repo"}),
    ),
    (
        "session-cookie",
        re.compile(rb"hc_session=[A-Za-z0-9_.-]{20,}"),
        frozenset({"logs", "images", "db", "repo"}),
    ),
    (
        "hex-key",
        re.compile(
            rb"(?i)(?:key|secret|token|passphrase|password)[A-Za-z0-9_.-]{0,20}[\"']?\s*[:=]\s*[\"']?"
            rb"(?:0x)?[0-9a-f]{32,}"
        ),
        frozenset({"logs", "images", "db"}),
    ),
)


class SecretScanner:
    """Scans files, folders, a database and a repository for ``secrets`` and the patterns of
    :data:`PATTERNS`; every method returns the findings, sorted."""

    def __init__(self, secrets: Iterable[Secret] = ()) -> None:
        self.secrets = list(secrets)
        self._needles = [_Needle(s, p) for s in self.secrets for p in _forms(s)]

    def scan_bytes(self, data: bytes, place: str, where: str) -> list[Finding]:
        """``data`` from ``place`` (a file name, a column); ``where``: ``logs``, ``images``,
        ``db`` or ``repo`` (which secrets and patterns apply)."""
        found: set[Finding] = set()
        for needle in self._needles:
            if where == "repo" and needle.secret.public:
                continue
            for match in needle.pattern.finditer(data):
                found.add(
                    Finding(
                        _at(place, data, match.start()),
                        needle.secret.kind,
                        needle.secret.fingerprint,
                        needle.secret.name,
                    )
                )
                break  # one finding per secret and place is enough
        for kind, pattern, applies in PATTERNS:
            if where not in applies:
                continue
            for match in pattern.finditer(data):
                found.add(Finding(_at(place, data, match.start()), kind, fingerprint(match.group(0))))
        return sorted(found)

    def scan_folder(self, folder: Path, where: str) -> list[Finding]:
        """Every file under ``folder`` (logs, card images)."""
        found: list[Finding] = []
        for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
            found += self.scan_bytes(_read(path), f"{where}/{path.relative_to(folder)}", where)
        return sorted(found)

    def scan_repository(self, repo: Path) -> list[Finding]:
        """Every file git tracks in ``repo``, and every new file it would add (not ignored)."""
        listed = subprocess.run(
            ["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            check=True,
        ).stdout
        found: list[Finding] = []
        for name in sorted({n for n in listed.decode("utf-8", "replace").split("\0") if n}):
            path = Path(repo) / name
            if path.is_file() and not path.is_symlink():
                found += self.scan_bytes(_read(path), f"repo/{name}", "repo")
        return sorted(found)

    def scan_database(self, db: Database) -> list[Finding]:
        """Every text, JSON and bytes column of every table, row by row; the columns of
        :data:`SEALED_COLUMNS` are checked to hold what they should (a hash, not a clear value)."""
        found: list[Finding] = []
        with db.uow() as uow:
            for table in t.Base.metadata.sorted_tables:
                columns = [c for c in table.columns if isinstance(c.type, String | Text | LargeBinary | JSON)]
                if not columns:
                    continue
                keys = list(table.primary_key.columns)
                query = select(*keys, *columns)
                for row in uow.session.execute(query).yield_per(500):
                    ident = ",".join(str(v) for v in row[: len(keys)])[:80]
                    for column, value in zip(columns, row[len(keys) :], strict=True):
                        if value is None:
                            continue
                        place = f"db/{table.name}.{column.name}[{ident}]"
                        data = _as_bytes(value)
                        design = SEALED_COLUMNS.get((table.name, column.name))
                        if design is not None:
                            if design == "argon2" and not ARGON2.match(data):
                                found.append(Finding(place, "not-hashed", fingerprint(data)))
                            continue
                        found += self.scan_bytes(data, place, "db")
        return sorted(found)


def scan(
    scanner: SecretScanner,
    *,
    logs: Iterable[Path] = (),
    images: Iterable[Path] = (),
    database: Database | None = None,
    repo: Path | None = None,
) -> list[Finding]:
    """Everything asked for, in one list."""
    found: list[Finding] = []
    for folder in logs:
        found += scanner.scan_folder(folder, "logs")
    for folder in images:
        found += scanner.scan_folder(folder, "images")
    if database is not None:
        found += scanner.scan_database(database)
    if repo is not None:
        found += scanner.scan_repository(repo)
    return sorted(set(found))


def _read(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(MAX_FILE)


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value, ensure_ascii=False, default=str).encode("utf-8")


def _at(place: str, data: bytes, offset: int) -> str:
    """``place:line`` for a file, ``place`` alone for a database value."""
    if place.startswith("db/"):
        return place
    line = data.count(b"\n", 0, offset) + 1
    return f"{place}:{line}"


def iter_fingerprints(secrets: Iterable[Secret]) -> Iterator[tuple[str, str, str]]:
    """(kind, name, fingerprint) of each secret the scan knows — what ``--list`` prints."""
    for secret in secrets:
        yield secret.kind, secret.name, secret.fingerprint


__all__ = [
    "PATTERNS",
    "SEALED_COLUMNS",
    "Finding",
    "Secret",
    "SecretScanner",
    "card_key_secrets",
    "fingerprint",
    "iter_fingerprints",
    "keystore_secrets",
    "password_hash_secrets",
    "scan",
]
