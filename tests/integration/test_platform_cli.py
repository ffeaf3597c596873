"""The platform's own commands, on SQLite and PostgreSQL: a terminal registered from its SAM
image, staff and resident accounts — and what they refuse."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from healthcard.bootstrap import bootstrap
from healthcard.cli.main import app
from healthcard.settings import Settings
from healthcard.storage import tables as t

PASS = "platform-cli"


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str) -> Iterator[CliRunner]:
    monkeypatch.setenv("HEALTHCARD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HEALTHCARD_KEYSTORE_PASSPHRASE", PASS)
    monkeypatch.setenv("HEALTHCARD_DATABASE_URL", database_url)
    monkeypatch.setenv("HEALTHCARD_ACCOUNT_PASSWORD", "a long enough secret")
    for name in ("HEALTHCARD_KEYSTORE", "HEALTHCARD_KEK", "HEALTHCARD_TRUST", "HEALTHCARD_IMAGE_PASSPHRASE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    yield CliRunner()


def cli(runner: CliRunner, *args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return " ".join(result.output.split())


def test_terminals_and_accounts_from_the_command_line(run: CliRunner, tmp_path: Path) -> None:
    cli(run, "db", "upgrade")
    cli(run, "keys", "ceremony", "--components", "2")
    cli(run, "keys", "trust", "--out", str(tmp_path / "data" / "trust.json"))
    cli(
        run,
        "org",
        "add-institution",
        "410102001",
        "--name",
        "郑州市中原区人民医院",
        "--area",
        "410102",
        "--kind",
        "hospital",
    )
    cli(run, "sam", "new", "--province", "41", "--terminal", "410100000001", "--out", "sam.img")
    assert "registered at 410102001 (kiosk)" in cli(
        run, "terminal", "register", "sam.img", "--institution", "410102001", "--kind", "kiosk"
    )
    # a terminal of an unknown institution, a forged kind: refused by field, nothing written
    assert "institution_code" in cli(run, "terminal", "register", "sam.img", "--institution", "999", code=2)
    assert "kind" in cli(
        run, "terminal", "register", "sam.img", "--institution", "410102001", "--kind", "toaster", code=2
    )

    assert "account dr-wang (clinician) created" in cli(
        run,
        "account",
        "add",
        "dr-wang",
        "--role",
        "clinician",
        "--name",
        "王医生",
        "--institution",
        "410102001",
    )
    assert "institution_code" in cli(
        run, "account", "add", "dr-x", "--role", "clinician", "--name", "x", code=2
    )
    assert "username" in cli(
        run,
        "account",
        "add",
        "dr-wang",
        "--role",
        "clinician",
        "--name",
        "王医生",
        "--institution",
        "410102001",
        code=2,
    )
    app_ = bootstrap(Settings.from_env())
    try:
        with app_.db.uow() as uow:
            assert [r.kind for r in uow.session.query(t.Terminal)] == ["kiosk"]
            assert [a.username for a in uow.session.query(t.Account)] == ["dr-wang"]
            assert (
                app_.node.accounts.authenticate(uow, "dr-wang", "a long enough secret").role.value
                == "clinician"
            )
    finally:
        app_.close()
