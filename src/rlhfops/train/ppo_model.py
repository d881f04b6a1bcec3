"""Policy + value in one module (so DDP sees one forward), and the reference policy.

With LoRA the reference is the same weights with the adapter disabled: no second copy in memory.
With full fine-tuning the reference is a frozen copy of the starting policy.

Under FSDP the ``ActorCritic`` is sharded: its decoder layers are FSDP units of their own (named by
``_no_split_modules``, as a transformers model names them), the rest belongs to the root unit, whose
parameters are whole only inside the root's forward. So whatever else calls the policy's weights - the
sampler (:class:`ShardedLM`), the LoRA reference - runs inside that forward (``forward(inside=fn)``).

Shapes: ``sequences`` [B, P+N] (left-padded prompts of width P, then N response positions),
``attention_mask`` and ``position_ids`` alike. Position ``P-1+t`` predicts response token ``t``; its
hidden state also gives the value of the state before token ``t``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from typing import Any, NamedTuple

import torch
from torch import nn

from rlhfops.models.chunks import in_row_chunks
from rlhfops.train.losses import entropy_from_logits


class PolicyOutput(NamedTuple):
    logps: torch.Tensor  # [B, N] log-probs of the response tokens (temperature-scaled)
    values: torch.Tensor | None  # [B, N]
    entropy: torch.Tensor | None  # [B, N]


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counting only attended tokens (left padding gets position 0)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def _response_logps(
    lm: nn.Module,
    sequences: torch.Tensor,
    attention_mask: torch.Tensor,
    prompt_length: int,
    temperature: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits [B,N,V] of response positions, hidden states [B,N,H] predicting them)."""
    decoder = lm.get_decoder()
    out = decoder(
        input_ids=sequences,
        attention_mask=attention_mask,
        position_ids=position_ids_from_mask(attention_mask),
        use_cache=False,
    )
    hidden = out.last_hidden_state[:, prompt_length - 1 : -1]
    return _logits(lm, hidden, temperature), hidden


def _logits(lm: nn.Module, hidden: torch.Tensor, temperature: float) -> torch.Tensor:
    logits = lm.get_output_embeddings()(hidden).float()
    if temperature > 0 and temperature != 1.0:
        logits = logits / temperature
    return logits


def _gather(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    return logits.gather(-1, tokens[..., None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)


class ActorCritic(nn.Module):
    """The trainable policy LM plus a value head on its trunk (``shared``) or a separate value model."""

    def __init__(self, lm: nn.Module, value_model: nn.Module | None = None, with_value: bool = True) -> None:
        super().__init__()
        self.lm = lm
        self.value_model = value_model
        self.value_head: nn.Linear | None = None
        # FSDP wraps each of these layer classes as its own unit (accelerate's transformer wrap policy)
        self._no_split_modules = list(getattr(lm, "_no_split_modules", None) or [])
        if with_value and value_model is None:
            hidden = lm.get_output_embeddings().in_features
            self.value_head = nn.Linear(hidden, 1)
            nn.init.zeros_(self.value_head.weight)
            nn.init.zeros_(self.value_head.bias)

    def forward(
        self,
        sequences: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        prompt_length: int = 0,
        temperature: float = 1.0,
        with_entropy: bool = False,
        inside: Callable[[], Any] | None = None,
    ) -> Any:
        """The policy's response log-probs (and values, entropies): a ``PolicyOutput``. With ``inside``:
        ``inside()``'s result instead, computed inside this forward (under FSDP: with the root's weights
        gathered, so ``inside`` may call ``self.lm`` directly)."""
        if inside is not None:
            return inside()
        if sequences is None or attention_mask is None:
            raise TypeError("ActorCritic.forward needs sequences and attention_mask (or inside)")
        logits, hidden = _response_logps(self.lm, sequences, attention_mask, prompt_length, temperature)
        logps = _gather(logits, sequences[:, prompt_length:])
        values = None
        if self.value_head is not None:
            values = self.value_head(hidden.float()).squeeze(-1)
        elif self.value_model is not None:
            all_values = self.value_model(
                input_ids=sequences,
                attention_mask=attention_mask,
                position_ids=position_ids_from_mask(attention_mask),
            )
            values = all_values[:, prompt_length - 1 : -1].float()
        entropy = None
        if with_entropy:
            with torch.no_grad():
                entropy = entropy_from_logits(logits.detach())
        return PolicyOutput(logps, values, entropy)


class ShardedLM:
    """The policy LM as the sampler calls it under FSDP: every call goes through the sharded root's
    forward (``root(inside=...)``), so the FSDP hooks gather the weights it reads. Not an ``nn.Module``:
    the sampler's packed-weight copies (``generate._packed_linears``) must not be made from shards, so
    ``modules()`` is empty."""

    def __init__(self, root: nn.Module, lm: nn.Module) -> None:
        self.root = root
        self.module = lm  # what ``generate`` unwraps to find the model's forward signature

    def __call__(self, **kwargs: Any) -> Any:
        return self.root(inside=lambda: self.module(**kwargs))

    def parameters(self) -> Iterator[nn.Parameter]:
        return self.module.parameters()

    def modules(self) -> Iterator[nn.Module]:
        return iter(())


class Reference:
    """Log-probs of the reference policy: the adapter disabled (LoRA) or a frozen copy (full)."""

    def __init__(self, lm: nn.Module, uses_lora: bool) -> None:
        self.uses_lora = uses_lora
        self.lm = lm
        #: FSDP with LoRA: the sharded ``ActorCritic`` holding ``lm``; the log-probs run inside its forward
        self.root: nn.Module | None = None
        self.copy: nn.Module | None = None
        if not uses_lora:
            self.copy = copy.deepcopy(lm).eval()
            for p in self.copy.parameters():
                p.requires_grad_(False)

    @torch.no_grad()
    def logps(
        self,
        sequences: torch.Tensor,
        attention_mask: torch.Tensor,
        prompt_length: int,
        temperature: float,
        group: int = 1,
    ) -> torch.Tensor:
        """Response-token log-probs [B, N]; with ``group`` = k samples per prompt (consecutive rows), each
        prompt is computed once (:func:`rlhfops.train.forward.hidden_after_prompts`)."""
        args = (sequences, attention_mask, prompt_length, temperature, group)
        if self.copy is None and self.root is not None:
            return self.root(inside=lambda: self._logps(*args))
        return self._logps(*args)

    def _logps(
        self,
        sequences: torch.Tensor,
        attention_mask: torch.Tensor,
        prompt_length: int,
        temperature: float,
        group: int,
    ) -> torch.Tensor:
        from rlhfops.train.forward import hidden_after_prompts  # cycle: forward imports this module

        model = self.copy if self.copy is not None else self.lm
        ctx = self.lm.disable_adapter() if self.copy is None else nullcontext()
        was_training = model.training
        model.eval()  # the shared-prompt cache needs eval mode (no checkpointing); dropout is off either way
        try:
            with ctx:
                hidden = hidden_after_prompts(
                    model.get_decoder(), sequences, attention_mask, prompt_length, group
                )[:, :-1]
                # the logits of a few rows at a time (rlhfops.models.chunks): the same numbers, a fraction
                # of the memory of [B, N, V] logits and their logsumexp temporary
                return in_row_chunks(
                    lambda h, t: _gather(_logits(model, h, temperature), t),
                    hidden,
                    sequences[:, prompt_length:],
                )
        finally:
            model.train(was_training)
