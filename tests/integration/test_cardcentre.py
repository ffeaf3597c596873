"""The card centre on both databases: application → card, loss, replacement, hot list, refusals,
permissions, failures half-way and crash recovery."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from healthcard.card.filesystem import LifeCycle
from healthcard.clock import FixedClock
from healthcard.errors import (
    Duplicate,
    HotListed,
    InvalidValue,
    NotFound,
    PermissionDenied,
    TransitionRefused,
    TransportError,
)
from healthcard.issuance.cardcentre import LEASE, CardCentre
from healthcard.issuance.chips import SimulatedChip, SimulatedChips, TransportKeyOf
from healthcard.issuance.keycentre import KeyCentre
from healthcard.issuance.lifecycle import ApplicationStatus, CardStatus
from healthcard.issuance.organisation import OperatorSpec, Organisation
from healthcard.storage.db import Database
from healthcard.terminal import hotlist as hot

from .cardcentre_fixtures import NOW, application, make_key_centre, seed_organisation, terminal_for

CARD = "410102199003070019"


@pytest.fixture(scope="module")
def key_centre(tmp_path_factory: pytest.TempPathFactory) -> KeyCentre:
    return make_key_centre(tmp_path_factory.mktemp("keys"))


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def centre(database: Database, key_centre: KeyCentre, clock: FixedClock) -> Iterator[CardCentre]:
    seed_organisation(database)
    yield CardCentre(database, clock, lambda: key_centre)


@pytest.fixture
def chips() -> SimulatedChips:
    return SimulatedChips()


def counts(db: Database) -> dict[str, int]:
    return db.status().tables


def issue(centre: CardCentre, chips: SimulatedChips, **overrides: object) -> str:
    submitted = centre.submit("clerk-41", application(**overrides), collection_point="410102-01")
    centre.approve("admin-41", submitted.number)
    card = centre.issue("admin-41", submitted.number, chips)
    return card.chip_serial


def test_application_to_active_card(centre: CardCentre, chips: SimulatedChips, key_centre: KeyCentre) -> None:
    submitted = centre.submit("clerk-41", application(), collection_point="410102-01")
    assert submitted.status is ApplicationStatus.SUBMITTED and submitted.card_number == CARD
    centre.approve("admin-41", submitted.number)
    card = centre.issue("admin-41", submitted.number, chips)
    assert card.status is CardStatus.ISSUED and card.card_number == CARD
    assert len(card.issue_serial) == 10 and card.issue_serial.isdigit()
    assert centre.application(submitted.number).status is ApplicationStatus.ISSUED
    state = chips.delivered[bytes.fromhex(card.chip_serial)]
    assert state.lifecycle is LifeCycle.ISSUED
    with terminal_for(key_centre, state) as terminal:
        assert terminal.read_holder().name == "张三"
        assert terminal.read_issuer().card_number == CARD
        assert terminal.read_issuer().issue_serial == card.issue_serial
        assert terminal.read_allergies()[0].allergen == "青霉素"
    active = centre.activate("clerk-41", CARD)
    assert active.status is CardStatus.ACTIVE
    history = centre.card(CARD)
    assert [e.to_status for e in history.events] == ["PERSONALISING", "ISSUED", "ACTIVE"]
    assert [e.operator for e in history.events] == ["admin-41", "admin-41", "clerk-41"]
    assert history.name == "张三" and history.current is not None


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"id_number": "410102199003070018"}, "id_number", "check digit"),
        (
            {"id_number": "410102219901010013", "birth_date": "2199-01-01"},
            "id_number",
            "21990101 is in the future",
        ),
        ({"id_number": "410102199002300011", "birth_date": "1990-02-28"}, "id_number", "19900230"),
        ({"id_number": "990102199003010019", "birth_date": "1990-03-01"}, "id_number", "990102"),
        ({"name": "欧阳" * 8}, "name", "over-long name"),
        ({"photo": b"\x89PNG\r\n\x1a\n" + bytes(64)}, "photo", "JPEG"),
    ],
)
def test_bad_input_is_refused_by_field_and_writes_nothing(
    centre: CardCentre, database: Database, overrides: dict[str, object], field: str, words: str
) -> None:
    before = counts(database)
    with pytest.raises(InvalidValue) as caught:
        centre.submit("clerk-41", application(**overrides), collection_point="410102-01")
    assert caught.value.field == field
    assert words in str(caught.value)
    assert counts(database) == before


def test_one_active_card_per_person(centre: CardCentre, chips: SimulatedChips, database: Database) -> None:
    issue(centre, chips)
    before = counts(database)
    with pytest.raises(Duplicate) as caught:
        centre.submit("clerk-41", application(), collection_point="410102-01")
    assert caught.value.field == "id_number"
    assert "ISSUED" in str(caught.value) and "replacement" in str(caught.value)
    assert counts(database) == before


def test_second_application_while_one_is_open(centre: CardCentre) -> None:
    first = centre.submit("clerk-41", application(), collection_point="410102-01")
    with pytest.raises(Duplicate, match=first.number):
        centre.submit("clerk-41", application(), collection_point="410102-01")


def test_lost_then_replaced_keeps_number_and_data_and_hotlists_the_old_chip(
    centre: CardCentre, chips: SimulatedChips, key_centre: KeyCentre, clock: FixedClock
) -> None:
    old_serial = issue(centre, chips)
    centre.activate("clerk-41", CARD)
    assert centre.hotlist_version("41") == 0
    centre.report_lost("clerk-41", CARD, "lost on the bus")
    v1 = centre.hotlist("41")
    assert v1.version == 1 and [e.chip_serial.hex().upper() for e in v1.added] == [old_serial]
    clock.advance(dt.timedelta(days=1))
    new = centre.replace("admin-41", CARD, chips, "lost")
    assert new.card_number == CARD and new.chip_serial != old_serial and new.status is CardStatus.ISSUED
    full = centre.hotlist("41")
    delta = centre.hotlist("41", since=1)
    statuses = {c.chip_serial: c.status for c in centre.card(CARD).cards}
    assert statuses == {old_serial: CardStatus.REPLACED, new.chip_serial: CardStatus.ISSUED}
    assert [e.chip_serial.hex().upper() for e in full.added] == [old_serial]  # listed once, as lost

    listed = hot.TerminalHotList()
    listed.load(hot.encode(v1), trust=key_centre.trust_store(), today=NOW.date())
    listed.load(hot.encode(delta), trust=key_centre.trust_store(), today=NOW.date())
    old_state = chips.delivered[bytes.fromhex(old_serial)]
    new_state = chips.delivered[bytes.fromhex(new.chip_serial)]
    with pytest.raises(HotListed) as refused:
        terminal_for(key_centre, old_state, hotlist=listed).open()
    assert refused.value.card_number == CARD
    with terminal_for(key_centre, new_state, hotlist=listed) as terminal:
        assert terminal.read_issuer().card_number == CARD
        assert (
            terminal.read_medical_alerts()
            == terminal_for(key_centre, old_state).__enter__().read_medical_alerts()
        )
        assert terminal.read_allergies()[0].allergen == "青霉素"


def test_recovered_card_comes_off_the_list(centre: CardCentre, chips: SimulatedChips) -> None:
    serial = issue(centre, chips)
    centre.activate("clerk-41", CARD)
    centre.report_lost("clerk-41", CARD)
    centre.recover("clerk-41", CARD)
    assert centre.card(CARD).current is not None and centre.card(CARD).current.status is CardStatus.ACTIVE  # type: ignore[union-attr]
    delta = centre.hotlist("41", since=1)
    assert delta.version == 2 and [s.hex().upper() for s in delta.removed] == [serial] and not delta.added
    assert not centre.hotlist("41").added


def test_who_may_do_what(centre: CardCentre, chips: SimulatedChips) -> None:
    issue(centre, chips)
    with pytest.raises(PermissionDenied, match="clerk"):
        centre.cancel("clerk-41", CARD, "death")
    with pytest.raises(PermissionDenied, match="province 44"):
        centre.cancel("admin-44", CARD, "death")
    with pytest.raises(PermissionDenied):
        centre.cancel("nobody", CARD, "death")
    with pytest.raises(PermissionDenied):
        centre.approve("clerk-41", "SQ41000000000001")
    centre.cancel("admin-41", CARD, "death")
    with pytest.raises(TransitionRefused, match="CANCELLED"):
        centre.recover("admin-41", CARD)
    with pytest.raises(NotFound):
        centre.report_lost("clerk-41", "440604198501010036")


class FailingChips(SimulatedChips):
    """Chips whose link breaks after ``after`` APDUs (a card pulled from the reader)."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after
        self.made: list[SimulatedChip] = []

    def blank(self, transport_key: TransportKeyOf) -> SimulatedChip:
        chip = super().blank(transport_key)
        sent = 0
        process = chip.card.process

        def flaky(raw: bytes) -> bytes:
            nonlocal sent
            sent += 1
            if sent > self.after:
                raise TransportError("card removed")
            return process(raw)

        chip.card.process = flaky  # type: ignore[method-assign]
        self.made.append(chip)
        return chip


