"""Published known-answer vectors (tests/vectors/*.txt) and unit tests of the crypto recipes."""

from __future__ import annotations

import time
from functools import reduce
from pathlib import Path

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from hypothesis import given
from hypothesis import strategies as st

from healthcard.errors import CryptoError
from healthcard.keys import recipes
from healthcard.keys.primitives import Algorithm, cbc_encrypt, ecb_decrypt, ecb_encrypt, sm3

from .vectorfiles import read_blocks, records, single

SM4_VECTORS = records("sm4.txt", "KEY", "PLAINTEXT", "COUNT", "CIPHERTEXT")
SM3_VECTORS = records("sm3.txt", "MESSAGE_ASCII", "DIGEST")
DIVERSIFY_VECTORS = records("diversify.txt", "PARENT_KEY", "FACTOR", "CHILD_KEY")
PROVINCE_VECTORS = records("diversify.txt", "CITY_CODE", "PROVINCE_FACTOR")
EHC = single("ehealth-id.txt")

KEY = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
KEY2 = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
HEADER = bytes.fromhex("04DC0104")
ALGORITHMS = [Algorithm.SM4, Algorithm.TDES]


def _sm4_param(v: dict[str, str]) -> object:
    marks = [pytest.mark.slow] if int(v["COUNT"]) > 1000 else []
    return pytest.param(v, id=f"count={v['COUNT']}", marks=marks)


def _xor(*blocks: bytes) -> bytes:
    return reduce(lambda a, b: bytes(x ^ y for x, y in zip(a, b, strict=True)), blocks)


# --- the vector files themselves --------------------------------------------------------------


def test_vector_files_are_all_read() -> None:
    """A parser that silently found nothing would make every parametrized test vanish."""
    assert [int(v["COUNT"]) for v in SM4_VECTORS] == [1, 1_000_000]
    assert len(SM3_VECTORS) == 2
    assert len(DIVERSIFY_VECTORS) == 1
    assert [v["CITY_CODE"] for v in PROVINCE_VECTORS] == ["210000", "130185"]
    assert set(EHC) == {
        "MASTER_INDEX_ID",
        "FACTOR",
        "SECURITY_ROOT_KEY",
        "USER_KEY",
        "ID_TYPE",
        "ID_NUMBER",
        "EHC_ID",
    }


def test_parser_rejects_a_line_that_is_not_key_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from . import vectorfiles

    (tmp_path / "bad.txt").write_text("# comment\nKEY = 00\nnot a pair\n", encoding="utf-8")
    monkeypatch.setattr(vectorfiles, "VECTORS", tmp_path)
    with pytest.raises(ValueError, match=r"bad.txt:3"):
        read_blocks("bad.txt")


# --- SM4 (GB/T 32907) -------------------------------------------------------------------------


@pytest.mark.parametrize("vector", [_sm4_param(v) for v in SM4_VECTORS])
def test_sm4_known_answer(vector: dict[str, str]) -> None:
    key = bytes.fromhex(vector["KEY"])
    block = bytes.fromhex(vector["PLAINTEXT"])
    count = int(vector["COUNT"])
    started = time.perf_counter()
    for _ in range(count):
        block = ecb_encrypt(Algorithm.SM4, key, block)
    elapsed = time.perf_counter() - started
    assert block == bytes.fromhex(vector["CIPHERTEXT"])
    assert elapsed < 60, f"{count} SM4 encryptions took {elapsed:.1f}s"
    if count == 1:
        assert ecb_decrypt(Algorithm.SM4, key, block) == bytes.fromhex(vector["PLAINTEXT"])


# --- SM3 (GB/T 32905) -------------------------------------------------------------------------


@pytest.mark.parametrize("vector", SM3_VECTORS, ids=lambda v: f"{len(v['MESSAGE_ASCII'])}B")
def test_sm3_known_answer(vector: dict[str, str]) -> None:
    assert sm3(vector["MESSAGE_ASCII"].encode("ascii")) == bytes.fromhex(vector["DIGEST"])


# --- diversification D(K, f) and the province factor ------------------------------------------


@pytest.mark.parametrize("vector", DIVERSIFY_VECTORS, ids=lambda v: v["FACTOR"])
def test_diversify_known_answer(vector: dict[str, str]) -> None:
    parent, factor = bytes.fromhex(vector["PARENT_KEY"]), bytes.fromhex(vector["FACTOR"])
    assert recipes.diversify(parent, factor) == bytes.fromhex(vector["CHILD_KEY"])


