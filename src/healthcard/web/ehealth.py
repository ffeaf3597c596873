"""The resident's electronic health card (电子健康卡): a dynamic QR code a clinic scans instead
of the physical card (CARD-SPEC.md §9).

The text is the national dynamic-QR form ``<电子健康卡ID>:0:<有效时间(密文)>`` (§9.2, type 0 =
dynamic):

* **the e-health-card ID** is :func:`healthcard.keys.ehc.ehc_id` (§9.1, the vector of
  ``tests/vectors/ehealth-id.txt``) of ID type ``01`` and the card number (= the citizen ID
  number), under a security root key and a master index id derived from the node's token secret.
  The platform has no per-resident master-index table (no schema for it), so the node uses one
  master index for everyone: the ID is then SM4 of the card number under a key only the node
  holds — stable for a card, opaque to anyone else, and the node reads the card number back out
  of it without a lookup.
* **the validity** is §9.1's ``SM4_ECB(protection_key, BCD(YYYYMMDDHHMMSS) ‖ 9 zero bytes)`` with
  the expiry (Beijing time, 5 minutes after the code was made), under a protection key
  *diversified per card* (the physical card's diversification, with a factor from the card
  number): a validity lifted from one resident's code and put behind another's ID decrypts to
  noise.  The nine zero bytes are the integrity check — a changed block decrypts to a random
  block, which ends in nine zero bytes once in 2⁷² — so a tampered code is refused without a
  separate MAC, and the text stays in the national format.

:func:`verify` is what a clinic's scan calls (the clinic console, later): the card number of a
valid code, :class:`~healthcard.errors.CryptoError` for anything forged or damaged (opaque on
purpose), ``InvalidValue("qr_code", …)`` for a genuine code past its time.  No key leaves this
module; the keys are derived afresh from the token secret (HKDF with a purpose label).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
from dataclasses import dataclass

import segno

from healthcard.clock import SHANGHAI
from healthcard.errors import CryptoError, InvalidValue
from healthcard.keys.ehc import ehc_id, user_key
from healthcard.keys.primitives import Algorithm, ecb_decrypt, ecb_encrypt
from healthcard.keys.recipes import diversify
from healthcard.web.session import derive_key

#: how long a dynamic code is good for
VALIDITY = dt.timedelta(minutes=5)
#: how far the clock of the node that made a code may run ahead of the node that checks it: a
#: code whose expiry lies further ahead than VALIDITY + this is none of ours (refused as forged).
#: Both ends are platform clocks (the portal makes the code, the clinic page checks it with the
#: node's clock): a terminal's or phone's clock plays no part, so its skew changes nothing
#: (docs/platform.md "Clock skew").
ISSUER_CLOCK_TOLERANCE = dt.timedelta(minutes=1)
#: CV02.01.101: 01 居民身份证 (the card number is the citizen ID number)
ID_TYPE = "01"
#: 二维码类型: 0 dynamic
DYNAMIC = "0"


@dataclass(frozen=True)
class EhcKeys:
    """The node's e-health-card keys: the security root (the IDs), the protection root (the
    validity, diversified per card) and the node's master index id."""

    security_root: bytes
    protection_root: bytes
    master_index: bytes

    @classmethod
    def from_secret(cls, secret: bytes) -> EhcKeys:
        return cls(
            derive_key(secret, "ehc/security", 16),
            derive_key(secret, "ehc/protection", 16),
            derive_key(secret, "ehc/master-index", 32),
        )

    def protection_key(self, card_number: str) -> bytes:
        factor = hashlib.sha256(card_number.encode("ascii")).digest()[:8]
        return diversify(self.protection_root, factor)


@dataclass(frozen=True)
class DynamicCode:
    text: str
    ehc_id: str
    card_number: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class Verified:
    card_number: str
    expires_at: dt.datetime


def _bcd_time(moment: dt.datetime) -> bytes:
    """2018-01-17 11:50:03 (Beijing) → bytes 20 18 01 17 11 50 03 (the digits read as hex)."""
    return bytes.fromhex(moment.astimezone(SHANGHAI).strftime("%Y%m%d%H%M%S"))


