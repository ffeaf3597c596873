"""The national child schedule as data, and due / overdue dates (CARD-SPEC.md §10.3)."""

from __future__ import annotations

import datetime as dt

import pytest

from healthcard.errors import InvalidValue
from healthcard.platform.immunization import DoseState, GivenDose, add_months, plan, schedule

BIRTH = dt.date(2026, 1, 31)


def states(today: dt.date, given: list[GivenDose] | None = None) -> dict[tuple[str, int], DoseState]:
    return {(s.scheduled.short, s.scheduled.dose): s.state for s in plan(BIRTH, given or [], today)}


def test_the_2025_schedule() -> None:
    doses = schedule()
    assert len(doses) == 22
    assert [(d.short, d.months) for d in doses if d.months == 0] == [("BCG", 0), ("HepB", 0)]
    dtap = [d.months for d in doses if d.code == "0402"]
    assert dtap == [2, 4, 6, 18, 72]  # 2025: 2, 4, 6, 18 months and 6 years
    assert {d.code for d in doses} == {
        "0101",
        "0201",
        "0303",
        "0311",
        "0402",
        "1201",
        "1601",
        "1701",
        "1801",
        "1901",
    }


def test_months_clamp_to_the_end_of_the_month() -> None:
    assert add_months(BIRTH, 1) == dt.date(2026, 2, 28)
    assert add_months(dt.date(2024, 1, 31), 1) == dt.date(2024, 2, 29)
    assert add_months(BIRTH, 12) == dt.date(2027, 1, 31)


def test_a_newborn_is_due_bcg_and_hepb() -> None:
    now = states(BIRTH)
    assert now[("BCG", 1)] is DoseState.DUE and now[("HepB", 1)] is DoseState.DUE
    assert now[("HepB", 2)] is DoseState.UPCOMING and now[("MMR", 1)] is DoseState.UPCOMING


def test_missed_doses_become_overdue_after_the_grace_period() -> None:
    two_months = add_months(BIRTH, 2)
    assert states(two_months)[("BCG", 1)] is DoseState.OVERDUE
    assert states(two_months)[("IPV", 1)] is DoseState.DUE
    assert states(two_months + dt.timedelta(days=30))[("IPV", 1)] is DoseState.OVERDUE


def test_given_doses_and_the_interval_to_the_next() -> None:
    given = [
        GivenDose("0101", 1, BIRTH),
        GivenDose("0201", 1, BIRTH),
        GivenDose("0201", 2, dt.date(2026, 3, 20)),
    ]
    later = states(dt.date(2026, 4, 1), given)
    assert later[("BCG", 1)] is later[("HepB", 1)] is later[("HepB", 2)] is DoseState.GIVEN
    status = {(s.scheduled.short, s.scheduled.dose): s for s in plan(BIRTH, given, dt.date(2026, 4, 1))}
    assert status[("HepB", 2)].given_on == dt.date(2026, 3, 20)
    # dose 3 at 6 months, and never sooner than 28 days after dose 2
    assert status[("HepB", 3)].due_from == add_months(BIRTH, 6)


def test_a_late_dose_pushes_the_next_one() -> None:
    given = [GivenDose("0201", 1, BIRTH), GivenDose("0201", 2, dt.date(2026, 7, 20))]
    status = {(s.scheduled.short, s.scheduled.dose): s for s in plan(BIRTH, given, dt.date(2026, 8, 1))}
    assert status[("HepB", 3)].due_from == dt.date(2026, 8, 17)
    assert status[("HepB", 3)].state is DoseState.UPCOMING


def test_bad_dates_are_refused() -> None:
    with pytest.raises(InvalidValue, match="before the birth"):
        plan(BIRTH, [GivenDose("0101", 1, dt.date(2026, 1, 1))], dt.date(2026, 3, 1))
    with pytest.raises(InvalidValue, match="in the future"):
        plan(BIRTH, [GivenDose("0101", 1, dt.date(2026, 5, 1))], dt.date(2026, 3, 1))
    with pytest.raises(InvalidValue) as caught:
        plan(dt.date(2027, 1, 1), [], dt.date(2026, 3, 1))
    assert caught.value.field == "birth_date"
