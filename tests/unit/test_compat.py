"""The national-SDK layer (healthcard.terminal.compat) against the in-process demo card."""

from __future__ import annotations

import pytest

from healthcard import errors
from healthcard.card.cos import CardOS
from healthcard.card.profile import Item
from healthcard.card.sam import SamOS
from healthcard.demo import demo_sam, issue_demo_card, tiny_jpeg
from healthcard.terminal.compat import (
    IRV,
    AN_style,
    B_style,
    CN_style,
    NationalSdk,
    NO_style,
    Op,
    data_items,
    irv_for,
    params,
)
from healthcard.terminal.sdk import HealthCardTerminal
from healthcard.terminal.transport import SimulatorTransport, Transport

OK = IRV.IRV_OK
PARA = IRV.IRV_PARA_ERR


@pytest.fixture
def terminal() -> HealthCardTerminal:
    t = HealthCardTerminal(
        SimulatorTransport(CardOS(issue_demo_card())), SimulatorTransport(SamOS(demo_sam()))
    )
    t.open()
    return t


@pytest.fixture
def sdk(terminal: HealthCardTerminal) -> NationalSdk:
    return NationalSdk(terminal)


# --- parameter order ---------------------------------------------------------------------------
def test_parameter_order_comes_from_the_profile() -> None:
    assert params("DDF1", "EF05") == (
        "KLB", "GFBB", "FKJGMC", "FKJGDM", "FKJGZS", "FKSJ", "KH", "AQM", "XPXLH", "YYCSDM",
    )  # fmt: skip
    assert params("DDF1", "EF06") == ("XM", "XB", "MZ", "CSRQ", "SFZH")
    assert params("DDF1", "EF08") == ("KYXQ", "BRDH1", "BRDH2", "YLFYZFFS1", "YLFYZFFS2", "YLFYZFFS3")
    assert params("DF02", "EF05")[:3] == ("ABOXX", "RHXX", "XCBZ")
    assert params("DF02", "EF05")[-1] == "QTYXJSMC"
    assert params("DF02", "EF07") == ("GMWZMC", "GMFY")
    assert params("DF02", "EF08") == ("MYJZMC", "MYJZSJ")


def test_all_info_items_leave_out_the_security_items() -> None:
    assert len(data_items("EE")) == 147
    assert len(data_items("ED")) == 170
    for kind in ("EE", "ED"):
        tags = {i.param for i in data_items(kind)}
        assert not tags & {"JYXXQM", "SAMKZS"}


# --- DDF1 ---------------------------------------------------------------------------------------
def test_issuer_data_in_sdk_order(sdk: NationalSdk) -> None:
    rc, values = sdk.iR_DDF1EF05Info()
    assert rc == 0
    assert len(values) == 10
    klb, gfbb, fkjgmc, fkjgdm, fkjgzs, fksj, kh, aqm, xpxlh, yycsdm = values
    assert (klb, gfbb, fkjgmc, fkjgdm) == ("1", "V1.1", "河南省卫生健康委员会", "41000000001")
    assert fkjgzs == "00" * 180  # b → upper-case hex
    assert (fksj, kh, aqm, xpxlh, yycsdm) == ("20261123", "410102199003070019", "000", "4101000001", "410100")


def test_cardholder(sdk: NationalSdk) -> None:
    assert sdk.iR_DDF1EF06Info() == (OK, ("张三", "01", "01", "19900307", "410102199003070019"))


def test_issuer_and_cardholder_files_are_frozen_after_issue(sdk: NationalSdk) -> None:
    _, issuer = sdk.iR_DDF1EF05Info()
    assert sdk.iW_DDF1EF05Info(*issuer) == IRV.IRV_WR_RCDERR  # 6985: 禁止改写
    assert isinstance(sdk.last_error, errors.ConditionsNotSatisfied)
    assert sdk.iW_DDF1EF06Info("李四", "02", "01", "19900307", "410102199003070019") == IRV.IRV_WR_RCDERR
    assert sdk.iR_DDF1EF06Info()[1][0] == "张三"


def test_validity_round_trip(sdk: NationalSdk) -> None:
    values = ("20401231", "13700137000", "0371-12345678", "01", "03", "")
    assert sdk.iW_DDF1EF08Info(*values) == OK
    assert sdk.last_error is None
    assert sdk.iR_DDF1EF08Info() == (OK, values)


