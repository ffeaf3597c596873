"""One transport interface to a card (STYLE.md habit 9).

``Transport.transmit`` does the tracing once; each concrete transport implements only
``_exchange(raw) -> raw`` (and ``connect``/``disconnect``).  Transports:

* :class:`SimulatorTransport` — a :class:`~healthcard.card.cos.CardOS` in this process (default);
* :class:`healthcard.terminal.pcsc.PcscTransport` — a real reader through pcscd and pyscard;
* the vpcd bridge (:mod:`healthcard.terminal.vpcd`) is the other way round: it serves a
  simulated card *to* pcscd, so any PC/SC program (ours through ``PcscTransport``) sees it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from healthcard.card.apdu import CommandAPDU, ResponseAPDU
from healthcard.card.cos import CardOS


@dataclass
class Exchange:
    """One traced command/response pair."""

    command: bytes
    response: bytes
    seconds: float

    @property
    def sw(self) -> int:
        return int.from_bytes(self.response[-2:], "big")


@dataclass
class Trace:
    """Every APDU that went through a transport, countable."""

    exchanges: list[Exchange] = field(default_factory=list)
    enabled: bool = True

    @property
    def count(self) -> int:
        return len(self.exchanges)

    @property
    def bytes_out(self) -> int:
        return sum(len(e.command) for e in self.exchanges)

    @property
    def bytes_in(self) -> int:
        return sum(len(e.response) for e in self.exchanges)

    def clear(self) -> None:
        self.exchanges.clear()


class Transport:
    """Base class: a link to one card."""

    name = "transport"

    def __init__(self) -> None:
        self.trace = Trace()
        self.listeners: list[Callable[[Exchange], None]] = []
        self.atr = b""

    def connect(self) -> bytes:
        """Power the card up; returns the ATR."""
        raise NotImplementedError

    def disconnect(self) -> None:
        """Release the card."""

    def _exchange(self, raw: bytes) -> bytes:
        raise NotImplementedError

    def transmit(self, command: CommandAPDU | bytes) -> ResponseAPDU:
        raw = command.to_bytes() if isinstance(command, CommandAPDU) else bytes(command)
        start = time.perf_counter()
        response = self._exchange(raw)
        if self.trace.enabled or self.listeners:
            exchange = Exchange(raw, response, time.perf_counter() - start)
            if self.trace.enabled:
                self.trace.exchanges.append(exchange)
            for listener in self.listeners:
                listener(exchange)
        return ResponseAPDU.parse(response)

    def __enter__(self) -> Transport:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()


class SimulatorTransport(Transport):
    """A simulated card in this process."""

    name = "simulator"

    def __init__(self, card: CardOS) -> None:
        super().__init__()
        self.card = card

    def connect(self) -> bytes:
        self.atr = self.card.power_on()
        return self.atr

    def _exchange(self, raw: bytes) -> bytes:
        return self.card.process(raw)