def test_chip_failure_half_way_leaves_card_created_and_application_rerunnable(
    centre: CardCentre, chips: SimulatedChips
) -> None:
    submitted = centre.submit("clerk-41", application(), collection_point="410102-01")
    centre.approve("admin-41", submitted.number)
    failing = FailingChips(after=30)
    with pytest.raises(TransportError):
        centre.issue("admin-41", submitted.number, failing)
    assert failing.made[0].state.lifecycle is LifeCycle.CREATED
    assert centre.application(submitted.number).status is ApplicationStatus.APPROVED
    assert [c.status for c in centre.card(CARD).cards] == [CardStatus.SPOILED]
    card = centre.issue("admin-41", submitted.number, chips)
    assert card.status is CardStatus.ISSUED
    assert sorted(c.status for c in centre.card(CARD).cards) == [CardStatus.ISSUED, CardStatus.SPOILED]


def test_resume_completes_a_delivered_chip_and_voids_an_undelivered_one(
    centre: CardCentre, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: FixedClock
) -> None:
    from healthcard.card.image import Sealer

    tray = SimulatedChips(tmp_path / "cards", Sealer("x"))
    first = centre.submit("clerk-41", application(), collection_point="410102-01").number
    centre.approve("admin-41", first)
    monkeypatch.setattr(CardCentre, "_finish", lambda self, jobs, operator, outcome: None)  # the crash
    centre.issue_many("admin-41", [first], tray)
    monkeypatch.undo()
    assert [c.status for c in centre.card(CARD).cards] == [CardStatus.PERSONALISING]
    assert centre.resume("admin-41", tray) == (0, 0)  # this process's own run: still in flight
    clock.advance(LEASE + dt.timedelta(seconds=1))  # ... until its lease runs out
    assert centre.resume("admin-41", tray) == (1, 0)
    assert [c.status for c in centre.card(CARD).cards] == [CardStatus.ISSUED]
    assert centre.application(first).status is ApplicationStatus.ISSUED
    assert centre.resume("admin-41", tray) == (0, 0)

    # killed before the image reached the tray: the chip is gone, the row is voided, re-run
    other = "410602198805120025"
    second = centre.submit(
        "clerk-41", application(id_number=other, name="王芳", sex=2, birth_date="1988-05-12")
    )
    centre.approve("admin-41", second.number)
    monkeypatch.setattr(CardCentre, "_finish", lambda self, jobs, operator, outcome: None)
    monkeypatch.setattr(SimulatedChips, "deliver", lambda self, chip, number: None)
    centre.issue_many("admin-41", [second.number], tray)
    monkeypatch.undo()
    clock.advance(LEASE + dt.timedelta(seconds=1))
    assert centre.resume("admin-41", tray) == (0, 1)
    assert [c.status for c in centre.card(other).cards] == [CardStatus.SPOILED]
    assert centre.application(second.number).status is ApplicationStatus.APPROVED
    assert centre.issue("admin-41", second.number, tray).status is CardStatus.ISSUED


