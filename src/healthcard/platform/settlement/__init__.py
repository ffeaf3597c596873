"""NCMS (新农合) instant settlement (SETTLEMENT.md): the policy as data (:mod:`.policy`) and the
rules as a pure calculation (:mod:`.engine`).  The ledger, the accumulators and the cashier's
service build on these."""

from healthcard.platform.settlement.engine import BillLine, Claim, ItemClass, Outcome, YearToDate, settle
from healthcard.platform.settlement.policy import Benefit, Level, Policy, Visit, load_policy, parse_policy

__all__ = [
    "Benefit",
    "BillLine",
    "Claim",
    "ItemClass",
    "Level",
    "Outcome",
    "Policy",
    "Visit",
    "YearToDate",
    "load_policy",
    "parse_policy",
    "settle",
]
