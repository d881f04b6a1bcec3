"""Reward-model scores of (prompt, response) pairs, for the reward-score part of output drift.

A reward model from ``rlhfops train rm`` (a directory, or its artifact in the workspace) scores each pair
exactly as it scored preference pairs in training: the prompt becomes one user message, the response the
assistant turn, both rendered with the model's chat template and tokenized by
:func:`rlhfops.data.encode.encode_prefs` (cut at ``max_length`` tokens); the score is the head's output
at the last token, normalised with the mean/std stored with the model: the one reward scoring of
:mod:`rlhfops.models.reward_scoring`. torch loads on the first call, not on import.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rlhfops.models.reward_scoring import TextRewardScorer

Scorer = Callable[[list[str], list[str]], list[float]]


def reward_model_scorer(path: str | Path, batch_size: int = 16, max_length: int = 1024) -> Scorer:
    """A function ``(prompts, responses) -> scores`` backed by the reward model at ``path``
    (:class:`rlhfops.models.reward_scoring.TextRewardScorer`)."""
    scorer = TextRewardScorer(path, "cpu", batch_size=batch_size, max_length=max_length)
    scorer.load()
    return scorer.scores
