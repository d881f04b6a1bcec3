"""A real browser (Debian's Chromium through Playwright): a rater signs in, labels pairs with the
keyboard, reloads and keeps the progress; model output with <script> shows as text; a lead opens the
agreement page."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from web_helpers import pairs, serve, sign_in

from rlhfops.annotate.queue import PairIn, queue_pairs
from rlhfops.workspace import annotation_tables as m

EVIL = "<script>window.pwned = 1</script><b>bold?</b>"

pytestmark = pytest.mark.browser


def test_rater_labels_with_keyboard_progress_survives_reload(sqlite_ws, browser) -> None:
    ws = sqlite_ws
    queue_pairs(ws, pairs(2) + [PairIn("Show me <i>markup</i>", EVIL, "plain reply")], "b1", 1)
    with serve(ws) as url:
        page = sign_in(browser, url, "rita")
        assert page.url.endswith("/rate")
        saw_evil = False
        for n in range(2):
            assert page.locator("#labelled").inner_text() == str(n)
            left, right = page.locator("#left").inner_text(), page.locator("#right").inner_text()
            if EVIL in (left, right):
                saw_evil = True
                assert page.locator("#prompt").inner_text() == "Show me <i>markup</i>"
            page.keyboard.press("1" if n == 0 else "2")
            assert page.locator('input[name="choice"]:checked').get_attribute("value") == ("left", "right")[n]
            with page.expect_navigation():
                page.keyboard.press("Enter")
        assert page.locator("#labelled").inner_text() == "2"
        page.reload()
        assert page.locator("#labelled").inner_text() == "2"
        if not saw_evil:  # the third pair is the one with markup in a response
            assert EVIL in (page.locator("#left").inner_text(), page.locator("#right").inner_text())
        assert page.evaluate("typeof window.pwned") == "undefined"
        assert page.locator("#left b, #right b").count() == 0  # no element was made from model output
        page.keyboard.press("3")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.locator("#done").is_visible() and page.locator("#labelled").inner_text() == "3"
        with ws.session() as s:
            rows = s.execute(sa.select(m.Label.choice, m.Label.swapped, m.Label.seconds)).all()
        assert len(rows) == 3 and all(sec is not None and sec >= 0 for _c, _s, sec in rows)
        assert sorted(c for c, _s, _sec in rows)[-1] == "tie"

        lead = sign_in(browser, url, "lena")
        lead.goto(f"{url}/lead/agreement")
        assert lead.locator("h1").inner_text() == "Agreement"
        assert "Overall agreement" in lead.locator("#overall").inner_text()
        assert lead.goto(f"{url}/admin/accounts").status == 403
