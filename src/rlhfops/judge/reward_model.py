"""A reward-model judge: the normalised score of a trained ``rlhfops.models.heads.RewardModel``.

Scored by :mod:`rlhfops.models.reward_scoring` (the one reward scoring): each (prompt, reply) is encoded
as the reward model's training pairs were (prompt as one user message, reply as the assistant turn,
rendered with the chat template), the score read at the reply's last token and normalised with the
model's stored mean/std. ``criterion`` is ignored (a reward model has one criterion: its training data).
"""

from __future__ import annotations

from rlhfops.judge.base import DEFAULT_CRITERION, PointwiseJudge
from rlhfops.models.reward_scoring import TextRewardScorer


class RewardModelJudge(PointwiseJudge):
    def __init__(
        self, path: str, tie_margin: float = 0.0, batch_size: int = 8, max_length: int = 1024
    ) -> None:
        self.path = str(path)
        self.name = f"rm:{self.path}"
        self.tie_margin = tie_margin
        self.batch_size = batch_size
        self._scorer = TextRewardScorer(self.path, "cpu", batch_size=batch_size, max_length=max_length)

    def encode(self, prompt: str, response: str) -> list[int]:
        """The token ids the reward model reads for one pair: prompt ids then reply ids."""
        ((p, r),) = self._scorer.encode([prompt], [response])
        return list(p) + list(r)

    def scores(self, prompts: list[str], responses: list[str]) -> list[float]:
        """Normalised rewards, one per (prompt, reply)."""
        return self._scorer.scores(prompts, responses)

    def score(self, prompt: str, response: str, criterion: str = DEFAULT_CRITERION) -> float:
        return self.scores([prompt], [response])[0]
