"""Trigger table: each default rule fires on its case and stays quiet otherwise; YAML tuning; errors."""

from __future__ import annotations

import textwrap

import pytest

from rlhfops.errors import ConfigError
from rlhfops.monitor.outputs import MetricDrift
from rlhfops.monitor.triggers import (
    CONDITIONS,
    DriftedPrompt,
    EdgeCaseFailure,
    MonitorSnapshot,
    drifted_prompts_from_report,
    evaluate_triggers,
    load_rules,
)


def _fired(snapshot, rules=None):
    return {(f.rule_id, f.play) for f in evaluate_triggers(snapshot, rules)}


def _metric(name, drifted):
    return MetricDrift(name, "ks_2samp", 0.3, 0.001, 0.003 if drifted else 0.6, drifted, 0.0, 1.0)


def test_quiet_snapshot_fires_nothing():
    calm = MonitorSnapshot(
        output_drift=[_metric("reward", False)],
        rater_turnover=0.1,
        reward_model_age_days=10,
        reward_model_refresh_days=90,
    )
    assert evaluate_triggers(calm) == []


CASES = [
    (
        "net_new_task",
        1,
        MonitorSnapshot(net_new_task=True, net_new_task_note="invoice disputes"),
        MonitorSnapshot(),
    ),
    (
        "input_drift",
        3,
        MonitorSnapshot(input_drifted=True, drifted_prompts=[DriftedPrompt("How do I bake bread?", "r7")]),
        MonitorSnapshot(input_drifted=False, drifted_prompts=[DriftedPrompt("x")]),
    ),
    (
        "output_drift",
        3,
        MonitorSnapshot(output_drift=[_metric("reward", True), _metric("length", False)]),
        MonitorSnapshot(output_drift=[_metric("reward", False)]),
    ),
    (
        "reward_hacking",
        4,
        MonitorSnapshot(reward_hacking_alarms=["reward up, judge win rate down"]),
        MonitorSnapshot(),
    ),
    (
        "new_edge_case",
        5,
        MonitorSnapshot(edge_case_failures=[EdgeCaseFailure("ec1", "empty order id", 1)]),
        MonitorSnapshot(edge_case_failures=[]),
    ),
    (
        "systematic_edge_case",
        3,
        MonitorSnapshot(edge_case_failures=[EdgeCaseFailure("ec1", "empty order id", 3)]),
        MonitorSnapshot(edge_case_failures=[EdgeCaseFailure("ec1", "empty order id", 2)]),
    ),
    ("rater_turnover", 3, MonitorSnapshot(rater_turnover=0.31), MonitorSnapshot(rater_turnover=0.30)),
    (
        "stale_reward_model",
        3,
        MonitorSnapshot(reward_model_age_days=91, reward_model_refresh_days=90),
        MonitorSnapshot(reward_model_age_days=90, reward_model_refresh_days=90),
    ),
]


@pytest.mark.parametrize("rule_id,play,positive,negative", CASES, ids=[c[0] for c in CASES])
def test_each_default_rule_fires_and_stays_quiet(rule_id, play, positive, negative):
    assert (rule_id, play) in _fired(positive)
    assert rule_id not in {r for r, _ in _fired(negative)}


def test_default_table_covers_every_rule_and_play():
    rules = load_rules()
    assert {r.id: r.play for r in rules} == {c[0]: c[1] for c in CASES}


def test_input_drift_payload_carries_the_prompts():
    prompts = [DriftedPrompt(f"prompt {i}", f"id{i}") for i in range(80)]
    (firing,) = evaluate_triggers(
        MonitorSnapshot(input_drifted=True, drifted_prompts=prompts, input_drift_evidence="AUC 0.7")
    )
    batch = firing.payload["comparison_batch"]
    assert len(batch) == 50 and batch[0] == {"id": "id0", "prompt": "prompt 0"}
    assert firing.payload["n_drifted_prompts"] == 80
    assert "AUC 0.7" in firing.evidence and firing.payload["play_name"] == "preferences + reward model"


def test_reward_hacking_payload_says_recalibrate_kl():
    (firing,) = evaluate_triggers(MonitorSnapshot(reward_hacking_alarms=["length exploit"]))
    assert (
        firing.play == 4
        and "KL" in firing.payload["action"]
        and firing.payload["alarms"] == ["length exploit"]
    )


