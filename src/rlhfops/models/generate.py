"""A lean sampling loop for rollouts: left-padded prompts, KV cache, per-token log-probs, seeded.

Differences from ``model.generate`` that matter for RL: the log-prob of every sampled token is returned
(from the temperature-scaled distribution, before top-p filtering, as TRL and OpenRLHF compute them);
the pad token is distinct from EOS and fills everything after EOS; the prompt prefill computes the LM
head at the last position only; the loop stops as soon as every row has produced EOS.

CPU costs addressed (measured on SmolLM2-135M, batch 8, one thread): (1) a decode step (one token for
each of a few rows) is bound by reading the weight matrices, and ``F.linear`` (MKL) does that poorly at
8 rows; the decode loop runs every float32 ``nn.Linear`` on a copy of its weight reordered once per call
into oneDNN's blocked layout (``mkldnn._linear_pointwise``: 52 ms vs 79 ms per step of matmuls; same
values to rounding; the copy lives only during the call, unless a frozen model is asked to keep it for the
next call, ``keep_packed``). (2) Sampling is by inverse CDF (one uniform
per row and a cumulative sum) instead of ``torch.multinomial``, which draws one exponential per
vocabulary entry (10 ms per step at 8 x 49k). The distribution is the same, the random stream is not:
a seed gives other samples than before. (3) A prefix every prompt shares (the chat template's system
prompt) is prefilled once, not once per row.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import weakref
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import torch


class GenerationOutput(NamedTuple):
    sequences: torch.Tensor  # [B, P+N] left-padded prompts, then responses (pad after EOS)
    prompt_length: int  # P
    response_ids: torch.Tensor  # [B, N]
    response_mask: torch.Tensor  # [B, N] 1 up to and including EOS
    logprobs: torch.Tensor  # [B, N] 0 where response_mask is 0
    has_eos: torch.Tensor  # [B] bool
    prompt_mask: torch.Tensor  # [B, P] 1 on real prompt tokens
    entropy: torch.Tensor | None = None  # [B, N] entropy of the distribution each token was drawn from


def _unwrap(model: Any) -> Any:
    """The transformers model inside DDP / peft wrappers."""
    for _ in range(4):
        inner = getattr(model, "module", None)
        if inner is None and hasattr(model, "get_base_model"):
            inner = model.get_base_model()
        if inner is None or inner is model:
            return model
        model = inner
    return model


@functools.lru_cache(maxsize=32)
def _cache_name(cls: type) -> str:
    params = inspect.signature(cls.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def cache_arg(model: Any, cache: Any) -> dict[str, Any]:
    """The KV cache as the model's forward names it: ``cache`` in transformers releases that renamed it
    (``past_key_values`` is deprecated there and warns on every call), ``past_key_values`` before."""
    return {_cache_name(type(_unwrap(model))): cache}


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


def _packable(module: torch.nn.Module) -> bool:
    w = getattr(module, "weight", None)
    return (
        type(module) is torch.nn.Linear
        and isinstance(w, torch.Tensor)
        and w.device.type == "cpu"
        and w.dtype == torch.float32
    )


#: a frozen model's reordered weights, kept between generate calls (freed with the model)
_KEPT_PACKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _reorder(weight: torch.Tensor, rows: int) -> torch.Tensor:
    return torch.ops.mkldnn._reorder_linear_weight(weight, rows)


def _frozen(model: torch.nn.Module) -> bool:
    return not any(p.requires_grad for p in model.parameters())


@contextlib.contextmanager
def _packed_linears(model: torch.nn.Module, rows: int, keep: bool = False) -> Iterator[None]:
    """Inside: every float32 CPU ``nn.Linear`` of ``model`` runs on a oneDNN-reordered copy of its weight
    (the weights must not change in between). No-op without oneDNN.

    By default the copies are freed on exit. With ``keep`` (``generate(keep_packed=True)``: evaluation's
    models, which generate batch after batch) a frozen model (no parameter requires grad) keeps them
    (``_KEPT_PACKS``, until the model is freed: about the model's size in memory) for the next call --
    reordering the bundled model's weights costs ~0.4 CPU s, a tenth of a batch's generation -- and a copy
    is remade when its weight was replaced or changed in place (the tensor's version counter). The packed
    layout is chosen for ``rows`` rows but computes the same for any number."""
    if not torch.backends.mkldnn.is_available():
        yield
        return
    op = torch.ops.mkldnn._linear_pointwise
    patched: list[torch.nn.Module] = []
    keep = keep and _frozen(model)
    kept: dict[int, tuple[Any, int, torch.Tensor]] = _KEPT_PACKS.get(model, {}) if keep else {}
    packs: dict[int, torch.Tensor] = {}  # tied weights (LM head = embeddings) are reordered once

    def make_forward(packed: torch.Tensor, bias: torch.Tensor | None) -> Any:
        return lambda x: op(x, packed, bias, "none", [], "")

    try:
        for m in model.modules():
            if not _packable(m) or "forward" in vars(m):
                continue
            w = m.weight
            key = id(w)
            if key not in packs:
                old = kept.get(key)
                if old is not None and old[0]() is w and old[1] == w._version:
                    packs[key] = old[2]
                else:
                    packs[key] = _reorder(w.detach(), rows)
            bias = m.bias.detach() if m.bias is not None else None
            m.forward = make_forward(packs[key], bias)
            patched.append(m)
        if keep:
            named = {id(m.weight): m.weight for m in patched}
            _KEPT_PACKS[model] = {k: (weakref.ref(named[k]), named[k]._version, p) for k, p in packs.items()}
        yield
    finally:
        for m in patched:
            del m.forward


SHARED_PREFIX_MIN_SAVING = 32  # token positions; below it the extra batch-1 forward costs more than it saves


def _shared_prefix_length(prompts: list[list[int]]) -> int:
    """Length of the prefix every prompt shares (a chat template's system prompt), computed once in the
    prefill when that saves at least ``SHARED_PREFIX_MIN_SAVING`` token positions, else 0. At least one
    token of every prompt is left to the batched prefill (it gives the first logits)."""
    if len(prompts) < 2:
        return 0
    first, limit = prompts[0], min(len(p) for p in prompts) - 1
    n = 0
    while n < limit and all(p[n] == first[n] for p in prompts):
        n += 1
    return n if (len(prompts) - 1) * n >= SHARED_PREFIX_MIN_SAVING else 0


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
    row_ids: list[int] | None = None,
    rows_total: int | None = None,
    lockstep: Callable[[bool], bool] | None = None,
    keep_packed: bool = False,
) -> GenerationOutput:
    """Sample responses (greedy when ``temperature == 0``; log-probs then use temperature 1).

    With ``num_samples = k`` every prompt gets k responses (rows ordered prompt by prompt, as
    ``[p for p in prompts for _ in range(k)]``); each prompt's prefill is computed once and its KV cache
    repeated k times, instead of k identical prefills. Rows that have produced EOS leave the batch: their
    KV-cache rows are dropped, so the forward passes that follow cost only what the rows still
    generating need (``model.generate`` keeps computing finished rows until the longest one ends).

    Randomness is per row: one table of uniforms ``[rows_total, max_new_tokens]`` is drawn from
    ``generator`` and output row ``i`` uses row ``row_ids[i]`` of it (default: ``i`` of ``B``), so a row's
    sample does not depend on which other rows share its batch. Data-parallel processes pass the same
    generator and their rows' indices in the global batch: together they sample what one process holding
    the whole batch samples.

    ``lockstep`` (sharded models, FSDP): a function taking this process's "every row is finished" flag and
    returning whether every process's rows are finished (an all-reduce). Every process then calls
    ``model`` the same number of times, so the weight gathers inside the sharded forward line up: the
    shared-prefix prefill runs only if every process uses one, and a process whose rows have all ended
    keeps stepping one placeholder row, whose outputs are discarded, until every process is done
    (:func:`keep_stepping`). The responses are the ones generated without it.

    ``keep_packed``: a frozen model keeps its reordered weights for the next call (:func:`_packed_linears`);
    the responses are the same.
    """
    from transformers import DynamicCache

    if pad_token_id == eos_token_id:
        raise ValueError("pad_token_id must differ from eos_token_id (use load_tokenizer)")
    device = next(model.parameters()).device
    ids, mask = left_pad(prompts, pad_token_id)
    ids, mask = ids.to(device), mask.to(device)
    B, P = ids.shape
    cache = DynamicCache()
    # The cache's own layout: [shared prefix][left padding][rest of each prompt]. The mask and positions
    # make it equivalent to the returned left-padded layout (pads attend nowhere, positions count tokens).
    shared = _shared_prefix_length(prompts)
    if lockstep is not None and not lockstep(shared > 0):  # one extra forward: all processes or none
        shared = 0
    if shared:
        prefix = ids.new_tensor([prompts[0][:shared]])
        model(input_ids=prefix, **cache_arg(model, cache), use_cache=True, logits_to_keep=1)
        cache.batch_repeat_interleave(B)
        rest, rest_mask = (x.to(device) for x in left_pad([p[shared:] for p in prompts], pad_token_id))
        attn = torch.cat([torch.ones_like(rest_mask[:, :1]).expand(B, shared), rest_mask], dim=1)
    else:
        rest, attn = ids, mask
    positions = (attn.cumsum(-1) - 1).clamp(min=0)
    out = model(
        input_ids=rest,
        attention_mask=attn,
        position_ids=positions[:, shared:],
        **cache_arg(model, cache),
        use_cache=True,
        logits_to_keep=1,
    )
    logits = out.logits[:, -1].float()
    if num_samples > 1:  # one prefill per prompt, then k copies of its cache
        cache.batch_repeat_interleave(num_samples)
        logits = logits.repeat_interleave(num_samples, dim=0)
        ids, mask, attn, positions = (
            x.repeat_interleave(num_samples, dim=0) for x in (ids, mask, attn, positions)
        )
        B = B * num_samples
    next_pos = positions[:, -1] + 1
    tokens = torch.full((B, max_new_tokens), pad_token_id, dtype=torch.long, device=device)
    logps = torch.zeros((B, max_new_tokens), dtype=torch.float32, device=device)
    entropy = torch.zeros((B, max_new_tokens), dtype=torch.float32, device=device)
    rows = torch.arange(B, device=device)  # batch rows still generating, in cache order
    uniforms = _row_uniforms(B, max_new_tokens, temperature, generator, row_ids, rows_total)
    with _packed_linears(model, B, keep=keep_packed):
        steps = _decode(
            model, cache, logits, rows, attn, next_pos, tokens, logps, entropy,
            temperature, top_p, eos_token_id, uniforms, lockstep,
        )  # fmt: skip
    tokens, logps, entropy = tokens[:, :steps], logps[:, :steps], entropy[:, :steps]
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
        entropy=entropy * resp_mask,
    )


def _row_uniforms(
    B: int,
    max_new_tokens: int,
    temperature: float,
    generator: torch.Generator | None,
    row_ids: list[int] | None,
    rows_total: int | None,
) -> torch.Tensor | None:
    """[B, max_new_tokens] float64 uniforms, row ``i`` taken from row ``row_ids[i]`` of a table of
    ``rows_total`` rows drawn from ``generator`` (None when greedy: no randomness)."""
    if temperature <= 0:
        return None
    ids = list(range(B)) if row_ids is None else list(row_ids)
    total = B if rows_total is None else rows_total
    if len(ids) != B or (ids and (min(ids) < 0 or max(ids) >= total)):
        raise ValueError(f"row_ids must give {B} row indices in [0, {total}); got {ids}")
    table = torch.rand((total, max_new_tokens), generator=generator, dtype=torch.float64)
    return table[ids]


def keep_stepping(
    t: int, max_new_tokens: int, done_here: bool, lockstep: Callable[[bool], bool] | None
) -> bool:
    """Whether the decode loop takes another step after step ``t`` (0-based): not past the length limit,
    and some row is still generating - on this process, or with ``lockstep`` on any process (every
    process calls ``lockstep`` at every step, so all of them stop at the same step)."""
    if t >= max_new_tokens - 1:
        return False
    return not (done_here if lockstep is None else lockstep(done_here))


def _decode(
    model: torch.nn.Module,
    cache: Any,
    logits: torch.Tensor,
    rows: torch.Tensor,
    attn: torch.Tensor,
    next_pos: torch.Tensor,
    tokens: torch.Tensor,
    logps: torch.Tensor,
    entropy: torch.Tensor,
    temperature: float,
    top_p: float,
    eos_token_id: int,
    uniforms: torch.Tensor | None,
    lockstep: Callable[[bool], bool] | None = None,
) -> int:
    """The token loop: fills ``tokens``/``logps``/``entropy`` in place, returns the steps taken (this
    process's; with ``lockstep`` the model may be called further with a placeholder row, see ``generate``)."""
    max_new_tokens = tokens.shape[1]
    steps = 0
    placeholder = False  # lock-step only: the batch is one finished row, kept so the model is still called
    for t in range(max_new_tokens):
        if not placeholder:
            u = uniforms[rows.cpu(), t : t + 1] if uniforms is not None else None
            nxt, logp, ent = _sample(logits, temperature, top_p, u)
            tokens[rows, t] = nxt
            logps[rows, t] = logp
            entropy[rows, t] = ent
            steps = t + 1
            live = nxt != eos_token_id
        done_here = placeholder or not bool(live.any())
        if not keep_stepping(t, max_new_tokens, done_here, lockstep):
            break
        if done_here and not placeholder:  # finished here, not everywhere: keep one row as a placeholder
            placeholder = True
            live = torch.zeros_like(live)
            live[0] = True
        if not placeholder or rows.numel() > 1:
            if not bool(live.all()):  # drop finished rows from the batch and the cache
                keep = live.nonzero().squeeze(-1)
                cache.batch_select_indices(keep)
                rows, nxt, attn, next_pos = rows[keep], nxt[keep], attn[keep], next_pos[keep]
        attn = torch.cat([attn, torch.ones_like(attn[:, :1])], dim=1)
        out = model(
            input_ids=nxt[:, None],
            attention_mask=attn,
            position_ids=next_pos[:, None],
            **cache_arg(model, cache),
            use_cache=True,
        )
        logits = out.logits[:, -1].float()
        next_pos = next_pos + 1
    return steps


def _sample(
    logits: torch.Tensor, temperature: float, top_p: float, uniforms: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(next token [B], its log-prob under the temperature-scaled distribution before top-p [B], that
    distribution's entropy [B]).

    Sampling is by inverse CDF: one uniform u per row (``uniforms`` [B, 1], float64), the first token
    whose cumulative probability exceeds u times the total (float64 sums; tokens of probability 0 are
    never chosen).
    """
    scaled = logits / temperature if temperature > 0 else logits
    logp_all = torch.log_softmax(scaled, dim=-1)
    p_all = logp_all.exp()
    ent = -(p_all * logp_all.clamp(min=torch.finfo(logp_all.dtype).min)).sum(-1)  # 0 * -inf = 0
    if temperature > 0:
        probs = p_all if top_p >= 1.0 else torch.softmax(top_p_filter(scaled, top_p), dim=-1)
        cdf = probs.cpu().double().cumsum(-1)
        u = uniforms * cdf[:, -1:]
        nxt = torch.searchsorted(cdf, u, right=True).squeeze(-1).clamp_(max=cdf.shape[1] - 1)
        nxt = nxt.to(logits.device)
    else:
        nxt = scaled.argmax(-1)
    return nxt, logp_all.gather(-1, nxt[:, None]).squeeze(-1), ent
