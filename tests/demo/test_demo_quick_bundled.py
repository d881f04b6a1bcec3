"""`rlhfops demo --quick` on the real bundled model, as `make demo-quick` runs it (issue 8: "the quick demo
runs in CI and its report opens in Chromium with every section and plot present").

Slow (a few minutes on 2 cores). No timing is asserted here: the quick mode's time is a benchmark
(docs/benchmarks.md), and `summary.json` records the seconds and CPU seconds of every step.
"""

from __future__ import annotations

import json

import pytest
import yaml

from rlhfops.cli.main import main
from rlhfops.demo.plays import STEPS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("quick") / "rlhfops-demo"
    main(["demo", "--quick", "--dir", str(out)])
    return out


def test_quick_demo_runs_every_play_on_the_bundled_model(quick):
    s = json.loads((quick / "summary.json").read_text())
    assert s["settings"]["quick"] is True and s["settings"]["model"] == "smollm2-135m-instruct"
    assert [t["step"] for t in s["timings"]] == STEPS
    ran = [t for t in s["timings"] if not t["step"].startswith("round 2")]  # --quick skips round two
    assert all(t["cpu_seconds"] > 0 for t in ran)
    assert all(t["cpu_seconds"] < 0.5 for t in s["timings"] if t["step"].startswith("round 2"))
    rows = {r["model"]: r for r in s["criteria"]}
    betas = s["settings"]["kl_values"]
    assert betas == [0.05]  # --quick: one PPO run
    assert set(rows) == {"base", "sft", "dpo"} | {f"ppo-beta{b:g}" for b in betas}
    # the main criterion counts the held-out prompts where the shop is at fault (their `criteria`)
    assert all(0 < r["n"] <= s["settings"]["heldout"] for r in rows.values())
    # issue 19's quick target: the chosen candidate (rlhfops.gate.choose: the gate's choice, which round
    # two would continue from) at least 25 points above the base on the main criterion (policy judge)
    change = s["behaviour_change"]
    assert change["best"] == s["gate"]["candidate"] and change["target_points"] == 25.0
    assert change["rate"] == rows[change["best"]]["apology_remedy_rate"]
    assert change["base"] == rows["base"]["apology_remedy_rate"]
    assert change["meets_target"] and change["points"] >= 25 - 1e-9, (change, rows)
    # the sweep evaluated each run on the held-out prompts, not on its training prompts
    for row in s["kl_sweep"]["rows"]:
        run = quick / "runs" / "ppo-sweep" / f"beta-{row['value']:g}"
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        assert cfg["eval_prompts"].endswith("heldout_prompts.jsonl")
    assert s["kl_sweep"]["recommended"] in (*betas, None) and s["kl_sweep"]["reason"]
    assert not s["rounds"] and s["settings"]["round_two"] is False  # --quick stops after round one
    assert s["gate"]["decision"] in ("approve", "reject") and s["gate"]["signed_by"] == "demo-gina"
    assert (s["gate"]["decision"] == "approve") == (not s["gate"]["failed"])
    assert s["monitoring"]["simulated"] is True and s["monitoring"]["drift_report"]
    assert len(s["examples"]) == 3 and any(e["before"] != e["after"] for e in s["examples"])


@pytest.mark.browser
def test_quick_demo_report_opens_in_chromium(quick, check_report):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium")
        try:
            check_report(browser.new_page(), quick / "report.html")
        finally:
            browser.close()
