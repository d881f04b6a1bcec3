"""Pure tensor losses for SFT, the Bradley-Terry reward model and DPO / IPO (with an optional NLL term).

Every function here is a function of tensors only (no model, no optimiser, no config object) and is
tested against numbers worked out by hand in ``tests/train``.

Loss aggregation convention
---------------------------
Token-level losses (SFT, PPO) are **token means over everything one optimiser step sees**: the sum of
the per-token losses of every micro-batch on every process, divided by the number of valid tokens of
the step on all processes (all-reduced), so that a step split into gradient-accumulation micro-batches
or across data-parallel processes produces the same loss and gradient as one big batch. DDP averages
gradients over processes, so each process backpropagates its part times the world size.

- SFT (``sft.py``): the micro-batch's token mean times ``tokens_in_micro_batch / tokens_in_step``.
- PPO (``ppo_update.py``): an optimiser step is one minibatch; its all-reduced token count is passed as
  ``num_tokens_global`` to ``ppo_policy_loss``, ``ppo_value_loss`` and ``token_mean_loss`` (KL term).

Sequence-level losses (Bradley-Terry, DPO) are means over pairs; the trainer scales them by
``pairs_in_micro_batch / pairs_in_step`` for the same reason. Tests: ``tests/train/test_invariance.py``
(accumulation: SFT, reward model, DPO; two processes: SFT, DPO) and ``tests/train/test_ppo_data_parallel.py``
(PPO, two processes with uneven token counts).

Shapes use B = batch, T = time (tokens), V = vocabulary, N = packed tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from rlhfops.errors import ConfigError
from rlhfops.train.loss_registry import DPO_VARIANTS, dpo_variant

IGNORE_INDEX = -100

__all__ = [
    "DPO_LOSSES",
    "IGNORE_INDEX",
    "DPOLossOutput",
    "RewardLossOutput",
    "add_nll_term",
    "bradley_terry_loss",
    "chosen_nll",
    "dpo_sigmoid_loss",
    "entropy_from_logits",
    "gather_token_logprobs",
    "get_dpo_loss",
    "ipo_loss",
    "masked_mean",
    "masked_sum",
    "segment_sum",
    "sft_loss",
    "token_mean_loss",
]


# --------------------------------------------------------------------------------------------------
# Log-probabilities, masks and segments
# --------------------------------------------------------------------------------------------------


def gather_token_logprobs(logits: Tensor, labels: Tensor, temperature: float = 1.0) -> Tensor:
    """Log-probability of each label token: ``log_softmax(logits / temperature)[..., labels]``.

    Args:
        logits: [B, T, V] next-token logits. Position t scores ``labels[:, t]`` (the caller has
            already shifted labels by one, as in a causal LM loss).
        labels: [B, T] token ids; ``-100`` marks positions to ignore.
        temperature: sampling temperature the logits are divided by (> 0).

    Returns:
        [B, T] log-probs, 0 where ``labels == -100``. Half-precision logits are evaluated in float32,
        so the result is float32 (or float64 for float64 logits).

    Uses ``log p(y) = (z_y - max z) - logsumexp(z - max z)``, one batch row at a time, so no full
    [B, T, V] log-softmax copy is materialised (peak extra memory is one [T, V] row).
    """
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(
            f"expected logits [B,T,V] and labels [B,T]; got {tuple(logits.shape)}, {tuple(labels.shape)}"
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    out_dtype = logits.dtype if logits.dtype in (torch.float32, torch.float64) else torch.float32
    valid = labels != IGNORE_INDEX
    safe = labels.masked_fill(~valid, 0).long()
    rows = []
    for row_logits, row_labels in zip(logits, safe, strict=True):
        row = row_logits.to(out_dtype)
        if temperature != 1.0:
            row = row / temperature
        # log-softmax is shift invariant; subtracting the (detached) max keeps precision for large logits
        row = row - row.detach().amax(dim=-1, keepdim=True)
        picked = row.gather(-1, row_labels[:, None]).squeeze(-1)
        rows.append(picked - torch.logsumexp(row, dim=-1))
    out = torch.stack(rows) if rows else logits.new_zeros(labels.shape, dtype=out_dtype)
    return out.masked_fill(~valid, 0.0)


def masked_sum(x: Tensor, mask: Tensor, dim: int | None = -1) -> Tensor:
    """Sum of ``x`` over positions where ``mask`` is true, along ``dim`` (all dims when None).

    Args:
        x: any shape [...]. Values at masked-out positions are never read into the result, even
            when they are NaN or inf.
        mask: same shape as ``x``; bool or 0/1 numbers (a 0/1 mask, not weights).
    """
    z = x.masked_fill(~mask.bool(), 0.0)
    return z.sum() if dim is None else z.sum(dim=dim)


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``x`` over valid positions: ``masked_sum / count``.

    With ``dim=None`` this is the global token mean (sum over every valid element divided by the
    number of valid elements), not a mean of per-row means. Where a slice has no valid element the
    result is 0 (not NaN), so an empty slice adds neither loss nor gradient.
    """
    count = mask.bool().sum() if dim is None else mask.bool().sum(dim=dim)
    return masked_sum(x, mask, dim) / count.clamp(min=1).to(x.dtype)


