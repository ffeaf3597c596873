"""The health card's certificates and the SAM's visit-record signature (DECISIONS.md §18, §19).

The public sources give only the sizes (CARD-SPEC.md §6.7–6.8): a 180-byte issuer certificate
(发卡机构证书, DDF1/EF05 tag 0x05 and SAM file 001B) and a 190-byte SAM certificate (SAM卡证书,
SAM file 001C and the tail of every EE/ED visit record), both issued by the national root with
SM2 / SM3.  HealthCard fixes a compact layout that fits those sizes (documented byte by byte in
docs/keys.md, "Certificates and signatures"):

======  ===  ==========================================================================
offset  len  field
======  ===  ==========================================================================
0       1    format: ``23`` issuer certificate, ``24`` SAM certificate
1       4    certifier id, BCD: ``00000001`` = the national health-card root CA
5       1    root key index (which national root SM2 key signed it)
6       8    subject id: issuer code in BCD right-padded with ``F`` / the SAM's chip serial
14      4    valid from, YYYYMMDD BCD
18      4    valid until, YYYYMMDD BCD
22      3    serial number
25      1    hash algorithm id ``02`` = SM3
26      1    public-key algorithm id ``03`` = SM2
27      2    public-key length ``0040``
29      64   subject public key ``X ‖ Y``
93      6    SAM only: terminal number (SAM file 0016)
..      ..   zero padding (23 bytes issuer, 27 bytes SAM)
-64     64   SM2 signature ``r ‖ s`` (default uid) by the root over every byte before it
======  ===  ==========================================================================

Verification takes ``today`` as a parameter (STYLE.md habit 6; a caller with a
:class:`~healthcard.clock.Clock` passes :func:`healthcard.clock.local_date`).  Refusals are
:class:`CertificateError` with a ``reason``; messages name the certificate and never contain
key material.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from healthcard.errors import CertificateError, InvalidValue
from healthcard.keys import sm2
from healthcard.keys.primitives import sm3

CertificateKind = Literal["issuer", "sam"]
VisitKind = Literal["EE", "ED"]

ISSUER_FORMAT = 0x23
SAM_FORMAT = 0x24
ISSUER_CERTIFICATE_LENGTH = 180
SAM_CERTIFICATE_LENGTH = 190
#: the national health-card root CA, the only certifier (BCD ``00000001``)
ROOT_CERTIFIER_ID = "00000001"
HASH_SM3 = 0x02
KEY_SM2 = 0x03
PUBLIC_KEY_LENGTH = 64
SIGNATURE_LENGTH = 64
TERMINAL_NUMBER_LENGTH = 6
MAX_SERIAL = 0xFFFFFF

#: DECISIONS.md §19: the signed range of an EE (住院) / ED (门诊) file and where the tail starts
EE_SIGNED_LENGTH = 1639
ED_SIGNED_LENGTH = 3013
#: the tail written at the signed length: signature ‖ SAM certificate
VISIT_TAIL_LENGTH = SIGNATURE_LENGTH + SAM_CERTIFICATE_LENGTH
EE_RECORD_LENGTH = EE_SIGNED_LENGTH + VISIT_TAIL_LENGTH  # 1893
ED_RECORD_LENGTH = ED_SIGNED_LENGTH + VISIT_TAIL_LENGTH  # 3267

_FORMATS: dict[int, CertificateKind] = {ISSUER_FORMAT: "issuer", SAM_FORMAT: "sam"}
_LENGTHS: dict[str, int] = {"issuer": ISSUER_CERTIFICATE_LENGTH, "sam": SAM_CERTIFICATE_LENGTH}
_NAMES: dict[str, str] = {"issuer": "issuer certificate", "sam": "SAM certificate"}
_SIGNED_LENGTHS: dict[str, int] = {"EE": EE_SIGNED_LENGTH, "ED": ED_SIGNED_LENGTH}

# fixed offsets of the common part (0..92)
_OFF_ROOT_INDEX = 5
_OFF_SUBJECT = 6
_OFF_FROM = 14
_OFF_UNTIL = 18
_OFF_SERIAL = 22
_OFF_HASH = 25
_OFF_KEY_ALG = 26
_OFF_KEY_LEN = 27
_OFF_PUBLIC = 29
_OFF_TERMINAL = 93  # SAM certificate only
_COMMON_END = _OFF_PUBLIC + PUBLIC_KEY_LENGTH  # 93


@dataclass(frozen=True)
class Certificate:
    """A parsed certificate (DECISIONS.md §18).  ``raw`` is the whole certificate as stored."""

    kind: CertificateKind
    certifier_id: str
    root_index: int
    subject_id: bytes
    issuer_code: str
    valid_from: dt.date
    valid_until: dt.date
    serial: int
    public_key: bytes
    terminal_number: bytes
    signature: bytes
    raw: bytes

    @property
    def signed_part(self) -> bytes:
        """Every byte before the signature: what the root signed (padding included)."""
        return self.raw[:-SIGNATURE_LENGTH]

    @property
    def subject(self) -> str:
        """The subject as people write it: the issuer code, or the SAM serial in hex."""
        return self.issuer_code if self.kind == "issuer" else self.subject_id.hex().upper()

    @property
    def title(self) -> str:
        """``"issuer certificate 41000000001"`` / ``"SAM certificate 5341304100000001"``."""
        return f"{_NAMES[self.kind]} {self.subject}"


# --- BCD helpers ------------------------------------------------------------------------------


def _date_bcd(field: str, value: dt.date) -> bytes:
    if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
        raise InvalidValue(field, "must be a datetime.date")
    return bytes.fromhex(f"{value.year:04d}{value.month:02d}{value.day:02d}")


def _parse_date(field: str, data: bytes) -> dt.date:
    text = data.hex()
    if not text.isdigit():
        raise CertificateError("malformed", f"{field} {text.upper()} is not BCD")
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise CertificateError("malformed", f"{field} {text} is not a date") from None


def _issuer_subject(issuer_code: str) -> bytes:
    if not (1 <= len(issuer_code) <= 16 and issuer_code.isascii() and issuer_code.isdigit()):
        raise InvalidValue("issuer_code", "must be 1 to 16 digits")
    return bytes.fromhex(issuer_code.ljust(16, "F"))


def _parse_issuer_subject(subject: bytes) -> str:
    text = subject.hex().upper()
    code = text.rstrip("F")
    if not code or not code.isdigit():
        raise CertificateError("malformed", f"issuer subject id {text} is not digits padded with F")
    return code


# --- issuing ----------------------------------------------------------------------------------


def _check_common(
    root_index: int, public_key: bytes, valid_from: dt.date, valid_until: dt.date, serial: int
) -> None:
    if not 0 <= root_index <= 0xFF:
        raise InvalidValue("root_index", "must be 0 to 255")
    if len(public_key) != PUBLIC_KEY_LENGTH:
        raise InvalidValue(
            "public_key", f"an SM2 public key is {PUBLIC_KEY_LENGTH} bytes, not {len(public_key)}"
        )
    if not sm2.is_valid_public_key(public_key):
        raise InvalidValue("public_key", "is not a point of the SM2 curve")
    _date_bcd("valid_from", valid_from)
    _date_bcd("valid_until", valid_until)
    if valid_until < valid_from:
        raise InvalidValue("valid_until", f"{valid_until} is before valid_from {valid_from}")
    if not 0 <= serial <= MAX_SERIAL:
        raise InvalidValue("serial", f"must be 0 to {MAX_SERIAL} (3 bytes)")


def _body(
    fmt: int,
    root_index: int,
    subject: bytes,
    public_key: bytes,
    valid_from: dt.date,
    valid_until: dt.date,
    serial: int,
) -> bytes:
    return (
        bytes([fmt])
        + bytes.fromhex(ROOT_CERTIFIER_ID)
        + bytes([root_index])
        + subject
        + _date_bcd("valid_from", valid_from)
        + _date_bcd("valid_until", valid_until)
        + serial.to_bytes(3, "big")
        + bytes([HASH_SM3, KEY_SM2])
        + PUBLIC_KEY_LENGTH.to_bytes(2, "big")
        + public_key
    )


def _sign(root_private: bytes, body: bytes, length: int) -> bytes:
    signed = body.ljust(length - SIGNATURE_LENGTH, b"\x00")
    return signed + sm2.sign(root_private, signed)


def issue_issuer_certificate(
    root_private: bytes,
    root_index: int,
    issuer_code: str,
    public_key: bytes,
    valid_from: dt.date,
    valid_until: dt.date,
    serial: int,
) -> bytes:
    """The 180-byte issuer certificate (发卡机构证书, DECISIONS.md §18) of ``issuer_code``
    (1–16 digits, stored BCD right-padded with ``F``), signed by the national root key
    ``root_index``."""
    subject = _issuer_subject(issuer_code)
    _check_common(root_index, public_key, valid_from, valid_until, serial)
    body = _body(ISSUER_FORMAT, root_index, subject, public_key, valid_from, valid_until, serial)
    return _sign(root_private, body, ISSUER_CERTIFICATE_LENGTH)


def issue_sam_certificate(
    root_private: bytes,
    root_index: int,
    sam_serial: bytes,
    terminal_number: bytes,
    public_key: bytes,
    valid_from: dt.date,
    valid_until: dt.date,
    serial: int,
) -> bytes:
    """The 190-byte SAM certificate (SAM卡证书, DECISIONS.md §18) of the SAM with chip serial
    ``sam_serial`` (8 bytes) and terminal number ``terminal_number`` (6 bytes, SAM file 0016:
    province, city, issuer, 3-byte serial), signed by the national root key ``root_index``."""
    if len(sam_serial) != 8:
        raise InvalidValue("sam_serial", f"a SAM chip serial is 8 bytes, not {len(sam_serial)}")
    if len(terminal_number) != TERMINAL_NUMBER_LENGTH:
        raise InvalidValue(
            "terminal_number",
            f"a terminal number is {TERMINAL_NUMBER_LENGTH} bytes, not {len(terminal_number)}",
        )
    _check_common(root_index, public_key, valid_from, valid_until, serial)
    body = _body(SAM_FORMAT, root_index, bytes(sam_serial), public_key, valid_from, valid_until, serial)
    return _sign(root_private, body + bytes(terminal_number), SAM_CERTIFICATE_LENGTH)


# --- parsing ----------------------------------------------------------------------------------


def parse_certificate(data: bytes) -> Certificate:
    """Parse an issuer or SAM certificate (the format byte says which) without checking its
    signature.  Raises ``CertificateError("malformed", …)`` for a wrong length, an unknown
    format byte, unexpected algorithm ids or key length, a date that is not BCD, an issuer code
    that is not digits, or padding that is not all zero."""
    data = bytes(data)
    if not data:
        raise CertificateError("malformed", "empty certificate")
    kind = _FORMATS.get(data[0])
    if kind is None:
        raise CertificateError("malformed", f"unknown certificate format byte {data[0]:02X}")
    name = _NAMES[kind]
    if len(data) != _LENGTHS[kind]:
        raise CertificateError("malformed", f"{name} is {len(data)} bytes, expected {_LENGTHS[kind]}")
    certifier = data[1:_OFF_ROOT_INDEX].hex()
    if not certifier.isdigit():
        raise CertificateError("malformed", f"{name} certifier id {certifier.upper()} is not BCD")
    if data[_OFF_HASH] != HASH_SM3 or data[_OFF_KEY_ALG] != KEY_SM2:
        raise CertificateError(
            "malformed",
            f"{name} algorithm ids {data[_OFF_HASH]:02X} {data[_OFF_KEY_ALG]:02X}, "
            f"expected {HASH_SM3:02X} (SM3) {KEY_SM2:02X} (SM2)",
        )
    key_length = int.from_bytes(data[_OFF_KEY_LEN:_OFF_PUBLIC], "big")
    if key_length != PUBLIC_KEY_LENGTH:
        raise CertificateError("malformed", f"{name} public-key length {key_length:04X}, expected 0040")
    subject = data[_OFF_SUBJECT:_OFF_FROM]
    issuer_code = _parse_issuer_subject(subject) if kind == "issuer" else ""
    terminal = data[_OFF_TERMINAL : _OFF_TERMINAL + TERMINAL_NUMBER_LENGTH] if kind == "sam" else b""
    padding = data[_COMMON_END + len(terminal) : -SIGNATURE_LENGTH]
    if any(padding):
        raise CertificateError("malformed", f"{name} padding is not all zero")
    return Certificate(
        kind=kind,
        certifier_id=certifier,
        root_index=data[_OFF_ROOT_INDEX],
        subject_id=subject,
        issuer_code=issuer_code,
        valid_from=_parse_date(f"{name} valid-from date", data[_OFF_FROM:_OFF_UNTIL]),
        valid_until=_parse_date(f"{name} valid-until date", data[_OFF_UNTIL:_OFF_SERIAL]),
        serial=int.from_bytes(data[_OFF_SERIAL:_OFF_HASH], "big"),
        public_key=data[_OFF_PUBLIC:_COMMON_END],
        terminal_number=terminal,
        signature=data[-SIGNATURE_LENGTH:],
        raw=data,
    )


# --- the trust store --------------------------------------------------------------------------


class TrustStore:
    """The national root public keys a verifier trusts, by root key index (byte 5 of a
    certificate).  Several indexes live side by side across a root rollover (cf. DECISIONS.md §17)."""

    def __init__(self, roots: Mapping[int, bytes] | None = None) -> None:
        self._roots: dict[int, bytes] = {}
        for index, public in (roots or {}).items():
            self.add(index, public)

    def add(self, index: int, public: bytes) -> None:
        """Trust ``public`` (64 bytes ``X ‖ Y``) as the root key ``index`` (0–255).  Adding the
        same key again is harmless; a different key under a taken index is refused."""
        if not isinstance(index, int) or not 0 <= index <= 0xFF:
            raise InvalidValue("index", "a root key index is 0 to 255")
        public = bytes(public)
        if not sm2.is_valid_public_key(public):
            raise InvalidValue("public", "a root public key is 64 bytes X‖Y of a point of the SM2 curve")
        held = self._roots.get(index)
        if held is not None and held != public:
            raise InvalidValue("index", f"root key index {index} already holds another key")
        self._roots[index] = public

    def get(self, index: int) -> bytes | None:
        """The root public key ``index``, or None when not trusted."""
        return self._roots.get(index)

    def __contains__(self, index: object) -> bool:
        return index in self._roots

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(self._roots))

    def __len__(self) -> int:
        return len(self._roots)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TrustStore) and self._roots == other._roots

    def to_dict(self) -> dict[str, dict[str, str]]:
        """JSON-able form: ``{"roots": {"1": "<128 hex digits>", …}}`` (upper-case hex)."""
        return {"roots": {str(index): self._roots[index].hex().upper() for index in self}}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> TrustStore:
        """Read :meth:`to_dict`'s form back; a bad entry is a field-named :class:`InvalidValue`."""
        roots = data.get("roots")
        if not isinstance(roots, Mapping):
            raise InvalidValue("roots", "a trust store needs a 'roots' object of index → hex key")
        store = cls()
        for key, value in roots.items():
            if not isinstance(key, str) or not key.isdigit():
                raise InvalidValue("index", f"root key index {key!r} is not a number")
            if not isinstance(value, str):
                raise InvalidValue("public", f"root key {key} is not hex text")
            try:
                public = bytes.fromhex(value)
            except ValueError:
                raise InvalidValue("public", f"root key {key} is not hex text") from None
            store.add(int(key), public)
        return store


