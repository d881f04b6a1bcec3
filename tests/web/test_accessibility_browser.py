"""Accessibility (issue 20): axe-core, run in Debian's Chromium on every page of the web app at 1280x800 and
390x844, finds no violation of impact "serious" or "critical".

axe-core is the npm package, pinned in the Makefile (AXE_VERSION) and installed by `make axe` into the
gitignored .cache/npm/; `.ci/run` installs it and requires it (RLHFOPS_REQUIRE_AXE=1). Without it the test
skips with one line saying how to get it. The pages forbid inline scripts (CSP), so axe is injected into a
browser context that bypasses the CSP: this test's contexts only."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from gate_helpers import passing_evals, shipped_categories, train_chain
from web_helpers import EACH_SIZE, pages_workspace, serve, sign_in

from rlhfops.annotate.queue import PairIn, queue_pairs
from rlhfops.workspace import annotation_tables as m

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / ".cache" / "npm" / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")
RUN_AXE = """async (blocking) => {
  const r = await axe.run(document, {resultTypes: ['violations']});
  return r.violations.filter(v => blocking.includes(v.impact)).map(v =>
    `${v.impact} ${v.id} (${v.help}): ` + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | '));
}"""
LONG = "\n\n".join(f"Paragraph {i}: **step** {i}, then `check` the light." for i in range(60))

pytestmark = pytest.mark.browser


def axe_version() -> str:
    """The pinned axe-core version (the Makefile's AXE_VERSION)."""
    m_ = re.search(r"^AXE_VERSION\s*:?=\s*(\S+)", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M)
    return m_.group(1) if m_ else "?"


@pytest.fixture(scope="module")
def axe_js() -> Path:
    if not AXE.is_file():
        how = f"run `make axe` (npm install --prefix .cache/npm axe-core@{axe_version()})"
        if os.environ.get("RLHFOPS_REQUIRE_AXE") == "1":
            pytest.fail(f"accessibility test required (RLHFOPS_REQUIRE_AXE=1) but axe-core is missing: {how}")
        pytest.skip(f"accessibility test skipped: axe-core is not installed; {how}")
    return AXE


def violations(page, axe_js: Path) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now, one line each."""
    page.add_script_tag(path=str(axe_js))
    return page.evaluate(RUN_AXE, list(BLOCKING))


def _workspace(ws) -> dict:
    """pages_workspace (gwen, three pairs labelled by ravi and rosa, a demonstration prompt), then a short and
    a long pair for rita and a model with evaluations for the gate pages."""
    demo = pages_workspace(ws, "why", "Please answer the customer.", choices=("left", "right"))
    short, long = PairIn("Where is my order?", "It ships today.", "Wait."), PairIn("Reset?", LONG, LONG[:900])
    queue_pairs(ws, [short, long], "b1", 1)
    ids = train_chain(ws, ws.root.parent / "runs")
    passing_evals(ws, ws.root.parent / "ev", ids["ppo"], baseline=ids["sft"], ci_low=0.5)
    with ws.session() as s:
        item = s.scalars(sa.select(m.Label.item_id)).first()
    return {"demo": demo, "item": item, "model": ids["ppo"]}


@EACH_SIZE
def test_no_serious_or_critical_violation_on_any_page(sqlite_ws, browser, axe_js, size) -> None:
    ids = _workspace(sqlite_ws)
    found: dict[str, list[str]] = {}
    checked: list[str] = []

    def check(page, name: str, path: str | None = None, status: int = 200) -> None:
        if path is not None:
            resp = page.goto(f"{url}{path}")
            assert resp.status == status, (name, path, resp.status)
        checked.append(name)
        if v := violations(page, axe_js):
            found[name] = v

    with serve(sqlite_ws) as url:
        anon = browser.new_context(viewport=size, bypass_csp=True).new_page()
        check(anon, "login", "/login")

        rita = sign_in(browser, url, "rita", size, bypass_csp=True)
        assert "Where is my order?" in rita.locator("#prompt").inner_text()
        check(rita, "rate, short pair")
        rita.keyboard.press("1")
        with rita.expect_navigation():
            rita.keyboard.press("Enter")
        assert "Reset?" in rita.locator("#prompt").inner_text()
        check(rita, "rate, long pair (with the undo bar)")
        check(rita, "recent labels", "/rate/recent")
        check(rita, "guidelines", "/guidelines")
        check(rita, "error page: not allowed", "/admin/accounts", status=403)
        rita.goto(f"{url}/rate")
        rita.keyboard.press("2")
        rita.locator("input[name=csrf]").last.evaluate("e => { e.value = 'stale'; }")
        with rita.expect_navigation():
            rita.click("#submit")
        assert rita.locator("h1").inner_text() == "This page was open too long"
        check(rita, "error page: stale form")
        from rlhfops.web.sessions import revoke_sessions

        rita.goto(f"{url}/rate")
        rita.keyboard.press("2")
        revoke_sessions(sqlite_ws, "rita")
        with rita.expect_navigation():
            rita.click("#submit")
        assert rita.locator("h1").inner_text() == "Please sign in again"
        check(rita, "error page: session ended")

        dora = sign_in(browser, url, "dora", size, bypass_csp=True)
        check(dora, "demos", "/demos")
        check(dora, "demo", f"/demos/{ids['demo']}")

        lena = sign_in(browser, url, "lena", size, bypass_csp=True)
        check(lena, "lead agreement", "/lead/agreement")
        check(lena, "lead calibration", "/lead/calibration")
        check(lena, "lead item", f"/lead/items/{ids['item']}")
        check(lena, "lead rater", "/lead/raters/ravi")
        check(lena, "error page: no such item", "/lead/items/424242", status=400)
        check(lena, "error page: not found", "/no-such-page", status=404)

        root = sign_in(browser, url, "root", size, bypass_csp=True)
        check(root, "admin accounts", "/admin/accounts")
        check(root, "monitor", "/monitor")

        gwen = sign_in(browser, url, "gwen", size, bypass_csp=True)
        check(gwen, "home (the pages gwen's roles allow)", "/")
        check(gwen, "gate index", "/gate")
        check(gwen, "gate log", "/gate/log")
        check(gwen, "gate model", f"/gate/models/{ids['model']}")
        model = f"/gate/models/{ids['model']}"
        check(gwen, "gate red-team failures", f"{model}/failures/{shipped_categories()[0]}")
        check(gwen, "gate report", f"/gate/models/{ids['model']}/report")

    assert len(checked) == 24
    assert found == {}, "\n".join(f"{name}: {v}" for name, vs in found.items() for v in vs)
