"""Cross-region settlement, the pure parts: the home pool's rules for a bill of another city
(SETTLEMENT.md rule 3 outside the pool; class C for what the home catalog lacks; the fund's
share rounded once), the wire format's field-named refusals, and the clearing statement."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from healthcard.errors import InvalidValue, MessagingError
from healthcard.platform.settlement import clearing
from healthcard.platform.settlement.crossregion import HomeFigures, Institution, RemoteBill, RemoteRefund
from healthcard.platform.settlement.engine import BillLine, Claim, ItemClass, settle
from healthcard.platform.settlement.policy import Level, Visit, load_policy

POLICY = load_policy("demo", 2026)  # Zhengzhou's pool: areas 4101
FOSHAN_AREA = "440604"
#: a city-level admission in Foshan; the last item is not in the home catalog: class C
ADMISSION = (
    BillLine("FW0501", ItemClass.A, 1, 120000),
    BillLine("FW0401", ItemClass.A, 5, 2500),
    BillLine("YP0011", ItemClass.B, 3, 1860),
    BillLine("GD0001", ItemClass.C, 1, 3333),
)


def test_a_foshan_institution_is_outside_the_home_pool() -> None:
    assert not POLICY.covers(FOSHAN_AREA) and POLICY.covers("410102")


@pytest.mark.parametrize(
    ("referral", "ratio", "fund"),
    [
        (False, 45, 34885),  # 77,522 × 45 % = 34,884.9 → 34,885
        (True, 55, 42637),  # 77,522 × 55 % = 42,637.1 → 42,637
    ],
)
def test_outside_the_pool_the_ratio_loses_20_points_or_10_with_a_referral(
    referral: bool, ratio: int, fund: int
) -> None:
    out = settle(POLICY, Claim(Level.CITY, Visit.INPATIENT, False, referral, ADMISSION))
    total = 120000 + 12500 + 5580 + 3333
    assert (out.total_fen, out.eligible_fen, out.deductible_fen) == (total, 137522, 60000)
    assert (out.ratio_percent, out.fund_fen, out.self_fen) == (ratio, fund, total - fund)


def test_a_class_c_line_adds_to_the_bill_and_nothing_to_the_fund() -> None:
    without = settle(POLICY, Claim(Level.CITY, Visit.INPATIENT, False, False, ADMISSION[:3]))
    with_c = settle(POLICY, Claim(Level.CITY, Visit.INPATIENT, False, False, ADMISSION))
    assert with_c.fund_fen == without.fund_fen
    assert with_c.self_fen == without.self_fen + 3333


def test_the_fund_is_rounded_once_per_settlement_not_per_line() -> None:
    # three B lines of 15 fen: 13.5 fen eligible each; township outpatient 50 % − 20 = 30 %
    lines = tuple(BillLine(f"B{n}", ItemClass.B, 1, 15) for n in range(3))
    out = settle(POLICY, Claim(Level.TOWNSHIP, Visit.OUTPATIENT, False, False, lines))
    assert out.ratio_percent == 30
    assert out.fund_fen == 12  # 40.5 × 30 % = 12.15 → 12 (rounding each line first would give 13)


def bill(**changes: Any) -> dict[str, Any]:
    payload = RemoteBill(
        key="fs-1",
        visiting_city="4406",
        visiting_pool="foshan",
        resident="R-ZHANG",
        institution=Institution("440604001", "佛山市第一人民医院", "city", FOSHAN_AREA),
        encounter=7,
        visit="inpatient",
        started_at=dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC),
        referral=False,
        lines=(("FW0501", 1, 120000), ("GD0001", 1, 3333)),
        paid_by="cash",
    ).payload()
    return payload | changes


def test_a_request_survives_the_wire() -> None:
    parsed = RemoteBill.of(bill())
    assert parsed.payload() == bill()
    assert parsed.started_at.year == 2026 and parsed.lines[1] == ("GD0001", 1, 3333)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"lines": []}, "lines"),
        ({"lines": [["FW0501", 0, 100]]}, "lines[0].quantity"),
        ({"lines": [["FW0501", 1, 100], ["", 1, 100]]}, "lines[1].item"),
        ({"lines": [["FW0501", 1, -1]]}, "lines[0].unit_price_fen"),
        ({"lines": [["FW0501", 1]]}, "lines[0]"),
        ({"lines": [["FW0501", 1, 0]]}, "lines"),
        ({"key": ""}, "idempotency_key"),
        ({"visiting_city": "44"}, "visiting_city"),
        ({"paid_by": "card"}, "paid_by"),
        ({"visit": "day-care"}, "visit"),
        ({"started_at": "2026-03-02T09:00:00"}, "started_at"),
        ({"encounter": True}, "encounter"),
        ({"referral": "yes"}, "referral"),
        (
            {"institution": {"code": "440604001", "name": "x", "level": "clinic", "area": "440604"}},
            "institution.level",
        ),
        ({"resident": None}, "resident"),
    ],
)
def test_a_bad_request_is_refused_with_its_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        RemoteBill.of(bill(**changes))
    assert refused.value.field == field


def figures(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = dict.fromkeys(HomeFigures.__dataclass_fields__)
    base |= {"total_fen": 100, "fund_fen": 40, "self_fen": 60, "lines": []}
    return base | changes


def test_a_reply_that_does_not_add_up_is_a_messaging_error() -> None:
    assert HomeFigures.of(figures()).fund_fen == 40
    with pytest.raises(MessagingError):
        HomeFigures.of(figures(self_fen=61))
    with pytest.raises(MessagingError):
        HomeFigures.of({"total_fen": 100})


def half(city: str, other: str, owes: list[list[Any]], owed: list[list[Any]]) -> dict[str, Any]:
    return {
        "city": city,
        "counterpart": other,
        "month": "2026-03",
        "owes": {"total_fen": sum(s[4] for s in owes), "settlements": owes},
        "owed": {"total_fen": sum(s[4] for s in owed), "settlements": owed},
    }


def test_the_statement_of_two_agreeing_halves_nets_both_directions() -> None:
    zz_to_fs = [["4406", "440604001", "k1", 7, 34885], ["4406", "440605101", "k2", 8, 3400]]
    fs_to_zz = [["4101", "410102002", "k9", 3, 1000]]
    found = clearing.statement(
        half("4406", "4101", fs_to_zz, zz_to_fs), half("4101", "4406", zz_to_fs, fs_to_zz)
    )
    assert found.agrees
    assert (found.a_to_b.payer_fen, found.b_to_a.payer_fen) == (1000, 38285)
    assert found.net_fen == 1000 - 38285
    assert found.document()["directions"][1]["settlements"] == 2


def test_a_settlement_one_side_lacks_or_counts_otherwise_is_listed() -> None:
    home = [["4406", "440604001", "k1", 7, 34885], ["4406", "440604001", "k2", 8, 500]]
    visiting = [["4406", "440604001", "k1", 7, 34884], ["4406", "440604001", "k3", 9, 10]]
    found = clearing.statement(half("4101", "4406", home, []), half("4406", "4101", [], visiting))
    assert not found.agrees
    assert [(m.idempotency_key, m.payer_fen, m.payee_fen) for m in found.a_to_b.mismatches] == [
        ("k1", 34885, 34884),
        ("k2", 500, None),
        ("k3", None, 10),
    ]
    assert found.b_to_a.agrees


def test_halves_of_another_pair_or_month_are_refused() -> None:
    with pytest.raises(InvalidValue) as refused:
        clearing.statement(half("4101", "4406", [], []), half("4406", "4102", [], []))
    assert refused.value.field == "counterpart"
    with pytest.raises(MessagingError):
        clearing.statement(half("4101", "4406", [], []), {"city": "4406"})
    for month in ("2026-13", "2026-3", "March"):
        with pytest.raises(InvalidValue):
            clearing.check_month(month)


def test_a_refund_request_names_the_field_it_lacks() -> None:
    good = {"key": "r-1", "visiting_city": "4406", "institution": "440604001", "settlement_key": "fs-1"}
    assert RemoteRefund.of(good).payload() == good
    for changes, field in (
        ({"key": " "}, "idempotency_key"),
        ({"visiting_city": "Foshan"}, "visiting_city"),
        ({"institution": ""}, "institution"),
        ({"settlement_key": None}, "settlement_key"),
    ):
        with pytest.raises(InvalidValue) as refused:
            RemoteRefund.of(good | changes)
        assert refused.value.field == field


def test_a_refunds_figures_are_negative_and_still_add_up() -> None:
    assert HomeFigures.of(figures(total_fen=-100, fund_fen=-40, self_fen=-60)).total_fen == -100
    with pytest.raises(MessagingError):
        HomeFigures.of(figures(total_fen=100, fund_fen=-40, self_fen=140))