# --- verification -----------------------------------------------------------------------------


def verify_certificate(
    data: bytes, trust: TrustStore, today: dt.date, kind: str | None = None
) -> Certificate:
    """Check a certificate against the trust store and return it parsed (DECISIONS.md §18).

    The checks, in order, and the :class:`CertificateError` reason of each:

    1. ``malformed`` — it does not parse (:func:`parse_certificate`);
    2. ``wrong-kind`` — ``kind`` (``"issuer"`` / ``"sam"``) is given and the format byte says
       otherwise;
    3. ``unknown-root`` — its certifier is not the national root, or its root key index is not
       in ``trust``;
    4. ``forged`` — the signature does not verify under that root key (also what a certificate
       signed by another root that claims a trusted index gets);
    5. ``not-yet-valid`` — ``today`` is before valid-from;
    6. ``expired`` — ``today`` is after valid-until (the last day is still valid).
    """
    if kind is not None and kind not in _LENGTHS:
        raise InvalidValue("kind", "must be 'issuer', 'sam' or None")
    if not isinstance(today, dt.date) or isinstance(today, dt.datetime):
        raise InvalidValue("today", "must be a datetime.date (a local date, healthcard.clock.local_date)")
    cert = parse_certificate(data)
    if kind is not None and cert.kind != kind:
        raise CertificateError("wrong-kind", f"expected a {_NAMES[kind]}, got the {cert.title}")
    if cert.certifier_id != ROOT_CERTIFIER_ID:
        raise CertificateError(
            "unknown-root", f"{cert.title} is certified by {cert.certifier_id}, not the national root"
        )
    root = trust.get(cert.root_index)
    if root is None:
        raise CertificateError(
            "unknown-root", f"{cert.title} names root key {cert.root_index}, which is not trusted"
        )
    if not sm2.verify(root, cert.signed_part, cert.signature):
        raise CertificateError(
            "forged", f"{cert.title} signature does not verify under root key {cert.root_index}"
        )
    if today < cert.valid_from:
        raise CertificateError(
            "not-yet-valid", f"{cert.title} is not valid before {cert.valid_from.isoformat()}"
        )
    if today > cert.valid_until:
        raise CertificateError("expired", f"{cert.title} expired on {cert.valid_until.isoformat()}")
    return cert


