"""The audit chain's hashing, without a database: SM3 over the previous hash and the canonical
JSON of the entry (healthcard.platform.audit)."""

from __future__ import annotations

import datetime as dt

import pytest

from healthcard.keys import sm3
from healthcard.platform.audit import GENESIS, canonical, entry_fields, entry_hash, iso_utc

AT = dt.datetime(2026, 11, 24, 10, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def fields(**changes: object) -> dict[str, str | None]:
    values: dict[str, object] = {
        "chain": "R1",
        "seq": 1,
        "at": AT,
        "actor": "dr-wang",
        "role": "clinician",
        "institution_code": "410102001",
        "resident_id": "R1",
        "action": "read",
        "what": "encounters",
        "why": "presence: 复诊",
        "carrier": "card",
        "outcome": "allowed",
    }
    values.update(changes)
    return entry_fields(**values)  # type: ignore[arg-type]


def test_sm3_is_sm3() -> None:
    # GB/T 32905-2016 appendix A.1
    assert sm3(b"abc").hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"


def test_the_genesis_hash_is_64_zeros() -> None:
    assert GENESIS == "0" * 64


def test_times_are_iso_utc_with_microseconds() -> None:
    assert iso_utc(AT) == "2026-11-24T02:00:00.123456+00:00"
    assert iso_utc(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)) == "2026-01-01T00:00:00.000000+00:00"
    with pytest.raises(ValueError, match="naive"):
        iso_utc(dt.datetime(2026, 1, 1))


def test_canonical_json_sorts_keys_and_keeps_chinese_text() -> None:
    assert canonical({"b": "复诊", "a": None}) == '{"a":null,"b":"复诊"}'.encode()


def test_the_hash_is_sm3_of_prev_hash_then_canonical_json() -> None:
    entry = fields()
    expected_bytes = (
        b"0" * 64 + b'{"action":"read","actor":"dr-wang","at":"2026-11-24T02:00:00.123456+00:00",'
        b'"carrier":"card","chain":"R1","institution_code":"410102001","outcome":"allowed",'
        b'"resident_id":"R1","role":"clinician","seq":"1","what":"encounters","why":"presence: '
        + "复诊".encode()
        + b'"}'
    )
    assert entry_hash(GENESIS, entry) == sm3(expected_bytes).hex()
    assert len(entry_hash(GENESIS, entry)) == 64


def test_the_hash_ignores_key_order() -> None:
    entry = fields()
    assert entry_hash(GENESIS, dict(reversed(list(entry.items())))) == entry_hash(GENESIS, entry)


@pytest.mark.parametrize(
    "change",
    [
        {"seq": 2},
        {"at": AT + dt.timedelta(microseconds=1)},
        {"actor": "dr-li"},
        {"role": "auditor"},
        {"institution_code": None},
        {"resident_id": "R2"},
        {"action": "write"},
        {"what": "encounter 7"},
        {"why": "presence"},
        {"carrier": "qr"},
        {"outcome": "denied"},
        {"chain": "-"},
    ],
    ids=lambda c: next(iter(c)),
)
def test_every_field_is_covered(change: dict[str, object]) -> None:
    assert entry_hash(GENESIS, fields(**change)) != entry_hash(GENESIS, fields())


def test_the_previous_hash_is_covered_and_checked() -> None:
    first = entry_hash(GENESIS, fields())
    assert entry_hash(first, fields(seq=2)) != entry_hash(GENESIS, fields(seq=2))
    with pytest.raises(ValueError, match="prev_hash"):
        entry_hash("abc", fields())


def test_the_same_instant_in_any_zone_hashes_alike() -> None:
    assert entry_hash(GENESIS, fields(at=AT.astimezone(dt.UTC))) == entry_hash(GENESIS, fields())