@pytest.mark.parametrize("vector", PROVINCE_VECTORS, ids=lambda v: v["CITY_CODE"])
def test_province_factor_known_answer(vector: dict[str, str]) -> None:
    assert recipes.province_factor(vector["CITY_CODE"]) == bytes.fromhex(vector["PROVINCE_FACTOR"])


@pytest.mark.parametrize("city", ["", "4", "x10000", "A10100"])
def test_province_factor_rejects_a_code_without_two_digits(city: str) -> None:
    with pytest.raises(ValueError):
        recipes.province_factor(city)


def test_diversify_is_e_of_f_and_not_f_for_both_algorithms() -> None:
    factor = bytes.fromhex("0081866B00001015")
    for algorithm in ALGORITHMS:
        expected = ecb_encrypt(algorithm, KEY, factor + bytes(b ^ 0xFF for b in factor))
        assert recipes.diversify(KEY, factor, algorithm) == expected
    with pytest.raises(ValueError):
        recipes.diversify(KEY, bytes(7))


def test_card_key_levels() -> None:
    serial, province = bytes.fromhex("0081866B00001015"), recipes.province_factor("410100")
    level2 = recipes.diversify(KEY, province)
    assert recipes.card_key(KEY, serial, province) == recipes.diversify(level2, serial)
    assert recipes.card_key(KEY, serial, None) == recipes.diversify(KEY, serial)


# --- electronic health card ID ----------------------------------------------------------------


def test_ehealth_card_id_vector() -> None:
    index = bytes.fromhex(EHC["MASTER_INDEX_ID"])
    assert len(index) == 32
    factor8 = _xor(*(index[i : i + 8] for i in range(0, 32, 8)))
    assert factor8 == bytes.fromhex(EHC["FACTOR"])
    user_key = recipes.diversify(bytes.fromhex(EHC["SECURITY_ROOT_KEY"]), factor8)
    assert user_key == bytes.fromhex(EHC["USER_KEY"])
    plain = (EHC["ID_TYPE"] + EHC["ID_NUMBER"]).encode("ascii")
    plain += bytes(-len(plain) % 16)
    assert len(plain) == 32
    ehc_id = ecb_encrypt(Algorithm.SM4, user_key, plain)
    assert ehc_id.hex().upper() == EHC["EHC_ID"]


# --- pad / unpad (ISO/IEC 9797-1 method 2) ----------------------------------------------------


@pytest.mark.parametrize("block", [8, 16])
def test_pad_always_adds_a_byte(block: int) -> None:
    for n in range(3 * block + 1):
        data = bytes(range(1, n + 1))
        padded = recipes.pad(data, block)
        assert len(padded) % block == 0
        assert len(padded) == (n // block + 1) * block
        assert padded[:n] == data and padded[n] == 0x80 and not any(padded[n + 1 :])
    assert recipes.pad(b"", block) == b"\x80" + bytes(block - 1)
    assert recipes.pad(bytes(block), block) == bytes(block) + b"\x80" + bytes(block - 1)


@given(st.binary(max_size=80), st.sampled_from([8, 16]))
def test_unpad_undoes_pad(data: bytes, block: int) -> None:
    assert recipes.unpad(recipes.pad(data, block)) == data


@pytest.mark.parametrize("bad", ["", "00", "0000000000000000", "01020304", "8001", "FF00"])
def test_unpad_rejects_bad_padding(bad: str) -> None:
    with pytest.raises(CryptoError):
        recipes.unpad(bytes.fromhex(bad))


# --- MAC --------------------------------------------------------------------------------------


def _flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    return data[:index] + bytes([data[index] ^ mask]) + data[index + 1 :]


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.name)
def test_mac_is_four_bytes_and_covers_every_input_byte(algorithm: Algorithm) -> None:
    data = bytes(range(37))
    reference = recipes.mac(KEY, data, algorithm)
    assert len(reference) == 4
    assert recipes.mac(KEY, data, algorithm) == reference  # deterministic
    for i in range(len(data)):
        assert recipes.mac(KEY, _flip(data, i), algorithm) != reference, f"data byte {i}"
    # a DES key byte's lowest bit is parity and ignored by DES, so change a key bit that counts
    key_mask = 0x01 if algorithm is Algorithm.SM4 else 0x02
    for i in range(16):
        assert recipes.mac(_flip(KEY, i, key_mask), data, algorithm) != reference, f"key byte {i}"
    assert recipes.mac(KEY, data + b"\x00", algorithm) != reference
    assert recipes.mac(KEY, data[:-1], algorithm) != reference
    other_iv = bytes([1]) + bytes(algorithm.block_size - 1)
    assert recipes.mac(KEY, data, algorithm, other_iv) != reference
    recipes.verify_mac(KEY, data, reference, algorithm)
    with pytest.raises(CryptoError):
        recipes.verify_mac(KEY, data, _flip(reference, 3), algorithm)


