"""The demo city of ``make run`` (healthcard.platform.democity), on SQLite and PostgreSQL: one
small city per database (it takes seconds to make), then what a person trying the platform
relies on — every level of institution, logins that work, a child with an overdue dose, cards
that resolve, terminals that are registered — and that a second start adds nothing."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest
from rich.console import Console
from sqlalchemy import func, select

from healthcard.bootstrap import App, bootstrap
from healthcard.card import image
from healthcard.card.apdu import CommandAPDU
from healthcard.card.cos import CardOS
from healthcard.card.sam import sam_certificate
from healthcard.clock import FixedClock, local_date
from healthcard.errors import InvalidValue
from healthcard.issuance.organisation import LEVELS
from healthcard.keys.certificates import verify_certificate
from healthcard.keys.kek import open_kek
from healthcard.platform import democity
from healthcard.platform.access import Actor, Role
from healthcard.platform.immunization import DoseState, DueEntry
from healthcard.settings import Settings
from healthcard.storage import tables as t

from .cardcentre_fixtures import NOW
from .conftest import scratch_database_url

RESIDENTS = 60
PASSPHRASE = "democity-tests"


@dataclass
class City:
    settings: Settings
    clock: FixedClock
    logins: democity.Logins
    output: str  # what the first ensure() printed
    app: App

    def again(self) -> democity.Logins:
        return democity.ensure(
            self.settings,
            residents=RESIDENTS,
            console=Console(file=io.StringIO()),
            kek=open_kek("passphrase", passphrase=PASSPHRASE),
            clock=self.clock,
        )

    def resident(self, kind: str) -> democity.Login:
        return next(r for r in self.logins.rows if r.kind == kind)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def city(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[City]:
    folder = tmp_path_factory.mktemp(f"democity-{request.param}")
    for url in scratch_database_url(request, request.param, folder):
        settings = Settings(data_dir=folder / "data", database_url=url)
        clock = FixedClock(NOW)
        out = io.StringIO()
        logins = democity.ensure(
            settings,
            residents=RESIDENTS,
            console=Console(file=out, width=200),
            kek=open_kek("passphrase", passphrase=PASSPHRASE),
            clock=clock,
        )
        app = bootstrap(settings, clock=clock)
        try:
            yield City(settings, clock, logins, out.getvalue(), app)
        finally:
            app.close()


def _counts(app: App) -> dict[str, int]:
    with app.db.uow() as uow:
        return {
            table.name: int(uow.session.scalar(select(func.count()).select_from(table)) or 0)
            for table in t.Base.metadata.sorted_tables
        }


def test_a_second_start_adds_nothing(city: City) -> None:
    before = _counts(city.app)
    files = {
        p: p.stat().st_mtime_ns
        for p in city.settings.data_dir.rglob("*")
        if p.is_file() and p.suffix != ".db"
    }
    # the batch's residents, the kiosk's resident and the applicant waiting at the kiosk
    assert before["residents"] == RESIDENTS + 2 and before["encounters"] > 0 and before["immunizations"] > 0
    logins = city.again()
    assert _counts(city.app) == before
    assert logins == city.logins
    after = {
        p: p.stat().st_mtime_ns
        for p in city.settings.data_dir.rglob("*")
        if p.is_file() and p.suffix != ".db"
    }
    assert after == files
    assert "seeding Zhengzhou" in city.output  # the first start said what it did


def test_institutions_of_every_level(city: City) -> None:
    with city.app.db.uow() as uow:
        rows = uow.session.execute(select(t.Institution.code, t.Institution.kind, t.Institution.level)).all()
    levels = {level for _, _, level in rows}
    assert set(LEVELS) <= levels
    assert {"hospital", "clinic", "cdc", "ncms-office"} <= {kind for _, kind, _ in rows}
    assert ("410102001", "hospital", "county") in rows  # the card centre's hospital got its level


def test_every_demo_account_logs_in(city: City) -> None:
    roles = set()
    for row in city.logins.rows:
        assert row.password == democity.PASSWORD
        with city.app.db.uow() as uow:
            account = city.app.node.accounts.authenticate(uow, row.username, row.password)
            uow.commit()
        assert account.role.value == row.role
        assert account.resident_id == row.resident_id
        roles.add(account.role)
    assert roles == set(Role) - {Role.TERMINAL}
    assert [r.kind for r in city.logins.rows if r.resident_id] == ["child", "adult", "elder"]


def test_the_demo_child_is_overdue(city: City) -> None:
    child = city.resident("child")
    assert child.resident_id is not None
    node = city.app.node
    with city.app.db.uow() as uow:
        plan = node.immunizations.plan_for(uow, child.resident_id, local_date(city.clock))
        given = node.immunizations.doses(uow, [child.resident_id])
    states = {status.state for status in plan}
    assert DoseState.OVERDUE in states and DoseState.GIVEN in states
    assert len(given) >= 3
    cdc = next(r for r in city.logins.rows if r.role == Role.PUBLIC_HEALTH.value)
    with city.app.db.uow() as uow:
        officer = node.accounts.authenticate(uow, cdc.username, cdc.password)
        uow.commit()
    due = cast(list[DueEntry], node.due_in_area(officer.actor(), "4101"))
    assert any(e.resident_id == child.resident_id and e.status.state == DoseState.OVERDUE for e in due)


def test_the_demo_adult_sees_the_demo_child_through_a_household_link(city: City) -> None:
    adult, child = city.resident("adult"), city.resident("child")
    assert adult.resident_id is not None and child.resident_id is not None
    guardian = Actor(adult.username, Role.RESIDENT, resident_id=adult.resident_id)
    (found,) = city.app.node.households.all_vaccinations(guardian)
    assert found.dependant.resident_id == child.resident_id and found.dependant.relation == "parent"
    states = {status.state for status in found.plan}
    assert DoseState.OVERDUE in states and DoseState.GIVEN in states


def test_the_demo_residents_cards_resolve(city: City) -> None:
    node = city.app.node
    sealer = image.Sealer(image.DEMO_PASSPHRASE)
    for row in city.logins.rows:
        if row.resident_id is None:
            continue
        with city.app.db.uow() as uow:
            assert node.mpi.resolve_card(uow, row.username) == row.resident_id
            card = uow.cards.live(row.username)
            assert card is not None and card.status == "ACTIVE"
            chip = card.chip_serial
        saved = image.load(city.settings.data_dir / "democity" / "cards" / f"{row.username}.card", sealer)
        assert saved.serial.hex().upper() == chip


def test_the_adult_has_a_record(city: City) -> None:
    adult = city.resident("adult")
    assert adult.resident_id is not None
    records = city.app.node.records
    with city.app.db.uow() as uow:
        archive = records.archive(uow, adult.resident_id)
        allergies = records.allergies(uow, [adult.resident_id])
        visits = records.encounters(uow, [adult.resident_id], hidden=frozenset())
        archives = uow.session.scalar(select(func.count()).select_from(t.HealthArchive))
    assert archive is not None and archive.other_alert == "高血压" and archive.abo is not None
    assert "青霉素" in {a.allergen for a in allergies}
    assert len(visits) == 5 and visits[0].diagnoses[0].code == "I10"
    assert all(v.status == "closed" and v.number.startswith("MZ") for v in visits)
    assert all(isinstance(f.amount_fen, int) and f.amount_fen > 0 for v in visits for f in v.fees)
    # nobody allergic to penicillin is given amoxicillin
    assert "阿莫西林胶囊" not in {p.drug for v in visits for p in v.prescriptions}
    assert archives == RESIDENTS + 1  # and the kiosk's resident


def test_terminals_are_registered_with_their_saved_sams(city: City) -> None:
    assert len(city.logins.terminals) == sum(1 for i in democity.INSTITUTIONS if i.terminal)
    trust = city.app.node.terminals.trust
    sealer = image.Sealer(image.DEMO_PASSPHRASE)
    for terminal in city.logins.terminals:
        sam = image.load(terminal.sam_image, sealer)
        certificate = sam_certificate(sam)
        assert (
            verify_certificate(certificate, trust, local_date(city.clock), kind="sam").subject
            == terminal.terminal_id
        )
        with city.app.db.uow() as uow:
            view = city.app.node.terminals.get(uow, terminal.terminal_id)
        assert view.institution_code == terminal.institution_code and view.active


def test_the_kiosk_its_card_with_a_pin_and_an_application_to_issue(city: City) -> None:
    kiosk = city.logins.kiosk
    assert kiosk is not None and kiosk.pin == democity.KIOSK_PIN
    assert kiosk.applicant_status == "APPROVED" and kiosk.applicant_id_number != kiosk.card_number
    sealer = image.Sealer(image.DEMO_PASSPHRASE)
    certificate = sam_certificate(image.load(kiosk.sam_image, sealer))
    assert (
        verify_certificate(
            certificate, city.app.node.terminals.trust, local_date(city.clock), kind="sam"
        ).subject
        == kiosk.terminal_id
    )
    with city.app.db.uow() as uow:
        assert city.app.node.terminals.get(uow, kiosk.terminal_id).kind == "kiosk"
        operator = uow.reference.operator(kiosk.terminal_id)
        assert (
            operator is not None
            and operator.role == "kiosk"
            and operator.institution_code == kiosk.institution_code
        )
        card = uow.cards.live(kiosk.card_number)
        assert card is not None and card.status == "ACTIVE"
        chip_serial = card.chip_serial
    # the card's holder PIN is the demo's: the card says so
    card_os = CardOS(image.load(kiosk.card_image, sealer))
    card_os.power_on()
    verify = CommandAPDU(0x00, 0x20, 0x00, 0x01, bytes.fromhex(democity.KIOSK_PIN))
    assert card_os.process(verify.to_bytes())[-2:] == b"\x90\x00"
    assert card_os.state.serial.hex().upper() == chip_serial


def test_print_logins(city: City) -> None:
    out = io.StringIO()
    democity.print_logins(Console(file=out, width=250), city.logins, "http://127.0.0.1:8000")
    text = out.getvalue()
    adult = city.resident("adult")
    assert "http://127.0.0.1:8000/docs" in text and "curl" in text
    assert f"/v1/residents/{adult.resident_id}/summary" in text and adult.username in text
    assert all(row.username in text for row in city.logins.rows)


def test_a_city_too_small_is_refused(database_url: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    with pytest.raises(InvalidValue) as refused:
        democity.ensure(settings, residents=5, kek=open_kek("passphrase", passphrase=PASSPHRASE))
    assert refused.value.field == "residents"
    assert not (tmp_path / "data").exists()
