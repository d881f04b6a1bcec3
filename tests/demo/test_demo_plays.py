"""`rlhfops demo` end to end on a tiny random model: every play's artifacts with lineage, SIMULATED marks,
the gate decision in the decision log, triggers raised by the drifted week, and the report in Chromium."""

from __future__ import annotations

import contextlib
import io
import json
from collections import Counter

import pytest

from rlhfops.cli.main import main
from rlhfops.demo.plays import DemoSettings, run_demo_plays
from rlhfops.errors import UserError


def _tiny_settings(tiny) -> DemoSettings:
    return DemoSettings(
        model=str(tiny),
        sft_steps=2,
        sft_batch_size=3,
        sft_learning_rate=7e-5,
        rm_steps=2,
        dpo_steps=2,
        r2_dpo_steps=3,
        r2_dpo_learning_rate=3e-5,
        r2_batch_size=2,
        r2_rpo_alpha=0.5,
        r2_failures_per_category=3,
        ppo_steps=2,
        batch_size=4,
        max_length=400,
        pair_prompts=8,
        shipped_pairs=12,
        gold_pairs=8,
        heldout=6,
        max_new_tokens=8,
        per_day=30,
        redteam_per_category=2,
        progress=False,
    )


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The tiny-model demo, run once for the whole module the way a user runs it: `rlhfops demo --quick
    --model TINY --dir WS --force` over an earlier demo's directory (settings shrunk for the test through
    DemoSettings.for_mode). ``run.out`` is what the command printed, ``run.lines`` the narration."""
    import rlhfops.cli.demo as cli_demo
    from rlhfops.demo.narrate import set_sink
    from rlhfops.models.tiny import make_tiny_model_dir

    tmp = tmp_path_factory.mktemp("demo")
    tiny = make_tiny_model_dir(tmp / "tiny")
    ws = tmp / "ws"
    ws.mkdir()
    (ws / "old").write_text("x")  # an earlier demo's file: --force replaces the directory
    (ws / ".rlhfops-demo").write_text("an earlier demo\n")
    runs, lines = [], []

    def run_and_keep(*args, **kwargs):  # the real run; the test keeps what it returned
        runs.append(run_demo_plays(*args, **kwargs))
        return runs[-1]

    def narrate(line: str) -> None:
        lines.append(line)
        print(line)

    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(DemoSettings, "for_mode", classmethod(lambda cls, q, m=None, p=True: _tiny_settings(m)))
        mp.setattr(cli_demo, "run_demo_plays", run_and_keep)
        mp.setenv("COLUMNS", "220")
        set_sink(narrate)
        try:
            with contextlib.redirect_stdout(printed):
                main(["demo", "--quick", "--model", str(tiny), "--dir", str(ws), "--force"])
        finally:
            set_sink(print)
    (run,) = runs
    run.lines = lines
    run.out = printed.getvalue()
    run.dir_given = ws
    return run


def test_demo_narrates_each_play_purpose_and_finding(demo_run):
    from rlhfops.demo.plays import PURPOSES

    text = "\n".join(demo_run.lines)
    for name, purpose in PURPOSES.items():
        assert purpose in text, name
    assert sum(line.startswith("[play 3]   -> calibration: round 1") for line in demo_run.lines) == 1
    assert any("Krippendorff's alpha" in line for line in demo_run.lines)


def test_demo_calibration_tightens_the_guidelines_and_passes_min_agreement(demo_run):
    """Round one's preferences pass the spec's min_agreement after a failed round under vague guidelines;
    no override of the Play 3 gate (reward model, DPO) was recorded."""
    ann = demo_run.summary["annotation"]
    rounds = ann["calibration_rounds"]
    assert rounds[0]["status"] == "failed" and rounds[0]["guidelines"].startswith("vague")
    assert rounds[-1]["status"] == "passed" and rounds[-1]["guidelines"].startswith("tightened")
    assert rounds[-1]["overall_agreement"] > rounds[0]["overall_agreement"]
    assert ann["alpha"] >= ann["min_agreement"] == 0.6
    assert not [n for n in demo_run.summary["notes"] if n.startswith(("OVERRIDE rm", "OVERRIDE dpo"))]


def test_demo_evaluations_are_the_artifacts_eval_run_writes(demo_run, monkeypatch, capsys):
    """`rlhfops eval run` with the same options on the DPO model writes the same evaluation (meta, items)."""
    from rlhfops.workspace import Workspace

    root = demo_run.out_dir
    s = demo_run.summary
    row = next(r for r in s["criteria"] if r["model"] == "dpo")
    ws = Workspace.open(root)
    try:
        demo_ev = json.loads(ws.artifact(row["evaluations"][0]).path.read_text())
    finally:
        ws.close()
    monkeypatch.setenv("RLHFOPS_WORKSPACE", str(root))
    monkeypatch.setenv("RLHFOPS_USER", "demo-grace")
    args = ["eval", "run", s["artifacts"]["dpo"], "--suite", str(root / "data" / "heldout-suite.jsonl")]
    args += [
        "--baseline",
        s["settings"]["model"],
        "--judge",
        "policy",
        "--reference",
        s["runs"]["sft"] + "/final",
    ]
    args += [
        "--max-new-tokens",
        str(s["settings"]["max_new_tokens"]),
        "--kl-prompts",
        str(s["settings"]["heldout"]),
    ]
    main([*args, "--json"])
    out = json.loads(capsys.readouterr().out)
    ws = Workspace.open(root)
    try:
        user_ev = json.loads(ws.artifact(out["artifact"]).path.read_text())
    finally:
        ws.close()
    assert user_ev["meta"] == demo_ev["meta"]
    assert user_ev["items"] == demo_ev["items"]
    assert (
        demo_ev["meta"]["success_criteria"]["apologises and offers a remedy when the shop is at fault"][
            "detector"
        ]
        == "policy-judge"
    )
    assert demo_ev["meta"]["win_rate"]["judge"] == "policy"
    # and the red-team evaluation: `eval run DPO --suite redteam --limit N --baseline BASE --kl-prompts 0`
    rt = ["eval", "run", s["artifacts"]["dpo"], "--suite", "redteam", "--baseline", s["settings"]["model"]]
    rt += ["--limit", str(s["settings"]["redteam_per_category"]), "--kl-prompts", "0"]
    main([*rt, "--max-new-tokens", str(s["settings"]["max_new_tokens"]), "--json"])
    out = json.loads(capsys.readouterr().out)
    ws = Workspace.open(root)
    try:
        user_rt = json.loads(ws.artifact(out["artifact"]).path.read_text())
        demo_rt = json.loads(ws.artifact(row["evaluations"][1]).path.read_text())
    finally:
        ws.close()
    assert user_rt["meta"] == demo_rt["meta"] and user_rt["items"] == demo_rt["items"]
    assert demo_rt["meta"]["kind"] == "redteam" and demo_rt["items"]


def test_demo_report_shows_replies_side_by_side_escaped(demo_run):
    html = (demo_run.out_dir / "report.html").read_text()
    sec = html[html.index('<section id="demo-side-by-side">') :]
    sec = sec[: sec.index("</section>")]
    ex = demo_run.summary["examples"][0]
    import html as h

    assert h.escape(ex["prompt"]) in sec and sec.count("<tr>") >= 1 + len(demo_run.summary["examples"])
    assert "<script" not in sec


def test_demo_every_play_has_artifacts_with_lineage(demo_run):
    from rlhfops.workspace import Workspace

    ws = Workspace.open(demo_run.out_dir)
    try:
        spec = ws.current_spec()
        assert spec.is_signed_and_current
        assert ws.baseline_values()["task_completion_rate"] == pytest.approx(0.72)
        kinds = {a.kind for a in ws.artifacts()}
        for kind in ("sft-model", "preferences", "reward-model", "dpo-model", "ppo-model", "evaluation"):
            assert kind in kinds, kind
        ids = demo_run.summary["artifacts"]
        assert len([n for n in ids if n.startswith("ppo-beta")]) == 2  # the KL sweep: one policy per value
        lineage = {a.id for a in ws.lineage(ids["dpo"])}
        assert {ids["sft"], spec.hash} <= lineage or ids["sft"] in lineage
        assert ids["preferences"] in lineage  # DPO trained on the exported simulated preferences
        ppo_lineage = {a.id for a in ws.lineage(ids["ppo-beta0.2"])}
        assert ids["rm"] in ppo_lineage and ids["sft"] in ppo_lineage
        for name in ("sft", "dpo", "ppo-beta0.02", "ppo-beta0.2"):  # every policy evaluated (play 4 rule)
            assert [c for c in ws.children(ids[name]) if c.kind == "evaluation"], name
        assert ws.people_with_role("gate-owner") == ["demo-gina"]
        assert all(name.startswith(("demo-", "sim-")) for name, _ in ws.people())
    finally:
        ws.close()


def test_demo_report_finds_every_trained_models_training_metrics(demo_run):
    """The gate report's training section reads each model's metrics.jsonl: the KL sweep's PPO runs
    (runs/ppo-sweep/beta-X/, one level deeper than the other stages) are found through their recorded
    run directory, not reported as 'no training metrics found for this model'."""
    from rlhfops.report.data import find_metrics
    from rlhfops.workspace import Workspace

    ws = Workspace.open(demo_run.out_dir)
    try:
        ids = demo_run.summary["artifacts"]
        for name in ("sft", "rm", "dpo", "ppo-beta0.02", "ppo-beta0.2"):
            assert find_metrics(ws, ws.artifact(ids[name])) is not None, name
    finally:
        ws.close()


def test_demo_sft_settings_reach_the_sft_run(demo_run):
    """SFT has its own batch and learning rate (the other stages keep batch_size); so has round two's DPO."""
    import yaml

    sft = yaml.safe_load((demo_run.out_dir / "runs" / "sft" / "config.yaml").read_text())
    rm = yaml.safe_load((demo_run.out_dir / "runs" / "rm" / "config.yaml").read_text())
    assert (sft["batch_size"], sft["learning_rate"], sft["max_steps"]) == (3, 7e-5, 2)
    assert rm["batch_size"] == 4
    r2 = yaml.safe_load((demo_run.out_dir / "runs" / "dpo-r2" / "config.yaml").read_text())
    # round two's own DPO settings
    assert (r2["max_steps"], r2["learning_rate"], r2["batch_size"], r2["rpo_alpha"]) == (3, 3e-5, 2, 0.5)


