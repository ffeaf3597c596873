"""A small NCMS world to settle bills in, on the test database: institutions of every level inside
the demo pool (Zhengzhou, 4101) and one outside it (Wuhan), the pool's office, residents insured
in the demo pool for 2026 (and one who is not), and the node whose settlement desk the tests
call.  Visits are inserted OPEN at an institution, which gives that institution's cashier the
"in care" tie the access policy asks for."""

from __future__ import annotations

import datetime as dt
import itertools
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select

from healthcard.clock import FixedClock
from healthcard.keys.certificates import TrustStore
from healthcard.platform.access import Actor, Role
from healthcard.platform.node import Node
from healthcard.platform.settlement import ledger
from healthcard.platform.settlement.desk import bill_of
from healthcard.platform.settlement.service import Bill, SettlementView
from healthcard.storage import tables as t
from healthcard.storage.db import Database

NOW = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)  # 10:00 in Zhengzhou
VILLAGE, TOWNSHIP, COUNTY, CITY, PROVINCE = "410122201", "410122101", "410122001", "410102002", "410105001"
WUHAN = "420102001"  # a city hospital outside the pool
OFFICE = "410122902"  # 中牟县新农合管理中心: the demo pool's office
NO_LEVEL = "410100901"  # a CDC: no level, no bills
INSTITUTIONS = (
    (VILLAGE, "大吴村卫生室", "410122", "clinic", "village"),
    (TOWNSHIP, "韩寺镇卫生院", "410122", "clinic", "township"),
    (COUNTY, "中牟县人民医院", "410122", "hospital", "county"),
    (CITY, "郑州市中心医院", "410102", "hospital", "city"),
    (PROVINCE, "河南省人民医院", "410105", "hospital", "province"),
    (WUHAN, "武汉市中心医院", "420102", "hospital", "city"),
    (OFFICE, "中牟县新型农村合作医疗管理中心", "410122", "ncms-office", None),
    (NO_LEVEL, "郑州市疾病预防控制中心", "410100", "cdc", None),
)
INSURED = ("R-ZHANG", "R-LI", "R-WANG")
UNINSURED = "R-ZHAO"
PREMIUM = 40_000
INSURER = Actor("ncms-zhongmou", Role.INSURER, institution_code=OFFICE)
_numbers = itertools.count(1)


def cashier(institution: str) -> Actor:
    return Actor(f"cashier-{institution}", Role.CASHIER, institution_code=institution)


@dataclass
class World:
    db: Database
    clock: FixedClock
    node: Node

    def visit(
        self,
        resident_id: str,
        institution: str,
        kind: str = "outpatient",
        *,
        at: dt.datetime | None = None,
        diagnosis: str | None = None,
    ) -> int:
        """An OPEN visit of ``resident_id`` at ``institution`` (started ``at``, default an hour ago)."""
        started = at or self.clock.now() - dt.timedelta(hours=1)
        with self.db.uow() as uow:
            row = t.Encounter(
                resident_id=resident_id,
                institution_code=institution,
                kind=kind,
                status="open",
                number=f"MZ{next(_numbers):012d}",
                department="内科",
                carrier="card",
                started_at=started,
                fees=[],
                created_at=started,
            )
            uow.session.add(row)
            uow.flush()
            if diagnosis:
                uow.session.add(
                    t.Diagnosis(
                        resident_id=resident_id,
                        encounter_id=row.id,
                        code=diagnosis,
                        name=diagnosis,
                        primary=True,
                        diagnosed_on=started.date(),
                    )
                )
            uow.commit()
            return row.id

    def settle(
        self,
        resident_id: str,
        institution: str,
        encounter_id: int,
        lines: list[tuple[str, int, int]],
        *,
        key: str | None = None,
        **options: object,
    ) -> tuple[SettlementView, bool]:
        bill: Bill = bill_of(encounter_id, lines, **options)  # type: ignore[arg-type]
        return self.node.settlement.settle(
            cashier(institution), resident_id, bill, key=secrets.token_hex(8) if key is None else key
        )

    def counts(self) -> tuple[int, int, int]:
        """(ledger transactions, ledger entries, settlements)."""
        with self.db.uow() as uow:
            return tuple(  # type: ignore[return-value]
                int(uow.session.scalar(select(func.count()).select_from(table)) or 0)
                for table in (t.LedgerTransaction, t.LedgerEntry, t.Settlement)
            )

    def balance(self, account: str) -> int:
        with self.db.uow() as uow:
            return ledger.balance(uow, account)

    def accumulator(self, resident_id: str, year: int = 2026) -> t.Accumulator:
        with self.db.uow() as uow:
            row = uow.session.get(t.Accumulator, (resident_id, "demo", year))
            assert row is not None
            uow.session.expunge(row)  # read, kept as it was
            return row

    def open_health_account(self, resident_id: str, balance_fen: int) -> None:
        """A funded health account (the health-account service is another module's: the row and
        its top-up are written directly, balanced, as that service would)."""
        with self.db.uow() as uow:
            uow.session.add(
                t.HealthAccount(
                    resident_id=resident_id,
                    bank="demo-bank",
                    account_number=f"62100000{secrets.randbelow(10**8):08d}",
                    balance_fen=0,
                    status="ACTIVE",
                    opened_at=NOW,
                    updated_at=NOW,
                )
            )
            uow.flush()
            if balance_fen:
                ledger.post(
                    uow,
                    "topup",
                    f"test-{resident_id}",
                    ledger.move(
                        ledger.bank("demo-bank"), ledger.health(resident_id), balance_fen, resident_id
                    ),
                    actor="bank",
                    at=NOW,
                    resident_id=resident_id,
                )
            uow.commit()

    def health_balance(self, resident_id: str) -> int:
        with self.db.uow() as uow:
            row = uow.session.get(t.HealthAccount, resident_id)
            assert row is not None
            return row.balance_fen


def make_world(db: Database) -> World:
    clock = FixedClock(NOW)
    with db.uow() as uow:
        for code, name, area, kind, level in INSTITUTIONS:
            uow.session.add(
                t.Institution(
                    code=code, name=name, kind=kind, area_code=area, issues_cards=False, level=level
                )
            )
        for n, rid in enumerate((*INSURED, UNINSURED), start=1):
            uow.session.add(
                t.Resident(
                    resident_id=rid,
                    id_type="01",
                    id_number=f"41012219800101{n:04d}",
                    name=f"居民{n}",
                    sex=1,
                    birth_date=dt.date(1980, 1, 1),
                    created_at=NOW,
                    area_code="410122",
                )
            )
        uow.commit()
    node = Node(db, clock, token_secret=secrets.token_bytes(32), trust=TrustStore())
    for rid in INSURED:
        node.settlement.enrol(INSURER, rid, pool="demo", year=2026, premium_fen=PREMIUM)
    return World(db, clock, node)
