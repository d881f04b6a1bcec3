"""The comparison page in Chromium at 1280x800 and 390x844 (issue 20): long replies scroll in their own
panes while the prompt and the choice bar stay in view; the page never scrolls sideways or when a key
chooses; Markdown is rendered without any element from model output; criteria show their definitions;
progress counts what is left in the batch; a stale tab is told what it chose; time is in milliseconds."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from web_helpers import DESKTOP, EACH_SIZE, serve, sign_in

from rlhfops.annotate.queue import PairIn, queue_pairs
from rlhfops.workspace import annotation_tables as m

LONG_A = "\n\n".join(
    f"Paragraph {i} of the long left reply, with enough words to wrap a line." for i in range(80)
)
LONG_B = "\n\n".join(f"Paragraph {i} of the right reply." for i in range(140))
MD = (
    "Use **bold** here.\n\n```python\nprint('hi')\n```\n\n"
    "<script>window.pwned = 1</script><img src=x onerror=alert(1)>"
)

pytestmark = pytest.mark.browser


def box(page, sel: str) -> dict:
    return page.locator(sel).bounding_box()


def in_view(page, sel: str, size: dict) -> bool:
    b = box(page, sel)
    return b is not None and b["y"] >= 0 and b["y"] + b["height"] <= size["height"] + 0.5


def no_sideways_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def served(ws, items):
    queue_pairs(ws, items, "b1", 1)
    return serve(ws)


@EACH_SIZE
def test_long_pair_prompt_and_choices_stay_in_view_panes_scroll_alone(sqlite_ws, browser, size) -> None:
    with served(sqlite_ws, [PairIn("A long question?", LONG_A, LONG_B)]) as url:
        page = sign_in(browser, url, "rita", size)
        assert page.url.endswith("/rate")
        assert page.evaluate("document.documentElement.scrollHeight") <= size["height"]  # the page fits
        assert no_sideways_scroll(page)
        for sel in ("#prompt", "#choices", "#submit"):
            assert in_view(page, sel, size), sel
        left, right = box(page, "#left"), box(page, "#right") if size is DESKTOP else None
        if size is DESKTOP:  # side by side, same top
            assert left["x"] + left["width"] <= right["x"] and abs(left["y"] - right["y"]) < 2
        else:  # one at a time, with a toggle
            assert not page.locator("#right").is_visible()
            page.click(".pane-toggle button[data-show=right]")
            assert page.locator("#right").is_visible() and not page.locator("#left").is_visible()
            page.click(".pane-toggle button[data-show=left]")
        assert page.evaluate(
            "document.getElementById('left').scrollHeight > document.getElementById('left').clientHeight"
        )
        page.locator("#left").hover()
        page.mouse.wheel(0, 1500)
        for _ in range(50):  # the wheel scrolls the pane under the pointer (CSP forbids wait_for_function)
            if page.evaluate("() => document.getElementById('left').scrollTop") > 0:
                break
            page.wait_for_timeout(50)
        before = page.evaluate("[window.scrollY, document.getElementById('left').scrollTop]")
        assert before[0] == 0 and page.evaluate("document.getElementById('right').scrollTop") == 0
        page.locator("#left").click()
        page.keyboard.press("2")  # choosing by key moves nothing
        assert page.locator('input[name="choice"]:checked').get_attribute("value") == "right"
        after = page.evaluate("[window.scrollY, document.getElementById('left').scrollTop]")
        assert after == before
        assert in_view(page, "#prompt", size) and in_view(page, "#choices", size)


@EACH_SIZE
def test_markdown_rendered_no_element_from_model_output(sqlite_ws, browser, size) -> None:
    with served(sqlite_ws, [PairIn("Format *this*", MD, MD)]) as url:
        page = sign_in(browser, url, "rita", size)
        assert page.locator("#left strong").inner_text() == "bold"
        assert page.locator("#left pre code").inner_text().strip() == "print('hi')"
        assert page.locator("#prompt em").inner_text() == "this"
        assert "<script>window.pwned = 1</script>" in page.locator("#left").inner_text()
        assert page.locator("#left script, #left img, #right script, #right img").count() == 0
        assert page.evaluate("typeof window.pwned") == "undefined"
        assert no_sideways_scroll(page)


@EACH_SIZE
def test_criteria_definitions_touch_targets_and_batch_progress(sqlite_ws, browser, size) -> None:
    items = [PairIn(f"p{i}", f"a{i}", f"b{i}") for i in range(3)]
    with served(sqlite_ws, items) as url:
        queue_pairs(sqlite_ws, [PairIn("other batch", "x", "y")], "b2", 1)
        page = sign_in(browser, url, "rita", size)
        assert page.locator("#progress").inner_text() == "0 done, 3 left in this batch"
        crit = page.locator("#criteria .criterion")
        assert crit.count() == 2
        for i in range(2):  # the definition is on the page, not in a tooltip
            assert crit.nth(i).locator(".definition").is_visible()
            assert len(crit.nth(i).locator(".definition").inner_text()) > 5
        for sel in ("#choices label", "#criteria label", "#submit", "header nav a", "header nav button"):
            loc = page.locator(sel)
            for i in range(loc.count()):
                if loc.nth(i).is_visible():
                    b = loc.nth(i).bounding_box()
                    assert b["height"] >= 44, (sel, i, b)
        page.locator("#criteria .criterion").first.locator("input[value=right]").check()
        page.keyboard.press("1")
        with page.expect_navigation():
            page.click("#submit")
        assert page.locator("#progress").inner_text() == "1 done, 2 left in this batch"
        with sqlite_ws.session() as s:
            label = s.scalars(sa.select(m.Label)).one()
        name = next(iter(label.criteria))
        assert label.choice == ("B" if label.swapped else "A")
        assert label.criteria[name] == ("A" if label.swapped else "B")


@EACH_SIZE
def test_stale_tab_is_told_what_it_chose_and_time_is_in_ms(sqlite_ws, browser, size) -> None:
    with served(sqlite_ws, [PairIn("p", "a", "b"), PairIn("q", "c", "d")]) as url:
        first = sign_in(browser, url, "rita", size)
        ctx_pages = first.context
        second = ctx_pages.new_page()
        second.goto(f"{url}/rate")
        item = first.locator("#label-form").get_attribute("data-item")
        assert second.locator("#label-form").get_attribute("data-item") == item
        first.wait_for_timeout(300)
        first.keyboard.press("1")
        with first.expect_navigation():
            first.keyboard.press("Enter")
        assert first.locator("#stale").count() == 0
        second.keyboard.press("2")
        with second.expect_navigation():
            second.keyboard.press("Enter")
        assert second.locator("#stale").is_visible()
        assert second.locator("#stale-choice").inner_text() == "left"
        assert item in second.locator("#stale").inner_text()
        with sqlite_ws.session() as s:
            label = s.scalars(sa.select(m.Label).where(m.Label.item_id == int(item))).one()
        assert label.choice == ("B" if label.swapped else "A")  # the first tab's choice is kept
        assert 0.3 <= label.seconds < 30 and label.seconds != round(label.seconds)  # milliseconds
