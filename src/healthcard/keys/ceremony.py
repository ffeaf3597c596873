"""Key ceremony: a secret made from custodians' components, each with a key check value.

A key ceremony never shows the secret itself.  It shows each custodian one **component**
(16 bytes, with its KCV = the first 3 bytes of ``SM4(component, 0^16)``), once; later the
custodians re-enter their components, each checked against its KCV, and the secret is
recombined inside the machine:

* ``threshold == components`` (the default, the classic dual/triple control): the secret is
  the XOR of all components — every custodian must be present;
* ``threshold < components``: the components are Shamir shares (``pycryptodome``'s
  ``Shamir``, GF(2^128)), written ``index-hex``, and any ``threshold`` of them rebuild the
  secret — so a custodian who left or lost a component does not lose the national keys.

The national root (:func:`healthcard.keys.keyset.national_set`) and the transport keys that
protect key exports (:mod:`healthcard.keys.exchange`) are both made this way.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from Crypto.Protocol.SecretSharing import Shamir

from healthcard.errors import InvalidValue
from healthcard.keys.primitives import Algorithm, equal
from healthcard.keys.recipes import key_check_value

KEY_LENGTH = 16
MAX_COMPONENTS = 9


@dataclass(frozen=True)
class Component:
    """One custodian's component (``index`` 1..n); ``repr`` hides the value."""

    index: int
    value: bytes = field(repr=False)

    @property
    def kcv(self) -> str:
        """The component's check value: first 3 bytes of ``SM4(component, 0^16)``, hex."""
        return key_check_value(self.value, Algorithm.SM4).hex().upper()

    def text(self) -> str:
        """How it is shown to its custodian and typed back: ``<index>-<32 hex digits>``."""
        return f"{self.index}-{self.value.hex().upper()}"


def _check_counts(components: int, threshold: int) -> None:
    if not 2 <= components <= MAX_COMPONENTS:
        raise InvalidValue("components", f"{components}: a ceremony has 2..{MAX_COMPONENTS} custodians")
    if not 2 <= threshold <= components:
        raise InvalidValue("threshold", f"{threshold}: between 2 and the number of components ({components})")


def _xor(blocks: Sequence[bytes]) -> bytes:
    out = bytearray(KEY_LENGTH)
    for block in blocks:
        for i, b in enumerate(block):
            out[i] ^= b
    return bytes(out)


def split(
    secret: bytes,
    components: int,
    threshold: int | None = None,
    rng: Callable[[int], bytes] = secrets.token_bytes,
) -> list[Component]:
    """Split ``secret`` (16 bytes) into ``components`` components, ``threshold`` of which rebuild it."""
    threshold = components if threshold is None else threshold
    _check_counts(components, threshold)
    if len(secret) != KEY_LENGTH:
        raise InvalidValue("secret", f"a ceremony secret is {KEY_LENGTH} bytes")
    if threshold == components:
        parts = [rng(KEY_LENGTH) for _ in range(components - 1)]
        parts.append(_xor([secret, *parts]))
        return [Component(i, p) for i, p in enumerate(parts, start=1)]
    return [
        Component(i, bytes(share)) for i, share in Shamir.split(threshold, components, secret, ssss=False)
    ]


def generate(
    components: int, threshold: int | None = None, rng: Callable[[int], bytes] = secrets.token_bytes
) -> tuple[bytes, list[Component]]:
    """A fresh random secret and its components."""
    threshold = components if threshold is None else threshold
    _check_counts(components, threshold)
    secret = rng(KEY_LENGTH)
    return secret, split(secret, components, threshold, rng)


def parse_component(text: str, kcv: str | None, position: int) -> Component:
    """A component typed back by its custodian: ``index-hex`` (or bare hex for the
    ``position``-th component), checked against the KCV the ceremony showed."""
    where = f"component {position}"
    raw = text.strip().replace(" ", "")
    index_text, sep, hex_text = raw.rpartition("-")
    index = position
    if sep:
        if not index_text.isdigit() or not 1 <= int(index_text) <= 255:
            raise InvalidValue(where, f"{index_text!r} is not a component number")
        index = int(index_text)
    try:
        value = bytes.fromhex(hex_text)
    except ValueError:
        raise InvalidValue(where, "not hexadecimal") from None
    if len(value) != KEY_LENGTH:
        raise InvalidValue(where, f"{len(value)} bytes, a component is {KEY_LENGTH} (32 hex digits)")
    component = Component(index, value)
    if kcv is not None:
        want = kcv.strip().upper()
        if len(want) != 6 or any(c not in "0123456789ABCDEF" for c in want):
            raise InvalidValue(f"{where} check value", f"{kcv!r} is not a 6-digit hex check value")
        if not equal(bytes.fromhex(want), bytes.fromhex(component.kcv)):
            raise InvalidValue(
                where, f"check value {component.kcv} does not match {want}: the component was mistyped"
            )
    return component


def combine(parts: Sequence[Component], components: int, threshold: int | None = None) -> bytes:
    """Rebuild the secret from components entered by the custodians."""
    threshold = components if threshold is None else threshold
    _check_counts(components, threshold)
    indexes = [c.index for c in parts]
    if len(set(indexes)) != len(indexes):
        raise InvalidValue("components", "the same component was entered twice")
    if any(not 1 <= i <= components for i in indexes):
        raise InvalidValue("components", f"component numbers run from 1 to {components}")
    if len(parts) < threshold:
        raise InvalidValue("components", f"{len(parts)} entered, {threshold} needed")
    if threshold == components:
        return _xor([c.value for c in parts])
    return bytes(Shamir.combine([(c.index, c.value) for c in parts[:threshold]], ssss=False))
