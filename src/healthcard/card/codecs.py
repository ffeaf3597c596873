"""The three card codings of CARD-SPEC.md §3.2 / §4.

* ``ans`` — GBK text, left-aligned, padded with ``00``;
* ``cn``  — compressed numeric: BCD, left-aligned, padded with ``F`` nibbles (a ``.`` inside a
  number is the nibble ``A``, CARD-SPEC.md §3.2 GUESS);
* ``b``   — raw bytes, padded with ``00``.

Encoding a value that does not fit raises :class:`~healthcard.errors.EncodingError` naming the
data item; nothing is written anywhere (the callers encode before they send).
"""

from __future__ import annotations

import datetime as dt

from healthcard.errors import EncodingError


def encode_ans(item: str, value: str, length: int) -> bytes:
    try:
        raw = value.encode("gbk")
    except UnicodeEncodeError as exc:
        bad = value[exc.start : exc.end]
        raise EncodingError(item, f"character {bad!r} cannot be encoded in GBK") from None
    if b"\x00" in raw:
        raise EncodingError(item, "text must not contain NUL")
    if len(raw) > length:
        raise EncodingError(item, f"{len(raw)} bytes in GBK, the field holds {length}")
    return raw + bytes(length - len(raw))


def decode_ans(raw: bytes) -> str:
    text = raw.split(b"\x00", 1)[0]
    if text and set(text) == {0xFF}:
        return ""
    return text.decode("gbk", errors="replace")


_NIBBLE = {**{str(d): d for d in range(10)}, ".": 0xA}


def encode_cn(item: str, value: str, length: int) -> bytes:
    nibbles = []
    for ch in value:
        if ch not in _NIBBLE:
            raise EncodingError(item, f"{ch!r} is not a digit (cn holds digits only)")
        nibbles.append(_NIBBLE[ch])
    if len(nibbles) > 2 * length:
        raise EncodingError(item, f"{len(nibbles)} digits, the field holds {2 * length}")
    nibbles += [0xF] * (2 * length - len(nibbles))
    return bytes((nibbles[i] << 4) | nibbles[i + 1] for i in range(0, len(nibbles), 2))


def decode_cn(raw: bytes) -> str:
    out: list[str] = []
    for byte in raw:
        for nib in (byte >> 4, byte & 0x0F):
            if nib == 0xF:
                return "".join(out)
            out.append("." if nib == 0xA else str(nib) if nib < 10 else "?")
    return "".join(out)


def encode_b(item: str, value: bytes, length: int) -> bytes:
    if len(value) > length:
        raise EncodingError(item, f"{len(value)} bytes, the field holds {length}")
    return bytes(value) + bytes(length - len(value))


def encode(item: str, coding: str, value: str | bytes | int, length: int) -> bytes:
    """Encode ``value`` for a data item. ``b`` items take bytes, or an int for one-byte codes,
    or a hex string."""
    if coding == "ans":
        if not isinstance(value, str):
            raise EncodingError(item, "ans items take text")
        return encode_ans(item, value, length)
    if coding == "cn":
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise EncodingError(item, "cn items take a digit string")
        return encode_cn(item, value, length)
    if coding == "b":
        if isinstance(value, int) and not isinstance(value, bool):
            if not 0 <= value <= 0xFF or length != 1:
                raise EncodingError(item, "an integer fits only a one-byte b item, 0..255")
            return bytes([value])
        if isinstance(value, str):
            try:
                value = bytes.fromhex(value)
            except ValueError:
                raise EncodingError(item, "b items take bytes or hex text") from None
        if not isinstance(value, bytes):
            raise EncodingError(item, "b items take bytes, hex text or a one-byte integer")
        return encode_b(item, value, length)
    raise EncodingError(item, f"unknown coding {coding!r}")


def decode(coding: str, raw: bytes) -> str:
    """Decode to text: ans → text, cn → digits (F-trimmed), b → upper-case hex."""
    if coding == "ans":
        return decode_ans(raw)
    if coding == "cn":
        return decode_cn(raw)
    return raw.hex().upper()


def parse_date(item: str, digits: str) -> dt.date | None:
    """``YYYYMMDD`` → date; empty → None."""
    if not digits:
        return None
    if len(digits) != 8 or not digits.isdigit():
        raise EncodingError(item, f"{digits!r} is not a YYYYMMDD date")
    try:
        return dt.datetime.strptime(digits, "%Y%m%d").date()
    except ValueError:
        raise EncodingError(item, f"{digits!r} is not a YYYYMMDD date") from None


def parse_datetime(item: str, digits: str) -> dt.datetime | None:
    """``YYYYMMDDhhmmss`` → naive local date-time; empty → None."""
    if not digits:
        return None
    if len(digits) != 14 or not digits.isdigit():
        raise EncodingError(item, f"{digits!r} is not a YYYYMMDDhhmmss date-time")
    try:
        return dt.datetime.strptime(digits, "%Y%m%d%H%M%S")
    except ValueError:
        raise EncodingError(item, f"{digits!r} is not a YYYYMMDDhhmmss date-time") from None
