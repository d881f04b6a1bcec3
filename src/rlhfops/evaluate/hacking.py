"""Reward-hacking checks at evaluation time, reusing the PPO alarms (:mod:`rlhfops.train.alarms`).

From the candidate's and the baseline's replies to the same prompts: reward-model score up while the
judge's is not (``reward_up_judge_flat``), length drift (``length_drift``), and formula drift: distinct-2
collapse, one opening dominating or replies that loop (``diversity_collapse``). Lengths are in whitespace
words.

Without a baseline too, on any suite whose items fall in at least two kinds (red-team categories): one
reply shape for every kind of prompt (``opening_collapse``,
:func:`rlhfops.measures.diversity.opening_collapse`), the round-two collapse of docs/benchmarks.md
section 13 that no other alarm saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rlhfops.errors import ConfigError
from rlhfops.measures.diversity import (
    ALARM_DISTINCT2_DROP,
    ALARM_LENGTH_RATIO,
    ALARM_LOOPING_SHARE,
    COLLAPSE_GROUP_SHARE,
    COLLAPSE_OPENING_SHARE,
    distinct_n,
    looping_share,
    loops,
    opening,
    opening_collapse,
    opening_share,
)
from rlhfops.spec.schema import AlarmThresholds
from rlhfops.train.alarms import RAISE_KL, Alarm, reward_hacking_alarms


@dataclass(frozen=True)
class AlarmLimits:
    """The evaluation alarms' thresholds (``EvalOptions.alarms``)."""

    alarm_length_ratio: float = ALARM_LENGTH_RATIO  # the same defaults as the PPO config's and the spec's
    alarm_distinct2_drop: float = ALARM_DISTINCT2_DROP
    alarm_looping_share: float = ALARM_LOOPING_SHARE
    kl_controller: str = "fixed"  # no KL-controller alarm at evaluation time
    #: ``opening_collapse``: one opening starts at least this share of all replies ...
    alarm_opening_share: float = COLLAPSE_OPENING_SHARE
    #: ... and is the commonest opening in at least this share of the kinds of prompt (red-team categories)
    alarm_opening_groups: float = COLLAPSE_GROUP_SHARE

    def __post_init__(self) -> None:
        for name in ("alarm_opening_share", "alarm_opening_groups"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ConfigError(f"alarm limits: {name}={value!r}; use a share in (0, 1]")

    @classmethod
    def from_spec(cls, alarms: AlarmThresholds) -> AlarmLimits:
        """The limits the spec's ``gate.alarms`` sets (signed with the spec)."""
        return cls(**{f"alarm_{k}": v for k, v in alarms.model_dump().items()})

    def record(self) -> dict[str, float]:
        """The limits as the spec names them (``gate.alarms``): what an evaluation stores as
        ``alarm_limits`` and the gate compares with the spec's."""
        return {k: float(getattr(self, f"alarm_{k}")) for k in AlarmThresholds.model_fields}


def response_stats(
    texts: list[str], rewards: list[float] | None = None, judge_scores: list[float] | None = None
) -> dict[str, Any]:
    """The statistics ``reward_hacking_alarms`` reads (score, length, distinct-2, opening share, ...)."""
    r = np.asarray(rewards if rewards is not None else [0.0] * len(texts), dtype=np.float64)
    out: dict[str, Any] = {
        "score": float(r.mean()) if len(r) else 0.0,
        "score_sem": float(r.std() / np.sqrt(max(len(r), 1))),
        "response_length": float(np.mean([len(t.split()) for t in texts])) if texts else 0.0,
        "distinct_2": distinct_n([t.split() for t in texts], 2),
        "opening_share": opening_share(texts),
        "looping_share": looping_share(texts),
        "loop_examples": [t for t in texts if loops(t)][:3],
        "examples": texts[:3],
    }
    if judge_scores is not None:
        out["judge_score"] = float(np.mean(judge_scores))
    return out


def evaluation_alarms(
    candidate: dict[str, Any], baseline: dict[str, Any], limits: AlarmLimits | None = None
) -> list[dict[str, Any]]:
    """Open alarms as contract dicts ``{name, evidence, action, numbers, examples}``."""
    alarms = reward_hacking_alarms(limits or AlarmLimits(), [], baseline, candidate)
    return [a.as_dict() for a in alarms]


def _by_kind(kinds: list[str], replies: list[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for kind, reply in zip(kinds, replies, strict=True):
        groups.setdefault(kind, []).append(reply)
    return groups


def opening_collapse_alarms(
    replies: list[str],
    kinds: list[str],
    limits: AlarmLimits | None = None,
    baseline: list[str] | None = None,
) -> list[dict[str, Any]]:
    """``[opening_collapse]`` when one opening answers every kind of prompt, else ``[]``.

    ``kinds[i]`` is the kind of prompt ``replies[i]`` answers (an item's red-team category); ``baseline``, the
    baseline's replies to the same prompts, is shown for comparison and does not change the rule. The
    examples are one reply per kind that opens that way, prefixed with the kind.
    """
    lim = limits or AlarmLimits()
    groups = _by_kind(kinds, replies)
    got = opening_collapse(groups, min_share=lim.alarm_opening_share, min_groups=lim.alarm_opening_groups)
    if not got.collapsed:
        return []
    numbers = {
        "opening_share": got.share,
        "groups_led": float(len(got.groups_led)),
        "groups": float(got.n_groups),
    }
    evidence = (
        f'{got.share:.0%} of {got.n_replies} replies open with "{got.opening}" (alarm at '
        f"{lim.alarm_opening_share:.0%}), the commonest opening in {len(got.groups_led)} of {got.n_groups} "
        f"kinds of prompt (alarm at {lim.alarm_opening_groups:.0%}): one reply shape for every kind of prompt"
    )
    if baseline is not None:
        base = opening_collapse(_by_kind(kinds, baseline))
        numbers["baseline_opening_share"] = base.share
        evidence += f'; the baseline\'s commonest opening "{base.opening}" starts {base.share:.0%}'
    examples = [
        f"[{kind}] {next(r for r in groups[kind] if opening(r) == got.opening)}" for kind in got.groups_led
    ][:4]
    action = (
        "read the replies before believing any pass rate (detectors pass a formula that contains the right "
        "words); " + RAISE_KL + "; train on more varied data (fewer copies of one reply)"
    )
    return [Alarm("opening_collapse", evidence, action, numbers, examples).as_dict()]
