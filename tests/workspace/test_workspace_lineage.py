"""Artifact store and lineage: stored once by content hash, read-only, chains back to spec and data."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from shared_helpers import fake_model
from ws_helpers import ready_play1, write_file

from rlhfops.cli.main import main
from rlhfops.errors import DataError, PlayOrderError, UserError
from rlhfops.spec.check import file_sha256
from rlhfops.workspace import content_hash
from rlhfops.workspace.plays import check_stage_ready, compute_status


def test_identical_content_registers_once(ws, tmp_path: Path) -> None:
    a = write_file(tmp_path / "a.jsonl", '{"prompt": "x"}\n')
    b = write_file(tmp_path / "copy" / "b.jsonl", '{"prompt": "x"}\n')
    id1 = ws.register_artifact("dataset", a, [], "alice", {"n": 1})
    id2 = ws.register_artifact("dataset", b, [], "bob", {"n": 2})
    assert id1 == id2 == file_sha256(a)
    assert len(ws.artifacts("dataset")) == 1
    rec = ws.artifact(id1[:8])
    assert (rec.creator, rec.meta, rec.name) == ("alice", {"n": 1}, "a.jsonl")
    assert rec.path == ws.root / "artifacts" / id1 / "a.jsonl"
    assert rec.path.read_text() == '{"prompt": "x"}\n'
    assert not os.stat(rec.path).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)


def test_directory_hash_counts_names_and_bytes_not_times(tmp_path: Path) -> None:
    m1 = fake_model(tmp_path / "m1", "w")
    m2 = fake_model(tmp_path / "m2", "w")
    os.utime(m2 / "config.json", (1, 1))
    assert content_hash(m1) == content_hash(m2)
    (m2 / "config.json").rename(m2 / "config2.json")
    assert content_hash(m1) != content_hash(m2)
    m3 = fake_model(tmp_path / "m3", "v")
    assert content_hash(m1) != content_hash(m3)


def test_register_refuses_bad_input(ws, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="kind 'modle' unknown"):
        ws.register_artifact("modle", tmp_path, [], "alice", {})
    with pytest.raises(DataError, match="not found"):
        ws.register_artifact("dataset", tmp_path / "nope.jsonl", [], "alice", {})
    f = write_file(tmp_path / "d.jsonl", "{}\n")
    with pytest.raises(UserError, match="artifact 'abcdef' : not in this workspace|not in this workspace"):
        ws.register_artifact("dataset", f, ["abcdef"], "alice", {})
    with pytest.raises(DataError, match="not JSON-serialisable"):
        ws.register_artifact("dataset", f, [], "alice", {"x": object()})
    assert ws.artifacts() == []


def test_model_lineage_resolves_to_exact_spec_hash_and_data_files(ws, tmp_path: Path) -> None:
    ready_play1(ws)
    spec_hash = file_sha256(ws.spec_path)
    demos = write_file(tmp_path / "demos.jsonl", '{"prompt": "p", "completion": "c"}\n')
    base = fake_model(tmp_path / "base", "base")
    check_stage_ready(ws, "sft", {"data": demos})
    sft_id = ws.record_training_run(
        "sft",
        {"data": demos, "model": base},
        fake_model(tmp_path / "sft", "sft"),
        "dave",
        {"eval": {"eval_loss": 1.0, "base_eval_loss": 2.0, "beats_base": True}},
    )
    prefs = write_file(tmp_path / "prefs.jsonl", '{"prompt": "p", "chosen": "a", "rejected": "b"}\n')
    dpo_id = ws.record_training_run(
        "dpo", {"data": prefs, "model": sft_id}, fake_model(tmp_path / "dpo", "dpo"), "frank", {}
    )
    chain = ws.lineage(dpo_id)
    by_kind = {r.kind: r for r in chain}
    assert chain[0].id == dpo_id
    assert by_kind["spec"].id == spec_hash
    assert by_kind["preferences"].id == file_sha256(prefs)
    assert by_kind["demonstrations"].id == file_sha256(demos)
    assert by_kind["sft-model"].id == sft_id and by_kind["base-model"].id == content_hash(base)
    assert "edge-cases" not in by_kind  # the appendix hangs off the spec; it is not a training input
    # stored copies are byte-identical to what was trained on
    assert by_kind["preferences"].path.read_bytes() == prefs.read_bytes()
    assert content_hash(by_kind["sft-model"].path) == sft_id
    assert len(chain) == len({r.id for r in chain}) == 6  # dpo, spec, prefs, sft, demos, base
    assert compute_status(ws).plays[1].state == "complete"


def test_cli_lineage_prints_the_chain(ws, tmp_path: Path, capsys, monkeypatch) -> None:
    ready_play1(ws)
    demos = write_file(tmp_path / "demos.jsonl", '{"prompt": "p", "completion": "c"}\n')
    sft_id = ws.record_training_run(
        "sft",
        {"data": demos, "model": "smollm2-135m-instruct"},
        fake_model(tmp_path / "sft", "s"),
        "dave",
        {},
    )
    assert ws.artifact(sft_id).meta["named_inputs"] == {"model": "smollm2-135m-instruct"}
    monkeypatch.chdir(ws.root)
    main(["lineage", sft_id[:10]])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"sft-model {sft_id[:12]} sft by dave")
    assert any(line.startswith(f"  <- spec {file_sha256(ws.spec_path)[:12]} spec.yaml") for line in lines)
    assert any(
        line.startswith(f"  <- demonstrations {file_sha256(demos)[:12]} demos.jsonl") for line in lines
    )


def test_cli_artifact_add_and_list(ws, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(ws.root)
    f = write_file(tmp_path / "p.jsonl", "{}\n")
    main(["artifact", "add", "preferences", str(f), "--meta", "agreement=0.71", "--as", "erin"])
    aid = capsys.readouterr().out.strip()
    assert aid == file_sha256(f)
    rec = ws.artifact(aid)
    assert rec.meta == {"agreement": 0.71} and rec.creator == "erin"
    main(["artifact", "list", "--kind", "preferences"])
    assert capsys.readouterr().out.startswith(f"{aid[:12]}  preferences")


def test_cli_artifact_add_refuses_decisions(ws, tmp_path: Path, capsys, monkeypatch) -> None:
    """Only the gate writes decisions: a hand-made 'promoted' decision would fake a deployment."""
    monkeypatch.chdir(ws.root)
    f = write_file(tmp_path / "d.json", "{}\n")
    with pytest.raises(SystemExit) as ex:
        main(["artifact", "add", "decision", str(f), "--meta", "decision=promoted", "--as", "erin"])
    assert ex.value.code == 2
    assert "written only by the gate" in capsys.readouterr().err
    assert ws.artifacts("decision") == []


def test_rm_refuses_preference_data_below_the_agreement_threshold(ws, tmp_path: Path) -> None:
    ready_play1(ws)
    demos = write_file(tmp_path / "demos.jsonl", '{"prompt": "p", "completion": "c"}\n')
    ws.record_training_run(
        "sft", {"data": demos}, fake_model(tmp_path / "sft", "s"), "dave", {"eval": {"beats_base": True}}
    )
    raw = write_file(tmp_path / "raw.jsonl", '{"prompt": "p", "chosen": "a", "rejected": "b"}\n')
    check_stage_ready(ws, "rm", {"data": raw})  # no annotation yet: nothing to compare
    low = write_file(tmp_path / "low.jsonl", '{"prompt": "q", "chosen": "a", "rejected": "b"}\n')
    low_id = ws.register_artifact("preferences", low, [], "erin", {"agreement": 0.41})
    with pytest.raises(PlayOrderError) as err:
        check_stage_ready(ws, "rm", {"data": low})
    msg = str(err.value)
    assert f"preference data {low_id[:12]} has agreement 0.410 < 0.6 (spec gate.min_agreement)" in msg
    assert "Play 3 (preferences + reward model)" in msg and "owner: erin (annotation-lead)" in msg
    with pytest.raises(PlayOrderError, match="has no recorded agreement while annotation exists"):
        check_stage_ready(ws, "rm", {"data": raw})
    good = write_file(tmp_path / "good.jsonl", '{"prompt": "r", "chosen": "a", "rejected": "b"}\n')
    ws.register_artifact("preferences", good, [], "erin", {"agreement": 0.72})
    check_stage_ready(ws, "rm", {"data": good})
    check_stage_ready(ws, "dpo", {"data": good})


def test_rm_refused_before_an_sft_model_exists(ws, tmp_path: Path) -> None:
    ready_play1(ws)
    expected = (
        r"rm refused: Play 2 \(demonstrations\) incomplete: no SFT model.*owner: dave \(domain-expert-lead\)"
    )
    with pytest.raises(PlayOrderError, match=expected):
        check_stage_ready(ws, "rm", {})


def test_ppo_needs_an_accurate_reward_model_and_evaluated_policies(ws, tmp_path: Path) -> None:
    ready_play1(ws)
    ws.record_training_run(
        "sft", {}, fake_model(tmp_path / "sft", "s"), "dave", {"eval": {"beats_base": True}}
    )
    with pytest.raises(PlayOrderError, match="no reward model trained on spec"):
        check_stage_ready(ws, "ppo", {})
    weak = ws.record_training_run(
        "rm", {}, fake_model(tmp_path / "rm1", "r1"), "erin", {"eval": {"eval_accuracy": 0.52}}
    )
    with pytest.raises(PlayOrderError, match=rf"reward model {weak[:12]} has held-out accuracy 0.520 < 0.65"):
        check_stage_ready(ws, "ppo", {"reward_model": weak})
    good = ws.record_training_run(
        "rm", {}, fake_model(tmp_path / "rm2", "r2"), "erin", {"eval": {"eval_accuracy": 0.81}}
    )
    check_stage_ready(ws, "ppo", {"reward_model": ws.artifact(good).path})
    policy = ws.record_training_run(
        "ppo", {"reward_model": good}, fake_model(tmp_path / "p1", "p1"), "frank", {}
    )
    with pytest.raises(PlayOrderError, match=rf"ppo-model {policy[:12]} has no evaluation"):
        check_stage_ready(ws, "ppo", {"reward_model": good})
    from rlhfops.workspace.provenance import record_evaluation  # the writer `eval run` uses

    meta = {"model": policy, "kind": "side_by_side", "suite": "s", "win_rate": {"rate": 0.6}}
    record_evaluation(ws, meta, [], [], [policy], "frank", suite_digest="0" * 64, judge="rule")
    check_stage_ready(ws, "ppo", {"reward_model": good})
    assert compute_status(ws).plays[3].state == "complete"


def test_a_trained_model_is_hashed_once_before_its_stored_copy_is_checked(ws, tmp_path: Path, monkeypatch):
    """record_training_run hashes the (0.5 GB) model once for the attestation and the id; store_copy then
    checks the copy against that hash (a copy that differs is still refused)."""
    import rlhfops.workspace.artifacts as artifacts
    import rlhfops.workspace.store as store

    ready_play1(ws)
    demos = write_file(tmp_path / "demos.jsonl", '{"prompt": "p", "completion": "c"}\n')
    model = fake_model(tmp_path / "sft", "sft")
    calls: list[tuple[str, Path]] = []
    for mod in (artifacts, store):
        real = mod.content_hash
        monkeypatch.setattr(
            mod, "content_hash", lambda p, m=mod, r=real: calls.append((m.__name__, p)) or r(p)
        )
    sft_id = ws.record_training_run("sft", {"data": demos}, model, "dave", {})
    assert sft_id == content_hash(model)
    model_calls = [m for m, p in calls if Path(p) == model]
    assert model_calls == ["rlhfops.workspace.artifacts"], calls  # once; the copy check hashes the copy
    assert any(m == "rlhfops.workspace.store" and Path(p) != model for m, p in calls)
