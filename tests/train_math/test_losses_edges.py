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
