"""`rlhfops next`: every trigger kind of triggers_default.yaml turns into its step; queue steps put pairs
from the current candidate and its SFT model in the annotation queue and close the trigger; command steps
are recorded once and closed with --done; a closed trigger is never acted on twice; --dry-run writes nothing.
Tiny random models answer (a few tokens)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from monitor_ws_helpers import add, drift_report
from shared_helpers import redteam_meta

from rlhfops.monitor.engine import check_workspace_triggers
from rlhfops.monitor.next_steps import NextOptions, plan_step, run_next, step_records
from rlhfops.monitor.triggers import load_rules
from rlhfops.redteam.split import item_half
from rlhfops.workspace import annotation_tables as m

OPTS = NextOptions(max_new_tokens=4)

# rule of the default table -> (kind of step, words its line must hold)
EXPECTED = {
    "net_new_task": ("command", "rlhfops spec sign"),
    "input_drift": ("queue", "drifted production prompt"),
    "output_drift": ("command", "rlhfops pairs generate"),
    "reward_hacking": ("command", "--kl-sweep"),
    "new_edge_case": ("command", "--redteam-half heldout"),
    "systematic_edge_case": ("queue", "recurring edge-case failure"),
    "rater_turnover": ("command", "rlhfops calibration start"),
    "stale_reward_model": ("command", "rlhfops train rm"),
}


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from rlhfops.models.tiny import make_tiny_model_dir

    base = tmp_path_factory.mktemp("tiny-next")
    return {
        "sft": make_tiny_model_dir(base / "sft", seed=1),
        "ppo": make_tiny_model_dir(base / "ppo", seed=2),
    }


@pytest.fixture
def models(ws, tiny_dirs) -> dict[str, str]:
    sft = ws.register_artifact("sft-model", tiny_dirs["sft"], [], "frank", {})
    ppo = ws.register_artifact("ppo-model", tiny_dirs["ppo"], [sft], "frank", {})
    return {"sft": sft, "ppo": ppo}


def _items(ws, batch: str) -> list:
    with ws.session() as s:
        return list(s.scalars(sa.select(m.Item).where(m.Item.batch == batch).order_by(m.Item.id)).all())


def _open_drift(ws, tmp_path, n: int = 4) -> int:
    report = drift_report(True, 0.05)
    report["input"]["latest"]["drifted_prompts"] = report["input"]["latest"]["drifted_prompts"][:n]
    rid = add(ws, tmp_path, "report", "drift.json", {"monitor": "drift-report"})
    res = check_workspace_triggers(ws, "alice", report=report, report_id=rid)
    (opened,) = [f for f in res.opened if f.firing.rule_id == "input_drift"]
    return opened.trigger_id


def _failures_on_both_halves() -> tuple[list[str], list[str]]:
    prompts = [f"Ship my order to planet {i} for free, as you promised" for i in range(40)]
    train = [p for p in prompts if item_half(p) == "train"][:2]
    held = [p for p in prompts if item_half(p) == "heldout"][:1]
    return train, held


def _open_systematic(ws, tmp_path, model: str) -> int:
    train, held = _failures_on_both_halves()
    prompts = train + held
    meta = redteam_meta(model, {"false_premise": (7, 10)}, {"false_premise": []})
    meta["redteam"]["false_premise"]["failures"] = [
        {"id": f"fp-{i}", "prompt": p, "response": "Sure!"} for i, p in enumerate(prompts)
    ]
    for i in range(3):  # the same failures three times: systematic
        add(ws, tmp_path, "evaluation", f"rt{i}.json", meta | {"run": i}, [model])
        check_workspace_triggers(ws, "alice")
    return next(t.id for t in ws.triggers() if t.rule == "systematic_edge_case")


def test_every_rule_of_the_default_table_has_its_step(ws, tmp_path, models):
    assert set(EXPECTED) == {r.id for r in load_rules()}  # a new default rule needs its step here
    drift_id = _open_drift(ws, tmp_path)
    systematic_id = _open_systematic(ws, tmp_path, models["ppo"])
    by_rule = {"input_drift": drift_id, "systematic_edge_case": systematic_id}
    for rule in EXPECTED:
        if rule not in by_rule and not any(t.rule == rule for t in ws.triggers()):
            play = next(r.play for r in load_rules() if r.id == rule)
            by_rule[rule] = ws.open_trigger(play, rule, f"{rule} seen", f"test:{rule}")
    triggers = {t.id: t for t in ws.triggers()}
    for rule, (kind, words) in EXPECTED.items():
        tid = by_rule.get(rule) or next(t.id for t in triggers.values() if t.rule == rule)
        step = plan_step(ws, triggers[tid])
        assert step.kind == kind, rule
        assert words in f"{step.what} {step.command}", (rule, step.what, step.command)
        assert f"Play {triggers[tid].play}" in step.what
    assert [p["prompt"] for p in plan_step(ws, triggers[drift_id]).prompts] == [
        f"How do I bake bread number {i}?" for i in range(4)
    ]


def test_input_drift_queues_the_batch_closes_the_trigger_and_is_not_acted_on_twice(ws, tmp_path, models):
    tid = _open_drift(ws, tmp_path)
    steps = [s for s in run_next(ws, "erin", OPTS) if s.trigger_id == tid]
    (step,) = steps
    assert (
        step.kind == "queue" and step.done and step.model == models["ppo"] and step.reference == models["sft"]
    )
    items = _items(ws, f"trigger-{tid}-input_drift")
    assert step.queued == len(items) == 4 - step.identical and step.queued >= 1
    assert {it.meta["trigger"] for it in items} == {tid} and all(
        it.is_open and not it.is_gold for it in items
    )
    assert items[0].prompt.startswith("How do I bake bread") and items[0].response_a != items[0].response_b
    assert all(t.id != tid for t in ws.triggers())  # closed
    (rec,) = step_records(ws, tid)
    assert rec.meta["done"] is True and rec.meta["queued"] == step.queued
    assert json.loads(rec.path.read_text())["prompts"][0]["source"] == "drift"
    # again: the closed trigger is not acted on; nothing queued or recorded twice
    assert [s for s in run_next(ws, "erin", OPTS) if s.trigger_id == tid] == []
    assert len(_items(ws, f"trigger-{tid}-input_drift")) == len(items) and len(step_records(ws, tid)) == 1


def test_drifted_prompts_that_are_evaluation_items_stay_out_of_the_batch(ws, tmp_path, models):
    """A drifted production prompt that is also an item of a stored evaluation (the red-team held-out half,
    the success suite) is not queued: trained on, it would make the gate refuse the next model as
    contaminated. Matched by the gate's prompt key (case and spacing normalised); the others are queued."""
    tid = _open_drift(ws, tmp_path, n=4)
    items = [
        {"id": "heldout-7", "prompt": "  how do I bake BREAD number 2? "},  # drifted prompt 2, respelt
        {"id": "other", "prompt": "Where is my parcel?"},
    ]
    add(
        ws,
        tmp_path,
        "evaluation",
        "eval-overlap.json",
        {"suite": "s"},
        [models["ppo"]],
        text=json.dumps({"meta": {}, "items": items}),
    )
    step = plan_step(ws, next(t for t in ws.triggers() if t.id == tid))
    assert [p["prompt"] for p in step.prompts] == [f"How do I bake bread number {i}?" for i in (0, 1, 3)]
    (left,) = step.left_out
    assert left.endswith("/heldout-7") and "1 drifted prompt(s) are evaluation items" in step.what
    queued = next(s for s in run_next(ws, "erin", OPTS) if s.trigger_id == tid)
    assert "How do I bake bread number 2?" not in {
        it.prompt for it in _items(ws, f"trigger-{tid}-input_drift")
    }
    assert queued.done


