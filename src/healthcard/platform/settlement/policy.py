"""NCMS (新农合) reimbursement policies as data: one versioned file per pool and year.

A policy says, per institution level and visit type, the deductible (起付线) and the
reimbursement ratio (报销比例) — or that the fund pays nothing there ("—" in SETTLEMENT.md) —
the self-pay share of B-class (乙类) items, the annual fund cap (封顶线), the annual outpatient
cap, the village outpatient daily cap, and the ratio adjustments for care outside the pool and
for going up a level without a referral.  Real policies change every year and differ by pool,
so nothing of it is code: :func:`load_policy` reads ``platform/data/policies/<pool>-<year>.json``
(the example policy of SETTLEMENT.md ships as ``demo-2026.json``) or any file given.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

from healthcard.errors import InvalidValue


class Level(StrEnum):
    """The five levels of medical institution (ARCHITECTURE.md §1)."""

    VILLAGE = "village"  # 村卫生室
    TOWNSHIP = "township"  # 乡镇卫生院
    COUNTY = "county"  # 县级
    CITY = "city"  # 市级
    PROVINCE = "province"  # 省级


class Visit(StrEnum):
    OUTPATIENT = "outpatient"
    INPATIENT = "inpatient"


@dataclass(frozen=True)
class Benefit:
    """What the fund does for one level and visit type."""

    deductible_fen: int
    ratio_percent: int


@dataclass(frozen=True)
class Review:
    """The NCMS office's review rules (the openIMIS ones): a deterministic random share of the
    settlements, every bill above a value, and bills far above the average for the same primary
    diagnosis in the pool and year (once that diagnosis has enough settlements to average)."""

    random_percent: int = 5
    threshold_fen: int = 1_000_000  # a bill (total) above this is reviewed
    outlier_percent: int = 300  # above this share of the diagnosis' average total
    outlier_min_sample: int = 20  # settlements of the diagnosis before the average counts


@dataclass(frozen=True)
class Policy:
    pool: str
    year: int
    version: int
    name: str
    b_self_pay_percent: int
    annual_fund_cap_fen: int
    outpatient_annual_cap_fen: int
    village_outpatient_daily_cap_fen: int
    benefits: Mapping[tuple[Level, Visit], Benefit]  # a pair not listed: not covered
    outside_with_referral_points: int
    outside_without_referral_points: int
    upward_levels: frozenset[Level]  # inside the pool, without a referral from below: …
    upward_visit: Visit
    upward_points: int  # … these points off the ratio
    #: the pool's area (GB/T 2260 prefixes): an institution whose area code starts with one of
    #: them is inside the pool, any other is outside (cross-region care)
    areas: tuple[str, ...] = ()
    review: Review = Review()

    def covers(self, area_code: str | None) -> bool:
        """Is an institution of ``area_code`` inside the pool?"""
        if not area_code:
            return False
        return any(area_code.startswith(prefix) for prefix in self.areas)

    def benefit(self, level: Level, visit: Visit) -> Benefit | None:
        return self.benefits.get((level, visit))


def _int(data: Mapping[str, Any], key: str, where: str, *, low: int = 0, high: int = 10**12) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidValue(f"{where}{key}", f"{value!r}: an integer from {low} to {high}")
    return value


def parse_policy(data: Mapping[str, Any]) -> Policy:
    """A policy from its JSON form; every figure checked (field-named refusals)."""
    if not isinstance(data, Mapping):
        raise InvalidValue("policy", "a JSON object")
    pool = data.get("pool")
    if not isinstance(pool, str) or not pool:
        raise InvalidValue("pool", "the pool's name")
    benefits: dict[tuple[Level, Visit], Benefit] = {}
    raw = data.get("benefits")
    if not isinstance(raw, Mapping):
        raise InvalidValue("benefits", "an object of level → visit type → {deductible_fen, ratio_percent}")
    for level_name, visits in raw.items():
        try:
            level = Level(level_name)
        except ValueError:
            raise InvalidValue("benefits", f"{level_name!r} is not a level") from None
        if not isinstance(visits, Mapping):
            raise InvalidValue(f"benefits.{level_name}", "an object of visit type → benefit")
        for visit_name, figures in visits.items():
            try:
                visit = Visit(visit_name)
            except ValueError:
                raise InvalidValue(f"benefits.{level_name}", f"{visit_name!r} is not a visit type") from None
            where = f"benefits.{level_name}.{visit_name}."
            if not isinstance(figures, Mapping):
                raise InvalidValue(where.rstrip("."), "{deductible_fen, ratio_percent}")
            benefits[(level, visit)] = Benefit(
                _int(figures, "deductible_fen", where), _int(figures, "ratio_percent", where, high=100)
            )
    upward = data.get("inside_pool_upward_without_referral") or {}
    if not isinstance(upward, Mapping):
        raise InvalidValue("inside_pool_upward_without_referral", "an object")
    try:
        upward_levels = frozenset(Level(v) for v in upward.get("levels", ()))
        upward_visit = Visit(upward.get("visit", Visit.INPATIENT.value))
    except ValueError as exc:
        raise InvalidValue("inside_pool_upward_without_referral", str(exc)) from None
    areas = data.get("areas", [])
    if not isinstance(areas, list) or not all(
        isinstance(a, str) and a.isdigit() and len(a) in (2, 4, 6) for a in areas
    ):
        raise InvalidValue("areas", "a list of GB/T 2260 prefixes (2, 4 or 6 digits)")
    review = data.get("review", {})
    if not isinstance(review, Mapping):
        raise InvalidValue("review", "an object")
    bounds = {
        "random_percent": (0, 100),
        "threshold_fen": (0, 10**12),
        "outlier_percent": (100, 10_000),
        "outlier_min_sample": (1, 10**6),
    }
    review_rules = Review(
        **{
            name: _int(review, name, "review.", low=low, high=high)
            for name, (low, high) in bounds.items()
            if name in review
        }
    )
    return Policy(
        pool=pool,
        year=_int(data, "year", "", low=2000, high=2100),
        version=_int(data, "version", "", low=1),
        name=str(data.get("name", pool)),
        b_self_pay_percent=_int(data, "b_self_pay_percent", "", high=100),
        annual_fund_cap_fen=_int(data, "annual_fund_cap_fen", ""),
        outpatient_annual_cap_fen=_int(data, "outpatient_annual_cap_fen", ""),
        village_outpatient_daily_cap_fen=_int(data, "village_outpatient_daily_cap_fen", ""),
        benefits=benefits,
        outside_with_referral_points=_int(data, "outside_pool_with_referral_points", "", low=-100, high=0),
        outside_without_referral_points=_int(
            data, "outside_pool_without_referral_points", "", low=-100, high=0
        ),
        upward_levels=upward_levels,
        upward_visit=upward_visit,
        upward_points=_int(upward, "points", "inside_pool_upward_without_referral.", low=-100, high=0)
        if upward
        else 0,
        areas=tuple(areas),
        review=review_rules,
    )


def shipped_pools(year: int) -> list[str]:
    """The pools with a shipped policy for ``year`` (``data/policies/<pool>-<year>.json``)."""
    folder = resources.files("healthcard.platform").joinpath("data", "policies")
    suffix = f"-{year}.json"
    return sorted(p.name[: -len(suffix)] for p in folder.iterdir() if p.name.endswith(suffix))


def load_policy(pool: str = "demo", year: int = 2026, path: Path | None = None) -> Policy:
    """The policy of ``pool`` for ``year`` from the shipped files, or the file at ``path``."""
    if path is not None:
        text = path.read_text(encoding="utf-8")
    else:
        name = f"{pool}-{year}.json"
        try:
            text = (
                resources.files("healthcard.platform").joinpath("data", "policies", name).read_text("utf-8")
            )
        except FileNotFoundError:
            raise InvalidValue("policy", f"no policy for pool {pool!r} in {year}") from None
    policy = parse_policy(json.loads(text))
    if path is None and (policy.pool, policy.year) != (pool, year):
        raise InvalidValue("policy", f"{name} holds pool {policy.pool!r} {policy.year}")
    return policy
