"""``healthcard agent`` — serve the local reader agent on 127.0.0.1 (docs/agent.md)."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated

import typer

from healthcard.agent.app import DEFAULT_ORIGINS, create_app
from healthcard.agent.readers import CardTray, SamSlot, SimulatedSlot
from healthcard.agent.service import Agent
from healthcard.card import image
from healthcard.card.cos import CardState
from healthcard.cli.common import console, data_dir, fail
from healthcard.clock import SystemClock
from healthcard.errors import HealthCardError, InvalidValue
from healthcard.keys.certificates import TrustStore
from healthcard.terminal.hotlist import TerminalHotList


def slot_name(path: Path, taken: set[str]) -> str:
    """``sim-<file stem>`` (``sim-410102199003070019``), numbered when two files share a stem."""
    base = "sim-" + re.sub(r"[^0-9A-Za-z_.-]", "_", path.stem)
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


def build_agent(
    *,
    cards: list[Path],
    sam: Path | None,
    sam_reader: str | None,
    sam_pin: str,
    platform: str | None,
    terminal_id: str | None,
    trust: Path | None,
    hotlist: Path | None,
    pcsc: bool,
    passphrase: str,
    tray: Path | None = None,
) -> Agent:
    """The agent from the command line's choices (images loaded, the SAM opened)."""
    if sam is not None and sam_reader is not None:
        raise InvalidValue("sam", "give --sam or --sam-reader, not both")
    sealer = image.Sealer(passphrase or image.DEMO_PASSPHRASE)
    taken: set[str] = set()
    slots = []
    for path in cards:
        state = image.load(path, sealer)
        slots.append(SimulatedSlot(slot_name(path, taken), state, save=_image_saver(path, sealer)))
    sam_slot: SamSlot | None = None
    if sam is not None:
        sam_slot = SamSlot.from_image(
            image.load(sam, sealer), f"sam-{sam.stem}", save=_image_saver(sam, sealer)
        )
    elif sam_reader is not None:
        sam_slot = SamSlot.from_reader(sam_reader)
    roots = None
    trust_path = trust or data_dir() / "trust.json"
    if trust is not None or trust_path.exists():
        try:
            roots = TrustStore.from_dict(json.loads(trust_path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as error:
            raise InvalidValue("trust", f"cannot read the national roots at {trust_path}: {error}") from None
    listed = TerminalHotList.open(hotlist) if hotlist is not None else None
    return Agent(
        readers=slots,
        sam=sam_slot,
        sam_pin=sam_pin,
        clock=SystemClock(),
        platform_url=platform.rstrip("/") if platform else None,
        terminal_id=terminal_id,
        trust=roots,
        hotlist=listed,
        pcsc=pcsc,
        tray=CardTray(tray, sealer) if tray is not None else None,
    )


def _image_saver(path: Path, sealer: image.Sealer) -> Callable[[CardState], None]:
    """Every change the simulated card makes goes to its image, atomically."""

    def save(state: CardState) -> None:
        image.save(state, path, sealer)

    return save


def agent(
    port: Annotated[int, typer.Option(help="port on 127.0.0.1 (the agent never listens elsewhere)")] = 7700,
    platform: Annotated[
        str | None, typer.Option(help="the platform's base URL, e.g. http://127.0.0.1:8000 (none: offline)")
    ] = None,
    terminal_id: Annotated[
        str | None,
        typer.Option(help="the terminal id at the platform (default: the SAM certificate's subject)"),
    ] = None,
    sam: Annotated[
        Path | None, typer.Option(help="a SAM image (e.g. data/democity/terminals/<code>.sam)")
    ] = None,
    sam_reader: Annotated[
        str | None, typer.Option(help="the PC/SC reader holding the SAM (name or part of it)")
    ] = None,
    sam_pin: Annotated[
        str, typer.Option(envvar="HEALTHCARD_SAM_PIN", show_default=False, help="the SAM PIN (demo: 123456)")
    ] = "123456",
    card: Annotated[
        list[Path] | None, typer.Option(help="a card image to serve as a simulated slot (repeatable)")
    ] = None,
    allow_origin: Annotated[
        list[str] | None,
        typer.Option(
            help=f"a page origin allowed to use the agent (repeatable; default {', '.join(DEFAULT_ORIGINS)})"
        ),
    ] = None,
    pcsc: Annotated[bool, typer.Option(help="also drive the PC/SC readers pcscd lists")] = True,
    trust: Annotated[
        Path | None, typer.Option(envvar="HEALTHCARD_TRUST", help="national roots to verify written records")
    ] = None,
    hotlist: Annotated[
        Path | None, typer.Option(help="a terminal hot-list state file to refuse listed cards")
    ] = None,
    passphrase: Annotated[
        str,
        typer.Option(
            envvar="HEALTHCARD_IMAGE_PASSPHRASE", show_default=False, help="passphrase of the images"
        ),
    ] = "",
    tray: Annotated[
        Path | None,
        typer.Option(help="a kiosk's card dispenser (demo): the card centre's tray of simulated chips"),
    ] = None,
    log_level: Annotated[str, typer.Option(help="log level")] = "info",
) -> None:
    """Serve the local reader agent: the browser's bridge to the card readers and the SAM."""
    import uvicorn

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    try:
        built = build_agent(
            cards=list(card or []),
            sam=sam,
            sam_reader=sam_reader,
            sam_pin=sam_pin,
            platform=platform,
            terminal_id=terminal_id,
            trust=trust,
            hotlist=hotlist,
            pcsc=pcsc,
            passphrase=passphrase,
            tray=tray,
        )
        app = create_app(built, allow_origin or DEFAULT_ORIGINS)
    except HealthCardError as exc:
        raise fail(exc) from None
    readers = ", ".join(r.name for r in built.readers()) or "none yet"
    console.print(f"reader agent: http://127.0.0.1:{port}/status  (readers: {readers})")
    try:
        uvicorn.run(app, host="127.0.0.1", port=port, log_level=log_level, access_log=False)
    finally:
        built.close()


class AgentThread:
    """An agent served by uvicorn in a thread of this process (``healthcard serve --demo``
    starts the demo's beside the platform); :meth:`stop` ends it."""

    def __init__(self, built: Agent, port: int, origins: Sequence[str], log_level: str = "warning") -> None:
        import uvicorn

        self.agent = built
        self.port = port
        self.server = uvicorn.Server(
            uvicorn.Config(
                create_app(built, origins), host="127.0.0.1", port=port, log_level=log_level, access_log=False
            )
        )
        self.thread = threading.Thread(target=self.server.run, name=f"agent-{port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: float = 10.0) -> None:
        """Start and wait until it listens; a port taken (or any failure) is :class:`InvalidValue`."""
        self.thread.start()
        deadline = time.monotonic() + wait
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise InvalidValue(
                    "agent_port", f"the reader agent could not listen on 127.0.0.1:{self.port}"
                )
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout=5)
        self.agent.close()


def register(app: typer.Typer) -> None:
    app.command("agent")(agent)
