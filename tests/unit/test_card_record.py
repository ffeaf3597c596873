"""The visit record the terminal writes to the card at the end of a visit: the ED (门诊信息) items
of an outpatient or emergency visit, the EE (住院信息) items of an inpatient stay."""

from __future__ import annotations

import datetime as dt

from healthcard.card.profile import visit_item
from healthcard.platform.records import (
    EE_TOTALS,
    DiagnosisView,
    EncounterView,
    FeeLine,
    ObservationView,
    PrescriptionView,
    ProcedureView,
    card_record,
    ee_fee_items,
)
from healthcard.terminal.sdk import decode_visit, encode_visit, inpatient_from_bytes, outpatient_from_bytes

STARTED = dt.datetime(2026, 11, 24, 1, 30, 15, tzinfo=dt.UTC)  # 09:30:15 in China


def diagnosis(
    n: int, code: str = "J06.9", name: str = "急性上呼吸道感染", primary: bool = False
) -> DiagnosisView:
    return DiagnosisView(n, code, name, primary, "general", dt.date(2026, 11, 24))


def observation(n: int, minutes: int, value: float | None, flag: str | None) -> ObservationView:
    return ObservationView(
        n,
        "lab",
        f"WBC{n}",
        f"白细胞计数{n}",
        "" if value is None else str(value),
        value,
        "10^9/L",
        3.5,
        9.5,
        flag,
        "general",
        STARTED + dt.timedelta(minutes=minutes),
    )


def prescription(n: int, dose: str = "0.5") -> PrescriptionView:
    return PrescriptionView(n, f"阿莫西林胶囊{n}", None, dose, "g", "01", "每日3次", 5, "general", STARTED)


def visit(**changes: object) -> EncounterView:
    base: dict[str, object] = {
        "id": 7,
        "resident_id": "R1",
        "institution_code": "410102001",
        "institution_name": "郑州市中原区人民医院",
        "kind": "outpatient",
        "status": "closed",
        "number": "MZ000000000042",
        "department": "内科",
        "clinician": "王医生",
        "category": "general",
        "started_at": STARTED,
        "ended_at": STARTED + dt.timedelta(minutes=20),
        "diagnoses": (diagnosis(1, primary=True), diagnosis(2, "R50.9", "发热")),
        "observations": (observation(1, 5, 12.3, "H"), observation(2, 6, 5.0, "N")),
        "prescriptions": (prescription(1),),
        "procedures": (ProcedureView(1, "93.39", "物理治疗", "general", dt.date(2026, 11, 24)),),
        "fees": (FeeLine("西药费", "1", 2350), FeeLine("检查费", "4", 1200)),
        "payment_method": "03",
        "card_slot": None,
        "upload_key": None,
    }
    base.update(changes)
    return EncounterView(**base)  # type: ignore[arg-type]


def round_trip(values: dict[str, str | int]) -> dict[str, str]:
    return decode_visit("ED", encode_visit("ED", values))


