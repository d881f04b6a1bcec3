"""Pure tensor maths of RL fine-tuning: whitening, GAE, token rewards, PPO losses, critic-free advantages.

Shapes use B = responses in the batch, T = response tokens (right-padded), P = prompts, k = samples
per prompt. Masks are bool or 0/1 tensors, 1 on valid response tokens. Losses are token means over
the whole global batch (see ``rlhfops.train.losses``): pass ``num_tokens_global`` when a step is
split into micro-batches or ranks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from rlhfops.errors import ConfigError
from rlhfops.train.losses import masked_mean, masked_sum, token_mean_loss

__all__ = [
    "GAEOutput",
    "PolicyLossOutput",
    "ValueLossOutput",
    "apply_no_eos_penalty",
    "assemble_token_rewards",
    "compute_gae",
    "explained_variance",
    "group_normalized_advantages",
    "ppo_policy_loss",
    "ppo_value_loss",
    "rloo_advantages",
    "whiten",
]


def _full_mask(x: Tensor, mask: Tensor | None) -> Tensor:
    if mask is None:
        return torch.ones_like(x, dtype=torch.bool)
    if mask.shape != x.shape:
        raise ValueError(f"mask {tuple(mask.shape)} does not match tensor {tuple(x.shape)}")
    return mask.bool()


def whiten(
    x: Tensor,
    mask: Tensor | None = None,
    shift_mean: bool = True,
    eps: float = 1e-8,
    all_sum: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """Normalise ``x`` to zero mean and unit variance over the valid positions.

    ``(x - mean) / sqrt(var + eps)`` with the masked mean and the **unbiased** masked variance
    (Bessel's correction n / (n - 1), as TRL's ``masked_whiten`` and OpenRLHF). With
    ``shift_mean=False`` the mean is added back (scale only; used for rewards). Masked-out
    positions are returned as 0. With one valid element the variance is taken as 0.

    With ``all_sum`` (a sum over data-parallel processes, e.g. an all-reduce) the count, the sum and the
    sum of squared deviations are summed over every process first: each process whitens its rows with
    the statistics of the whole global batch, as one process holding it would.

    Args:
        x: [B, T] (any shape). mask: same shape or None (all valid).
    Returns:
        tensor shaped like ``x``.
    """
    m = _full_mask(x, mask)
    if all_sum is None:
        n = int(m.sum())
        if n == 0:
            raise ValueError("whiten: the mask selects no element")
        mean = masked_mean(x, m)
        centred = (x - mean).masked_fill(~m, 0.0)
        var = centred.square().sum() / (n - 1) if n > 1 else centred.new_zeros(())
    else:
        n = int(all_sum(m.sum().to(torch.float64)))
        if n == 0:
            raise ValueError("whiten: the mask selects no element on any process")
        mean = (all_sum(x.masked_fill(~m, 0.0).sum().to(torch.float64)) / n).to(x.dtype)
        centred = (x - mean).masked_fill(~m, 0.0)
        sq = all_sum(centred.square().sum().to(torch.float64)).to(x.dtype)
        var = sq / (n - 1) if n > 1 else centred.new_zeros(())
    out = centred * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out.masked_fill(~m, 0.0)


class GAEOutput(NamedTuple):
    advantages: Tensor  # [B, T], 0 on padding
    returns: Tensor  # [B, T] = advantages + values (value targets), 0 on padding


@torch.no_grad()
def compute_gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> GAEOutput:
    """Generalised advantage estimation (Schulman et al. 2016, eq. 16), vectorised over the batch.

    ``delta_t = r_t + gamma V_{t+1} - V_t``; ``A_t = delta_t + gamma lam A_{t+1}``, looping backwards
    over time. Each row is right-padded: the state after its last valid token is terminal (value 0,
    no further reward), so padding never leaks into the valid positions. Runs without gradient
    (advantages and returns are targets).

    Args:
        rewards: [B, T] per-token rewards (see :func:`assemble_token_rewards`).
        values: [B, T] critic values V(s_t) of the old policy.
        mask: [B, T] right-padded 0/1 mask (a row's valid tokens form a prefix).
        gamma: discount in [0, 1]. lam: GAE lambda in [0, 1].
    """
    if not (rewards.shape == values.shape == mask.shape) or rewards.dim() != 2:
        raise ValueError(
            f"rewards, values, mask must all be [B,T]; got {tuple(rewards.shape)}, "
            f"{tuple(values.shape)}, {tuple(mask.shape)}"
        )
    m = mask.bool()
    if bool((m[:, 1:] & ~m[:, :-1]).any()):
        raise ValueError("compute_gae expects right-padded masks (valid tokens first, then padding)")
    r = rewards.masked_fill(~m, 0.0)
    v = values.masked_fill(~m, 0.0)
    T = r.shape[1]
    advantages = torch.zeros_like(r)
    last = r.new_zeros(r.shape[0])
    for t in reversed(range(T)):
        next_v = v[:, t + 1] if t + 1 < T else r.new_zeros(r.shape[0])
        delta = r[:, t] + gamma * next_v - v[:, t]
        last = delta + gamma * lam * last
        advantages[:, t] = last
    advantages = advantages.masked_fill(~m, 0.0)
    return GAEOutput(advantages=advantages, returns=(advantages + v).masked_fill(~m, 0.0))


def _last_valid_index(mask: Tensor) -> Tensor:
    m = mask.bool()
    empty = ~m.any(dim=1)
    if bool(empty.any()):
        rows = torch.nonzero(empty).flatten().tolist()
        raise ValueError(f"rows {rows} have no valid token; every response needs at least one (e.g. EOS)")
    pos = torch.arange(m.shape[1], device=m.device).expand_as(m)
    return torch.where(m, pos, -1).max(dim=1).values


def assemble_token_rewards(scores: Tensor, kl: Tensor, beta: float, mask: Tensor) -> Tensor:
    """Per-token PPO rewards: KL penalty on every token plus the sequence score at the last token.

    ``R_t = -beta KL_t`` on valid tokens, plus ``score`` at each row's last valid token; 0 on padding
    (Ziegler et al. 2019, eq. 2; Ouyang et al. 2022, eq. 2).

    Args:
        scores: [B] reward-model scores (after any no-EOS penalty).
        kl: [B, T] per-token KL estimates (e.g. ``kl_k1(logp, ref_logp)``); padding values unused.
        beta: KL coefficient (current controller value).
        mask: [B, T] 0/1 valid-token mask; every row needs at least one valid token.
    Returns:
        [B, T] rewards.
    """
    if kl.shape != mask.shape or scores.shape != kl.shape[:1]:
        raise ValueError(
            f"expected scores [B], kl and mask [B,T]; got {tuple(scores.shape)}, "
            f"{tuple(kl.shape)}, {tuple(mask.shape)}"
        )
    m = mask.bool()
    rewards = (-beta * kl).masked_fill(~m, 0.0)
    last = _last_valid_index(m)
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    bonus = torch.zeros_like(rewards)
    bonus[rows, last] = scores.to(rewards.dtype)
    return rewards + bonus


def apply_no_eos_penalty(scores: Tensor, has_eos: Tensor, penalty: float) -> Tensor:
    """Subtract ``penalty`` from the score of every response that did not end with EOS.

    Same convention as TRL's ``missing_eos_penalty``: ``score - penalty`` (not a replacement by a
    fixed score), so truncated responses still rank among themselves. ``penalty`` must be >= 0.

    Args:
        scores: [B]. has_eos: [B] bool. Returns: [B] new tensor.
    """
    if penalty < 0:
        raise ConfigError(
            f"missing-EOS penalty is subtracted from the score; give a value >= 0, got {penalty}"
        )
    if has_eos.shape != scores.shape:
        raise ValueError(f"has_eos {tuple(has_eos.shape)} does not match scores {tuple(scores.shape)}")
    return scores - penalty * (~has_eos.bool()).to(scores.dtype)


class PolicyLossOutput(NamedTuple):
    loss: Tensor  # scalar clipped surrogate loss (token mean)
    clip_fraction: Tensor  # scalar share of valid tokens where the clipped term was selected, detached
    approx_kl: Tensor  # scalar mean of 0.5 (logp - old_logp)^2 over valid tokens, detached


def ppo_policy_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip_eps: float,
    num_tokens_global: float | None = None,
) -> PolicyLossOutput:
    """PPO clipped surrogate (Schulman et al. 2017, eq. 7), as a loss to minimise.

    ``rho = exp(logp - old_logp)``; ``L = mean_t max(-A_t rho_t, -A_t clip(rho_t, 1-eps, 1+eps))``.
    ``clip_fraction`` counts tokens where the clipped term is strictly larger (i.e. active).
    ``approx_kl`` is the k2 estimator ``0.5 (logp - old_logp)^2`` of KL(old || new), as in TRL's
    PPO trainer's ``approxkl`` metric.

    Args:
        logp: [B, T] log-probs of the sampled tokens under the current policy (with grad).
        old_logp: [B, T] the same under the policy that sampled them.
        advantages: [B, T] (usually whitened). mask: [B, T] 0/1.
        clip_eps: epsilon > 0.
        num_tokens_global: token count of the whole step, see ``token_mean_loss``.
    """
    if clip_eps <= 0:
        raise ConfigError(f"PPO clip range must be > 0, got {clip_eps}")
    log_ratio = logp - old_logp
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    loss = token_mean_loss(torch.maximum(unclipped, clipped), mask, num_tokens_global)
    with torch.no_grad():
        clip_fraction = masked_mean((clipped > unclipped).to(logp.dtype), mask)
        approx_kl = masked_mean(0.5 * log_ratio.square(), mask)
    return PolicyLossOutput(loss=loss, clip_fraction=clip_fraction, approx_kl=approx_kl)


class ValueLossOutput(NamedTuple):
    loss: Tensor  # scalar
    clip_fraction: Tensor  # scalar share of valid tokens where the clipped error was selected, detached


def ppo_value_loss(
    values: Tensor,
    old_values: Tensor,
    returns: Tensor,
    mask: Tensor,
    clip_value: float,
    num_tokens_global: float | None = None,
) -> ValueLossOutput:
    """Clipped value loss (PPO2 / Ziegler et al. 2019 implementation, as in TRL and OpenRLHF).

    ``V_clip = old + clip(V - old, -c, c)``;
    ``L = 0.5 mean_t max((V_t - G_t)^2, (V_clip,t - G_t)^2)``.

    Args:
        values: [B, T] current critic values (with grad). old_values: [B, T] values at rollout time.
        returns: [B, T] GAE returns. mask: [B, T] 0/1. clip_value: c > 0.
        num_tokens_global: token count of the whole step, see ``token_mean_loss``.
    """
    if clip_value <= 0:
        raise ConfigError(f"value clip range must be > 0, got {clip_value}")
    v_clipped = old_values + torch.clamp(values - old_values, -clip_value, clip_value)
    err = (values - returns).square()
    err_clipped = (v_clipped - returns).square()
    loss = 0.5 * token_mean_loss(torch.maximum(err, err_clipped), mask, num_tokens_global)
    with torch.no_grad():
        clip_fraction = masked_mean((err_clipped > err).to(values.dtype), mask)
    return ValueLossOutput(loss=loss, clip_fraction=clip_fraction)


def explained_variance(values: Tensor, returns: Tensor, mask: Tensor) -> float:
    """``1 - Var[G - V] / Var[G]`` over valid tokens (1 = perfect critic, 0 = no better than a constant).

    Biased (population) variances; NaN when the returns are constant. Shapes: [B, T] each.
    """
    m = mask.bool()
    n = int(m.sum())
    if n == 0:
        return float("nan")

    def var(x: Tensor) -> Tensor:
        mu = masked_sum(x, m, dim=None) / n
        return masked_sum((x - mu).square(), m, dim=None) / n

    with torch.no_grad():
        var_g = var(returns.double())
        if float(var_g) == 0.0:
            return float("nan")
        return float(1.0 - var(returns.double() - values.double()) / var_g)


def _grouped(scores: Tensor, k: int) -> Tensor:
    if k < 2:
        raise ConfigError(f"critic-free advantages need k >= 2 samples per prompt, got {k}")
    if scores.dim() != 1 or scores.numel() % k:
        raise ValueError(f"scores must be [num_prompts*k] with k={k}; got shape {tuple(scores.shape)}")
    return scores.view(-1, k)


def rloo_advantages(scores: Tensor, k: int) -> Tensor:
    """REINFORCE leave-one-out advantages (Ahmadian et al. 2024, sec. 3.2; Kool et al. 2019).

    ``A_i = s_i - mean_{j != i} s_j = k / (k - 1) (s_i - mean_j s_j)`` within each prompt's group.

    Args:
        scores: [P * k] grouped by prompt: prompt p owns ``scores[p*k:(p+1)*k]`` (TRL's layout).
    Returns:
        [P * k] advantages.
    """
    g = _grouped(scores, k)
    baseline = (g.sum(dim=1, keepdim=True) - g) / (k - 1)
    return (g - baseline).reshape(-1)


def group_normalized_advantages(scores: Tensor, k: int, eps: float = 1e-4, scale: bool = True) -> Tensor:
    """GRPO outcome advantages (Shao et al. 2024, eq. 3; sec. 4.1.2).

    ``A_i = (s_i - mean(group)) / (std(group) + eps)`` with the unbiased group std (as TRL 1.16's
    GRPOTrainer, whose eps is also 1e-4). ``scale=False`` only centres (Dr. GRPO, Liu et al. 2025).

    Args:
        scores: [P * k] grouped by prompt like :func:`rloo_advantages`.
    Returns:
        [P * k] advantages.
    """
    g = _grouped(scores, k)
    centred = g - g.mean(dim=1, keepdim=True)
    if scale:
        centred = centred / (g.std(dim=1, keepdim=True, unbiased=True) + eps)
    return centred.reshape(-1)