def test_demo_trains_without_gradient_checkpointing(demo_run):
    """DemoSettings.gradient_checkpointing (off: the demo's batches fit without it, and it costs ~20% per
    step) reaches every training run of both rounds, PPO's included; the product's default is selective."""
    import yaml

    from rlhfops.train.config import SFTConfig

    assert SFTConfig.model_fields["gradient_checkpointing"].default == "selective"
    configs = sorted((demo_run.out_dir / "runs").glob("**/config.yaml"))
    stages = {yaml.safe_load(c.read_text())["stage"] for c in configs}
    assert {"sft", "rm", "dpo", "ppo"} <= stages, stages
    for c in configs:
        assert yaml.safe_load(c.read_text())["gradient_checkpointing"] is False, c


def test_demo_train_passes_its_gradient_checkpointing_setting(monkeypatch, tmp_path):
    """The other side: a demo set to selective checkpointing trains with it."""
    import rlhfops.demo.plays as plays

    seen = []
    monkeypatch.setattr(plays, "run_stage", lambda stage, cfg, overrides: seen.append(overrides))
    monkeypatch.setattr(plays, "_override_if_blocked", lambda *a: None)

    class Ws:
        root = tmp_path

    for value, expected in (
        ("selective", "gradient_checkpointing=selective"),
        (False, "gradient_checkpointing=false"),
    ):
        plays._train(Ws(), "sft", "demo-dave", {"data": "d"}, DemoSettings(gradient_checkpointing=value), [])
        assert expected in seen[-1]


