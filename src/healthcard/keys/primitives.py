"""Raw block-cipher and hash primitives, all from the ``cryptography`` package.

This is the lower of the two crypto tiers (STYLE.md habit 5): ECB over whole blocks, SM3, and
the one wrapper that expands a 2-key 3DES key to 3-key form, so that a change in the library
breaks exactly one place.  Nothing here pads, authenticates or hides errors: use
:mod:`healthcard.keys.recipes` for that.
"""

from __future__ import annotations

import enum
import hmac
from typing import Protocol

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


class Algorithm(enum.IntEnum):
    """Symmetric algorithm of a card key; the value is the byte the card protocol uses
    (trailing byte of EXTERNAL AUTHENTICATE data, DECISIONS.md §14)."""

    SM4 = 0x01  # national default, 16-byte blocks
    TDES = 0x02  # 2-key 3DES for old terminals, 8-byte blocks
    SM2 = 0x03  # asymmetric: a SAM's signing key (not a block cipher)

    @property
    def block_size(self) -> int:
        if self is Algorithm.SM2:
            raise ValueError("SM2 is not a block cipher")
        return 16 if self is Algorithm.SM4 else 8


def _block_cipher(algorithm: Algorithm, key: bytes) -> algorithms.SM4 | TripleDES:
    if len(key) != 16:
        raise ValueError("key must be 16 bytes")
    if algorithm is Algorithm.SM4:
        return algorithms.SM4(key)
    if algorithm is Algorithm.TDES:
        # 2-key 3DES (K1 K2) expanded to 3-key form (K1 K2 K1): the only place this happens.
        return TripleDES(key + key[:8])
    raise ValueError(f"{algorithm.name} is not a block cipher")


def _cipher(algorithm: Algorithm, key: bytes) -> Cipher[modes.ECB]:
    return Cipher(_block_cipher(algorithm, key), modes.ECB())


class EcbEncryptor(Protocol):
    def update(self, data: bytes) -> bytes: ...


def ecb_encryptor(algorithm: Algorithm, key: bytes) -> EcbEncryptor:
    """A reusable ECB encryption context: ``update`` on whole blocks returns their ciphertext at
    once (ECB keeps no state between blocks), so one context serves many derivations."""
    return _cipher(algorithm, key).encryptor()


def ecb_encrypt(algorithm: Algorithm, key: bytes, data: bytes) -> bytes:
    """Encrypt whole blocks in ECB mode."""
    if len(data) % algorithm.block_size:
        raise ValueError("data is not a whole number of blocks")
    enc = _cipher(algorithm, key).encryptor()
    return enc.update(data) + enc.finalize()


def ecb_decrypt(algorithm: Algorithm, key: bytes, data: bytes) -> bytes:
    """Decrypt whole blocks in ECB mode."""
    if len(data) % algorithm.block_size:
        raise ValueError("data is not a whole number of blocks")
    dec = _cipher(algorithm, key).decryptor()
    return dec.update(data) + dec.finalize()


def cbc_encrypt(algorithm: Algorithm, key: bytes, iv: bytes, data: bytes) -> bytes:
    """Encrypt whole blocks in CBC mode (used for CBC-MAC)."""
    if len(data) % algorithm.block_size or len(iv) != algorithm.block_size:
        raise ValueError("data or IV is not a whole number of blocks")
    enc = Cipher(_block_cipher(algorithm, key), modes.CBC(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def sm3(data: bytes) -> bytes:
    """SM3 digest (GB/T 32905), 32 bytes."""
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize()


def equal(a: bytes, b: bytes) -> bool:
    """Constant-time comparison."""
    return hmac.compare_digest(a, b)