def test_the_record_round_trips_through_the_card_coding() -> None:
    values = card_record(visit())
    read = round_trip(values)
    assert read["JZJGMC"] == "郑州市中原区人民医院"
    assert read["JZJGZZJGDM"] == "410102001"
    assert read["JZRQSJ"] == "20261124093015"  # local time
    assert read["MZH"] == "MZ000000000042"
    assert read["JYKSMC"] == "内科"
    assert read["YLFKFS"] == "03"
    assert (read["MZZDMC1"], read["MZZDDM1"], read["ZDRQ1"]) == ("急性上呼吸道感染", "J06.9", "20261124")
    assert (read["MZZDMC2"], read["MZZDDM2"]) == ("发热", "R50.9")
    assert (read["ZZMC2"], read["ZZDM2"]) == ("发热", "R50.9")  # a chapter XVIII code is a symptom
    assert read["ZZMC1"] == "" and read["MZZDMC3"] == ""
    # the newest result first: H / L → 1 异常, N → 2 正常
    assert (read["JCJYXMMC1"], read["JCJYJGDM1"], read["JCJYDLJG1"]) == ("白细胞计数2", "2", "5")
    assert (read["JCJYXMMC2"], read["JCJYJGDM2"], read["JCJYDLJG2"]) == ("白细胞计数1", "1", "12.3")
    assert (read["JCJYJLDW1"], read["JCJYXMDM2"]) == ("10^9/L", "WBC1")
    assert (read["YWMC1"], read["YYTS1"], read["YWSYPL1"]) == ("阿莫西林胶囊1", "5", "每日3次")
    assert (read["YWSYJLDW1"], read["YWSYCJL1"], read["YWSYTJDM1"]) == ("g", "0.5", "01")
    assert (read["SSCZMC1"], read["SSCZDM1"], read["SSCZRQ1"]) == ("物理治疗", "93.39", "20261124")
    assert [(read[f"MZFYFLMC{n}"], read[f"MZFYFLDM{n}"], read[f"MZFYJE{n}"]) for n in (1, 2, 3)] == [
        ("西药费", "1", "2350"),
        ("检查费", "4", "1200"),
        ("", "", ""),
    ]


def test_the_terminal_reads_it_back_as_an_outpatient_record() -> None:
    record = outpatient_from_bytes(encode_visit("ED", card_record(visit())))
    assert record.institution_name == "郑州市中原区人民医院"
    assert record.visit_time == dt.datetime(2026, 11, 24, 9, 30, 15)
    assert record.payment_method is not None and record.payment_method.code == "03"
    assert [d.code for d in record.diagnoses] == ["J06.9", "R50.9"]
    assert [(m.drug, m.route_code) for m in record.medications] == [("阿莫西林胶囊1", "01")]
    assert [f.amount_fen for f in record.fees] == [2350, 1200]


def test_overlong_text_is_cut_at_a_character_boundary() -> None:
    name = "河南省郑州市中原区建设路社区卫生服务中心附属第一人民医院门诊部急诊科分部" * 2
    values = card_record(
        visit(institution_name=name, institution_code="12410000415800001X", department="内" * 30)
    )
    limit = visit_item("ED", "JZJGMC").length
    assert len(str(values["JZJGMC"]).encode("gbk")) <= limit
    assert name.startswith(str(values["JZJGMC"]))
    assert len(str(values["JZJGMC"])) == limit // 2  # all two-byte characters: 35 of them
    assert values["JZJGZZJGDM"] == "1241000041"
    assert values["JYKSMC"] == "内" * 25
    read = round_trip(values)
    assert read["JZJGMC"] == values["JZJGMC"]


def test_a_mixed_width_text_is_not_cut_inside_a_character() -> None:
    # 49 bytes of ASCII then a Chinese character: it does not fit in 50 and is left out whole
    values = card_record(visit(department="A" * 49 + "科"))
    assert values["JYKSMC"] == "A" * 49
    assert round_trip(values)["JYKSMC"] == "A" * 49


def test_more_items_than_the_card_holds_keeps_the_primary_and_the_newest() -> None:
    diagnoses = (
        *(diagnosis(n, "J06.9", f"诊断{n}") for n in range(1, 8)),
        diagnosis(8, "I10", "特发性(原发性)高血压", primary=True),
    )
    observations = tuple(observation(n, n, float(n), "N") for n in range(1, 13))
    prescriptions = tuple(prescription(n) for n in range(1, 8))
    procedures = tuple(
        ProcedureView(n, f"99.{n}", f"操作{n}", "general", dt.date(2026, 11, n)) for n in range(1, 6)
    )
    fees = tuple(FeeLine(f"费用{n}", "9", n) for n in range(1, 13))
    values = card_record(
        visit(
            diagnoses=diagnoses,
            observations=observations,
            prescriptions=prescriptions,
            procedures=procedures,
            fees=fees,
        )
    )
    read = round_trip(values)
    assert [read[f"MZZDMC{n}"] for n in range(1, 6)] == [
        "特发性(原发性)高血压",
        "诊断1",
        "诊断2",
        "诊断3",
        "诊断4",
    ]
    assert [read[f"JCJYXMMC{n}"] for n in (1, 10)] == ["白细胞计数12", "白细胞计数3"]
    assert [read[f"SSCZMC{n}"] for n in (1, 2, 3)] == ["操作5", "操作4", "操作3"]
    assert read["YWMC5"] == "阿莫西林胶囊5"
    assert read["MZFYFLMC10"] == "费用10"
    assert not any(key.endswith(("11", "12")) for key in values)


