"""Card cryptography recipes: diversification, session keys, cryptograms, MACs, SM wrapping.

The upper crypto tier.  Each function cites the decision of ``shared/spec/DECISIONS.md`` it
implements; the card, the SAM and the issuer all call these, so the three always agree.
"""

from __future__ import annotations

from healthcard.errors import CryptoError
from healthcard.keys.primitives import (
    Algorithm,
    EcbEncryptor,
    cbc_encrypt,
    ecb_decrypt,
    ecb_encrypt,
    ecb_encryptor,
    equal,
)

__all__ = ["equal"]

#: the fixed plaintext the national SDK sends for read-key authentication (CARD-SPEC.md §6.4)
READ_AUTH_PLAINTEXT = bytes.fromhex("1122334455667788")


_NOT = bytes(b ^ 0xFF for b in range(256))  # a translation table: every byte inverted


def _not(data: bytes) -> bytes:
    return bytes(data).translate(_NOT)


def diversify(key: bytes, factor: bytes, algorithm: Algorithm = Algorithm.SM4) -> bytes:
    """``D(K, f) = E_K(f ‖ NOT f)`` for an 8-byte factor (DECISIONS.md §10)."""
    if len(factor) != 8:
        raise ValueError("diversification factor must be 8 bytes")
    return ecb_encrypt(algorithm, key, factor + _not(factor))


class Diversifier:
    """:func:`diversify` under one key, its cipher context built once: for a key that
    diversifies many factors, such as a chip's transport key, which makes the session key of
    every WRITE KEY of a personalisation (``D(TK, challenge)``).  The same bytes as
    ``diversify(key, factor, algorithm)``; one context serves one thread."""

    def __init__(self, key: bytes, algorithm: Algorithm = Algorithm.SM4) -> None:
        self._context = ecb_encryptor(algorithm, key)

    def __repr__(self) -> str:
        return "Diversifier(<key hidden>)"

    def diversify(self, factor: bytes) -> bytes:
        if len(factor) != 8:
            raise ValueError("diversification factor must be 8 bytes")
        return self._context.update(factor + _not(factor))


def province_factor(city_code: str) -> bytes:
    """ASCII of the 2-digit province code + ``"000000"`` (DECISIONS.md §11, CARD-SPEC.md §6.5)."""
    if len(city_code) < 2 or not city_code[:2].isdigit():
        raise ValueError("city code must start with two digits")
    return (city_code[:2] + "000000").encode("ascii")


def card_key(
    master: bytes,
    chip_serial: bytes,
    province: bytes | None,
    algorithm: Algorithm = Algorithm.SM4,
    city: bytes | None = None,
) -> bytes:
    """A card's key from a level-1 master key: ``D(D(K1, province), serial)`` or, for keys
    diversified by card only, ``D(K1, serial)``; with the optional city level 3,
    ``D(D(D(K1, province), city), serial)`` (DECISIONS.md §11)."""
    key = diversify(master, province, algorithm) if province is not None else master
    if city is not None:
        key = diversify(key, city, algorithm)
    return diversify(key, chip_serial, algorithm)


def session_key(key: bytes, challenge: bytes, algorithm: Algorithm = Algorithm.SM4) -> bytes:
    """``Ks = D(Kc, R)`` with ``R`` the card's last 8-byte challenge (DECISIONS.md §13)."""
    return diversify(key, challenge, algorithm)


def fold(block16: bytes) -> bytes:
    """``C[0:8] XOR C[8:16]``: the SAM returns ``C``, the terminal sends the fold."""
    return bytes(a ^ b for a, b in zip(block16[:8], block16[8:16], strict=True))


def cryptogram(ks: bytes, plaintext: bytes, algorithm: Algorithm = Algorithm.SM4) -> bytes:
    """The 8-byte authentication cryptogram ``A`` of DECISIONS.md §14."""
    if len(plaintext) != 8:
        raise ValueError("authentication plaintext must be 8 bytes")
    return fold(ecb_encrypt(algorithm, ks, plaintext + bytes(8)))


def pad(data: bytes, block: int = 16) -> bytes:
    """ISO/IEC 9797-1 padding method 2: ``80`` then ``00`` to a block multiple (always adds)."""
    padded = data + b"\x80"
    return padded + bytes(-len(padded) % block)


def unpad(data: bytes) -> bytes:
    """Undo :func:`pad`; raises :class:`CryptoError` on malformed padding."""
    stripped = data.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80:
        raise CryptoError("bad padding")
    return stripped[:-1]


def _sm4_cbc_mac(context: EcbEncryptor, data: bytes) -> bytes:
    """The last block of SM4-CBC with a zero IV over padded ``data``, chained here through an ECB
    context that the caller uses for something else too (one cipher context instead of two)."""
    chain = 0
    for start in range(0, len(data), 16):
        block = (chain ^ int.from_bytes(data[start : start + 16], "big")).to_bytes(16, "big")
        chain = int.from_bytes(context.update(block), "big")
    return chain.to_bytes(16, "big")


