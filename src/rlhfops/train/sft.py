"""Supervised fine-tuning on demonstrations: next-token loss on completion tokens only, packed rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rlhfops.data.encode import encode_demos, require_rows
from rlhfops.data.schema import load_demos
from rlhfops.models.loading import LoraSettings, load_causal_lm, load_tokenizer, save_model
from rlhfops.train.base import StepStats, Trainer, split_train_eval
from rlhfops.train.config import SFTConfig
from rlhfops.train.forward import CompletionLogProbs, pack_completions
from rlhfops.train.losses import sft_loss


def lora_settings(cfg):
    return LoraSettings(**cfg.lora.model_dump())


class SFTTrainer(Trainer):
    stage = "sft"
    unit_name = "tokens"
    config: SFTConfig

    def load_data(self) -> None:
        cfg = self.config
        self.tokenizer = load_tokenizer(cfg.model, chat_template=cfg.chat_template)

        def encode(path: str):
            demos = load_demos(path)
            result = encode_demos(demos, self.tokenizer, cfg.max_length, cfg.chat_template, cfg.truncation)
            return require_rows(result, path, cfg.max_length)

        result = encode(cfg.data)
        encoded, self.truncation = result.rows, {"data": result.counts.as_dict()}
        if cfg.eval_data:
            held = encode(cfg.eval_data)
            self.truncation["eval_data"] = held.counts.as_dict()
            self.train_rows, self.eval_rows = encoded, held.rows
        else:
            tr, ev = split_train_eval(len(encoded), cfg.eval_fraction, cfg.seed)
            self.train_rows, self.eval_rows = [encoded[i] for i in tr], [encoded[i] for i in ev]

    def build_model(self) -> None:
        self.model = CompletionLogProbs(load_policy(self.config))

    def count_units(self, rows: list[Any]) -> int:
        return sum(len(r.completion_ids) for r in rows)

    def _batch(self, rows: list[Any]):
        batch = pack_completions(
            [r.prompt_ids for r in rows],
            [r.completion_ids for r in rows],
            self.config.max_length,
            self.tokenizer.pad_token_id,
            packing=self.config.packing,
        )
        return batch.to(self.accelerator.device)

    def micro_loss(self, rows: list[Any], global_units: float) -> StepStats:
        if not rows:
            return StepStats(loss=_zero_with_grad(self.model))
        logps = self.model(self._batch(rows))
        loss = sft_loss(logps, torch.ones_like(logps)) * (logps.numel() / global_units)
        return StepStats(loss=loss, sums={"nll": float(-logps.detach().sum())})

    @torch.no_grad()
    def eval_loss(self) -> float | None:
        """Mean negative log-likelihood per completion token on the held-out rows."""
        if not self.eval_rows:
            return None
        self.model.eval()
        total, count = 0.0, 0
        bs = max(1, self.config.batch_size)
        for i in range(0, len(self.eval_rows), bs):
            logps = self.model(self._batch(self.eval_rows[i : i + bs]))
            total += float(-logps.sum())
            count += logps.numel()
        return total / max(count, 1)

    def before_train(self) -> None:
        if self.start_step == 0:
            self.base_eval_loss = self.eval_loss()

    def extra_state(self) -> dict[str, Any]:
        return {"base_eval_loss": getattr(self, "base_eval_loss", None)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.base_eval_loss = state.get("base_eval_loss")

    def evaluate(self) -> dict[str, Any]:
        after = self.eval_loss()
        before = getattr(self, "base_eval_loss", None)
        return {
            "base_eval_loss": before,
            "eval_loss": after,
            "beats_base": (after < before) if (after is not None and before is not None) else None,
        }

    def save_final(self, out_dir: Path) -> None:
        save_model(self.accelerator.unwrap_model(self.model).lm, self.tokenizer, out_dir)


def load_policy(cfg) -> torch.nn.Module:
    """The causal LM a stage trains, as its config says (dtype, attention kernel, LoRA, checkpointing)."""
    return load_causal_lm(
        cfg.model,
        dtype=cfg.dtype,
        attn_implementation=cfg.attn_implementation,
        lora=lora_settings(cfg),
        gradient_checkpointing=cfg.checkpointing(),
    )


def _zero_with_grad(model: torch.nn.Module) -> torch.Tensor:
    """A zero loss connected to every parameter (a rank with no rows still joins the DDP all-reduce)."""
    return sum((p.sum() * 0.0 for p in model.parameters() if p.requires_grad), torch.zeros(()))
