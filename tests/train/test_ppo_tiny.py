"""The RL stage end to end on a tiny random model, and its reward-hacking alarms on constructed cases."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from helpers_train import write_prompts
from safetensors.torch import load_file

from rlhfops.config import load_config
from rlhfops.errors import ConfigError
from rlhfops.models.tiny import make_tiny_model_dir
from rlhfops.train.alarms import reward_hacking_alarms
from rlhfops.train.kl_sweep import recommend
from rlhfops.train.ppo_config import PPOConfig
from rlhfops.train.runner import run_stage


def _ppo_args(tmp_path: Path, model: Path, name: str, extra: list[str] = ()) -> list[str]:
    return [
        f"model={model}",
        f"data={write_prompts(tmp_path / 'prompts.jsonl')}",
        f"output_dir={tmp_path / name}",
        "reward_fn=length_target:6",
        "max_steps=3",
        "batch_size=4",
        "minibatch_size=2",
        "ppo_epochs=2",
        "max_new_tokens=8",
        "max_length=160",
        "learning_rate=1e-3",
        "save_every=2",
        "progress=false",
        "eval_fraction=0.2",
        *extra,
    ]


def _weights(d: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for f in sorted(d.glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


LOGGED = [
    "score",
    "kl",
    "beta",
    "entropy",
    "clip_fraction",
    "approx_kl",
    "value_loss",
    "explained_variance",
    "response_length",
    "hit_length_limit",
    "distinct_2",
]


def test_ppo_full_finetune_tiny(tmp_path):
    model = make_tiny_model_dir(tmp_path / "tiny")
    before = _weights(model)
    result = run_stage("ppo", None, _ppo_args(tmp_path, model, "ppo"))
    rows = [r for r in _metrics(result.run_dir) if r["step"] >= 1]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for key in LOGGED:
        assert all(key in r and math.isfinite(r[key]) for r in rows), key
    after = _weights(result.run_dir / "final")
    assert any(not torch.equal(before[k], after[k]) for k in before if k in after)
    assert all(torch.equal(before[k], v) for k, v in _weights(model).items()), "reference weights changed"
    assert (result.run_dir / "final" / "value_head.safetensors").exists()
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert "alarm" in summary["eval"] and isinstance(summary["eval"]["alarms"], list)
    # numbers, not just finiteness: the first rollout's policy is the reference (KL 0, up to the sampler's
    # float rounding), and the adaptive controller moves beta by Ziegler et al.'s rule from the logged KL
    # (4 responses per iteration, the default target 6 and horizon 10000)
    assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-4)
    assert rows[0]["beta"] == 0.05
    for prev, cur in zip(rows, rows[1:], strict=False):
        err = min(max(prev["kl"] / 6.0 - 1.0, -0.2), 0.2)
        assert cur["beta"] == pytest.approx(prev["beta"] * (1 + err * 4 / 10000), rel=1e-12)
    assert rows[1]["beta"] < rows[0]["beta"]  # KL far below target: beta shrinks
    # the rate each iteration used: the default linear decay over 3 iterations, no warm-up
    assert [r["lr"] for r in rows] == pytest.approx([1e-3, 1e-3 * 2 / 3, 1e-3 / 3], rel=1e-9)


def test_ppo_lora_reference_is_adapter_disabled(tmp_path):
    model = make_tiny_model_dir(tmp_path / "tiny")
    args = _ppo_args(
        tmp_path, model, "lora", ["lora.enabled=true", "lora.r=4", "kl_mode=loss", "kl_estimator=k3"]
    )
    result = run_stage("ppo", None, args)
    adapter = load_file(str(result.run_dir / "final" / "adapter_model.safetensors"))
    assert adapter and all("lora_" in k for k in adapter)
    rows = [r for r in _metrics(result.run_dir) if r["step"] >= 1]
    assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # first rollout: adapter starts at zero


@pytest.mark.parametrize("estimator", ["rloo", "grpo"])
def test_critic_free_estimators(tmp_path, estimator):
    model = make_tiny_model_dir(tmp_path / "tiny")
    args = _ppo_args(tmp_path, model, estimator, [f"advantage_estimator={estimator}", "samples_per_prompt=2"])
    result = run_stage("ppo", None, args)
    rows = [r for r in _metrics(result.run_dir) if r["step"] >= 1]
    assert len(rows) == 3 and all("value_loss" not in r for r in rows)


def test_config_cross_checks():
    with pytest.raises(ConfigError, match="exactly one of reward_model, reward_fn and reward_judge"):
        load_config(PPOConfig, None, ["data=p.jsonl"])
    with pytest.raises(ConfigError, match="samples_per_prompt >= 2"):
        load_config(PPOConfig, None, ["data=p", "reward_fn=length", "advantage_estimator=rloo"])
    with pytest.raises(ConfigError, match="not divisible by minibatch_size=3"):
        load_config(PPOConfig, None, ["data=p", "reward_fn=length", "batch_size=4", "minibatch_size=3"])


def _cfg(**kw):
    base = dict(
        alarm_length_ratio=1.5,
        alarm_distinct2_drop=0.5,
        alarm_looping_share=0.25,
        kl_controller="adaptive",
        target_kl=1.0,
    )
    return SimpleNamespace(**{**base, **kw})


def _ev(score, judge, length, distinct, opening=0.1, sem=0.01):
    return {
        "score": score,
        "score_sem": sem,
        "judge_score": judge,
        "response_length": length,
        "distinct_2": distinct,
        "opening_share": opening,
        "examples": ["an example"],
    }


def test_alarms_fire_on_planted_hack():
    ref = _ev(0.0, 0.5, 20, 0.8)
    hacked = _ev(1.0, 0.4, 45, 0.3, opening=0.9)
    history = [{"step": i, "kl": 3.0} for i in range(1, 9)]
    names = {a.name for a in reward_hacking_alarms(_cfg(), history, ref, hacked)}
    assert names == {"reward_up_judge_flat", "length_drift", "diversity_collapse", "kl_over_target"}
    alarm = next(a for a in reward_hacking_alarms(_cfg(), history, ref, hacked) if a.name == "length_drift")
    assert "45.0" in alarm.evidence and "KL" in alarm.action and alarm.examples


def test_alarms_quiet_on_honest_run():
    ref = _ev(0.0, 0.5, 20, 0.8)
    honest = _ev(0.6, 0.7, 22, 0.75)
    history = [{"step": i, "kl": 1.1} for i in range(1, 9)]
    assert reward_hacking_alarms(_cfg(), history, ref, honest) == []


def test_sweep_recommendation_prefers_clean_runs():
    rows = [
        {"value": 0.01, "score": 2.0, "kl": 9.0, "judge_score": 0.4, "alarms": 2},
        {"value": 0.05, "score": 1.0, "kl": 2.0, "judge_score": 0.7, "alarms": 0},
        {"value": 0.2, "score": 0.5, "kl": 0.5, "judge_score": 0.6, "alarms": 0},
    ]
    value, reason = recommend(rows)
    assert value == 0.05 and "judge score" in reason and "without reward-hacking alarms" in reason


def test_sweep_recommendation_says_when_nothing_moved():
    common = {"judge_score": None, "alarms": 0, "reference_score": 0.086}
    rows = [
        {"value": 0.01, "score": 0.084, "kl": 0.6, **common},
        {"value": 0.2, "score": -0.01, "kl": 0.3, **common},
    ]
    value, reason = recommend(rows)
    assert value == 0.01 and "no run raised the held-out reward above the start's (0.086)" in reason
    rows[1]["score"] = 0.09  # one run above the start: nothing to add
    value, reason = recommend(rows)
    assert value == 0.2 and "no run raised" not in reason


def test_sweep_recommendation_says_when_no_run_beats_the_start_on_the_judge():
    """The full demo of docs/benchmarks.md section 14: the judge fell from 0.719 at the start to 0.50-0.59
    while the reward rose; the recommendation must not read as an improvement. Edge: a run at the start's
    judge score has not beaten it; one above has."""
    common = {"alarms": 0, "reference_score": -0.711, "reference_judge_score": 0.719}
    rows = [
        {"value": 0.01, "score": -0.547, "kl": 1.14, "judge_score": 0.5, **common},
        {"value": 0.2, "score": -0.652, "kl": 0.77, "judge_score": 0.531, **common},
    ]
    value, reason = recommend(rows)
    assert value == 0.2 and "no run raised the independent judge's score above the start's (0.719)" in reason
    assert "keep the starting model" in reason and "no run raised the held-out reward" not in reason
    rows[1]["judge_score"] = 0.719  # equal to the start: still not above it
    assert "above the start's (0.719)" in recommend(rows)[1]
    rows[1]["judge_score"] = 0.72  # above the start: nothing to add
    value, reason = recommend(rows)
    assert value == 0.2 and "independent judge" not in reason
    for r in rows:  # no judge: the rule needs one
        r["judge_score"] = None
    assert "independent judge" not in recommend(rows)[1]


def test_separate_value_model(tmp_path):
    model = make_tiny_model_dir(tmp_path / "tiny")
    result = run_stage("ppo", None, _ppo_args(tmp_path, model, "sep", ["value_model=separate"]))
    rows = [r for r in _metrics(result.run_dir) if r["step"] >= 1]
    assert all(math.isfinite(r["value_loss"]) for r in rows)


def test_kl_sweep_writes_table_and_recommendation(tmp_path):
    from rlhfops.train.kl_sweep import run_kl_sweep

    model = make_tiny_model_dir(tmp_path / "tiny")
    args = [a for a in _ppo_args(tmp_path, model, "sweep") if not a.startswith("max_steps")] + ["max_steps=2"]
    cfg = load_config(PPOConfig, None, args)
    result = run_kl_sweep(cfg, [0.0, 0.5], kind="beta")
    report = json.loads((result.out_dir / "kl_sweep.json").read_text())
    assert [r["value"] for r in report["rows"]] == [0.0, 0.5]
    assert report["recommended"] in (0.0, 0.5) and report["reason"]
    for row in report["rows"]:
        assert Path(row["run_dir"], "summary.json").exists()
        assert math.isfinite(row["score"]) and math.isfinite(row["kl"])
    table = (result.out_dir / "kl_sweep.md").read_text()
    assert "| beta | reward | reward - start [95% CI] | KL (summed k3, >= 0) |" in table
    assert "Recommended:" in table


def test_kl_sweep_evaluates_the_shared_start_once(tmp_path, monkeypatch):
    """The reference's held-out evaluation runs once per sweep, and equals what a run of its own computes."""
    from rlhfops.train import ppo as ppo_mod
    from rlhfops.train.kl_sweep import run_kl_sweep

    calls = []
    real = ppo_mod.evaluate_policy

    def counting(trainer, prompts, reference=False):
        calls.append(reference)
        return real(trainer, prompts, reference=reference)

    monkeypatch.setattr(ppo_mod, "evaluate_policy", counting)
    model = make_tiny_model_dir(tmp_path / "tiny")
    args = [a for a in _ppo_args(tmp_path, model, "sweep") if not a.startswith("max_steps")] + ["max_steps=1"]
    cfg = load_config(PPOConfig, None, args)
    result = run_kl_sweep(cfg, [0.0, 0.5, 0.1], kind="beta")
    assert calls.count(True) == 1 and calls.count(False) == 3
    summaries = [json.loads(Path(r["run_dir"], "summary.json").read_text()) for r in result.rows]
    refs = [s["eval"]["reference"] for s in summaries]
    assert refs[0] == refs[1] == refs[2]
    alone_dir = f"output_dir={tmp_path / 'alone'}"
    alone = run_stage("ppo", None, [*args, "beta=0.1", "kl_controller=fixed", alone_dir])
    assert alone.summary["eval"]["reference"] == refs[2]


