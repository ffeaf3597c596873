"""A household for the tests of household proxy links: 张三 (the ``platform`` fixture's resident)
with a baby who has two doses and one overdue, another family's child, a 17-year-old and a
resident who turned 18 last week; staff who establish links."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from healthcard.platform.access import Actor, Role
from healthcard.platform.household import LinkView
from healthcard.storage import tables as t

from .platform_fixtures import HOSPITAL, PASSWORD, Platform

BABY = "baby-0001"  # born 2026-09-01: BCG and HepB 1 given, HepB 2 overdue, IPV 1 / DTaP 1 due
OTHER_CHILD = "child-0002"  # another family's child
TEEN = "teen-0003"  # 17, turns 18 on 2027-01-01
ADULT = "adult-0004"  # turned 18 on 2026-11-20
OTHER_PARENT = "parent-0005"  # the other child's parent, with a portal account
OTHER_PARENT_USER = "OTHERPARENT0000001"
CARD_ADMIN = Actor("card-admin-1", Role.CARD_ADMIN, institution_code=HOSPITAL)
REGISTRATION = Actor("desk-1", Role.REGISTRATION, institution_code=HOSPITAL)
STAFF_PASSWORD = PASSWORD

PEOPLE = (
    (BABY, "张小宝", dt.date(2026, 9, 1)),
    (OTHER_CHILD, "李小妹", dt.date(2024, 5, 1)),
    (TEEN, "张大宝", dt.date(2009, 1, 1)),
    (ADULT, "张成年", dt.date(2008, 11, 20)),
    (OTHER_PARENT, "李四", dt.date(1992, 6, 1)),
)


@dataclass
class Household:
    platform: Platform
    guardian: Actor  # 张三 as the portal logs them in
    other_parent: Actor

    def link(self, dependant: str = BABY, guardian: str | None = None, **extra: object) -> LinkView:
        fields: dict[str, object] = {
            "relation": "parent",
            "evidence_kind": "hukou",
            "evidence": "410102-0012345",
        }
        fields.update(extra)
        return self.platform.app.node.households.establish(
            CARD_ADMIN,
            guardian_id=guardian or self.platform.resident_id,
            dependant_id=dependant,
            **fields,  # type: ignore[arg-type]
        )


def make_household(platform: Platform) -> Household:
    node = platform.app.node
    now = platform.clock.now()
    with platform.app.db.uow() as uow:
        for n, (rid, name, born) in enumerate(PEOPLE, start=1):
            uow.session.add(
                t.Resident(
                    resident_id=rid,
                    id_type="01",
                    id_number=f"4101022{n:011d}",
                    name=name,
                    sex=1 + n % 2,
                    birth_date=born,
                    created_at=now,
                    area_code="410102",
                )
            )
        uow.flush()
        for vaccine, dose in (("0101", 1), ("0201", 1)):
            node.immunizations.record(
                uow,
                resident_id=BABY,
                vaccine=vaccine,
                dose=dose,
                given_on=dt.date(2026, 9, 1),
                lot="202609001",
                institution_code=HOSPITAL,
                by="dr-wang",
            )
        node.immunizations.record(
            uow,
            resident_id=OTHER_CHILD,
            vaccine="0201",
            dose=1,
            given_on=dt.date(2024, 5, 1),
            institution_code=HOSPITAL,
            by="dr-wang",
        )
        node.accounts.create(
            uow,
            username=OTHER_PARENT_USER,
            name="李四",
            role=Role.RESIDENT,
            password=PASSWORD,
            resident_id=OTHER_PARENT,
        )
        for actor in (CARD_ADMIN, REGISTRATION):
            node.accounts.create(
                uow,
                username=actor.id,
                name=actor.id,
                role=actor.role,
                password=STAFF_PASSWORD,
                institution_code=actor.institution_code,
            )
        uow.commit()
    guardian = Actor("410102199003070019", Role.RESIDENT, resident_id=platform.resident_id)
    other = Actor(OTHER_PARENT_USER, Role.RESIDENT, resident_id=OTHER_PARENT)
    return Household(platform, guardian, other)
