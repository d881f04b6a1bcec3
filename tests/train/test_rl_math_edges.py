"""rl_math edges the full mutation run of train/rl_math.py found untested (issue 17): the whitening eps,
the shape checks, the data-parallel whitening path, ..."""

from __future__ import annotations

import math

import pytest
import torch

from rlhfops.train.rl_math import compute_gae, whiten


def test_whiten_default_eps_is_1e_8():
    # x = [0, 1e-4]: mean 5e-5, unbiased var 5e-9, so eps 1e-8 is most of the denominator
    x = torch.tensor([0.0, 1e-4], dtype=torch.float64)
    half = 5e-5 / math.sqrt(5e-9 + 1e-8)
    torch.testing.assert_close(
        whiten(x), torch.tensor([-half, half], dtype=torch.float64), rtol=1e-12, atol=0
    )
    torch.testing.assert_close(
        whiten(x, eps=0.0), torch.tensor([-1.0, 1.0], dtype=torch.float64) / math.sqrt(2), rtol=1e-12, atol=0
    )


def test_gae_refuses_inputs_that_are_not_b_by_t():
    one_d = torch.zeros(3)
    with pytest.raises(ValueError, match=r"must all be \[B,T\]"):
        compute_gae(one_d, one_d, torch.ones(3), 1.0, 0.95)
    r = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"must all be \[B,T\]"):
        compute_gae(r, torch.zeros(2, 4), torch.ones(2, 3), 1.0, 0.95)


def test_token_rewards_refuse_mismatched_shapes():
    from rlhfops.train.rl_math import assemble_token_rewards

    kl, mask = torch.zeros(2, 3), torch.ones(2, 3)
    with pytest.raises(ValueError, match=r"expected scores \[B\]"):
        assemble_token_rewards(torch.zeros(2), kl, 0.1, torch.ones(2, 4))  # only kl vs mask wrong
    with pytest.raises(ValueError, match=r"expected scores \[B\]"):
        assemble_token_rewards(torch.zeros(3), kl, 0.1, mask)  # only scores wrong


def test_ppo_losses_refuse_a_zero_clip_range_and_accept_a_tiny_one():
    from rlhfops.errors import ConfigError
    from rlhfops.train.rl_math import ppo_policy_loss, ppo_value_loss

    x, m = torch.zeros(1, 2), torch.ones(1, 2)
    with pytest.raises(ConfigError, match="clip range must be > 0"):
        ppo_policy_loss(x, x, x, m, clip_eps=0.0)
    with pytest.raises(ConfigError, match="clip range must be > 0"):
        ppo_value_loss(x, x, x, m, clip_value=0.0)
    assert float(ppo_policy_loss(x, x, x, m, clip_eps=1e-6).loss) == 0.0
    assert float(ppo_value_loss(x, x, x, m, clip_value=1e-6).loss) == 0.0


def test_ppo_policy_ratio_is_taken_against_non_zero_old_log_probs():
    from rlhfops.train.rl_math import ppo_policy_loss

    # old log-probs -1 and -2, new ones ln 1.1 higher: rho = 1.1 inside [0.8, 1.2]; A = [2, -1]
    old = torch.tensor([[-1.0, -2.0]], dtype=torch.float64)
    logp = old + math.log(1.1)
    out = ppo_policy_loss(logp, old, torch.tensor([[2.0, -1.0]], dtype=torch.float64), torch.ones(1, 2), 0.2)
    assert float(out.loss) == pytest.approx(-0.55, rel=1e-12)  # mean(-2 * 1.1, 1 * 1.1)
    assert float(out.approx_kl) == pytest.approx(0.5 * math.log(1.1) ** 2, rel=1e-12)
    assert float(out.clip_fraction) == 0.0


def _two_process_all_sum(other_x, other_mask, global_mean):
    """An all-reduce seen from process A: adds process B's count, sum and squared deviations (from the
    global mean), in the order whiten asks for them."""
    om = other_mask.bool()
    parts = iter(
        [
            om.sum().to(torch.float64),
            other_x.masked_fill(~om, 0.0).sum().to(torch.float64),
            (other_x - global_mean).masked_fill(~om, 0.0).square().sum().to(torch.float64),
        ]
    )
    return lambda t: t + next(parts)


