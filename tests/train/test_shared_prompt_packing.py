"""Shared-prompt packing ([prompt][chosen][rejected] with a 4D mask) gives the same log-probs and the same
last-token rewards as computing prompt+chosen and prompt+rejected separately (float32, 1e-5)."""

from __future__ import annotations

import pytest
import torch

from rlhfops.models.heads import RewardModel
from rlhfops.models.loading import load_causal_lm
from rlhfops.models.tiny import make_tiny_model_dir
from rlhfops.train.forward import CompletionLogProbs, pack_completions, pack_pairs, sequence_sums

PROMPTS = [[1, 40, 41, 42, 43, 44], [1, 50, 51], [1, 60, 61, 62, 63, 64, 65, 66, 67]]
CHOSEN = [[70, 71, 72, 2], [73, 2], [74, 75, 76, 77, 78, 2]]
REJECTED = [[80, 2], [81, 82, 83, 84, 85, 2], [86, 87, 2]]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_tiny_model_dir(tmp_path_factory.mktemp("m") / "tiny", seed=5)


def test_logps_equal_separate_packing(model_dir):
    model = CompletionLogProbs(load_causal_lm(str(model_dir))).eval()
    shared = pack_pairs(PROMPTS, CHOSEN, REJECTED, 64, pad_id=0)
    plain = pack_completions(PROMPTS * 2, CHOSEN + REJECTED, 64, pad_id=0)
    with torch.no_grad():
        a = sequence_sums(model(shared), shared)
        b = sequence_sums(model(plain), plain)
        per_token_a, per_token_b = model(shared), model(plain)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert per_token_a.shape == per_token_b.shape
    # fewer tokens computed: the prompt appears once per pair
    assert shared.input_ids.ne(0).sum() < plain.input_ids.ne(0).sum()


def test_reward_last_token_equal(model_dir):
    rm = RewardModel.from_causal_lm(str(model_dir)).eval()
    shared = pack_pairs(PROMPTS, CHOSEN, REJECTED, 32, pad_id=0)
    plain = pack_completions(PROMPTS * 2, CHOSEN + REJECTED, 32, pad_id=0)
    with torch.no_grad():
        va = rm(shared.input_ids, attention_mask=shared.attention_mask, position_ids=shared.position_ids)
        vb = rm(plain.input_ids, position_ids=plain.position_ids)
    torch.testing.assert_close(
        va[shared.last_row, shared.last_pos], vb[plain.last_row, plain.last_pos], rtol=1e-5, atol=1e-5
    )
