"""A private PostgreSQL 15 cluster for tests and benchmarks that stop, kill or restart the database.

The machine's shared PostgreSQL (127.0.0.1:5432) is never touched: ``PrivatePostgres`` makes its
own cluster (``initdb``) in a temporary folder, on a free port, with trust authentication on
127.0.0.1 only, and removes it on exit::

    with PrivatePostgres(durable=True) as pg:
        url = pg.create_database("outage")      # postgresql+psycopg://postgres@127.0.0.1:PORT/outage
        ...
        pg.stop("immediate")                    # a crash: no shutdown checkpoint
        pg.start()                              # crash recovery; committed rows are back

Run as root, the server binaries run as the ``postgres`` user (``runuser -u postgres --``), the
folder chowned to it.  ``durable=False`` (the default) turns off ``fsync``, ``synchronous_commit``
and ``full_page_writes`` for speed; a test that asks "is every committed row still there after
a crash" wants ``durable=True``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from healthcard.settings import normalise_url

BIN = Path(os.environ.get("HEALTHCARD_PG_BIN", "/usr/lib/postgresql/15/bin"))
SHARED_PORT = 5432
STOP_MODES = ("smart", "fast", "immediate")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivatePostgres:
    """A PostgreSQL cluster of its own: ``start()``, ``stop(mode)``, ``restart()``,
    ``create_database(name)``; as a context manager it starts on entry and is stopped and deleted
    on exit."""

    def __init__(
        self,
        *,
        durable: bool = False,
        port: int | None = None,
        settings: Mapping[str, str] | None = None,
        user: str = "postgres",
        keep: bool = False,
    ) -> None:
        if port == SHARED_PORT:
            raise ValueError("5432 is the machine's shared PostgreSQL: pick another port")
        self.durable = durable
        self.port = port or free_port()
        self.user = user
        self.keep = keep
        self.dir = Path(tempfile.mkdtemp(prefix="healthcard-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self._settings = dict(settings or {})
        self._initialised = False
        self._as_user = os.geteuid() == 0
        if self._as_user:
            entry = pwd.getpwnam(user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)

    # -- the server --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``postgres`` maintenance database."""
        return self.database_url("postgres")

    @property
    def libpq_url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def database_url(self, name: str) -> str:
        return normalise_url(f"postgresql://{self.user}@127.0.0.1:{self.port}/{name}")

    def _run(self, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(BIN / args[0]), *args[1:]]
        if self._as_user:
            command = ["runuser", "-u", self.user, "--", *command]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}
        done = subprocess.run(
            command, cwd=self.dir, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"{args[0]} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}"
                f"\n{self.tail()}"
            )
        return done

    def _initdb(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", self.user, "-A", "trust", "-E", "UTF8",
                  "--locale=C", "--no-sync", timeout=120)  # fmt: skip
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.dir}'",
            "max_connections": "100",
            "shared_buffers": "'64MB'",
            "logging_collector": "off",
            "log_min_messages": "warning",
        }
        if not self.durable:
            conf |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        else:
            conf |= {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
        conf |= {k: v if v.startswith("'") or v.replace(".", "").isdigit() else f"'{v}'"
                 for k, v in self._settings.items()}  # fmt: skip
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as f:
            f.write("\n# PrivatePostgres\n")
            f.writelines(f"{k} = {v}\n" for k, v in conf.items())
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\nhost all all 127.0.0.1/32 trust\n", encoding="utf-8"
        )
        self._initialised = True

    def start(self, timeout: float = 60) -> None:
        """Start the server (first call: make the cluster) and wait until it takes connections;
        after ``stop("immediate")`` this includes crash recovery."""
        if not self._initialised:
            self._initdb()
        if self.running():
            return
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w",
                  "-t", str(int(timeout)), timeout=timeout + 10)  # fmt: skip
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.libpq_url, connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    message = f"private PostgreSQL did not answer in {timeout} s\n{self.tail()}"
                    raise RuntimeError(message) from exc
                time.sleep(0.1)

    def stop(self, mode: str = "fast", timeout: float = 60) -> None:
        """Stop the server: ``fast`` (roll back sessions, checkpoint), ``immediate`` (a crash:
        processes killed, recovery on the next start) or ``smart`` (wait for sessions)."""
        if mode not in STOP_MODES:
            raise ValueError(f"mode {mode!r}: one of {', '.join(STOP_MODES)}")
        if not self._initialised or not self.running():
            return
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", str(int(timeout)),
                  timeout=timeout + 10)  # fmt: skip

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def running(self) -> bool:
        if not self._initialised:
            return False
        return self._run("pg_ctl", "status", "-D", str(self.data), check=False).returncode == 0

    # -- databases ---------------------------------------------------------------------------

    def create_database(self, name: str) -> str:
        """Create database ``name`` (letters, digits, ``_``); returns its SQLAlchemy URL."""
        import psycopg

        if not name.replace("_", "").isalnum():
            raise ValueError(f"database name {name!r}: letters, digits and _")
        with psycopg.connect(self.libpq_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.database_url(name)

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    # -- lifetime ----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop (immediately: nothing is kept) and remove the folder."""
        try:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.stop("immediate")
        finally:
            if not self.keep:
                shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PrivatePostgres:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
