"""The signed hot list (黑名单): chip serials of a province's cards that terminals must refuse.

The card centre lists a card when it is reported lost (挂失), replaced (补换卡) or cancelled (注销)
and takes a lost card off again when it is found (解挂).  Every change raises the province's
list version.  A terminal holds the lists offline and refuses a listed card after reading only
DDF1/EF05, the issuer file anyone may read (:meth:`HealthCardTerminal.open`).

::

    database ──full_list / delta_list──▶ HotList (unsigned)
                                   │ sign_hotlist(…, lambda m: centre.sign_as_issuer("41", m))
                                   ▼
              HotList (signed) ──encode──▶ bytes ──▶ TerminalHotList.load: split, verify, apply

The document (docs/hotlist.md, field by field) is canonical JSON — UTF-8, keys sorted, compact
separators, serials and certificate in upper-case hex, times ISO 8601 UTC with ``Z``::

    {"body":{"added":[…],"base":null,"format":"healthcard-hotlist/1","issued_at":"…",
             "province":"41","removed":[],"version":7},
     "certificate":"<180 bytes hex>","signature":"<64 bytes hex>"}

A *full* list (``base`` null) carries every listed card; a *delta* (``base`` = the version it
starts from) carries what was added and what was removed.  The signature is the province card
centre's SM2 signature (default user id) of the message ``SM3(body)``, ``body`` being the bytes
of the ``"body"`` value exactly as they stand in the document:

* a verifier checks the bytes it received and parses only those bytes, so what it acts on is
  what was signed, with no canonical re-encoding to get right (and none to pay for: ~2 s for a
  million cards);
* SM3 first, as for a visit record (DECISIONS.md §19), because the SM2 library hashes in pure
  Python at ~0.6 MB/s and a province's full list of a million cards is ~75 MB;
* the certificate stays outside the signed bytes because the signer hands it back with the
  signature; it needs no cover: the national root signed it, and the signature verifies only
  under its key.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from healthcard.errors import CertificateError, HotListError, InvalidValue
from healthcard.keys import certificates, sm2
from healthcard.keys.atomicfile import write_atomically
from healthcard.keys.certificates import ISSUER_CERTIFICATE_LENGTH, SIGNATURE_LENGTH, TrustStore
from healthcard.keys.keyset import province_code
from healthcard.keys.primitives import sm3

FORMAT = "healthcard-hotlist/1"
#: the terminal's own copy (:meth:`TerminalHotList.save`)
STATE_FORMAT = "healthcard-hotlist-terminal/1"
#: a chip serial is the 8-byte card diversification factor of the ATR (DECISIONS.md §2)
SERIAL_LENGTH = 8
#: DDF1/EF05 tag 08 卡号 is ``ans`` 18
CARD_NUMBER_LENGTH = 18

#: ``signer(message) -> (SM2 signature, issuer certificate)``, e.g. ``KeyCentre.sign_as_issuer``
Signer = Callable[[bytes], tuple[bytes, bytes]]

_UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=_UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
_BODY_FIELDS = frozenset({"format", "province", "version", "base", "issued_at", "added", "removed"})
# the document around the body, as json.dumps(sort_keys=True, separators=(",", ":")) writes it
_PREFIX = b'{"body":'
_TAIL = re.compile(
    rb',"certificate":"([0-9A-F]{%d})","signature":"([0-9A-F]{%d})"}'
    % (2 * ISSUER_CERTIFICATE_LENGTH, 2 * SIGNATURE_LENGTH)
)
_TAIL_LENGTH = len(b',"certificate":"","signature":""}') + 2 * (ISSUER_CERTIFICATE_LENGTH + SIGNATURE_LENGTH)


class HotListReason(StrEnum):
    """Why a card is on the list; the value is what the document carries."""

    LOST = "lost"  # reported lost (挂失): comes off again if found (解挂)
    REPLACED = "replaced"  # another chip now carries the card number (补卡 / 换卡)
    CANCELLED = "cancelled"  # 注销: death, emigration, wrong identity
    EXPIRED = "expired"  # past its validity; the card centre's life cycle does not list it today


_REASONS: dict[str, HotListReason] = {r.value: r for r in HotListReason}
# the terminal keeps a reason as one byte: its position here (never reorder, only append)
_REASON_CODES: tuple[HotListReason, ...] = tuple(HotListReason)
_REASON_CODE: dict[HotListReason, int] = {r: i for i, r in enumerate(_REASON_CODES)}


# --- values -------------------------------------------------------------------------------------


def _utc(field: str, value: object) -> dt.datetime:
    if type(value) is dt.datetime and value.tzinfo is _UTC:  # the usual case, a million times a list
        return value
    if not isinstance(value, dt.datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidValue(field, "must be a timezone-aware datetime (UTC)")
    return value.astimezone(_UTC)


def _check_serial(field: str, value: object) -> bytes:
    if not isinstance(value, bytes | bytearray) or len(value) != SERIAL_LENGTH:
        raise InvalidValue(field, f"a chip serial is {SERIAL_LENGTH} bytes")
    return bytes(value)


def _check_number(value: object) -> str:
    # printable ASCII (the citizen ID number): no control byte reaches a log line or a screen
    if not (
        isinstance(value, str)
        and 1 <= len(value) <= CARD_NUMBER_LENGTH
        and value.isascii()
        and value.isprintable()
    ):
        raise InvalidValue("card_number", f"must be 1 to {CARD_NUMBER_LENGTH} printable ASCII characters")
    return value


def _check_reason(value: object) -> HotListReason:
    reason = _REASONS.get(value) if isinstance(value, str) else None
    if reason is None:
        raise InvalidValue("reason", f"{value!r} is not one of {', '.join(_REASONS)}")
    return reason


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class HotListEntry:
    """One listed card: its chip serial (the ATR's diversification factor), its card number
    (DDF1/EF05 tag 08), why and since when (UTC)."""

    chip_serial: bytes
    card_number: str
    reason: HotListReason
    listed_at: dt.datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "chip_serial", _check_serial("chip_serial", self.chip_serial))
        _check_number(self.card_number)
        object.__setattr__(self, "reason", _check_reason(self.reason))
        object.__setattr__(self, "listed_at", _utc("listed_at", self.listed_at))


@dataclass(frozen=True, slots=True)
class HotList:
    """A province's hot list, full (``base`` None) or a delta from version ``base``.

    ``certificate`` (the signer's 180-byte issuer certificate) and ``signature`` (64-byte SM2)
    are empty until :func:`sign_hotlist`.  Construction checks the shape and raises
    :class:`InvalidValue`; :func:`decode` turns that into :class:`HotListError`."""

    province: str
    version: int
    base: int | None
    issued_at: dt.datetime
    added: tuple[HotListEntry, ...] = ()
    removed: tuple[bytes, ...] = ()
    certificate: bytes = b""
    signature: bytes = b""

    def __post_init__(self) -> None:
        if not isinstance(self.province, str) or len(self.province) != 2:
            raise InvalidValue("province", f"{self.province!r} is not a 2-digit province code")
        province_code(self.province)
        # version 0: a province that never listed a chip (its full list is empty); a delta from
        # the version it is at (base = version) is empty: "nothing changed since", also useful
        if not _is_int(self.version) or self.version < 0:
            raise InvalidValue("version", "a hot-list version is an integer from 0")
        if self.base is not None and (not _is_int(self.base) or not 0 <= self.base <= self.version):
            raise InvalidValue("base", f"a delta's base is a version from 0 up to its version {self.version}")
        if self.base == self.version and (self.added or self.removed):
            raise InvalidValue("base", f"a delta from version {self.base} to itself changes nothing")
        object.__setattr__(self, "issued_at", _utc("issued_at", self.issued_at))
        added = tuple(self.added)
        removed = tuple(_check_serial("removed", s) for s in self.removed)
        if not all(isinstance(e, HotListEntry) for e in added):
            raise InvalidValue("added", "must be HotListEntry values")
        listed = {e.chip_serial for e in added}
        if len(listed) != len(added):
            raise InvalidValue("added", "a chip serial is listed twice")
        if len(set(removed)) != len(removed):
            raise InvalidValue("removed", "a chip serial is removed twice")
        if self.base is None and removed:
            raise InvalidValue("removed", "a full list removes nothing: it replaces the terminal's list")
        both = listed.intersection(removed)
        if both:
            raise InvalidValue("removed", f"{min(both).hex().upper()} is both added and removed")
        object.__setattr__(self, "added", added)
        object.__setattr__(self, "removed", removed)
        certificate, signature = bytes(self.certificate), bytes(self.signature)
        if (certificate, signature) != (b"", b"") and (
            len(certificate) != ISSUER_CERTIFICATE_LENGTH or len(signature) != SIGNATURE_LENGTH
        ):
            raise InvalidValue(
                "signature",
                f"a signed list carries a {ISSUER_CERTIFICATE_LENGTH}-byte issuer certificate and a "
                f"{SIGNATURE_LENGTH}-byte signature; an unsigned one neither",
            )
        object.__setattr__(self, "certificate", certificate)
        object.__setattr__(self, "signature", signature)

    @property
    def full(self) -> bool:
        return self.base is None

    @property
    def signed(self) -> bool:
        return bool(self.signature)

    @property
    def title(self) -> str:
        """``"hot list 41 v7"`` / ``"hot list 41 delta 5→7"``, for messages."""
        if self.base is None:
            return f"hot list {self.province} v{self.version}"
        return f"hot list {self.province} delta {self.base}→{self.version}"

    def __repr__(self) -> str:
        # a million entries must not end up in a log line
        return (
            f"HotList({self.title}, issued {_format_time(self.issued_at)}, "
            f"{len(self.added)} added, {len(self.removed)} removed, "
            f"{'signed' if self.signed else 'unsigned'})"
        )


def _sorted(entries: Iterable[HotListEntry]) -> tuple[HotListEntry, ...]:
    # chip-serial order: the same database rows always make the same document
    return tuple(sorted(entries, key=lambda e: e.chip_serial))


def full_list(
    province: str, version: int, entries: Iterable[HotListEntry], issued_at: dt.datetime
) -> HotList:
    """The unsigned full list of ``province`` at ``version``: every card listed now."""
    return HotList(province, version, None, issued_at, _sorted(entries))


def delta_list(
    province: str,
    base: int,
    version: int,
    added: Iterable[HotListEntry],
    removed: Iterable[bytes],
    issued_at: dt.datetime,
) -> HotList:
    """The unsigned delta of ``province`` from version ``base`` to ``version``: cards listed
    since (or listed again with another reason) and chip serials taken off (解挂)."""
    return HotList(
        province, version, base, issued_at, _sorted(added), tuple(sorted(bytes(s) for s in removed))
    )


# --- the document -------------------------------------------------------------------------------


def _format_time(value: dt.datetime) -> str:
    # every datetime here is UTC already (_utc): "…+00:00" → "…Z"
    return value.isoformat()[:-6] + "Z"


def _row(serial: bytes, number: str, reason: HotListReason, listed_at: dt.datetime) -> list[str]:
    # the reason is a StrEnum: json writes its value
    return [serial.hex().upper(), number, reason, _format_time(listed_at)]


def _canonical(value: object) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _body(hotlist: HotList) -> bytes:
    return _canonical(
        {
            "format": FORMAT,
            "province": hotlist.province,
            "version": hotlist.version,
            "base": hotlist.base,
            "issued_at": _format_time(hotlist.issued_at),
            "added": [_row(e.chip_serial, e.card_number, e.reason, e.listed_at) for e in hotlist.added],
            "removed": [s.hex().upper() for s in hotlist.removed],
        }
    )


def signed_message(hotlist: HotList) -> bytes:
    """The 32-byte SM2 message of ``hotlist``: SM3 of its canonical body."""
    return sm3(_body(hotlist))


def sign_hotlist(unsigned: HotList, signer: Signer) -> HotList:
    """``unsigned`` signed by ``signer(message) -> (signature, issuer certificate)``, e.g.
    ``lambda m: centre.sign_as_issuer("41", m)``.  The certificate must be an issuer certificate
    of the list's province (checked here, so a wrong signer fails at the card centre, not at
    every terminal)."""
    signature, certificate = signer(signed_message(unsigned))
    cert = certificates.parse_certificate(certificate)
    if cert.kind != "issuer" or not cert.issuer_code.startswith(unsigned.province):
        raise InvalidValue(
            "signer", f"the {cert.title} cannot sign the hot list of province {unsigned.province}"
        )
    return HotList(
        unsigned.province,
        unsigned.version,
        unsigned.base,
        unsigned.issued_at,
        unsigned.added,
        unsigned.removed,
        certificate,
        signature,
    )


def encode(hotlist: HotList) -> bytes:
    """The signed document: canonical JSON, UTF-8, no trailing newline."""
    if not hotlist.signed:
        raise InvalidValue("signature", f"the {hotlist.title} is not signed: sign_hotlist first")
    tail = b',"certificate":"%s","signature":"%s"}' % (
        hotlist.certificate.hex().upper().encode(),
        hotlist.signature.hex().upper().encode(),
    )
    # the same bytes as _canonical({"body": …, "certificate": …, "signature": …}), written
    # without parsing the body again
    return _PREFIX + _body(hotlist) + tail


class _Malformed(Exception):
    """A field of the document is wrong; the caller turns it into HotListError."""


def _hex(field: str, value: object, length: int) -> bytes:
    if isinstance(value, str) and len(value) == 2 * length:
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            pass
        else:
            if len(raw) == length:  # fromhex skips spaces: the text length alone is not enough
                return raw
    raise _Malformed(f"{field} is not {2 * length} hex digits")


def _time(field: str, value: object) -> dt.datetime:
    if isinstance(value, str) and value.endswith("Z"):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is _UTC:  # what a trailing "Z" parses to
                return parsed
    raise _Malformed(f"{field} {value!r} is not an ISO 8601 UTC time ending in Z")


_Row = tuple[bytes, str, HotListReason, dt.datetime]


def _rows(field: str, rows: list[Any]) -> Iterator[_Row]:
    """Each ``[chip serial, card number, reason, listed at]`` of a list, checked."""
    for index, row in enumerate(rows):
        where = f"{field}[{index}]"
        if not isinstance(row, list) or len(row) != 4:
            raise _Malformed(f"{where} is not [chip serial, card number, reason, listed at]")
        serial, number, reason, listed_at = row
        try:
            yield (
                _hex(f"{where} chip serial", serial, SERIAL_LENGTH),
                _check_number(number),
                _check_reason(reason),
                _time(f"{where} listed at", listed_at),
            )
        except InvalidValue as error:
            raise _Malformed(f"{where} {error}") from None


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(bytes(data).decode("utf-8"))
    except UnicodeDecodeError:
        raise HotListError(f"{what}: not UTF-8") from None
    except ValueError as error:
        raise HotListError(f"{what}: not JSON ({error})") from None
    if not isinstance(value, dict):
        raise HotListError(f"{what}: not a JSON object")
    return value


def _int_field(fields: dict[str, Any], name: str) -> int:
    value = fields[name]
    if not _is_int(value):
        raise _Malformed(f"{name} {value!r} is not an integer")
    return int(value)


@dataclass(frozen=True, slots=True)
class _Signed:
    """A document split and parsed: the list without its entries, the entries' JSON rows (not
    yet checked: a terminal packs a million of them straight from the rows, never making a
    :class:`HotListEntry` of each), and the message the signature must cover."""

    header: HotList
    rows: list[Any]
    message: bytes

    def entries(self) -> Iterator[_Row]:
        return _rows("added", self.rows)

    def hotlist(self) -> HotList:
        """The whole list; :class:`HotListError` when an entry is malformed or the entries
        contradict each other (a serial twice, both added and removed)."""
        h = self.header
        try:
            entries = tuple(HotListEntry(*row) for row in self.entries())
            return HotList(
                h.province, h.version, h.base, h.issued_at, entries, h.removed, h.certificate, h.signature
            )
        except (_Malformed, InvalidValue) as error:
            raise HotListError(f"hot list: {error}") from None


def _split(data: bytes) -> _Signed:
    data = bytes(data).rstrip(b" \t\r\n")
    tail = _TAIL.fullmatch(data, len(data) - _TAIL_LENGTH) if len(data) > _TAIL_LENGTH else None
    if not data.startswith(_PREFIX) or tail is None:
        raise HotListError(
            f'hot list: not a signed {FORMAT} document: {{"body":{{…}},"certificate":"<360 hex>",'
            f'"signature":"<128 hex>"}} in canonical JSON, as encode() writes it'
        )
    body = data[len(_PREFIX) : len(data) - _TAIL_LENGTH]
    fields = _json_object(body, "hot list body")
    if fields.get("format") != FORMAT:
        raise HotListError(f"hot list: format {fields.get('format')!r}, expected {FORMAT!r}")
    if set(fields) != _BODY_FIELDS:
        missing, extra = sorted(_BODY_FIELDS - set(fields)), sorted(set(fields) - _BODY_FIELDS)
        problems = [
            f"{what} {', '.join(names)}"
            for what, names in (("missing", missing), ("unknown", extra))
            if names
        ]
        raise HotListError(f"hot list: fields {'; '.join(problems)}")
    try:
        base = fields["base"]
        if base is not None and not _is_int(base):
            raise _Malformed(f"base {base!r} is not an integer or null")
        removed, added = fields["removed"], fields["added"]
        if not isinstance(removed, list) or not isinstance(added, list):
            raise _Malformed("added and removed are lists")
        header = HotList(
            province=fields["province"],
            version=_int_field(fields, "version"),
            base=base,
            issued_at=_time("issued_at", fields["issued_at"]),
            removed=tuple(_hex(f"removed[{i}]", s, SERIAL_LENGTH) for i, s in enumerate(removed)),
            certificate=bytes.fromhex(tail[1].decode()),
            signature=bytes.fromhex(tail[2].decode()),
        )
    except (_Malformed, InvalidValue) as error:
        raise HotListError(f"hot list: {error}") from None
    return _Signed(header, added, sm3(body))


def decode(data: bytes) -> HotList:
    """Parse a signed hot-list document (:func:`encode`) without verifying it; anything
    malformed is a :class:`HotListError` that says which field."""
    return _split(data).hotlist()


def _verify(hotlist: HotList, message: bytes, trust: TrustStore, today: dt.date) -> None:
    if not hotlist.signed:
        raise CertificateError("unsigned", f"the {hotlist.title} carries no signature")
    cert = certificates.verify_certificate(hotlist.certificate, trust, today, kind="issuer")
    if not cert.issuer_code.startswith(hotlist.province):
        raise CertificateError(
            "forged", f"the {hotlist.title} is signed by the {cert.title}, not by its province's card centre"
        )
    if not sm2.verify(cert.public_key, message, hotlist.signature):
        raise CertificateError(
            "forged", f"the {hotlist.title} signature does not verify under the {cert.title}"
        )


def verify(hotlist: HotList, trust: TrustStore, today: dt.date) -> None:
    """Check that the card centre of the list's province signed it.

    :class:`CertificateError` reasons: ``unsigned``; any of
    :func:`~healthcard.keys.certificates.verify_certificate` for the issuer certificate (kind
    ``issuer``, a trusted national root, valid on ``today``); ``forged`` when the certificate's
    issuer code is not of the list's province, or the signature does not verify under it."""
    _verify(hotlist, signed_message(hotlist), trust, today)


