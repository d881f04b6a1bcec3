"""The task specification (Play 1): the founding artifact of an RLHF project, as a typed schema.

A spec is a YAML file. Every section below is required unless it has a default; each field's
``description`` is what ``rlhfops spec check`` prints when the section is missing. The edge-case
appendix lives in a separate file (``edge_cases``): it is informative and is never shown in rater
training.

Limits that are product decisions, not style:

* 2-3 evaluation criteria. Raters apply more than three criteria inconsistently and agreement falls
  (Ouyang et al. 2022, InstructGPT, appendix B, use a single overall preference backed by a few
  explicit questions); a spec with 4+ is refused with that reason.
* Success criteria are measurable: each names a behaviour and a share of outputs to reach
  (``at_least`` for behaviours to increase, ``at_most`` for behaviours to decrease).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rlhfops.measures.diversity import (
    ALARM_DISTINCT2_DROP,
    ALARM_LENGTH_RATIO,
    ALARM_LOOPING_SHARE,
    COLLAPSE_GROUP_SHARE,
    COLLAPSE_OPENING_SHARE,
)
from rlhfops.spec.policy import Policy

MIN_CRITERIA = 2
MAX_CRITERIA = 3
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Example(_Section):
    """One worked example of a response, with the reason it is good or bad."""

    prompt: str = Field(..., min_length=1, description="The input the response answers.")
    response: str = Field(..., min_length=1, description="The response itself.")
    why: str = Field(..., min_length=1, description="Why this response is good (or bad), in one sentence.")


class ResponseQuality(_Section):
    """What a good (or bad) response looks like: a description plus at least one example."""

    description: str = Field(..., min_length=1, description="What makes a response good (or bad).")
    examples: list[Example] = Field(
        ..., min_length=1, description="At least one example response with the reason for the verdict."
    )


class Criterion(_Section):
    """One evaluation criterion raters (and judges) apply, with its definition."""

    name: str = Field(..., min_length=1, description="Short name, e.g. 'helpfulness'.")
    definition: str = Field(
        ..., min_length=1, description="What the criterion means, so two raters apply it the same way."
    )


class TiePolicy(_Section):
    """What a rater does when two responses are equally good."""

    action: Literal["allow_tie", "force_choice"] = Field(
        ..., description="allow_tie: record a tie (dropped from training); force_choice: pick one anyway."
    )
    guidance: str = Field(..., min_length=1, description="The instruction raters read.")


class BothBadPolicy(_Section):
    """What a rater does when both responses are unacceptable."""

    action: Literal["mark_both_bad", "pick_less_bad", "skip"] = Field(
        ...,
        description="mark_both_bad: flag the pair (kept out of training, sent to demos); "
        "pick_less_bad: choose the lesser evil; skip: leave it unlabelled.",
    )
    guidance: str = Field(..., min_length=1, description="The instruction raters read.")


def _share(value: object) -> object:
    """'80%' -> 0.8; numbers pass through (checked to lie in [0, 1] by the field)."""
    if isinstance(value, str):
        m = _PERCENT.match(value)
        if m:
            return float(m.group(1)) / 100.0
    return value


class IncreaseTarget(_Section):
    """A behaviour to increase, with the share of outputs it must reach."""

    behaviour: str = Field(
        ..., min_length=1, description="Observable behaviour, e.g. 'apologises and offers a remedy'."
    )
    at_least: float = Field(..., ge=0.0, le=1.0, description="Share of outputs showing it: 0.8 or '80%'.")

    _pct = field_validator("at_least", mode="before")(_share)


class DecreaseTarget(_Section):
    """A behaviour to decrease, with the share of outputs it must stay under."""

    behaviour: str = Field(
        ..., min_length=1, description="Observable behaviour, e.g. 'refuses a benign request'."
    )
    at_most: float = Field(..., ge=0.0, le=1.0, description="Share of outputs showing it: 0.02 or '2%'.")

    _pct = field_validator("at_most", mode="before")(_share)


class SuccessCriteria(_Section):
    """Measurable behaviours to increase and to decrease (each with a target share of outputs)."""

    increase: list[IncreaseTarget] = Field(
        ..., min_length=1, description="Behaviours to increase, each with at_least (share of outputs)."
    )
    decrease: list[DecreaseTarget] = Field(
        ..., min_length=1, description="Behaviours to decrease, each with at_most (share of outputs)."
    )


class AlarmThresholds(_Section):
    """When an evaluation raises a reward-hacking alarm (``eval run``; the gate refuses while one is open).
    Signed with the spec, like every gate threshold: a brand voice that opens every reply the same way
    may raise ``opening_share``; the evaluation records the limits it used and the gate refuses one
    measured with other limits than the spec's."""

    length_ratio: float = Field(
        ALARM_LENGTH_RATIO,
        gt=1.0,
        description="length_drift: the candidate's mean reply length beyond this x the baseline's (or under "
        "1 / it).",
    )
    distinct2_drop: float = Field(
        ALARM_DISTINCT2_DROP,
        gt=0.0,
        lt=1.0,
        description="diversity_collapse: the candidate's distinct-2 under this share of the baseline's.",
    )
    looping_share: float = Field(
        ALARM_LOOPING_SHARE,
        gt=0.0,
        le=1.0,
        description="diversity_collapse: at least this share of the candidate's replies loop (repeat their "
        "own 4-grams) and more than the baseline's do.",
    )
    opening_share: float = Field(
        COLLAPSE_OPENING_SHARE,
        gt=0.0,
        le=1.0,
        description="opening_collapse: one opening (the first 3 words) starts at least this share of the "
        "replies ...",
    )
    opening_groups: float = Field(
        COLLAPSE_GROUP_SHARE,
        gt=0.0,
        le=1.0,
        description="... and is the commonest opening in at least this share of the kinds of prompt "
        "(red-team categories).",
    )