def test_systematic_edge_case_fires_play_5_and_3():
    snap = MonitorSnapshot(edge_case_failures=[EdgeCaseFailure("a", "x", 4), EdgeCaseFailure("b", "y", 1)])
    firings = {f.rule_id: f for f in evaluate_triggers(snap)}
    assert set(firings) == {"new_edge_case", "systematic_edge_case"}
    assert [e["id"] for e in firings["new_edge_case"].payload["edge_cases"]] == ["a", "b"]
    assert [e["id"] for e in firings["systematic_edge_case"].payload["edge_cases"]] == ["a"]


def test_custom_thresholds_from_yaml_change_the_outcome(tmp_path):
    path = tmp_path / "team.yaml"
    path.write_text(
        textwrap.dedent(
            """
            rules:
              - id: rater_turnover
                description: stricter
                play: 3
                condition: {type: rater_turnover, threshold: 0.15}
              - id: systematic_edge_case
                play: 3
                condition: {type: edge_case_failure, min_occurrences: 2}
              - id: stale_reward_model
                play: 3
                condition: {type: reward_model_age, slack_days: 30, default_refresh_days: 60}
              - id: reward_hacking
                play: 4
                enabled: false
                condition: {type: reward_hacking, min_alarms: 1}
            """
        )
    )
    rules = load_rules(path)
    snap = MonitorSnapshot(
        rater_turnover=0.2,
        edge_case_failures=[EdgeCaseFailure("e", "d", 2)],
        reward_model_age_days=80,
        reward_hacking_alarms=["x"],
    )
    assert _fired(snap) == {("new_edge_case", 5), ("reward_hacking", 4)}  # defaults
    assert _fired(snap, rules) == {("rater_turnover", 3), ("systematic_edge_case", 3)}
    old = MonitorSnapshot(reward_model_age_days=91)
    assert _fired(old, rules) == {("stale_reward_model", 3)}  # 91 > 60 + 30, spec interval missing
    assert _fired(old) == set()  # default table needs the spec's interval


@pytest.mark.parametrize(
    "rule_yaml,message",
    [
        ("{id: r1, play: 3, condition: {type: vibes}}", "rule 'r1': unknown condition type 'vibes'"),
        (
            "{id: r2, play: 3, condition: {type: rater_turnover}}",
            "rule 'r2': condition 'rater_turnover' needs parameter 'threshold'",
        ),
        (
            "{id: r3, play: 3, condition: {type: rater_turnover, threshold: 0.3, limit: 1}}",
            "rule 'r3': condition 'rater_turnover' has unknown parameter",
        ),
        ("{id: r4, play: 7, condition: {type: net_new_task}}", "rule 'r4': play=7"),
        (
            "{id: r5, play: 3, condition: {type: rater_turnover, threshold: high}}",
            "rule 'r5': parameter 'threshold'='high'",
        ),
        (
            "{id: r6, play: 3, condition: {type: input_drift, max_prompts: true}}",
            "rule 'r6': parameter 'max_prompts'=True",
        ),
        ("{id: r7, play: 3, when: x, condition: {type: net_new_task}}", "rule 'r7': unknown key"),
        ("{play: 3, condition: {type: net_new_task}}", "rule #1: missing 'id'"),
        ("{id: r9, play: 3}", "rule 'r9': missing 'condition'"),
    ],
)
def test_bad_rules_name_file_and_rule(tmp_path, rule_yaml, message):
    path = tmp_path / "bad.yaml"
    path.write_text(f"rules:\n  - {rule_yaml}\n")
    with pytest.raises(ConfigError) as err:
        load_rules(path)
    assert str(path) in str(err.value) and message in str(err.value)
    assert "\n" not in str(err.value)


def test_duplicate_ids_missing_file_and_bad_yaml(tmp_path):
    dup = tmp_path / "dup.yaml"
    dup.write_text(
        "rules:\n"
        "  - {id: a, play: 1, condition: {type: net_new_task}}\n"
        "  - {id: a, play: 1, condition: {type: net_new_task}}\n"
    )
    with pytest.raises(ConfigError, match="'a' is defined twice"):
        load_rules(dup)
    with pytest.raises(ConfigError, match="not found"):
        load_rules(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules: [\n")
    with pytest.raises(ConfigError, match=r"broken.yaml:\d+: not valid YAML"):
        load_rules(broken)


def test_registry_is_closed_and_prompts_helper():
    assert set(CONDITIONS) == {
        "net_new_task",
        "input_drift",
        "output_drift",
        "reward_hacking",
        "edge_case_failure",
        "rater_turnover",
        "reward_model_age",
    }
    got = drifted_prompts_from_report([2, 0], ["a", "b", "c"], ["i0", "i1", "i2"])
    assert got == [DriftedPrompt("c", "i2"), DriftedPrompt("a", "i0")]
