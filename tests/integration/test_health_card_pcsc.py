"""The demo health card and SAM, bridged into pcscd: what a PC/SC program really sees.

Each test goes through pyscard → pcscd → vsmartcard-vpcd → the bridge → CardOS.
"""

from __future__ import annotations

import datetime as dt
import subprocess

import pytest

from healthcard.card.cos import CardOS
from healthcard.card.sam import SamOS
from healthcard.demo import demo_sam, issue_demo_card
from healthcard.terminal.pcsc import PcscTransport
from healthcard.terminal.records import Diagnosis, Fee, OutpatientRecord
from healthcard.terminal.sdk import HealthCardTerminal

pytestmark = pytest.mark.pcsc

# shared/vectors/apdu-shapes.txt, with the demo card's own values where the vector says <...>
SHAPES = [
    ("00A4000002DDF1", "6F10840C57532E5359532E4444463031A500", 0x9000),
    ("00A4000002EF05", "", 0x9000),
    ("00B2080014", "0812" + b"410102199003070019".hex().upper(), 0x9000),
    ("00B2390005", "3903410100", 0x9000),
    ("00B2010003", "010131", 0x9000),
    ("00A4000002DF01", "6F088406915600013200", 0x9000),
    ("00A4000002DF02", "6F088406915600013201", 0x9000),
    ("00A4000002DF03", "6F088406915600013202", 0x9000),
]


def test_reading_ddf1_ef05_by_identifier_gives_the_published_shapes(vpcd) -> None:
    card = CardOS(issue_demo_card())
    vpcd(card, 35963)
    with PcscTransport("Virtual PCD 00 00", timeout=10) as reader:
        for command, data, sw in SHAPES:
            response = reader.transmit(bytes.fromhex(command))
            assert (response.data.hex().upper(), response.sw) == (data, sw), command
        challenge = reader.transmit(bytes.fromhex("0084000008"))
        assert len(challenge.data) == 8 and challenge.sw == 0x9000


def test_a_terminal_swipes_and_writes_through_two_pcsc_readers(vpcd) -> None:
    card = CardOS(issue_demo_card())
    vpcd(card, 35963)
    vpcd(SamOS(demo_sam()), 35964)
    card_reader = PcscTransport("Virtual PCD 00 00", timeout=10)
    sam_reader = PcscTransport("Virtual PCD 00 01", timeout=10)
    with HealthCardTerminal(card_reader, sam_reader) as terminal:
        record = OutpatientRecord(
            institution_name="郑州市中心医院",
            institution_code="41010001X",
            visit_time=dt.datetime(2026, 11, 23, 10, 0),
            outpatient_no="MZ1",
            department="内科",
            diagnoses=[Diagnosis("发热", "R50", dt.date(2026, 11, 23), "上呼吸道感染", "J06.9")],
            fees=[Fee("诊查费", "1", 2500)],
        )
        slot = terminal.write_outpatient_record(record)
        summary = terminal.swipe()
    assert summary.holder.name == "张三"
    assert summary.alerts.present == ["diabetes"]
    assert [r.outpatient_no for r in summary.outpatient] == ["MZ1"]
    assert summary.outpatient[0].total_fen == 2500
    assert slot == 1
    # the write really reached the card behind pcscd
    assert card.state.mf.walk()[1].name == b"WS.SYS.DDF01"
    assert card_reader.trace.count <= 60  # swipe + write, every APDU traced


def test_pcsc_scan_sees_the_health_card_atr(vpcd) -> None:
    card = CardOS(issue_demo_card())
    vpcd(card, 35963)
    out = subprocess.run(
        ["timeout", "6", "pcsc_scan", "-n"], capture_output=True, text=True, check=False
    ).stdout
    atr = " ".join(f"{b:02X}" for b in card.state.atr)
    assert atr in out
