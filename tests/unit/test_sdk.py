"""The terminal SDK (``healthcard.terminal.sdk``) against the in-process demo card and SAM:
typed reads decode ``demo_contents()``, typed writes round-trip, bad input never reaches the
card, and a swipe stays within its APDU budget."""

from __future__ import annotations

import copy
import datetime as dt

import pytest

from healthcard.card.cos import CardOS
from healthcard.card.sam import SamOS
from healthcard.demo import demo_sam, tiny_jpeg
from healthcard.errors import EncodingError, InvalidValue, RecordInvalid
from healthcard.keys.cardkeys import demo_master_keys
from healthcard.terminal.records import (
    Address,
    Allergy,
    Code,
    Contact,
    Diagnosis,
    Fee,
    Immunization,
    Medication,
    OutpatientRecord,
)
from healthcard.terminal.sdk import ALERT_FLAGS, HealthCardTerminal
from healthcard.terminal.transport import SimulatorTransport


def card_os(terminal) -> CardOS:
    return terminal.card.card


def reopen(terminal) -> HealthCardTerminal:
    """A second terminal on the same card (and a new SAM): nothing cached on the host side."""
    fresh = HealthCardTerminal(SimulatorTransport(card_os(terminal)), SimulatorTransport(SamOS(demo_sam())))
    fresh.open()
    return fresh


# --- typed reads of the demo card ---------------------------------------------------------------
def test_read_issuer(terminal):
    info = terminal.read_issuer()
    assert info.card_category == Code("1", "普通卡")
    assert info.spec_version == "V1.1"
    assert info.issuer_name == "河南省卫生健康委员会"
    assert info.issuer_code == "41000000001"
    assert info.issue_date == dt.date(2026, 11, 23)
    assert info.card_number == "410102199003070019"
    assert info.security_code == "000"
    assert info.issue_serial == "4101000001"
    assert info.city_code == "410100"
    assert info.issuer_certificate == bytes(180)
    assert terminal.city_code == "410100"
    assert terminal.province == b"41000000"


def test_read_holder(terminal):
    holder = terminal.read_holder()
    assert holder.name == "张三"
    assert holder.sex == Code("01", "男")
    assert holder.ethnicity == Code("01", "汉")
    assert holder.birth_date == dt.date(1990, 3, 7)
    assert isinstance(holder.birth_date, dt.date)
    assert holder.citizen_id == "410102199003070019"


def test_read_validity(terminal):
    validity = terminal.read_validity()
    assert validity.expiry_date == dt.date(2036, 11, 23)
    assert validity.phones == ["13800138000"]
    assert validity.payment_methods == [Code("03", "新型农村合作医疗")]


def test_read_photo(terminal):
    assert terminal.read_photo() == tiny_jpeg()


def test_read_df01(terminal):
    assert terminal.read_addresses() == [Address(Code("1", "户籍地址"), "河南省郑州市中原区建设路100号")]
    assert terminal.read_contacts() == [Contact("李四", Code("1", "配偶"), "13900139000")]
    occupation = terminal.read_occupation()
    assert occupation.education == Code("20", "本科")
    assert occupation.marital_status == Code("20", "已婚")
    assert occupation.occupation == "2"
    documents = terminal.read_documents()
    assert documents.id_type == Code("01", "居民身份证")
    assert documents.id_number == "410102199003070019"
    assert documents.health_record_number == "41010200100100001"
    assert documents.ncms_number == "410102000001"


def test_read_medical_alerts(terminal):
    alerts = terminal.read_medical_alerts()
    assert alerts.abo == Code("01", "A")
    assert alerts.rh == Code("1", "Rh阳性")
    assert alerts.flags["asthma"] is False
    assert alerts.flags["heart_disease"] is False
    assert alerts.flags["diabetes"] is True
    assert all(
        alerts.flags[name] is None
        for name in ALERT_FLAGS
        if name not in ("asthma", "heart_disease", "diabetes")
    )  # FF: not recorded
    assert alerts.present == ["diabetes"]
    assert alerts.other == "高血压"
    assert terminal.read_special() is False


def test_read_allergies_and_immunizations(terminal):
    assert terminal.read_allergies() == [Allergy("青霉素", "皮疹、呼吸困难")]
    assert terminal.read_immunizations() == [
        Immunization("乙肝疫苗(第2剂)", dt.date(1990, 4, 7)),
        Immunization("卡介苗", dt.date(1990, 3, 8)),
    ]


