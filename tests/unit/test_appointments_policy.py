"""Appointments without a database: the booking policy file and its refusals, the standard
department codes, and the arithmetic that turns weekly templates into sessions and slots."""

from __future__ import annotations

import copy
import datetime as dt
import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from healthcard import codes
from healthcard.errors import InvalidValue
from healthcard.platform.appointments import (
    Channel,
    Closure,
    Period,
    Pool,
    WeeklySession,
    default_policy,
    department_codes,
    department_name,
    load_policy,
    parse_policy,
    planned_sessions,
    session_times,
    slot_pools,
)


def shipped() -> dict[str, Any]:
    text = resources.files("healthcard.platform").joinpath("data", "booking-policy.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


# --- the policy -----------------------------------------------------------------------------------
def test_the_shipped_policy_says_what_the_issue_says() -> None:
    policy = default_policy()
    assert policy.window_days == 7
    assert policy.cancel_minutes == 120
    assert (policy.no_show_limit, policy.no_show_days, policy.suspend_days) == (3, 90, 90)
    assert (policy.check_in_before_minutes, policy.check_in_after_minutes) == (60, 0)
    assert policy.channels[Channel.PORTAL].pools == (Pool.PUBLIC,)
    assert policy.channels[Channel.PORTAL].online and policy.channels[Channel.KIOSK].online
    assert policy.channels[Channel.DESK].pools == (Pool.WALK_IN, Pool.PUBLIC)
    assert not policy.channels[Channel.DESK].online
    assert policy.channels[Channel.REFERRAL].pools[0] is Pool.REFERRAL
    assert policy.same_day_pools == {Pool.WALK_IN}
    assert policy.hours(Period.MORNING).minutes == 240


def test_a_policy_file_is_read_from_a_path(tmp_path: Path) -> None:
    data = shipped()
    data["booking_window_days"] = 14
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert load_policy(path).window_days == 14
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(InvalidValue) as refused:
        load_policy(path)
    assert refused.value.field == "policy"


def _without(data: dict[str, Any], *keys: str) -> dict[str, Any]:
    out = copy.deepcopy(data)
    target = out
    for key in keys[:-1]:
        target = target[key]
    del target[keys[-1]]
    return out


def _with(data: dict[str, Any], value: Any, *keys: str) -> dict[str, Any]:
    out = copy.deepcopy(data)
    target = out
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value
    return out


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: _with(d, -1, "booking_window_days"), "booking_window_days"),
        (lambda d: _with(d, "7", "booking_window_days"), "booking_window_days"),
        (lambda d: _with(d, True, "booking_window_days"), "booking_window_days"),
        (lambda d: _without(d, "cancel_until_minutes_before"), "cancel_until_minutes_before"),
        (lambda d: _with(d, 0, "no_show", "limit"), "no_show.limit"),
        (lambda d: _without(d, "no_show", "suspend_days"), "no_show.suspend_days"),
        (lambda d: _with(d, [], "no_show"), "no_show"),
        (lambda d: _with(d, -5, "check_in", "opens_minutes_before"), "check_in.opens_minutes_before"),
        (lambda d: _with(d, "8:00", "periods", "morning", "starts"), "periods.morning.starts"),
        (lambda d: _with(d, "25:00", "periods", "morning", "ends"), "periods.morning.ends"),
        (lambda d: _with(d, "07:00", "periods", "morning", "ends"), "periods.morning.ends"),
        (lambda d: _with(d, {"starts": "08:00", "ends": "09:00"}, "periods", "night"), "periods"),
        (lambda d: _with(d, {}, "periods"), "periods"),
        (lambda d: _with(d, ["vip"], "channels", "portal", "pools"), "channels.portal.pools"),
        (lambda d: _with(d, [], "channels", "desk", "pools"), "channels.desk.pools"),
        (lambda d: _with(d, ["public", "public"], "channels", "desk", "pools"), "channels.desk.pools"),
        (lambda d: _with(d, "yes", "channels", "kiosk", "online"), "channels.kiosk.online"),
        (lambda d: _without(d, "channels", "referral"), "channels"),
        (lambda d: _with(d, ["tomorrow"], "same_day_pools"), "same_day_pools"),
        (lambda d: _with(d, 0, "version"), "version"),
    ],
)
def test_a_bad_policy_is_refused_by_field(change: Any, field: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        parse_policy(change(shipped()))
    assert refused.value.field == field


def test_a_policy_is_an_object() -> None:
    with pytest.raises(InvalidValue) as refused:
        parse_policy([])  # type: ignore[arg-type]
    assert refused.value.field == "policy"


# --- department codes -----------------------------------------------------------------------------
def test_the_department_codes_hold_the_specs_value_set() -> None:
    spec = codes.value_set("dept_standard").codes
    ours = department_codes()
    assert {code: ours[code] for code in spec} == spec
    assert ours["301"] == "呼吸内科" and ours["311"] == "其他内科"
    assert ours["401"] == "普通外科" and ours["409"] == "其他外科"
    assert all(code.isdigit() and len(code) in (3, 4) for code in ours)


@pytest.mark.parametrize("code", ["", "999", "0300", "30", "abc", "3000a", "2900"])
def test_an_unknown_department_code_is_refused(code: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        department_name(code)
    assert refused.value.field == "code"


def test_a_known_code_has_its_name() -> None:
    assert department_name("700") == "儿科"
    assert department_name(" 1000 ") == "眼科"


# --- the arithmetic -------------------------------------------------------------------------------
def test_session_times_are_local_hours_in_utc() -> None:
    starts, ends = session_times(default_policy(), dt.date(2026, 11, 24), "morning")
    assert starts == dt.datetime(2026, 11, 24, 0, 0, tzinfo=dt.UTC)  # 08:00 in Zhengzhou
    assert ends == dt.datetime(2026, 11, 24, 4, 0, tzinfo=dt.UTC)
    starts, ends = session_times(default_policy(), dt.date(2026, 11, 24), Period.AFTERNOON)
    assert (starts.hour, ends.hour, ends.minute) == (6, 9, 30)


def test_slots_are_public_then_referral_then_walk_in() -> None:
    assert slot_pools(6, 2, 1) == [Pool.PUBLIC] * 3 + [Pool.REFERRAL] + [Pool.WALK_IN] * 2
    assert slot_pools(2, 0, 0) == [Pool.PUBLIC, Pool.PUBLIC]
    assert slot_pools(2, 2, 0) == [Pool.WALK_IN, Pool.WALK_IN]
    with pytest.raises(InvalidValue) as refused:
        slot_pools(3, 2, 2)
    assert refused.value.field == "slots"


MONDAY = dt.date(2026, 11, 23)


def weekly(
    template_id: int, doctor: int, weekday: int, period: str, **dates: dt.date | None
) -> WeeklySession:
    return WeeklySession(
        template_id, doctor, weekday, period, dates.get("valid_from") or MONDAY, dates.get("valid_to")
    )


def test_a_weekly_template_makes_one_session_a_week() -> None:
    made, closed = planned_sessions(
        [weekly(1, 7, 1, "morning"), weekly(2, 7, 3, "afternoon")], [], MONDAY, MONDAY + dt.timedelta(days=13)
    )
    assert [(p.on.isoformat(), p.period) for p in made] == [
        ("2026-11-23", "morning"),
        ("2026-11-25", "afternoon"),
        ("2026-11-30", "morning"),
        ("2026-12-02", "afternoon"),
    ]
    assert closed == []


def test_validity_bounds_the_sessions() -> None:
    later = MONDAY + dt.timedelta(days=7)
    made, _ = planned_sessions(
        [weekly(1, 7, 1, "morning", valid_from=later), weekly(2, 8, 1, "morning", valid_to=MONDAY)],
        [],
        MONDAY,
        MONDAY + dt.timedelta(days=20),
    )
    assert [(p.doctor_id, p.on) for p in made] == [
        (8, MONDAY),
        (7, later),
        (7, later + dt.timedelta(days=7)),
    ]


def test_exceptions_close_a_doctor_a_period_or_the_whole_institution() -> None:
    templates = [weekly(1, 7, d, p) for d in (1, 2, 3) for p in ("morning", "afternoon")] + [
        weekly(2, 8, 1, "morning")
    ]
    closures = [
        Closure(MONDAY, doctor_id=7),  # doctor 7's leave on Monday, all day
        Closure(MONDAY + dt.timedelta(days=1), period="afternoon"),  # Tuesday afternoon: everyone
        Closure(MONDAY + dt.timedelta(days=2)),  # Wednesday: a holiday
    ]
    made, closed = planned_sessions(templates, closures, MONDAY, MONDAY + dt.timedelta(days=2))
    assert [(p.doctor_id, p.on.isoweekday(), p.period) for p in made] == [
        (8, 1, "morning"),
        (7, 2, "morning"),
    ]
    assert len(closed) == 5  # Monday 2, Tuesday afternoon 1, Wednesday 2


def test_the_newer_of_two_overlapping_templates_wins() -> None:
    made, _ = planned_sessions(
        [weekly(1, 7, 1, "morning"), weekly(2, 7, 1, "morning", valid_from=MONDAY - dt.timedelta(days=30))],
        [],
        MONDAY,
        MONDAY,
    )
    assert [p.template_id for p in made] == [1]


def test_an_empty_range_plans_nothing() -> None:
    assert planned_sessions([weekly(1, 7, 1, "morning")], [], MONDAY, MONDAY - dt.timedelta(days=1)) == (
        [],
        [],
    )
