"""The audit retention settings: HEALTHCARD_AUDIT_HOT_DAYS and HEALTHCARD_AUDIT_ARCHIVE_DIR, and
the CLI's --before parsing (a date is the start of that day in China)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from healthcard.cli.audit import parse_before
from healthcard.errors import InvalidValue
from healthcard.settings import Settings


def test_defaults() -> None:
    settings = Settings.from_env({"HEALTHCARD_DATA_DIR": "/srv/hc"})
    assert settings.audit_hot_days == 180
    assert settings.audit_archive_path == Path("/srv/hc/audit-archive")


def test_set() -> None:
    settings = Settings.from_env(
        {"HEALTHCARD_AUDIT_HOT_DAYS": " 90 ", "HEALTHCARD_AUDIT_ARCHIVE_DIR": "/mnt/worm"}
    )
    assert (settings.audit_hot_days, settings.audit_archive_path) == (90, Path("/mnt/worm"))


@pytest.mark.parametrize("value", ["0", "-5", "half a year", "36501"])
def test_bad_hot_days_are_refused_by_name(value: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        Settings.from_env({"HEALTHCARD_AUDIT_HOT_DAYS": value})
    assert refused.value.field == "HEALTHCARD_AUDIT_HOT_DAYS"


def test_before_is_china_time_unless_told() -> None:
    assert parse_before("2026-05-01") == dt.datetime(2026, 4, 30, 16, tzinfo=dt.UTC)
    assert parse_before("2026-05-01T08:00") == dt.datetime(2026, 5, 1, 0, tzinfo=dt.UTC)
    assert parse_before("2026-05-01T08:00+00:00") == dt.datetime(2026, 5, 1, 8, tzinfo=dt.UTC)
    with pytest.raises(InvalidValue) as refused:
        parse_before("yesterday")
    assert refused.value.field == "before"