def test_demo_simulated_marks_everywhere(demo_run):
    root = demo_run.out_dir
    prefs = [json.loads(x) for x in (root / "data" / "preferences.jsonl").read_text().splitlines()]
    week = [json.loads(x) for x in (root / "data" / "production-week.jsonl").read_text().splitlines()]
    assert prefs and all(r["n_labels"] >= 1 for r in prefs)
    from rlhfops.annotate.queue import rater_labels
    from rlhfops.workspace import Workspace

    ws = Workspace.open(root)  # the raters labelled through the annotation service (the web app's path)
    try:
        raters = [n for n, role in ws.people() if role == "rater"]
        assert raters and all(n.startswith("sim-") for n in raters)
        assert any("drifting" in n for n in raters)
        assert all(rater_labels(ws, n) for n in raters)
    finally:
        ws.close()
    assert week and all(r["simulated"] is True for r in week)
    s = demo_run.summary
    assert "SIMULATED" in s["annotation"]["note"] and s["monitoring"]["simulated"] is True
    assert s["annotation"]["calibration"]["status"] in ("passed", "failed")
    assert "SIMULATED" in (root / "report.html").read_text()


def test_demo_gate_decision_recorded_and_triggers_raised(demo_run):
    from rlhfops.gate import log as dlog
    from rlhfops.workspace import Workspace

    g = demo_run.summary["gate"]
    ws = Workspace.open(demo_run.out_dir)
    try:
        assert dlog.verify(ws).ok
        entries = dlog.entries(ws)
        signs = [e for e in entries if e.get("action") == "sign" and e.get("model") == g["model_id"]]
        assert signs and signs[-1].get("person") == "demo-gina"
        assert signs[-1].get("decision") == g["decision"]
        # the decision follows the thresholds: approve only when none failed
        assert (g["decision"] == "approve") == (not g["failed"])
        rules = {t.rule for t in ws.triggers(open_only=False)}  # round two closes them
    finally:
        ws.close()
    assert "input_drift" in rules  # the drifted week (prompts from another task) was detected
    windows = demo_run.summary["monitoring"]["triggers"]
    assert any(t["rule"] == "input_drift" and t["play"] == 3 for t in windows)


