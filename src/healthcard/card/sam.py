"""The SAM (PSAM) application on the same COS (CARD-SPEC.md §5.2, §6.3, §6.7).

A SAM holds the national level-1 master keys (DECISIONS.md §12) and, given a card's factors
and challenge, loads that card's session key (``80 DE``), then encrypts (``80 FA 00``) or MACs
(``80 FA 05``) with it.  Like the real PSAMs in the vendor traces, it answers ``61xx`` and
hands its data out through GET RESPONSE.  Key operations need the SAM PIN.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from healthcard.card.apdu import CommandAPDU
from healthcard.card.cos import MF_FID, MF_NAME, CardOS, CardState
from healthcard.card.filesystem import DF, EF, FREE, NEVER, FileKind, Key, KeyUse, LifeCycle, Status
from healthcard.card.sw import SW
from healthcard.keys import recipes
from healthcard.keys.primitives import Algorithm, ecb_encrypt

SAM_DF01 = 0xDF01
SAM_APP_NAME = b"HEALTHCARD.SAM"
SAM_PIN_KID = 0x00


class SamOS(CardOS):
    """A SAM: the user card's COS plus the PSAM commands."""

    def __init__(
        self,
        state: CardState,
        rng: Callable[[int], bytes] = secrets.token_bytes,
        on_change: Callable[[CardState], None] | None = None,
    ) -> None:
        super().__init__(state, rng, on_change)
        self.loaded: tuple[Algorithm, bytes] | None = None
        self.commands.update(
            {
                0x20: (frozenset({0x00}), self.verify_sam_pin),
                0x5E: (frozenset({0x80}), self.change_sam_pin),
                0xDE: (frozenset({0x80}), self.load_session_key),
                0xFA: (frozenset({0x80}), self.cipher),
            }
        )

    def power_on(self) -> bytes:
        self.loaded = None
        return super().power_on()

    def _fci_response(self, fci: bytes) -> tuple[bytes, int]:
        return self._deferred(fci) if fci else (b"", SW.OK)

    # --- SAM PIN -------------------------------------------------------------------------
    def _sam_pin(self) -> Key:
        return self.state.mf.key(KeyUse.PIN, SAM_PIN_KID)

    @staticmethod
    def _bcd(data: bytes) -> bytes:
        if not 1 <= len(data) <= 8 or any((b >> 4) > 9 or (b & 0x0F) > 9 for b in data):
            raise Status(SW.WRONG_DATA)
        return data

    def verify_sam_pin(self, cmd: CommandAPDU) -> tuple[bytes, int]:
        """``00 20 00 00 Lc PIN(BCD)`` e.g. ``0020000003123456``."""
        if cmd.p1 or cmd.p2:
            raise Status(SW.INCORRECT_P1P2)
        pin = self._sam_pin()
        if not cmd.data:
            return b"", (SW.OK if self.session.pin_verified else 0x63C0 | pin.tries_left)
        failed = self._check_pin(pin, self._bcd(cmd.data))
        if failed is not None:
            return b"", failed
        self.session.pin_verified = True
        return b"", SW.OK

    def change_sam_pin(self, cmd: CommandAPDU) -> tuple[bytes, int]:
        """``80 5E 01 00 Lc old FF new``."""
        if cmd.p1 != 0x01 or cmd.p2:
            raise Status(SW.INCORRECT_P1P2)
        old, sep, new = cmd.data.partition(b"\xff")
        if not sep:
            raise Status(SW.WRONG_DATA)
        pin = self._sam_pin()
        failed = self._check_pin(pin, self._bcd(old))
        if failed is not None:
            return b"", failed
        pin.value = self._bcd(new)
        self._changed()
        return b"", SW.OK

    # --- key derivation and cipher ---------------------------------------------------------
    def _require_pin(self) -> None:
        if not self.session.pin_verified:
            raise Status(SW.SECURITY_NOT_SATISFIED)

    def load_session_key(self, cmd: CommandAPDU) -> tuple[bytes, int]:
        """``80 DE P1 index Lc card(8) [province(8)] random(8)``: P1 high nibble 2 = one
        level (card), 4 = two levels (province, then card); low nibble 7 auth, 8 SM."""
        self._require_pin()
        levels = cmd.p1 >> 4
        if levels not in (2, 4) or cmd.p1 & 0x0F not in (7, 8):
            raise Status(SW.INCORRECT_P1P2)
        if len(cmd.data) != (16 if levels == 2 else 24):
            raise Status(SW.WRONG_LENGTH)
        app = self.state.mf.children.get(SAM_DF01)
        if not isinstance(app, DF):
            raise Status(SW.FILE_NOT_FOUND)
        master = app.key(KeyUse.MASTER, cmd.p2)
        serial = cmd.data[:8]
        province = cmd.data[8:16] if levels == 4 else None
        challenge = cmd.data[-8:]
        kc = recipes.card_key(master.value, serial, province, master.algorithm)
        self.loaded = (master.algorithm, recipes.session_key(kc, challenge, master.algorithm))
        return b"", SW.OK

    def cipher(self, cmd: CommandAPDU) -> tuple[bytes, int]:
        """``80 FA 00 00 Lc data`` ECB-encrypt; ``80 FA 05 00 Lc IV ‖ data`` 4-byte MAC."""
        self._require_pin()
        if self.loaded is None:
            raise Status(SW.CONDITIONS_NOT_SATISFIED)
        algorithm, key = self.loaded
        block = algorithm.block_size
        if cmd.p2 != 0 or cmd.p1 not in (0x00, 0x05):
            raise Status(SW.INCORRECT_P1P2)
        data = cmd.data
        if cmd.p1 == 0x00:
            if not data or len(data) % block:
                raise Status(SW.WRONG_LENGTH)
            return self._deferred(ecb_encrypt(algorithm, key, data))
        iv_len = 16  # the IV field is 16 bytes (CARD-SPEC.md §5.2); 3DES uses its first 8
        if len(data) <= iv_len or (len(data) - iv_len) % block:
            raise Status(SW.WRONG_LENGTH)
        iv, message = data[:iv_len][:block], data[iv_len:]
        return self._deferred(recipes.cbc_mac(key, message, algorithm, iv)[:4])