def test_photo_round_trip(sdk: NationalSdk) -> None:
    rc, buffer = sdk.iR_DDF1EF07Info()
    assert rc == OK
    assert buffer == len(tiny_jpeg()).to_bytes(2, "big") + tiny_jpeg()
    jpeg = b"\xff\xd8" + bytes(range(256)) * 4 + b"\xff\xd9"
    assert sdk.iW_DDF1EF07Info(len(jpeg).to_bytes(2, "big") + jpeg + bytes(20)) == OK  # C buffer slack
    assert sdk.iR_DDF1EF07Info() == (OK, len(jpeg).to_bytes(2, "big") + jpeg)


@pytest.mark.parametrize(
    "buffer",
    [b"", b"\x00", b"\x00\x00", b"\x00\x10\xff\xd8", b"\x00\x04GIF8", "FFD8"],
    ids=["empty", "one-byte", "zero-length", "short", "not-jpeg", "text"],
)
def test_photo_bad_buffer(sdk: NationalSdk, buffer: bytes) -> None:
    assert sdk.iW_DDF1EF07Info(buffer) == PARA
    assert sdk.iR_DDF1EF07Info()[1][2:] == tiny_jpeg()  # nothing was written


# --- DF01 / DF02 TLV files ----------------------------------------------------------------------
#: ABOXX (b), RHXX (cn), twelve flags (b: 01 yes, 00 no, FF not recorded), QTYXJSMC (ans)
ALERTS = ("02", "2", "01", "00", "FF", "01", "00", "00", "FF", "FF", "00", "00", "FF", "01", "青霉素过敏史")  # fmt: skip


@pytest.mark.parametrize(
    ("df", "ef", "values"),
    [
        ("DF01", "EF05", ("1", "河南省郑州市金水区花园路1号", "2", "北京市东城区东单北大街2号")),
        ("DF01", "EF06", ("王五", "2", "13600136000", "赵六", "3", "010-1234567", "", "", "")),
        ("DF01", "EF07", ("10", "21", "3")),
        ("DF01", "EF08", ("01", "410102199003070019", "41010200100100002", "410102000002")),
        ("DF02", "EF05", ALERTS),
        ("DF02", "EF06", ("01",)),
    ],
)
def test_tlv_round_trip(sdk: NationalSdk, df: str, ef: str, values: tuple[str, ...]) -> None:
    read = getattr(sdk, f"iR_{df}{ef}Info")
    write = getattr(sdk, f"iW_{df}{ef}Info")
    assert len(values) == len(params(df, ef))
    assert write(*values) == OK
    assert read() == (OK, values)


def test_medical_alerts_as_issued(sdk: NationalSdk) -> None:
    rc, values = sdk.iR_DF02EF05Info()
    assert rc == OK
    alerts = dict(zip(params("DF02", "EF05"), values, strict=True))
    assert alerts["ABOXX"] == "01"
    assert alerts["XCBZ"] == "00"
    assert alerts["TNBBZ"] == "01"
    assert alerts["DXBBZ"] == "FF"  # not recorded
    assert alerts["QTYXJSMC"] == "高血压"


@pytest.mark.parametrize(
    "values",
    [
        ("1", "地址"),  # too few
        ("1", "地址", "2", "地址", "3"),  # too many
        ("X", "地址", "2", "地址"),  # cn takes digits
        ("1", "长" * 60, "2", "地址"),  # 120 GBK bytes in a 100-byte item
        ("1", "\U0001f600", "2", "地址"),  # not GBK
        (1, "地址", "2", "地址"),  # not a string
    ],
)
def test_tlv_bad_values_are_parameter_errors(sdk: NationalSdk, values: tuple[object, ...]) -> None:
    _, before = sdk.iR_DF01EF05Info()
    assert sdk.iW_DF01EF05Info(*values) == PARA  # type: ignore[arg-type]
    assert sdk.iR_DF01EF05Info() == (OK, before)  # nothing was written


# --- cyclic files: newest first -----------------------------------------------------------------
def test_allergies_newest_first(sdk: NationalSdk) -> None:
    assert sdk.iR_DF02EF07Info(1) == (OK, ("青霉素", "皮疹、呼吸困难"))
    assert sdk.iR_DF02EF07Info(2) == (IRV.IRV_RD_RCDERR, ("", ""))  # never written
    assert sdk.iW_DF02EF07Info("花粉", "打喷嚏") == OK
    assert sdk.iR_DF02EF07Info(1) == (OK, ("花粉", "打喷嚏"))
    assert sdk.iR_DF02EF07Info(2) == (OK, ("青霉素", "皮疹、呼吸困难"))
    assert sdk.iW_DF02EF07Info("海鲜", "荨麻疹") == OK
    assert sdk.iW_DF02EF07Info("头孢", "休克") == OK  # the fourth: the oldest falls off
    assert [sdk.iR_DF02EF07Info(n)[1][0] for n in (1, 2, 3)] == ["头孢", "海鲜", "花粉"]