def test_sm4_mac_is_the_last_cbc_block_over_padded_data() -> None:
    data = b"0123456789abcdefXYZ"
    padded = recipes.pad(data, 16)
    chained = bytes(16)
    for i in range(0, len(padded), 16):
        chained = ecb_encrypt(Algorithm.SM4, KEY, _xor(chained, padded[i : i + 16]))
    assert recipes.cbc_mac(KEY, padded) == chained
    assert recipes.mac(KEY, data) == chained[:4]


def _des(key8: bytes, block: bytes, decrypt: bool = False) -> bytes:
    cipher = Cipher(TripleDES(key8 * 3), modes.ECB())
    op = cipher.decryptor() if decrypt else cipher.encryptor()
    return op.update(block) + op.finalize()


def test_tdes_mac_is_iso9797_algorithm_3() -> None:
    data = b"retail MAC test data of some length"
    padded = recipes.pad(data, 8)
    k1, k2 = KEY[:8], KEY[8:]
    chained = bytes(8)
    for i in range(0, len(padded), 8):
        chained = _des(k1, _xor(chained, padded[i : i + 8]))
    expected = _des(k1, _des(k2, chained, decrypt=True))
    assert recipes.cbc_mac(KEY, padded, Algorithm.TDES) == expected
    assert recipes.mac(KEY, data, Algorithm.TDES) == expected[:4]


# --- secure messaging -------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.name)
def test_sm_wrap_unwrap_round_trip_for_lengths_0_to_60(algorithm: Algorithm) -> None:
    block = algorithm.block_size
    for n in range(61):
        for payload in (bytes(range(n)), bytes(n), b"\x80" * n):
            body = recipes.sm_wrap(KEY, HEADER, payload, algorithm)
            assert len(body) == ((n + 1) // block + 1) * block + 4, n  # L byte + payload + method-2 pad
            assert recipes.sm_unwrap(KEY, HEADER, body, algorithm) == payload


#: the longest payload whose body still fits a short Lc (Lc = ciphertext + 4 <= 255)
MAX_SM_PAYLOAD = {Algorithm.SM4: 238, Algorithm.TDES: 246}


@given(st.data(), st.sampled_from(ALGORITHMS))
def test_sm_wrap_unwrap_round_trip_any_payload(data: st.DataObject, algorithm: Algorithm) -> None:
    payload = data.draw(st.binary(max_size=MAX_SM_PAYLOAD[algorithm]))
    body = recipes.sm_wrap(KEY2, HEADER, payload, algorithm)
    assert len(body) <= 255
    assert recipes.sm_unwrap(KEY2, HEADER, body, algorithm) == payload


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.name)
def test_sm_wrap_longest_payload(algorithm: Algorithm) -> None:
    payload = bytes(range(MAX_SM_PAYLOAD[algorithm]))
    body = recipes.sm_wrap(KEY, HEADER, payload, algorithm)
    assert 255 - algorithm.block_size < len(body) <= 255
    assert recipes.sm_unwrap(KEY, HEADER, body, algorithm) == payload


def test_sm_wrap_refuses_a_payload_longer_than_255() -> None:
    with pytest.raises(ValueError, match="too long"):
        recipes.sm_wrap(KEY, HEADER, bytes(256))


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.name)
def test_sm_wrap_refuses_a_payload_whose_lc_would_exceed_255(algorithm: Algorithm) -> None:
    """Regression: from 239 (SM4) / 247 (TDES) bytes Lc would pass 255; bytes([lc]) used to fail
    with "bytes must be in range(0, 256)" instead of the documented refusal."""
    with pytest.raises(ValueError, match="too long"):
        recipes.sm_wrap(KEY, HEADER, bytes(MAX_SM_PAYLOAD[algorithm] + 1), algorithm)


