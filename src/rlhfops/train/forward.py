"""Forward passes that train: packed rows in, completion-token log-probs or scalar rewards out.

Sequences (prompt + response) are packed into rows; position ids restart at 0 for every sequence, so
attention never crosses a sequence boundary (transformers builds the block-diagonal causal mask from
the position ids when no attention mask is given). The LM head runs only at the positions that predict
a completion token: no LM-head work on prompt tokens or padding.

The trainable module is a single ``nn.Module`` whose ``forward`` does the whole computation, so that
DDP (``accelerate launch``) sees one forward per micro-batch and synchronises gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rlhfops.models.generate import _shared_prefix_length, cache_arg, left_pad
from rlhfops.models.masks import attention_bias
from rlhfops.train.losses import segment_sum
from rlhfops.train.ppo_model import position_ids_from_mask


@dataclass
class PackedCompletions:
    """A packed micro-batch and where each sequence's completion tokens are.

    input_ids, position_ids: [R, T]. For the N completion tokens of all sequences: ``pred_row``,
    ``pred_pos`` index the hidden state that predicts each one ([N]); ``targets`` are the tokens [N];
    ``seq_index`` maps each to its sequence (0..S-1) [N]. ``last_row``, ``last_pos`` [S] index every
    sequence's last token (where a reward model reads its score); ``lengths`` [S] completion lengths.
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    pred_row: torch.Tensor
    pred_pos: torch.Tensor
    targets: torch.Tensor
    seq_index: torch.Tensor
    last_row: torch.Tensor
    last_pos: torch.Tensor
    lengths: torch.Tensor
    num_sequences: int
    attention_mask: torch.Tensor | None = None  # [R, 1, T, T] bool, only for shared-prompt packing

    def to(self, device: torch.device | str) -> PackedCompletions:
        fields = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()}
        return PackedCompletions(**fields)


