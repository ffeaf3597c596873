"""Key-ceremony components (``healthcard.keys.ceremony``): XOR n-of-n and Shamir k-of-n,
check values, typing components back."""

from __future__ import annotations

import itertools
import secrets

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from healthcard.errors import InvalidValue
from healthcard.keys import ceremony
from healthcard.keys.ceremony import Component, combine, generate, parse_component, split

SECRET = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")


def sm4_kcv(value: bytes) -> str:
    enc = Cipher(algorithms.SM4(value), modes.ECB()).encryptor()
    return (enc.update(bytes(16)) + enc.finalize())[:3].hex().upper()


def xor(*blocks: bytes) -> bytes:
    out = bytearray(16)
    for block in blocks:
        for i, b in enumerate(block):
            out[i] ^= b
    return bytes(out)


# --- XOR n-of-n -----------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 5, 9])
def test_xor_split_and_combine(n: int) -> None:
    parts = split(SECRET, n)
    assert [c.index for c in parts] == list(range(1, n + 1))
    assert all(len(c.value) == 16 for c in parts)
    assert len({c.value for c in parts}) == n
    assert SECRET not in {c.value for c in parts}
    assert xor(*(c.value for c in parts)) == SECRET
    assert combine(parts, n) == SECRET
    assert combine(list(reversed(parts)), n, n) == SECRET


def test_xor_split_is_random_but_always_combines() -> None:
    a, b = split(SECRET, 3), split(SECRET, 3)
    assert [c.value for c in a] != [c.value for c in b]
    assert combine(a, 3) == combine(b, 3) == SECRET


def test_xor_split_uses_the_given_rng() -> None:
    counter = itertools.count(1)
    parts = split(SECRET, 3, rng=lambda n: bytes([next(counter)]) * n)
    assert parts[0].value == b"\x01" * 16 and parts[1].value == b"\x02" * 16
    assert parts[2].value == xor(SECRET, b"\x01" * 16, b"\x02" * 16)


def test_xor_fewer_than_all_is_refused_and_no_subset_gives_the_secret() -> None:
    parts = split(SECRET, 3)
    for pair in itertools.combinations(parts, 2):
        with pytest.raises(InvalidValue) as caught:
            combine(list(pair), 3)
        assert caught.value.field == "components"
        assert "2 entered, 3 needed" in caught.value.message
        assert xor(*(c.value for c in pair)) != SECRET


# --- Shamir k-of-n --------------------------------------------------------------------------


def test_shamir_2_of_3_every_pair() -> None:
    parts = split(SECRET, 3, 2)
    assert [c.index for c in parts] == [1, 2, 3]
    assert SECRET not in {c.value for c in parts}
    for pair in itertools.permutations(parts, 2):
        assert combine(list(pair), 3, 2) == SECRET
    assert combine(parts, 3, 2) == SECRET  # more than the threshold is fine
    for one in parts:
        with pytest.raises(InvalidValue) as caught:
            combine([one], 3, 2)
        assert caught.value.field == "components" and "1 entered, 2 needed" in caught.value.message


def test_shamir_3_of_5_every_triple() -> None:
    parts = split(SECRET, 5, 3)
    for triple in itertools.combinations(parts, 3):
        assert combine(list(triple), 5, 3) == SECRET
    assert combine(parts[1:], 5, 3) == SECRET
    for pair in itertools.combinations(parts, 2):
        with pytest.raises(InvalidValue) as caught:
            combine(list(pair), 5, 3)
        assert caught.value.field == "components"


def test_shamir_component_text_round_trips_through_parse() -> None:
    secret, parts = generate(5, 3)
    typed = [parse_component(c.text(), c.kcv, position) for position, c in enumerate(parts[2:], 1)]
    assert [c.index for c in typed] == [3, 4, 5]  # the index comes from the text, not the position
    assert combine(typed, 5, 3) == secret


def test_generate_makes_a_fresh_secret() -> None:
    secret, parts = generate(2)
    assert len(secret) == 16 and combine(parts, 2) == secret
    other, _ = generate(2)
    assert other != secret
    fixed, fixed_parts = generate(3, 2, rng=lambda n: b"\x5a" * n)
    assert fixed == b"\x5a" * 16 and combine(fixed_parts[:2], 3, 2) == fixed


def test_duplicate_component_is_refused() -> None:
    parts = split(SECRET, 3, 2)
    with pytest.raises(InvalidValue) as caught:
        combine([parts[0], parts[0]], 3, 2)
    assert caught.value.field == "components" and "twice" in caught.value.message
    xor_parts = split(SECRET, 2)
    with pytest.raises(InvalidValue) as caught:
        combine([xor_parts[0], xor_parts[0]], 2)
    assert caught.value.field == "components"
    # the same custodian number twice, even with different values
    with pytest.raises(InvalidValue):
        combine([parts[0], Component(1, parts[1].value)], 3, 2)


@pytest.mark.parametrize("index", [0, 4, 9])
def test_component_number_out_of_range_is_refused(index: int) -> None:
    parts = split(SECRET, 3, 2)
    with pytest.raises(InvalidValue) as caught:
        combine([parts[0], Component(index, parts[1].value)], 3, 2)
    assert caught.value.field == "components"


