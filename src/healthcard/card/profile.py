"""The health-card profile as data (CARD-SPEC.md §3–4, DECISIONS.md §1).

The file tree (every DF and EF with its kind, size, record count, access conditions and secure
messaging) and every data item (tag, record, offset, length, coding) are data here and in
``card/data/*.csv``; the personaliser builds a card from them, the terminal reads and writes
through them.  Two variants: the 32K card (EE01–EE03, ED01–ED05 with the 254-byte signature
and certificate tails) and the 8K card (EE01 and ED01 only, no tail).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources

from healthcard.card.filesystem import FREE, NEVER, PERSO, FileKind, SMLevel
from healthcard.errors import InvalidValue

DDF1_NAME = b"WS.SYS.DDF01"
AIDS = {
    "DF01": bytes.fromhex("915600013200"),
    "DF02": bytes.fromhex("915600013201"),
    "DF03": bytes.fromhex("915600013202"),
}
DF_FIDS = {"DDF1": 0xDDF1, "DF01": 0xDF01, "DF02": 0xDF02, "DF03": 0xDF03}

# card key ids (CARD-SPEC.md §5.1): DDF1 read 04, update 05; in DF01–DF03 read 84, update 85–87
RK_DDF1, UK_DDF1 = 0x04, 0x05
RK, UK1, UK2, UK3 = 0x84, 0x85, 0x86, 0x87

#: spec signature/certificate tail of EE/ED files (DECISIONS.md §19)
SIGNATURE_LENGTH = 64
CERTIFICATE_LENGTH = 190
EE_DATA_LENGTH = 1639
ED_DATA_LENGTH = 3013


@dataclass(frozen=True)
class Item:
    """One data item. TLV items have a ``tag`` and a ``record``; cyclic-record and EE/ED items
    have an ``offset`` inside the record or file."""

    df: str
    ef: str  # "EF05".."EF08", or "EE" / "ED" for the visit files
    name: str  # English snake_case name, unique within its file
    name_cn: str
    param: str  # SDK parameter / XML tag
    length: int
    coding: str  # ans | cn | b
    tag: int | None = None
    record: int | None = None
    offset: int | None = None
    item_id: int | None = None  # SDK item id (wsc_GetCardInfo), EE/ED items
    valueset: str | None = None


@dataclass(frozen=True)
class EFSpec:
    df: str
    name: str  # "EF05", "EE01", "ED03"…
    fid: int
    kind: FileKind
    read: int
    update: int
    erase: int = NEVER
    sm: SMLevel = SMLevel.NONE
    size: int = 0  # transparent size / TLV capacity
    record_length: int = 0
    record_count: int = 0
    title: str = ""


@dataclass(frozen=True)
class Profile:
    name: str
    version: int
    visits_in: int  # number of EE files
    visits_out: int  # number of ED files
    tail: bool  # EE/ED carry the signature + SAM certificate tail

    @property
    def id(self) -> str:
        return f"{self.name}/{self.version}"

    @property
    def ee_size(self) -> int:
        return EE_DATA_LENGTH + (SIGNATURE_LENGTH + CERTIFICATE_LENGTH if self.tail else 0)

    @property
    def ed_size(self) -> int:
        return ED_DATA_LENGTH + (SIGNATURE_LENGTH + CERTIFICATE_LENGTH if self.tail else 0)

    def items(self, df: str, ef: str) -> list[Item]:
        return [i for i in tlv_items() if i.df == df and i.ef == ef]

    def files(self) -> list[EFSpec]:
        """Every EF of the profile, in creation order."""
        tlv = FileKind.TLV_RECORD

        def capacity(df: str, ef: str) -> int:
            return sum(i.length + 2 for i in self.items(df, ef))

        def t(df: str, ef: str, read: int, update: int, sm: SMLevel, title: str) -> EFSpec:
            return EFSpec(
                df, ef, int(ef[2:], 16) | 0xEF00, tlv, read, update, sm=sm, size=capacity(df, ef), title=title
            )

        def index(ef: str, count: int, title: str) -> EFSpec:
            """A DF03 visit index: one byte per EE/ED file, 00 valid / FF invalid."""
            return EFSpec(
                "DF03",
                ef,
                int(ef[2:], 16) | 0xEF00,
                FileKind.LINEAR_FIXED,
                RK,
                UK1,
                erase=UK2,
                sm=SMLevel.MAC,
                record_length=1,
                record_count=count,
                title=title,
            )

        em = SMLevel.ENC_MAC
        out = [
            t("DDF1", "EF05", FREE, PERSO, SMLevel.NONE, "发卡机构基本数据文件"),
            t("DDF1", "EF06", RK_DDF1, PERSO, SMLevel.NONE, "持卡人基本信息数据文件"),
            EFSpec("DDF1", "EF07", 0xEF07, FileKind.TRANSPARENT, RK_DDF1, UK_DDF1, size=3074, title="照片"),
            t("DDF1", "EF08", RK_DDF1, UK_DDF1, em, "持卡人支付信息/有效期"),
            t("DF01", "EF05", RK, UK1, em, "地址信息"),
            t("DF01", "EF06", RK, UK1, em, "联系人信息"),
            t("DF01", "EF07", RK, UK1, em, "职业婚姻信息"),
            t("DF01", "EF08", RK, UK1, em, "证件记录信息"),
            t("DF02", "EF05", RK, UK1, em, "临床基本数据(医学警示)"),
            t("DF02", "EF06", RK, UK2, em, "特殊信息数据"),
            EFSpec(
                "DF02",
                "EF07",
                0xEF07,
                FileKind.CYCLIC,
                RK,
                UK3,
                sm=em,
                record_length=120,
                record_count=3,
                title="过敏基本数据",
            ),
            EFSpec(
                "DF02",
                "EF08",
                0xEF08,
                FileKind.CYCLIC,
                RK,
                UK3,
                sm=em,
                record_length=24,
                record_count=10,
                title="免疫基本数据",
            ),
            index("EF05", self.visits_in, "住院信息索引"),
            index("EF06", self.visits_out, "门诊信息索引"),
        ]
        out += [
            EFSpec(
                "DF03",
                f"EE{n:02d}",
                0xEE00 | n,
                FileKind.TRANSPARENT,
                RK,
                UK1,
                size=self.ee_size,
                title=f"住院信息{n}",
            )
            for n in range(1, self.visits_in + 1)
        ]
        out += [
            EFSpec(
                "DF03",
                f"ED{n:02d}",
                0xED00 | n,
                FileKind.TRANSPARENT,
                RK,
                UK1,
                size=self.ed_size,
                title=f"门诊信息{n}",
            )
            for n in range(1, self.visits_out + 1)
        ]
        return out

    def file(self, df: str, name: str) -> EFSpec:
        for spec in self.files():
            if spec.df == df and spec.name == name:
                return spec
        raise InvalidValue(f"{df}/{name}", f"no such file in the {self.id} profile")


PROFILE_32K = Profile("health-card-32k", 1, visits_in=3, visits_out=5, tail=True)
PROFILE_8K = Profile("health-card-8k", 1, visits_in=1, visits_out=1, tail=False)
PROFILES = {p.id: p for p in (PROFILE_32K, PROFILE_8K)}


def _rows(name: str) -> list[dict[str, str]]:
    text = resources.files("healthcard.card").joinpath(f"data/{name}").read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


@cache
def tlv_items() -> tuple[Item, ...]:
    """Every item of the TLV record files and of the two cyclic files (``tlv_items.csv``)."""
    items = []
    for r in _rows("tlv_items.csv"):
        at_offset = r["tag"].startswith("@")
        items.append(
            Item(
                df=r["df"],
                ef=r["ef"],
                name=r["name_en"],
                name_cn=r["name_cn"],
                param=r["param"],
                length=int(r["length"]),
                coding=r["coding"],
                tag=None if at_offset else int(r["tag"], 16),
                record=int(r["record"]),
                offset=int(r["tag"][1:]) if at_offset else None,
                valueset=r["valueset"] or None,
            )
        )
    return tuple(items)


def _visit_name(tag: str) -> str:
    return tag.lower()


@cache
def visit_items(kind: str) -> tuple[Item, ...]:
    """The items of the EE (inpatient, ``kind="EE"``) or ED (outpatient, ``"ED"``) files."""
    prefix = {"EE": "EE01-EE03", "ED": "ED01-ED05"}[kind]
    return tuple(
        Item(
            df="DF03",
            ef=kind,
            name=_visit_name(r["tag"]),
            name_cn=r["name_cn"],
            param=r["tag"],
            length=int(r["length"]),
            coding=r["coding"],
            offset=int(r["offset"]),
            item_id=int(r["item_id"]),
        )
        for r in _rows("ee_ed_layout.csv")
        if r["file"] == prefix
    )


def visit_item(kind: str, param: str) -> Item:
    return next(i for i in visit_items(kind) if i.param == param)


def item(df: str, ef: str, name: str) -> Item:
    """A TLV/cyclic item by its English name."""
    for i in tlv_items():
        if i.df == df and i.ef == ef and i.name == name:
            return i
    raise KeyError(f"{df}/{ef}/{name}")


#: the DF02/EF05 medical-alert flags in card order (``01`` yes, ``00`` no, ``FF`` not recorded)
ALERT_FLAGS: tuple[str, ...] = tuple(
    i.name for i in tlv_items() if i.df == "DF02" and i.ef == "EF05" and i.valueset == "alert_flag"
)
