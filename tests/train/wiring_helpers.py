"""Independent references for the wiring tests: log-probs and rewards computed one sequence at a time
with plain transformers calls (no packing, no code under test), and trainer set-up on the tiny model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def stage_args(tmp_path: Path, model: Path, data: Path, name: str, extra: list[str] = ()) -> list[str]:
    return [
        f"model={model}",
        f"data={data}",
        f"output_dir={tmp_path / name}",
        "max_steps=1",
        "batch_size=4",
        "learning_rate=1e-3",
        "max_length=128",
        "progress=false",
        "eval_fraction=0.25",
        *extra,
    ]


def make_trainer(trainer_cls: Any, config_cls: Any, args: list[str]) -> Any:
    from rlhfops.config import load_config

    trainer = trainer_cls(load_config(config_cls, None, args))
    trainer.setup()
    return trainer


def perturb(module: torch.nn.Module, scale: float = 0.05, seed: int = 1) -> None:
    """Move every weight a little, so the policy differs from its reference."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)


def completion_logps(lm: torch.nn.Module, prompt: list[int], completion: list[int]) -> torch.Tensor:
    """[len(completion)] log-probs of the completion tokens after the prompt: one plain forward."""
    ids = torch.tensor([prompt + completion])
    logits = lm(input_ids=ids).logits[0].float()
    logp = torch.log_softmax(logits[len(prompt) - 1 : -1], dim=-1)
    return logp.gather(-1, torch.tensor(completion)[:, None]).squeeze(-1)


def pair_logps(
    lm: torch.nn.Module, pairs: list[Any], per_token: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed (or per-token mean) completion log-probs of chosen and rejected, each [B]."""

    def one(prompt: list[int], completion: list[int]) -> torch.Tensor:
        lp = completion_logps(lm, prompt, completion)
        return lp.mean() if per_token else lp.sum()

    chosen = torch.stack([one(p.prompt_ids, p.chosen_ids) for p in pairs])
    rejected = torch.stack([one(p.prompt_ids, p.rejected_ids) for p in pairs])
    return chosen, rejected


def last_token_reward(model: torch.nn.Module, ids: list[int]) -> torch.Tensor:
    """Scalar head at the last token of one unpadded sequence: trunk + head called directly."""
    out = model.trunk(input_ids=torch.tensor([ids]), use_cache=False)
    return model.head(out.last_hidden_state.float())[0, -1, 0]


def grads(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in module.named_parameters() if p.grad is not None}


def assert_grads_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], rtol: float = 1e-4) -> None:
    """Every parameter's gradient equal to rtol, with an absolute floor of rtol x the largest gradient entry
    (a parameter whose true gradient is 0, like a reward head's bias, holds rounding noise only)."""
    assert a.keys() == b.keys() and a
    scale = max(float(g.abs().max()) for g in b.values())
    assert scale > 0
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=rtol, atol=rtol * scale, msg=name)


def assert_empty_micro_batch_reaches_every_parameter(trainer: Any) -> None:
    """A process with no rows (an uneven last batch) contributes a zero loss that still has a gradient for
    every trainable parameter, so the processes' gradient all-reduce has the same tensors on every side."""
    stats = trainer.micro_loss([], 4.0)
    assert float(stats.loss) == 0.0 and stats.loss.requires_grad
    stats.loss.backward()
    assert all(p.grad is not None for p in trainer.model.parameters() if p.requires_grad)