def test_a_new_card_has_no_visit_records(terminal):
    assert terminal.read_visit_index("ED") == [False] * 5
    assert terminal.read_visit_index("EE") == [False] * 3
    assert terminal.recent_outpatient(3) == []


def test_swipe_summary(terminal):
    summary = terminal.swipe()
    assert summary.holder.name == "张三"
    assert summary.issuer.card_number == "410102199003070019"
    assert summary.alerts.present == ["diabetes"]
    assert summary.psychiatric is False
    assert summary.allergies == [Allergy("青霉素", "皮疹、呼吸困难")]
    assert [i.vaccine for i in summary.immunizations] == ["乙肝疫苗(第2剂)", "卡介苗"]
    assert summary.outpatient == []


# --- typed writes round-trip ---------------------------------------------------------------------
def test_write_validity(terminal):
    terminal.write_validity(dt.date(2030, 1, 2), ["010-12345678", "13700137000"], ["01", "07", "99"])
    for term in (terminal, reopen(terminal)):
        validity = term.read_validity()
        assert validity.expiry_date == dt.date(2030, 1, 2)
        assert validity.phones == ["010-12345678", "13700137000"]
        assert [c.code for c in validity.payment_methods] == ["01", "07", "99"]
        assert validity.payment_methods[2].meaning == "其他"


def test_write_addresses(terminal):
    terminal.write_addresses([("2", "北京市东城区东长安街1号"), ("1", "上海市")])
    assert reopen(terminal).read_addresses() == [
        Address(Code("2", "现居住地址"), "北京市东城区东长安街1号"),
        Address(Code("1", "户籍地址"), "上海市"),
    ]


def test_write_addresses_at_full_length(terminal):
    text = "郑" * 50  # 100 bytes in GBK: exactly the field
    terminal.write_addresses([("1", text)])
    assert terminal.read_addresses()[0].address == text


def test_write_contacts(terminal):
    contacts = [("王五", "5", "13500135000"), ("赵六", "7", "0371-1234567"), ("钱七", "8", "110")]
    terminal.write_contacts(contacts)
    assert reopen(terminal).read_contacts() == [
        Contact("王五", Code("5", "父母"), "13500135000"),
        Contact("赵六", Code("7", "兄弟姐妹"), "0371-1234567"),
        Contact("钱七", Code("8", "其他"), "110"),
    ]


def test_write_medical_alerts(terminal):
    terminal.write_medical_alerts(
        abo="04",
        rh="2",
        flags={"asthma": True, "diabetes": None, "pacemaker": False},
        other="青霉素过敏性休克史",
    )
    alerts = reopen(terminal).read_medical_alerts()
    assert alerts.abo == Code("04", "AB")
    assert alerts.rh == Code("2", "Rh阴性")
    assert alerts.flags["asthma"] is True
    assert alerts.flags["diabetes"] is None
    assert alerts.flags["pacemaker"] is False
    assert alerts.flags["heart_disease"] is False  # untouched
    assert alerts.other == "青霉素过敏性休克史"


@pytest.mark.parametrize("value", [True, False, None])
def test_write_special(terminal, value):
    terminal.write_special(value)
    assert reopen(terminal).read_special() is value


def test_add_allergy(terminal):
    terminal.add_allergy("花生", "过敏性休克")
    assert reopen(terminal).read_allergies() == [
        Allergy("花生", "过敏性休克"),
        Allergy("青霉素", "皮疹、呼吸困难"),
    ]


def test_allergies_keep_the_newest_three(terminal):
    for n in range(1, 5):
        terminal.add_allergy(f"过敏原{n}", f"反应{n}")
    assert [a.allergen for a in terminal.read_allergies()] == ["过敏原4", "过敏原3", "过敏原2"]


def test_add_immunization(terminal):
    terminal.add_immunization("麻腮风疫苗", dt.date(2027, 5, 1))
    immunizations = reopen(terminal).read_immunizations()
    assert immunizations[0] == Immunization("麻腮风疫苗", dt.date(2027, 5, 1))
    assert len(immunizations) == 3


def test_write_photo(terminal):
    jpeg = b"\xff\xd8" + bytes(range(256)) * 11 + b"\xff\xd9"  # 2820 bytes: several chunks
    terminal.write_photo(jpeg)
    assert reopen(terminal).read_photo() == jpeg


