"""The database: engine, sessions, schema migrations (Alembic) and the unit of work.

SQLite is the embedded default — a file in the data directory, WAL journal, foreign keys on,
every transaction ``BEGIN IMMEDIATE`` so that two writers queue on the database lock instead of
failing half-way with "database is locked" when a reader upgrades.  PostgreSQL (psycopg 3) is
the production database.  The same Alembic revisions build both.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, func, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from healthcard.errors import StorageError
from healthcard.storage.tables import Base
from healthcard.storage.uow import UnitOfWork


def _sqlite_engine(url: str, **kwargs: Any) -> Engine:
    path = make_url(url).database
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    # the driver's own transaction handling off: SQLAlchemy's BEGIN (made IMMEDIATE below) rules
    engine = create_engine(url, connect_args={"isolation_level": None, "timeout": 30}, **kwargs)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, never corrupt
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def redact(url: str) -> str:
    """The URL without its password, for messages and ``db status``."""
    return make_url(url).render_as_string(hide_password=True)


@dataclass(frozen=True)
class SchemaStatus:
    url: str  # password hidden
    dialect: str
    current: str | None  # the revision the database is at (None: empty database)
    head: str  # the revision this code expects
    tables: dict[str, int]  # row counts of the project's tables

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


class Database:
    """One database, its sessions and its migrations."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 5) -> None:
        self.url = url
        if url.startswith("sqlite"):
            self.engine = _sqlite_engine(url, echo=echo)
        else:
            # a stopped server is refused at once and an unreachable one given up after 5 s; TCP
            # keepalives end a query whose server vanished without a word (a cut network) in
            # about a minute instead of the operating system's two hours
            keepalives = {
                "keepalives": 1,
                "keepalives_idle": 30,
                "keepalives_interval": 10,
                "keepalives_count": 3,
            }
            self.engine = create_engine(
                url,
                echo=echo,
                pool_size=pool_size,
                pool_pre_ping=True,
                connect_args={"connect_timeout": 5, **keepalives},
            )
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def __repr__(self) -> str:
        return f"Database({redact(self.url)!r})"

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.sessions)

    def session(self) -> Session:
        return self.sessions()

    # --- migrations -----------------------------------------------------------------------
    def _alembic(self) -> Config:
        config = Config()
        config.set_main_option("script_location", str(resources.files("healthcard.storage") / "migrations"))
        config.attributes["engine"] = self.engine
        return config

    def head(self) -> str:
        head = ScriptDirectory.from_config(self._alembic()).get_current_head()
        assert head is not None
        return head

    def current(self) -> str | None:
        try:
            with self.engine.connect() as connection:
                return MigrationContext.configure(connection).get_current_revision()
        except OperationalError as exc:
            raise StorageError(f"cannot reach the database {redact(self.url)}: {exc.orig}") from None

    def upgrade(self, revision: str = "head") -> None:
        """Bring the schema to ``revision`` (Alembic), from an empty database or any older one."""
        try:
            command.upgrade(self._alembic(), revision)
        except OperationalError as exc:
            raise StorageError(f"cannot upgrade {redact(self.url)}: {exc.orig}") from None

    def downgrade(self, revision: str) -> None:
        command.downgrade(self._alembic(), revision)

    def status(self) -> SchemaStatus:
        current = self.current()
        counts: dict[str, int] = {}
        if current is not None:
            present = set(inspect(self.engine).get_table_names())
            with self.session() as session:
                for table in Base.metadata.sorted_tables:
                    if table.name in present:
                        counts[table.name] = session.scalar(select(func.count()).select_from(table)) or 0
        return SchemaStatus(redact(self.url), self.dialect, current, self.head(), counts)

    def require_current(self) -> None:
        """Refuse to work on a schema that is not this code's (StorageError says what to run)."""
        current, head = self.current(), self.head()
        if current != head:
            where = "empty" if current is None else f"at revision {current}"
            raise StorageError(
                f"the database {redact(self.url)} is {where}; this code needs {head}: run `healthcard db upgrade`"
            )

    def analyse(self) -> None:
        """Refresh the planner's statistics of the resident tables (PostgreSQL): a batch into a
        fresh database would otherwise be planned for empty tables until autovacuum ran — or
        for ever where it is off — and slow down as they fill."""
        if self.dialect != "postgresql":
            return
        with self.engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE residents, applications, cards, card_events")
            connection.commit()

    def dispose(self) -> None:
        self.engine.dispose()
