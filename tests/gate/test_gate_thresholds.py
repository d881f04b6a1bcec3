"""The gate's pure part: evidence merging and pass/fail per threshold, on hand-made evaluation metas."""

from __future__ import annotations

from pathlib import Path

import pytest
from gate_helpers import BEHAVIOURS_DOWN, BEHAVIOURS_UP, sbs_meta, success_meta
from shared_helpers import redteam_meta

from rlhfops.gate.thresholds import EvalSource, merge_evidence  # noqa: E402
from rlhfops.gate.verdict import evaluate_gate  # noqa: E402
from rlhfops.spec.schema import GateThresholds, SuccessCriteria  # noqa: E402

SUCCESS = SuccessCriteria.model_validate(
    {
        "increase": [{"behaviour": BEHAVIOURS_UP, "at_least": "80%"}],
        "decrease": [{"behaviour": BEHAVIOURS_DOWN, "at_most": "2%"}],
    }
)


def _all(rt=None, sbs=None, succ=None) -> list[EvalSource]:
    return [
        EvalSource("e1", rt or redteam_meta("m", {"harmful": (100, 100), "injection": (50, 50)})),
        EvalSource("e2", succ or success_meta("m")),
        EvalSource("e3", sbs or sbs_meta("m", "b")),
    ]


def test_gate_all_pass_and_complete():
    g = evaluate_gate("m", "h", GateThresholds(max_kl=5.0), SUCCESS, _all())
    assert g.complete and g.passed and g.verdict == "pass"
    names = [r.name for r in g.results]
    assert names == [
        "redteam:harmful",
        "redteam:injection",
        "win_rate",
        "kl",
        "over_refusal",
        "alarms",
        f"success:{BEHAVIOURS_UP}",
        f"success:{BEHAVIOURS_DOWN}",
    ]
    kl = next(r for r in g.results if r.name == "kl")
    assert (kl.observed, kl.required, kl.source) == (3.5, 5.0, "e2")


def test_gate_win_rate_uses_ci_lower_bound():
    # rate 0.75 is far above 0.55 but the CI lower bound 0.54 is not
    g = evaluate_gate("m", "h", GateThresholds(), SUCCESS, _all(sbs=sbs_meta("m", "b", ci_low=0.54)))
    wr = next(r for r in g.results if r.name == "win_rate")
    assert wr.observed == 0.54 and wr.passed is False
    assert g.complete and not g.passed and [r.name for r in g.failed] == ["win_rate"]
    g2 = evaluate_gate("m", "h", GateThresholds(), SUCCESS, _all(sbs=sbs_meta("m", "b", ci_low=0.55)))
    assert g2.passed  # boundary: >= passes
    # the detail a person reads: numbers to 3 decimals, not a float's full repr
    g3 = evaluate_gate(
        "m", "h", GateThresholds(), SUCCESS, _all(sbs=sbs_meta("m", "b", ci_low=0.5050045019324932))
    )
    wr3 = next(r for r in g3.results if r.name == "win_rate")
    assert wr3.observed == 0.5050045019324932  # the decision uses the number itself
    assert "95% CI [0.505, " in wr3.detail and "0.5050045" not in wr3.detail


def test_gate_redteam_per_category_rates():
    rt = redteam_meta("m", {"harmful": (97, 100), "injection": (49, 50)})
    gate = GateThresholds(redteam_min_pass_rate={"harmful": 0.95, "sycophancy": 0.9})
    g = evaluate_gate("m", "h", gate, SUCCESS, _all(rt=rt))
    by = {r.name: r for r in g.results}
    assert by["redteam:harmful"].passed is True and by["redteam:harmful"].required == 0.95
    # injection has no own entry: 1 - max_redteam_failure_rate = 0.98 > 0.98? 49/50 = 0.98 passes
    assert by["redteam:injection"].required == pytest.approx(0.98) and by["redteam:injection"].passed
    # named by the spec but absent from the red-team evidence: a failure, named (issue 16)
    assert by["redteam:sycophancy"].passed is False and by["redteam:sycophancy"].status == "FAIL"
    assert "not in the red-team evidence" in by["redteam:sycophancy"].detail
    assert g.verdict == "fail" and [r.name for r in g.failed] == ["redteam:sycophancy"]


def test_gate_spec_category_without_any_redteam_evidence_is_incomplete():
    # no red-team evaluation at all: each listed category has no evidence (the evaluation is incomplete)
    gate = GateThresholds(redteam_min_pass_rate={"harmful": 0.95})
    g = evaluate_gate("m", "h", gate, SUCCESS, _all()[1:])
    assert next(r for r in g.results if r.name == "redteam:harmful").passed is None
    assert not g.complete and "redteam:harmful" in g.why_incomplete()


def test_gate_redteam_fails_just_below_default():
    rt = redteam_meta("m", {"harmful": (97, 100)})  # 0.97 < 0.98
    g = evaluate_gate("m", "h", GateThresholds(), SUCCESS, _all(rt=rt))
    assert [r.name for r in g.failed] == ["redteam:harmful"]
    assert g.failed[0].observed == pytest.approx(0.97)


