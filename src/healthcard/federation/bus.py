"""The bus between platform nodes: what a node may ask of it, the streams it keeps, and the
embedded in-process bus.

A node never talks to NATS directly.  It asks a :class:`Bus` for four things, all synchronous
(the rest of the code base is synchronous; :class:`~healthcard.federation.natsbus.NatsBus` hides
its asyncio loop in a thread of its own):

* ``ensure_streams`` — make the durable streams exist with their subjects (idempotent);
* ``publish`` — put a batch of messages on their streams and wait for the bus to acknowledge
  each one (JetStream's PubAck: the message is stored).  Each message carries a ``msg_id``;
  a second publish of the same id within the stream's duplicate window is stored once.
  Only the outbox relay publishes (:mod:`healthcard.federation.outbox`): a node's use cases
  *announce* into their own transaction instead;
* ``consumer`` — a durable pull consumer on a stream: ``fetch`` hands out messages, each must be
  ``ack``-ed once its work is committed; one not acknowledged within ``ack_wait`` seconds (the
  consumer crashed, hung or was killed) is handed out again, to this consumer or its successor
  under the same durable name;
* ``request`` / ``serve`` — request/reply for queries between nodes (not stored: a node that is
  down does not answer, the asker gets :class:`~healthcard.errors.MessagingError`).

Subjects are dot-separated tokens; ``*`` matches one token and ``>`` the rest, as in NATS.  A
bus may be given a ``namespace``: it is put in front of every stream name and subject it sends
and taken off every subject it hands back, so several tests (or several demo platforms) share
one NATS server without seeing each other, while the code above the bus never knows.

The streams (:data:`STREAMS`):

========  ============  ==========================================================================
stream    subjects      what flows
========  ============  ==========================================================================
HC_UP     ``up.>``      index updates flowing upward, city → province → nation: a new card, a
                        card's status change, a new record pointer
HC_DOWN   ``down.>``    deltas flowing downward, nation → province → city: the hot list
HC_X      ``x.>``       between cities: a visit of a resident of another city (its pointer home)
========  ============  ==========================================================================
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from healthcard.errors import InvalidValue, MessagingError


@dataclass(frozen=True)
class Stream:
    """A durable stream: its name, the subjects it stores, how long it keeps a message (a node
    down for longer than ``max_age_s`` cannot catch up from the stream and needs the
    reconciliation) and the window in which a repeated ``msg_id`` is stored only once."""

    name: str
    subjects: tuple[str, ...]
    description: str
    max_age_s: float = 30 * 86_400.0
    duplicate_window_s: float = 120.0


#: index updates flowing upward (city → province → nation)
UP = Stream(
    "HC_UP",
    ("up.>",),
    "index updates flowing upward, city → province → nation: new card, status change, new record pointer",
)
#: hot-list deltas flowing downward (nation → province → city)
DOWN = Stream("HC_DOWN", ("down.>",), "deltas flowing downward, nation → province → city: the hot list")
#: between cities: a visit of a resident of another city, its pointer for the home city
CROSS = Stream("HC_X", ("x.>",), "between cities: a visit of a resident of another city")
STREAMS: tuple[Stream, ...] = (UP, DOWN, CROSS)


@dataclass(frozen=True)
class Outgoing:
    """A message to publish: its subject, its bytes and its id (the deduplication key)."""

    subject: str
    data: bytes
    msg_id: str


@dataclass(frozen=True)
class PubAck:
    """The bus stored the message: in ``stream`` at ``seq``; ``duplicate`` when it had it already
    (the same ``msg_id`` within the duplicate window — stored once, acknowledged again)."""

    stream: str
    seq: int
    duplicate: bool = False


@dataclass(frozen=True)
class Delivery:
    """A stored message handed to a durable consumer.  ``delivered`` counts the hand-outs (2 or
    more: an earlier one was not acknowledged in time).  Call :meth:`ack` only after the work it
    caused is committed (see :class:`~healthcard.federation.outbox.InboxConsumer`)."""

    subject: str
    data: bytes
    msg_id: str
    stream_seq: int
    delivered: int
    _settle: Callable[[bool], None] = field(repr=False, compare=False)

    def ack(self) -> None:
        """Done with it: the bus will not hand it out again."""
        self._settle(True)

    def nak(self) -> None:
        """Not done (the work failed): hand it out again now rather than after ``ack_wait``."""
        self._settle(False)


#: a request handler: (subject, request bytes) → reply bytes.  A handler answers refusals in its
#: own reply format; an exception is a bug, which the asker sees as a MessagingError.
Handler = Callable[[str, bytes], bytes]


class Consumer(Protocol):
    """A durable pull consumer (its position and unacknowledged messages outlive it)."""

    def fetch(self, batch: int = 100, timeout: float = 1.0) -> list[Delivery]:
        """Up to ``batch`` messages; waits at most ``timeout`` seconds for the first one
        (``[]`` when none came).  Raises MessagingError when the bus cannot be reached."""
        ...

    def close(self) -> None:
        """Stop fetching here; the durable consumer stays on the bus for its successor."""
        ...


class Responder(Protocol):
    def close(self) -> None:
        """Stop answering."""
        ...


class Bus(Protocol):
    """What a node may ask of the bus between nodes (module docstring)."""

    def ensure_streams(self, streams: Iterable[Stream] = STREAMS) -> None: ...

    def publish(self, messages: Sequence[Outgoing], *, timeout: float = 5.0) -> list[PubAck | MessagingError]:
        """Publish ``messages`` (pipelined) and wait up to ``timeout`` seconds for their
        acknowledgements: one result per message, in order — a PubAck, or the MessagingError
        that says why that one is not known to be stored (publish it again later: same id)."""
        ...

    def consumer(
        self, stream: str, durable: str, *, filter_subject: str | None = None, ack_wait: float = 30.0
    ) -> Consumer:
        """The durable consumer ``durable`` of ``stream`` (created when new), handed only the
        subjects matching ``filter_subject`` (all when None).  Asked for again with another
        filter or ``ack_wait``, it is updated in place (its position and pending messages stay)."""
        ...

    def request(self, subject: str, data: bytes, *, timeout: float = 5.0) -> bytes: ...

    def serve(self, subject: str, handler: Handler, *, queue: str | None = None) -> Responder:
        """Answer requests on ``subject`` (wildcards allowed) with ``handler``; responders sharing
        a ``queue`` name split the requests between them."""
        ...

    def close(self) -> None: ...


# --- subjects --------------------------------------------------------------------------------------
def check_subject(subject: str, *, wildcards: bool = False, field_name: str = "subject") -> str:
    """``subject`` if it is a valid NATS subject (non-empty dot-separated tokens, no white space;
    ``*`` / a final ``>`` only where ``wildcards``), else InvalidValue."""
    tokens = subject.split(".")
    bad = not subject or any(not t or any(c.isspace() for c in t) for t in tokens)
    for i, token in enumerate(tokens):
        if token == ">":
            bad = bad or not wildcards or i != len(tokens) - 1
        elif token == "*":
            bad = bad or not wildcards
        else:
            bad = bad or "*" in token or ">" in token
    if bad:
        raise InvalidValue(field_name, f"{subject!r} is not a NATS subject")
    return subject


def subject_matches(pattern: str, subject: str) -> bool:
    """Does ``subject`` match ``pattern`` (``*`` one token, a final ``>`` one or more)?"""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)


def check_msg_id(msg_id: str) -> str:
    if not msg_id or len(msg_id) > 128 or any(c.isspace() for c in msg_id) or not msg_id.isascii():
        raise InvalidValue("msg_id", "1–128 printable ASCII characters, no spaces")
    return msg_id


# --- the in-process bus ----------------------------------------------------------------------------
@dataclass
class _Stored:
    seq: int
    subject: str
    data: bytes
    msg_id: str


@dataclass
class _StreamState:
    stream: Stream
    messages: list[_Stored] = field(default_factory=list)
    seen: dict[str, tuple[int, float]] = field(default_factory=dict)  # msg_id → (seq, when, monotonic)


@dataclass
class _ConsumerState:
    filter_subject: str | None
    ack_wait: float
    position: int = 0  # index in the stream of the next message never handed out
    pending: dict[int, tuple[float, int]] = field(default_factory=dict)  # seq → (deadline, deliveries)


class InProcessBus:
    """The embedded default (``make run``): every node of the platform in one process.

    Streams are kept in memory for the life of the process, with the same rules as JetStream:
    subjects bound to streams, a duplicate window per ``msg_id``, durable pull consumers that
    hand a message out again when it is not acknowledged within ``ack_wait``, request/reply.
    What it cannot give is durability across a restart: messages published but not yet consumed
    when the process stops are gone (the outbox has marked them published).  That is the
    embedded demo's trade; a platform of separate nodes runs :class:`NatsBus`.
    Thread-safe: one lock, consumers wait on its condition.
    """

    def __init__(self, *, namespace: str = "") -> None:
        # the namespace only separates buses that share a server; in one process it changes nothing
        self.namespace = namespace
        self._lock = threading.Condition()
        self._streams: dict[str, _StreamState] = {}
        self._consumers: dict[tuple[str, str], _ConsumerState] = {}
        self._responders: list[tuple[str, str | None, Handler, object]] = []
        self._turn = itertools.count()
        self._closed = False

    # streams and publishing
    def ensure_streams(self, streams: Iterable[Stream] = STREAMS) -> None:
        with self._lock:
            for stream in streams:
                for subject in stream.subjects:
                    check_subject(subject, wildcards=True)
                    for other in self._streams.values():
                        if other.stream.name != stream.name and any(
                            subject_matches(s, subject) or subject_matches(subject, s)
                            for s in other.stream.subjects
                        ):
                            raise MessagingError(f"subjects {subject} overlap stream {other.stream.name}")
                state = self._streams.get(stream.name)
                if state is None:
                    self._streams[stream.name] = _StreamState(stream)
                else:
                    state.stream = stream

    def _stream_for(self, subject: str) -> _StreamState | None:
        for state in self._streams.values():
            if any(subject_matches(pattern, subject) for pattern in state.stream.subjects):
                return state
        return None

    def publish(self, messages: Sequence[Outgoing], *, timeout: float = 5.0) -> list[PubAck | MessagingError]:
        results: list[PubAck | MessagingError] = []
        with self._lock:
            self._check_open()
            now = time.monotonic()
            for message in messages:
                check_subject(message.subject)
                check_msg_id(message.msg_id)
                state = self._stream_for(message.subject)
                if state is None:
                    results.append(MessagingError(f"no stream takes the subject {message.subject}"))
                    continue
                window = state.stream.duplicate_window_s
                seen = state.seen.get(message.msg_id)
                if seen is not None and now - seen[1] < window:
                    results.append(PubAck(state.stream.name, seen[0], duplicate=True))
                    continue
                seq = len(state.messages) + 1
                state.messages.append(_Stored(seq, message.subject, message.data, message.msg_id))
                state.seen[message.msg_id] = (seq, now)
                if len(state.seen) > 4096:  # forget ids that fell out of the window
                    state.seen = {k: v for k, v in state.seen.items() if now - v[1] < window}
                results.append(PubAck(state.stream.name, seq))
            self._lock.notify_all()
        return results

    def stream_size(self, stream: str) -> int:
        """How many messages ``stream`` holds (tests, the reconciliation)."""
        with self._lock:
            return len(self._streams[stream].messages)

    # durable consumers
    def consumer(
        self, stream: str, durable: str, *, filter_subject: str | None = None, ack_wait: float = 30.0
    ) -> Consumer:
        if filter_subject is not None:
            check_subject(filter_subject, wildcards=True, field_name="filter_subject")
        with self._lock:
            self._check_open()
            if stream not in self._streams:
                raise MessagingError(f"no stream {stream}")
            key = (stream, durable)
            state = self._consumers.get(key)
            if state is None:
                state = self._consumers[key] = _ConsumerState(filter_subject, ack_wait)
            # as JetStream: a durable consumer asked for again with a new filter or ack_wait is
            # updated in place (its position and unacknowledged messages stay)
            state.filter_subject, state.ack_wait = filter_subject, ack_wait
        return _InProcessConsumer(self, stream, durable)

    def _fetch(self, stream: str, durable: str, batch: int, timeout: float) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                self._check_open()
                state, messages = self._consumers[(stream, durable)], self._streams[stream].messages
                now = time.monotonic()
                out: list[Delivery] = []
                for seq in sorted(s for s, (due, _n) in state.pending.items() if due <= now):
                    if len(out) == batch:
                        break
                    out.append(self._hand_out(stream, durable, state, messages[seq - 1], now))
                while len(out) < batch and state.position < len(messages):
                    stored = messages[state.position]
                    state.position += 1
                    if state.filter_subject is None or subject_matches(state.filter_subject, stored.subject):
                        out.append(self._hand_out(stream, durable, state, stored, now))
                if out:
                    return out
                wait = deadline - now
                if wait <= 0:
                    return []
                if state.pending:  # wake up when the first unacknowledged one falls due
                    wait = min(wait, max(0.0, min(due for due, _n in state.pending.values()) - now))
                self._lock.wait(max(wait, 0.001))

    def _hand_out(
        self, stream: str, durable: str, state: _ConsumerState, stored: _Stored, now: float
    ) -> Delivery:
        count = state.pending.get(stored.seq, (0.0, 0))[1] + 1
        state.pending[stored.seq] = (now + state.ack_wait, count)

        def settle(done: bool, seq: int = stored.seq) -> None:
            with self._lock:
                if done:
                    state.pending.pop(seq, None)
                elif seq in state.pending:
                    state.pending[seq] = (time.monotonic(), state.pending[seq][1])
                    self._lock.notify_all()

        return Delivery(stored.subject, stored.data, stored.msg_id, stored.seq, count, settle)

    # request / reply
    def request(self, subject: str, data: bytes, *, timeout: float = 5.0) -> bytes:
        check_subject(subject)
        with self._lock:
            self._check_open()
            matching = [r for r in self._responders if subject_matches(r[0], subject)]
            if not matching:
                raise MessagingError(f"no responder for {subject}")
            # NATS asks every matching responder (one per queue group) and takes the first reply;
            # in one process the replies would be the same, so one responder answers, in turn
            handler = matching[next(self._turn) % len(matching)][2]
        try:
            return handler(subject, data)
        except Exception as exc:
            raise MessagingError(f"{subject}: the responder failed ({type(exc).__name__})") from exc

    def serve(self, subject: str, handler: Handler, *, queue: str | None = None) -> Responder:
        check_subject(subject, wildcards=True)
        token = object()
        with self._lock:
            self._check_open()
            self._responders.append((subject, queue, handler, token))

        return _InProcessResponder(self, token)

    def _unserve(self, token: object) -> None:
        with self._lock:
            self._responders = [r for r in self._responders if r[3] is not token]

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    def _check_open(self) -> None:
        if self._closed:
            raise MessagingError("the bus is closed")


class _InProcessConsumer:
    def __init__(self, bus: InProcessBus, stream: str, durable: str) -> None:
        self._bus, self._stream, self._durable = bus, stream, durable

    def fetch(self, batch: int = 100, timeout: float = 1.0) -> list[Delivery]:
        return self._bus._fetch(self._stream, self._durable, batch, timeout)

    def close(self) -> None:
        pass


class _InProcessResponder:
    def __init__(self, bus: InProcessBus, token: object) -> None:
        self._bus, self._token = bus, token

    def close(self) -> None:
        self._bus._unserve(self._token)
