"""Fixtures for tests that go through a real pcscd with vsmartcard-vpcd.

* ``pcsc`` (session): pcscd is up with both vpcd readers, running ``scripts/pcsc-up.sh`` if they
  are missing.  When they cannot be had the tests FAIL under ``CI=true`` (never skip in CI) and
  skip elsewhere.
* ``vpcd``: a factory ``vpcd(card, port=35963) -> VpcdBridge`` serving a card to vpcd from a
  thread; it returns once pcscd sees the card, and stops every bridge it made at teardown, even
  when the test failed, so no bridge lingers and blocks the port for the next test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

from healthcard.card.cos import CardOS
from healthcard.keys.kek import DEFAULT_MODULE, create_pkcs11_kek
from healthcard.storage.db import Database
from healthcard.terminal.vpcd import VpcdBridge

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

    from healthcard.issuance.keycentre import KeyCentre

    from .platform_fixtures import Platform

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
#: vpcd port -> the reader pcscd shows for it
READERS = {35963: "Virtual PCD 00 00", 35964: "Virtual PCD 00 01"}
IN_CI = os.environ.get("CI") == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip the test, except in CI, where a missing PC/SC stack is a failure."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: PC/SC tests must run, not skip)", pytrace=False)
    pytest.skip(reason)


class PcscEnv:
    """pcscd as the tests see it: reader states, waiting, and the up/down scripts."""

    readers = READERS
    unavailable = staticmethod(unavailable)

    @staticmethod
    def reader_names() -> list[str] | None:
        """The reader names, or None when pcscd does not answer."""
        from smartcard import scard

        hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if hresult != scard.SCARD_S_SUCCESS:
            return None
        try:
            hresult, names = scard.SCardListReaders(context, [])
            if hresult == scard.SCARD_E_NO_READERS_AVAILABLE:
                return []
            return [str(name) for name in names] if hresult == scard.SCARD_S_SUCCESS else None
        finally:
            scard.SCardReleaseContext(context)

    @staticmethod
    def card_state(reader: str) -> tuple[bool, bytes]:
        """(card present, its ATR) in ``reader`` now; (False, b"") if pcscd or the reader is absent."""
        from smartcard import scard

        hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if hresult != scard.SCARD_S_SUCCESS:
            return False, b""
        try:
            hresult, states = scard.SCardGetStatusChange(context, 0, [(reader, scard.SCARD_STATE_UNAWARE)])
            if hresult != scard.SCARD_S_SUCCESS:
                return False, b""
            _name, event, atr = states[0]
            return bool(event & scard.SCARD_STATE_PRESENT), bytes(atr)
        finally:
            scard.SCardReleaseContext(context)

    def wait_card(self, reader: str, atr: bytes | None = None, timeout: float = 10.0) -> bool:
        """Wait until a card (with ``atr``, if given) is present in ``reader``."""
        deadline = time.monotonic() + timeout
        while True:
            present, seen = self.card_state(reader)
            if present and (atr is None or seen == atr):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def wait_no_card(self, reader: str, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while self.card_state(reader)[0]:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def wait_readers(self, timeout: float = 5.0) -> list[str]:
        """Wait for both vpcd readers; returns the ones still missing."""
        deadline = time.monotonic() + timeout
        while True:
            names = self.reader_names() or []
            missing = [r for r in READERS.values() if r not in names]
            if not missing or time.monotonic() >= deadline:
                return missing
            time.sleep(0.1)

    @staticmethod
    def script(name: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(SCRIPTS / name)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=ROOT,
        )

    def up(self) -> tuple[bool, str]:
        """Run scripts/pcsc-up.sh; (pcscd is up with both readers, the script's output).

        Under CPU load pcsc-up.sh can report "pcscd exited" for a pcscd that is starting fine
        (its liveness check wants the process name "pcscd" and may look before ``setsid`` has
        exec'd it), so a failed run counts as success if both readers appear soon after.  It is
        not re-run: a second run before pcscd writes its pid file would start a second pcscd.
        """
        result = self.script("pcsc-up.sh")
        output = (result.stdout + result.stderr).strip()
        if result.returncode == 0:
            return not self.wait_readers(timeout=5.0), output
        return not self.wait_readers(timeout=10.0), output

    def down(self) -> subprocess.CompletedProcess[str]:
        return self.script("pcsc-down.sh", timeout=30.0)


@pytest.fixture(scope="session")
def pcsc() -> PcscEnv:
    try:
        import smartcard.scard  # noqa: F401
    except ImportError:
        unavailable("pyscard is not installed (pip install pyscard==2.3.1)")
    env = PcscEnv()
    if env.wait_readers(timeout=0.5):
        try:
            ok, output = env.up()
        except (OSError, subprocess.TimeoutExpired) as error:
            unavailable(f"scripts/pcsc-up.sh could not run: {error}")
        if not ok:
            tail = " | ".join(output.splitlines()[-5:])
            unavailable(f"scripts/pcsc-up.sh did not bring up the vpcd readers: {tail}")
    missing = env.wait_readers(timeout=5.0)
    if missing:
        unavailable(f"PC/SC readers {missing} not found (pcscd readers: {env.reader_names()})")
    return env


BridgeFactory = Callable[..., VpcdBridge]


@pytest.fixture
def vpcd(pcsc: PcscEnv) -> Iterator[BridgeFactory]:
    started: list[tuple[VpcdBridge, threading.Thread, str]] = []

    def start(card: CardOS, port: int = 35963, timeout: float = 10.0) -> VpcdBridge:
        reader = READERS[port]
        if not pcsc.wait_no_card(reader, timeout=5.0):
            pytest.fail(
                f"{reader!r} already holds a card: another virtual card is connected to vpcd port "
                f"{port} (a stale vicc?); stop it first",
                pytrace=False,
            )
        bridge = VpcdBridge(card, port=port)
        started.append((bridge, bridge.start_in_thread(), reader))
        if not pcsc.wait_card(reader, card.state.atr, timeout):
            pytest.fail(
                f"pcscd did not see the bridged card in {reader!r} within {timeout:g} s "
                f"(bridge connected: {bridge.connected})",
                pytrace=False,
            )
        return bridge

    try:
        yield start
    finally:
        for bridge, _thread, _reader in started:
            bridge.stop()
        lingering = []
        for bridge, thread, reader in started:
            thread.join(timeout=5.0)
            if thread.is_alive():
                lingering.append(bridge)
            pcsc.wait_no_card(reader, timeout=5.0)
        if lingering:
            pytest.fail(f"vpcd bridges did not stop: {lingering}", pytrace=False)


# --- SoftHSM2 (PKCS#11) -----------------------------------------------------------------------
HSM_TOKEN, HSM_PIN = "healthcard", "1234"
_HSM_ROOT = Path(__file__).resolve().parents[2]


def hsm_unavailable(reason: str) -> NoReturn:
    """Skip the test, except in CI, where a missing SoftHSM2 is a failure."""
    if _HSM_IN_CI:
        pytest.fail(f"{reason} (CI=true: HSM tests must run, not skip)", pytrace=False)
    pytest.skip(reason)


def _problem() -> str | None:
    """What keeps the HSM tests from running, or None."""
    conf = os.environ.get("SOFTHSM2_CONF")
    if not conf:
        return "SOFTHSM2_CONF is not set (run `make test`, or scripts/hsm-up.sh and export it)"
    if not Path(conf).is_file():
        return f"SOFTHSM2_CONF={conf} does not exist (scripts/hsm-up.sh writes it)"
    if not Path(DEFAULT_MODULE).is_file() or shutil.which("softhsm2-util") is None:
        return f"SoftHSM2 is not installed ({DEFAULT_MODULE} missing; scripts/hsm-up.sh installs it)"
    # softhsm2-util in a child process: loading the module here would fix its view of the tokens
    slots = subprocess.run(
        ["softhsm2-util", "--show-slots"], capture_output=True, text=True, timeout=30, check=False
    )
    labels = [line.split(":", 1)[1].strip() for line in slots.stdout.splitlines() if "Label:" in line]
    if HSM_TOKEN not in labels:
        return f"no SoftHSM2 token labelled {HSM_TOKEN!r} under SOFTHSM2_CONF={conf} (tokens: {labels})"
    return None


@pytest.fixture(scope="module")
def hsm() -> str:
    """The PKCS#11 module, with the ``healthcard`` token and its default KEK in place."""
    try:
        import pkcs11  # noqa: F401
    except ImportError:
        hsm_unavailable("python-pkcs11 is not installed (pip install python-pkcs11==0.10.1)")
    problem = _problem()
    conf = os.environ.get("SOFTHSM2_CONF", "")
    if problem and conf and Path(conf).name == "softhsm2.conf":
        env = dict(os.environ, HEALTHCARD_SOFTHSM_DIR=str(Path(conf).parent))
        try:
            result = subprocess.run(
                ["bash", str(_HSM_ROOT / "scripts" / "hsm-up.sh")],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
                cwd=_HSM_ROOT,
                env=env,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            hsm_unavailable(f"scripts/hsm-up.sh could not run: {error}")
        problem = _problem()
        if problem and result.returncode:
            tail = " | ".join((result.stdout + result.stderr).strip().splitlines()[-3:])
            problem = f"{problem}; scripts/hsm-up.sh failed: {tail}"
    if problem:
        hsm_unavailable(problem)
    create_pkcs11_kek(DEFAULT_MODULE, HSM_TOKEN, HSM_PIN)  # idempotent: the token persists across runs
    return DEFAULT_MODULE


_HSM_IN_CI = os.environ.get("CI") == "true"


# --- databases: every storage and service test runs on SQLite and on PostgreSQL ----------------------
#: the PostgreSQL server the tests use; each test gets a schema of its own in a scratch database
PG_SERVER = os.environ.get("HEALTHCARD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_answers(url: str) -> str | None:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A scratch database for this test run (created here, dropped at the end); the server is
    started by scripts/pg-up.sh when installed but stopped.  Missing: fail in CI, skip elsewhere."""
    import secrets

    import psycopg

    problem = _pg_answers(PG_SERVER)
    if problem is not None:
        subprocess.run(["bash", str(SCRIPTS / "pg-up.sh")], check=False, timeout=60)
        problem = _pg_answers(PG_SERVER)
    if problem is not None:
        unavailable(f"PostgreSQL at {PG_SERVER} does not answer: {problem}")
    name = f"healthcard_test_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(PG_SERVER, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_SERVER.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_SERVER, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def scratch_database_url(request: pytest.FixtureRequest, kind: str, folder: Path) -> Iterator[str]:
    """An empty database: a SQLite file in ``folder``, or a fresh schema in the run's PostgreSQL
    scratch database (as a SQLAlchemy URL whose connections use that schema), dropped after."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'healthcard.db'}"
        return
    import secrets

    import psycopg

    from healthcard.settings import normalise_url

    url = request.getfixturevalue("pg_database")
    schema = f"t_{secrets.token_hex(4)}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield normalise_url(f"{url}?options=-csearch_path%3D{schema}")
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database per test, on each of the two databases."""
    yield from scratch_database_url(request, request.param, tmp_path)


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """The database at the current schema (``healthcard db upgrade``)."""
    db = Database(database_url)
    db.upgrade()
    try:
        yield db
    finally:
        db.dispose()


# --- a platform node (tests of the API and the visit flow) -----------------------------------------
@pytest.fixture(scope="module")
def platform_keys(tmp_path_factory: pytest.TempPathFactory) -> KeyCentre:
    """A key centre for the module (slow to make): national root, Henan's and Guangdong's keys."""
    from .cardcentre_fixtures import make_key_centre

    return make_key_centre(tmp_path_factory.mktemp("keys"))


@pytest.fixture
def platform(database_url: str, platform_keys: KeyCentre, tmp_path: Path) -> Iterator[Platform]:
    """A wired node on the test database: 张三 with an active card, staff, a registered terminal."""
    from healthcard.clock import FixedClock

    from .cardcentre_fixtures import NOW
    from .platform_fixtures import make_platform

    made = make_platform(database_url, platform_keys, FixedClock(NOW), tmp_path)
    try:
        yield made
    finally:
        made.app.close()


# --- a real browser (the web tests) ----------------------------------------------------------------
#: where the browser tests save a screenshot of every page they visit (a CI artifact)
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
#: with HEALTHCARD_UPDATE_SCREENSHOTS=1 the README's screenshots (docs/screenshots) are refreshed
#: from the same run
README_SCREENSHOTS = ROOT / "docs" / "screenshots"
#: the pages the README shows
README_PAGES = frozenset(
    {
        "portal-home",
        "portal-book",
        "portal-appointments",
        "portal-ehc",
        "admin-cards",
        "admin-coverage",
        "kiosk-menu",
        "kiosk-pin",
        "clinic-summary",
        "clinic-bill",
    }
)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    """Debian's Chromium driven by Playwright (its executable, not a Playwright download):
    scripts/browser-up.sh installs it with a CJK font.  Missing: a failure under CI=true, a
    skip elsewhere."""
    path = shutil.which("chromium")
    if path is None:
        unavailable("Debian's chromium is not installed (run `make test`, or scripts/browser-up.sh)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: the tests run as root, where Chromium's sandbox refuses to start
        browser = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_page(chromium: Browser) -> Iterator[Page]:
    """A fresh browser context (no cookies) in Chinese, a phone-sized window wide enough for the
    desktop layout; its console errors fail the test (but those a test expects: a refusal it
    provokes on purpose logs "Failed to load resource … 4xx", see :func:`allow_console_errors`)."""
    context = chromium.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()
    allowed: tuple[str, ...] = getattr(page, "allowed_console_errors", ())
    unexpected = [e for e in errors if not any(a in e for a in allowed)]
    assert not unexpected, f"the page logged errors: {unexpected}"


def allow_console_errors(page: Page, *fragments: str) -> None:
    """Console errors containing one of ``fragments`` do not fail the test (a 4xx it provokes)."""
    page.allowed_console_errors = fragments  # type: ignore[attr-defined]


#: the form controls of a page that no label names (a <label for>, a wrapping <label>,
#: aria-label or aria-labelledby); hidden inputs and buttons (named by their text) aside
UNLABELLED = """() => Array.from(document.querySelectorAll('input, select, textarea'))
  .filter(el => el.type !== 'hidden' && el.type !== 'submit' && el.type !== 'button')
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
    && !(el.getAttribute('aria-labelledby') || '').split(' ').some(id => id && document.getElementById(id)))
  .map(el => el.outerHTML.slice(0, 120))"""


def screenshot(page: Page, name: str) -> Path:
    """Save the page as ``artifacts/screenshots/<name>.png`` (and as the README's, when asked) —
    and check, on every page a browser test shows, that each form control has a label."""
    unlabelled = page.evaluate(UNLABELLED)
    assert not unlabelled, f"{name}: controls without a label: {unlabelled}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("HEALTHCARD_UPDATE_SCREENSHOTS") == "1" and name in README_PAGES:
        README_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, README_SCREENSHOTS / path.name)
    return path
