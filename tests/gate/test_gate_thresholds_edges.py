"""gate/thresholds.py rules the limit-edge tests do not reach: which red-team categories are required,
records that cannot change after the fact (issue 17, mutation survivors of gate/thresholds.py)."""

from __future__ import annotations

import dataclasses

import pytest

from rlhfops.gate.thresholds import (
    EvalSource,
    Evidence,
    ThresholdResult,
    merge_evidence,
    redteam_results,
    required_categories,
    success_results,
    threshold_results,
)
from rlhfops.spec.schema import GateThresholds, SuccessCriteria


def test_required_categories_are_the_specs_else_the_shipped_ones():
    listed = GateThresholds(redteam_min_pass_rate={"pii": 0.9})
    assert required_categories(listed, ("harmful_request", "jailbreak")) == ["pii"]
    assert required_categories(GateThresholds(), ("harmful_request", "jailbreak")) == [
        "harmful_request",
        "jailbreak",
    ]
    assert required_categories(GateThresholds()) == []


def test_sources_and_results_are_frozen():
    src = EvalSource("e1", {"kind": "evaluation"})
    row = ThresholdResult("kl", "KL", "<=", 4.0, 5.0, False, "e1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        src.id = "e2"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.passed = True  # type: ignore[misc]
    assert (row.passed, src.id) == (False, "e1")


def test_without_red_team_evidence_the_row_names_the_pass_rate_needed():
    (row,) = redteam_results(GateThresholds(max_redteam_failure_rate=0.02), Evidence())
    assert (row.name, row.comparator, row.passed) == ("redteam", ">=", None)
    assert row.required == pytest.approx(0.98, abs=1e-12)  # 1 - the failure rate allowed
    assert (row.observed, row.source, row.detail) == (None, None, "no red-team evaluation")


def test_a_comparison_without_its_interval_fails_and_rows_keep_required_apart_from_observed():
    gate = GateThresholds(min_win_rate=0.5, max_over_refusal=0.1, max_kl=4.0)
    ev = Evidence(win_rate={"rate": 0.9, "wins": 9, "losses": 1}, over_refusal_rate=0.03, kl=1.5)
    rows = {r.name: r for r in threshold_results(gate, None, ev)}
    assert (rows["win_rate"].observed, rows["win_rate"].passed) == (None, False)  # no ci_low: a failure
    assert (rows["over_refusal"].required, rows["over_refusal"].observed) == (0.1, 0.03)
    assert (rows["kl"].required, rows["kl"].observed) == (4.0, 1.5)
    alarms = threshold_results(GateThresholds(require_no_alarms=True), None, Evidence(alarms=[]))[-1]
    assert (alarms.name, alarms.required, alarms.observed, alarms.passed) == ("alarms", 0, 0, True)


SUCCESS = SuccessCriteria(
    increase=[{"behaviour": "Offers a remedy", "at_least": 0.8}],
    decrease=[{"behaviour": "refuses a benign request", "at_most": 0.05}],
)


def test_success_rows_measured_missing_and_not_evaluated():
    ev = Evidence(success_criteria={"offers a remedy": {"rate": 0.9, "baseline_rate": 0.5}})
    measured, missing = success_results(SUCCESS, ev)
    assert (measured.passed, measured.observed, measured.detail) == (True, 0.9, "baseline 0.500")
    # measured others but not this one: a named failure, not "no evidence"
    assert (missing.passed, missing.observed) == (False, None)
    assert missing.detail == "required by the spec, but not in the success evidence (no rate)"
    none = success_results(SUCCESS, Evidence())
    assert [(r.passed, r.detail) for r in none] == [(None, "not evaluated")] * 2


def test_the_same_alarm_from_two_evaluations_counts_once():
    same = {"name": "length_hacking", "evidence": "+40% tokens", "action": "retrain"}
    other = {"name": "length_hacking", "evidence": "+90% tokens", "action": "retrain"}
    named = {"name": "sycophancy", "evidence": "+40% tokens", "action": "retrain"}  # same evidence
    ev = merge_evidence(
        [
            EvalSource("e1", {"kind": "evaluation", "suite": "a", "alarms": [same]}),
            EvalSource("e2", {"kind": "evaluation", "suite": "b", "alarms": [same, other, named]}),
        ]
    )
    assert [(a["name"], a["evidence"], a["evaluation"]) for a in ev.alarms] == [
        ("length_hacking", "+40% tokens", "e1"),
        ("length_hacking", "+90% tokens", "e2"),
        ("sycophancy", "+40% tokens", "e2"),
    ]
    assert ev.sources["alarms"] == "e1,e2"


def test_a_red_team_row_with_counts_only_is_passed_over_total():
    rows = redteam_results(
        GateThresholds(), Evidence(redteam={"pii": {"total": 10}, "jb": {"passed": 7, "total": 10}})
    )
    assert {r.name: r.observed for r in rows} == {"redteam:pii": 0.0, "redteam:jb": 0.7}
