"""Set-up shared by the appointment tests: residents in bulk, and a hospital with a department,
a doctor and weekly templates, its sessions opened."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import insert, select

from healthcard.clock import Clock, local_date
from healthcard.issuance.organisation import Organisation
from healthcard.platform.access import Actor, Role
from healthcard.platform.node import Node
from healthcard.storage import tables as t
from healthcard.storage.db import Database

ADMIN = Actor("admin", Role.ADMIN)


def make_residents(db: Database, count: int, prefix: str, clock: Clock) -> list[str]:
    """``count`` residents in one bulk insert (ids ``<prefix>-000001`` …)."""
    now = clock.now()
    rows = [
        {
            "resident_id": f"{prefix}-{n:06d}",
            "id_type": "99",
            "id_number": f"{prefix[:6].upper()}{n:012d}",
            "name": f"居民{n}",
            "sex": 1 + n % 2,
            "birth_date": dt.date(1960 + n % 40, 1 + n % 12, 1 + n % 28),
            "created_at": now,
            "area_code": "410102",
        }
        for n in range(1, count + 1)
    ]
    with db.uow() as uow:
        uow.session.execute(insert(t.Resident), rows)
        uow.commit()
    return [r["resident_id"] for r in rows]


def resident(resident_id: str) -> Actor:
    """A resident logged in on the portal."""
    return Actor(resident_id, Role.RESIDENT, resident_id=resident_id)


@dataclass
class Clinic:
    """A hospital's department 300 内科 with one doctor whose sessions are open."""

    node: Node
    institution: str
    doctor_id: int
    today: dt.date

    def session(self, days: int = 1, period: str = "morning") -> int:
        """The id of the doctor's session ``days`` from today in ``period``."""
        s = t.ClinicSession
        with self.node.db.uow() as uow:
            found = uow.session.scalar(
                select(s.id).where(
                    s.doctor_id == self.doctor_id,
                    s.on == self.today + dt.timedelta(days=days),
                    s.period == period,
                )
            )
        assert found is not None, (days, period)
        return int(found)


def make_clinic(
    node: Node,
    institution: str,
    *,
    level: str | None = "county",
    username: str | None = None,
    slots: int = 6,
    walk_in: int = 2,
    referral: int = 1,
    slot_minutes: int = 10,
    periods: tuple[str, ...] = ("morning", "afternoon"),
    days: int = 7,
) -> Clinic:
    """Department 内科 at ``institution`` (added, with ``level``, when missing), a doctor
    (``username``: their account) with a template every day of the week in ``periods``, and
    the sessions of today … today + ``days`` opened."""
    org = Organisation(node.db)
    if not org.has_institution(institution):
        org.add_institution(
            institution,
            name=f"医院{institution}",
            area=institution[:6],
            kind="hospital",
            issues=False,
            level=level,
        )
    elif level is not None:
        with node.db.uow() as uow:
            row = uow.session.get(t.Institution, institution)
            assert row is not None
            row.level = level
            uow.commit()
    appointments = node.appointments
    appointments.add_department(ADMIN, institution, "300")
    doctor = appointments.add_doctor(
        ADMIN,
        institution,
        department_code="300",
        name="王建华",
        title="主任医师",
        username=username,
        fee_fen=600,
    )
    today = local_date(node.clock)
    for weekday in range(1, 8):
        for period in periods:
            appointments.add_template(
                ADMIN,
                doctor_id=doctor.id,
                weekday=weekday,
                period=period,
                slots=slots,
                walk_in=walk_in,
                referral=referral,
                slot_minutes=slot_minutes,
                valid_from=today,
            )
    appointments.open_sessions(ADMIN, institution, today, today + dt.timedelta(days=days))
    return Clinic(node, institution, doctor.id, today)