def cbc_mac(key: bytes, data: bytes, algorithm: Algorithm = Algorithm.SM4, iv: bytes | None = None) -> bytes:
    """Full last block of a CBC-MAC over already padded data (zero IV unless given).

    For 3DES this is ISO 9797-1 algorithm 3 (retail MAC): single-DES CBC with the left key
    half, the last block finished with 3DES."""
    block = algorithm.block_size
    iv = bytes(block) if iv is None else iv
    if algorithm is Algorithm.SM4:
        return cbc_encrypt(algorithm, key, iv, data)[-block:]
    left, right = key[:8], key[8:]
    single = left + left  # K1 K1 K1 = single DES through the 3DES wrapper
    chained = cbc_encrypt(algorithm, single, iv, data)[-block:]
    # finish: decrypt with K2, encrypt with K1 (the retail-MAC output transformation)
    stage = ecb_decrypt(algorithm, right + right, chained)
    return ecb_encrypt(algorithm, single, stage)


def mac(key: bytes, data: bytes, algorithm: Algorithm = Algorithm.SM4, iv: bytes | None = None) -> bytes:
    """The 4-byte MAC of DECISIONS.md §15 over ``data`` (padded here, method 2)."""
    return cbc_mac(key, pad(data, algorithm.block_size), algorithm, iv)[:4]


def verify_mac(key: bytes, data: bytes, received: bytes, algorithm: Algorithm = Algorithm.SM4) -> None:
    """Constant-time check of a 4-byte MAC; raises an opaque :class:`CryptoError`."""
    if not equal(mac(key, data, algorithm), received):
        raise CryptoError("MAC check failed")


def sm_wrap(ks: bytes, header: bytes, payload: bytes, algorithm: Algorithm = Algorithm.SM4) -> bytes:
    """Secure-messaging body for a write (DECISIONS.md §16): ``E(L ‖ payload ‖ pad) ‖ MAC4``.

    ``header`` is ``CLA INS P1 P2`` of the command; Lc (ciphertext + 4) is computed here and
    covered by the MAC."""
    plain = pad(bytes([len(payload) & 0xFF]) + payload, algorithm.block_size)
    if algorithm is Algorithm.SM4:  # one ECB context encrypts and MACs (the same bytes, faster)
        context = ecb_encryptor(algorithm, ks)
        ciphertext = context.update(plain)
    else:
        context, ciphertext = None, ecb_encrypt(algorithm, ks, plain)
    lc = len(ciphertext) + 4
    if len(payload) > 255 or lc > 255:
        raise ValueError("payload too long for one secure-messaging block")
    if context is None:
        return ciphertext + mac(ks, header + bytes([lc]) + ciphertext, algorithm)
    return ciphertext + _sm4_cbc_mac(context, pad(header + bytes([lc]) + ciphertext))[:4]


def sm_unwrap(ks: bytes, header: bytes, body: bytes, algorithm: Algorithm = Algorithm.SM4) -> bytes:
    """Check and open a body made by :func:`sm_wrap`; returns the payload.

    Raises an opaque :class:`CryptoError` for a wrong MAC, padding or length."""
    block = algorithm.block_size
    if len(body) < block + 4 or (len(body) - 4) % block or len(body) > 255:
        raise CryptoError("secure-messaging body has a wrong length")
    ciphertext, received = body[:-4], body[-4:]
    verify_mac(ks, header + bytes([len(body)]) + ciphertext, received, algorithm)
    plain = unpad(ecb_decrypt(algorithm, ks, ciphertext))
    if not plain or plain[0] != len(plain) - 1:
        raise CryptoError("secure-messaging length byte does not match")
    return plain[1:]


def sm_mac_body(ks: bytes, header: bytes, data: bytes = b"", algorithm: Algorithm = Algorithm.SM4) -> bytes:
    """A MAC-only secure-messaging body: ``data ‖ MAC4`` where the MAC covers
    ``CLA INS P1 P2 Lc ‖ data`` (used by WRITE/ERASE RECORD of the DF03 index files)."""
    lc = len(data) + 4
    if lc > 255:
        raise ValueError("data too long for one secure-messaging block")
    return data + mac(ks, header + bytes([lc]) + data, algorithm)


def sm_check_mac(ks: bytes, header: bytes, body: bytes, algorithm: Algorithm = Algorithm.SM4) -> bytes:
    """Check a body made by :func:`sm_mac_body`; returns its data."""
    if not 4 <= len(body) <= 255:
        raise CryptoError("secure-messaging body has a wrong length")
    verify_mac(ks, header + bytes([len(body)]) + body[:-4], body[-4:], algorithm)
    return body[:-4]


def key_check_value(key: bytes, algorithm: Algorithm = Algorithm.SM4) -> bytes:
    """KCV: first 3 bytes of ``E_K(0…0)``."""
    return ecb_encrypt(algorithm, key, bytes(algorithm.block_size))[:3]
