"""Reward-model scores of (prompt, response) pairs, for the reward-score part of output drift.

A reward model from ``rlhfops train rm`` (a directory, or its artifact in the workspace) scores each pair
exactly as it scored preference pairs in training: the prompt becomes one user message, the response the
assistant turn, both rendered with the model's chat template and tokenized by
:func:`rlhfops.data.encode.encode_prefs` (cut at ``max_length`` tokens); the score is the head's output
at the last token, normalised with the mean/std stored with the model
(:class:`rlhfops.train.reward_sources.ModelReward`). torch loads on the first call, not on import.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

Scorer = Callable[[list[str], list[str]], list[float]]


def reward_model_scorer(path: str | Path, batch_size: int = 16, max_length: int = 1024) -> Scorer:
    """A function ``(prompts, responses) -> scores`` backed by the reward model at ``path``."""
    from rlhfops.data.encode import encode_prefs
    from rlhfops.data.schema import Pref
    from rlhfops.models.loading import load_tokenizer
    from rlhfops.train.reward_sources import ModelReward, Responses

    tokenizer = load_tokenizer(str(path))
    model = ModelReward(str(path), "cpu", tokenizer.pad_token_id or 0)

    def score(prompts: list[str], responses: list[str]) -> list[float]:
        out: list[float] = []
        for start in range(0, len(prompts), batch_size):
            ps, rs = prompts[start : start + batch_size], responses[start : start + batch_size]
            prefs = [
                Pref([{"role": "user", "content": p}], r, r, None, start + i + 1, "production")
                for i, (p, r) in enumerate(zip(ps, rs, strict=True))
            ]
            rows = encode_prefs(prefs, tokenizer, max_length).rows
            batch = Responses([x.prompt_ids for x in rows], [x.chosen_ids for x in rows], list(rs))
            out.extend(float(v) for v in model.score(batch))
        return out

    return score
