"""``healthcard serve`` — the platform node over HTTP (uvicorn), and its accounts and terminals.

``make run`` calls ``healthcard serve --demo``: on the embedded default (SQLite in the data
directory) it brings the schema up to date, seeds the demo city once (Zhengzhou: institutions of
every level, residents with cards, records and vaccinations, staff accounts and terminals), prints
how to log in, and serves.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from healthcard.agent.cli import AgentThread, build_agent
from healthcard.bootstrap import bootstrap
from healthcard.card import image
from healthcard.cli.common import console, fail
from healthcard.cli.federation import embedded_node
from healthcard.cli.invariants import platform_app
from healthcard.clock import SystemClock
from healthcard.errors import HealthCardError, InvalidValue
from healthcard.federation.nodes import FederationRunner, resync_city
from healthcard.platform import democity
from healthcard.platform.democity import Logins
from healthcard.platform.node import Node
from healthcard.settings import Settings
from healthcard.storage.db import Database, redact


def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
    workers: Annotated[int, typer.Option(help="worker processes (1: in this process)")] = 1,
    demo: Annotated[bool, typer.Option(help="seed the demo city first (once) and print its logins")] = False,
    residents: Annotated[int, typer.Option(help="demo city: how many residents")] = 1000,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level")] = "info",
    agent: Annotated[
        bool,
        typer.Option(
            help="with --demo and one worker: also serve the demo's reader agents in this process "
            "(the clinic workstation's and the kiosk's)"
        ),
    ] = True,
    agent_port: Annotated[int, typer.Option(help="--demo: the workstation's reader agent's port")] = 7700,
    kiosk_agent_port: Annotated[int, typer.Option(help="--demo: the kiosk's reader agent's port")] = 7701,
) -> None:
    """Serve the platform API (OpenAPI at /docs, FHIR under /fhir)."""
    import uvicorn

    if demo and not os.environ.get("HEALTHCARD_NODE_ROLE") and not os.environ.get("HEALTHCARD_NODE_CODE"):
        # the demo city is Zhengzhou's node: its cards and visits flow up to Henan and the nation
        os.environ["HEALTHCARD_NODE_CODE"] = DEMO_CITY
    if not os.environ.get("HEALTHCARD_TOKEN_SECRET"):
        # the workers inherit it: every worker accepts every other's tokens; nothing on disk
        os.environ["HEALTHCARD_TOKEN_SECRET"] = secrets.token_hex(32)
    try:
        settings = Settings.from_env()
        db = Database(settings.db_url)
        try:
            db.upgrade()
        finally:
            db.dispose()
        logins: Logins | None = None
        if demo:
            logins = democity.ensure(settings, residents=residents, console=console)
            democity.print_logins(console, logins, f"http://{host}:{port}")
            # the card centre's pages issue into the demo's card tray, under the demo's key store
            os.environ.setdefault("HEALTHCARD_CARD_TRAY", str(settings.data_dir / "cards"))
            if settings.kek == "passphrase":
                os.environ.setdefault("HEALTHCARD_KEYSTORE_PASSPHRASE", image.DEMO_PASSPHRASE)
    except HealthCardError as exc:
        raise fail(exc) from None
    nodes = _embedded_nodes(settings) if demo and workers == 1 else []
    if nodes:  # cards seeded before the node had a code are announced now (once)
        city = Database(settings.db_url)
        try:
            resync_city(city, str(settings.node_code), SystemClock())
        finally:
            city.dispose()
    agents: list[AgentThread] = []
    if demo and agent and logins is not None:
        if workers > 1:
            console.print(
                f"--workers {workers}: the reader agents are not started here; start each separately "
                "(docs/agent.md), e.g. healthcard agent --platform "
                f"{_platform_url(host, port)} --sam <SAM image> --card <card image>",
                highlight=False,
            )
        else:
            agents = _demo_agents(settings, logins, host, port, agent_port, kiosk_agent_port)
    console.print(f"platform: http://{host}:{port}/docs  (database {redact(settings.db_url)})")
    try:
        uvicorn.run(
            "healthcard.api.app:from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers if workers > 1 else None,
            log_level=log_level,
            access_log=False,
        )
    finally:
        for served in agents:
            served.stop()
        for runner in nodes:
            runner.stop()
            runner.db.dispose()


#: the demo city's node code (Zhengzhou); its province is Henan (41)
DEMO_CITY = "4101"


def _embedded_nodes(settings: Settings) -> list[FederationRunner]:
    """The embedded default's other two levels, in this process over its in-process bus: the
    demo city's province (41) and the national node, each with its own SQLite database in the
    data directory (``nodes/province-41.db``, ``nodes/national.db``).  With
    ``HEALTHCARD_NATS_URL`` they are separate processes (``healthcard federation run``)."""
    if settings.nats_url or settings.node_role != "city" or not settings.node_code:
        return []
    folder = settings.data_dir / "nodes"
    folder.mkdir(parents=True, exist_ok=True)
    province = settings.node_code[:2]
    runners = [
        embedded_node(f"sqlite:///{folder / f'province-{province}.db'}", "province", province),
        embedded_node(f"sqlite:///{folder / 'national.db'}", "national", "CN"),
    ]
    for runner in runners:
        runner.start()
    console.print(
        f"federation: city {settings.node_code} → province {province} → nation, in this process "
        f"(databases in {folder})",
        highlight=False,
    )
    return runners


def _platform_url(host: str, port: int) -> str:
    """Where this machine's agents reach the platform (a wildcard address: the loopback)."""
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{port}"


