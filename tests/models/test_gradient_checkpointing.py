"""Gradient checkpointing is honoured by every model a stage trains and does not change gradients."""

from __future__ import annotations

from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from rlhfops.models.checkpointing import SelectiveCheckpointing
from rlhfops.models.heads import RewardModel
from rlhfops.models.loading import load_causal_lm
from rlhfops.models.tiny import make_tiny_model_dir


def _grads(model: torch.nn.Module, loss: torch.Tensor) -> dict[str, torch.Tensor]:
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


MODES = [True, SelectiveCheckpointing(0.0), SelectiveCheckpointing(0.5)]


def test_reward_model_checkpointing_same_gradients(tmp_path):
    path = make_tiny_model_dir(tmp_path / "tiny")
    ids = torch.randint(3, 200, (2, 24), generator=torch.Generator().manual_seed(0))
    out = {}
    for how in [False, *MODES]:
        torch.manual_seed(0)  # same head init
        rm = RewardModel.from_causal_lm(str(path), gradient_checkpointing=how)
        assert rm.trunk.is_activation_checkpointing is bool(how)
        rm.train()
        out[how] = _grads(rm, rm(ids)[:, -1].sum())
    assert len(out[False]) > 0
    for how in MODES:
        assert out[how].keys() == out[False].keys()
        for name in out[False]:
            torch.testing.assert_close(out[how][name], out[False][name], rtol=1e-5, atol=1e-7)


class _CountOps(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def _backward_ops(path, how) -> Counter:
    torch.manual_seed(0)
    model = load_causal_lm(str(path), gradient_checkpointing=how)
    model.train()
    ids = torch.randint(3, 200, (2, 16), generator=torch.Generator().manual_seed(2))
    loss = model(input_ids=ids).logits.float().logsumexp(-1).mean()
    with _CountOps() as mode:
        loss.backward()
    return mode.counts


def test_selective_checkpointing_recomputes_elementwise_ops_not_matmuls(tmp_path):
    """What each mode reruns in the backward pass, counted at the dispatcher on a 2-layer model."""
    path = make_tiny_model_dir(tmp_path / "tiny")
    plain = _backward_ops(path, False)
    whole = _backward_ops(path, True)
    selective = _backward_ops(path, SelectiveCheckpointing(0.0))
    half = _backward_ops(path, SelectiveCheckpointing(0.5))  # one of the two layers whole

    def matmuls(c: Counter) -> int:
        return c["mm"] + c["addmm"] + c["bmm"]

    assert plain["silu"] == 0 and plain["rsqrt"] == 0  # nothing is recomputed without checkpointing
    assert matmuls(selective) == matmuls(plain)  # matmul outputs are kept...
    assert selective["silu"] == 2 and selective["rsqrt"] >= 4  # ...the elementwise ops rerun, every layer
    assert matmuls(whole) > matmuls(plain)  # whole layers rerun their matmuls too
    assert matmuls(plain) < matmuls(half) < matmuls(whole)
    assert SelectiveCheckpointing(1 / 3).full_layers(30) == set(range(0, 30, 3))
    assert SelectiveCheckpointing(0.0).full_layers(30) == set()
    assert SelectiveCheckpointing(1.0).full_layers(4) == {0, 1, 2, 3}


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
