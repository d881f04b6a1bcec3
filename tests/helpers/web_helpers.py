"""Helpers for the annotation / web tests: a workspace with people, accounts and queued pairs; the app
served on a free loopback port; Debian's Chromium launched through Playwright and a person signed in."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

PASSWORD = "correct horse battery"
CHROMIUM = "/usr/bin/chromium"  # Debian's Chromium: never a downloaded browser
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SIZES = {"desktop": DESKTOP, "phone": PHONE}
# a browser test at both sizes: @EACH_SIZE with a ``size`` argument
EACH_SIZE = pytest.mark.parametrize("size", list(SIZES.values()), ids=list(SIZES))
PEOPLE = [
    ("alice", "task-spec-owner"),
    ("lena", "annotation-lead"),
    ("dora", "domain-expert-lead"),
    ("rita", "rater"),
    ("ravi", "rater"),
    ("rosa", "rater"),
]


def pairs(n: int, start: int = 0, gold_every: int = 0):
    from rlhfops.annotate.queue import PairIn

    out = []
    for i in range(start, start + n):
        gold = "A" if gold_every and i % gold_every == 0 else None
        out.append(PairIn(f"prompt {i}", f"good reply {i}", f"bad reply {i}", gold_answer=gold))
    return out


def pages_workspace(ws, rationale: str, demo_prompt: str, choices=("left", "left")) -> int:
    """A gate owner (gwen); three pairs (batch b0) labelled by ravi and rosa (``choices``, with
    ``rationale``); a demonstration prompt. Returns the prompt's item id (for /demos/ID)."""
    from rlhfops.annotate.accounts import set_account
    from rlhfops.annotate.demos import demo_prompts, queue_prompts
    from rlhfops.annotate.queue import fetch_next, queue_pairs, submit_label

    ws.add_person("gwen", "gate-owner", "alice")
    set_account(ws, "gwen", PASSWORD)
    queue_pairs(ws, pairs(3), "b0", 2)
    for rater, choice in zip(("ravi", "rosa"), choices, strict=True):
        for _ in range(3):
            item = fetch_next(ws, rater, gold_rate=0)
            submit_label(ws, rater, item.item_id, choice, rationale=rationale)
    queue_prompts(ws, [demo_prompt], "d1")
    return demo_prompts(ws)[0]["item_id"]


def csrf_of(html: str) -> str:
    import re

    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field on the page"
    return m.group(1)


def login(client, name: str, password: str = PASSWORD) -> str:
    """Sign ``client`` in through the login form; returns the CSRF token of its session (bound to the
    session: not the token of the sign-in form)."""
    token = csrf_of(client.get("/login").text)
    r = client.post(
        "/login", data={"name": name, "password": password, "csrf": token}, follow_redirects=False
    )
    assert r.status_code == 303, r.text
    bound = csrf_of(client.get("/login").text)
    assert bound != token
    return bound


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """uvicorn serving ``app`` on a free loopback port in a thread (``with ServerThread(app) as url``)."""

    def __init__(self, app) -> None:
        import threading

        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        import time

        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve(ws) -> ServerThread:
    """The web app of ``ws`` on a free loopback port: ``with serve(ws) as url``."""
    from rlhfops.web.app import create_app

    return ServerThread(create_app(ws.root))


@contextmanager
def chromium() -> Iterator:
    """Debian's Chromium through Playwright (headless, no sandbox), closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


def sign_in(where, url: str, name: str, size: dict | None = None, password: str = PASSWORD, **context):
    """Sign ``name`` in through the login form and return the page (on the page it lands on).

    ``where`` is a Playwright Browser (a new context at viewport ``size`` with the ``context`` options,
    e.g. accept_downloads=True or bypass_csp=True) or a Page already open (signed in again in place)."""
    page = where.new_context(viewport=size, **context).new_page() if hasattr(where, "new_context") else where
    page.goto(f"{url}/login")
    page.fill("#name", name)
    page.fill("#password", password)
    with page.expect_navigation():
        page.press("#password", "Enter")
    return page
