"""Worker for the PPO data-parallel test: one ``ppo_update`` minibatch, its loss and gradient.

Run as ``torchrun --nproc_per_node 2 ppo_dp_worker.py OUT.pt``: each process holds half of the rollout's
rows (rank 0 the short responses, rank 1 the long ones) and rank 0 saves the loss and the gradient the
optimizer would apply. :func:`update_gradients` with ``rows=None`` is the single-process reference.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

import rlhfops
from rlhfops.train.kl import FixedKLController
from rlhfops.train.losses import gather_token_logprobs
from rlhfops.train.ppo_model import PolicyOutput
from rlhfops.train.ppo_rollout import Rollout

V, H, P, N = 11, 6, 2, 6
#: response lengths of the 8 rows; rows 0-3 (rank 0) hold 5 tokens, rows 4-7 (rank 1) hold 21
LENGTHS = [1, 1, 2, 1, 6, 5, 6, 4]


class TinyActorCritic(nn.Module):
    """Embedding -> tanh -> (next-token head, value head), float64; called like ``ActorCritic``."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(V, H, dtype=torch.float64)
        self.head = nn.Linear(H, V, dtype=torch.float64)
        self.value = nn.Linear(H, 1, dtype=torch.float64)

    def forward(
        self,
        sequences: torch.Tensor,
        attention_mask: torch.Tensor,
        prompt_length: int,
        temperature: float = 1.0,
    ) -> PolicyOutput:
        # the states that score the response tokens
        h = torch.tanh(self.emb(sequences))[:, prompt_length - 1 : -1]
        logps = gather_token_logprobs(self.head(h) / temperature, sequences[:, prompt_length:])
        return PolicyOutput(logps=logps, values=self.value(h).squeeze(-1), entropy=None)


def rollout() -> Rollout:
    """8 rows with uneven response lengths; old log-probs near the current ones so clipping is active."""
    gen = torch.Generator().manual_seed(3)
    b = len(LENGTHS)
    seqs = torch.randint(0, V, (b, P + N), generator=gen)
    mask = torch.arange(N)[None, :] < torch.tensor(LENGTHS)[:, None]
    with torch.no_grad():
        logps = TinyActorCritic()(seqs, torch.ones_like(seqs), P).logps
    noise = lambda: torch.randn(b, N, generator=gen, dtype=torch.float64)  # noqa: E731
    values = noise()
    return Rollout(
        sequences=seqs,
        attention_mask=torch.cat([torch.ones(b, P, dtype=torch.long), mask.long()], dim=1),
        prompt_length=P,
        mask=mask,
        old_logps=(logps + 0.3 * noise()) * mask,
        ref_logps=(logps + 0.5 * noise()) * mask,
        values=values * mask,
        advantages=noise() * mask,
        returns=(values + noise()) * mask,
        kl_per_response=torch.zeros(b),
        kl_measured=torch.zeros(b),
        scores=torch.zeros(b),
        texts=[""] * b,
        row_ids=torch.arange(b),
    )


def take(roll: Rollout, rows: slice) -> Rollout:
    kept = {k: (v[rows] if isinstance(v, torch.Tensor) else v) for k, v in vars(roll).items()}
    kept["texts"] = roll.texts[rows]
    return Rollout(**kept)


class RecordingOptimizer:
    """Records the gradient ``step`` would apply instead of applying it."""

    def __init__(self, model: nn.Module) -> None:
        self.model, self.grads = model, None

    def step(self) -> None:
        self.grads = {n: p.grad.detach().clone() for n, p in self.model.named_parameters()}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.model.parameters():
            p.grad = None


@dataclass
class Parts:
    """Exactly what ``ppo_update`` reads (``rlhfops.train.ppo_parts.UpdateParts``)."""

    config: Any
    accelerator: Any
    model: nn.Module
    kl_ctl: FixedKLController
    world: int
    optimizer: Any


def update_gradients(rows: slice | None) -> tuple[float, dict[str, torch.Tensor]]:
    """One ``ppo_update`` minibatch (all rows of this process) with policy, KL-as-loss and value terms."""
    from accelerate import Accelerator

    from rlhfops.train.ppo_update import ppo_update

    accelerator = Accelerator(cpu=True)
    world = accelerator.num_processes
    roll = rollout() if rows is None else take(rollout(), rows)
    config = SimpleNamespace(
        minibatch_size=len(LENGTHS),  # one minibatch: the whole rollout over all processes
        gradient_accumulation_steps=2,
        ppo_epochs=1,
        max_grad_norm=0.0,
        temperature=1.0,
        clip_eps=0.2,
        kl_mode="loss",
        kl_estimator="k3",
        vf_coef=0.5,
        value_clip=0.2,
    )
    module = TinyActorCritic()
    optimizer = RecordingOptimizer(module)
    parts = Parts(config, accelerator, accelerator.prepare(module), FixedKLController(0.05), world, optimizer)
    stats = ppo_update(parts, roll)
    return stats["loss"], optimizer.grads


if __name__ == "__main__":
    out = sys.argv[1]
    rank = int(os.environ["RANK"])
    loss, grads = update_gradients(slice(4 * rank, 4 * rank + 4))
    if rank == 0:
        torch.save({"loss": loss, "grads": grads, "rlhfops_file": rlhfops.__file__}, out)
    torch.distributed.barrier()  # neither process tears gloo down while the other still talks to it
