"""The card centre for the platform's logged-in people (platform.carddesk), on SQLite and
PostgreSQL: a card administrator's account acting in the card centre with the card centre's own
checks (role, card centre, province), the applications queue paged, lost / recovered / replaced /
cancelled with reasons, the hot lists, and the holder's own report of a lost card — audited with
the resident as actor, the hot list's version moved, and nothing written on a refusal."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from healthcard.errors import InvalidValue, NotFound, PermissionDenied, TransitionRefused
from healthcard.issuance.chips import SimulatedChips
from healthcard.issuance.lifecycle import ApplicationStatus, CardStatus
from healthcard.platform.access import Actor, Role
from healthcard.platform.carddesk import CardDesk
from healthcard.storage import tables as t
from healthcard.terminal.hotlist import HotListReason

from .carddesk_fixtures import (
    ADMIN_41,
    ADMIN_44,
    ADMIN_AT_HOSPITAL,
    ADMIN_ELSEWHERE,
    CLINICIAN,
    PLATFORM_ADMIN,
    applicant,
    card_admins,
    id_number,
)
from .platform_fixtures import CARD, Platform


@pytest.fixture
def desk(platform: Platform) -> CardDesk:
    card_admins(platform)
    return platform.app.card_desk


def resident(platform: Platform) -> Actor:
    return Actor(CARD, Role.RESIDENT, resident_id=platform.resident_id)


def tables(platform: Platform, *, but: tuple[str, ...] = ()) -> dict[str, int]:
    return {k: v for k, v in platform.app.db.status().tables.items() if k not in but}


def audit(platform: Platform, actor: str) -> list[tuple[str, str, str, str | None]]:
    """(action, what, role, resident id) of the actor's audit entries, oldest first."""
    e = t.AuditEntry
    with platform.app.db.uow() as uow:
        query = select(e.action, e.what, e.role, e.resident_id).where(e.actor == actor).order_by(e.id)
        return [tuple(row) for row in uow.session.execute(query)]  # type: ignore[misc]


# --- a card administrator's account in the card centre -----------------------------------------------
def test_a_card_admin_account_approves_rejects_and_issues_as_itself(
    platform: Platform, desk: CardDesk
) -> None:
    cards = platform.app.cards
    first = cards.submit("clerk-41", applicant(1), collection_point="410102-01")
    second = cards.submit("clerk-41", applicant(2), collection_point="410102-01")
    approved = desk.approve(ADMIN_41, first.number)
    assert approved.status is ApplicationStatus.APPROVED
    rejected = desk.reject(ADMIN_41, second.number, "  photo  unreadable ")
    assert rejected.status is ApplicationStatus.REJECTED and rejected.note == "photo unreadable"
    card = desk.issue(ADMIN_41, first.number, SimulatedChips())
    assert card.status is CardStatus.ISSUED and card.card_number == id_number(1)
    history = desk.card(ADMIN_41, id_number(1).lower())  # typed in lower case: the same number
    assert [(e.to_status, e.operator) for e in history.events] == [
        ("PERSONALISING", "card-admin"),
        ("ISSUED", "card-admin"),
    ]
    with platform.app.db.uow() as uow:
        row = uow.applications.get(first.number)
        assert row is not None and row.decided_by == "card-admin"
    # the history read is the platform's audit too: the card category of its holder
    assert audit(platform, "card-admin")[-1][:2] == ("read", "card history")


def test_the_card_centre_checks_the_account_as_it_checks_an_operator(
    platform: Platform, desk: CardDesk
) -> None:
    number = platform.app.cards.submit("clerk-41", applicant(3), collection_point="410102-01").number
    before = tables(platform)
    with pytest.raises(PermissionDenied, match="province 41"):
        desk.approve(ADMIN_44, number)  # Guangdong's card centre: not Henan's applications
    with pytest.raises(PermissionDenied, match="no active operator"):
        desk.approve(ADMIN_AT_HOSPITAL, number)  # an account the card centre never registered
    with pytest.raises(PermissionDenied, match="not the same card centre"):
        desk.approve(ADMIN_ELSEWHERE, number)  # the operator of that name works elsewhere
    for someone in (CLINICIAN, PLATFORM_ADMIN, resident(platform)):
        with pytest.raises(PermissionDenied):
            desk.approve(someone, number)
        with pytest.raises(PermissionDenied):
            desk.applications(someone)
        with pytest.raises(PermissionDenied):
            desk.card(someone, CARD)
    assert tables(platform) == before
    assert platform.app.cards.application(number).status is ApplicationStatus.SUBMITTED


def test_bad_input_writes_nothing(platform: Platform, desk: CardDesk) -> None:
    number = platform.app.cards.submit("clerk-41", applicant(4), collection_point="410102-01").number
    before = tables(platform)
    with pytest.raises(InvalidValue) as refused:
        desk.reject(ADMIN_41, number, "   ")
    assert refused.value.field == "reason"
    for act in (desk.report_lost, desk.recover, desk.cancel):
        with pytest.raises(InvalidValue) as refused:
            act(ADMIN_41, CARD, "")
        assert refused.value.field == "reason"
    with pytest.raises(InvalidValue) as refused:
        desk.card(ADMIN_41, "not a number!")
    assert refused.value.field == "card_number"
    with pytest.raises(NotFound):
        desk.card(ADMIN_41, id_number(99))
    with pytest.raises(InvalidValue) as refused:
        desk.applications(ADMIN_41, "PENDING")
    assert refused.value.field == "status"
    assert tables(platform) == before


