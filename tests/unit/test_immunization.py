"""The national child schedule as data, and due / overdue dates (CARD-SPEC.md §10.3)."""

from __future__ import annotations

import datetime as dt

import pytest

from healthcard.errors import InvalidValue
from healthcard.platform.immunization import (
    OTHER_MAX_DOSE,
    DoseState,
    GivenDose,
    add_months,
    born_by,
    max_dose,
    plan,
    schedule,
    vaccine,
    vaccines,
)

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


def test_vaccine_codes_cover_the_schedule_and_the_common_others() -> None:
    table = {v.code: v for v in vaccines()}
    assert len(table) == len(vaccines())  # no code twice
    assert all(len(code) == 4 and code.isdigit() for code in table)
    for dose in schedule():  # the schedule and the code table agree on names
        assert (table[dose.code].name, table[dose.code].short) == (dose.vaccine, dose.short)
    shorts = {v.short for v in vaccines()}
    for other in ("Flu", "HPV", "RabV", "COVID-19", "VarV", "EV71", "PCV13", "PPV23", "Hib", "DT"):
        assert other in shorts
    assert vaccine("1903").name == "甲肝灭活疫苗"  # §10.3: the inactivated alternative
    assert vaccine("0601").short == "DT"


@pytest.mark.parametrize("code", ["9999", "", "201", "0201 ", None])
def test_an_unknown_vaccine_code_is_refused(code: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        vaccine(code)
    assert caught.value.field == "vaccine"


def test_max_dose_comes_from_the_schedule() -> None:
    assert max_dose("0101") == 1
    assert max_dose("0201") == 3
    assert max_dose("0402") == 5
    assert max_dose("1901") == 1
    assert max_dose("2801") == OTHER_MAX_DOSE == 5  # not in the schedule
    with pytest.raises(InvalidValue):
        max_dose("9999")


@pytest.mark.parametrize(
    ("today", "months", "latest"),
    [
        (dt.date(2026, 11, 24), 0, dt.date(2026, 11, 24)),
        (dt.date(2026, 11, 24), 1, dt.date(2026, 10, 24)),
        (dt.date(2026, 11, 24), 84, dt.date(2019, 11, 24)),
        # 28 February: children born on 29, 30 and 31 January are all a month old
        (dt.date(2026, 2, 28), 1, dt.date(2026, 1, 31)),
        (dt.date(2026, 3, 30), 1, dt.date(2026, 2, 28)),
        (dt.date(2027, 2, 28), 12, dt.date(2026, 2, 28)),
        (dt.date(2025, 2, 28), 12, dt.date(2024, 2, 29)),
    ],
)
def test_born_by_is_the_latest_birth_old_enough(today: dt.date, months: int, latest: dt.date) -> None:
    assert born_by(today, months) == latest
    assert add_months(latest, months) <= today
    assert add_months(latest + dt.timedelta(days=1), months) > today