def test_numbers_a_cn_item_cannot_hold_are_left_out() -> None:
    observations = (
        observation(1, 1, -3.5, "L"),
        observation(2, 2, None, None),
        observation(3, 3, 1234567.891, "H"),
    )
    values = card_record(visit(observations=observations, prescriptions=(prescription(1, "1-2"),)))
    read = round_trip(values)
    assert read["JCJYDLJG3"] == ""  # negative: cn holds no sign
    assert read["JCJYJGDM3"] == "1"
    assert read["JCJYDLJG2"] == "" and read["JCJYJGDM2"] == "3"  # no number: 不确定
    assert read["JCJYDLJG1"] == ""  # 11 characters, the item holds 10
    assert read["YWSYCJL1"] == ""  # "1-2" is not a number
    assert read["YWMC1"] == "阿莫西林胶囊1"


def test_an_empty_visit_has_only_the_header() -> None:
    values = card_record(
        visit(diagnoses=(), observations=(), prescriptions=(), procedures=(), fees=(), payment_method=None)
    )
    assert set(values) == {"JZJGMC", "JZJGZZJGDM", "JZRQSJ", "MZH", "JYKSMC"}
    assert round_trip(values)["YLFKFS"] == ""


def test_an_emergency_visit_goes_to_ed_an_inpatient_stay_to_ee() -> None:
    assert card_record(visit(kind="emergency"))["JYKSMC"] == "内科"
    values = card_record(visit(kind="inpatient"))
    assert "ZYHZRYKSMC" in values and not any(tag.startswith(("JZ", "MZ")) for tag in values)


# --- the EE record of an inpatient stay -------------------------------------------------------------
ADMITTED = dt.datetime(2026, 11, 18, 17, 30, tzinfo=dt.UTC)  # 01:30 on the 19th in China
DISCHARGED = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)  # 10:00 on the 24th


def stay(**changes: object) -> EncounterView:
    """A closed appendectomy stay at a county hospital, settled by the NCMS."""
    base: dict[str, object] = {
        "kind": "inpatient",
        "institution_code": "410122001",
        "institution_name": "中牟县人民医院",
        "number": "ZY000000000007",
        "department": "普外科",
        "started_at": ADMITTED,
        "ended_at": DISCHARGED,
        "diagnoses": (
            diagnosis(1, "K37", "阑尾炎"),
            diagnosis(2, "K35.8", "急性阑尾炎", primary=True),
        ),
        "observations": (observation(1, 5, 12.3, "H"),),
        "prescriptions": (prescription(1),),
        "procedures": (
            ProcedureView(1, "47.09", "阑尾切除术", "general", dt.date(2026, 11, 19)),
            ProcedureView(2, "99.18", "静脉注射电解质", "general", dt.date(2026, 11, 20)),
        ),
        "fees": (
            FeeLine("西药费", "3", 14_660),
            FeeLine("诊疗费", "6", 141_500),
            FeeLine("其他费用", "9", 1_500),
        ),
        "payment_method": "03",
    }
    base.update(changes)
    return visit(**base)


def ee_round_trip(values: dict[str, str | int]) -> dict[str, str]:
    return decode_visit("EE", encode_visit("EE", values))


