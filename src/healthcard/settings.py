"""Settings, typed and checked at start-up (STYLE.md habit 12), from ``HEALTHCARD_*`` variables.

=============================  ===============================================================
``HEALTHCARD_DATA_DIR``        where the embedded default keeps its files (``data``)
``HEALTHCARD_DATABASE_URL``    a PostgreSQL URL (``postgresql://user@host:5432/db``); unset:
                               the SQLite file ``$HEALTHCARD_DATA_DIR/healthcard.db``
``HEALTHCARD_KEYSTORE``        the key store file (``$HEALTHCARD_DATA_DIR/keys/keystore.json``)
``HEALTHCARD_KEK``             what protects the key store: ``passphrase`` or ``pkcs11``
``HEALTHCARD_OPERATOR``        the operator the CLI acts as (card centre staff, clerk, kiosk)
``HEALTHCARD_TOKEN_SECRET``    the key that signs the API's access tokens (64 hex digits); held
                               in the environment only — ``healthcard serve`` makes a fresh one
                               for its workers when unset (every token then dies with the server)
``HEALTHCARD_TRUST``           the national root public keys the platform trusts (SAM
                               certificates of terminals): ``$HEALTHCARD_DATA_DIR/trust.json``
``HEALTHCARD_CARD_TRAY``       a folder: the web process's card centre pages personalise cards
                               into it (simulated chips, as ``healthcard issue``); unset: they
                               issue none (``healthcard serve --demo``: ``$DATA_DIR/cards``)
``HEALTHCARD_NATS_URL``        the NATS server (JetStream) between platform nodes
                               (``nats://127.0.0.1:4222``); unset: the in-process bus of the
                               embedded default (healthcard.federation)
``HEALTHCARD_NODE_ROLE``       what this node is in the three-level platform: ``city`` (the
                               default), ``province`` or ``national`` (docs/federation.md)
``HEALTHCARD_NODE_CODE``       which one: a city's 4-digit GB/T 2260 prefix (``4101``), a
                               province's 2 digits (``41``), ``CN`` for the national node;
                               unset on a city node: it announces nothing upward (the embedded
                               default); required for a province or the national node
``HEALTHCARD_AUDIT_HOT_DAYS``  how many days of audit entries stay in the database (``180``);
                               ``healthcard audit archive`` moves older ones to segments
``HEALTHCARD_AUDIT_ARCHIVE_DIR``
                               where the archived audit segments are kept
                               (``$HEALTHCARD_DATA_DIR/audit-archive``); "who looked at my
                               record" reads a resident's archived entries from there
``HEALTHCARD_RATE_LOGIN``      failed logins per client address: ``attempts/seconds``
                               (``30/900``); beyond it 429 (healthcard.platform.ratelimit)
``HEALTHCARD_RATE_CHALLENGE``  terminal challenges per client address (``60/60``)
=============================  ===============================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from healthcard.errors import InvalidValue


def normalise_url(url: str) -> str:
    """SQLAlchemy URL of ``url``: PostgreSQL always through psycopg 3."""
    url = url.strip()
    for prefix in ("postgresql+psycopg2://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if url.startswith(("postgresql+psycopg://", "sqlite://")):
        return url
    raise InvalidValue("HEALTHCARD_DATABASE_URL", f"{url!r}: a postgresql:// or sqlite:// URL")


def _nats_url(url: str | None) -> str | None:
    if url is None:
        return None
    url = url.strip()
    if not url.startswith(("nats://", "tls://")):
        raise InvalidValue("HEALTHCARD_NATS_URL", f"{url!r}: a nats:// or tls:// URL")
    return url


def audit_hot_days(text: str) -> int:
    """Days of audit entries kept in the database: a whole number from 1 to 36,500."""
    try:
        days = int(text.strip())
    except ValueError:
        raise InvalidValue("HEALTHCARD_AUDIT_HOT_DAYS", f"{text!r}: a whole number of days") from None
    if not 1 <= days <= 36_500:
        raise InvalidValue("HEALTHCARD_AUDIT_HOT_DAYS", f"{days}: 1 to 36500 days")
    return days


#: the roles of a node in the three-level platform (healthcard.federation.nodes)
NODE_ROLES = ("city", "province", "national")


def check_node(role: str, code: str | None) -> tuple[str, str | None]:
    """(role, code) if they fit together: a city's code is 4 digits (GB/T 2260 province and city,
    ``4101``) or absent, a province's 2 digits (``41``), the national node's ``CN``."""
    role = role.strip().lower()
    if role not in NODE_ROLES:
        raise InvalidValue("HEALTHCARD_NODE_ROLE", f"{role!r}: city, province or national")
    code = code.strip().upper() if code and code.strip() else None
    if role == "national":
        if code not in (None, "CN"):
            raise InvalidValue("HEALTHCARD_NODE_CODE", f"{code!r}: the national node is CN")
        return role, "CN"
    digits = 4 if role == "city" else 2
    if code is None:
        if role == "province":
            raise InvalidValue("HEALTHCARD_NODE_CODE", "a province node needs its 2-digit code (41)")
        return role, None
    if len(code) != digits or not code.isdigit() or not "11" <= code[:2] <= "82" or code[2:] == "00":
        example = "4101" if role == "city" else "41"
        raise InvalidValue(
            "HEALTHCARD_NODE_CODE", f"{code!r}: a {role}'s {digits}-digit GB/T 2260 prefix ({example})"
        )
    return role, code


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")
    database_url: str | None = None
    keystore: Path | None = None
    kek: str = "passphrase"
    operator: str | None = None
    token_secret: bytes | None = None
    trust: Path | None = None
    card_tray: Path | None = None
    nats_url: str | None = None
    node_role: str = "city"
    node_code: str | None = None
    audit_hot_days: int = 180
    audit_archive_dir: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        kek = env.get("HEALTHCARD_KEK", "passphrase")
        if kek not in ("passphrase", "pkcs11"):
            raise InvalidValue("HEALTHCARD_KEK", f"{kek!r}: passphrase or pkcs11")
        url = env.get("HEALTHCARD_DATABASE_URL") or None
        store = env.get("HEALTHCARD_KEYSTORE")
        secret = env.get("HEALTHCARD_TOKEN_SECRET") or None
        token_secret = None
        if secret is not None:
            try:
                token_secret = bytes.fromhex(secret)
            except ValueError:
                raise InvalidValue("HEALTHCARD_TOKEN_SECRET", "hex digits") from None
            if len(token_secret) < 32:
                raise InvalidValue("HEALTHCARD_TOKEN_SECRET", "at least 32 bytes (64 hex digits)")
        trust = env.get("HEALTHCARD_TRUST")
        role, code = check_node(env.get("HEALTHCARD_NODE_ROLE") or "city", env.get("HEALTHCARD_NODE_CODE"))
        return cls(
            data_dir=Path(env.get("HEALTHCARD_DATA_DIR", "data")),
            database_url=normalise_url(url) if url else None,
            keystore=Path(store) if store else None,
            kek=kek,
            operator=env.get("HEALTHCARD_OPERATOR") or None,
            token_secret=token_secret,
            trust=Path(trust) if trust else None,
            card_tray=Path(env["HEALTHCARD_CARD_TRAY"]) if env.get("HEALTHCARD_CARD_TRAY") else None,
            nats_url=_nats_url(env.get("HEALTHCARD_NATS_URL") or None),
            node_role=role,
            node_code=code,
            audit_hot_days=audit_hot_days(env.get("HEALTHCARD_AUDIT_HOT_DAYS") or "180"),
            audit_archive_dir=Path(archive) if (archive := env.get("HEALTHCARD_AUDIT_ARCHIVE_DIR")) else None,
        )

    @property
    def db_url(self) -> str:
        """The database: PostgreSQL when configured, else the embedded SQLite file."""
        return self.database_url or f"sqlite:///{self.data_dir / 'healthcard.db'}"

    @property
    def keystore_path(self) -> Path:
        return self.keystore or self.data_dir / "keys" / "keystore.json"

    @property
    def audit_archive_path(self) -> Path:
        """Where the archived audit segments are (healthcard.platform.auditarchive)."""
        return self.audit_archive_dir or self.data_dir / "audit-archive"

    @property
    def trust_path(self) -> Path:
        return self.trust or self.data_dir / "trust.json"
