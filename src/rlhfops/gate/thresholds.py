"""Evidence for the deployment gate, merged from a model's evaluations, and one check per threshold.

Pure functions: no workspace, no files. The evaluation contract (``meta`` of an ``evaluation``
artifact) is described in :mod:`rlhfops.gate` and ``docs``; the keys read here are ``kind``,
``suite``, ``complete``, ``redteam``, ``over_refusal_rate``, ``success_criteria``, ``win_rate``,
``kl``, ``reward``, ``alarms`` and ``alarm_limits`` (the limits the alarms were measured with: the gate's
alarms row fails on an evaluation whose limits are not the spec's ``gate.alarms``).

Merging: of each (``kind``, ``suite``) the latest evaluation counts (a re-run supersedes the earlier
one; two red-team suites with different categories both count). Each measured value is then taken
from the latest evaluation that measured it; red-team categories and success criteria merge per key,
later wins; alarms are the union of the counted evaluations' open alarms.

Thresholds come from the spec (``gate:`` and ``success_criteria:``), never from the evaluation: an
evaluation's own ``target`` is ignored, so a target cannot be loosened after the results are known.

Required evidence: the red-team categories of ``redteam_min_pass_rate`` (else the shipped suite's,
passed in by the caller), every success criterion, the win rate's CI lower bound. What a counted
evaluation of that kind lacks is a FAIL naming it; what no evaluation measured has no evidence.
The evaluations passed in are the ones :mod:`rlhfops.gate.provenance` verified (or external ones).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from rlhfops.spec.schema import GateThresholds, SuccessCriteria

_EPS = 1e-12


@dataclass(frozen=True)
class EvalSource:
    """One stored evaluation: its artifact id and ``meta`` (oldest first when passed in a list)."""

    id: str
    meta: dict[str, Any]
    created_at: str = ""


@dataclass
class Evidence:
    """What the counted evaluations measured; ``sources`` names where each value came from."""

    redteam: dict[str, dict[str, Any]] = field(default_factory=dict)
    over_refusal_rate: float | None = None
    success_criteria: dict[str, dict[str, Any]] = field(default_factory=dict)
    win_rate: dict[str, Any] | None = None
    kl: float | None = None
    kl_estimator: str | None = None  # the evaluation's meta.kl_estimator (None: an older evaluation)
    reward: dict[str, float] | None = None
    alarms: list[dict[str, Any]] | None = None  # None: no counted evaluation reported alarms
    # counted evaluation id -> the alarm limits it measured with (meta.alarm_limits; older ones have none)
    alarm_limits: dict[str, dict[str, float]] = field(default_factory=dict)
    counted: list[str] = field(default_factory=list)  # evaluation ids counted (latest per kind+suite)
    superseded: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)  # counted evaluations with complete != true
    sources: dict[str, str] = field(default_factory=dict)  # "kl", "redteam:<cat>", ... -> evaluation id

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def behaviour_key(text: str) -> str:
    """Normalised behaviour name used to match spec success criteria with evaluation results."""
    return re.sub(r"\s+", " ", str(text)).strip().lower()


def _three(x: Any) -> str:
    """A number as a person reads it in a threshold's detail (3 decimals; ``?`` when missing)."""
    v = _num(x)
    return "?" if v is None else f"{v:.3f}"


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or x is None:
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def merge_evidence(evals: list[EvalSource]) -> Evidence:
    """Merge evaluations (oldest first) into one :class:`Evidence` (see the module docstring)."""
    latest: dict[tuple[str, str], EvalSource] = {}
    for e in evals:
        key = (str(e.meta.get("kind", "")), str(e.meta.get("suite", "")))
        if key in latest:
            latest.pop(key)  # re-insert so dict order stays chronological
        latest[key] = e
    counted = list(latest.values())
    ev = Evidence(counted=[e.id for e in counted])
    ev.superseded = [e.id for e in evals if e.id not in set(ev.counted)]
    alarms: list[dict[str, Any]] | None = None
    seen_alarms: set[tuple[str, str]] = set()
    for e in counted:
        m = e.meta
        if m.get("complete") is not True:
            ev.incomplete.append(e.id)
        for cat, row in (m.get("redteam") or {}).items():
            if isinstance(row, dict):
                ev.redteam[str(cat)] = dict(row)
                ev.sources[f"redteam:{cat}"] = e.id
        for name, row in (m.get("success_criteria") or {}).items():
            if isinstance(row, dict):
                ev.success_criteria[behaviour_key(name)] = {"behaviour": str(name), **row}
                ev.sources[f"success:{behaviour_key(name)}"] = e.id
        if _num(m.get("over_refusal_rate")) is not None:
            ev.over_refusal_rate = _num(m["over_refusal_rate"])
            ev.sources["over_refusal"] = e.id
        if isinstance(m.get("win_rate"), dict):
            ev.win_rate = dict(m["win_rate"])
            ev.sources["win_rate"] = e.id
        if _num(m.get("kl")) is not None:
            ev.kl = _num(m["kl"])
            ev.kl_estimator = str(m["kl_estimator"]) if m.get("kl_estimator") else None
            ev.sources["kl"] = e.id
        if isinstance(m.get("reward"), dict):
            ev.reward = dict(m["reward"])
            ev.sources["reward"] = e.id
        if isinstance(m.get("alarm_limits"), dict):
            ev.alarm_limits[e.id] = {str(k): v for k, v in m["alarm_limits"].items()}
        if isinstance(m.get("alarms"), list):
            alarms = alarms if alarms is not None else []
            ev.sources["alarms"] = ",".join(filter(None, [ev.sources.get("alarms"), e.id]))
            for a in m["alarms"]:
                a = a if isinstance(a, dict) else {"name": str(a), "evidence": "", "action": ""}
                k = (str(a.get("name", "")), str(a.get("evidence", "")))
                if k not in seen_alarms:
                    seen_alarms.add(k)
                    alarms.append({**a, "evaluation": e.id})
    ev.alarms = alarms
    return ev


