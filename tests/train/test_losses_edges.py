"""train/losses.py rules the loss-value tests do not reach (issue 17, mutation survivors)."""

from __future__ import annotations

import pytest
import torch

from rlhfops.errors import ConfigError
from rlhfops.train.losses import dpo_sigmoid_loss, ipo_loss


@pytest.mark.parametrize("loss", [dpo_sigmoid_loss, ipo_loss])
@pytest.mark.parametrize("beta", [0.0, -0.1])
def test_every_dpo_family_loss_refuses_a_beta_that_is_not_positive(loss, beta):
    lp = torch.tensor([-1.0, -2.0])
    with pytest.raises(ConfigError, match="beta must be > 0"):
        loss(lp, lp - 1, lp, lp - 0.5, beta)


def test_token_logprobs_refuse_logits_without_a_vocabulary_axis_or_mismatched_labels():
    from rlhfops.train.losses import gather_token_logprobs

    with pytest.raises(ValueError, match="expected logits"):
        gather_token_logprobs(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long))  # [B, T]: no V
    with pytest.raises(ValueError, match="expected logits"):
        gather_token_logprobs(torch.zeros(2, 3, 5), torch.zeros(2, 4, dtype=torch.long))


def test_masked_sum_defaults_to_the_last_axis():
    from rlhfops.train.losses import masked_sum

    x = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    mask = torch.ones_like(x, dtype=torch.bool)
    assert torch.equal(masked_sum(x, mask), x.sum(dim=-1))  # [2, 3], not the middle axis's [2, 4]


@pytest.mark.parametrize("loss", [dpo_sigmoid_loss, ipo_loss])
def test_implicit_rewards_pair_each_policy_log_prob_with_its_own_reference(loss):
    pc, pr = torch.tensor([-1.0, -2.0]), torch.tensor([-3.0, -1.5])
    rc, rr = torch.tensor([-1.5, -1.0]), torch.tensor([-2.0, -4.0])
    out = loss(pc, pr, rc, rr, 0.5)
    assert torch.allclose(out.chosen_rewards, 0.5 * (pc - rc))  # [0.25, -0.5]
    assert torch.allclose(out.rejected_rewards, 0.5 * (pr - rr))  # [-0.5, 1.25]
    assert float(out.reward_accuracy) == 0.5 and float(out.reward_margin) == pytest.approx(-0.5)


def test_an_empty_half_precision_batch_gives_float32_log_probs():
    from rlhfops.train.losses import gather_token_logprobs

    out = gather_token_logprobs(
        torch.zeros(0, 3, 5, dtype=torch.float16), torch.zeros(0, 3, dtype=torch.long)
    )
    assert out.shape == (0, 3) and out.dtype == torch.float32


def test_entropy_of_an_empty_half_precision_batch_is_float32():
    from rlhfops.train.losses import entropy_from_logits

    out = entropy_from_logits(torch.zeros(0, 4, 5, dtype=torch.float16))
    assert out.shape == (0, 4) and out.dtype == torch.float32


def test_ipo_loss_at_a_beta_other_than_one_half():
    pc, pr, rc, rr = (torch.tensor([v]) for v in (-1.0, -3.0, -1.5, -2.0))
    gap = (-1.0 + 1.5) - (-3.0 + 2.0)  # 1.5
    assert float(ipo_loss(pc, pr, rc, rr, 0.1).loss) == pytest.approx((gap - 1 / (2 * 0.1)) ** 2)


def test_entropy_over_several_rows_and_leading_axes():
    from rlhfops.train.losses import entropy_from_logits

    logits = torch.randn(2, 3, 7, generator=torch.Generator().manual_seed(0))
    p = torch.softmax(logits, dim=-1)
    assert torch.allclose(entropy_from_logits(logits), -(p * p.log()).sum(dim=-1), atol=1e-6)


def test_reward_pair_accuracy_counts_any_positive_gap_and_no_tie():
    """A pair is ranked right when the chosen reward is higher by any amount (0.5 counts, a tie and -0.5
    do not); the margin shifts the loss only, never what counts as right."""
    from rlhfops.train.losses import bradley_terry_loss

    chosen = torch.tensor([1.5, 1.0, 1.0, 0.0])
    rejected = torch.tensor([1.0, 1.0, 1.5, 0.0])  # gaps 0.5, 0, -0.5, 0
    out = bradley_terry_loss(chosen, rejected)
    assert out.accuracy.item() == pytest.approx(0.25)
    with_margin = bradley_terry_loss(chosen, rejected, margin=torch.full((4,), 1.0))
    assert with_margin.accuracy.item() == pytest.approx(0.25)
    assert with_margin.mean_margin.item() == pytest.approx(0.0)