def test_a_stay_gives_the_ee_header_diagnoses_procedures_and_discharge() -> None:
    read = ee_round_trip(card_record(stay()))
    assert (read["ZYJGMC"], read["ZYJGZZJGDM"], read["BAH"]) == (
        "中牟县人民医院",
        "410122001",
        "ZY000000000007",
    )
    assert read["RYRQ"] == "20261119"  # the local day: 01:30 in China, still 18th in UTC
    assert (read["ZYHZRYKSMC"], read["ZYHZCYKSMC"]) == ("普外科", "普外科")
    assert (read["JBZDMC1"], read["JBZDDM1"], read["QZRQ1"]) == ("急性阑尾炎", "K35.8", "20261124")  # primary
    assert (read["JBZDMC2"], read["JBZDDM2"], read["JBZDMC3"]) == ("阑尾炎", "K37", "")
    # the newest procedure first, as on ED
    assert (read["SSCZMC1"], read["SSCZDM1"], read["SSCZRQ1"]) == ("静脉注射电解质", "99.18", "20261120")
    assert (read["SSCZMC2"], read["SSCZDM2"], read["SSCZRQ2"]) == ("阑尾切除术", "47.09", "20261119")
    assert (read["CYRQ"], read["ZYHZZYTS"]) == ("20261124", "5")  # 19th to 24th
    assert read["ZYFYYLFKFSDM"] == "03"


def test_the_terminal_reads_it_back_as_an_inpatient_record() -> None:
    record = inpatient_from_bytes(encode_visit("EE", card_record(stay())))
    assert (record.institution_name, record.case_no, record.department) == (
        "中牟县人民医院",
        "ZY000000000007",
        "普外科",
    )
    assert (record.admission_date, record.discharge_date) == (dt.date(2026, 11, 19), dt.date(2026, 11, 24))
    assert record.diagnoses == [("急性阑尾炎", "K35.8"), ("阑尾炎", "K37")]
    assert record.total_fen == 157_660


def test_a_stay_not_yet_over_has_no_discharge() -> None:
    values = card_record(stay(ended_at=None, status="open"))
    assert not {"CYRQ", "ZYHZCYKSMC", "ZYHZZYTS"} & set(values)
    assert inpatient_from_bytes(encode_visit("EE", values)).discharge_date is None
    assert values["RYRQ"] == "20261119" and values["ZYZFY"] == "157660"


def test_a_same_day_stay_counts_one_day() -> None:
    values = card_record(stay(ended_at=ADMITTED + dt.timedelta(hours=3)))
    assert (values["CYRQ"], values["ZYHZZYTS"]) == ("20261119", "1")


def test_the_fee_lines_and_a_total_per_category() -> None:
    fees = tuple(FeeLine(f"分类{code}", code, 100 * int(code)) for code in EE_TOTALS)
    read = ee_round_trip(card_record(stay(fees=fees)))
    for n, (code, tag) in enumerate(EE_TOTALS.items(), start=1):
        assert (read[f"ZYFYFL{n}"], read[f"ZYFYFLDM{n}"], read[f"ZYFYJE{n}"]) == (
            f"分类{code}",
            code,
            str(100 * n),
        )
        assert read[tag] == str(100 * int(code)), tag
    assert read["ZYZFY"] == str(100 * sum(range(1, 10)))
    assert read["ZYFYFL10"] == "" and read["ZYFYJE10"] == ""


def test_the_settled_categories_fill_their_totals_and_the_others_are_zero() -> None:
    values = card_record(stay())
    assert [(values[f"ZYFYFL{n}"], values[f"ZYFYFLDM{n}"], values[f"ZYFYJE{n}"]) for n in (1, 2, 3)] == [
        ("西药费", "3", "14660"),
        ("诊疗费", "6", "141500"),
        ("其他费用", "9", "1500"),
    ]
    assert (values["ZYZFY"], values["ZYXYF"], values["ZYZLF"], values["QTZYFY"]) == (
        "157660",
        "14660",
        "141500",
        "1500",
    )
    assert {values[tag] for tag in ("CWF", "ZYHLF", "ZYZYF", "ZYHYF", "ZYSSF", "ZYJCF")} == {"0"}


