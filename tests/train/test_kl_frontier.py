"""The KL sweep's frontier (issue 19): per iteration, held-out reward and judge score against KL, plotted."""

from __future__ import annotations

import json
import math
from pathlib import Path

from helpers_train import write_prompts

from rlhfops.config import load_config
from rlhfops.models.tiny import make_tiny_model_dir
from rlhfops.train.kl_sweep import frontier_points, run_kl_sweep
from rlhfops.train.ppo_config import PPOConfig


def test_frontier_points_from_records_by_hand():
    records = [
        {"step": 0, "eval_reference": {"score": 0.1, "kl": 0.0, "judge_score": 0.5}},
        {"step": 1, "loss": 1.0, "kl": 0.2, "eval": {"score": 0.3, "kl": 0.4, "judge_score": 0.6}},
        {"step": 2, "loss": 1.0, "kl": 0.5},  # no held-out evaluation at this iteration
    ]
    final = {"score": 0.7, "kl": 1.5, "judge_score": 0.4}
    assert frontier_points(records, final, 3) == [
        {"step": 0, "kl": 0.0, "score": 0.1, "judge_score": 0.5},
        {"step": 1, "kl": 0.4, "score": 0.3, "judge_score": 0.6},
        {"step": 3, "kl": 1.5, "score": 0.7, "judge_score": 0.4},
    ]
    assert frontier_points([], None, 2) == []


def test_sweep_records_a_point_per_iteration_and_the_report_plots_it(tmp_path):
    from rlhfops.report.data import ReportData, read_sweep
    from rlhfops.report.plots import kl_frontier_plot
    from rlhfops.report.render import render_html

    model = make_tiny_model_dir(tmp_path / "tiny")
    cfg = load_config(
        PPOConfig,
        None,
        [
            f"model={model}",
            f"data={write_prompts(tmp_path / 'prompts.jsonl')}",
            f"output_dir={tmp_path / 'sweep'}",
            "reward_fn=length_target:6",
            "judge=length_target:3",  # an independent judge that disagrees with the reward
            "max_steps=2",
            "batch_size=4",
            "minibatch_size=2",
            "ppo_epochs=1",
            "max_new_tokens=6",
            "max_length=160",
            "learning_rate=1e-3",
            "save_every=100",
            "progress=false",
            "eval_fraction=0.2",
        ],
    )
    assert cfg.eval_every == 0  # the sweep turns it into 1: a frontier point per iteration
    result = run_kl_sweep(cfg, [0.0, 0.5], kind="beta")
    report = json.loads((result.out_dir / "kl_sweep.json").read_text())
    for row in report["rows"]:
        pts = row["frontier"]
        assert [p["step"] for p in pts] == [0, 1, 2]
        assert pts[0]["kl"] == 0.0 and all(p["kl"] >= 0 and math.isfinite(p["kl"]) for p in pts)
        assert all(isinstance(p["judge_score"], float) for p in pts)
        assert pts[-1]["score"] == row["score"] and pts[-1]["kl"] == row["kl"]  # the final evaluation
        metrics = [json.loads(x) for x in Path(row["run_dir"], "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in metrics if "eval" in r] == [1]
        assert all(r["kl"] >= 0 for r in metrics if "loss" in r)  # the logged training KL (summed k3)
        # the held-out reward over the start, paired by prompt: the final evaluation minus the reference's
        final = json.loads(Path(row["run_dir"], "summary.json").read_text())["eval"]
        pol, ref = final["policy"]["scores"], final["reference"]["scores"]
        assert len(pol) == len(ref) == final["policy"]["prompts"] >= 2
        gain = row["score_gain"]
        assert gain["n"] == len(pol) and math.isclose(gain["mean"], row["score"] - row["reference_score"])
        assert gain["ci"][0] <= gain["mean"] <= gain["ci"][1]
        # the start's judge score, which the recommendation compares every run with
        assert row["reference_judge_score"] == final["reference"]["judge_score"] == pts[0]["judge_score"]
    table = (result.out_dir / "kl_sweep.md").read_text()
    assert "Frontier (held-out, per iteration)" in table and "| 0.5 | 2 |" in table
    g = report["rows"][1]["score_gain"]
    assert f"{g['mean']:+.3f} [{g['ci'][0]:+.3f}, {g['ci'][1]:+.3f}]" in table

    svg = kl_frontier_plot(report["rows"], "beta")
    assert "beta 0.5" in svg and "independent judge" in svg and "KL to the reference" in svg
    assert kl_frontier_plot([{"value": 1.0, "frontier": []}]) == ""
    # the gate report finds the sweep beside a run's directory and draws the frontier
    sweep = read_sweep(Path(report["rows"][0]["run_dir"]).parent / "kl_sweep.json")
    assert sweep is not None and sweep["rows"][1]["frontier"] == report["rows"][1]["frontier"]
    html = render_html(ReportData(title="t", frontier=sweep["rows"], frontier_source="s"))
    assert 'id="plot-frontier"' in html and "over-optimisation" in html
    assert 'id="plot-frontier"' not in render_html(ReportData(title="t"))
    assert read_sweep(tmp_path / "missing.json") is None


def test_detector_judge_scores_the_spec_behaviour_and_names_unknown_detectors():
    import pytest

    from rlhfops.errors import ConfigError
    from rlhfops.train.reward_sources import Responses, RuleReward

    judge = RuleReward("detector:apology_remedy")
    texts = ["Sorry about that: I've sent a free return label and a refund.", "Thanks for your message."]
    got = judge.score(Responses([[1], [1]], [[2], [3]], texts))
    assert got.tolist() == [1.0, 0.0]
    with pytest.raises(ConfigError, match="unknown detector 'nope'; valid: refusal, apology_remedy"):
        RuleReward("detector:nope")


def test_score_difference_is_paired_by_prompt_with_a_t_interval():
    """Policy minus reference per prompt: mean and Student t 95% interval of the differences (not of the two
    means); None when a side has no per-prompt scores or the counts differ (not the same prompts)."""
    import numpy as np
    from scipy import stats

    from rlhfops.train.kl_sweep import score_difference

    ref = [0.0, 1.0, 2.0, 3.0]
    pol = [0.5, 1.4, 2.6, 3.3]  # differences 0.5, 0.4, 0.6, 0.3: a small, steady gain
    got = score_difference({"scores": pol}, {"scores": ref})
    d = np.array([0.5, 0.4, 0.6, 0.3])
    half = stats.t.ppf(0.975, 3) * d.std(ddof=1) / 2
    assert got["n"] == 4 and math.isclose(got["mean"], 0.45)
    assert np.allclose(got["ci"], [0.45 - half, 0.45 + half])
    assert got["ci"][0] > 0  # paired, the gain is clear; unpaired, the spread of the scores would hide it
    flipped = score_difference({"scores": ref}, {"scores": pol})
    assert math.isclose(flipped["mean"], -0.45) and flipped["ci"][1] < 0
    assert score_difference({"scores": pol}, {"scores": ref[:3]}) is None
    assert score_difference({"scores": pol}, {"score": 1.0}) is None
    assert score_difference(None, {"scores": ref}) is None
