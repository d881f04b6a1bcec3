"""Shared by the demo tests: the report check both the tiny-model and the bundled-model demo use."""

from __future__ import annotations

import pytest

from rlhfops.demo.report import SECTIONS


@pytest.fixture
def check_report():
    """``check_report(page, path)``: every section and every plot of a demo report rendered in the browser."""
    return _check_report


def _check_report(page, path) -> None:
    page.goto(path.as_uri())
    for sec in SECTIONS:
        assert page.locator(f"section#{sec}").count() == 1, sec
    for plot in ("criteria", "curves", "winrates", "agreement", "redteam", "drift"):
        img = page.locator(f"img#plot-demo-{plot}")
        assert img.count() == 1
        assert img.evaluate("i => i.complete && i.naturalWidth > 0"), plot
    assert page.locator("section#demo-triggers td", has_text="input_drift").count() >= 1
    # wide tables scroll in their own box: the page itself never scrolls sideways, on a desktop or a phone
    for width, height in ((1280, 800), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        assert page.evaluate("document.documentElement.scrollWidth") <= width, (width, height)