def test_immunizations_newest_first(sdk: NationalSdk) -> None:
    assert sdk.iR_DF02EF08Info(1) == (OK, ("乙肝疫苗(第2剂)", "19900407"))
    assert sdk.iR_DF02EF08Info(2) == (OK, ("卡介苗", "19900308"))
    assert sdk.iW_DF02EF08Info("麻疹疫苗", "19910307") == OK
    assert sdk.iR_DF02EF08Info(1) == (OK, ("麻疹疫苗", "19910307"))
    assert sdk.iR_DF02EF08Info(3) == (OK, ("卡介苗", "19900308"))
    assert sdk.iR_DF02EF08Info(10) == (IRV.IRV_RD_RCDERR, ("", ""))


@pytest.mark.parametrize("number", [0, 4, -1, "1", 1.0, True, None])
def test_allergy_record_number_out_of_range(sdk: NationalSdk, number: object) -> None:
    assert sdk.iR_DF02EF07Info(number) == (PARA, ("", ""))  # type: ignore[arg-type]


def test_immunization_bad_values(sdk: NationalSdk) -> None:
    assert sdk.iR_DF02EF08Info(11) == (PARA, ("", ""))
    assert sdk.iW_DF02EF08Info("麻疹疫苗", "1991-03-07") == PARA
    assert sdk.iW_DF02EF08Info("麻疹疫苗", "19911399") == PARA  # digits, but no date
    assert sdk.iW_DF02EF08Info("疫" * 11, "19910307") == PARA  # 22 GBK bytes in 20
    assert sdk.iR_DF02EF08Info(1) == (OK, ("乙肝疫苗(第2剂)", "19900407"))  # nothing was written


# --- DF03: index and visit records ------------------------------------------------------------------
def _field(item: Item, n: int) -> str:
    """A value that fills part of ``item`` and reads back as written."""
    if item.coding == "ans":
        text = f"院{n}" if item.length >= 6 else str(n % 10**item.length)
        return text[: item.length]
    if item.coding == "cn":
        return str(10**12 + n)[-2 * item.length :]
    return f"{n % 256:02X}" * item.length


def test_outpatient_all_info_round_trip(sdk: NationalSdk) -> None:
    assert sdk.iR_DF03EF06Info() == (OK, ("FF",) * 5)
    assert sdk.iW_DF03EF06Info(2) == OK  # mark ED02 valid first (the SDK rule)
    assert sdk.iR_DF03EF06Info() == (OK, ("FF", "00", "FF", "FF", "FF"))
    items = data_items("ED")
    text = "|".join(_field(item, n) for n, item in enumerate(items))
    assert sdk.iW_DF03ED_ALLInfo(2, text) == OK
    rc, (back,) = sdk.iR_DF03ED_ALLInfo(2)
    assert rc == OK
    assert len(back.split("|")) == 170
    assert back == text
    assert sdk.iR_DF03EDInfo(2, 0, 70, AN_style) == (OK, (_field(items[0], 0),))  # JZJGMC


def test_inpatient_all_info_round_trip(sdk: NationalSdk) -> None:
    assert sdk.iW_DF03EF05Info(3) == OK
    items = data_items("EE")
    text = "|".join(_field(item, n) for n, item in enumerate(items))
    assert sdk.iW_DF03EE_ALLInfo(3, text) == OK
    assert sdk.iR_DF03EE_ALLInfo(3) == (OK, (text,))
    assert len(text.split("|")) == 147


def test_all_info_short_string_and_padded_cn(sdk: NationalSdk) -> None:
    """As in the C SDK: fewer fields than items leave the rest empty; cn may keep its F padding."""
    assert sdk.iW_DF03EF06Info(1) == OK
    assert sdk.iW_DF03ED_ALLInfo(1, "郑州市人民医院|1234567890|20240102103000FF") == OK
    rc, (back,) = sdk.iR_DF03ED_ALLInfo(1)
    assert rc == OK
    fields = back.split("|")
    assert fields[:3] == ["郑州市人民医院", "1234567890", "20240102103000"]
    assert fields[3:6] == ["", "", ""]  # MZH, JYKSMC (ans) and YLFKFS (cn) empty


