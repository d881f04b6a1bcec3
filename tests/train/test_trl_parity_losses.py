"""Parity with TRL 1.16's own loss code on the same random log-probs.

TRL computes the DPO loss inside ``DPOTrainer._compute_loss`` and the reward loss inside
``RewardTrainer.compute_loss``; both only read attributes of ``self`` and call ``model(**inputs)``,
so we call the unbound methods with a ``SimpleNamespace`` self, a stub accelerator and a stub model
that returns the per-token log-probs / rewards we chose. Nothing of TRL is reimplemented here.

TRL 1.16 notes (found while writing these tests):
- its ``loss_type="sigmoid"`` no longer applies ``label_smoothing`` (it only feeds robust / EXO /
  AOT); the conservative-DPO form lives on in ``loss_type="aot"``, which for a batch of one pair
  (sorting a single element is the identity) is exactly cDPO. We compare against that, pair by pair.
- its IPO divides each sequence's log-ratio by the number of completion tokens; we pass those
  per-token means to ``ipo_loss``.
"""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

# trl==1.16 is a test dependency (pip install -e .[dev]); a missing trl fails here rather than skipping.
import trl.trainer.dpo_trainer as trl_dpo
from trl.trainer.reward_trainer import RewardTrainer
from trl.trainer.utils import entropy_from_logits as trl_entropy
from trl.trainer.utils import selective_log_softmax

from rlhfops.train.losses import (
    bradley_terry_loss,
    dpo_sigmoid_loss,
    entropy_from_logits,
    gather_token_logprobs,
    ipo_loss,
)


class _Accelerator:
    device = torch.device("cpu")

    @staticmethod
    def gather(x):
        return x

    @staticmethod
    def gather_for_metrics(x):
        return x


def _trl_self(**attrs):
    base = dict(
        model=SimpleNamespace(training=True),
        accelerator=_Accelerator(),
        aux_loss_enabled=False,
        ld_alpha=None,
        precompute_ref_logps=True,
        f_divergence_type="reverse_kl",
        loss_weights=[1.0],
        label_smoothing=0.0,
        use_weighting=False,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        _total_train_tokens=0,
        _tp_size=1,
    )
    base.update(attrs)
    return SimpleNamespace(**base)


def _dpo_batch(seed: int, pairs: int = 5, prompt: int = 3, max_completion: int = 6):
    """Random per-token log-probs for 2*pairs sequences ([chosen..., rejected...]) with ragged completions."""
    gen = torch.Generator().manual_seed(seed)
    n, length = 2 * pairs, prompt + max_completion
    comp_len = torch.randint(1, max_completion + 1, (n,), generator=gen)
    pos = torch.arange(length)[None, :]
    completion_mask = ((pos >= prompt) & (pos < prompt + comp_len[:, None])).long()  # [2P, L]
    attention_mask = (pos < prompt + comp_len[:, None]).long()
    token_logps = -torch.rand(n, length - 1, generator=gen, dtype=torch.float64) * 3  # [2P, L-1]
    token_logps = token_logps * completion_mask[:, 1:]  # TRL's labels=-100 give 0 off the completion
    ref_seq = -torch.rand(n, generator=gen, dtype=torch.float64) * 3 * comp_len
    inputs = {
        "input_ids": torch.randint(0, 50, (n, length), generator=gen),
        "attention_mask": attention_mask,
        "completion_mask": completion_mask,
        "ref_chosen_logps": ref_seq[:pairs],
        "ref_rejected_logps": ref_seq[pairs:],
    }
    return inputs, token_logps, ref_seq, comp_len.to(torch.float64)


def _stub_lm(token_logps):
    def model(**kwargs):
        z = torch.zeros_like(token_logps)
        return SimpleNamespace(log_probs=token_logps, entropy=z, mean_logits=z, is_top1=z.bool())

    return model


def _trl_dpo_loss(token_logps, inputs, loss_type: str, beta: float, label_smoothing: float = 0.0):
    self = _trl_self(loss_types=[loss_type], beta=beta, label_smoothing=label_smoothing)
    loss = trl_dpo.DPOTrainer._compute_loss(self, _stub_lm(token_logps), inputs, return_outputs=False)
    return loss, self._metrics["train"]