def _outpatient(n: int, when: dt.datetime) -> OutpatientRecord:
    return OutpatientRecord(
        institution_name=f"郑州大学第一附属医院{n}",
        institution_code="41000000-1",
        visit_time=when,
        outpatient_no=f"MZ{n:06d}",
        department="内科",
        payment_method=Code("03", "新型农村合作医疗"),
        diagnoses=[Diagnosis("头痛", "R51", when.date(), "偏头痛", "G43.9")],
        medications=[Medication("布洛芬缓释胶囊", "3", "每日2次", "mg", "300", "01")],
        fees=[Fee("西药费", "1", 2350 + n), Fee("诊查费", "2", 1000)],
    )


def test_write_outpatient_record(terminal):
    when = dt.datetime(2027, 3, 4, 9, 30, 15)
    slot = terminal.write_outpatient_record(_outpatient(1, when))
    assert slot == 1
    assert terminal.read_visit_index("ED") == [True, False, False, False, False]
    record = reopen(terminal).read_outpatient(slot)
    assert record.institution_name == "郑州大学第一附属医院1"
    assert record.institution_code == "41000000-1"
    assert record.visit_time == when
    assert record.outpatient_no == "MZ000001"
    assert record.department == "内科"
    assert record.payment_method == Code("03", "新型农村合作医疗")
    assert record.diagnoses == [Diagnosis("头痛", "R51", when.date(), "偏头痛", "G43.9")]
    assert record.medications == [Medication("布洛芬缓释胶囊", "3", "每日2次", "mg", "300", "01")]
    assert record.fees == [Fee("西药费", "1", 2351), Fee("诊查费", "2", 1000)]
    assert record.total_fen == 3351
    assert record.slot == 1


def test_write_inpatient_record(terminal):
    values = {
        "ZYJGMC": "河南省人民医院",
        "RYRQ": "20270101",
        "CYRQ": "20270110",
        "BAH": "BA0001",
        "ZYHZRYKSMC": "普外科",
        "JBZDMC1": "急性阑尾炎",
        "JBZDDM1": "K35.9",
        "JBZDMC2": "高血压",
        "JBZDDM2": "I10",
        "ZYZFY": "1234567",
    }
    slot = terminal.write_inpatient_record(values)
    assert slot == 1
    assert terminal.read_visit_index("EE") == [True, False, False]
    record = reopen(terminal).read_inpatient(slot)
    assert record.institution_name == "河南省人民医院"
    assert record.admission_date == dt.date(2027, 1, 1)
    assert record.discharge_date == dt.date(2027, 1, 10)
    assert record.case_no == "BA0001"
    assert record.department == "普外科"
    assert record.diagnoses == [("急性阑尾炎", "K35.9"), ("高血压", "I10")]
    assert record.total_fen == 1234567


def test_seven_outpatient_records_keep_the_newest_five(terminal):
    times = [dt.datetime(2027, 1, 1, 8, 0) + dt.timedelta(days=3 * n, minutes=n) for n in range(7)]
    slots = [terminal.write_outpatient_record(_outpatient(n, when)) for n, when in enumerate(times)]
    assert slots == [1, 2, 3, 4, 5, 1, 2]  # the 6th and 7th replace the oldest
    assert terminal.read_visit_index("ED") == [True] * 5
    term = reopen(terminal)
    on_card = sorted(term.read_outpatient(slot).visit_time for slot in range(1, 6))
    assert on_card == times[2:]
    recent = term.recent_outpatient(3)
    assert [r.visit_time for r in recent] == [times[6], times[5], times[4]]
    assert [r.outpatient_no for r in recent] == ["MZ000006", "MZ000005", "MZ000004"]
    assert [r.slot for r in recent] == [2, 1, 5]


def test_reading_a_slot_marked_ff_raises_record_invalid(terminal):
    with pytest.raises(RecordInvalid):
        terminal.read_outpatient(1)
    with pytest.raises(RecordInvalid):
        terminal.read_inpatient(3)
    terminal.write_outpatient_record(_outpatient(1, dt.datetime(2027, 1, 1, 8)))
    assert terminal.read_outpatient(1).outpatient_no == "MZ000001"
    terminal.erase_visit("ED", 1)
    assert terminal.read_visit_index("ED") == [False] * 5
    with pytest.raises(RecordInvalid):
        terminal.read_outpatient(1)
    assert terminal.recent_outpatient(3) == []


