"""Card terminals and how they log in: by their SAM, not by a password.

A terminal is registered once with its SAM certificate (190 bytes, signed by the national root,
DECISIONS.md §18): the platform checks the certificate against its trust store and keeps the
SAM's SM2 public key, bound to the institution the terminal stands in.  To log in the terminal
asks for a challenge and has its SAM sign

    digest = SM3(b"HEALTHCARD-TERMINAL-LOGIN" ‖ nonce)

with the SAM's own key (the ``80 F8`` command that also signs visit records).  A stolen
workstation without its SAM cannot log in; a SAM moved to another institution logs in as the
institution it was registered to, which the administrator changes by re-registering.

The challenge is stateless, so any worker of a node can check it: ``nonce`` = 16 random bytes ‖
expiry (8 bytes, Unix seconds) ‖ HMAC-SHA-256 (16 bytes) over both and the terminal id, keyed by
the node's token secret.  A nonce is good for :data:`CHALLENGE_SECONDS`; within them it could be
replayed by whoever sees the SAM's answer on the wire — which is why the API is served over TLS in
production — but not forged or moved to another terminal.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
from dataclasses import dataclass

from sqlalchemy import select

from healthcard.clock import Clock, local_date
from healthcard.errors import CertificateError, InvalidValue, NotAuthenticated, NotFound
from healthcard.keys import sm2
from healthcard.keys.certificates import TrustStore, verify_certificate
from healthcard.keys.primitives import sm3
from healthcard.platform.access import Actor, Carrier, Role
from healthcard.storage import tables as t
from healthcard.storage.uow import UnitOfWork

LOGIN_CONTEXT = b"HEALTHCARD-TERMINAL-LOGIN"
CHALLENGE_SECONDS = 60
KINDS = ("workstation", "kiosk", "registration", "cashier", "lab", "pharmacy", "vaccination")


def login_digest(nonce: bytes) -> bytes:
    """What the SAM signs to log its terminal in."""
    return sm3(LOGIN_CONTEXT + nonce)


@dataclass(frozen=True)
class TerminalView:
    id: str
    institution_code: str
    kind: str
    active: bool

    def actor(self) -> Actor:
        return Actor(self.id, Role.TERMINAL, institution_code=self.institution_code, carrier=Carrier.CARD)


def _view(row: t.Terminal) -> TerminalView:
    return TerminalView(row.id, row.institution_code, row.kind, row.active)


class Terminals:
    def __init__(self, clock: Clock, secret: bytes, trust: TrustStore) -> None:
        self.clock = clock
        self._secret = secret
        self.trust = trust

    def register(
        self, uow: UnitOfWork, *, certificate: bytes, institution_code: str, kind: str = "workstation"
    ) -> TerminalView:
        """Register (or move) the terminal whose SAM holds ``certificate``."""
        if kind not in KINDS:
            raise InvalidValue("kind", f"{kind!r}: one of {', '.join(KINDS)}")
        if uow.session.get(t.Institution, institution_code) is None:
            raise InvalidValue("institution_code", f"no institution {institution_code}")
        try:
            cert = verify_certificate(certificate, self.trust, local_date(self.clock), kind="sam")
        except CertificateError as exc:
            raise InvalidValue("certificate", str(exc)) from None
        terminal_id = cert.subject
        row = uow.session.get(t.Terminal, terminal_id)
        if row is None:
            row = t.Terminal(id=terminal_id, created_at=self.clock.now())
            uow.session.add(row)
        row.institution_code = institution_code
        row.kind = kind
        row.public_key = cert.public_key.hex().upper()
        row.active = True
        uow.flush()
        return _view(row)

    def get(self, uow: UnitOfWork, terminal_id: str) -> TerminalView:
        row = uow.session.get(t.Terminal, terminal_id)
        if row is None:
            raise NotFound("terminal", terminal_id)
        return _view(row)

    def of_institution(self, uow: UnitOfWork, institution_code: str) -> list[TerminalView]:
        rows = uow.session.scalars(
            select(t.Terminal).where(t.Terminal.institution_code == institution_code).order_by(t.Terminal.id)
        )
        return [_view(r) for r in rows]

    def _tag(self, terminal_id: str, body: bytes) -> bytes:
        return hmac.new(self._secret, terminal_id.encode() + body, hashlib.sha256).digest()[:16]

    def challenge(self, terminal_id: str) -> bytes:
        expiry = int(self.clock.now().timestamp()) + CHALLENGE_SECONDS
        body = secrets.token_bytes(16) + struct.pack(">Q", expiry)
        return body + self._tag(terminal_id, body)

    def login(
        self,
        uow: UnitOfWork,
        *,
        terminal_id: str,
        nonce: bytes,
        signature: bytes,
        certificate: bytes | None = None,
    ) -> TerminalView:
        """The terminal, when ``nonce`` is a fresh challenge of this node for it and its SAM's
        signature over :func:`login_digest` verifies under the registered key."""
        if len(nonce) != 40 or not hmac.compare_digest(self._tag(terminal_id, nonce[:24]), nonce[24:]):
            raise NotAuthenticated("not a challenge of this platform")
        (expiry,) = struct.unpack(">Q", nonce[16:24])
        if expiry < self.clock.now().timestamp():
            raise NotAuthenticated("the challenge expired: ask for a new one")
        row = uow.session.get(t.Terminal, terminal_id)
        if row is None or not row.active:
            raise NotAuthenticated("unknown or retired terminal")
        if certificate is not None:  # sent along: it must be the registered SAM's, still valid
            try:
                cert = verify_certificate(certificate, self.trust, local_date(self.clock), kind="sam")
            except CertificateError:
                raise NotAuthenticated("the SAM certificate is not valid") from None
            if cert.public_key.hex().upper() != row.public_key:
                raise NotAuthenticated("the SAM certificate is not the registered one")
        if not sm2.verify(bytes.fromhex(row.public_key), login_digest(nonce), signature):
            raise NotAuthenticated("the SAM signature does not verify")
        return _view(row)