def test_all_info_too_many_fields(sdk: NationalSdk) -> None:
    assert sdk.iW_DF03EF06Info(1) == OK
    assert sdk.iW_DF03ED_ALLInfo(1, "|" * 170) == PARA
    assert sdk.iW_DF03EE_ALLInfo(1, "x" * 70) == IRV.IRV_RCINVALID  # EE01 is still FF
    assert sdk.iW_DF03EF05Info(1) == OK
    assert sdk.iW_DF03EE_ALLInfo(1, "x" * 71) == PARA  # 71 bytes in ZYJGMC (70)


def test_erase_makes_the_record_unreadable(sdk: NationalSdk) -> None:
    assert sdk.iW_DF03EF06Info(4) == OK
    assert sdk.iW_DF03EDInfo(4, "某医院", 0, 70, AN_style) == OK
    assert sdk.iErase_DF03EF06Info(4) == OK
    assert sdk.iR_DF03EF06Info()[1][3] == "FF"
    assert sdk.iR_DF03EDInfo(4, 0, 70, AN_style) == (IRV.IRV_RCINVALID, ("",))
    assert sdk.iR_DF03ED_ALLInfo(4) == (IRV.IRV_RCINVALID, ("",))
    assert isinstance(sdk.last_error, errors.RecordInvalid)
    assert sdk.iW_DF03EF06Info(4) == OK  # signed again: the data is still there
    assert sdk.iR_DF03EDInfo(4, 0, 70, AN_style) == (OK, ("某医院",))


def test_inpatient_erase(sdk: NationalSdk) -> None:
    assert sdk.iW_DF03EF05Info(1) == OK
    assert sdk.iR_DF03EF05Info() == (OK, ("00", "FF", "FF"))
    assert sdk.iErase_DF03EF05Info(1) == OK
    assert sdk.iR_DF03EF05Info() == (OK, ("FF", "FF", "FF"))
    assert sdk.iR_DF03EEInfo(1, 0, 70, AN_style) == (IRV.IRV_RCINVALID, ("",))


def test_write_to_an_invalid_slot_is_refused_and_sends_nothing(sdk: NationalSdk) -> None:
    assert sdk.iW_DF03EDInfo(3, "某医院", 0, 70, AN_style) == IRV.IRV_RCINVALID
    assert sdk.iW_DF03ED_ALLInfo(3, "某医院") == IRV.IRV_RCINVALID
    assert sdk.iW_DF03EF06Info(3) == OK
    assert sdk.iR_DF03EDInfo(3, 0, 70, AN_style) == (OK, ("",))  # still blank


def test_partial_reads_and_writes_by_style(sdk: NationalSdk) -> None:
    assert sdk.iW_DF03EF05Info(2) == OK
    assert sdk.iW_DF03EEInfo(2, "河南省人民医院", 0, 70, AN_style) == OK
    assert sdk.iW_DF03EEInfo(2, "20240315", 80, 4, CN_style) == OK  # RYRQ
    assert sdk.iW_DF03EEInfo(2, "0102", 1066, 2, B_style) == OK  # SJBZ, SZBZ
    assert sdk.iW_DF03EEInfo(2, "12", 84, 2, NO_style) == OK  # ZYHZZYCS: hex, 00-padded
    assert sdk.iR_DF03EEInfo(2, 0, 70, AN_style) == (OK, ("河南省人民医院",))
    assert sdk.iR_DF03EEInfo(2, 80, 4, CN_style) == (OK, ("20240315",))
    assert sdk.iR_DF03EEInfo(2, 80, 4, B_style) == (OK, ("20240315",))
    assert sdk.iR_DF03EEInfo(2, 1066, 2, B_style) == (OK, ("0102",))
    assert sdk.iR_DF03EEInfo(2, 84, 2, NO_style) == (OK, ("1200",))
    assert sdk.iW_DF03EEInfo(2, "2024", 80, 4, CN_style) == OK
    assert sdk.iR_DF03EEInfo(2, 80, 4, B_style) == (OK, ("2024FFFF",))
    assert sdk.iR_DF03EEInfo(2, 80, 4, CN_style) == (OK, ("2024",))
    # the last data byte is in reach, the signature is not
    assert sdk.iR_DF03EEInfo(2, 1638, 1, B_style)[0] == OK
    assert sdk.iW_DF03EF06Info(5) == OK
    assert sdk.iR_DF03EDInfo(5, 3000, 13, B_style)[0] == OK


