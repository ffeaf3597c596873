"""The figures behind the administrators' dashboards, on both databases: counts only, for the
roles that run the thing counted."""

from __future__ import annotations

import datetime as dt

import pytest

from healthcard.clock import local_date
from healthcard.errors import InvalidValue, PermissionDenied
from healthcard.platform.access import Actor, Role
from healthcard.platform.node import IssuedDay

from .platform_fixtures import Platform

ADMIN = Actor("admin", Role.ADMIN)
CARD_ADMIN = Actor("card-admin", Role.CARD_ADMIN, institution_code="41000000001")


def test_cards_issued_per_day_and_city(platform: Platform) -> None:
    node, today = platform.app.node, local_date(platform.clock)
    with platform.app.db.uow() as uow:
        card = uow.cards.live("410102199003070019")
        assert card is not None
        city, issued = card.city_code, card.issue_date
    assert issued == today
    assert node.cards_issued(ADMIN) == [IssuedDay(today, city, 1)]
    assert node.cards_issued(CARD_ADMIN, days=1) == [IssuedDay(today, city, 1)]
    platform.clock.advance(dt.timedelta(days=2))
    assert node.cards_issued(CARD_ADMIN, days=1) == []  # the window moved past the issue day
    assert len(node.cards_issued(CARD_ADMIN, days=3)) == 1


@pytest.mark.parametrize("role", [Role.RESIDENT, Role.CLINICIAN, Role.INSURER, Role.TERMINAL])
def test_cards_issued_is_for_card_and_platform_administrators(platform: Platform, role: Role) -> None:
    with pytest.raises(PermissionDenied):
        platform.app.node.cards_issued(Actor("x", role, institution_code="410102001"))


@pytest.mark.parametrize("days", [0, 367, True])
def test_cards_issued_refuses_a_window_it_cannot_mean(platform: Platform, days: int) -> None:
    with pytest.raises(InvalidValue) as refused:
        platform.app.node.cards_issued(ADMIN, days=days)
    assert refused.value.field == "days"
