"""The card operating system: one command processor for the user card (and, extended in
:mod:`healthcard.card.sam`, for the SAM).

``CardOS.process(raw)`` is total: any byte string gets a response with a status word, never an
exception (ISO/IEC 7816-4; DECISIONS.md §3).  Commands are documented byte by byte in
``docs/card.md``.  The security state is per DF (DECISIONS.md §4), the life cycle follows
DECISIONS.md §5 and the personalisation commands DECISIONS.md §6.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from healthcard.card.apdu import CommandAPDU, MalformedAPDU
from healthcard.card.atr import KeyInfo, build_atr
from healthcard.card.filesystem import (
    DF,
    EF,
    FREE,
    NEVER,
    PERSO,
    FileKind,
    Key,
    KeyUse,
    LifeCycle,
    SMLevel,
    Status,
)
from healthcard.card.sw import SW
from healthcard.errors import CryptoError
from healthcard.keys import recipes
from healthcard.keys.primitives import Algorithm

MF_FID = 0x3F00
#: the MF's DF name seen on real cards (CARD-SPEC.md §3.1)
MF_NAME = b"jmjkkyyhj"
PIN_REF = 0x01


@dataclass
class CardState:
    """Everything a card image holds: the chip serial, the file tree with its keys, the life cycle."""

    serial: bytes
    mf: DF
    lifecycle: LifeCycle = LifeCycle.CREATED
    application: str = "health-card"  # or "sam"
    profile: str = ""  # the profile that personalised it, e.g. "health-card-32k/1"

    @property
    def atr(self) -> bytes:
        return build_atr(self.serial, self.key_info(), sam=self.application == "sam")

    def key_info(self) -> KeyInfo:
        """The key info the ATR announces (DECISIONS.md §17): a card's from its DDF1 read key
        (all its keys share one version and algorithm), a SAM's from the masters it holds."""
        if self.application == "sam":
            masters = {
                kid >> 8: key
                for df in self.mf.walk()
                for (use, kid), key in df.keys.items()
                if use == KeyUse.MASTER
            }
            if not masters:
                return KeyInfo(Algorithm.SM4, 0, previous=None)
            current = max(masters)
            previous = current - 1 if current - 1 in masters else None
            return KeyInfo(masters[current].algorithm, current, previous=previous)
        ddf1 = next((df for df in self.mf.walk() if df.fid == 0xDDF1), None)
        key = ddf1.keys.get((KeyUse.AUTH, 0x04)) if ddf1 is not None else None
        if key is not None:
            return KeyInfo.from_version_byte(key.algorithm, key.version)
        transport = self.mf.keys.get((KeyUse.TRANSPORT, 0))
        return KeyInfo(transport.algorithm if transport else Algorithm.SM4, 0)

    @classmethod
    def blank(cls, serial: bytes, transport_key: bytes, algorithm: Algorithm = Algorithm.SM4) -> CardState:
        """A chip as it leaves the factory: an empty MF holding only the transport key."""
        mf = DF(MF_FID, MF_NAME, fci_proprietary=True)
        mf.keys[(KeyUse.TRANSPORT, 0)] = Key(0, KeyUse.TRANSPORT, algorithm, 1, transport_key, 15, 15)
        return cls(serial=serial, mf=mf)


Handler = Callable[[CommandAPDU], tuple[bytes, int]]


@dataclass
class Session:
    """Volatile state: lost at power-off or reset."""

    df: DF
    ef: EF | None = None
    authenticated: set[int] = field(default_factory=set)  # key ids, valid in ``df`` only
    pin_verified: bool = False
    challenge: bytes | None = None
    pending: bytes = b""  # for GET RESPONSE


