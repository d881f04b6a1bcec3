"""PPO learns on the real bundled model with a programmatic reward (slow: minutes on 2 CPU cores).

The reward is a target reply length (SmolLM2-135M-Instruct rambles until the length limit): the mean
score of the last iterations must be clearly above the first (effect size reported), with the measured
KL within [0.5, 2] x target under the adaptive controller; with beta = 0 the KL grows faster.
"""

from __future__ import annotations

import json
import statistics

import pytest

from rlhfops.examples import example_path
from rlhfops.train.runner import run_stage

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skip(
        reason="PPO learning on the bundled model is not calibrated yet (settings untested on 2 cores); "
        "issue 3 stays open until this passes"
    ),
]

TARGET_KL = 2.0


def _run(tmp_path, name: str, extra: list[str]) -> list[dict]:
    args = [
        f"data={example_path('support_replies/prompts.jsonl')}",
        f"output_dir={tmp_path / name}",
        "reward_fn=length_target:12",
        "max_steps=10",
        "batch_size=8",
        "minibatch_size=4",
        "ppo_epochs=2",
        "max_new_tokens=32",
        "max_length=160",
        "learning_rate=1e-5",
        "temperature=1.0",
        "eval_fraction=0",
        "progress=false",
        "save_every=1000",
        "seed=1",
        *extra,
    ]
    result = run_stage("ppo", None, args)
    return [
        r
        for r in map(json.loads, (result.run_dir / "metrics.jsonl").read_text().splitlines())
        if r["step"] >= 1
    ]


def test_ppo_learns_target_length_with_adaptive_kl(tmp_path):
    rows = _run(
        tmp_path,
        "adaptive",
        [f"target_kl={TARGET_KL}", "kl_controller=adaptive", "beta=0.05", "kl_horizon=200"],
    )
    first = [r["score"] for r in rows[:3]]
    last = [r["score"] for r in rows[-3:]]
    pooled = statistics.pstdev(first + last) or 1e-9
    effect = (statistics.mean(last) - statistics.mean(first)) / pooled
    late_kl = statistics.mean(r["kl"] for r in rows[-3:])
    print(json.dumps({"first_scores": first, "last_scores": last, "effect_size": effect, "late_kl": late_kl}))
    assert statistics.mean(last) > statistics.mean(first) and effect > 1.0
    assert 0.5 * TARGET_KL <= late_kl <= 2 * TARGET_KL, late_kl


def test_kl_penalty_restrains_drift(tmp_path):
    penalised = _run(tmp_path, "beta", ["kl_controller=fixed", "beta=0.5", "max_steps=6"])
    free = _run(tmp_path, "beta0", ["kl_controller=fixed", "beta=0.0", "max_steps=6"])
    kl_pen = statistics.mean(r["kl"] for r in penalised[-2:])
    kl_free = statistics.mean(r["kl"] for r in free[-2:])
    print(json.dumps({"kl_beta_0.5": kl_pen, "kl_beta_0": kl_free}))
    assert kl_free > kl_pen
