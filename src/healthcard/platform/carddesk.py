"""The card centre (卡管中心) for the platform's logged-in people: the card administrators' pages
and the resident's own card (the portal, the API).

The card centre (:class:`~healthcard.issuance.cardcentre.CardCentre`) knows its own operators
(desks, kiosks, scripts: the CLI's ``--operator``), not the platform's accounts.  This desk is
where the two meet:

* a **card administrator** (an account of role ``card-admin`` at a card centre) acts in the card
  centre as an :class:`~healthcard.issuance.cardcentre.Acting` — the card centre checks it as it
  checks an operator (the role may take the step, the account's card centre is of the card's
  province) and writes the username into the card's history; the reads that show people (the
  applications queue, a card's history) leave an entry in the platform's audit log;
* a **resident** reports their own card lost (挂失): only the current card of their own person,
  the access policy's ``card`` write for ``self`` checked and audited with the resident as actor
  in the same transaction as the card's move to LOST (and its hot-list entry);
* the **platform admin** sees the hot lists (the list every terminal loads anyway), no one's
  application or card.

Staff actions that change a card are audited by the card's own history (who, when, why), as the
CLI's are; the platform's audit log records the reads of people's data and the holder's report.
"""

from __future__ import annotations

from healthcard.clock import Clock
from healthcard.errors import InvalidValue, NotFound, PermissionDenied
from healthcard.issuance.cardcentre import (
    Acting,
    ApplicationView,
    CardCentre,
    CardHistory,
    CardView,
    HotListStatus,
)
from healthcard.issuance.chips import ChipSource
from healthcard.issuance.lifecycle import ApplicationStatus
from healthcard.platform.access import Access, Action, Actor, Category, Role
from healthcard.platform.audit import Audit
from healthcard.platform.mpi import IdSystem, Mpi
from healthcard.platform.terminals import Terminals
from healthcard.storage.db import Database
from healthcard.storage.uow import UnitOfWork

#: who may open the card centre's pages that name people, and act there
CARD_STAFF = frozenset({Role.CARD_ADMIN})
#: who may see the hot lists (published to every terminal: no one's record)
HOTLIST_READERS = frozenset({Role.CARD_ADMIN, Role.ADMIN})
#: the applications queue, a page at most
MAX_PAGE = 200


def card_number(value: str) -> str:
    """A card number as typed (the citizen ID number; the check character X in either case)."""
    number = value.strip().upper()
    if not number or len(number) > 18 or not number.isalnum():
        raise InvalidValue("card_number", "the card number: the holder's 18-character ID number")
    return number


def reason_of(value: str, what: str) -> str:
    text = " ".join(value.split())
    if not text:
        raise InvalidValue("reason", f"say why the card is {what}")
    if len(text) > 200:
        raise InvalidValue("reason", "at most 200 characters")
    return text


