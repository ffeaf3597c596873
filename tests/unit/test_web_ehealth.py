"""The electronic health card's dynamic QR code (CARD-SPEC.md §9): what the portal shows and
what a clinic's scan verifies — valid, expired, tampered, another card's validity."""

from __future__ import annotations

import datetime as dt

import pytest

from healthcard.errors import CryptoError, InvalidValue
from healthcard.keys.ehc import ehc_id
from healthcard.web import ehealth

KEYS = ehealth.EhcKeys.from_secret(b"a token secret of thirty-two bytes!!")
CARD = "410102199003070019"
NOW = dt.datetime(2026, 11, 24, 2, 0, 0, tzinfo=dt.UTC)


def test_the_text_is_the_national_dynamic_form_bound_to_the_card() -> None:
    code = ehealth.issue(KEYS, CARD, NOW)
    ident, kind, validity = code.text.split(":")
    assert kind == "0" and len(ident) == 64 and len(validity) == 32
    assert ident == ehc_id(KEYS.security_root, KEYS.master_index, "01", CARD)
    assert CARD not in code.text  # the card number is not in clear
    assert code.expires_at == NOW + dt.timedelta(minutes=5)
    # a fresh code a minute later: the same ID, another validity
    later = ehealth.issue(KEYS, CARD, NOW + dt.timedelta(minutes=1))
    assert later.ehc_id == code.ehc_id and later.text != code.text


def test_a_valid_code_gives_the_card_number_until_it_expires() -> None:
    code = ehealth.issue(KEYS, CARD, NOW)
    assert ehealth.verify(KEYS, code.text, NOW).card_number == CARD
    last = ehealth.verify(KEYS, code.text, NOW + dt.timedelta(minutes=5))
    assert last.card_number == CARD and last.expires_at == code.expires_at
    with pytest.raises(InvalidValue) as refused:
        ehealth.verify(KEYS, code.text, NOW + dt.timedelta(minutes=5, seconds=1))
    assert refused.value.field == "qr_code" and "expired" in refused.value.message


@pytest.mark.parametrize("position", [0, 10, 63, 67, 80, 97])
def test_a_tampered_code_is_refused(position: int) -> None:
    text = ehealth.issue(KEYS, CARD, NOW).text
    assert text[position] != ":"
    changed = text[:position] + ("0" if text[position] != "0" else "1") + text[position + 1 :]
    with pytest.raises(CryptoError):
        ehealth.verify(KEYS, changed, NOW)


def test_a_validity_moved_to_another_card_or_another_node_is_refused() -> None:
    mine = ehealth.issue(KEYS, CARD, NOW)
    theirs = ehealth.issue(KEYS, "41010219900307003X", NOW)
    spliced = f"{theirs.ehc_id}:0:{mine.text.split(':')[2]}"
    with pytest.raises(CryptoError):
        ehealth.verify(KEYS, spliced, NOW)
    other_node = ehealth.EhcKeys.from_secret(b"another node's secret, 32 bytes!!")
    with pytest.raises(CryptoError):
        ehealth.verify(other_node, mine.text, NOW)


@pytest.mark.parametrize("text", ["", "abc", "00:0:00", f"{'0' * 64}:1:{'0' * 32}", "x:0:y"])
def test_garbage_is_refused(text: str) -> None:
    with pytest.raises(CryptoError):
        ehealth.verify(KEYS, text, NOW)


def test_the_qr_is_an_inline_svg_with_an_escaped_title() -> None:
    svg = ehealth.svg(ehealth.issue(KEYS, CARD, NOW).text, title="<b>码</b>")
    assert svg.startswith("<svg") and "<?xml" not in svg
    assert "<title>&lt;b&gt;码&lt;/b&gt;</title>" in svg and "<b>" not in svg