class CardOS:
    """A health card (user card) executing APDUs against a :class:`CardState`."""

    #: INS values allowed while BLOCKED (DECISIONS.md §5)
    ALLOWED_WHEN_BLOCKED = frozenset({0xA4, 0x84, 0x18})

    def __init__(
        self,
        state: CardState,
        rng: Callable[[int], bytes] = secrets.token_bytes,
        on_change: Callable[[CardState], None] | None = None,
    ) -> None:
        self.state = state
        self.rng = rng
        self.on_change = on_change
        self.session = Session(state.mf)
        self._diversifiers: dict[tuple[Algorithm, bytes], recipes.Diversifier] = {}
        # INS -> (allowed CLA values, handler)
        self.commands: dict[int, tuple[frozenset[int], Handler]] = {
            0xA4: (frozenset({0x00}), self.select),
            0xB0: (frozenset({0x00}), self.read_binary),
            0xD6: (frozenset({0x00, 0x04}), self.update_binary),
            0xB2: (frozenset({0x00}), self.read_record),
            0xDC: (frozenset({0x00, 0x04}), self.update_record),
            0xE2: (frozenset({0x00, 0x04}), self.append_record),
            0xD2: (frozenset({0x04, 0x84}), self.write_record_flag),
            0x0C: (frozenset({0x04, 0x84}), self.erase_record_flag),
            0x84: (frozenset({0x00}), self.get_challenge),
            0x82: (frozenset({0x00}), self.external_authenticate),
            0x20: (frozenset({0x00}), self.verify),
            0x24: (frozenset({0x00}), self.change_reference_data),
            0x2C: (frozenset({0x84}), self.reset_retry_counter),
            0xC0: (frozenset({0x00}), self.get_response),
            0xE0: (frozenset({0x80}), self.create_file),
            0xD4: (frozenset({0x84}), self.write_key),
            0xE6: (frozenset({0x80}), self.end_personalisation),
            0x16: (frozenset({0x84}), self.card_block),
            0x18: (frozenset({0x84}), self.card_unblock),
        }
        self.known_classes = frozenset({0x00, 0x04, 0x80, 0x84})

    # --- power ---------------------------------------------------------------------------
    def power_on(self) -> bytes:
        """Cold or warm reset: the security state is gone, the current DF is the MF."""
        self.session = Session(self.state.mf)
        return self.state.atr

    # --- the processor -------------------------------------------------------------------
    def process(self, raw: bytes) -> bytes:
        """Execute one C-APDU and return the R-APDU bytes. Never raises."""
        try:
            data, sw = self._dispatch(raw)
        except Status as status:
            data, sw = b"", status.sw
        except MalformedAPDU as bad:
            data, sw = b"", bad.sw
        except Exception:  # a bug must not look like a card dying: answer 6F00
            data, sw = b"", SW.NO_PRECISE_DIAGNOSIS
        return data + sw.to_bytes(2, "big")  # ResponseAPDU(data, sw).to_bytes(), without the object

    def _dispatch(self, raw: bytes) -> tuple[bytes, int]:
        cmd = CommandAPDU.parse(raw)
        if cmd.cla not in self.known_classes:
            raise Status(SW.CLA_NOT_SUPPORTED)
        entry = self.commands.get(cmd.ins)
        if entry is None:
            raise Status(SW.INS_NOT_SUPPORTED)
        classes, handler = entry
        if cmd.cla not in classes:
            raise Status(SW.CLA_NOT_SUPPORTED)
        if self.state.lifecycle is LifeCycle.BLOCKED and cmd.ins not in self.ALLOWED_WHEN_BLOCKED:
            raise Status(SW.FUNCTION_NOT_SUPPORTED)
        if cmd.ins != 0xC0:
            self.session.pending = b""
        return handler(cmd)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self.state)

    # --- helpers -------------------------------------------------------------------------
    @property
    def personalising(self) -> bool:
        return self.state.lifecycle is LifeCycle.CREATED

    def _current_ef(self) -> EF:
        if self.session.ef is None:
            raise Status(SW.COMMAND_NOT_ALLOWED)
        return self.session.ef

    def _check_access(self, condition: int) -> None:
        if condition == FREE:
            return
        if condition == NEVER:
            raise Status(SW.CONDITIONS_NOT_SATISFIED)
        if self.personalising:  # CREATED: the issuer's secure room, every data file is open
            return
        if condition == PERSO:
            raise Status(SW.CONDITIONS_NOT_SATISFIED)
        if condition not in self.session.authenticated:
            raise Status(SW.SECURITY_NOT_SATISFIED)

    def _take_challenge(self) -> bytes:
        challenge = self.session.challenge
        self.session.challenge = None  # one challenge, one use
        if challenge is None:
            raise Status(SW.CONDITIONS_NOT_SATISFIED)
        return challenge

    def _session_key(self, key: Key) -> bytes:
        """``recipes.session_key(key.value, challenge, key.algorithm)``, through a cipher context
        kept per key value: personalisation opens 19 WRITE KEYs under the one transport key."""
        challenge = self._take_challenge()
        which = (key.algorithm, bytes(key.value))
        diversifier = self._diversifiers.get(which)
        if diversifier is None:
            if len(self._diversifiers) >= 32:  # a card holds a few dozen keys at most
                self._diversifiers.clear()
            diversifier = self._diversifiers[which] = recipes.Diversifier(key.value, key.algorithm)
        return diversifier.diversify(challenge)

    def _open_sm(self, cmd: CommandAPDU, key: Key, encrypted: bool) -> bytes:
        """Check (and decrypt) the secure-messaging body of ``cmd`` under ``D(key, challenge)``."""
        ks = self._session_key(key)
        try:
            if encrypted:
                return recipes.sm_unwrap(ks, cmd.header, cmd.data, key.algorithm)
            return recipes.sm_check_mac(ks, cmd.header, cmd.data, key.algorithm)
        except CryptoError:
            raise Status(SW.SM_INCORRECT) from None

    def _write_payload(self, cmd: CommandAPDU, ef: EF) -> bytes:
        """The plain data of a write, after the SM the file demands (none while CREATED)."""
        secured = bool(cmd.cla & 0x04)
        if not secured:
            if ef.sm and not self.personalising:
                raise Status(SW.SECURITY_NOT_SATISFIED)
            return cmd.data
        stk = self.session.df.key_of_use(KeyUse.MAINTENANCE)
        return self._open_sm(cmd, stk, encrypted=bool(ef.sm & SMLevel.ENC))

    # --- SELECT --------------------------------------------------------------------------
    def _find_by_fid(self, fid: int) -> DF | EF:
        if fid == MF_FID:
            return self.state.mf
        here = self.session.df
        if fid == here.fid:
            return here
        if fid in here.children:
            return here.children[fid]
        if here.parent is not None and fid in here.parent.children:  # a sibling DF or the parent's EF
            return here.parent.children[fid]
        if here.parent is not None and fid == here.parent.fid:
            return here.parent
        raise Status(SW.FILE_NOT_FOUND)

    def _find_by_name(self, name: bytes) -> DF:
        for df in self.state.mf.walk():
            if df.name == name:
                return df
        raise Status(SW.FILE_NOT_FOUND)

    def _enter(self, df: DF) -> None:
        if df is not self.session.df:
            self.session.authenticated.clear()  # security state is per DF (DECISIONS.md §4)
        self.session.df = df
        self.session.ef = None

    def select(self, cmd: CommandAPDU) -> tuple[bytes, int]:
        """``00 A4 00 00 02 FID`` by file id, ``00 A4 04 00 Lc name`` by DF name."""
        if cmd.p2 not in (0x00, 0x0C):
            raise Status(SW.INCORRECT_P1P2)
        if cmd.p1 == 0x00:
            if len(cmd.data) != 2:
                raise Status(SW.WRONG_LENGTH)
            node = self._find_by_fid(int.from_bytes(cmd.data, "big"))
        elif cmd.p1 == 0x04:
            if not 1 <= len(cmd.data) <= 16:
                raise Status(SW.WRONG_LENGTH)
            node = self._find_by_name(cmd.data)
        else:
            raise Status(SW.INCORRECT_P1P2)
        if isinstance(node, DF):
            self._enter(node)
            return self._fci_response(node.fci() if cmd.p2 == 0x00 else b"")
        self.session.ef = node
        return b"", SW.OK

    def _fci_response(self, fci: bytes) -> tuple[bytes, int]:
        return fci, SW.OK

    # --- binary --------------------------------------------------------------------------
    @staticmethod
    def _offset(cmd: CommandAPDU) -> int:
        if cmd.p1 & 0x80:  # short-EF-identifier addressing is not offered by this card
            raise Status(SW.INCORRECT_P1P2)
        return (cmd.p1 << 8) | cmd.p2  # 15-bit offset

    def read_binary(self, cmd: CommandAPDU) -> tuple[bytes, int]:
        """``00 B0 off_hi off_lo Le`` (short or extended Le)."""
        offset = self._offset(cmd)
        if cmd.le is None or cmd.data:
            raise Status(SW.WRONG_LENGTH)
        ef = self._current_ef()
        self._check_access(ef.read)
        maximum = cmd.le in (256, 65536)
        return ef.read_binary(offset, cmd.le, exact=not maximum)

    def update_binary(self, cmd: CommandAPDU) -> tuple[bytes, int]:
        """``00 D6 off_hi off_lo Lc data`` (``04 D6`` with SM)."""
        offset = self._offset(cmd)
        if not cmd.data:
            raise Status(SW.WRONG_LENGTH)
        ef = self._current_ef()
        if ef.kind is not FileKind.TRANSPARENT:
            raise Status(SW.INCOMPATIBLE_FILE)
        self._check_access(ef.update)
        payload = self._write_payload(cmd, ef)
        ef.update_binary(offset, payload)
        self._changed()
        return b"", SW.OK

    # --- records -------------------------------------------------------------------------
    def read_record(self, cmd: CommandAPDU) -> tuple[bytes, int]:
        """``00 B2 rec 04 Le`` by number, ``00 B2 tag 00 Le`` by identifier (TLV files),
        ``00 B2 rec 05 Le`` all records from ``rec`` to the last."""
        if cmd.data:
            raise Status(SW.WRONG_LENGTH)
        if cmd.p2 >> 3:  # short EF identifiers are not offered
            raise Status(SW.INCORRECT_P1P2)
        ef = self._current_ef()
        if ef.kind is FileKind.TRANSPARENT:
            raise Status(SW.INCOMPATIBLE_FILE)
        self._check_access(ef.read)
        mode = cmd.p2 & 0x07
        if mode == 0x04:
            data = ef.record(cmd.p1)
        elif mode == 0x00:
            data = ef.record_by_tag(cmd.p1)
        elif mode == 0x05:
            first = cmd.p1
            ef.record(first)  # 6A83 when the first record does not exist
            data = b"".join(ef.record(n) for n in range(first, len(ef.records) + 1))
        else:
            raise Status(SW.INCORRECT_P1P2)
        le = cmd.le if cmd.le is not None else 256
        if le not in (256, 65536) and le != len(data):
            if le < len(data) and mode in (0x04, 0x00) and len(data) <= 255:
                return b"", 0x6C00 | len(data)  # wrong Le: here is the exact length
            if le < len(data):
                raise Status(SW.WRONG_LENGTH)
        if len(data) > le:
            raise Status(SW.WRONG_LENGTH)
        return data, SW.OK

    def update_record(self, cmd: CommandAPDU) -> tuple[bytes, int]:
        """``00 DC rec 04 Lc data``; cyclic files ``00 DC 00 03 Lc data``; ``04 DC`` with SM."""
        ef = self._current_ef()
        if ef.kind is FileKind.TRANSPARENT:
            raise Status(SW.INCOMPATIBLE_FILE)
        if not cmd.data:
            raise Status(SW.WRONG_LENGTH)
        if cmd.p2 == 0x04 and cmd.p1 == 0:
            raise Status(SW.RECORD_NOT_FOUND)
        if not (
            (cmd.p2 == 0x04 and ef.kind is not FileKind.CYCLIC)
            or (cmd.p2 == 0x03 and cmd.p1 == 0 and ef.kind is FileKind.CYCLIC)
        ):
            raise Status(SW.INCORRECT_P1P2)
        if ef.erase != NEVER and not self.personalising:
            # the DF03 index files change only by WRITE/ERASE RECORD (84 D2 / 84 0C), so that
            # marking a visit invalid really needs the erase key UK2DF03
            raise Status(SW.CONDITIONS_NOT_SATISFIED)
        self._check_access(ef.update)
        if cmd.p2 == 0x04:
            ef.record(cmd.p1)  # 6A83 before any SM work
        payload = self._write_payload(cmd, ef)
        if ef.kind is FileKind.CYCLIC:
            ef.write_next(payload)
        else:
            ef.update_record(cmd.p1, payload)
        self._changed()
        return b"", SW.OK

    def append_record(self, cmd: CommandAPDU) -> tuple[bytes, int]:
        """``00 E2 00 00 Lc data``: a new TLV record (personalisation) or the newest cyclic one."""
        if cmd.p1 != 0 or cmd.p2 != 0:
            raise Status(SW.INCORRECT_P1P2)
        if not cmd.data:
            raise Status(SW.WRONG_LENGTH)
        ef = self._current_ef()
        self._check_access(ef.update)
        payload = self._write_payload(cmd, ef)
        ef.append_record(payload)
        self._changed()
        return b"", SW.OK

    def _index_flag(
        self, cmd: CommandAPDU, condition_of: Callable[[EF], int], value: int
    ) -> tuple[bytes, int]:
        ef = self._current_ef()
        if ef.kind is not FileKind.LINEAR_FIXED:
            raise Status(SW.INCOMPATIBLE_FILE)
        if cmd.p2 != 0x04:
            raise Status(SW.INCORRECT_P1P2)
        ef.record(cmd.p1)
        self._check_access(condition_of(ef))
        if not self.personalising or cmd.data:
            if len(cmd.data) != 4:
                raise Status(SW.SECURITY_NOT_SATISFIED if ef.sm else SW.WRONG_LENGTH)
            self._open_sm(cmd, self.session.df.key_of_use(KeyUse.MAINTENANCE), encrypted=False)
        ef.set_record_byte(cmd.p1, value)
        self._changed()
        return b"", SW.OK

    def write_record_flag(self, cmd: CommandAPDU) -> tuple[bytes, int]:
        """``84 D2 rec 04 04 MAC``: mark a DF03 visit record valid (00) — needs UK1DF03."""
        return self._index_flag(cmd, lambda ef: ef.update, 0x00)

    def erase_record_flag(self, cmd: CommandAPDU) -> tuple[bytes, int]:
        """``84 0C rec 04 04 MAC``: mark a DF03 visit record invalid (FF) — needs UK2DF03."""
        return self._index_flag(cmd, lambda ef: ef.erase, 0xFF)

    # --- authentication --------------------------------------------------------------------
    def get_challenge(self, cmd: CommandAPDU) -> tuple[bytes, int]:
        """``00 84 00 00 08``: 8 random bytes, the card keeps the last one."""
        if cmd.p1 or cmd.p2:
            raise Status(SW.INCORRECT_P1P2)
        if cmd.le != 8 or cmd.data:
            raise Status(SW.WRONG_LENGTH)
        self.session.challenge = self.rng(8)
        return self.session.challenge, SW.OK

    def external_authenticate(self, cmd: CommandAPDU) -> tuple[bytes, int]:
        """``00 82 00 KID 11 A(8) P(8) alg(1)`` (CARD-SPEC.md §6.4, DECISIONS.md §13–14)."""
        if cmd.p1 != 0:
            raise Status(SW.INCORRECT_P1P2)
        if len(cmd.data) != 17:
            raise Status(SW.WRONG_LENGTH)
        key = self.session.df.key(KeyUse.AUTH, cmd.p2)
        if key.blocked:
            raise Status(SW.AUTH_BLOCKED)
        if cmd.data[16] != key.algorithm:
            raise Status(SW.WRONG_DATA)
        ks = self._session_key(key)
        expected = recipes.cryptogram(ks, cmd.data[8:16], key.algorithm)
        if not recipes.equal(expected, cmd.data[:8]):
            key.tries_left -= 1
            self.session.authenticated.clear()  # a failed attempt drops what was held
            self._changed()
            return b"", 0x63C0 | min(key.tries_left, 15)
        if key.tries_left != key.max_tries:
            key.tries_left = key.max_tries
            self._changed()
        self.session.authenticated.add(cmd.p2)
        return b"", SW.OK

    # --- cardholder PIN (DECISIONS.md §7) ---------------------------------------------------
    def _pin(self) -> Key:
        if self.state.mf.keys.get((KeyUse.PIN, PIN_REF)) is None:
            raise Status(SW.REFERENCED_DATA_NOT_FOUND)
        return self.state.mf.keys[(KeyUse.PIN, PIN_REF)]

    @staticmethod
    def _pin_digits(data: bytes) -> bytes:
        if len(data) != 3 or any((b >> 4) > 9 or (b & 0x0F) > 9 for b in data):
            raise Status(SW.WRONG_DATA)
        return data

    def _check_pin(self, pin: Key, offered: bytes) -> int | None:
        """Compare; on failure count down and return the status word to answer."""
        if pin.blocked:
            return SW.AUTH_BLOCKED
        if recipes.equal(offered, pin.value):
            if pin.tries_left != pin.max_tries:
                pin.tries_left = pin.max_tries
                self._changed()
            return None
        pin.tries_left -= 1
        self.session.pin_verified = False
        self._changed()
        return 0x63C0 | pin.tries_left

    def verify(self, cmd: CommandAPDU) -> tuple[bytes, int]:
        """``00 20 00 01 03 PIN(BCD)``; without data it answers the tries left."""
        if cmd.p1 != 0 or cmd.p2 != PIN_REF:
            raise Status(SW.INCORRECT_P1P2)
        pin = self._pin()
        if not cmd.data:
            if pin.blocked:
                return b"", SW.AUTH_BLOCKED
            return b"", (SW.OK if self.session.pin_verified else 0x63C0 | pin.tries_left)
        failed = self._check_pin(pin, self._pin_digits(cmd.data))
        if failed is not None:
            return b"", failed
        self.session.pin_verified = True
        return b"", SW.OK

    def change_reference_data(self, cmd: CommandAPDU) -> tuple[bytes, int]:
        """``00 24 00 01 06 old(3) new(3)``."""
        if cmd.p1 != 0 or cmd.p2 != PIN_REF:
            raise Status(SW.INCORRECT_P1P2)
        if len(cmd.data) != 6:
            raise Status(SW.WRONG_LENGTH)
        pin = self._pin()
        old, new = self._pin_digits(cmd.data[:3]), self._pin_digits(cmd.data[3:])
        failed = self._check_pin(pin, old)
        if failed is not None:
            return b"", failed
        pin.value = new
        self.session.pin_verified = True
        self._changed()
        return b"", SW.OK

    def reset_retry_counter(self, cmd: CommandAPDU) -> tuple[bytes, int]:
        """``84 2C 00 01 Lc SM(newPIN)`` under the issuer's PIN-unblock key."""
        if cmd.p1 != 0 or cmd.p2 != PIN_REF:
            raise Status(SW.INCORRECT_P1P2)
        pin = self._pin()
        puk = self.state.mf.key_of_use(KeyUse.PIN_UNBLOCK)
        new = self._pin_digits(self._open_sm(cmd, puk, encrypted=True))
        pin.value, pin.tries_left = new, pin.max_tries
        self._changed()
        return b"", SW.OK

    # --- GET RESPONSE -------------------------------------------------------------------
    def get_response(self, cmd: CommandAPDU) -> tuple[bytes, int]:
        """``00 C0 00 00 Le`` after a ``61xx``."""
        if cmd.p1 or cmd.p2:
            raise Status(SW.INCORRECT_P1P2)
        pending = self.session.pending
        if not pending:
            raise Status(SW.CONDITIONS_NOT_SATISFIED)
        le = cmd.le or 256
        chunk, rest = pending[:le], pending[le:]
        self.session.pending = rest
        return chunk, (0x6100 | min(len(rest), 255)) if rest else SW.OK

    def _deferred(self, data: bytes) -> tuple[bytes, int]:
        """Answer ``61xx`` and keep ``data`` for GET RESPONSE (how the SAM answers)."""
        self.session.pending = data
        return b"", 0x6100 | (len(data) & 0xFF)

    # --- personalisation (DECISIONS.md §6) -------------------------------------------------
    def _require_created(self) -> None:
        if not self.personalising:
            raise Status(SW.CONDITIONS_NOT_SATISFIED)

    def create_file(self, cmd: CommandAPDU) -> tuple[bytes, int]:
        """``80 E0 00 00 Lc type FID(2) param(2) reclen read update erase sm [namelen name]``."""
        self._require_created()
        if cmd.p1 or cmd.p2:
            raise Status(SW.INCORRECT_P1P2)
        d = cmd.data
        if len(d) < 10:
            raise Status(SW.WRONG_LENGTH)
        kind, fid, param, reclen = d[0], int.from_bytes(d[1:3], "big"), int.from_bytes(d[3:5], "big"), d[5]
        read, update, erase, sm = d[6], d[7], d[8], d[9]
        if fid in (0x0000, 0xFFFF, MF_FID) or sm not in (0, 1, 2, 3):
            raise Status(SW.WRONG_DATA)
        parent = self.session.df
        if kind == 0x38:
            if len(d) < 11 or len(d) != 11 + d[10] or not 1 <= d[10] <= 16:
                raise Status(SW.WRONG_DATA)
            name = d[11:]
            if any(df.name == name for df in self.state.mf.walk()):
                raise Status(SW.FILE_EXISTS)
            df = DF(fid, name, fci_proprietary=name.endswith(b"DDF01"))
            parent.add(df)
            self._enter(df)
        else:
            if len(d) != 10:
                raise Status(SW.WRONG_LENGTH)
            try:
                file_kind = FileKind(kind)
            except ValueError:
                raise Status(SW.WRONG_DATA) from None
            fixed = file_kind in (FileKind.LINEAR_FIXED, FileKind.CYCLIC)
            if param == 0 or param > 0x7FFF or (fixed and reclen == 0):
                raise Status(SW.WRONG_DATA)
            fill = 0xFF if file_kind is FileKind.LINEAR_FIXED else 0x00
            ef = EF.create(
                fid,
                file_kind,
                read,
                update,
                erase,
                SMLevel(sm),
                size=0 if fixed else param,
                record_length=reclen if fixed else 0,
                record_count=param if fixed else 0,
                fill=fill,
            )
            parent.add(ef)
        self._changed()
        return b"", SW.OK

    def write_key(self, cmd: CommandAPDU) -> tuple[bytes, int]:
        """``84 D4 00 00 Lc SM(kid use alg version tries len value)`` under the transport key."""
        self._require_created()
        if cmd.p1 or cmd.p2:
            raise Status(SW.INCORRECT_P1P2)
        transport = self.state.mf.key(KeyUse.TRANSPORT, 0)
        record = self._open_sm(cmd, transport, encrypted=True)
        if len(record) < 7 or len(record) != 6 + record[5]:
            raise Status(SW.WRONG_DATA)
        kid, use_byte, alg, version, tries, length = record[:6]
        value = record[6:]
        try:
            use, algorithm = KeyUse(use_byte), Algorithm(alg)
        except ValueError:
            raise Status(SW.WRONG_DATA) from None
        if use is not KeyUse.PIN and length != 16:
            raise Status(SW.WRONG_DATA)
        if use is KeyUse.PIN:
            self._pin_digits(value)
        if not 1 <= tries <= 15:
            raise Status(SW.WRONG_DATA)
        self.session.df.keys[(int(use), kid)] = Key(kid, use, algorithm, version, bytes(value), tries, tries)
        self._changed()
        return b"", SW.OK

    def end_personalisation(self, cmd: CommandAPDU) -> tuple[bytes, int]:
        """``80 E6 00 00``: CREATED → ISSUED, for good."""
        self._require_created()
        if cmd.p1 or cmd.p2 or cmd.data:
            raise Status(SW.INCORRECT_P1P2)
        self.state.lifecycle = LifeCycle.ISSUED
        self.session = Session(self.state.mf)
        self._changed()
        return b"", SW.OK

    # --- card lock -------------------------------------------------------------------------
    def _lock_command(self, cmd: CommandAPDU, want: LifeCycle, then: LifeCycle) -> tuple[bytes, int]:
        if cmd.p1 or cmd.p2:
            raise Status(SW.INCORRECT_P1P2)
        if self.state.lifecycle is not want:
            raise Status(SW.CONDITIONS_NOT_SATISFIED)
        self._open_sm(cmd, self.state.mf.key_of_use(KeyUse.LOCK), encrypted=False)
        self.state.lifecycle = then
        self._changed()
        return b"", SW.OK

    def card_block(self, cmd: CommandAPDU) -> tuple[bytes, int]:
        """``84 16 00 00 04 MAC`` under the card-lock key BKMF: ISSUED → BLOCKED."""
        return self._lock_command(cmd, LifeCycle.ISSUED, LifeCycle.BLOCKED)

    def card_unblock(self, cmd: CommandAPDU) -> tuple[bytes, int]:
        """``84 18 00 00 04 MAC`` under BKMF: BLOCKED → ISSUED (the issuer only)."""
        return self._lock_command(cmd, LifeCycle.BLOCKED, LifeCycle.ISSUED)
