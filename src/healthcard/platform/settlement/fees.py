"""The fee lines a settled bill leaves in the visit record — the card's ED fee lines (门诊费用
分类 ×10) and EE fee lines and totals (住院费用分类 ×20, 住院总费用 and nine category totals).
How those lines are laid out on the card (:func:`ee_fee_items`, :data:`EE_TOTALS`) is the
visit record's business and lives in :mod:`healthcard.platform.records`; it is re-exported
here beside the categories it totals.

WS 364.13 CV07.10.001 (费用分类代码) is one digit on the card, and its value list was not
retrieved (CARD-SPEC.md §11).  The card itself names the categories an inpatient record totals
(DF03/EE, offset 1589: 床位费, 护理费, 西药费, 中药费, 化验费, 诊疗费, 手术费, 检查费, 其他), so the
codes here follow that order, 1 to 9, and every category a settlement writes is one of them.

A catalog item's *kind* decides its category (docs/settlement.md):

=============  =====  ==========  ====================================================================
kind           code   category    why
=============  =====  ==========  ====================================================================
``drug``       3      西药费      the catalog's drugs are Western drugs (a 中药 catalog would add 4)
``service``    6      诊疗费      examinations, treatment, beds and operations are all services in
                                  the demo catalog; one category keeps the card's ten ED lines free
``material``   9      其他费用    卫生材料费 has no total of its own on the card
=============  =====  ==========  ====================================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from healthcard.platform.records import EE_TOTALS, FeeLine, ee_fee_items

#: CV07.10.001 as this platform writes it: code → category name (the order of the EE totals)
CATEGORIES: Mapping[str, str] = {
    "1": "床位费",
    "2": "护理费",
    "3": "西药费",
    "4": "中药费",
    "5": "化验费",
    "6": "诊疗费",
    "7": "手术费",
    "8": "检查费",
    "9": "其他费用",
}
#: catalog item kind → category code
BY_KIND: Mapping[str, str] = {"drug": "3", "service": "6", "material": "9"}
#: the payment method the visit record carries once the NCMS settled it (CV07.10.003)
NCMS_PAYMENT = "03"


@dataclass(frozen=True)
class Priced:
    """A settled line as far as the card cares: its category code and amount."""

    fee_category: str
    amount_fen: int


def category_of(kind: str) -> str:
    """The CV07.10.001 code of a catalog kind (drug / service / material)."""
    return BY_KIND[kind]


def fee_lines(lines: Iterable[Priced]) -> list[FeeLine]:
    """The bill summed by category, in code order: the visit record's ``fees``."""
    sums: dict[str, int] = {}
    for line in lines:
        sums[line.fee_category] = sums.get(line.fee_category, 0) + line.amount_fen
    return [FeeLine(CATEGORIES[code], code, sums[code]) for code in sorted(sums) if sums[code]]


__all__ = [
    "BY_KIND",
    "CATEGORIES",
    "EE_TOTALS",
    "NCMS_PAYMENT",
    "Priced",
    "category_of",
    "ee_fee_items",
    "fee_lines",
]
