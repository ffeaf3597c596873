"""The local reader agent in tests: on a real uvicorn beside the platform, with the hospital's
workstation SAM and the resident's card in a simulated slot — as a clinic console or a kiosk
page finds it on its workstation."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import httpx
import uvicorn

from healthcard.agent import Agent, SamSlot, SimulatedSlot, create_app

from .platform_fixtures import Platform, free_port, served

#: the origin the agent allows by default: the platform's pages on :8000
CONSOLE = "http://127.0.0.1:8000"


@contextmanager
def agent_served(
    agent: Agent, *, origins: Sequence[str] = (CONSOLE,), port: int | None = None
) -> Iterator[httpx.Client]:
    """The agent on a real uvicorn (127.0.0.1, ``port`` or a free one), and a client that calls
    it the way a page does: with the first allowed Origin."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(agent, list(origins)), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the agent's uvicorn did not start")
        time.sleep(0.02)
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Origin": origins[0]}, timeout=30
        ) as http:
            yield http
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        agent.close()


def workstation(platform: Platform, url: str | None) -> Agent:
    """The hospital's workstation: the resident's card in slot ``sim-1``, the registered SAM."""
    return Agent(
        readers=[SimulatedSlot("sim-1", platform.chip)],
        sam=SamSlot.from_image(platform.sam, "sam-hospital"),
        clock=platform.clock,
        platform_url=url,
        trust=platform.key_centre.trust_store(),
    )


@contextmanager
def console(
    platform: Platform, make_agent: Callable[[str], Agent] | None = None
) -> Iterator[tuple[str, httpx.Client]]:
    """The platform and a workstation's agent that know each other: the platform's pages allow
    the agent's origin (CSP) and the agent allows the pages' origin.  Yields the platform's base
    URL and a client of the agent.  ``make_agent(platform_url)``: another workstation than
    :func:`workstation`'s (a kiosk's)."""
    web_port, agent_port = free_port(), free_port()
    base = f"http://127.0.0.1:{web_port}"
    build = make_agent or (lambda url: workstation(platform, url))
    with (
        served(platform.app, web_port, agent_url=f"http://127.0.0.1:{agent_port}"),
        agent_served(build(base), origins=[base], port=agent_port) as http,
    ):
        yield base, http
