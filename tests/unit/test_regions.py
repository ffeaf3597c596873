"""Cross-region care: the payloads of the questions between cities are checked field by field
(each refusal names its field), and the views travel as JSON and come back equal."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from healthcard.errors import InvalidValue, MessagingError
from healthcard.federation.regions import (
    HomePerson,
    HomeSwipe,
    from_json,
    institution_ref,
    read_query,
    swipe_query,
    to_json,
    visits_consumer,
    visits_subject,
)
from healthcard.platform.access import Role
from healthcard.platform.records import AllergyView, DiagnosisView, EncounterView, FeeLine, SummaryView

INSTITUTION = {"code": "440604001", "name": "佛山市第一人民医院", "level": "city", "area": "440604"}
SWIPE = {
    "card": "410102199003070019",
    "chip": "00112233aabbccdd",
    "stage": "consultation",
    "terminal_kind": "workstation",
    "terminal": "T-440604001-01",
    "city": "4406",
    "institution": INSTITUTION,
}
READ = {
    "resident": "a" * 32,
    "city": "4406",
    "institution": INSTITUTION,
    "actor": {"id": "dr-chen", "role": "clinician"},
}


def test_a_good_swipe_payload() -> None:
    query = swipe_query(SWIPE)
    assert query.chip == "00112233AABBCCDD"
    assert (query.institution.code, query.institution.city, query.institution.area) == (
        "440604001",
        "4406",
        "440604",
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"card": ""}, "payload.card"),
        ({"card": None}, "payload.card"),
        ({"chip": "0011"}, "payload.chip"),
        ({"chip": "zz112233aabbccdd"}, "payload.chip"),
        ({"stage": "surgery"}, "payload.stage"),
        ({"terminal": ""}, "payload.terminal"),
        ({"terminal_kind": 3}, "payload.terminal_kind"),
        ({"city": "44"}, "payload.city"),
        ({"institution": "440604001"}, "payload.institution"),
        ({"institution": INSTITUTION | {"code": "44-06"}}, "payload.institution.code"),
        ({"institution": INSTITUTION | {"name": ""}}, "payload.institution.name"),
        ({"institution": INSTITUTION | {"area": "410102"}}, "payload.institution.area"),
        ({"institution": INSTITUTION | {"area": "4406"}}, "payload.institution.area"),
    ],
)
def test_a_bad_swipe_payload_names_its_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        swipe_query(SWIPE | change)
    assert refused.value.field == field


def test_a_good_read_payload() -> None:
    query = read_query(READ)
    assert (query.staff, query.role, query.institution.code) == ("dr-chen", Role.CLINICIAN, "440604001")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"resident": ""}, "payload.resident"),
        ({"actor": None}, "payload.actor"),
        ({"actor": {"role": "clinician"}}, "payload.actor.id"),
        ({"actor": {"id": "x", "role": "admin"}}, "payload.actor.role"),
        ({"actor": {"id": "x", "role": "wizard"}}, "payload.actor.role"),
        ({"institution": {"name": "x"}}, "payload.institution.code"),
    ],
)
def test_a_bad_read_payload_names_its_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        read_query(READ | change)
    assert refused.value.field == field


def test_an_institution_without_level_or_area() -> None:
    ref = institution_ref({"institution": {"code": "440604001", "name": "x"}}, "4406")
    assert (ref.level, ref.area) == (None, None)


def test_subjects() -> None:
    assert visits_subject("4101") == "x.4101.visit"
    assert visits_consumer("4101") == "city-4101-visits"


def _swipe() -> HomeSwipe:
    at = dt.datetime(2026, 11, 24, 2, tzinfo=dt.UTC)
    visit = EncounterView(
        id=7,
        resident_id="r1",
        institution_code="410102001",
        institution_name="郑州市中原区人民医院",
        kind="outpatient",
        status="CLOSED",
        number="MZ1",
        department="内科",
        clinician=None,
        category="general",
        started_at=at,
        ended_at=at + dt.timedelta(hours=1),
        diagnoses=(DiagnosisView(1, "I10", "高血压", True, "general", at.date()),),
        observations=(),
        prescriptions=(),
        procedures=(),
        fees=(FeeLine("西药费", "1", 1250),),
        payment_method=None,
        card_slot=2,
        upload_key=None,
    )
    summary = SummaryView(
        resident_id="r1",
        name="张三",
        sex=1,
        birth_date=dt.date(1990, 3, 7),
        abo=1,
        rh="1",
        alerts=["hypertension"],
        other_alert="",
        psychiatric=None,
        allergies=(AllergyView(3, "青霉素", "皮疹", "severe", at),),
        immunizations=(("BCG", "卡介苗", 1, dt.date(1990, 3, 8)),),
        recent=(visit,),
    )
    person = HomePerson("r1", "张三", 1, dt.date(1990, 3, 7), "410102", "01", "410102199003070019")
    return HomeSwipe(person, summary, (visit,), at + dt.timedelta(hours=24))


def test_views_travel_as_json_and_come_back_equal() -> None:
    swipe = _swipe()
    assert from_json(HomeSwipe, to_json(swipe)) == swipe


def test_a_reply_that_does_not_fit_is_a_messaging_error() -> None:
    document = to_json(_swipe())
    del document["summary"]["name"]
    with pytest.raises(MessagingError, match=r"reply\.summary\.name"):
        from_json(HomeSwipe, document)
    document = to_json(_swipe())
    document["grant_expires_at"] = "tomorrow"
    with pytest.raises(MessagingError, match="grant_expires_at"):
        from_json(HomeSwipe, document)