def issue(keys: EhcKeys, card_number: str, now: dt.datetime) -> DynamicCode:
    """A dynamic code for ``card_number`` valid for :data:`VALIDITY` from ``now``."""
    if not card_number.isascii() or not card_number.isalnum():
        raise InvalidValue("card_number", "a card number is letters and digits")
    ident = ehc_id(keys.security_root, keys.master_index, ID_TYPE, card_number)
    expires = (now + VALIDITY).replace(microsecond=0)
    block = _bcd_time(expires) + bytes(9)
    validity = ecb_encrypt(Algorithm.SM4, keys.protection_key(card_number), block).hex().upper()
    return DynamicCode(f"{ident}:{DYNAMIC}:{validity}", ident, card_number, expires)


def _card_number(keys: EhcKeys, ident: str) -> str:
    try:
        raw = bytes.fromhex(ident)
    except ValueError:
        raise CryptoError("not an electronic health card code") from None
    if not raw or len(raw) % 16:
        raise CryptoError("not an electronic health card code")
    plain = ecb_decrypt(Algorithm.SM4, user_key(keys.security_root, keys.master_index), raw)
    text = plain.rstrip(b"\0")
    if not text.startswith(ID_TYPE.encode()) or len(plain) - len(text) >= 16:
        raise CryptoError("not an electronic health card code")
    number = text[len(ID_TYPE) :]
    if not number or not number.isascii() or not number.isalnum():
        raise CryptoError("not an electronic health card code")
    return number.decode("ascii")


def verify(keys: EhcKeys, text: str, now: dt.datetime) -> Verified:
    """The card of a dynamic code scanned at ``now``: refused when forged, damaged or expired."""
    parts = text.strip().split(":")
    if len(parts) != 3 or parts[1] != DYNAMIC:
        raise CryptoError("not a dynamic electronic health card code")
    ident, _, validity = parts
    card_number = _card_number(keys, ident)
    if ehc_id(keys.security_root, keys.master_index, ID_TYPE, card_number) != ident.upper():
        raise CryptoError("not an electronic health card code")  # not the canonical spelling
    try:
        sealed = bytes.fromhex(validity)
    except ValueError:
        raise CryptoError("not an electronic health card code") from None
    if len(sealed) != 16:
        raise CryptoError("not an electronic health card code")
    block = ecb_decrypt(Algorithm.SM4, keys.protection_key(card_number), sealed)
    if not hmac.compare_digest(block[7:], bytes(9)):
        raise CryptoError("not an electronic health card code")
    try:
        expires = dt.datetime.strptime(block[:7].hex(), "%Y%m%d%H%M%S").replace(tzinfo=SHANGHAI)
    except ValueError:
        raise CryptoError("not an electronic health card code") from None
    if expires - now > VALIDITY + ISSUER_CLOCK_TOLERANCE:
        raise CryptoError("not an electronic health card code")  # no code of ours lives that long
    if now > expires:
        raise InvalidValue(
            "qr_code", f"the code expired at {expires:%H:%M:%S}: ask the resident to show a fresh one"
        )
    return Verified(card_number, expires)


def svg(text: str, *, title: str) -> str:
    """The code as an inline SVG (no XML declaration, scalable, with a title for screen
    readers); segno escapes the title."""
    out = io.BytesIO()
    segno.make(text, error="m", micro=False).save(
        out,
        kind="svg",
        xmldecl=False,
        svgns=True,
        scale=4,
        border=4,
        omitsize=True,  # a viewBox instead of a fixed size: the CSS scales it to the screen
        title=title,
        svgclass="qr",
        lineclass=None,
    )
    return out.getvalue().decode("utf-8")


__all__ = ["DYNAMIC", "ID_TYPE", "VALIDITY", "DynamicCode", "EhcKeys", "Verified", "issue", "svg", "verify"]
