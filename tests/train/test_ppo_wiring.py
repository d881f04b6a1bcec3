"""PPO / RLOO / GRPO settings reach the maths (issue 17).

One rollout on the tiny model, then everything it holds is recomputed in the test from first principles:
the policy's and reference's token log-probs by a plain forward per sequence, the score from the rule,
the KL estimate, the per-token rewards, GAE with a Python loop, whitening, the group baselines; and the
PPO loss of a minibatch from its definition. gamma and lambda differ (and the value head is not zero), so
swapping them changes the advantages; each estimator, kl_mode, clip range and vf_coef changes the numbers.
"""

from __future__ import annotations

import math

import pytest
import torch
from helpers_train import write_prompts
from transformers import AutoModelForCausalLM
from wiring_helpers import assert_grads_close, completion_logps, make_trainer, perturb

from rlhfops.models.tiny import make_tiny_model_dir
from rlhfops.train.ppo import PPOTrainer
from rlhfops.train.ppo_config import PPOConfig
from rlhfops.train.ppo_rollout import make_rollout
from rlhfops.train.ppo_update import _slice, minibatch_loss

TARGET = 4


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ppo-wiring")
    model = make_tiny_model_dir(tmp / "tiny")
    ref_lm = AutoModelForCausalLM.from_pretrained(model).eval()
    return tmp, model, write_prompts(tmp / "prompts.jsonl", n=10), ref_lm


def _args(tmp, model, prompts, name, extra=()):
    return [
        f"model={model}",
        f"data={prompts}",
        f"output_dir={tmp / name}",
        f"reward_fn=length_target:{TARGET}",
        "max_steps=2",
        "batch_size=4",
        "minibatch_size=4",
        "ppo_epochs=1",
        "max_new_tokens=6",
        "max_length=160",
        "progress=false",
        "eval_fraction=0.2",
        "kl_controller=fixed",
        *extra,
    ]