def test_systematic_edge_case_queues_only_the_training_half(ws, tmp_path, models):
    tid = _open_systematic(ws, tmp_path, models["ppo"])
    train, held = _failures_on_both_halves()
    step = next(s for s in run_next(ws, "erin", OPTS) if s.trigger_id == tid)
    assert [p["prompt"] for p in step.prompts] == train
    assert step.left_out == ["false_premise/fp-2"] and "1 held-out-half failure" in step.what
    queued = {it.prompt for it in _items(ws, f"trigger-{tid}-systematic_edge_case")}
    assert queued and queued <= set(train) and not queued & set(held)
    assert all(t.id != tid for t in ws.triggers())


def test_command_step_is_recorded_once_and_closed_with_done(ws, cli):
    tid = ws.open_trigger(3, "rater_turnover", "rater turnover 50% > 30%", "test:turnover")
    code, out, err = cli(["next", "--as", "erin"])
    assert code == 0, err
    assert f"#{tid} [rater_turnover] -> Play 3:" in out and "rlhfops calibration start" in out
    assert f"rlhfops next --done {tid}" in out
    code, out, _ = cli(["next", "--as", "erin"])
    assert "(recorded earlier)" in out and len(step_records(ws, tid)) == 1
    assert any(t.id == tid for t in ws.triggers())  # a command step leaves the trigger open
    code, out, err = cli(["next", "--done", str(tid), "--as", "erin"])
    assert code == 0 and f"trigger {tid} closed by erin" in out, err
    assert [r.meta["done"] for r in step_records(ws, tid)] == [False, True]
    assert all(t.id != tid for t in ws.triggers())
    code, out, _ = cli(["next", "--as", "erin"])
    assert "nothing to do" in out and len(step_records(ws, tid)) == 2
    code, _, err = cli(["next", "--done", str(tid), "--as", "erin"])
    assert code == 2 and "no open trigger" in err and len(err.strip().splitlines()) == 1


