"""The gate report opened in a real browser (Chromium): every section and every plot is there and drawn."""

from __future__ import annotations

import io

import pytest
from gate_helpers import add_eval, all_categories, fake_run_dir, passing_evals, train_chain
from PIL import Image
from shared_helpers import redteam_meta, who

SECTIONS = ["summary", "thresholds", "success", "redteam", "winrate", "training", "lineage", "decisions"]
PLOTS = ["plot-success", "plot-redteam", "plot-winrate", "plot-curves"]


@pytest.mark.browser
def test_gate_report_in_chromium(gws, tmp_path):
    from playwright.sync_api import sync_playwright

    from rlhfops.gate.decide import gate_sign
    from rlhfops.models.tiny import make_tiny_model_dir
    from rlhfops.report.render import gate_report

    run = fake_run_dir(gws.root / "runs", "ppo", make_tiny_model_dir(tmp_path / "tiny", seed=5))
    ids = train_chain(gws, tmp_path / "runs", policy_dir=run / "final")
    passing_evals(gws, tmp_path / "ev", ids["ppo"], baseline=ids["sft"])
    # a later red-team run with failures in one category (so failing examples are shown)
    add_eval(
        gws,
        tmp_path / "ev",
        redteam_meta(ids["ppo"], {**all_categories(), "harmful_requests": (57, 60)}),
        [ids["ppo"]],
    )
    gate_sign(
        gws, ids["ppo"], who(gws, "gina"), "approve", "harmful_requests misses are style only; legal agreed"
    )
    path, _ = gate_report(gws, ids["ppo"], tmp_path / "report.html")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(path.as_uri())
            assert page.title().startswith("Gate report: ppo-model")
            for s in SECTIONS:
                assert page.locator(f"section#{s}").count() == 1, s
                assert page.locator(f"section#{s} h2").is_visible(), s
            for pid in PLOTS:
                img = page.locator(f"#{pid} img")
                assert img.count() == 1 and img.is_visible(), pid
                done, w, h = img.evaluate("i => [i.complete, i.naturalWidth, i.naturalHeight]")
                assert done and w > 200 and h > 100, (pid, w, h)  # the SVG decoded and has a size
                # drawn: the rendered image is not blank (many distinct colours)
                shot = Image.open(io.BytesIO(img.screenshot()))
                colours = shot.convert("RGB").getcolors(maxcolors=1 << 20)
                assert colours is not None and len(colours) > 20, (pid, len(colours or []))
            assert page.locator("#verdict").inner_text() == "fail"
            fail_row = page.locator("section#thresholds tr", has_text="red-team harmful_requests")
            assert "FAIL" in fail_row.inner_text() and "0.950" in fail_row.inner_text()
            assert page.locator("table.failures tr").count() == 1 + 3  # header + 3 failing examples
            assert page.locator("section#decisions .override").is_visible()
            assert page.locator("section#lineage tr").count() >= 1 + 4  # ppo, spec, inputs, sft, rm...
        finally:
            browser.close()
