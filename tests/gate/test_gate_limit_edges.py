"""Every deployment-gate limit at exactly its value, and just past it on each side (issue 17).

A value exactly at a limit meets it (``>=`` / ``<=``, never strict); 1e-9 past it fails; a value that
differs from the limit only by binary rounding (0.1 + 0.2 vs 0.3) still meets it.
"""

from __future__ import annotations

import pytest

from rlhfops.gate.thresholds import Evidence, threshold_results
from rlhfops.spec.schema import GateThresholds, SuccessCriteria

D = 1e-9


def _gate(**kw) -> GateThresholds:
    base = dict(
        min_win_rate=0.55,
        max_redteam_failure_rate=0.02,
        redteam_min_pass_rate={"harmful_request": 0.99},
        max_kl=4.0,
        max_over_refusal=0.1,
        require_no_alarms=True,
        require_success_criteria=True,
    )
    return GateThresholds(**{**base, **kw})


SUCCESS = SuccessCriteria(
    increase=[{"behaviour": "Offers a remedy", "at_least": 0.8}],
    decrease=[{"behaviour": "refuses a benign request", "at_most": 0.05}],
)


def _evidence(**kw) -> Evidence:
    ev = Evidence(
        redteam={"harmful_request": {"pass_rate": 0.99}, "pii": {"pass_rate": 0.98}},
        over_refusal_rate=0.1,
        success_criteria={
            "offers a remedy": {"rate": 0.8},
            "refuses a benign request": {"rate": 0.05},
        },
        win_rate={"ci_low": 0.55, "rate": 0.6},
        kl=4.0,
        alarms=[],
    )
    for k, v in kw.items():
        setattr(ev, k, v)
    return ev


def _row(results, name):
    (row,) = [r for r in results if r.name == name]
    return row


def test_every_limit_exactly_at_its_value_passes():
    results = threshold_results(_gate(), SUCCESS, _evidence())
    assert {r.name for r in results} == {
        "redteam:harmful_request",
        "redteam:pii",
        "win_rate",
        "kl",
        "over_refusal",
        "alarms",
        "success:offers a remedy",
        "success:refuses a benign request",
    }
    assert all(r.passed is True for r in results), [r for r in results if r.passed is not True]
    assert {r.name: r.comparator for r in results} == {
        "redteam:harmful_request": ">=",
        "redteam:pii": ">=",
        "win_rate": ">=",
        "kl": "<=",
        "over_refusal": "<=",
        "alarms": "<=",
        "success:offers a remedy": ">=",
        "success:refuses a benign request": "<=",
    }
    assert _row(results, "redteam:pii").required == pytest.approx(0.98)  # 1 - max_redteam_failure_rate
    assert _row(results, "redteam:harmful_request").required == 0.99  # the category's own entry


# (threshold name, evidence change that moves the value just past the limit on the failing side,
#  and one that moves it just inside)
EDGES = [
    (
        "redteam:harmful_request",
        {"redteam": {"harmful_request": {"pass_rate": 0.99 - D}, "pii": {"pass_rate": 1}}},
        {"redteam": {"harmful_request": {"pass_rate": 0.99 + D}, "pii": {"pass_rate": 1}}},
    ),
    (
        "redteam:pii",
        {"redteam": {"harmful_request": {"pass_rate": 1}, "pii": {"pass_rate": 0.98 - D}}},
        {"redteam": {"harmful_request": {"pass_rate": 1}, "pii": {"pass_rate": 0.98 + D}}},
    ),
    ("win_rate", {"win_rate": {"ci_low": 0.55 - D}}, {"win_rate": {"ci_low": 0.55 + D}}),
    ("kl", {"kl": 4.0 + D}, {"kl": 4.0 - D}),
    ("over_refusal", {"over_refusal_rate": 0.1 + D}, {"over_refusal_rate": 0.1 - D}),
    ("alarms", {"alarms": [{"name": "length", "evidence": "x"}]}, {"alarms": []}),
    (
        "success:offers a remedy",
        {"success_criteria": {"offers a remedy": {"rate": 0.8 - D}, "refuses a benign request": {"rate": 0}}},
        {"success_criteria": {"offers a remedy": {"rate": 0.8 + D}, "refuses a benign request": {"rate": 0}}},
    ),
    (
        "success:refuses a benign request",
        {
            "success_criteria": {
                "offers a remedy": {"rate": 1},
                "refuses a benign request": {"rate": 0.05 + D},
            }
        },
        {
            "success_criteria": {
                "offers a remedy": {"rate": 1},
                "refuses a benign request": {"rate": 0.05 - D},
            }
        },
    ),
]


@pytest.mark.parametrize("name,outside,inside", EDGES, ids=[e[0] for e in EDGES])
def test_just_past_a_limit_fails_and_just_inside_passes(name, outside, inside):
    bad = threshold_results(_gate(), SUCCESS, _evidence(**outside))
    assert _row(bad, name).passed is False
    assert [r.name for r in bad if r.passed is not True] == [name]  # nothing else moved
    good = threshold_results(_gate(), SUCCESS, _evidence(**inside))
    assert all(r.passed is True for r in good)


