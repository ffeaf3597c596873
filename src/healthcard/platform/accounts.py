"""Who logs in to the platform: staff accounts (a role, an institution, an area) and residents'
own accounts (ID number + password), with argon2 password hashes and a lock after repeated
failures.

A wrong username and a wrong password give the same refusal, in the same time (the hash is
checked against a dummy when the account does not exist), so the login form does not tell
which usernames exist.  Five failures in a row lock the account for fifteen minutes — the
common rule of hospital systems; the lock counts per account, not per address.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select

from healthcard.clock import Clock
from healthcard.errors import Duplicate, InvalidValue, NotAuthenticated, NotFound
from healthcard.platform.access import Actor, Carrier, Role
from healthcard.storage import tables as t
from healthcard.storage.uow import UnitOfWork

#: failures in a row before the account locks, and for how long
MAX_FAILURES = 5
LOCK_MINUTES = 15
MIN_PASSWORD = 8
#: the one answer to every failed login: it does not tell an unknown user from a wrong password
#: or a locked account
REFUSED = (
    f"wrong username or password (after {MAX_FAILURES} failures an account rests {LOCK_MINUTES} minutes)"
)

# argon2id with the library's RFC 9106 "low memory" profile: 64 MiB would make a login
# storm a memory storm on a 2-worker node; 19 MiB / t=2 is OWASP's minimum for argon2id
_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
_DUMMY = _HASHER.hash("not a password of anyone")

#: roles a staff account may have (a resident's account has role resident and a resident id)
STAFF_ROLES = frozenset(Role) - {Role.RESIDENT, Role.TERMINAL}
#: roles whose accounts belong to an institution
INSTITUTION_ROLES = frozenset({Role.CLINICIAN, Role.REGISTRATION, Role.CASHIER, Role.CARD_ADMIN})


@dataclass(frozen=True)
class AccountView:
    username: str
    name: str
    role: Role
    institution_code: str | None
    area_code: str | None
    resident_id: str | None
    active: bool

    def actor(self, carrier: Carrier = Carrier.LOGIN) -> Actor:
        return Actor(
            self.username,
            self.role,
            institution_code=self.institution_code,
            area_code=self.area_code,
            resident_id=self.resident_id,
            carrier=carrier,
        )


def _view(row: t.Account) -> AccountView:
    return AccountView(
        row.username,
        row.name,
        Role(row.role),
        row.institution_code,
        row.area_code,
        row.resident_id,
        row.active,
    )


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InvalidValue("password", f"at least {MIN_PASSWORD} characters")
    return _HASHER.hash(password)


class Accounts:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def create(
        self,
        uow: UnitOfWork,
        *,
        username: str,
        name: str,
        role: Role | str,
        password: str,
        institution_code: str | None = None,
        area_code: str | None = None,
        resident_id: str | None = None,
    ) -> AccountView:
        """A new account; refused (nothing written) when the username is taken, the role
        unknown, or the role's anchor missing (a clinician without an institution, a public-health
        officer without an area, a resident account without a resident)."""
        username = username.strip()
        if not 3 <= len(username) <= 40 or not username.isprintable() or " " in username:
            raise InvalidValue("username", "3 to 40 characters, no spaces")
        try:
            role = Role(role)
        except ValueError:
            raise InvalidValue("role", f"{role!r}: one of {', '.join(r.value for r in Role)}") from None
        if role == Role.TERMINAL:
            raise InvalidValue("role", "terminals log in with their SAM, not a password")
        if not name.strip():
            raise InvalidValue("name", "required")
        if role in INSTITUTION_ROLES and not institution_code:
            raise InvalidValue("institution_code", f"a {role.value} account belongs to an institution")
        if institution_code and uow.session.get(t.Institution, institution_code) is None:
            raise InvalidValue("institution_code", f"no institution {institution_code}")
        if role == Role.PUBLIC_HEALTH and not (
            area_code and area_code.isdigit() and len(area_code) in (2, 4, 6)
        ):
            raise InvalidValue(
                "area_code", "a public-health account covers an area: a 2, 4 or 6 digit GB/T 2260 prefix"
            )
        if role == Role.RESIDENT:
            if not resident_id or uow.session.get(t.Resident, resident_id) is None:
                raise InvalidValue("resident_id", "a resident account belongs to a known resident")
        elif resident_id:
            raise InvalidValue("resident_id", "only a resident account names a resident")
        if uow.session.get(t.Account, username) is not None:
            raise Duplicate("username", f"{username} is taken")
        row = t.Account(
            username=username,
            name=name.strip(),
            role=role.value,
            institution_code=institution_code,
            area_code=area_code,
            resident_id=resident_id,
            password_hash=hash_password(password),
            active=True,
            failed=0,
            created_at=self.clock.now(),
        )
        uow.session.add(row)
        uow.flush()
        return _view(row)

    def get(self, uow: UnitOfWork, username: str) -> AccountView:
        row = uow.session.get(t.Account, username)
        if row is None:
            raise NotFound("account", username)
        return _view(row)

    def for_resident(self, uow: UnitOfWork, resident_id: str) -> AccountView | None:
        row = uow.session.scalars(
            select(t.Account).where(
                t.Account.resident_id == resident_id, t.Account.role == Role.RESIDENT.value
            )
        ).first()
        return _view(row) if row is not None else None

    def authenticate(self, uow: UnitOfWork, username: str, password: str) -> AccountView:
        """The account, when the password is right and the account active and not locked.  The
        caller commits (a failure count is written either way)."""
        now = self.clock.now()
        row = uow.session.get(t.Account, username, with_for_update=True) if username else None
        if row is None:
            _verify(_DUMMY, password)  # the same work as for a real account
            raise NotAuthenticated(REFUSED)
        if row.locked_until is not None and row.locked_until > now:
            _verify(_DUMMY, password)  # a locked account answers as an unknown one: same words, same work
            raise NotAuthenticated(REFUSED)
        if not _verify(row.password_hash, password) or not row.active:
            row.failed += 1
            if row.failed >= MAX_FAILURES:
                row.locked_until = now + dt.timedelta(minutes=LOCK_MINUTES)
                row.failed = 0
            raise NotAuthenticated(REFUSED)
        row.failed = 0
        row.locked_until = None
        if _HASHER.check_needs_rehash(row.password_hash):
            row.password_hash = _HASHER.hash(password)
        return _view(row)

    def set_password(self, uow: UnitOfWork, username: str, password: str) -> None:
        row = uow.session.get(t.Account, username)
        if row is None:
            raise NotFound("account", username)
        row.password_hash = hash_password(password)
        row.failed = 0
        row.locked_until = None


def _verify(hashed: str, password: str) -> bool:
    try:
        return _HASHER.verify(hashed, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
