"""Which settlements the NCMS office should look at — the openIMIS review rules, with the
figures of the pool's policy file (``review``):

* **random**: a share of all settlements (``random_percent``, 5 % in the demo), chosen by the
  SM3 hash of the settlement's institution and idempotency key — deterministic, so a retried
  request is flagged the same way and an auditor can recompute the sample, yet no cashier can
  steer it without changing the key;
* **threshold**: a bill whose total is above ``threshold_fen``;
* **outlier**: a bill above ``outlier_percent`` of the average total for the same primary
  diagnosis in the pool and year, once that diagnosis has ``outlier_min_sample`` settlements.

The first two are decided when the bill is settled (:func:`flags`, pure, stored in
``settlements.review``).  The third depends on every other settlement of the year — the average
moves as the year goes on — so the office view computes it in SQL when it lists the flagged
settlements (:mod:`healthcard.platform.settlement.office`) rather than freezing an early
average into the row; it also keeps a scan of the year's settlements off the cashier's path.
"""

from __future__ import annotations

from healthcard.keys import sm3
from healthcard.platform.settlement.policy import Review

RANDOM = "random"
THRESHOLD = "threshold"
OUTLIER = "outlier"


def sample_point(institution_code: str, idempotency_key: str) -> int:
    """0–9999: where the settlement falls in the random sample (SM3 of institution and key)."""
    digest = sm3(f"{institution_code}\x00{idempotency_key}".encode())
    return int.from_bytes(digest[:4], "big") % 10_000


def flags(rules: Review, *, institution_code: str, idempotency_key: str, total_fen: int) -> str | None:
    """Why a new settlement is reviewed (``"random"``, ``"threshold"``, both comma-separated),
    or None."""
    reasons = []
    if sample_point(institution_code, idempotency_key) < rules.random_percent * 100:
        reasons.append(RANDOM)
    if total_fen > rules.threshold_fen:
        reasons.append(THRESHOLD)
    return ",".join(reasons) or None


__all__ = ["OUTLIER", "RANDOM", "THRESHOLD", "flags", "sample_point"]