# --- bad input never reaches the card ------------------------------------------------------------
BAD_INPUT = [
    ("ans too long", lambda t: t.write_addresses([("1", "郑" * 51)]), EncodingError, "DF01/EF05/address1"),
    (
        "ans too long (contact)",
        lambda t: t.write_contacts([("x" * 31, "1", "1")]),
        EncodingError,
        "DF01/EF06/contact_name1",
    ),
    (
        "cn non-digit",
        lambda t: t.write_validity(payment_methods=["0A"]),
        EncodingError,
        "DDF1/EF08/payment_method1",
    ),
    (
        "cn non-digit (address type)",
        lambda t: t.write_addresses([("x", "北京")]),
        EncodingError,
        "DF01/EF05/address_type1",
    ),
    (
        "cn too long",
        lambda t: t.write_contacts([("王五", "123", "1")]),
        EncodingError,
        "DF01/EF06/contact_relation1",
    ),
    ("not GBK", lambda t: t.write_contacts([("王五😀", "1", "1")]), EncodingError, "DF01/EF06/contact_name1"),
    (
        "not GBK (allergy)",
        lambda t: t.add_allergy("\u20ac\U0001f95c", "x"),
        EncodingError,
        "DF02/EF07/allergen",
    ),
    (
        "unknown item",
        lambda t: t.write_items("DF01", "EF05", {"address9": "x"}),
        InvalidValue,
        "DF01/EF05/address9",
    ),
    ("unknown flag", lambda t: t.write_medical_alerts(flags={"flu": True}), InvalidValue, "DF02/EF05/flu"),
    ("unknown visit item", lambda t: t.write_outpatient_record({"NOPE": "1"}), InvalidValue, "DF03/ED/NOPE"),
    (
        "visit ans too long",
        lambda t: t.write_outpatient_record({"JZJGMC": "医" * 36}),
        EncodingError,
        "DF03/ED/JZJGMC",
    ),
    (
        "visit cn non-digit",
        lambda t: t.write_inpatient_record({"RYRQ": "2027-01-01"}),
        EncodingError,
        "DF03/EE/RYRQ",
    ),
    (
        "negative fee",
        lambda t: t.write_outpatient_record(OutpatientRecord(fees=[Fee("西药费", "1", -5)])),
        InvalidValue,
        "DF03/ED/MZFYJE1",
    ),
    ("photo not JPEG", lambda t: t.write_photo(b"GIF89a"), InvalidValue, "DDF1/EF07/photo"),
    ("photo too big", lambda t: t.write_photo(b"\xff\xd8" + bytes(3100)), InvalidValue, "DDF1/EF07/photo"),
]


@pytest.mark.parametrize(
    ("write", "error", "field"), [case[1:] for case in BAD_INPUT], ids=[case[0] for case in BAD_INPUT]
)
def test_bad_input_names_the_field_and_sends_nothing(terminal, write, error, field):
    before = copy.deepcopy(card_os(terminal).state)
    card_count, sam_count = terminal.card.trace.count, terminal.sam.trace.count
    with pytest.raises(error) as raised:
        write(terminal)
    assert raised.value.field == field
    assert field in str(raised.value)
    assert terminal.card.trace.count == card_count, "an APDU reached the card"
    assert terminal.sam.trace.count == sam_count, "an APDU reached the SAM"
    assert card_os(terminal).state == before


# --- APDU budget and secrecy ---------------------------------------------------------------------
def test_swipe_with_five_outpatient_records_needs_at_most_45_card_apdus(terminal):
    times = [dt.datetime(2027, 2, 1, 9) + dt.timedelta(days=n) for n in range(5)]
    for n, when in enumerate(times):
        terminal.write_outpatient_record(_outpatient(n, when))
    card = card_os(terminal)
    transport = SimulatorTransport(card)
    term = HealthCardTerminal(transport, SimulatorTransport(SamOS(demo_sam())))
    term.open()
    summary = term.swipe()
    assert [r.visit_time for r in summary.outpatient] == list(reversed(times))[:3]
    assert transport.trace.count <= 45, f"{transport.trace.count} card APDUs for open() + swipe()"
    assert all(e.sw == 0x9000 for e in transport.trace.exchanges)


