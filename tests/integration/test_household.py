"""Household proxy links against the database (SQLite and PostgreSQL): staff establish and
revoke them, every refusal field-named with nothing written; the PROXY tie of the access policy
lets a guardian read a minor dependant's vaccinations and name — nothing else — audited on the
child's record with the guardian as the actor; a revoked link, an ended one, or a dependant who
came of age gives nothing."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from healthcard.errors import Duplicate, InvalidValue, NotFound, PermissionDenied, TransitionRefused
from healthcard.platform.access import Actor, Category, Relationship, Role
from healthcard.platform.household import LinkState
from healthcard.platform.immunization import DoseState
from healthcard.storage import tables as t

from .household_fixtures import (
    ADULT,
    BABY,
    CARD_ADMIN,
    OTHER_CHILD,
    OTHER_PARENT,
    REGISTRATION,
    TEEN,
    Household,
    make_household,
)
from .platform_fixtures import Platform


@pytest.fixture
def household(platform: Platform) -> Household:
    return make_household(platform)


def _count(platform: Platform, table: type[t.Base]) -> int:
    with platform.app.db.uow() as uow:
        return int(uow.session.scalar(select(func.count()).select_from(table)) or 0)


def _audit(platform: Platform, resident_id: str) -> list[t.AuditEntry]:
    with platform.app.db.uow() as uow:
        rows = list(
            uow.session.scalars(
                select(t.AuditEntry).where(t.AuditEntry.resident_id == resident_id).order_by(t.AuditEntry.id)
            )
        )
        uow.session.expunge_all()
        return rows


# --- establishing ---------------------------------------------------------------------------------
def test_staff_establish_a_link_valid_until_the_18th_birthday_audited_on_both_records(
    household: Household,
) -> None:
    platform = household.platform
    link = household.link(evidence="  410102   0012345 ")
    assert link.guardian_id == platform.resident_id and link.dependant_id == BABY
    assert link.valid_from == dt.date(2026, 11, 24) and link.valid_until == dt.date(2044, 9, 1)
    assert link.evidence == "410102 0012345" and link.established_by == CARD_ADMIN.id
    assert link.institution_code == CARD_ADMIN.institution_code and link.state is LinkState.LIVE
    for rid in (platform.resident_id, BABY):
        entry = _audit(platform, rid)[-1]
        assert entry.actor == CARD_ADMIN.id and entry.action == "write"
        assert entry.what == f"household link {link.id}" and entry.why.startswith("establish parent")
    # the registration desk may too, and a link may end earlier (a temporary guardianship)
    teen = platform.app.node.households.establish(
        REGISTRATION,
        guardian_id=platform.resident_id,
        dependant_id=TEEN,
        relation="guardian",
        evidence_kind="birth-certificate",
        evidence="O410012345",
        valid_until=dt.date(2026, 12, 31),
    )
    assert teen.valid_until == dt.date(2026, 12, 31)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"dependant_id": "nobody"}, "dependant_id"),
        ({"guardian": "nobody"}, "guardian_id"),
        ({"dependant_id": "SELF"}, "dependant_id"),
        ({"dependant_id": ADULT}, "dependant_id"),
        ({"relation": "uncle"}, "relation"),
        ({"evidence_kind": "passport"}, "evidence_kind"),
        ({"evidence": "123"}, "evidence"),
        ({"evidence": "9" * 41}, "evidence"),
        ({"valid_until": dt.date(2044, 9, 2)}, "valid_until"),
        ({"valid_until": dt.date(2026, 11, 24)}, "valid_until"),
        ({"valid_from": dt.date(2026, 8, 31)}, "valid_from"),
    ],
    ids=lambda v: str(v),
)
def test_refusals_name_their_field_and_write_nothing(
    household: Household, change: dict[str, object], field: str
) -> None:
    platform = household.platform
    args = dict(change)
    dependant = str(args.pop("dependant_id", BABY))
    dependant = platform.resident_id if dependant == "SELF" else dependant
    links, audit = _count(platform, t.HouseholdLink), _count(platform, t.AuditEntry)
    with pytest.raises(InvalidValue) as refused:
        household.link(dependant, **args)
    assert refused.value.field == field
    assert _count(platform, t.HouseholdLink) == links and _count(platform, t.AuditEntry) == audit


def test_one_live_link_per_guardian_and_dependant(household: Household) -> None:
    platform = household.platform
    first = household.link()
    with pytest.raises(Duplicate) as refused:
        household.link(relation="guardian")
    assert refused.value.field == "dependant_id" and _count(platform, t.HouseholdLink) == 1
    # the database says so too, whatever the code does
    with platform.app.db.uow() as uow, pytest.raises(IntegrityError):
        uow.session.add(
            t.HouseholdLink(
                guardian_id=platform.resident_id,
                dependant_id=BABY,
                relation="parent",
                evidence_kind="hukou",
                evidence="xxxx",
                valid_from=dt.date(2026, 11, 24),
                valid_until=dt.date(2030, 1, 1),
                established_at=platform.clock.now(),
                established_by="x",
            )
        )
        uow.flush()
    # revoked, the pair may be linked again; the old link stays, revoked
    platform.app.node.households.revoke(CARD_ADMIN, first.id, reason="错录，重新办理")
    second = household.link()
    states = {v.id: v.state for v in platform.app.node.households.links(CARD_ADMIN, BABY)}
    assert states == {first.id: LinkState.REVOKED, second.id: LinkState.LIVE}


def test_only_card_centre_and_registration_staff_establish_revoke_and_list(household: Household) -> None:
    platform = household.platform
    desk = platform.app.node.households
    link = household.link()
    for actor in (
        household.guardian,
        Actor("dr-wang", Role.CLINICIAN, institution_code="410102001"),
        Actor("admin", Role.ADMIN),
    ):
        with pytest.raises(PermissionDenied):
            desk.establish(
                actor,
                guardian_id=platform.resident_id,
                dependant_id=OTHER_CHILD,
                relation="parent",
                evidence_kind="hukou",
                evidence="12345678",
            )
        with pytest.raises(PermissionDenied):
            desk.revoke(actor, link.id, reason="x")
        with pytest.raises(PermissionDenied):
            desk.links(actor, BABY)
    assert _count(platform, t.HouseholdLink) == 1


def test_revoking_needs_a_reason_and_happens_once(household: Household) -> None:
    desk = household.platform.app.node.households
    link = household.link()
    with pytest.raises(InvalidValue) as refused:
        desk.revoke(CARD_ADMIN, link.id, reason="   ")
    assert refused.value.field == "reason"
    revoked = desk.revoke(REGISTRATION, link.id, reason="监护权变更")
    assert revoked.state is LinkState.REVOKED and revoked.revoked_by == REGISTRATION.id
    assert revoked.revoke_reason == "监护权变更" and revoked.revoked_at == household.platform.clock.now()
    with pytest.raises(TransitionRefused):
        desk.revoke(CARD_ADMIN, link.id, reason="again")
    with pytest.raises(NotFound):
        desk.revoke(CARD_ADMIN, 999_999, reason="none")


# --- what the link allows --------------------------------------------------------------------------
def test_the_guardian_reads_the_childs_vaccinations_and_name_and_nothing_else(household: Household) -> None:
    platform = household.platform
    node = platform.app.node
    guardian = household.guardian
    with pytest.raises(PermissionDenied):  # no link yet
        node.vaccination_plan(guardian, BABY)
    link = household.link()
    with platform.app.db.uow() as uow:
        assert node.access.relationship(uow, guardian, [BABY]) is Relationship.PROXY
    (child,) = node.households.all_vaccinations(guardian)
    assert child.dependant.link_id == link.id and child.dependant.name == "张小宝"
    assert child.dependant.age_months == 2 and child.dependant.relation == "parent"
    states = {(d.scheduled.code, d.scheduled.dose): d.state for d in child.plan}
    assert states[("0101", 1)] is DoseState.GIVEN and states[("0201", 1)] is DoseState.GIVEN
    assert states[("0201", 2)] is DoseState.OVERDUE and states[("0402", 1)] is DoseState.DUE
    assert {d.vaccine for d in child.doses} == {"0101", "0201"}
    # the same plan as the child's node use case gives the guardian (the same DoseState logic)
    assert node.vaccination_plan(guardian, BABY) == child.plan
    assert node.person(guardian, BABY).name == "张小宝"
    for read in (node.summary, node.archive, node.encounters, node.allergies, node.who_looked):
        with pytest.raises(PermissionDenied):
            read(guardian, BABY)
    with pytest.raises(PermissionDenied):  # reading is all: no dose recorded by a parent
        node.record_dose(
            guardian,
            BABY,
            vaccine="0201",
            dose=2,
            given_on=dt.date(2026, 11, 20),
            institution_code="410102001",
        )
    with pytest.raises(PermissionDenied):  # another family's child: no tie
        node.vaccination_plan(guardian, OTHER_CHILD)


def test_every_proxy_read_is_audited_on_the_child_with_the_guardian_as_actor(household: Household) -> None:
    platform = household.platform
    node = platform.app.node
    link = household.link()
    node.households.vaccinations(household.guardian, link.id)
    mine = [e for e in _audit(platform, BABY) if e.actor == household.guardian.id]
    assert [(e.what, e.why, e.outcome) for e in mine] == [
        ("person", f"proxy: household link {link.id}", "allowed"),
        ("vaccination plan", f"proxy: household link {link.id}", "allowed"),
    ]
    # the child's "who looked" shows the guardian (a resident's own reads are left out, not these)
    baby = Actor("baby", Role.RESIDENT, resident_id=BABY)
    node.vaccination_plan(baby, BABY)  # the child's own read: not shown
    looked = node.who_looked(baby, BABY)
    assert {(e.actor, e.what) for e in looked if e.role == "resident"} == {
        (household.guardian.id, "person"),
        (household.guardian.id, "vaccination plan"),
    }
    # an auditor sees them too
    trail = node.who_looked(Actor("auditor", Role.AUDITOR), BABY)
    assert any(e.actor == household.guardian.id and e.why.startswith("proxy") for e in trail)


def test_a_revoked_link_gives_nothing_and_the_refusal_is_audited(household: Household) -> None:
    platform = household.platform
    node = platform.app.node
    link = household.link()
    node.households.revoke(CARD_ADMIN, link.id, reason="监护权变更")
    assert node.households.all_vaccinations(household.guardian) == []
    assert node.households.dependants(household.guardian) == []
    with pytest.raises(PermissionDenied):
        node.households.vaccinations(household.guardian, link.id)
    with pytest.raises(PermissionDenied):
        node.vaccination_plan(household.guardian, BABY)
    denied = [e for e in _audit(platform, BABY) if e.outcome == "denied"]
    assert denied and all(e.actor == household.guardian.id for e in denied)
    # linked again: the old link's id still shows nothing, the new one does
    second = household.link()
    with pytest.raises(NotFound):
        node.households.vaccinations(household.guardian, link.id)
    assert node.households.vaccinations(household.guardian, second.id).dependant.link_id == second.id


def test_a_dependant_who_comes_of_age_is_nobodys_dependant(household: Household) -> None:
    platform = household.platform
    node = platform.app.node
    link = household.link(TEEN)
    assert link.valid_until == dt.date(2027, 1, 1)
    assert [d.resident_id for d in node.households.dependants(household.guardian)] == [TEEN]
    assert node.vaccination_plan(household.guardian, TEEN) == []  # past the child schedule
    platform.clock.advance(dt.timedelta(days=38))  # 2027-01-01 10:00 in Zhengzhou: 18 today
    assert node.households.dependants(household.guardian) == []
    with pytest.raises(PermissionDenied):
        node.person(household.guardian, TEEN)
    (view,) = node.households.links(CARD_ADMIN, TEEN)
    assert view.state is LinkState.ENDED


def test_a_corrected_birth_date_ends_the_tie_whatever_the_link_says(household: Household) -> None:
    """The link ends on the 18th birthday it was made with; if the MPI's birth date is corrected
    to an adult's, the policy reads the birth date again and refuses at once."""
    platform = household.platform
    node = platform.app.node
    household.link(TEEN)
    with platform.app.db.uow() as uow:
        teen = uow.session.get(t.Resident, TEEN)
        assert teen is not None
        teen.birth_date = dt.date(2008, 1, 1)
        uow.commit()
    with pytest.raises(PermissionDenied):
        node.person(household.guardian, TEEN)
    assert node.households.dependants(household.guardian) == []


