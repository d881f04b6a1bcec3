"""Report data: training curves from metrics.jsonl (PPO and DPO records), finding a model's run, and a
report built by hand (as the demo does) without a workspace."""

from __future__ import annotations

import json

from gate_helpers import train_chain
from shared_helpers import fake_model

from rlhfops.report.data import ReportData, curves_from_metrics, find_metrics, read_metrics
from rlhfops.report.render import render_html


def test_gate_curves_from_ppo_and_dpo_records(tmp_path):
    ppo = [
        {"step": 0, "eval_reference": {}},
        {"step": 1, "kl": 0.5, "score": 1.0},
        {"step": 2, "kl": 0.7, "score": 1.5},
    ]
    curves, key = curves_from_metrics(ppo)
    assert curves == {"kl": [(1.0, 0.5), (2.0, 0.7)], "reward": [(1.0, 1.0), (2.0, 1.5)]} and key == "score"
    dpo = [{"step": 1, "loss": 0.69, "reward_margin": 0.1}, {"step": 2, "loss": 0.6, "reward_margin": True}]
    curves, key = curves_from_metrics(dpo)
    assert curves == {"reward": [(1.0, 0.1)]} and key == "reward_margin"  # a bool is not a number
    f = tmp_path / "metrics.jsonl"
    f.write_text('{"step": 1, "kl": 1}\nnot json\n[1]\n{"step": 2, "kl": 2}\n')
    assert [r["kl"] for r in read_metrics(f)] == [1, 2]


def test_gate_find_metrics_by_meta_or_run_dir(gws, tmp_path):
    ids = train_chain(gws, tmp_path / "runs")
    ppo = gws.artifact(ids["ppo"])
    assert find_metrics(gws, ppo) is None
    # a run directory under <workspace>/runs whose final/ has the model's content: found by hash
    run = gws.root / "runs" / "ppo-x"
    fake_model(run / "final", "p")
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "kl": 0.1}) + "\n")
    other = gws.root / "runs" / "ppo-other"
    fake_model(other / "final", "q")
    (other / "metrics.jsonl").write_text("{}\n")
    assert find_metrics(gws, ppo) == run / "metrics.jsonl"
    # meta.run_dir wins (relative to the workspace)
    d = gws.root / "elsewhere"
    d.mkdir()
    (d / "metrics.jsonl").write_text("{}\n")
    m = gws.register_artifact(
        "ppo-model", fake_model(tmp_path / "m2", "z"), [], "frank", {"run_dir": "elsewhere"}
    )
    assert find_metrics(gws, gws.artifact(m)) == d / "metrics.jsonl"


def test_gate_report_from_hand_made_data():
    data = ReportData(
        title="Demo report",
        success=[
            {
                "behaviour": "apologises",
                "direction": "increase",
                "target": 0.8,
                "baseline_rate": None,
                "rate": 0.9,
                "status": "pass",
            }
        ],
        win_rates=[
            {
                "label": "dpo vs base",
                "rate": 0.6,
                "ci_low": 0.5,
                "ci_high": 0.7,
                "wins": 6,
                "ties": 0,
                "losses": 4,
                "n": 10,
                "judge": "rule",
            }
        ],
        min_win_rate=0.55,
        curves={"kl": [(1, 0.1), (2, 0.2)]},
        notes=["simulated raters"],
    )
    html = render_html(data)
    assert "<title>Demo report</title>" in html and "simulated raters" in html
    assert html.count("data:image/svg+xml;base64,") == 3  # success, win rate, curves
    assert "not measured" in html  # the red-team section
    assert "no gate decision yet" in html


def test_gate_find_metrics_any_output_dir_not_the_store(gws, tmp_path, monkeypatch):
    ids = train_chain(gws, tmp_path / "runs")
    ppo = gws.artifact(ids["ppo"])
    run = gws.root / "run"  # output_dir=run
    fake_model(run / "final", "p")
    (run / "metrics.jsonl").write_text("{}\n")
    assert find_metrics(gws, ppo) == run / "metrics.jsonl"
    (run / "metrics.jsonl").unlink()
    nested = tmp_path / "elsewhere" / "exp" / "ppo-1"  # two levels under the current directory
    fake_model(nested / "final", "p")
    (nested / "metrics.jsonl").write_text("{}\n")
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert find_metrics(gws, ppo) == nested / "metrics.jsonl"