def segment_sum(values: Tensor, segment_ids: Tensor, num_segments: int) -> Tensor:
    """Sum ``values`` per segment, e.g. per-token log-probs into per-sequence log-probs of a packed batch.

    Args:
        values: [N] (any shape is accepted and flattened; ``segment_ids`` must match it).
        segment_ids: [N] integer segment of each value in ``[0, num_segments)``; ``-1`` = ignore.
        num_segments: number of output segments S.

    Returns:
        [S] sums (0 for a segment with no value). Differentiable with respect to ``values``.
    """
    if values.shape != segment_ids.shape:
        raise ValueError(f"values {tuple(values.shape)} and segment_ids {tuple(segment_ids.shape)} differ")
    v, ids = values.reshape(-1), segment_ids.reshape(-1).long()
    keep = ids >= 0
    if bool((ids >= num_segments).any()):
        raise ValueError(f"segment id {int(ids.max())} out of range for num_segments={num_segments}")
    out = v.new_zeros(num_segments)
    return out.index_add(0, ids[keep], v[keep])


def token_mean_loss(per_token_loss: Tensor, mask: Tensor, num_tokens_global: float | None = None) -> Tensor:
    """Token-mean loss that is invariant to how a step is split into micro-batches.

    ``loss = sum(per_token_loss[mask]) / num_tokens_global``. With ``num_tokens_global`` = the valid
    tokens of the whole optimiser step (all micro-batches, all ranks), the sum of the micro-batch
    losses equals the one-big-batch token mean, and so do the gradients. Under DDP, which averages
    gradients over ranks, multiply each rank's loss by the world size. With ``None`` the local token
    count is used (a plain masked mean; 0 when there is no valid token).

    Args:
        per_token_loss: [B, T] (any shape).
        mask: same shape, bool or 0/1.
        num_tokens_global: positive token count of the whole step, or None.
    """
    if num_tokens_global is None:
        return masked_mean(per_token_loss, mask)
    if num_tokens_global <= 0:
        raise ValueError(f"num_tokens_global must be > 0, got {num_tokens_global}")
    return masked_sum(per_token_loss, mask, dim=None) / num_tokens_global


def sft_loss(token_logps: Tensor, mask: Tensor) -> Tensor:
    """Supervised fine-tuning loss: negative mean log-likelihood of the completion tokens.

    ``L = -sum_t mask_t log p(y_t | y_<t, x) / sum_t mask_t`` (the maximum-likelihood objective of
    Ouyang et al. 2022, sec. 3.5), a global token mean over the batch.

    Args:
        token_logps: [B, T] (or packed [N]) log-probs of the target tokens.
        mask: same shape; 1 on completion tokens, 0 on prompt and padding.
    Returns:
        scalar loss.
    """
    return -masked_mean(token_logps, mask)


def entropy_from_logits(logits: Tensor, chunk_size: int = 1024) -> Tensor:
    """Shannon entropy (nats) of ``softmax(logits)`` along the last dim.

    ``H = logsumexp(z) - sum_v softmax(z)_v z_v``. Rows are processed in chunks of ``chunk_size``
    to bound the memory of the softmax copy.

    Args:
        logits: [..., V].
    Returns:
        [...] entropies (float32 for half-precision input).
    """
    shape = logits.shape[:-1]
    dtype = logits.dtype if logits.dtype in (torch.float32, torch.float64) else torch.float32
    flat = logits.reshape(-1, logits.shape[-1])
    parts = []
    for chunk in flat.split(chunk_size, dim=0):
        z = chunk.to(dtype)
        z = z - z.detach().amax(dim=-1, keepdim=True)  # shift invariant; avoids cancellation at large logits
        parts.append(torch.logsumexp(z, dim=-1) - (torch.softmax(z, dim=-1) * z).sum(dim=-1))
    out = torch.cat(parts) if parts else flat.new_zeros(0, dtype=dtype)
    return out.reshape(shape)


# --------------------------------------------------------------------------------------------------
# Reward model
# --------------------------------------------------------------------------------------------------


