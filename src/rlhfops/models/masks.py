"""Attention masks for the model forward passes (used by the value/reward heads and the training stages)."""

from __future__ import annotations

import torch


def attention_bias(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """A 4D boolean mask as an additive bias (0 where attended, the dtype's minimum elsewhere), made once
    per forward pass: given the boolean mask, sdpa converts it in every layer and keeps each copy for the
    backward pass (~2 MB per layer for a 2 x 505-token micro-batch, growing with length squared). Other
    masks (none, 2D padding masks, biases already) pass through."""
    if mask is None or mask.dtype != torch.bool or mask.dim() != 4:
        return mask
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(
        ~mask, torch.finfo(dtype).min
    )
