"""The hot list flowing downward on its own (SQLite files, the in-process bus): the nation's
deltas (which card events list or unlist a chip), a city's versioned copy and its signed hot
list, the refusal of a swipe, payloads checked field by field.  Five nodes over SQLite,
PostgreSQL and NATS: tests/integration/test_federation_hotlist.py."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from healthcard.clock import FixedClock
from healthcard.errors import HotListed, InvalidValue
from healthcard.federation import Announcement, InProcessBus
from healthcard.federation.hotlist import (
    FEDERATED,
    apply_delta,
    check_delta,
    city_handler,
    hotlist_subject,
    national_delta,
    refusal,
)
from healthcard.federation.nodes import FederationRunner, NodeIdentity, national_handler, until_quiet
from healthcard.storage import tables as t
from healthcard.storage.db import Database

NOW = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC)
CLOCK = FixedClock(NOW)
CARD = "410102199003070019"
CHIP = "0081866B00001015"
NEW_CHIP = "0081866B00002A07"


def forward(status: str, version: int, chip: str | None = CHIP) -> dict[str, Any]:
    """A province's forward of a Zhengzhou card event, as the nation receives it."""
    payload: dict[str, Any] = {"card": CARD, "status": status, "version": version, "city": "4101"}
    return payload | ({"chip": chip, "at": "2026-11-24T08:00:00+00:00"} if chip else {})


def delta(listed: bool, version: int, chip: str = CHIP, **changes: Any) -> dict[str, Any]:
    status, reason = ("LOST", "lost") if listed else ("ACTIVE", None)
    payload = {
        "card": CARD,
        "chip": chip,
        "province": "41",
        "city": "4101",
        "status": status,
        "listed": listed,
        "reason": reason,
        "version": version,
        "at": None,
    }
    return payload | changes


def database(path: Path) -> Database:
    db = Database(f"sqlite:///{path}")
    t.Base.metadata.create_all(db.engine)
    return db


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    made = database(tmp_path / "node.db")
    try:
        yield made
    finally:
        made.dispose()


# --- the nation's deltas -----------------------------------------------------------------------------
def test_a_lost_chip_is_listed_and_a_found_one_taken_off() -> None:
    lost = national_delta(("ACTIVE", CHIP), True, forward("LOST", 7), "41")
    assert lost == {
        "card": CARD,
        "chip": CHIP,
        "province": "41",
        "city": "4101",
        "status": "LOST",
        "listed": True,
        "reason": "lost",
        "version": 7,
        "at": "2026-11-24T08:00:00+00:00",
    }
    found = national_delta(("LOST", CHIP), True, forward("ACTIVE", 8), "41")
    assert found is not None and (found["listed"], found["reason"], found["version"]) == (False, None, 8)
    for status, reason in (("REPLACED", "replaced"), ("CANCELLED", "cancelled")):
        made = national_delta(("LOST", CHIP), True, forward(status, 9), "41")
        assert made is not None and (made["listed"], made["reason"]) == (True, reason)


@pytest.mark.parametrize(
    ("before", "applied", "payload"),
    [
        (("ACTIVE", CHIP), True, forward("ACTIVE", 8)),  # active to active: nothing to list
        (None, True, forward("ISSUED", 3)),  # a new card
        (("REPLACED", CHIP), True, forward("ISSUED", 9, NEW_CHIP)),  # the replacement's new chip
        (("ACTIVE", CHIP), True, forward("EXPIRED", 9)),  # the life cycle does not list it
        (("ACTIVE", CHIP), False, forward("LOST", 5)),  # older than the index: superseded
        (("LOST", CHIP), False, forward("ACTIVE", 5)),  # older: not taken off
        (("ACTIVE", CHIP), True, forward("LOST", 7, None)),  # an old event without its chip
        (("LOST", None), False, forward("LOST", 5)),  # the index's chip unknown: cannot tell
    ],
)
def test_events_that_change_no_listing_make_no_delta(
    before: tuple[str, str | None] | None, applied: bool, payload: dict[str, Any]
) -> None:
    assert national_delta(before, applied, payload, "41") is None


def test_a_late_event_still_lists_a_chip_that_was_replaced_since() -> None:
    # the new chip's event came first; the old chip's loss, older, arrives late: listed all the same
    late = national_delta(("ISSUED", NEW_CHIP), False, forward("LOST", 5), "41")
    assert late is not None and (late["chip"], late["listed"], late["version"]) == (CHIP, True, 5)


