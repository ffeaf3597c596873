"""An inpatient stay lands on the card, end to end over HTTP (a real uvicorn) on SQLite and
PostgreSQL: the card is swiped on the ward, the surgeon records an appendectomy stay at the county
hospital, the cashier settles it with the NCMS at discharge, and the terminal writes the DF03/EE
(住院信息) record the platform gives it — the settlement's fee lines, 住院总费用 and the category
totals, payment method 03 (新农合) — to an EE file, signed by its SAM, and reads it back.  The
close records that EE file; an ED-only slot is refused for a stay."""

from __future__ import annotations

import datetime as dt

import httpx

from healthcard.clock import SHANGHAI, local_date
from healthcard.platform.records import EE_TOTALS
from healthcard.platform.settlement import ledger
from healthcard.storage import tables as t
from healthcard.terminal.platform import PlatformClient

from .platform_fixtures import CARD, HOSPITAL, Platform, insured_here, served
from .test_visit_flow import count, login

STAY_DAYS = 5
#: the stay's bill: an appendectomy, five days of bed and nursing, antibiotics, drips, infusion
#: sets — by catalog kind (docs/settlement.md §4) services are 诊疗费 (6), even the bed: the demo
#: catalog has no 床位费 of its own; drugs 西药费 (3), materials 其他费用 (9)
BILL = [
    {"item": "FW0501", "quantity": 1, "unit_price_fen": 120_000},  # 阑尾切除术
    {"item": "FW0401", "quantity": STAY_DAYS, "unit_price_fen": 2_500},  # 普通病房床位费
    {"item": "FW0402", "quantity": STAY_DAYS, "unit_price_fen": 1_800},  # 一级护理
    {"item": "YP0011", "quantity": 6, "unit_price_fen": 1_860},  # 头孢曲松钠注射剂
    {"item": "YP0009", "quantity": 10, "unit_price_fen": 350},  # 0.9%氯化钠注射液
    {"item": "CL0001", "quantity": 6, "unit_price_fen": 250},  # 一次性输液器
]
TOTAL = 120_000 + 5 * 2_500 + 5 * 1_800 + 6 * 1_860 + 10 * 350 + 6 * 250  # 157 660 fen


def test_a_settled_stay_is_written_to_an_ee_file_with_its_fees(platform: Platform) -> None:
    insured_here(platform, "county")
    rid = platform.resident_id
    now = platform.clock.now()
    admitted = now - dt.timedelta(days=STAY_DAYS)
    today = local_date(platform.clock)
    with (
        served(platform.app) as url,
        httpx.Client(base_url=url) as http,
        platform.terminal() as terminal,
        PlatformClient(url) as device,
    ):
        # the card on the ward: the stay opened five days ago, the operation recorded
        device.login(terminal, platform.terminal_id)
        device.swipe(CARD, platform.chip_serial, stage="inpatient")
        doctor = login(http, "dr-wang")
        opened = http.post(
            f"/v1/residents/{rid}/encounters",
            json={"kind": "inpatient", "department": "普外科", "started_at": admitted.isoformat()},
            headers=doctor,
        )
        assert opened.status_code == 201, opened.text
        eid, number = opened.json()["id"], opened.json()["number"]
        operated = admitted.astimezone(SHANGHAI).date() + dt.timedelta(days=1)
        items = http.post(
            f"/v1/residents/{rid}/encounters/{eid}/items",
            json={
                "diagnoses": [{"code": "K35.8", "name": "急性阑尾炎", "primary": True}],
                "procedures": [{"code": "47.09", "name": "阑尾切除术", "performed_on": operated.isoformat()}],
            },
            headers=doctor,
        )
        assert items.status_code == 200, items.text

        # discharge: the cashier settles the stay with the NCMS
        cashier = {**login(http, "cashier-1"), "Idempotency-Key": f"stay-{eid}"}
        bill = {"resident_id": rid, "encounter_id": eid, "lines": BILL, "paid_by": "cash"}
        settled = http.post("/v1/settlements", json=bill, headers=cashier)
        assert settled.status_code == 201, settled.text
        figures = settled.json()
        assert (figures["visit"], figures["level"], figures["total_fen"]) == ("inpatient", "county", TOTAL)
        by_category: dict[str, int] = {}
        for line in figures["lines"]:
            by_category[line["fee_category"]] = by_category.get(line["fee_category"], 0) + line["amount_fen"]
        assert sorted(by_category) == ["3", "6", "9"]

        # the terminal writes the EE record the platform gives it, signed by its SAM
        values = http.get(f"/v1/residents/{rid}/encounters/{eid}/card-record", headers=doctor)
        assert values.status_code == 200, values.text
        assert "CYRQ" not in values.json()  # not closed yet: no discharge on the record
        slot = terminal.write_inpatient_record(values.json())
        assert terminal.read_visit_index("EE")[slot - 1] is True
        assert terminal.verify_visit("EE", slot, today).kind == "sam"
        on_card = terminal.read_inpatient(slot)
        read = on_card.values
        assert (on_card.institution_name, on_card.case_no, on_card.department) == (
            "郑州市中原区人民医院",
            number,
            "普外科",
        )
        assert on_card.admission_date == admitted.astimezone(SHANGHAI).date()
        assert on_card.diagnoses == [("急性阑尾炎", "K35.8")]
        assert (read["SSCZMC1"], read["SSCZDM1"], read["SSCZRQ1"]) == (
            "阑尾切除术",
            "47.09",
            operated.strftime("%Y%m%d"),
        )
        # the settlement on the card: its lines by category, the totals, paid by the NCMS
        lines = [(read[f"ZYFYFL{n}"], read[f"ZYFYFLDM{n}"], read[f"ZYFYJE{n}"]) for n in (1, 2, 3, 4)]
        assert lines == [
            ("西药费", "3", str(by_category["3"])),
            ("诊疗费", "6", str(by_category["6"])),
            ("其他费用", "9", str(by_category["9"])),
            ("", "", ""),
        ]
        assert on_card.total_fen == figures["total_fen"] == TOTAL
        assert {tag: read[tag] for tag in EE_TOTALS.values()} == {
            tag: str(by_category.get(code, 0)) for code, tag in EE_TOTALS.items()
        }
        assert read["ZYFYYLFKFSDM"] == "03"

        # the close records the EE file: an ED-only slot is refused for a stay, nothing changed
        refused = http.post(
            f"/v1/residents/{rid}/encounters/{eid}/close", json={"card_slot": 4}, headers=doctor
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["field"] == "card_slot" and "EE01–EE03" in refused.json()["message"]
        assert count(platform, t.Encounter, id=eid, status="open") == 1
        closed = http.post(
            f"/v1/residents/{rid}/encounters/{eid}/close", json={"card_slot": slot}, headers=doctor
        )
        assert closed.status_code == 200, closed.text
        assert (closed.json()["status"], closed.json()["card_slot"]) == ("closed", slot)
        assert sum(f["amount_fen"] for f in closed.json()["fees"]) == TOTAL  # closing kept the bill

        # once discharged, the record carries the discharge date and the length of stay
        after = http.get(f"/v1/residents/{rid}/encounters/{eid}/card-record", headers=doctor).json()
        assert (after["CYRQ"], after["ZYHZCYKSMC"], after["ZYHZZYTS"]) == (
            today.strftime("%Y%m%d"),
            "普外科",
            str(STAY_DAYS),
        )
        assert after["ZYZFY"] == str(TOTAL)

    with platform.app.db.uow() as uow:
        check = ledger.verify(uow)
        assert check.balanced, check
        assert ledger.balance(uow, ledger.receivable(HOSPITAL)) == figures["fund_fen"]
