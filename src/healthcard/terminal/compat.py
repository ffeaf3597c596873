"""The national C SDK's names and return codes over :class:`HealthCardTerminal` (CARD-SPEC.md §7.1–7.2).

Hospital software written against ``MHC_CardInterface.h`` (``iR_DDF1EF05Info`` …
``iW_DF03ED_ALLInfo``) can call the same names here and get the same ``IRV_*`` codes.  The only
change is the one Python needs — output parameters become the return value:

* every ``iR_…`` returns ``(rc, values)``: ``values`` is a tuple of strings in the SDK's parameter
  order, as the C SDK fills its ``char*`` buffers — ``ans`` items as text, ``cn`` items as digits
  with the ``F`` padding trimmed, ``b`` items as upper-case hex.  On failure every string is
  ``""`` (the tuple keeps its length, so ``rc, (xm, xb, mz, csrq, sfzh) = …`` always unpacks).
  ``iR_DDF1EF07Info`` is the exception: the photo buffer is ``bytes`` (2-byte length + JPEG);
* every ``iW_…`` / ``iErase_…`` takes the SDK's input parameters (no ``hDev``) in the SDK's order
  — the data items as strings, in the same codings — and returns ``rc``.  Like the C SDK, an
  ``iW_`` of a TLV file writes every item of the file; ``""`` writes an item empty;
* ``rc`` is an :class:`IRV`, an ``int``: ``0`` (``IRV_OK``) or an error code.  No SDK function
  raises: bad arguments give ``IRV_PARA_ERR``, card trouble the code of §7.2 (one table,
  :func:`irv_for`), and anything unforeseen ``IRV_DEBUGERR``.  The exception behind the last
  non-zero code is kept in :attr:`NationalSdk.last_error` for logs.

The order of a TLV file's parameters is the order of its records in the profile
(:func:`params`), so it cannot drift from the card layout.

Visit records (DF03).  The SDK rule (S6) is "在执行函数前，需要调用iR_DF03EF05/06Info，获得记录有效
标志。只有有效标志为0x00的记录才能读写": only a record whose index flag is ``00`` may be read or
written.  The C SDK left that check commented out; here it is enforced on reads *and* writes —
``iR_/iW_DF03EEInfo``, ``…EDInfo`` and the ``_ALLInfo`` calls answer ``IRV_RCINVALID`` for a record
marked ``FF`` and send nothing to the file.  A caller marks a slot valid with
``iW_DF03EF05Info(n)`` / ``iW_DF03EF06Info(n)`` first (or uses the typed
``HealthCardTerminal.write_outpatient_record``, which picks the slot and signs the index itself).
Positions and lengths are card bytes, bounded by the data part of the file — ``nPos + nLen`` at
most 1639 (EE) / 3013 (ED), so the signature and SAM certificate tail stays the SAM's (the C
SDK's read checks 3113 for ED, a typo; both directions use 3013 here).

``nStyle`` as the C SDK treats it: reads give ``AN_style`` text, ``CN_style`` digits trimmed at
the first ``F``, ``B_style`` and ``NO_style`` upper-case hex; writes take ``AN_style`` text (GBK,
``00``-padded), ``CN_style`` digits (``F``-padded), ``B_style`` / ``NO_style`` hex (``00``-padded).

The ``_ALLInfo`` calls exchange the data items of the record (147 for EE, 170 for ED; not the two
security items) as one ``|``-separated string in item order: ``ans`` raw text, ``cn`` digits,
``b`` hex.  As in the C SDK a write may give fewer fields than items (the rest are written empty);
more fields than items, or a field that does not fit its item, is ``IRV_PARA_ERR``.  A ``cn`` field
may carry its ``F`` padding (the C SDK's read emits it), it is trimmed.  ``ans`` text containing
``|`` cannot travel in this format.
"""

# The national SDK's spellings (iR_DDF1EF05Info, nRecorderNo, NO_style, ...) are kept on purpose.
# ruff: noqa: N802, N803

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence

