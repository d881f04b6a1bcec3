"""The PPO update: several epochs over shuffled minibatches of one rollout (Schulman et al. 2017)."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch

from rlhfops.train.kl import get_kl_estimator
from rlhfops.train.losses import token_mean_loss
from rlhfops.train.ppo_parts import UpdateParts
from rlhfops.train.ppo_rollout import Rollout
from rlhfops.train.rl_math import explained_variance, ppo_policy_loss, ppo_value_loss


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


def minibatch_loss(
    trainer: UpdateParts, mb: dict[str, Any], P: int, num_tokens_global: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """This micro-batch's part of the loss: its per-token terms summed, over ``num_tokens_global``.

    ``num_tokens_global`` is the number of response tokens of the whole minibatch on every process, so
    the micro-batch losses of all processes add up to the token mean over the minibatch (policy, KL and
    value terms alike). The statistics are this micro-batch's own token means.
    """
    cfg = trainer.config
    out = trainer.model(mb["sequences"], mb["attention_mask"], P, cfg.temperature or 1.0)
    mask = mb["mask"]
    # from a share of the global token mean back to this micro-batch's token mean, for the statistics
    to_local_mean = num_tokens_global / max(float(mask.sum()), 1.0)
    pol = ppo_policy_loss(out.logps, mb["old_logps"], mb["advantages"], mask, cfg.clip_eps, num_tokens_global)
    loss = pol.loss
    stats = {
        "policy_loss": float(pol.loss.detach()) * to_local_mean,
        "clip_fraction": float(pol.clip_fraction),
        "approx_kl": float(pol.approx_kl),
    }
    if cfg.kl_mode == "loss":
        kl = token_mean_loss(
            get_kl_estimator(cfg.kl_estimator)(out.logps, mb["ref_logps"]), mask, num_tokens_global
        )
        loss = loss + trainer.kl_ctl.value * kl
    if out.values is not None:
        val = ppo_value_loss(
            out.values, mb["values"], mb["returns"], mask, cfg.value_clip, num_tokens_global=num_tokens_global
        )
        loss = loss + cfg.vf_coef * val.loss
        stats["value_loss"] = float(val.loss.detach()) * to_local_mean
        stats["value_clip_fraction"] = float(val.clip_fraction)
    return loss, stats


def _global_sum(trainer: UpdateParts, value: float) -> float:
    """``value`` summed over every process (all-reduce; the value itself with one process)."""
    if trainer.world == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=trainer.accelerator.device)
    return float(trainer.accelerator.reduce(t, reduction="sum").item())


def ppo_update(trainer: UpdateParts, roll: Rollout) -> dict[str, float]:
    """Run ``ppo_epochs`` epochs; returns the mean of each statistic over all minibatches.

    Minibatches are drawn from the **global** batch: every process draws the same permutation of the
    global row indices (``roll.row_ids``), splits it into minibatches of ``minibatch_size`` rows and
    trains on the rows of each minibatch it holds, so the minibatches are those of one process holding
    the whole rollout. Each minibatch's loss is the token mean over its response tokens on **every**
    process: the token count is all-reduced before the forward passes, each process backpropagates
    ``world * sum(its per-token losses) / global_tokens`` and DDP averages the gradients over processes,
    so loss and gradient equal those of one process, however unevenly rows and tokens are spread. A
    process holding no row of a minibatch runs one masked-out row (loss 0) so that every process takes
    part in the gradient all-reduce. ``loss`` is the global minibatch loss (the same on every process);
    the other statistics are means over this process's micro-batches.
    """
    cfg = trainer.config
    n = roll.sequences.shape[0]
    if roll.row_ids is None and trainer.world > 1:
        raise ValueError("ppo_update with several processes needs the rollout's global row_ids")
    ids = roll.row_ids.tolist() if roll.row_ids is not None else list(range(n))
    where = {g: i for i, g in enumerate(ids)}
    n_global = int(_global_sum(trainer, float(n)))
    mb_global = max(1, cfg.minibatch_size)
    accum = max(1, min(cfg.gradient_accumulation_steps, max(1, mb_global // trainer.world)))
    rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,)).item()))
    trainer.model.train()
    totals: dict[str, list[float]] = {}
    for _epoch in range(cfg.ppo_epochs):
        perm = rng.permutation(n_global)
        for start in range(0, n_global, mb_global):
            idx = torch.tensor([where[g] for g in perm[start : start + mb_global].tolist() if g in where])
            idx = idx.long()
            # an empty minibatch everywhere gives loss 0 (and no gradient), as a masked mean does
            global_tokens = max(_global_sum(trainer, float(roll.mask[idx].sum())), 1.0)
            parts = [p for p in torch.tensor_split(idx, accum) if len(p)]
            loss_total = 0.0
            for j, part in enumerate(parts or [torch.zeros(1, dtype=torch.long)]):
                mb = _slice(roll, part)
                if not parts:  # no row here: a masked-out row, so this process joins the all-reduce
                    mb["mask"] = torch.zeros_like(mb["mask"])
                last = j == max(len(parts), 1) - 1
                ctx = trainer.accelerator.no_sync(trainer.model) if not last else contextlib.nullcontext()
                with ctx:
                    loss, stats = minibatch_loss(trainer, mb, roll.prompt_length, global_tokens)
                    trainer.accelerator.backward(loss * trainer.world)  # DDP averages over processes
                loss_total += float(loss.detach())
                for key, v in stats.items() if parts else ():
                    totals.setdefault(key, []).append(v)
            totals.setdefault("loss", []).append(_global_sum(trainer, loss_total))
            if cfg.max_grad_norm > 0:
                gn = trainer.accelerator.clip_grad_norm_(trainer.model.parameters(), cfg.max_grad_norm)
                totals.setdefault("grad_norm", []).append(float(gn))
            trainer.optimizer.step()
            trainer.optimizer.zero_grad(set_to_none=True)
    out = {k: float(np.mean(v)) for k, v in totals.items()}
    if roll.values is not None:
        out["explained_variance"] = float(explained_variance(roll.values, roll.returns, roll.mask))
    return out