def test_demo_says_the_chosen_candidates_change_over_the_base(demo_run):
    """One rule (rlhfops.gate.choose) picks round one's candidate: the gate step, the printed result and
    round two all name the same model; the change is its rate minus the base's, against the target."""
    from rlhfops.gate.choose import Standing, choose

    s = demo_run.summary
    rows = {r["model"]: r for r in s["criteria"]}
    change, choice = s["behaviour_change"], s["choice"]
    assert change["best"] == choice["model"] == s["gate"]["candidate"] == s["rounds"]["round2"]["round1_best"]
    ranking = [Standing(**{**r, "failed": tuple(r["failed"]), "missing": tuple(r["missing"])})
               for r in choice["ranking"]]  # fmt: skip
    assert choose(ranking, choice["criterion"]).model == change["best"]  # the ranking re-decides the same
    assert {r["model"] for r in choice["ranking"]} == {n for n in rows if n.startswith(("ppo-", "dpo"))}
    assert change["rate"] == rows[change["best"]]["apology_remedy_rate"]
    assert change["base"] == rows["base"]["apology_remedy_rate"]
    assert change["points"] == pytest.approx(100 * (change["rate"] - change["base"]))
    assert change["target_points"] == 25.0 and change["meets_target"] == (change["points"] >= 25 - 1e-9)
    assert any(f"chosen candidate {change['best']}:" in line for line in demo_run.lines)
    verdict = "is met)" if change["meets_target"] else "is not met)"
    assert f"Result: chosen candidate {change['best']} " in demo_run.out and verdict in demo_run.out
    # the main criterion counts only the held-out prompts where the shop is at fault
    suite = demo_run.out_dir / "data" / "heldout-suite.jsonl"
    held = [json.loads(x) for x in suite.read_text().splitlines()]
    at_fault = sum("criteria" not in r for r in held if "id" in r)
    assert 0 < at_fault < len(held) - 1 and all(r["n"] == at_fault for r in rows.values())


