"""SM2 signatures (``healthcard.keys.sm2``): the published known answer, round trips, tampering,
wrong keys and user ids, and the byte forms (32-byte private key, 64-byte X‖Y, 64-byte r‖s)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest

from healthcard.errors import InvalidValue
from healthcard.keys import sm2
from healthcard.keys.primitives import sm3

from .vectorfiles import records

CURVES = records("sm2.txt", "P", "A", "B", "N", "GX", "GY")
SIGNATURES = records(
    "sm2.txt", "PRIVATE_KEY", "PUBLIC_KEY", "UID_ASCII", "MESSAGE_ASCII", "Z_A", "E", "K", "SIGNATURE"
)
CURVE = {key: bytes.fromhex(value) for key, value in CURVES[0].items()}

MESSAGE = "居民健康卡 visit record".encode()


def _seeded(seed: int) -> Callable[[int], bytes]:
    generator = random.Random(seed)
    return generator.randbytes


def _flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    return data[:index] + bytes([data[index] ^ mask]) + data[index + 1 :]


@pytest.fixture(scope="module")
def keypair() -> tuple[bytes, bytes]:
    return sm2.generate_keypair()


@pytest.fixture(scope="module")
def other_keypair() -> tuple[bytes, bytes]:
    return sm2.generate_keypair()


@pytest.fixture(scope="module")
def signature(keypair: tuple[bytes, bytes]) -> bytes:
    return sm2.sign(keypair[0], MESSAGE)


# --- the published vector ---------------------------------------------------------------------


def test_vector_file_is_read() -> None:
    assert len(CURVES) == 1
    assert len(SIGNATURES) == 1


def test_curve_constants_are_the_recommended_curve() -> None:
    assert int.from_bytes(CURVE["P"], "big") == sm2.P
    assert int.from_bytes(CURVE["N"], "big") == sm2.N
    assert sm2.DEFAULT_UID == b"1234567812345678"


@pytest.mark.parametrize("vector", SIGNATURES, ids=lambda v: v["MESSAGE_ASCII"])
def test_known_answer_public_key_and_z_a(vector: dict[str, str]) -> None:
    private, public = bytes.fromhex(vector["PRIVATE_KEY"]), bytes.fromhex(vector["PUBLIC_KEY"])
    assert sm2.public_key(private) == public
    assert sm2.is_valid_public_key(public)
    uid = vector["UID_ASCII"].encode("ascii")
    # Z_A per GB/T 32918.2 §5.5, from the published curve constants: pins what gmalg hashes
    entl = (8 * len(uid)).to_bytes(2, "big")
    z_a = sm3(entl + uid + CURVE["A"] + CURVE["B"] + CURVE["GX"] + CURVE["GY"] + public)
    assert z_a == bytes.fromhex(vector["Z_A"])
    assert sm3(z_a + vector["MESSAGE_ASCII"].encode("ascii")) == bytes.fromhex(vector["E"])


@pytest.mark.parametrize("vector", SIGNATURES, ids=lambda v: v["MESSAGE_ASCII"])
def test_known_answer_verifies(vector: dict[str, str]) -> None:
    public, signature = bytes.fromhex(vector["PUBLIC_KEY"]), bytes.fromhex(vector["SIGNATURE"])
    message, uid = vector["MESSAGE_ASCII"].encode("ascii"), vector["UID_ASCII"].encode("ascii")
    assert sm2.verify(public, message, signature, uid)
    assert sm2.verify(public, message, signature)  # the vector uses the default user id
    assert not sm2.verify(public, message + b".", signature, uid)
    assert not sm2.verify(public, message, signature, b"ALICE123@YAHOO.COM")
    assert not sm2.verify(public, message, _flip(signature, 63), uid)


@pytest.mark.parametrize("vector", SIGNATURES, ids=lambda v: v["MESSAGE_ASCII"])
def test_known_answer_sign_with_the_published_k(vector: dict[str, str]) -> None:
    k = bytes.fromhex(vector["K"])
    signature = sm2.sign(
        bytes.fromhex(vector["PRIVATE_KEY"]),
        vector["MESSAGE_ASCII"].encode("ascii"),
        vector["UID_ASCII"].encode("ascii"),
        rng=lambda count: k[:count],
    )
    assert signature == bytes.fromhex(vector["SIGNATURE"])


# --- keys -------------------------------------------------------------------------------------


def test_generated_keypair_forms(keypair: tuple[bytes, bytes]) -> None:
    private, public = keypair
    assert len(private) == 32 and len(public) == 64
    assert 1 <= int.from_bytes(private, "big") <= sm2.N - 2
    assert sm2.public_key(private) == public
    assert sm2.is_valid_public_key(public)


def test_generation_with_a_seeded_rng_is_reproducible() -> None:
    first, second = sm2.generate_keypair(_seeded(7)), sm2.generate_keypair(_seeded(7))
    assert first == second
    assert sm2.generate_keypair(_seeded(8)) != first
    assert sm2.public_key(first[0]) == first[1]


def test_generation_rejects_a_broken_rng() -> None:
    with pytest.raises(InvalidValue) as short:
        sm2.generate_keypair(lambda count: bytes(count - 1))
    assert short.value.field == "rng"
    # all-FF is above n - 2 every time: gmalg would draw forever
    with pytest.raises(InvalidValue) as stuck:
        sm2.generate_keypair(lambda count: b"\xff" * count)
    assert stuck.value.field == "rng"


def test_private_key_short_scalars_are_left_padded() -> None:
    private = (1).to_bytes(32, "big")
    public = sm2.public_key(private)
    assert public == CURVE["GX"] + CURVE["GY"]  # [1]G = G
    assert sm2.verify(public, MESSAGE, sm2.sign(private, MESSAGE))


@pytest.mark.parametrize(
    "private",
    [
        b"",
        bytes(30) + b"\x01",
        bytes(32),
        (sm2.N - 1).to_bytes(32, "big"),
        sm2.N.to_bytes(32, "big"),
        b"\xff" * 32,
    ],
    ids=["empty", "31-bytes", "zero", "n-1", "n", "all-ff"],
)
def test_a_bad_private_key_is_a_field_named_error(private: bytes) -> None:
    with pytest.raises(InvalidValue) as caught:
        sm2.public_key(private)
    assert caught.value.field == "private"
    with pytest.raises(InvalidValue) as signing:
        sm2.sign(private, MESSAGE)
    assert signing.value.field == "private"
    if private:
        assert private.hex() not in str(signing.value).lower()  # no key material in messages


def test_the_largest_private_key_n_minus_2_works() -> None:
    private = (sm2.N - 2).to_bytes(32, "big")
    public = sm2.public_key(private)
    assert sm2.verify(public, MESSAGE, sm2.sign(private, MESSAGE))


def test_public_key_validation() -> None:
    g = CURVE["GX"] + CURVE["GY"]
    assert sm2.is_valid_public_key(g)
    assert not sm2.is_valid_public_key(_flip(g, 63))  # off the curve
    assert not sm2.is_valid_public_key(bytes(64))
    assert not sm2.is_valid_public_key(g[:63])
    assert not sm2.is_valid_public_key(g + b"\x00")
    p = sm2.P.to_bytes(32, "big")
    assert not sm2.is_valid_public_key(p + CURVE["GY"])  # x not reduced
    assert not sm2.is_valid_public_key(CURVE["GX"] + p)  # y not reduced


# --- signatures -------------------------------------------------------------------------------


def test_sign_verify_round_trip(keypair: tuple[bytes, bytes], signature: bytes) -> None:
    private, public = keypair
    assert len(signature) == 64
    assert sm2.verify(public, MESSAGE, signature)
    again = sm2.sign(private, MESSAGE)
    assert again != signature  # a fresh k every time
    assert sm2.verify(public, MESSAGE, again)
    for message in (b"", b"\x00", bytes(3013), bytes(range(256)) * 20):
        assert sm2.verify(public, message, sm2.sign(private, message))


def test_sign_with_a_seeded_rng_is_reproducible(keypair: tuple[bytes, bytes]) -> None:
    private, public = keypair
    first = sm2.sign(private, MESSAGE, rng=_seeded(1))
    assert sm2.sign(private, MESSAGE, rng=_seeded(1)) == first
    assert sm2.verify(public, MESSAGE, first)


def test_a_tampered_message_or_signature_is_refused(keypair: tuple[bytes, bytes], signature: bytes) -> None:
    public = keypair[1]
    for index in (0, len(MESSAGE) // 2, len(MESSAGE) - 1):
        assert not sm2.verify(public, _flip(MESSAGE, index), signature), f"message byte {index}"
    assert not sm2.verify(public, MESSAGE + b"\x00", signature)
    assert not sm2.verify(public, MESSAGE[:-1], signature)
    for index in (0, 17, 31, 32, 50, 63):
        assert not sm2.verify(public, MESSAGE, _flip(signature, index)), f"signature byte {index}"
    assert not sm2.verify(public, MESSAGE, signature[32:] + signature[:32])  # r and s swapped


def test_a_wrong_key_or_user_id_is_refused(
    keypair: tuple[bytes, bytes], other_keypair: tuple[bytes, bytes], signature: bytes
) -> None:
    assert not sm2.verify(other_keypair[1], MESSAGE, signature)
    assert not sm2.verify(keypair[1], MESSAGE, signature, b"1234567812345679")
    with_uid = sm2.sign(keypair[0], MESSAGE, b"SAM 5341304100000001")
    assert sm2.verify(keypair[1], MESSAGE, with_uid, b"SAM 5341304100000001")
    assert not sm2.verify(keypair[1], MESSAGE, with_uid)


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        bytes(63),
        bytes(65),
        bytes(64),  # r = s = 0
        b"\xff" * 64,  # r, s >= n
        sm2.N.to_bytes(32, "big") + (1).to_bytes(32, "big"),  # r = n
        (1).to_bytes(32, "big") + sm2.N.to_bytes(32, "big"),  # s = n
        (1).to_bytes(32, "big") + (sm2.N - 1).to_bytes(32, "big"),  # r + s = n
    ],
    ids=["empty", "63", "65", "zero", "all-ff", "r=n", "s=n", "r+s=n"],
)
def test_a_malformed_signature_is_false_not_an_exception(keypair: tuple[bytes, bytes], bad: bytes) -> None:
    assert sm2.verify(keypair[1], MESSAGE, bad) is False


@pytest.mark.parametrize(
    "public",
    [b"", bytes(63), bytes(65), bytes(64), b"\xff" * 64],
    ids=["empty", "63", "65", "zero-point", "all-ff"],
)
def test_a_malformed_public_key_is_false_not_an_exception(signature: bytes, public: bytes) -> None:
    assert sm2.verify(public, MESSAGE, signature) is False


def test_an_off_curve_public_key_is_false(keypair: tuple[bytes, bytes], signature: bytes) -> None:
    assert sm2.verify(_flip(keypair[1], 63), MESSAGE, signature) is False


@pytest.mark.parametrize("uid", [b"", bytes(8192)], ids=["empty", "8192-bytes"])
def test_an_unusable_user_id_is_a_field_named_error(keypair: tuple[bytes, bytes], uid: bytes) -> None:
    with pytest.raises(InvalidValue) as signing:
        sm2.sign(keypair[0], MESSAGE, uid)
    assert signing.value.field == "uid"
    with pytest.raises(InvalidValue) as verifying:
        sm2.verify(keypair[1], MESSAGE, bytes(64), uid)
    assert verifying.value.field == "uid"


def test_timing_of_one_sign_and_one_verify(keypair: tuple[bytes, bytes]) -> None:
    """Reported, not asserted: gmalg is pure Python."""
    private, public = keypair
    started = time.perf_counter()
    signature = sm2.sign(private, MESSAGE)
    signed = time.perf_counter()
    assert sm2.verify(public, MESSAGE, signature)
    verified = time.perf_counter()
    print(f"\ngmalg SM2: sign {1000 * (signed - started):.1f} ms, verify {1000 * (verified - signed):.1f} ms")
