"""The access policy as a matrix: every role × data category × action × relationship.

The expected table below is written out by hand from the issue (who may see what), not derived
from :data:`healthcard.platform.access.POLICY`, so that a change to the policy has to be made
twice — here and there — on purpose.
"""

from __future__ import annotations

import itertools

import pytest

from healthcard.platform.access import (
    POLICY,
    REASONS,
    Action,
    Actor,
    Category,
    Relationship,
    Role,
    decide,
    strongest,
)

# S self · G proxy (a guardian's household link) · B break-glass · P presence · C care · A area · I institution · N none · - never
LETTERS = {
    "S": Relationship.SELF,
    "G": Relationship.PROXY,
    "B": Relationship.BREAK_GLASS,
    "P": Relationship.PRESENCE,
    "C": Relationship.CARE,
    "A": Relationship.AREA,
    "I": Relationship.INSTITUTION,
    "N": Relationship.NONE,
}
EXPECTED_TEXT = """
# role          category       read      write
resident        demographics   SG        S
resident        card           S         S
resident        summary        S         -
resident        archive        S         -
resident        encounters     S         -
resident        immunization   SG        -
resident        settlement     S         S
resident        audit          S         -
resident        appointments   S         S
clinician       demographics   PCB       -
clinician       card           PCB       -
clinician       summary        PCB       PCB
clinician       archive        PCB       PCB
clinician       encounters     PCB       PCB
clinician       immunization   PCB       PCB
clinician       appointments   PCB       PC
registration    demographics   PC        PC
registration    card           PC        -
registration    encounters     -         PC
registration    appointments   PC        PC
cashier         demographics   PC        -
cashier         card           PC        -
cashier         settlement     PC        PC
public-health   demographics   A         -
public-health   immunization   A         A
insurer         settlement     PCBI      -
card-admin      demographics   PCBI      PCBI
card-admin      card           PCBI      PCBI
auditor         audit          SGBPCAIN  -
terminal        demographics   P         -
terminal        summary        P         P
terminal        card           PCBI      P
terminal        encounters     P         P
terminal        immunization   -         P
terminal        appointments   -         P
"""
# (admin and bank have no row: nothing of a resident's through the table)


def _expected() -> dict[tuple[Role, Category, Action], frozenset[Relationship]]:
    table: dict[tuple[Role, Category, Action], frozenset[Relationship]] = {}
    for line in EXPECTED_TEXT.strip().splitlines():
        if line.startswith("#"):
            continue
        role, category, read, write = line.split()
        for action, cell in ((Action.READ, read), (Action.WRITE, write)):
            if cell != "-":
                table[(Role(role), Category(category), action)] = frozenset(LETTERS[c] for c in cell)
    return table


EXPECTED = _expected()
MATRIX = list(itertools.product(Role, Category, Action, Relationship))


def actor(role: Role) -> Actor:
    return Actor(id=f"{role.value}-1", role=role, institution_code="410102001", area_code="4101")


def test_the_matrix_is_complete() -> None:
    assert len(MATRIX) == len(Role) * len(Category) * len(Action) * len(Relationship) == 1584


@pytest.mark.parametrize(
    ("role", "category", "action"),
    list(itertools.product(Role, Category, Action)),
    ids=lambda v: v.value,
)
def test_every_cell_of_the_matrix(role: Role, category: Category, action: Action) -> None:
    allowed_by = EXPECTED.get((role, category, action), frozenset())
    for relationship in Relationship:
        decision = decide(actor(role), category, action, relationship)
        assert decision.allowed is (relationship in allowed_by), (role, category, action, relationship)
        assert decision.relationship is relationship
        assert decision.why


def test_the_table_holds_exactly_the_expected_rows() -> None:
    assert dict(POLICY) == EXPECTED
    assert set(REASONS) == set(POLICY)
    assert all(POLICY.values()), "an empty row would read as a grant"


# --- the key cases, spelled out -------------------------------------------------------------------
def test_a_clinician_reads_encounters_only_with_presence_care_or_break_glass() -> None:
    clinician = actor(Role.CLINICIAN)
    for tie in (Relationship.PRESENCE, Relationship.CARE, Relationship.BREAK_GLASS):
        assert decide(clinician, Category.ENCOUNTERS, Action.READ, tie).allowed
    for tie in (Relationship.INSTITUTION, Relationship.NONE, Relationship.AREA, Relationship.SELF):
        decision = decide(clinician, Category.ENCOUNTERS, Action.READ, tie)
        assert not decision.allowed
        assert "presence" in decision.why and "care" in decision.why and "break-glass" in decision.why
        assert f"has {tie.value}" in decision.why


@pytest.mark.parametrize("tie", list(Relationship), ids=lambda r: r.value)
def test_hidden_categories_are_dropped_except_for_self_and_break_glass(tie: Relationship) -> None:
    hidden = frozenset({"hiv", "psychiatric"})
    decision = decide(actor(Role.CLINICIAN), Category.ENCOUNTERS, Action.READ, tie, hidden)
    if tie in (Relationship.SELF, Relationship.BREAK_GLASS):
        assert decision.hidden == frozenset()
    else:
        assert decision.hidden == hidden
    assert (
        decide(actor(Role.RESIDENT), Category.ENCOUNTERS, Action.READ, Relationship.SELF, hidden).hidden
        == set()
    )


