"""Rate limits per client address, and the access tokens a logout ended — both in the database,
so that every worker of a node (``healthcard serve`` runs two) counts the same attempts and
refuses the same tokens.

A limit is a fixed window: at most ``limit`` counted attempts per ``window`` for one bucket
(``login:<address>``, ``challenge:<address>``).  Beyond it the caller gets
:class:`~healthcard.errors.TooManyAttempts` with the seconds until the window ends (HTTP 429
and ``Retry-After``).  Time is the node's clock; nothing here reads the machine's.

What is counted where (the defaults of :class:`RateLimitPolicy`; docs/web.md "Security"):

* **logins** (``POST /v1/auth/token``, the portal's and the staff's login pages): the *failed*
  attempts of one client address — credential stuffing across many usernames — on top of the
  per-account lockout of :mod:`healthcard.platform.accounts`; a person who types the right
  password is never counted, and others' failures from another address never block them;
* **terminal challenges** (``POST /v1/auth/terminal/challenge``): every request of one address.

The PIN pad's limit lives in the reader agent (one process per workstation, in memory): the
platform never sees a PIN (healthcard.agent.service).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from healthcard.clock import Clock
from healthcard.errors import InvalidValue, TooManyAttempts
from healthcard.storage import tables as t
from healthcard.storage.db import Database

#: a bucket's row left alone this long is removed (by the next new bucket's first attempt)
IDLE = dt.timedelta(days=1)
MAX_BUCKET = 160


@dataclass(frozen=True)
class Limit:
    """At most ``limit`` attempts per ``window`` seconds."""

    limit: int
    window: int

    @classmethod
    def parse(cls, text: str, setting: str) -> Limit:
        """``"30/900"``: 30 attempts per 900 seconds."""
        count, _, seconds = text.strip().partition("/")
        try:
            limit, window = int(count), int(seconds)
        except ValueError:
            raise InvalidValue(setting, f"{text!r}: attempts/seconds, e.g. 30/900") from None
        if not (1 <= limit <= 1_000_000 and 1 <= window <= 86_400):
            raise InvalidValue(setting, f"{text!r}: 1–1000000 attempts per 1–86400 seconds")
        return cls(limit, window)

    def __str__(self) -> str:
        return f"{self.limit}/{self.window}"


@dataclass(frozen=True)
class RateLimitPolicy:
    """The node's limits (``HEALTHCARD_RATE_LOGIN``, ``HEALTHCARD_RATE_CHALLENGE``, each
    ``attempts/seconds``).  The login default leaves room for a hospital whose staff share one
    address behind NAT: 30 failed logins per 15 minutes, where the per-account lockout already
    stops guessing one password after 5."""

    login: Limit = Limit(30, 900)
    challenge: Limit = Limit(60, 60)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RateLimitPolicy:
        env = os.environ if environ is None else environ
        default = cls()
        return cls(
            login=Limit.parse(
                env.get("HEALTHCARD_RATE_LOGIN") or str(default.login), "HEALTHCARD_RATE_LOGIN"
            ),
            challenge=Limit.parse(
                env.get("HEALTHCARD_RATE_CHALLENGE") or str(default.challenge), "HEALTHCARD_RATE_CHALLENGE"
            ),
        )


class RateLimits:
    """Counting attempts per bucket in ``rate_limits`` (one row per bucket, locked while it is
    counted: two workers never both let the last attempt through)."""

    def __init__(self, db: Database, clock: Clock, policy: RateLimitPolicy | None = None) -> None:
        self.db = db
        self.clock = clock
        self.policy = policy or RateLimitPolicy()

    # --- the node's limits ----------------------------------------------------------------------
    def check_login(self, address: str) -> None:
        """Before a password is checked: refused when ``address`` used up its failures."""
        self.check(f"login:{address}", self.policy.login, what="login attempts")

    def login_failed(self, address: str) -> None:
        self.hit(f"login:{address}", self.policy.login, what="login attempts", refuse=False)

    def challenge(self, address: str) -> None:
        self.hit(f"challenge:{address}", self.policy.challenge, what="terminal challenges")

    # --- the mechanism --------------------------------------------------------------------------
    def check(self, bucket: str, limit: Limit, *, what: str) -> None:
        """Refuse (:class:`TooManyAttempts`) when ``bucket``'s window is full; counts nothing."""
        now = self.clock.now()
        with self.db.uow() as uow:
            row = uow.session.get(t.RateLimit, _key(bucket))
            if row is None:
                return
            left = _left(row, limit, now)
            if left > 0 and row.hits >= limit.limit:
                raise TooManyAttempts(what, left)

    def hit(self, bucket: str, limit: Limit, *, what: str, refuse: bool = True) -> None:
        """Count one attempt of ``bucket``.  ``refuse``: the attempt is refused (and not counted)
        when the window is full; otherwise it is counted regardless (a failure already made)."""
        now = self.clock.now()
        key = _key(bucket)
        for _ in range(2):  # a first attempt of a bucket can race another worker's: then again
            try:
                with self.db.uow() as uow:
                    row = uow.session.get(t.RateLimit, key, with_for_update=True)
                    if row is None:
                        uow.session.execute(delete(t.RateLimit).where(t.RateLimit.window_start < now - IDLE))
                        uow.session.add(t.RateLimit(bucket=key, window_start=now, hits=1))
                        uow.commit()
                        return
                    left = _left(row, limit, now)
                    if left <= 0:
                        row.window_start, row.hits = now, 0
                    elif row.hits >= limit.limit and refuse:
                        raise TooManyAttempts(what, left)
                    row.hits += 1
                    uow.commit()
                    return
            except IntegrityError:
                continue
        raise TooManyAttempts(what, 1)  # two races in a row: the bucket is busy


class RevokedTokens:
    """Access tokens ended before their expiry (``revoked_tokens``, by SHA-256)."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def revoke(self, token: str, expires_at: dt.datetime) -> None:
        now = self.clock.now()
        digest = token_digest(token)
        with self.db.uow() as uow:
            uow.session.execute(delete(t.RevokedToken).where(t.RevokedToken.expires_at < now))
            if uow.session.get(t.RevokedToken, digest) is None and expires_at > now:
                uow.session.add(t.RevokedToken(digest=digest, expires_at=expires_at))
            with contextlib.suppress(IntegrityError):  # revoked by another worker at the same moment
                uow.commit()

    def revoked(self, token: str) -> bool:
        with self.db.uow() as uow:
            return uow.session.get(t.RevokedToken, token_digest(token)) is not None


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _key(bucket: str) -> str:
    """The row's key: the bucket itself, or — too long for the column (an odd address) — its
    kind and a digest."""
    if len(bucket) <= MAX_BUCKET:
        return bucket
    kind, _, rest = bucket.partition(":")
    return f"{kind[:60]}:#{hashlib.sha256(rest.encode()).hexdigest()}"


def _left(row: t.RateLimit, limit: Limit, now: dt.datetime) -> int:
    """Seconds until the row's window ends (0 or less: it ended)."""
    ends = row.window_start + dt.timedelta(seconds=limit.window)
    return int((ends - now).total_seconds() + 0.999)


__all__ = ["Limit", "RateLimitPolicy", "RateLimits", "RevokedTokens", "token_digest"]