@pytest.mark.parametrize(
    ("kind", "number", "pos", "length", "style"),
    [
        ("EE", 1, 1600, 40, AN_style),  # 1640 > 1639
        ("EE", 1, 1639, 1, B_style),  # the signature
        ("ED", 1, 3000, 14, AN_style),  # 3014 > 3013
        ("ED", 1, 3013, 64, B_style),
        ("EE", 0, 0, 70, AN_style),
        ("EE", 4, 0, 70, AN_style),
        ("ED", 6, 0, 70, AN_style),
        ("ED", -1, 0, 70, AN_style),
        ("ED", 1, -1, 10, AN_style),
        ("ED", 1, 0, 0, AN_style),
        ("ED", 1, 0, 70, 0x02),
        ("ED", "1", 0, 70, AN_style),
        ("ED", 1, 0.0, 70, AN_style),
        ("ED", 1, 0, 70, None),
    ],
)
def test_visit_bad_parameters(
    sdk: NationalSdk, kind: str, number: object, pos: object, length: object, style: object
) -> None:
    for n in (1, 2, 3):  # valid slots, so that only the parameters are wrong
        assert getattr(sdk, f"iW_DF03EF0{5 if kind == 'EE' else 6}Info")(n) == OK
    read = getattr(sdk, f"iR_DF03{kind}Info")
    write = getattr(sdk, f"iW_DF03{kind}Info")
    assert read(number, pos, length, style) == (PARA, ("",))
    assert write(number, "x", pos, length, style) == PARA
    assert isinstance(sdk.last_error, errors.InvalidValue)


@pytest.mark.parametrize(
    ("data", "length", "style"),
    [
        ("郑州市第一人民医院郑州市第一人民医院", 10, AN_style),  # too long
        ("2024A", 4, CN_style),  # not a digit
        ("202401011", 4, CN_style),  # 9 digits in 4 bytes
        ("0G", 1, B_style),  # not hex
        ("010", 2, B_style),  # odd hex
        ("010203", 2, NO_style),  # 3 bytes in 2
        (b"\x01", 1, B_style),  # not a string
    ],
)
def test_visit_bad_data(sdk: NationalSdk, data: object, length: int, style: int) -> None:
    assert sdk.iW_DF03EF06Info(1) == OK
    assert sdk.iW_DF03EDInfo(1, data, 0, length, style) == PARA  # type: ignore[arg-type]
    assert sdk.iR_DF03EDInfo(1, 0, 4, B_style) == (OK, ("00000000",))  # nothing was written


@pytest.mark.parametrize("number", [0, 6, "2", None])
def test_index_bad_record_number(sdk: NationalSdk, number: object) -> None:
    assert sdk.iW_DF03EF06Info(number) == PARA  # type: ignore[arg-type]
    assert sdk.iErase_DF03EF06Info(number) == PARA  # type: ignore[arg-type]
    assert sdk.iR_DF03ED_ALLInfo(number) == (PARA, ("",))  # type: ignore[arg-type]
    assert sdk.iW_DF03ED_ALLInfo(number, "") == PARA  # type: ignore[arg-type]
    assert sdk.iW_DF03EF05Info(4) == PARA
    assert sdk.iR_DF03EF06Info() == (OK, ("FF",) * 5)


