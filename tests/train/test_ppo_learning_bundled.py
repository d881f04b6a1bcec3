"""RL learns on the real bundled model with a programmatic reward (slow: minutes on 2 CPU cores).

Reward: 1 when the reply contains "sorry" (a required phrase; SmolLM2-135M-Instruct writes it in about
a quarter of its support replies at temperature 0.8), else 0. Critic-free RLOO (4 samples per prompt)
under the same command, rollout and KL code as PPO:

- the mean score of the last iterations is clearly above the first (effect size reported);
- the measured KL to the reference ends within [0.5, 2] x target.

Not covered here yet (issue 3 stays open for it): over 10 iterations of 16 samples the adaptive
controller's update (n / horizon per iteration) barely moves beta, so the KL band is set by the learning
rate rather than demonstrated by the controller, and the beta = 0 comparison was too noisy at this size.
"""

from __future__ import annotations

import json
import statistics

import pytest

from rlhfops.examples import example_path
from rlhfops.train.runner import run_stage

pytestmark = pytest.mark.slow

TARGET_KL = 2.0


def _run(tmp_path, name: str, extra: list[str]) -> list[dict]:
    args = [
        f"data={example_path('support_replies/prompts.jsonl')}",
        f"output_dir={tmp_path / name}",
        "reward_fn=contains:sorry",
        "advantage_estimator=rloo",
        "samples_per_prompt=4",
        "batch_size=4",
        "minibatch_size=16",
        "ppo_epochs=1",
        "max_new_tokens=16",
        "max_length=160",
        "learning_rate=2e-5",
        "temperature=0.8",
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
        if r.get("step", 0) >= 1 and "score" in r
    ]


def test_rl_learns_required_phrase_with_kl_in_band(tmp_path):
    rows = _run(
        tmp_path,
        "adaptive",
        ["max_steps=10", f"target_kl={TARGET_KL}", "kl_controller=adaptive", "beta=0.05"],
    )
    first = [r["score"] for r in rows[:3]]
    last = [r["score"] for r in rows[-3:]]
    pooled = statistics.pstdev(first + last) or 1e-9
    effect = (statistics.mean(last) - statistics.mean(first)) / pooled
    late_kl = statistics.mean(r["kl"] for r in rows[-3:])
    print(
        json.dumps(
            {"first_scores": first, "last_scores": last, "effect_size": round(effect, 2), "late_kl": late_kl}
        )
    )
    assert statistics.mean(last) > statistics.mean(first) + 0.15 and effect > 1.0
    assert 0.5 * TARGET_KL <= late_kl <= 2 * TARGET_KL, late_kl