class RewardLossOutput(NamedTuple):
    """Bradley-Terry loss and detached metrics."""

    loss: Tensor  # scalar, mean over pairs
    accuracy: Tensor  # scalar, share of pairs with r_chosen > r_rejected (ties count as wrong)
    mean_margin: Tensor  # scalar, mean of r_chosen - r_rejected (without the label margin)


def bradley_terry_loss(
    chosen_rewards: Tensor, rejected_rewards: Tensor, margin: Tensor | None = None
) -> RewardLossOutput:
    """Pairwise Bradley-Terry reward-model loss.

    ``L = -mean_i log sigmoid(r_c,i - r_r,i - m_i)`` (Ouyang et al. 2022, eq. 1; the margin m of
    Touvron et al. 2023, Llama 2, eq. 2). Same as TRL's RewardTrainer.

    Args:
        chosen_rewards: [B] scalar rewards of the preferred responses.
        rejected_rewards: [B] rewards of the other responses.
        margin: [B] optional non-negative preference-strength margin, or None.
    """
    if chosen_rewards.shape != rejected_rewards.shape:
        raise ValueError(
            f"chosen {tuple(chosen_rewards.shape)} and rejected {tuple(rejected_rewards.shape)} shapes differ"
        )
    diff = chosen_rewards - rejected_rewards
    logits = diff if margin is None else diff - margin
    loss = -F.logsigmoid(logits).mean()
    with torch.no_grad():
        accuracy = (diff > 0).to(diff.dtype).mean()
        mean_margin = diff.mean()
    return RewardLossOutput(loss=loss, accuracy=accuracy, mean_margin=mean_margin)


# --------------------------------------------------------------------------------------------------
# DPO family
# --------------------------------------------------------------------------------------------------


class DPOLossOutput(NamedTuple):
    """A DPO-family loss, its per-pair terms and detached implicit-reward metrics."""

    loss: Tensor  # scalar, mean of ``losses``
    losses: Tensor  # [B] per-pair loss
    chosen_rewards: Tensor  # [B] beta * (policy_chosen - ref_chosen), detached
    rejected_rewards: Tensor  # [B] beta * (policy_rejected - ref_rejected), detached
    reward_accuracy: Tensor  # scalar, share of pairs with chosen_reward > rejected_reward
    reward_margin: Tensor  # scalar, mean of chosen_reward - rejected_reward


def _log_ratio_gap(pc: Tensor, pr: Tensor, rc: Tensor, rr: Tensor) -> Tensor:
    if not (pc.shape == pr.shape == rc.shape == rr.shape):
        raise ValueError(
            "policy/reference chosen/rejected log-probs must share one shape [B]; got "
            f"{tuple(pc.shape)}, {tuple(pr.shape)}, {tuple(rc.shape)}, {tuple(rr.shape)}"
        )
    return (pc - rc) - (pr - rr)


def _dpo_output(losses: Tensor, pc: Tensor, pr: Tensor, rc: Tensor, rr: Tensor, beta: float) -> DPOLossOutput:
    with torch.no_grad():
        chosen = beta * (pc - rc)
        rejected = beta * (pr - rr)
        acc = (chosen > rejected).to(chosen.dtype).mean()
        margin = (chosen - rejected).mean()
    return DPOLossOutput(losses.mean(), losses, chosen.detach(), rejected.detach(), acc, margin)


def _check_beta(beta: float) -> None:
    if not beta > 0:
        raise ConfigError(f"beta must be > 0, got {beta}")


def dpo_sigmoid_loss(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    beta: float,
    label_smoothing: float = 0.0,
) -> DPOLossOutput:
    """DPO loss (Rafailov et al. 2023, eq. 7) with optional conservative-DPO label smoothing.

    With ``h = (log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l) - log pi_ref(y_l))``::

        loss_i = -(1 - eps) log sigmoid(beta h_i) - eps log sigmoid(-beta h_i)

    where ``eps = label_smoothing`` is the assumed share of flipped labels (cDPO: Mitchell 2023, "A
    note on DPO with noisy preferences"; the form of TRL <= 0.x ``loss_type="sigmoid"``, which TRL
    1.16 keeps only under ``loss_type="aot"``). ``eps = 0`` is plain DPO.

    Args:
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps: [B]
            sequence log-probs (sums over completion tokens).
        beta: KL strength (> 0).
        label_smoothing: eps in [0, 0.5).
    """
    _check_beta(beta)
    if not 0.0 <= label_smoothing < 0.5:
        raise ConfigError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
    pc, pr, rc, rr = policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
    logits = beta * _log_ratio_gap(pc, pr, rc, rr)
    losses = -F.logsigmoid(logits)
    if label_smoothing:
        losses = (1.0 - label_smoothing) * losses - label_smoothing * F.logsigmoid(-logits)
    return _dpo_output(losses, pc, pr, rc, rr, beta)


