"""Short-lived access tokens (JWT, HS256, PyJWT) for staff, residents and terminals.

A token carries the :class:`~healthcard.platform.access.Actor` it was issued to — role,
institution, area, resident — so that a request needs no database read to know who calls; the
access policy still checks every resident's data against the database.  Staff and residents get
15 minutes, terminals an hour (a clinic's workstation re-logs in with its SAM, no person
involved).  The signing key lives in the environment only (``HEALTHCARD_TOKEN_SECRET``).
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

import jwt

from healthcard.errors import NotAuthenticated
from healthcard.platform.access import Actor, Carrier, Role

ALGORITHM = "HS256"
AUDIENCE = "healthcard-platform"
STAFF_MINUTES = 15
TERMINAL_MINUTES = 60


@dataclass(frozen=True)
class Token:
    access_token: str
    expires_in: int
    token_type: str = "bearer"


class Tokens:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("a token secret is at least 32 bytes")
        self._secret = secret

    def issue(self, actor: Actor, now: dt.datetime) -> Token:
        minutes = TERMINAL_MINUTES if actor.role == Role.TERMINAL else STAFF_MINUTES
        claims = {
            "sub": actor.id,
            "role": actor.role.value,
            "inst": actor.institution_code,
            "area": actor.area_code,
            "rid": actor.resident_id,
            "car": actor.carrier.value,
            "aud": AUDIENCE,
            "iat": int(now.timestamp()),
            "exp": int(now.timestamp()) + minutes * 60,
            # unique per login: two logins of one account in the same second (two tabs, a phone
            # and a kiosk) are two tokens, so a logout revokes its own session only
            "jti": secrets.token_urlsafe(12),
        }
        return Token(jwt.encode(claims, self._secret, algorithm=ALGORITHM), minutes * 60)

    def actor(self, token: str, now: dt.datetime) -> Actor:
        """The actor of a valid token; :class:`NotAuthenticated` for anything else (the reason
        is generic on purpose: a token is not a place to learn how tokens are checked)."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                options={
                    "require": ["exp", "sub", "role"],
                    "verify_exp": False,
                    "verify_iat": False,
                },  # our clock decides
            )
            if int(claims["exp"]) < now.timestamp():  # our clock, not the machine's
                raise NotAuthenticated("the token expired: log in again")
            return Actor(
                str(claims["sub"]),
                Role(claims["role"]),
                institution_code=claims.get("inst"),
                area_code=claims.get("area"),
                resident_id=claims.get("rid"),
                carrier=Carrier(claims.get("car", Carrier.LOGIN.value)),
            )
        except (jwt.InvalidTokenError, ValueError, KeyError, TypeError):
            raise NotAuthenticated("not a valid token") from None
