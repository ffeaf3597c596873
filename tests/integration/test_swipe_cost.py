"""What one swipe costs the database, and that the swipe's short cuts change nothing.

A swipe (:meth:`Node.swipe`) runs at every card authentication of every terminal of a city, so
its statements are counted here with an upper bound: a change that adds a round trip shows up as
a failing count, not as a slower benchmark weeks later.  The swipe reads the card, the person's
linked ids and hidden categories in one query and takes the grant it has just made as the
presence tie; the other tests check that it answers exactly what the general path answers (a
merged duplicate's hidden category and visit, a card of a resident merged away)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event, func, select

from healthcard.platform.access import Actor, Carrier, Role
from healthcard.platform.node import Node
from healthcard.platform.records import DiagnosisIn, EncounterIn, EncounterKind
from healthcard.storage import tables as t
from healthcard.storage.db import Database

from .cardcentre_fixtures import NOW
from .platform_fixtures import CARD, HOSPITAL, Platform

#: statements of a swipe (BEGIN not counted): the card with the person, the card use, the grant,
#: the audit head and its append, the summary (person, visits, items) — SQLite appends the audit
#: entry and moves the head in two statements, PostgreSQL in one
RESWIPE = {"postgresql": 8, "sqlite": 9}
#: the first swipe of a person at an institution also creates the grant and the audit chain
FIRST = {"postgresql": 10, "sqlite": 11}


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def before(conn: object, cursor: object, statement: str, *args: object) -> None:
        if not statement.lstrip().upper().startswith("BEGIN"):
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", before)


def terminal(platform: Platform) -> Actor:
    return Actor(platform.terminal_id, Role.TERMINAL, institution_code=HOSPITAL, carrier=Carrier.CARD)


def clinician() -> Actor:
    return Actor("dr-wang", Role.CLINICIAN, institution_code=HOSPITAL)


def add_resident(platform: Platform, resident_id: str, name: str) -> None:
    with platform.app.db.uow() as uow:
        uow.session.add(
            t.Resident(
                resident_id=resident_id,
                id_type="01",
                id_number=f"41010219900307{len(name):03d}X",
                name=name,
                sex=1,
                birth_date=dt.date(1990, 3, 7),
                created_at=NOW,
                area_code="410102",
            )
        )
        uow.commit()


def visit(days_ago: int, code: str) -> EncounterIn:
    return EncounterIn(
        institution_code=HOSPITAL,
        kind=EncounterKind.OUTPATIENT,
        department="内科",
        clinician="王医生",
        started_at=NOW - dt.timedelta(days=days_ago),
        diagnoses=(DiagnosisIn(code, primary=True),),
        upload_key=f"visit-{days_ago}",
    )


def audit_ok(node: Node, db: Database) -> bool:
    with db.uow() as uow:
        return node.audit.verify(uow).ok


def test_a_swipe_takes_a_bounded_number_of_statements(platform: Platform) -> None:
    node, db = platform.app.node, platform.app.db
    with db.uow() as uow:  # a visit to show: the summary reads its items too
        node.records.record_encounter(uow, platform.resident_id, visit(1, "J20.9"))
        uow.commit()
    with statements(db) as first:
        swiped = node.swipe(terminal(platform), card_number=CARD, chip_serial=platform.chip_serial)
    with statements(db) as again:
        node.swipe(terminal(platform), card_number=CARD, chip_serial=platform.chip_serial)
    assert swiped.summary.name == "张三" and len(swiped.summary.recent) == 1
    assert len(first) <= FIRST[db.dialect], first
    assert len(again) <= RESWIPE[db.dialect], again
    # every table a swipe reads names the card or the person: no statement scans another's data
    assert all("presence_grants" not in s or "resident_id" in s for s in again)
    with db.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(t.PresenceGrant)) == 1
        assert uow.session.scalar(select(func.count()).select_from(t.CardUse)) == 2
    assert audit_ok(node, db)


def test_a_swipe_sees_the_person_as_the_general_path_does(platform: Platform) -> None:
    """The card's resident has a duplicate merged into it; the duplicate hides HIV and has a
    visit with an HIV diagnosis, and another visit: the swipe shows the person's visits but the
    hidden one — exactly the summary the clinician reads under the grant afterwards."""
    node, db, rid = platform.app.node, platform.app.db, platform.resident_id
    add_resident(platform, "R-zhang-copy", "张三")
    with db.uow() as uow:
        node.records.record_encounter(uow, "R-zhang-copy", visit(3, "Z21"))
        node.records.record_encounter(uow, "R-zhang-copy", visit(2, "J06.9"))
        node.records.record_encounter(uow, rid, visit(1, "J20.9"))
        node.mpi.merge(uow, rid, "R-zhang-copy", by="reviewer-1", reason="the same man twice")
        uow.session.add(t.HiddenCategory(resident_id="R-zhang-copy", category="hiv", hidden_at=NOW))
        uow.commit()
    swiped = node.swipe(terminal(platform), card_number=CARD, chip_serial=platform.chip_serial)
    assert swiped.resident_id == rid
    assert [v.diagnoses[0].code for v in swiped.summary.recent] == ["J20.9", "J06.9"]
    assert node.summary(clinician(), rid) == swiped.summary
    with db.uow() as uow:
        uses = list(uow.session.scalars(select(t.CardUse.resident_id)))
    assert uses == [rid]
    assert audit_ok(node, db)


def test_a_card_of_a_resident_merged_away_swipes_as_the_survivor(platform: Platform) -> None:
    node, db, rid = platform.app.node, platform.app.db, platform.resident_id
    add_resident(platform, "R-survivor", "张三")
    with db.uow() as uow:
        node.mpi.merge(uow, "R-survivor", rid, by="reviewer-1", reason="the card's record is the copy")
        uow.commit()
    swiped = node.swipe(terminal(platform), card_number=CARD, chip_serial=platform.chip_serial)
    assert swiped.resident_id == swiped.summary.resident_id == "R-survivor"
    with db.uow() as uow:
        grants = list(uow.session.scalars(select(t.PresenceGrant.resident_id)))
        chains = list(uow.session.scalars(select(t.AuditHead.chain).where(t.AuditHead.chain != "-")))
    assert grants == ["R-survivor"] and "R-survivor" in chains
    assert node.summary(clinician(), rid) == swiped.summary
    assert audit_ok(node, db)
