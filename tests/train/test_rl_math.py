"""rl_math: GAE, whitening, token rewards, PPO losses, critic-free advantages."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlhfops.errors import ConfigError
from rlhfops.train.rl_math import (
    apply_no_eos_penalty,
    assemble_token_rewards,
    compute_gae,
    explained_variance,
    group_normalized_advantages,
    ppo_policy_loss,
    ppo_value_loss,
    rloo_advantages,
    whiten,
)


def close(actual, expected, rtol=1e-5, atol=1e-7):
    expected = torch.as_tensor(expected, dtype=actual.dtype)
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------------------------- GAE


def gae_loop_reference(rewards, values, lengths, gamma, lam):
    """Plain Python GAE, one episode at a time, terminal after the last valid token (value 0)."""
    adv = [[0.0] * len(r) for r in rewards]
    ret = [[0.0] * len(r) for r in rewards]
    for b, n in enumerate(lengths):
        last = 0.0
        for t in reversed(range(n)):
            next_v = values[b][t + 1] if t + 1 < n else 0.0
            delta = rewards[b][t] + gamma * next_v - values[b][t]
            last = delta + gamma * lam * last
            adv[b][t] = last
            ret[b][t] = last + values[b][t]
    return adv, ret


def test_gae_hand_computed_1x3():
    # gamma 0.9, lam 0.8 (gamma*lam = 0.72); r = [1, 0, 2], V = [0.5, 1, 1.5], terminal after t=2
    #   t=2: delta = 2 + 0 - 1.5 = 0.5                 A2 = 0.5
    #   t=1: delta = 0 + 0.9*1.5 - 1 = 0.35            A1 = 0.35 + 0.72*0.5 = 0.71
    #   t=0: delta = 1 + 0.9*1 - 0.5 = 1.4             A0 = 1.4 + 0.72*0.71 = 1.9112
    #   returns = A + V = [2.4112, 1.71, 2.0]
    out = compute_gae(
        torch.tensor([[1.0, 0.0, 2.0]]), torch.tensor([[0.5, 1.0, 1.5]]), torch.ones(1, 3), gamma=0.9, lam=0.8
    )
    close(out.advantages, [[1.9112, 0.71, 0.5]])
    close(out.returns, [[2.4112, 1.71, 2.0]])


def test_gae_padding_is_terminal_and_ignored():
    # row 0 is the 1x3 case above plus a pad with junk; row 1 is [1] with V=[0.25]: A = 1 - 0.25 = 0.75
    rewards = torch.tensor([[1.0, 0.0, 2.0, 50.0], [1.0, 7.0, 7.0, 7.0]])
    values = torch.tensor([[0.5, 1.0, 1.5, 99.0], [0.25, -9.0, -9.0, -9.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])
    out = compute_gae(rewards, values, mask, gamma=0.9, lam=0.8)
    close(out.advantages, [[1.9112, 0.71, 0.5, 0.0], [0.75, 0.0, 0.0, 0.0]])
    close(out.returns, [[2.4112, 1.71, 2.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="right-padded"):
        compute_gae(rewards, values, torch.tensor([[0, 1, 1, 0], [1, 0, 0, 0]]), 0.9, 0.8)


@pytest.mark.parametrize("seed", range(5))
def test_gae_vectorised_matches_python_loop(seed):
    gen = torch.Generator().manual_seed(seed)
    b, t = 6, 9
    gamma, lam = float(torch.rand((), generator=gen)), float(torch.rand((), generator=gen))
    rewards = torch.randn(b, t, generator=gen, dtype=torch.float64)
    values = torch.randn(b, t, generator=gen, dtype=torch.float64)
    lengths = torch.randint(1, t + 1, (b,), generator=gen).tolist()
    mask = torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]
    out = compute_gae(rewards, values, mask, gamma, lam)
    adv, ret = gae_loop_reference(rewards.tolist(), values.tolist(), lengths, gamma, lam)
    torch.testing.assert_close(out.advantages, torch.tensor(adv, dtype=torch.float64), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(out.returns, torch.tensor(ret, dtype=torch.float64), rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------------------- whiten


def test_whiten_hand_values():
    # x = [1,2,3,4]: mean 2.5, unbiased var = (2.25+0.25+0.25+2.25)/3 = 5/3, std = 1.290994449
    # whitened = [-1.5, -0.5, 0.5, 1.5] / 1.290994449 = [-1.161895004, -0.387298335, 0.387298335, 1.161895004]
    expected = [-1.161895004, -0.387298335, 0.387298335, 1.161895004]
    close(whiten(torch.tensor([1.0, 2.0, 3.0, 4.0])), expected)
    close(whiten(torch.tensor([1.0, 2.0, 3.0, 4.0]), shift_mean=False), [e + 2.5 for e in expected])
    # masked: same numbers at the valid positions, 0 at the padding
    x = torch.tensor([[1.0, 2.0, 99.0], [3.0, 4.0, float("nan")]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 0]])
    close(whiten(x, mask), [[expected[0], expected[1], 0.0], [expected[2], expected[3], 0.0]])
    close(whiten(torch.tensor([5.0]), shift_mean=False), [5.0])  # one element: variance taken as 0
    with pytest.raises(ValueError, match="no element"):
        whiten(x, torch.zeros_like(mask))


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.floats(-100, 100), min_size=2, max_size=12),
    pad=st.integers(1, 4),
    junk=st.floats(-1e6, 1e6),
)
def test_whiten_ignores_padding(values, pad, junk):
    x = torch.tensor(values, dtype=torch.float64)
    padded = torch.cat([x, torch.full((pad,), junk, dtype=torch.float64)])
    mask = torch.cat([torch.ones(len(values)), torch.zeros(pad)]).bool()
    torch.testing.assert_close(whiten(padded, mask)[: len(values)], whiten(x), rtol=1e-9, atol=1e-9)


# ------------------------------------------------------------------------------- rewards / no-EOS


def test_assemble_token_rewards_with_padding():
    # beta 0.5: row 0 = -0.5*[0.1, 0.2, 0.3] + score 1 at t=2 = [-0.05, -0.1, 0.85]
    #           row 1 = -0.5*0.4 + score 2 at t=0 = [1.8, 0, 0] (pad KL is junk / NaN and ignored)
    scores = torch.tensor([1.0, 2.0])
    kl = torch.tensor([[0.1, 0.2, 0.3], [0.4, float("nan"), 9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    close(assemble_token_rewards(scores, kl, 0.5, mask), [[-0.05, -0.1, 0.85], [1.8, 0.0, 0.0]])
    with pytest.raises(ValueError, match=r"rows \[1\] have no valid token"):
        assemble_token_rewards(scores, kl, 0.5, torch.tensor([[1, 1, 1], [0, 0, 0]]))


def test_apply_no_eos_penalty_subtracts():
    out = apply_no_eos_penalty(torch.tensor([1.0, 2.0, -1.0]), torch.tensor([True, False, False]), 1.5)
    close(out, [1.0, 0.5, -2.5])  # [1, 2 - 1.5, -1 - 1.5]
    with pytest.raises(ConfigError, match="give a value >= 0"):
        apply_no_eos_penalty(torch.tensor([1.0]), torch.tensor([False]), -1.0)


# ------------------------------------------------------------------------------------- PPO losses


def test_ppo_policy_loss_clipping_active():
    # eps 0.2; ratios rho = [1.5, 1.5, 0.5, 0.5], A = [+1, -1, +1, -1], 5th token is padding
    #   t0: -A rho = -1.5, -A clip = -1.2 -> max -1.2 (clipped, no gradient)
    #   t1: -A rho =  1.5, -A clip =  1.2 -> max  1.5 (unclipped)
    #   t2: -A rho = -0.5, -A clip = -0.8 -> max -0.5 (unclipped)
    #   t3: -A rho =  0.5, -A clip =  0.8 -> max  0.8 (clipped)
    #   loss = (-1.2 + 1.5 - 0.5 + 0.8) / 4 = 0.15 ; clip_fraction = 2/4
    #   approx_kl = mean 0.5 ln^2 rho = 0.5 * (0.164402254 + 0.480453014) / 2 = 0.161213817
    old = torch.zeros(1, 5)
    logp = torch.log(torch.tensor([[1.5, 1.5, 0.5, 0.5, 30.0]])).requires_grad_(True)
    adv = torch.tensor([[1.0, -1.0, 1.0, -1.0, 100.0]])
    mask = torch.tensor([[1, 1, 1, 1, 0]])
    out = ppo_policy_loss(logp, old, adv, mask, clip_eps=0.2)
    close(out.loss, 0.15)
    close(out.clip_fraction, 0.5)
    close(out.approx_kl, 0.161213817)
    out.loss.backward()
    # d(-A rho)/d logp = -A rho on unclipped tokens: t1 = 1.5, t2 = -0.5 ; / 4 tokens
    close(logp.grad, [[0.0, 0.375, -0.125, 0.0, 0.0]])


def test_ppo_policy_loss_clipping_inactive():
    # rho = 1.1 inside [0.8, 1.2], A = [2, -1]: loss = mean(-2.2, 1.1) = -0.55, nothing clipped
    out = ppo_policy_loss(
        torch.log(torch.tensor([1.1, 1.1])),
        torch.zeros(2),
        torch.tensor([2.0, -1.0]),
        torch.ones(2),
        clip_eps=0.2,
    )
    close(out.loss, -0.55)
    close(out.clip_fraction, 0.0)
    # global-token normalisation: the same two tokens counted against a step of 4 tokens
    out4 = ppo_policy_loss(
        torch.log(torch.tensor([1.1, 1.1])),
        torch.zeros(2),
        torch.tensor([2.0, -1.0]),
        torch.ones(2),
        clip_eps=0.2,
        num_tokens_global=4,
    )
    close(out4.loss, -0.275)


def test_ppo_value_loss_hand_values():
    # clip 1, old = 0: V = [0.5, 2, -2], G = [1, 3, 1] -> V_clip = [0.5, 1, -1]
    #   err = [0.25, 1, 9], err_clip = [0.25, 4, 4] -> max = [0.25, 4, 9] (t1 clipped)
    #   loss = 0.5 * 13.25 / 3 = 2.208333333 ; clip_fraction = 1/3
    values = torch.tensor([0.5, 2.0, -2.0, 7.0], requires_grad=True)
    mask = torch.tensor([1, 1, 1, 0])
    out = ppo_value_loss(values, torch.zeros(4), torch.tensor([1.0, 3.0, 1.0, -7.0]), mask, clip_value=1.0)
    close(out.loss, 2.208333333)
    close(out.clip_fraction, 1 / 3)
    out.loss.backward()
    # t0: 0.5*2*(0.5-1)/3 = -1/6 ; t1 clipped branch, clamp saturated -> 0 ; t2: 0.5*2*(-2-1)/3 = -1
    close(values.grad, [-1 / 6, 0.0, -1.0, 0.0])
    # no clipping: V within 1 of old -> plain 0.5 MSE = 0.5 * (0.25 + 0.25) / 2 = 0.125
    small = ppo_value_loss(
        torch.tensor([0.5, -0.5]), torch.zeros(2), torch.tensor([1.0, 0.0]), torch.ones(2), 1.0
    )
    close(small.loss, 0.125)
    close(small.clip_fraction, 0.0)


def test_explained_variance():
    # G = [1,2,3,4] var 1.25 ; G - V = [0,0,0,-1] var = 0.25 - 0.0625 = 0.1875 ; EV = 1 - 0.15 = 0.85
    mask = torch.tensor([1, 1, 1, 1, 0])
    ev = explained_variance(torch.tensor([1.0, 2, 3, 5, 0]), torch.tensor([1.0, 2, 3, 4, 100]), mask)
    assert ev == pytest.approx(0.85, rel=1e-9)
    assert math.isnan(explained_variance(torch.zeros(3), torch.ones(3), torch.ones(3)))


# ------------------------------------------------------------------------------ critic-free RL


def test_rloo_advantages_hand_values():
    # k=3: group [1,2,6]: 1-(2+6)/2 = -3, 2-(1+6)/2 = -1.5, 6-(1+2)/2 = 4.5
    #      group [0,0,3]: 0-1.5 = -1.5, -1.5, 3-0 = 3
    out = rloo_advantages(torch.tensor([1.0, 2.0, 6.0, 0.0, 0.0, 3.0]), k=3)
    close(out, [-3.0, -1.5, 4.5, -1.5, -1.5, 3.0])
    with pytest.raises(ConfigError, match="k >= 2"):
        rloo_advantages(torch.tensor([1.0]), k=1)
    with pytest.raises(ValueError):
        rloo_advantages(torch.tensor([1.0, 2.0, 3.0]), k=2)


def test_group_normalized_advantages_hand_values():
    # [1,2,6]: mean 3, unbiased std sqrt((4+1+9)/2) = sqrt 7 = 2.645751311 -> [-2,-1,3] / (2.645751311 + 1e-4)
    # [0,0,3]: mean 1, std sqrt((1+1+4)/2) = sqrt 3 = 1.732050808 -> [-1,-1,2] / (1.732050808 + 1e-4)
    scores = torch.tensor([1.0, 2.0, 6.0, 0.0, 0.0, 3.0])
    s7, s3 = 2.645751311 + 1e-4, 1.732050808 + 1e-4
    close(group_normalized_advantages(scores, 3), [-2 / s7, -1 / s7, 3 / s7, -1 / s3, -1 / s3, 2 / s3])
    close(group_normalized_advantages(scores, 3, scale=False), [-2.0, -1.0, 3.0, -1.0, -1.0, 2.0])
    close(group_normalized_advantages(torch.tensor([5.0, 5.0]), 2), [0.0, 0.0])  # constant group -> 0
