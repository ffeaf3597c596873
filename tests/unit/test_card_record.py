"""The ED (门诊信息) record of a visit: what the terminal writes to the card at the end of it."""

from __future__ import annotations

import datetime as dt

import pytest

from healthcard.card.profile import visit_item
from healthcard.errors import InvalidValue
from healthcard.platform.records import (
    DiagnosisView,
    EncounterView,
    FeeLine,
    ObservationView,
    PrescriptionView,
    ProcedureView,
    card_record,
)
from healthcard.terminal.sdk import decode_visit, encode_visit, outpatient_from_bytes

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


def test_an_emergency_visit_goes_to_ed_an_inpatient_stay_does_not() -> None:
    assert card_record(visit(kind="emergency"))["JYKSMC"] == "内科"
    with pytest.raises(InvalidValue) as caught:
        card_record(visit(kind="inpatient"))
    assert caught.value.field == "kind"
