"""The judge interface: a pairwise verdict and a pointwise score."""

from __future__ import annotations

import abc
from typing import Literal, Protocol, runtime_checkable

Verdict = Literal["A", "B", "tie"]
VERDICTS: tuple[str, ...] = ("A", "B", "tie")
DEFAULT_CRITERION = "overall quality of a customer-support reply: helpful, correct, safe and polite"


@runtime_checkable
class Judge(Protocol):
    """What every judge offers. ``name`` is recorded with each result (e.g. ``"rule"``, ``"rm:/path"``)."""

    name: str

    def judge(self, prompt: str, response_a: str, response_b: str) -> Verdict:
        """Which reply to ``prompt`` is better: ``"A"``, ``"B"`` or ``"tie"``."""
        ...

    def score(self, prompt: str, response: str, criterion: str = DEFAULT_CRITERION) -> float:
        """How well ``response`` meets ``criterion`` (higher is better; scale depends on the judge)."""
        ...


class PointwiseJudge(abc.ABC):
    """A judge whose verdict compares two scores: tie when they differ by at most ``tie_margin``."""

    name = "pointwise"
    tie_margin = 0.0

    @abc.abstractmethod
    def score(self, prompt: str, response: str, criterion: str = DEFAULT_CRITERION) -> float:
        """How well ``response`` meets ``criterion`` (higher is better)."""

    def judge(self, prompt: str, response_a: str, response_b: str) -> Verdict:
        return compare_scores(self.score(prompt, response_a), self.score(prompt, response_b), self.tie_margin)


def compare_scores(a: float, b: float, tie_margin: float = 0.0) -> Verdict:
    if abs(a - b) <= tie_margin:
        return "tie"
    return "A" if a > b else "B"
