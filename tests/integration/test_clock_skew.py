"""Clock skew of ±10 minutes between a terminal and the platform (HealthCard issue 9, "Faults"),
on SQLite and PostgreSQL.  What docs/platform.md "Clock skew" says, shown at −10 and +10 minutes
and at the edges:

* presence grants run 24 h from the **platform's** clock (a swipe and a QR carry no terminal
  time); an offline upload's grant runs from the visit's reported start, never past 24 h from
  the platform's clock;
* an offline upload stamped by the terminal's clock is taken with the terminal's times kept as
  reported and the platform's receipt time beside them (``created_at``); a time up to
  ``CLOCK_SKEW`` (15 min) ahead of the platform is taken, one second more is refused by field;
* the dynamic QR is made and checked by platform clocks: valid to its expiry exactly, a code
  from a node up to ``ISSUER_CLOCK_TOLERANCE`` (1 min) ahead is taken;
* tokens (JWT ``exp``) are made and checked by the platform's clock: good to ``exp`` exactly.
"""

from __future__ import annotations

import datetime as dt
import secrets

import pytest
from sqlalchemy import select

from healthcard.api.tokens import TERMINAL_MINUTES, Tokens
from healthcard.errors import CryptoError, InvalidValue, NotAuthenticated
from healthcard.platform.access import Actor, Carrier, Role
from healthcard.platform.records import CLOCK_SKEW
from healthcard.storage import tables as t
from healthcard.terminal.platform import PlatformRefused, upload_payload
from healthcard.web import ehealth

from .cardcentre_fixtures import NOW
from .platform_fixtures import CARD, HOSPITAL, OTHER, Platform
from .test_visit_flow import at_the_hospital, login

DAY = dt.timedelta(hours=24)
SKEWS = [dt.timedelta(minutes=-10), dt.timedelta(minutes=10)]
SKEW_IDS = ["terminal-10min", "terminal+10min"]


def grants(platform: Platform, institution: str) -> list[t.PresenceGrant]:
    with platform.app.db.uow() as uow:
        g = t.PresenceGrant
        rows = uow.session.scalars(
            select(g).where(g.resident_id == platform.resident_id, g.institution_code == institution)
        ).all()
        uow.session.expunge_all()
        return list(rows)


def visit(platform: Platform, started: dt.datetime, ended: dt.datetime) -> dict[str, object]:
    return upload_payload(
        card_number=CARD,
        chip_serial=platform.chip_serial,
        department="全科",
        started_at=started,
        ended_at=ended,
        terminal_id=platform.terminal_id,
        diagnoses=[{"code": "I10", "name": "原发性高血压", "primary": True}],
    )


@pytest.mark.parametrize("skew", SKEWS, ids=SKEW_IDS)
def test_an_offline_upload_keeps_the_terminals_times_and_the_platforms_receipt(
    platform: Platform, skew: dt.timedelta
) -> None:
    terminal_now = NOW + skew  # the clinic's clock
    started, ended = terminal_now - dt.timedelta(minutes=8), terminal_now
    with at_the_hospital(platform) as (_, _, client):
        encounter_id, created = client.upload(visit(platform, started, ended))
    assert created
    with platform.app.db.uow() as uow:
        encounter = uow.session.get(t.Encounter, encounter_id)
        assert encounter is not None
        assert encounter.started_at == started and encounter.ended_at == ended  # as reported
        assert encounter.created_at == NOW  # the platform's receipt, its own clock
    # the grant runs from the visit, and never further than 24 h from the platform's clock
    (grant,) = grants(platform, HOSPITAL)
    assert grant.expires_at == min(NOW + DAY, started + DAY)
    assert grant.expires_at <= NOW + DAY


def test_an_upload_at_the_edge_of_the_tolerated_skew(platform: Platform) -> None:
    edge = NOW + CLOCK_SKEW
    with at_the_hospital(platform) as (_, _, client):
        _, created = client.upload(visit(platform, edge, edge))
        assert created
        beyond = edge + dt.timedelta(seconds=1)
        with pytest.raises(PlatformRefused) as refused:
            client.upload(visit(platform, beyond, beyond))
    assert refused.value.status == 422 and refused.value.field is not None
    assert refused.value.field.endswith("started_at"), refused.value.field
    assert "in the future" in refused.value.message
    (grant,) = grants(platform, HOSPITAL)
    assert grant.expires_at == NOW + DAY  # a fast terminal cannot stretch the grant