def test_an_unsettled_stay_has_no_fee_items() -> None:
    values = card_record(stay(fees=(), payment_method=None))
    assert not any(tag.startswith("ZYF") or tag in EE_TOTALS.values() for tag in values)
    read = ee_round_trip(values)
    assert (read["ZYZFY"], read["CWF"], read["ZYFYYLFKFSDM"]) == ("", "", "")


def test_the_ee_record_keeps_three_diagnoses_three_procedures_and_twenty_fee_lines() -> None:
    diagnoses = (
        *(diagnosis(n, "K37", f"诊断{n}") for n in range(1, 5)),
        diagnosis(5, "I10", "高血压", primary=True),
    )
    procedures = tuple(
        ProcedureView(n, f"99.{n}", f"操作{n}", "general", dt.date(2026, 11, 18 + n)) for n in range(1, 6)
    )
    fees = (*(FeeLine("西药费", "3", 1) for _ in range(21)), FeeLine("旧分类", "0", 7))
    values = card_record(stay(diagnoses=diagnoses, procedures=procedures, fees=fees))
    read = ee_round_trip(values)
    assert [read[f"JBZDMC{n}"] for n in (1, 2, 3)] == ["高血压", "诊断1", "诊断2"]
    assert [read[f"SSCZMC{n}"] for n in (1, 2, 3)] == ["操作5", "操作4", "操作3"]
    assert read["ZYFYJE20"] == "1" and "ZYFYFL21" not in values and "JBZDMC4" not in values
    # the lines past the 20th still count, a code without a total of its own counts as 其他
    assert (read["ZYZFY"], read["ZYXYF"], read["QTZYFY"]) == ("28", "21", "7")


def test_ee_text_is_cut_at_a_character_boundary() -> None:
    name = "河南省郑州市中牟县人民医院附属第一住院部普外科分部" * 3
    values = card_record(
        stay(
            institution_name=name,
            institution_code="12410000415800001X",
            department="A" * 49 + "科",
            number="住院" * 10,
            diagnoses=(diagnosis(1, "K35.800x001", "急" * 30, primary=True),),
            procedures=(ProcedureView(1, "47.0900", "切" * 50, "general", dt.date(2026, 11, 19)),),
            fees=(FeeLine("中西医结合治疗费用分类名称", "6", 100),),
        )
    )
    assert str(values["ZYJGMC"]) == name[: visit_item("EE", "ZYJGMC").length // 2]  # 35 characters
    assert values["ZYJGZZJGDM"] == "1241000041"
    assert values["ZYHZRYKSMC"] == values["ZYHZCYKSMC"] == "A" * 49  # the 科 does not fit whole
    assert values["BAH"] == "住院" * 4 + "住"  # 18 bytes
    assert (values["JBZDMC1"], values["JBZDDM1"]) == ("急" * 25, "K35.800")
    assert (values["SSCZMC1"], values["SSCZDM1"]) == ("切" * 40, "47.09")
    assert values["ZYFYFL1"] == "中西医结合治疗费用分"  # 20 bytes
    read = ee_round_trip(values)
    assert read["ZYJGMC"] == values["ZYJGMC"] and read["ZYFYFL1"] == values["ZYFYFL1"]


def test_ee_numbers_that_do_not_fit_are_left_out() -> None:
    # two lines of the most one holds (9 999 999 999 fen each) total 11 digits, the item holds 10
    top = 10**10 - 1
    values = ee_fee_items((FeeLine("诊疗费", "6", top), FeeLine("手术费", "7", top)), "03")
    assert values["ZYFYJE1"] == values["ZYZLF"] == values["ZYSSF"] == str(top)
    assert "ZYZFY" not in values  # 11 digits: the item holds 10
    assert ee_round_trip(values)["ZYZFY"] == ""
    # a (far-fetched) million-day stay: 7 digits, ZYHZZYTS holds 6
    read = ee_round_trip(card_record(stay(ended_at=ADMITTED + dt.timedelta(days=1_000_000))))
    assert read["CYRQ"] and read["ZYHZZYTS"] == ""
