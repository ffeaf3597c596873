"""The life cycle of applications and cards, and who may move them (ARCHITECTURE.md §6 flows 1, 5).

::

    application:  SUBMITTED ──approve──▶ APPROVED ──issue──▶ ISSUED
                      └──reject──▶ REJECTED        (a failed personalisation leaves it APPROVED)

    card:  PERSONALISING ──END PERSONALISATION──▶ ISSUED ──hand over──▶ ACTIVE
                 └──failed / never finished──▶ SPOILED          │
           ACTIVE ──report lost──▶ LOST ──recover──▶ ACTIVE     │
           ISSUED / ACTIVE / LOST ──replace──▶ REPLACED (a new chip, the same card number)
           ISSUED / ACTIVE / LOST ──cancel──▶ CANCELLED  (death, emigration, wrong identity)
           ISSUED / ACTIVE ──validity date passed──▶ EXPIRED

LOST, REPLACED and CANCELLED chips are on the province's hot list (a recovered card comes off
it).  The table :data:`ALLOWED` says which role may take which step; the card centre checks it
before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from healthcard.errors import PermissionDenied, TransitionRefused


class CardStatus(StrEnum):
    PERSONALISING = "PERSONALISING"  # a chip is being personalised: not yet a card
    ISSUED = "ISSUED"  # personalised, waiting at the card centre or collection point
    ACTIVE = "ACTIVE"  # handed over to the resident (领卡)
    LOST = "LOST"  # reported lost (挂失): hot-listed until recovered or replaced
    REPLACED = "REPLACED"  # another chip now carries the card number (补卡 / 换卡): hot-listed
    CANCELLED = "CANCELLED"  # 注销 (death, emigration, identity error): hot-listed
    EXPIRED = "EXPIRED"  # past the validity date of DDF1/EF08
    SPOILED = "SPOILED"  # personalisation failed or never finished: the chip is no card

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def live(self) -> bool:
        """The status of "the person's card" (one per card number, nationally)."""
        return self in (CardStatus.PERSONALISING, CardStatus.ISSUED, CardStatus.ACTIVE, CardStatus.LOST)


_LABELS = {
    CardStatus.PERSONALISING: "制卡中",
    CardStatus.ISSUED: "已制卡",
    CardStatus.ACTIVE: "正常",
    CardStatus.LOST: "挂失",
    CardStatus.REPLACED: "已补换",
    CardStatus.CANCELLED: "注销",
    CardStatus.EXPIRED: "过期",
    CardStatus.SPOILED: "废卡",
}


class ApplicationStatus(StrEnum):
    SUBMITTED = "SUBMITTED"  # taken at a collection point, waiting for the card centre
    APPROVED = "APPROVED"  # checked by the card centre: may be personalised (again after a failure)
    ISSUED = "ISSUED"  # a card was issued for it
    REJECTED = "REJECTED"  # refused by the card centre (the note says why)


class ApplicationKind(StrEnum):
    NEW = "NEW"  # 申领: a first card
    REPLACEMENT = "REPLACEMENT"  # 补卡 / 换卡: a new chip for a lost or damaged card


class Role(StrEnum):
    CLERK = "clerk"  # collection-point operator (信息采集员)
    CARD_ADMIN = "card-admin"  # province / city card centre staff (卡管中心)
    KIOSK = "kiosk"  # a hospital's self-service issuing kiosk
    RESIDENT = "resident"  # the cardholder (portal, kiosk after identity check)
    SYSTEM = "system"  # scheduled jobs (expiry)


class Action(StrEnum):
    SUBMIT = "submit"
    APPROVE = "approve"
    REJECT = "reject"
    ISSUE = "issue"
    ACTIVATE = "activate"
    REPORT_LOST = "report-lost"
    RECOVER = "recover"
    REPLACE = "replace"
    CANCEL = "cancel"
    EXPIRE = "expire"


#: which roles may take each step
ALLOWED: dict[Action, frozenset[Role]] = {
    Action.SUBMIT: frozenset({Role.CLERK, Role.CARD_ADMIN}),
    Action.APPROVE: frozenset({Role.CARD_ADMIN}),
    Action.REJECT: frozenset({Role.CARD_ADMIN}),
    Action.ISSUE: frozenset({Role.CARD_ADMIN, Role.KIOSK}),
    Action.ACTIVATE: frozenset({Role.CARD_ADMIN, Role.CLERK, Role.KIOSK}),
    Action.REPORT_LOST: frozenset({Role.CARD_ADMIN, Role.CLERK, Role.KIOSK, Role.RESIDENT}),
    Action.RECOVER: frozenset({Role.CARD_ADMIN, Role.CLERK}),
    Action.REPLACE: frozenset({Role.CARD_ADMIN, Role.KIOSK}),
    Action.CANCEL: frozenset({Role.CARD_ADMIN}),
    Action.EXPIRE: frozenset({Role.CARD_ADMIN, Role.SYSTEM}),
}


@dataclass(frozen=True)
class Step:
    """A card status change: from which statuses, to which one."""

    sources: frozenset[CardStatus]
    target: CardStatus


_LIVE = frozenset({CardStatus.ISSUED, CardStatus.ACTIVE, CardStatus.LOST})
STEPS: dict[Action, Step] = {
    Action.ACTIVATE: Step(frozenset({CardStatus.ISSUED}), CardStatus.ACTIVE),
    Action.REPORT_LOST: Step(frozenset({CardStatus.ISSUED, CardStatus.ACTIVE}), CardStatus.LOST),
    Action.RECOVER: Step(frozenset({CardStatus.LOST}), CardStatus.ACTIVE),
    Action.REPLACE: Step(_LIVE, CardStatus.REPLACED),
    Action.CANCEL: Step(_LIVE, CardStatus.CANCELLED),
    Action.EXPIRE: Step(frozenset({CardStatus.ISSUED, CardStatus.ACTIVE}), CardStatus.EXPIRED),
}


def require_role(action: Action, role: str, who: str) -> Role:
    """The operator's role, if it may take ``action``; else PermissionDenied."""
    try:
        parsed = Role(role)
    except ValueError:
        raise PermissionDenied(f"operator {who} has an unknown role {role!r}") from None
    if parsed not in ALLOWED[action]:
        allowed = ", ".join(sorted(r.value for r in ALLOWED[action]))
        raise PermissionDenied(f"operator {who} ({parsed.value}) may not {action.value}: only {allowed}")
    return parsed


def step(action: Action, current: str, card_number: str) -> CardStatus:
    """The status ``action`` moves a card to from ``current``; else TransitionRefused."""
    rule = STEPS[action]
    status = CardStatus(current)
    if status not in rule.sources:
        allowed = " or ".join(sorted(s.value for s in rule.sources))
        raise TransitionRefused(
            f"card {card_number} is {status.value} ({status.label}): {action.value} needs {allowed}"
        )
    return rule.target
