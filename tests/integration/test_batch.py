"""Batch issuance (集中发卡) on both databases: refused rows reported, re-runs idempotent, and a
SIGKILL in the middle of a run followed by a re-run leaves every row issued exactly once."""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from healthcard.card.image import Sealer
from healthcard.clock import FixedClock
from healthcard.issuance.batch import run_batch
from healthcard.issuance.cardcentre import CardCentre
from healthcard.issuance.chips import SimulatedChips
from healthcard.issuance.keycentre import KeyCentre
from healthcard.issuance.seed import generate_applications, write_csv
from healthcard.keys.kek import open_kek
from healthcard.keys.keystore import KeyStore
from healthcard.storage import tables as t
from healthcard.storage.db import Database

from .cardcentre_fixtures import NOW, PASSPHRASE, make_key_centre, seed_organisation

ROWS = 300


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("keys")
    make_key_centre(folder)
    return folder


def applications_csv(path: Path, count: int, seed: int = 7) -> Path:
    rows = generate_applications(
        count, rng=random.Random(seed), today=NOW.date(), areas=("410102", "410105", "410602")
    )
    write_csv(rows, path)
    return path


def card_centre(database: Database, keys_dir: Path) -> CardCentre:
    """The organisation in ``database`` and a card centre over the module's key store."""
    seed_organisation(database)
    clock = FixedClock(NOW)
    key_centre = KeyCentre(
        KeyStore.open(keys_dir / "keystore.json", open_kek("passphrase", passphrase=PASSPHRASE), clock), clock
    )
    return CardCentre(database, clock, lambda: key_centre)


def children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def issued_once(db: Database, rows: int) -> None:
    """Every application has exactly one ISSUED card, and nothing is left half-way."""
    with db.session() as session:
        per_application = session.execute(
            select(t.Card.application_number, func.count())
            .where(t.Card.status == "ISSUED")
            .group_by(t.Card.application_number)
        ).all()
        assert len(per_application) == rows and {count for _, count in per_application} == {1}
        assert session.scalar(select(func.count()).select_from(t.Application)) == rows
        assert session.scalar(select(func.count()).where(t.Application.status != "ISSUED")) == 0
        assert session.scalar(select(func.count()).where(t.Card.status == "PERSONALISING")) == 0


def test_refused_rows_are_reported_and_a_rerun_takes_nothing_twice(
    database: Database, keys_dir: Path, tmp_path: Path
) -> None:
    centre = card_centre(database, keys_dir)
    source = applications_csv(tmp_path / "rows.csv", 40)
    with source.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    rows[3]["id_number"] = rows[3]["id_number"][:-1] + ("0" if rows[3]["id_number"][-1] != "0" else "1")
    rows[7]["name"] = "欧阳" * 8
    rows[9] = dict(rows[1])  # the same person twice in one file
    with source.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    tray = SimulatedChips(tmp_path / "cards", Sealer("x"), durable_each=False)
    errors = tmp_path / "errors.csv"
    report = run_batch(centre, "admin-41", source, tray, errors=errors, chunk=8)
    assert (report.rows, report.issued, report.refused, report.already) == (40, 37, 3, 0)
    with errors.open(encoding="utf-8") as fh:
        refused = {int(r["row"]): r["field"] for r in csv.DictReader(fh)}
    assert refused == {4: "id_number", 8: "name", 10: "id_number"}
    again = run_batch(centre, "admin-41", source, tray, errors=errors, chunk=8)
    assert (again.issued, again.already, again.refused) == (0, 37, 3)
    assert len(list((tmp_path / "cards").glob("*.card"))) == 37


@pytest.mark.parametrize("workers", ["0", "2"])
def test_sigkill_mid_batch_then_rerun_issues_every_row_exactly_once(
    database: Database, database_url: str, keys_dir: Path, tmp_path: Path, workers: str
) -> None:
    seed_organisation(database)
    source = applications_csv(tmp_path / "rows.csv", ROWS)
    out = tmp_path / "cards"
    env = {
        **os.environ,
        "HEALTHCARD_DATABASE_URL": database_url,
        "HEALTHCARD_DATA_DIR": str(tmp_path / "data"),
        "HEALTHCARD_KEYSTORE": str(keys_dir / "keystore.json"),
        "HEALTHCARD_KEYSTORE_PASSPHRASE": PASSPHRASE,
        "HEALTHCARD_OPERATOR": "admin-41",
    }
    command = [
        sys.executable,
        "-c",
        "from healthcard.cli.main import app; app()",
        "issue",
        "batch",
        str(source),
        "--out",
        str(out),
        "--chunk",
        "25",
        "--workers",
        workers,
    ]
    victim = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and victim.poll() is None:
        with database.session() as session:
            if (session.scalar(select(func.count()).where(t.Card.status == "ISSUED")) or 0) >= ROWS // 3:
                break
        time.sleep(0.02)
    assert victim.poll() is None, "the batch finished before it could be killed"
    workers_of_victim = children(victim.pid)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    gone_by = time.monotonic() + 10
    while workers_of_victim and time.monotonic() < gone_by:
        workers_of_victim = {pid for pid in workers_of_victim if Path(f"/proc/{pid}").exists()}
        time.sleep(0.1)
    assert not workers_of_victim, "worker processes outlived the killed batch"
    with database.session() as session:
        assert (session.scalar(select(func.count()).where(t.Card.status == "ISSUED")) or 0) < ROWS
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    issued_once(database, ROWS)
    images = {p.stem for p in out.glob("*.card")}
    with database.session() as session:
        serials = set(session.scalars(select(t.Card.chip_serial).where(t.Card.status == "ISSUED")))
    assert images == serials  # no card on disk the database does not know, none missing
    # a third run finds everything done
    third = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert third.returncode == 0 and f"issued 0 now, {ROWS} before" in " ".join(third.stdout.split())


def test_batch_with_worker_processes_writes_every_card(
    database: Database, keys_dir: Path, tmp_path: Path
) -> None:
    """Personalisation in two worker processes: the same cards, sealed images on disk, each
    card ISSUED in the database only once its image is there."""
    from healthcard.card import image
    from healthcard.card.filesystem import LifeCycle
    from healthcard.issuance.chips import PooledChips

    centre = card_centre(database, keys_dir)
    source = applications_csv(tmp_path / "rows.csv", 60)
    tray = PooledChips(tmp_path / "cards", "x", workers=2)
    try:
        report = run_batch(centre, "admin-41", source, tray, errors=tmp_path / "errors.csv", chunk=16)
    finally:
        tray.close()
    assert (report.issued, report.refused, report.failed) == (60, 0, 0)
    issued_once(database, 60)
    with database.session() as session:
        serials = set(session.scalars(select(t.Card.chip_serial).where(t.Card.status == "ISSUED")))
    assert {p.stem for p in (tmp_path / "cards").glob("*.card")} == serials
    state = image.load(tmp_path / "cards" / f"{sorted(serials)[0]}.card", image.Sealer("x"))
    assert state.lifecycle is LifeCycle.ISSUED
