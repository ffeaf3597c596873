"""The card's file system: MF / DF / EF and the four EF kinds the health-card profile uses.

Every mutating method checks everything first and only then changes bytes, so a refused
command never leaves a file half-written (DECISIONS.md §3, 6581).  Methods raise
:class:`Status` with the status word to answer; the command processor catches it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from healthcard.card.sw import SW
from healthcard.keys.primitives import Algorithm

#: access-condition bytes: anything else is the id of a key that must be authenticated
FREE = 0x00
PERSO = 0xFE  # "禁止改写": writable only while the card is CREATED (personalisation)
NEVER = 0xFF


class Status(Exception):
    """Raised inside the card; the command processor answers with ``sw``."""

    def __init__(self, sw: int) -> None:
        self.sw = sw
        super().__init__(f"{sw:04X}")


class FileKind(enum.IntEnum):
    """EF structure; the value is the type byte of CREATE FILE (docs/card.md)."""

    TRANSPARENT = 0x01  # READ/UPDATE BINARY
    LINEAR_FIXED = 0x02  # fixed-length records, by number
    CYCLIC = 0x03  # fixed-length records, record 1 is the newest
    TLV_RECORD = 0x04  # variable records tag|len|value, by number or by tag (identifier)


class SMLevel(enum.IntFlag):
    """Secure messaging an update of the file must use."""

    NONE = 0
    MAC = 1
    ENC = 2
    ENC_MAC = 3


class LifeCycle(enum.Enum):
    """Card life cycle (DECISIONS.md §5)."""

    CREATED = "CREATED"  # blank chip being personalised: CREATE FILE / WRITE KEY allowed
    ISSUED = "ISSUED"  # in a resident's hands: personalisation refused, PERSO files frozen
    BLOCKED = "BLOCKED"  # locked by the issuer: only SELECT, GET CHALLENGE and UNBLOCK


class KeyUse(enum.IntEnum):
    """Key-record use byte of WRITE KEY."""

    AUTH = 0x01
    MAINTENANCE = 0x02
    LOCK = 0x03
    PIN_UNBLOCK = 0x04
    TRANSPORT = 0x05
    CARD_MASTER = 0x06  # the card master key MKMF (key replacement after issuance)
    PIN = 0x10
    MASTER = 0x20  # a SAM's national level-1 master key: kid = version << 8 | SAM key index
    SIGN = 0x30  # a SAM's SM2 private key (visit-record signatures)


@dataclass
class Key:
    """A key (or the cardholder PIN) held in a DF."""

    kid: int
    use: KeyUse
    algorithm: Algorithm
    version: int
    value: bytes
    max_tries: int
    tries_left: int

    @property
    def blocked(self) -> bool:
        return self.tries_left == 0


@dataclass
class EF:
    fid: int
    kind: FileKind
    read: int
    update: int
    erase: int = NEVER
    sm: SMLevel = SMLevel.NONE
    size: int = 0  # transparent: bytes; TLV: capacity in bytes
    record_length: int = 0  # linear-fixed and cyclic
    record_count: int = 0  # linear-fixed and cyclic: the number of records
    data: bytearray = field(default_factory=bytearray)  # transparent content
    records: list[bytearray] = field(default_factory=list)  # records, [0] = record 1

    @classmethod
    def create(
        cls,
        fid: int,
        kind: FileKind,
        read: int,
        update: int,
        erase: int = NEVER,
        sm: SMLevel = SMLevel.NONE,
        size: int = 0,
        record_length: int = 0,
        record_count: int = 0,
        fill: int = 0x00,
    ) -> EF:
        ef = cls(fid, kind, read, update, erase, sm, size, record_length, record_count)
        if kind is FileKind.TRANSPARENT:
            ef.data = bytearray([fill]) * size
        elif kind is FileKind.LINEAR_FIXED:
            ef.records = [bytearray([fill]) * record_length for _ in range(record_count)]
        return ef

    # --- transparent -------------------------------------------------------------------
    def read_binary(self, offset: int, length: int, exact: bool) -> tuple[bytes, int]:
        self._need(FileKind.TRANSPARENT)
        if offset >= len(self.data):
            raise Status(SW.WRONG_P1P2)
        chunk = bytes(self.data[offset : offset + length])
        short = exact and len(chunk) < length
        return chunk, (SW.END_OF_FILE if short else SW.OK)

    def update_binary(self, offset: int, payload: bytes) -> None:
        self._need(FileKind.TRANSPARENT)
        if offset >= len(self.data) and payload:
            raise Status(SW.WRONG_P1P2)
        if offset + len(payload) > len(self.data):
            raise Status(SW.WRONG_LENGTH)
        self.data[offset : offset + len(payload)] = payload

    # --- records ---------------------------------------------------------------------
    def record(self, number: int) -> bytes:
        if self.kind is FileKind.TRANSPARENT:
            raise Status(SW.INCOMPATIBLE_FILE)
        if not 1 <= number <= len(self.records):
            raise Status(SW.RECORD_NOT_FOUND)
        return bytes(self.records[number - 1])

    def record_by_tag(self, tag: int) -> bytes:
        self._need(FileKind.TLV_RECORD)
        for rec in self.records:
            if rec and rec[0] == tag:
                return bytes(rec)
        raise Status(SW.RECORD_NOT_FOUND)

    def update_record(self, number: int, payload: bytes) -> None:
        if self.kind is FileKind.CYCLIC:
            raise Status(SW.INCORRECT_P1P2)  # cyclic files are written as "next" (P1=00, P2=03)
        old = self.record(number)
        if self.kind is FileKind.TLV_RECORD:
            # a TLV record keeps its tag and its fixed length for life (CARD-SPEC.md §3.2)
            if len(payload) != len(old):
                raise Status(SW.WRONG_LENGTH)
            if payload[:2] != old[:2]:
                raise Status(SW.WRONG_DATA)
        elif len(payload) != self.record_length:
            raise Status(SW.WRONG_LENGTH)
        self.records[number - 1] = bytearray(payload)

    def write_next(self, payload: bytes) -> None:
        """Cyclic: the new record becomes record 1; the oldest falls off when full."""
        self._need(FileKind.CYCLIC)
        if len(payload) != self.record_length:
            raise Status(SW.WRONG_LENGTH)
        self.records.insert(0, bytearray(payload))
        del self.records[self.record_count :]

    def append_record(self, payload: bytes) -> None:
        if self.kind is FileKind.CYCLIC:
            self.write_next(payload)
            return
        if self.kind is FileKind.TLV_RECORD:
            if len(payload) < 2 or payload[1] != len(payload) - 2:
                raise Status(SW.WRONG_DATA)
            if sum(map(len, self.records)) + len(payload) > self.size:
                raise Status(SW.NOT_ENOUGH_MEMORY)
        elif self.kind is FileKind.LINEAR_FIXED:
            raise Status(SW.NOT_ENOUGH_MEMORY)  # linear-fixed files are created full
        else:
            raise Status(SW.INCOMPATIBLE_FILE)
        self.records.append(bytearray(payload))

    def set_record_byte(self, number: int, value: int) -> None:
        """WRITE RECORD / ERASE RECORD of the one-byte DF03 index files (00 valid, FF invalid)."""
        self._need(FileKind.LINEAR_FIXED)
        self.record(number)
        self.records[number - 1] = bytearray([value]) * self.record_length

    def _need(self, kind: FileKind) -> None:
        if self.kind is not kind:
            raise Status(SW.INCOMPATIBLE_FILE)

    # --- image ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "fid": f"{self.fid:04X}",
            "kind": self.kind.name,
            "read": self.read,
            "update": self.update,
            "erase": self.erase,
            "sm": int(self.sm),
            "size": self.size,
            "record_length": self.record_length,
            "record_count": self.record_count,
        }
        if self.kind is FileKind.TRANSPARENT:
            out["data"] = self.data.hex()
        else:
            out["records"] = [r.hex() for r in self.records]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EF:
        return cls(
            fid=int(d["fid"], 16),
            kind=FileKind[d["kind"]],
            read=d["read"],
            update=d["update"],
            erase=d["erase"],
            sm=SMLevel(d["sm"]),
            size=d["size"],
            record_length=d["record_length"],
            record_count=d["record_count"],
            data=bytearray.fromhex(d.get("data", "")),
            records=[bytearray.fromhex(r) for r in d.get("records", [])],
        )


@dataclass
class DF:
    """A dedicated file (the MF is the root DF). ``fci_proprietary`` adds the empty A5 of
    MF and DDF1 seen in real traces (CARD-SPEC.md §3.1)."""

    fid: int
    name: bytes
    fci_proprietary: bool = False
    children: dict[int, DF | EF] = field(default_factory=dict)
    keys: dict[tuple[int, int], Key] = field(default_factory=dict)  # (use, kid) -> key
    parent: DF | None = field(default=None, repr=False, compare=False)

    def add(self, node: DF | EF) -> None:
        if node.fid in self.children or node.fid == self.fid:
            raise Status(SW.FILE_EXISTS)
        if isinstance(node, DF):
            node.parent = self
        self.children[node.fid] = node

    def key(self, use: KeyUse, kid: int) -> Key:
        try:
            return self.keys[(int(use), kid)]
        except KeyError:
            raise Status(SW.REFERENCED_DATA_NOT_FOUND) from None

    def key_of_use(self, use: KeyUse) -> Key:
        for (u, _), k in self.keys.items():
            if u == use:
                return k
        raise Status(SW.REFERENCED_DATA_NOT_FOUND)

    def walk(self) -> list[DF]:
        """This DF and every DF below it, depth first."""
        out = [self]
        for child in self.children.values():
            if isinstance(child, DF):
                out.extend(child.walk())
        return out

    def fci(self) -> bytes:
        body = bytes([0x84, len(self.name)]) + self.name
        if self.fci_proprietary:
            body += b"\xa5\x00"
        return bytes([0x6F, len(body)]) + body

    def to_dict(self) -> dict[str, Any]:
        """The public part (keys are sealed separately by :mod:`healthcard.card.image`)."""
        return {
            "fid": f"{self.fid:04X}",
            "name": self.name.hex(),
            "fci_proprietary": self.fci_proprietary,
            "children": [
                c.to_dict() | {"type": "DF" if isinstance(c, DF) else "EF"} for c in self.children.values()
            ],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DF:
        df = cls(int(d["fid"], 16), bytes.fromhex(d["name"]), d["fci_proprietary"])
        for c in d["children"]:
            df.add(DF.from_dict(c) if c["type"] == "DF" else EF.from_dict(c))
        return df

    def path(self) -> str:
        parts: list[str] = []
        node: DF | None = self
        while node is not None:
            parts.append(f"{node.fid:04X}")
            node = node.parent
        return "/".join(reversed(parts))
