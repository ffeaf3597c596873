"""Answer-to-reset: built from the chip serial, parsed back for the diversification factor.

DECISIONS.md §2: the ATR carries the 8-byte chip serial as its last 8 historical bytes.  Our
ATR: ``3B 8D 80 01 | 80 | 52 <alg> <kv> | 48 <serial 8> | TCK`` (a SAM: ``53 <alg> <kv> <prev>``)
— T=0 and T=1 offered, historical bytes in compact-TLV: tag 5 "card issuer's data" carries the
**key info** a terminal needs before its first authentication (DECISIONS.md §17) — the
algorithm of the card's keys (01 SM4, 02 3DES) and their key-version byte (bits 1–7: the
version, bit 8: the two-level keys include the optional city level 3); a SAM announces its
current national key version and the previous one it still holds (00: none).  Tag 4 holds the
serial (the diversification factor), TCK as T=1 requires.  The 15-byte limit of historical
bytes leaves no room for a card-capabilities object: extended Lc/Le is a reader setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce

#: bit 8 of the key-version byte: the card's two-level keys include the city level 3
CITY_LEVEL = 0x80


@dataclass(frozen=True)
class KeyInfo:
    """What the ATR says of the keys: algorithm byte, version, city level, and for a SAM the
    previous version it still holds."""

    algorithm: int
    version: int
    city_level: bool = False
    previous: int | None = None  # SAMs only

    def __str__(self) -> str:
        name = {0x01: "SM4", 0x02: "3DES"}.get(self.algorithm, f"algorithm {self.algorithm:02X}")
        text = f"{name} keys v{self.version}" + (" with city level" if self.city_level else "")
        return text + (f" (and v{self.previous})" if self.previous else "")

    @property
    def version_byte(self) -> int:
        """The key-version byte (in the ATR and in every WRITE KEY record): bits 1–7 the version,
        bit 8 the city level."""
        return (self.version & 0x7F) | (CITY_LEVEL if self.city_level else 0)

    @classmethod
    def from_version_byte(cls, algorithm: int, byte: int, previous: int | None = None) -> KeyInfo:
        return cls(algorithm, byte & 0x7F, bool(byte & CITY_LEVEL), previous)

    def to_bytes(self, sam: bool = False) -> bytes:
        body = bytes([self.algorithm, self.version_byte]) + (bytes([self.previous or 0]) if sam else b"")
        return bytes([0x50 | len(body)]) + body


def build_atr(serial: bytes, key_info: KeyInfo | None = None, sam: bool = False) -> bytes:
    if len(serial) != 8:
        raise ValueError("chip serial must be 8 bytes")
    info = (key_info or KeyInfo(0x01, 0)).to_bytes(sam)
    historical = b"\x80" + info + b"\x48" + serial
    body = bytes([0x80 | len(historical), 0x80, 0x01]) + historical
    return b"\x3b" + body + bytes([reduce(lambda a, b: a ^ b, body, 0)])


def historical_bytes(atr: bytes) -> bytes:
    """The historical bytes of any ATR (ISO/IEC 7816-3 §8.2)."""
    if len(atr) < 2:
        raise ValueError("ATR too short")
    t0 = atr[1]
    count = t0 & 0x0F
    i, y, tck = 2, t0 >> 4, False
    while True:
        i += bin(y).count("1")  # TAi, TBi, TCi, TDi present per bits of Y
        if i > len(atr):
            raise ValueError("ATR too short for its interface bytes")
        if not y & 0x8:
            break
        td = atr[i - 1]
        tck = tck or (td & 0x0F) != 0
        y = td >> 4
    end = len(atr) - (1 if tck else 0)
    hist = atr[i : i + count]
    if len(hist) != count or i + count > end:
        raise ValueError("ATR shorter than its historical bytes")
    return hist


def key_info(atr: bytes) -> KeyInfo:
    """The key info of the historical bytes (tag 5); version 0 when the ATR carries none."""
    hist = historical_bytes(atr)
    i = 1 if hist[:1] == b"\x80" else len(hist)
    while i < len(hist) - 8:
        tag, length = hist[i] >> 4, hist[i] & 0x0F
        value = hist[i + 1 : i + 1 + length]
        if tag == 5 and length in (2, 3):
            return KeyInfo.from_version_byte(value[0], value[1], (value[2] or None) if length == 3 else None)
        i += 1 + length
    return KeyInfo(0x01, 0)


def chip_serial(atr: bytes) -> bytes:
    """The card diversification factor: the last 8 historical bytes (DECISIONS.md §2)."""
    hist = historical_bytes(atr)
    if len(hist) < 8:
        raise ValueError("ATR carries no 8-byte chip serial")
    return hist[-8:]
