"""The gate pages inside the real web app (mounted by create_app, behind the login, under its
Content-Security-Policy), opened in Chromium: styles and plot images load despite the strict CSP."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from gate_helpers import passing_evals, train_chain


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(gws, tmp_path):
    accounts = pytest.importorskip("rlhfops.annotate.accounts")
    import uvicorn

    from rlhfops.web.app import create_app

    ids = train_chain(gws, tmp_path / "runs")
    passing_evals(gws, tmp_path / "ev", ids["ppo"], baseline=ids["sft"], ci_low=0.5)
    accounts.set_account(gws, "gina", "correct horse battery")
    token = accounts.create_token(gws, "gina")
    app = create_app(gws.root)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}", token, ids
    finally:
        server.should_exit = True
        th.join(timeout=10)


@pytest.mark.browser
def test_gate_pages_in_web_app_under_csp(served):
    from playwright.sync_api import sync_playwright

    url, token, ids = served
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        try:
            anon = browser.new_page()
            assert anon.goto(f"{url}/gate").status == 401  # behind the login
            ctx = browser.new_context(extra_http_headers={"Authorization": f"Bearer {token}"})
            page = ctx.new_page()
            violations: list[str] = []
            page.on(
                "console",
                lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
            )
            resp = page.goto(f"{url}/gate")
            assert resp.status == 200 and "style-src 'self'" in resp.headers["content-security-policy"]
            assert page.locator("section#models td.fail").inner_text() == "fail"
            # the linked stylesheet applied: the fail class is red
            assert page.locator("section#models td.fail").evaluate("e => getComputedStyle(e).color") == (
                "rgb(198, 40, 40)"
            )
            page.locator(f'a[href="/gate/models/{ids["ppo"]}"]').click()
            page.locator("#report-link").click()
            page.wait_for_load_state("load")
            for pid in ("plot-success", "plot-redteam", "plot-winrate"):
                ok, w = page.locator(f"#{pid} img").evaluate("i => [i.complete, i.naturalWidth]")
                assert ok and w > 200, pid
            assert violations == []
        finally:
            browser.close()
