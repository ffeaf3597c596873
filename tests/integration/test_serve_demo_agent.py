"""``make run`` gives a working clinic console and kiosk out of the box: the real ``healthcard
serve --demo`` (a subprocess, SQLite in a scratch data directory, free ports) seeds a small city
and serves, in the same process, the reader agents of the demo hospital's workstation and of its
self-service kiosk — the workstation's agent answers with the demo residents' cards in its
slots and a swipe reaches the platform logged in with the SAM; the kiosk's agent logs the kiosk
resident in with the demo PIN; the pages are told where the agents are."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from healthcard.platform import democity

from .platform_fixtures import free_port

pytestmark = pytest.mark.slow

#: seeding 20 residents and starting take ~15 s here; generous for a slow machine
START_SECONDS = 180


@dataclass
class Served:
    base: str
    agent: str
    kiosk_agent: str
    output: Path


def _ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("serve-demo")
    port, agent_port, kiosk_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHCARD_")}
    env["HEALTHCARD_DATA_DIR"] = str(folder / "data")
    output = folder / "serve.log"
    command = [
        str(Path(sys.executable).with_name("healthcard")),
        "serve",
        "--demo",
        "--residents",
        "20",
        "--port",
        str(port),
        "--agent-port",
        str(agent_port),
        "--kiosk-agent-port",
        str(kiosk_port),
        "--log-level",
        "warning",
    ]
    with output.open("w") as log:
        process = subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_SECONDS
        while not _ready(f"{base}/health"):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"healthcard serve --demo did not start:\n{output.read_text()[-3000:]}")
            time.sleep(0.5)
        yield Served(base, f"http://127.0.0.1:{agent_port}", f"http://127.0.0.1:{kiosk_port}", output)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def test_the_workstation_agent_holds_the_demo_cards_and_swipes_at_the_platform(served: Served) -> None:
    origin = {"Origin": served.base}
    status = httpx.get(f"{served.agent}/status", headers=origin, timeout=10)
    assert status.status_code == 200, status.text
    body = status.json()
    assert body["card_present"] and len(body["readers"]) == 3
    assert body["sam"]["present"] and body["platform"]["url"] == served.base
    assert status.headers["access-control-allow-origin"] == served.base
    reader = body["readers"][1]["name"]  # the demo adult
    swipe = httpx.post(f"{served.agent}/swipe", json={"reader": reader}, headers=origin, timeout=30)
    assert swipe.status_code == 200, swipe.text
    answer = swipe.json()
    assert answer["platform"]["ok"], answer["platform"]
    assert answer["platform"]["answer"]["card_number"] == answer["card"]["card_number"] == reader[4:]
    assert httpx.get(f"{served.agent}/status", timeout=10).json()["platform"]["logged_in"]
    # another site's page may not use it
    assert httpx.get(f"{served.agent}/status", headers={"Origin": "http://evil.example"}).status_code == 403


def test_the_kiosk_agent_logs_the_kiosk_resident_in_with_the_demo_pin(served: Served) -> None:
    origin = {"Origin": served.base}
    status = httpx.get(f"{served.kiosk_agent}/status", headers=origin, timeout=10).json()
    assert status["card_present"] and len(status["readers"]) == 1
    login = httpx.post(
        f"{served.kiosk_agent}/login", json={"pin": democity.KIOSK_PIN}, headers=origin, timeout=30
    )
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    me = httpx.get(f"{served.base}/v1/auth/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert me.status_code == 200 and me.json()["carrier"] == "card"


def test_the_pages_call_their_agents_and_the_logins_say_where(served: Served) -> None:
    kiosk = httpx.get(f"{served.base}/kiosk", timeout=10)
    assert kiosk.status_code == 200
    assert f'data-agent="{served.kiosk_agent}"' in kiosk.text
    assert served.kiosk_agent in kiosk.headers["content-security-policy"]
    text = served.output.read_text()
    assert f"reader agent {served.agent}" in re.sub(r"\s+", " ", text)
    assert f"PIN {democity.KIOSK_PIN}" in text
