"""The local reader agent through a real pcscd with vsmartcard-vpcd: the demo card in
``Virtual PCD 00 00``, the demo SAM in ``Virtual PCD 00 01`` (``--sam-reader``).  Under CI=true
these fail rather than skip when pcscd cannot be had (the ``pcsc`` fixture)."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient

from healthcard.agent import Agent, SamSlot, create_app
from healthcard.card.cos import CardOS
from healthcard.card.sam import SamOS
from healthcard.demo import demo_sam, demo_trust, issue_demo_card

pytestmark = pytest.mark.pcsc

USER_READER = "Virtual PCD 00 00"
SAM_READER = "Virtual PCD 00 01"
VISIT = {
    "JZJGMC": "郑州市中心医院",
    "JZRQSJ": "20261123100000",
    "MZH": "MZ7",
    "MZZDMC1": "高血压",
    "MZZDDM1": "I10",
}


class Clock:
    def now(self) -> dt.datetime:
        return dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)


def test_the_agent_lists_the_vpcd_reader_and_swipes_and_writes_through_pcsc(vpcd) -> None:
    card = CardOS(issue_demo_card())
    vpcd(card, 35963)
    vpcd(SamOS(demo_sam()), 35964)
    agent = Agent(
        sam=SamSlot.from_reader(SAM_READER, timeout=5.0),
        clock=Clock(),
        trust=demo_trust(),
        pcsc=True,
        pcsc_timeout=5.0,
    )
    with TestClient(create_app(agent), base_url="http://127.0.0.1:7700") as client:
        readers = client.get("/readers").json()
        assert {"name": USER_READER, "kind": "pcsc", "card_present": True, "busy": False} in readers
        assert SAM_READER not in [r["name"] for r in readers]  # the SAM's reader is not a card slot
        status = client.get("/status").json()
        assert status["pcsc"] == {"enabled": True, "error": None}
        assert status["sam"]["source"] == "pcsc" and status["sam"]["present"] is True
        assert len(status["sam"]["subject"]) == 16

        swiped = client.post("/swipe", json={"reader": USER_READER})
        assert swiped.status_code == 200, swiped.text
        assert swiped.json()["card"]["holder"]["name"] == "张三"
        assert swiped.json()["card"]["chip_serial"] == card.state.serial.hex().upper()

        written = client.post("/write/outpatient", json={"reader": USER_READER, "values": VISIT})
        assert written.status_code == 200, written.text
        assert written.json()["slot"] == 1 and written.json()["verification"]["verified"] is True
        visits = client.post("/swipe", json={}).json()["card"][
            "recent_visits"
        ]  # the first reader with a card
        assert [v["outpatient_no"] for v in visits] == ["MZ7"]
        # the PIN over PC/SC: the demo card has none
        assert client.post("/pin", json={"reader": USER_READER, "pin": "123456"}).json()["code"] == "no-pin"