@pytest.mark.parametrize("skew", SKEWS, ids=SKEW_IDS)
def test_a_swipe_and_a_qr_grant_24h_by_the_platforms_clock(platform: Platform, skew: dt.timedelta) -> None:
    """The terminal's clock is no input to a swipe or a QR scan: whatever it says (``skew``),
    the grant ends 24 h after the platform's now, and access ends with it to the second."""
    node = platform.app.node
    with at_the_hospital(platform) as (http, _, client):
        client.swipe(CARD, platform.chip_serial)
        clinic = Actor("dr-li", Role.CLINICIAN, institution_code=OTHER, carrier=Carrier.CARD)
        node.present_qr(clinic, card_number=CARD)
        (card_grant,) = grants(platform, HOSPITAL)
        (qr_grant,) = grants(platform, OTHER)
        assert card_grant.granted_at == NOW and card_grant.expires_at == NOW + DAY
        assert qr_grant.reason == "qr" and qr_grant.expires_at == NOW + DAY
        where = f"/v1/residents/{platform.resident_id}/encounters"
        platform.clock.advance(DAY - dt.timedelta(seconds=1))
        assert http.get(where, headers=login(http, "dr-wang")).status_code == 200
        platform.clock.advance(dt.timedelta(seconds=2))
        assert http.get(where, headers=login(http, "dr-wang")).status_code == 403
    _ = skew  # documented: nothing the terminal sends carries its clock


@pytest.mark.parametrize("skew", SKEWS, ids=SKEW_IDS)
def test_the_dynamic_qr_is_timed_by_the_platform_only(skew: dt.timedelta) -> None:
    keys = ehealth.EhcKeys.from_secret(secrets.token_bytes(32))
    code = ehealth.issue(keys, CARD, NOW)
    expires = code.expires_at
    # a clinic PC whose clock is ``skew`` off changes nothing: the page checks with the node's
    assert ehealth.verify(keys, code.text, NOW).card_number == CARD
    # edges, by the platform's clock: valid to its expiry exactly, expired one second later
    assert ehealth.verify(keys, code.text, expires).card_number == CARD
    with pytest.raises(InvalidValue) as expired:
        ehealth.verify(keys, code.text, expires + dt.timedelta(seconds=1))
    assert expired.value.field == "qr_code"
    # a code made by a node up to ISSUER_CLOCK_TOLERANCE ahead of the checking node is taken
    tolerance = ehealth.ISSUER_CLOCK_TOLERANCE
    ahead = ehealth.issue(keys, CARD, NOW + tolerance)
    assert ehealth.verify(keys, ahead.text, NOW).card_number == CARD
    too_far = ehealth.issue(keys, CARD, NOW + tolerance + dt.timedelta(seconds=1))
    with pytest.raises(CryptoError):
        ehealth.verify(keys, too_far.text, NOW)
    # a code made by a node ``skew`` off: 10 minutes is beyond both bounds, refused either way
    skewed = ehealth.issue(keys, CARD, NOW + skew)
    with pytest.raises((InvalidValue, CryptoError)):
        ehealth.verify(keys, skewed.text, NOW)


@pytest.mark.parametrize("skew", SKEWS, ids=SKEW_IDS)
def test_a_terminals_token_lives_by_the_platforms_clock(skew: dt.timedelta) -> None:
    tokens = Tokens(secrets.token_bytes(32))
    terminal = Actor("T-410100000009", Role.TERMINAL, institution_code=HOSPITAL)
    token = tokens.issue(terminal, NOW).access_token
    lifetime = dt.timedelta(minutes=TERMINAL_MINUTES)
    assert tokens.actor(token, NOW + lifetime).id == terminal.id  # to exp exactly
    with pytest.raises(NotAuthenticated):
        tokens.actor(token, NOW + lifetime + dt.timedelta(seconds=1))
    # the terminal never reads exp with its own clock: a 401 makes it log in again (uplink), so
    # its skew cannot cut a token short or stretch it
    assert tokens.actor(token, NOW + skew if skew > dt.timedelta(0) else NOW).role is Role.TERMINAL