def test_the_nation_announces_in_the_transaction_that_applied_the_event(db: Database) -> None:
    handle = national_handler(CLOCK)
    with db.uow() as uow:
        handle(uow, Announcement("up.national.41.card", forward("ACTIVE", 4), "m1"))
        handle(uow, Announcement("up.national.41.card", forward("LOST", 7), "m2"))
        handle(uow, Announcement("up.national.41.card", forward("LOST", 7), "m3"))  # the same again
        handle(uow, Announcement("up.national.41.card", forward("ACTIVE", 6), "m4"))  # older
        uow.commit()
    with db.session() as session:
        rows = session.scalars(select(t.OutboxMessage)).all()
        index = session.get(t.NationalCard, CARD)
    assert [(r.subject, r.payload["listed"], r.payload["version"]) for r in rows] == [
        (hotlist_subject("41"), True, 7)
    ]
    assert rows[0].msg_id.startswith("hotlist:")
    assert index is not None and (index.status, index.chip_serial, index.version) == ("LOST", CHIP, 7)


def test_a_bad_chip_in_a_forward_is_refused_by_field(db: Database) -> None:
    handle = national_handler(CLOCK)
    with db.uow() as uow, pytest.raises(InvalidValue) as refused:
        handle(uow, Announcement("up.national.41.card", forward("LOST", 7, "not-a-chip"), "m1"))
    assert refused.value.field == "payload.chip"


# --- a city's copy -----------------------------------------------------------------------------------
def _entry(db: Database, chip: str = CHIP) -> t.FederatedHotListEntry | None:
    with db.session() as session:
        return session.get(t.FederatedHotListEntry, chip)


def test_the_newest_version_of_a_chip_wins_whatever_the_order(db: Database) -> None:
    with db.uow() as uow:
        assert apply_delta(uow, delta(True, 7), NOW)
        assert not apply_delta(uow, delta(True, 7), NOW)  # the same again
        assert not apply_delta(uow, delta(False, 5), NOW)  # older, late
        uow.commit()
    row = _entry(db)
    assert row is not None and (row.listed, row.reason, row.status, row.version) == (True, "lost", "LOST", 7)
    with db.uow() as uow:
        assert apply_delta(uow, delta(False, 8), NOW)  # found
        assert apply_delta(uow, delta(True, 9, NEW_CHIP, status="CANCELLED", reason="cancelled"), NOW)
        uow.commit()
    row = _entry(db)
    assert row is not None and (row.listed, row.reason, row.version) == (False, None, 8)
    new = _entry(db, NEW_CHIP)
    assert new is not None and (new.card_number, new.listed, new.reason) == (CARD, True, "cancelled")


def _signed_list(db: Database, province: str) -> tuple[int, list[tuple[str, str, str, bool]]]:
    with db.uow() as uow:
        rows = uow.session.scalars(select(t.HotListEntry).where(t.HotListEntry.province == province))
        return uow.hotlist.version(province), [
            (e.chip_serial, e.reason, e.resident_id, e.removed_version is None) for e in rows
        ]


def test_a_chip_of_another_city_goes_on_and_off_the_citys_signed_list(db: Database) -> None:
    handle = city_handler("4406", CLOCK)
    with db.uow() as uow:
        handle(uow, Announcement(hotlist_subject("41"), delta(True, 7), "m1"))
        handle(
            uow,
            Announcement(hotlist_subject("41"), delta(True, 9, status="REPLACED", reason="replaced"), "m2"),
        )
        uow.commit()
    # listed once (as the card centre does: a lost chip then replaced stays listed as it was)
    assert _signed_list(db, "41") == (1, [(CHIP, "lost", FEDERATED, True)])
    with db.uow() as uow:
        handle(uow, Announcement(hotlist_subject("41"), delta(False, 10), "m3"))
        uow.commit()
    assert _signed_list(db, "41") == (2, [(CHIP, "lost", FEDERATED, False)])


def test_a_citys_own_cards_only_land_in_its_copy(db: Database) -> None:
    with db.uow() as uow:
        apply_delta(uow, delta(True, 7), NOW, city="4101")
        uow.commit()
    assert _signed_list(db, "41") == (0, [])
    assert _entry(db) is not None


