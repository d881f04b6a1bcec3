"""Candidate pairs for the comparison queue: read from a file, or sampled from a model.

File rows (JSONL / JSON / Parquet, read by :func:`rlhfops.data.io.read_rows`): ``{"prompt",
"response_a", "response_b"}`` or the engine's ``{"prompt", "chosen", "rejected"}`` (chosen becomes
response A; raters still see the sides at random), with an optional ``"gold"`` (A, B, tie, both_bad)
that makes the row a gold item and an optional numeric ``"difficulty"`` (higher = harder; used by the
agreement page's easy-vs-hard buckets). Errors name ``file:line:field``; nothing is queued when any
row is bad.

Sampling (:func:`generate_pairs`): each prompt is sampled ``n`` times with the engine's generation
(:func:`rlhfops.models.generate.generate`, chat template, temperature / top-p, seeded); every two distinct
samples of a prompt make a pair (``n=2``: one pair per prompt).
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import Any

from rlhfops.annotate.queue import PairIn
from rlhfops.data.encode import encode_prompts
from rlhfops.data.io import read_rows
from rlhfops.data.schema import load_prompts
from rlhfops.errors import DataError, UserError
from rlhfops.models.loading import load_causal_lm, load_tokenizer
from rlhfops.workspace.annotation_tables import CHOICES


def prompt_text(prompt: Any) -> str:
    """A prompt as raters read it: the text of a single user message, else ``role: content`` lines."""
    if isinstance(prompt, str):
        return prompt
    if len(prompt) == 1:
        return str(prompt[0]["content"])
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in prompt)


def read_pairs(path: str | Path) -> list[PairIn]:
    out, errors = [], []
    for row in read_rows(path):
        d, where = row.data, f"{row.source}:{row.line}"
        a = d.get("response_a", d.get("chosen"))
        b = d.get("response_b", d.get("rejected"))
        prompt = d.get("prompt")
        for name, value in (("prompt", prompt), ("response_a", a), ("response_b", b)):
            if not isinstance(value, str) or not value.strip():
                errors.append(f"{where}:{name}: missing or not a non-empty string")
        gold = d.get("gold")
        if gold is not None and gold not in CHOICES:
            errors.append(f"{where}:gold: {gold!r} is not one of {', '.join(CHOICES)}")
        if not errors:
            if a.strip() == b.strip():
                errors.append(f"{where}:response_b: identical to response_a; nothing to compare")
                continue
            meta = {k: v for k, v in d.items() if k in ("id", "source", "model_a", "model_b", "difficulty")}
            out.append(PairIn(prompt, a, b, gold, meta))
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise DataError(
            f"{errors[0]}{more}; expected prompt + response_a + response_b (or chosen + rejected)"
        )
    if not out:
        raise DataError(f"{path}: no rows")
    return out


def generate_pairs(
    model: str,
    prompts_file: str | Path,
    n: int = 2,
    *,
    max_new_tokens: int = 128,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    batch_size: int = 8,
) -> list[PairIn]:
    """Sample ``n`` responses per prompt from ``model`` and pair every two distinct ones."""
    import torch

    from rlhfops.models.generate import generate

    if n < 2:
        raise UserError(f"pairs generate: -n {n}; at least 2 samples per prompt make a pair")
    if temperature <= 0:
        raise UserError(
            f"pairs generate: --temperature {temperature}; sampling needs > 0 (else samples are equal)"
        )
    prompts = load_prompts(prompts_file)
    tok = load_tokenizer(model, padding_side="left")
    ids = encode_prompts(prompts, tok)
    lm = load_causal_lm(model, trainable=False).eval()
    gen = torch.Generator().manual_seed(seed)
    samples: list[list[str]] = [[] for _ in prompts]
    flat = [(i, p) for i, p in enumerate(ids) for _ in range(n)]
    for start in range(0, len(flat), batch_size * n):
        chunk = flat[start : start + batch_size * n]
        out = generate(
            lm,
            [p for _i, p in chunk],
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            generator=gen,
        )
        for row, (i, _p) in enumerate(chunk):
            resp = out.response_ids[row][out.response_mask[row].bool()].tolist()
            samples[i].append(tok.decode(resp, skip_special_tokens=True).strip())
    pairs = []
    for prompt, texts in zip(prompts, samples, strict=True):
        for x, y in combinations(range(n), 2):
            if texts[x] and texts[y] and texts[x] != texts[y]:
                meta = {"model": str(model), "samples": [x, y], "prompt_line": prompt.line, "seed": seed}
                pairs.append(PairIn(prompt_text(prompt.prompt), texts[x], texts[y], None, meta))
    return pairs
