"""The lead's side in Chromium at 1280x800 and 390x844 (issue 20): the item page (each rater's choice,
criteria, rationale and time; gold; difficulty) opened from the agreement and calibration views; export
downloads the file, once per click of the page's form, and needs a recorded reason below min_agreement."""

from __future__ import annotations

import json
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from web_helpers import EACH_SIZE, serve, sign_in

from rlhfops.annotate.queue import PairIn, fetch_next, queue_pairs, submit_label
from rlhfops.workspace import annotation_tables as m

RATERS = ("rita", "ravi", "rosa")

pytestmark = pytest.mark.browser


def _label_all(ws, agree: bool) -> None:
    """Four pairs labelled by three raters: all agreeing (A on even items, B on odd) or split."""
    queue_pairs(ws, [PairIn(f"prompt {i}", f"a {i}", f"b {i}") for i in range(4)], "b1", 3)
    for n, rater in enumerate(RATERS):
        for _ in range(4):
            item = fetch_next(ws, rater, gold_rate=0)
            with ws.session() as s:
                swapped = s.scalars(
                    sa.select(m.Assignment.swapped).where(
                        m.Assignment.item_id == item.item_id, m.Assignment.rater == rater
                    )
                ).one()
            want_a = (item.item_id % 2 == 0) if agree else ((item.item_id + n) % 2 == 0)
            shown = "left" if want_a != swapped else "right"
            submit_label(
                ws,
                rater,
                item.item_id,
                shown,
                criteria={"tone": shown},
                rationale=f"{rater} on {item.item_id}",
                seconds=1.234 + n,
            )


def _preference_artifacts(ws):
    return ws.artifacts("preferences")


@contextmanager
def _agreement_page(ws, browser, size: dict, agree: bool):
    """The lead (lena) on /lead/agreement after three raters labelled four pairs; yields (url, page)."""
    _label_all(ws, agree=agree)
    with serve(ws) as url:
        page = sign_in(browser, url, "lena", size, accept_downloads=True)
        page.goto(f"{url}/lead/agreement")
        yield url, page


@EACH_SIZE
def test_item_page_from_agreement_shows_every_rater(sqlite_ws, browser, size) -> None:
    with _agreement_page(sqlite_ws, browser, size, agree=False) as (url, page):
        first = page.locator("#split a").first
        item_id = int(first.get_attribute("href").rsplit("/", 1)[1])
        with page.expect_navigation():
            first.click()
        assert page.locator("h1").inner_text() == f"Item {item_id}"
        cards = page.locator(".label-card")
        assert cards.count() == 3
        with sqlite_ws.session() as s:
            stored = {
                lab.rater: lab for lab in s.scalars(sa.select(m.Label).where(m.Label.item_id == item_id))
            }
        for i in range(3):
            card = cards.nth(i)
            lab = stored[card.get_attribute("data-rater")]
            assert card.locator(".choice").inner_text() == lab.choice
            assert card.locator(".rationale-given").inner_text() == lab.rationale
            assert (
                card.locator(".time").is_visible()
                and card.locator(".time").inner_text() == f"{lab.seconds:.3f} s"
            )
            assert f"tone → {lab.criteria['tone']}" in card.locator(".criteria-given").inner_text()
            b = card.bounding_box()
            assert b["x"] >= 0 and b["x"] + b["width"] <= size["width"]
        assert "of the raters chose the most common answer" in page.locator("#difficulty").inner_text()
        assert "none" in page.locator("#gold").inner_text()
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
        page.goto(f"{url}/lead/agreement")  # the per-rater table links to each rater's labels
        with page.expect_navigation():
            page.click("#raters a[href='/lead/raters/rosa']")
        links = page.eval_on_selector_all("#rater-labels a", "els => els.map(e => e.getAttribute('href'))")
        assert sorted(links) == sorted(f"/lead/items/{i}" for i in range(1, 5))
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


@EACH_SIZE
def test_export_downloads_once_per_form(sqlite_ws, browser, size) -> None:
    with _agreement_page(sqlite_ws, browser, size, agree=True) as (url, page):
        assert page.locator("#export-warning").count() == 0
        with page.expect_download() as dl:
            page.click("#export")
        rows = [json.loads(x) for x in open(dl.value.path()).read().splitlines()]
        assert len(rows) == 4 and all(r["agreement"] == 1.0 for r in rows)
        (written,) = (sqlite_ws.root / "exports").iterdir()
        stamp = written.stat().st_mtime_ns
        with page.expect_download():
            page.click("#export")  # the same form again (a double click): the same file, nothing new
        assert written.stat().st_mtime_ns == stamp  # served again, not exported again
        assert len(_preference_artifacts(sqlite_ws)) == 1
        assert len(list((sqlite_ws.root / "exports").iterdir())) == 1


@EACH_SIZE
def test_export_below_min_agreement_needs_a_recorded_reason(sqlite_ws, browser, size) -> None:
    with _agreement_page(sqlite_ws, browser, size, agree=False) as (url, page):
        assert page.locator("#export-warning").is_visible()
        assert page.locator("#export-reason").get_attribute("required") is not None
        key = page.locator("#export-form input[name=key]").get_attribute("value")
        csrf = page.locator("#export-form input[name=csrf]").get_attribute("value")
        bare = page.request.post(f"{url}/lead/export", form={"csrf": csrf, "key": key, "reason": "too short"})
        assert bare.status == 409 and "min_agreement 0.6; give a reason" in bare.text()
        assert _preference_artifacts(sqlite_ws) == []
        page.fill("#export-reason", "pilot batch, the guidelines changed midway")
        with page.expect_download():
            page.click("#export")
        (art,) = _preference_artifacts(sqlite_ws)
        assert art.meta["below_min_agreement"]["reason"] == "pilot batch, the guidelines changed midway"
        assert art.meta["below_min_agreement"]["by"] == "lena"
