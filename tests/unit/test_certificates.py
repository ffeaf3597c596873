"""The compact certificate layouts and the visit-record signature (DECISIONS.md §18, §19):
byte offsets, round trips, every refusal reason from a concrete bad input, the trust store, and
signed EE / ED files."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

import pytest

from healthcard.errors import CertificateError, InvalidValue
from healthcard.keys import certificates as certs
from healthcard.keys import sm2
from healthcard.keys.certificates import Certificate, TrustStore
from healthcard.keys.primitives import sm3

FROM = dt.date(2024, 1, 1)
UNTIL = dt.date(2025, 12, 31)
TODAY = dt.date(2025, 6, 1)
ISSUER_CODE = "41000000001"
SAM_SERIAL = bytes.fromhex("5341304100000001")
TERMINAL = bytes.fromhex("410101000001")  # province 41, city 01, issuer 01, serial 000001

# Fixed test keys (never used outside tests): the private key is SM3 of an ASCII label.
ROOT_PRIVATE = sm3(b"HealthCard test root key 1")
ISSUER_PRIVATE = sm3(b"HealthCard test issuer key 41000000001")

# The worked example of docs/keys.md ("Certificates and signatures"): an issuer certificate of
# ROOT_PRIVATE (index 1) for ISSUER_PRIVATE's public key, made once by issue_issuer_certificate.
EXAMPLE_ROOT_PUBLIC = bytes.fromhex(
    "73991E3E98159BD08D145C0ADD6E40D8AE95033A3F81C68842F5DE9D5B23DE2B"
    "DD1AF4B1A197017B07E71F3A093D6F980DFA143491D4AB57E493BBF1D1BBE316"
)
EXAMPLE_ISSUER_PUBLIC = bytes.fromhex(
    "9A67BB7FF4F1FEA1E094A74A7C858C78E2DD5500BAE85A91C5D331FDBCE73566"
    "9ED41F1B755DF12578B5F13C22D1B3B73057181A8B35A1A4846130D90C1F4765"
)
EXAMPLE_CERTIFICATE = bytes.fromhex(
    "23"
    "00000001"
    "01"
    "41000000001FFFFF"
    "20240101"
    "20331231"
    "000001"
    "02"
    "03"
    "0040"
    "9A67BB7FF4F1FEA1E094A74A7C858C78E2DD5500BAE85A91C5D331FDBCE73566"
    "9ED41F1B755DF12578B5F13C22D1B3B73057181A8B35A1A4846130D90C1F4765"
    + "00"
    * 23
    + "D68CB94C76E71458A912C5F36DBF8658C2A3F41ADCC718D913E8AEFC263ECDFC"
    "2AE7A605DCCABE4C192E27D3CF871B7D5B7E7877561B76933D6A1B1B67D13C30"
)


def _flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    return data[:index] + bytes([data[index] ^ mask]) + data[index + 1 :]


def _put(data: bytes, index: int, value: bytes) -> bytes:
    return data[:index] + value + data[index + len(value) :]


class Keys:
    def __init__(self) -> None:
        self.root_private = ROOT_PRIVATE
        self.root_public = sm2.public_key(ROOT_PRIVATE)
        self.other_root_private, self.other_root_public = sm2.generate_keypair()
        self.issuer_private = ISSUER_PRIVATE
        self.issuer_public = sm2.public_key(ISSUER_PRIVATE)
        self.sam_private, self.sam_public = sm2.generate_keypair()
        self.other_sam_private, self.other_sam_public = sm2.generate_keypair()


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


@pytest.fixture(scope="module")
def trust(keys: Keys) -> TrustStore:
    return TrustStore({1: keys.root_public})


@pytest.fixture(scope="module")
def issuer_cert(keys: Keys) -> bytes:
    return certs.issue_issuer_certificate(
        keys.root_private, 1, ISSUER_CODE, keys.issuer_public, FROM, UNTIL, 0x0A0B0C
    )


@pytest.fixture(scope="module")
def sam_cert(keys: Keys) -> bytes:
    return certs.issue_sam_certificate(
        keys.root_private, 1, SAM_SERIAL, TERMINAL, keys.sam_public, FROM, UNTIL, 7
    )


def _reason(call: Callable[[], object]) -> tuple[str, str]:
    with pytest.raises(CertificateError) as caught:
        call()
    return caught.value.reason, str(caught.value)


# --- byte layout --------------------------------------------------------------------------------


def test_issuer_certificate_offsets(keys: Keys, issuer_cert: bytes) -> None:
    c = issuer_cert
    assert len(c) == certs.ISSUER_CERTIFICATE_LENGTH == 180
    assert c[0] == 0x23
    assert c[1:5] == bytes.fromhex("00000001")
    assert c[5] == 1
    assert c[6:14] == bytes.fromhex("41000000001FFFFF")
    assert c[14:18] == bytes.fromhex("20240101")
    assert c[18:22] == bytes.fromhex("20251231")
    assert c[22:25] == bytes.fromhex("0A0B0C")
    assert c[25] == 0x02 and c[26] == 0x03
    assert c[27:29] == bytes.fromhex("0040")
    assert c[29:93] == keys.issuer_public
    assert c[93:116] == bytes(23)
    assert sm2.verify(keys.root_public, c[:116], c[116:])  # last 64 bytes sign everything before


def test_sam_certificate_offsets(keys: Keys, sam_cert: bytes) -> None:
    c = sam_cert
    assert len(c) == certs.SAM_CERTIFICATE_LENGTH == 190
    assert c[0] == 0x24
    assert c[1:5] == bytes.fromhex("00000001")
    assert c[5] == 1
    assert c[6:14] == SAM_SERIAL  # binary, not BCD
    assert c[14:18] == bytes.fromhex("20240101")
    assert c[18:22] == bytes.fromhex("20251231")
    assert c[22:25] == bytes.fromhex("000007")
    assert c[25:29] == bytes.fromhex("02030040")
    assert c[29:93] == keys.sam_public
    assert c[93:99] == TERMINAL
    assert c[99:126] == bytes(27)
    assert sm2.verify(keys.root_public, c[:126], c[126:])


@pytest.mark.parametrize(
    ("code", "subject"),
    [
        ("41000000001", "41000000001FFFFF"),
        ("4", "4FFFFFFFFFFFFFFF"),
        ("1234567890123456", "1234567890123456"),
    ],
)
def test_issuer_code_is_bcd_right_padded_with_f(keys: Keys, code: str, subject: str) -> None:
    c = certs.issue_issuer_certificate(keys.root_private, 1, code, keys.issuer_public, FROM, UNTIL, 1)
    assert c[6:14] == bytes.fromhex(subject)
    assert certs.parse_certificate(c).issuer_code == code


# --- parsing ------------------------------------------------------------------------------------


def test_parse_issuer_certificate_gives_every_field(keys: Keys, issuer_cert: bytes) -> None:
    cert = certs.parse_certificate(issuer_cert)
    assert cert == Certificate(
        kind="issuer",
        certifier_id="00000001",
        root_index=1,
        subject_id=bytes.fromhex("41000000001FFFFF"),
        issuer_code=ISSUER_CODE,
        valid_from=FROM,
        valid_until=UNTIL,
        serial=0x0A0B0C,
        public_key=keys.issuer_public,
        terminal_number=b"",
        signature=issuer_cert[-64:],
        raw=issuer_cert,
    )
    assert cert.signed_part == issuer_cert[:116]
    assert cert.title == "issuer certificate 41000000001"


def test_parse_sam_certificate_gives_every_field(keys: Keys, sam_cert: bytes) -> None:
    cert = certs.parse_certificate(sam_cert)
    assert cert == Certificate(
        kind="sam",
        certifier_id="00000001",
        root_index=1,
        subject_id=SAM_SERIAL,
        issuer_code="",
        valid_from=FROM,
        valid_until=UNTIL,
        serial=7,
        public_key=keys.sam_public,
        terminal_number=TERMINAL,
        signature=sam_cert[-64:],
        raw=sam_cert,
    )
    assert cert.signed_part == sam_cert[:126]
    assert cert.title == "SAM certificate 5341304100000001"


def test_signature_is_randomised_but_the_body_is_not(keys: Keys, issuer_cert: bytes) -> None:
    again = certs.issue_issuer_certificate(
        keys.root_private, 1, ISSUER_CODE, keys.issuer_public, FROM, UNTIL, 0x0A0B0C
    )
    assert again[:116] == issuer_cert[:116]
    assert again[116:] != issuer_cert[116:]


def _malformed_cases(issuer: bytes, sam: bytes) -> dict[str, bytes]:
    return {
        "empty": b"",
        "issuer-truncated": issuer[:-1],
        "issuer-too-long": issuer + b"\x00",
        "sam-truncated": sam[:-1],
        "sam-as-180-bytes": sam[:180],
        "unknown-format-25": _put(issuer, 0, b"\x25"),
        "format-00": bytes(190),
        "certifier-not-bcd": _put(issuer, 1, bytes.fromhex("0000000A")),
        "hash-alg-01": _put(issuer, 25, b"\x01"),
        "key-alg-02": _put(sam, 26, b"\x02"),
        "key-length-0041": _put(issuer, 27, b"\x00\x41"),
        "from-not-bcd": _put(issuer, 14, bytes.fromhex("2024010A")),
        "until-not-a-date": _put(issuer, 18, bytes.fromhex("20250230")),
        "until-month-13": _put(sam, 18, bytes.fromhex("20251301")),
        "issuer-subject-f-inside": _put(issuer, 6, bytes.fromhex("41F00000001FFFFF")),
        "issuer-subject-all-f": _put(issuer, 6, b"\xff" * 8),
        "issuer-subject-hex-letter": _put(issuer, 6, bytes.fromhex("4A000000001FFFFF")),
        "issuer-padding-first": _put(issuer, 93, b"\x01"),
        "issuer-padding-last": _put(issuer, 115, b"\x80"),
        "sam-padding-first": _put(sam, 99, b"\x01"),
        "sam-padding-last": _put(sam, 125, b"\xff"),
    }


MALFORMED = list(_malformed_cases(bytes(180), bytes(190)))


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_certificates(case: str, issuer_cert: bytes, sam_cert: bytes, trust: TrustStore) -> None:
    data = _malformed_cases(issuer_cert, sam_cert)[case]
    with pytest.raises(CertificateError) as parsed:
        certs.parse_certificate(data)
    assert parsed.value.reason == "malformed"
    assert _reason(lambda: certs.verify_certificate(data, trust, TODAY))[0] == "malformed"


def test_a_sam_terminal_number_is_not_padding(keys: Keys) -> None:
    """Non-zero bytes at 93..98 are the terminal number in a SAM certificate, padding in an issuer one."""
    sam = certs.issue_sam_certificate(
        keys.root_private, 1, SAM_SERIAL, b"\xff" * 6, keys.sam_public, FROM, UNTIL, 1
    )
    assert certs.parse_certificate(sam).terminal_number == b"\xff" * 6


# --- verification -------------------------------------------------------------------------------


def test_verify_good_certificates(issuer_cert: bytes, sam_cert: bytes, trust: TrustStore) -> None:
    assert certs.verify_certificate(issuer_cert, trust, TODAY).issuer_code == ISSUER_CODE
    assert certs.verify_certificate(issuer_cert, trust, TODAY, kind="issuer").kind == "issuer"
    assert certs.verify_certificate(sam_cert, trust, TODAY, kind="sam").subject_id == SAM_SERIAL
    # the first and the last day are inside
    assert certs.verify_certificate(sam_cert, trust, FROM).valid_from == FROM
    assert certs.verify_certificate(sam_cert, trust, UNTIL).valid_until == UNTIL


def test_wrong_kind(issuer_cert: bytes, sam_cert: bytes, trust: TrustStore) -> None:
    reason, message = _reason(lambda: certs.verify_certificate(sam_cert, trust, TODAY, kind="issuer"))
    assert reason == "wrong-kind"
    assert "SAM certificate 5341304100000001" in message and "issuer certificate" in message
    assert _reason(lambda: certs.verify_certificate(issuer_cert, trust, TODAY, kind="sam"))[0] == "wrong-kind"


def test_a_bad_kind_argument_is_a_field_named_error(issuer_cert: bytes, trust: TrustStore) -> None:
    with pytest.raises(InvalidValue) as caught:
        certs.verify_certificate(issuer_cert, trust, TODAY, kind="root")
    assert caught.value.field == "kind"
    with pytest.raises(InvalidValue) as now:
        certs.verify_certificate(issuer_cert, trust, dt.datetime(2025, 6, 1, 12, 0))
    assert now.value.field == "today"


def test_unknown_root(keys: Keys, sam_cert: bytes, trust: TrustStore) -> None:
    index_2 = certs.issue_sam_certificate(
        keys.root_private, 2, SAM_SERIAL, TERMINAL, keys.sam_public, FROM, UNTIL, 1
    )
    reason, message = _reason(lambda: certs.verify_certificate(index_2, trust, TODAY))
    assert reason == "unknown-root"
    assert "root key 2" in message
    assert _reason(lambda: certs.verify_certificate(sam_cert, TrustStore(), TODAY))[0] == "unknown-root"
    other_certifier = _put(sam_cert, 1, bytes.fromhex("00000002"))
    assert _reason(lambda: certs.verify_certificate(other_certifier, trust, TODAY))[0] == "unknown-root"


@pytest.mark.parametrize(
    ("where", "index", "mask"),
    [
        ("subject", 6, 0x01),  # 41 -> 40: still BCD
        ("valid-until year", 19, 0x10),  # 2025 -> 2035: still a date
        ("serial", 24, 0x01),
        ("public key first", 29, 0x80),
        ("public key last", 92, 0x01),
        ("r first", 116, 0x01),
        ("s last", 179, 0x01),
    ],
)
def test_a_flipped_bit_is_forged(
    issuer_cert: bytes, trust: TrustStore, where: str, index: int, mask: int
) -> None:
    reason, message = _reason(lambda: certs.verify_certificate(_flip(issuer_cert, index, mask), trust, TODAY))
    assert reason == "forged", where
    assert "root key 1" in message


def test_a_flipped_bit_in_the_sam_terminal_number_is_forged(sam_cert: bytes, trust: TrustStore) -> None:
    assert _reason(lambda: certs.verify_certificate(_flip(sam_cert, 98), trust, TODAY))[0] == "forged"


def test_signed_by_another_root_claiming_index_1_is_forged(keys: Keys, trust: TrustStore) -> None:
    impostor = certs.issue_issuer_certificate(
        keys.other_root_private, 1, ISSUER_CODE, keys.issuer_public, FROM, UNTIL, 1
    )
    assert certs.parse_certificate(impostor).root_index == 1
    assert _reason(lambda: certs.verify_certificate(impostor, trust, TODAY))[0] == "forged"
    # ... and it is good under the root that did sign it
    assert certs.verify_certificate(impostor, TrustStore({1: keys.other_root_public}), TODAY).serial == 1


def test_not_yet_valid_and_expired(issuer_cert: bytes, sam_cert: bytes, trust: TrustStore) -> None:
    reason, message = _reason(lambda: certs.verify_certificate(sam_cert, trust, FROM - dt.timedelta(days=1)))
    assert (reason, message) == (
        "not-yet-valid",
        "not-yet-valid: SAM certificate 5341304100000001 is not valid before 2024-01-01",
    )
    reason, message = _reason(lambda: certs.verify_certificate(sam_cert, trust, UNTIL + dt.timedelta(days=1)))
    assert (reason, message) == ("expired", "expired: SAM certificate 5341304100000001 expired on 2025-12-31")
    reason, message = _reason(lambda: certs.verify_certificate(issuer_cert, trust, dt.date(2030, 1, 1)))
    assert (reason, message) == ("expired", "expired: issuer certificate 41000000001 expired on 2025-12-31")


def test_the_checks_run_in_the_documented_order(keys: Keys, sam_cert: bytes, trust: TrustStore) -> None:
    late = UNTIL + dt.timedelta(days=1)
    forged = _flip(sam_cert, 40)
    untrusted = _put(forged, 5, b"\x09")
    bad_padding = _put(untrusted, 120, b"\x01")
    assert (
        _reason(lambda: certs.verify_certificate(bad_padding, trust, late, kind="issuer"))[0] == "malformed"
    )
    assert _reason(lambda: certs.verify_certificate(untrusted, trust, late, kind="issuer"))[0] == "wrong-kind"
    assert _reason(lambda: certs.verify_certificate(untrusted, trust, late, kind="sam"))[0] == "unknown-root"
    assert _reason(lambda: certs.verify_certificate(forged, trust, late, kind="sam"))[0] == "forged"
    early_and_late = certs.issue_sam_certificate(
        keys.root_private, 1, SAM_SERIAL, TERMINAL, keys.sam_public, FROM, FROM, 1
    )
    assert _reason(lambda: certs.verify_certificate(early_and_late, trust, FROM - dt.timedelta(1)))[0] == (
        "not-yet-valid"
    )


def test_no_key_material_in_any_message(
    keys: Keys, issuer_cert: bytes, sam_cert: bytes, trust: TrustStore
) -> None:
    secrets = {
        k.hex()
        for k in (keys.root_private, keys.root_public, keys.issuer_public, keys.sam_public, keys.sam_private)
    }
    bad_inputs = [
        (issuer_cert[:-1], None, TODAY),
        (sam_cert, "issuer", TODAY),
        (_put(sam_cert, 5, b"\x09"), None, TODAY),
        (_flip(sam_cert, 40), None, TODAY),
        (sam_cert, None, FROM - dt.timedelta(1)),
        (sam_cert, None, UNTIL + dt.timedelta(1)),
    ]
    for data, kind, today in bad_inputs:
        with pytest.raises(CertificateError) as caught:
            certs.verify_certificate(data, trust, today, kind)
        message = str(caught.value).lower()
        for secret in secrets:
            assert secret[:16] not in message and secret[-16:] not in message


# --- issuing: bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"issuer_code": ""}, "issuer_code"),
        ({"issuer_code": "12345678901234567"}, "issuer_code"),
        ({"issuer_code": "4100A"}, "issuer_code"),
        ({"issuer_code": "41 00"}, "issuer_code"),
        ({"issuer_code": "４１"}, "issuer_code"),  # full-width digits
        ({"serial": -1}, "serial"),
        ({"serial": 0x1000000}, "serial"),
        ({"valid_until": dt.date(2023, 12, 31)}, "valid_until"),
        ({"valid_from": dt.datetime(2024, 1, 1, 8, 0)}, "valid_from"),
        ({"public_key": bytes(63)}, "public_key"),
        ({"public_key": bytes(64)}, "public_key"),  # not a point
        ({"root_index": 256}, "root_index"),
        ({"root_index": -1}, "root_index"),
        ({"root_private": bytes(31)}, "private"),
    ],
    ids=lambda v: str(v) if isinstance(v, str) else None,
)
def test_issue_issuer_certificate_rejects_bad_input(
    keys: Keys, change: dict[str, object], field: str
) -> None:
    args: dict[str, object] = {
        "root_private": keys.root_private,
        "root_index": 1,
        "issuer_code": ISSUER_CODE,
        "public_key": keys.issuer_public,
        "valid_from": FROM,
        "valid_until": UNTIL,
        "serial": 1,
    }
    args.update(change)
    with pytest.raises(InvalidValue) as caught:
        certs.issue_issuer_certificate(**args)  # type: ignore[arg-type]
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"sam_serial": bytes(7)}, "sam_serial"),
        ({"sam_serial": bytes(9)}, "sam_serial"),
        ({"terminal_number": bytes(5)}, "terminal_number"),
        ({"terminal_number": bytes(7)}, "terminal_number"),
        ({"serial": 0x1000000}, "serial"),
        ({"valid_until": dt.date(2023, 1, 1)}, "valid_until"),
        ({"public_key": bytes(65)}, "public_key"),
    ],
)
def test_issue_sam_certificate_rejects_bad_input(keys: Keys, change: dict[str, object], field: str) -> None:
    args: dict[str, object] = {
        "root_private": keys.root_private,
        "root_index": 1,
        "sam_serial": SAM_SERIAL,
        "terminal_number": TERMINAL,
        "public_key": keys.sam_public,
        "valid_from": FROM,
        "valid_until": UNTIL,
        "serial": 1,
    }
    args.update(change)
    with pytest.raises(InvalidValue) as caught:
        certs.issue_sam_certificate(**args)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_edges_that_are_accepted(keys: Keys, trust: TrustStore) -> None:
    one_day = certs.issue_issuer_certificate(keys.root_private, 0, "0", keys.issuer_public, FROM, FROM, 0)
    cert = certs.parse_certificate(one_day)
    assert (cert.root_index, cert.issuer_code, cert.serial) == (0, "0", 0)
    top = certs.issue_sam_certificate(
        keys.root_private, 255, SAM_SERIAL, TERMINAL, keys.sam_public, FROM, UNTIL, 0xFFFFFF
    )
    assert certs.parse_certificate(top).serial == 0xFFFFFF and top[5] == 255


# --- the trust store ----------------------------------------------------------------------------


def test_trust_store_basics(keys: Keys) -> None:
    store = TrustStore()
    assert len(store) == 0 and 1 not in store and store.get(1) is None
    store.add(2, keys.other_root_public)
    store.add(1, keys.root_public)
    store.add(1, keys.root_public)  # the same key again is harmless
    assert len(store) == 2 and 1 in store and list(store) == [1, 2]
    assert store.get(1) == keys.root_public
    with pytest.raises(InvalidValue) as taken:
        store.add(1, keys.other_root_public)
    assert taken.value.field == "index"
    assert store.get(1) == keys.root_public


def test_trust_store_json_round_trip(keys: Keys) -> None:
    store = TrustStore({1: keys.root_public, 3: keys.other_root_public})
    doc = store.to_dict()
    assert doc == {"roots": {"1": keys.root_public.hex().upper(), "3": keys.other_root_public.hex().upper()}}
    again = TrustStore.from_dict(json.loads(json.dumps(doc)))
    assert again == store
    assert again.get(3) == keys.other_root_public


@pytest.mark.parametrize(
    ("index", "public", "field"),
    [(256, None, "index"), (-1, None, "index"), (1, bytes(64), "public"), (1, bytes(63), "public")],
)
def test_trust_store_add_rejects(keys: Keys, index: int, public: bytes | None, field: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        TrustStore().add(index, keys.root_public if public is None else public)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({}, "roots"),
        ({"roots": []}, "roots"),
        ({"roots": {"one": "00"}}, "index"),
        ({"roots": {"1": 5}}, "public"),
        ({"roots": {"1": "zz"}}, "public"),
        ({"roots": {"1": "00" * 64}}, "public"),
        ({"roots": {"999": None}}, "public"),
    ],
)
def test_trust_store_from_dict_rejects(doc: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        TrustStore.from_dict(doc)
    assert caught.value.field == field


# --- the worked example of docs/keys.md ---------------------------------------------------------


def test_worked_example_of_the_docs() -> None:
    assert sm2.public_key(ROOT_PRIVATE) == EXAMPLE_ROOT_PUBLIC
    assert sm2.public_key(ISSUER_PRIVATE) == EXAMPLE_ISSUER_PUBLIC
    assert len(EXAMPLE_CERTIFICATE) == 180
    cert = certs.verify_certificate(
        EXAMPLE_CERTIFICATE, TrustStore({1: EXAMPLE_ROOT_PUBLIC}), dt.date(2026, 1, 1)
    )
    assert (cert.kind, cert.issuer_code, cert.serial) == ("issuer", "41000000001", 1)
    assert (cert.valid_from, cert.valid_until) == (dt.date(2024, 1, 1), dt.date(2033, 12, 31))
    assert cert.public_key == EXAMPLE_ISSUER_PUBLIC
    fresh = certs.issue_issuer_certificate(
        ROOT_PRIVATE, 1, "41000000001", EXAMPLE_ISSUER_PUBLIC, cert.valid_from, cert.valid_until, 1
    )
    assert fresh[:116] == EXAMPLE_CERTIFICATE[:116]


# --- visit records (DECISIONS.md §19) -----------------------------------------------------------


def test_visit_constants() -> None:
    assert (certs.EE_SIGNED_LENGTH, certs.ED_SIGNED_LENGTH) == (1639, 3013)
    assert (certs.SIGNATURE_LENGTH, certs.SAM_CERTIFICATE_LENGTH) == (64, 190)
    assert (certs.EE_RECORD_LENGTH, certs.ED_RECORD_LENGTH) == (1893, 3267)


def _body(kind: str) -> bytes:
    length = certs.EE_SIGNED_LENGTH if kind == "EE" else certs.ED_SIGNED_LENGTH
    return bytes((i * 7 + 3) & 0xFF for i in range(length))


def _signed(kind: str, keys: Keys, sam_cert: bytes, private: bytes | None = None) -> bytes:
    body = _body(kind)
    signature = sm2.sign(private or keys.sam_private, certs.visit_digest(kind, body))
    return body + certs.visit_tail(signature, sam_cert)


@pytest.fixture(scope="module")
def records(keys: Keys, sam_cert: bytes) -> dict[str, bytes]:
    return {kind: _signed(kind, keys, sam_cert) for kind in ("EE", "ED")}


@pytest.mark.parametrize(("kind", "length"), [("EE", 1639), ("ED", 3013)])
def test_visit_digest_covers_only_the_signed_range(kind: str, length: int) -> None:
    data = bytes(range(256)) * 13
    assert certs.visit_digest(kind, data[:length]) == sm3(data[:length])
    assert certs.visit_digest(kind, data) == sm3(data[:length])  # longer: the rest does not count
    assert certs.visit_digest(kind, data[:length] + b"\xff" * 254) == sm3(data[:length])
    with pytest.raises(InvalidValue) as short:
        certs.visit_digest(kind, data[: length - 1])
    assert short.value.field == "data"


def test_visit_digest_rejects_an_unknown_kind() -> None:
    with pytest.raises(InvalidValue) as caught:
        certs.visit_digest("EF", bytes(4000))
    assert caught.value.field == "kind"


def test_visit_tail(sam_cert: bytes, issuer_cert: bytes) -> None:
    signature = bytes(range(64))
    tail = certs.visit_tail(signature, sam_cert)
    assert len(tail) == 254 and tail[:64] == signature and tail[64:] == sam_cert
    for bad_signature, bad_cert, field in [
        (bytes(63), sam_cert, "signature"),
        (signature, sam_cert[:-1], "sam_certificate"),
        (signature, issuer_cert + bytes(10), "sam_certificate"),
    ]:
        with pytest.raises(InvalidValue) as caught:
            certs.visit_tail(bad_signature, bad_cert)
        assert caught.value.field == field


@pytest.mark.parametrize(("kind", "size", "at"), [("EE", 1893, 1639), ("ED", 3267, 3013)])
def test_signed_visit_record_verifies(
    kind: str, size: int, at: int, records: dict[str, bytes], sam_cert: bytes, trust: TrustStore
) -> None:
    record = records[kind]
    assert len(record) == size
    assert record[at + 64 :] == sam_cert  # certificate at 1703 / 3077
    cert = certs.verify_visit_record(kind, record, trust, TODAY)
    assert cert.kind == "sam" and cert.subject_id == SAM_SERIAL and cert.terminal_number == TERMINAL
    # the SAM signs the 32-byte SM3 digest as its message (Z_A, default user id)
    assert sm2.verify(cert.public_key, sm3(record[:at]), record[at : at + 64])


@pytest.mark.parametrize("kind", ["EE", "ED"])
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_a_changed_byte_in_the_signed_range_is_forged(
    kind: str, where: str, records: dict[str, bytes], trust: TrustStore
) -> None:
    record = records[kind]
    at = certs.EE_SIGNED_LENGTH if kind == "EE" else certs.ED_SIGNED_LENGTH
    index = {"first": 0, "middle": at // 2, "last": at - 1}[where]
    reason, message = _reason(lambda: certs.verify_visit_record(kind, _flip(record, index), trust, TODAY))
    assert reason == "forged"
    assert (
        message
        == f"forged: the {kind} record's signature does not verify under SAM certificate 5341304100000001"
    )


@pytest.mark.parametrize("kind", ["EE", "ED"])
def test_the_tail_is_checked_though_it_is_outside_the_digest(
    kind: str, records: dict[str, bytes], trust: TrustStore
) -> None:
    record = records[kind]
    at = certs.EE_SIGNED_LENGTH if kind == "EE" else certs.ED_SIGNED_LENGTH
    for index in (at, at + 40, at + 63):  # the signature
        changed = _flip(record, index)
        assert certs.visit_digest(kind, changed) == certs.visit_digest(kind, record)
        with pytest.raises(CertificateError) as caught:
            certs.verify_visit_record(kind, changed, trust, TODAY)
        assert caught.value.reason == "forged"
    cert_at = at + 64
    assert (
        _reason(lambda: certs.verify_visit_record(kind, _flip(record, cert_at + 40), trust, TODAY))[0]
        == "forged"
    )
    assert (
        _reason(lambda: certs.verify_visit_record(kind, _flip(record, cert_at), trust, TODAY))[0]
        == "malformed"
    )
    assert _reason(lambda: certs.verify_visit_record(kind, _flip(record, cert_at + 100), trust, TODAY))[
        0
    ] == (
        "malformed"  # padding
    )


@pytest.mark.parametrize("kind", ["EE", "ED"])
def test_an_all_zero_tail_is_unsigned(kind: str, records: dict[str, bytes], trust: TrustStore) -> None:
    at = certs.EE_SIGNED_LENGTH if kind == "EE" else certs.ED_SIGNED_LENGTH
    record = records[kind][:at] + bytes(254)
    reason, message = _reason(lambda: certs.verify_visit_record(kind, record, trust, TODAY))
    assert (reason, message) == ("unsigned", f"unsigned: the {kind} record carries no signature")
    # half a tail is not "unsigned"
    no_signature = records[kind][:at] + bytes(64) + records[kind][at + 64 :]
    assert _reason(lambda: certs.verify_visit_record(kind, no_signature, trust, TODAY))[0] == "forged"
    no_certificate = records[kind][: at + 64] + bytes(190)
    assert _reason(lambda: certs.verify_visit_record(kind, no_certificate, trust, TODAY))[0] == "malformed"


def test_a_record_signed_by_another_sam_key_is_forged(keys: Keys, sam_cert: bytes, trust: TrustStore) -> None:
    record = _signed("ED", keys, sam_cert, keys.other_sam_private)
    assert _reason(lambda: certs.verify_visit_record("ED", record, trust, TODAY))[0] == "forged"


def test_the_sam_certificate_of_a_record_is_checked(
    keys: Keys, records: dict[str, bytes], sam_cert: bytes, trust: TrustStore
) -> None:
    late = UNTIL + dt.timedelta(days=1)
    assert _reason(lambda: certs.verify_visit_record("EE", records["EE"], trust, late))[0] == "expired"
    assert (
        _reason(lambda: certs.verify_visit_record("EE", records["EE"], TrustStore(), TODAY))[0]
        == "unknown-root"
    )
    impostor = certs.issue_sam_certificate(
        keys.other_root_private, 1, SAM_SERIAL, TERMINAL, keys.sam_public, FROM, UNTIL, 7
    )
    record = _signed("EE", keys, impostor)
    assert _reason(lambda: certs.verify_visit_record("EE", record, trust, TODAY))[0] == "forged"


def test_a_record_of_the_wrong_size_is_a_field_named_error(
    records: dict[str, bytes], trust: TrustStore
) -> None:
    for kind, record in [("EE", records["EE"][:-1]), ("ED", records["EE"]), ("EE", records["EE"] + b"\x00")]:
        with pytest.raises(InvalidValue) as caught:
            certs.verify_visit_record(kind, record, trust, TODAY)
        assert caught.value.field == "record"
    with pytest.raises(InvalidValue) as bad_kind:
        certs.verify_visit_record("XX", records["EE"], trust, TODAY)
    assert bad_kind.value.field == "kind"