def test_no_key_appears_in_clear_in_the_traces(terminal, card_keys):
    """The session keys the SAM loads, the card's keys and the SAM's master keys never travel."""
    sam_os = terminal.sam.card
    loaded: set[bytes] = set()
    terminal.sam.listeners.append(lambda _exchange: loaded.add(sam_os.loaded[1]) if sam_os.loaded else None)
    terminal.swipe()
    terminal.write_addresses([("2", "北京")])
    terminal.add_allergy("花生", "休克")
    terminal.write_outpatient_record(_outpatient(1, dt.datetime(2027, 1, 1, 8)))
    assert len(loaded) >= 10
    secrets = loaded | set(card_keys.values()) | set(demo_master_keys().values())
    exchanges = terminal.card.trace.exchanges + terminal.sam.trace.exchanges
    for exchange in exchanges:
        for secret in secrets:
            for half in (secret[:8], secret[8:]):
                assert half not in exchange.command and half not in exchange.response


# --- regressions: bugs these tests found, fixed since -----------------------------------------------
# Slot 0 (or -1) read index[-1] and, with the last slot valid, went on to
# Profile.file("DF03", "ED00") -> a bare StopIteration.
@pytest.mark.parametrize(("kind", "slot"), [("ED", 0), ("ED", -1), ("ED", 6), ("EE", 0), ("EE", 4)])
def test_a_slot_out_of_range_is_an_input_error(terminal, kind, slot):
    for n in range(5):
        terminal.write_outpatient_record(_outpatient(n, dt.datetime(2027, 1, 1 + n, 8)))
    terminal.write_inpatient_record({"ZYJGMC": "医院", "RYRQ": "20270101"})
    for n in range(2, 4):
        terminal.write_inpatient_record({"ZYJGMC": f"医院{n}", "RYRQ": f"2027010{n}"})
    count = terminal.card.trace.count
    with pytest.raises(InvalidValue) as raised:
        if kind == "ED":
            terminal.read_outpatient(slot)
        else:
            terminal.read_inpatient(slot)
    assert "slot" in raised.value.field
    assert terminal.card.trace.count == count


# write_photo(b"") sent no UPDATE BINARY (photo_file(b"") was b"", not a zero length field),
# so the old photo stayed on the card.
def test_writing_an_empty_photo_removes_the_photo(terminal):
    assert terminal.read_photo() == tiny_jpeg()
    terminal.write_photo(b"")
    assert reopen(terminal).read_photo() == b""


# --- bugs found by these tests, fixed: regression tests ---------------------------------------
@pytest.mark.parametrize("call", ["read", "write"])
def test_unknown_file_is_an_input_error(terminal, call):
    count = terminal.card.trace.count
    with pytest.raises(InvalidValue) as raised:
        if call == "read":
            terminal.read_items("DF01", "EF09")
        else:
            terminal.write_items("DF01", "EF09", {})
    assert "DF01/EF09" in raised.value.field
    assert terminal.card.trace.count == count


@pytest.mark.parametrize("abo", ["O", "A+"])
def test_non_hex_abo_is_an_input_error(terminal, abo):
    count = terminal.card.trace.count
    with pytest.raises(InvalidValue) as raised:
        terminal.write_medical_alerts(abo=abo)
    assert raised.value.field == "DF02/EF05/abo"
    assert terminal.card.trace.count == count


def test_short_apdus_only_reader_still_swipes(terminal):
    """A reader without extended length: records are read one by one, visits in 128-byte chunks."""
    terminal.extended = False
    before = terminal.card.trace.count
    summary = terminal.swipe()
    assert summary.issuer.card_number == "410102199003070019"
    assert summary.holder.name == "张三"
    assert all(
        len(e.command) <= 261 and len(e.response) <= 258 for e in terminal.card.trace.exchanges[before:]
    )


def test_index_files_refuse_update_record_so_only_the_erase_key_erases(terminal):
    """With UK1DF03 alone, 04 DC on DF03/EF06 must not turn a valid slot FF (6985)."""
    terminal.write_outpatient_record({"JZJGMC": "x", "JZRQSJ": "20261123093000"})
    terminal.authenticate("UK1DF03")
    terminal._select_ef(0xEF06)
    header = bytes((0x04, 0xDC, 0x01, 0x04))
    body = terminal._sm_body("DF03", header, b"\xff")
    response = terminal.card.transmit(bytes((0x04, 0xDC, 0x01, 0x04, len(body))) + body)
    assert response.sw == 0x6985
    assert terminal.read_visit_index("ED")[0] is True