def _signed_length(kind: str) -> int:
    length = _SIGNED_LENGTHS.get(kind)
    if length is None:
        raise InvalidValue("kind", "a visit record is 'EE' (住院) or 'ED' (门诊)")
    return length


def visit_digest(kind: str, data: bytes) -> bytes:
    """SM3 of the signed range of a visit record (DECISIONS.md §19): bytes ``[0, 1639)`` of an
    ``"EE"`` file or ``[0, 3013)`` of an ``"ED"`` file.  ``data`` may be the whole file (only the
    signed range counts); a shorter one is an :class:`InvalidValue`.  The SAM signs this 32-byte
    digest as its SM2 message (with ``Z_A`` and the default user id)."""
    length = _signed_length(kind)
    if len(data) < length:
        raise InvalidValue("data", f"an {kind} record's signed range is {length} bytes, got {len(data)}")
    return sm3(bytes(data[:length]))


def visit_tail(signature: bytes, sam_certificate: bytes) -> bytes:
    """The 254 bytes written at the signed length of a visit record (1639 EE / 3013 ED):
    the 64-byte signature then the 190-byte SAM certificate (CARD-SPEC.md §4.7)."""
    if len(signature) != SIGNATURE_LENGTH:
        raise InvalidValue("signature", f"an SM2 signature is {SIGNATURE_LENGTH} bytes, not {len(signature)}")
    if len(sam_certificate) != SAM_CERTIFICATE_LENGTH or sam_certificate[0] != SAM_FORMAT:
        raise InvalidValue(
            "sam_certificate", f"must be a {SAM_CERTIFICATE_LENGTH}-byte SAM certificate (format 24)"
        )
    return bytes(signature) + bytes(sam_certificate)


def verify_visit_record(kind: str, record: bytes, trust: TrustStore, today: dt.date) -> Certificate:
    """Check the signature of a whole EE (1893 B) or ED (3267 B) visit record and return the
    SAM certificate that vouches for it (DECISIONS.md §19).

    Raises :class:`CertificateError`: ``unsigned`` when the signature and certificate are all
    zero; any reason of :func:`verify_certificate` for the SAM certificate (kind ``"sam"``);
    ``forged`` when the signature does not verify under the SAM's public key."""
    length = _signed_length(kind)
    if len(record) != length + VISIT_TAIL_LENGTH:
        raise InvalidValue(
            "record", f"an {kind} file is {length + VISIT_TAIL_LENGTH} bytes, got {len(record)}"
        )
    record = bytes(record)
    signature = record[length : length + SIGNATURE_LENGTH]
    certificate = record[length + SIGNATURE_LENGTH :]
    if not any(signature) and not any(certificate):
        raise CertificateError("unsigned", f"the {kind} record carries no signature")
    cert = verify_certificate(certificate, trust, today, kind="sam")
    if not sm2.verify(cert.public_key, visit_digest(kind, record), signature):
        raise CertificateError("forged", f"the {kind} record's signature does not verify under {cert.title}")
    return cert