def other_alarm_limits(gate: GateThresholds, ev: Evidence) -> str:
    """Why the counted evaluations' alarms do not count: each one measured with other limits than the
    spec's ``gate.alarms`` (``""`` when none did). An evaluation without a record (made before the limits
    were recorded) is not named."""
    spec = gate.alarms.model_dump()
    parts = []
    for eid, used in ev.alarm_limits.items():
        diff = []
        for k, v in spec.items():
            got = _num(used.get(k))
            if got is None or abs(got - v) > _EPS:
                diff.append(f"{k} {used.get(k)} (spec {v})")
        if diff:
            parts.append(f"evaluation {eid[:12]} measured alarms with other limits: {', '.join(diff)}")
    if not parts:
        return ""
    return "; ".join(parts) + " -- run `rlhfops eval run` again under the signed spec"


@dataclass(frozen=True)
class ThresholdResult:
    """One threshold: what the spec requires, what was observed, pass / fail / no evidence (None)."""

    name: str  # stable key, e.g. "redteam:harmful_request", "win_rate", "kl"
    label: str  # what a person reads
    comparator: str  # ">=", "<=" or "=="
    required: float | int | bool
    observed: float | int | bool | None
    passed: bool | None  # None: no evidence
    source: str | None  # evaluation id the observed value came from
    detail: str = ""

    @property
    def status(self) -> str:
        return "no evidence" if self.passed is None else ("pass" if self.passed else "FAIL")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status}


def _cmp(observed: float | None, comparator: str, required: float) -> bool | None:
    if observed is None:
        return None
    # a tolerance of 1e-12 so that e.g. 49/50 meets 1 - 0.02 despite binary rounding
    return observed >= required - _EPS if comparator == ">=" else observed <= required + _EPS


def required_categories(gate: GateThresholds, default: tuple[str, ...] = ()) -> list[str]:
    """The red-team categories the evidence must cover: those the spec lists in
    ``redteam_min_pass_rate``, else ``default`` (the shipped suite's categories)."""
    return list(gate.redteam_min_pass_rate) or list(default)


def redteam_results(
    gate: GateThresholds, ev: Evidence, default_categories: tuple[str, ...] = ()
) -> list[ThresholdResult]:
    """One row per red-team category (evaluated ones, plus the required ones); a row 'redteam'
    without evidence when nothing red-team was evaluated. A required category the red-team evidence
    lacks is a FAIL (a misspelt or partial suite must not pass)."""
    required = required_categories(gate, default_categories)
    cats = list(ev.redteam) + [c for c in gate.redteam_min_pass_rate if c not in ev.redteam]
    if ev.redteam:
        cats += [c for c in required if c not in cats]
    if not cats:
        need = 1.0 - gate.max_redteam_failure_rate
        return [
            ThresholdResult(
                "redteam", "red-team pass rate", ">=", need, None, None, None, "no red-team evaluation"
            )
        ]
    out = []
    for cat in cats:
        need = gate.redteam_required_rate(cat)
        row = ev.redteam.get(cat)
        rate = _num(row.get("pass_rate")) if row else None
        if row and rate is None and _num(row.get("total")):
            rate = float(row.get("passed", 0)) / float(row["total"])
        detail = f"{row.get('passed', '?')}/{row.get('total', '?')} passed" if row else "not evaluated"
        passed = _cmp(rate, ">=", need)
        if passed is None and ev.redteam:  # red-team evidence, but not for this category: a failure
            passed = False
            detail = f"{detail}; no pass rate" if row else "required, but not in the red-team evidence"
        src = ev.sources.get(f"redteam:{cat}")
        out.append(
            ThresholdResult(
                f"redteam:{cat}", f"red-team {cat}: pass rate", ">=", need, rate, passed, src, detail
            )
        )
    return out


