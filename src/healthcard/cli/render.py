"""Rich renderings of what a terminal reads from a card."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from healthcard.card.profile import Profile
from healthcard.codes import meaning
from healthcard.terminal.records import OutpatientRecord
from healthcard.terminal.sdk import HealthCardTerminal

TLV_FILES = [
    ("DDF1", "EF05"),
    ("DDF1", "EF06"),
    ("DDF1", "EF08"),
    ("DF01", "EF05"),
    ("DF01", "EF06"),
    ("DF01", "EF07"),
    ("DF01", "EF08"),
    ("DF02", "EF05"),
    ("DF02", "EF06"),
]


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    return table


def _shorten(text: str, width: int = 48) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def card_tables(terminal: HealthCardTerminal, profile: Profile) -> list[Table]:
    """One table per file: every data item with its tag, decoded value and meaning."""
    tables = []
    for df, ef in TLV_FILES:
        spec = profile.file(df, ef)
        table = _table(f"{df}/{ef} {spec.title}", "tag", "item", "数据项", "value", "meaning")
        values = terminal.read_items(df, ef)
        for item in profile.items(df, ef):
            value = values.get(item.name, "")
            mean = meaning(item.valueset, value) if item.valueset and value else None
            table.add_row(
                f"{item.tag:02X}" if item.tag is not None else "",
                item.name,
                item.name_cn,
                _shorten(value),
                mean or "",
            )
        tables.append(table)
    photo = terminal.read_photo()
    t = _table("DDF1/EF07 照片", "JPEG bytes", "starts")
    t.add_row(str(len(photo)), photo[:4].hex().upper())
    tables.append(t)
    allergies = _table("DF02/EF07 过敏基本数据 (newest first)", "#", "过敏物质", "过敏反应")
    for n, a in enumerate(terminal.read_allergies(), start=1):
        allergies.add_row(str(n), a.allergen, a.reaction)
    tables.append(allergies)
    shots = _table("DF02/EF08 免疫基本数据 (newest first)", "#", "疫苗", "日期")
    for n, i in enumerate(terminal.read_immunizations(), start=1):
        shots.add_row(str(n), i.vaccine, str(i.date or ""))
    tables.append(shots)
    visits = _table("DF03 诊疗记录 index", "file", "valid")
    for kind in ("EE", "ED"):
        for n, valid in enumerate(terminal.read_visit_index(kind), start=1):
            visits.add_row(f"{kind}{n:02d}", "00 valid" if valid else "FF invalid")
    tables.append(visits)
    for n, valid in enumerate(terminal.read_visit_index("ED"), start=1):
        if valid:
            tables.append(outpatient_table(terminal.read_outpatient(n)))
    return tables


def outpatient_table(record: OutpatientRecord) -> Table:
    t = _table(f"DF03/ED{record.slot:02d} 门诊信息", "item", "value")
    t.add_row("就诊机构", f"{record.institution_name} ({record.institution_code})")
    t.add_row("就诊时间", str(record.visit_time or ""))
    t.add_row("门诊号 / 科室", f"{record.outpatient_no} / {record.department}")
    t.add_row("付款方式", str(record.payment_method or ""))
    for d in record.diagnoses:
        t.add_row("诊断", f"{d.name} {d.code}  (症状 {d.symptom} {d.symptom_code})")
    for m in record.medications:
        t.add_row("药物", f"{m.drug} {m.dose}{m.dose_unit} {m.frequency} × {m.days} 天")
    for f in record.fees:
        t.add_row("费用", f"{f.category}: ¥{f.amount_fen // 100}.{f.amount_fen % 100:02d}")
    t.add_row("合计", f"¥{record.total_fen // 100}.{record.total_fen % 100:02d}")
    return t


def print_tables(console: Console, tables: list[Table]) -> None:
    for table in tables:
        console.print(table)