def test_the_queue_pages_and_filters(platform: Platform, desk: CardDesk) -> None:
    numbers = [
        platform.app.cards.submit("clerk-41", applicant(n), collection_point="410102-01").number
        for n in range(10, 15)
    ]
    desk.approve(ADMIN_41, numbers[0])
    waiting = desk.applications(ADMIN_41, "SUBMITTED", limit=50)
    assert {a.number for a in waiting} == set(numbers[1:])
    pages = [desk.applications(ADMIN_41, "SUBMITTED", offset=o, limit=2) for o in (0, 2, 4)]
    assert [len(p) for p in pages] == [2, 2, 0]
    assert {a.number for p in pages for a in p} == set(numbers[1:])
    assert [a.number for a in desk.applications(ADMIN_41, "APPROVED")] == [numbers[0]]
    assert len(desk.applications(ADMIN_41)) == 6  # every status: the fixture's own card too
    assert audit(platform, "card-admin")[-1][1] == "card applications"


def test_lost_recovered_replaced_cancelled_and_the_hot_list(platform: Platform, desk: CardDesk) -> None:
    cards = platform.app.cards
    assert cards.hotlist_version("41") == 0
    lost = desk.report_lost(ADMIN_41, CARD, "lost on the bus")
    assert lost.status is CardStatus.LOST and cards.hotlist_version("41") == 1
    desk.recover(ADMIN_41, CARD, "found at home")
    assert cards.hotlist_version("41") == 2
    with pytest.raises(TransitionRefused):
        desk.recover(ADMIN_41, CARD, "again")  # ACTIVE: nothing to recover
    new = desk.replace(ADMIN_41, CARD, "damaged chip", SimulatedChips())
    assert new.card_number == CARD and new.chip_serial != platform.chip_serial
    status = desk.hotlists(ADMIN_41)
    assert [s.province for s in status] == ["41"]
    henan = status[0]
    assert (henan.version, henan.listed) == (3, 1)
    assert [(c.version, c.removed, c.reason, c.chip_serial) for c in henan.latest] == [
        (3, False, HotListReason.REPLACED, platform.chip_serial),
        (2, True, HotListReason.LOST, platform.chip_serial),
        (1, False, HotListReason.LOST, platform.chip_serial),
    ]
    assert desk.hotlists(PLATFORM_ADMIN) == status  # the list every terminal loads anyway
    with pytest.raises(PermissionDenied):
        desk.hotlists(CLINICIAN)
    with pytest.raises(PermissionDenied):
        desk.cancel(ADMIN_44, CARD, "wrong province")
    cancelled = desk.cancel(ADMIN_41, CARD, "emigrated")
    assert cancelled.status is CardStatus.CANCELLED
    history = desk.card(ADMIN_41, CARD)
    assert [e.reason for e in history.events if e.operator == "card-admin"][-1] == "emigrated"


# --- the holder --------------------------------------------------------------------------------------
def test_the_holder_reports_their_own_card_lost(platform: Platform, desk: CardDesk) -> None:
    me = resident(platform)
    assert desk.holder_card(me, platform.resident_id).status is CardStatus.ACTIVE  # type: ignore[union-attr]
    lost = desk.report_lost_by_holder(me, platform.resident_id, reason="  left it in a taxi ")
    assert lost.status is CardStatus.LOST and lost.chip_serial == platform.chip_serial
    assert platform.app.cards.hotlist_version("41") == 1
    event = platform.app.cards.card(CARD).events[-1]
    assert (event.to_status, event.operator, event.reason) == ("LOST", CARD, "holder: left it in a taxi")
    assert audit(platform, CARD)[-1] == (
        "write",
        "card",
        "resident",
        platform.resident_id,
    )
    # twice: refused, nothing written (not even an audit entry)
    before = tables(platform)
    with pytest.raises(TransitionRefused, match="LOST"):
        desk.report_lost_by_holder(me, platform.resident_id)
    assert tables(platform) == before
    # a swipe of the lost card is refused from now on
    with pytest.raises(Exception, match=r"(?i)lost|hot"), platform.terminal(with_hotlist=True) as terminal:
        terminal.read_holder()


def test_nobody_else_reports_a_card_lost_through_the_holder_path(platform: Platform, desk: CardDesk) -> None:
    other = Actor("410102198501010011", Role.RESIDENT, resident_id="R-SOMEONE-ELSE")
    with platform.app.db.uow() as uow:
        uow.session.add(
            t.Resident(
                resident_id="R-SOMEONE-ELSE",
                id_type="01",
                id_number=id_number(5),
                name="李四",
                sex=1,
                birth_date=platform.clock.now().date().replace(year=1985),
                created_at=platform.clock.now(),
                area_code="410102",
            )
        )
        uow.commit()
    before = tables(platform, but=("audit_log", "audit_heads"))
    with pytest.raises(PermissionDenied):
        desk.report_lost_by_holder(other, platform.resident_id)  # 张三's card, by someone else
    assert audit(platform, other.id)[-1][0] == "deny"
    for staff in (CLINICIAN, ADMIN_41):
        with pytest.raises(PermissionDenied):
            desk.report_lost_by_holder(staff, platform.resident_id)
    with pytest.raises(NotFound):
        desk.report_lost_by_holder(other, "R-SOMEONE-ELSE")  # a person without a card
    with pytest.raises(InvalidValue) as refused:
        desk.report_lost_by_holder(resident(platform), platform.resident_id, reason="x" * 201)
    assert refused.value.field == "reason"
    assert tables(platform, but=("audit_log", "audit_heads")) == before
    assert platform.app.cards.card(CARD).current.status is CardStatus.ACTIVE  # type: ignore[union-attr]
