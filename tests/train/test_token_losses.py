"""Token-level pieces of losses.py, each against numbers worked out by hand in the comments."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlhfops.train.losses import (
    entropy_from_logits,
    gather_token_logprobs,
    masked_mean,
    masked_sum,
    segment_sum,
    sft_loss,
    token_mean_loss,
)

LN2, LN3 = math.log(2.0), math.log(3.0)


def close(actual, expected, rtol=1e-5, atol=1e-7):
    expected = torch.as_tensor(expected, dtype=actual.dtype)
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol)


# logits [0, ln2, ln3] -> exp = [1, 2, 3] -> softmax = [1/6, 2/6, 3/6]
NICE_ROW = [0.0, LN2, LN3]


def test_gather_token_logprobs_hand_values():
    logits = torch.tensor([[NICE_ROW, [0.0, 0.0, 0.0]], [[5.0, 5.0, 5.0], NICE_ROW]])  # [2, 2, 3]
    labels = torch.tensor([[2, 1], [0, -100]])
    out = gather_token_logprobs(logits, labels)
    # [0,0]: p(2) = 3/6 -> ln(1/2) = -0.693147181
    # [0,1]: uniform over 3 -> ln(1/3) = -1.098612289
    # [1,0]: uniform (all 5) -> ln(1/3)
    # [1,1]: label -100 -> 0
    close(out, [[-0.693147181, -1.098612289], [-1.098612289, 0.0]])


def test_gather_token_logprobs_temperature_divides_logits():
    # logits [0, 2 ln2, 2 ln3] / T=2 = [0, ln2, ln3] -> p(1) = 2/6 -> ln(1/3) = -1.098612289
    logits = torch.tensor([[[0.0, 2 * LN2, 2 * LN3]]])
    out = gather_token_logprobs(logits, torch.tensor([[1]]), temperature=2.0)
    close(out, [[-1.098612289]])
    with pytest.raises(ValueError, match="temperature"):
        gather_token_logprobs(logits, torch.tensor([[1]]), temperature=0.0)


def test_gather_token_logprobs_large_logits_and_bf16():
    # [1000, 1000]: a naive exp overflows; log p = ln(1/2) = -0.693147181 for either label.
    logits = torch.tensor([[[1000.0, 1000.0]]])
    close(gather_token_logprobs(logits, torch.tensor([[0]])), [[-0.693147181]])
    # bf16 input is evaluated in float32: [0, ln2 ~ 0.69140625 in bf16, ...] so compare against the
    # float32 evaluation of the same (rounded) numbers.
    lb = torch.tensor([[NICE_ROW]], dtype=torch.bfloat16)
    out = gather_token_logprobs(lb, torch.tensor([[2]]))
    assert out.dtype == torch.float32
    close(out, torch.log_softmax(lb.float(), -1)[..., 2])


def test_gather_token_logprobs_gradient_is_softmax_minus_onehot():
    # d log p(y) / d z = onehot(y) - softmax(z) = [0,0,1] - [1/6, 2/6, 3/6] = [-1/6, -1/3, 1/2]
    logits = torch.tensor([[NICE_ROW]], requires_grad=True)
    gather_token_logprobs(logits, torch.tensor([[2]])).sum().backward()
    close(logits.grad, [[[-1 / 6, -1 / 3, 1 / 2]]])


def test_masked_sum_and_mean_hand_values():
    x = torch.tensor([[1.0, 2.0, float("nan")], [4.0, float("inf"), 6.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    close(masked_sum(x, mask), [3.0, 4.0])  # 1+2, 4 (NaN/inf in padding never read)
    close(masked_sum(x, mask, dim=None), 7.0)
    close(masked_mean(x, mask), 7.0 / 3.0)  # global token mean (1+2+4)/3, not mean of row means (2.75)
    close(masked_mean(x, mask, dim=-1), [1.5, 4.0])
    close(masked_mean(x, torch.zeros_like(mask), dim=-1), [0.0, 0.0])  # empty slice -> 0, not NaN


def test_segment_sum_hand_values_and_gradient():
    values = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0], requires_grad=True)
    ids = torch.tensor([0, 0, 2, -1, 2])
    out = segment_sum(values, ids, 3)
    close(out, [3.0, 0.0, 8.0])  # seg0 = 1+2, seg1 empty, seg2 = 3+5; id -1 (the 4) ignored
    (out * torch.tensor([1.0, 10.0, 100.0])).sum().backward()
    close(values.grad, [1.0, 1.0, 100.0, 0.0, 100.0])
    with pytest.raises(ValueError, match="out of range"):
        segment_sum(values, torch.tensor([0, 0, 3, 0, 0]), 3)


def test_sft_loss_is_global_token_mean_nll():
    # tokens: ln 1/2, ln 1/4 | ln 1/2 ; pads hold junk.
    # NLL = (ln2 + 2 ln2 + ln2) / 3 = 4 ln2 / 3 = 0.924196241
    logps = torch.tensor([[-LN2, -2 * LN2, 9.9], [-LN2, -7.0, -7.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    close(sft_loss(logps, mask), 0.924196241)


def test_entropy_from_logits_hand_values():
    logits = torch.tensor([NICE_ROW, [0.0, 0.0, 0.0], [1000.0, 1000.0, -1000.0]])
    # p = (1/6, 1/3, 1/2): H = ln6/6 + ln3/3 + ln2/2 = 0.298627 + 0.366204 + 0.346574 = 1.011404265
    # uniform over 3: ln 3 = 1.098612289 ; two equal huge logits + one tiny: ln 2 = 0.693147181
    out = entropy_from_logits(logits.reshape(1, 3, 3), chunk_size=2)
    close(out, [[1.011404265, 1.098612289, 0.693147181]])


def _right_padded_mask(gen: torch.Generator, b: int, t: int) -> torch.Tensor:
    lengths = torch.randint(1, t + 1, (b,), generator=gen)
    return torch.arange(t)[None, :] < lengths[:, None]


def test_token_mean_loss_gradient_accumulation_invariance():
    """One batch of 8 == 4 micro-batches of 2 scaled by global token count (loss and gradient)."""
    gen = torch.Generator().manual_seed(0)
    b, t, v = 8, 6, 5
    logits0 = torch.randn(b, t, v, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, v, (b, t), generator=gen)
    mask = _right_padded_mask(gen, b, t)
    n_global = float(mask.sum())

    full = logits0.clone().requires_grad_(True)
    full_loss = token_mean_loss(-gather_token_logprobs(full, labels), mask)
    full_loss.backward()

    acc = logits0.clone().requires_grad_(True)
    total, total_scaled = 0.0, 0.0
    for i in range(0, b, 2):
        lp = gather_token_logprobs(acc[i : i + 2], labels[i : i + 2])
        mb_mask = mask[i : i + 2]
        mb_loss = token_mean_loss(-lp, mb_mask, num_tokens_global=n_global)
        mb_loss.backward()
        total += float(mb_loss.detach())
        # equivalently: the micro-batch's own token mean scaled by its token count / global count
        total_scaled += float(token_mean_loss(-lp.detach(), mb_mask)) * float(mb_mask.sum()) / n_global
    assert math.isclose(total, float(full_loss.detach()), rel_tol=1e-5)
    assert math.isclose(total_scaled, float(full_loss.detach()), rel_tol=1e-5)
    torch.testing.assert_close(acc.grad, full.grad, rtol=1e-5, atol=1e-10)

    # the naive average of micro-batch means is a different number (so the test above can fail)
    naive = (
        sum(
            float(
                token_mean_loss(
                    -gather_token_logprobs(logits0[i : i + 2], labels[i : i + 2]), mask[i : i + 2]
                )
            )
            for i in range(0, b, 2)
        )
        / 4
    )
    assert not math.isclose(naive, float(full_loss.detach()), rel_tol=1e-3)


def test_token_mean_loss_data_parallel_simulation():
    """Two ranks, each a DDP replica: loss * world_size per rank, gradients averaged == one batch."""
    gen = torch.Generator().manual_seed(1)
    per_tok = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    mask = _right_padded_mask(gen, 6, 4)
    w_full = torch.ones((), dtype=torch.float64, requires_grad=True)
    token_mean_loss(w_full * per_tok**2, mask).backward()
    n_global, world = float(mask.sum()), 2
    grads = []
    for rank_rows in (slice(0, 3), slice(3, 6)):
        w = torch.ones((), dtype=torch.float64, requires_grad=True)
        (token_mean_loss(w * per_tok[rank_rows] ** 2, mask[rank_rows], n_global) * world).backward()
        grads.append(w.grad)
    torch.testing.assert_close(sum(grads) / world, w_full.grad, rtol=1e-5, atol=0.0)
    with pytest.raises(ValueError):
        token_mean_loss(per_tok, mask, num_tokens_global=0)


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=4),
    extra_pad=st.integers(min_value=0, max_value=3),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_padding_does_not_change_logprobs_or_sft_loss(lengths, extra_pad, seed):
    """Masked vs unmasked: padded rows give the same per-token log-probs and loss as unpadded ones."""
    gen = torch.Generator().manual_seed(seed)
    v = 7
    t = max(lengths) + extra_pad
    logits = torch.randn(len(lengths), t, v, generator=gen)
    labels = torch.randint(0, v, (len(lengths), t), generator=gen)
    mask = torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]
    padded = gather_token_logprobs(logits, labels.masked_fill(~mask, -100))
    pieces = [
        gather_token_logprobs(logits[i : i + 1, :n], labels[i : i + 1, :n]) for i, n in enumerate(lengths)
    ]
    flat = torch.cat([p.reshape(-1) for p in pieces])
    torch.testing.assert_close(padded[mask], flat, rtol=1e-5, atol=1e-6)
    assert bool((padded[~mask] == 0).all())
    # segment_sum over the packed tokens == masked row sums of the padded batch
    seg = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    torch.testing.assert_close(
        segment_sum(flat, seg, len(lengths)), masked_sum(padded, mask), rtol=1e-5, atol=1e-5
    )
    torch.testing.assert_close(sft_loss(padded, mask), -flat.mean(), rtol=1e-5, atol=1e-6)
