"""Edges the mutation run found untested (issue 17): a global token count of 1, float64 entropies, a mask
with a gap."""

from __future__ import annotations

import pytest
import torch

from rlhfops.train.losses import entropy_from_logits, token_mean_loss
from rlhfops.train.rl_math import compute_gae


def test_token_mean_loss_accepts_one_token_and_refuses_zero():
    x, m = torch.tensor([[2.0, 5.0]]), torch.tensor([[1, 0]])
    assert float(token_mean_loss(x, m, 1)) == 2.0
    assert float(token_mean_loss(x, m, 0.5)) == 4.0
    with pytest.raises(ValueError, match="num_tokens_global must be > 0"):
        token_mean_loss(x, m, 0)


def test_entropy_keeps_float64_and_computes_half_precision_in_float32():
    z = torch.tensor([[0.0, 1.0, 2.0]], dtype=torch.float64)
    p = torch.softmax(z, -1)
    h = entropy_from_logits(z)
    assert h.dtype == torch.float64
    torch.testing.assert_close(h, -(p * p.log()).sum(-1), rtol=1e-12, atol=1e-12)
    assert entropy_from_logits(z.to(torch.bfloat16)).dtype == torch.float32


def test_gae_refuses_a_mask_with_a_gap():
    r = torch.zeros(1, 3)
    with pytest.raises(ValueError, match="right-padded"):
        compute_gae(r, r, torch.tensor([[1.0, 0.0, 1.0]]), 1.0, 0.95)
    compute_gae(r, r, torch.tensor([[1.0, 1.0, 0.0]]), 1.0, 0.95)  # right padding is fine
