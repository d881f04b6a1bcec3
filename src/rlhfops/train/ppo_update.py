"""The PPO update: several epochs over shuffled minibatches of one rollout (Schulman et al. 2017)."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch

from rlhfops.train.ppo_rollout import Rollout


def _slice(roll: Rollout, idx: torch.Tensor) -> dict[str, Any]:
    out = {
        "sequences": roll.sequences[idx],
        "attention_mask": roll.attention_mask[idx],
        "mask": roll.mask[idx],
        "old_logps": roll.old_logps[idx],
        "ref_logps": roll.ref_logps[idx],
        "advantages": roll.advantages[idx],
    }
    if roll.values is not None:
        out["values"] = roll.values[idx]
        out["returns"] = roll.returns[idx]
    return out


def minibatch_loss(trainer: Any, mb: dict[str, Any], P: int, token_share: float) -> tuple[torch.Tensor, dict]:
    """Loss of one micro-batch, weighted by its share of the minibatch's response tokens."""
    from rlhfops.train.kl import get_kl_estimator
    from rlhfops.train.losses import masked_mean
    from rlhfops.train.rl_math import ppo_policy_loss, ppo_value_loss

    cfg = trainer.config
    out = trainer.model(mb["sequences"], mb["attention_mask"], P, cfg.temperature or 1.0)
    mask = mb["mask"]
    pol = ppo_policy_loss(out.logps, mb["old_logps"], mb["advantages"], mask, cfg.clip_eps)
    loss = pol.loss
    stats = {
        "policy_loss": float(pol.loss.detach()),
        "clip_fraction": float(pol.clip_fraction),
        "approx_kl": float(pol.approx_kl),
    }
    if cfg.kl_mode == "loss":
        kl = masked_mean(get_kl_estimator(cfg.kl_estimator)(out.logps, mb["ref_logps"]), mask)
        loss = loss + trainer.kl_ctl.value * kl
    if out.values is not None:
        val = ppo_value_loss(out.values, mb["values"], mb["returns"], mask, cfg.value_clip)
        loss = loss + cfg.vf_coef * val.loss
        stats["value_loss"] = float(val.loss.detach())
        stats["value_clip_fraction"] = float(val.clip_fraction)
    return loss * token_share, stats


def ppo_update(trainer: Any, roll: Rollout) -> dict[str, float]:
    """Run ``ppo_epochs`` epochs; returns the mean of each statistic over all minibatches."""
    from rlhfops.train.rl_math import explained_variance

    cfg = trainer.config
    n = roll.sequences.shape[0]
    mb_size = max(1, cfg.minibatch_size // trainer.world)
    accum = max(1, min(cfg.gradient_accumulation_steps, mb_size))
    rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,)).item()))
    trainer.model.train()
    totals: dict[str, list[float]] = {}
    for _epoch in range(cfg.ppo_epochs):
        perm = torch.as_tensor(rng.permutation(n))
        for start in range(0, n, mb_size):
            idx = perm[start : start + mb_size]
            mb_tokens = float(roll.mask[idx].sum().clamp(min=1))
            loss_total = 0.0
            for j, part in enumerate(torch.tensor_split(idx, accum)):
                if len(part) == 0:
                    continue
                mb = _slice(roll, part)
                share = float(mb["mask"].sum()) / mb_tokens
                last = j == accum - 1
                ctx = trainer.accelerator.no_sync(trainer.model) if not last else contextlib.nullcontext()
                with ctx:
                    loss, stats = minibatch_loss(trainer, mb, roll.prompt_length, share)
                    trainer.accelerator.backward(loss)
                loss_total += float(loss.detach())
                for key, v in stats.items():
                    totals.setdefault(key, []).append(v)
            totals.setdefault("loss", []).append(loss_total)
            if cfg.max_grad_norm > 0:
                gn = trainer.accelerator.clip_grad_norm_(trainer.model.parameters(), cfg.max_grad_norm)
                totals.setdefault("grad_norm", []).append(float(gn))
            trainer.optimizer.step()
            trainer.optimizer.zero_grad(set_to_none=True)
    out = {k: float(np.mean(v)) for k, v in totals.items()}
    if roll.values is not None:
        out["explained_variance"] = float(explained_variance(roll.values, roll.returns, roll.mask))
    return out
