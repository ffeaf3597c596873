"""The electronic health card (电子健康卡) ID: the QR-code successor of the physical card
(CARD-SPEC.md §9.1, vector in ``tests/vectors/ehealth-id.txt``).

1. ``factor8 = XOR`` of the four 8-byte groups of the 32-byte master index id (主索引ID);
2. ``user_key = D(security_root_key, factor8)`` — the physical card's diversification;
3. ``EHC_ID = SM4_ECB(user_key, ASCII(id_type + id_number)`` zero-padded to 16n``), hex upper.
"""

from __future__ import annotations

from healthcard.errors import InvalidValue
from healthcard.keys.primitives import Algorithm, ecb_encrypt
from healthcard.keys.recipes import diversify


def master_index_factor(master_index: bytes) -> bytes:
    """The 8-byte factor of a 32-byte master index id: the XOR of its four 8-byte groups."""
    if len(master_index) != 32:
        raise InvalidValue(
            "master_index", f"{len(master_index)} bytes, a master index id is 32 (64 hex digits)"
        )
    out = bytearray(8)
    for i in range(0, 32, 8):
        for j, b in enumerate(master_index[i : i + 8]):
            out[j] ^= b
    return bytes(out)


def user_key(security_root: bytes, master_index: bytes) -> bytes:
    """The resident's e-card key ``D(security_root, factor8)``."""
    if len(security_root) != 16:
        raise InvalidValue("root_key", "the security root key is 16 bytes (32 hex digits)")
    return diversify(security_root, master_index_factor(master_index))


def ehc_id(security_root: bytes, master_index: bytes, id_type: str, id_number: str) -> str:
    """The electronic health card ID (64 hex digits for an 18-character citizen ID)."""
    if len(id_type) != 2 or not id_type.isdigit():
        raise InvalidValue("id_type", f"{id_type!r}: an ID type is 2 digits (01 居民身份证)")
    if not id_number or not id_number.isascii() or not id_number.isalnum():
        raise InvalidValue("id_number", "an ID number is letters and digits")
    plain = (id_type + id_number).encode("ascii")
    plain += bytes(-len(plain) % 16)
    return ecb_encrypt(Algorithm.SM4, user_key(security_root, master_index), plain).hex().upper()
