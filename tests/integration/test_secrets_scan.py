"""The secrets scan (healthcard.platform.secretscan, ``healthcard security scan-secrets``), on
SQLite and PostgreSQL: a realistic day — a card issued with its image saved, the card swiped at
the hospital (the terminal logs in with its SAM), staff and the resident logged in on the API and
on the web, a bill settled — with every log line captured to a file; then the logs, the card
images, every text and bytes column of the database and the repository are searched for every
key of the key store, the card's own keys, the token secret, the passwords, PINs and
passphrases, the tokens and session cookies issued, and the password hashes: nothing is found.
And a secret planted in each place *is* found — named by place and kind, never shown.
"""

from __future__ import annotations

import base64
import logging
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from healthcard.card import image
from healthcard.cli.main import app as cli
from healthcard.issuance.chips import SimulatedChips
from healthcard.platform import secretscan as ss
from healthcard.storage import tables as t
from healthcard.terminal.platform import PlatformClient

from .cardcentre_fixtures import PASSPHRASE as KEYSTORE_PASSPHRASE
from .cardcentre_fixtures import application
from .carddesk_fixtures import id_number
from .platform_fixtures import CARD, PASSWORD, Platform, served
from .test_settlement_api import BILL, _set_up
from .test_visit_flow import login

REPO = Path(__file__).resolve().parents[2]
IMAGE_PASSPHRASE = "images-of-the-scan-test"
CARDHOLDER_PIN = "491735"


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    """Every log record of the run into a file, as a server's logging would write it (the
    project's loggers at DEBUG, the rest at INFO)."""
    folder = tmp_path / "logs"
    folder.mkdir()
    handler = logging.FileHandler(folder / "healthcard.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.setLevel(logging.DEBUG)
    root, ours = logging.getLogger(), logging.getLogger("healthcard")
    levels = (root.level, ours.level)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    ours.setLevel(logging.DEBUG)
    try:
        yield folder
    finally:
        root.removeHandler(handler)
        handler.close()
        root.setLevel(levels[0])
        ours.setLevel(levels[1])


def a_day_at_the_platform(platform: Platform, images: Path) -> list[ss.Secret]:
    """Issue, swipe, log in (API and web), settle; the secrets the day made or used."""
    made: list[ss.Secret] = []
    # a card issued at the card centre, its image sealed into the tray
    chips = SimulatedChips(images, image.Sealer(IMAGE_PASSPHRASE))
    cards = platform.app.cards
    raw = application(id_number=id_number(5), name="李四", birth_date="1985-01-01", sex=1)
    submitted = cards.submit("clerk-41", raw, collection_point="410102-01")
    cards.approve("admin-41", submitted.number)
    issued = cards.issue("admin-41", submitted.number, chips, pin=CARDHOLDER_PIN)
    image.save(platform.chip, images / "zhang-san.json", image.Sealer(IMAGE_PASSPHRASE))
    deriver = platform.key_centre.deriver("41")
    for serial in (issued.chip_serial, platform.chip_serial):
        made += ss.card_key_secrets([deriver.derive(bytes.fromhex(serial))])
    _set_up(platform)  # the cashier, the NCMS office, a presence grant
    with served(platform.app) as url, httpx.Client(base_url=url) as http:
        with platform.terminal() as terminal, PlatformClient(url) as client:
            client.login(terminal, platform.terminal_id)
            client.swipe(CARD, platform.chip_serial, stage="consultation")
            assert client.token is not None
            made.append(ss.Secret.text("token", "terminal token", client.token))
        office, cashier, doctor = (login(http, who) for who in ("ncms", "cashier", "dr-wang"))
        for who, header in (("ncms", office), ("cashier", cashier), ("dr-wang", doctor)):
            made.append(ss.Secret.text("token", f"{who} token", header["Authorization"].split()[1]))
        rid = platform.resident_id
        enrolled = http.post(
            "/v1/ncms/enrolments",
            headers=office,
            json={"resident_id": rid, "pool": "demo", "year": 2026, "premium_fen": 40000},
        )
        assert enrolled.status_code == 201, enrolled.text
        opened = http.post(
            f"/v1/residents/{rid}/encounters",
            headers=doctor,
            json={"department": "普外科", "kind": "inpatient"},
        )
        assert opened.status_code == 201, opened.text
        body = {"resident_id": rid, "encounter_id": opened.json()["id"], "lines": BILL}
        settled = http.post("/v1/settlements", headers={**cashier, "Idempotency-Key": "ZY-1"}, json=body)
        assert settled.status_code == 201, settled.text
        # a wrong password too: the audit and the log note the attempt, never the password
        assert (
            http.post("/v1/auth/token", json={"username": "dr-wang", "password": "hunter2-wrong"}).status_code
            == 401
        )
        made.append(ss.Secret.text("password", "a wrong password typed", "hunter2-wrong", public=True))
        # the resident on the web: a session cookie
        page = http.get("/portal/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        answer = http.post(
            "/portal/login",
            data={"username": CARD, "password": PASSWORD, "csrf": csrf.group(1)},
            follow_redirects=True,
        )
        assert answer.status_code == 200 and answer.url.path == "/portal"
        made.append(ss.Secret.text("session", "the resident's session cookie", http.cookies["hc_session"]))
        assert http.get("/portal/visits").status_code == 200
    return made


def known(platform: Platform, made: list[ss.Secret]) -> list[ss.Secret]:
    settings = platform.app.settings
    assert settings.token_secret is not None
    return [
        *ss.keystore_secrets(platform.key_centre.store),
        ss.Secret("token-secret", "HEALTHCARD_TOKEN_SECRET", settings.token_secret),
        # the tests' own passwords are written in the tests on purpose: public, as the demo's
        ss.Secret.text("password", "the accounts' password", PASSWORD, public=True),
        ss.Secret.text("passphrase", "the key store's passphrase", KEYSTORE_PASSPHRASE, public=True),
        ss.Secret.text("passphrase", "the card images' passphrase", IMAGE_PASSPHRASE, public=True),
        ss.Secret.text("pin", "a cardholder PIN", CARDHOLDER_PIN, public=True),
        *ss.password_hash_secrets(platform.app.db),
        *made,
    ]


def test_a_day_leaves_no_secret_in_logs_images_the_database_or_the_repository(
    platform: Platform, log_file: Path, tmp_path: Path
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    made = a_day_at_the_platform(platform, images)
    secrets = known(platform, made)
    kinds = {s.kind for s in secrets}
    assert {
        "key",
        "token-secret",
        "password",
        "pin",
        "passphrase",
        "token",
        "session",
        "password-hash",
    } <= kinds
    assert sum(s.kind == "key" for s in secrets) > 40  # national, provinces, SM2, EHC root, 2 cards
    log_text = (log_file / "healthcard.log").read_text(encoding="utf-8")
    assert "login" in log_text and len(log_text) > 500  # the day did log
    assert len([p for p in images.iterdir() if p.is_file()]) >= 2  # the issued card's and 张三's
    scanner = ss.SecretScanner(secrets)
    findings = ss.scan(scanner, logs=[log_file], images=[images], database=platform.app.db, repo=REPO)
    assert findings == [], "\n".join(map(str, findings))

    # --- a planted secret in each place is found, and shown by fingerprint only
    key = next(s for s in secrets if s.name.startswith("province/41/") and s.kind == "key")
    token = next(s for s in made if s.kind == "token")
    (log_file / "debug.log").write_text(f"ok\nderived key={key.value.hex()}\n", encoding="utf-8")
    (images / "dump.bin").write_bytes(b"\x00" + base64.b64encode(platform.app.settings.token_secret or b""))
    with platform.app.db.uow() as uow:
        uow.session.add(
            t.Notification(
                resident_id=platform.resident_id,
                kind="debug",
                message=f"token {token.value.decode()}",
                at=platform.clock.now(),
            )
        )
        uow.session.execute(
            update(t.Account).where(t.Account.username == "auditor").values(password_hash=PASSWORD)
        )
        uow.commit()
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "settings.py").write_text(f'SESSION = "{made[-1].value.decode()}"\n', encoding="utf-8")
    found = ss.scan(scanner, logs=[log_file], images=[images], database=platform.app.db, repo=repo)
    where = {(f.location.split(":")[0].split("[")[0], f.kind) for f in found}
    assert ("logs/debug.log", "key") in where
    assert ("images/dump.bin", "token-secret") in where
    assert ("db/notifications.message", "token") in where and ("db/notifications.message", "jwt") in where
    assert ("db/accounts.password_hash", "not-hashed") in where
    assert ("repo/settings.py", "session") in where
    assert next(f for f in found if f.kind == "key").location == "logs/debug.log:2"
    report = "\n".join(map(str, found))
    assert key.fingerprint in report
    for secret in (key, token, made[-1]):
        assert secret.value.hex() not in report and secret.value.decode("latin-1") not in report
    assert PASSWORD not in report


def test_the_command_exits_1_on_findings_and_never_prints_the_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = bytes(range(1, 33))
    monkeypatch.setenv("HEALTHCARD_DATA_DIR", str(tmp_path / "data"))  # no key store there
    monkeypatch.setenv("HEALTHCARD_TOKEN_SECRET", secret.hex())
    monkeypatch.setenv("HEALTHCARD_ACCOUNT_PASSWORD", "s3cret-of-the-admin")
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_text("INFO started\nINFO a request\n", encoding="utf-8")
    runner = CliRunner()
    clean = runner.invoke(cli, ["security", "scan-secrets", "--logs", str(logs)])
    assert clean.exit_code == 0, clean.output
    assert "no secrets found" in clean.output
    (logs / "app.log").write_text(
        f"INFO started\nDEBUG secret {secret.hex().upper()}\nDEBUG form password=s3cret-of-the-admin\n",
        encoding="utf-8",
    )
    dirty = runner.invoke(cli, ["security", "scan-secrets", "--logs", str(logs), "--list"])
    assert dirty.exit_code == 1, dirty.output
    assert "logs/app.log:2: token-secret" in dirty.output
    assert "logs/app.log:3: password HEALTHCARD_ACCOUNT_PASSWORD" in dirty.output
    assert ss.fingerprint(secret) in dirty.output
    assert secret.hex() not in dirty.output.lower() and "s3cret-of-the-admin" not in dirty.output