@pytest.mark.parametrize(("seed", "beta"), [(0, 0.1), (1, 0.5), (2, 2.0)])
def test_dpo_sigmoid_matches_trl(seed, beta):
    inputs, token_logps, ref_seq, _ = _dpo_batch(seed)
    trl_loss, metrics = _trl_dpo_loss(token_logps, inputs, "sigmoid", beta)
    seq = token_logps.sum(dim=1)
    p = len(seq) // 2
    ours = dpo_sigmoid_loss(seq[:p], seq[p:], ref_seq[:p], ref_seq[p:], beta)
    torch.testing.assert_close(ours.loss, trl_loss, rtol=1e-6, atol=1e-9)
    assert float(ours.chosen_rewards.mean()) == pytest.approx(
        metrics["rewards/chosen"][0], rel=1e-6, abs=1e-9
    )
    assert float(ours.rejected_rewards.mean()) == pytest.approx(
        metrics["rewards/rejected"][0], rel=1e-6, abs=1e-9
    )
    assert float(ours.reward_accuracy) == pytest.approx(metrics["rewards/accuracies"][0], rel=1e-6)
    assert float(ours.reward_margin) == pytest.approx(metrics["rewards/margins"][0], rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("label_smoothing", [0.1, 0.3])
def test_dpo_label_smoothing_matches_trl_single_pair_aot(label_smoothing):
    inputs, token_logps, ref_seq, _ = _dpo_batch(3, pairs=4)
    p = 4
    seq = token_logps.sum(dim=1)
    ours = dpo_sigmoid_loss(seq[:p], seq[p:], ref_seq[:p], ref_seq[p:], 0.3, label_smoothing=label_smoothing)
    for i in range(p):
        rows = [i, p + i]
        one = {k: v[rows] for k, v in inputs.items() if k not in ("ref_chosen_logps", "ref_rejected_logps")}
        one["ref_chosen_logps"] = inputs["ref_chosen_logps"][i : i + 1]
        one["ref_rejected_logps"] = inputs["ref_rejected_logps"][i : i + 1]
        trl_loss, _ = _trl_dpo_loss(token_logps[rows], one, "aot", 0.3, label_smoothing)
        torch.testing.assert_close(ours.losses[i], trl_loss, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_dpo_with_the_chosen_nll_matches_trl_sigmoid_plus_sft_single_pair(alpha):
    """``rpo_alpha``: TRL 1.16 writes it as ``loss_type=["sigmoid", "sft"]`` with ``loss_weights=[1, alpha]``;
    its SFT term is a token mean over the batch's chosen tokens, ours a per-pair mean per chosen token (so a
    step split into micro-batches gives the same loss): the two agree pair by pair."""
    from rlhfops.train.losses import add_nll_term, chosen_nll

    inputs, token_logps, ref_seq, comp_len = _dpo_batch(6, pairs=4)
    p = 4
    seq = token_logps.sum(dim=1)
    dpo = dpo_sigmoid_loss(seq[:p], seq[p:], ref_seq[:p], ref_seq[p:], 0.3)
    ours = add_nll_term(dpo, chosen_nll(seq[:p], comp_len[:p]), alpha)
    assert len(set(comp_len[:p].tolist())) > 1  # chosen replies of different lengths
    for i in range(p):
        rows = [i, p + i]
        one = {k: v[rows] for k, v in inputs.items() if k not in ("ref_chosen_logps", "ref_rejected_logps")}
        one["ref_chosen_logps"] = inputs["ref_chosen_logps"][i : i + 1]
        one["ref_rejected_logps"] = inputs["ref_rejected_logps"][i : i + 1]
        trl_self = _trl_self(loss_types=["sigmoid", "sft"], loss_weights=[1.0, alpha], beta=0.3)
        trl_loss = trl_dpo.DPOTrainer._compute_loss(
            trl_self, _stub_lm(token_logps[rows]), one, return_outputs=False
        )
        torch.testing.assert_close(ours.losses[i], trl_loss, rtol=1e-6, atol=1e-9)
        assert float(ours.losses[i] - dpo.losses[i]) > 0.1  # the term is there


@pytest.mark.parametrize(("seed", "beta"), [(4, 0.1), (5, 1.0)])
def test_ipo_matches_trl_with_mean_per_token_logps(seed, beta):
    inputs, token_logps, ref_seq, comp_len = _dpo_batch(seed)
    trl_loss, _ = _trl_dpo_loss(token_logps, inputs, "ipo", beta)
    seq = token_logps.sum(dim=1) / comp_len  # mean log-prob per completion token
    ref = ref_seq / comp_len
    p = len(seq) // 2
    ours = ipo_loss(seq[:p], seq[p:], ref[:p], ref[p:], beta)
    torch.testing.assert_close(ours.loss, trl_loss, rtol=1e-6, atol=1e-9)
    # and the sums-convention gives a different number, so the test distinguishes the two
    sums = ipo_loss(token_logps.sum(1)[:p], token_logps.sum(1)[p:], ref_seq[:p], ref_seq[p:], beta)
    assert not torch.isclose(sums.loss, trl_loss, rtol=1e-3)


@pytest.mark.parametrize("with_margin", [False, True])
def test_bradley_terry_matches_trl_reward_trainer(with_margin):
    gen = torch.Generator().manual_seed(7)
    b = 6
    rewards = torch.randn(2 * b, 1, generator=gen, dtype=torch.float64) * 2
    inputs = {"input_ids": torch.zeros(2 * b, 4, dtype=torch.long), "attention_mask": torch.ones(2 * b, 4)}
    margin = torch.rand(b, generator=gen, dtype=torch.float64) if with_margin else None
    if with_margin:
        inputs["margin"] = margin
    self = _trl_self(args=SimpleNamespace(center_rewards_coefficient=None))
    trl_loss = RewardTrainer.compute_loss(self, lambda **kw: SimpleNamespace(logits=rewards), inputs)
    ours = bradley_terry_loss(rewards[:b, 0], rewards[b:, 0], margin)
    torch.testing.assert_close(ours.loss, trl_loss, rtol=1e-6, atol=1e-9)
    metrics = self._metrics["train"]
    assert float(ours.accuracy) == pytest.approx(metrics["accuracy"][0], rel=1e-6)
    assert float(ours.mean_margin) == pytest.approx(metrics["margin"][0], rel=1e-6, abs=1e-9)


def test_token_logprobs_and_entropy_match_trl_utils():
    gen = torch.Generator().manual_seed(8)
    logits = torch.randn(3, 5, 11, generator=gen) * 4
    labels = torch.randint(0, 11, (3, 5), generator=gen)
    for temperature in (1.0, 0.7):
        torch.testing.assert_close(
            gather_token_logprobs(logits, labels, temperature),
            selective_log_softmax(logits, labels, temperature=temperature),
            rtol=1e-5,
            atol=1e-6,
        )
    torch.testing.assert_close(entropy_from_logits(logits), trl_entropy(logits), rtol=1e-5, atol=1e-6)
