"""NATS for the federation tests.

* :func:`machine_nats` — the machine's NATS server (127.0.0.1:4222, JetStream), started by
  scripts/nats-up.sh when it is installed but stopped.  Missing: the test FAILS under
  ``CI=true`` and skips elsewhere.  Each test works in a namespace of its own (streams
  ``<ns>_HC_UP`` …, subjects ``<ns>.up.…``) and deletes its streams after, so runs never collide.
* :class:`PrivateNats` — a nats-server of the test's own, on a free port with its own JetStream
  store directory, that the test may kill and start again without touching the machine's.
* ``test_received`` (:data:`WORK`) — the work of a test consumer, one row per processed message
  with no unique key, so that a message processed twice would show as two rows.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select

from healthcard.federation import Announcement, InboxHandler
from healthcard.federation.natsbus import NatsBus
from healthcard.storage.db import Database
from healthcard.storage.uow import UnitOfWork

from .conftest import SCRIPTS, unavailable

MACHINE_NATS = os.environ.get("HEALTHCARD_TEST_NATS", "nats://127.0.0.1:4222")
SERVER_BINARY = os.environ.get("HEALTHCARD_NATS_SERVER", "/usr/sbin/nats-server")


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as conn:
            return conn.recv(4) == b"INFO"
    except OSError:
        return False


def _host_port(url: str) -> tuple[str, int]:
    rest = url.split("://", 1)[1].rsplit("@", 1)[-1]
    host, _, port = rest.partition(":")
    return host, int(port or 4222)


def machine_nats() -> str:
    """The machine's NATS URL, started if need be (fails in CI, skips elsewhere when absent)."""
    host, port = _host_port(MACHINE_NATS)
    if not _answers(host, port):
        subprocess.run(["bash", str(SCRIPTS / "nats-up.sh")], check=False, timeout=120)
        deadline = time.monotonic() + 5
        while not _answers(host, port) and time.monotonic() < deadline:
            time.sleep(0.1)
    if not _answers(host, port):
        unavailable(f"NATS does not answer at {MACHINE_NATS} (scripts/nats-up.sh could not start it)")
    return MACHINE_NATS


def namespace() -> str:
    return f"t{os.getpid()}x{secrets.token_hex(3)}"


def nats_bus(url: str, ns: str | None = None) -> NatsBus:
    return NatsBus(url, namespace=ns or namespace(), timeout=3.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateNats:
    """A nats-server with JetStream for one test: ``stop()`` kills it (SIGKILL: the harshest
    stop), ``start()`` brings it back on the same port with the same store."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("nats-server") or SERVER_BINARY
        if not os.access(binary, os.X_OK):
            unavailable(f"nats-server is not installed ({SERVER_BINARY})")
        self.binary = binary
        self.store = folder / "jetstream"
        self.log = folder / "nats-server.log"
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def start(self) -> None:
        assert self.process is None, "already running"
        command = [self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store)]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while not _answers("127.0.0.1", self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nats-server did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)
        self.restarts += 1

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None


WORK = MetaData()
received = Table(
    "test_received",
    WORK,
    Column("id", Integer, primary_key=True),
    Column("consumer", String(60)),
    Column("msg_id", String(128)),
    Column("n", Integer),
)


def record(name: str) -> InboxHandler:
    """A consumer's handler: one ``test_received`` row per message, in the inbox's transaction."""

    def handler(uow: UnitOfWork, message: Announcement) -> None:
        uow.session.execute(
            insert(received).values(consumer=name, msg_id=message.msg_id, n=message.payload["n"])
        )

    return handler


def received_numbers(db: Database, consumer: str) -> list[int]:
    with db.session() as session:
        return sorted(session.scalars(select(received.c.n).where(received.c.consumer == consumer)))
