"""A card's own key set, derived from the national level-1 master keys (DECISIONS.md §11–12).

``demo_master_keys`` are fixed, public demo values for ``make run`` and the tests — never for a
real card.  The key ceremony, key store and HSM come with the key-hierarchy issue.
"""

from __future__ import annotations

from healthcard.keys.primitives import Algorithm
from healthcard.keys.recipes import card_key, diversify
from healthcard.keys.table import KEY_TABLE, Depth

#: public demo root from which the demo master keys are diversified; never a production key
DEMO_ROOT = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")


def demo_master_keys(algorithm: Algorithm = Algorithm.SM4) -> dict[int, bytes]:
    """Demo level-1 master keys by SAM key index."""
    return {
        s.sam_index: diversify(DEMO_ROOT, f"HCDEMO{s.sam_index:02X}".encode("ascii"), algorithm)
        for s in KEY_TABLE
        if s.sam_index is not None
    }


def demo_transport_key(serial: bytes, algorithm: Algorithm = Algorithm.SM4) -> bytes:
    """The demo chip transport key: the factory's transport master diversified by serial."""
    return diversify(diversify(DEMO_ROOT, b"TRANSPRT", algorithm), serial, algorithm)


def derive_card_keys(
    masters: dict[int, bytes],
    serial: bytes,
    province: bytes,
    algorithm: Algorithm = Algorithm.SM4,
) -> dict[str, bytes]:
    """Every key of the card's key table, by key name, for the chip ``serial``."""
    return {
        s.name: card_key(
            masters[s.sam_index], serial, province if s.depth is Depth.PROVINCE_CARD else None, algorithm
        )
        for s in KEY_TABLE
        if s.sam_index is not None
    }
