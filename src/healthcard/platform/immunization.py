"""The national child immunization schedule as data, and what a child is due for.

The schedule (``data/schedule-2025.json``, CARD-SPEC.md §10.3) lists every routine dose with
its vaccine code and the age it is given at.  :func:`plan` answers, for a child's birth date and
the doses on record, the state of every scheduled dose on a given day:

* ``given`` — on record (the dose number of that vaccine code);
* ``upcoming`` — not yet at its age;
* ``due`` — at or past its age, within the grace period, and at least ``min_interval_days`` after
  the previous dose of the same vaccine;
* ``overdue`` — past its age plus the grace period (default 30 days: "及时接种" policy, a
  parameter, not a law).

Dates are local (Asia/Shanghai) calendar dates; ages are whole months from the birth date (a
child born on 31 January is one month old on 28/29 February).
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources

from healthcard.errors import InvalidValue


class DoseState(StrEnum):
    GIVEN = "given"
    UPCOMING = "upcoming"
    DUE = "due"
    OVERDUE = "overdue"


@dataclass(frozen=True)
class ScheduledDose:
    code: str  # vaccine code (CARD-SPEC.md §10.3)
    vaccine: str  # Chinese name
    short: str  # international abbreviation
    dose: int  # dose number of this vaccine code, from 1
    months: int  # age in whole months


@dataclass(frozen=True)
class GivenDose:
    code: str
    dose: int
    date: dt.date


@dataclass(frozen=True)
class DoseStatus:
    scheduled: ScheduledDose
    state: DoseState
    due_from: dt.date  # the day the child reaches the dose's age (or the interval ends)
    overdue_from: dt.date
    given_on: dt.date | None = None


@cache
def schedule() -> tuple[ScheduledDose, ...]:
    """The 2025 national child schedule, in age order."""
    text = resources.files("healthcard.platform").joinpath("data/schedule-2025.json").read_text("utf-8")
    doses = [ScheduledDose(**d) for d in json.loads(text)["doses"]]
    return tuple(sorted(doses, key=lambda d: (d.months, d.code, d.dose)))


def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` plus whole months, clamped to the month's last day (31 Jan + 1 month = 28/29 Feb)."""
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def plan(
    birth: dt.date,
    given: Iterable[GivenDose],
    today: dt.date,
    *,
    grace_days: int = 30,
    min_interval_days: int = 28,
) -> list[DoseStatus]:
    """The state of every scheduled dose for a child born on ``birth``, on ``today``."""
    if birth > today:
        raise InvalidValue("birth_date", f"{birth} is in the future")
    on_record: dict[tuple[str, int], dt.date] = {}
    for dose in given:
        if dose.date < birth:
            raise InvalidValue(
                "date", f"{dose.code} dose {dose.dose} on {dose.date} is before the birth ({birth})"
            )
        if dose.date > today:
            raise InvalidValue("date", f"{dose.code} dose {dose.dose} on {dose.date} is in the future")
        on_record[(dose.code, dose.dose)] = dose.date
    out: list[DoseStatus] = []
    for scheduled in schedule():
        due_from = add_months(birth, scheduled.months)
        previous = on_record.get((scheduled.code, scheduled.dose - 1))
        if previous is not None:
            due_from = max(due_from, previous + dt.timedelta(days=min_interval_days))
        overdue_from = add_months(birth, scheduled.months) + dt.timedelta(days=grace_days)
        overdue_from = max(overdue_from, due_from + dt.timedelta(days=1))
        given_on = on_record.get((scheduled.code, scheduled.dose))
        if given_on is not None:
            state = DoseState.GIVEN
        elif today < due_from:
            state = DoseState.UPCOMING
        elif today < overdue_from:
            state = DoseState.DUE
        else:
            state = DoseState.OVERDUE
        out.append(DoseStatus(scheduled, state, due_from, overdue_from, given_on))
    return out


__all__ = ["DoseState", "DoseStatus", "GivenDose", "ScheduledDose", "add_months", "plan", "schedule"]