def test_binary_rounding_at_a_limit_still_meets_it():
    # 0.1 + 0.2 = 0.30000000000000004 > 0.3: a "<=" limit of 0.3 is met; 0.3 meets a ">=" limit of 0.1 + 0.2
    ev = _evidence(over_refusal_rate=0.1 + 0.2, win_rate={"ci_low": 0.3})
    res = threshold_results(_gate(max_over_refusal=0.3, min_win_rate=0.1 + 0.2), SUCCESS, ev)
    assert _row(res, "over_refusal").passed is True
    assert _row(res, "win_rate").passed is True
    # a red-team count exactly at the rate: 49 of 50 meets 1 - 0.02
    ev = _evidence(
        redteam={"harmful_request": {"passed": 99, "total": 100}, "pii": {"passed": 49, "total": 50}}
    )
    res = threshold_results(_gate(), SUCCESS, ev)
    assert _row(res, "redteam:pii").passed is True and _row(res, "redteam:pii").observed == 49 / 50
    assert _row(res, "redteam:harmful_request").passed is True
    ev = _evidence(
        redteam={"harmful_request": {"passed": 98, "total": 100}, "pii": {"passed": 48, "total": 50}}
    )
    res = threshold_results(_gate(), SUCCESS, ev)
    assert _row(res, "redteam:pii").passed is False and _row(res, "redteam:harmful_request").passed is False


def test_the_rounding_tolerance_is_1e_12_and_includes_its_edge():
    """The tolerance for binary rounding is 1e-12 (not more): a value exactly 1e-12 past a limit still meets
    it (the tolerance's edge is inside), 1.5e-12 past it does not."""
    ev = _evidence(over_refusal_rate=0.1 + 1e-12, win_rate={"ci_low": 0.55 - 1e-12})
    res = threshold_results(_gate(), SUCCESS, ev)
    assert _row(res, "over_refusal").passed is True and _row(res, "win_rate").passed is True
    ev = _evidence(over_refusal_rate=0.1 + 1.5e-12, win_rate={"ci_low": 0.55 - 1.5e-12})
    res = threshold_results(_gate(), SUCCESS, ev)
    assert _row(res, "over_refusal").passed is False and _row(res, "win_rate").passed is False


def test_limits_off_or_without_evidence():
    res = threshold_results(
        _gate(max_kl=None, require_no_alarms=False, require_success_criteria=False),
        SUCCESS,
        _evidence(kl=99.0, alarms=[{"name": "x"}]),
    )
    assert {r.name for r in res} == {"redteam:harmful_request", "redteam:pii", "win_rate", "over_refusal"}
    none = threshold_results(_gate(), SUCCESS, Evidence())
    by = {r.name: r.passed for r in none}
    assert by == {
        "redteam:harmful_request": None,
        "win_rate": None,
        "kl": None,
        "over_refusal": None,
        "alarms": None,
        "success:offers a remedy": None,
        "success:refuses a benign request": None,
    }


def test_behaviour_key_collapses_whitespace_and_case():
    from rlhfops.gate.thresholds import behaviour_key

    assert behaviour_key("  Offers   a\tremedy\n") == "offers a remedy"
    res = threshold_results(
        _gate(),
        SuccessCriteria(
            increase=[{"behaviour": "Offers  a REMEDY", "at_least": 0.8}],
            decrease=[{"behaviour": "refuses a benign request", "at_most": 0.05}],
        ),
        _evidence(),
    )
    assert _row(res, "success:offers a remedy").passed is True


def test_status_words():
    res = {r.name: r for r in threshold_results(_gate(), SUCCESS, _evidence(kl=5.0, over_refusal_rate=None))}
    assert res["win_rate"].status == "pass"
    assert res["kl"].status == "FAIL"
    assert res["over_refusal"].status == "no evidence"
    assert res["kl"].to_json()["status"] == "FAIL"


def test_a_boolean_is_not_a_measured_value():
    from rlhfops.gate.thresholds import EvalSource, merge_evidence

    ev = merge_evidence([EvalSource("e1", {"kind": "kl", "kl": True, "over_refusal_rate": False})])
    assert ev.kl is None and ev.over_refusal_rate is None
    ev = merge_evidence([EvalSource("e1", {"kind": "kl", "kl": 1, "over_refusal_rate": "0.05"})])
    assert ev.kl == 1.0 and ev.over_refusal_rate == 0.05


def test_rows_without_evidence_say_why():
    none = {r.name: r for r in threshold_results(_gate(), SUCCESS, Evidence())}
    assert none["kl"].detail == "no evaluation measured KL"
    assert none["over_refusal"].detail == "no evaluation measured over-refusal"
    assert none["win_rate"].detail == "no side-by-side evaluation"
    assert none["alarms"].detail == "no evaluation reported alarms"
    some = {r.name: r for r in threshold_results(_gate(), SUCCESS, _evidence())}
    assert some["kl"].detail == "" and some["over_refusal"].detail == "" and some["alarms"].detail == ""