def build_sam(
    serial: bytes,
    masters: dict[int, bytes],
    terminal_number: bytes,
    pin: str = "123456",
    algorithm: Algorithm = Algorithm.SM4,
    issuer_certificate: bytes = b"",
    sam_certificate: bytes = b"",
) -> CardState:
    """A personalised SAM image holding ``masters`` (SAM key index → level-1 key)."""
    if len(terminal_number) != 6:
        raise ValueError("terminal number is 6 bytes: province, city, issuer, serial(3)")
    if len(pin) % 2 or not pin.isdigit() or not 2 <= len(pin) <= 16:
        raise ValueError("SAM PIN must be an even number of digits (2–16)")
    mf = DF(MF_FID, MF_NAME, fci_proprietary=True)
    public = serial.hex().upper()[:10].encode().ljust(10, b"0")[:10] + bytes([0x01, 0x01, 0x01, 0x00])
    info = EF.create(0x0015, FileKind.TRANSPARENT, FREE, NEVER, size=14)
    info.data[:] = public
    term = EF.create(0x0016, FileKind.TRANSPARENT, FREE, NEVER, size=6)
    term.data[:] = terminal_number
    mf.add(info)
    mf.add(term)
    app = DF(SAM_DF01, SAM_APP_NAME)
    mf.add(app)
    app_info = EF.create(0x001A, FileKind.TRANSPARENT, FREE, NEVER, size=25)
    app_info.data[:] = (
        bytes([0x01]) + bytes(8) + bytes(8) + bytes.fromhex("20260101") + bytes.fromhex("20361231")
    )
    app.add(app_info)
    for fid, size, content in ((0x001B, 180, issuer_certificate), (0x001C, 190, sam_certificate)):
        ef = EF.create(fid, FileKind.TRANSPARENT, FREE, NEVER, size=size)
        ef.data[: len(content)] = content[:size]
        app.add(ef)
    mf.keys[(KeyUse.PIN, SAM_PIN_KID)] = Key(SAM_PIN_KID, KeyUse.PIN, algorithm, 1, bytes.fromhex(pin), 5, 5)
    for index, value in masters.items():
        app.keys[(KeyUse.MASTER, index)] = Key(index, KeyUse.MASTER, algorithm, 1, value, 15, 15)
    return CardState(serial=serial, mf=mf, lifecycle=LifeCycle.ISSUED, application="sam", profile="sam/1")
