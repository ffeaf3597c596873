"""The label check every browser test's screenshot runs (conftest.UNLABELLED) does see a form
control that no label names."""

from __future__ import annotations

from playwright.sync_api import Page

from .conftest import UNLABELLED


def test_the_label_check_finds_an_unlabelled_control(browser_page: Page) -> None:
    browser_page.set_content(
        '<label for="a">A</label><input id="a"><input id="b" type="text">'
        '<label>C <select></select></label><input type="hidden"><span id="n">N</span>'
        '<input aria-labelledby="n">'
    )
    found = browser_page.evaluate(UNLABELLED)
    assert len(found) == 1 and found[0].startswith('<input id="b"')
