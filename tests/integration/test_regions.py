"""Cross-region care end to end (issue 8): a card of Zhengzhou (Henan) swiped in Foshan
(Guangdong) is found through the national index → Henan → Zhengzhou, read under the presence
grant with the reads audited on both sides, and the visit made in Foshan reaches the resident's
home portal as a pointer.  A lost card is refused, an unknown one is not found, and with its
home down nothing is written in Foshan.

Six nodes (regions_fixtures), each with its own database: SQLite files and PostgreSQL schemas
over the in-process bus, SQLite files over the machine's NATS (JetStream)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from healthcard.api.app import create_app
from healthcard.errors import HotListed, MessagingError, NotFound, PermissionDenied
from healthcard.federation import InProcessBus
from healthcard.federation.regions import visitor_home
from healthcard.issuance.keycentre import KeyCentre
from healthcard.platform.access import Actor, Role
from healthcard.platform.records import DiagnosisIn, EncounterIn, EncounterKind
from healthcard.storage import tables as t
from healthcard.storage.db import Database

from .cardcentre_fixtures import NOW
from .federation_fixtures import machine_nats, nats_bus
from .platform_fixtures import PASSWORD
from .regions_fixtures import (
    FOSHAN_DOCTOR,
    FOSHAN_HOSPITAL,
    FOSHAN_HOSPITAL_NAME,
    FOSHAN_TERMINAL,
    LI,
    ZHANG,
    ZHAO,
    ZHENGZHOU_HOSPITAL,
    Regions,
    regions,
)


def count(db: Database, table: type[t.Base], *where: object) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(table).where(*where)) or 0  # type: ignore[arg-type]


def written(db: Database) -> dict[str, int]:
    """What a swipe writes at the visited city."""
    return {
        "card_uses": count(db, t.CardUse),
        "grants": count(db, t.PresenceGrant),
        "visitors": count(db, t.Visitor),
        "residents": count(db, t.Resident),
        "audit": count(db, t.AuditEntry),
    }


def portal_visits(rig: Regions, home_id: str) -> str:
    """张三's visits page on his home city's portal."""
    zz = rig.zhengzhou
    with zz.db.uow() as uow:
        if uow.session.get(t.Account, ZHANG) is None:
            zz.node.accounts.create(
                uow, username=ZHANG, name="张三", role=Role.RESIDENT, password=PASSWORD, resident_id=home_id
            )
            uow.commit()
    with TestClient(create_app(zz)) as client:
        page = client.get("/portal/login").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf is not None
        client.post("/portal/login", data={"username": ZHANG, "password": PASSWORD, "csrf": csrf.group(1)})
        answer = client.get("/portal/visits")
        assert answer.status_code == 200
        return str(answer.text)


def scenario(rig: Regions) -> None:
    zz, foshan = rig.zhengzhou, rig.foshan
    zhang_chip = rig.issue("zhengzhou", ZHANG, "张三")
    li_chip = rig.issue("zhengzhou", LI, "李四")
    zhao_chip = rig.issue("hebi", ZHAO, "赵六")
    # 张三 has a visit at home
    with zz.db.uow() as uow:
        home_id = zz.node.mpi.resolve_card(uow, ZHANG)
        visit = EncounterIn(
            institution_code=ZHENGZHOU_HOSPITAL,
            kind=EncounterKind.OUTPATIENT,
            department="内科",
            clinician="王医生",
            started_at=NOW - dt.timedelta(days=3),
            diagnoses=(DiagnosisIn("I10.X00", primary=True),),
        )
        at_home = zz.node.records.open_encounter(uow, home_id, visit)
        zz.node.records.close_encounter(uow, home_id, at_home.id)
        uow.commit()
    rig.quiet()

    # --- the swipe in Foshan: found at home, summary from home --------------------------------
    swipe = foshan.node.swipe(
        FOSHAN_TERMINAL, card_number=ZHANG, chip_serial=zhang_chip, stage="registration"
    )
    assert swipe.summary.name == "张三"
    with zz.db.uow() as uow:  # the summary the home holds, whole (the local id put in)
        assert swipe.summary == replace(
            zz.node.records.summary(uow, [home_id]), resident_id=swipe.resident_id
        )
    assert [v.id for v in swipe.summary.recent] == [at_home.id]
    assert swipe.grant.institution_code == FOSHAN_HOSPITAL
    visitor = swipe.resident_id
    assert visitor != home_id
    with foshan.db.session() as session:
        home = visitor_home(session, visitor)
        assert home is not None
        assert (home.province, home.city, home.home_resident_id, home.card_number) == (
            "41",
            "4101",
            home_id,
            ZHANG,
        )
        person = session.get(t.Resident, visitor)
        assert person is not None and (person.name, person.id_number) == ("张三", ZHANG)
        use = session.get(t.CardUse, swipe.card_use_id)
        assert use is not None and (use.institution_code, use.resident_id) == (FOSHAN_HOSPITAL, visitor)
    # at home: the card use and the grant name the Foshan hospital, so does the audit
    with zz.db.session() as session:
        uses = session.scalars(select(t.CardUse).where(t.CardUse.resident_id == home_id)).all()
        assert [(u.institution_code, u.terminal_id) for u in uses] == [
            (FOSHAN_HOSPITAL, "4406/T-440604001-01")
        ]
        grants = session.scalars(select(t.PresenceGrant).where(t.PresenceGrant.resident_id == home_id)).all()
        assert [g.institution_code for g in grants] == [FOSHAN_HOSPITAL]
        assert session.get(t.VisitingInstitution, FOSHAN_HOSPITAL) is not None

    # a second swipe keeps the one local person
    again = foshan.node.swipe(FOSHAN_TERMINAL, card_number=ZHANG, chip_serial=zhang_chip)
    assert again.resident_id == visitor
    assert count(foshan.db, t.Visitor) == 1

    # --- the Foshan clinician's glance: from home, audited on both sides -------------------------
    seen = foshan.node.glance(FOSHAN_DOCTOR, visitor)
    assert seen.person.resident_id == visitor and seen.person.name == "张三"
    assert seen.summary.resident_id == visitor
    assert [v.id for v in seen.visits] == [at_home.id]
    assert seen.visits[0].diagnoses[0].code.startswith("I10")
    summary = foshan.node.summary(FOSHAN_DOCTOR, visitor)
    assert summary.name == "张三"
    with foshan.db.session() as session:
        here = session.scalars(
            select(t.AuditEntry.what).where(
                t.AuditEntry.resident_id == visitor, t.AuditEntry.actor == "dr-chen"
            )
        ).all()
    assert sorted(here) == sorted(["person", "summary", "vaccination plan", "encounters", "summary"])
    resident = Actor(ZHANG, Role.RESIDENT, resident_id=home_id)
    looked = zz.node.who_looked(resident, home_id)
    remote = [e for e in looked if e.institution_code == FOSHAN_HOSPITAL]
    assert {e.actor for e in remote} == {"4406/T-440604001-01", "4406/dr-chen"}
    assert {"person", "summary", "encounters", "vaccination plan"} <= {e.what for e in remote}
    assert zz.node.institution_names({FOSHAN_HOSPITAL}) == {FOSHAN_HOSPITAL: FOSHAN_HOSPITAL_NAME}

    # another Foshan clinician without the card present here is refused — before home is asked
    stranger = Actor("dr-other", Role.CLINICIAN, institution_code="44000000001")
    before = count(zz.db, t.AuditEntry)
    with pytest.raises(PermissionDenied):
        foshan.node.glance(stranger, visitor)
    assert count(zz.db, t.AuditEntry) == before

    # --- a visit in Foshan: stored there, its pointer reaches home ------------------------------
    there = EncounterIn(
        institution_code=FOSHAN_HOSPITAL,
        kind=EncounterKind.OUTPATIENT,
        department="急诊内科",
        clinician=None,
        started_at=NOW,
        diagnoses=(DiagnosisIn("J06.900", primary=True),),
    )
    opened = foshan.node.open_encounter(FOSHAN_DOCTOR, visitor, there)
    foshan.node.close_encounter(FOSHAN_DOCTOR, visitor, opened.id)
    assert count(zz.db, t.Encounter) == 1  # the record stays in Foshan
    rig.quiet()
    elsewhere = zz.node.visits_elsewhere(resident, home_id)
    assert [(v.city_code, v.encounter_id, v.institution_name) for v in elsewhere] == [
        ("4406", opened.id, FOSHAN_HOSPITAL_NAME)
    ]
    assert elsewhere[0].day == dt.date(2026, 11, 24)
    assert portal_visits(rig, home_id).count(f"佛山市 {FOSHAN_HOSPITAL_NAME}") == 1
    with rig.province["44"].session() as session:  # Guangdong's locator has Foshan's visit
        assert (
            session.scalar(select(t.RecordPointer.encounter_id).where(t.RecordPointer.city_code == "4406"))
            == opened.id
        )
    # delivered again: still one pointer
    with foshan.db.uow() as uow:
        uow.session.execute(
            update(t.OutboxMessage).where(t.OutboxMessage.subject == "x.4101.visit").values(published_at=None)
        )
        uow.commit()
    rig.quiet()
    assert count(zz.db, t.RemoteVisit) == 1

    # --- a card of Hebi (Henan too, another city) ----------------------------------------------
    hebi = foshan.node.swipe(FOSHAN_TERMINAL, card_number=ZHAO, chip_serial=zhao_chip)
    assert hebi.summary.name == "赵六"
    with foshan.db.session() as session:
        found = visitor_home(session, hebi.resident_id)
        assert found is not None and found.city == "4106"

    # --- refusals: nothing written in Foshan -----------------------------------------------------
    zz.cards.report_lost("clerk-41", LI, "lost in Foshan")  # home knows at once; the hot list later
    nothing = written(foshan.db)
    with pytest.raises(HotListed):
        foshan.node.swipe(FOSHAN_TERMINAL, card_number=LI, chip_serial=li_chip)
    rig.quiet()
    with pytest.raises(HotListed):
        foshan.node.swipe(FOSHAN_TERMINAL, card_number=LI, chip_serial=li_chip)
    unknown = "44060419900101001X"
    with pytest.raises(NotFound):
        foshan.node.swipe(FOSHAN_TERMINAL, card_number=unknown, chip_serial="0011223344556677")
    with pytest.raises(NotFound):  # the right card, a chip it never had
        foshan.node.swipe(FOSHAN_TERMINAL, card_number=ZHANG, chip_serial="0011223344556677")
    rig.runners["4101"].stop()  # Zhengzhou answers nothing any more
    with pytest.raises(MessagingError):
        foshan.node.swipe(FOSHAN_TERMINAL, card_number=ZHANG, chip_serial=zhang_chip)
    with pytest.raises(MessagingError):
        foshan.node.glance(FOSHAN_DOCTOR, visitor)
    after = written(foshan.db)
    assert after == nothing


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_cross_region_care_over_the_in_process_bus(
    request: pytest.FixtureRequest, kind: str, platform_keys: KeyCentre, tmp_path: Path
) -> None:
    with regions(request, kind, InProcessBus(), platform_keys, tmp_path) as rig:
        scenario(rig)


@pytest.mark.nats
def test_cross_region_care_over_nats(
    request: pytest.FixtureRequest, platform_keys: KeyCentre, tmp_path: Path
) -> None:
    bus = nats_bus(machine_nats())
    try:
        with regions(request, "sqlite", bus, platform_keys, tmp_path) as rig:
            scenario(rig)
    finally:
        bus.delete_streams()
        bus.close()
