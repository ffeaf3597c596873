"""Command and response APDUs (ISO/IEC 7816-3 §12.1, 7816-4 §5): cases 1–4, short and extended.

``CommandAPDU.parse`` is what the card runs on every byte string it receives; it raises
:class:`MalformedAPDU` carrying the status word to answer (6700 for a length mismatch), never
anything else, so the command processor can turn any input into a status word.
"""

from __future__ import annotations

from dataclasses import dataclass

from healthcard.card.sw import SW


class MalformedAPDU(Exception):
    """Raised by :meth:`CommandAPDU.parse`; ``sw`` is what the card answers."""

    def __init__(self, sw: SW, reason: str) -> None:
        self.sw = sw
        super().__init__(reason)


@dataclass(frozen=True)
class CommandAPDU:
    """A command. ``le`` is ``None`` when absent, else the number of bytes expected
    (256 for a short ``00``, 65536 for an extended ``0000``)."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None
    extended: bool = False

    @property
    def case(self) -> int:
        """ISO case: 1 no data no Le, 2 Le only, 3 data only, 4 both."""
        return (3 if self.data else 1) + (1 if self.le is not None else 0)

    @property
    def header(self) -> bytes:
        return bytes((self.cla, self.ins, self.p1, self.p2))

    def to_bytes(self) -> bytes:
        """Encode, choosing extended length when the data or Le need it (or when asked)."""
        extended = self.extended or len(self.data) > 255 or (self.le is not None and self.le > 256)
        out = bytearray(self.header)
        if len(self.data) > 65535 or (self.le is not None and not 0 < self.le <= 65536):
            raise ValueError("APDU data or Le out of range")
        if extended:
            if self.data:
                out += b"\x00" + len(self.data).to_bytes(2, "big") + self.data
            if self.le is not None:
                le = (self.le % 65536).to_bytes(2, "big")
                out += le if self.data else b"\x00" + le
        else:
            if self.data:
                out += bytes((len(self.data),)) + self.data
            if self.le is not None:
                out.append(self.le % 256)
        return bytes(out)

    @classmethod
    def parse(cls, raw: bytes) -> CommandAPDU:
        """Decode any byte string into a command or raise :class:`MalformedAPDU`."""
        if len(raw) < 4:
            raise MalformedAPDU(SW.WRONG_LENGTH, "shorter than a header")
        cla, ins, p1, p2 = raw[0], raw[1], raw[2], raw[3]
        body = raw[4:]
        n = len(body)
        if n == 0:  # case 1
            return cls(cla, ins, p1, p2)
        if n == 1:  # case 2S
            return cls(cla, ins, p1, p2, le=body[0] or 256)
        if body[0] != 0:  # short Lc
            lc = body[0]
            if n == 1 + lc:  # case 3S
                return cls(cla, ins, p1, p2, body[1:])
            if n == 2 + lc:  # case 4S
                return cls(cla, ins, p1, p2, body[1:-1], le=body[-1] or 256)
            raise MalformedAPDU(SW.WRONG_LENGTH, "Lc does not match the data length")
        # body[0] == 0 and n >= 2: extended length
        if n == 3:  # case 2E
            return cls(cla, ins, p1, p2, le=int.from_bytes(body[1:3], "big") or 65536, extended=True)
        if n < 3:
            raise MalformedAPDU(SW.WRONG_LENGTH, "truncated extended length")
        lc = int.from_bytes(body[1:3], "big")
        if lc == 0:
            raise MalformedAPDU(SW.WRONG_LENGTH, "extended Lc of zero")
        if n == 3 + lc:  # case 3E
            return cls(cla, ins, p1, p2, body[3:], extended=True)
        if n == 5 + lc:  # case 4E
            le = int.from_bytes(body[-2:], "big") or 65536
            return cls(cla, ins, p1, p2, body[3:-2], le=le, extended=True)
        raise MalformedAPDU(SW.WRONG_LENGTH, "extended Lc does not match the data length")

    def __str__(self) -> str:
        return self.to_bytes().hex().upper()


@dataclass(frozen=True)
class ResponseAPDU:
    """A response: data then SW1 SW2."""

    data: bytes
    sw: int

    @property
    def sw1(self) -> int:
        return self.sw >> 8

    @property
    def sw2(self) -> int:
        return self.sw & 0xFF

    def to_bytes(self) -> bytes:
        return self.data + self.sw.to_bytes(2, "big")

    @classmethod
    def parse(cls, raw: bytes) -> ResponseAPDU:
        if len(raw) < 2:
            raise ValueError("a response needs at least SW1 SW2")
        return cls(bytes(raw[:-2]), int.from_bytes(raw[-2:], "big"))

    def __str__(self) -> str:
        return f"{self.data.hex().upper()} {self.sw:04X}".strip()
