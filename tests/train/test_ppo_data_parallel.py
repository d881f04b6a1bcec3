"""The PPO update under 2-process data parallel (gloo, CPU) equals the single-process update.

The token counts per process are uneven (5 vs 21 response tokens), so averaging per-process token means
(what DDP does with a rank-local mean) gives a different loss and gradient than the token mean over the
whole minibatch; ``ppo_update`` must all-reduce the token count and give the single-process numbers.
Float64 throughout, so the tolerance is tight: rtol 1e-9 on the loss, rtol 1e-9 / atol 1e-12 per
gradient element (the per-process mean differs here by more than 10%).
"""

from __future__ import annotations

from pathlib import Path

import torch
from helpers_train import run_two_processes
from ppo_dp_worker import LENGTHS, update_gradients


def test_two_process_ppo_update_matches_the_single_process_loss_and_gradient(tmp_path):
    assert sum(LENGTHS[:4]) != sum(LENGTHS[4:])  # uneven token counts per process
    single_loss, single_grads = update_gradients(None)
    out = tmp_path / "dp.pt"
    saved = run_two_processes(Path(__file__).with_name("ppo_dp_worker.py"), out, str(out))
    assert abs(saved["loss"] - single_loss) <= 1e-9 * abs(single_loss), (saved["loss"], single_loss)
    assert saved["grads"].keys() == single_grads.keys()
    for name, grad in single_grads.items():
        assert grad.abs().sum() > 0, name  # every parameter really gets a gradient
        torch.testing.assert_close(saved["grads"][name], grad, rtol=1e-9, atol=1e-12)
