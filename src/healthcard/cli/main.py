"""``healthcard`` — the command line.

Entry points are thin: they load settings and images, call the card/terminal code, print with
Rich, and turn :class:`~healthcard.errors.HealthCardError` into a one-line message and exit
code 2.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from healthcard import demo
from healthcard.agent import cli as agent_cli
from healthcard.card import image
from healthcard.card.cos import CardOS, CardState
from healthcard.card.personalise import CardContents
from healthcard.card.profile import PROFILE_32K, PROFILES
from healthcard.card.sam import SamOS
from healthcard.card.sw import describe
from healthcard.cli import audit, bank, cardcentre, federation, platform, scenario, security
from healthcard.cli.common import console, fail
from healthcard.cli.keys import keys_app, sam_app
from healthcard.cli.render import card_tables, print_tables
from healthcard.clock import SystemClock, local_date
from healthcard.errors import HealthCardError, InvalidValue
from healthcard.keys.certificates import TrustStore
from healthcard.terminal.hotlist import TerminalHotList
from healthcard.terminal.sdk import HealthCardTerminal
from healthcard.terminal.transport import SimulatorTransport

app = typer.Typer(help="HealthCard — the national resident health card (居民健康卡).", no_args_is_help=True)
card_app = typer.Typer(
    help="Simulated cards: make, show, talk to, and serve them to PC/SC.", no_args_is_help=True
)
app.add_typer(card_app, name="card")
app.add_typer(keys_app, name="keys")
app.add_typer(sam_app, name="sam")
cardcentre.register(app, card_app)
platform.register(app)
bank.register(app)
federation.register(app)
audit.register(app)
security.register(app)
agent_cli.register(app)

Passphrase = Annotated[
    str,
    typer.Option(
        envvar="HEALTHCARD_IMAGE_PASSPHRASE",
        show_default=False,
        help="passphrase that seals the keys in card images",
    ),
]


def _sealer(passphrase: str) -> image.Sealer:
    return image.Sealer(passphrase or image.DEMO_PASSPHRASE)


def _contents(holder: Path | None) -> CardContents:
    contents = demo.demo_contents()
    if holder is None:
        return contents
    doc: dict[str, Any] = json.loads(holder.read_text(encoding="utf-8"))
    for key, values in doc.get("items", {}).items():
        contents.items.setdefault(key, {}).update(values)
    if "allergies" in doc:
        contents.allergies = [(str(a[0]), str(a[1])) for a in doc["allergies"]]
    if "immunizations" in doc:
        contents.immunizations = [(str(i[0]), str(i[1])) for i in doc["immunizations"]]
    if "pin" in doc:
        contents.pin = doc["pin"]
    return contents


def _terminal(
    state: CardState,
    sam_state: CardState | None = None,
    hotlist: TerminalHotList | None = None,
    sam_pin: str = demo.DEMO_SAM_PIN,
) -> tuple[HealthCardTerminal, SimulatorTransport]:
    card = SimulatorTransport(CardOS(state))
    sam = SimulatorTransport(SamOS(sam_state or demo.demo_sam()))
    terminal = HealthCardTerminal(
        card, sam, sam_pin=sam_pin, profile=PROFILES.get(state.profile, PROFILE_32K), hotlist=hotlist
    )
    terminal.open()
    return terminal, card


@card_app.command("new")
def card_new(
    out: Annotated[Path, typer.Option("--out", help="where to write the card image")],
    holder: Annotated[
        Path | None, typer.Option(help='JSON: {"items": {"DDF1/EF06": {"name": …}}, "allergies": […]}')
    ] = None,
    serial: Annotated[str, typer.Option(help="8-byte chip serial, hex")] = demo.DEMO_SERIAL.hex().upper(),
    profile: Annotated[str, typer.Option(help=f"one of {', '.join(PROFILES)}")] = PROFILE_32K.id,
    passphrase: Passphrase = "",
) -> None:
    """Personalise a demo card (demo keys) and save its image."""
    try:
        if profile not in PROFILES:
            raise typer.BadParameter(f"unknown profile {profile!r}", param_hint="--profile")
        state = demo.issue_demo_card(bytes.fromhex(serial), _contents(holder), PROFILES[profile])
        image.save(state, out, _sealer(passphrase))
    except HealthCardError as exc:
        raise fail(exc) from None
    console.print(f"card {state.serial.hex().upper()} ({state.profile}, {state.lifecycle.value}) → {out}")


@card_app.command("new-sam")
def card_new_sam(
    out: Annotated[Path, typer.Option("--out", help="where to write the SAM image")],
    passphrase: Passphrase = "",
) -> None:
    """Make a SAM image holding the demo level-1 keys (PIN 123456)."""
    image.save(demo.demo_sam(), out, _sealer(passphrase))
    console.print(f"SAM → {out}")


@card_app.command("show")
def card_show(
    path: Annotated[Path, typer.Argument(help="card image")],
    sam: Annotated[Path | None, typer.Option(help="the terminal's SAM image [default: the demo SAM]")] = None,
    sam_pin: Annotated[
        str, typer.Option(envvar="HEALTHCARD_SAM_PIN", help="the SAM's PIN")
    ] = demo.DEMO_SAM_PIN,
    hotlist: Annotated[
        list[Path] | None, typer.Option(help="signed hot lists the terminal loads first (full, then deltas)")
    ] = None,
    trust: Annotated[
        Path | None, typer.Option(help="national roots (`healthcard keys trust`) to verify hot lists")
    ] = None,
    passphrase: Passphrase = "",
) -> None:
    """Read every file through the terminal SDK and print every item decoded.  With hot lists
    loaded, a hot-listed card is refused before anything but DDF1/EF05 is read."""
    try:
        sealer = _sealer(passphrase)
        state = image.load(path, sealer)
        terminal_list = None
        if hotlist:
            if trust is None:
                raise InvalidValue("trust", "a hot list is verified against the national roots: give --trust")
            roots = TrustStore.from_dict(json.loads(trust.read_text(encoding="utf-8")))
            terminal_list = TerminalHotList()
            for listing in hotlist:
                terminal_list.load(listing.read_bytes(), trust=roots, today=local_date(SystemClock()))
        sam_state = image.load(sam, sealer) if sam else None
        terminal, _ = _terminal(state, sam_state, terminal_list, sam_pin)
        console.print(f"card {state.serial.hex().upper()} · {state.profile} · {state.lifecycle.value}")
        print_tables(console, card_tables(terminal, terminal.profile))
    except HealthCardError as exc:
        raise fail(exc) from None


@card_app.command("apdu")
def card_apdu(
    path: Annotated[Path, typer.Argument(help="card image")],
    apdus: Annotated[list[str], typer.Argument(help="C-APDUs in hex")],
    passphrase: Passphrase = "",
) -> None:
    """Power the card, send raw APDUs in order, print each response; changes are saved."""
    sealer = _sealer(passphrase)
    try:
        state = image.load(path, sealer)
    except HealthCardError as exc:
        raise fail(exc) from None
    changed: list[CardState] = []
    card = SamOS(state) if state.application == "sam" else CardOS(state, on_change=changed.append)
    console.print(f"ATR {card.power_on().hex().upper()}")
    for text in apdus:
        try:
            raw = bytes.fromhex(text.replace(" ", ""))
        except ValueError:
            console.print(f"[red]error:[/red] {text!r} is not hex")
            raise typer.Exit(2) from None
        response = card.process(raw)
        sw = int.from_bytes(response[-2:], "big")
        console.print(f"> {raw.hex().upper()}\n< {response[:-2].hex().upper()} {sw:04X}  ({describe(sw)})")
    if changed:
        image.save(state, path, sealer)


@card_app.command("serve")
def card_serve(
    path: Annotated[Path, typer.Argument(help="card image")],
    vpcd: Annotated[str, typer.Option(help="vpcd HOST:PORT of the user-card reader")] = "127.0.0.1:35963",
    sam: Annotated[Path | None, typer.Option(help="also serve this SAM image")] = None,
    sam_port: Annotated[int, typer.Option(help="vpcd port of the SAM reader")] = 35964,
    passphrase: Passphrase = "",
) -> None:
    """Plug a card image into vsmartcard-vpcd: any PC/SC program then sees it as a real card.

    Every change the card makes is saved to the image atomically."""
    from healthcard.terminal.vpcd import VpcdBridge

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sealer = _sealer(passphrase)
    host, _, port = vpcd.rpartition(":")
    try:
        state = image.load(path, sealer)
        sam_state = image.load(sam, sealer) if sam else None
    except HealthCardError as exc:
        raise fail(exc) from None
    bridges = [
        VpcdBridge(
            CardOS(state, on_change=lambda s: image.save(s, path, sealer)), host or "127.0.0.1", int(port)
        )
    ]
    if sam_state is not None and sam is not None:
        sam_path = sam
        bridges.append(
            VpcdBridge(
                SamOS(sam_state, on_change=lambda s: image.save(s, sam_path, sealer)),
                host or "127.0.0.1",
                sam_port,
            )
        )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threads = [b.start_in_thread() for b in bridges]
    console.print(f"serving {path} on vpcd {vpcd}" + (f" and SAM {sam} on port {sam_port}" if sam else ""))
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    for b in bridges:
        b.stop()
    for t in threads:
        t.join(timeout=5)


demo_app = typer.Typer(help="The scripted demo (`healthcard demo`) and demo data (`healthcard demo seed`).")
app.add_typer(demo_app, name="demo")


@demo_app.callback(invoke_without_command=True)
def run_demo(
    ctx: typer.Context,
    data_dir: Annotated[
        Path, typer.Option(envvar="HEALTHCARD_DATA_DIR", help="the data directory (the demo uses <dir>/demo)")
    ] = Path("data"),
) -> None:
    """The scripted demo: key ceremony, province keys, a SAM, two provinces' cards at one terminal,
    a signed visit record, a key rollover, and the card centre (apply, issue, lose, replace)."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        scenario.run(console, data_dir)
    except HealthCardError as exc:
        raise fail(exc) from None


demo_app.command("seed")(cardcentre.demo_seed)
