"""Status words (ISO/IEC 7816-4, DECISIONS.md §3) as an enum with phrases.

The card only ever answers with one of these; the host side maps them to exceptions in
:data:`EXCEPTIONS` (one table, STYLE.md habit 8).
"""

from __future__ import annotations

import enum

from healthcard import errors


class SW(enum.IntEnum):
    """A status word; ``phrase`` says what it means."""

    phrase: str

    def __new__(cls, value: int, phrase: str) -> SW:
        member = int.__new__(cls, value)
        member._value_ = value
        member.phrase = phrase
        return member

    OK = 0x9000, "normal processing"
    END_OF_FILE = 0x6282, "end of file reached before Le bytes"
    AUTH_FAILED = 0x6300, "authentication failed"
    WRONG_LENGTH = 0x6700, "wrong length"
    MEMORY_FAILURE = 0x6581, "memory failure"
    INCOMPATIBLE_FILE = 0x6981, "command incompatible with file structure"
    SECURITY_NOT_SATISFIED = 0x6982, "security status not satisfied"
    AUTH_BLOCKED = 0x6983, "authentication method blocked"
    CONDITIONS_NOT_SATISFIED = 0x6985, "conditions of use not satisfied"
    COMMAND_NOT_ALLOWED = 0x6986, "command not allowed (no current EF)"
    SM_INCORRECT = 0x6988, "secure messaging data objects incorrect"
    WRONG_DATA = 0x6A80, "incorrect parameters in the data field"
    FUNCTION_NOT_SUPPORTED = 0x6A81, "function not supported (card blocked)"
    FILE_NOT_FOUND = 0x6A82, "file not found"
    RECORD_NOT_FOUND = 0x6A83, "record not found"
    NOT_ENOUGH_MEMORY = 0x6A84, "not enough memory space in the file"
    INCORRECT_P1P2 = 0x6A86, "incorrect parameters P1-P2"
    REFERENCED_DATA_NOT_FOUND = 0x6A88, "referenced data not found"
    FILE_EXISTS = 0x6A89, "file already exists"
    WRONG_P1P2 = 0x6B00, "wrong parameters P1-P2 (offset outside the file)"
    INS_NOT_SUPPORTED = 0x6D00, "instruction code not supported"
    CLA_NOT_SUPPORTED = 0x6E00, "class not supported"
    NO_PRECISE_DIAGNOSIS = 0x6F00, "no precise diagnosis"

    @property
    def hex(self) -> str:
        return f"{self.value:04X}"


def describe(sw: int) -> str:
    """A phrase for any status word, including the counted ones (61xx, 63Cx, 6Cxx)."""
    known = SW._value2member_map_.get(sw)
    if isinstance(known, SW):
        return known.phrase
    sw1, sw2 = sw >> 8, sw & 0xFF
    if sw1 == 0x61:
        return f"{sw2} response bytes still available (GET RESPONSE)"
    if sw1 == 0x63 and sw2 & 0xF0 == 0xC0:
        return f"verification failed, {sw2 & 0x0F} tries left"
    if sw1 == 0x6C:
        return f"wrong Le, exact length is {sw2}"
    return "unknown status word"


def is_success(sw: int) -> bool:
    """9000, a warning the data is still good for (6282), or 61xx (more data waiting)."""
    return sw in (0x9000, 0x6282) or sw >> 8 == 0x61


#: the refusals an attack on the card causes (a wrong cryptogram, a bad MAC, a spent or stale
#: challenge, a blocked key or PIN), besides the counted 63Cx: :func:`is_refusal`
REFUSALS = frozenset(
    {SW.AUTH_FAILED, SW.SECURITY_NOT_SATISFIED, SW.AUTH_BLOCKED, SW.CONDITIONS_NOT_SATISFIED, SW.SM_INCORRECT}
)


def is_refusal(sw: int) -> bool:
    """A refusal an attack causes (:data:`REFUSALS` or 63Cx, a try counted): what the terminal
    logs and reports to the platform's audit (docs/card.md §13)."""
    return sw in REFUSALS or sw & 0xFFF0 == 0x63C0


#: the one SW → exception table of the host side
EXCEPTIONS: dict[int, type[errors.CardError]] = {
    SW.FILE_NOT_FOUND: errors.FileNotFound,
    SW.RECORD_NOT_FOUND: errors.RecordNotFound,
    SW.SECURITY_NOT_SATISFIED: errors.SecurityNotSatisfied,
    SW.AUTH_FAILED: errors.AuthenticationFailed,
    SW.AUTH_BLOCKED: errors.AuthenticationBlocked,
    SW.CONDITIONS_NOT_SATISFIED: errors.ConditionsNotSatisfied,
    SW.SM_INCORRECT: errors.SecureMessagingError,
    SW.FUNCTION_NOT_SUPPORTED: errors.CardBlocked,
    SW.WRONG_LENGTH: errors.WrongParameters,
    SW.WRONG_P1P2: errors.WrongParameters,
    SW.INCORRECT_P1P2: errors.WrongParameters,
    SW.INS_NOT_SUPPORTED: errors.WrongParameters,
    SW.CLA_NOT_SUPPORTED: errors.WrongParameters,
    SW.WRONG_DATA: errors.WrongParameters,
}


def exception_for(sw: int) -> errors.CardError:
    """The exception the host raises for an error status word."""
    if sw >> 8 == 0x63 and (sw & 0xF0 == 0xC0 or sw == 0x6300):
        return errors.AuthenticationFailed(sw, describe(sw))
    return EXCEPTIONS.get(sw, errors.CardError)(sw, describe(sw))
