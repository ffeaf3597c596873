"""Time as a parameter (STYLE.md habit 6): the domain never calls ``datetime.now()``.

A :class:`Clock` answers "now" as an aware UTC datetime; :class:`SystemClock` reads the real
time, :class:`FixedClock` is set by hand (tests, replays) and can be moved forward.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

UTC = dt.UTC
SHANGHAI = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """The current time, timezone-aware, UTC."""
        ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(UTC)


class FixedClock:
    """A clock that says what it is told; ``advance`` moves it."""

    def __init__(self, at: dt.datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("a FixedClock needs an aware datetime")
        self._at = at.astimezone(UTC)

    def now(self) -> dt.datetime:
        return self._at

    def advance(self, delta: dt.timedelta) -> None:
        self._at += delta


def local_date(clock: Clock) -> dt.date:
    """Today in China (Asia/Shanghai, UTC+8, no daylight saving): card dates are local dates."""
    return clock.now().astimezone(SHANGHAI).date()
