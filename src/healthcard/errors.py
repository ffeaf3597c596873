"""The one exception tree of HealthCard.

::

    HealthCardError                    every error the project raises on purpose
    ├── InvalidValue                   bad input for a named field (``field`` says which)
    │   ├── EncodingError              a value does not fit its card coding (ans / cn / b)
    │   └── Duplicate                  the value is already taken (a second active card for one ID)
    ├── NotFound                       no application / card / operator with that number
    ├── TransitionRefused              a life-cycle step not allowed from the current status
    ├── PermissionDenied               the operator's role may not do this
    ├── NotAuthenticated               no valid login: wrong password, expired token, bad SAM signature
    ├── TooManyAttempts                too many logins / challenges / PINs from one place: wait
    │                                  ``retry_after`` seconds (HTTP 429)
    ├── HotListed                      a terminal refuses a card on the hot list (黑名单)
    ├── HotListError                   a hot list that cannot be loaded (wrong base version, format)
    ├── StorageError                   the database is unreachable or not at the current schema
    ├── MessagingError                 the bus between platform nodes (NATS) is unreachable, refused a
    │                                  message or did not acknowledge it in time
    ├── CryptoError                    a cryptographic check failed (opaque on purpose)
    ├── CardError                      the card answered with an error status word
    │   ├── FileNotFound               6A82
    │   ├── RecordNotFound             6A83
    │   ├── SecurityNotSatisfied       6982
    │   ├── AuthenticationFailed       6300 / 63Cx on EXTERNAL AUTHENTICATE or VERIFY
    │   ├── AuthenticationBlocked      6983
    │   ├── ConditionsNotSatisfied     6985
    │   ├── SecureMessagingError       6988
    │   ├── CardBlocked                6A81
    │   └── WrongParameters            6700 / 6B00 / 6A86 / 6D00 / 6E00 / ...
    ├── SamError                       the SAM answered with an error status word
    ├── RecordInvalid                  a DF03 visit record is marked FF (not valid)
    ├── ImageError                     a card image cannot be read or written
    ├── TransportError                 the reader, pcscd or the vpcd link failed
    │   ├── CardRemoved                the SDK lost the user card mid-operation (``step``: where)
    │   └── SamRemoved                 the SDK lost the SAM mid-operation (``step``: where)
    ├── KeyStoreError                  the key store cannot be opened or written (wrong passphrase,
    │                                  missing HSM token, a key or set that is not there)
    ├── KeyVersionError                a card's key version is not held by the SAM / key store
    └── CertificateError               a certificate or signature is refused (``reason`` says why)

The card itself never raises out of ``process()``: it answers with a status word.  The host
side (``healthcard.terminal``) turns status words into these exceptions in one table.
"""

from __future__ import annotations


class HealthCardError(Exception):
    """Root of every error HealthCard raises on purpose."""


class InvalidValue(HealthCardError):
    """A value given for a named field is not acceptable."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class EncodingError(InvalidValue):
    """A value cannot be encoded in the card coding of its data item."""


class Duplicate(InvalidValue):
    """The value is already taken: one person holds one active card nationally."""


class NotFound(HealthCardError):
    """Nothing with that number: ``what`` (application, card, operator…) and ``key``."""

    def __init__(self, what: str, key: str) -> None:
        self.what = what
        self.key = key
        super().__init__(f"no {what} {key}")


class TransitionRefused(HealthCardError):
    """A life-cycle step that the current status does not allow (e.g. recovering a cancelled
    card)."""


class PermissionDenied(HealthCardError):
    """The operator's role may not do this (e.g. a collection point cancelling a card)."""


class NotAuthenticated(HealthCardError):
    """The caller is not who it claims: a wrong password, a locked account, an expired or forged
    token, a terminal whose SAM signature does not verify.  The message never says which of
    username and password was wrong."""


class TooManyAttempts(HealthCardError):
    """Too many attempts (logins, terminal challenges, PINs) from one client address or reader
    within a window: refused before any work, ``retry_after`` seconds until the window ends."""

    def __init__(self, what: str, retry_after: int) -> None:
        self.what = what
        self.retry_after = max(1, retry_after)
        super().__init__(f"too many {what}: try again in {self.retry_after} s")