def test_demo_criteria_for_every_model_with_kl(demo_run):
    rows = {r["model"]: r for r in demo_run.summary["criteria"]}
    assert set(rows) == {"base", "sft", "dpo", "ppo-beta0.02", "ppo-beta0.2"}
    assert rows["base"]["kl"] == 0.0 and rows["base"]["win_rate_vs_base"] is None
    assert rows["base"]["apology_remedy_ci"] is not None
    for name in ("sft", "dpo", "ppo-beta0.2"):
        r = rows[name]
        assert r["kl_reference"] in ("base", "sft") and r["judge"] == "policy"
        assert 0.0 <= r["apology_remedy_ci"][0] <= r["apology_remedy_rate"] <= r["apology_remedy_ci"][1] <= 1
        assert 0.0 <= r["win_rate_ci"][0] <= r["win_rate_vs_base"] <= r["win_rate_ci"][1] <= 1.0
        assert r["kl"] >= 0 and r["kl_note"] == "nats per reply, summed k3 estimator, never negative"
    html = (demo_run.out_dir / "report.html").read_text()
    crit = html[html.index('<section id="demo-criteria">') :]
    assert "KL (nats per reply, summed k3 estimator, never negative)" in crit[: crit.index("</section>")]
    assert "k3" in demo_run.out  # the printed table's KL column names its estimator


