"""``healthcard security scan-secrets`` — no key, password or token where it must not be
(healthcard.platform.secretscan, docs/security.md).

The secrets it knows come from the node's own configuration: the key store (opened with the KEK
of the environment, as the server opens it), the token secret and the passwords and PINs of the
environment (``HEALTHCARD_TOKEN_SECRET``, ``HEALTHCARD_KEYSTORE_PASSPHRASE``,
``HEALTHCARD_IMAGE_PASSPHRASE``, ``HEALTHCARD_ACCOUNT_PASSWORD``, ``HEALTHCARD_PKCS11_PIN``), the
public demo PIN and passphrase, and — with ``--database-url`` — the accounts' password hashes.

Exit codes: 0 nothing found, 1 findings (each listed with its place, kind and fingerprint —
never the secret), 2 a refused input (a key store that does not open).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from healthcard import demo
from healthcard.bootstrap import kek_from_environment
from healthcard.card import image
from healthcard.cli.common import console, fail
from healthcard.errors import HealthCardError
from healthcard.keys.keystore import KeyStore
from healthcard.platform import secretscan as ss
from healthcard.settings import Settings, normalise_url
from healthcard.storage.db import Database

security_app = typer.Typer(
    help="Security checks of a node's files, database and repository.", no_args_is_help=True
)

#: environment variables that hold a secret: (name, kind)
ENV_SECRETS = (
    ("HEALTHCARD_KEYSTORE_PASSPHRASE", "passphrase"),
    ("HEALTHCARD_IMAGE_PASSPHRASE", "passphrase"),
    ("HEALTHCARD_ACCOUNT_PASSWORD", "password"),
    ("HEALTHCARD_PKCS11_PIN", "pin"),
)


def known_secrets(settings: Settings, *, keystore: Path | None, database: Database | None) -> list[ss.Secret]:
    """What the scan looks for, from this node's configuration."""
    found = [
        ss.Secret.text("pin", "demo SAM PIN", demo.DEMO_SAM_PIN, public=True),
        ss.Secret.text("passphrase", "demo card image passphrase", image.DEMO_PASSPHRASE, public=True),
    ]
    if settings.token_secret is not None:
        found.append(ss.Secret("token-secret", "HEALTHCARD_TOKEN_SECRET", settings.token_secret))
    for name, kind in ENV_SECRETS:
        value = os.environ.get(name)
        if value:
            found.append(ss.Secret.text(kind, name, value))
    if keystore is not None:
        store = KeyStore.open(keystore, kek_from_environment(settings)())
        found += ss.keystore_secrets(store)
    if database is not None:
        found += ss.password_hash_secrets(database)
    return found


@security_app.command("scan-secrets")
def scan_secrets(
    logs: Annotated[
        list[Path] | None, typer.Option("--logs", help="a folder of logs (again for more)")
    ] = None,
    images: Annotated[
        list[Path] | None, typer.Option("--images", help="a folder of card images (again for more)")
    ] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="the node's database: every text and bytes column")
    ] = None,
    repo: Annotated[Path | None, typer.Option("--repo", help="a git checkout: every file git lists")] = None,
    keystore: Annotated[
        Path | None,
        typer.Option(
            "--keystore",
            help="the key store whose key values to look for [default: $HEALTHCARD_KEYSTORE, when it exists]",
            show_default=False,
        ),
    ] = None,
    show: Annotated[bool, typer.Option("--list", help="list the secrets looked for (fingerprints)")] = False,
) -> None:
    """Look for the node's keys, passwords, PINs and tokens in logs, card images, the database
    and the repository.  Exit 0: nothing found; 1: findings (place, kind, fingerprint)."""
    database = None
    try:
        settings = Settings.from_env()
        store = keystore or (settings.keystore_path if settings.keystore_path.exists() else None)
        if database_url is not None:
            database = Database(normalise_url(database_url))
        secrets = known_secrets(settings, keystore=store, database=database)
        if show:
            for kind, name, print_ in ss.iter_fingerprints(secrets):
                console.print(f"{kind:14} {print_}  {name}", highlight=False)
        scanner = ss.SecretScanner(secrets)
        findings = ss.scan(scanner, logs=logs or (), images=images or (), database=database, repo=repo)
    except HealthCardError as exc:
        raise fail(exc) from None
    finally:
        if database is not None:
            database.dispose()
    places = [
        p for p in ("logs" if logs else "", "images" if images else "", "database" if database_url else "")
    ]
    places += ["repository"] if repo else []
    searched = (
        ", ".join(p for p in places if p) or "nothing (give --logs, --images, --database-url or --repo)"
    )
    if not findings:
        console.print(
            f"no secrets found ({len(secrets)} known secrets; searched {searched})", highlight=False
        )
        return
    for finding in findings:
        console.print(str(finding), highlight=False, markup=False)
    console.print(f"{len(findings)} finding(s) in {searched}", highlight=False)
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(security_app, name="security")


__all__ = ["ENV_SECRETS", "known_secrets", "register", "security_app"]