def test_a_chip_the_card_centre_listed_is_never_taken_off_by_a_delta(db: Database) -> None:
    with db.uow() as uow:
        version = uow.hotlist.bump("41", NOW)
        uow.hotlist.add(
            t.HotListEntry(
                province="41",
                chip_serial=CHIP,
                card_number=CARD,
                resident_id="r-1",
                reason="lost",
                listed_version=version,
                listed_at=NOW,
            )
        )
        apply_delta(uow, delta(True, 7), NOW, city="4406")  # already listed: not twice
        apply_delta(uow, delta(False, 8), NOW, city="4406")  # not ours to take off
        uow.commit()
    assert _signed_list(db, "41") == (1, [(CHIP, "lost", "r-1", True)])


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"card": None}, "payload.card"),
        ({"card": "4" * 19}, "payload.card"),
        ({"chip": "XYZ"}, "payload.chip"),
        ({"chip": None}, "payload.chip"),
        ({"province": "4"}, "payload.province"),
        ({"city": 4101}, "payload.city"),
        ({"status": ""}, "payload.status"),
        ({"listed": "yes"}, "payload.listed"),
        ({"reason": "stolen"}, "payload.reason"),
        ({"version": "7"}, "payload.version"),
        ({"version": True}, "payload.version"),
        ({"version": -1}, "payload.version"),
    ],
)
def test_a_malformed_delta_is_refused_by_field_and_writes_nothing(
    db: Database, changes: dict[str, Any], field: str
) -> None:
    with db.uow() as uow, pytest.raises(InvalidValue) as refused:
        apply_delta(uow, delta(True, 7) | changes, NOW, city="4406")
    assert refused.value.field == field
    assert _entry(db) is None and _signed_list(db, "41") == (0, [])


def test_a_delta_is_normalised() -> None:
    checked = check_delta(delta(False, 3, chip=CHIP.lower(), reason="lost"))
    assert (checked["chip"], checked["reason"]) == (CHIP, None)  # an unlisted chip has no reason
    with pytest.raises(InvalidValue) as refused:
        check_delta([1, 2])
    assert refused.value.field == "payload"


# --- the refusal of a swipe --------------------------------------------------------------------------
def test_a_listed_chip_is_refused_with_its_card_and_reason(db: Database) -> None:
    with db.uow() as uow:
        apply_delta(uow, delta(True, 7), NOW)
        uow.commit()
    with db.session() as session:
        refused = refusal(session, CARD, CHIP.lower())
        assert isinstance(refused, HotListed)
        assert (refused.card_number, refused.reason) == (CARD, "lost")
        assert CHIP in str(refused)
        assert refusal(session, "440604199001010011", "0081866B0000FFFF") is None  # nothing known
        with pytest.raises(InvalidValue) as bad:
            refusal(session, CARD, "12")
        assert bad.value.field == "chip_serial"
    with db.uow() as uow:
        apply_delta(uow, delta(False, 8), NOW)
        uow.commit()
    with db.session() as session:
        assert refusal(session, CARD, CHIP) is None


def test_an_unknown_chip_is_judged_by_the_cards_newest_entry(db: Database) -> None:
    with db.uow() as uow:
        apply_delta(uow, delta(True, 7), NOW)
        uow.commit()
    with db.session() as session:
        refused = refusal(session, CARD, NEW_CHIP)  # a chip the list does not know: the card is lost
        assert refused is not None and refused.reason == "lost"
        assert refusal(session, CARD, "") is not None
    with db.uow() as uow:
        apply_delta(uow, delta(True, 9, status="REPLACED", reason="replaced"), NOW)
        uow.commit()
    with db.session() as session:
        assert refusal(session, CARD, NEW_CHIP) is None  # the number lives on the new chip
        old = refusal(session, CARD, CHIP)
        assert old is not None and old.reason == "replaced"  # the old chip stays refused


# --- the runner --------------------------------------------------------------------------------------
def test_a_city_runner_consumes_the_hot_list(tmp_path: Path) -> None:
    bus, city, nation = InProcessBus(), database(tmp_path / "city.db"), database(tmp_path / "cn.db")
    runners = [
        FederationRunner(city, bus, CLOCK, NodeIdentity.of("city", "4406")),
        FederationRunner(nation, bus, CLOCK, NodeIdentity.of("national", "CN")),
    ]
    assert "city-4406-hotlist" in [c.name for c in runners[0].consumers]
    try:
        with nation.uow() as uow:
            national_handler(CLOCK)(uow, Announcement("up.national.41.card", forward("LOST", 7), "m1"))
            uow.commit()
        until_quiet(runners)
        with city.session() as session:
            assert refusal(session, CARD, CHIP) is not None
        assert _signed_list(city, "41")[1] == [(CHIP, "lost", FEDERATED, True)]
    finally:
        for runner in runners:
            runner.stop()
        city.dispose()
        nation.dispose()
