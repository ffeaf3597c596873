"""Personalisation: turn a blank chip into a health card by APDUs alone (DECISIONS.md §6).

The :class:`Personaliser` drives any ``transmit`` callable (the in-process card, a PC/SC
reader, a vpcd-bridged image) through: SELECT MF → WRITE KEY (MF keys) → for each DF:
CREATE FILE (DF) → WRITE KEY (its keys) → CREATE FILE (its EFs) → APPEND RECORD / UPDATE
BINARY (the holder's data) → … → END PERSONALISATION.  Everything is encoded before the first
APDU, so bad holder data fails with a field-named error and the chip stays untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache

from healthcard.card import codecs
from healthcard.card.apdu import CommandAPDU, ResponseAPDU
from healthcard.card.atr import KeyInfo
from healthcard.card.filesystem import FileKind, KeyUse
from healthcard.card.profile import AIDS, DDF1_NAME, DF_FIDS, EFSpec, Item, Profile
from healthcard.card.sw import exception_for, is_success
from healthcard.errors import EncodingError, InvalidValue
from healthcard.keys import recipes
from healthcard.keys.keyset import CardKeySet
from healthcard.keys.primitives import Algorithm
from healthcard.keys.table import KEY_TABLE
from healthcard.keys.table import KeyUse as TableUse

Value = str | bytes | int

_USE = {
    TableUse.AUTH: KeyUse.AUTH,
    TableUse.MAINTENANCE: KeyUse.MAINTENANCE,
    TableUse.LOCK: KeyUse.LOCK,
    TableUse.PIN_UNBLOCK: KeyUse.PIN_UNBLOCK,
    TableUse.MASTER: KeyUse.CARD_MASTER,
    TableUse.TRANSPORT: KeyUse.TRANSPORT,
}
AUTH_TRIES = 15


@dataclass
class CardContents:
    """What goes on a card: TLV items by ``"DF/EF"`` and item name, the photo (JPEG bytes),
    allergies (allergen, reaction) and immunizations (vaccine, YYYYMMDD), newest first."""

    items: dict[str, dict[str, Value]] = field(default_factory=dict)
    photo: bytes = b""
    allergies: list[tuple[str, str]] = field(default_factory=list)
    immunizations: list[tuple[str, str]] = field(default_factory=list)
    #: optional cardholder PIN (DECISIONS.md §7), 6 digits; out of the repr (logs, tracebacks)
    pin: str | None = field(default=None, repr=False)

    def value(self, df: str, ef: str, name: str) -> Value | None:
        return self.items.get(f"{df}/{ef}", {}).get(name)


def empty_value(item: Item) -> bytes:
    """The bytes of an item nobody filled in: ``00`` for ans/b, ``F…`` for cn; medical-alert
    flags are ``FF`` "not recorded" (DECISIONS.md §8)."""
    if item.coding == "cn" or item.valueset == "alert_flag":
        return b"\xff" * item.length
    return bytes(item.length)


def encode_item(item: Item, value: Value | None) -> bytes:
    if value is None or value == "":
        return empty_value(item)
    return codecs.encode(f"{item.df}/{item.ef}/{item.name}", item.coding, value, item.length)


def tlv(item: Item, value: Value | None) -> bytes:
    assert item.tag is not None
    return bytes([item.tag, item.length]) + encode_item(item, value)


def photo_file(photo: bytes, capacity: int = 3074) -> bytes:
    """DDF1/EF07 content: 2-byte big-endian length + JPEG (CARD-SPEC.md §4.3)."""
    if len(photo) + 2 > capacity - 2 and photo:
        raise InvalidValue("DDF1/EF07/photo", f"{len(photo)} bytes, the card holds at most {capacity - 4}")
    if photo and not photo.startswith(b"\xff\xd8"):
        raise InvalidValue("DDF1/EF07/photo", "not a JPEG (no FF D8 start-of-image marker)")
    return len(photo).to_bytes(2, "big") + photo  # an empty photo is a zero length field


def cyclic_record(items: Sequence[Item], values: Sequence[Value], length: int) -> bytes:
    out = bytearray(length)
    for item, value in zip(items, values, strict=True):
        assert item.offset is not None
        out[item.offset : item.offset + item.length] = encode_item(item, value)
    return bytes(out)


def create_file_data(spec: EFSpec) -> bytes:
    """CREATE FILE data of an EF (docs/card.md)."""
    fixed = spec.kind in (FileKind.LINEAR_FIXED, FileKind.CYCLIC)
    param = spec.record_count if fixed else spec.size
    return (
        bytes([spec.kind])
        + spec.fid.to_bytes(2, "big")
        + param.to_bytes(2, "big")
        + bytes([spec.record_length, spec.read, spec.update, spec.erase, int(spec.sm)])
    )


def create_df_data(fid: int, name: bytes) -> bytes:
    return bytes([0x38]) + fid.to_bytes(2, "big") + bytes(7) + bytes([len(name)]) + name


def key_record(kid: int, use: KeyUse, algorithm: Algorithm, version: int, tries: int, value: bytes) -> bytes:
    return bytes([kid, use, algorithm, version, tries, len(value)]) + value


@dataclass(frozen=True)
class _Layout:
    """What the personaliser reads of a profile, worked out once per profile: ``Profile.files()``
    and ``Profile.items()`` rebuild their lists on every call, and a card needs them dozens of
    times (``make bench``, "Issuance")."""

    files: tuple[EFSpec, ...]
    by_df: dict[str, tuple[EFSpec, ...]]
    items: dict[str, tuple[Item, ...]]  # "DF/EF" -> its TLV items, in profile order
    names: dict[str, frozenset[str]]  # "DF/EF" -> the names of its items


@cache
def _layout(profile: Profile) -> _Layout:
    files = tuple(profile.files())
    items = {f"{f.df}/{f.name}": tuple(profile.items(f.df, f.name)) for f in files}
    return _Layout(
        files,
        {df: tuple(f for f in files if f.df == df) for df in DF_FIDS},
        items,
        {key: frozenset(i.name for i in found) for key, found in items.items()},
    )


def key_records(keys: CardKeySet, df: str) -> list[bytes]:
    """The WRITE KEY records of the card keys that ``df`` holds, in key-table order (the chip's
    transport key is the factory's, never rewritten).  Every record carries the key-version byte
    the card's ATR will announce (DECISIONS.md §17)."""
    version = KeyInfo(keys.algorithm, keys.version, keys.city_level).version_byte
    return [
        key_record(spec.kid, _USE[spec.use], keys.algorithm, version, AUTH_TRIES, keys[spec.name])
        for spec in KEY_TABLE
        if spec.df == df and spec.use is not TableUse.TRANSPORT and spec.name in keys.keys
    ]


def write_key_command(
    transport_key: bytes, challenge: bytes, record: bytes, algorithm: Algorithm = Algorithm.SM4
) -> CommandAPDU:
    """WRITE KEY ``84 D4 00 00 Lc E(Ks, L ‖ record ‖ pad) ‖ MAC`` under the chip's transport key,
    ``Ks = D(TK, challenge)`` (DECISIONS.md §6, §13, §16): the record never crosses in clear."""
    ks = recipes.session_key(transport_key, challenge, algorithm)
    header = bytes((0x84, 0xD4, 0, 0))
    return CommandAPDU(0x84, 0xD4, 0, 0, recipes.sm_wrap(ks, header, record, algorithm))


_GET_CHALLENGE = bytes.fromhex("0084000008")
_WRITE_KEY = bytes((0x84, 0xD4, 0, 0))
_SELECT = bytes((0x00, 0xA4, 0, 0))
_CREATE = bytes((0x80, 0xE0, 0, 0))
_APPEND = bytes((0x00, 0xE2, 0, 0))
_END = bytes((0x80, 0xE6, 0, 0))


class Personaliser:
    """Personalises one blank chip through ``transmit``."""

    def __init__(
        self, transmit: Callable[[bytes], bytes], transport_key: bytes, algorithm: Algorithm = Algorithm.SM4
    ) -> None:
        self._transmit = transmit
        self._transport_key = transport_key
        self._transport: recipes.Diversifier | None = None  # D(TK, ·), made at the first WRITE KEY
        self.algorithm = algorithm
        self.apdus = 0

    def send(self, cmd: CommandAPDU) -> bytes:
        return self._exchange(cmd.to_bytes())

    def _exchange(self, raw: bytes) -> bytes:
        self.apdus += 1
        response = self._transmit(raw)
        if len(response) < 2:
            ResponseAPDU.parse(response)  # raises, as it always did
        sw = int.from_bytes(response[-2:], "big")
        if not is_success(sw):
            raise exception_for(sw)
        return bytes(response[:-2])

    def _send(self, header: bytes, data: bytes = b"") -> bytes:
        """``send(CommandAPDU(*header, data))`` for the short case-1/case-3 commands of
        personalisation: the same bytes, without building and encoding a CommandAPDU."""
        if len(data) > 255:
            return self.send(CommandAPDU(header[0], header[1], header[2], header[3], data))
        return self._exchange(header + bytes((len(data),)) + data if data else header)

    def write_key(self, record: bytes) -> None:
        challenge = self._exchange(_GET_CHALLENGE)
        if self._transport is None:
            self._transport = recipes.Diversifier(self._transport_key, self.algorithm)
        ks = self._transport.diversify(challenge)  # = recipes.session_key(TK, challenge, algorithm)
        self._send(_WRITE_KEY, recipes.sm_wrap(ks, _WRITE_KEY, record, self.algorithm))

    def plan(self, profile: Profile, contents: CardContents) -> dict[str, list[bytes]]:
        """Encode everything first: per ``"DF/EF"`` the records (or the file content) to write.

        Raises :class:`EncodingError` naming the first bad item; nothing has been sent."""
        layout = _layout(profile)
        for key, values in contents.items.items():
            if key not in layout.names:
                raise InvalidValue(key, "no such file in the profile")
            names = layout.names[key]
            for name in values:
                if name not in names:
                    raise InvalidValue(f"{key}/{name}", "no such data item in this file")
        plan: dict[str, list[bytes]] = {}
        for spec in layout.files:
            key = f"{spec.df}/{spec.name}"
            if spec.kind is FileKind.TLV_RECORD:
                values = contents.items.get(key, {})
                plan[key] = [tlv(i, values.get(i.name)) for i in layout.items[key]]
            elif spec.kind is FileKind.CYCLIC:
                rows = contents.allergies if spec.name == "EF07" else contents.immunizations
                if len(rows) > spec.record_count:
                    raise InvalidValue(key, f"{len(rows)} entries, the card keeps {spec.record_count}")
                items = layout.items[key]
                # oldest first, so that the newest ends up as record 1
                plan[key] = [cyclic_record(items, row, spec.record_length) for row in reversed(rows)]
            elif key == "DDF1/EF07":
                plan[key] = [photo_file(contents.photo, spec.size)]
        if contents.pin is not None and (len(contents.pin) != 6 or not contents.pin.isdigit()):
            raise EncodingError("pin", "the cardholder PIN is 6 digits")
        return plan

    def run(self, profile: Profile, keys: Mapping[str, bytes] | CardKeySet, contents: CardContents) -> int:
        """Personalise with the card's key set (a plain mapping: version 1 in the personaliser's
        algorithm); returns the number of APDUs sent."""
        if not isinstance(keys, CardKeySet):
            keys = CardKeySet(b"", 1, self.algorithm, False, keys)
        plan = self.plan(profile, contents)
        layout = _layout(profile)
        self._send(_SELECT, bytes.fromhex("3F00"))
        self._install_keys("MF", keys, contents.pin)
        for df in ("DDF1", "DF01", "DF02", "DF03"):
            if df != "DDF1":  # DF01..DF03 live inside DDF1
                self._send(_SELECT, bytes.fromhex("DDF1"))
            name = DDF1_NAME if df == "DDF1" else AIDS[df]
            self._send(_CREATE, create_df_data(DF_FIDS[df], name))
            self._install_keys(df, keys, None)
            for spec in layout.by_df[df]:
                self._send(_CREATE, create_file_data(spec))
                records = plan.get(f"{df}/{spec.name}", [])
                if not records:
                    continue
                self._send(_SELECT, spec.fid.to_bytes(2, "big"))
                if spec.kind is FileKind.TRANSPARENT:
                    content = records[0]
                    for off in range(0, len(content), 0xF0):
                        self._send(bytes((0x00, 0xD6, off >> 8, off & 0xFF)), content[off : off + 0xF0])
                else:
                    for record in records:
                        self._send(_APPEND, record)
        self._send(_END)
        return self.apdus

    def _install_keys(self, df: str, keys: CardKeySet, pin: str | None) -> None:
        for record in key_records(keys, df):
            self.write_key(record)
        if pin is not None:
            self.write_key(key_record(0x01, KeyUse.PIN, self.algorithm, 1, 3, bytes.fromhex(pin)))
