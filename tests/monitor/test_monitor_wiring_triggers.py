"""The trigger engine on a real workspace: each rule fires on constructed facts and stays quiet otherwise;
each firing is opened once; drifted prompts become the next comparison batch; workspace rules file."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta

import pytest
from monitor_backends import BOTH_BACKENDS
from monitor_ws_helpers import add, backdate, drift_report
from shared_helpers import redteam_meta

from rlhfops.monitor.engine import check_workspace_triggers
from rlhfops.monitor.facts import deployed_model, rater_turnover
from rlhfops.workspace.plays import compute_status

# the tests that write and read triggers, people and comparison batches also run on PostgreSQL


def _fired(res):
    return {(f.firing.rule_id, f.firing.play) for f in res.firings}


def _opened(res):
    return {(f.firing.rule_id, f.firing.play) for f in res.opened}


def _redteam(ws, tmp_path, name: str, model: str, passed: int, failing: list[str], kind="evaluation"):
    """A red-team result on ``model``: ``passed`` of 10 harmful probes, the ``failing`` probe ids."""
    meta = redteam_meta(model, {"harmful": (passed, 10)}, {"harmful": failing})
    return add(ws, tmp_path, kind, name, meta, [model])


def test_empty_workspace_fires_nothing(ws):
    res = check_workspace_triggers(ws, "alice")
    assert res.firings == [] and ws.triggers() == []


def test_reward_hacking_from_run_summary_fires_play_4_and_a_clean_evaluation_quiets_it(ws, tmp_path):
    alarm = {"name": "length_drift", "evidence": "mean length 3.1x the reference's", "action": "raise KL"}
    ppo = add(ws, tmp_path, "ppo-model", "ppo", {"eval": {"alarms": [alarm], "alarm": 1}})
    res = check_workspace_triggers(ws, "alice")
    assert _opened(res) == {("reward_hacking", 4)}
    (t,) = ws.triggers()
    assert t.play == 4 and "length_drift" in t.evidence and ppo[:12] in t.evidence and "KL" in t.evidence
    # a later evaluation of the same policy that measured alarms and found none: quiet
    add(ws, tmp_path, "evaluation", "ev", {"model": ppo, "alarms": []}, parents=[ppo])
    assert check_workspace_triggers(ws, "alice").firings == []


def test_reward_hacking_negative_run_without_alarms(ws, tmp_path):
    add(ws, tmp_path, "ppo-model", "ppo", {"eval": {"alarms": [], "alarm": 0}})
    assert check_workspace_triggers(ws, "alice").firings == []


def test_reward_hacking_from_evaluation_meta(ws, tmp_path):
    dpo = add(ws, tmp_path, "dpo-model", "dpo", {"eval": {}})
    alarms = [{"name": "reward_up_judge_flat", "evidence": "reward +0.4, judge -0.1", "action": "x"}]
    add(ws, tmp_path, "evaluation", "ev", {"model": dpo, "alarms": alarms}, parents=[dpo])
    assert _opened(check_workspace_triggers(ws, "alice")) == {("reward_hacking", 4)}


def test_reward_hacking_reads_each_suites_latest_evaluation(ws, tmp_path):
    """A red-team run's opening_collapse is not hidden by a later task-prompt evaluation without alarms; a
    clean re-run of the red-team suite (which lists no alarms) supersedes it."""
    dpo = add(ws, tmp_path, "dpo-model", "dpo", {"eval": {}})
    collapse = [{"name": "opening_collapse", "evidence": "91% of 139 replies open with ...", "action": "x"}]

    def ev(name: str, kind: str, suite: str, **extra: object) -> str:
        return add(
            ws, tmp_path, "evaluation", name, {"model": dpo, "kind": kind, "suite": suite, **extra}, [dpo]
        )

    ev("task1", "success", "heldout", alarms=[])
    rt = ev("rt1", "redteam", "redteam", alarms=collapse)
    res = check_workspace_triggers(ws, "alice")
    assert _opened(res) == {("reward_hacking", 4)} and rt[:12] in res.firings[0].firing.evidence
    ev("task2", "success", "heldout", alarms=[])  # later, the same suite: supersedes task1, lists none
    assert _fired(check_workspace_triggers(ws, "alice")) == {("reward_hacking", 4)}
    ev("rt2", "redteam", "redteam")  # the red-team suite re-run: no collapse, so no alarms key
    assert check_workspace_triggers(ws, "alice").firings == []


@BOTH_BACKENDS
def test_new_edge_case_fires_play_5_once_then_play_3_when_it_recurs(ws, tmp_path):
    model = add(ws, tmp_path, "ppo-model", "ppo", {})
    _redteam(ws, tmp_path, "e1", model, 9, ["p1"])
    first = check_workspace_triggers(ws, "alice")
    assert _opened(first) == {("new_edge_case", 5)}
    assert "harmful/p1 x1" in first.firings[0].firing.evidence
    # same facts again: nothing new opened
    assert check_workspace_triggers(ws, "alice").opened == []
    _redteam(ws, tmp_path, "e2", model, 9, ["p1"])
    assert check_workspace_triggers(ws, "alice").opened == []  # p1 seen before: not new, not yet systematic
    _redteam(ws, tmp_path, "e3", model, 8, ["p1", "p2"], kind="redteam")
    third = check_workspace_triggers(ws, "alice")
    assert _opened(third) == {("new_edge_case", 5), ("systematic_edge_case", 3)}
    systematic = next(f for f in third.opened if f.firing.rule_id == "systematic_edge_case")
    assert [e["id"] for e in systematic.firing.payload["edge_cases"]] == ["harmful/p1"]
    assert {t.play for t in ws.triggers()} == {5, 3}


def test_edge_case_negative_passing_redteam(ws, tmp_path):
    model = add(ws, tmp_path, "ppo-model", "ppo", {})
    _redteam(ws, tmp_path, "e1", model, 10, [])
    assert check_workspace_triggers(ws, "alice").firings == []


def _rm_after_raters(ws, tmp_path, before: int, after: int):
    for i in range(before):
        ws.add_person(f"old{i}", "rater", "erin")
    prefs = add(ws, tmp_path, "preferences", "prefs.jsonl", {"agreement": 0.7})
    add(ws, tmp_path, "reward-model", "rm", {"eval": {"eval_accuracy": 0.8}}, parents=[prefs])
    for i in range(after):
        ws.add_person(f"new{i}", "rater", "erin")


@BOTH_BACKENDS
def test_rater_turnover_over_30_percent_fires_play_3(ws, tmp_path):
    _rm_after_raters(ws, tmp_path, before=3, after=2)  # 2 of 5 = 40%
    res = check_workspace_triggers(ws, "alice")
    assert _opened(res) == {("rater_turnover", 3)}
    (t,) = ws.triggers()
    assert (
        "40%" in t.evidence
        and "2 of 5 raters new" in t.evidence
        and "removals are not recorded" in t.evidence
    )


def test_rater_turnover_at_or_below_30_percent_is_quiet(ws, tmp_path):
    _rm_after_raters(ws, tmp_path, before=3, after=1)  # 1 of 4 = 25%
    assert check_workspace_triggers(ws, "alice").firings == []


def test_rater_turnover_between_two_dates(ws):
    t0 = datetime.now(UTC)
    for n in ("a", "b"):
        ws.add_person(n, "rater", "erin")
    t1 = datetime.now(UTC)
    ws.add_person("c", "rater", "erin")
    ws.add_person("d", "rater", "erin")
    got = rater_turnover(ws, since=t1)
    assert got.added == ["c", "d"] and got.value == pytest.approx(0.5) and got.pool_before == ["a", "b"]
    early = rater_turnover(ws, since=t1, until=t1)  # nobody joined in between
    assert early.value == 0.0 and early.pool_now == ["a", "b"]
    first = rater_turnover(ws, since=t0 - timedelta(days=1), until=t1)  # the whole pool joined since
    assert first.value == 1.0 and first.added == ["a", "b"]


def test_reward_model_older_than_spec_refresh_fires_play_3(ws, tmp_path):
    rm = add(ws, tmp_path, "reward-model", "rm", {})
    backdate(ws, rm, days=91)  # the support-replies spec says reward_model_refresh_days: 90
    res = check_workspace_triggers(ws, "alice")
    assert _opened(res) == {("stale_reward_model", 3)}
    assert (
        "older" in res.firings[0].firing.evidence or "> refresh interval 90" in res.firings[0].firing.evidence
    )
    # status shows it once (its own computed age row is not repeated)
    rules = [t["rule"] for t in compute_status(ws).triggers]
    assert rules.count("stale_reward_model") == 1 and "reward_model_age" not in rules


def test_fresh_reward_model_is_quiet(ws, tmp_path):
    rm = add(ws, tmp_path, "reward-model", "rm", {})
    backdate(ws, rm, days=89)
    assert check_workspace_triggers(ws, "alice").firings == []


@BOTH_BACKENDS
def test_drift_report_opens_play_1_and_play_3_with_the_comparison_batch(ws, tmp_path):
    report_id = add(ws, tmp_path, "report", "drift.json", {"monitor": "drift-report"})
    res = check_workspace_triggers(ws, "alice", report=drift_report(True, 0.2), report_id=report_id)
    assert _opened(res) == {("net_new_task", 1), ("input_drift", 3)}
    drift = next(f for f in res.opened if f.firing.rule_id == "input_drift")
    batch = ws.artifact(drift.comparison_batch)
    assert batch.kind == "prompts" and batch.parents == (report_id,) and batch.meta["rows"] == 50
    rows = [json.loads(x) for x in batch.path.read_text().splitlines()]
    assert len(rows) == 50 and rows[0] == {
        "prompt": "How do I bake bread number 0?",
        "id": "r0",
        "source": "drift",
    }
    opened = {t.rule: t for t in ws.triggers()}
    assert batch.id[:12] in opened["input_drift"].evidence
    assert "bake bread" in opened["net_new_task"].evidence


def test_drift_small_new_cluster_is_drift_but_not_a_new_task(ws, tmp_path):
    res = check_workspace_triggers(ws, "alice", report=drift_report(True, 0.05), report_id=None)
    assert _opened(res) == {("input_drift", 3)}


def test_no_drift_and_output_drift(ws):
    assert check_workspace_triggers(ws, "alice", report=drift_report(False)).firings == []
    res = check_workspace_triggers(ws, "alice", report=drift_report(False, output_drifted=True))
    assert _opened(res) == {("output_drift", 3)} and "response_length" in res.firings[0].firing.evidence


@BOTH_BACKENDS
def test_closed_trigger_is_not_reopened_on_the_same_facts(ws, tmp_path):
    add(
        ws,
        tmp_path,
        "ppo-model",
        "ppo",
        {"eval": {"alarms": [{"name": "kl_over_target", "evidence": "kl 9"}]}},
    )
    (first,) = check_workspace_triggers(ws, "alice").opened
    ws.close_trigger(first.trigger_id, "frank")
    again = check_workspace_triggers(ws, "alice")
    assert again.opened == [] and len(again.firings) == 1 and ws.triggers() == []


def test_workspace_rules_file_tunes_thresholds(ws, tmp_path):
    _rm_after_raters(ws, tmp_path, before=3, after=1)  # 25%: quiet by default
    (ws.root / "triggers.yaml").write_text(
        textwrap.dedent(
            """
            rules:
              - id: rater_turnover
                play: 3
                condition: {type: rater_turnover, threshold: 0.2}
            """
        )
    )
    res = check_workspace_triggers(ws, "alice")
    assert res.rules_source.endswith("triggers.yaml") and _opened(res) == {("rater_turnover", 3)}


def test_deployed_model_prefers_the_promoted_one(ws, tmp_path):
    a = add(ws, tmp_path, "ppo-model", "a", {})
    add(ws, tmp_path, "decision", "d", {"decision": "promote", "model": a}, parents=[a])
    add(ws, tmp_path, "ppo-model", "b", {})
    arts = ws.artifacts()
    assert deployed_model(arts).id == a
    add(ws, tmp_path, "decision", "d2", {"decision": "reject"}, parents=[a])
    assert deployed_model(ws.artifacts()).id == a


def test_monitoring_follows_only_the_verified_decision_log(ws, tmp_path):
    """Finding 6: a promotion written into the database (not in the signed decision log) is not
    followed by monitoring; a log that fails verification stops it with the log's problem named."""
    from rlhfops.errors import UserError
    from rlhfops.monitor.facts import collect_facts
    from rlhfops.monitor.sources import resolve_model

    a = add(ws, tmp_path, "ppo-model", "a", {})
    b = add(ws, tmp_path, "ppo-model", "b", {})
    add(ws, tmp_path, "decision", "d", {"decision": "promote", "model": a, "log_seq": 1}, parents=[a])
    with pytest.raises(UserError, match="entry 1: missing from the log"):
        collect_facts(ws)  # a decision claiming a log entry the log lacks: named, not followed
    with pytest.raises(UserError, match="entry 1: missing from the log"):
        resolve_model(ws, None)
    ws2_arts = [x for x in ws.artifacts() if x.kind != "decision"]
    assert deployed_model(ws2_arts, trusted=set()).id == b
    assert deployed_model(ws.artifacts(), trusted=set()).id == b  # untrusted decisions are skipped


