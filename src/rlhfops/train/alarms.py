"""Reward-hacking alarms of an RL run: each names its evidence and the suggested action.

A rising reward score without a visible behaviour change is a red flag, not a success. The alarms:

- ``reward_up_judge_flat``: the reward model's score rose but the independent judge's did not;
- ``length_drift``: mean response length moved far from the reference's;
- ``diversity_collapse``: distinct-2 fell far below the reference's, one opening dominates, or replies
  loop (a share ``alarm_looping_share`` or more repeat their own 4-grams,
  :func:`rlhfops.measures.diversity.loops`, and more than the reference's do);
- ``kl_over_target``: measured KL above twice the adaptive controller's target.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rlhfops.measures.diversity import loops


@dataclass
class Alarm:
    name: str
    evidence: str
    action: str
    numbers: dict[str, float] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


RAISE_KL = "raise the KL penalty (beta or a lower target_kl) and re-run from the same start"
RETRAIN_RM = "retrain the reward model with fresh comparisons on the policy's current outputs"


def _window_mean(history: list[dict[str, Any]], key: str, first: bool, size: int) -> float | None:
    vals = [r[key] for r in history if key in r]
    if not vals:
        return None
    part = vals[:size] if first else vals[-size:]
    return sum(part) / len(part)


def _looping_first(examples: list[str], policy: dict[str, Any]) -> list[str]:
    """The policy's looping replies first (so the alarm shows the evidence), then the other examples."""

    pool = list(policy.get("loop_examples", [])) + examples
    return sorted(dict.fromkeys(pool), key=lambda t: not loops(t))[: max(3, len(examples))]


def reward_hacking_alarms(
    cfg: Any, history: list[dict[str, Any]], reference: dict[str, Any] | None, policy: dict[str, Any] | None
) -> list[Alarm]:
    """Alarms from the per-iteration history and the held-out evaluation of reference vs policy."""
    alarms: list[Alarm] = []
    size = max(1, len(history) // 4)
    if reference and policy:
        examples = list(policy.get("examples", []))
        d_score = policy["score"] - reference["score"]
        noise = 2 * (policy.get("score_sem", 0.0) ** 2 + reference.get("score_sem", 0.0) ** 2) ** 0.5
        if "judge_score" in policy and "judge_score" in reference and d_score > max(noise, 1e-9):
            d_judge = policy["judge_score"] - reference["judge_score"]
            if d_judge <= 0:
                alarms.append(
                    Alarm(
                        "reward_up_judge_flat",
                        f"held-out reward rose by {d_score:.3f} (noise {noise:.3f}) while the independent "
                        f"judge moved by {d_judge:.3f}",
                        RETRAIN_RM + "; " + RAISE_KL,
                        {"reward_delta": d_score, "judge_delta": d_judge},
                        examples,
                    )
                )
        ref_len, pol_len = reference["response_length"], policy["response_length"]
        ratio = pol_len / max(ref_len, 1e-9)
        if ratio > cfg.alarm_length_ratio or ratio < 1 / cfg.alarm_length_ratio:
            alarms.append(
                Alarm(
                    "length_drift",
                    f"mean response length {pol_len:.1f} tokens vs the reference's {ref_len:.1f} "
                    f"({ratio:.2f}x; alarm beyond {cfg.alarm_length_ratio}x)",
                    RAISE_KL + "; check whether the reward model pays for length",
                    {"length_ratio": ratio, "policy_length": pol_len, "reference_length": ref_len},
                    examples,
                )
            )
        ref_d, pol_d = reference["distinct_2"], policy["distinct_2"]
        opening = policy.get("opening_share", 0.0)
        loop, ref_loop = policy.get("looping_share", 0.0), reference.get("looping_share", 0.0)
        looping = loop >= cfg.alarm_looping_share and loop > ref_loop
        if (
            pol_d < cfg.alarm_distinct2_drop * ref_d
            or (opening > 0.5 and opening > 2 * reference.get("opening_share", 0))
            or looping
        ):
            alarms.append(
                Alarm(
                    "diversity_collapse",
                    f"distinct-2 {pol_d:.3f} vs the reference's {ref_d:.3f}; most common opening in "
                    f"{opening:.0%} of responses; {loop:.0%} of responses repeat themselves (reference "
                    f"{ref_loop:.0%}; alarm at {cfg.alarm_looping_share:.0%})",
                    RAISE_KL,
                    {
                        "distinct_2": pol_d,
                        "reference_distinct_2": ref_d,
                        "opening_share": opening,
                        "looping_share": loop,
                        "reference_looping_share": ref_loop,
                    },
                    _looping_first(examples, policy) if looping else examples,
                )
            )
    if cfg.kl_controller == "adaptive":
        late_kl = _window_mean(history, "kl", first=False, size=size)
        if late_kl is not None and late_kl > 2 * cfg.target_kl:
            alarms.append(
                Alarm(
                    "kl_over_target",
                    f"KL over the last {size} iterations averaged {late_kl:.2f}, above twice the target "
                    f"{cfg.target_kl}",
                    RAISE_KL,
                    {"kl": late_kl, "target_kl": cfg.target_kl},
                )
            )
    return alarms
