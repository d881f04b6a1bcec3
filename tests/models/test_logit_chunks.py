"""Log-probs of chosen tokens from a few rows' logits at a time (rlhfops.models.chunks): the evaluation's
``sequence_logprobs`` and the PPO reference's ``logps`` give the numbers of the one-shot computation bit for
bit, and the LM head never sees more rows than a chunk holds (at the full demo's 32 replies x 64 tokens the
one-shot path held 1.7 GB of logits and log-softmax copies: docs/benchmarks.md, issue 19)."""

from __future__ import annotations

import pytest
import torch

from rlhfops.evaluate.generation import sequence_logprobs
from rlhfops.models import chunks
from rlhfops.models.chunks import in_row_chunks
from rlhfops.models.loading import load_causal_lm
from rlhfops.models.tiny import make_tiny_model_dir
from rlhfops.train.forward import hidden_after_prompts
from rlhfops.train.ppo_model import Reference, _gather, _logits

B, P, N = 6, 5, 7


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    path = make_tiny_model_dir(tmp_path_factory.mktemp("m") / "tiny", seed=3)
    return load_causal_lm(str(path), trainable=False).eval()


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    seq = torch.randint(3, 250, (B, P + N), generator=g)
    attn = torch.ones(B, P + N, dtype=torch.long)
    attn[1, :2] = 0  # left padding
    attn[4, :3] = 0
    attn[2, -3:] = 0  # a reply that ended early
    return seq, attn


@pytest.fixture
def two_rows(monkeypatch):
    """Two rows per chunk (14 positions / 7 per row)."""
    monkeypatch.setattr(chunks, "LOGIT_CHUNK_POSITIONS", 2 * N)


def _head_rows(model, fn):
    """``fn()`` and the number of rows of every call of ``model``'s LM head during it."""
    rows: list[int] = []
    hook = model.get_output_embeddings().register_forward_hook(lambda m, i, o: rows.append(i[0].shape[0]))
    try:
        return fn(), rows
    finally:
        hook.remove()


def test_sequence_logprobs_equals_the_one_shot_computation(lm, batch, two_rows):
    seq, attn = batch
    positions = (attn.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():  # the computation as it was: all rows' logits, one log-softmax
        logits = lm(input_ids=seq, attention_mask=attn, position_ids=positions, logits_to_keep=N + 1).logits
    expected = torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, seq[:, P:, None]).squeeze(-1)
    got, rows = _head_rows(lm, lambda: sequence_logprobs(lm, seq, attn, P))
    assert got.shape == (B, N)
    assert torch.equal(got, expected)
    assert rows == [2, 2, 2]


def test_reference_logps_equal_the_one_shot_computation(lm, batch, two_rows):
    seq, attn = batch
    ref = Reference(lm, uses_lora=False)
    with torch.no_grad():  # the computation as it was: all rows' logits, one logsumexp
        hidden = hidden_after_prompts(ref.copy.get_decoder(), seq, attn, P)[:, :-1]
        expected = _gather(_logits(ref.copy, hidden, 0.7), seq[:, P:])
    got, rows = _head_rows(ref.copy, lambda: ref.logps(seq, attn, P, 0.7))
    assert torch.equal(got, expected)
    assert rows == [2, 2, 2]


def test_in_row_chunks_sizes():
    x = torch.arange(24.0).reshape(6, 4)
    seen: list[int] = []

    def fn(t):
        seen.append(t.shape[0])
        return t * 2

    assert torch.equal(in_row_chunks(fn, x, positions=8), x * 2)  # 8 // 4 = 2 rows per chunk
    assert seen == [2, 2, 2]
    seen.clear()
    assert torch.equal(in_row_chunks(fn, x, positions=3), x * 2)  # fewer positions than a row: one row
    assert seen == [1] * 6
    seen.clear()
    in_row_chunks(fn, x, positions=100)  # everything fits: one call on the tensors as given
    assert seen == [6]
