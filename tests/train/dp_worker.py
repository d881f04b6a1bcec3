"""Worker for the data-parallel invariance test: computes one step's gradients and saves rank 0's.

Run as ``torchrun --nproc_per_node N dp_worker.py STAGE OUT.pt key=value ...``.
"""

from __future__ import annotations

import sys

import torch

import rlhfops
from rlhfops.config import load_config
from rlhfops.train.runner import STAGES, trainer_class


def gradients(stage: str, overrides: list[str]) -> tuple[float, dict[str, torch.Tensor]]:
    cfg = load_config(STAGES[stage], None, overrides)
    trainer = trainer_class(stage)(cfg)
    trainer.setup()
    trainer.before_train()
    loss, _, _ = trainer.accumulate_gradients(1)
    model = trainer.accelerator.unwrap_model(trainer.model)
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    trainer.cleanup()
    return loss, grads


if __name__ == "__main__":
    stage, out, *rest = sys.argv[1:]
    loss, grads = gradients(stage, rest)
    import os

    if int(os.environ.get("RANK", "0")) == 0:
        torch.save({"loss": loss, "grads": grads, "rlhfops_file": rlhfops.__file__}, out)