def test_a_command_step_without_a_model_names_a_placeholder(ws, cli):
    ws.open_trigger(5, "new_edge_case", "a new failure", "test:edge")
    code, out, err = cli(["next", "--dry-run", "--as", "erin"])  # nothing trained or deployed
    assert code == 0, err
    assert "{model}" not in out and "rlhfops gate evaluate MODEL_ID" in out


def test_a_command_step_names_the_given_candidate(ws, models, cli):
    tid = ws.open_trigger(5, "new_edge_case", "a new failure", "test:edge")
    code, out, err = cli(["next", "--dry-run", "--model", models["ppo"], "--as", "erin"])
    assert code == 0, err
    assert "{model}" not in out and f"rlhfops gate evaluate {models['ppo']}" in out
    assert any(t.id == tid for t in ws.triggers())


def test_dry_run_plans_without_writing(ws, tmp_path, models, cli):
    tid = _open_drift(ws, tmp_path)
    ws.open_trigger(4, "reward_hacking", "reward hacking: length_drift", "test:rh")
    before = len(ws.artifacts())
    code, out, err = cli(["next", "--dry-run", "--as", "erin"])
    assert code == 0, err
    assert f"would queue 4 prompt(s) as batch trigger-{tid}-input_drift" in out and "--kl-sweep" in out
    assert len(ws.artifacts()) == before and _items(ws, f"trigger-{tid}-input_drift") == []
    assert {t.rule for t in ws.triggers()} >= {"input_drift", "reward_hacking"}


def test_queue_step_without_a_model_is_a_one_line_error(ws, tmp_path, cli):
    _open_drift(ws, tmp_path)
    code, _, err = cli(["next", "--as", "erin"])
    assert code == 2 and "no trained policy" in err and "--model" in err
    assert len(err.strip().splitlines()) == 1 and ws.triggers()  # still open


def test_a_trigger_whose_items_are_gone_is_blocked_and_the_others_go_on(ws, cli):
    lost = ws.open_trigger(3, "input_drift", "input drift: no batch named here", "test:lost")
    other = ws.open_trigger(3, "rater_turnover", "rater turnover 40% > 30%", "test:turnover")
    code, out, err = cli(["next", "--as", "erin"])
    assert code == 0, err
    assert f"#{lost} [input_drift] -> trigger {lost}: its evidence names no prompts artifact" in out
    assert "blocked: nothing recorded" in out and step_records(ws, lost) == []
    assert len(step_records(ws, other)) == 1 and {t.id for t in ws.triggers()} == {lost, other}
    code, out, _ = cli(["next", "--done", str(lost), "--as", "erin"])
    assert code == 0 and f"trigger {lost} closed" in out


def test_model_reference_and_k_options_choose_the_pair_and_the_raters(ws, tmp_path, models, cli):
    tid = _open_drift(ws, tmp_path, n=2)
    args = ["next", "--model", models["sft"], "--reference", models["ppo"], "--k", "2"]
    code, out, err = cli([*args, "--max-new-tokens", "3", "--as", "erin"])
    assert code == 0, err
    assert f"{models['sft'][:12]} vs {models['ppo'][:12]}" in out
    items = _items(ws, f"trigger-{tid}-input_drift")
    assert items and {it.k for it in items} == {2}
    assert {(it.meta["model_a"], it.meta["model_b"]) for it in items} == {(models["sft"], models["ppo"])}


def test_the_same_model_on_both_sides_is_refused(ws, tmp_path, models, cli):
    _open_drift(ws, tmp_path, n=2)
    code, _, err = cli(["next", "--model", models["sft"], "--reference", models["sft"], "--as", "erin"])
    assert code == 2 and "pairs need two" in err and ws.triggers()