from healthcard import errors
from healthcard.card import codecs
from healthcard.card.profile import ED_DATA_LENGTH, EE_DATA_LENGTH, Item, tlv_items, visit_items
from healthcard.terminal.sdk import HealthCardTerminal, decode_visit, encode_visit

NO_style = 0x00
AN_style = 0x01
CN_style = 0x0F
B_style = 0xFF
STYLES = frozenset({NO_style, AN_style, CN_style, B_style})

#: data part of the visit files: the ``nPos + nLen`` bound of the SDK
DATA_LENGTH = {"EE": EE_DATA_LENGTH, "ED": ED_DATA_LENGTH}


class IRV(enum.IntEnum):
    """Return codes of the national SDK (CARD-SPEC.md §7.2)."""

    IRV_OK = 0  # 正常
    IRV_PARA_ERR = 101  # 输入参数错
    IRV_NO_FILE = 102  # 文件不存在
    IRV_RD_RCDERR = 103  # 读记录失败
    IRV_CARD_ERR = 104  # 卡片响应异常
    IRV_PSAM_ERR = 105  # PSAM卡片响应异常
    IRV_IRK_VERR = 106  # 内部认证失败
    IRV_RD_BINERR = 107  # 读BIN失败
    IRV_WR_RCDERR = 108  # 写记录失败
    IRV_WR_BINERR = 109  # 写BIN失败
    IRV_W_DF03EF05ERR = 110  # 写DF03EF05失败 (index flag 00; EF06 too)
    IRV_ER_DF03EF05ERR = 111  # 擦除DF03EF05失败 (index flag FF; EF06 too)
    IRV_RCINVALID = 112  # 记录不可用 (有效标记为FF)
    IRV_DDF1EF07_DATAERR = 113  # 照片文件数据异常
    IRV_DEBUGERR = 1024  # internal


class Op(enum.Enum):
    """What an SDK function was doing when it failed; picks the code of a refused command."""

    READ_RECORD = "read record"
    READ_BINARY = "read binary"
    READ_PHOTO = "read photo"
    WRITE_RECORD = "write record"
    WRITE_BINARY = "write binary"
    SIGN_INDEX = "mark record valid"
    ERASE_INDEX = "mark record invalid"


_REFUSED: dict[Op, IRV] = {
    Op.READ_RECORD: IRV.IRV_RD_RCDERR,
    Op.READ_BINARY: IRV.IRV_RD_BINERR,
    Op.READ_PHOTO: IRV.IRV_RD_BINERR,
    Op.WRITE_RECORD: IRV.IRV_WR_RCDERR,
    Op.WRITE_BINARY: IRV.IRV_WR_BINERR,
    Op.SIGN_INDEX: IRV.IRV_W_DF03EF05ERR,
    Op.ERASE_INDEX: IRV.IRV_ER_DF03EF05ERR,
}

#: status words that refuse the data command itself (not the session, not authentication)
_COMMAND_REFUSED: tuple[type[errors.CardError], ...] = (
    errors.RecordNotFound,
    errors.WrongParameters,
    errors.SecurityNotSatisfied,
    errors.ConditionsNotSatisfied,
    errors.SecureMessagingError,
)

#: the one exception → IRV table, most specific first (SamError is a CardError, so before it)
_TABLE: tuple[tuple[type[Exception] | tuple[type[Exception], ...], IRV | None], ...] = (
    (errors.RecordInvalid, IRV.IRV_RCINVALID),
    # the national table has no "card on the hot list" (黑名单) code: the card is refused, the
    # general card code is the honest one; the exception (NationalSdk.last_error) says why
    (errors.HotListed, IRV.IRV_CARD_ERR),
    (errors.InvalidValue, IRV.IRV_PARA_ERR),  # EncodingError and bad SDK arguments; photo: irv_for
    (errors.SamError, IRV.IRV_PSAM_ERR),
    (errors.FileNotFound, IRV.IRV_NO_FILE),
    (errors.AuthenticationFailed, IRV.IRV_IRK_VERR),
    (errors.AuthenticationBlocked, IRV.IRV_IRK_VERR),
    (_COMMAND_REFUSED, None),  # None: the operation's read/write code (_REFUSED)
    (errors.CardError, IRV.IRV_CARD_ERR),
    (errors.TransportError, IRV.IRV_CARD_ERR),
    (errors.HealthCardError, IRV.IRV_CARD_ERR),
)