# --- errors never escape ---------------------------------------------------------------------------
class _Broken(Transport):
    """A card link that fails on every exchange with ``error``."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def connect(self) -> bytes:
        return b""

    def _exchange(self, raw: bytes) -> bytes:
        raise self.error


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.TransportError("reader gone"), IRV.IRV_CARD_ERR),
        (RuntimeError("a bug"), IRV.IRV_DEBUGERR),
    ],
)
def test_no_sdk_function_raises(terminal: HealthCardTerminal, error: Exception, code: IRV) -> None:
    sdk = NationalSdk(terminal)
    terminal.card = _Broken(error)
    calls = [
        sdk.iR_DDF1EF05Info(), sdk.iR_DDF1EF06Info(), sdk.iR_DF01EF06Info(), sdk.iR_DF02EF05Info(),
        sdk.iR_DF02EF07Info(1), sdk.iR_DF03EF06Info(), sdk.iR_DF03EDInfo(1, 0, 70, AN_style),
        sdk.iR_DF03EE_ALLInfo(1), sdk.iR_DDF1EF07Info(),
    ]  # fmt: skip
    assert [rc for rc, _ in calls] == [code] * len(calls)
    assert sdk.iR_DF01EF07Info() == (code, ("", "", ""))
    assert sdk.iW_DDF1EF08Info("20401231", "", "", "", "", "") == code
    assert sdk.iW_DF02EF07Info("花粉", "打喷嚏") == code
    assert sdk.iW_DF03EF06Info(1) == code
    assert sdk.iErase_DF03EF05Info(1) == code
    assert sdk.iW_DF03ED_ALLInfo(1, "") == code
    last = sdk.last_error  # a lost link comes back as CardRemoved naming the step, caused by it
    assert last is error or (isinstance(last, errors.CardRemoved) and last.__cause__ is error)


@pytest.mark.parametrize(
    ("error", "op", "code"),
    [
        (errors.FileNotFound(0x6A82), Op.READ_RECORD, IRV.IRV_NO_FILE),
        (errors.AuthenticationFailed(0x63C2), Op.READ_BINARY, IRV.IRV_IRK_VERR),
        (errors.AuthenticationBlocked(0x6983), Op.WRITE_RECORD, IRV.IRV_IRK_VERR),
        (errors.SamError(0x6A82), Op.READ_RECORD, IRV.IRV_PSAM_ERR),  # a SamError is not the card's file
        (errors.InvalidValue("XM", "too long"), Op.WRITE_RECORD, IRV.IRV_PARA_ERR),
        (errors.EncodingError("KYXQ", "not digits"), Op.WRITE_RECORD, IRV.IRV_PARA_ERR),
        (errors.RecordInvalid("ED01 FF"), Op.READ_BINARY, IRV.IRV_RCINVALID),
        (errors.RecordNotFound(0x6A83), Op.READ_RECORD, IRV.IRV_RD_RCDERR),
        (errors.WrongParameters(0x6B00), Op.READ_BINARY, IRV.IRV_RD_BINERR),
        (errors.ConditionsNotSatisfied(0x6985), Op.WRITE_RECORD, IRV.IRV_WR_RCDERR),
        (errors.SecurityNotSatisfied(0x6982), Op.WRITE_BINARY, IRV.IRV_WR_BINERR),
        (errors.SecureMessagingError(0x6988), Op.SIGN_INDEX, IRV.IRV_W_DF03EF05ERR),
        (errors.SecurityNotSatisfied(0x6982), Op.ERASE_INDEX, IRV.IRV_ER_DF03EF05ERR),
        (errors.InvalidValue("DDF1/EF07/photo", "length"), Op.READ_PHOTO, IRV.IRV_DDF1EF07_DATAERR),
        (errors.WrongParameters(0x6B00), Op.READ_PHOTO, IRV.IRV_RD_BINERR),
        (errors.CardBlocked(0x6A81), Op.READ_RECORD, IRV.IRV_CARD_ERR),
        (errors.CardError(0x6F00), Op.WRITE_BINARY, IRV.IRV_CARD_ERR),
        (errors.TransportError("gone"), Op.READ_RECORD, IRV.IRV_CARD_ERR),
        (errors.CryptoError("bad padding"), Op.READ_RECORD, IRV.IRV_CARD_ERR),
        (KeyError("x"), Op.READ_RECORD, IRV.IRV_DEBUGERR),
    ],
)
def test_exception_table(error: Exception, op: Op, code: IRV) -> None:
    assert irv_for(error, op) is code


def test_return_codes_are_the_sdk_numbers() -> None:
    assert {c.name: int(c) for c in IRV} == {
        "IRV_OK": 0, "IRV_PARA_ERR": 101, "IRV_NO_FILE": 102, "IRV_RD_RCDERR": 103, "IRV_CARD_ERR": 104,
        "IRV_PSAM_ERR": 105, "IRV_IRK_VERR": 106, "IRV_RD_BINERR": 107, "IRV_WR_RCDERR": 108,
        "IRV_WR_BINERR": 109, "IRV_W_DF03EF05ERR": 110, "IRV_ER_DF03EF05ERR": 111, "IRV_RCINVALID": 112,
        "IRV_DDF1EF07_DATAERR": 113, "IRV_DEBUGERR": 1024,
    }  # fmt: skip
    assert (NO_style, AN_style, CN_style, B_style) == (0x00, 0x01, 0x0F, 0xFF)
