"""Answer-to-reset: built from the chip serial, parsed back for the diversification factor.

DECISIONS.md §2: the ATR carries the 8-byte chip serial as its last 8 historical bytes.  Our
ATR: ``3B 8E 80 01 | 80 73 00 00 C0 | 48 <serial 8> | TCK`` — T=0 and T=1 offered, 14
historical bytes in compact-TLV (card capabilities: command chaining and extended Lc/Le;
tag 4 "card issuer's data" holding the serial), TCK as T=1 requires.
"""

from __future__ import annotations

from functools import reduce


def build_atr(serial: bytes) -> bytes:
    if len(serial) != 8:
        raise ValueError("chip serial must be 8 bytes")
    historical = bytes.fromhex("80730000C048") + serial
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


def chip_serial(atr: bytes) -> bytes:
    """The card diversification factor: the last 8 historical bytes (DECISIONS.md §2)."""
    hist = historical_bytes(atr)
    if len(hist) < 8:
        raise ValueError("ATR carries no 8-byte chip serial")
    return hist[-8:]
