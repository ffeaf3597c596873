"""The web layer's defences through HTTP, on SQLite and PostgreSQL (docs/web.md "Security"):

* **CSRF** — every state-changing page route of the app (enumerated from its routes, not listed
  by hand) refuses a POST without the session's token, with a wrong one and with another
  session's, with the 403 page, and the database is as it was;
* **sessions** — a login makes a new session (a cookie planted before it opens nothing after), a
  logout ends the session on the server (a copy of the cookie opens nothing), and the cookie is
  HttpOnly, SameSite=Lax, Secure over https or when configured;
* **headers** — the Content-Security-Policy and its companions on every page, and no inline
  script or style on any page (which that policy would block);
* **XSS** — a resident named ``<script>alert(1)</script>`` living at ``"><img src=x
  onerror=alert(1)>``, shown by the card centre, the clinic console, the portal and the kiosk:
  escaped everywhere, and a browser runs no script of it;
* **SQL injection** — the classic payloads, unicode quotes, NUL bytes and very long strings in
  every search field of the pages and the API: never a 500, never an answer a harmless search
  would not give, the tables as they were;
* **rate limits** — failed logins per client address (staff page, portal page, API token) and
  terminal challenges: the N+1th gets 429 with Retry-After (a localised page on the web), the
  window ends on the node's clock, and a person at another address is not blocked.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Dialog
from sqlalchemy import func, select
from starlette.requests import Request

from healthcard.api.app import create_app
from healthcard.issuance.chips import SimulatedChips
from healthcard.platform.access import Actor, Carrier, Role
from healthcard.platform.ratelimit import Limit, RateLimitPolicy, RateLimits
from healthcard.storage import tables as t
from healthcard.web import ehealth
from healthcard.web.pages import PageRoute
from healthcard.web.session import COOKIE, CookiePolicy, Sessions

from .cardcentre_fixtures import application
from .carddesk_fixtures import card_admins, id_number
from .platform_fixtures import CARD, PASSWORD, Platform, served

AGENT = "http://127.0.0.1:7700"
GENEROUS = Limit(1000, 60)
XSS_NAME = "<script>alert(1)</script>"
XSS_ADDRESS = '"><img src=x onerror=alert(1)>'
XSS_PHONE = "13800138000"


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


@dataclass
class Site:
    platform: Platform
    client: TestClient

    def login(self, username: str, path: str = "/staff/login", client: TestClient | None = None) -> str:
        """Log ``username`` in through ``path``; the CSRF token of the page landed on."""
        http = client or self.client
        http.cookies.clear()
        token = csrf_of(http.get(path).text)
        answer = http.post(path, data={"username": username, "password": PASSWORD, "csrf": token})
        assert answer.status_code == 200, answer.text[:300]
        return csrf_of(answer.text) if 'name="csrf"' in answer.text else token

    def tables(self) -> dict[str, int]:
        return dict(self.platform.app.db.status().tables)

    def limits(self, login: Limit = GENEROUS, challenge: Limit = GENEROUS) -> None:
        self.client.app.state.rate_limits = RateLimits(  # type: ignore[attr-defined]
            self.platform.app.db, self.platform.clock, RateLimitPolicy(login=login, challenge=challenge)
        )


def new_client(platform: Platform, **options: object) -> TestClient:
    return TestClient(create_app(platform.app, agent_url=AGENT), follow_redirects=True, **options)  # type: ignore[arg-type]


@pytest.fixture
def site(platform: Platform) -> Iterator[Site]:
    card_admins(platform)
    with new_client(platform) as http:
        found = Site(platform, http)
        found.limits()  # generous, unless a test says otherwise: the tests below log in often
        yield found


# --- CSRF ------------------------------------------------------------------------------------------
PATH_VALUES = {
    "resident_id": "R1",
    "encounter_id": "1",
    "booking_id": "1",
    "number": "1",
    "word": "lost",
    "link_id": "1",
}


def walk(routes: Iterable[Any]) -> Iterator[tuple[str, Any]]:
    """(full path, route) of every route of an app, into included routers (FastAPI keeps them
    as lazy branches with the route inside)."""
    for route in routes:
        if hasattr(route, "effective_candidates"):
            yield from walk(route.effective_candidates())
        else:
            original = getattr(route, "original_route", route)
            yield (getattr(route, "path", "") or original.path), original


def state_changing_routes(http: TestClient) -> list[tuple[str, str]]:
    found = []
    for path, route in walk(http.app.routes):  # type: ignore[attr-defined]
        if isinstance(route, APIRoute) and isinstance(route, PageRoute):
            for method in sorted((route.methods or set()) - {"GET", "HEAD", "OPTIONS"}):
                found.append((method, path))
    return sorted(found)


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: PATH_VALUES.get(m.group(1), CARD), path)


def test_every_state_changing_page_refuses_a_missing_wrong_or_foreign_csrf_token(site: Site) -> None:
    routes = state_changing_routes(site.client)
    paths = {p for _, p in routes}
    assert len(routes) >= 20, routes  # the app's forms: logins, the clinic's, the card centre's …
    assert {"/staff/login", "/portal/login", "/clinic/scan", "/kiosk/session"} <= paths
    site.login("admin")
    with new_client(site.platform) as other:
        foreign = csrf_of(other.get("/portal/login").text)  # a valid token — of another session
    before = site.tables()
    for method, path in routes:
        url = concrete(path)
        for token in (None, "not-the-token", foreign):
            data = {"username": "admin", "password": PASSWORD, "csrf": token} if token else {"x": "1"}
            answer = site.client.request(method, url, data=data, follow_redirects=False)
            assert answer.status_code == 403, (method, url, token, answer.status_code)
            assert "表单已过期" in answer.text or "The form has expired" in answer.text
        # the htmx header with a wrong token is refused the same way
        answer = site.client.request(method, url, headers={"X-CSRF-Token": "nope"}, follow_redirects=False)
        assert answer.status_code == 403, (method, url)
    assert site.tables() == before  # nothing written — not even an audit entry


# --- sessions ----------------------------------------------------------------------------------------
def session_id(http: TestClient, cookie: str) -> str:
    scope = {"type": "http", "headers": [(b"cookie", f"{COOKIE}={cookie}".encode())]}
    sessions: Sessions = http.app.state.web_sessions  # type: ignore[attr-defined]
    loaded = sessions.load(Request(scope))
    assert loaded is not None
    return loaded.sid


def test_a_login_starts_a_new_session_and_a_logout_ends_it_on_the_server(site: Site) -> None:
    for login, home, username in (("/staff/login", "/admin", "admin"), ("/portal/login", "/portal", CARD)):
        login_and_logout(site, login, home, username)
    cookie_flags(site.platform)


def login_and_logout(site: Site, login: str, home: str, username: str) -> None:
    http = site.client
    http.cookies.clear()
    page = http.get(login)
    planted = http.cookies[COOKIE]  # what an attacker could have set in the victim's browser
    answer = http.post(login, data={"username": username, "password": PASSWORD, "csrf": csrf_of(page.text)})
    assert answer.status_code == 200 and answer.url.path.startswith(home)
    after = http.cookies[COOKIE]
    assert session_id(http, after) != session_id(http, planted)
    assert csrf_of(answer.text) != csrf_of(page.text)  # and a new CSRF token
    with new_client(site.platform) as attacker:
        attacker.cookies.set(COOKIE, planted)
        assert attacker.get(home, follow_redirects=False).status_code in (303, 307)  # the login page
        attacker.cookies.set(COOKIE, after)  # a copy of the logged-in cookie works — until logout
        assert attacker.get(home, follow_redirects=False).status_code == 200
        logout = login.replace("/login", "/logout")
        assert http.post(logout, data={"csrf": csrf_of(answer.text)}).status_code == 200
        refused = attacker.get(home, follow_redirects=False)
        assert refused.status_code in (303, 307), "the copy of the cookie still opens the page"
        assert refused.headers["location"].startswith(login)


def test_a_logout_ends_its_own_session_not_another_login_of_the_same_account(site: Site) -> None:
    """Two logins of one account in the same second (the fixture's clock stands still): two
    tokens, so logging out of one leaves the other open."""
    with new_client(site.platform) as phone:
        site.login("admin")
        other = site.login("admin", client=phone)
        assert site.client.cookies[COOKIE] != phone.cookies[COOKIE]
        assert phone.post("/staff/logout", data={"csrf": other}).status_code == 200
        assert site.client.get("/admin", follow_redirects=False).status_code == 200
        assert phone.get("/admin", follow_redirects=False).status_code in (303, 307)


def cookie_header(answer: httpx.Response) -> str:
    found = [v for v in answer.headers.get_list("set-cookie") if v.startswith(f"{COOKIE}=")]
    assert found, "no session cookie set"
    return found[-1].lower()


def cookie_flags(platform: Platform) -> None:
    """HttpOnly, SameSite=Lax, Path=/; Secure over https, or always when configured."""
    with new_client(platform) as plain:
        flags = cookie_header(plain.get("/portal/login"))
        assert "httponly" in flags and "samesite=lax" in flags and "path=/" in flags
        assert "secure" not in flags  # auto: plain http (the demo on 127.0.0.1)
    with new_client(platform, base_url="https://testserver") as https:
        assert "secure" in cookie_header(https.get("/portal/login"))
    with new_client(platform) as forced:
        forced.app.state.web_sessions.policy = CookiePolicy.ALWAYS  # type: ignore[attr-defined]
        assert "secure" in cookie_header(forced.get("/portal/login"))


# --- headers ---------------------------------------------------------------------------------------
def test_every_page_has_the_security_headers_and_no_inline_script_or_style(site: Site) -> None:
    pages = ["/portal/login", "/staff/login", "/kiosk"]
    checked = 0
    for username, more in (
        ("admin", ["/admin", "/admin/platform", "/admin/cards/hotlist"]),
        ("card-admin", ["/admin/cards/applications", "/admin/cards/card", f"/admin/cards/card/{CARD}"]),
        ("dr-wang", ["/clinic"]),
        (CARD, ["/portal", "/portal/visits", "/portal/account", "/portal/appointments", "/portal/privacy"]),
    ):
        site.login(username, "/portal/login" if username == CARD else "/staff/login")
        for path in (pages if checked == 0 else []) + more:
            answer = site.client.get(path)
            assert answer.status_code == 200, (path, answer.status_code)
            headers = answer.headers
            csp = headers["content-security-policy"]
            for directive in (
                "default-src 'self'",
                "script-src 'self'",
                "frame-ancestors 'none'",
                "object-src",
            ):
                assert directive in csp, (path, directive)
            assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["x-frame-options"] == "DENY"
            assert headers["referrer-policy"] == "same-origin"
            assert headers["cache-control"] == "no-store"
            html = answer.text
            assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), (path, "an inline script")
            assert not re.search(r"<style\b|\sstyle=\"|\son[a-z]+=", html), (path, "inline style or handler")
            checked += 1
    assert checked >= 14
    # the assets each page links: never sniffed; cached for a year as the release asks for them
    assets = set(re.findall(r'(?:href|src)="(/static/[^"]+)"', html))
    assert assets, html[:500]
    for asset in assets:
        answer = site.client.get(asset.replace("&amp;", "&"))
        assert answer.status_code == 200, asset
        assert answer.headers["x-content-type-options"] == "nosniff", asset
        assert answer.headers["cache-control"] == "public, max-age=31536000, immutable", asset
    bare = site.client.get(next(iter(assets)).split("?")[0])
    assert bare.status_code == 200 and bare.headers["cache-control"] == "no-cache"


# --- XSS ----------------------------------------------------------------------------------------------
@dataclass
class Hostile:
    number: str  # the card number (= the ID number)
    resident_id: str
    queued: str  # an application of the same person still in the queue


def hostile_resident(platform: Platform) -> Hostile:
    number = id_number(7)
    born = {"birth_date": "1985-01-01", "sex": 1}
    raw = application(
        id_number=number, name=XSS_NAME, addresses=[("1", XSS_ADDRESS)], phones=[XSS_PHONE], **born
    )
    cards = platform.app.cards
    submitted = cards.submit("clerk-41", raw, collection_point="410102-01")
    cards.approve("admin-41", submitted.number)
    cards.issue("admin-41", submitted.number, SimulatedChips())
    cards.activate("clerk-41", number)
    queued = cards.submit(
        "clerk-41",
        application(id_number=id_number(8), name=XSS_NAME, addresses=[("1", XSS_ADDRESS)], **born),
        collection_point="410102-01",
    ).number
    node = platform.app.node
    with platform.app.db.uow() as uow:
        resident_id = node.mpi.resolve_card(uow, number)
        node.accounts.create(
            uow,
            username=number,
            name=XSS_NAME,
            role=Role.RESIDENT,
            password=PASSWORD,
            resident_id=resident_id,
        )
        uow.commit()
    return Hostile(number, resident_id, queued)


def assert_inert(html: str, where: str) -> None:
    assert "<script>alert" not in html, where
    assert "<img src=x" not in html, where
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, f"{where}: the name is not shown (escaped)"


def test_a_hostile_name_and_address_are_escaped_on_every_page_that_shows_them(site: Site) -> None:
    hostile = hostile_resident(site.platform)
    http = site.client
    site.login("card-admin")
    assert_inert(http.get("/admin/cards/applications").text, "the card centre's queue")
    assert_inert(http.get(f"/admin/cards/card/{hostile.number}").text, "a card's page")
    csrf = site.login("dr-wang")
    keys = http.app.state.ehc_keys  # type: ignore[attr-defined]
    code = ehealth.issue(keys, hostile.number, site.platform.clock.now()).text
    patient = http.post("/clinic/scan", data={"qr_code": code, "csrf": csrf})
    assert patient.status_code == 200 and "/clinic/patient/" in str(patient.url)
    assert_inert(patient.text, "the clinic's patient page")
    site.login(hostile.number, "/portal/login")
    for path in ("/portal", "/portal/account", "/portal/card/lost"):
        answer = http.get(path)
        assert answer.status_code == 200, path
        assert "<script>alert" not in answer.text and "<img src=x" not in answer.text, path
    assert_inert(http.get("/portal").text, "the portal's home")
    # the kiosk: the resident's card session (a token of carrier CARD, as the agent gets it)
    http.cookies.clear()
    csrf = csrf_of(http.get("/kiosk/pin").text)
    token = http.app.state.tokens.issue(  # type: ignore[attr-defined]
        Actor(hostile.number, Role.RESIDENT, resident_id=hostile.resident_id, carrier=Carrier.CARD),
        site.platform.clock.now(),
    ).access_token
    menu = http.post("/kiosk/session", data={"token": token, "csrf": csrf})
    assert menu.status_code == 200 and menu.url.path == "/kiosk/menu"
    assert_inert(menu.text, "the kiosk's menu")
    # 退卡 ends the session on the node: the same token does not open a kiosk session again
    out = http.post("/kiosk/exit", data={"csrf": csrf_of(menu.text)})
    assert out.status_code == 200 and out.url.path == "/kiosk"
    again = http.post("/kiosk/session", data={"token": token, "csrf": csrf_of(http.get("/kiosk/pin").text)})
    assert again.status_code == 403


def test_a_browser_runs_no_script_of_a_hostile_name(platform: Platform, chromium: Browser) -> None:
    hostile = hostile_resident(platform)
    context = chromium.new_context(locale="zh-CN")
    page = context.new_page()
    dialogs: list[str] = []

    def seen(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", seen)
    try:
        with served(platform.app) as base:
            page.goto(f"{base}/portal/login")
            page.locator("#f-username").fill(hostile.number)
            page.locator("#f-password").fill(PASSWORD)
            page.locator("form button[type=submit]").click()
            page.wait_for_url(f"{base}/portal")
            assert XSS_NAME in page.inner_text("body")  # shown as text, not run
            page.goto(f"{base}/portal/account")
            page.wait_for_load_state("load")
    finally:
        context.close()
    assert dialogs == []


# --- SQL injection ------------------------------------------------------------------------------------
PAYLOADS = (
    "' OR '1'='1",
    "'; DROP TABLE residents; --",
    "%' --",
    "1) OR (1=1",
    "\u2019 OR \u20191\u2019=\u20191",  # unicode quotes
    "\uff07 OR 1=1 --",
    "a\x00b",
    "' UNION SELECT password_hash FROM accounts --",
    "x" * 5000,
)


def row_counts(platform: Platform) -> dict[str, int]:
    with platform.app.db.uow() as uow:
        return {
            table.__tablename__: int(uow.session.scalar(select(func.count()).select_from(table)) or 0)
            for table in (t.Resident, t.Account, t.Card, t.Application, t.ResidentIdentifier)
        }


def test_injection_in_every_search_field_is_harmless(site: Site) -> None:
    http = site.client
    before = row_counts(site.platform)
    api = http.post("/v1/auth/token", json={"username": "admin", "password": PASSWORD}).json()
    bearer = {"Authorization": f"Bearer {api['access_token']}"}
    checks = []

    def search(name: str, send: object, value: str) -> tuple[int, str]:
        answer = send(value)  # type: ignore[operator]
        assert answer.status_code < 500, (name, value[:40], answer.status_code, answer.text[:200])
        checks.append(name)
        return answer.status_code, answer.text

    api_searches = {
        "resident lookup value": lambda v: http.get(
            "/v1/residents/lookup", params={"system": "card", "value": v}, headers=bearer
        ),
        "resident lookup assigner": lambda v: http.get(
            "/v1/residents/lookup", params={"system": "other", "value": "1", "assigner": v}, headers=bearer
        ),
        "fhir patient search": lambda v: http.get("/fhir/Observation", params={"patient": v}, headers=bearer),
        "api token username": lambda v: http.post("/v1/auth/token", json={"username": v, "password": "x"}),
    }
    for name, send in api_searches.items():
        harmless, _ = search(name, send, "zzzz")
        for payload in PAYLOADS:
            status, text = search(name, send, payload)
            assert status == harmless or status == 422, (name, payload[:40], status, harmless)
            assert "password_hash" not in text and "$argon2" not in text
    site.login("card-admin")
    pages = {
        "card-centre card number": lambda v: http.get("/admin/cards/card", params={"card_number": v}),
        "card-centre queue status": lambda v: http.get("/admin/cards/applications", params={"status": v}),
    }
    for name, send in pages.items():
        harmless, page = search(name, send, "zzzz")
        for payload in PAYLOADS:
            status, text = search(name, send, payload)
            assert status == harmless or status == 422, (name, payload[:40], status, harmless)
            assert text.count("<tr") <= page.count("<tr"), (name, payload[:40], "more rows")
            assert CARD not in text
    site.login("admin")
    for payload in PAYLOADS:
        search("ncms dashboard pool", lambda v: http.get("/admin/ncms", params={"pool": v}), payload)
    site.login(CARD, "/portal/login")
    for payload in PAYLOADS:
        for field in ("institution", "department", "doctor"):
            search(
                f"portal booking {field}",
                lambda v, f=field: http.get("/portal/appointments/new", params={f: v}),
                payload,
            )
    site.login("dr-wang")
    for payload in PAYLOADS:
        search(
            "staff login username",
            lambda v: http.post(
                "/staff/login",
                data={"username": v, "password": "x", "csrf": csrf_of(http.get("/staff/login").text)},
            ),
            payload,
        )
    assert len(checks) > 80
    assert row_counts(site.platform) == before  # nothing dropped, nothing added


# --- rate limits --------------------------------------------------------------------------------------
def test_failed_logins_per_address_get_429_until_the_window_ends(site: Site) -> None:
    site.limits(login=Limit(3, 600))
    successful_logins_are_not_counted(site)  # a person who knows the password is never counted
    http = site.client
    for attempt in range(3):  # three different usernames: no account is locked by these
        answer = http.post("/v1/auth/token", json={"username": f"nobody-{attempt}", "password": "x"})
        assert answer.status_code == 401
    refused = http.post("/v1/auth/token", json={"username": "admin", "password": PASSWORD})
    assert refused.status_code == 429 and refused.json()["code"] == "too-many-attempts"
    assert 1 <= int(refused.headers["retry-after"]) <= 600
    # the web's logins count the same failures: a localised page with the form, 429
    token = csrf_of(http.get("/staff/login").text)
    page = http.post("/staff/login", data={"username": "admin", "password": PASSWORD, "csrf": token})
    assert page.status_code == 429 and "retry-after" in page.headers
    assert "尝试次数过多" in page.text and 'name="username"' in page.text
    http.cookies.set("hc_lang", "en")
    token = csrf_of(http.get("/portal/login").text)
    page = http.post("/portal/login", data={"username": CARD, "password": PASSWORD, "csrf": token})
    assert page.status_code == 429 and "Too many attempts" in page.text
    http.cookies.delete("hc_lang")
    # another address is not blocked by these failures
    with new_client(site.platform, client=("10.0.0.9", 50000)) as elsewhere:
        elsewhere.app.state.rate_limits = http.app.state.rate_limits  # type: ignore[attr-defined]
        assert (
            elsewhere.post("/v1/auth/token", json={"username": "admin", "password": PASSWORD}).status_code
            == 200
        )
    site.platform.clock.advance(dt.timedelta(seconds=601))  # the window ends
    assert http.post("/v1/auth/token", json={"username": "admin", "password": PASSWORD}).status_code == 200


def successful_logins_are_not_counted(site: Site) -> None:
    for _ in range(5):
        assert (
            site.client.post("/v1/auth/token", json={"username": "admin", "password": PASSWORD}).status_code
            == 200
        )
    site.login(CARD, "/portal/login")
    site.login("dr-wang")


def test_terminal_challenges_per_address_get_429_until_the_window_ends(site: Site) -> None:
    site.limits(login=Limit(2, 600), challenge=Limit(4, 60))
    http = site.client
    body = {"terminal_id": site.platform.terminal_id}
    for _ in range(4):
        assert http.post("/v1/auth/terminal/challenge", json=body).status_code == 200
    refused = http.post("/v1/auth/terminal/challenge", json=body)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) <= 60
    site.platform.clock.advance(dt.timedelta(seconds=61))
    assert http.post("/v1/auth/terminal/challenge", json=body).status_code == 200

    two_workers_share_the_count(site)


def two_workers_share_the_count(site: Site) -> None:
    """Two workers of a node: each its own app, one database — the failures add up."""
    site.limits(login=Limit(4, 600))
    with new_client(site.platform) as worker_2:
        worker_2.app.state.rate_limits = RateLimits(  # type: ignore[attr-defined]
            site.platform.app.db, site.platform.clock, RateLimitPolicy(login=Limit(4, 600))
        )
        for http in (site.client, worker_2, site.client, worker_2):
            assert http.post("/v1/auth/token", json={"username": "x", "password": "y"}).status_code == 401
        assert worker_2.post("/v1/auth/token", json={"username": "x", "password": "y"}).status_code == 429
        assert site.client.post("/v1/auth/token", json={"username": "x", "password": "y"}).status_code == 429
