"""What every CLI module shares: the console, error → exit code, the key store options."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from healthcard.clock import SystemClock
from healthcard.errors import HealthCardError, InvalidValue
from healthcard.issuance.keycentre import KeyCentre
from healthcard.keys.kek import DEFAULT_MODULE, Kek, open_kek
from healthcard.keys.keystore import KeyStore

console = Console()


def fail(exc: HealthCardError) -> typer.Exit:
    """One line on the console, exit code 2 (a refused input or a failed check)."""
    console.print(f"[red]error:[/red] {exc}", highlight=False)
    return typer.Exit(2)


def data_dir() -> Path:
    return Path(os.environ.get("HEALTHCARD_DATA_DIR", "data"))


def default_store() -> Path:
    return data_dir() / "keys" / "keystore.json"


StoreOption = Annotated[
    Path | None,
    typer.Option(
        "--store",
        envvar="HEALTHCARD_KEYSTORE",
        help="key store file [default: $HEALTHCARD_DATA_DIR/keys/keystore.json]",
        show_default=False,
    ),
]
KekOption = Annotated[
    str,
    typer.Option(
        "--kek",
        envvar="HEALTHCARD_KEK",
        help="what protects the key store: passphrase (HEALTHCARD_KEYSTORE_PASSPHRASE, else asked) "
        "or pkcs11 (HEALTHCARD_PKCS11_MODULE / _TOKEN / _PIN)",
    ),
]


def kek_from_env(kind: str) -> Kek:
    """The KEK chosen by ``--kek``; secrets come from the environment or a hidden prompt, never
    from an option (it would land in the shell history)."""
    if kind == "passphrase":
        passphrase = os.environ.get("HEALTHCARD_KEYSTORE_PASSPHRASE")
        if not passphrase:
            if not sys.stdin.isatty():
                raise InvalidValue(
                    "passphrase", "set HEALTHCARD_KEYSTORE_PASSPHRASE (no terminal to ask it on)"
                )
            passphrase = typer.prompt("key store passphrase", hide_input=True)
        return open_kek("passphrase", passphrase=passphrase)
    if kind == "pkcs11":
        pin = os.environ.get("HEALTHCARD_PKCS11_PIN")
        if not pin:
            if not sys.stdin.isatty():
                raise InvalidValue("pin", "set HEALTHCARD_PKCS11_PIN (no terminal to ask it on)")
            pin = typer.prompt("HSM user PIN", hide_input=True)
        return open_kek(
            "pkcs11",
            module=os.environ.get("HEALTHCARD_PKCS11_MODULE", DEFAULT_MODULE),
            token=os.environ.get("HEALTHCARD_PKCS11_TOKEN", "healthcard"),
            pin=pin,
        )
    raise InvalidValue("kek", f"{kind!r}: passphrase or pkcs11")


def open_centre(store: Path | None, kek: str, create: bool = False) -> KeyCentre:
    path = store or default_store()
    clock = SystemClock()
    key_store = (
        KeyStore.open_or_create(path, kek_from_env(kek), clock)
        if create
        else KeyStore.open(path, kek_from_env(kek), clock)
    )
    return KeyCentre(key_store, clock)
