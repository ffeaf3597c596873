"""The messaging foundation of the federation on its own: the in-process bus (streams, duplicate
window, durable consumers with acks and redelivery, request/reply) and the outbox / inbox on a
SQLite file (announce in the caller's transaction, the relay, idempotent consumers).  The same
against a real NATS server and PostgreSQL: tests/integration/test_federation.py."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select

from healthcard.clock import FixedClock
from healthcard.errors import Duplicate, InvalidValue, MessagingError
from healthcard.federation import (
    DOWN,
    STREAMS,
    UP,
    Announcement,
    InboxConsumer,
    InProcessBus,
    Outgoing,
    PubAck,
    Relay,
    Stream,
    announce,
    consume,
    consume_many,
    message_id,
    open_bus,
    pending_count,
    prune_inbox,
    prune_outbox,
    subject_matches,
)
from healthcard.federation.bus import check_subject
from healthcard.storage.db import Database
from healthcard.storage.tables import Base, InboxEntry, OutboxMessage
from healthcard.storage.uow import UnitOfWork

NOW = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC)

#: the work a test consumer does: one row per processed message (no unique key, so a message
#: processed twice would show as two rows)
WORK = MetaData()
received = Table(
    "test_received",
    WORK,
    Column("id", Integer, primary_key=True),
    Column("consumer", String(60)),
    Column("msg_id", String(128)),
    Column("n", Integer),
)


def record(name: str):  # type: ignore[no-untyped-def]
    def handler(uow: UnitOfWork, message: Announcement) -> None:
        uow.session.execute(
            insert(received).values(consumer=name, msg_id=message.msg_id, n=message.payload["n"])
        )

    return handler


def received_numbers(db: Database, consumer: str) -> list[int]:
    with db.session() as session:
        return sorted(session.scalars(select(received.c.n).where(received.c.consumer == consumer)))


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'node.db'}")
    Base.metadata.create_all(database.engine)
    WORK.create_all(database.engine)
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture
def bus() -> Iterator[InProcessBus]:
    b = InProcessBus()
    b.ensure_streams()
    try:
        yield b
    finally:
        b.close()


def announce_numbers(db: Database, numbers: Sequence[int], subject: str = "up.41.4101.test") -> None:
    for n in numbers:
        with db.uow() as uow:
            announce(uow, subject, {"n": n}, message_id("test.n", n), at=NOW)
            uow.commit()


# --- subjects and ids --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pattern", "subject", "matches"),
    [
        ("up.>", "up.41.card", True),
        ("up.>", "up", False),
        ("up.*.card", "up.41.card", True),
        ("up.*.card", "up.41.4101.card", False),
        ("up.41.>", "up.42.card", False),
        ("down.hotlist", "down.hotlist", True),
        ("down.hotlist", "down.hotlist.x", False),
    ],
)
def test_subject_matching_follows_nats(pattern: str, subject: str, matches: bool) -> None:
    assert subject_matches(pattern, subject) is matches


@pytest.mark.parametrize("subject", ["", "up..card", "up.4 1", "up.41*.card", "up.>.x", "up.*"])
def test_bad_subjects_are_refused(subject: str) -> None:
    with pytest.raises(InvalidValue):
        check_subject(subject)


def test_message_id_is_stable_and_hides_its_keys() -> None:
    one = message_id("card.status", "41010119900101123X", 3)
    assert one == message_id("card.status", "41010119900101123X", 3)
    assert one != message_id("card.status", "41010119900101123X", 4)
    assert one.startswith("card.status:") and "41010119900101123X" not in one
    with pytest.raises(InvalidValue):
        message_id("Card Status", 1)
    with pytest.raises(InvalidValue):
        message_id("card.status")


def test_open_bus_picks_in_process_without_a_url() -> None:
    assert isinstance(open_bus(None), InProcessBus)
    assert {s.name for s in STREAMS} == {"HC_UP", "HC_DOWN", "HC_X"}
    assert UP.subjects == ("up.>",) and DOWN.subjects == ("down.>",)


# --- the in-process bus -------------------------------------------------------------------------
def test_publish_stores_once_per_msg_id(bus: InProcessBus) -> None:
    first = bus.publish([Outgoing("up.41.card", b"1", "a"), Outgoing("down.hotlist", b"2", "b")])
    assert first == [PubAck("HC_UP", 1), PubAck("HC_DOWN", 1)]
    again = bus.publish([Outgoing("up.41.card", b"1", "a")])
    assert again == [PubAck("HC_UP", 1, duplicate=True)]
    assert bus.stream_size("HC_UP") == 1
    (nowhere,) = bus.publish([Outgoing("elsewhere.x", b"", "c")])
    assert isinstance(nowhere, MessagingError)


def test_streams_may_not_overlap(bus: InProcessBus) -> None:
    bus.ensure_streams()  # again: idempotent
    with pytest.raises(MessagingError):
        bus.ensure_streams([Stream("OTHER", ("up.41.>",), "overlaps HC_UP")])


def test_durable_consumer_acks_and_redelivers(bus: InProcessBus) -> None:
    bus.publish([Outgoing("up.41.card", str(i).encode(), f"m{i}") for i in range(5)])
    consumer = bus.consumer("HC_UP", "province-41", ack_wait=0.05)
    got = consumer.fetch(3, timeout=0)
    assert [d.msg_id for d in got] == ["m0", "m1", "m2"] and {d.delivered for d in got} == {1}
    got[0].ack()
    got[2].ack()  # m1 not acknowledged: its consumer "crashed"
    rest = bus.consumer("HC_UP", "province-41", ack_wait=0.05).fetch(10, timeout=0)  # its successor
    assert [d.msg_id for d in rest] == ["m3", "m4"]
    for d in rest:
        d.ack()
    again = consumer.fetch(10, timeout=1.0)
    assert [(d.msg_id, d.delivered) for d in again] == [("m1", 2)]
    again[0].ack()
    assert consumer.fetch(10, timeout=0.1) == []


def test_nak_hands_out_again_at_once_and_filters_apply(bus: InProcessBus) -> None:
    bus.publish([Outgoing("up.41.card", b"", "a"), Outgoing("up.44.card", b"", "b")])
    henan = bus.consumer("HC_UP", "province-41", filter_subject="up.41.>", ack_wait=60)
    (first,) = henan.fetch(10, timeout=0)
    first.nak()
    (second,) = henan.fetch(10, timeout=0)
    assert (second.msg_id, second.delivered) == ("a", 2)
    nation = bus.consumer("HC_UP", "nation")  # another durable: sees everything, independently
    assert [d.msg_id for d in nation.fetch(10, timeout=0)] == ["a", "b"]
    bus.publish([Outgoing("up.41.card", b"", "c"), Outgoing("up.44.card", b"", "d")])
    henan = bus.consumer("HC_UP", "province-41", filter_subject="up.44.>")  # updated in place
    assert [d.msg_id for d in henan.fetch(10, timeout=0)] == ["d"]


def test_fetch_waits_for_a_publish(bus: InProcessBus) -> None:
    consumer = bus.consumer("HC_DOWN", "city-4101")
    timer = threading.Timer(0.05, lambda: bus.publish([Outgoing("down.hotlist", b"x", "h1")]))
    timer.start()
    start = time.monotonic()
    got = consumer.fetch(10, timeout=5)
    timer.join()
    assert [d.data for d in got] == [b"x"] and time.monotonic() - start < 2


def test_request_reply(bus: InProcessBus) -> None:
    responder = bus.serve("q.*.summary", lambda subject, data: subject.encode() + b"|" + data)
    assert bus.request("q.4101.summary", b"card") == b"q.4101.summary|card"

    def broken(subject: str, data: bytes) -> bytes:
        raise RuntimeError("a bug")

    bus.serve("q.broken", broken)
    with pytest.raises(MessagingError, match="RuntimeError"):
        bus.request("q.broken", b"")
    responder.close()
    with pytest.raises(MessagingError, match="no responder"):
        bus.request("q.4101.summary", b"card")


def test_a_closed_bus_refuses(bus: InProcessBus) -> None:
    bus.close()
    with pytest.raises(MessagingError):
        bus.publish([Outgoing("up.41.card", b"", "a")])


# --- the outbox ------------------------------------------------------------------------------------
def outbox_rows(db: Database) -> list[OutboxMessage]:
    with db.session() as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def test_announce_commits_with_the_caller(db: Database) -> None:
    with db.uow() as uow:
        assert announce(uow, "up.41.card", {"n": 1}, "m1", at=NOW)
        uow.commit()
    with db.uow() as uow:
        announce(uow, "up.41.card", {"n": 2}, "m2", at=NOW)
        # no commit: the caller's change failed, its announcement goes with it
    with pytest.raises(RuntimeError), db.uow() as uow:
        announce(uow, "up.41.card", {"n": 3}, "m3", at=NOW)
        raise RuntimeError("the use case failed after announcing")
    rows = outbox_rows(db)
    assert [(r.msg_id, r.payload, r.published_at, r.attempts) for r in rows] == [("m1", {"n": 1}, None, 0)]
    assert rows[0].created_at == NOW


def test_announce_twice_and_bad_input(db: Database) -> None:
    with db.uow() as uow:
        assert announce(uow, "up.41.card", {"n": 1}, "m1", at=NOW)
        assert not announce(uow, "up.41.card", {"n": 1}, "m1", at=NOW)  # the same event again
        with pytest.raises(Duplicate):
            announce(uow, "up.41.card", {"n": 2}, "m1", at=NOW)
        with pytest.raises(InvalidValue, match="payload"):
            announce(uow, "up.41.card", {"when": NOW}, "m2", at=NOW)
        with pytest.raises(InvalidValue, match="subject"):
            announce(uow, "up.>", {}, "m3", at=NOW)
        with pytest.raises(InvalidValue, match="msg_id"):
            announce(uow, "up.41.card", {}, "has space", at=NOW)
        uow.commit()
    assert len(outbox_rows(db)) == 1


def test_relay_publishes_in_order_and_marks_after_the_ack(db: Database, bus: InProcessBus) -> None:
    announce_numbers(db, range(12))
    clock = FixedClock(NOW + dt.timedelta(seconds=5))
    relay = Relay(db, bus, clock, batch=5)
    assert relay.run_once().published == 5
    assert relay.drain() == 7
    assert relay.run_once().published == 0
    rows = outbox_rows(db)
    assert all(r.published_at == clock.now() and r.attempts == 1 for r in rows)
    consumer = bus.consumer("HC_UP", "check")
    assert [json.loads(d.data)["n"] for d in consumer.fetch(20, 0)] == list(range(12))


class FlakyBus(InProcessBus):
    """Fails every publish while ``down``; acknowledges only the odd positions when ``half``."""

    down = False
    half = False

    def publish(self, messages: Sequence[Outgoing], *, timeout: float = 5.0) -> list[PubAck | MessagingError]:
        if self.down:
            raise MessagingError("NATS is down")
        results = super().publish(messages, timeout=timeout)
        if self.half:
            return [r if i % 2 else MessagingError("no PubAck in time") for i, r in enumerate(results)]
        return results


def test_relay_keeps_what_was_not_acknowledged(db: Database) -> None:
    bus = FlakyBus()
    bus.ensure_streams()
    announce_numbers(db, range(6))
    relay = Relay(db, bus, FixedClock(NOW))
    bus.down = True
    result = relay.run_once()
    assert (result.published, result.failed) == (0, 6) and "down" in (result.error or "")
    with db.uow() as uow:
        assert pending_count(uow) == 6
    bus.down, bus.half = False, True  # stored, but the even ones' acknowledgements lost
    assert relay.run_once().published == 3
    assert [r.published_at is not None for r in outbox_rows(db)] == [False, True] * 3
    bus.half = False
    result = relay.run_once()  # the rest again: stored already, so duplicates
    assert (result.published, result.duplicates) == (3, 3)
    assert bus.stream_size("HC_UP") == 6
    assert [r.attempts for r in outbox_rows(db)] == [3, 2] * 3


def test_consume_claims_once(db: Database) -> None:
    with db.uow() as uow:
        assert consume(uow, "province-41", "m1", at=NOW)
        assert not consume(uow, "province-41", "m1", at=NOW)
        assert consume(uow, "nation", "m1", at=NOW)  # each consumer has its own inbox
        uow.commit()
    with db.uow() as uow:
        assert not consume(uow, "province-41", "m1", at=NOW)


def test_consume_many_claims_each_new_id_once(db: Database) -> None:
    with db.uow() as uow:
        assert consume(uow, "p", "a", at=NOW)
        assert consume_many(uow, "p", ["b", "a", "c", "b"], at=NOW) == ["b", "c"]
        assert consume_many(uow, "p", ["a", "b", "c"], at=NOW) == []
        uow.commit()


def test_inbox_consumer_processes_each_message_once(db: Database, bus: InProcessBus) -> None:
    announce_numbers(db, range(50))
    Relay(db, bus, FixedClock(NOW)).drain()
    inbox = InboxConsumer(
        db, bus.consumer("HC_UP", "p41", ack_wait=0.05), "p41", record("p41"), FixedClock(NOW)
    )
    assert inbox.poll(30, 0) == 30
    assert inbox.poll(30, 0) == 20
    bus.publish([Outgoing("up.41.4101.test", b'{"n":7}', message_id("test.n", 7))])  # a republish
    assert inbox.poll(30, 0) == 0 and inbox.duplicates == 0  # JetStream-like dedupe dropped it
    assert received_numbers(db, "p41") == list(range(50))


def test_a_failing_message_holds_back_only_itself(db: Database, bus: InProcessBus) -> None:
    announce_numbers(db, range(5))
    Relay(db, bus, FixedClock(NOW)).drain()
    fail = {3}

    def picky(uow: UnitOfWork, message: Announcement) -> None:
        if message.payload["n"] in fail:
            raise ValueError("cannot handle this one yet")
        record("picky")(uow, message)

    inbox = InboxConsumer(db, bus.consumer("HC_UP", "picky", ack_wait=0.05), "picky", picky, FixedClock(NOW))
    with pytest.raises(ValueError):
        inbox.poll(10, 0)
    assert received_numbers(db, "picky") == [0, 1, 2]  # 4 comes back too: it was not acknowledged
    fail.clear()
    time.sleep(0.06)
    assert inbox.poll(10, 1) == 2
    assert received_numbers(db, "picky") == [0, 1, 2, 3, 4]


def test_work_committed_but_not_acknowledged_is_not_done_twice(db: Database, bus: InProcessBus) -> None:
    announce_numbers(db, range(3))
    Relay(db, bus, FixedClock(NOW)).drain()
    consumer = bus.consumer("HC_UP", "crashy", ack_wait=0.05)
    # a consumer that committed its work and died before acknowledging
    for delivery in consumer.fetch(10, 0):
        with db.uow() as uow:
            assert consume(uow, "crashy", delivery.msg_id, at=NOW)
            uow.session.execute(insert(received).values(consumer="crashy", msg_id=delivery.msg_id, n=-1))
            uow.commit()
    time.sleep(0.06)
    successor = InboxConsumer(db, consumer, "crashy", record("crashy"), FixedClock(NOW))
    assert successor.poll(10, 1) == 0 and successor.duplicates == 3
    assert received_numbers(db, "crashy") == [-1, -1, -1]
    assert consumer.fetch(10, 0.1) == []  # acknowledged now


def test_prune(db: Database, bus: InProcessBus) -> None:
    announce_numbers(db, range(3))
    Relay(db, bus, FixedClock(NOW)).drain()
    announce_numbers(db, [99])  # not published: never pruned
    with db.uow() as uow:
        consume(uow, "c", "old", at=NOW)
        consume(uow, "c", "new", at=NOW + dt.timedelta(days=40))
        uow.commit()
    with db.uow() as uow:
        assert prune_outbox(uow, NOW + dt.timedelta(seconds=1)) == 3
        assert prune_inbox(uow, "c", NOW + dt.timedelta(days=31)) == 1
        uow.commit()
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 1
        assert list(session.scalars(select(InboxEntry.msg_id))) == ["new"]
