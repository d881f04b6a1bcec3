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


def _logps_at(lm, prompt, resp, temperature):
    """Completion log-probs of one plain forward at the sampling temperature (logits / T)."""
    if temperature == 1.0:
        return completion_logps(lm, prompt, resp)
    logits = lm(input_ids=torch.tensor([prompt + resp])).logits[0, len(prompt) - 1 : -1].float()
    return torch.log_softmax(logits / temperature, -1).gather(-1, torch.tensor(resp)[:, None]).squeeze(-1)


def _independent(trainer, roll, ref_lm):
    """(policy logps, reference logps, raw scores, has_eos) recomputed row by row."""
    temp = trainer.config.temperature or 1.0
    P, m = roll.prompt_length, roll.mask.bool()
    eos = trainer.tokenizer.eos_token_id
    pol, ref, scores, has_eos = torch.zeros_like(roll.old_logps), torch.zeros_like(roll.old_logps), [], []
    lm = trainer.model.lm
    for i in range(roll.sequences.shape[0]):
        prompt = roll.sequences[i, :P][roll.attention_mask[i, :P].bool()].tolist()
        resp = roll.sequences[i, P:][m[i]].tolist()
        n = len(resp)
        with torch.no_grad():
            pol[i, :n] = _logps_at(lm, prompt, resp, temp)
            ref[i, :n] = _logps_at(ref_lm, prompt, resp, temp)
        scores.append(-abs(n - TARGET) / TARGET)
        has_eos.append(resp[-1] == eos)
    return pol, ref, torch.tensor(scores), torch.tensor(has_eos)


def _rollout(trainer, beta, seed=0):
    prompts = trainer.rows_for_step(1)
    return make_rollout(trainer, prompts, torch.Generator().manual_seed(seed), beta=beta)


def _likelier_eos(trainer) -> None:
    """EOS made likely (its logit + 4, in sampling and in every forward of the policy alike), so responses
    end at different lengths and the response mask has zeros to get wrong."""
    eos = trainer.tokenizer.eos_token_id

    def likelier_eos(_module, _args, logits):
        logits = logits.clone()
        logits[..., eos] += 4.0
        return logits

    trainer.model.lm.lm_head.register_forward_hook(likelier_eos)


@pytest.fixture(scope="module")
def gae_trainer(env):
    tmp, model, prompts, _ = env
    trainer = make_trainer(PPOTrainer, PPOConfig, _args(tmp, model, prompts, "gae", ["no_eos_penalty=0.7"]))
    perturb(trainer.model.lm, scale=0.05, seed=2)  # policy != reference: the KL is not 0
    with torch.no_grad():  # a value head that is not 0, so gamma and lambda enter separately
        trainer.model.value_head.weight.normal_(0, 0.3, generator=torch.Generator().manual_seed(4))
        trainer.model.value_head.bias.fill_(0.1)
    _likelier_eos(trainer)
    yield trainer
    trainer.cleanup()


GAE_CASES = [
    dict(gamma=0.9, lam=0.6, kl_estimator="k1", kl_mode="reward", whiten_rewards=False, temperature=1.0),
    dict(gamma=0.6, lam=0.9, kl_estimator="k2", kl_mode="reward", whiten_rewards=True, temperature=1.0),
    dict(gamma=1.0, lam=0.95, kl_estimator="k3", kl_mode="loss", whiten_rewards=False, temperature=1.0),
    # log-probs of policy and reference at the sampling temperature
    dict(gamma=0.9, lam=0.6, kl_estimator="k1", kl_mode="reward", whiten_rewards=False, temperature=0.7),
    # greedy sampling: log-probs at temperature 1
    dict(gamma=0.9, lam=0.6, kl_estimator="k1", kl_mode="reward", whiten_rewards=False, temperature=0.0),
]


@pytest.mark.parametrize(
    "case", GAE_CASES, ids=lambda c: f"{c['kl_estimator']}-{c['kl_mode']}-g{c['gamma']}-t{c['temperature']}"
)
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
    if case["temperature"]:  # sampled: some responses end with EOS, some at the length limit
        assert 0 < int(has_eos.sum()) < len(has_eos)
    _check_rollout_record(trainer, roll, raw, has_eos, kl)