def test_an_insurer_sees_settlements_never_encounters() -> None:
    insurer = actor(Role.INSURER)
    assert decide(insurer, Category.SETTLEMENT, Action.READ, Relationship.INSTITUTION).allowed
    for tie in Relationship:
        for category in (Category.ENCOUNTERS, Category.ARCHIVE, Category.SUMMARY, Category.DEMOGRAPHICS):
            assert not decide(insurer, category, Action.READ, tie).allowed
        assert not decide(insurer, Category.SETTLEMENT, Action.WRITE, tie).allowed
    assert (
        "may never read encounters"
        in decide(insurer, Category.ENCOUNTERS, Action.READ, Relationship.NONE).why
    )


def test_public_health_reads_immunization_only_in_its_area() -> None:
    officer = actor(Role.PUBLIC_HEALTH)
    assert decide(officer, Category.IMMUNIZATION, Action.READ, Relationship.AREA).allowed
    assert decide(officer, Category.IMMUNIZATION, Action.WRITE, Relationship.AREA).allowed
    for tie in set(Relationship) - {Relationship.AREA}:
        assert not decide(officer, Category.IMMUNIZATION, Action.READ, tie).allowed
    for category in set(Category) - {Category.IMMUNIZATION, Category.DEMOGRAPHICS}:
        assert not decide(officer, category, Action.READ, Relationship.AREA).allowed


def test_the_auditor_reads_the_audit_trail_only() -> None:
    auditor = actor(Role.AUDITOR)
    for tie in Relationship:
        assert decide(auditor, Category.AUDIT, Action.READ, tie).allowed
        assert not decide(auditor, Category.AUDIT, Action.WRITE, tie).allowed
        for category in set(Category) - {Category.AUDIT}:
            assert not decide(auditor, category, Action.READ, tie).allowed


def test_the_platform_admin_sees_nothing_of_a_resident() -> None:
    admin = actor(Role.ADMIN)
    for category, action, tie in itertools.product(Category, Action, Relationship):
        assert not decide(admin, category, action, tie).allowed


def test_nobody_writes_the_audit_trail_through_the_policy() -> None:
    for role, tie in itertools.product(Role, Relationship):
        assert not decide(actor(role), Category.AUDIT, Action.WRITE, tie).allowed


def test_a_resident_reaches_only_their_own_record() -> None:
    """… and, as a guardian (PROXY), a dependant's vaccinations and name (the test below)."""
    resident = actor(Role.RESIDENT)
    for category in Category:
        assert decide(resident, category, Action.READ, Relationship.SELF).allowed
        for tie in set(Relationship) - {Relationship.SELF, Relationship.PROXY}:
            assert not decide(resident, category, Action.READ, tie).allowed
    assert not decide(resident, Category.ENCOUNTERS, Action.WRITE, Relationship.SELF).allowed


def test_strongest_follows_the_declared_order() -> None:
    assert (
        strongest([Relationship.INSTITUTION, Relationship.CARE, Relationship.PRESENCE])
        is Relationship.PRESENCE
    )
    assert strongest([Relationship.PRESENCE, Relationship.BREAK_GLASS]) is Relationship.BREAK_GLASS
    assert strongest([Relationship.SELF, Relationship.BREAK_GLASS]) is Relationship.SELF
    assert strongest([]) is Relationship.NONE


def test_the_reasons_carry_no_placeholder() -> None:
    assert all(len(reason) > 20 for reason in REASONS.values())


def test_a_guardian_reads_a_dependants_vaccinations_and_name_and_nothing_else() -> None:
    """The PROXY tie (a live household link) opens IMMUNIZATION and DEMOGRAPHICS to read, for a
    resident account only; no other category, no write, no other role."""
    guardian = actor(Role.RESIDENT)
    opened = {Category.IMMUNIZATION, Category.DEMOGRAPHICS}
    for category in Category:
        assert decide(guardian, category, Action.READ, Relationship.PROXY).allowed is (category in opened)
        assert not decide(guardian, category, Action.WRITE, Relationship.PROXY).allowed
    for role in Role:
        if role not in (Role.RESIDENT, Role.AUDITOR):  # the auditor reads any audit trail anyway
            for category in Category:
                assert not decide(actor(role), category, Action.READ, Relationship.PROXY).allowed, role
    assert not decide(actor(Role.AUDITOR), Category.IMMUNIZATION, Action.READ, Relationship.PROXY).allowed


@pytest.mark.parametrize("year", [2007, 2008, 2010, 2011])
def test_coming_of_age_and_the_adult_cut_off_agree_on_every_day(year: int) -> None:
    """A dependant is a minor on ``today`` exactly when their birth date is after
    adults_born_by(today) — and exactly when today is before their 18th birthday (leap days too)."""
    import datetime as dt

    from healthcard.platform.access import adults_born_by, coming_of_age

    start = dt.date(year, 1, 1)
    births = [start + dt.timedelta(days=n) for n in range(0, 800, 1)]
    for birth in births:
        of_age = coming_of_age(birth)
        for today in (of_age - dt.timedelta(days=1), of_age, of_age + dt.timedelta(days=1)):
            assert (birth > adults_born_by(today)) is (today < of_age), (birth, today)
    assert coming_of_age(dt.date(2008, 2, 29)) == dt.date(2026, 3, 1)
    assert coming_of_age(dt.date(2008, 3, 1)) == dt.date(2026, 3, 1)