class HotListed(HealthCardError):
    """A terminal refuses a card whose chip serial is on the hot list it loaded."""

    def __init__(self, message: str, card_number: str = "", reason: str = "") -> None:
        self.card_number = card_number
        self.reason = reason
        super().__init__(message)


class HotListError(HealthCardError):
    """A hot list cannot be loaded: malformed, another province's, or a delta whose base
    version is not the one the terminal holds."""


class StorageError(HealthCardError):
    """The database cannot be reached, or its schema is not the current one (run
    ``healthcard db upgrade``)."""


class MessagingError(HealthCardError):
    """The message bus between platform nodes (NATS JetStream, or the in-process bus) could not
    be reached, refused a message, or did not acknowledge it in time.  Nothing is lost: an
    announcement stays in the outbox until the bus acknowledged it (healthcard.federation)."""


class CryptoError(HealthCardError):
    """A cryptographic operation failed. Deliberately says nothing about keys or data."""


class CardError(HealthCardError):
    """The card answered with an error status word."""

    def __init__(self, sw: int, message: str = "") -> None:
        self.sw = sw
        text = f"card returned {sw:04X}"
        super().__init__(f"{text}: {message}" if message else text)


class FileNotFound(CardError):
    pass


class RecordNotFound(CardError):
    pass


class SecurityNotSatisfied(CardError):
    pass


class AuthenticationFailed(CardError):
    pass


class AuthenticationBlocked(CardError):
    pass


class ConditionsNotSatisfied(CardError):
    pass


class SecureMessagingError(CardError):
    pass


class CardBlocked(CardError):
    pass


class WrongParameters(CardError):
    pass


class SamError(CardError):
    """The SAM answered with an error status word."""


class RecordInvalid(HealthCardError):
    """A DF03 visit record slot is marked invalid (FF) in its index file."""


class ImageError(HealthCardError):
    """A card image file cannot be read or written."""


class TransportError(HealthCardError):
    """The link to the card failed (reader gone, pcscd down, vpcd closed)."""


class CardRemoved(TransportError):
    """The terminal SDK lost the user card in the middle of an operation (pulled from the reader,
    reader unplugged, pcscd gone).  ``step`` names the file and command that got no answer, e.g.
    ``"UPDATE BINARY DF03/ED01"``; the cause (``__cause__``) is the transport's own error.  Each
    command the card answered is complete on the card, the one without an answer is done whole
    or not at all, and the rest never reached it (docs/card.md §9.1)."""

    def __init__(self, step: str, reason: str) -> None:
        self.step = step
        super().__init__(f"the card was removed during {step}: {reason}")


class SamRemoved(TransportError):
    """As :class:`CardRemoved`, for the terminal's SAM slot (the PSAM pulled or its reader gone);
    ``step`` names the SAM command, e.g. ``"SAM VERIFY (PIN)"``."""

    def __init__(self, step: str, reason: str) -> None:
        self.step = step
        super().__init__(f"the SAM was removed during {step}: {reason}")


class KeyStoreError(HealthCardError):
    """The key store cannot be opened or written. The message names what is wrong (the
    passphrase, the HSM token, the key set) and never contains key material."""


class KeyVersionError(HealthCardError):
    """A card's key version (or algorithm) is not one the SAM or key store holds."""


class CertificateError(HealthCardError):
    """A certificate or a signature is refused.

    ``reason`` is one of ``"malformed"``, ``"forged"`` (the signature does not verify — also a
    certificate signed by another root that claims a trusted index), ``"expired"``,
    ``"not-yet-valid"``, ``"unknown-root"`` (no trusted root with that index or certifier),
    ``"wrong-kind"`` (an issuer certificate where a SAM certificate belongs, or the reverse) or
    ``"unsigned"`` (a visit record whose signature tail is all zero)."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(f"{reason}: {message}")