@pytest.mark.parametrize(
    ("components", "threshold", "field"),
    [
        (1, None, "components"),
        (10, None, "components"),
        (0, None, "components"),
        (3, 1, "threshold"),
        (3, 4, "threshold"),
    ],
)
def test_component_and_threshold_bounds(components: int, threshold: int | None, field: str) -> None:
    for call in (
        lambda: split(SECRET, components, threshold),
        lambda: generate(components, threshold),
        lambda: combine(split(SECRET, 3), components, threshold),
    ):
        with pytest.raises(InvalidValue) as caught:
            call()
        assert caught.value.field == field
    assert ceremony.MAX_COMPONENTS == 9


def test_split_refuses_a_secret_of_the_wrong_length() -> None:
    for bad in (bytes(15), bytes(32)):
        with pytest.raises(InvalidValue) as caught:
            split(bad, 2)
        assert caught.value.field == "secret"


# --- check values -------------------------------------------------------------------------------


def test_kcv_is_sm4_of_zero_by_the_component() -> None:
    for c in [*split(SECRET, 3), *split(SECRET, 5, 3), Component(1, bytes(16))]:
        assert c.kcv == sm4_kcv(c.value)
        assert len(c.kcv) == 6 and c.kcv == c.kcv.upper()
    # a published SM4 answer: key 0123…3210 encrypting zeros
    assert Component(1, SECRET).kcv == sm4_kcv(SECRET)


def test_text_and_repr() -> None:
    c = Component(2, SECRET)
    assert c.text() == "2-0123456789ABCDEFFEDCBA9876543210"
    for value in (SECRET.hex(), SECRET.hex().upper(), repr(SECRET)):
        assert value not in repr(c) and value not in str(c)
    assert "index=2" in repr(c)


# --- parse_component -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "2-0123456789ABCDEFFEDCBA9876543210",
        "2-0123456789abcdeffedcba9876543210",
        "  2-0123 4567 89AB CDEF FEDC BA98 7654 3210  ",
        "2 - 0123456789ABCDEF FEDCBA9876543210",
    ],
)
def test_parse_with_index(text: str) -> None:
    c = parse_component(text, sm4_kcv(SECRET), 1)
    assert (c.index, c.value) == (2, SECRET)


@pytest.mark.parametrize(
    "text",
    [
        "0123456789ABCDEFFEDCBA9876543210",
        "0123 4567 89ab cdef fedc ba98 7654 3210",
        " 0123456789abcdeffedcba9876543210\n",
    ],
)
def test_parse_bare_hex_takes_the_position(text: str) -> None:
    c = parse_component(text, sm4_kcv(SECRET).lower(), 3)
    assert (c.index, c.value) == (3, SECRET)


def test_parse_without_kcv_does_not_check() -> None:
    assert parse_component(SECRET.hex(), None, 1).value == SECRET


def test_wrong_kcv_names_the_component_but_no_secret() -> None:
    parts = split(SECRET, 2)
    mistyped = bytearray(parts[1].value)
    mistyped[5] ^= 0x10
    typed = bytes(mistyped)
    with pytest.raises(InvalidValue) as caught:
        parse_component(f"2-{typed.hex()}", parts[1].kcv, 2)
    error = caught.value
    assert error.field == "component 2"
    text = f"{error} {error.message} {error!r}"
    for value in (typed, parts[1].value, parts[0].value, SECRET):
        assert value.hex() not in text.lower()
    assert parts[1].kcv in text  # says which check value it expected


def test_wrong_kcv_field_uses_the_position() -> None:
    with pytest.raises(InvalidValue) as caught:
        parse_component(SECRET.hex(), "000000" if sm4_kcv(SECRET) != "000000" else "111111", 4)
    assert caught.value.field == "component 4"


@pytest.mark.parametrize("kcv", ["12345", "1234567", "GGGGGG", ""])
def test_malformed_kcv_is_refused(kcv: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        parse_component(SECRET.hex(), kcv, 1)
    assert caught.value.field == "component 1 check value"


@pytest.mark.parametrize("text", [SECRET.hex()[:-2], SECRET.hex() + "00", "1-" + SECRET.hex()[:30], "", "1-"])
def test_wrong_length_is_refused(text: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        parse_component(text, None, 2)
    assert caught.value.field == "component 2"
    assert "16" in caught.value.message


@pytest.mark.parametrize(
    "text", ["1-" + "G" * 32, "Z" + SECRET.hex()[1:], "0x" + SECRET.hex(), SECRET.hex()[:-1]]
)
def test_non_hex_is_refused(text: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        parse_component(text, None, 1)
    assert caught.value.field == "component 1"
    assert "hexadecimal" in caught.value.message


@pytest.mark.parametrize(
    "text", ["0-" + SECRET.hex(), "256-" + SECRET.hex(), "a-" + SECRET.hex(), "1-2-" + SECRET.hex()]
)
def test_bad_component_number_is_refused(text: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        parse_component(text, None, 1)
    assert caught.value.field == "component 1"


def test_end_to_end_random_ceremony() -> None:
    secret = secrets.token_bytes(16)
    parts = split(secret, 4, 2)
    shown = [(c.text(), c.kcv) for c in parts]
    typed = [parse_component(text, kcv, i) for i, (text, kcv) in enumerate(shown, 1) if i in (2, 4)]
    assert combine(typed, 4, 2) == secret
