"""The catalog of a pool and year (药品及诊疗项目目录): every drug, service and material a bill
may carry, with its class — A (甲类) fully eligible, B (乙类) eligible after the B self-pay share,
C (丙类) not eligible — and its price in fen.  Data, one file per pool and year, like the policy.

:meth:`Catalog.line` turns what the cashier enters (item code, quantity, the price charged) into
a :class:`~healthcard.platform.settlement.engine.BillLine`, refusing an unknown item, a
quantity that is not positive and a price that is not the catalog's (SETTLEMENT.md, bad input).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from healthcard.errors import InvalidValue
from healthcard.platform.settlement.engine import BillLine, ItemClass

KINDS = ("drug", "service", "material")


@dataclass(frozen=True)
class Item:
    code: str
    name: str
    kind: str  # drug | service | material
    item_class: ItemClass
    unit: str
    price_fen: int


@dataclass(frozen=True)
class Catalog:
    pool: str
    year: int
    version: int
    items: Mapping[str, Item]

    def item(self, code: str, field: str = "item") -> Item:
        found = self.items.get(code)
        if found is None:
            raise InvalidValue(field, f"{code!r} is not in the {self.pool} {self.year} catalog")
        return found

    def line(
        self, code: str, quantity: int, price_fen: int | None = None, *, at: str = "lines[0]"
    ) -> BillLine:
        """A bill line of the catalog's item; ``price_fen`` (what the cashier charged) must be the
        catalog's price when given."""
        item = self.item(code, f"{at}.item")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
            raise InvalidValue(f"{at}.quantity", f"{quantity!r}: a positive whole quantity")
        if price_fen is not None and price_fen != item.price_fen:
            raise InvalidValue(
                f"{at}.unit_price_fen",
                f"{price_fen} fen: the catalog's price of {item.name} is {item.price_fen} fen",
            )
        return BillLine(item.code, item.item_class, quantity, item.price_fen)


def parse_catalog(data: Mapping[str, Any]) -> Catalog:
    items: dict[str, Item] = {}
    raw = data.get("items")
    if not isinstance(raw, list):
        raise InvalidValue("items", "a list of catalog items")
    for n, entry in enumerate(raw):
        at = f"items[{n}]"
        if not isinstance(entry, Mapping):
            raise InvalidValue(at, "an object")
        code, name = entry.get("code"), entry.get("name")
        if not isinstance(code, str) or not code or not isinstance(name, str) or not name:
            raise InvalidValue(f"{at}.code", "a code and a name")
        if code in items:
            raise InvalidValue(f"{at}.code", f"{code} is listed twice")
        try:
            item_class = ItemClass(str(entry.get("class")))
        except ValueError:
            raise InvalidValue(f"{at}.class", f"{entry.get('class')!r}: A, B or C") from None
        kind, price = entry.get("kind"), entry.get("price_fen")
        if kind not in KINDS:
            raise InvalidValue(f"{at}.kind", f"{kind!r}: one of {', '.join(KINDS)}")
        if not isinstance(price, int) or isinstance(price, bool) or price < 0:
            raise InvalidValue(f"{at}.price_fen", f"{price!r}: whole fen, not negative")
        items[code] = Item(code, name, kind, item_class, str(entry.get("unit", "")), price)
    pool, year, version = data.get("pool"), data.get("year"), data.get("version", 1)
    if not isinstance(pool, str) or not isinstance(year, int) or not isinstance(version, int):
        raise InvalidValue("catalog", "pool, year and version")
    return Catalog(pool, year, version, items)


def load_catalog(pool: str = "demo", year: int = 2026) -> Catalog:
    name = f"{pool}-{year}.json"
    try:
        text = resources.files("healthcard.platform").joinpath("data", "catalogs", name).read_text("utf-8")
    except FileNotFoundError:
        raise InvalidValue("catalog", f"no catalog for pool {pool!r} in {year}") from None
    return parse_catalog(json.loads(text))
