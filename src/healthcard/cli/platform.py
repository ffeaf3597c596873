"""``healthcard serve`` — the platform node over HTTP (uvicorn), and its accounts and terminals.

``make run`` calls ``healthcard serve --demo``: on the embedded default (SQLite in the data
directory) it brings the schema up to date, seeds the demo city once (Zhengzhou: institutions of
every level, residents with cards, records and vaccinations, staff accounts and terminals), prints
how to log in, and serves.
"""

from __future__ import annotations

import os
import secrets
from typing import Annotated

import typer

from healthcard.cli.common import console, fail
from healthcard.errors import HealthCardError
from healthcard.settings import Settings
from healthcard.storage.db import Database, redact


def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
    workers: Annotated[int, typer.Option(help="worker processes (1: in this process)")] = 1,
    demo: Annotated[bool, typer.Option(help="seed the demo city first (once) and print its logins")] = False,
    residents: Annotated[int, typer.Option(help="demo city: how many residents")] = 1000,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level")] = "info",
) -> None:
    """Serve the platform API (OpenAPI at /docs, FHIR under /fhir)."""
    import uvicorn

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
        if demo:
            from healthcard.platform import democity

            logins = democity.ensure(settings, residents=residents, console=console)
            democity.print_logins(console, logins, f"http://{host}:{port}")
    except HealthCardError as exc:
        raise fail(exc) from None
    console.print(f"platform: http://{host}:{port}/docs  (database {redact(settings.db_url)})")
    uvicorn.run(
        "healthcard.api.app:from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers if workers > 1 else None,
        log_level=log_level,
        access_log=False,
    )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
