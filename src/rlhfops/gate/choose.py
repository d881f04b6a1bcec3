"""Which of several candidates goes before the gate owner, and how far it moved the spec's main criterion.

One rule (pure, on the gate's verdicts), used by ``rlhfops gate choose``, the demo's result line and its
round two (which continues from the chosen model):

1. a candidate that passes every threshold ranks first; then the fewest failed thresholds; an incomplete
   verdict (a threshold without evidence, an unfinished evaluation) ranks after every complete one
   (its failed and missing thresholds counted);
2. among equals, the better rate of the spec's **main criterion** (the behaviour the spec's ``policy``
   names, else its first ``success_criteria.increase`` behaviour; higher is better for an increase,
   lower for a decrease); a candidate without that rate ranks after every one with it;
3. still equal: the earlier in the order given (a caller puts e.g. a KL sweep's recommendation first).

The **change** is the chosen candidate's rate minus the base model's on the same prompts (the
evaluation's ``baseline_rate``), in points; it meets a target of ``t`` points when
``points >= t`` (to 1e-9: 0.35 - 0.10 is 25 points, not 24.999...). Without either rate it is None and
meets no target.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from rlhfops.gate.thresholds import behaviour_key
from rlhfops.gate.verdict import GateEvaluation

_EPS = 1e-9
INCOMPLETE_PENALTY = 1000  # an incomplete verdict ranks after any complete one


def main_criterion(spec: Any) -> tuple[str | None, str]:
    """(behaviour, direction) of the spec's main criterion: the policy's ``criterion``, else the first
    ``success_criteria.increase`` behaviour; (None, "increase") when the spec names neither."""
    sc = getattr(spec, "success_criteria", None)
    policy = getattr(spec, "policy", None)
    name = getattr(policy, "criterion", None)
    if sc is not None and name:
        if any(behaviour_key(t.behaviour) == behaviour_key(name) for t in sc.decrease):
            return name, "decrease"
        return name, "increase"
    if sc is not None and sc.increase:
        return sc.increase[0].behaviour, "increase"
    return None, "increase"


@dataclass(frozen=True)
class Standing:
    """One candidate as the rule sees it."""

    model: str  # the caller's name for it (an artifact id, or e.g. "dpo" in the demo)
    verdict: str  # pass, fail or incomplete
    failed: tuple[str, ...]
    missing: tuple[str, ...]
    rate: float | None  # the main criterion's rate (None: not measured)
    base_rate: float | None  # the base model's rate on the same prompts

    @property
    def shortfall(self) -> int:
        """-1 when every threshold passed, else the failed thresholds (+ missing + a penalty: incomplete)."""
        if self.verdict == "pass":
            return -1
        if self.verdict == "incomplete":
            return INCOMPLETE_PENALTY + len(self.failed) + len(self.missing)
        return len(self.failed)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "failed": list(self.failed), "missing": list(self.missing)}


@dataclass(frozen=True)
class Change:
    """The chosen candidate's main-criterion rate against the base model's."""

    rate: float | None
    base_rate: float | None
    points: float | None  # 100 * (rate - base_rate), sign flipped for a decrease; None without either

    def meets(self, target_points: float) -> bool:
        """True when the change is at least ``target_points`` points (None: never)."""
        return self.points is not None and self.points >= target_points - _EPS


@dataclass(frozen=True)
class Choice:
    """The chosen candidate, the ranking it came from (best first) and its change over the base."""

    model: str
    criterion: str | None
    direction: str
    ranking: tuple[Standing, ...]
    change: Change
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "criterion": self.criterion,
            "direction": self.direction,
            "ranking": [s.to_json() for s in self.ranking],
            "rate": self.change.rate,
            "base_rate": self.change.base_rate,
            "points": self.change.points,
            "reason": self.reason,
        }


def standing(name: str, g: GateEvaluation, criterion: str | None) -> Standing:
    """A candidate's standing from its gate verdict (the criterion's rates from the verdict's evidence)."""
    row = g.evidence.success_criteria.get(behaviour_key(criterion)) if criterion else None
    rate = _num((row or {}).get("rate"))
    base = _num((row or {}).get("baseline_rate"))
    return Standing(
        name, g.verdict, tuple(r.name for r in g.failed), tuple(r.name for r in g.missing), rate, base
    )


def rank(standings: list[Standing], direction: str = "increase") -> list[Standing]:
    """``standings`` best first by the module's rule (stable: the given order breaks remaining ties)."""
    if direction not in ("increase", "decrease"):
        raise ValueError(f"direction must be increase or decrease, not {direction!r}")
    sign = -1.0 if direction == "increase" else 1.0

    def key(i_s: tuple[int, Standing]) -> tuple[int, int, float, int]:
        i, s = i_s
        no_rate = s.rate is None
        return (s.shortfall, int(no_rate), 0.0 if no_rate else sign * float(s.rate), i)

    return [s for _, s in sorted(enumerate(standings), key=key)]


def choose(standings: list[Standing], criterion: str | None, direction: str = "increase") -> Choice:
    """The rule on ready-made standings (the caller's order breaks the last ties)."""
    if not standings:
        raise ValueError("choose a candidate: no candidates given")
    names = [s.model for s in standings]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"choose a candidate: {dup} given more than once")
    ranked = rank(standings, direction)
    best = ranked[0]
    points = None
    if best.rate is not None and best.base_rate is not None:
        points = 100.0 * (best.rate - best.base_rate) * (1.0 if direction == "increase" else -1.0)
    return Choice(
        best.model, criterion, direction, tuple(ranked), Change(best.rate, best.base_rate, points),
        _reason(ranked, criterion),
    )  # fmt: skip


def choose_candidate(
    verdicts: Mapping[str, GateEvaluation], criterion: str | None, direction: str = "increase"
) -> Choice:
    """The rule on gate verdicts, ``{name: verdict}`` in the caller's order of preference for ties."""
    return choose([standing(n, g, criterion) for n, g in verdicts.items()], criterion, direction)


def _reason(ranked: list[Standing], criterion: str | None) -> str:
    best = ranked[0]
    if best.verdict == "pass":
        head = "passes every threshold"
    elif best.verdict == "fail":
        head = f"fewest failed thresholds ({len(best.failed)})"
    else:
        head = "every candidate's verdict is incomplete; fewest failed + missing thresholds"
    tied = [s for s in ranked[1:] if s.shortfall == best.shortfall]
    if not tied:
        return head
    if criterion and best.rate is not None and all(s.rate != best.rate for s in tied):
        return f"{head}; best '{criterion}' rate among {1 + len(tied)} tied"
    return f"{head}; tied with {', '.join(s.model for s in tied)} on the rule: first in the order given"


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None
