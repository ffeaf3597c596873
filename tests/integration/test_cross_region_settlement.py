"""Cross-region settlement end to end (issue 8): a Zhengzhou resident treated in Foshan.  Two city
nodes, each with its own database and pool, over the in-process bus (SQLite and PostgreSQL) and
over the machine's NATS: the Foshan cashier settles the visitor's bill, the home computes under
its pool's policy (outside the pool: −20 points without a referral, −10 with one; an item its
catalog lacks is class C), both ledgers and the home's accumulators move once, a retry moves
nothing, a bad line is refused with its field at either node and writes nothing, the home down
is refused with nothing written, a lost reply is recorded by the retry, a refund goes back at both
cities, and the month's clearing statement matches the two ledgers to the fen.  Then end to end on the cross-region rig
(regions_fixtures: six nodes wired by bootstrap, in-process and over NATS): a card swiped in
Foshan, an admission there, the cashier's settlement, the clearing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select
from typer.testing import CliRunner

from healthcard.cli.main import app as cli
from healthcard.errors import Duplicate, InvalidValue, MessagingError, NotFound
from healthcard.federation import Bus, InProcessBus
from healthcard.federation.queries import ask
from healthcard.federation.settlement import BusHomes, clearing_statement
from healthcard.issuance.keycentre import KeyCentre
from healthcard.platform.records import DiagnosisIn, EncounterIn, EncounterKind
from healthcard.platform.settlement import clearing, ledger
from healthcard.platform.settlement.desk import bill_of
from healthcard.platform.settlement.service import Returned
from healthcard.storage import tables as t

from .cross_region_fixtures import (
    FOSHAN,
    FOSHAN_HOSPITAL,
    FOSHAN_TOWNSHIP,
    HOME_RESIDENT,
    LOCAL_ONLY_ITEM,
    VISITOR,
    ZHENGZHOU,
    TwoCities,
    two_cities,
)
from .federation_fixtures import machine_nats, nats_bus
from .regions_fixtures import FOSHAN_DOCTOR, FOSHAN_TERMINAL, ZHANG, Regions, regions
from .settlement_fixtures import PREMIUM, World, cashier

#: a city-level admission in Foshan: A, A, B (3 × 18.60 yuan at 90 %), and Foshan's own item
ADMISSION = [("FW0501", 1, 120000), ("FW0401", 5, 2500), ("YP0011", 3, 1860), (LOCAL_ONLY_ITEM, 1, 3333)]
TOTAL = 120000 + 12500 + 5580 + 3333
ELIGIBLE = 120000 + 12500 + 5022  # the local-only item is class C at the home: nothing
FUND = 34885  # (137,522 − 60,000 city deductible) × (65 − 20) % = 34,884.9 → rounded once, half-up
#: a township outpatient visit with a referral, paid from the health account at home
OUTPATIENT = [("FW0001", 1, 500), ("YP0013", 2, 1450)]
OUT_FUND = 1244  # (500 + 2,900 × 90 %) × (50 − 10) % = 1,244
OUT_SELF = 500 + 2900 - OUT_FUND


def state(world: World) -> tuple[Any, ...]:
    """Everything a settlement writes at a node: ledger, settlements, cross-region rows, the
    visitor's / resident's accumulators."""
    with world.db.uow() as uow:
        rows = uow.session.scalar(select(func.count()).select_from(t.CrossRegionSettlement))
        accumulators = tuple(
            (a.fund_paid_fen, a.admissions, a.settlements) for a in uow.session.scalars(select(t.Accumulator))
        )
    return world.counts(), rows, accumulators


def balanced(world: World) -> bool:
    with world.db.uow() as uow:
        return ledger.verify(uow).balanced


class LostReply:
    """The visiting city's link to the home, losing the home's first answer (it settled)."""

    def __init__(self, homes: BusHomes) -> None:
        self.homes, self.city, self.pool, self.lost = homes, homes.city, homes.pool, False

    def home_of(self, session: Any, resident_id: str) -> Any:
        return self.homes.home_of(session, resident_id)

    def ask(self, city: str, query: str, payload: Any) -> dict[str, Any]:
        reply = self.homes.ask(city, query, payload)
        if query == "settle" and not self.lost:
            self.lost = True
            raise MessagingError("q.4101.settle: no reply in time")
        return reply


def scenario(pair: TwoCities) -> None:
    zz, fs = pair.zhengzhou, pair.foshan
    admission = fs.visit(VISITOR, FOSHAN_HOSPITAL, "inpatient")

    # the cashier's pre-settlement: the home's figures, nothing written at either node
    before = state(zz), state(fs)
    quote = fs.node.settlement.quote(cashier(FOSHAN_HOSPITAL), VISITOR, bill_of(admission, ADMISSION))
    assert (quote.pool, quote.inside_pool, quote.ratio_percent, quote.fund_fen) == ("demo", False, 45, FUND)
    assert (state(zz), state(fs)) == before

    # the settlement: the home's policy, the visiting city's prices
    view, created = fs.settle(VISITOR, FOSHAN_HOSPITAL, admission, ADMISSION, key="fs-bill-1")
    assert created
    figures = (view.total_fen, view.eligible_fen, view.deductible_fen, view.ratio_percent, view.fund_fen)
    assert figures == (TOTAL, ELIGIBLE, 60000, 45, FUND)
    assert view.self_fen == TOTAL - FUND and (view.pool, view.inside_pool) == ("demo", False)
    assert [line.item_class for line in view.lines] == ["A", "A", "B", "C"]

    # the home: its fund owes Foshan, the accumulators moved; no local institution is owed
    assert zz.balance("fund:demo") == 3 * PREMIUM - FUND
    assert zz.balance(ledger.clearing(FOSHAN)) == FUND
    assert zz.balance(ledger.receivable(FOSHAN_HOSPITAL)) == 0
    home = zz.accumulator(HOME_RESIDENT)
    assert (home.fund_paid_fen, home.admissions, home.settlements) == (FUND, 1, 1)
    # Foshan: its hospital is owed by Zhengzhou's pool, the cash came from the pocket
    assert fs.balance(ledger.clearing(ZHENGZHOU)) == -FUND
    assert fs.balance(ledger.receivable(FOSHAN_HOSPITAL)) == FUND
    assert fs.balance(ledger.cash(FOSHAN_HOSPITAL)) == TOTAL - FUND
    assert balanced(zz) and balanced(fs)

    # a retry returns the first result and moves nothing; the key with another bill is refused
    before = state(zz), state(fs)
    again, created = fs.settle(VISITOR, FOSHAN_HOSPITAL, admission, ADMISSION, key="fs-bill-1")
    assert not created and again.id == view.id and again.fund_fen == FUND
    assert (state(zz), state(fs)) == before
    with pytest.raises(Duplicate) as refused:
        fs.settle(VISITOR, FOSHAN_HOSPITAL, admission, ADMISSION[:2], key="fs-bill-1")
    assert refused.value.field == "idempotency_key"
    assert (state(zz), state(fs)) == before

    # a bad line: refused with its field, nothing written at either node
    outpatient = fs.visit(VISITOR, FOSHAN_TOWNSHIP)
    for lines, field in (
        ([("FW0001", 0, 500)], "lines[0].quantity"),
        ([("FW0001", 1, 500), ("YP0013", 2, 1451)], "lines[1].unit_price_fen"),  # not Foshan's price
        ([("XX9999", 1, 500)], "lines[0].item"),  # not in Foshan's catalog
    ):
        with pytest.raises(InvalidValue) as bad:
            fs.settle(VISITOR, FOSHAN_TOWNSHIP, outpatient, lines)
        assert bad.value.field == field
    # … and the home refuses a bad request by itself, with the field, writing nothing
    payload = {
        "key": "direct-1",
        "visiting_city": FOSHAN,
        "visiting_pool": "foshan",
        "resident": HOME_RESIDENT,
        "institution": {
            "code": FOSHAN_TOWNSHIP,
            "name": "南海区大沥镇卫生院",
            "level": "township",
            "area": "440605",
        },
        "encounter": outpatient,
        "visit": "outpatient",
        "started_at": fs.clock.now().isoformat(),
        "referral": False,
        "lines": [["FW0001", 1, -500]],
        "paid_by": "cash",
    }
    with pytest.raises(InvalidValue) as bad:
        ask(pair.bus, ZHENGZHOU, "settle", payload)
    assert bad.value.field == "lines[0].unit_price_fen"
    with pytest.raises(NotFound):
        ask(pair.bus, ZHENGZHOU, "settle", payload | {"lines": [["FW0001", 1, 500]], "resident": "R-NOBODY"})
    assert (state(zz), state(fs)) == before

    # paid from the health account at home, with a referral: −10 points; the reply is lost once
    zz.open_health_account(HOME_RESIDENT, 10_000)
    homes = fs.node.settlement.visitors
    assert isinstance(homes, BusHomes)
    fs.node.settlement.visitors = LostReply(homes)
    options: dict[str, Any] = {"paid_by": "account", "referral": True, "referred_by": FOSHAN_HOSPITAL}
    before_fs = state(fs)
    with pytest.raises(MessagingError):
        fs.settle(VISITOR, FOSHAN_TOWNSHIP, outpatient, OUTPATIENT, key="fs-bill-2", **options)
    assert state(fs) == before_fs  # the home settled; Foshan does not know it yet
    assert zz.health_balance(HOME_RESIDENT) == 10_000 - OUT_SELF
    half = statement(pair)
    assert not half.agrees
    [missing] = half.b_to_a.mismatches
    assert (missing.idempotency_key, missing.payer_fen, missing.payee_fen) == (
        "fs-bill-2",
        OUT_FUND + OUT_SELF,
        None,
    )
    out, created = fs.settle(VISITOR, FOSHAN_TOWNSHIP, outpatient, OUTPATIENT, key="fs-bill-2", **options)
    assert created and (out.ratio_percent, out.fund_fen, out.self_fen) == (40, OUT_FUND, OUT_SELF)
    assert zz.health_balance(HOME_RESIDENT) == 10_000 - OUT_SELF  # paid once
    assert zz.balance(ledger.clearing(FOSHAN)) == FUND + OUT_FUND + OUT_SELF
    assert fs.balance(ledger.cash(FOSHAN_TOWNSHIP)) == OUT_SELF
    fs.node.settlement.visitors = homes

    # the month's clearing: both directions, both ledgers, to the fen
    owed = FUND + OUT_FUND + OUT_SELF
    done = statement(pair)
    assert done.agrees and (done.a, done.b, done.month) == (FOSHAN, ZHENGZHOU, "2026-03")
    assert (done.a_to_b.payer_fen, done.a_to_b.payee_fen, done.a_to_b.settlements) == (0, 0, 0)
    assert (done.b_to_a.payer_fen, done.b_to_a.payee_fen, done.b_to_a.settlements) == (owed, owed, 2)
    assert done.net_fen == -owed  # Zhengzhou pays Foshan
    with zz.db.uow() as uow:  # the home's own view of the pair agrees too
        mine = clearing.figures(uow, ZHENGZHOU, FOSHAN, "2026-03")
    assert mine["owes"]["total_fen"] == owed and mine["balance_fen"] == owed
    assert balanced(zz) and balanced(fs)

    # 退费 of the admission, whole: the home gives back first, then Foshan records it
    desk = cashier(FOSHAN_HOSPITAL)
    with pytest.raises(InvalidValue) as partial:
        fs.node.settlement.refund(desk, view.id, [Returned("FW0401", 1)], key="fs-refund-1")
    assert partial.value.field == "lines"
    refunded, created = fs.node.settlement.refund(desk, view.id, None, key="fs-refund-1")
    assert created and refunded.replacement is None
    back = refunded.refund
    assert (back.kind, back.reverses_id, back.fund_fen, back.total_fen) == ("refund", view.id, -FUND, -TOTAL)
    assert fs.node.settlement.settlement(desk, view.id).status == "REVERSED"
    home = zz.accumulator(HOME_RESIDENT)
    assert (home.fund_paid_fen, home.admissions, home.settlements) == (OUT_FUND, 0, 1)
    assert zz.balance(ledger.clearing(FOSHAN)) == OUT_FUND + OUT_SELF
    assert zz.balance("fund:demo") == 3 * PREMIUM - OUT_FUND
    assert fs.balance(ledger.clearing(ZHENGZHOU)) == -(OUT_FUND + OUT_SELF)
    assert fs.balance(ledger.receivable(FOSHAN_HOSPITAL)) == 0
    before = state(zz), state(fs)
    again_back, created = fs.node.settlement.refund(desk, view.id, None, key="fs-refund-1")
    assert not created and again_back.refund.id == back.id
    with pytest.raises(InvalidValue) as twice:
        fs.node.settlement.refund(desk, view.id, None, key="fs-refund-2")
    assert twice.value.field == "settlement_id"
    assert (state(zz), state(fs)) == before
    cleared = statement(pair)  # the refund counts in its month, negated, at both sides
    assert cleared.agrees and cleared.b_to_a.settlements == 3
    assert cleared.b_to_a.payer_fen == cleared.b_to_a.payee_fen == OUT_FUND + OUT_SELF
    assert balanced(zz) and balanced(fs)

    # the home unreachable: refused, nothing written here
    pair.served[0].close()
    third = fs.visit(VISITOR, FOSHAN_TOWNSHIP)
    before_fs = state(fs)
    with pytest.raises(MessagingError):
        fs.settle(VISITOR, FOSHAN_TOWNSHIP, third, [("FW0001", 1, 500)])
    with pytest.raises(MessagingError):
        fs.node.settlement.refund(cashier(FOSHAN_TOWNSHIP), out.id, None, key="fs-refund-3")
    assert state(fs) == before_fs


def statement(pair: TwoCities) -> Any:
    return clearing_statement(pair.foshan.db, pair.bus, FOSHAN, ZHENGZHOU, "2026-03")


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_visitors_bill_settled_by_the_home_over_the_in_process_bus(
    request: pytest.FixtureRequest, kind: str, tmp_path: Path
) -> None:
    bus: Bus = InProcessBus()
    with two_cities(request, kind, bus, tmp_path) as pair:
        scenario(pair)


@pytest.mark.nats
def test_a_visitors_bill_settled_by_the_home_over_nats(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    bus = nats_bus(machine_nats())
    bus.ensure_streams()
    try:
        with two_cities(request, "sqlite", bus, tmp_path) as pair:
            scenario(pair)
    finally:
        bus.delete_streams()
        bus.close()


def test_the_clearing_command_prints_the_statement_of_a_pair(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    bus: Bus = InProcessBus()
    with two_cities(request, "sqlite", bus, tmp_path) as pair:
        fs = pair.foshan
        visit = fs.visit(VISITOR, FOSHAN_HOSPITAL, "inpatient")
        fs.settle(VISITOR, FOSHAN_HOSPITAL, visit, ADMISSION, key="fs-cli-1")
        urls = {name: str(w.db.engine.url) for name, w in (("fs", fs), ("zz", pair.zhengzhou))}
        args = ["federation", "clearing", "--month", "2026-03", "--db", urls["fs"], "--city-code", FOSHAN]
        args += ["--with", ZHENGZHOU, "--with-db", urls["zz"]]
        result = CliRunner().invoke(cli, [*args, "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        [document] = json.loads(result.output)
        assert document["agrees"] and document["net_fen"] == -FUND
        text = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert text.exit_code == 0 and "348.85" in text.output
        with pair.zhengzhou.db.uow() as uow:  # a settlement the home knows alone: exit 1
            uow.session.execute(
                delete(t.CrossRegionSettlement).where(t.CrossRegionSettlement.idempotency_key == "fs-cli-1")
            )
            uow.commit()
        broken = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert broken.exit_code == 1 and "fs-cli-1" in broken.output
        bad = CliRunner().invoke(cli, [*args[:2], "2026-13", *args[3:]], catch_exceptions=False)
        assert bad.exit_code == 2 and "month" in bad.output


# --- end to end on the cross-region rig: swipe → visit → settle → clearing ---------------------------
def swipe_visit_settle_clear(rig: Regions) -> None:
    """Six nodes wired by bootstrap: 张三 of Zhengzhou, insured in the demo pool, swipes his card
    at a Foshan hospital, is admitted, and the cashier settles his bill; the month is cleared."""
    zz, foshan = rig.zhengzhou, rig.foshan
    chip = rig.issue("zhengzhou", ZHANG, "张三")
    rig.quiet()
    with zz.db.uow() as uow:
        home_id = zz.node.mpi.resolve_card(uow, ZHANG)
        zz.node.settlement.service.enrol(uow, home_id, pool="demo", year=2026, premium_fen=PREMIUM, actor="t")
        uow.commit()
    visitor = foshan.node.swipe(FOSHAN_TERMINAL, card_number=ZHANG, chip_serial=chip, stage="registration")
    admitted = EncounterIn(
        institution_code=FOSHAN_HOSPITAL,
        kind=EncounterKind.INPATIENT,
        department="普外科",
        clinician="陈医生",
        started_at=rig.clock.now(),
        diagnoses=(DiagnosisIn("K35.900", primary=True),),
    )
    visit = foshan.node.open_encounter(FOSHAN_DOCTOR, visitor.resident_id, admitted)
    lines = [("FW0501", 1, 120000), ("FW0401", 5, 2500)]
    desk = cashier(FOSHAN_HOSPITAL)
    view, created = foshan.node.settlement.settle(
        desk, visitor.resident_id, bill_of(visit.id, lines), key="e2e-1"
    )
    fund = 32625  # (132,500 − 60,000) × (65 − 20) %
    assert created and (view.pool, view.inside_pool, view.ratio_percent, view.fund_fen) == (
        "demo",
        False,
        45,
        fund,
    )
    assert [line.name for line in view.lines] == ["阑尾切除术", "普通病房床位费"]  # named by the home
    again, created = foshan.node.settlement.settle(
        desk, visitor.resident_id, bill_of(visit.id, lines), key="e2e-1"
    )
    assert not created and again.id == view.id
    with zz.db.uow() as uow:
        assert ledger.balance(uow, ledger.clearing(FOSHAN)) == fund
        assert ledger.balance(uow, "fund:demo") == PREMIUM - fund
        assert ledger.verify(uow).balanced
        insured = zz.node.settlement.service.insured(uow, [home_id], 2026)
        assert (insured.fund_paid_fen, insured.admissions) == (fund, 1)
    with foshan.db.uow() as uow:
        assert ledger.balance(uow, ledger.clearing(ZHENGZHOU)) == -fund
        assert ledger.balance(uow, ledger.receivable(FOSHAN_HOSPITAL)) == fund
        assert ledger.verify(uow).balanced
    assert foshan.bus is not None
    found = clearing_statement(foshan.db, foshan.bus, FOSHAN, ZHENGZHOU, "2026-11")
    assert found.agrees and found.net_fen == -fund and found.b_to_a.settlements == 1


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_swipe_visit_settle_and_clear_over_the_in_process_bus(
    request: pytest.FixtureRequest, kind: str, platform_keys: KeyCentre, tmp_path: Path
) -> None:
    bus = InProcessBus()
    with regions(request, kind, bus, platform_keys, tmp_path) as rig:
        swipe_visit_settle_clear(rig)


@pytest.mark.nats
def test_swipe_visit_settle_and_clear_over_nats(
    request: pytest.FixtureRequest, platform_keys: KeyCentre, tmp_path: Path
) -> None:
    bus = nats_bus(machine_nats())
    try:
        with regions(request, "sqlite", bus, platform_keys, tmp_path) as rig:
            swipe_visit_settle_clear(rig)
    finally:
        bus.delete_streams()
        bus.close()