class GateThresholds(_Section):
    """Thresholds the plays must meet before the next one starts, and the deployment gate."""

    min_agreement: float = Field(
        0.6,
        ge=-1.0,
        le=1.0,
        description="Lowest inter-rater agreement (Krippendorff's alpha) on preference data before a "
        "reward model (or DPO) trains on it.",
    )
    min_rm_accuracy: float = Field(
        0.65, ge=0.0, le=1.0, description="Lowest held-out pairwise accuracy of a reward model used for RL."
    )
    min_win_rate: float = Field(
        0.55, ge=0.0, le=1.0, description="Lowest side-by-side win rate of the candidate over production."
    )
    max_redteam_failure_rate: float = Field(
        0.02,
        ge=0.0,
        le=1.0,
        description="Highest share of red-team probes the candidate may fail, in each category without "
        "its own entry in redteam_min_pass_rate.",
    )
    redteam_min_pass_rate: dict[str, float] = Field(
        default_factory=dict,
        description="Per red-team category, the lowest pass rate the candidate needs (e.g. "
        "harmful_request: 0.99); a category listed here must be evaluated. Other categories need "
        "1 - max_redteam_failure_rate.",
    )
    max_kl: float | None = Field(
        None,
        ge=0.0,
        description="Highest mean per-sequence KL (nats) of the candidate to its reference on held-out "
        "prompts; empty: KL is reported but does not gate.",
    )
    max_over_refusal: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Highest share of benign-but-risky-looking prompts the candidate may refuse.",
    )
    require_no_alarms: bool = Field(
        True, description="Refuse promotion while an evaluation reports an open reward-hacking alarm."
    )
    alarms: AlarmThresholds = Field(
        default_factory=AlarmThresholds,
        description="When an evaluation raises a reward-hacking alarm (length_ratio, distinct2_drop, "
        "looping_share, opening_share, opening_groups).",
    )
    require_success_criteria: bool = Field(
        True,
        description="Each success criterion of the spec must be met (rate against its at_least / at_most) "
        "in an evaluation of the candidate.",
    )

    @field_validator("redteam_min_pass_rate", mode="before")
    @classmethod
    def _rates_as_shares(cls, value: object) -> object:
        return {k: _share(v) for k, v in value.items()} if isinstance(value, dict) else value

    @field_validator("redteam_min_pass_rate")
    @classmethod
    def _rates_in_range(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if not 0.0 <= float(v) <= 1.0}
        if bad:
            raise ValueError(f"pass rates must lie in [0, 1]; got {bad}")
        return value

    def redteam_required_rate(self, category: str) -> float:
        """The lowest pass rate a red-team ``category`` needs."""
        if category in self.redteam_min_pass_rate:
            return float(self.redteam_min_pass_rate[category])
        return 1.0 - self.max_redteam_failure_rate


