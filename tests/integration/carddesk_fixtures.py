"""Card administrators for the card-centre tests: their platform accounts and the operator rows
the card centre authorises them by (the same id), and applicants with valid ID numbers."""

from __future__ import annotations

from healthcard.issuance.identity import check_digit
from healthcard.issuance.organisation import OperatorSpec, Organisation
from healthcard.platform.access import Actor, Role

from .cardcentre_fixtures import application
from .platform_fixtures import HOSPITAL, PASSWORD, Platform

CENTRE_41 = "41000000001"
CENTRE_44 = "44000000001"
ADMIN_41 = Actor("card-admin", Role.CARD_ADMIN, institution_code=CENTRE_41)
ADMIN_44 = Actor("card-admin-44", Role.CARD_ADMIN, institution_code=CENTRE_44)
ADMIN_AT_HOSPITAL = Actor("card-admin-h", Role.CARD_ADMIN, institution_code=HOSPITAL)  # no operator
ADMIN_ELSEWHERE = Actor("card-admin-x", Role.CARD_ADMIN, institution_code=CENTRE_44)  # operator of 41
CLINICIAN = Actor("dr-wang", Role.CLINICIAN, institution_code=HOSPITAL)
PLATFORM_ADMIN = Actor("admin", Role.ADMIN)


def id_number(serial: int, born: str = "19850101") -> str:
    """A valid Zhengzhou ID number (odd 17th digit: a man)."""
    first = f"410102{born}{serial:02d}1"
    return first + check_digit(first)


def applicant(serial: int) -> dict[str, object]:
    return application(id_number=id_number(serial), name=f"申领人{serial}", birth_date="1985-01-01", sex=1)


def card_admins(platform: Platform) -> None:
    """The card administrators' accounts, and their operator rows in the card centre (the same
    id: the card centre authorises an account as its operator)."""
    org = Organisation(platform.app.db)
    for operator, institution in (
        ("card-admin", CENTRE_41),
        ("card-admin-44", CENTRE_44),
        ("card-admin-x", CENTRE_41),
    ):
        org.add_operator(OperatorSpec(operator, operator, "card-admin", institution))
    with platform.app.db.uow() as uow:
        for actor in (ADMIN_41, ADMIN_44, ADMIN_AT_HOSPITAL, ADMIN_ELSEWHERE):
            platform.app.node.accounts.create(
                uow,
                username=actor.id,
                name=actor.id,
                role=actor.role,
                password=PASSWORD,
                institution_code=actor.institution_code,
            )
        uow.commit()
