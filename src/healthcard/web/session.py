"""The browser's session: one signed cookie, no server-side store.

The cookie holds a random session id, the CSRF token of the session and — once logged in — the
same access token the API issues (:class:`~healthcard.api.tokens.Tokens`, 15 minutes for a
resident).  It is signed (itsdangerous, HMAC-SHA256) under a key derived from the node's token
secret, so every worker of a node reads every other's cookies and nobody else can make one; it
is not encrypted, and holds nothing a bearer of the cookie could not get anyway (the token it
carries is what the cookie is for).

Why these choices:

* **a new session at login** (new id, new CSRF token): a session id planted before the login
  (session fixation) is worth nothing after it;
* **HttpOnly** (no script reads it), **SameSite=Lax** (a cross-site POST carries no cookie; Lax
  rather than Strict so that following a link to the portal from elsewhere keeps the resident
  logged in — every state change is a POST with a CSRF token anyway), **Secure** when the page
  is served over https (:class:`CookiePolicy`);
* **no expiry of its own**: a browser-session cookie; the access token inside expires on the
  node's clock, and an expired token sends the browser to the login page.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass, replace
from enum import StrEnum

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from itsdangerous import BadSignature, URLSafeSerializer
from starlette.requests import Request
from starlette.responses import Response

from healthcard.errors import InvalidValue

COOKIE = "hc_session"
LANG_COOKIE = "hc_lang"
#: the form field and the htmx header that carry the CSRF token
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"


def derive_key(secret: bytes, label: str, length: int = 32) -> bytes:
    """A key for one purpose of the web layer, derived from the node's token secret (HKDF-SHA256
    with the purpose as ``info``): the token secret itself never signs a cookie or a QR code."""
    return HKDF(hashes.SHA256(), length, salt=None, info=b"healthcard.web/" + label.encode()).derive(secret)


class CookiePolicy(StrEnum):
    """When the session cookie is marked ``Secure`` (``HEALTHCARD_COOKIE_SECURE``)."""

    AUTO = "auto"  # when the request came over https (behind a proxy: uvicorn --proxy-headers)
    ALWAYS = "always"
    NEVER = "never"  # plain http only (the demo on 127.0.0.1)

    @classmethod
    def from_env(cls) -> CookiePolicy:
        value = os.environ.get("HEALTHCARD_COOKIE_SECURE", "auto").strip().lower()
        try:
            return cls(value)
        except ValueError:
            raise InvalidValue("HEALTHCARD_COOKIE_SECURE", f"{value!r}: auto, always or never") from None

    def secure(self, request: Request) -> bool:
        if self is CookiePolicy.AUTO:
            return request.url.scheme == "https"
        return self is CookiePolicy.ALWAYS


@dataclass(frozen=True)
class Session:
    sid: str
    csrf: str
    token: str | None = None  # the API's access token; None: not logged in
    #: a self-service kiosk's session (card + PIN): the pages take the kiosk's layout, an idle
    #: or a removed card ends it (web/kiosk.py)
    kiosk: bool = False

    @classmethod
    def fresh(cls, token: str | None = None, *, kiosk: bool = False) -> Session:
        return cls(secrets.token_urlsafe(16), secrets.token_urlsafe(24), token, kiosk)

    def csrf_ok(self, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(self.csrf.encode(), (presented or "").encode())

    def logged_out(self) -> Session:
        return replace(self, token=None)


class Sessions:
    """Reads and writes the session cookie."""

    def __init__(self, secret: bytes, policy: CookiePolicy = CookiePolicy.AUTO) -> None:
        self._signer = URLSafeSerializer(derive_key(secret, "session"), salt="healthcard.web.session")
        self.policy = policy

    def load(self, request: Request) -> Session | None:
        raw = request.cookies.get(COOKIE)
        if not raw:
            return None
        try:
            data = self._signer.loads(raw)
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        sid, csrf, token = data.get("s"), data.get("c"), data.get("t")
        if not isinstance(sid, str) or not isinstance(csrf, str) or not isinstance(token, str | None):
            return None
        return Session(sid, csrf, token, data.get("k") is True)

    def save(self, request: Request, response: Response, session: Session) -> None:
        data: dict[str, object] = {"s": session.sid, "c": session.csrf, "t": session.token}
        if session.kiosk:
            data["k"] = True
        value = self._signer.dumps(data)
        response.set_cookie(
            COOKIE,
            value,
            path="/",
            httponly=True,
            samesite="lax",
            secure=self.policy.secure(request),
        )

    def clear(self, request: Request, response: Response) -> None:
        response.delete_cookie(
            COOKIE, path="/", httponly=True, samesite="lax", secure=self.policy.secure(request)
        )


__all__ = [
    "COOKIE",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "LANG_COOKIE",
    "CookiePolicy",
    "Session",
    "Sessions",
    "derive_key",
]
