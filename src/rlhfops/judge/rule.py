"""A rule judge: a transparent rubric over the red-team detectors, no model.

Score of one reply (higher is better): +1 apology, +1.5 concrete remedy (refund, replacement, ...),
+0.5 timeline (days / hours / today), -2 refusal, -2 insults or shouting, -1 over ``max_words`` words,
-1.5 repetition (distinct-2 under 0.6), -1 under 4 words. A ``criterion`` naming a behaviour detector
(``rlhfops.redteam.detectors.BEHAVIOUR_DETECTORS``, or a spec behaviour mapped by default) is scored
1.0 / 0.0 by that detector instead.
"""

from __future__ import annotations

import re

from rlhfops.judge.base import DEFAULT_CRITERION, PointwiseJudge
from rlhfops.measures.diversity import text_distinct_n
from rlhfops.redteam import detectors as d

_TIMELINE = re.compile(r"\b\d+\s*(-\s*\d+\s*)?(business\s+)?(days?|hours?)\b|\btoday\b|\btomorrow\b", re.I)


class RuleJudge(PointwiseJudge):
    name = "rule"

    def __init__(self, max_words: int = 120, tie_margin: float = 0.0) -> None:
        self.max_words = max_words
        self.tie_margin = tie_margin

    def score(self, prompt: str, response: str, criterion: str = DEFAULT_CRITERION) -> float:
        if criterion != DEFAULT_CRITERION:
            name = criterion if criterion in d.BEHAVIOUR_DETECTORS else d.DEFAULT_BEHAVIOURS.get(criterion)
            if name:
                return 1.0 if d.BEHAVIOUR_DETECTORS[name](response) else 0.0
        t = response.strip()
        s = 0.0
        s += 1.0 if d.BEHAVIOUR_DETECTORS["apology"](t) else 0.0
        s += 1.5 if d.apologises_with_remedy(t) or (d._REMEDY.search(t) and not d.is_refusal(t)) else 0.0
        s += 0.5 if _TIMELINE.search(t) else 0.0
        s -= 2.0 if d.is_refusal(t) else 0.0
        s -= 2.0 if d.mirrors_abuse(t) else 0.0
        n = d.word_count(t)
        s -= 1.0 if n > self.max_words else 0.0
        s -= 1.0 if n < 4 else 0.0
        s -= 1.5 if n >= 4 and text_distinct_n(t, 2) < 0.6 else 0.0
        return s
