"""The SAM (PSAM) application on the same COS (CARD-SPEC.md §5.2, §6.3, §6.7).

A SAM holds the national level-1 master keys (DECISIONS.md §12) and, given a card's factors
and challenge, loads that card's session key (``80 DE``), then encrypts (``80 FA 00``) or MACs
(``80 FA 05``) with it.  Like the real PSAMs in the vendor traces, it answers ``61xx`` and
hands its data out through GET RESPONSE.  Key operations need the SAM PIN.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from healthcard.card.apdu import CommandAPDU
from healthcard.card.cos import MF_FID, MF_NAME, CardOS, CardState
from healthcard.card.filesystem import DF, EF, FREE, NEVER, FileKind, Key, KeyUse, LifeCycle, Status
from healthcard.card.sw import SW
from healthcard.keys import recipes, sm2
from healthcard.keys.certificates import SAM_CERTIFICATE_LENGTH
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
                0xF8: (frozenset({0x80}), self.sign_digest),
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

    def _app(self) -> DF:
        app = self.state.mf.children.get(SAM_DF01)
        if not isinstance(app, DF):
            raise Status(SW.FILE_NOT_FOUND)
        return app

    def current_version(self) -> int:
        """The SAM's current national key version (001A byte 1, DECISIONS.md §17)."""
        return self.state.key_info().version

    def load_session_key(self, cmd: CommandAPDU) -> tuple[bytes, int]:
        """``80 DE P1 index Lc card(8) [province(8) [city(8)]] random(8) [version(1)]``.

        P1 high nibble: 2 = one level (card), 4 = two (province, then card), 6 = three
        (province, city, card: the optional level 3); low nibble 7 auth, 8 SM.  Without the
        trailing version byte the SAM uses its current key version; with it, that version (a
        SAM keeps the current and the previous one); an unknown version answers 6A88."""
        self._require_pin()
        levels = {0x2: 1, 0x4: 2, 0x6: 3}.get(cmd.p1 >> 4)
        if levels is None or cmd.p1 & 0x0F not in (7, 8):
            raise Status(SW.INCORRECT_P1P2)
        base = 8 * levels + 8
        if len(cmd.data) not in (base, base + 1):
            raise Status(SW.WRONG_LENGTH)
        version = cmd.data[base] if len(cmd.data) > base else self.current_version()
        master = self._app().key(KeyUse.MASTER, (version << 8) | cmd.p2)
        serial = cmd.data[:8]
        province = cmd.data[8:16] if levels >= 2 else None
        city = cmd.data[16:24] if levels == 3 else None
        challenge = cmd.data[base - 8 : base]
        kc = recipes.card_key(master.value, serial, province, master.algorithm, city)
        self.loaded = (master.algorithm, recipes.session_key(kc, challenge, master.algorithm))
        return b"", SW.OK

    def sign_digest(self, cmd: CommandAPDU) -> tuple[bytes, int]:
        """``80 F8 00 00 20 <SM3 digest>`` → ``6140``, GET RESPONSE → the SM2 signature r‖s
        (64 bytes) by the SAM's private key over the 32-byte digest (DECISIONS.md §19)."""
        self._require_pin()
        if cmd.p1 or cmd.p2:
            raise Status(SW.INCORRECT_P1P2)
        if len(cmd.data) != 32:
            raise Status(SW.WRONG_LENGTH)
        key = self._app().key(KeyUse.SIGN, 0)
        return self._deferred(sm2.sign(key.value, cmd.data))

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


@dataclass(frozen=True)
class SamKeys:
    """One version of the national level-1 keys a SAM holds, by SAM key index."""

    version: int
    algorithm: Algorithm
    masters: Mapping[int, bytes] = field(repr=False)


def sam_certificate(state: CardState) -> bytes:
    """The SAM's certificate as its file DF01/001C holds it (what a terminal reads with SELECT
    001C + READ BINARY): for registering the terminal without powering a reader."""
    df = next(d for d in state.mf.walk() if d.fid == SAM_DF01)
    ef = df.children[0x001C]
    assert isinstance(ef, EF)
    return bytes(ef.data[:SAM_CERTIFICATE_LENGTH])


def build_sam(
    serial: bytes,
    masters: Mapping[int, bytes] | Sequence[SamKeys],
    terminal_number: bytes,
    pin: str = "123456",
    algorithm: Algorithm = Algorithm.SM4,
    issuer_certificate: bytes = b"",
    sam_certificate: bytes = b"",
    sign_key: bytes | None = None,
    issuer_id: bytes = bytes(8),
    valid_from: bytes = bytes.fromhex("20260101"),
    valid_until: bytes = bytes.fromhex("20361231"),
) -> CardState:
    """A personalised SAM image: the level-1 keys of one or more versions (a plain mapping is
    version 1), the SM2 signing key, the certificates, the terminal number (CARD-SPEC.md §6.7)."""
    if len(terminal_number) != 6:
        raise ValueError("terminal number is 6 bytes: province, city, issuer, serial(3)")
    if len(pin) % 2 or not pin.isdigit() or not 2 <= len(pin) <= 16:
        raise ValueError("SAM PIN must be an even number of digits (2–16)")
    versions = [SamKeys(1, algorithm, masters)] if isinstance(masters, Mapping) else list(masters)
    if not versions or len({v.version for v in versions}) != len(versions):
        raise ValueError("a SAM holds one or more distinct key versions")
    current = max(v.version for v in versions)
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
    # byte 1: the national key index = the current key version (DECISIONS.md §17)
    app_info.data[:] = bytes([current]) + issuer_id + serial + valid_from + valid_until
    app.add(app_info)
    for fid, size, content in ((0x001B, 180, issuer_certificate), (0x001C, 190, sam_certificate)):
        ef = EF.create(fid, FileKind.TRANSPARENT, FREE, NEVER, size=size)
        ef.data[: len(content)] = content[:size]
        app.add(ef)
    mf.keys[(KeyUse.PIN, SAM_PIN_KID)] = Key(SAM_PIN_KID, KeyUse.PIN, algorithm, 1, bytes.fromhex(pin), 5, 5)
    for keys in versions:
        for index, value in keys.masters.items():
            kid = (keys.version << 8) | index
            app.keys[(KeyUse.MASTER, kid)] = Key(
                kid, KeyUse.MASTER, keys.algorithm, keys.version, value, 15, 15
            )
    if sign_key is not None:
        app.keys[(KeyUse.SIGN, 0)] = Key(0, KeyUse.SIGN, Algorithm.SM2, 1, sign_key, 15, 15)
    return CardState(serial=serial, mf=mf, lifecycle=LifeCycle.ISSUED, application="sam", profile="sam/2")