def _check_rollout_record(trainer, roll, raw, has_eos, kl):
    """What the rollout logs and keeps besides the advantages, recomputed from the sampled rows."""
    from rlhfops.measures.diversity import distinct_n, repeated_ngram_fraction

    m, P = roll.mask, roll.prompt_length
    B = m.shape[0]
    resp = [roll.sequences[i, P:][m[i].bool()].tolist() for i in range(B)]
    assert roll.texts == trainer.tokenizer.batch_decode(resp, skip_special_tokens=True)
    assert torch.equal(roll.attention_mask[:, P:], m.long())  # the response part: tokens up to EOS
    assert torch.equal(roll.row_ids, torch.arange(B))
    k3 = (
        torch.exp(-(roll.old_logps - roll.ref_logps).double())
        - 1
        + (roll.old_logps - roll.ref_logps).double()
    )
    torch.testing.assert_close(roll.kl_measured.double(), (k3 * m).sum(-1), rtol=1e-5, atol=1e-6)
    got = roll.metrics
    assert got["score"] == pytest.approx(float(raw.mean()), abs=1e-6)  # before the no-EOS penalty
    assert got["response_length"] == pytest.approx(float(m.sum(-1).mean()))
    assert got["hit_length_limit"] == pytest.approx(float((~has_eos).float().mean()))
    assert got["distinct_2"] == distinct_n(resp, 2)
    assert got["repeated_4gram"] == repeated_ngram_fraction(resp, 4)
    assert got["kl_penalty"] == pytest.approx(float(kl.sum(-1).mean()), rel=1e-5, abs=1e-7)
    ent = torch.zeros(B)  # mean entropy over response tokens, from a plain forward per row
    lm, temp = trainer.model.lm, trainer.config.temperature or 1.0
    for i in range(B):
        prompt = roll.sequences[i, :P][roll.attention_mask[i, :P].bool()].tolist()
        with torch.no_grad():
            logits = lm(input_ids=torch.tensor([prompt + resp[i]])).logits[0, len(prompt) - 1 : -1].float()
        logp = torch.log_softmax(logits / temp, -1)
        ent[i] = -(logp.exp() * logp).sum(-1).sum()
    assert got["entropy"] == pytest.approx(float(ent.sum() / m.sum()), rel=1e-4)


@pytest.mark.parametrize("estimator", ["rloo", "grpo"])
def test_group_baselines_match_an_independent_computation(env, estimator):
    tmp, model, prompts, ref_lm = env
    extra = [f"advantage_estimator={estimator}", "samples_per_prompt=2", "kl_estimator=k1"]
    trainer = make_trainer(PPOTrainer, PPOConfig, _args(tmp, model, prompts, estimator, extra))
    perturb(trainer.model.lm, scale=0.05, seed=2)
    _likelier_eos(trainer)
    beta = 0.2
    roll = _rollout(trainer, beta, seed=1)
    m = roll.mask
    pol, ref, raw, has_eos = _independent(trainer, roll, ref_lm)
    assert 0 < int(has_eos.sum()) < len(has_eos)  # some responses end early: the mask has zeros
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
    # log-probs at the sampling temperature (logits / T), in the rollout and in the update alike
    dict(clip_eps=0.3, value_clip=0.5, vf_coef=0.7, kl_mode="reward", kl_estimator="k1", temperature=0.7),
    # greedy sampling: log-probs at temperature 1
    dict(clip_eps=0.3, value_clip=0.5, vf_coef=0.7, kl_mode="reward", kl_estimator="k1", temperature=0.0),
]


