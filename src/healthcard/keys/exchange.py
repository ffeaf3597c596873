"""Key exchange between key centres: a key set wrapped under a transport key (ZMK).

The national key centre sends a province its level-2 set; a province sends a city its level-3
set.  Keys travel only wrapped: each key as ``SM4_ECB(TK, key)`` with the check value of the
plain key, the whole file authenticated by an SM4 CBC-MAC under ``D(TK, "EXCHGMAC")`` (a key
of its own, so the wrapping key never MACs).  The transport key itself is made by a key ceremony
(:mod:`healthcard.keys.ceremony`) on both sides; its check value travels with the export so that
a wrong transport key is named as such before anything is unwrapped.  An import checks every
key's KCV and returns nothing at all unless everything checks.
"""

from __future__ import annotations

import json
from typing import Any

from healthcard.errors import InvalidValue
from healthcard.keys.keyset import KeySet, KeySetId
from healthcard.keys.primitives import Algorithm, ecb_decrypt, ecb_encrypt, equal
from healthcard.keys.recipes import diversify, key_check_value, mac

FORMAT = "healthcard-key-export/1"
_MAC_FACTOR = b"EXCHGMAC"


def _kcv(key: bytes, algorithm: Algorithm = Algorithm.SM4) -> str:
    return key_check_value(key, algorithm).hex().upper()


def _mac(transport: bytes, body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=True, separators=(",", ":")).encode()
    return mac(diversify(transport, _MAC_FACTOR), canonical).hex().upper()


def export_set(keyset: KeySet, transport: bytes, transport_name: str) -> dict[str, Any]:
    """The JSON document that carries ``keyset`` wrapped under ``transport``."""
    if len(transport) != 16:
        raise InvalidValue("transport_key", "a transport key is 16 bytes")
    body: dict[str, Any] = {
        "format": FORMAT,
        "key_set": str(keyset.id),
        "algorithm": keyset.algorithm.name,
        "transport": {"name": transport_name, "kcv": _kcv(transport)},
        "keys": {
            name: {
                "wrapped": ecb_encrypt(Algorithm.SM4, transport, value).hex().upper(),
                "kcv": _kcv(value, keyset.algorithm),
            }
            for name, value in keyset.keys.items()
        },
    }
    body["mac"] = _mac(transport, body)
    return body


def import_set(doc: dict[str, Any], transport: bytes) -> KeySet:
    """Unwrap an export; every check passes or nothing is returned."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InvalidValue("export", f"not a key export (format {FORMAT!r} expected)")
    try:
        set_id = KeySetId.parse(str(doc["key_set"]))
        algorithm = Algorithm[str(doc["algorithm"])]
        sent_kcv = str(doc["transport"]["kcv"])
        entries = dict(doc["keys"])
        received_mac = bytes.fromhex(str(doc["mac"]))
    except (KeyError, TypeError, ValueError):
        raise InvalidValue("export", "the export is incomplete or damaged") from None
    if not equal(sent_kcv.encode(), _kcv(transport).encode()):
        raise InvalidValue(
            "transport_key",
            f"this export was wrapped under the transport key with check value {sent_kcv}, "
            f"not the one given (check value {_kcv(transport)})",
        )
    body = {k: v for k, v in doc.items() if k != "mac"}
    if not equal(bytes.fromhex(_mac(transport, body)), received_mac):
        raise InvalidValue("export", "the export's MAC does not verify: it was altered in transit")
    keys: dict[str, bytes] = {}
    for name, entry in sorted(entries.items()):
        try:
            value = ecb_decrypt(Algorithm.SM4, transport, bytes.fromhex(entry["wrapped"]))
        except (KeyError, TypeError, ValueError):
            raise InvalidValue(f"export/{name}", "the wrapped key is damaged") from None
        if not equal(_kcv(value, algorithm).encode(), str(entry.get("kcv", "")).upper().encode()):
            raise InvalidValue(f"export/{name}", "the key's check value does not match after unwrapping")
        keys[name] = value
    return KeySet(set_id, algorithm, keys)