def irv_for(error: Exception, op: Op) -> IRV:
    """The SDK return code for ``error`` raised while doing ``op`` (CARD-SPEC.md §7.2).

    A command the card refuses (6A83, 6700/6B00…, 6982, 6985, 6988) gives the code of the
    operation — ``IRV_RD_RCDERR``, ``IRV_RD_BINERR``, ``IRV_WR_RCDERR``, ``IRV_WR_BINERR``,
    ``IRV_W_DF03EF05ERR``, ``IRV_ER_DF03EF05ERR``; a photo whose length field does not fit the
    file is ``IRV_DDF1EF07_DATAERR``; a card on the terminal's hot list (:class:`HotListed`, raised
    by ``HealthCardTerminal.open``) is ``IRV_CARD_ERR``, as CARD-SPEC.md §7.2 has no hot-list code;
    anything that is not a HealthCard error is ``IRV_DEBUGERR``.
    """
    if op is Op.READ_PHOTO and isinstance(error, errors.InvalidValue):
        return IRV.IRV_DDF1EF07_DATAERR
    for kinds, code in _TABLE:
        if isinstance(error, kinds):
            return _REFUSED[op] if code is None else code
    return IRV.IRV_DEBUGERR


# --- parameters, derived from the profile ------------------------------------------------------
def _order(item: Item) -> tuple[int, int]:
    return (item.record or 0, item.offset or 0)


def file_items(df: str, ef: str) -> tuple[Item, ...]:
    """The items of a TLV or cyclic file in SDK parameter order (record order, then offset)."""
    return tuple(sorted((i for i in tlv_items() if i.df == df and i.ef == ef), key=_order))


def params(df: str, ef: str) -> tuple[str, ...]:
    """The SDK parameter names of a file, in order: ``params("DDF1", "EF06")`` →
    ``("XM", "XB", "MZ", "CSRQ", "SFZH")``."""
    return tuple(i.param for i in file_items(df, ef))


def data_items(kind: str) -> tuple[Item, ...]:
    """The items an ``_ALLInfo`` call exchanges: the EE/ED data items without the signature
    and SAM certificate (which lie beyond the data part)."""
    return tuple(i for i in visit_items(kind) if (i.offset or 0) + i.length <= DATA_LENGTH[kind])


class _BadParameter(errors.InvalidValue):
    """An SDK argument is out of range or of the wrong type (→ IRV_PARA_ERR)."""

    def __init__(self, message: str) -> None:
        super().__init__("sdk-argument", message)


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _BadParameter(f"{value!r} is not an int")
    return value


def _texts(values: Sequence[object], count: int) -> tuple[str, ...]:
    if len(values) != count:
        raise _BadParameter(f"{len(values)} values, the function takes {count}")
    if not all(isinstance(v, str) for v in values):
        raise _BadParameter("every data item is passed as a string")
    return tuple(str(v) for v in values)


def _hex(text: str, length: int) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise _BadParameter("not hex text") from None
    if len(raw) > length:
        raise _BadParameter(f"{len(raw)} bytes, nLen is {length}")
    return raw + bytes(length - len(raw))


def _encode_style(text: str, length: int, style: int) -> bytes:
    if style == AN_style:
        return codecs.encode_ans("szData", text, length)
    if style == CN_style:
        return codecs.encode_cn("szData", text.rstrip("Ff"), length)
    return _hex(text, length)


def _decode_style(raw: bytes, style: int) -> str:
    if style == AN_style:
        return codecs.decode_ans(raw)
    if style == CN_style:
        return codecs.decode_cn(raw)
    return raw.hex().upper()


