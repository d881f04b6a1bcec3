"""The one rule that picks the candidate put before the gate owner (rlhfops.gate.choose), both sides of
each of its edges, and `rlhfops gate choose` on stored evaluations."""

from __future__ import annotations

import json

import pytest
from gate_helpers import BEHAVIOURS_UP, add_eval, all_categories, success_meta, train_chain
from shared_helpers import fake_model, redteam_meta

from rlhfops.gate.choose import Change, Standing, choose, main_criterion, rank


def _s(name: str, failed: int = 0, rate: float | None = 0.5, verdict: str | None = None, **kw) -> Standing:
    v = verdict or ("pass" if failed == 0 else "fail")
    missing = tuple(f"m{i}" for i in range(kw.pop("missing", 0)))
    return Standing(name, v, tuple(f"t{i}" for i in range(failed)), missing, rate, kw.pop("base", 0.1))


def _best(*standings: Standing, direction: str = "increase") -> str:
    return choose(list(standings), "c", direction).model


def test_a_passing_candidate_beats_a_failing_one_whatever_its_rate():
    assert _best(_s("a", failed=1, rate=0.9), _s("b", failed=0, rate=0.1)) == "b"


def test_fewer_failed_thresholds_win_by_one():
    assert _best(_s("a", failed=5, rate=0.9), _s("b", failed=4, rate=0.1)) == "b"
    assert _best(_s("a", failed=4, rate=0.9), _s("b", failed=5, rate=0.1)) == "a"


def test_equal_failures_go_to_the_better_main_criterion_rate_on_both_sides():
    assert _best(_s("a", failed=3, rate=0.40), _s("b", failed=3, rate=0.41)) == "b"
    assert _best(_s("a", failed=3, rate=0.41), _s("b", failed=3, rate=0.40)) == "a"


def test_a_decrease_criterion_prefers_the_lower_rate():
    assert _best(_s("a", rate=0.02), _s("b", rate=0.01), direction="decrease") == "b"
    assert _best(_s("a", rate=0.01), _s("b", rate=0.02), direction="decrease") == "a"


def test_a_tie_on_everything_goes_to_the_earlier_in_the_order_given():
    assert _best(_s("a", failed=2, rate=0.5), _s("b", failed=2, rate=0.5)) == "a"
    assert _best(_s("b", failed=2, rate=0.5), _s("a", failed=2, rate=0.5)) == "b"
    c = choose([_s("a", failed=2, rate=0.5), _s("b", failed=2, rate=0.5)], "c")
    assert "tied with b" in c.reason


def test_a_missing_rate_ranks_after_any_rate_even_zero_and_never_counts_as_zero():
    assert _best(_s("a", failed=1, rate=None), _s("b", failed=1, rate=0.0)) == "b"
    assert _best(_s("a", failed=1, rate=0.0), _s("b", failed=1, rate=None)) == "a"
    # but it is still ranked by thresholds first
    assert _best(_s("a", failed=0, rate=None), _s("b", failed=1, rate=0.9)) == "a"


def test_an_incomplete_verdict_ranks_after_every_complete_one():
    inc = _s("a", failed=0, rate=0.9, verdict="incomplete", missing=1)
    assert _best(inc, _s("b", failed=7, rate=0.0)) == "b"
    assert _best(_s("b", failed=7, rate=0.0), inc) == "b"
    # among incomplete ones: fewest failed + missing
    inc2 = _s("c", failed=1, rate=0.1, verdict="incomplete", missing=1)
    assert _best(inc2, inc) == "a"


def test_ranking_lists_every_candidate_best_first():
    got = rank([_s("a", failed=2), _s("b", failed=0), _s("c", failed=1, rate=None), _s("d", failed=1)])
    assert [s.model for s in got] == ["b", "d", "c", "a"]


def test_change_over_the_base_and_the_target_edge():
    c = choose([_s("a", rate=7 / 20, base=2 / 20)], "c")  # 100 * (0.35 - 0.1) is 24.999999999999996
    assert c.change.points == pytest.approx(25.0) and c.change.points < 25.0
    assert c.change.meets(25.0)  # still 25 points
    assert not c.change.meets(25.01)
    assert not choose([_s("a", rate=0.34, base=0.1)], "c").change.meets(25.0)
    assert not Change(None, 0.1, None).meets(0.0)  # no rate: meets no target, not even 0
    assert choose([_s("a", rate=0.5, base=None)], "c").change.points is None
    # a decrease criterion: going down is the improvement
    assert choose([_s("a", rate=0.01, base=0.1)], "c", "decrease").change.points == pytest.approx(9.0)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="no candidates"):
        choose([], "c")
    with pytest.raises(ValueError, match=r"\['a'\] given more than once"):
        choose([_s("a"), _s("a")], "c")
    with pytest.raises(ValueError, match="direction"):
        rank([_s("a")], "sideways")


def test_main_criterion_is_the_policys_else_the_first_increase(gws):
    spec = gws.current_spec().spec
    assert main_criterion(spec) == (BEHAVIOURS_UP, "increase")  # the template's policy names it
    no_policy = spec.model_copy(update={"policy": None})
    assert main_criterion(no_policy) == (spec.success_criteria.increase[0].behaviour, "increase")
    down = spec.success_criteria.decrease[0].behaviour
    on_down = spec.model_copy(update={"policy": spec.policy.model_copy(update={"criterion": down})})
    assert main_criterion(on_down) == (down, "decrease")


def test_gate_choose_cli_ranks_stored_evaluations(gws, tmp_path, cli, monkeypatch):
    """Two policies with the same failed thresholds: the higher main-criterion rate is chosen, whichever
    is given first; the change is its rate minus the base's in the evaluation."""
    monkeypatch.setenv("RLHFOPS_WORKSPACE", str(gws.root))
    ids = train_chain(gws, tmp_path / "runs")
    other = gws.record_training_run(
        "ppo", {"reward_model": ids["rm"], "model": ids["sft"]}, fake_model(tmp_path / "p2", "q"), "frank",
        {"eval": {"alarm": 0}},
    )  # fmt: skip
    for model, up in ((ids["ppo"], 0.50), (other, 0.70)):
        add_eval(gws, tmp_path / "ev", redteam_meta(model, all_categories()), [model])
        add_eval(gws, tmp_path / "ev", success_meta(model, up=up), [model])  # both fail the 0.8 target
    for order in ((ids["ppo"], other), (other, ids["ppo"])):
        code, out, err = cli(["gate", "choose", *(m[:12] for m in order), "--json"])
        assert code == 0, err
        c = json.loads(out)
        assert c["model"] == other and c["criterion"] == BEHAVIOURS_UP
        assert c["points"] == pytest.approx(100 * (0.70 - 0.4))
        assert [r["model"] for r in c["ranking"]] == [other, ids["ppo"]]
    code, out, _ = cli(["gate", "choose", ids["ppo"][:12], other[:12]])
    assert code == 0 and f"chosen: {other}" in out and "+30.0 points" in out
    code, _, err = cli(["gate", "choose", ids["ppo"][:12], ids["ppo"]])
    assert code == 2 and "given twice" in err