@pytest.mark.parametrize(
    "opener", [recipes.sm_unwrap, recipes.sm_check_mac], ids=["sm_unwrap", "sm_check_mac"]
)
def test_sm_open_refuses_a_body_longer_than_255_with_crypto_error(opener: object) -> None:
    """Regression: a body of 256+ bytes (extended APDU) used to raise ValueError from
    bytes([len(body)]) instead of the opaque CryptoError (the card then answered 6F00)."""
    with pytest.raises(CryptoError):
        opener(KEY, HEADER, bytes(260))  # type: ignore[operator]


def _assert_opaque(exc: BaseException, *secrets: bytes) -> None:
    chain: list[BaseException] = []
    node: BaseException | None = exc
    while node is not None and node not in chain:
        chain.append(node)
        node = node.__cause__ or node.__context__
    text = " ".join(f"{e!s} {e!r} {e.args!r}" for e in chain).lower()
    for secret in secrets:
        if len(secret) >= 4:
            assert secret.hex() not in text, "an error message shows key or data in hex"
            assert repr(secret).lower() not in text


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.name)
@pytest.mark.parametrize("n", [0, 1, 6, 7, 8, 14, 15, 16, 31, 60])
def test_sm_unwrap_fails_opaquely_on_any_flipped_bit(algorithm: Algorithm, n: int) -> None:
    payload = bytes((7 * i + 3) & 0xFF for i in range(n))
    body = recipes.sm_wrap(KEY, HEADER, payload, algorithm)
    secrets = (KEY, payload, body, body[:-4], body[-4:])
    for i in range(len(body)):
        for bit in range(8):
            bad = _flip(body, i, 1 << bit)
            with pytest.raises(CryptoError) as info:
                recipes.sm_unwrap(KEY, HEADER, bad, algorithm)
            _assert_opaque(info.value, *secrets, bad)
    for i in range(len(HEADER)):
        for bit in range(8):
            with pytest.raises(CryptoError) as info:
                recipes.sm_unwrap(KEY, _flip(HEADER, i, 1 << bit), body, algorithm)
            _assert_opaque(info.value, *secrets)
    for i in range(16):  # a wrong key
        with pytest.raises(CryptoError) as info:
            recipes.sm_unwrap(_flip(KEY, i, 0x02), HEADER, body, algorithm)
        _assert_opaque(info.value, *secrets)
    for cut in (body[:-1], body[1:], body + b"\x00", body[:4], b""):
        with pytest.raises(CryptoError) as info:
            recipes.sm_unwrap(KEY, HEADER, cut, algorithm)
        _assert_opaque(info.value, *secrets)


def test_sm_unwrap_rejects_a_forged_length_byte() -> None:
    """A body with a correct MAC whose inner length byte is wrong is still refused."""
    payload = b"\x01\x02\x03"
    plain = recipes.pad(bytes([len(payload) + 1]) + payload, 16)
    ciphertext = ecb_encrypt(Algorithm.SM4, KEY, plain)
    body = ciphertext + recipes.mac(KEY, HEADER + bytes([len(ciphertext) + 4]) + ciphertext)
    with pytest.raises(CryptoError) as info:
        recipes.sm_unwrap(KEY, HEADER, body)
    _assert_opaque(info.value, KEY, payload, body)


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.name)
def test_sm_mac_body_round_trip_and_tamper(algorithm: Algorithm) -> None:
    for data in (b"", b"\x00", bytes(range(20))):
        body = recipes.sm_mac_body(KEY, HEADER, data, algorithm)
        assert len(body) == len(data) + 4
        assert recipes.sm_check_mac(KEY, HEADER, body, algorithm) == data
        for i in range(len(body)):
            with pytest.raises(CryptoError):
                recipes.sm_check_mac(KEY, HEADER, _flip(body, i), algorithm)
    with pytest.raises(CryptoError):
        recipes.sm_check_mac(KEY, HEADER, b"\x00\x00\x00", algorithm)


@pytest.mark.parametrize(("item_len", "lc"), [(4, 0x14), (18, 0x24), (30, 0x34), (100, 0x74), (180, 0xC4)])
def test_lc_of_a_secure_messaging_tlv_write(item_len: int, lc: int) -> None:
    """CARD-SPEC.md §5.4: Lc of ``04 DC rec 04 Lc <cipher ‖ MAC>`` for a TLV item of length len."""
    tlv = bytes([0x08, item_len]) + bytes(range(item_len))
    body = recipes.sm_wrap(KEY, HEADER, tlv)
    assert len(body) == lc
    assert recipes.sm_unwrap(KEY, HEADER, body) == tlv