def test_expiry(centre: CardCentre, chips: SimulatedChips, clock: FixedClock) -> None:
    card_serial = issue(centre, chips)
    assert centre.expire_due("admin-41") == 0
    clock.advance(dt.timedelta(days=366 * 10))
    assert centre.expire_due("admin-41") == 1
    assert {c.chip_serial: c.status for c in centre.card(CARD).cards} == {card_serial: CardStatus.EXPIRED}


def test_a_replacement_whose_chip_failed_is_run_again(centre: CardCentre, chips: SimulatedChips) -> None:
    old = issue(centre, chips)
    centre.report_lost("clerk-41", CARD)
    with pytest.raises(TransportError):
        centre.replace("admin-41", CARD, FailingChips(after=12))
    statuses = {c.chip_serial: c.status for c in centre.card(CARD).cards}
    assert statuses[old] is CardStatus.REPLACED and CardStatus.SPOILED in statuses.values()
    new = centre.replace("admin-41", CARD, chips)
    assert new.status is CardStatus.ISSUED and new.card_number == CARD
    assert sum(c.status.live for c in centre.card(CARD).cards) == 1


def test_a_province_with_nothing_listed_exports_an_empty_list(
    centre: CardCentre, key_centre: KeyCentre
) -> None:
    empty = centre.hotlist("44")
    assert empty.version == 0 and empty.full and not empty.added
    terminal = hot.TerminalHotList()
    terminal.load(hot.encode(empty), trust=key_centre.trust_store(), today=NOW.date())
    assert terminal.version("44") == 0
    with pytest.raises(InvalidValue, match="since"):
        centre.hotlist("44", since=3)


def test_organisation_refuses_bad_reference_data(database: Database) -> None:
    org = Organisation(database)
    org.ensure_demo()
    org.ensure_demo()  # idempotent
    with pytest.raises(Duplicate, match="41000000001"):
        org.add_institution("41000000001", name="again", area="410000")
    with pytest.raises(InvalidValue, match="area"):
        org.add_institution("99000000001", name="nowhere", area="990000")
    with pytest.raises(InvalidValue, match="role"):
        org.add_operator(OperatorSpec("x", "x", "superuser", "41000000001"))
    with pytest.raises(InvalidValue, match="institution"):
        org.add_operator(OperatorSpec("x", "x", "clerk", "42000000001"))
    with pytest.raises(InvalidValue, match="kind"):
        org.add_institution("41000000009", name="x", area="410000", kind="bank")


def test_two_desks_at_once_one_person_one_application(
    database: Database, key_centre: KeyCentre, clock: FixedClock
) -> None:
    """Eight desks submit the same person in the same instant: the database's unique index lets
    exactly one through, the others get the duplicate refusal (not a crash, not two rows)."""
    import threading

    seed_organisation(database)
    outcomes: list[str] = []
    start = threading.Barrier(8)

    def desk() -> None:
        centre = CardCentre(database, clock, lambda: key_centre)
        start.wait()
        try:
            centre.submit("clerk-41", application())
            outcomes.append("taken")
        except Duplicate:
            outcomes.append("duplicate")

    threads = [threading.Thread(target=desk) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["duplicate"] * 7 + ["taken"]
    assert counts(database)["applications"] == 1