class CardDesk:
    def __init__(
        self,
        cards: CardCentre,
        db: Database,
        clock: Clock,
        *,
        access: Access,
        audit: Audit,
        mpi: Mpi,
        terminals: Terminals | None = None,
    ) -> None:
        self.cards = cards
        self.db = db
        self.clock = clock
        self.access = access
        self.audit = audit
        self.mpi = mpi
        #: the platform's terminals (self-service issuance is for those of kind ``kiosk``)
        self.terminals = terminals

    # --- who acts ------------------------------------------------------------------------------
    @staticmethod
    def acting(actor: Actor) -> Acting:
        """A card administrator as the card centre sees it; anyone else is refused here."""
        if actor.role not in CARD_STAFF:
            raise PermissionDenied("the card centre's work is for card administrators")
        return Acting(actor.id, actor.role.value, actor.institution_code)

    def _note(self, actor: Actor, what: str, why: str, resident_id: str | None = None) -> None:
        with self.db.uow() as uow:
            self.audit.record(uow, actor, action="read", what=what, why=why[:200], resident_id=resident_id)
            uow.commit()

    # --- applications ----------------------------------------------------------------------------
    def applications(
        self, actor: Actor, status: str | None = None, *, offset: int = 0, limit: int = 50
    ) -> list[ApplicationView]:
        """A page of the queue, newest first (``status``: SUBMITTED, APPROVED, ISSUED, REJECTED or
        all); the read is audited (it shows names and ID numbers)."""
        self.acting(actor)
        try:
            wanted = ApplicationStatus(status) if status else None
        except ValueError:
            choices = ", ".join(s.value for s in ApplicationStatus)
            raise InvalidValue("status", f"{status!r}: one of {choices}") from None
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidValue("limit", f"{limit}: 1 to {MAX_PAGE}")
        rows = self.cards.applications(wanted, limit, offset=offset)
        self._note(actor, "card applications", f"status {wanted or 'any'}, from {offset}")
        return rows

    def approve(self, actor: Actor, number: str) -> ApplicationView:
        return self.cards.approve(self.acting(actor), number)

    def reject(self, actor: Actor, number: str, reason: str) -> ApplicationView:
        acting = self.acting(actor)
        return self.cards.reject(acting, number, reason_of(reason, "rejected"))

    def issue(self, actor: Actor, number: str, chips: ChipSource) -> CardView:
        """Personalise the card of an approved application on a chip of ``chips``."""
        return self.cards.issue(self.acting(actor), number, chips)

    # --- one card ----------------------------------------------------------------------------------
    def card(self, actor: Actor, number: str) -> CardHistory:
        """A card number's chips and history; the read is checked and audited as the ``card``
        category of its holder."""
        self.acting(actor)
        history = self.cards.card(card_number(number))
        holder = history.cards[-1].resident_id
        with self.db.uow() as uow:
            ids = self.mpi.linked_ids(uow, holder)
            self.access.check(uow, actor, ids, Category.CARD, what="card history", why=history.card_number)
            uow.commit()
        return history

    def report_lost(self, actor: Actor, number: str, reason: str) -> CardView:
        acting = self.acting(actor)
        return self.cards.report_lost(acting, card_number(number), reason_of(reason, "reported lost"))

    def recover(self, actor: Actor, number: str, reason: str) -> CardView:
        acting = self.acting(actor)
        return self.cards.recover(acting, card_number(number), reason_of(reason, "recovered"))

    def cancel(self, actor: Actor, number: str, reason: str) -> CardView:
        acting = self.acting(actor)
        return self.cards.cancel(acting, card_number(number), reason_of(reason, "cancelled"))

    def replace(self, actor: Actor, number: str, reason: str, chips: ChipSource) -> CardView:
        """A new chip with the same card number and the on-card data the platform holds."""
        acting = self.acting(actor)
        return self.cards.replace(acting, card_number(number), chips, reason_of(reason, "replaced"))

    # --- hot lists ---------------------------------------------------------------------------------
    def hotlists(self, actor: Actor, *, latest: int = 10) -> list[HotListStatus]:
        """Every province's hot list: version, listed chips, the latest changes."""
        if actor.role not in HOTLIST_READERS:
            raise PermissionDenied("the hot lists are for card administrators and platform admins")
        return [self.cards.hotlist_status(p, latest=latest) for p in self.cards.hotlist_provinces()]

    # --- a self-service kiosk --------------------------------------------------------------------------
    def issue_at_kiosk(
        self, actor: Actor, *, id_number: str, name: str, pin: str, chips: ChipSource
    ) -> CardView:
        """自助发卡: a self-service kiosk — a terminal of kind ``kiosk``, logged in with its SAM —
        issues the approved application of the person whose ID card it read (``id_number`` and
        ``name``), with the cardholder PIN they chose, on a chip of its dispenser ``chips``; the
        card is handed over (ACTIVE) at once.  The card centre acts the terminal as its operator
        of the same id (``healthcard org add-operator <terminal id> --role kiosk``), of the
        terminal's institution (:class:`~healthcard.issuance.cardcentre.Acting`); the card's
        history names it.  Refused with nothing written: anyone but a kiosk terminal, a PIN that
        is not 6 digits (``pin``), no approved application of that ID number (404), a name that is
        not the application's (``name``).  The PIN goes into the chip only (never stored, logged
        or put in an error)."""
        if actor.role != Role.TERMINAL or self.terminals is None:
            raise PermissionDenied("a card is issued here by a self-service kiosk")
        with self.db.uow() as uow:
            terminal = self.terminals.get(uow, actor.id)
            if terminal.kind != "kiosk" or not terminal.active:
                raise PermissionDenied("only a self-service kiosk issues cards to the people at it")
        acting = Acting(actor.id, actor.role.value, actor.institution_code)
        return self.cards.issue_at_kiosk(acting, id_number=id_number, name=name, chips=chips, pin=pin)

    # --- the holder ----------------------------------------------------------------------------------
    def _holder_card(self, uow: UnitOfWork, ids: list[str]) -> str:
        """The card number of the person: the MPI's active ``card`` identifier, else the ID number."""
        person = self.mpi.person(uow, ids[0])
        numbers = [i.value for i in person.identifiers if i.system == IdSystem.CARD and i.active]
        return numbers[0] if numbers else person.id_number

    def report_lost_by_holder(self, actor: Actor, resident_id: str, *, reason: str = "") -> CardView:
        """The resident reports their own current card lost: refused (nothing written) for anyone
        but the resident themselves, for a card that is not ISSUED or ACTIVE (already LOST,
        replaced, cancelled …) and for a person without a card."""
        if actor.role != Role.RESIDENT:
            raise PermissionDenied("a card is reported lost here by its holder; staff use the card centre")
        if len(reason) > 200:
            raise InvalidValue("reason", "at most 200 characters")
        with self.db.uow() as uow:
            ids = self.mpi.linked_ids(uow, resident_id)
            if actor.resident_id not in ids:  # refused and audited by the policy: no one else's card
                self.access.check(
                    uow, actor, ids, Category.CARD, Action.WRITE, what="card", why="report lost"
                )
            number = self._holder_card(uow, ids)

        def witness(uow: UnitOfWork, view: CardView) -> None:
            self.access.check(
                uow,
                actor,
                ids,
                Category.CARD,
                Action.WRITE,
                what="card",
                why=f"reported lost {view.chip_serial}",
            )

        text = " ".join(reason.split())
        return self.cards.report_lost_by_holder(
            actor.id,
            number,
            owners=ids,
            reason=f"holder: {text}" if text else "reported lost by the holder",
            witness=witness,
        )

    def holder_card(self, actor: Actor, resident_id: str) -> CardView | None:
        """The person's current card (status, validity), read as the ``card`` category."""
        with self.db.uow() as uow:
            ids = self.mpi.linked_ids(uow, resident_id)
            self.access.check(uow, actor, ids, Category.CARD, what="card")
            number = self._holder_card(uow, ids)
            uow.commit()
        try:
            history = self.cards.card(number)
        except NotFound:  # a person without a card
            return None
        current = history.current
        return current if current is not None and current.resident_id in ids else None


__all__ = ["CARD_STAFF", "HOTLIST_READERS", "CardDesk", "card_number", "reason_of"]
