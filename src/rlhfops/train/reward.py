"""Reward model: causal-LM trunk + scalar head trained with the Bradley-Terry loss on preference pairs.

The reward of a response is the head's output at the last token of prompt+response (``pooling: last``)
or the mean of its outputs over the response's tokens (``pooling: mean``). After training,
rewards are normalised to mean 0 / std 1 over the training responses and the statistics are stored with
the model. The summary reports held-out pairwise accuracy and the correlation of reward with response
length (a reward-hacking risk signal: a reward model that pays for length will be gamed by PPO).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlhfops.measures.intervals import wilson_interval
from rlhfops.models.heads import RewardModel, reply_mean
from rlhfops.train.base import StepStats, Trainer
from rlhfops.train.config import RewardConfig
from rlhfops.train.losses import bradley_terry_loss
from rlhfops.train.prefs import load_pref_rows, pack_pair_batch
from rlhfops.train.sft import _zero_with_grad, lora_settings

NORM_PAIRS = 128


def margin_applies(use_margin: bool, rows: list[Any]) -> bool:
    """Whether the Bradley-Terry loss subtracts a margin for ``rows``: ``use_margin`` is on and at least one
    row carries a ``margin`` (rows without one count as 0). With no margin in the data the setting does
    nothing, whatever its value (the plain loss)."""
    return bool(use_margin) and any(r.margin is not None for r in rows)


class RewardTrainer(Trainer):
    stage = "rm"
    unit_name = "pairs"
    config: RewardConfig

    def load_data(self) -> None:
        self.tokenizer, self.train_rows, self.eval_rows, self.truncation = load_pref_rows(self.config)

    def build_model(self) -> None:
        cfg = self.config
        self.model = RewardModel.from_causal_lm(
            cfg.model,
            dtype=cfg.dtype,
            lora=lora_settings(cfg),
            attn_implementation=cfg.attn_implementation,
            gradient_checkpointing=cfg.checkpointing(),
        )
        self.model.pooling = cfg.pooling

    def _batch(self, rows: list[Any]):
        batch = pack_pair_batch(
            self.config,
            self.tokenizer.pad_token_id,
            [r.prompt_ids for r in rows],
            [r.chosen_ids for r in rows],
            [r.rejected_ids for r in rows],
        )
        return batch.to(self.accelerator.device)

    def rewards(self, rows: list[Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw (unnormalised) rewards of chosen and rejected responses, each [len(rows)]."""
        batch = self._batch(rows)
        values = self.model(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids
        )
        if self.config.pooling == "mean":  # each response's tokens end at its last token (both layouts)
            scores = torch.stack(
                [
                    reply_mean(values[row, last - k + 1 : last + 1], values[row, last]).float()
                    for row, last, k in zip(
                        batch.last_row.tolist(), batch.last_pos.tolist(), batch.lengths.tolist(), strict=True
                    )
                ]
            )
        else:
            scores = values[batch.last_row, batch.last_pos].float()
        n = len(rows)
        return scores[:n], scores[n:]

    def micro_loss(self, rows: list[Any], global_units: float) -> StepStats:
        if not rows:
            return StepStats(loss=_zero_with_grad(self.model))
        chosen, rejected = self.rewards(rows)
        margin = None
        if margin_applies(self.config.use_margin, rows):
            margin = torch.tensor([r.margin or 0.0 for r in rows], dtype=chosen.dtype, device=chosen.device)
        out = bradley_terry_loss(chosen, rejected, margin)
        n = len(rows)
        return StepStats(
            loss=out.loss * (n / global_units),
            sums={
                "accuracy": float(out.accuracy) * n,
                "reward_margin": float((chosen - rejected).detach().mean()) * n,
            },
        )

    @torch.no_grad()
    def score_rows(self, rows: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        self.model.eval()
        ch, rj = [], []
        bs = max(1, self.config.batch_size)
        for i in range(0, len(rows), bs):
            c, r = self.rewards(rows[i : i + bs])
            ch.append(c.cpu().numpy())
            rj.append(r.cpu().numpy())
        if not ch:
            return np.zeros(0), np.zeros(0)
        return np.concatenate(ch), np.concatenate(rj)

    def evaluate(self) -> dict[str, Any]:
        # Normalisation statistics from (at most) the first NORM_PAIRS training pairs: 2 x 128 responses
        # pin mean and std well enough, and scoring every pair of a large set would double the run.
        train_c, train_r = self.score_rows(self.train_rows[:NORM_PAIRS])
        both = np.concatenate([train_c, train_r])
        self.reward_mean = float(both.mean())
        self.reward_std = float(both.std()) or 1.0
        out: dict[str, Any] = {"reward_mean_raw": self.reward_mean, "reward_std_raw": self.reward_std}
        out["train_accuracy"] = float((train_c > train_r).mean())  # on the normalisation subset
        if self.eval_rows:
            ev_c, ev_r = self.score_rows(self.eval_rows)
            acc = float((ev_c > ev_r).mean())
            n = len(ev_c)
            out.update(
                {
                    "eval_accuracy": acc,
                    "eval_accuracy_ci95": list(wilson_interval(int(round(acc * n)), n)),
                    "eval_pairs": n,
                }
            )
            rewards = np.concatenate([ev_c, ev_r])
            lengths = np.array(
                [len(r.chosen_ids) for r in self.eval_rows] + [len(r.rejected_ids) for r in self.eval_rows],
                float,
            )
        else:  # no held-out pairs: the normalisation subset scored above (its rewards, its lengths)
            scored = self.train_rows[:NORM_PAIRS]
            rewards = both
            lengths = np.array(
                [len(r.chosen_ids) for r in scored] + [len(r.rejected_ids) for r in scored], float
            )
        out["reward_length_correlation"] = pearson(rewards, lengths)
        return out

    def save_final(self, out_dir: Path) -> None:
        model = self.accelerator.unwrap_model(self.model)
        model.set_normalization(self.reward_mean, self.reward_std)
        model.save_pretrained(out_dir, tokenizer=self.tokenizer)


def pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    """Pearson correlation, or None when either side is constant."""
    if len(x) < 2 or np.std(x) == 0 or np.std(y) == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])