def test_a_link_that_merely_ended_is_closed_when_the_pair_is_linked_again(household: Household) -> None:
    platform = household.platform
    node = platform.app.node
    first = household.link(valid_until=dt.date(2026, 12, 1))
    platform.clock.advance(dt.timedelta(days=10))
    assert node.households.dependants(household.guardian) == []
    second = household.link()
    views = {v.id: v for v in node.households.links(CARD_ADMIN, BABY)}
    assert views[first.id].state is LinkState.REVOKED and views[first.id].revoked_by == CARD_ADMIN.id
    assert views[second.id].state is LinkState.LIVE


def test_another_guardians_link_id_is_not_found(household: Household) -> None:
    platform = household.platform
    node = platform.app.node
    mine = household.link()
    theirs = household.link(OTHER_CHILD, guardian=OTHER_PARENT)
    with pytest.raises(NotFound):
        node.households.vaccinations(household.guardian, theirs.id)
    with pytest.raises(NotFound):
        node.households.vaccinations(household.other_parent, mine.id)
    with pytest.raises(PermissionDenied):  # staff have no dependants
        node.households.vaccinations(CARD_ADMIN, mine.id)
    with pytest.raises(PermissionDenied):  # a resident lists their own dependants only
        node.households.dependants(household.guardian, OTHER_PARENT)
    assert [d.name for d in node.households.dependants(household.other_parent)] == ["李小妹"]


def test_a_guardian_never_reaches_other_categories_through_the_policy_check(household: Household) -> None:
    platform = household.platform
    node = platform.app.node
    household.link()
    for category in Category:
        with platform.app.db.uow() as uow:
            try:
                node.access.check(uow, household.guardian, [BABY], category, what=category.value)
                allowed = True
            except PermissionDenied:
                allowed = False
        assert allowed is (category in (Category.DEMOGRAPHICS, Category.IMMUNIZATION)), category