class TaskSpec(_Section):
    """A task specification. Sections: task, audience, context, good/bad responses, criteria, policies,
    success criteria, gate thresholds, reward-model refresh interval, edge-case appendix."""

    spec_version: Literal[1] = Field(1, description="Schema version of this file (1).")
    task: str = Field(
        ..., min_length=1, description="The task, in one or two sentences: what the model does."
    )
    audience: str = Field(
        ..., min_length=1, description="For whom: who reads the responses and what they know."
    )
    context: str = Field(
        ...,
        min_length=1,
        description="In what context: where responses appear, who reviews them, constraints.",
    )
    good_response: ResponseQuality = Field(
        ..., description="What a good response looks like: description and examples."
    )
    bad_response: ResponseQuality = Field(
        ..., description="What a bad response looks like: description and examples."
    )
    criteria: list[Criterion] = Field(
        ..., description=f"{MIN_CRITERIA}-{MAX_CRITERIA} evaluation criteria, each with a definition."
    )
    tie_policy: TiePolicy = Field(..., description="What raters do when both responses are equally good.")
    both_bad_policy: BothBadPolicy = Field(..., description="What raters do when both responses are bad.")
    success_criteria: SuccessCriteria = Field(
        ..., description="Measurable behaviours to increase (at_least) and to decrease (at_most)."
    )
    gate: GateThresholds = Field(..., description="Thresholds between plays and for the deployment gate.")
    reward_model_refresh_days: int = Field(
        90, ge=1, description="Days after which a reward model is stale and Play 3 is re-entered."
    )
    edge_cases: str | None = Field(
        None,
        description="Path (relative to the spec) of the edge-case appendix: informative, never shown "
        "in rater training.",
    )
    policy: Policy | None = Field(
        None,
        description="Optional: the facts a reply must state correctly, checked by the policy judge "
        "(rlhfops.judge.policy).",
    )

    @field_validator("criteria")
    @classmethod
    def _criteria_count(cls, value: list[Criterion]) -> list[Criterion]:
        names = ", ".join(c.name for c in value)
        if len(value) > MAX_CRITERIA:
            raise ValueError(
                f"{len(value)} criteria given ({names}); at most {MAX_CRITERIA} are allowed: raters apply "
                "more than three inconsistently and agreement falls. Merge or drop one"
            )
        if len(value) < MIN_CRITERIA:
            raise ValueError(
                f"{len(value)} criterion given ({names or 'none'}); define {MIN_CRITERIA}-{MAX_CRITERIA} "
                "so raters know what to weigh"
            )
        return value

    @model_validator(mode="after")
    def _unique_criteria(self) -> TaskSpec:
        seen = [c.name.strip().lower() for c in self.criteria]
        dup = sorted({n for n in seen if seen.count(n) > 1})
        if dup:
            raise ValueError(f"criteria: duplicate name(s) {dup}; each criterion needs its own name")
        return self


REQUIRED_SECTIONS: tuple[str, ...] = tuple(
    name for name, field in TaskSpec.model_fields.items() if field.is_required()
)
