"""The one composition root (STYLE.md habit 4): settings in, a wired application out.

The CLI, the API and the tests build everything through :func:`bootstrap`; only here are the
concrete adapters chosen (SQLite or PostgreSQL, the key store and its KEK, the clock).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from healthcard.clock import Clock, SystemClock
from healthcard.issuance.cardcentre import CardCentre
from healthcard.issuance.keycentre import KeyCentre
from healthcard.keys.kek import Kek
from healthcard.keys.keystore import KeyStore
from healthcard.settings import Settings
from healthcard.storage.db import Database


@dataclass
class App:
    settings: Settings
    clock: Clock
    db: Database
    cards: CardCentre

    def close(self) -> None:
        self.db.dispose()


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

    return App(settings, clock, db, CardCentre(db, clock, open_centre))