def _demo_agents(
    settings: Settings, logins: Logins, host: str, port: int, agent_port: int, kiosk_port: int
) -> list[AgentThread]:
    """The demo's two reader agents, each in a thread of this process, and the pages told where
    they are (``HEALTHCARD_AGENT_URL``, ``HEALTHCARD_KIOSK_AGENT_URL``):

    * on ``agent_port`` the workstation of 郑州市中原区人民医院 (its SAM; the demo child's, adult's
      and elder's cards in simulated slots) for the clinic console — its doctor is dr-zhongyuan;
    * on ``kiosk_port`` the hospital's self-service kiosk (its SAM; the kiosk resident's card, with
      a PIN, in its slot; the card centre's tray as its card dispenser) for ``/kiosk``.

    An agent that cannot start (its port taken: another ``healthcard agent``?) is left out, said."""
    platform = _platform_url(host, port)
    origins = [o for o in dict.fromkeys([platform, f"http://{host}:{port}", f"http://localhost:{port}"])]
    origins = [o for o in origins if "://0.0.0.0:" not in o]
    folder = logins.folder or settings.data_dir / "democity"
    trust = settings.trust_path if settings.trust_path.exists() else None
    started: list[AgentThread] = []

    def start(what: str, on: int, setting: str, sam: Path, cards: list[Path], tray: Path | None) -> bool:
        try:
            built = build_agent(
                cards=cards,
                sam=sam,
                sam_reader=None,
                sam_pin=democity.SAM_PIN,
                platform=platform,
                terminal_id=None,
                trust=trust,
                hotlist=None,
                pcsc=False,
                passphrase=os.environ.get("HEALTHCARD_IMAGE_PASSPHRASE", ""),
                tray=tray,
            )
            served = AgentThread(built, on, origins)
            served.start()
        except HealthCardError as exc:
            console.print(f"[yellow]{what}: reader agent not started[/yellow] ({exc})", highlight=False)
            return False
        os.environ[setting] = served.url
        started.append(served)
        return True

    hospital = next((term for term in logins.terminals if term.institution_code == "410102001"), None)
    residents = [r for r in logins.rows if r.kind in ("child", "adult", "elder")]
    slots = [(r, folder / "cards" / f"{r.username}.card") for r in residents]
    slots = [(r, path) for r, path in slots if path.exists()]
    if hospital is not None and start(
        "clinic console", agent_port, "HEALTHCARD_AGENT_URL", hospital.sam_image, [c for _, c in slots], None
    ):
        console.print(
            f"clinic console: {platform}/clinic (staff login dr-zhongyuan) — reader agent "
            f"http://127.0.0.1:{agent_port} with the SAM of {hospital.institution_name}; its card slots:",
            highlight=False,
        )
        for row, _ in slots:
            console.print(f"  sim-{row.username}: {row.who}", highlight=False)
    kiosk = logins.kiosk
    tray = os.environ.get("HEALTHCARD_CARD_TRAY")
    if kiosk is not None and start(
        "self-service kiosk",
        kiosk_port,
        "HEALTHCARD_KIOSK_AGENT_URL",
        kiosk.sam_image,
        [kiosk.card_image],
        Path(tray) if tray else None,
    ):
        console.print(
            f"self-service kiosk: {platform}/kiosk, {platform}/kiosk/issue — reader agent "
            f"http://127.0.0.1:{kiosk_port} with the kiosk's SAM; its card slot:\n"
            f"  sim-{kiosk.card_number}: {kiosk.name}, PIN {kiosk.pin} (the card dispenser: {tray})",
            highlight=False,
        )
    return started


