"""A lean sampling loop for rollouts: left-padded prompts, KV cache, per-token log-probs, seeded.

Differences from ``model.generate`` that matter for RL: the log-prob of every sampled token is returned
(from the temperature-scaled distribution, before top-p filtering, as TRL and OpenRLHF compute them);
the pad token is distinct from EOS and fills everything after EOS; the prompt prefill computes the LM
head at the last position only; the loop stops as soon as every row has produced EOS.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class GenerationOutput(NamedTuple):
    sequences: torch.Tensor  # [B, P+N] left-padded prompts, then responses (pad after EOS)
    prompt_length: int  # P
    response_ids: torch.Tensor  # [B, N]
    response_mask: torch.Tensor  # [B, N] 1 up to and including EOS
    logprobs: torch.Tensor  # [B, N] 0 where response_mask is 0
    has_eos: torch.Tensor  # [B] bool
    prompt_mask: torch.Tensor  # [B, P] 1 on real prompt tokens


def left_pad(prompts: list[list[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids [B,P], mask [B,P]) with every prompt right-aligned."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        if p:
            ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[i, width - len(p) :] = 1
    return ids, mask


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Mask (-inf) logits outside the smallest set whose probability reaches ``top_p`` (Holtzman 2020)."""
    if top_p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
    probs = torch.softmax(sorted_logits, dim=-1)
    cum = probs.cumsum(-1)
    remove = cum - probs > top_p  # keep the token that crosses the threshold
    sorted_logits = sorted_logits.masked_fill(remove, float("-inf"))
    return torch.empty_like(logits).scatter_(-1, order, sorted_logits)


@torch.no_grad()
def generate(
    model: torch.nn.Module,
    prompts: list[list[int]],
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    eos_token_id: int,
    pad_token_id: int,
    generator: torch.Generator | None = None,
    num_samples: int = 1,
) -> GenerationOutput:
    """Sample responses (greedy when ``temperature == 0``; log-probs then use temperature 1).

    With ``num_samples = k`` every prompt gets k responses (rows ordered prompt by prompt, as
    ``[p for p in prompts for _ in range(k)]``); each prompt's prefill is computed once and its KV cache
    repeated k times, instead of k identical prefills. Rows that have produced EOS leave the batch: their
    KV-cache rows are dropped, so the forward passes that follow cost only what the rows still
    generating need (``model.generate`` keeps computing finished rows until the longest one ends).
    """
    from transformers import DynamicCache

    if pad_token_id == eos_token_id:
        raise ValueError("pad_token_id must differ from eos_token_id (use load_tokenizer)")
    device = next(model.parameters()).device
    ids, mask = left_pad(prompts, pad_token_id)
    ids, mask = ids.to(device), mask.to(device)
    B, P = ids.shape
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache()
    out = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=positions,
        past_key_values=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    logits = out.logits[:, -1].float()
    if num_samples > 1:  # one prefill per prompt, then k copies of its cache
        cache.batch_repeat_interleave(num_samples)
        logits = logits.repeat_interleave(num_samples, dim=0)
        ids, mask, positions = (x.repeat_interleave(num_samples, dim=0) for x in (ids, mask, positions))
        B = B * num_samples
    next_pos = positions[:, -1] + 1
    tokens = torch.full((B, max_new_tokens), pad_token_id, dtype=torch.long, device=device)
    logps = torch.zeros((B, max_new_tokens), dtype=torch.float32, device=device)
    rows = torch.arange(B, device=device)  # batch rows still generating, in cache order
    attn = mask
    steps = 0
    for t in range(max_new_tokens):
        nxt, logp = _sample(logits, temperature, top_p, generator)
        tokens[rows, t] = nxt
        logps[rows, t] = logp
        steps = t + 1
        live = nxt != eos_token_id
        if t == max_new_tokens - 1 or not bool(live.any()):
            break
        if not bool(live.all()):  # drop finished rows from the batch and the cache
            keep = live.nonzero().squeeze(-1)
            cache.batch_select_indices(keep)
            rows, nxt, attn, next_pos = rows[keep], nxt[keep], attn[keep], next_pos[keep]
        attn = torch.cat([attn, torch.ones_like(attn[:, :1])], dim=1)
        out = model(
            input_ids=nxt[:, None],
            attention_mask=attn,
            position_ids=next_pos[:, None],
            past_key_values=cache,
            use_cache=True,
        )
        logits = out.logits[:, -1].float()
        next_pos = next_pos + 1
    tokens, logps = tokens[:, :steps], logps[:, :steps]
    is_eos = tokens == eos_token_id
    # 1 up to and including the first EOS
    after_eos = (is_eos.long().cumsum(-1) - is_eos.long()) > 0
    resp_mask = (~after_eos).long()
    return GenerationOutput(
        sequences=torch.cat([ids, tokens], dim=1),
        prompt_length=P,
        response_ids=tokens,
        response_mask=resp_mask,
        logprobs=logps * resp_mask,
        has_eos=is_eos.any(-1),
        prompt_mask=mask,
    )


def _sample(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(next token [B], its log-prob under the temperature-scaled distribution before top-p [B])."""
    scaled = logits / temperature if temperature > 0 else logits
    logp_all = torch.log_softmax(scaled, dim=-1)
    if temperature > 0:
        probs = logp_all.exp() if top_p >= 1.0 else torch.softmax(top_p_filter(scaled, top_p), dim=-1)
        nxt = torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1).to(logits.device)
    else:
        nxt = scaled.argmax(-1)
    return nxt, logp_all.gather(-1, nxt[:, None]).squeeze(-1)
