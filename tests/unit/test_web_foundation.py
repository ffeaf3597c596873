"""The web layer's pieces that need no server: the catalog (every key a template uses, in both
languages), the session cookie's signature, safe redirects, money as yuan."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest
from starlette.requests import Request
from starlette.responses import Response

from healthcard.web import i18n
from healthcard.web.pages import safe_next
from healthcard.web.session import COOKIE, CookiePolicy, Session, Sessions, derive_key

TEMPLATES = Path(str(resources.files("healthcard.web").joinpath("templates")))
KEY = re.compile(r"""_\(\s*["']([a-z_.\-]+)["']""")
PREFIX = re.compile(r"""_\.of\(\s*["']([a-z_.\-]+)["']""")


def _template_texts() -> list[tuple[str, str]]:
    return [(p.name, p.read_text("utf-8")) for p in sorted(TEMPLATES.rglob("*.html"))]


def test_every_key_the_templates_use_is_in_the_catalog_in_both_languages() -> None:
    used = {key for _, text in _template_texts() for key in KEY.findall(text)}
    used.discard("nav.")  # the menu builds "nav." ~ key: its keys are listed below
    used |= {
        f"nav.{k}" for k in ("home", "appointments", "visits", "vaccinations", "fees", "account", "archive")
    }
    missing = sorted(k for k in used if k not in i18n.CATALOG)
    assert not missing, missing
    for key, (zh, en) in i18n.CATALOG.items():
        assert zh and en, key
        placeholders = sorted(re.findall(r"{(\w+)}", zh)), sorted(re.findall(r"{(\w+)}", en))
        assert placeholders[0] == placeholders[1], f"{key}: the placeholders differ"
    for prefix in {p for _, text in _template_texts() for p in PREFIX.findall(text)}:
        assert any(k.startswith(prefix + ".") for k in i18n.CATALOG), prefix


def test_templates_hold_no_bare_words_outside_the_catalog() -> None:
    """Text between tags is a variable, a catalog call or punctuation — never a bare word
    (English or Chinese) that the language switch would leave untranslated."""
    allowed = {"中文", "English"}  # each language's own name, the same in both
    for name, text in _template_texts():
        stripped = re.sub(r"{#.*?#}|{%.*?%}|{{.*?}}", " ", text, flags=re.S)
        stripped = re.sub(r"<(script|style)\b.*?</\1>", " ", stripped, flags=re.S)
        for piece in re.findall(r">([^<]+)<", stripped):
            words = [w for w in re.findall(r"[A-Za-z]{2,}|[\u4e00-\u9fff]+", piece) if w not in allowed]
            assert not words, f"{name}: {piece.strip()!r}"


def test_translator_fills_values_and_falls_back_to_the_key_or_the_value() -> None:
    zh, en = i18n.Translator("zh"), i18n.Translator("en")
    assert zh("home.hello", name="张三") == "张三，您好" and en("home.hello", name="Zhang") == "Hello, Zhang"
    assert zh("no.such.key") == "no.such.key"
    assert zh.of("card.status", "ACTIVE") == "正常" and en.of("card.status", "ACTIVE") == "Active"
    assert en.of("card.status", "NEW_STATE") == "NEW_STATE"
    assert i18n.Translator("fr").lang == "zh"


@pytest.mark.parametrize(
    ("fen", "text"),
    [(0, "0.00"), (5, "0.05"), (12345, "123.45"), (-250, "-2.50"), (123456789, "1,234,567.89")],
)
def test_yuan(fen: int, text: str) -> None:
    assert i18n.yuan(fen) == text


def _request(cookie: str | None = None, scheme: str = "http") -> Request:
    headers = [(b"cookie", f"{COOKIE}={cookie}".encode())] if cookie else []
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/",
            "headers": headers,
            "scheme": scheme,
            "server": ("testserver", 80),
            "query_string": b"",
        }
    )


def test_a_session_cookie_round_trips_and_a_tampered_one_is_no_session() -> None:
    sessions = Sessions(b"s" * 32)
    session = Session.fresh("a.token")
    response = Response()
    sessions.save(_request(), response, session)
    value = response.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    assert sessions.load(_request(value)) == session
    assert sessions.load(_request(value[:-2] + ("AA" if value[-2:] != "AA" else "BB"))) is None
    assert Sessions(b"t" * 32).load(_request(value)) is None  # another node's key
    assert sessions.load(_request("garbage")) is None
    assert session.csrf_ok(session.csrf) and not session.csrf_ok("x") and not session.csrf_ok(None)
    assert Session.fresh().csrf != Session.fresh().csrf


def test_cookie_policy() -> None:
    assert CookiePolicy.AUTO.secure(_request(scheme="https"))
    assert not CookiePolicy.AUTO.secure(_request(scheme="http"))
    assert CookiePolicy.ALWAYS.secure(_request(scheme="http"))
    assert not CookiePolicy.NEVER.secure(_request(scheme="https"))


def test_keys_for_each_purpose_differ() -> None:
    secret = b"k" * 32
    assert derive_key(secret, "session") != derive_key(secret, "ehc/security", 32)
    assert len(derive_key(secret, "ehc/security", 16)) == 16


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/portal/visits", "/portal/visits"),
        ("/portal?x=1", "/portal?x=1"),
        (None, "/portal"),
        ("", "/portal"),
        ("https://evil.example/", "/portal"),
        ("//evil.example/", "/portal"),
        ("/\\evil.example", "/portal"),
        ("/portal\r\nSet-Cookie: x=1", "/portal"),
    ],
)
def test_safe_next(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected
