"""The fee lines a settled bill leaves for the card: catalog kinds to CV07.10.001 categories,
summed by category for the ED lines, and the EE fee lines and totals of an admission — which the
terminal's EE encoder accepts as they are."""

from __future__ import annotations

from healthcard.platform.records import FeeLine
from healthcard.platform.settlement import fees
from healthcard.platform.settlement.catalog import load_catalog
from healthcard.terminal.sdk import decode_visit, encode_visit


def test_every_catalog_kind_has_a_category_and_every_category_an_ee_total() -> None:
    catalog = load_catalog("demo", 2026)
    assert {fees.category_of(item.kind) for item in catalog.items.values()} <= set(fees.CATEGORIES)
    assert set(fees.EE_TOTALS) == set(fees.CATEGORIES)
    assert [fees.category_of(k) for k in ("drug", "service", "material")] == ["3", "6", "9"]


def test_lines_are_summed_by_category_in_code_order() -> None:
    lines = [fees.Priced("6", 500), fees.Priced("3", 850), fees.Priced("3", 850), fees.Priced("9", 0)]
    assert fees.fee_lines(lines) == [FeeLine("西药费", "3", 1700), FeeLine("诊疗费", "6", 500)]
    assert fees.fee_lines([]) == []


def test_an_admission_gives_the_ee_fee_lines_and_totals() -> None:
    stay = [FeeLine("西药费", "3", 12_345), FeeLine("诊疗费", "6", 180_000), FeeLine("其他费用", "9", 250)]
    values = fees.ee_fee_items(stay, "03")
    assert values["ZYFYYLFKFSDM"] == "03"
    assert (values["ZYFYFL1"], values["ZYFYFLDM1"], values["ZYFYJE1"]) == ("西药费", "3", "12345")
    assert values["ZYZFY"] == "192595"
    assert (values["ZYXYF"], values["ZYZLF"], values["QTZYFY"], values["CWF"]) == (
        "12345",
        "180000",
        "250",
        "0",
    )
    decoded = decode_visit("EE", encode_visit("EE", values))
    assert (decoded["ZYZFY"], decoded["ZYFYFL2"], decoded["ZYZLF"]) == ("192595", "诊疗费", "180000")


def test_more_than_twenty_lines_still_total_and_an_unknown_code_counts_as_other() -> None:
    stay = [FeeLine("西药费", "3", 1)] * 21 + [FeeLine("旧分类", "0", 7)]
    values = fees.ee_fee_items(stay, None)
    assert "ZYFYFL21" not in values and "ZYFYYLFKFSDM" not in values
    assert (values["ZYZFY"], values["ZYXYF"], values["QTZYFY"]) == ("28", "21", "7")
