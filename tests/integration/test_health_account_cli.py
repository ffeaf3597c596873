"""``healthcard bank reconcile`` on SQLite and PostgreSQL: exit 0 and "clean" for a day the
ledger and the bank's file agree on, exit 1 and every mismatch listed (as a table, or as JSON)
when they do not, exit 2 with the field for a file or an option that cannot be used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from healthcard.cli.main import app

from .platform_fixtures import Platform
from .test_health_account import BANK, Setup, make_setup


@pytest.fixture
def day(platform: Platform, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Setup:
    """A day at the bank: two top-ups and a withdrawal, booked by the platform."""
    monkeypatch.setenv("HEALTHCARD_DATABASE_URL", database_url)
    monkeypatch.setenv("HEALTHCARD_DATA_DIR", str(tmp_path / "cli-data"))
    monkeypatch.setenv("HEALTHCARD_OPERATOR", "ops-zhang")
    s = make_setup(platform, tmp_path)
    s.open()
    s.top_up(50_000)
    s.top_up(1_000)
    s.withdraw(7_000)
    return s


def run(*args: str, code: int) -> str:
    result = CliRunner().invoke(app, ["bank", "reconcile", *args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output if "--json" in args else " ".join(result.output.split())


def test_a_clean_day_exits_0(day: Setup) -> None:
    path = day.sim.statement_file(day.today)
    out = run("--bank", BANK, "--date", day.today.isoformat(), "--file", str(path), code=0)
    assert "clean" in out and "510.00" in out and "70.00" in out
    assert ("read", f"bank reconciliation {BANK}", None, "allowed") in day.audit("ops-zhang")


def test_mismatches_exit_1_and_are_listed(day: Setup) -> None:
    lost = day.sim.deposit(day.number(), 3_000)  # never delivered to the platform
    first = day.sim.booked(day.today)[0]
    day.sim.duplicate(first.bank_ref)
    path = day.sim.statement_file(day.today)
    out = run("--bank", BANK, "--date", day.today.isoformat(), "--file", str(path), code=1)
    assert "2 mismatches" in out and "missing-in-ledger" in out and "duplicate" in out
    assert lost.bank_ref in out
    report = json.loads(
        run("--bank", BANK, "--date", day.today.isoformat(), "--file", str(path), "--json", code=1)
    )
    assert report["clean"] is False
    assert sorted((m["kind"], m["bank_ref"]) for m in report["mismatches"]) == sorted(
        [("duplicate", first.bank_ref), ("missing-in-ledger", lost.bank_ref)]
    )
    assert report["ledger"] == {"count": 3, "in_fen": 51_000, "out_fen": 7_000, "net_fen": 44_000}
    assert report["statement"]["count"] == 5


def test_what_cannot_be_used_exits_2_naming_it(day: Setup, tmp_path: Path) -> None:
    path = day.sim.statement_file(day.today)
    broken = tmp_path / "broken.csv"
    broken.write_text(path.read_text(encoding="utf-8").replace("500.00", "500"), encoding="utf-8")
    date = day.today.isoformat()
    assert "error: statement[3].amount:" in run("--bank", BANK, "--date", date, "--file", str(broken), code=2)
    assert "error: file:" in run(
        "--bank", BANK, "--date", date, "--file", str(tmp_path / "missing.csv"), code=2
    )
    assert "error: date: '2026-02-30'" in run(
        "--bank", BANK, "--date", "2026-02-30", "--file", str(path), code=2
    )
    assert "error: bank: 'no-bank'" in run("--bank", "no-bank", "--date", date, "--file", str(path), code=2)
