"""SM2 signatures (GB/T 32918) on the recommended curve: the primitive tier for the public-key side.

Certificates of the national root (DECISIONS.md §18) and the SAM's signature of a visit record
(DECISIONS.md §19) are SM2 signatures with SM3.  The curve arithmetic comes from the maintained
``gmalg`` package, wrapped here only, so that a change in the library breaks exactly one place
(the same rule as :mod:`healthcard.keys.primitives`).  This module fixes the byte forms the card
uses:

* a private key is the 32-byte big-endian scalar ``d``, ``1 <= d <= n - 2``;
* a public key is 64 bytes ``X ‖ Y`` (uncompressed, without the ``04`` prefix);
* a signature is 64 bytes ``r ‖ s``, each 32 bytes big-endian;
* the signed value is ``e = SM3(Z_A ‖ M)`` with ``Z_A`` built from the signer's user id and
  public key (GB/T 32918.2 §6.1); the default user id is the one of GB/T 35276.

Key material never appears in a message.
"""

from __future__ import annotations

from collections.abc import Callable

import gmalg

from healthcard.errors import InvalidValue

#: GB/T 35276 (GM/T 0009) default user id ``"1234567812345678"``
DEFAULT_UID = b"1234567812345678"

PRIVATE_KEY_LENGTH = 32
PUBLIC_KEY_LENGTH = 64
SIGNATURE_LENGTH = 64

#: the field prime ``p`` and group order ``n`` of the recommended curve (GB/T 32918.5 §3)
P = 0xFFFFFFFE_FFFFFFFF_FFFFFFFF_FFFFFFFF_FFFFFFFF_00000000_FFFFFFFF_FFFFFFFF
N = 0xFFFFFFFE_FFFFFFFF_FFFFFFFF_FFFFFFFF_7203DF6B_21C6052B_53BBF409_39D54123

#: a random source in this project's style: ``rng(count)`` returns ``count`` random bytes
RandomBytes = Callable[[int], bytes]

# An rng that never yields a usable number would make gmalg's rejection loop spin forever.
_MAX_DRAWS = 256


def _bits_from(rng: RandomBytes) -> Callable[[int], int]:
    """Adapt a byte source to gmalg's ``rnd_fn(bits) -> int``."""
    draws = 0

    def rnd_fn(bits: int) -> int:
        nonlocal draws
        draws += 1
        if draws > _MAX_DRAWS:
            raise InvalidValue("rng", f"no usable random number in {_MAX_DRAWS} draws")
        size = (bits + 7) // 8
        chunk = rng(size)
        if len(chunk) != size:
            raise InvalidValue("rng", f"returned {len(chunk)} bytes, {size} were asked for")
        return int.from_bytes(chunk, "big") >> (8 * size - bits)

    return rnd_fn


def _check_private(private: bytes) -> None:
    if len(private) != PRIVATE_KEY_LENGTH:
        raise InvalidValue("private", f"an SM2 private key is {PRIVATE_KEY_LENGTH} bytes, not {len(private)}")
    if not 1 <= int.from_bytes(private, "big") <= N - 2:
        raise InvalidValue("private", "an SM2 private key must lie in [1, n-2] (GB/T 32918.1 §6.1)")


def _check_uid(uid: bytes) -> None:
    # ENTL_A is two bytes of bit length (GB/T 32918.2 §5.5); gmalg also refuses an empty id.
    if not 1 <= len(uid) <= 8191:
        raise InvalidValue("uid", f"a user id is 1 to 8191 bytes, not {len(uid)}")


def _point(public: bytes) -> bytes:
    return b"\x04" + public


def generate_keypair(rng: RandomBytes | None = None) -> tuple[bytes, bytes]:
    """A fresh key pair ``(private 32 B, public 64 B X‖Y)`` (GB/T 32918.1 §6.1).

    ``rng(count)`` gives the random bytes (default: the operating system's, via gmalg's
    ``secrets``); a test passes a seeded one to get a reproducible key."""
    rnd_fn = _bits_from(rng) if rng is not None else None
    sk, pk = gmalg.SM2(rnd_fn=rnd_fn).generate_keypair()
    private = bytes(sk).rjust(PRIVATE_KEY_LENGTH, b"\x00")
    public = bytes(pk)[1:]
    return private, public


def public_key(private: bytes) -> bytes:
    """The 64-byte public key ``X ‖ Y`` of a private key (``P = [d]G``)."""
    _check_private(private)
    return bytes(gmalg.SM2().generate_pk(private))[1:]


def is_valid_public_key(public: bytes) -> bool:
    """True when ``public`` is 64 bytes ``X ‖ Y`` of a point of the curve other than the point at
    infinity, with both coordinates below ``p`` (GB/T 32918.1 §6.2 public-key validation)."""
    if len(public) != PUBLIC_KEY_LENGTH:
        return False
    if int.from_bytes(public[:32], "big") >= P or int.from_bytes(public[32:], "big") >= P:
        return False
    try:
        return bool(gmalg.SM2().verify_pk(_point(public)))
    except (ArithmeticError, ValueError, gmalg.errors.GMError):
        return False


def sign(
    private: bytes, message: bytes, uid: bytes = DEFAULT_UID, *, rng: RandomBytes | None = None
) -> bytes:
    """The 64-byte SM2 signature ``r ‖ s`` of ``message`` (GB/T 32918.2 §6.1: the signer hashes
    ``Z_A ‖ M`` with SM3 itself, so ``message`` is the message, not its digest).

    ``rng`` supplies the per-signature random ``k`` (default: the operating system's); only a
    known-answer test should fix it."""
    _check_private(private)
    _check_uid(uid)
    rnd_fn = _bits_from(rng) if rng is not None else None
    r, s = gmalg.SM2(private, uid, rnd_fn=rnd_fn).sign(message)
    return bytes(r).rjust(32, b"\x00") + bytes(s).rjust(32, b"\x00")


def verify(public: bytes, message: bytes, signature: bytes, uid: bytes = DEFAULT_UID) -> bool:
    """True when ``signature`` (``r ‖ s``) is a valid SM2 signature of ``message`` under
    ``public`` and ``uid`` (GB/T 32918.2 §7.1).

    A wrong signature, a signature or key of the wrong length, or a key that is not a point
    gives False, never an exception; only an unusable ``uid`` raises :class:`InvalidValue`."""
    _check_uid(uid)
    if len(public) != PUBLIC_KEY_LENGTH or len(signature) != SIGNATURE_LENGTH:
        return False
    try:
        return bool(gmalg.SM2(None, uid, _point(public)).verify(message, signature[:32], signature[32:]))
    except (ArithmeticError, ValueError, gmalg.errors.GMError):
        return False