def test_ppo_resume_matches_uninterrupted(tmp_path):
    """Stop after iteration 2 (checkpoint), resume to 4: same weights as a straight run of 4."""
    model = make_tiny_model_dir(tmp_path / "tiny")
    straight = run_stage(
        "ppo", None, _ppo_args(tmp_path, model, "straight", ["max_steps=4", "eval_fraction=0"])
    )
    cut = _ppo_args(tmp_path, model, "cut", ["max_steps=4", "eval_fraction=0"])
    from rlhfops.train.ppo import PPOTrainer

    cfg = load_config(PPOConfig, None, cut)
    trainer = PPOTrainer(cfg)
    trainer.setup()
    trainer.before_train()
    for step in (1, 2):
        trainer.run.append_metrics(trainer.step(step))
    trainer.save_checkpoint(2)
    trainer.cleanup()
    resumed = run_stage("ppo", None, resume=tmp_path / "cut")
    assert [r["step"] for r in _metrics(resumed.run_dir) if r["step"] >= 1] == [1, 2, 3, 4]
    a, b = _weights(straight.run_dir / "final"), _weights(resumed.run_dir / "final")
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("value_model", ["shared", "separate"])
def test_ppo_honours_gradient_checkpointing(tmp_path, value_model):
    """gradient_checkpointing=true: the policy (and a separate value model) recompute activations in the
    update, and the run ends with the weights of the same run without it; the saved model keeps its KV
    cache on for inference."""
    from rlhfops.train.ppo import PPOTrainer

    model = make_tiny_model_dir(tmp_path / "tiny")
    finals = {}
    for flag in (False, True):
        extra = [
            "max_steps=2",
            "eval_fraction=0",
            f"value_model={value_model}",
            f"gradient_checkpointing={flag}",
        ]
        cfg = load_config(PPOConfig, None, _ppo_args(tmp_path, model, f"gc-{value_model}-{flag}", extra))
        trainer = PPOTrainer(cfg)
        result = trainer.run_all()
        lm = trainer.model.lm
        assert lm.is_activation_checkpointing is flag
        if value_model == "separate":
            assert trainer.model.value_model.trunk.is_activation_checkpointing is flag
        finals[flag] = _weights(result.run_dir / "final")
        saved = json.loads((result.run_dir / "final" / "config.json").read_text())
        assert saved.get("use_cache", True) is True
    assert finals[True].keys() == finals[False].keys()
    for key in finals[False]:
        torch.testing.assert_close(finals[True][key], finals[False][key], rtol=1e-5, atol=1e-6)


