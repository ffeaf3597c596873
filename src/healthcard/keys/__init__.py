"""Keys and card cryptography: pure, no database, network or web (ARCHITECTURE.md §2)."""

from healthcard.keys.primitives import Algorithm, sm3
from healthcard.keys.recipes import (
    card_key,
    cryptogram,
    diversify,
    fold,
    key_check_value,
    mac,
    pad,
    province_factor,
    session_key,
    sm_check_mac,
    sm_mac_body,
    sm_unwrap,
    sm_wrap,
    unpad,
    verify_mac,
)
from healthcard.keys.table import KEY_TABLE, Depth, KeySpec, KeyUse

__all__ = [
    "KEY_TABLE",
    "Algorithm",
    "Depth",
    "KeySpec",
    "KeyUse",
    "card_key",
    "cryptogram",
    "diversify",
    "fold",
    "key_check_value",
    "mac",
    "pad",
    "province_factor",
    "session_key",
    "sm3",
    "sm_check_mac",
    "sm_mac_body",
    "sm_unwrap",
    "sm_wrap",
    "unpad",
    "verify_mac",
]
