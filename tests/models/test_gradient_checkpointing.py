"""Gradient checkpointing is honoured by every model a stage trains and does not change gradients."""

from __future__ import annotations

import torch

from rlhfops.models.heads import RewardModel
from rlhfops.models.loading import load_causal_lm
from rlhfops.models.tiny import make_tiny_model_dir


def _grads(model: torch.nn.Module, loss: torch.Tensor) -> dict[str, torch.Tensor]:
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_reward_model_checkpointing_same_gradients(tmp_path):
    path = make_tiny_model_dir(tmp_path / "tiny")
    ids = torch.randint(3, 200, (2, 24), generator=torch.Generator().manual_seed(0))
    out = {}
    for flag in (False, True):
        torch.manual_seed(0)  # same head init
        rm = RewardModel.from_causal_lm(str(path), gradient_checkpointing=flag)
        assert rm.trunk.is_activation_checkpointing is flag
        rm.train()
        out[flag] = _grads(rm, rm(ids)[:, -1].sum())
    assert out[True].keys() == out[False].keys() and len(out[True]) > 0
    for name in out[False]:
        torch.testing.assert_close(out[True][name], out[False][name], rtol=1e-5, atol=1e-7)


def test_causal_lm_checkpointing_with_lora_still_trains_the_adapter(tmp_path):
    from rlhfops.models.loading import LoraSettings

    path = make_tiny_model_dir(tmp_path / "tiny")
    model = load_causal_lm(str(path), lora=LoraSettings(enabled=True, r=4), gradient_checkpointing=True)
    model.train()
    ids = torch.randint(3, 200, (2, 16), generator=torch.Generator().manual_seed(1))
    grads = _grads(model, model(input_ids=ids).logits.float().logsumexp(-1).mean())
    lora_grads = [g for n, g in grads.items() if "lora_" in n]
    assert lora_grads and all(torch.isfinite(g).all() for g in lora_grads)
    assert any(g.abs().sum() > 0 for g in lora_grads)  # non-reentrant checkpointing reaches the adapter


def test_value_model_from_a_reward_model_dir_honours_checkpointing(tmp_path):
    """PPO's separate value model starts from the reward model's directory: the flag reaches its trunk."""
    from rlhfops.models.heads import ValueModel
    from rlhfops.models.loading import load_tokenizer

    path = make_tiny_model_dir(tmp_path / "tiny")
    RewardModel.from_causal_lm(str(path)).save_pretrained(tmp_path / "rm", load_tokenizer(str(path)))
    for flag in (False, True):
        value = ValueModel.from_pretrained_any(str(tmp_path / "rm"), gradient_checkpointing=flag)
        assert value.trunk.is_activation_checkpointing is flag
