"""Judges: compare two replies (``judge -> "A" | "B" | "tie"``) or score one (``score -> float``).

The interface (:class:`rlhfops.judge.base.Judge`) is small on purpose; evaluation (side-by-side win
rates) and annotation (an AI rater) use the same objects:

    from rlhfops.judge import make_judge
    j = make_judge("rule")                          # or "rm:PATH", "lm:PATH", "openai" (settings)
    j.judge(prompt, response_a, response_b)         # "A" | "B" | "tie"
    j.score(prompt, response, criterion)            # float, higher is better

Implementations: :mod:`.rule` (detector rubric, no model), :mod:`.reward_model` (a trained
``RewardModel``), :mod:`.http` (an OpenAI-compatible chat endpoint over httpx), :mod:`.local_lm`
(a local causal LM read through its next-token probabilities). Settings: :class:`.settings.JudgeSettings`
(the ``judge:`` section of ``rlhfops.yaml``).
"""

from __future__ import annotations

from rlhfops.judge.base import VERDICTS, Judge, PointwiseJudge
from rlhfops.judge.settings import JudgeSettings, make_judge

__all__ = ["VERDICTS", "Judge", "JudgeSettings", "PointwiseJudge", "make_judge"]
