"""Checks of free text shared by the platform's services: one rule for every column of text."""

from __future__ import annotations

from healthcard.errors import InvalidValue


def text(field: str, value: object, limit: int, *, required: bool = True) -> str:
    """Stripped text of at most ``limit`` characters (the column's width), no control characters;
    ``required``: not empty."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidValue(field, f"expected text, got {type(value).__name__}")
    stripped = value.strip()
    if required and not stripped:
        raise InvalidValue(field, "is required")
    if len(stripped) > limit:
        raise InvalidValue(field, f"{len(stripped)} characters, at most {limit}")
    if any(ord(ch) < 0x20 for ch in stripped):
        raise InvalidValue(field, "control characters are not allowed")
    return stripped
