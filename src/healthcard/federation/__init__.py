"""Messaging between platform nodes (city, province, nation): the transactional outbox, the
idempotent consumer's inbox, and the bus — NATS JetStream, or in-process for the embedded
default.  docs/federation.md tells the whole story; in short:

* a use case announces in its own transaction: :func:`announce` (with :func:`message_id`);
* a :class:`Relay` per node database publishes the outbox through the :class:`Bus`;
* a consumer is an :class:`InboxConsumer` over ``bus.consumer(stream, durable)``, whose handler
  runs in the transaction that records the message in the inbox (:func:`consume`,
  :func:`consume_many`);
* queries between nodes are ``bus.request`` / ``bus.serve`` (not stored, not via the outbox).

Only the composition root picks the bus: :func:`open_bus` (a NATS URL → :class:`NatsBus`,
none → :class:`InProcessBus`).
"""

from __future__ import annotations

import threading

from healthcard.federation.bus import (
    DOWN,
    STREAMS,
    UP,
    Bus,
    Consumer,
    Delivery,
    Handler,
    InProcessBus,
    Outgoing,
    PubAck,
    Responder,
    Stream,
    subject_matches,
)
from healthcard.federation.outbox import (
    Announcement,
    InboxConsumer,
    InboxHandler,
    Relay,
    RelayRound,
    announce,
    consume,
    consume_many,
    encode,
    message_id,
    pending_count,
    prune_inbox,
    prune_outbox,
)

#: the one in-process bus of this process, by namespace (:func:`open_bus` without a NATS URL)
_PROCESS_BUSES: dict[str, InProcessBus] = {}
_PROCESS_LOCK = threading.Lock()


def open_bus(nats_url: str | None, *, namespace: str = "") -> Bus:
    """The bus of a node: NATS JetStream at ``nats_url`` (``HEALTHCARD_NATS_URL``), or the
    in-process bus when there is none (the embedded default).  The in-process bus is one per
    process (and namespace), so the city, province and national nodes that ``make run`` starts
    in one process talk over the same bus.  The streams are ensured on first use by whoever
    publishes or consumes (``bus.ensure_streams()``)."""
    if nats_url:
        from healthcard.federation.natsbus import NatsBus  # nats-py only where NATS is used

        return NatsBus(nats_url, namespace=namespace)
    with _PROCESS_LOCK:
        bus = _PROCESS_BUSES.get(namespace)
        if bus is None or bus.closed:
            bus = _PROCESS_BUSES[namespace] = InProcessBus(namespace=namespace)
        return bus


__all__ = [
    "DOWN",
    "STREAMS",
    "UP",
    "Announcement",
    "Bus",
    "Consumer",
    "Delivery",
    "Handler",
    "InProcessBus",
    "InboxConsumer",
    "InboxHandler",
    "Outgoing",
    "PubAck",
    "Relay",
    "RelayRound",
    "Responder",
    "Stream",
    "announce",
    "consume",
    "consume_many",
    "encode",
    "message_id",
    "open_bus",
    "pending_count",
    "prune_inbox",
    "prune_outbox",
    "subject_matches",
]
