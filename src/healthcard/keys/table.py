"""The card key table as data (CARD-SPEC.md §6.2–6.3, DECISIONS.md §11–12): ``data/key_table.csv``.

One row per key the health card holds, read by the card profile (which DF installs it under
which ``kid``), the SAM (which level-1 master it keeps under ``sam_index``, and for which role)
and the issuer (how deep the card's value is diversified).  Columns:

``name``
    the key's name in the spec's key table (``RK1DF02``) or ours for the extras (``MKMF``).
``df`` / ``kid``
    where the card holds it and its key id (P2 of EXTERNAL AUTHENTICATE for ``auth`` keys).
``use``
    ``auth`` (RK/UK), ``maintenance`` (STK: secure messaging), ``lock`` (BKMF), ``pin_unblock``,
    ``master`` (card master key) or ``transport`` (the chip's personalisation key).
``depth``
    ``card``: ``Kc = D(K1, serial)``; ``province+card``: ``Kc = D(D(K1, province), serial)``
    (and, with the optional city level, ``D(D(D(K1, province), city), serial)``).
``sam_index`` / ``sam_p1``
    P2 and P1 of the SAM's ``80 DE`` (empty: no SAM holds the master).
``sdk_id``
    the key id of the national SDK (``RK_DDF1 = 0`` … ``UK_DF03_2 = 14``).
``holders``
    who keeps the level-1 (or level-2) master: ``terminal-sam`` (every terminal),
    ``issuer-sam`` (card centres: adds card lock and PIN unblock), ``issuer-hsm`` (the
    province's issuing HSM, which also holds the master and transport keys).
"""

from __future__ import annotations

import csv
import enum
from dataclasses import dataclass
from importlib import resources


class KeyUse(enum.Enum):
    """What a key is for on the card."""

    AUTH = "auth"  # EXTERNAL AUTHENTICATE: read keys (RK) and update keys (UK)
    MAINTENANCE = "maintenance"  # secure messaging session keys (STK)
    LOCK = "lock"  # card lock / unlock (BKMF)
    PIN_UNBLOCK = "pin_unblock"  # RESET RETRY COUNTER of the cardholder PIN
    MASTER = "master"  # card master key: replaces keys after issuance (key rollover)
    TRANSPORT = "transport"  # personalisation: wraps WRITE KEY


class Depth(enum.Enum):
    """How many diversification levels lie between the national key and the card key."""

    CARD = 1  # D(K1, chip serial)
    PROVINCE_CARD = 2  # D(D(K1, province factor), chip serial)


class Holder(enum.Enum):
    """Who keeps a key's master (the level-1 key, or the province's level-2 key)."""

    TERMINAL_SAM = "terminal-sam"
    ISSUER_SAM = "issuer-sam"
    ISSUER_HSM = "issuer-hsm"


@dataclass(frozen=True)
class KeySpec:
    name: str  # the name of the spec's key table, e.g. "RK1DF02"
    df: str  # where the card holds it: "MF", "DDF1", "DF01".."DF03"
    kid: int  # card key id (P2 of EXTERNAL AUTHENTICATE for AUTH keys)
    use: KeyUse
    depth: Depth
    sam_index: int | None  # P2 of the SAM's 80DE; None when no SAM holds the master key
    sam_p1: int | None  # P1 of the SAM's 80DE (CARD-SPEC.md §6.3)
    sdk_id: int | None  # key id of the national SDK (RK_DDF1 = 0 … UK_DF03_2 = 14)
    holders: frozenset[Holder]
    description: str

    def held_by(self, holder: Holder) -> bool:
        return holder in self.holders


def _hex(text: str) -> int | None:
    return int(text, 16) if text else None


def _load() -> tuple[KeySpec, ...]:
    source = resources.files("healthcard.keys").joinpath("data/key_table.csv")
    with source.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    specs = []
    for row in rows:
        kid = _hex(row["kid"])
        assert kid is not None, row["name"]
        specs.append(
            KeySpec(
                name=row["name"],
                df=row["df"],
                kid=kid,
                use=KeyUse(row["use"]),
                depth=Depth.PROVINCE_CARD if row["depth"] == "province+card" else Depth.CARD,
                sam_index=_hex(row["sam_index"]),
                sam_p1=_hex(row["sam_p1"]),
                sdk_id=int(row["sdk_id"]) if row["sdk_id"] else None,
                holders=frozenset(Holder(h) for h in row["holders"].split("+")),
                description=row["description"],
            )
        )
    return tuple(specs)


#: every key of the 32K health card, in the order the national SDK numbers them, then extras
KEY_TABLE: tuple[KeySpec, ...] = _load()

BY_NAME: dict[str, KeySpec] = {spec.name: spec for spec in KEY_TABLE}
BY_SAM_INDEX: dict[int, KeySpec] = {s.sam_index: s for s in KEY_TABLE if s.sam_index is not None}


def spec(name: str) -> KeySpec:
    """The row of ``name`` (e.g. ``"UK1DF03"``)."""
    return BY_NAME[name]


def maintenance_key(df: str) -> KeySpec:
    """The STK key whose session key protects secure messaging in ``df``."""
    return next(s for s in KEY_TABLE if s.df == df and s.use is KeyUse.MAINTENANCE)


def held_by(holder: Holder) -> tuple[KeySpec, ...]:
    """The rows whose master ``holder`` keeps."""
    return tuple(s for s in KEY_TABLE if holder in s.holders)