def test_demo_refuses_non_empty_dir(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(UserError, match="not empty"):
        run_demo_plays(tmp_path, quick=True)
    assert (tmp_path / "keep.txt").exists()
    with pytest.raises(UserError, match="not made by `rlhfops demo`"):  # --force never deletes other work
        run_demo_plays(tmp_path, quick=True, force=True)
    assert (tmp_path / "keep.txt").exists()


def test_demo_cli_on_tiny_model(demo_run):
    """`rlhfops demo --quick --model TINY --force` (the module's run) prints the summary table, and --force
    replaced the earlier demo's directory."""
    out, ws = demo_run.out, demo_run.out_dir
    assert ws == demo_run.dir_given.resolve()
    assert "apologises + remedy" in out and "ppo-beta0.2" in out and "trigger" in out
    assert "[play 3] " in out and "Result" in out
    assert "[round 2] " in out and "Round 2 gate (held-out half): dpo-r2 -> " in out
    assert (ws / "report.html").exists() and not (ws / "old").exists()
    assert (ws / ".rlhfops-demo").read_text() != "an earlier demo\n"  # the marker is the new demo's
    # it ends with where the runs are and held-out replies before and after
    assert f"runs: {ws / 'runs'}" in out
    assert out.count("held-out prompt: ") == 3 and out.count("before (base): ") == 3 and "after (" in out


@pytest.mark.browser
def test_demo_report_in_chromium(demo_run, check_report):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium")
        try:
            check_report(browser.new_page(), demo_run.out_dir / "report.html")
        finally:
            browser.close()


# ---- round two (issue 19, points 3 and 5) --------------------------------------------------------------


def test_demo_round_two_runs_and_gates_again(demo_run):
    """Both rounds ran: the round-two candidate continued from round one's best candidate on the refreshed
    preferences, was gated with the same thresholds, and the decision follows them."""
    from rlhfops.demo.round2 import R2
    from rlhfops.workspace import Workspace

    rounds = demo_run.summary["rounds"]
    r2 = rounds["round2"]
    best = r2["round1_best"]
    assert best == (demo_run.summary["gate"]["promoted"] or demo_run.summary["gate"]["candidate"])
    assert [(r["round"], r["model"]) for r in rounds["table"]] == [(1, "base"), (1, best), (2, R2)]
    g = r2["gate"]
    assert g["candidate"] == R2 and g["signed_by"] == "demo-gina"
    assert (g["decision"] == "approve") == (not g["failed"])
    ids = demo_run.summary["artifacts"]
    ws = Workspace.open(demo_run.out_dir)
    try:
        # DPO continued from round one's best on both rounds' pairs (DemoSettings.r2_pairs "both")
        lineage = {a.id for a in ws.lineage(ids[R2])}
        assert {ids[best], ids["preferences-r2"]} <= lineage and ids["preferences-r2-new"] not in lineage
        new = ws.artifact(ids["preferences-r2-new"])
        assert new.meta["batches"] == sorted(r2["labels"]["new_batches"])
        assert "round-2-redteam-train" in new.meta["batches"]
        rm2 = {a.id for a in ws.lineage(ids["rm-r2"])}  # the reward model refreshed on both rounds
        assert ids["preferences-r2"] in rm2 and ids["preferences-r2"] != ids["preferences"]
        both = ws.artifact(ids["preferences-r2"]).path.read_text().splitlines()
        one = ws.artifact(ids["preferences"]).path.read_text().splitlines()
        this = new.path.read_text().splitlines()
        assert len(both) > len(one) and 0 < len(this) < len(both)
        prompts_one = {json.loads(x)["prompt"] for x in one}
        assert not prompts_one & {json.loads(x)["prompt"] for x in this}
    finally:
        ws.close()


def test_demo_next_turns_each_trigger_into_its_step_and_closes_it(demo_run):
    """`rlhfops next` ran for every trigger the week opened: the drift and systematic edge-case triggers
    queued their batches and were closed; the new-edge-case trigger named its command and was marked done
    once round two re-ran the gate on the held-out half."""
    import sqlalchemy as sa

    from rlhfops.monitor.next_steps import step_records
    from rlhfops.workspace import Workspace
    from rlhfops.workspace import annotation_tables as m

    r2 = demo_run.summary["rounds"]["round2"]
    steps = {s["rule"]: s for s in r2["next"]}
    opened = {t["id"] for t in demo_run.summary["monitoring"]["open_triggers"]}
    assert {s["trigger_id"] for s in r2["next"]} == opened
    assert steps["input_drift"]["kind"] == "queue" and steps["input_drift"]["queued"] > 0
    assert steps["systematic_edge_case"]["kind"] == "queue"
    assert (
        steps["new_edge_case"]["kind"] == "command"
        and "--redteam-half heldout" in steps["new_edge_case"]["command"]
    )
    ws = Workspace.open(demo_run.out_dir)
    try:
        assert not ws.triggers(open_only=True)  # every step was done: queued, or carried out by round two
        for s in r2["next"]:
            assert step_records(ws, s["trigger_id"]), s["rule"]
            if s["kind"] == "queue" and s["queued"]:
                with ws.session() as sess:
                    n = sess.scalar(
                        sa.select(sa.func.count()).select_from(m.Item).where(m.Item.batch == s["batch"])
                    )
                assert n == s["queued"]
    finally:
        ws.close()
    assert r2["closed_after_round"] == [steps["new_edge_case"]["trigger_id"]]
    lines = [x for x in demo_run.lines if x.startswith("[round 2]   -> #")]
    assert len(lines) == len(opened)  # one line per trigger


def test_demo_round_two_failure_pairs_come_from_the_train_half_only(demo_run):
    from rlhfops.demo.experts import expert_reply, written_replies
    from rlhfops.redteam.split import item_half
    from rlhfops.workspace import Workspace

    r2 = demo_run.summary["rounds"]["round2"]
    pairs = r2["failure_pairs"]
    assert pairs and all(p["half"] == "train" and item_half(p["prompt"]) == "train" for p in pairs)
    ws = Workspace.open(demo_run.out_dir)
    try:
        ev = ws.artifact(r2["train_eval"])
        assert ev.meta["redteam_half"] == "train"
        per_cat = Counter(it["category"] for it in json.loads(ev.path.read_text())["items"])
        assert set(per_cat.values()) == {3}  # r2_failures_per_category: the first 3 of each category
        with ws.session() as sess:
            import sqlalchemy as sa

            from rlhfops.workspace import annotation_tables as m

            items = sess.scalars(sa.select(m.Item).where(m.Item.batch == "round-2-redteam-train")).all()
            queued = [(i.prompt, i.response_a) for i in items]
            edge = [s for s in r2["next"] if s["rule"] == "systematic_edge_case"][0]
            edge_items = sess.scalars(sa.select(m.Item).where(m.Item.batch == edge["batch"])).all()
            edge_prompts = [i.prompt for i in edge_items]
    finally:
        ws.close()
    assert len(queued) == len(pairs)
    by_prompt = {p["prompt"]: p for p in pairs}
    for prompt, a in queued:  # failure vs the reply the experts wrote for that item (not a template)
        p = by_prompt[prompt]
        assert a == expert_reply(p["category"], p["id"]) == written_replies()[p["id"]], p["id"]
    assert all(item_half(p) == "train" for p, _ in queued)
    assert all(item_half(p) == "train" for p in edge_prompts)  # `next` left held-out failures out
    prefs = demo_run.out_dir / "data" / "preferences-r2.jsonl"
    rows = [json.loads(x) for x in prefs.read_text().splitlines()]
    from rlhfops.redteam.suite import load_suite

    probes = {it.prompt: it for it in load_suite("redteam").items}
    trained = [r["prompt"] for r in rows if r["prompt"] in probes]
    assert trained and all(item_half(p) == "train" for p in trained)  # no held-out probe trained on


def test_demo_round_two_evaluation_uses_only_heldout_items(demo_run):
    from rlhfops.demo.round2 import R2
    from rlhfops.redteam.split import item_half
    from rlhfops.workspace import Workspace

    table = demo_run.summary["rounds"]["table"]
    ws = Workspace.open(demo_run.out_dir)
    try:
        for row in table[1:]:
            task, rt = (json.loads(ws.artifact(i).path.read_text()) for i in row["evaluations"])
            assert rt["meta"]["redteam_half"] == "heldout" and rt["items"]
            assert all(item_half(it["prompt"]) == "heldout" for it in rt["items"])
            held = [
                json.loads(x)
                for x in (demo_run.out_dir / "data" / "heldout-suite.jsonl").read_text().splitlines()
            ]
            assert [it["prompt"] for it in task["items"]] == [h["prompt"] for h in held[1:]]
        cont = demo_run.summary["rounds"]["round2"]["contamination"]
        assert cont["refused"] == [] and len(cont["evaluations"]) == 2 and cont["training_artifacts"] >= 3
        assert set(cont["evaluations"]) == set(table[-1]["evaluations"])
        assert table[-1]["model"] == R2
    finally:
        ws.close()


def test_demo_contamination_guard_refuses_the_train_half_and_accepts_the_heldout_half(demo_run):
    """An evaluation of the round-two candidate on the red-team TRAIN half shares prompts with its training
    data (the failure pairs): the guard refuses it, naming the items; its held-out-half evaluation passes."""
    from rlhfops.demo.round2 import R2
    from rlhfops.evaluate.run import EvalOptions, run_evaluation
    from rlhfops.gate.contamination import check_contamination
    from rlhfops.gate.decide import gate_evaluate
    from rlhfops.workspace import Workspace

    s = demo_run.summary
    ws = Workspace.open(demo_run.out_dir)
    try:
        model = ws.artifact(s["artifacts"][R2])
        held = ws.artifact(s["rounds"]["table"][-1]["evaluations"][1])
        refused, rows = check_contamination(ws, model, [held])
        assert refused == set() and rows == []
        opts = EvalOptions(suite="redteam", redteam_half="train", limit=2, kl_prompts=0, max_new_tokens=4)
        train = run_evaluation(model.id, opts, ws=ws)
        refused, rows = check_contamination(ws, model, [held, ws.artifact(train.artifact_id)])
        assert refused == {train.artifact_id}
        failed_ids = {p["id"] for p in s["rounds"]["round2"]["failure_pairs"]}
        (row,) = rows
        assert row.name == f"contamination:{train.artifact_id[:12]}" and not row.passed
        assert any(i in row.detail for i in failed_ids)  # names the overlapping items
        g = gate_evaluate(ws, model.id)  # the gate itself: the train-half evaluation is a named failure
        assert f"contamination:{train.artifact_id[:12]}" in {r.name for r in g.failed}
    finally:
        ws.close()


def test_demo_report_compares_the_rounds(demo_run):
    import html as h

    from rlhfops.demo.round2 import R2

    rounds = demo_run.summary["rounds"]
    for row in rounds["table"]:
        assert row["redteam_heldout"]
        for x in row["redteam_heldout"].values():
            assert 0.0 <= x["ci"][0] <= x["rate"] <= x["ci"][1] <= 1.0 and x["n"] >= 1
        assert 0.0 <= row["apology_remedy_ci"][0] <= row["apology_remedy_rate"] <= row["apology_remedy_ci"][1]
    r2 = rounds["table"][-1]
    assert r2["win_rate_ci"][0] <= r2["win_rate_vs_base"] <= r2["win_rate_ci"][1] and r2["kl"] >= 0
    html = (demo_run.out_dir / "report.html").read_text()
    sec = html[html.index('<section id="demo-rounds">') :]
    sec = sec[: sec.index("</section>")]
    assert "HELD-OUT half" in sec and "SIMULATED domain expert" in sec and R2 in sec
    assert sec.count("<tr>") >= 1 + len(rounds["table"]) + 1 + len(rounds["round2"]["next"])
    assert h.escape(rounds["round2"]["round1_best"]) in sec
    assert "promoted" in sec


@pytest.mark.parametrize(
    ("r2_pairs", "data"), [("both", "preferences-r2.jsonl"), ("this_round", "new.jsonl")]
)
def test_round_two_dpo_trains_on_the_pairs_r2_pairs_names(tmp_path, monkeypatch, r2_pairs, data):
    """DemoSettings.r2_pairs picks round two's DPO data: both rounds' pairs (the reward model's file) or this
    round's batches only (`prefs export --batch`); with no batch file, both rounds' pairs either way."""
    from types import SimpleNamespace

    from rlhfops.demo import round2

    seen: list[dict] = []
    monkeypatch.setattr(round2, "_train", lambda ws, stage, who, sets, s, notes: seen.append(sets) or stage)
    s = DemoSettings(progress=False, r2_pairs=r2_pairs)
    ctx = SimpleNamespace(
        s=s,
        root=tmp_path,
        models={"sft": "SFT", "dpo": "DPO"},
        rounds={"round1_best": "dpo", "labels": {"new_prefs_path": str(tmp_path / "new.jsonl")}},
        ws=None,
        notes=[],
        train={"rm-r2": {}},
        refs={},
        gate_result={},
        _record=lambda name, result: None,
    )
    round2.refresh(ctx)
    assert [x["model"] for x in seen] == ["SFT", "DPO"]
    assert str(seen[1]["data"]).endswith(data)
    assert (seen[1]["rpo_alpha"], seen[1]["batch_size"]) == (s.r2_rpo_alpha, s.r2_batch_size)


def test_ppo_sweep_line_names_each_runs_reward_gain_over_sft_with_its_interval(demo_run):
    """The terminal says, per PPO run, the held-out reward-model score over SFT's (kl_sweep's paired
    ``score_gain``) and whether its interval is above zero, below it, or includes it."""
    from rlhfops.demo.steps import _gain_text

    row = {"value": 0.05, "score_gain": {"mean": 0.16, "ci": [0.001, 0.3], "n": 32}}
    assert _gain_text(row) == "beta 0.05 +0.160 [+0.001, +0.300] (above)"
    row["score_gain"]["ci"] = [0.0, 0.3]  # the edge: an interval touching 0 includes it
    assert _gain_text(row).endswith("(interval includes 0)")
    row["score_gain"] = {"mean": -0.2, "ci": [-0.3, -0.001], "n": 32}
    assert _gain_text(row).endswith("(below)")
    assert _gain_text({"value": 0.2, "score_gain": None}) == "beta 0.2 -"
    lines = [x for x in demo_run.lines if "held-out reward-model score over SFT's" in x]
    rows = demo_run.summary["kl_sweep"]["rows"]
    assert len(lines) == 1 and all(_gain_text(r) in lines[0] for r in rows)
    assert all(r["score_gain"] and r["score_gain"]["n"] >= 2 for r in rows)


def test_r2_pairs_takes_only_the_two_named_choices():
    assert DemoSettings(r2_pairs="this_round").r2_pairs == "this_round"
    with pytest.raises(UserError, match="r2_pairs 'this round': use one of both, this_round"):
        DemoSettings(r2_pairs="this round")
