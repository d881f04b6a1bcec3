"""Every page at 1280x800 and 390x844 in Chromium (issue 20): a viewport meta, no sideways scroll, touch
targets of at least 44 px, and navigation by role (each person sees the links their roles allow)."""

from __future__ import annotations

import pytest
from web_helpers import EACH_SIZE, pages_workspace, serve, sign_in

# who -> (the header's links, the pages they open)
NAV = {
    "rita": (["/rate", "/rate/recent", "/guidelines"], ["/rate", "/rate/recent", "/guidelines"]),
    "lena": (
        ["/guidelines", "/lead/agreement", "/lead/calibration", "/monitor"],
        ["/lead/agreement", "/lead/calibration", "/monitor"],
    ),
    "dora": (["/guidelines", "/demos"], ["/demos", "/demos/{demo}"]),
    "gwen": (["/guidelines", "/gate", "/monitor"], ["/", "/gate", "/gate/log", "/monitor"]),
    "root": (
        [
            "/guidelines",
            "/demos",
            "/lead/agreement",
            "/lead/calibration",
            "/gate",
            "/monitor",
            "/admin/accounts",
            "/docs",
        ],
        ["/admin/accounts", "/"],
    ),
}
TARGETS = (
    "header a, header button, main button, main select, main input:not([type=hidden]):not([type=radio]), "
    "main td a, main li a"
)
VISIBLE_HEIGHTS = (
    "els => els.filter(e => e.offsetParent !== null)"
    ".map(e => [e.outerHTML.slice(0, 80), e.getBoundingClientRect().height])"
)
LONG_WORD = "x" * 300  # one unbreakable token: must wrap, not widen the page

pytestmark = pytest.mark.browser


@EACH_SIZE
@pytest.mark.parametrize("who", sorted(NAV))
def test_every_page_fits_and_nav_follows_roles(sqlite_ws, browser, size, who) -> None:
    demo = pages_workspace(sqlite_ws, LONG_WORD, f"Please answer {LONG_WORD}")
    links, paths = NAV[who]
    with serve(sqlite_ws) as url:
        page = sign_in(browser, url, who, size)
        shown = page.eval_on_selector_all("header nav a", "els => els.map(e => e.getAttribute('href'))")
        assert sorted(shown) == sorted(links)
        for path in paths:
            path = path.format(demo=demo)
            resp = page.goto(f"{url}{path}")
            assert resp.status == 200, path
            assert (
                page.locator('meta[name="viewport"]')
                .get_attribute("content")
                .startswith("width=device-width")
            )
            width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
            assert width[0] <= width[1], (path, width)
            for b in page.eval_on_selector_all(TARGETS, VISIBLE_HEIGHTS):
                assert b[1] >= 44, (path, b)
        if who == "gwen":  # the home page of someone who neither rates nor leads lists their pages
            page.goto(f"{url}/")
            hrefs = page.eval_on_selector_all("#role-links a", "els => els.map(e => e.getAttribute('href'))")
            assert "/gate" in hrefs and "/monitor" in hrefs and "/rate" not in hrefs