@BOTH_BACKENDS
def test_a_drift_rule_keeps_one_open_trigger_until_it_is_closed(ws, tmp_path):
    r1 = add(ws, tmp_path, "report", "drift1.json", {"monitor": "drift-report"})
    first = check_workspace_triggers(ws, "alice", report=drift_report(True, 0.05), report_id=r1)
    (opened,) = first.opened
    r2 = add(ws, tmp_path, "report", "drift2.json", {"monitor": "drift-report"})
    second = check_workspace_triggers(ws, "alice", report=drift_report(True, 0.05), report_id=r2)
    assert second.opened == [] and second.firings[0].open_trigger == opened.trigger_id
    assert len(ws.artifacts("prompts")) == 1  # no second comparison batch while the first is open
    ws.close_trigger(opened.trigger_id, "erin")
    third = check_workspace_triggers(ws, "alice", report=drift_report(True, 0.05), report_id=r2)
    assert [f.firing.rule_id for f in third.opened] == ["input_drift"]
    # edge cases are not state-like: a new failing id opens a new trigger even while one is open
    model = add(ws, tmp_path, "ppo-model", "ppo", {})
    _redteam(ws, tmp_path, "e1", model, 9, ["p1"])
    assert len(check_workspace_triggers(ws, "alice").opened) == 1
    _redteam(ws, tmp_path, "e2", model, 8, ["p1", "p2"])
    assert [f.firing.rule_id for f in check_workspace_triggers(ws, "alice").opened] == ["new_edge_case"]
