"""Acceptance, through the command line, on SQLite and on PostgreSQL: a resident goes from
application to an active card, reports it lost, gets a replacement with the same card number
and the same on-card medical data, and a terminal that loaded the new hot list refuses the old
chip."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from healthcard.cli.main import app
from healthcard.demo import tiny_jpeg
from healthcard.storage.db import Database

PASS = "card-centre-cli"
CARD = "410102199003070019"


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str) -> Iterator[CliRunner]:
    monkeypatch.setenv("HEALTHCARD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HEALTHCARD_KEYSTORE_PASSPHRASE", PASS)
    monkeypatch.setenv("HEALTHCARD_DATABASE_URL", database_url)
    for name in (
        "HEALTHCARD_KEYSTORE",
        "HEALTHCARD_KEK",
        "HEALTHCARD_OPERATOR",
        "HEALTHCARD_IMAGE_PASSPHRASE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    yield CliRunner()


def cli(runner: CliRunner, *args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return " ".join(result.output.split())


def setup_centre(run: CliRunner) -> None:
    head = Database("sqlite://").head()  # the newest migration, whichever it is
    assert f"empty → {head}" in cli(run, "db", "upgrade")
    assert "up to date" in cli(run, "db", "status")
    cli(run, "keys", "ceremony", "--components", "2")
    cli(run, "keys", "derive-province", "--province", "41")
    cli(run, "org", "add-institution", "41000000001", "--name", "河南省卫生健康委员会", "--area", "410000")
    cli(
        run,
        "org",
        "add-point",
        "410102-01",
        "--name",
        "建设路社区",
        "--area",
        "410102",
        "--institution",
        "41000000001",
    )
    cli(
        run,
        "org",
        "add-operator",
        "clerk",
        "--name",
        "小王",
        "--role",
        "clerk",
        "--institution",
        "41000000001",
        "--point",
        "410102-01",
    )
    cli(
        run,
        "org",
        "add-operator",
        "admin",
        "--name",
        "老李",
        "--role",
        "card-admin",
        "--institution",
        "41000000001",
    )


def test_application_card_loss_replacement_and_hot_list(run: CliRunner, tmp_path: Path) -> None:
    setup_centre(run)
    Path("photo.jpg").write_bytes(tiny_jpeg())
    Path("zhang.json").write_text(
        json.dumps(
            {
                "allergies": [["青霉素", "皮疹"]],
                "abo": 1,
                "rh": "1",
                "diabetes": True,
                "other_alert": "高血压",
            },
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    out = cli(
        run,
        "apply",
        "zhang.json",
        "--name",
        "张三",
        "--sex",
        "1",
        "--birth-date",
        "1990-03-07",
        "--id-number",
        CARD,
        "--photo",
        "photo.jpg",
        "--phone",
        "13800138000",
        "--point",
        "410102-01",
        "-o",
        "clerk",
    )
    number = out.split()[1]
    assert number.startswith("SQ41") and "SUBMITTED" in out
    cli(run, "approve", number, "-o", "clerk", code=2)  # a clerk does not approve
    cli(run, "approve", number, "-o", "admin")
    out = cli(run, "issue", number, "--out", "cards", "-o", "admin")
    assert "ISSUED" in out
    old_chip = out.split("chip ")[1].split()[0]
    cli(run, "card", "activate", CARD, "-o", "clerk")
    assert "ACTIVE" in cli(run, "card", "status", CARD)

    cli(run, "card", "report-lost", CARD, "-o", "clerk")
    out = cli(run, "card", "replace", CARD, "--out", "cards", "-o", "admin")
    new_chip = out.split("chip ")[1].split()[0]
    assert CARD in out and new_chip != old_chip
    status = cli(run, "card", "status", CARD)
    assert "REPLACED" in status and "ISSUED" in status and "LOST" in status

    assert "v1 (full): 1 listed" in cli(run, "hotlist", "export", "--province", "41", "--out", "hot41.json")
    cli(run, "keys", "trust", "--out", "trust.json")
    cli(run, "sam", "new", "--province", "41", "--terminal", "410100000001", "--out", "sam.json")
    terminal = ("--sam", "sam.json", "--hotlist", "hot41.json", "--trust", "trust.json")
    refused = cli(run, "card", "show", f"cards/{old_chip}.card", *terminal, code=2)
    assert "hot list" in refused and CARD in refused
    new = cli(run, "card", "show", f"cards/{new_chip}.card", *terminal)
    old = cli(run, "card", "show", f"cards/{old_chip}.card", "--sam", "sam.json")
    assert "张三" in new and CARD in new and "青霉素" in new and "高血压" in new
    medical = lambda text: text[text.index("DF02") :]  # noqa: E731 — the medical part of the listing
    assert medical(new) == medical(old)


def test_invalid_application_through_the_cli(run: CliRunner) -> None:
    setup_centre(run)
    out = cli(
        run,
        "apply",
        "--name",
        "李四",
        "--sex",
        "1",
        "--birth-date",
        "1990-03-07",
        "--id-number",
        "410102199003070018",
        "-o",
        "clerk",
        code=2,
    )
    assert "id_number" in out and "check digit" in out
    assert re.search(r"applications\W+0\W", cli(run, "db", "status"))  # nothing half-written


def test_demo_seed_makes_residents_and_cards(run: CliRunner, tmp_path: Path) -> None:
    out = cli(run, "demo", "seed", "--residents", "40", "--out", "cards")
    assert "32 residents of province 41" in out and "cards issued 40 (before: 0), refused 0" in out
    assert len(list(Path("cards").glob("*.card"))) == 40
    again = cli(run, "demo", "seed", "--residents", "40", "--out", "cards")  # the same people: nothing twice
    assert "cards issued 0 (before: 40)" in again
    assert re.search(r"cards\W+40\W", cli(run, "db", "status"))
