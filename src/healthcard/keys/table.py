"""The card key table as data (CARD-SPEC.md §6.2–6.3, DECISIONS.md §11–12).

One row per key the health card holds.  The card profile installs each key in its DF under
``kid``; the SAM keeps the national level-1 master key under ``sam_index``; the issuer derives
the card's own value with :func:`healthcard.keys.recipes.card_key` at the row's ``depth``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class KeyUse(enum.Enum):
    """What a key is for on the card."""

    AUTH = "auth"  # EXTERNAL AUTHENTICATE: read keys (RK) and update keys (UK)
    MAINTENANCE = "maintenance"  # secure messaging session keys (STK)
    LOCK = "lock"  # card lock / unlock (BKMF)
    PIN_UNBLOCK = "pin_unblock"  # RESET RETRY COUNTER of the cardholder PIN
    TRANSPORT = "transport"  # personalisation: wraps WRITE KEY


class Depth(enum.Enum):
    """How many diversification levels lie between the national key and the card key."""

    CARD = 1  # D(K1, chip serial)
    PROVINCE_CARD = 2  # D(D(K1, province factor), chip serial)


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


def _k(
    name: str,
    df: str,
    kid: int,
    use: KeyUse,
    depth: Depth,
    index: int | None,
    p1: int | None,
    sdk: int | None,
) -> KeySpec:
    return KeySpec(name, df, kid, use, depth, index, p1, sdk)


A, M = KeyUse.AUTH, KeyUse.MAINTENANCE
C, PC = Depth.CARD, Depth.PROVINCE_CARD

#: every key of the 32K health card, in the order the national SDK numbers them, then extras
KEY_TABLE: tuple[KeySpec, ...] = (
    _k("RK1DDF1", "DDF1", 0x04, A, PC, 0x31, 0x47, 0),
    _k("RK1DF01", "DF01", 0x84, A, PC, 0x32, 0x47, 1),
    _k("RK1DF02", "DF02", 0x84, A, PC, 0x33, 0x47, 2),
    _k("RK1DF03", "DF03", 0x84, A, PC, 0x34, 0x47, 3),
    _k("STKDDF1", "DDF1", 0x01, M, C, 0x02, 0x28, 4),
    _k("STKDF01", "DF01", 0x01, M, C, 0x03, 0x28, 5),
    _k("STKDF02", "DF02", 0x01, M, PC, 0x04, 0x48, 6),
    _k("STKDF03", "DF03", 0x01, M, PC, 0x05, 0x48, 7),
    _k("UK1DDF1", "DDF1", 0x05, A, C, 0x2A, 0x27, 8),
    _k("UK1DF01", "DF01", 0x85, A, C, 0x2B, 0x27, 9),
    _k("UK1DF02", "DF02", 0x85, A, PC, 0x2C, 0x47, 10),
    _k("UK2DF02", "DF02", 0x86, A, PC, 0x2D, 0x47, 11),
    _k("UK3DF02", "DF02", 0x87, A, PC, 0x2E, 0x47, 12),
    _k("UK1DF03", "DF03", 0x85, A, PC, 0x2F, 0x47, 13),
    _k("UK2DF03", "DF03", 0x86, A, C, 0x30, 0x27, 14),
    # Not in the revision's table but needed by a working card (CARD-SPEC.md §6.2 note):
    _k("STKMF", "MF", 0x01, M, C, 0x01, 0x28, None),
    _k("BKMF", "MF", 0x02, KeyUse.LOCK, C, 0x06, 0x28, None),
    _k("PUKMF", "MF", 0x03, KeyUse.PIN_UNBLOCK, C, 0x07, 0x28, None),
)

BY_NAME: dict[str, KeySpec] = {spec.name: spec for spec in KEY_TABLE}
BY_SAM_INDEX: dict[int, KeySpec] = {s.sam_index: s for s in KEY_TABLE if s.sam_index is not None}


def spec(name: str) -> KeySpec:
    """The row of ``name`` (e.g. ``"UK1DF03"``)."""
    return BY_NAME[name]


def maintenance_key(df: str) -> KeySpec:
    """The STK key whose session key protects secure messaging in ``df``."""
    return next(s for s in KEY_TABLE if s.df == df and s.use is KeyUse.MAINTENANCE)
