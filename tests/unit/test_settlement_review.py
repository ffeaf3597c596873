"""The review flags decided when a bill is settled: a deterministic random share (SM3 of the
institution and key) and the value threshold, with the policy file's figures."""

from __future__ import annotations

import dataclasses
import json
from importlib import resources
from typing import Any

import pytest

from healthcard.errors import InvalidValue
from healthcard.platform.settlement import load_policy, parse_policy
from healthcard.platform.settlement.policy import Review
from healthcard.platform.settlement.review import flags, sample_point

RULES = load_policy("demo", 2026).review


def _raw() -> dict[str, Any]:
    text = (
        resources.files("healthcard.platform")
        .joinpath("data", "policies", "demo-2026.json")
        .read_text("utf-8")
    )
    raw: dict[str, Any] = json.loads(text)
    return raw


def test_the_demo_policy_carries_the_review_figures_and_its_areas() -> None:
    policy = load_policy("demo", 2026)
    rules = policy.review
    assert (rules.random_percent, rules.threshold_fen, rules.outlier_percent, rules.outlier_min_sample) == (
        5,
        1_000_000,
        300,
        20,
    )
    assert policy.areas == ("4101",)
    assert policy.covers("410122") and policy.covers("410102")
    assert not policy.covers("420102") and not policy.covers(None) and not policy.covers("")


def test_the_random_share_is_the_policy_s_and_repeatable() -> None:
    points = [sample_point("410122101", f"k{n}") for n in range(10_000)]
    assert all(0 <= p < 10_000 for p in points)
    assert 400 <= sum(p < 500 for p in points) <= 600
    assert sample_point("410122101", "k1") != sample_point("410122102", "k1")
    chosen = [f"k{n}" for n, p in enumerate(points) if p < 500]
    assert all(
        flags(RULES, institution_code="410122101", idempotency_key=k, total_fen=1) == "random" for k in chosen
    )
    none = dataclasses.replace(RULES, random_percent=0)
    assert flags(none, institution_code="410122101", idempotency_key=chosen[0], total_fen=1) is None


def test_the_threshold_and_both_reasons() -> None:
    key = next(f"k{n}" for n in range(1000) if sample_point("i", f"k{n}") < 500)
    assert flags(RULES, institution_code="i", idempotency_key=key, total_fen=1_000_001) == "random,threshold"
    quiet = next(f"k{n}" for n in range(1000) if sample_point("i", f"k{n}") >= 500)
    assert flags(RULES, institution_code="i", idempotency_key=quiet, total_fen=1_000_000) is None
    assert flags(RULES, institution_code="i", idempotency_key=quiet, total_fen=1_000_001) == "threshold"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"areas": "4101"}, "areas"),
        ({"areas": ["41x1"]}, "areas"),
        ({"areas": ["410"]}, "areas"),
        ({"review": []}, "review"),
        ({"review": {"random_percent": 101}}, "review.random_percent"),
        ({"review": {"outlier_percent": 50}}, "review.outlier_percent"),
        ({"review": {"outlier_min_sample": 0}}, "review.outlier_min_sample"),
        ({"review": {"threshold_fen": -1}}, "review.threshold_fen"),
    ],
)
def test_a_bad_area_or_review_figure_is_refused_by_field(change: dict[str, object], field: str) -> None:
    raw = _raw()
    with pytest.raises(InvalidValue) as refused:
        parse_policy({**raw, **change})
    assert refused.value.field == field


def test_a_policy_without_areas_or_review_covers_nothing_and_reviews_by_default() -> None:
    raw = _raw()
    bare = parse_policy({k: v for k, v in raw.items() if k not in ("areas", "review")})
    assert bare.areas == () and not bare.covers("410122") and bare.review == Review()