def place_sequences(
    lengths: list[int], row_len: int, packing: bool = True
) -> tuple[list[tuple[int, int]], int]:
    """First-fit-decreasing placement of sequences into rows of at most ``row_len`` tokens (never split).

    Returns ``(placement, rows)`` with ``placement[i] = (row, start)``. Without packing, one per row.
    The rows of a batch are one tensor, as wide as its fullest row: after finding how many rows
    ``row_len`` needs, the narrowest capacity that still fits that many rows is used (binary search), so
    the rows come out balanced. E.g. sequences of 150, 180, 200 and 190 tokens in rows of 512: two rows of
    370 instead of 390 + 330 padded to 390 (the benchmark's reward-model batches had rows of 505 + ~215
    padded to 505): fewer positions through every matmul, and shorter attention rows.
    """
    if not packing:
        return [(i, 0) for i in range(len(lengths))], len(lengths)
    placement, rows = _first_fit_decreasing(lengths, row_len)
    lo, hi = max(max(lengths), -(-sum(lengths) // rows)), row_len
    while lo < hi:  # narrowest capacity with the same number of rows
        mid = (lo + hi) // 2
        if _first_fit_decreasing(lengths, mid)[1] <= rows:
            hi = mid
        else:
            lo = mid + 1
    return _first_fit_decreasing(lengths, lo) if lo < row_len else (placement, rows)


def _first_fit_decreasing(lengths: list[int], row_len: int) -> tuple[list[tuple[int, int]], int]:
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    free: list[int] = []  # tokens used per row
    placement: list[tuple[int, int]] = [(0, 0)] * len(lengths)
    for i in order:
        for r, used in enumerate(free):
            if used + lengths[i] <= row_len:
                placement[i] = (r, used)
                free[r] = used + lengths[i]
                break
        else:
            placement[i] = (len(free), 0)
            free.append(lengths[i])
    return placement, len(free)


def _packed(
    input_ids: torch.Tensor,
    position_ids: torch.Tensor,
    index: tuple[list[int], ...],
    lengths: list[int],
    attention_mask: torch.Tensor | None = None,
) -> PackedCompletions:
    """Assemble a PackedCompletions from the index lists (pred_row, pred_pos, targets, seq_index,
    last_row, last_pos) and the per-sequence completion lengths."""
    pred_row, pred_pos, targets, seq_index, last_row, last_pos = (
        torch.tensor(x, dtype=torch.long) for x in index
    )
    return PackedCompletions(
        input_ids=input_ids,
        position_ids=position_ids,
        pred_row=pred_row,
        pred_pos=pred_pos,
        targets=targets,
        seq_index=seq_index,
        last_row=last_row,
        last_pos=last_pos,
        lengths=torch.tensor(lengths, dtype=torch.long),
        num_sequences=len(lengths),
        attention_mask=attention_mask,
    )


def pack_completions(
    prompts: list[list[int]],
    completions: list[list[int]],
    max_tokens_per_row: int,
    pad_id: int,
    packing: bool = True,
) -> PackedCompletions:
    """Pack ``prompt + completion`` sequences; record where the completion tokens and last tokens are."""
    seqs = [p + c for p, c in zip(prompts, completions, strict=True)]
    longest = max(len(s) for s in seqs)
    row_len = max(max_tokens_per_row, longest) if packing else longest
    placement, n_rows = place_sequences([len(s) for s in seqs], row_len, packing)
    width = max(start + len(s) for (_, start), s in zip(placement, seqs, strict=True))
    input_ids = torch.full((n_rows, width), pad_id, dtype=torch.long)
    # Padding continues the last sequence's positions as its own run; its outputs are never read.
    position_ids = torch.arange(width, dtype=torch.long).repeat(n_rows, 1)
    for (row, start), s in zip(placement, seqs, strict=True):
        input_ids[row, start : start + len(s)] = torch.tensor(s, dtype=torch.long)
        position_ids[row, start : start + len(s)] = torch.arange(len(s))
    pred_row, pred_pos, targets, seq_index = [], [], [], []
    last_row, last_pos = [], []
    for i, (p, c) in enumerate(zip(prompts, completions, strict=True)):
        row, start = placement[i]
        n_p, n_c = len(p), len(c)
        for j in range(n_c):
            pred_row.append(row)
            pred_pos.append(start + n_p + j - 1)
            targets.append(c[j])
            seq_index.append(i)
        last_row.append(row)
        last_pos.append(start + n_p + n_c - 1)
    lengths = [len(c) for c in completions]
    index = (pred_row, pred_pos, targets, seq_index, last_row, last_pos)
    return _packed(input_ids, position_ids, index, lengths)


def pack_pairs(
    prompts: list[list[int]],
    chosen: list[list[int]],
    rejected: list[list[int]],
    max_tokens_per_row: int,
    pad_id: int,
) -> PackedCompletions:
    """Pack preference pairs as ``[prompt][chosen][rejected]`` segments: the prompt is computed once.

    A 4D boolean mask keeps attention causal within a segment and hides the chosen tokens from the
    rejected ones; rejected position ids continue from the prompt, as if it followed the prompt directly.
    Sequences 0..n-1 are the chosen responses, n..2n-1 the rejected ones (same order as
    :func:`pack_completions` with the prompts repeated). Needs an attention kernel that takes a custom
    mask (sdpa or eager).
    """
    n = len(prompts)
    seg_lens = [len(p) + len(c) + len(r) for p, c, r in zip(prompts, chosen, rejected, strict=True)]
    placement, n_rows = place_sequences(seg_lens, max(max_tokens_per_row, max(seg_lens)), True)
    width = max(start + length for (_, start), length in zip(placement, seg_lens, strict=True))
    input_ids = torch.full((n_rows, width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((n_rows, width), dtype=torch.long)
    mask = torch.eye(width, dtype=torch.bool).repeat(n_rows, 1, 1)  # padding attends to itself only
    pred_row, pred_pos, targets, seq_index = [], [], [], []
    last_row, last_pos = [0] * (2 * n), [0] * (2 * n)
    for i, ((row, s0), p, c, r) in enumerate(zip(placement, prompts, chosen, rejected, strict=True)):
        n_p, n_c, n_r = len(p), len(c), len(r)
        input_ids[row, s0 : s0 + n_p + n_c + n_r] = torch.tensor(p + c + r, dtype=torch.long)
        position_ids[row, s0 : s0 + n_p + n_c] = torch.arange(n_p + n_c)
        position_ids[row, s0 + n_p + n_c : s0 + n_p + n_c + n_r] = torch.arange(n_p, n_p + n_r)
        end = s0 + n_p + n_c + n_r
        mask[row, s0:end, s0:end] = torch.tril(torch.ones(end - s0, end - s0, dtype=torch.bool))
        mask[row, s0 + n_p + n_c : end, s0 + n_p : s0 + n_p + n_c] = False  # rejected cannot see chosen
        for j in range(n_c):
            pred_row.append(row)
            pred_pos.append(s0 + n_p + j - 1)
            targets.append(c[j])
            seq_index.append(i)
        for j in range(n_r):
            pred_row.append(row)
            pred_pos.append(s0 + n_p - 1 if j == 0 else s0 + n_p + n_c + j - 1)
            targets.append(r[j])
            seq_index.append(n + i)
        last_row[i], last_pos[i] = row, s0 + n_p + n_c - 1
        last_row[n + i], last_pos[n + i] = row, end - 1
    lengths = [len(c) for c in chosen] + [len(r) for r in rejected]
    index = (pred_row, pred_pos, targets, seq_index, last_row, last_pos)
    return _packed(input_ids, position_ids, index, lengths, attention_mask=mask[:, None])


class CompletionLogProbs(nn.Module):
    """Wraps a causal LM; ``forward(batch)`` returns the log-prob of every completion token [N]."""

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, batch: PackedCompletions, temperature: float = 1.0) -> torch.Tensor:
        decoder = self.lm.get_decoder()
        head = self.lm.get_output_embeddings()
        hidden = decoder(
            input_ids=batch.input_ids,
            position_ids=batch.position_ids,
            attention_mask=attention_bias(batch.attention_mask, head.weight.dtype),
            use_cache=False,
        )
        hidden = hidden.last_hidden_state if hasattr(hidden, "last_hidden_state") else hidden[0]
        h = hidden[batch.pred_row, batch.pred_pos]  # [N, H]
        logits = head(h).float()
        if temperature != 1.0:
            logits = logits / temperature
        return logits.gather(-1, batch.targets[:, None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def sequence_sums(token_values: torch.Tensor, batch: PackedCompletions) -> torch.Tensor:
    """Sum per-token values [N] into per-sequence values [S]."""
    return segment_sum(token_values, batch.seq_index, batch.num_sequences)


def hidden_after_prompts(
    trunk: nn.Module, ids: torch.Tensor, mask: torch.Tensor, prompt_width: int, group: int = 1
) -> torch.Tensor:
    """Last hidden states at columns ``prompt_width - 1`` onwards [B, W - P + 1, H], for scoring.

    ``ids``/``mask`` [B, W]: left-padded prompts in the first ``P = prompt_width`` columns, then what
    follows them (responses). When ``group`` > 1 and each run of ``group`` consecutive rows holds the same
    prompt (k samples per prompt, as rollouts are laid out), every prompt but its last token is computed
    once and its KV cache repeated for the group's rows, instead of once per row: at 4 samples of ~60 prompt
    tokens and 32 response tokens that is about half the tokens. Otherwise, when every prompt starts with
    the same tokens (a chat template's system prompt: ~22 of the bundled model's ~60 prompt tokens), that
    prefix is computed once for all rows (:func:`_hidden_after_shared_prefix`). Same values as one forward
    over ``ids`` (to float rounding; tested). Only in eval mode without gradients: a training-mode layer
    under gradient checkpointing would drop the cache (transformers does), so there it is one plain forward.
    """
    positions = position_ids_from_mask(mask)
    B, P = ids.shape[0], prompt_width
    cached = not trunk.training and not torch.is_grad_enabled() and P > 1
    shared = cached and group > 1 and B % group == 0 and _rows_repeat(ids[:, :P], mask[:, :P], group)
    if not shared:
        prefix = _common_prefix_length(ids[:, :P], mask[:, :P]) if cached else 0
        if prefix:
            return _hidden_after_shared_prefix(trunk, ids, mask, P, prefix)
        out = trunk(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False)
        return out.last_hidden_state[:, P - 1 :]
    from transformers import DynamicCache

    cache = DynamicCache()
    head = slice(None, None, group)
    trunk(
        input_ids=ids[head, : P - 1],
        attention_mask=mask[head, : P - 1],
        position_ids=positions[head, : P - 1],
        **cache_arg(trunk, cache),
        use_cache=True,
    )
    cache.batch_repeat_interleave(group)
    out = trunk(
        input_ids=ids[:, P - 1 :],
        attention_mask=mask,
        position_ids=positions[:, P - 1 :],
        **cache_arg(trunk, cache),
        use_cache=True,
    )
    return out.last_hidden_state


def _common_prefix_length(ids: torch.Tensor, mask: torch.Tensor) -> int:
    """Tokens every left-padded prompt row starts with, leaving each row at least one token of its own;
    0 unless computing them once saves ``SHARED_PREFIX_MIN_SAVING`` token positions (the generation
    sampler's rule, :func:`rlhfops.models.generate._shared_prefix_length`)."""
    lengths = mask.sum(-1).tolist()
    P = ids.shape[1]
    return _shared_prefix_length([ids[i, P - n :].tolist() for i, n in enumerate(lengths)])


def _hidden_after_shared_prefix(
    trunk: nn.Module, ids: torch.Tensor, mask: torch.Tensor, P: int, prefix: int
) -> torch.Tensor:
    """:func:`hidden_after_prompts` with the first ``prefix`` prompt tokens (the same in every row)
    computed once: the KV cache holds [prefix][left padding][rest of each prompt][response], as the
    generation sampler lays it out; the mask and positions make it the same computation."""
    from transformers import DynamicCache

    B = ids.shape[0]
    lengths = mask[:, :P].sum(-1).tolist()
    rests = [ids[i, P - n + prefix : P].tolist() for i, n in enumerate(lengths)]
    pad = int(ids[0, 0]) if int(mask[0, 0]) == 0 else 0  # any id: padded positions are masked out
    rest_ids, rest_mask = (x.to(ids.device) for x in left_pad(rests, pad))
    width = rest_ids.shape[1]
    cache = DynamicCache()
    first = ids[:1, P - lengths[0] : P - lengths[0] + prefix]
    trunk(
        input_ids=first,
        position_ids=torch.arange(prefix, device=ids.device)[None],
        **cache_arg(trunk, cache),
        use_cache=True,
    )
    cache.batch_repeat_interleave(B)
    body_mask = torch.cat([rest_mask.to(mask.dtype), mask[:, P:]], dim=1)
    attn = torch.cat([torch.ones_like(mask[:, :1]).expand(B, prefix), body_mask], dim=1)
    positions = position_ids_from_mask(attn)[:, prefix:]
    out = trunk(
        input_ids=torch.cat([rest_ids, ids[:, P:]], dim=1),
        attention_mask=attn,
        position_ids=positions,
        **cache_arg(trunk, cache),
        use_cache=True,
    )
    return out.last_hidden_state[:, width - 1 :]


def _rows_repeat(ids: torch.Tensor, mask: torch.Tensor, group: int) -> bool:
    """Whether each run of ``group`` consecutive rows is one row repeated (ids and mask)."""
    B = ids.shape[0]
    first = torch.arange(0, B, group, device=ids.device).repeat_interleave(group)
    return bool((ids == ids[first]).all() and (mask == mask[first]).all())