class _Card:
    """The card operations the SDK needs, in one place."""

    def __init__(self, terminal: HealthCardTerminal) -> None:
        self.t = terminal

    def cyclic(self, df: str, ef: str) -> list[dict[str, str]]:
        return self.t.read_cyclic(df, ef)

    def add_cyclic(self, df: str, ef: str, values: Sequence[str]) -> None:
        self.t.add_cyclic(df, ef, values)

    def read_visit(self, kind: str, slot: int, offset: int, length: int) -> bytes:
        return self.t.read_visit_bytes(kind, slot, offset, length)  # unchecked: the caller checked

    def write_visit(self, kind: str, slot: int, offset: int, data: bytes) -> None:
        self.t.write_visit_bytes(kind, slot, offset, data)

    def sign(self, kind: str, slot: int) -> None:
        self.t.sign_visit(kind, slot)


ReadResult = tuple[IRV, tuple[str, ...]]


class NationalSdk:
    """The national SDK's user-card functions over a terminal that has been opened."""

    def __init__(self, terminal: HealthCardTerminal) -> None:
        self.terminal = terminal
        self.last_error: Exception | None = None
        self._card = _Card(terminal)

    # --- plumbing: every SDK function goes through one of these two ---------------------------
    def _fail(self, error: Exception, op: Op) -> IRV:
        self.last_error = error
        return irv_for(error, op)

    def _read(self, op: Op, count: int, read: Callable[[], Sequence[str]]) -> ReadResult:
        try:
            values = tuple(read())
        except Exception as error:
            return self._fail(error, op), ("",) * count
        self.last_error = None
        return IRV.IRV_OK, values

    def _write(self, op: Op, write: Callable[[], None]) -> IRV:
        try:
            write()
        except Exception as error:
            return self._fail(error, op)
        self.last_error = None
        return IRV.IRV_OK

    # --- TLV record files ------------------------------------------------------------------
    def _read_tlv(self, df: str, ef: str) -> ReadResult:
        items = file_items(df, ef)

        def read() -> list[str]:
            values = self.terminal.read_items(df, ef)
            return [values.get(i.name, "") for i in items]

        return self._read(Op.READ_RECORD, len(items), read)

    def _write_tlv(self, df: str, ef: str, values: Sequence[object]) -> IRV:
        items = file_items(df, ef)

        def write() -> None:
            texts = _texts(values, len(items))
            self.terminal.write_items(df, ef, {i.name: v for i, v in zip(items, texts, strict=True)})

        return self._write(Op.WRITE_RECORD, write)

    def iR_DDF1EF05Info(self) -> ReadResult:
        """发卡机构基本数据: KLB, GFBB, FKJGMC, FKJGDM, FKJGZS, FKSJ, KH, AQM, XPXLH, YYCSDM."""
        return self._read_tlv("DDF1", "EF05")

    def iW_DDF1EF05Info(self, *values: str) -> IRV:
        """Refused by an issued card (禁止改写): ``IRV_WR_RCDERR``."""
        return self._write_tlv("DDF1", "EF05", values)

    def iR_DDF1EF06Info(self) -> ReadResult:
        """持卡人基本信息: XM, XB, MZ, CSRQ, SFZH."""
        return self._read_tlv("DDF1", "EF06")

    def iW_DDF1EF06Info(self, *values: str) -> IRV:
        """Refused by an issued card (禁止改写): ``IRV_WR_RCDERR``."""
        return self._write_tlv("DDF1", "EF06", values)

    def iR_DDF1EF08Info(self) -> ReadResult:
        """有效期/电话/支付方式: KYXQ, BRDH1, BRDH2, YLFYZFFS1..3."""
        return self._read_tlv("DDF1", "EF08")

    def iW_DDF1EF08Info(self, *values: str) -> IRV:
        return self._write_tlv("DDF1", "EF08", values)

    def iR_DF01EF05Info(self) -> ReadResult:
        """地址: DZLB1, DZ1, DZLB2, DZ2."""
        return self._read_tlv("DF01", "EF05")

    def iW_DF01EF05Info(self, *values: str) -> IRV:
        return self._write_tlv("DF01", "EF05", values)

    def iR_DF01EF06Info(self) -> ReadResult:
        """联系人: LXRXM1, LXRGX1, LXRDH1 … LXRDH3."""
        return self._read_tlv("DF01", "EF06")

    def iW_DF01EF06Info(self, *values: str) -> IRV:
        return self._write_tlv("DF01", "EF06", values)

    def iR_DF01EF07Info(self) -> ReadResult:
        """职业婚姻: WHCD, HYZK, ZY."""
        return self._read_tlv("DF01", "EF07")

    def iW_DF01EF07Info(self, *values: str) -> IRV:
        return self._write_tlv("DF01", "EF07", values)

    def iR_DF01EF08Info(self) -> ReadResult:
        """证件: ZJLB, ZJHM, JKDAH, XNHZH."""
        return self._read_tlv("DF01", "EF08")

    def iW_DF01EF08Info(self, *values: str) -> IRV:
        return self._write_tlv("DF01", "EF08", values)

    def iR_DF02EF05Info(self) -> ReadResult:
        """医学警示: ABOXX, RHXX, XCBZ … XZQBQBZ, QTYXJSMC (flags hex: 01 yes, 00 no, FF unknown)."""
        return self._read_tlv("DF02", "EF05")

    def iW_DF02EF05Info(self, *values: str) -> IRV:
        return self._write_tlv("DF02", "EF05", values)

    def iR_DF02EF06Info(self) -> ReadResult:
        """精神病标志: JSBBZ."""
        return self._read_tlv("DF02", "EF06")

    def iW_DF02EF06Info(self, *values: str) -> IRV:
        return self._write_tlv("DF02", "EF06", values)

    # --- photo --------------------------------------------------------------------------------
    def iR_DDF1EF07Info(self) -> tuple[IRV, bytes]:
        """照片: the ``ZHAOPIAN`` buffer, 2-byte big-endian length + JPEG (``00 00`` when empty)."""
        try:
            jpeg = self.terminal.read_photo()
        except Exception as error:
            return self._fail(error, Op.READ_PHOTO), b""
        self.last_error = None
        return IRV.IRV_OK, len(jpeg).to_bytes(2, "big") + jpeg

    def iW_DDF1EF07Info(self, ZHAOPIAN: bytes) -> IRV:
        """Write the photo from a 2-byte length + JPEG buffer (bytes past the length are ignored,
        as in a C buffer); an empty photo is ``IRV_PARA_ERR``."""

        def write() -> None:
            if not isinstance(ZHAOPIAN, bytes | bytearray):
                raise _BadParameter("ZHAOPIAN is bytes: 2-byte length + JPEG")
            length = int.from_bytes(ZHAOPIAN[:2], "big")
            if len(ZHAOPIAN) < 2 or length == 0 or length > len(ZHAOPIAN) - 2:
                raise _BadParameter("the length field does not match the JPEG that follows")
            self.terminal.write_photo(bytes(ZHAOPIAN[2 : 2 + length]))

        return self._write(Op.WRITE_BINARY, write)

    # --- cyclic files: allergies and immunizations, record 1 = newest ---------------------------
    def _read_cyclic(self, df: str, ef: str, number: object) -> ReadResult:
        items = file_items(df, ef)

        def read() -> list[str]:
            n = _int(number)
            if not 1 <= n <= self.terminal.profile.file(df, ef).record_count:
                raise _BadParameter(f"nRecorderNo {n} out of range")
            rows = self._card.cyclic(df, ef)
            if n > len(rows):  # what the card answers for a record never written
                raise errors.RecordNotFound(0x6A83, f"{df}/{ef} record {n} is empty")
            return [rows[n - 1][i.name] for i in items]

        return self._read(Op.READ_RECORD, len(items), read)

    def _add_cyclic(self, df: str, ef: str, values: Sequence[object]) -> IRV:
        items = file_items(df, ef)

        def write() -> None:
            self._card.add_cyclic(df, ef, _texts(values, len(items)))

        return self._write(Op.WRITE_RECORD, write)

    def iR_DF02EF07Info(self, nRecorderNo: int) -> ReadResult:
        """过敏 record 1–3 (1 = newest): GMWZMC, GMFY."""
        return self._read_cyclic("DF02", "EF07", nRecorderNo)

    def iW_DF02EF07Info(self, GMWZMC: str, GMFY: str) -> IRV:
        """A new allergy becomes record 1; the oldest of three falls off."""
        return self._add_cyclic("DF02", "EF07", (GMWZMC, GMFY))

    def iR_DF02EF08Info(self, nRecorderNo: int) -> ReadResult:
        """免疫 record 1–10 (1 = newest): MYJZMC, MYJZSJ."""
        return self._read_cyclic("DF02", "EF08", nRecorderNo)

    def iW_DF02EF08Info(self, MYJZMC: str, MYJZSJ: str) -> IRV:
        """A new vaccination (date YYYYMMDD) becomes record 1; the oldest of ten falls off."""

        def write() -> None:
            if isinstance(MYJZSJ, str) and MYJZSJ:
                codecs.parse_date("MYJZSJ", MYJZSJ)
            self._card.add_cyclic("DF02", "EF08", _texts((MYJZMC, MYJZSJ), 2))

        return self._write(Op.WRITE_RECORD, write)

    # --- DF03 index files ------------------------------------------------------------------------
    def _slot(self, kind: str, number: object) -> int:
        n = _int(number)
        count = self.terminal.profile.visits_in if kind == "EE" else self.terminal.profile.visits_out
        if not 1 <= n <= count:
            raise _BadParameter(f"nRecorderNo {n} out of range 1..{count}")
        return n

    def _read_index(self, kind: str) -> ReadResult:
        profile = self.terminal.profile
        count = profile.visits_in if kind == "EE" else profile.visits_out

        def read() -> list[str]:
            return ["00" if valid else "FF" for valid in self.terminal.read_visit_index(kind)]

        return self._read(Op.READ_RECORD, count, read)

    def _sign(self, kind: str, number: object) -> IRV:
        return self._write(Op.SIGN_INDEX, lambda: self._card.sign(kind, self._slot(kind, number)))

    def _erase(self, kind: str, number: object) -> IRV:
        return self._write(Op.ERASE_INDEX, lambda: self.terminal.erase_visit(kind, self._slot(kind, number)))

    def iR_DF03EF05Info(self) -> ReadResult:
        """住院记录有效标识 ZYJLBS1..3: ``"00"`` valid, ``"FF"`` invalid."""
        return self._read_index("EE")

    def iW_DF03EF05Info(self, nRecorderNo: int) -> IRV:
        """Mark EE0n valid (00) with UK1DF03."""
        return self._sign("EE", nRecorderNo)

    def iErase_DF03EF05Info(self, nRecorderNo: int) -> IRV:
        """Mark EE0n invalid (FF) with UK2DF03."""
        return self._erase("EE", nRecorderNo)

    def iR_DF03EF06Info(self) -> ReadResult:
        """门诊记录有效标识 MZJLBS1..5: ``"00"`` valid, ``"FF"`` invalid."""
        return self._read_index("ED")

    def iW_DF03EF06Info(self, nRecorderNo: int) -> IRV:
        """Mark ED0n valid (00) with UK1DF03."""
        return self._sign("ED", nRecorderNo)

    def iErase_DF03EF06Info(self, nRecorderNo: int) -> IRV:
        """Mark ED0n invalid (FF) with UK2DF03."""
        return self._erase("ED", nRecorderNo)

    # --- DF03 visit files ------------------------------------------------------------------------
    def _valid_slot(self, kind: str, number: object) -> int:
        """The slot number, after the SDK rule: only a record flagged 00 is read or written."""
        slot = self._slot(kind, number)
        if not self.terminal.read_visit_index(kind)[slot - 1]:
            raise errors.RecordInvalid(f"{kind}{slot:02d} is marked invalid (FF)")
        return slot

    @staticmethod
    def _span(kind: str, pos: object, length: object, style: object) -> tuple[int, int, int]:
        p, n, s = _int(pos), _int(length), _int(style)
        if p < 0 or n < 1 or p + n > DATA_LENGTH[kind]:
            raise _BadParameter(f"nPos {p} + nLen {n} outside 0..{DATA_LENGTH[kind]}")
        if s not in STYLES:
            raise _BadParameter(f"nStyle {s:#x} is not NO/AN/CN/B_style")
        return p, n, s

    def _read_visit(
        self, kind: str, number: object, pos: object, length: object, style: object
    ) -> ReadResult:
        def read() -> list[str]:
            p, n, s = self._span(kind, pos, length, style)
            slot = self._valid_slot(kind, number)
            return [_decode_style(self._card.read_visit(kind, slot, p, n), s)]

        return self._read(Op.READ_BINARY, 1, read)

    def _write_visit(
        self, kind: str, number: object, data: object, pos: object, length: object, style: object
    ) -> IRV:
        def write() -> None:
            p, n, s = self._span(kind, pos, length, style)
            if not isinstance(data, str):
                raise _BadParameter("szData is a string")
            raw = _encode_style(data, n, s)  # encoded before anything is sent
            slot = self._valid_slot(kind, number)
            self._card.write_visit(kind, slot, p, raw)

        return self._write(Op.WRITE_BINARY, write)

    def _read_all(self, kind: str, number: object) -> ReadResult:
        def read() -> list[str]:
            slot = self._valid_slot(kind, number)
            values = decode_visit(kind, self._card.read_visit(kind, slot, 0, DATA_LENGTH[kind]))
            return ["|".join(values[i.param] for i in data_items(kind))]

        return self._read(Op.READ_BINARY, 1, read)

    def _write_all(self, kind: str, number: object, data: object) -> IRV:
        def write() -> None:
            if not isinstance(data, str):
                raise _BadParameter("szData is a string")
            items = data_items(kind)
            fields = data.split("|")
            if len(fields) > len(items):
                raise _BadParameter(f"{len(fields)} fields, the record has {len(items)} items")
            values = {
                i.param: f.rstrip("Ff") if i.coding == "cn" else f
                for i, f in zip(items, fields, strict=False)
            }
            raw = encode_visit(kind, values)
            slot = self._valid_slot(kind, number)
            self._card.write_visit(kind, slot, 0, raw)

        return self._write(Op.WRITE_BINARY, write)

    def iR_DF03EEInfo(self, nRecorderNo: int, nPos: int, nLen: int, nStyle: int) -> ReadResult:
        """住院信息 EE01–EE03, ``nLen`` card bytes from ``nPos`` (``nPos + nLen ≤ 1639``)."""
        return self._read_visit("EE", nRecorderNo, nPos, nLen, nStyle)

    def iW_DF03EEInfo(self, nRecorderNo: int, szData: str, nPos: int, nLen: int, nStyle: int) -> IRV:
        return self._write_visit("EE", nRecorderNo, szData, nPos, nLen, nStyle)

    def iR_DF03EE_ALLInfo(self, nRecorderNo: int) -> ReadResult:
        """The 147 EE items, ``|``-separated."""
        return self._read_all("EE", nRecorderNo)

    def iW_DF03EE_ALLInfo(self, nRecorderNo: int, szData: str) -> IRV:
        return self._write_all("EE", nRecorderNo, szData)

    def iR_DF03EDInfo(self, nRecorderNo: int, nPos: int, nLen: int, nStyle: int) -> ReadResult:
        """门诊信息 ED01–ED05, ``nLen`` card bytes from ``nPos`` (``nPos + nLen ≤ 3013``)."""
        return self._read_visit("ED", nRecorderNo, nPos, nLen, nStyle)

    def iW_DF03EDInfo(self, nRecorderNo: int, szData: str, nPos: int, nLen: int, nStyle: int) -> IRV:
        return self._write_visit("ED", nRecorderNo, szData, nPos, nLen, nStyle)

    def iR_DF03ED_ALLInfo(self, nRecorderNo: int) -> ReadResult:
        """The 170 ED items, ``|``-separated."""
        return self._read_all("ED", nRecorderNo)

    def iW_DF03ED_ALLInfo(self, nRecorderNo: int, szData: str) -> IRV:
        return self._write_all("ED", nRecorderNo, szData)


__all__ = [
    "IRV",
    "AN_style",
    "B_style",
    "CN_style",
    "NO_style",
    "NationalSdk",
    "Op",
    "data_items",
    "file_items",
    "irv_for",
    "params",
]
