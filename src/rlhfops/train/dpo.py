"""Direct preference optimisation (Rafailov et al. 2023) with reference log-probs computed once.

Before the first step the starting model (which is the reference) scores every training pair the run
will use (all of them unless ``max_steps`` ends inside the first epoch) and every held-out pair; those
sums are stored in the run directory (``ref_logps.pt``), so no second model sits in memory and a resumed
run does not recompute them. Loss variants (their functions, options and log-prob convention) come from
the registry in ``loss_registry.py``; the trainer has no per-variant branch. ``rpo_alpha`` > 0 adds a
negative log-likelihood term on the chosen replies to any variant (Pang et al. 2024; ``losses.add_nll_term``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rlhfops.measures.intervals import wilson_interval
from rlhfops.models.loading import save_model
from rlhfops.train.base import StepStats, Trainer
from rlhfops.train.checkpoint_manifest import load_state
from rlhfops.train.config import DPOConfig
from rlhfops.train.forward import CompletionLogProbs, sequence_sums
from rlhfops.train.loss_registry import DPOVariant, dpo_variant
from rlhfops.train.losses import add_nll_term, chosen_nll
from rlhfops.train.prefs import load_pref_rows, pack_pair_batch
from rlhfops.train.sft import _zero_with_grad, load_policy

REF_FILE = "ref_logps.pt"


@dataclass
class IndexedPair:
    """An encoded preference pair with its index into the reference log-prob table."""

    key: str
    pair: Any


class DPOTrainer(Trainer):
    stage = "dpo"
    unit_name = "pairs"
    config: DPOConfig

    def load_data(self) -> None:
        self.tokenizer, train, held, self.truncation = load_pref_rows(self.config)
        self.train_rows = [IndexedPair(f"t{i}", p) for i, p in enumerate(train)]
        self.eval_rows = [IndexedPair(f"e{i}", p) for i, p in enumerate(held)]
        self.ref: dict[str, tuple[float, float]] = {}

    @property
    def variant(self) -> DPOVariant:
        """The configured loss variant: its loss function, options and log-prob convention."""
        return dpo_variant(self.config.loss_type)

    def build_model(self) -> None:
        self.model = CompletionLogProbs(load_policy(self.config))

    def pair_sums(self, rows: list[IndexedPair]) -> tuple[torch.Tensor, torch.Tensor]:
        """(sums, lengths), each [2 * len(rows)]: the policy's log-prob sums over each completion's tokens and
        the completions' token counts, chosen replies first, then rejected ones."""
        pairs = [r.pair for r in rows]
        batch = pack_pair_batch(
            self.config,
            self.tokenizer.pad_token_id,
            [p.prompt_ids for p in pairs],
            [p.chosen_ids for p in pairs],
            [p.rejected_ids for p in pairs],
        ).to(self.accelerator.device)
        return sequence_sums(self.model(batch), batch), batch.lengths

    def _convention(self, sums: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.variant.per_token_logps:
            sums = sums / lengths.to(sums.dtype)
        n = sums.shape[0] // 2
        return sums[:n], sums[n:]

    def pair_logps(self, rows: list[IndexedPair]) -> tuple[torch.Tensor, torch.Tensor]:
        """Policy log-probs of chosen and rejected responses, each [len(rows)].

        Sums over completion tokens, or means per completion token when the configured loss variant
        asks for them (``DPOVariant.per_token_logps``: IPO, as in Azar et al. 2023's code and TRL).
        """
        return self._convention(*self.pair_sums(rows))

    @torch.no_grad()
    def _compute_reference(self, rows: list[IndexedPair]) -> None:
        self.model.eval()
        bs = max(1, self.config.batch_size)
        for i in range(0, len(rows), bs):
            part = rows[i : i + bs]
            c, r = self.pair_logps(part)
            for row, cv, rv in zip(part, c.tolist(), r.tolist(), strict=True):
                self.ref[row.key] = (cv, rv)

    def before_train(self) -> None:
        path = self.run.path / REF_FILE
        if path.exists():
            self.ref = load_state(path)
            return
        # Every process computes the whole table (cheap next to training; no gather needed).
        self._compute_reference(self.planned_rows() + self.eval_rows)
        if self.is_main:
            tmp = path.with_name(f".{REF_FILE}.tmp")
            torch.save(self.ref, tmp)
            tmp.replace(path)

    def _ref_tensors(self, rows: list[IndexedPair], like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        vals = torch.tensor([self.ref[r.key] for r in rows], dtype=like.dtype, device=like.device)
        return vals[:, 0], vals[:, 1]

    def micro_loss(self, rows: list[IndexedPair], global_units: float) -> StepStats:
        if not rows:
            return StepStats(loss=_zero_with_grad(self.model))
        sums, lengths = self.pair_sums(rows)
        pc, pr = self._convention(sums, lengths)
        rc, rr = self._ref_tensors(rows, pc)
        variant = self.variant
        out = variant.loss(pc, pr, rc, rr, self.config.beta, **variant.option_values(self.config))
        n = len(rows)
        # RPO (Pang et al. 2024): + rpo_alpha * the chosen replies' NLL per token; 0 returns `out` as is
        nll = chosen_nll(sums[:n], lengths[:n])
        out = add_nll_term(out, nll, self.config.rpo_alpha)
        return StepStats(
            loss=out.loss * (n / global_units),
            sums={
                "reward_accuracy": float(out.reward_accuracy) * n,
                "reward_margin": float(out.reward_margin) * n,
                "chosen_reward": float(out.chosen_rewards.mean()) * n,
                "rejected_reward": float(out.rejected_rewards.mean()) * n,
                "chosen_nll": float(nll.detach().mean()) * n,
            },
        )

    @torch.no_grad()
    def implicit_accuracy(self, rows: list[IndexedPair]) -> dict[str, float]:
        """Share of pairs whose implicit reward beta*log(pi/pi_ref) ranks chosen above rejected."""
        self.model.eval()
        correct, margin, n = 0, 0.0, 0
        bs = max(1, self.config.batch_size)
        for i in range(0, len(rows), bs):
            part = rows[i : i + bs]
            pc, pr = self.pair_logps(part)
            rc, rr = self._ref_tensors(part, pc)
            m = self.config.beta * ((pc - rc) - (pr - rr))
            correct += int((m > 0).sum())
            margin += float(m.sum())
            n += len(part)
        return {"accuracy": correct / max(n, 1), "margin": margin / max(n, 1), "pairs": n}

    def evaluate(self) -> dict[str, Any]:
        # on the training pairs this run used (the reference table holds exactly those), at most
        # `accuracy_pairs` of them (the first in use order; 0 = all)
        rows, cap = self.planned_rows(), self.config.accuracy_pairs
        train = self.implicit_accuracy(rows[:cap] if cap else rows)
        out: dict[str, Any] = {"train_" + k: v for k, v in train.items()}
        if self.eval_rows:
            ev = self.implicit_accuracy(self.eval_rows)
            out.update({"eval_" + k: v for k, v in ev.items()})
            out["eval_accuracy_ci95"] = list(
                wilson_interval(round(ev["accuracy"] * ev["pairs"]), ev["pairs"])
            )
        return out

    def save_final(self, out_dir: Path) -> None:
        save_model(self.accelerator.unwrap_model(self.model).lm, self.tokenizer, out_dir)