@pytest.mark.parametrize(
    "case",
    LOSS_CASES,
    ids=lambda c: f"clip{c['clip_eps']}-vf{c['vf_coef']}-{c['kl_mode']}-t{c.get('temperature', 1.0)}",
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
            out = trainer.model(mb["sequences"], mb["attention_mask"], P, case.get("temperature") or 1.0)
            if case.get("temperature"):  # the temperature changes the log-probs
                at_one = trainer.model(mb["sequences"], mb["attention_mask"], P).logps
                assert float(((out.logps - at_one) * m).abs().max()) > 1e-2
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


def _recorded_update(trainer, roll, accum: int, rows: list | None = None, max_grad_norm: float = 0.0):
    """ppo_update with the optimizer's step replaced by a recorder of the gradients it would apply (and,
    given ``rows``, the row indices of every micro-batch appended to it)."""
    from rlhfops.train import ppo_update as upd
    from rlhfops.train.ppo_update import ppo_update

    real_slice = upd._slice

    def recording_slice(r, idx):
        if rows is not None:
            rows.append(idx.tolist())
        return real_slice(r, idx)

    cfg = dict(
        GAE_CASES[0],
        gradient_accumulation_steps=accum,
        minibatch_size=2,
        ppo_epochs=2,
        max_grad_norm=max_grad_norm,
    )
    trainer.config = trainer.config.model_copy(update=cfg)
    seen = []
    params = dict(trainer.model.named_parameters())
    trainer.optimizer.step = lambda *a, **k: seen.append(
        {n: p.grad.detach().clone() for n, p in params.items() if p.grad is not None}
    )
    modes = []  # the update's forward passes run in training mode (dropout on, checkpointing active)
    hook = trainer.model.register_forward_pre_hook(lambda mod, _args: modes.append(mod.training))
    trainer.model.eval()  # as a rollout or an evaluation may leave it
    upd._slice = recording_slice
    try:
        torch.manual_seed(123)  # the minibatch order is drawn from torch's generator
        stats = ppo_update(trainer, roll)
    finally:
        del trainer.optimizer.step
        hook.remove()
        upd._slice = real_slice
    assert modes and all(modes)
    return seen, stats


def test_update_steps_once_per_minibatch_and_accumulation_does_not_change_the_gradient(gae_trainer):
    trainer = gae_trainer
    trainer.config = trainer.config.model_copy(update=GAE_CASES[0])
    roll = _rollout(trainer, 0.3, seed=7)
    saved = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    perturb(trainer.model, scale=0.03, seed=11)
    try:
        rows = []
        one, stats = _recorded_update(trainer, roll, 1, rows)
        two, _ = _recorded_update(trainer, roll, 2)
        clipped, clipped_stats = _recorded_update(trainer, roll, 1, max_grad_norm=0.05)
    finally:
        trainer.model.load_state_dict(saved)
    assert len(one) == len(two) == 2 * (4 // 2)  # ppo_epochs x minibatches per epoch
    assert len(rows) == 4 and all(len(r) == 2 for r in rows)  # minibatch_size 2
    # max_grad_norm: each minibatch's gradient scaled to that norm; the logged norm is the mean pre-clip norm
    norms = [float(torch.cat([g.flatten() for g in step.values()]).norm()) for step in one]
    assert "grad_norm" not in stats and min(norms) > 0.05
    assert clipped_stats["grad_norm"] == pytest.approx(sum(norms) / len(norms), rel=1e-4)
    for raw, got, norm in zip(one, clipped, norms, strict=True):
        assert_grads_close(got, {k: g * (0.05 / norm) for k, g in raw.items()})
    for epoch in (rows[:2], rows[2:]):  # every epoch trains on every row once
        assert sorted(epoch[0] + epoch[1]) == [0, 1, 2, 3]
    for a, b in zip(one, two, strict=True):
        assert_grads_close(b, a)
    m = roll.mask.bool()
    g, v = roll.returns[m].double(), roll.values[m].double()
    ev = 1 - ((g - v) - (g - v).mean()).pow(2).mean() / (g - g.mean()).pow(2).mean()
    assert stats["explained_variance"] == pytest.approx(float(ev), rel=1e-6)
    # one process, one micro-batch per minibatch, KL in the reward: each minibatch's loss is its policy
    # loss plus vf_coef x its value loss, so the means over minibatches are too
    vf = trainer.config.vf_coef
    assert stats["loss"] == pytest.approx(stats["policy_loss"] + vf * stats["value_loss"], rel=1e-5, abs=1e-7)
    assert {"policy_loss", "value_loss", "clip_fraction", "approx_kl", "loss"} <= stats.keys()


def test_the_global_sum_of_token_counts_is_exact_beyond_float32():
    """With several processes the token and row counts are all-reduced in float64: a count past 2**24 is
    not representable in float32 (2**24 + 1 would come back as 2**24)."""
    from types import SimpleNamespace

    from rlhfops.train.ppo_update import _global_sum

    class TwoProcesses:
        device = torch.device("cpu")

        def reduce(self, t, reduction):
            assert reduction == "sum"
            return t + t  # the other process holds as many

    trainer = SimpleNamespace(world=2, accelerator=TwoProcesses())
    assert _global_sum(trainer, float(2**24 + 1)) == 2.0 * (2**24 + 1)
    assert _global_sum(SimpleNamespace(world=1), 3.0) == 3.0


class _LengthJudge:
    """A stand-in judge: the length of each response's text."""

    def score(self, responses):
        return torch.tensor([float(len(t)) for t in responses.texts])


def test_global_row_ids_interleave_prompts_over_processes():
    from rlhfops.train.ppo_rollout import global_row_ids

    # process 1 of 2 holds prompts 1 and 3 of the iteration, 3 samples each
    assert global_row_ids(2, 3, rank=1, world=2) == [3, 4, 5, 9, 10, 11]
    assert global_row_ids(2, 3, rank=0, world=1) == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize("reference", [False, True])
def test_evaluate_policy_matches_an_independent_computation(env, gae_trainer, reference):
    """The held-out evaluation: the same samples as the sampler draws with the evaluation seed (from the
    policy, or from the reference copy), then score, KL (summed k3), length, EOS share and diversity
    recomputed here; batches of eval_batch_size prompts share one generator."""
    trainer = gae_trainer
    before = trainer.config
    trainer.config = trainer.config.model_copy(
        # its own batch (eval_batch_size), not the training batch: 3 would draw other samples
        update={**GAE_CASES[0], "batch_size": 3, "eval_batch_size": 2, "temperature": 0.8, "top_p": 0.6}
    )
    try:
        _check_evaluation(env, trainer, reference)
    finally:
        trainer.config = before


def _check_evaluation(env, trainer, reference, temperature=0.8):
    """``temperature`` 0: greedy replies, log-probs of policy and reference at temperature 1."""
    from rlhfops.measures.diversity import distinct_n, looping_share, opening_share
    from rlhfops.models.generate import generate
    from rlhfops.train.ppo_rollout import evaluate_policy

    prompts = list(trainer.train_rows[:5])
    assert len(prompts) == 5  # three batches of 2, 2 and 1
    cfg, tok, ref_lm = trainer.config, trainer.tokenizer, env[3]
    assert cfg.temperature == temperature
    t = temperature or 1.0
    trainer.judge = _LengthJudge()
    try:
        got = (
            evaluate_policy(trainer, prompts, reference=True)
            if reference
            else evaluate_policy(trainer, prompts)
        )
    finally:
        trainer.judge = None
    # the reference of a LoRA policy is the base model (the adapter off): the tiny model as saved
    sampler = (trainer.reference.copy or ref_lm) if reference else trainer.model.lm
    gen = torch.Generator().manual_seed(cfg.seed + 424242)
    resp, scores, kls, no_eos = [], [], [], []
    for i in range(0, 5, 2):
        part = prompts[i : i + 2]
        out = generate(
            sampler,
            part,
            max_new_tokens=cfg.max_new_tokens,
            temperature=temperature,
            top_p=0.6,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            generator=gen,
        )
        for j, prompt in enumerate(part):
            r = out.response_ids[j][out.response_mask[j].bool()].tolist()
            with torch.no_grad():
                lp = torch.log_softmax(
                    trainer.model.lm(input_ids=torch.tensor([prompt + r])).logits[0] / t, -1
                )
                rp = torch.log_softmax(ref_lm(input_ids=torch.tensor([prompt + r])).logits[0] / t, -1)
            idx = torch.tensor(r)[:, None]
            d = (lp[len(prompt) - 1 : -1].gather(-1, idx) - rp[len(prompt) - 1 : -1].gather(-1, idx)).double()
            kls.append(float((torch.exp(-d) - 1 + d).sum()))
            resp.append(r)
            scores.append(-abs(len(r) - TARGET) / TARGET)
            no_eos.append(r[-1] != tok.eos_token_id)
    texts = tok.batch_decode(resp, skip_special_tokens=True)
    assert got["prompts"] == 5 and got["examples"] == texts[:3]
    assert got["score"] == pytest.approx(sum(scores) / 5)
    assert got["score_sem"] == pytest.approx(
        float(torch.tensor(scores, dtype=torch.float64).std(unbiased=False)) / 5**0.5
    )
    assert max(kls) > 1e-3  # the policy has moved from the reference
    if reference:
        # the reference's KL to itself is 0 exactly (ppo_rollout.policy_eval_logps), not the moved
        # policy's KL on the reference's replies
        assert got["kl"] == 0.0
    else:
        assert got["kl"] == pytest.approx(sum(kls) / 5, rel=1e-4, abs=1e-6)
    assert got["response_length"] == pytest.approx(sum(map(len, resp)) / 5)
    assert got["hit_length_limit"] == pytest.approx(sum(no_eos) / 5)
    assert got["distinct_2"] == distinct_n(resp, 2)
    assert got["opening_share"] == opening_share(texts) and got["looping_share"] == looping_share(texts)
    judged = torch.tensor([float(len(t)) for t in texts], dtype=torch.float64)
    assert got["judge_score"] == pytest.approx(float(judged.mean()))
    assert got["judge_sem"] == pytest.approx(float(judged.std(unbiased=False)) / 5**0.5)


def test_a_rollout_without_row_ids_is_one_process_holding_every_row(gae_trainer):
    """``Rollout.row_ids`` None means rows 0..B-1 (one process): the update is the same as with them; with
    several processes the global row ids are required."""
    trainer = gae_trainer
    trainer.config = trainer.config.model_copy(update=GAE_CASES[0])
    roll = _rollout(trainer, 0.3, seed=7)
    saved = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    try:
        with_ids, _ = _recorded_update(trainer, roll, 1)
        roll.row_ids = None
        without, _ = _recorded_update(trainer, roll, 1)
        trainer.world = 2
        with pytest.raises(ValueError, match="needs the rollout's global row_ids"):
            _recorded_update(trainer, roll, 1)
    finally:
        trainer.world = 1
        trainer.model.load_state_dict(saved)
    assert len(with_ids) == len(without) == 4
    for a, b in zip(with_ids, without, strict=True):
        assert_grads_close(b, a)


def test_a_micro_batch_of_one_token_reports_that_tokens_loss(gae_trainer):
    """The logged policy loss is the micro-batch's own token mean, whatever share of the global token
    count it holds: with one response token, that token's loss. Right after the rollout the ratio is 1, so
    the token's clipped loss is minus its advantage."""
    trainer = gae_trainer
    trainer.config = trainer.config.model_copy(update=GAE_CASES[0])
    roll = _rollout(trainer, 0.3, seed=3)
    mb = _slice(roll, torch.tensor([0]))
    mb["mask"] = torch.zeros_like(mb["mask"])
    mb["mask"][0, 0] = 1.0
    with torch.no_grad():
        _, stats = minibatch_loss(trainer, mb, roll.prompt_length, num_tokens_global=4.0)
    adv = float(mb["advantages"][0, 0])
    assert abs(adv) > 1e-3
    assert stats["policy_loss"] == pytest.approx(-adv, rel=1e-4, abs=1e-6)


def test_a_minibatch_of_one_response_token_is_not_averaged_over_more(gae_trainer):
    """A minibatch whose responses hold one token in all (one row that is just EOS): its loss is that
    token's policy loss + vf_coef x its value loss, not a share of a larger count."""
    import dataclasses

    from rlhfops.train.ppo_update import ppo_update

    trainer = gae_trainer
    before = trainer.config
    trainer.config = trainer.config.model_copy(
        update={**GAE_CASES[0], "minibatch_size": 1, "ppo_epochs": 1, "max_grad_norm": 0}
    )
    roll = _rollout(trainer, 0.3, seed=3)
    one = {f.name: getattr(roll, f.name) for f in dataclasses.fields(roll)}
    for name, v in one.items():
        if isinstance(v, torch.Tensor) and v.dim() >= 1 and v.shape[0] == roll.mask.shape[0]:
            one[name] = v[:1].clone()
    one["mask"] = torch.zeros_like(one["mask"])
    one["mask"][0, 0] = 1.0
    one["row_ids"] = torch.tensor([0])
    trainer.optimizer.step = lambda *a, **k: None
    try:
        stats = ppo_update(trainer, dataclasses.replace(roll, **one))
    finally:
        del trainer.optimizer.step
        trainer.optimizer.zero_grad(set_to_none=True)
        trainer.config = before
    vf = trainer.config.vf_coef
    assert abs(stats["value_loss"]) > 1e-6
    assert stats["loss"] == pytest.approx(stats["policy_loss"] + vf * stats["value_loss"], rel=1e-5, abs=1e-7)


def test_the_rollout_scores_its_samples_in_eval_mode(gae_trainer):
    """Sampling and the policy's scoring forward (old log-probs, values) run without dropout, whatever mode
    the model was in; the model's training mode is restored after."""
    trainer = gae_trainer
    trainer.config = trainer.config.model_copy(update=GAE_CASES[0])
    modes = []
    hooks = [
        trainer.model.register_forward_pre_hook(lambda mod, _args: modes.append(("policy", mod.training))),
        trainer.model.lm.register_forward_pre_hook(lambda mod, _args: modes.append(("lm", mod.training))),
    ]
    trainer.model.train()
    trainer.judge = _LengthJudge()
    try:
        roll = _rollout(trainer, 0.3, seed=2)
    finally:
        trainer.judge = None
        for h in hooks:
            h.remove()
    assert roll.metrics["judge_score"] == pytest.approx(sum(len(t) for t in roll.texts) / len(roll.texts))
    assert ("policy", False) in modes and ("lm", False) in modes
    assert not any(training for _, training in modes)
    assert trainer.model.training and trainer.model.lm.training


def test_evaluate_policy_at_temperature_0_is_greedy_with_log_probs_at_temperature_1(env, gae_trainer):
    """Greedy evaluation: the replies are the most likely tokens and the KL is measured at temperature 1
    (``cfg.temperature or 1.0``), for the policy and the reference alike."""
    trainer = gae_trainer
    before = trainer.config
    trainer.config = trainer.config.model_copy(
        update={**GAE_CASES[0], "batch_size": 3, "eval_batch_size": 2, "temperature": 0.0, "top_p": 0.6}
    )
    try:
        _check_evaluation(env, trainer, reference=False, temperature=0.0)
    finally:
        trainer.config = before


def test_the_reference_of_a_lora_policy_is_the_base_model_with_the_adapter_off(env):
    """A LoRA policy keeps no reference copy: evaluating the reference samples the policy with its adapter
    disabled, i.e. the base model; its KL to itself is 0."""
    tmp, model, prompts, _ = env
    extra = ["lora.enabled=true", "lora.r=4", "lora.alpha=8", "kl_estimator=k1"]
    trainer = make_trainer(PPOTrainer, PPOConfig, _args(tmp, model, prompts, "lora", extra))
    try:
        assert trainer.reference.copy is None
        gen = torch.Generator().manual_seed(3)
        with torch.no_grad():  # move the adapter only: the base weights stay the saved tiny model's
            for name, p in trainer.model.lm.named_parameters():
                if "lora_" in name:
                    p.add_(torch.randn(p.shape, generator=gen) * 0.3)
        trainer.config = trainer.config.model_copy(
            # its own batch (eval_batch_size), not the training batch: 3 would draw other samples
            update={**GAE_CASES[0], "batch_size": 3, "eval_batch_size": 2, "temperature": 0.8, "top_p": 0.6}
        )
        _check_evaluation(env, trainer, reference=True)
    finally:
        trainer.cleanup()


def test_generate_greedy_ignores_the_sampling_temperature(gae_trainer):
    """``_generate(greedy=True)`` samples at temperature 0 (the most likely token), whatever
    ``cfg.temperature`` is."""
    from rlhfops.models.generate import generate
    from rlhfops.train.ppo_rollout import _generate

    trainer = gae_trainer
    before = trainer.config
    trainer.config = trainer.config.model_copy(update={**GAE_CASES[0], "temperature": 1.0})
    prompts = trainer.rows_for_step(1)
    try:
        got = _generate(trainer, prompts, torch.Generator().manual_seed(5), greedy=True)
        tok = trainer.tokenizer
        kw = dict(max_new_tokens=6, top_p=1.0, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        with torch.no_grad():
            greedy = generate(trainer.model.lm.eval(), prompts, temperature=0.0, **kw)
            sampled = generate(
                trainer.model.lm, prompts, temperature=1.0, generator=torch.Generator().manual_seed(5), **kw
            )
    finally:
        trainer.config = before
        trainer.model.train()
    assert torch.equal(got.sequences, greedy.sequences)
    assert not torch.equal(greedy.sequences, sampled.sequences)  # the test can tell the two apart


_SPACE, _A = 223, 67  # the tiny tokenizer's bytes " " and "a"


def _force_alternation(lm):
    """Hooks making ``lm`` reply " a a a ...": the token after " " is "a", after anything else " " (its
    logit + 100, over the likelier-EOS hook), so every reply repeats its n-grams. Returns the handles."""
    seen = {}

    def keep_ids(_module, args):
        seen["ids"] = args[0]

    def force(_module, _args, logits):
        ids = seen["ids"][:, -logits.shape[1] :]
        nxt = torch.where(ids == _SPACE, _A, _SPACE)
        return logits.clone().scatter_add_(
            -1, nxt[..., None], torch.full((*nxt.shape, 1), 100.0, dtype=logits.dtype)
        )

    return [
        lm.get_input_embeddings().register_forward_pre_hook(keep_ids),
        lm.get_output_embeddings().register_forward_hook(force),
    ]


class _AlternatingBackend:
    """A non-default rollout backend: the built-in sampler with the alternation forced while it samples."""

    exact_logprobs = False
    last_generate_seconds = 0.5
    last_sync_seconds = 0.25

    def generate(self, lm, prompts, **kw):
        from rlhfops.models.generate import generate

        hooks = _force_alternation(lm)
        try:
            return generate(lm, prompts, **kw)
        finally:
            for h in hooks:
                h.remove()


def test_the_rollout_samples_with_its_backend_and_logs_its_n_grams(env, gae_trainer):
    """The rollout samples with ``trainer.rollout_backend`` (here one whose replies repeat " a"), and its
    logged distinct-2 and repeated-4-gram share are of n = 2 and n = 4: with repeating replies other n
    give other values."""
    from rlhfops.measures.diversity import distinct_n, repeated_ngram_fraction

    trainer = gae_trainer
    before, backend = trainer.config, trainer.rollout_backend
    trainer.config = trainer.config.model_copy(update=GAE_CASES[0])
    trainer.rollout_backend = _AlternatingBackend()
    try:
        roll = _rollout(trainer, 0.3, seed=4)
    finally:
        trainer.config, trainer.rollout_backend = before, backend
    m, P = roll.mask, roll.prompt_length
    resp = [roll.sequences[i, P:][m[i].bool()].tolist() for i in range(m.shape[0])]
    assert resp == [[_SPACE, _A] * 3] * len(resp)  # the backend's replies, not the built-in sampler's
    got = roll.metrics
    assert (got["generate_seconds"], got["sync_seconds"]) == (0.5, 0.25)
    assert got["distinct_2"] == distinct_n(resp, 2) != distinct_n(resp, 3)
    assert got["repeated_4gram"] == repeated_ngram_fraction(resp, 4) != repeated_ngram_fraction(resp, 5)


@pytest.mark.parametrize("eval_batch_size, sizes", [(2, [2, 2, 1]), (5, [5])])
def test_evaluate_policy_generates_eval_batch_size_replies_per_call(
    gae_trainer, monkeypatch, eval_batch_size, sizes
):
    """The held-out evaluation's batch is ``eval_batch_size`` (not the training batch, 3 here): 5 prompts
    go to the sampler as 2 + 2 + 1 or as one call of 5."""
    from rlhfops.train import ppo_rollout

    calls = []
    real = ppo_rollout._generate

    def counting(trainer, prompts, gen, *args, **kwargs):
        calls.append(len(prompts))
        return real(trainer, prompts, gen, *args, **kwargs)

    monkeypatch.setattr(ppo_rollout, "_generate", counting)
    trainer = gae_trainer
    before = trainer.config
    trainer.config = trainer.config.model_copy(
        update={**GAE_CASES[0], "batch_size": 3, "eval_batch_size": eval_batch_size, "max_new_tokens": 4}
    )
    try:
        ppo_rollout.evaluate_policy(trainer, list(trainer.train_rows[:5]))
    finally:
        trainer.config = before
    assert calls == sizes


def test_evaluate_policy_logs_distinct_2_and_at_most_three_loop_examples(gae_trainer):
    """Held-out replies that all loop: distinct-2 is of n = 2 (n = 3 differs on them) and three of the
    five looping replies are kept as examples."""
    from rlhfops.measures.diversity import distinct_n, loops
    from rlhfops.train.ppo_rollout import evaluate_policy

    trainer = gae_trainer
    before = trainer.config
    trainer.config = trainer.config.model_copy(
        update={**GAE_CASES[0], "eval_batch_size": 5, "max_new_tokens": 10}
    )
    hooks = _force_alternation(trainer.model.lm)
    try:
        got = evaluate_policy(trainer, list(trainer.train_rows[:5]))
    finally:
        trainer.config = before
        for h in hooks:
            h.remove()
    resp = [[_SPACE, _A] * 5] * 5
    assert got["examples"] == [" a a a a a"] * 3 and loops(" a a a a a")
    assert got["looping_share"] == 1.0
    assert got["loop_examples"] == [" a a a a a"] * 3
    assert got["distinct_2"] == distinct_n(resp, 2) != distinct_n(resp, 3)


class _OneOfTwoProcesses:
    """A stand-in accelerator: this process is ``rank`` of two, and the other process holds the same numbers
    (every all-reduce sum is twice this process's value; its "still sampling" flag is this one's). Records
    each backward and whether it ran under ``no_sync`` (where DDP skips the gradient all-reduce)."""

    num_processes = 2
    device = torch.device("cpu")

    def __init__(self, real, rank: int, distributed_type=None):
        from accelerate.utils import DistributedType

        self.real, self.process_index = real, rank
        self.distributed_type = distributed_type or DistributedType.MULTI_CPU
        self.backwards: list[bool] = []
        self._no_sync = False
        self.reduces = 0

    def unwrap_model(self, model):
        return self.real.unwrap_model(model)

    def reduce(self, t, reduction):
        assert reduction == "sum"
        self.reduces += 1
        return t + t

    def no_sync(self, _model):
        import contextlib

        @contextlib.contextmanager
        def quiet():
            self._no_sync = True
            try:
                yield
            finally:
                self._no_sync = False

        return quiet()

    def backward(self, loss):
        self.backwards.append(self._no_sync)
        loss.backward()


def _whiten_over_both(x, m, shift_mean=True):
    """Whitening with the statistics of a global batch of these rows twice (the other process's copy)."""
    return _whiten(torch.cat([x, x]), torch.cat([m, m]), shift_mean)[: x.shape[0]]


def test_a_process_of_two_samples_its_global_rows_and_whitens_over_both(gae_trainer):
    """Process 1 of 2 holds prompts 1 and 3 of the iteration's 4: it samples rows 1 and 3 of the global
    batch (the replies one process holding all four draws for them), and whitens rewards and advantages
    with the count, sum and squared deviations summed over both processes (here the other holds the same)."""
    trainer = gae_trainer
    before, real = trainer.config, trainer.accelerator
    case = GAE_CASES[1]  # k2 in the reward, rewards whitened too
    trainer.config = trainer.config.model_copy(update=case)
    batch, beta = trainer.rows_for_step(1), 0.3
    assert len(batch) == 4 and trainer.config.samples_per_prompt == 1
    try:
        whole = make_rollout(trainer, batch, torch.Generator().manual_seed(6), beta=beta)
        trainer.accelerator = _OneOfTwoProcesses(real, rank=1)
        gen = torch.Generator().manual_seed(6)
        roll = make_rollout(trainer, batch[1::2], gen, beta=beta, batch_prompts=4)
    finally:
        trainer.config, trainer.accelerator = before, real
    assert roll.row_ids.tolist() == [1, 3]
    assert roll.texts == [whole.texts[1], whole.texts[3]]
    m = roll.mask
    kl = _kl(case["kl_estimator"], roll.old_logps, roll.ref_logps) * m
    rewards = -beta * kl
    for i in range(m.shape[0]):
        rewards[i, int(m[i].sum()) - 1] += roll.scores[i]
    rewards = _whiten_over_both(rewards, m, shift_mean=False)
    adv, ret = _gae(rewards, roll.values, m, case["gamma"], case["lam"])
    torch.testing.assert_close(roll.returns, ret, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(roll.advantages, _whiten_over_both(adv, m), rtol=1e-4, atol=1e-5)
    # the test can tell: this process's rows alone give other advantages
    assert not torch.allclose(_whiten(adv, m), _whiten_over_both(adv, m), rtol=1e-3)


def test_sharded_weights_sample_in_lock_step_through_the_roots_forward(gae_trainer):
    """Under FSDP / ZeRO-3 every process keeps stepping until every process's rows are finished (the flag
    "still busy" summed over processes is 0), and the sampler calls the policy inside the sharded root's
    forward: the same replies as without sharding."""
    from types import SimpleNamespace

    from accelerate.utils import DistributedType

    from rlhfops.train.ppo_rollout import _generate, every_process_done

    class Peer:  # FSDP over two processes; the other process's "still busy" flag is `other`
        distributed_type, device, num_processes = DistributedType.FSDP, torch.device("cpu"), 2

        def __init__(self, other):
            self.other = other

        def reduce(self, t, reduction):
            assert reduction == "sum"
            return t + self.other

    assert every_process_done(SimpleNamespace(accelerator=_OneOfTwoProcesses(None, 0))) is None  # DDP
    done_there = every_process_done(SimpleNamespace(accelerator=Peer(0.0)))
    busy_there = every_process_done(SimpleNamespace(accelerator=Peer(1.0)))
    assert done_there(True) is True and done_there(False) is False
    assert busy_there(True) is False and busy_there(False) is False

    trainer = gae_trainer
    before, real = trainer.config, trainer.accelerator
    trainer.config = trainer.config.model_copy(update=GAE_CASES[0])
    prompts = trainer.rows_for_step(1)
    calls = []
    hook = trainer.model.register_forward_pre_hook(lambda _m, _a, kw: calls.append(kw), with_kwargs=True)
    try:
        plain = _generate(trainer, prompts, torch.Generator().manual_seed(5))
        assert not calls
        fsdp = trainer.accelerator = _OneOfTwoProcesses(real, 0, DistributedType.FSDP)
        sharded = _generate(trainer, prompts, torch.Generator().manual_seed(5))
    finally:
        hook.remove()
        trainer.config, trainer.accelerator = before, real
    assert calls and all("inside" in kw for kw in calls)
    assert fsdp.reduces > 0  # the sampler asked every process whether its rows were finished
    assert torch.equal(sharded.sequences, plain.sequences)


def test_a_process_without_rows_in_a_minibatch_joins_its_gradient_all_reduce(gae_trainer):
    """Two processes, one row each (this one holds global row 1), minibatches of one row: in the minibatch of
    the other process's row this process runs one masked-out row, so it still backpropagates (a zero
    gradient for every parameter) outside ``no_sync``, and DDP's all-reduce is joined by every process."""
    import dataclasses

    from rlhfops.train.ppo_update import ppo_update

    trainer = gae_trainer
    before, real = trainer.config, trainer.accelerator
    trainer.config = trainer.config.model_copy(
        update={**GAE_CASES[0], "minibatch_size": 1, "ppo_epochs": 1, "max_grad_norm": 0}
    )
    roll = _rollout(trainer, 0.3, seed=3)
    one = {
        f.name: getattr(roll, f.name)[:1].clone()
        for f in dataclasses.fields(roll)
        if isinstance(getattr(roll, f.name), torch.Tensor) and getattr(roll, f.name).dim() >= 1
    }
    one["row_ids"] = torch.tensor([1])
    stub = _OneOfTwoProcesses(real, rank=1)
    trainable = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    steps = []
    trainer.optimizer.step = lambda *a, **k: steps.append(
        {n: p.grad.detach().clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    )
    trainer.accelerator, trainer.world = stub, 2
    try:
        torch.manual_seed(0)
        ppo_update(trainer, dataclasses.replace(roll, **one))
    finally:
        del trainer.optimizer.step
        trainer.optimizer.zero_grad(set_to_none=True)
        trainer.config, trainer.accelerator, trainer.world = before, real, 1
    assert stub.backwards == [False, False]  # one backward per minibatch, each with the gradient all-reduce
    assert len(steps) == 2 and all(s.keys() == trainable for s in steps)
    zero = [all(float(g.abs().max()) == 0.0 for g in s.values()) for s in steps]
    assert sorted(zero) == [False, True]  # the other process's row: a zero gradient from this one
