"""The federation's messaging through a real NATS JetStream server, on SQLite and PostgreSQL:

(a) 1,000 announcements in a burst through the outbox and the relay, with NATS killed in the
    middle and started again: every one arrives exactly once at the consumer;
(b) a consumer process killed before acknowledging gets its messages again and processes them
    once (before its commit: done now; after its commit: found in the inbox, not done again);
(c) a rolled-back transaction announces nothing;
and the bus itself: streams, a durable consumer catching up after its node was down,
request/reply between two nodes.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from healthcard.clock import SystemClock
from healthcard.errors import MessagingError
from healthcard.federation import (
    InboxConsumer,
    Outgoing,
    Relay,
    announce,
    message_id,
    pending_count,
)
from healthcard.federation.natsbus import NatsBus
from healthcard.storage.db import Database
from healthcard.storage.tables import OutboxMessage

from .federation_fixtures import (
    WORK,
    PrivateNats,
    free_port,
    machine_nats,
    namespace,
    nats_bus,
    received_numbers,
    record,
)

pytestmark = pytest.mark.nats
CLOCK = SystemClock()
SUBJECT = "up.41.4101.test"


@pytest.fixture
def node(database: Database) -> Database:
    """A node's database at the current schema, with the test consumer's work table."""
    WORK.create_all(database.engine)
    return database


@pytest.fixture
def bus() -> Iterator[NatsBus]:
    """A bus on the machine's NATS, in a namespace of this test's own (its streams deleted after)."""
    b = nats_bus(machine_nats())
    b.ensure_streams()
    try:
        yield b
    finally:
        b.delete_streams()
        b.close()


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[PrivateNats]:
    server = PrivateNats(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def announce_one(db: Database, n: int) -> None:
    with db.uow() as uow:
        announce(uow, SUBJECT, {"n": n}, message_id("test.n", n), at=CLOCK.now())
        uow.commit()


def published(db: Database) -> int:
    with db.session() as session:
        return (
            session.scalar(
                select(func.count()).select_from(OutboxMessage).where(OutboxMessage.published_at.is_not(None))
            )
            or 0
        )


def wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# --- (a) -----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_burst_survives_nats_killed_and_started_again(node: Database, private_nats: PrivateNats) -> None:
    ns = namespace()
    sender, receiver = nats_bus(private_nats.url, ns), nats_bus(private_nats.url, ns)
    sender.ensure_streams()
    relay = Relay(node, sender, CLOCK, batch=100, timeout=2.0)
    inbox = InboxConsumer(
        node, receiver.consumer("HC_UP", "province", ack_wait=2.0), "province", record("province"), CLOCK
    )
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=relay.run, args=(stop,), kwargs={"idle": 0.01, "retry": 0.1, "max_retry": 0.5}
        ),
        threading.Thread(target=inbox.run, args=(stop,), kwargs={"batch": 200, "timeout": 0.2, "retry": 0.2}),
    ]
    for thread in threads:
        thread.start()
    try:
        for n in range(1000):
            announce_one(node, n)
            if n == 400:  # in the middle of the burst: NATS goes away …
                wait_for(lambda: published(node) >= 100, 30, "the relay to get going")
                private_nats.stop()
                stopped, before = time.monotonic(), published(node)
            if n == 700:  # … for longer than the relay waits for a PubAck, then comes back
                time.sleep(max(0.0, stopped + 3.0 - time.monotonic()))
                private_nats.start()
        wait_for(lambda: len(received_numbers(node, "province")) >= 1000, 120, "every announcement to arrive")
        time.sleep(2.5)  # longer than ack_wait: a redelivery would have come by now
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    try:
        assert received_numbers(node, "province") == list(range(1000))  # all of them, each once
        with node.uow() as uow:
            assert pending_count(uow) == 0
        with node.session() as session:
            retried = session.scalar(select(func.max(OutboxMessage.attempts)))
        assert 100 <= before < 1000 and retried is not None and retried >= 2  # the outage did bite
        assert sender.stream_size("HC_UP") == 1000  # JetStream stored each msg_id once
    finally:
        sender.close()
        receiver.close()


# --- (b) -----------------------------------------------------------------------------------------
WORKER = textwrap.dedent(
    """
    import sys, time
    from sqlalchemy import text
    from healthcard.clock import SystemClock
    from healthcard.federation import consume
    from healthcard.federation.natsbus import NatsBus
    from healthcard.storage.db import Database

    url, ns, db_url, mode = sys.argv[1:5]
    bus = NatsBus(url, namespace=ns)
    deliveries = bus.consumer("HC_UP", "victim", ack_wait=1.0).fetch(10, timeout=10)
    if mode == "after-commit":
        db = Database(db_url)
        with db.uow() as uow:
            for d in deliveries:
                consume(uow, "victim", d.msg_id, at=SystemClock().now())
                uow.session.execute(
                    text("INSERT INTO test_received (consumer, msg_id, n) VALUES ('victim', :m, -1)"),
                    {"m": d.msg_id},
                )
            uow.commit()
    print(len(deliveries), flush=True)
    time.sleep(600)  # killed here: never acknowledges
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["before-commit", "after-commit"])
def test_b_a_consumer_killed_before_acking_gets_the_message_again(
    node: Database, bus: NatsBus, mode: str, tmp_path: Path
) -> None:
    for n in range(5):
        announce_one(node, n)
    assert Relay(node, bus, CLOCK).drain() == 5
    script = tmp_path / "worker.py"
    script.write_text(WORKER, encoding="utf-8")
    worker = subprocess.Popen(
        [sys.executable, str(script), bus.url, bus.namespace, node.url, mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None
        line = worker.stdout.readline()
        assert line.strip() == "5", worker.stderr.read() if worker.stderr else line
    finally:
        worker.kill()  # SIGKILL: no chance to acknowledge anything
        worker.communicate(timeout=10)
    # ack_wait stays short, so under load a message may come a third time: the inbox absorbs it
    successor = InboxConsumer(
        node, bus.consumer("HC_UP", "victim", ack_wait=1.0), "victim", record("victim"), CLOCK
    )
    deliveries = 0
    deadline = time.monotonic() + 15
    while deliveries + successor.duplicates < 5 and time.monotonic() < deadline:
        deliveries += successor.poll(10, timeout=1.0)
    if mode == "before-commit":
        assert deliveries == 5
        assert received_numbers(node, "victim") == [0, 1, 2, 3, 4]  # done now, once
    else:
        assert deliveries == 0 and successor.duplicates >= 5
        assert received_numbers(node, "victim") == [-1] * 5  # the killed one's work, not done again
    assert successor.poll(10, timeout=1.5) == 0  # nothing new: all acknowledged (or only duplicates)
    assert len(received_numbers(node, "victim")) == 5


# --- (c) -----------------------------------------------------------------------------------------
def test_c_a_rolled_back_transaction_announces_nothing(node: Database, bus: NatsBus) -> None:
    with node.uow() as uow:
        announce(uow, SUBJECT, {"n": 1}, message_id("test.n", 1), at=CLOCK.now())
        # the use case refused something after announcing: no commit
    with pytest.raises(RuntimeError), node.uow() as uow:
        announce(uow, SUBJECT, {"n": 2}, message_id("test.n", 2), at=CLOCK.now())
        raise RuntimeError("failed after announcing")
    relay = Relay(node, bus, CLOCK)
    assert relay.drain() == 0
    assert bus.stream_size("HC_UP") == 0
    announce_one(node, 3)
    assert relay.drain() == 1
    inbox = InboxConsumer(node, bus.consumer("HC_UP", "c"), "c", record("c"), CLOCK)
    assert inbox.poll(10, timeout=1.0) == 1
    assert received_numbers(node, "c") == [3]


# --- the bus ---------------------------------------------------------------------------------------
def test_streams_are_ensured_idempotently_and_deduplicate(bus: NatsBus) -> None:
    bus.ensure_streams()
    first = bus.publish([Outgoing("up.41.card", b"a", "id-1"), Outgoing("down.hotlist", b"b", "id-2")])
    again = bus.publish([Outgoing("up.41.card", b"a", "id-1")])
    assert [(a.stream, a.duplicate) for a in first + again] == [  # type: ignore[union-attr]
        ("HC_UP", False),
        ("HC_DOWN", False),
        ("HC_UP", True),
    ]
    (nowhere,) = bus.publish([Outgoing("elsewhere.x", b"", "id-3")], timeout=1.0)
    assert isinstance(nowhere, MessagingError)


def test_a_node_that_was_down_catches_up_from_the_stream(bus: NatsBus) -> None:
    city = nats_bus(bus.url, bus.namespace)
    first = city.consumer("HC_DOWN", "city-4101", filter_subject="down.hotlist.>")
    bus.publish([Outgoing("down.hotlist.41", b"1", "h1")])
    (one,) = first.fetch(10, timeout=2)
    one.ack()
    city.close()  # the city node goes down …
    bus.publish([Outgoing(f"down.hotlist.{p}", str(i).encode(), f"h{i}") for i, p in ((2, 41), (3, 44))])
    bus.publish([Outgoing("down.other", b"", "x1")])  # not for this consumer's filter
    city = nats_bus(bus.url, bus.namespace)  # … and restarts
    try:
        got = city.consumer("HC_DOWN", "city-4101", filter_subject="down.hotlist.>").fetch(10, timeout=2)
        assert [(d.subject, d.data, d.delivered) for d in got] == [
            ("down.hotlist.41", b"2", 1),
            ("down.hotlist.44", b"3", 1),
        ]
        for d in got:
            d.ack()
    finally:
        city.close()


def test_request_reply_between_two_nodes(bus: NatsBus) -> None:
    zhengzhou = nats_bus(bus.url, bus.namespace)
    try:
        zhengzhou.serve("q.4101.summary", lambda subject, data: b"summary of " + data, queue="city-4101")
        zhengzhou.serve("q.4101.broken", lambda subject, data: 1 // 0)  # type: ignore[arg-type,return-value]
        assert bus.request("q.4101.summary", b"card") == b"summary of card"
        with pytest.raises(MessagingError, match="ZeroDivisionError"):
            bus.request("q.4101.broken", b"")
        with pytest.raises(MessagingError, match="no responder"):
            bus.request("q.4401.summary", b"card", timeout=1.0)
    finally:
        zhengzhou.close()


def test_an_unreachable_server_is_a_messaging_error(tmp_path: Path) -> None:
    start = time.monotonic()
    dead = NatsBus(f"nats://127.0.0.1:{free_port()}", timeout=1.0)
    try:
        with pytest.raises(MessagingError, match="cannot reach NATS"):
            dead.ensure_streams()
        assert dead.publish([]) == []
    finally:
        dead.close()
    assert time.monotonic() - start < 10