@contextmanager
def _node() -> Iterator[Node]:
    """The node of the configured database (at the current schema); errors become one line."""
    try:
        app = bootstrap(Settings.from_env())
    except HealthCardError as exc:
        raise fail(exc) from None
    try:
        yield app.node
    except HealthCardError as exc:
        raise fail(exc) from None
    finally:
        app.close()


account_app = typer.Typer(
    help="Platform accounts: staff of every role, residents' own logins.", no_args_is_help=True
)
terminal_app = typer.Typer(help="Card terminals, known by their SAM.", no_args_is_help=True)


def _password() -> str:
    """From HEALTHCARD_ACCOUNT_PASSWORD or a hidden prompt, never an option (shell history)."""
    password = os.environ.get("HEALTHCARD_ACCOUNT_PASSWORD")
    if password:
        return password
    if not sys.stdin.isatty():
        raise InvalidValue("password", "set HEALTHCARD_ACCOUNT_PASSWORD (no terminal to ask it on)")
    return str(typer.prompt("password", hide_input=True, confirmation_prompt=True))


@account_app.command("add")
def account_add(
    username: Annotated[str, typer.Argument(help="the login name (a resident's: their ID number)")],
    role: Annotated[str, typer.Option(help="resident, clinician, registration, cashier, public-health, …")],
    name: Annotated[str, typer.Option(help="the person's name")],
    institution: Annotated[str | None, typer.Option(help="the institution code (staff of one)")] = None,
    area: Annotated[str | None, typer.Option(help="public health: the GB/T 2260 prefix of its area")] = None,
    card: Annotated[str | None, typer.Option(help="a resident's account: their card number")] = None,
) -> None:
    """Create an account; the password comes from HEALTHCARD_ACCOUNT_PASSWORD or a prompt."""
    with _node() as node, node.db.uow() as uow:
        resident_id = node.mpi.resolve_card(uow, card) if card else None
        view = node.accounts.create(
            uow,
            username=username,
            name=name,
            role=role,
            password=_password(),
            institution_code=institution,
            area_code=area,
            resident_id=resident_id,
        )
        uow.commit()
    console.print(f"account {view.username} ({view.role.value}) created", highlight=False)


@terminal_app.command("register")
def terminal_register(
    sam: Annotated[Path, typer.Argument(help="the terminal's SAM image (healthcard sam new --out …)")],
    institution: Annotated[str, typer.Option(help="the institution code the terminal stands in")],
    kind: Annotated[str, typer.Option(help="workstation, kiosk, registration, cashier, …")] = "workstation",
    passphrase: Annotated[
        str,
        typer.Option(envvar="HEALTHCARD_IMAGE_PASSPHRASE", show_default=False, help="seals the SAM image"),
    ] = "",
) -> None:
    """Register (or move) a terminal: its SAM certificate is checked against the trust file's
    national roots and its key kept, so the terminal can log in by having the SAM sign."""
    from healthcard.card import image
    from healthcard.card.sam import sam_certificate

    certificate = sam_certificate(image.load(sam, image.Sealer(passphrase or image.DEMO_PASSPHRASE)))
    with _node() as node, node.db.uow() as uow:
        view = node.terminals.register(uow, certificate=certificate, institution_code=institution, kind=kind)
        uow.commit()
    console.print(f"terminal {view.id} registered at {view.institution_code} ({view.kind})", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(account_app, name="account")
    app.add_typer(terminal_app, name="terminal")
    app.add_typer(platform_app, name="platform")