def decode_verified(data: bytes, *, trust: TrustStore, today: dt.date) -> HotList:
    """:func:`decode` and :func:`verify` in one step, checking the signature over the bytes
    received (no re-encoding)."""
    signed = _split(data)
    _verify(signed.header, signed.message, trust, today)
    return signed.hotlist()


# --- the terminal's copy ---------------------------------------------------------------------------

# A listed card costs one dict slot: the 8-byte serial as key and one packed value — reason code
# (1 byte), listed-at in microseconds since 1970 (8 bytes, signed), the card number in ASCII:
# ~140 bytes a card in CPython against ~260 for a tuple of str, str and datetime.
_PACK = struct.Struct(">Bq")


def _pack(number: str, reason: HotListReason, listed_at: dt.datetime) -> bytes:
    micros = (listed_at - _EPOCH) // _MICROSECOND
    return _PACK.pack(_REASON_CODE[reason], micros) + number.encode("ascii")


def _unpacked(serial: bytes, packed: bytes) -> _Row:
    code, micros = _PACK.unpack_from(packed)
    return (
        serial,
        packed[_PACK.size :].decode("ascii"),
        _REASON_CODES[code],
        _EPOCH + dt.timedelta(microseconds=micros),
    )


def _packed(rows: Iterable[_Row], count: int) -> dict[bytes, bytes]:
    entries = {serial: _pack(number, reason, at) for serial, number, reason, at in rows}
    if len(entries) != count:
        raise _Malformed("a chip serial is listed twice")
    return entries


