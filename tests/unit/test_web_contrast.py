"""The colours of site.css: every text colour on the backgrounds it is drawn on reaches WCAG AA
(4.5:1), read from the stylesheet itself so a new colour cannot slip in unchecked."""

from __future__ import annotations

import re
from importlib import resources

import pytest

CSS = resources.files("healthcard.web").joinpath("static", "site.css").read_text("utf-8")
ROOT = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{3,6})", CSS.split("}", 1)[0]))
#: (text, background) as the pages use them
PAIRS = [
    ("ink", "bg"),
    ("ink", "panel"),
    ("muted", "bg"),
    ("muted", "panel"),
    ("brand", "bg"),
    ("brand", "panel"),
    ("brand-ink", "brand"),
    ("ok", "ok-bg"),
    ("bad", "bad-bg"),
    ("bad", "panel"),
    ("warn", "warn-bg"),
]
#: the coverage map's shades under the page's ink
SHADES = re.findall(r"\.heat-\d \{ background: (#[0-9a-fA-F]{6}); \}", CSS)


def luminance(colour: str) -> float:
    digits = colour.lstrip("#")
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    channels = [int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_the_formula_knows_black_on_white() -> None:
    assert contrast("#000", "#fff") == pytest.approx(21.0)
    assert contrast("#777", "#fff") < 4.5  # the classic grey that fails


@pytest.mark.parametrize(("text", "background"), PAIRS)
def test_text_colours_reach_aa(text: str, background: str) -> None:
    assert contrast(ROOT[text], ROOT[background]) >= 4.5, (text, background)


def test_the_coverage_map_s_shades_keep_the_ink_readable() -> None:
    assert len(SHADES) == 5
    for shade in SHADES:
        assert contrast(ROOT["ink"], shade) >= 4.5, shade
