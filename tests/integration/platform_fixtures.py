"""A platform node to test against: a wired app on the test database, its institutions, a
resident with an issued card, staff accounts, a registered terminal — and, for the end-to-end
tests, the API served by a real uvicorn on a free local port."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

from healthcard.api.app import create_app
from healthcard.bootstrap import App, bootstrap
from healthcard.card.cos import CardOS, CardState
from healthcard.card.sam import SamOS
from healthcard.clock import FixedClock, local_date
from healthcard.issuance.chips import SimulatedChips
from healthcard.issuance.keycentre import KeyCentre, SamRequest, terminal_number
from healthcard.issuance.organisation import Organisation
from healthcard.platform.access import Role
from healthcard.settings import Settings
from healthcard.storage import tables as t
from healthcard.storage.db import Database
from healthcard.terminal import hotlist as hot
from healthcard.terminal.sdk import HealthCardTerminal
from healthcard.terminal.transport import SimulatorTransport

from .cardcentre_fixtures import application, seed_organisation

CARD = "410102199003070019"
HOSPITAL = "410102001"  # 郑州市中原区人民医院 (the card's home institution in these tests)
OTHER = "410105001"  # 郑州市金水区人民医院: no tie to the resident
PASSWORD = "correct horse battery"


@dataclass
class Platform:
    app: App
    clock: FixedClock
    key_centre: KeyCentre
    chip: CardState  # the resident's card
    sam: CardState  # the SAM of the hospital's workstation (registered as its terminal)
    chip_serial: str
    resident_id: str
    terminal_id: str

    def terminal(self, *, with_hotlist: bool = False) -> HealthCardTerminal:
        """The hospital's workstation (its SAM registered to HOSPITAL) with the card inserted;
        ``with_hotlist``: having loaded Henan's current hot list, as a terminal does each day."""
        listed = None
        if with_hotlist:
            listed = hot.TerminalHotList()
            listed.load(
                hot.encode(self.app.cards.hotlist("41")),
                trust=self.key_centre.trust_store(),
                today=local_date(self.clock),
            )
        return HealthCardTerminal(
            SimulatorTransport(CardOS(self.chip)),
            SimulatorTransport(SamOS(self.sam)),
            trust=self.key_centre.trust_store(),
            hotlist=listed,
        )


def make_platform(database_url: str, key_centre: KeyCentre, clock: FixedClock, folder: Path) -> Platform:
    (folder / "trust.json").write_text(json.dumps(key_centre.trust_store().to_dict()), encoding="utf-8")
    settings = Settings(
        data_dir=folder,
        database_url=database_url,
        token_secret=secrets.token_bytes(32),
        trust=folder / "trust.json",
    )
    schema = Database(database_url)
    schema.upgrade()
    schema.dispose()
    app = bootstrap(settings, clock=clock, key_centre=lambda: key_centre)
    seed_organisation(app.db)
    org = Organisation(app.db)
    org.add_institution(OTHER, name="郑州市金水区人民医院", area="410105", kind="hospital", issues=False)
    chips = SimulatedChips()
    submitted = app.cards.submit("clerk-41", application(), collection_point="410102-01")
    app.cards.approve("admin-41", submitted.number)
    card = app.cards.issue("admin-41", submitted.number, chips)
    app.cards.activate("clerk-41", CARD)
    chip = chips.delivered[bytes.fromhex(card.chip_serial)]
    node = app.node
    with app.db.uow() as uow:
        resident_id = node.mpi.resolve_card(uow, CARD)
        for username, role, institution, area in (
            ("dr-wang", Role.CLINICIAN, HOSPITAL, None),
            ("dr-li", Role.CLINICIAN, OTHER, None),
            ("auditor", Role.AUDITOR, None, None),
            ("cdc-zz", Role.PUBLIC_HEALTH, None, "4101"),
            ("admin", Role.ADMIN, None, None),
        ):
            node.accounts.create(
                uow,
                username=username,
                name=username,
                role=role,
                password=PASSWORD,
                institution_code=institution,
                area_code=area,
            )
        node.accounts.create(
            uow, username=CARD, name="张三", role=Role.RESIDENT, password=PASSWORD, resident_id=resident_id
        )
        sam = key_centre.sam(SamRequest(bytes.fromhex("5341304100000009"), terminal_number("410100000009")))
        with HealthCardTerminal(SimulatorTransport(CardOS(chip)), SimulatorTransport(SamOS(sam))) as terminal:
            certificate = terminal.sam_certificate()
        view = node.terminals.register(uow, certificate=certificate, institution_code=HOSPITAL)
        uow.commit()
    return Platform(app, clock, key_centre, chip, sam, card.chip_serial, resident_id, view.id)


def insured_here(
    platform: Platform,
    level: str,
    *,
    staff: tuple[tuple[str, Role, str | None], ...] = (("cashier-1", Role.CASHIER, HOSPITAL),),
) -> None:
    """Ready for NCMS settlement: the hospital at ``level`` (inside the demo pool: Zhengzhou),
    the resident insured in the pool for this year, and ``staff`` accounts (username, role,
    institution) — a cashier of the hospital unless told otherwise."""
    node = platform.app.node
    with platform.app.db.uow() as uow:
        hospital = uow.session.get(t.Institution, HOSPITAL)
        assert hospital is not None
        hospital.level = level
        node.settlement.service.enrol(
            uow,
            platform.resident_id,
            pool="demo",
            year=local_date(platform.clock).year,
            premium_fen=40_000,
            actor="ncms-office",
        )
        for username, role, institution in staff:
            node.accounts.create(
                uow,
                username=username,
                name=username,
                role=role,
                password=PASSWORD,
                institution_code=institution,
            )
        uow.commit()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serving(
    url: str, secret: bytes, data_dir: Path, *, stop: signal.Signals = signal.SIGINT
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``healthcard serve --workers 2`` on the database at ``url``, in its own process group,
    answering ``/health``; stopped with ``stop`` (SIGINT: gracefully; SIGKILL: as a crash), and
    killed if it has not gone within 20 s.  Yields the base URL and the process."""
    port = free_port()
    env = {
        **os.environ,
        "HEALTHCARD_DATABASE_URL": url,
        "HEALTHCARD_TOKEN_SECRET": secret.hex(),
        "HEALTHCARD_DATA_DIR": str(data_dir),
    }
    log = (data_dir / f"serve-{port}.log").open("wb")
    healthcard = Path(sys.executable).parent / "healthcard"
    command = [str(healthcard), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"healthcard serve exited {proc.returncode}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "healthcard serve did not answer in 60 s"
            time.sleep(0.2)
        yield base, proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, stop)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


@contextmanager
def served(app: App, port: int | None = None, *, agent_url: str | None = None) -> Iterator[str]:
    """The API on a real uvicorn in a thread; yields its base URL, stops it after.
    ``agent_url``: the local reader agent its clinic and kiosk pages call."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(app, agent_url=agent_url),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
