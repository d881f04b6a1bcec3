"""Activation checkpointing: whole decoder layers, or selective (keep matmul outputs, recompute the rest).

Whole-layer checkpointing keeps only each decoder layer's input and reruns the layer's forward pass in the
backward pass: the least memory, for about one extra forward pass per step.

Selective checkpointing (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer
Models", arXiv:2205.05198, section 4.3; PyTorch's selective activation checkpointing API) keeps what is
expensive to recompute -- the outputs of matrix multiplications and of the attention kernel -- and
recomputes what is cheap: normalisations, the MLP's activation and gating product, rotary embeddings,
the repeated key/value heads. That is about half of a layer's saved activations at a small fraction of a
forward pass. ``full_share`` of the layers (evenly spaced) can be checkpointed whole on top of that, a
knob between the two: each such layer gives up the rest of its activations for one more forward of it.

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


class _KeepMatmuls:
    """Policy for one decoder layer: save the outputs of matmuls and attention kernels, recompute the rest.

    Except the layer's last ``nn.Linear`` (the MLP's output projection in Llama-style layers): its output
    only feeds the residual sum that is the next layer's input, which is kept anyway, so caching it would
    hold ~2 MB per layer (2 x 505 tokens) that the backward pass never reads. Where a layer does need it
    (a norm after the MLP), it is recomputed: correct either way.
    """

    def __init__(self, layer: torch.nn.Module) -> None:
        self.in_last = False
        linears = [m for m in layer.modules() if isinstance(m, torch.nn.Linear)]
        if linears:
            linears[-1].register_forward_pre_hook(lambda *_: setattr(self, "in_last", True))
            linears[-1].register_forward_hook(lambda *_: setattr(self, "in_last", False))

    def __call__(self, ctx: Any, op: Any, *args: Any, **kwargs: Any) -> CheckpointPolicy:
        if not self.in_last and (op in _SAVED or _is_attention(op)):
            return CheckpointPolicy.MUST_SAVE
        return CheckpointPolicy.PREFER_RECOMPUTE


@functools.cache
def _is_attention(op: Any) -> bool:
    """Attention kernels outside aten (flash-attn's custom ops) are kept too."""
    name = str(op)
    return "attn" in name or "attention" in name


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
                policy = _KeepMatmuls(layer)
                layer._gradient_checkpointing_func = functools.partial(
                    checkpoint,
                    use_reentrant=False,
                    context_fn=functools.partial(create_selective_checkpoint_contexts, policy),
                )