class _Province:
    """One province's list as a terminal holds it."""

    __slots__ = ("entries", "issued_at", "version")

    def __init__(self, version: int, issued_at: dt.datetime, entries: dict[bytes, bytes]) -> None:
        self.version = version
        self.issued_at = issued_at
        self.entries = entries


@dataclass(frozen=True, slots=True)
class HotListHit:
    """A card found on a terminal's hot list: whose list, which version, the entry."""

    province: str
    version: int
    entry: HotListEntry


class TerminalHotList:
    """What a terminal keeps: per province, the version it holds and the listed chip serials.

    :meth:`load` takes signed documents (full lists and deltas) and verifies each before it
    changes anything; a refused document leaves the held lists as they were."""

    def __init__(self) -> None:
        self._provinces: dict[str, _Province] = {}

    def __repr__(self) -> str:
        held = ", ".join(f"{p} v{s.version} ({len(s.entries)})" for p, s in sorted(self._provinces.items()))
        return f"TerminalHotList({held or 'empty'})"

    def __len__(self) -> int:
        return sum(len(s.entries) for s in self._provinces.values())

    def provinces(self) -> tuple[str, ...]:
        return tuple(sorted(self._provinces))

    def version(self, province: str) -> int | None:
        """The version held for ``province``, None before its first full list."""
        held = self._provinces.get(province)
        return None if held is None else held.version

    def issued_at(self, province: str) -> dt.datetime | None:
        """When the card centre issued the held version: how fresh the terminal's copy is."""
        held = self._provinces.get(province)
        return None if held is None else held.issued_at

    def count(self, province: str) -> int:
        held = self._provinces.get(province)
        return 0 if held is None else len(held.entries)

    def find(self, chip_serial: bytes) -> HotListHit | None:
        """The hit for ``chip_serial``, or None when no held list names it: one dict look-up
        per province held (at most 34)."""
        serial = bytes(chip_serial)
        for province, held in self._provinces.items():
            packed = held.entries.get(serial)
            if packed is not None:
                return HotListHit(province, held.version, HotListEntry(*_unpacked(serial, packed)))
        return None

    def lookup(self, chip_serial: bytes) -> HotListEntry | None:
        """The entry of ``chip_serial``, or None when the card is not listed."""
        hit = self.find(chip_serial)
        return None if hit is None else hit.entry

    def __contains__(self, chip_serial: object) -> bool:
        return isinstance(chip_serial, bytes) and any(
            chip_serial in held.entries for held in self._provinces.values()
        )

    # --- loading --------------------------------------------------------------------------
    def load(self, data: bytes, *, trust: TrustStore, today: dt.date) -> None:
        """Verify and apply a signed document (:func:`encode`).

        A full list replaces the province's list (one older than the held version is refused);
        a delta applies only on top of the version it starts from.  Raises
        :class:`HotListError` (malformed, out of order) or :class:`CertificateError` (see
        :func:`verify`); either way nothing held changes."""
        signed = _split(data)
        _verify(signed.header, signed.message, trust, today)
        if signed.header.base is None:
            self._refuse_older(signed.header)  # before packing a million rows for nothing
            try:
                entries = _packed(signed.entries(), len(signed.rows))
            except _Malformed as error:
                raise HotListError(f"hot list: {error}") from None
            self._replace(signed.header, entries)
        else:
            self._apply_delta(signed.hotlist())

    def _refuse_older(self, full: HotList) -> None:
        held = self._provinces.get(full.province)
        if held is not None and full.version < held.version:
            raise HotListError(
                f"the {full.title} is older than the version {held.version} this terminal holds"
            )

    def _replace(self, full: HotList, entries: dict[bytes, bytes]) -> None:
        self._refuse_older(full)
        self._provinces[full.province] = _Province(full.version, full.issued_at, entries)

    def _apply_delta(self, delta: HotList) -> None:
        held = self._provinces.get(delta.province)
        if held is None:
            raise HotListError(
                f"the {delta.title} needs version {delta.base}; this terminal holds no list of "
                f"province {delta.province}: load the full list"
            )
        if held.version != delta.base:
            raise HotListError(
                f"the {delta.title} needs version {delta.base}; this terminal holds {held.version}: "
                f"load the full list"
            )
        # nothing below can fail: the delta was checked whole before the first change
        for serial in delta.removed:
            held.entries.pop(serial, None)  # not held (e.g. removed twice by the centre): nothing to do
        for e in delta.added:
            held.entries[e.chip_serial] = _pack(e.card_number, e.reason, e.listed_at)
        held.version, held.issued_at = delta.version, delta.issued_at

    # --- the terminal's file --------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the held lists atomically (docs/hotlist.md, "The terminal's copy"): a header
        line with the format and the SM3 of the body, then the body line, both JSON."""
        body = _canonical(
            {
                province: {
                    "version": held.version,
                    "issued_at": _format_time(held.issued_at),
                    "entries": [_row(*_unpacked(s, p)) for s, p in held.entries.items()],
                }
                for province, held in self._provinces.items()
            }
        )
        header = _canonical({"format": STATE_FORMAT, "sm3": sm3(body).hex().upper()})
        write_atomically(path, header + b"\n" + body + b"\n", mode=0o644)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> TerminalHotList:
        """Read a file :meth:`save` wrote; a damaged one is a :class:`HotListError` (load the
        full lists again).  The checksum finds damage, not tampering: the file is the
        terminal's own, as trusted as its program."""
        name = Path(path).name
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            raise HotListError(f"terminal hot list {name}: cannot read it ({error.strerror})") from None
        head, newline, rest = data.partition(b"\n")
        body = rest.removesuffix(b"\n")
        header = _json_object(head, f"terminal hot list {name}")
        if header.get("format") != STATE_FORMAT:
            raise HotListError(
                f"terminal hot list {name}: format {header.get('format')!r}, expected {STATE_FORMAT!r}"
            )
        if not newline or header.get("sm3") != sm3(body).hex().upper():
            raise HotListError(
                f"terminal hot list {name}: damaged (checksum mismatch): load the full lists again"
            )
        state = _json_object(body, f"terminal hot list {name}")
        out = cls()
        try:
            for province, held in state.items():
                if not isinstance(held, dict) or set(held) != {"version", "issued_at", "entries"}:
                    raise _Malformed(f"province {province!r} is not {{version, issued_at, entries}}")
                rows = held["entries"]
                if not isinstance(rows, list):
                    raise _Malformed(f"province {province!r} entries is not a list")
                # the same checks as a full list's
                header_list = HotList(
                    province, _int_field(held, "version"), None, _time("issued_at", held["issued_at"])
                )
                out._replace(header_list, _packed(_rows(f"province {province} entries", rows), len(rows)))
        except (_Malformed, InvalidValue) as error:
            raise HotListError(f"terminal hot list {name}: {error}") from None
        return out


__all__ = [
    "FORMAT",
    "STATE_FORMAT",
    "HotList",
    "HotListEntry",
    "HotListHit",
    "HotListReason",
    "Signer",
    "TerminalHotList",
    "decode",
    "decode_verified",
    "delta_list",
    "encode",
    "full_list",
    "sign_hotlist",
    "signed_message",
    "verify",
]
