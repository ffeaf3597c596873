"""The bus over NATS JetStream (nats-py), behind the synchronous :class:`~healthcard.federation.bus.Bus`.

nats-py is asyncio; HealthCard is synchronous (SQLAlchemy sessions, Typer, FastAPI's sync
routes).  A :class:`NatsBus` owns **one event loop in a daemon thread** and one NATS connection
on it; every public method hands a coroutine to that loop
(``asyncio.run_coroutine_threadsafe``) and waits for its result with a deadline.  So any number
of threads (web workers, the relay, consumers) share one connection, none of them ever sees a
coroutine, and a NATS call can never hang a caller past its timeout.  Request handlers
(:meth:`NatsBus.serve`) are synchronous code too: they run on a small thread pool, never on the
loop.

Behaviour:

* The connection is made on first use, not in the constructor: a node starts while NATS is down
  and its relay simply retries.  Once connected, nats-py reconnects by itself for ever
  (``max_reconnect_attempts=-1``), and publishes made while it reconnects are buffered and sent
  when it is back — harmless even when the relay publishes them again, because of the
  ``Nats-Msg-Id`` header.
* Streams (:data:`~healthcard.federation.bus.STREAMS`) are created with file storage, limits
  retention (several consumers — province and nation — read one stream), ``max_age`` and the
  duplicate window; a second ``ensure_streams`` updates them in place.
* Durable pull consumers with explicit acknowledgement, ``max_deliver`` unlimited: a message
  not acknowledged within ``ack_wait`` is delivered again.  ``Delivery.ack`` is sent without
  waiting for the server's confirmation (an ack lost in a crash only means one more delivery,
  which the inbox absorbs).
* Everything nats-py raises comes out as :class:`~healthcard.errors.MessagingError`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import re
import threading
from collections.abc import Coroutine, Iterable, Sequence
from typing import Any, TypeVar

import nats
import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js import errors as js_errors

from healthcard.errors import InvalidValue, MessagingError
from healthcard.federation.bus import (
    STREAMS,
    Consumer,
    Delivery,
    Handler,
    Outgoing,
    PubAck,
    Responder,
    Stream,
    check_msg_id,
    check_subject,
)

#: where a node finds NATS unless ``HEALTHCARD_NATS_URL`` says otherwise
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
MSG_ID = "Nats-Msg-Id"  # JetStream's deduplication header
MAX_BATCH = 2_000  # publishes awaited at once (nats-py holds at most 4,000 pending)
ERROR_HEADER = "HC-Error"  # a responder failed: the name of its exception, no details
_NAMESPACE = re.compile(r"[A-Za-z0-9_-]{1,32}")

T = TypeVar("T")


class NatsBus:
    """A :class:`~healthcard.federation.bus.Bus` over NATS JetStream at ``url``.

    ``namespace`` (letters, digits, ``_``, ``-``) goes in front of stream names
    (``t1_HC_UP``) and subjects (``t1.up.card``) so that tests share one server without
    colliding; the code above the bus never sees it.  ``timeout`` bounds the connection and
    every JetStream API call.
    """

    def __init__(
        self,
        url: str = DEFAULT_NATS_URL,
        *,
        namespace: str = "",
        name: str = "healthcard",
        timeout: float = 5.0,
    ) -> None:
        if namespace and not _NAMESPACE.fullmatch(namespace):
            raise InvalidValue("namespace", "1–32 letters, digits, '_' or '-'")
        self.url = url
        self.namespace = namespace
        self.name = name
        self.timeout = timeout
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._connect_lock: asyncio.Lock | None = None
        self._closed = False
        self._handlers = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="nats-serve")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="nats-bus", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"NatsBus({self.url!r}, namespace={self.namespace!r})"

    # --- the bridge between the caller's thread and the loop -----------------------------------
    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        if self._closed:
            coro.close()
            raise MessagingError("the bus is closed")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        wait = (timeout if timeout is not None else self.timeout) + 1.0  # the coroutine times out first
        try:
            return future.result(wait)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise MessagingError(f"NATS at {self.url} did not answer within {wait:.1f} s") from None
        except (MessagingError, InvalidValue):
            raise
        except Exception as exc:
            raise MessagingError(f"NATS at {self.url}: {type(exc).__name__}: {exc}") from exc

    async def _connection(self) -> tuple[NatsClient, JetStreamContext]:
        if self._connect_lock is None:
            self._connect_lock = asyncio.Lock()
        async with self._connect_lock:
            if self._nc is None or self._nc.is_closed:

                async def quiet(_exc: Exception) -> None:
                    """Disconnections are reported through the calls that fail, not a log flood."""

                try:  # nats-py retries a first connection for ever too: bound it
                    self._nc = await asyncio.wait_for(
                        nats.connect(
                            self.url,
                            name=self.name,
                            connect_timeout=max(1, int(self.timeout)),
                            allow_reconnect=True,
                            max_reconnect_attempts=-1,
                            reconnect_time_wait=1,
                            error_cb=quiet,
                        ),
                        timeout=self.timeout,
                    )
                except Exception as exc:
                    self._nc = None
                    raise MessagingError(f"cannot reach NATS at {self.url}: {type(exc).__name__}") from exc
                self._js = self._nc.jetstream(timeout=self.timeout)
            assert self._js is not None
            return self._nc, self._js

    def connect(self) -> None:
        """Connect now (otherwise the first call does); MessagingError when NATS is unreachable."""
        self._run(self._connection())

    # --- names: the namespace in front -------------------------------------------------------
    def _stream_name(self, name: str) -> str:
        return f"{self.namespace}_{name}" if self.namespace else name

    def _out(self, subject: str) -> str:
        return f"{self.namespace}.{subject}" if self.namespace else subject

    def _in(self, subject: str) -> str:
        prefix = f"{self.namespace}."
        return subject[len(prefix) :] if self.namespace and subject.startswith(prefix) else subject

    def _stream_back(self, name: str) -> str:
        prefix = f"{self.namespace}_"
        return name[len(prefix) :] if self.namespace and name.startswith(prefix) else name

    # --- streams -----------------------------------------------------------------------------
    def ensure_streams(self, streams: Iterable[Stream] = STREAMS) -> None:
        for stream in streams:
            for subject in stream.subjects:
                check_subject(subject, wildcards=True)
            self._run(self._ensure_stream(stream))

    async def _ensure_stream(self, stream: Stream) -> None:
        _nc, js = await self._connection()
        config = js_api.StreamConfig(
            name=self._stream_name(stream.name),
            description=stream.description,
            subjects=[self._out(s) for s in stream.subjects],
            retention=js_api.RetentionPolicy.LIMITS,
            storage=js_api.StorageType.FILE,
            discard=js_api.DiscardPolicy.OLD,
            max_age=stream.max_age_s,
            duplicate_window=stream.duplicate_window_s,
            num_replicas=1,
        )
        try:
            await js.stream_info(config.name or "")
        except js_errors.NotFoundError:
            await js.add_stream(config)
        else:
            await js.update_stream(config)

    def delete_streams(self, streams: Iterable[Stream] = STREAMS) -> None:
        """Remove the streams (tests clean up their namespace with it); absent ones are fine."""
        for stream in streams:
            self._run(self._delete_stream(self._stream_name(stream.name)))

    async def _delete_stream(self, name: str) -> None:
        _nc, js = await self._connection()
        with contextlib.suppress(js_errors.NotFoundError):
            await js.delete_stream(name)

    def stream_size(self, stream: str) -> int:
        """How many messages ``stream`` holds (tests, the reconciliation)."""
        return self._run(self._stream_size(self._stream_name(stream)))

    async def _stream_size(self, name: str) -> int:
        _nc, js = await self._connection()
        info = await js.stream_info(name)
        return int(info.state.messages)

    # --- publishing --------------------------------------------------------------------------
    def publish(self, messages: Sequence[Outgoing], *, timeout: float = 5.0) -> list[PubAck | MessagingError]:
        for message in messages:
            check_subject(message.subject)
            check_msg_id(message.msg_id)
        results: list[PubAck | MessagingError] = []
        for start in range(0, len(messages), MAX_BATCH):
            results += self._run(self._publish(messages[start : start + MAX_BATCH], timeout), timeout)
        return results

    async def _publish(self, messages: Sequence[Outgoing], timeout: float) -> list[PubAck | MessagingError]:
        _nc, js = await self._connection()
        results: list[PubAck | MessagingError | None] = [None] * len(messages)
        waiting: list[tuple[int, asyncio.Future[js_api.PubAck]]] = []
        for i, message in enumerate(messages):  # pipelined: all sent, then all acknowledgements awaited
            try:
                # no wait_stall: asyncio.wait_for would cost a task per message; a batch never fills
                # nats-py's table of pending publishes (4,000) since unanswered ones are cancelled below
                future = await js.publish_async(
                    self._out(message.subject), message.data, headers={MSG_ID: message.msg_id}
                )
            except Exception as exc:
                results[i] = MessagingError(f"{message.subject}: not sent ({type(exc).__name__})")
            else:
                waiting.append((i, future))
        if waiting:
            await asyncio.wait([f for _i, f in waiting], timeout=timeout)
        for i, future in waiting:
            if not future.done():
                future.cancel()  # frees its slot in nats-py's table of pending publishes
                results[i] = MessagingError(f"{messages[i].subject}: not acknowledged within {timeout} s")
            elif future.cancelled() or future.exception() is not None:
                reason = "cancelled" if future.cancelled() else type(future.exception()).__name__
                results[i] = MessagingError(f"{messages[i].subject}: refused ({reason})")
            else:
                ack = future.result()
                results[i] = PubAck(self._stream_back(ack.stream), int(ack.seq), bool(ack.duplicate))
        return [r if r is not None else MessagingError("not sent") for r in results]

    # --- durable pull consumers ----------------------------------------------------------------
    def consumer(
        self, stream: str, durable: str, *, filter_subject: str | None = None, ack_wait: float = 30.0
    ) -> Consumer:
        if filter_subject is not None:
            check_subject(filter_subject, wildcards=True, field_name="filter_subject")
        if not _NAMESPACE.fullmatch(durable):
            raise InvalidValue("durable", "1–32 letters, digits, '_' or '-'")
        sub = self._run(self._pull_subscribe(stream, durable, filter_subject, ack_wait))
        return _NatsConsumer(self, sub)

    async def _pull_subscribe(
        self, stream: str, durable: str, filter_subject: str | None, ack_wait: float
    ) -> JetStreamContext.PullSubscription:
        _nc, js = await self._connection()
        config = js_api.ConsumerConfig(
            durable_name=durable,
            deliver_policy=js_api.DeliverPolicy.ALL,
            ack_policy=js_api.AckPolicy.EXPLICIT,
            ack_wait=ack_wait,
            max_deliver=-1,
            filter_subject=self._out(filter_subject) if filter_subject else None,
        )
        name = self._stream_name(stream)
        try:
            await js.consumer_info(name, durable)
        except js_errors.NotFoundError:
            await js.add_consumer(name, config)
        else:  # the same durable consumer, perhaps with a new ack_wait: update it in place
            await js.add_consumer(name, config)
        return await js.pull_subscribe_bind(durable=durable, stream=name)

    async def _fetch(
        self, sub: JetStreamContext.PullSubscription, batch: int, timeout: float
    ) -> list[Delivery]:
        await self._connection()
        try:
            msgs = await sub.fetch(batch, timeout=timeout)
        except (TimeoutError, nats.errors.TimeoutError):  # nats-py raises either when idle
            return []
        return [self._delivery(msg) for msg in msgs]

    def _delivery(self, msg: Msg) -> Delivery:
        meta = msg.metadata
        loop = self._loop

        def settle(done: bool) -> None:
            if self._closed:
                return  # not acknowledged: delivered again after ack_wait
            future = asyncio.run_coroutine_threadsafe(msg.ack() if done else msg.nak(), loop)
            future.add_done_callback(_swallow)

        return Delivery(
            subject=self._in(msg.subject),
            data=msg.data,
            msg_id=(msg.headers or {}).get(MSG_ID, ""),
            stream_seq=int(meta.sequence.stream),
            delivered=int(meta.num_delivered or 1),
            _settle=settle,
        )

    # --- request / reply ---------------------------------------------------------------------
    def request(self, subject: str, data: bytes, *, timeout: float = 5.0) -> bytes:
        check_subject(subject)
        return self._run(self._request(subject, data, timeout), timeout)

    async def _request(self, subject: str, data: bytes, timeout: float) -> bytes:
        nc, _js = await self._connection()
        try:
            reply = await nc.request(self._out(subject), data, timeout=timeout)
        except nats.errors.NoRespondersError:
            raise MessagingError(f"no responder for {subject}") from None
        except nats.errors.TimeoutError:
            raise MessagingError(f"{subject}: no answer within {timeout} s") from None
        if reply.headers and ERROR_HEADER in reply.headers:
            raise MessagingError(f"{subject}: the responder failed ({reply.headers[ERROR_HEADER]})")
        return reply.data

    def serve(self, subject: str, handler: Handler, *, queue: str | None = None) -> Responder:
        check_subject(subject, wildcards=True)
        sub = self._run(self._serve(subject, handler, queue))
        return _NatsResponder(self, sub)

    async def _serve(self, subject: str, handler: Handler, queue: str | None) -> Any:
        nc, _js = await self._connection()
        loop = asyncio.get_running_loop()

        async def answer(msg: Msg) -> None:
            try:
                reply = await loop.run_in_executor(self._handlers, handler, self._in(msg.subject), msg.data)
            except Exception as exc:
                await nc.publish(msg.reply, b"", headers={ERROR_HEADER: type(exc).__name__})
                return
            await msg.respond(reply)

        async def on_request(msg: Msg) -> None:
            if msg.reply:  # handled concurrently: a slow query does not hold up the next one
                task = loop.create_task(answer(msg))
                task.add_done_callback(_swallow)

        sub = await nc.subscribe(self._out(subject), queue=queue or "", cb=on_request)
        # a round trip to the server: the subscription is registered there before serve()
        # returns, so a request from another connection right after finds its responder
        await nc.flush()
        return sub

    # --- the end -------------------------------------------------------------------------------
    def close(self) -> None:
        """Flush what is pending (acknowledgements too), close the connection, stop the loop."""
        if self._closed:
            return
        try:
            self._run(self._shutdown())
        except MessagingError:
            pass
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            self._handlers.shutdown(wait=False, cancel_futures=True)
            if not self._thread.is_alive():
                self._loop.close()

    async def _shutdown(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._nc.close(), timeout=self.timeout)
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)


def _swallow(future: concurrent.futures.Future[Any] | asyncio.Future[Any]) -> None:
    """Fire-and-forget work (acks, request answers): a failure only means a redelivery or a
    requester's timeout, never a lost message."""
    if not future.cancelled():
        future.exception()


class _NatsConsumer:
    def __init__(self, bus: NatsBus, sub: JetStreamContext.PullSubscription) -> None:
        self._bus, self._sub = bus, sub

    def fetch(self, batch: int = 100, timeout: float = 1.0) -> list[Delivery]:
        return self._bus._run(self._bus._fetch(self._sub, batch, timeout), timeout)

    def close(self) -> None:
        with contextlib.suppress(MessagingError):
            self._bus._run(self._sub.unsubscribe())


class _NatsResponder:
    def __init__(self, bus: NatsBus, sub: Any) -> None:
        self._bus, self._sub = bus, sub

    def close(self) -> None:
        with contextlib.suppress(MessagingError):
            self._bus._run(self._sub.unsubscribe())
