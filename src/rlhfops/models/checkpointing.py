"""Activation checkpointing: whole decoder layers, or selective (keep matmul outputs, recompute the rest).

Whole-layer checkpointing keeps only each decoder layer's input and reruns the layer's forward pass in the
backward pass: the least memory, for about one extra forward pass per step.

Selective checkpointing (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer
Models", arXiv:2205.05198, section 4.3; PyTorch's selective activation checkpointing API) keeps what is
expensive to recompute -- the outputs of matrix multiplications and of the attention kernel -- and
recomputes what is cheap: normalisations, the MLP's activation and gating product, rotary embeddings,
the repeated key/value heads. That is about half of a layer's saved activations at a small fraction of a
forward pass. ``full_share`` of the layers (evenly spaced) are checkpointed whole on top of that, a knob
between the two: each such layer gives up the rest of its activations for one more forward of that layer.

Both use non-reentrant checkpointing (works with frozen inputs and LoRA) and leave the numbers unchanged:
the recomputation runs the same ops on the same inputs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.checkpoint import CheckpointPolicy, checkpoint, create_selective_checkpoint_contexts


@dataclass(frozen=True)
class SelectiveCheckpointing:
    """Keep matmul/attention outputs in every layer; checkpoint ``full_share`` of the layers whole."""

    full_share: float = 0.0

    def full_layers(self, n_layers: int) -> set[int]:
        """Indices of the layers checkpointed whole: ``round(full_share * n)`` of them, evenly spaced."""
        k = round(self.full_share * n_layers)
        return {(j * n_layers) // k for j in range(k)} if k else set()


def _saved_ops() -> frozenset:
    aten = torch.ops.aten
    names = [
        "mm",
        "addmm",
        "bmm",
        "baddbmm",
        "_scaled_dot_product_flash_attention",
        "_scaled_dot_product_flash_attention_for_cpu",
        "_scaled_dot_product_efficient_attention",
        "_scaled_dot_product_cudnn_attention",
    ]
    return frozenset(getattr(aten, n).default for n in names if hasattr(aten, n))


_SAVED = _saved_ops()


def keep_matmuls_policy(ctx: Any, op: Any, *args: Any, **kwargs: Any) -> CheckpointPolicy:
    """Save the outputs of matmuls and attention kernels (any custom attention op too); recompute the rest."""
    if op in _SAVED or "attn" in str(op) or "attention" in str(op):
        return CheckpointPolicy.MUST_SAVE
    return CheckpointPolicy.PREFER_RECOMPUTE


def _selective_context():
    return create_selective_checkpoint_contexts(keep_matmuls_policy)


def enable(model: Any, how: bool | SelectiveCheckpointing = True) -> None:
    """Turn on activation checkpointing in a transformers model: whole layers (``True``) or ``how``."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers 5 name
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    model.config.use_cache = False
    if isinstance(how, SelectiveCheckpointing):
        layers = [m for m in model.modules() if getattr(m, "gradient_checkpointing", False) is True]
        whole = how.full_layers(len(layers))
        for i, layer in enumerate(layers):
            if i not in whole:  # the layer calls this in place of torch's checkpoint (transformers' hook)
                layer._gradient_checkpointing_func = functools.partial(
                    checkpoint, use_reentrant=False, context_fn=_selective_context
                )
