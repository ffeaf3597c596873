"""The booking race of the benchmark page: a hospital's session with a known number of public
slots and as many residents as there are attempts, each booking through the node's use case
(access check, audit, the slot taken by the database's conditional update) as a portal user."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy import func, insert, select
from sqlalchemy.exc import SQLAlchemyError

from healthcard.clock import SystemClock, local_date
from healthcard.errors import HealthCardError, TransitionRefused
from healthcard.issuance.organisation import Organisation
from healthcard.keys.certificates import TrustStore
from healthcard.platform.access import Actor, Role
from healthcard.platform.node import Node
from healthcard.storage import tables as t
from healthcard.storage.db import Database

HOSPITAL = "410102B01"
ADMIN = Actor("bench-admin", Role.ADMIN)


@dataclass
class BookingWorld:
    node: Node
    backend: str
    session_id: int
    slots: int
    residents: list[str]

    def book(self, resident_id: str) -> str:
        """``booked``, ``refused`` (no free slot) or ``error``."""
        try:
            self.node.appointments.book(
                Actor(resident_id, Role.RESIDENT, resident_id=resident_id), self.session_id
            )
        except TransitionRefused:
            return "refused"
        except (HealthCardError, SQLAlchemyError):  # a deadlock, a refusal of the wrong kind …
            return "error"
        return "booked"

    def close(self) -> None:
        self.node.db.dispose()


def add_doctor_tomorrow(node: Node, tomorrow: dt.date, *, name: str, title: str, slots: int) -> int:
    """A doctor of the bench hospital's 内科 with a morning of ``slots`` public slots on
    ``tomorrow``'s weekday (the sessions are opened by the caller); the doctor's id."""
    doctor = node.appointments.add_doctor(
        ADMIN, HOSPITAL, department_code="300", name=name, title=title, fee_fen=600
    )
    node.appointments.add_template(
        ADMIN,
        doctor_id=doctor.id,
        weekday=tomorrow.isoweekday(),
        period="morning",
        slots=slots,
        walk_in=0,
        referral=0,
        slot_minutes=max(1, 240 // slots),
        valid_from=tomorrow,
    )
    return doctor.id


def booking_world(url: str, attempts: int, slots: int, threads: int = 32) -> BookingWorld:
    """A fresh session of ``slots`` public slots tomorrow (nothing kept for walk-in or referral)
    and ``attempts`` new residents; the database upgraded when empty."""
    schema = Database(url)
    schema.upgrade()
    schema.dispose()
    db = Database(url, pool_size=threads + 4)
    clock = SystemClock()
    node = Node(db, clock, token_secret=secrets.token_bytes(32), trust=TrustStore())
    org = Organisation(db)
    if not org.has_institution(HOSPITAL):
        org.add_institution(
            HOSPITAL, name="郑州市中心医院(基准)", area="410102", kind="hospital", issues=False, level="city"
        )
        node.appointments.add_department(ADMIN, HOSPITAL, "300")
    tag = secrets.token_hex(3)
    tomorrow = local_date(clock) + dt.timedelta(days=1)
    doctor_id = add_doctor_tomorrow(node, tomorrow, name=f"医生{tag}", title="主任医师", slots=slots)
    node.appointments.open_sessions(ADMIN, HOSPITAL, tomorrow, tomorrow)
    now = clock.now()
    residents = [f"BK{tag}{n:07d}" for n in range(attempts)]
    with db.uow() as uow:
        uow.session.execute(
            insert(t.Resident),
            [
                {
                    "resident_id": rid,
                    "id_type": "99",
                    "id_number": rid,
                    "name": "居民",
                    "sex": 1,
                    "birth_date": dt.date(1980, 1, 1),
                    "created_at": now,
                    "area_code": "410102",
                }
                for rid in residents
            ],
        )
        session_id = uow.session.scalar(
            select(t.ClinicSession.id).where(t.ClinicSession.doctor_id == doctor_id)
        )
        uow.commit()
    assert session_id is not None
    return BookingWorld(node, db.dialect, int(session_id), slots, residents)


def overbooked(world: BookingWorld) -> int:
    """Bookings past the slots + live bookings sharing a slot + residents with two live bookings
    in the session (each must be 0)."""
    b = t.Booking
    live = (b.session_id == world.session_id, b.status.in_(t.LIVE_BOOKING))
    with world.node.db.uow() as uow:
        count = uow.session.scalar(select(func.count()).where(*live)) or 0
        slots = uow.session.scalar(select(func.count(func.distinct(b.slot_id))).where(*live)) or 0
        people = uow.session.scalar(select(func.count(func.distinct(b.resident_id))).where(*live)) or 0
    return max(count - world.slots, 0) + (count - slots) + (count - people)
