"""The demo city's residents are insured in the demo pool for 2026 (bulk, once), so its cashier
can settle a visit at once — on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import func, select

from healthcard.bootstrap import bootstrap
from healthcard.clock import FixedClock
from healthcard.keys.kek import open_kek
from healthcard.platform import democity
from healthcard.platform import records as rec
from healthcard.platform.access import Actor, Role
from healthcard.platform.settlement import ledger
from healthcard.platform.settlement.desk import bill_of
from healthcard.settings import Settings
from healthcard.storage import tables as t

from .cardcentre_fixtures import NOW
from .conftest import scratch_database_url

CITY_HOSPITAL = "410102002"  # 郑州市中心医院, where the demo cashier works


def _ensure(settings: Settings, clock: FixedClock) -> democity.Logins:
    return democity.ensure(
        settings,
        residents=10,
        console=Console(file=io.StringIO()),
        kek=open_kek("passphrase", passphrase="settlement-democity"),
        clock=clock,
    )


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_demo_city_is_insured_and_its_cashier_settles(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    for url in scratch_database_url(request, kind, tmp_path):
        settings = Settings(data_dir=tmp_path / "data", database_url=url)
        clock = FixedClock(NOW)
        _ensure(settings, clock)
        app = bootstrap(settings, clock=clock)
        try:
            with app.db.uow() as uow:
                residents = uow.session.scalar(select(func.count()).select_from(t.Resident))
                enrolled = uow.session.scalar(
                    select(func.count()).select_from(t.Enrollment).where(t.Enrollment.year == 2026)
                )
                accumulators = uow.session.scalar(select(func.count()).select_from(t.Accumulator))
                assert residents == enrolled == accumulators and enrolled
                assert ledger.balance(uow, ledger.fund("demo")) == democity.NCMS_PREMIUM * enrolled
                rid = uow.session.scalar(select(t.Resident.resident_id).order_by(t.Resident.resident_id))
                assert rid is not None
                app.node.access.grant_presence(
                    uow, resident_id=rid, institution_code=CITY_HOSPITAL, card_use_id=None
                )
                visit = app.node.records.open_encounter(
                    uow,
                    rid,
                    rec.EncounterIn(
                        CITY_HOSPITAL, rec.EncounterKind.INPATIENT, "普外科", None, NOW - dt.timedelta(days=3)
                    ),
                )
                uow.commit()
            cashier = Actor("cashier", Role.CASHIER, institution_code=CITY_HOSPITAL)
            view, created = app.node.settlement.settle(
                cashier, rid, bill_of(visit.id, [("FW0501", 1, 120000), ("FW0401", 3, 2500)]), key="demo-1"
            )
            # a city admission without a referral: (127500 − 60000) × 55 % = 37125
            assert created and (view.fund_fen, view.ratio_percent) == (37125, 55)
            _ensure(settings, clock)  # a second start enrols nobody twice
            with app.db.uow() as uow:
                again = uow.session.scalar(select(func.count()).select_from(t.Enrollment))
                assert again == enrolled
                assert ledger.verify(uow).balanced
        finally:
            app.close()