def test_held_out_evaluation_reads_the_samplers_logprobs(tmp_path, monkeypatch):
    """evaluate_policy computes no policy forward: the policy's KL from the sampler's log-probs equals the
    KL from the training forward on the same samples (to 1e-4 relative), and the reference's evaluation has
    KL 0 exactly (the reference against itself)."""
    import numpy as np

    from rlhfops.train.kl import sequence_kl
    from rlhfops.train.ppo import PPOTrainer
    from rlhfops.train.ppo_model import ActorCritic
    from rlhfops.train.ppo_rollout import _generate, evaluate_policy, full_attention_mask

    model = make_tiny_model_dir(tmp_path / "tiny")
    cfg = load_config(PPOConfig, None, _ppo_args(tmp_path, model, "run", ["max_steps=1"]))
    trainer = PPOTrainer(cfg)
    trainer.setup()
    trainer.before_train()
    trainer.run.append_metrics(trainer.step(1))  # the policy has moved away from the reference
    calls = []
    real_forward = ActorCritic.forward

    def counting(self, *args, **kwargs):
        calls.append(kwargs.get("inside") is None)
        return real_forward(self, *args, **kwargs)

    monkeypatch.setattr(ActorCritic, "forward", counting)
    fast = evaluate_policy(trainer, trainer.eval_rows)
    start = evaluate_policy(trainer, trainer.eval_rows, reference=True)
    assert calls == [] and start["kl"] == 0.0
    monkeypatch.undo()
    # by hand, as it was computed before: the same samples (same seed), the policy's training forward
    gen = torch.Generator().manual_seed(cfg.seed + 424242)
    kls = []
    with torch.no_grad():
        for i in range(0, len(trainer.eval_rows), cfg.batch_size):
            out = _generate(trainer, trainer.eval_rows[i : i + cfg.batch_size], gen)
            attn = full_attention_mask(out)
            temp = cfg.temperature or 1.0
            pol = trainer.model(out.sequences, attn, out.prompt_length, temp).logps
            ref = trainer.reference.logps(out.sequences, attn, out.prompt_length, temp)
            kls += sequence_kl(pol, ref, out.response_mask.float()).tolist()
    trainer.cleanup()
    assert float(np.mean(kls)) > 0
    assert fast["kl"] == pytest.approx(float(np.mean(kls)), rel=1e-4)
