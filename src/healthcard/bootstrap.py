"""The one composition root (STYLE.md habit 4): settings in, a wired application out.

The CLI, the API and the tests build everything through :func:`bootstrap`; only here are the
concrete adapters chosen (SQLite or PostgreSQL, the key store and its KEK, the clock).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from healthcard.clock import Clock, SystemClock
from healthcard.issuance.cardcentre import CardCentre
from healthcard.issuance.keycentre import KeyCentre
from healthcard.keys.certificates import TrustStore
from healthcard.keys.kek import Kek
from healthcard.keys.keystore import KeyStore
from healthcard.platform.node import Node
from healthcard.settings import Settings
from healthcard.storage.db import Database


@dataclass
class App:
    settings: Settings
    clock: Clock
    db: Database
    cards: CardCentre
    node: Node = field(repr=False)

    def close(self) -> None:
        self.db.dispose()


def load_trust(settings: Settings) -> TrustStore:
    """The national roots the platform trusts (public keys only): the trust file when there is
    one, else none (terminals cannot register until the key centre exports its roots)."""
    path = settings.trust_path
    if not path.exists():
        return TrustStore()
    return TrustStore.from_dict(json.loads(path.read_text(encoding="utf-8")))


def bootstrap(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    kek: Callable[[], Kek] | None = None,
    key_centre: Callable[[], KeyCentre] | None = None,
    require_schema: bool = True,
) -> App:
    """Wire the application.  ``kek`` opens the key store's KEK when a key is first needed
    (personalisation, hot-list signing); ``key_centre`` replaces the whole key centre (tests).
    ``require_schema``: refuse to start on a database that is not at the current migration."""
    settings = settings or Settings.from_env()
    clock = clock or SystemClock()
    db = Database(settings.db_url)
    if require_schema:
        db.require_current()

    def open_centre() -> KeyCentre:
        if key_centre is not None:
            return key_centre()
        if kek is None:
            raise RuntimeError("bootstrap() was given no KEK: the key store cannot be opened")
        return KeyCentre(KeyStore.open(settings.keystore_path, kek(), clock), clock)

    # no secret configured: a fresh one, good for this process only (tests, one-off CLI calls)
    secret = settings.token_secret or secrets.token_bytes(32)
    node = Node(db, clock, token_secret=secret, trust=load_trust(settings))
    cards = CardCentre(db, clock, open_centre, card_data=node.card_data)
    return App(settings, clock, db, cards, node)
