"""Mistakes in Chromium at 1280x800 and 390x844 (issue 20): an expired session keeps the draft and brings
the rater back to the same pair; a lost CSRF token gets a plain-language page and keeps the draft; the
last label can be undone; a recent label can be changed (recorded, not overwritten)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from web_helpers import PASSWORD, ServerThread, pairs

from rlhfops.annotate.queue import queue_pairs
from rlhfops.workspace import annotation_tables as m

CHROMIUM = "/usr/bin/chromium"
SIZES = pytest.mark.parametrize(
    "size", [{"width": 1280, "height": 800}, {"width": 390, "height": 844}], ids=["desktop", "phone"]
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def sign_in(page, url: str, name: str = "rita") -> None:
    page.goto(f"{url}/login")
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    with page.expect_navigation():
        page.press("#password", "Enter")


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


def _labels(ws):
    with ws.session() as s:
        return s.execute(sa.select(m.Label.item_id, m.Label.choice, m.Label.swapped, m.Label.rationale)).all()


@SIZES
def test_expired_session_keeps_the_draft_and_the_pair(sqlite_ws, browser, size) -> None:
    from rlhfops.web.app import create_app
    from rlhfops.web.sessions import revoke_sessions

    queue_pairs(sqlite_ws, pairs(3), "b1", 1)
    with ServerThread(create_app(sqlite_ws.root)) as url:
        page = browser.new_context(viewport=size).new_page()
        sign_in(page, url)
        item = page.locator("#label-form").get_attribute("data-item")
        _draft(page)
        revoke_sessions(sqlite_ws, "rita")  # the session ends while the rater is writing
        with page.expect_navigation():
            page.click("#submit")
        assert page.locator("h1").inner_text() == "Please sign in again"
        assert "kept in this browser" in page.locator("#plain").inner_text()
        assert _labels(sqlite_ws) == []
        sign_in(page, url)
        assert page.url.endswith("/rate")
        assert page.locator("#label-form").get_attribute("data-item") == item  # the same pair
        _draft_is_back(page)
        with page.expect_navigation():
            page.click("#submit")
        (row,) = _labels(sqlite_ws)
        assert row.item_id == int(item) and row.rationale == "the right one cites the policy"
        assert row.choice == ("A" if row.swapped else "B")


@SIZES
def test_lost_csrf_token_gets_a_plain_page_and_keeps_the_draft(sqlite_ws, browser, size) -> None:
    from rlhfops.web.app import create_app

    queue_pairs(sqlite_ws, pairs(2), "b1", 1)
    with ServerThread(create_app(sqlite_ws.root)) as url:
        page = browser.new_context(viewport=size).new_page()
        sign_in(page, url)
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


@SIZES
def test_undo_brings_the_pair_back_and_records_the_undo(sqlite_ws, browser, size) -> None:
    from rlhfops.web.app import create_app

    queue_pairs(sqlite_ws, pairs(3), "b1", 1)
    with ServerThread(create_app(sqlite_ws.root)) as url:
        page = browser.new_context(viewport=size).new_page()
        sign_in(page, url)
        item = page.locator("#label-form").get_attribute("data-item")
        page.keyboard.press("1")
        with page.expect_navigation():
            page.keyboard.press("Enter")
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


@SIZES
def test_recent_labels_change_is_recorded(sqlite_ws, browser, size) -> None:
    from rlhfops.web.app import create_app

    queue_pairs(sqlite_ws, pairs(2), "b1", 1)
    with ServerThread(create_app(sqlite_ws.root)) as url:
        page = browser.new_context(viewport=size).new_page()
        sign_in(page, url)
        item = page.locator("#label-form").get_attribute("data-item")
        page.keyboard.press("1")
        with page.expect_navigation():
            page.keyboard.press("Enter")
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