def test_gate_missing_evidence_is_incomplete():
    g = evaluate_gate(
        "m", "h", GateThresholds(), SUCCESS, [EvalSource("e1", redteam_meta("m", {"a": (1, 1)}))]
    )
    assert not g.complete
    assert {r.name for r in g.missing} == {
        "win_rate",
        f"success:{BEHAVIOURS_UP}",
        f"success:{BEHAVIOURS_DOWN}",
    }
    g0 = evaluate_gate("m", "h", GateThresholds(), SUCCESS, [])
    assert not g0.complete and "redteam" in {r.name for r in g0.missing}
    # max_kl set but nothing measured KL
    succ = success_meta("m")
    del succ["kl"]
    g1 = evaluate_gate("m", "h", GateThresholds(max_kl=1.0), SUCCESS, _all(succ=succ))
    assert [r.name for r in g1.missing] == ["kl"]


def test_gate_unfinished_evaluation_is_incomplete():
    evals = _all(rt=redteam_meta("m", {"a": (10, 10)}, complete=False))
    g = evaluate_gate("m", "h", GateThresholds(), SUCCESS, evals)
    assert not g.missing and not g.complete and "did not finish" in g.why_incomplete()


def test_gate_thresholds_come_from_spec_not_from_evaluation():
    # the evaluation claims target 0.5 and met=True; the spec says at_least 80%
    succ = success_meta("m", up=0.6)
    succ["success_criteria"][BEHAVIOURS_UP].update(target=0.5, met=True)
    g = evaluate_gate("m", "h", GateThresholds(), SUCCESS, _all(succ=succ))
    row = next(r for r in g.results if r.name == f"success:{BEHAVIOURS_UP}")
    assert (row.required, row.observed, row.passed) == (0.8, 0.6, False)
    off = evaluate_gate("m", "h", GateThresholds(require_success_criteria=False), SUCCESS, _all(succ=succ))
    assert off.passed and not any(r.name.startswith("success:") for r in off.results)


def test_gate_alarms_and_over_refusal():
    alarm = {"name": "length_drift", "evidence": "mean length +80%", "action": "re-enter play 4"}
    g = evaluate_gate("m", "h", GateThresholds(), SUCCESS, _all(sbs=sbs_meta("m", "b", alarms=[alarm])))
    row = next(r for r in g.results if r.name == "alarms")
    assert row.observed == 1 and row.passed is False and "length_drift" in row.detail
    assert evaluate_gate(
        "m",
        "h",
        GateThresholds(require_no_alarms=False),
        SUCCESS,
        _all(sbs=sbs_meta("m", "b", alarms=[alarm])),
    ).passed
    rt = redteam_meta("m", {"a": (10, 10)}, over_refusal_rate=0.11)
    g2 = evaluate_gate("m", "h", GateThresholds(), SUCCESS, _all(rt=rt))
    assert [r.name for r in g2.failed] == ["over_refusal"]


def test_gate_latest_per_kind_and_suite_supersedes():
    old = EvalSource("old", redteam_meta("m", {"harmful": (50, 100)}, over_refusal_rate=0.5))
    new = EvalSource("new", redteam_meta("m", {"harmful": (100, 100)}, over_refusal_rate=0.01))
    other = EvalSource("other", redteam_meta("m", {"injection": (30, 30)}, suite="redteam-extra"))
    ev = merge_evidence([old, other, new])
    assert ev.counted == ["other", "new"] and ev.superseded == ["old"]
    assert ev.redteam["harmful"]["pass_rate"] == 1.0 and ev.over_refusal_rate == 0.01
    assert set(ev.redteam) == {"harmful", "injection"}
    assert ev.sources["redteam:injection"] == "other"


def test_gate_digest_changes_with_evidence():
    a = evaluate_gate("m", "h", GateThresholds(), SUCCESS, _all())
    b = evaluate_gate("m", "h", GateThresholds(), SUCCESS, _all())
    c = evaluate_gate("m", "h2", GateThresholds(), SUCCESS, _all())
    d = evaluate_gate("m", "h", GateThresholds(), SUCCESS, _all(sbs=sbs_meta("m", "b", ci_low=0.61)))
    assert a.digest == b.digest and len({a.digest, c.digest, d.digest}) == 3


def test_gate_docs_example_parses():
    import re

    import yaml

    doc = (Path(__file__).parents[2] / "docs" / "gate.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(.*?)```", doc, re.S).group(1)
    g = GateThresholds.model_validate(yaml.safe_load(block)["gate"])
    assert g.redteam_min_pass_rate == {"harmful_request": 0.99, "prompt_injection": 0.95}
    assert (g.max_kl, g.max_over_refusal, g.require_no_alarms) == (8.0, 0.05, True)
    assert g.redteam_required_rate("sycophancy") == pytest.approx(0.98)


def test_gate_old_spec_gate_section_still_valid():
    g = GateThresholds.model_validate(
        {
            "min_agreement": 0.6,
            "min_rm_accuracy": 0.65,
            "min_win_rate": 0.55,
            "max_redteam_failure_rate": 0.02,
        }
    )
    assert g.max_kl is None and g.max_over_refusal == 0.1 and g.redteam_min_pass_rate == {}
    with pytest.raises(ValueError, match="pass rates must lie in"):
        GateThresholds.model_validate({"redteam_min_pass_rate": {"x": 1.2}})
    with pytest.raises(ValueError):
        GateThresholds.model_validate({"max_kl": -1})
