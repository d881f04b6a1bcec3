"""Mistakes in Chromium at 1280x800 and 390x844 (issue 20): an expired session keeps the draft and brings
the rater back to the same pair; a lost CSRF token gets a plain-language page and keeps the draft; the
last label can be undone; a recent label can be changed (recorded, not overwritten)."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from web_helpers import EACH_SIZE, pairs, serve, sign_in

from rlhfops.annotate.queue import queue_pairs
from rlhfops.workspace import annotation_tables as m

pytestmark = pytest.mark.browser


def _draft(page) -> None:
    page.keyboard.press("2")
    page.locator("#criteria .criterion").first.locator("input[value=left]").check()
    page.fill("textarea[name=rationale]", "the right one cites the policy")


def _draft_is_back(page) -> None:
    assert page.locator('input[name="choice"]:checked').get_attribute("value") == "right"
    assert (
        page.locator("#criteria .criterion").first.locator("input:checked").get_attribute("value") == "left"
    )
    assert page.locator("textarea[name=rationale]").input_value() == "the right one cites the policy"


@contextmanager
def _one_labelled(ws, browser, size: dict, n_pairs: int):
    """rita has labelled the first of ``n_pairs`` pairs "left" by keyboard; yields (page, its item id)."""
    queue_pairs(ws, pairs(n_pairs), "b1", 1)
    with serve(ws) as url:
        page = sign_in(browser, url, "rita", size)
        item = page.locator("#label-form").get_attribute("data-item")
        page.keyboard.press("1")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        yield page, item


def _labels(ws):
    with ws.session() as s:
        return s.execute(sa.select(m.Label.item_id, m.Label.choice, m.Label.swapped, m.Label.rationale)).all()


@EACH_SIZE
def test_expired_session_keeps_the_draft_and_the_pair(sqlite_ws, browser, size) -> None:
    from rlhfops.web.sessions import revoke_sessions

    queue_pairs(sqlite_ws, pairs(3), "b1", 1)
    with serve(sqlite_ws) as url:
        page = sign_in(browser, url, "rita", size)
        item = page.locator("#label-form").get_attribute("data-item")
        _draft(page)
        revoke_sessions(sqlite_ws, "rita")  # the session ends while the rater is writing
        with page.expect_navigation():
            page.click("#submit")
        assert page.locator("h1").inner_text() == "Please sign in again"
        assert "kept in this browser" in page.locator("#plain").inner_text()
        assert _labels(sqlite_ws) == []
        sign_in(page, url, "rita")
        assert page.url.endswith("/rate")
        assert page.locator("#label-form").get_attribute("data-item") == item  # the same pair
        _draft_is_back(page)
        with page.expect_navigation():
            page.click("#submit")
        (row,) = _labels(sqlite_ws)
        assert row.item_id == int(item) and row.rationale == "the right one cites the policy"
        assert row.choice == ("A" if row.swapped else "B")


@EACH_SIZE
def test_lost_csrf_token_gets_a_plain_page_and_keeps_the_draft(sqlite_ws, browser, size) -> None:
    queue_pairs(sqlite_ws, pairs(2), "b1", 1)
    with serve(sqlite_ws) as url:
        page = sign_in(browser, url, "rita", size)
        _draft(page)
        page.locator("input[name=csrf]").last.evaluate("e => { e.value = 'stale'; }")
        with page.expect_navigation():
            page.click("#submit")
        assert page.locator("h1").inner_text() == "This page was open too long"
        assert "Nothing was saved" in page.locator("#plain").inner_text()
        assert _labels(sqlite_ws) == []
        with page.expect_navigation():
            page.click("main a[href='/rate']")
        _draft_is_back(page)


@EACH_SIZE
def test_undo_brings_the_pair_back_and_records_the_undo(sqlite_ws, browser, size) -> None:
    with _one_labelled(sqlite_ws, browser, size, 3) as (page, item):
        assert page.locator("#label-form").get_attribute("data-item") != item
        assert f"item {item}" in page.locator("#undo-form").inner_text()
        b = page.locator("#undo").bounding_box()
        assert b["height"] >= 44 and b["y"] + b["height"] <= size["height"]
        with page.expect_navigation():
            page.click("#undo")
        assert page.locator("#label-form").get_attribute("data-item") == item
        assert _labels(sqlite_ws) == []
        with sqlite_ws.session() as s:
            change = s.scalars(sa.select(m.LabelChange)).one()
        assert (change.kind, change.item_id, change.rater) == ("undo", int(item), "rita")
        page.keyboard.press("2")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        (row,) = _labels(sqlite_ws)
        assert row.item_id == int(item) and row.choice == ("A" if row.swapped else "B")


@EACH_SIZE
def test_recent_labels_change_is_recorded(sqlite_ws, browser, size) -> None:
    with _one_labelled(sqlite_ws, browser, size, 2) as (page, item):
        page.click("header nav a[href='/rate/recent']")
        entry = page.locator(f".recent-label[data-item='{item}']")
        assert entry.locator(".chosen").inner_text() == "left"
        entry.locator("input[name=choice][value=right]").check()
        entry.locator("textarea[name=rationale]").fill("second look")
        with page.expect_navigation():
            entry.locator("button:has-text('Save change')").click()
        assert page.locator("#changed").is_visible()
        entry = page.locator(f".recent-label[data-item='{item}']")
        assert entry.locator(".chosen").inner_text() == "right"
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
        (row,) = _labels(sqlite_ws)
        assert row.choice == ("A" if row.swapped else "B") and row.rationale == "second look"
        with sqlite_ws.session() as s:
            change = s.scalars(sa.select(m.LabelChange)).one()
        assert change.kind == "change" and change.old_choice == ("B" if row.swapped else "A")