def _kl(name: str, logp: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    d = logp - ref
    return {"k1": d, "k2": 0.5 * d**2, "k3": torch.exp(-d) - 1 + d}[name]


def _whiten(x: torch.Tensor, m: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    vals = x[m.bool()].double()
    mean, var = vals.mean(), vals.var(unbiased=True)
    out = (x.double() - mean) / torch.sqrt(var + 1e-8)
    if not shift_mean:
        out = out + mean
    return (out * m).to(x.dtype)


def _gae(rewards, values, m, gamma, lam):
    B, T = rewards.shape
    adv = torch.zeros(B, T, dtype=torch.float64)
    for b in range(B):
        n = int(m[b].sum())
        last = 0.0
        for t in reversed(range(n)):
            nv = float(values[b, t + 1]) if t + 1 < n else 0.0
            delta = float(rewards[b, t]) + gamma * nv - float(values[b, t])
            last = delta + gamma * lam * last
            adv[b, t] = last
    return adv.float(), (adv + values.double() * m).float() * m


def _independent(trainer, roll, ref_lm):
    """(policy logps, reference logps, raw scores, has_eos) recomputed row by row."""
    P, m = roll.prompt_length, roll.mask.bool()
    eos = trainer.tokenizer.eos_token_id
    pol, ref, scores, has_eos = torch.zeros_like(roll.old_logps), torch.zeros_like(roll.old_logps), [], []
    lm = trainer.model.lm
    for i in range(roll.sequences.shape[0]):
        prompt = roll.sequences[i, :P][roll.attention_mask[i, :P].bool()].tolist()
        resp = roll.sequences[i, P:][m[i]].tolist()
        n = len(resp)
        with torch.no_grad():
            pol[i, :n] = completion_logps(lm, prompt, resp)
            ref[i, :n] = completion_logps(ref_lm, prompt, resp)
        scores.append(-abs(n - TARGET) / TARGET)
        has_eos.append(resp[-1] == eos)
    return pol, ref, torch.tensor(scores), torch.tensor(has_eos)


def _rollout(trainer, beta, seed=0):
    prompts = trainer.rows_for_step(1)
    return make_rollout(trainer, prompts, torch.Generator().manual_seed(seed), beta=beta)


@pytest.fixture(scope="module")
def gae_trainer(env):
    tmp, model, prompts, _ = env
    trainer = make_trainer(PPOTrainer, PPOConfig, _args(tmp, model, prompts, "gae", ["no_eos_penalty=0.7"]))
    perturb(trainer.model.lm, scale=0.05, seed=2)  # policy != reference: the KL is not 0
    with torch.no_grad():  # a value head that is not 0, so gamma and lambda enter separately
        trainer.model.value_head.weight.normal_(0, 0.3, generator=torch.Generator().manual_seed(4))
        trainer.model.value_head.bias.fill_(0.1)
    yield trainer
    trainer.cleanup()


GAE_CASES = [
    dict(gamma=0.9, lam=0.6, kl_estimator="k1", kl_mode="reward", whiten_rewards=False),
    dict(gamma=0.6, lam=0.9, kl_estimator="k2", kl_mode="reward", whiten_rewards=True),
    dict(gamma=1.0, lam=0.95, kl_estimator="k3", kl_mode="loss", whiten_rewards=False),
]


@pytest.mark.parametrize("case", GAE_CASES, ids=lambda c: f"{c['kl_estimator']}-{c['kl_mode']}-g{c['gamma']}")
def test_gae_rollout_matches_an_independent_computation(env, gae_trainer, case):
    trainer = gae_trainer
    trainer.config = trainer.config.model_copy(update=case)
    beta = 0.3
    roll = _rollout(trainer, beta)
    m = roll.mask
    pol, ref, raw, has_eos = _independent(trainer, roll, env[3])
    torch.testing.assert_close(roll.old_logps, pol * m, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(roll.ref_logps, ref * m, rtol=1e-4, atol=1e-4)
    assert float((pol - ref).abs().max()) > 1e-2  # the KL is really there
    scores = raw - 0.7 * (~has_eos).float()
    torch.testing.assert_close(roll.scores, scores, rtol=1e-6, atol=1e-6)

    kl = _kl(case["kl_estimator"], roll.old_logps, roll.ref_logps) * m
    torch.testing.assert_close(roll.kl_per_response, kl.sum(-1), rtol=1e-5, atol=1e-6)
    b = beta if case["kl_mode"] == "reward" else 0.0
    rewards = -b * kl
    for i in range(m.shape[0]):
        rewards[i, int(m[i].sum()) - 1] += scores[i]
    if case["whiten_rewards"]:
        rewards = _whiten(rewards, m, shift_mean=False)
    values = roll.values
    assert float(values.abs().max()) > 1e-3
    adv, ret = _gae(rewards, values, m, case["gamma"], case["lam"])
    torch.testing.assert_close(roll.returns, ret, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(roll.advantages, _whiten(adv, m), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("estimator", ["rloo", "grpo"])
def test_group_baselines_match_an_independent_computation(env, estimator):
    tmp, model, prompts, ref_lm = env
    extra = [f"advantage_estimator={estimator}", "samples_per_prompt=2", "kl_estimator=k1"]
    trainer = make_trainer(PPOTrainer, PPOConfig, _args(tmp, model, prompts, estimator, extra))
    perturb(trainer.model.lm, scale=0.05, seed=2)
    beta = 0.2
    roll = _rollout(trainer, beta, seed=1)
    m = roll.mask
    pol, ref, raw, has_eos = _independent(trainer, roll, ref_lm)
    torch.testing.assert_close(roll.old_logps, pol * m, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(roll.ref_logps, ref * m, rtol=1e-4, atol=1e-4)
    s = (raw - 1.0 * (~has_eos).float()) - beta * ((roll.old_logps - roll.ref_logps) * m).sum(-1)
    g = s.view(-1, 2).double()
    if estimator == "rloo":
        a = g - g.flip(1)  # k = 2: the baseline of one sample is the other sample's score
    else:
        a = (g - g.mean(1, keepdim=True)) / (g.std(1, unbiased=True, keepdim=True) + 1e-4)
    expected = a.reshape(-1, 1).float() * m
    torch.testing.assert_close(roll.advantages, expected, rtol=1e-4, atol=1e-5)
    assert roll.values is None and roll.returns is None
    trainer.cleanup()


LOSS_CASES = [
    dict(clip_eps=0.05, value_clip=0.01, vf_coef=0.1, kl_mode="reward", kl_estimator="k1"),
    dict(clip_eps=0.3, value_clip=0.5, vf_coef=0.7, kl_mode="reward", kl_estimator="k1"),
    dict(clip_eps=0.1, value_clip=0.05, vf_coef=0.3, kl_mode="loss", kl_estimator="k3"),
    dict(clip_eps=0.1, value_clip=0.05, vf_coef=0.0, kl_mode="loss", kl_estimator="k2"),
]


@pytest.mark.parametrize(
    "case", LOSS_CASES, ids=lambda c: f"clip{c['clip_eps']}-vf{c['vf_coef']}-{c['kl_mode']}"
)
def test_minibatch_loss_matches_its_definition(env, gae_trainer, case):
    trainer = gae_trainer
    trainer.config = trainer.config.model_copy(update={**GAE_CASES[0], **case})
    roll = _rollout(trainer, 0.3, seed=5)
    saved = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    perturb(trainer.model, scale=0.03, seed=9)  # the policy and critic moved since the rollout
    try:
        mb = _slice(roll, torch.arange(roll.sequences.shape[0]))
        P, m = roll.prompt_length, mb["mask"]
        with torch.no_grad():
            # as if another micro-batch (or process) held as many tokens again: half the token mean
            loss, stats = minibatch_loss(trainer, mb, P, num_tokens_global=2 * float(m.sum()))
            out = trainer.model(mb["sequences"], mb["attention_mask"], P)
        n = m.sum()
        ratio = torch.exp(out.logps - mb["old_logps"])
        eps = case["clip_eps"]
        pg = torch.maximum(-mb["advantages"] * ratio, -mb["advantages"] * ratio.clamp(1 - eps, 1 + eps))
        pol = (pg * m).sum() / n
        c = case["value_clip"]
        v_clip = mb["values"] + (out.values - mb["values"]).clamp(-c, c)
        err = torch.maximum((out.values - mb["returns"]) ** 2, (v_clip - mb["returns"]) ** 2)
        val = 0.5 * (err * m).sum() / n
        expected = pol + case["vf_coef"] * val
        if case["kl_mode"] == "loss":
            expected = (
                expected
                + trainer.kl_ctl.value * (_kl(case["kl_estimator"], out.logps, mb["ref_logps"]) * m).sum() / n
            )
        assert math.isclose(float(loss), 0.5 * float(expected), rel_tol=1e-5), (
            float(loss),
            0.5 * float(expected),
        )
        assert stats["policy_loss"] == pytest.approx(float(pol), rel=1e-5)
        assert stats["value_loss"] == pytest.approx(float(val), rel=1e-5)
        clipped = (-mb["advantages"] * ratio.clamp(1 - eps, 1 + eps)) > (-mb["advantages"] * ratio)
        assert stats["clip_fraction"] == pytest.approx(float((clipped * m).sum() / n), abs=1e-6)
        assert 0 < stats["clip_fraction"] or eps > 0.2  # the small clip ranges are really active
    finally:
        trainer.model.load_state_dict(saved)


def _recorded_update(trainer, roll, accum: int):
    """ppo_update with the optimizer's step replaced by a recorder of the gradients it would apply."""
    from rlhfops.train.ppo_update import ppo_update

    cfg = dict(
        GAE_CASES[0], gradient_accumulation_steps=accum, minibatch_size=2, ppo_epochs=2, max_grad_norm=0
    )
    trainer.config = trainer.config.model_copy(update=cfg)
    seen = []
    params = dict(trainer.model.named_parameters())
    trainer.optimizer.step = lambda *a, **k: seen.append(
        {n: p.grad.detach().clone() for n, p in params.items() if p.grad is not None}
    )
    try:
        torch.manual_seed(123)  # the minibatch order is drawn from torch's generator
        stats = ppo_update(trainer, roll)
    finally:
        del trainer.optimizer.step
    return seen, stats


def test_update_steps_once_per_minibatch_and_accumulation_does_not_change_the_gradient(gae_trainer):
    trainer = gae_trainer
    trainer.config = trainer.config.model_copy(update=GAE_CASES[0])
    roll = _rollout(trainer, 0.3, seed=7)
    saved = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    perturb(trainer.model, scale=0.03, seed=11)
    try:
        one, stats = _recorded_update(trainer, roll, 1)
        two, _ = _recorded_update(trainer, roll, 2)
    finally:
        trainer.model.load_state_dict(saved)
    assert len(one) == len(two) == 2 * (4 // 2)  # ppo_epochs x minibatches per epoch
    for a, b in zip(one, two, strict=True):
        assert_grads_close(b, a)
    m = roll.mask.bool()
    g, v = roll.returns[m].double(), roll.values[m].double()
    ev = 1 - ((g - v) - (g - v).mean()).pow(2).mean() / (g - g.mean()).pow(2).mean()
    assert stats["explained_variance"] == pytest.approx(float(ev), rel=1e-6)
    assert {"policy_loss", "value_loss", "clip_fraction", "approx_kl", "loss"} <= stats.keys()
