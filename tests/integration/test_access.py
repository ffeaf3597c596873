"""The access policy against the database (SQLite and PostgreSQL): relationships from presence
grants, open encounters, break-glass and area; hidden categories; refusals audited even when the
caller's transaction rolls back."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from healthcard.clock import FixedClock
from healthcard.errors import InvalidValue, NotFound, PermissionDenied
from healthcard.platform.access import Access, Action, Actor, Carrier, Category, Decision, Relationship, Role
from healthcard.platform.audit import Audit
from healthcard.storage import tables as t
from healthcard.storage.db import Database

NOW = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)  # 10:00 in Zhengzhou
ZHONGYUAN = "410102001"  # 郑州市中原区人民医院
TIANHE = "440106001"  # 广州市天河区人民医院
CDC = "410100900"
NCMS = "410100800"

DR_WANG = Actor("dr-wang", Role.CLINICIAN, institution_code=ZHONGYUAN, carrier=Carrier.CARD)
DR_CHEN = Actor("dr-chen", Role.CLINICIAN, institution_code=TIANHE)
DR_HUANG = Actor("dr-huang", Role.CLINICIAN, institution_code=TIANHE)
ZHANG = Actor("zhangsan", Role.RESIDENT, resident_id="R1")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def access(database: Database, clock: FixedClock) -> Access:
    with database.uow() as uow:
        for code, name, kind, area in (
            (ZHONGYUAN, "郑州市中原区人民医院", "hospital", "410102"),
            (TIANHE, "广州市天河区人民医院", "hospital", "440106"),
            (CDC, "郑州市疾病预防控制中心", "cdc", "410100"),
            (NCMS, "郑州市新农合管理中心", "ncms-office", "410100"),
        ):
            uow.session.add(t.Institution(code=code, name=name, kind=kind, area_code=area, level="city"))
        for rid, name, area, number in (
            ("R1", "张三", "410102", "410102199003070019"),
            ("R1b", "张三", "410102", "410102199003070027"),  # a merged duplicate of R1
            ("R2", "李四", "440106", "440106198805050011"),
        ):
            uow.session.add(
                t.Resident(
                    resident_id=rid,
                    id_type="01",
                    id_number=number,
                    name=name,
                    sex=1,
                    birth_date=dt.date(1990, 3, 7),
                    created_at=NOW,
                    area_code=area,
                )
            )
        uow.commit()
    return Access(database, clock, Audit(clock))


def encounter(db: Database, resident_id: str, institution: str, status: str = "open") -> None:
    with db.uow() as uow:
        uow.session.add(
            t.Encounter(
                resident_id=resident_id,
                institution_code=institution,
                kind="outpatient",
                status=status,
                number="MZ0001",
                department="内科",
                carrier="card",
                started_at=NOW,
                fees=[],
                created_at=NOW,
            )
        )
        uow.commit()


def count(db: Database, table: type[t.Base]) -> int:
    with db.uow() as uow:
        return uow.session.scalar(select(func.count()).select_from(table)) or 0


def entries(db: Database) -> list[t.AuditEntry]:
    with db.uow() as uow:
        rows = list(uow.session.scalars(select(t.AuditEntry).order_by(t.AuditEntry.id)))
        uow.session.expunge_all()  # keep the loaded values past the uow's closing rollback
        return rows


def allowed(
    access: Access, actor: Actor, category: Category = Category.ENCOUNTERS, ids: tuple[str, ...] = ("R1",)
) -> Decision:
    with access.db.uow() as uow:
        decision = access.check(uow, actor, list(ids), category, what=category.value)
        uow.commit()
        return decision


def denied(
    access: Access, actor: Actor, category: Category = Category.ENCOUNTERS, ids: tuple[str, ...] = ("R1",)
) -> str:
    with access.db.uow() as uow, pytest.raises(PermissionDenied) as refusal:
        access.check(uow, actor, list(ids), category, what=category.value)
    return str(refusal.value)


# --- the acceptance test ------------------------------------------------------------------------
def test_a_clinician_of_another_institution_gets_403_and_the_attempt_is_audited(
    database: Database, access: Access
) -> None:
    encounter(database, "R1", ZHONGYUAN)  # in care at Zhongyuan, not at Tianhe
    message = denied(access, DR_CHEN)
    assert "presence" in message and "care" in message and "break-glass" in message
    assert "R1" not in message and "张三" not in message  # no personal data in the refusal
    [entry] = entries(database)
    assert (entry.actor, entry.role, entry.institution_code) == ("dr-chen", "clinician", TIANHE)
    assert (entry.resident_id, entry.action, entry.outcome, entry.what) == (
        "R1",
        "deny",
        "denied",
        "encounters",
    )
    assert entry.why.startswith("read: ") and "has institution" in entry.why
    assert count(database, t.PresenceGrant) == 0 and count(database, t.Notification) == 0
    with database.uow() as uow:
        assert access.audit.verify(uow).ok


def test_a_denial_survives_the_rollback_of_a_transaction_that_holds_the_same_chain(
    database: Database, access: Access
) -> None:
    encounter(database, "R1", ZHONGYUAN)
    with database.uow() as uow:
        assert access.check(uow, DR_WANG, ["R1"], Category.ENCOUNTERS, what="encounters").allowed
        uow.session.add(t.Notification(resident_id="R1", kind="test", message="rolled back", at=NOW))
        uow.flush()  # the caller holds the database / the chain's head row now
        with pytest.raises(PermissionDenied, match="may never read settlement"):
            access.check(uow, DR_WANG, ["R1"], Category.SETTLEMENT, what="fees")
    # the allowed read and the notification went with the rollback; the denial stayed
    [entry] = entries(database)
    assert (entry.seq, entry.action, entry.what, entry.outcome) == (1, "deny", "fees", "denied")
    assert count(database, t.Notification) == 0
    with database.uow() as uow:
        assert access.audit.verify(uow).ok


def test_a_caller_that_commits_after_a_denial_keeps_both_entries_in_order(
    database: Database, access: Access
) -> None:
    encounter(database, "R1", ZHONGYUAN)
    with database.uow() as uow:
        access.check(uow, DR_WANG, ["R1"], Category.ENCOUNTERS, what="encounters")
        with pytest.raises(PermissionDenied):
            access.check(uow, DR_WANG, ["R1"], Category.AUDIT, what="who looked")
        uow.commit()
    assert [(e.seq, e.action) for e in entries(database)] == [(1, "read"), (2, "deny")]
    with database.uow() as uow:
        assert access.audit.verify(uow).ok


def test_a_denial_before_any_query_is_written_at_once(database: Database, access: Access) -> None:
    admin = Actor("root", Role.ADMIN, institution_code=ZHONGYUAN)
    with database.uow() as uow:
        with pytest.raises(PermissionDenied, match="admin may never read encounters"):
            access.check(uow, admin, ["R1"], Category.ENCOUNTERS, what="encounters")
        assert [e.actor for e in entries(database)] == ["root"]  # visible before the caller ends


# --- relationships ------------------------------------------------------------------------------
def test_care_is_an_open_encounter_at_the_clinicians_institution(database: Database, access: Access) -> None:
    encounter(database, "R1", ZHONGYUAN, status="closed")
    denied(access, DR_WANG)
    encounter(database, "R1b", ZHONGYUAN)  # open, under the merged duplicate's id
    denied(access, DR_WANG)  # R1 alone does not reach it
    decision = allowed(access, DR_WANG, ids=("R1", "R1b"))
    assert decision.relationship is Relationship.CARE
    assert [(e.action, e.outcome, e.why) for e in entries(database)][-1] == ("read", "allowed", "care")


def test_the_care_hook_lets_appointments_plug_in(database: Database, clock: FixedClock) -> None:
    calls: list[tuple[str, tuple[str, ...]]] = []

    def booked(uow: object, actor: Actor, ids: object, now: dt.datetime) -> bool:
        calls.append((actor.id, tuple(ids)))  # type: ignore[arg-type]
        return actor.institution_code == ZHONGYUAN

    with database.uow() as uow:
        uow.session.add(t.Institution(code=ZHONGYUAN, name="中原", kind="hospital", area_code="410102"))
        uow.commit()
    access = Access(database, clock, Audit(clock), care=[booked])
    with database.uow() as uow:
        assert access.relationship(uow, DR_WANG, ["R9"]) is Relationship.CARE
        assert access.relationship(uow, DR_CHEN, ["R9"]) is Relationship.INSTITUTION
    assert calls == [("dr-wang", ("R9",)), ("dr-chen", ("R9",))]


def test_relationship_is_the_strongest_tie_that_holds(database: Database, access: Access) -> None:
    encounter(database, "R1", ZHONGYUAN)
    with database.uow() as uow:
        access.grant_presence(uow, resident_id="R1", institution_code=ZHONGYUAN, card_use_id=None)
        uow.commit()
    with database.uow() as uow:
        assert access.relationship(uow, DR_WANG, ["R1"]) is Relationship.PRESENCE
        assert access.relationships(uow, DR_WANG, ["R1"]) == {
            Relationship.PRESENCE,
            Relationship.CARE,
            Relationship.INSTITUTION,
            Relationship.NONE,
        }
        assert access.relationship(uow, DR_CHEN, ["R1"]) is Relationship.INSTITUTION
        assert access.relationship(uow, ZHANG, ["R1", "R1b"]) is Relationship.SELF
        assert (
            access.relationship(uow, Actor("x", Role.RESIDENT, resident_id="R2"), ["R1"]) is Relationship.NONE
        )
        with pytest.raises(InvalidValue, match="resident_ids"):
            access.relationship(uow, DR_WANG, [])
        with pytest.raises(InvalidValue, match="resident_ids"):
            access.relationship(uow, DR_WANG, "R1")


def test_a_presence_grant_lasts_24_hours(database: Database, access: Access, clock: FixedClock) -> None:
    with database.uow() as uow:
        grant = access.grant_presence(uow, resident_id="R1", institution_code=ZHONGYUAN, card_use_id=None)
        uow.commit()
    assert grant.expires_at == NOW + dt.timedelta(hours=24) and grant.reason == "card"
    assert allowed(access, DR_WANG).relationship is Relationship.PRESENCE
    denied(access, DR_CHEN)  # the card was at Zhongyuan, not at Tianhe
    clock.advance(dt.timedelta(hours=23, minutes=59))
    allowed(access, DR_WANG)
    clock.advance(dt.timedelta(minutes=1))
    assert "has institution" in denied(access, DR_WANG)


def test_a_fresh_swipe_extends_the_grant_instead_of_adding_one(
    database: Database, access: Access, clock: FixedClock
) -> None:
    with database.uow() as uow:
        first = access.grant_presence(uow, resident_id="R1", institution_code=ZHONGYUAN, card_use_id=None)
        uow.commit()
    clock.advance(dt.timedelta(hours=20))
    with database.uow() as uow:
        again = access.grant_presence(
            uow, resident_id="R1", institution_code=ZHONGYUAN, card_use_id=None, reason="qr"
        )
        uow.commit()
    assert again.id == first.id and again.granted_at == NOW and again.reason == "qr"
    assert again.expires_at == NOW + dt.timedelta(hours=44)
    assert count(database, t.PresenceGrant) == 1
    clock.advance(dt.timedelta(hours=23))
    allowed(access, DR_WANG)
    clock.advance(dt.timedelta(hours=1))
    denied(access, DR_WANG)
    with database.uow() as uow:  # an expired grant is not reused
        third = access.grant_presence(uow, resident_id="R1", institution_code=ZHONGYUAN, card_use_id=None)
        uow.commit()
    assert third.id != first.id and count(database, t.PresenceGrant) == 2


def test_grant_presence_refuses_other_reasons(database: Database, access: Access) -> None:
    with database.uow() as uow, pytest.raises(InvalidValue, match="reason"):
        access.grant_presence(
            uow, resident_id="R1", institution_code=ZHONGYUAN, card_use_id=None, reason="break-glass"
        )
    assert count(database, t.PresenceGrant) == 0


# --- break-glass --------------------------------------------------------------------------------
def test_break_glass_opens_the_record_to_one_clinician_and_tells_the_resident(
    database: Database, access: Access, clock: FixedClock
) -> None:
    with database.uow() as uow:
        access.hide(uow, ZHANG, "R1", "hiv", True)
        uow.commit()
    denied(access, DR_CHEN)
    with database.uow() as uow:
        grant = access.break_glass(uow, DR_CHEN, "R1", reason="患者昏迷送急诊，需查过敏史和既往病史")
        uow.commit()
    assert (grant.reason, grant.granted_to, grant.institution_code) == ("break-glass", "dr-chen", TIANHE)
    assert grant.expires_at == NOW + dt.timedelta(hours=4)
    decision = allowed(access, DR_CHEN)
    assert decision.relationship is Relationship.BREAK_GLASS and decision.hidden == frozenset()
    denied(access, DR_HUANG)  # granted to one account, not to the institution
    with database.uow() as uow:
        [note] = access.notifications(uow, "R1")
    assert note.kind == "break-glass" and note.at == NOW and note.read_at is None
    assert "广州市天河区人民医院" in note.message and "dr-chen" in note.message and "患者昏迷" in note.message
    glass = [e for e in entries(database) if e.action == "break-glass"]
    assert [(e.actor, e.resident_id, e.why) for e in glass] == [
        ("dr-chen", "R1", "患者昏迷送急诊，需查过敏史和既往病史")
    ]
    clock.advance(dt.timedelta(hours=4))
    denied(access, DR_CHEN)


def test_break_glass_needs_a_reason_and_writes_nothing_without_one(
    database: Database, access: Access
) -> None:
    for reason in ("", "   急诊   ", "x" * 201):
        with database.uow() as uow, pytest.raises(InvalidValue) as refusal:
            access.break_glass(uow, DR_CHEN, "R1", reason=reason)
        assert refusal.value.field == "reason"
    with database.uow() as uow, pytest.raises(NotFound):
        access.break_glass(uow, DR_CHEN, "R404", reason="患者昏迷送急诊，需查过敏史")
    for table in (t.PresenceGrant, t.Notification, t.AuditEntry, t.AuditHead):
        assert count(database, table) == 0


def test_only_clinicians_break_the_glass(database: Database, access: Access) -> None:
    cashier = Actor("cash-1", Role.CASHIER, institution_code=TIANHE)
    with database.uow() as uow, pytest.raises(PermissionDenied, match="clinicians"):
        access.break_glass(uow, cashier, "R1", reason="患者昏迷送急诊，需查过敏史")
    assert count(database, t.PresenceGrant) == 0 and count(database, t.Notification) == 0
    [entry] = entries(database)
    assert (entry.actor, entry.action, entry.what, entry.outcome) == (
        "cash-1",
        "deny",
        "break-glass",
        "denied",
    )


# --- hidden categories --------------------------------------------------------------------------
def test_a_resident_hides_and_shows_a_category(database: Database, access: Access) -> None:
    with database.uow() as uow:
        access.grant_presence(uow, resident_id="R1", institution_code=ZHONGYUAN, card_use_id=None)
        assert access.hide(uow, ZHANG, "R1", "hiv", True) == {"hiv"}
        assert access.hide(uow, ZHANG, "R1", "psychiatric", True) == {"hiv", "psychiatric"}
        assert access.hide(uow, ZHANG, "R1", "hiv", True) == {"hiv", "psychiatric"}  # again: no change
        uow.commit()
    assert allowed(access, DR_WANG).hidden == {"hiv", "psychiatric"}
    assert allowed(access, ZHANG).hidden == frozenset()  # not from themselves
    with database.uow() as uow:
        assert access.hide(uow, ZHANG, "R1", "hiv", False) == {"psychiatric"}
        assert access.hide(uow, ZHANG, "R1", "hiv", False) == {"psychiatric"}
        uow.commit()
    with database.uow() as uow:
        assert access.hidden(uow, "R1") == {"psychiatric"}
    assert allowed(access, DR_WANG).hidden == {"psychiatric"}
    hides = [e.why for e in entries(database) if e.what == "hidden categories"]
    assert hides == [
        "self: hide hiv",
        "self: hide psychiatric",
        "self: hide hiv",
        "self: show hiv",
        "self: show hiv",
    ]


def test_a_duplicates_hidden_category_still_counts(database: Database, access: Access) -> None:
    encounter(database, "R1", ZHONGYUAN)
    duplicate = Actor("zhang-old", Role.RESIDENT, resident_id="R1b")
    with database.uow() as uow:
        access.hide(uow, duplicate, "R1b", "reproductive", True)
        uow.commit()
    assert allowed(access, DR_WANG, ids=("R1", "R1b")).hidden == {"reproductive"}


def test_only_the_resident_hides_and_general_cannot_be_hidden(database: Database, access: Access) -> None:
    with database.uow() as uow, pytest.raises(PermissionDenied, match="only the resident"):
        access.hide(uow, DR_WANG, "R1", "hiv", True)
    with database.uow() as uow, pytest.raises(PermissionDenied):
        access.hide(uow, Actor("lisi", Role.RESIDENT, resident_id="R2"), "R1", "hiv", True)
    for category in ("general", "cardiology", ""):
        with database.uow() as uow, pytest.raises(InvalidValue) as refusal:
            access.hide(uow, ZHANG, "R1", category, True)
        assert refusal.value.field == "category"
    assert count(database, t.HiddenCategory) == 0
    assert [(e.actor, e.outcome) for e in entries(database)] == [("dr-wang", "denied"), ("lisi", "denied")]


# --- the other roles ----------------------------------------------------------------------------
def test_public_health_reads_immunization_of_its_area_only(database: Database, access: Access) -> None:
    officer = Actor("cdc-1", Role.PUBLIC_HEALTH, institution_code=CDC, area_code="4101")
    assert allowed(access, officer, Category.IMMUNIZATION).relationship is Relationship.AREA
    assert "area" in denied(access, officer, Category.IMMUNIZATION, ids=("R2",))
    denied(access, officer, Category.ENCOUNTERS)
    with database.uow() as uow:  # the card swiped at the CDC's clinic does not widen its reach
        access.grant_presence(uow, resident_id="R2", institution_code=CDC, card_use_id=None)
        uow.commit()
    denied(access, officer, Category.IMMUNIZATION, ids=("R2",))
    with database.uow() as uow:
        access.grant_presence(uow, resident_id="R1", institution_code=CDC, card_use_id=None)
        uow.commit()
    assert allowed(access, officer, Category.IMMUNIZATION).relationship is Relationship.AREA


def test_the_insurer_sees_settlements_not_encounters(database: Database, access: Access) -> None:
    insurer = Actor("ncms-1", Role.INSURER, institution_code=NCMS)
    assert allowed(access, insurer, Category.SETTLEMENT).relationship is Relationship.INSTITUTION
    assert "may never read encounters" in denied(access, insurer, Category.ENCOUNTERS)
    denied(access, insurer, Category.DEMOGRAPHICS)


def test_the_auditor_reads_anyones_audit_trail(database: Database, access: Access) -> None:
    auditor = Actor("audit-1", Role.AUDITOR)
    assert allowed(access, auditor, Category.AUDIT, ids=("R2",)).relationship is Relationship.NONE
    denied(access, auditor, Category.SUMMARY, ids=("R2",))


def test_a_terminal_reads_the_summary_only_with_the_card_in_its_slot(
    database: Database, access: Access
) -> None:
    terminal = Actor("5341304100000009", Role.TERMINAL, institution_code=ZHONGYUAN, carrier=Carrier.TERMINAL)
    denied(access, terminal, Category.SUMMARY)
    with database.uow() as uow:
        access.grant_presence(uow, resident_id="R1", institution_code=ZHONGYUAN, card_use_id=7)
        decision = access.check(uow, terminal, ["R1"], Category.ENCOUNTERS, Action.WRITE, what="encounter")
        uow.commit()
    assert decision.relationship is Relationship.PRESENCE
    allowed(access, terminal, Category.SUMMARY)
    assert entries(database)[-1].carrier == "terminal"


# --- who looked ---------------------------------------------------------------------------------
def test_who_looked_lists_the_clinicians_read_with_institution_and_carrier(
    database: Database, access: Access, clock: FixedClock
) -> None:
    with database.uow() as uow:
        access.grant_presence(uow, resident_id="R1", institution_code=ZHONGYUAN, card_use_id=None)
        uow.commit()
    clock.advance(dt.timedelta(minutes=5))
    with database.uow() as uow:
        access.check(uow, DR_WANG, ["R1"], Category.ENCOUNTERS, what="encounters", why="复诊")
        uow.commit()
    clock.advance(dt.timedelta(minutes=5))
    denied(access, DR_CHEN)
    clock.advance(dt.timedelta(minutes=5))
    allowed(access, ZHANG, Category.AUDIT)  # the resident asks: not listed by default
    with database.uow() as uow:
        looked = access.audit.who_looked(uow, ["R1", "R1b"])
        everyone = access.audit.who_looked(uow, ["R1", "R1b"], include_self=True)
    assert [(v.actor, v.outcome) for v in looked] == [("dr-chen", "denied"), ("dr-wang", "allowed")]
    read = looked[1]
    assert (read.institution_code, read.carrier, read.role, read.action) == (
        ZHONGYUAN,
        "card",
        "clinician",
        "read",
    )
    assert read.why == "presence: 复诊" and read.what == "encounters"
    assert read.at == NOW + dt.timedelta(minutes=5)
    assert [v.actor for v in everyone] == ["zhangsan", "dr-chen", "dr-wang"]


def test_check_needs_what(database: Database, access: Access) -> None:
    with database.uow() as uow, pytest.raises(InvalidValue, match="what"):
        access.check(uow, ZHANG, ["R1"], Category.AUDIT, what=" ")
    assert count(database, t.AuditEntry) == 0
