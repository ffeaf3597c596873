"""The demo city's health accounts, on SQLite and PostgreSQL: the three demo residents and every
second other resident have an account at the demo bank with a starting balance that the
simulated bank's top-up put there, the bank's statement file of the day reconciles clean, and the
bank's own login works."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from rich.console import Console
from sqlalchemy import select

from healthcard.bootstrap import App, bootstrap
from healthcard.clock import FixedClock, local_date
from healthcard.keys.kek import open_kek
from healthcard.platform import democity
from healthcard.platform.access import Actor, Role
from healthcard.platform.settlement import bank as bk
from healthcard.platform.settlement import ledger
from healthcard.settings import Settings
from healthcard.storage import tables as t

from .cardcentre_fixtures import NOW
from .conftest import scratch_database_url

RESIDENTS = 20


@dataclass
class City:
    settings: Settings
    logins: democity.Logins
    app: App


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def city(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[City]:
    folder = tmp_path_factory.mktemp(f"health-demo-{request.param}")
    for url in scratch_database_url(request, request.param, folder):
        settings = Settings(data_dir=folder / "data", database_url=url)
        clock = FixedClock(NOW)
        logins = democity.ensure(
            settings,
            residents=RESIDENTS,
            console=Console(file=io.StringIO()),
            kek=open_kek("passphrase", passphrase="health-demo"),
            clock=clock,
        )
        app = bootstrap(settings, clock=clock)
        try:
            yield City(settings, logins, app)
        finally:
            app.close()


def test_demo_residents_have_topped_up_accounts(city: City) -> None:
    with city.app.db.uow() as uow:
        rows = uow.session.execute(
            select(t.Application.batch_row, t.Card.resident_id).join(
                t.Card, t.Card.application_number == t.Application.number
            )
        ).all()
        accounts = {a.resident_id: a for a in uow.session.scalars(select(t.HealthAccount))}
        topped_up = {tr.resident_id: tr.amount_fen for tr in uow.session.scalars(select(t.BankTransfer))}
        assert ledger.verify(uow).balanced
        wanted = {rid for row, rid in rows if row is not None and (row <= 3 or row % 2 == 0)}
        assert set(accounts) == wanted and len(wanted) >= RESIDENTS // 2
        assert topped_up == {rid: a.balance_fen for rid, a in accounts.items()}
        for a in accounts.values():
            assert a.bank == bk.DEMO_BANK and a.status == "ACTIVE" and a.balance_fen > 0
            assert bk.check_account_number(a.account_number, bk.DEMO_BANK) == a.account_number
    # the demo residents with a login see theirs
    adult = next(r for r in city.logins.rows if r.kind == "adult")
    assert adult.resident_id in accounts
    me = Actor(adult.username, Role.RESIDENT, resident_id=adult.resident_id)
    assert city.app.node.health_accounts.account(me, adult.resident_id).balance_fen > 0


def test_the_demo_banks_file_of_the_day_reconciles_clean(city: City) -> None:
    day = local_date(FixedClock(NOW))
    path = city.settings.data_dir / "democity" / "bank" / bk.statement_name(bk.DEMO_BANK, day)
    bank = Actor(bk.DEMO_BANK, Role.BANK)
    report = city.app.node.health_accounts.reconcile(
        bank, bank=bk.DEMO_BANK, day=day, statement=path.read_text(encoding="utf-8")
    )
    assert report.clean and report.ledger.count > 0 and report.ledger == report.statement
    login = next(r for r in city.logins.rows if r.role == Role.BANK.value)
    with city.app.db.uow() as uow:
        assert city.app.node.accounts.authenticate(uow, login.username, login.password).role is Role.BANK