def test_whiten_over_processes_uses_the_global_statistics():
    x = torch.tensor([[1.0, 2.0, 50.0], [3.0, 4.0, 7.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    a, b = x[:1], x[1:]
    ma, mb = mask[:1], mask[1:]
    valid = x[mask.bool()]  # 1, 2, 3, 4, 7
    full = whiten(x, mask)
    got = whiten(a, ma, all_sum=_two_process_all_sum(b, mb, valid.mean()))
    torch.testing.assert_close(got, full[:1], rtol=1e-12, atol=1e-12)
    assert float(got[0, 2]) == 0.0  # padding stays 0
    # by hand: mean 3.4, unbiased var = (5.76 + 1.96 + 0.16 + 0.36 + 12.96) / 4 = 5.3
    torch.testing.assert_close(
        got[0, :2], (torch.tensor([1.0, 2.0], dtype=torch.float64) - 3.4) / math.sqrt(5.3 + 1e-8)
    )
    # scale only: the global mean is added back
    kept = whiten(a, ma, shift_mean=False, all_sum=_two_process_all_sum(b, mb, valid.mean()))
    torch.testing.assert_close(kept, whiten(x, mask, shift_mean=False)[:1], rtol=1e-12, atol=1e-12)
    # one process is the plain whitening
    torch.testing.assert_close(whiten(x, mask, all_sum=lambda t: t), full, rtol=1e-12, atol=1e-12)


def test_whiten_over_processes_edges():
    one = torch.tensor([[5.0, 9.0]], dtype=torch.float64)
    # a single valid element in the whole global batch: variance 0, scale-only keeps the value
    out = whiten(one, torch.tensor([[1, 0]]), shift_mean=False, all_sum=lambda t: t)
    torch.testing.assert_close(out, torch.tensor([[5.0, 0.0]], dtype=torch.float64))
    with pytest.raises(ValueError, match="no element on any process"):
        whiten(one, torch.zeros(1, 2), all_sum=lambda t: t)
    # no valid element here, one on the other process: fine, and this process's rows are all 0
    other = _two_process_all_sum(torch.tensor([[2.0, 4.0]]), torch.tensor([[1, 1]]), torch.tensor(3.0))
    torch.testing.assert_close(
        whiten(one, torch.zeros(1, 2), all_sum=other), torch.zeros(1, 2, dtype=torch.float64)
    )


def test_explained_variance_over_a_2d_batch_and_at_unit_variance():
    from rlhfops.train.rl_math import explained_variance

    # G = [0, 2] has variance exactly 1: a perfect critic explains all of it
    g = torch.tensor([0.0, 2.0])
    assert explained_variance(g, g, torch.ones(2)) == 1.0
    # [B, T] with padding: statistics over every valid token of the batch, not per row
    # valid G = [1, 2, 3, 4] (var 1.25), G - V = [0, 0, 0, -1] (var 0.1875): EV = 0.85
    returns = torch.tensor([[1.0, 2.0, 100.0], [3.0, 4.0, -5.0]])
    values = torch.tensor([[1.0, 2.0, 0.0], [3.0, 5.0, 9.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 0]])
    assert explained_variance(values, returns, mask) == pytest.approx(0.85, rel=1e-9)
    assert math.isnan(explained_variance(values, returns, torch.zeros(2, 3)))


def test_critic_free_advantages_refuse_a_2d_score_tensor():
    from rlhfops.train.rl_math import group_normalized_advantages, rloo_advantages

    for fn in (rloo_advantages, group_normalized_advantages):
        with pytest.raises(ValueError, match=r"scores must be \[num_prompts\*k\]"):
            fn(torch.zeros(2, 2), 2)


def test_no_eos_penalty_of_zero_is_allowed_and_changes_nothing():
    from rlhfops.train.rl_math import apply_no_eos_penalty

    s = torch.tensor([1.0, -2.0])
    torch.testing.assert_close(apply_no_eos_penalty(s, torch.tensor([True, False]), 0.0), s)
    with pytest.raises(ValueError, match="does not match scores"):
        apply_no_eos_penalty(s, torch.tensor([True]), 1.0)


def test_value_clip_is_around_non_zero_old_values():
    from rlhfops.train.rl_math import ppo_value_loss

    # old = [1, -1], V = [1.5, 1] (moves 0.5 and 2), clip 1 -> V_clip = [1.5, 0]; G = [1, 3]
    #   err = [0.25, 4], err_clip = [0.25, 9] -> max = [0.25, 9]: loss = 0.5 * 9.25 / 2 = 2.3125
    out = ppo_value_loss(
        torch.tensor([1.5, 1.0]), torch.tensor([1.0, -1.0]), torch.tensor([1.0, 3.0]), torch.ones(2), 1.0
    )
    assert float(out.loss) == pytest.approx(2.3125, rel=1e-6)
    assert float(out.clip_fraction) == 0.5