def ipo_loss(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    beta: float,
    label_smoothing: float = 0.0,
) -> DPOLossOutput:
    """IPO loss (Azar et al. 2023, eq. 17): ``loss_i = (h_i - 1 / (2 beta))^2``.

    ``h`` is the log-ratio gap defined in :func:`dpo_sigmoid_loss`; ``beta`` is the paper's tau.
    Convention: the function uses the log-probs exactly as given. The squared loss scales with
    completion length when sums are passed, so callers pass **mean log-prob per completion token**
    (sum / number of completion tokens) for policy and reference alike, as TRL 1.16 and the IPO
    authors' implementation do; ``rlhfops.train.dpo`` does this. ``chosen_rewards`` etc. are then
    beta times mean-per-token log-ratios.

    ``label_smoothing`` exists only so every registry entry shares one signature; IPO has none and
    any value other than 0 is rejected.
    """
    _check_beta(beta)
    if label_smoothing:
        raise ConfigError(
            f"label_smoothing applies to the sigmoid DPO loss only; got {label_smoothing} for ipo"
        )
    pc, pr, rc, rr = policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
    losses = (_log_ratio_gap(pc, pr, rc, rr) - 1.0 / (2.0 * beta)) ** 2
    return _dpo_output(losses, pc, pr, rc, rr, beta)


def chosen_nll(policy_chosen_logps: Tensor, chosen_lengths: Tensor) -> Tensor:
    """Negative log-likelihood of each chosen reply per chosen token: ``-log pi(y_w | x) / |y_w|``.

    The length-normalised NLL term of Pang et al. 2024 ("Iterative Reasoning Preference Optimization",
    arXiv:2404.19733, sec. 2, the DPO+NLL loss), normalised here by the chosen completion's length only (the
    prompt is not predicted). A per-pair value, so a mean over pairs stays invariant to how a step is split
    into micro-batches (TRL 1.16's ``loss_type="sft"`` takes a token mean over the whole batch's chosen tokens
    instead; the two agree for one pair).

    Args:
        policy_chosen_logps: [B] sums of the policy's log-probs over each chosen completion's tokens.
        chosen_lengths: [B] number of completion tokens of each chosen reply (>= 1).
    Returns:
        [B] per-pair NLL (>= 0).
    """
    if policy_chosen_logps.shape != chosen_lengths.shape:
        raise ValueError(
            f"chosen log-probs {tuple(policy_chosen_logps.shape)} and lengths "
            f"{tuple(chosen_lengths.shape)} differ"
        )
    if bool((chosen_lengths < 1).any()):
        raise ValueError(f"every chosen reply needs >= 1 completion token; lengths {chosen_lengths.tolist()}")
    return -policy_chosen_logps / chosen_lengths.to(policy_chosen_logps.dtype)


def add_nll_term(out: DPOLossOutput, nll: Tensor, alpha: float) -> DPOLossOutput:
    """A DPO-family loss plus ``alpha`` times the chosen replies' NLL (Pang et al. 2024, sec. 2)::

        loss_i = dpo_i + alpha * nll_i          nll_i = -log pi(y_w,i | x_i) / |y_w,i|  (:func:`chosen_nll`)

    TRL <= 0.x calls ``alpha`` ``rpo_alpha``. The implicit-reward metrics are the DPO loss's, unchanged;
    ``alpha = 0`` returns ``out`` itself (the same tensors: off changes no number).

    Args:
        out: the DPO-family loss of B pairs.
        nll: [B] per-pair NLL of the chosen replies, with gradient.
        alpha: weight (>= 0).
    """
    if not alpha >= 0:
        raise ConfigError(f"rpo_alpha must be >= 0, got {alpha}")
    if nll.shape != out.losses.shape:
        raise ValueError(f"nll {tuple(nll.shape)} and per-pair losses {tuple(out.losses.shape)} differ")
    if alpha == 0:
        return out
    losses = out.losses + alpha * nll
    return out._replace(loss=losses.mean(), losses=losses)


DPOLossFn = Callable[..., DPOLossOutput]

#: name -> loss function of every variant in ``rlhfops.train.loss_registry`` (which owns the variants)
DPO_LOSSES: dict[str, DPOLossFn] = {name: v.loss for name, v in DPO_VARIANTS.items()}


def get_dpo_loss(name: str) -> DPOLossFn:
    """The DPO-family loss registered under ``name``; ConfigError naming the valid options otherwise."""
    return dpo_variant(name).loss
