"""NCMS (新农合) instant settlement (SETTLEMENT.md): the policy as data (:mod:`.policy`) and the
rules as a pure calculation (:mod:`.engine`), the catalog of items with their class and price
(:mod:`.catalog`).  The ledger, the accumulators and the cashier's
service build on these."""

from healthcard.platform.settlement.catalog import Catalog, Item, load_catalog, parse_catalog
from healthcard.platform.settlement.engine import BillLine, Claim, ItemClass, Outcome, YearToDate, settle
from healthcard.platform.settlement.policy import Benefit, Level, Policy, Visit, load_policy, parse_policy

__all__ = [
    "Benefit",
    "BillLine",
    "Catalog",
    "Claim",
    "Item",
    "ItemClass",
    "Level",
    "Outcome",
    "Policy",
    "Visit",
    "YearToDate",
    "load_catalog",
    "load_policy",
    "parse_catalog",
    "parse_policy",
    "settle",
]
