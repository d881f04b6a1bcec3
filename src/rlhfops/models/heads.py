"""Scalar heads on a causal-LM trunk: the reward model and the (separate) value model.

The trunk is the decoder without its LM head (``AutoModel`` on the same weights); the head is a
``Linear(hidden, 1)`` giving one scalar per token. A reward model reads it at the last token of
prompt+response and stores the normalisation (mean, std over the training responses) with its weights.

Saved layout: ``config.json`` + ``model.safetensors`` (the trunk, LoRA merged), ``score_head.safetensors``,
``reward_model.json`` (kind, mean, std, hidden size) and the tokenizer files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rlhfops.errors import UserError
from rlhfops.models.loading import (
    _adapter_base,
    _quiet_transformers,
    _torch_dtype,
    add_lora,
    atomic_dir,
    enable_gradient_checkpointing,
    resolve_model_dir,
)
from rlhfops.models.masks import attention_bias

HEAD_FILE = "score_head.safetensors"
META_FILE = "reward_model.json"


def _load_trunk(path: Path, dtype: str, attn_implementation: str) -> nn.Module:
    from transformers import AutoModel

    _quiet_transformers()
    return AutoModel.from_pretrained(path, dtype=_torch_dtype(dtype), attn_implementation=attn_implementation)


class ScalarHeadModel(nn.Module):
    """Trunk + ``Linear(hidden, 1)``: ``forward`` returns a scalar per token, [B, T] in float32."""

    kind = "scalar"

    def __init__(self, trunk: nn.Module, head: nn.Linear | None = None) -> None:
        super().__init__()
        self.trunk = trunk
        hidden = trunk.config.hidden_size
        if head is None:
            head = nn.Linear(hidden, 1)
            # Small init as in OpenRLHF/TRL: std 1/sqrt(hidden+1), bias 0.
            nn.init.normal_(head.weight, std=1.0 / (hidden + 1) ** 0.5)
            nn.init.zeros_(head.bias)
        self.head = head.float()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        mask = attention_bias(attention_mask, self.trunk.dtype)
        out = self.trunk(input_ids=input_ids, attention_mask=mask, position_ids=position_ids, use_cache=False)
        return self.head(out.last_hidden_state.float()).squeeze(-1)

    @classmethod
    def from_causal_lm(
        cls,
        name_or_path: str,
        *,
        dtype: str = "float32",
        lora: Any = None,
        attn_implementation: str = "sdpa",
        gradient_checkpointing: Any = False,
    ) -> ScalarHeadModel:
        """A fresh head on the trunk of a causal LM (bundled name or local directory)."""
        path = resolve_model_dir(name_or_path)
        if _adapter_base(path):
            raise UserError(f"{path}: is a LoRA adapter; start a reward/value model from full weights")
        trunk = _load_trunk(path, dtype, attn_implementation)
        if gradient_checkpointing:
            enable_gradient_checkpointing(trunk, gradient_checkpointing)
        if lora is not None and lora.enabled:
            trunk = add_lora(trunk, lora)
        return cls(trunk)

    def _plain_trunk(self) -> nn.Module:
        trunk = self.trunk
        if hasattr(trunk, "merge_and_unload"):
            trunk = trunk.merge_and_unload()
            self.trunk = trunk
        return trunk

    def meta(self) -> dict[str, Any]:
        return {"kind": self.kind, "hidden_size": self.trunk.config.hidden_size}

    def save_pretrained(self, out_dir: str | Path, tokenizer: Any = None) -> Path:
        """Trunk (LoRA merged), head, metadata and tokenizer, written atomically."""
        from safetensors.torch import save_file

        with atomic_dir(out_dir) as tmp:
            self._plain_trunk().save_pretrained(tmp, safe_serialization=True)
            save_file(
                {k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()},
                str(tmp / HEAD_FILE),
            )
            (tmp / META_FILE).write_text(json.dumps(self.meta(), indent=2))
            if tokenizer is not None:
                tokenizer.save_pretrained(tmp)
        return Path(out_dir)

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        dtype: str = "float32",
        attn_implementation: str = "sdpa",
        gradient_checkpointing: Any = False,
    ):
        from safetensors.torch import load_file

        path = Path(path)
        if not (path / META_FILE).exists():
            raise UserError(
                f"{path}: not a reward/value model directory (no {META_FILE}); train one: rlhfops train rm"
            )
        meta = json.loads((path / META_FILE).read_text())
        trunk = _load_trunk(path, dtype, attn_implementation)
        if gradient_checkpointing:
            enable_gradient_checkpointing(trunk, gradient_checkpointing)
        head = nn.Linear(trunk.config.hidden_size, 1)
        head.load_state_dict(load_file(str(path / HEAD_FILE)))
        model = cls(trunk, head)
        model.load_meta(meta)
        return model

    def load_meta(self, meta: dict[str, Any]) -> None:
        return None


#: how a reply's score is read from the head's per-token outputs (``RewardConfig.pooling``)
POOLINGS = ("last", "mean")


def reply_mean(reply_values: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
    """``mean`` pooling: the mean of the head's outputs over a reply's tokens [n]; ``fallback`` (the output at
    the token before the reply) for an empty reply, as ``last`` pooling reads it there."""
    return reply_values.mean() if reply_values.numel() else fallback


class RewardModel(ScalarHeadModel):
    """Reward model with its normalisation: ``normalize(raw) = (raw - mean) / std``, and its ``pooling``
    (``last``: the output at the reply's last token; ``mean``: the mean over the reply's tokens), both
    stored with the model so that every scorer reads a reply as training did."""

    kind = "reward"
    pooling = "last"

    def __init__(self, trunk: nn.Module, head: nn.Linear | None = None) -> None:
        super().__init__(trunk, head)
        self.register_buffer("reward_mean", torch.zeros(()), persistent=False)
        self.register_buffer("reward_std", torch.ones(()), persistent=False)

    def set_normalization(self, mean: float, std: float) -> None:
        self.reward_mean.fill_(float(mean))
        self.reward_std.fill_(float(std) if std > 0 else 1.0)

    def normalize(self, raw: torch.Tensor) -> torch.Tensor:
        return (raw - self.reward_mean.to(raw.device)) / self.reward_std.to(raw.device)

    def meta(self) -> dict[str, Any]:
        return {
            **super().meta(),
            "mean": float(self.reward_mean),
            "std": float(self.reward_std),
            "pooling": self.pooling,
        }

    def load_meta(self, meta: dict[str, Any]) -> None:
        self.set_normalization(meta.get("mean", 0.0), meta.get("std", 1.0))
        pooling = meta.get("pooling", "last")  # models saved before the setting: the last token
        if pooling not in POOLINGS:
            raise UserError(f"{META_FILE}: pooling {pooling!r} is not one of {', '.join(POOLINGS)}")
        self.pooling = pooling


class ValueModel(ScalarHeadModel):
    """A separate value model for PPO."""

    kind = "value"

    @classmethod
    def from_pretrained_any(
        cls, path: str, dtype: str = "float32", gradient_checkpointing: Any = False
    ) -> ValueModel:
        """From a reward/value model directory (trunk and head) or a causal LM (fresh head)."""
        p = Path(path)
        if p.is_dir() and (p / META_FILE).exists():
            return cls.from_pretrained(p, dtype=dtype, gradient_checkpointing=gradient_checkpointing)
        return cls.from_causal_lm(path, dtype=dtype, gradient_checkpointing=gradient_checkpointing)