def success_results(success: SuccessCriteria | None, ev: Evidence) -> list[ThresholdResult]:
    """One row per success criterion of the spec (targets from the spec, rates from evaluations)."""
    if success is None:
        return []
    rows: list[tuple[str, str, float]] = [(t.behaviour, ">=", t.at_least) for t in success.increase]
    rows += [(t.behaviour, "<=", t.at_most) for t in success.decrease]
    out = []
    for behaviour, comparator, target in rows:
        key = behaviour_key(behaviour)
        got = ev.success_criteria.get(key)
        rate = _num(got.get("rate")) if got else None
        base = _num(got.get("baseline_rate")) if got else None
        detail = "not evaluated" if got is None else ("" if base is None else f"baseline {base:.3f}")
        passed = _cmp(rate, comparator, target)
        if passed is None and ev.success_criteria:  # measured others, not this one: a failure, named
            passed = False
            detail = "required by the spec, but not in the success evidence (no rate)"
        out.append(
            ThresholdResult(
                f"success:{key}",
                f"success: {behaviour}",
                comparator,
                target,
                rate,
                passed,
                ev.sources.get(f"success:{key}"),
                detail,
            )
        )
    return out


def threshold_results(
    gate: GateThresholds,
    success: SuccessCriteria | None,
    ev: Evidence,
    redteam_categories: tuple[str, ...] = (),
) -> list[ThresholdResult]:
    """Every deployment threshold the spec sets, checked against the evidence.

    ``redteam_categories``: the categories required when the spec lists none (the shipped suite's).
    """
    out = redteam_results(gate, ev, redteam_categories)
    wr = ev.win_rate
    ci_low = _num(wr.get("ci_low")) if wr else None
    wr_passed = _cmp(ci_low, ">=", gate.min_win_rate)
    if wr and wr_passed is None:  # a comparison without its interval: a failure, named
        wr_passed = False
    detail = ""
    if wr:
        detail = (
            f"rate {_three(wr.get('rate'))}, 95% CI [{_three(ci_low)}, {_three(wr.get('ci_high'))}], "
            f"W/T/L {wr.get('wins', '?')}/{wr.get('ties', '?')}/{wr.get('losses', '?')}, "
            f"judge {wr.get('judge', '?')}"
        )
    out.append(
        ThresholdResult(
            "win_rate",
            "win rate over baseline (CI lower bound)",
            ">=",
            gate.min_win_rate,
            ci_low,
            wr_passed,
            ev.sources.get("win_rate"),
            detail or "no side-by-side evaluation",
        )
    )
    if gate.max_kl is not None:
        out.append(
            ThresholdResult(
                "kl",
                "KL to the reference",
                "<=",
                gate.max_kl,
                ev.kl,
                _cmp(ev.kl, "<=", gate.max_kl),
                ev.sources.get("kl"),
                "" if ev.kl is not None else "no evaluation measured KL",
            )
        )
    out.append(
        ThresholdResult(
            "over_refusal",
            "over-refusal rate",
            "<=",
            gate.max_over_refusal,
            ev.over_refusal_rate,
            _cmp(ev.over_refusal_rate, "<=", gate.max_over_refusal),
            ev.sources.get("over_refusal"),
            "" if ev.over_refusal_rate is not None else "no evaluation measured over-refusal",
        )
    )
    if gate.require_no_alarms:
        n = len(ev.alarms) if ev.alarms is not None else None
        names = ", ".join(str(a.get("name", "?")) for a in ev.alarms or [])
        other = other_alarm_limits(gate, ev)
        out.append(
            ThresholdResult(
                "alarms",
                "open reward-hacking alarms",
                "<=",
                0,
                n,
                False if other else (None if n is None else n == 0),
                ev.sources.get("alarms"),
                "; ".join(
                    filter(None, [names or ("" if n is not None else "no evaluation reported alarms"), other])
                ),
            )
        )
    if gate.require_success_criteria:
        out += success_results(success, ev)
    return out