def test_lc_formula_of_card_spec_holds_for_every_item_length() -> None:
    for item_len in range(MAX_SM_PAYLOAD[Algorithm.SM4] - 1):
        tlv = bytes([0x08, item_len]) + bytes(item_len)
        assert len(recipes.sm_wrap(KEY, HEADER, tlv)) == 16 * ((item_len + 3) // 16 + 1) + 4, item_len


def test_sm_wrap_mac_covers_header_and_lc() -> None:
    payload = b"\x39\x03\x41\x01\x00"
    body = recipes.sm_wrap(KEY, HEADER, payload)
    ciphertext = ecb_encrypt(Algorithm.SM4, KEY, recipes.pad(bytes([len(payload)]) + payload))
    assert body[:-4] == ciphertext
    assert body[-4:] == recipes.mac(KEY, HEADER + bytes([len(body)]) + ciphertext)


# --- cryptogram, session key, 3DES wrapper, KCV -----------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.name)
def test_cryptogram_is_the_fold_of_two_halves(algorithm: Algorithm) -> None:
    ks = recipes.session_key(KEY, bytes.fromhex("A1A2A3A4A5A6A7A8"), algorithm)
    for plaintext in (recipes.READ_AUTH_PLAINTEXT, bytes(8), b"\xff" * 8):
        c = ecb_encrypt(algorithm, ks, plaintext + bytes(8))
        assert recipes.cryptogram(ks, plaintext, algorithm) == _xor(c[:8], c[8:])
        assert recipes.fold(c) == _xor(c[:8], c[8:])
        assert len(recipes.cryptogram(ks, plaintext, algorithm)) == 8
    with pytest.raises(ValueError):
        recipes.cryptogram(ks, bytes(7), algorithm)


def test_session_key_is_diversify_of_the_challenge() -> None:
    challenge = bytes.fromhex("0102030405060708")
    assert recipes.session_key(KEY, challenge) == recipes.diversify(KEY, challenge)


def _tdes3(key24: bytes, data: bytes, iv: bytes | None = None) -> bytes:
    mode = modes.ECB() if iv is None else modes.CBC(iv)
    enc = Cipher(TripleDES(key24), mode).encryptor()
    return enc.update(data) + enc.finalize()


def test_two_key_3des_equals_three_key_k1_k2_k1() -> None:
    k1, k2 = KEY[:8], KEY[8:]
    data = bytes(range(32))
    iv = bytes.fromhex("0011223344556677")
    assert ecb_encrypt(Algorithm.TDES, KEY, data) == _tdes3(k1 + k2 + k1, data)
    assert ecb_decrypt(Algorithm.TDES, KEY, _tdes3(k1 + k2 + k1, data)) == data
    assert cbc_encrypt(Algorithm.TDES, KEY, iv, data) == _tdes3(k1 + k2 + k1, data, iv)
    # K1 = K2 collapses to single DES
    assert ecb_encrypt(Algorithm.TDES, k1 + k1, data[:8]) == _des(k1, data[:8])


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.name)
def test_primitives_refuse_partial_blocks_and_bad_keys(algorithm: Algorithm) -> None:
    with pytest.raises(ValueError):
        ecb_encrypt(algorithm, KEY, bytes(algorithm.block_size + 1))
    with pytest.raises(ValueError):
        ecb_decrypt(algorithm, KEY, bytes(3))
    with pytest.raises(ValueError):
        ecb_encrypt(algorithm, KEY[:8], bytes(16))
    with pytest.raises(ValueError):
        cbc_encrypt(algorithm, KEY, bytes(3), bytes(16))


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.name)
def test_key_check_value_is_three_bytes_of_e_zero(algorithm: Algorithm) -> None:
    kcv = recipes.key_check_value(KEY, algorithm)
    assert len(kcv) == 3
    assert kcv == ecb_encrypt(algorithm, KEY, bytes(algorithm.block_size))[:3]
    assert recipes.key_check_value(KEY2, algorithm) != kcv


def test_equal_is_a_plain_comparison() -> None:
    assert recipes.equal(b"abc", b"abc")
    assert not recipes.equal(b"abc", b"abd")
    assert not recipes.equal(b"abc", b"ab")
