"""Training inside a workspace: play order enforced (SFT refuses an unsigned spec), lineage recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers_train import write_demos

from rlhfops.cli.main import main
from rlhfops.models.tiny import make_tiny_model_dir
from rlhfops.workspace import init_workspace


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    ws = init_workspace(tmp_path / "ws", template="support-replies")
    monkeypatch.chdir(tmp_path / "ws")
    monkeypatch.delenv("RLHFOPS_WORKSPACE", raising=False)
    monkeypatch.setenv("RLHFOPS_USER", "erin")
    return ws


def _train(tmp_path, capsys) -> tuple[int, str]:
    model = make_tiny_model_dir(tmp_path / "tiny")
    data = write_demos(tmp_path / "demos.jsonl")
    args = ["train", "sft"]
    for kv in (
        f"model={model}",
        f"data={data}",
        "max_steps=2",
        "batch_size=4",
        "progress=false",
        "output_dir=run",
    ):
        args += ["--set", kv]
    capsys.readouterr()  # drop the model builder's progress output
    try:
        main(args)
    except SystemExit as ex:
        return int(ex.code or 0), capsys.readouterr().err
    return 0, capsys.readouterr().err


def test_sft_refuses_unsigned_spec(tmp_path, workspace, capsys):
    code, err = _train(tmp_path, capsys)
    assert code == 2
    assert "business-owner" in err or "technical-lead" in err or "sign" in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")


def test_sft_in_signed_workspace_records_lineage(tmp_path, workspace, capsys):
    for name, role in (("bob", "business-owner"), ("carol", "technical-lead"), ("erin", "ml-engineer")):
        workspace.add_person(name, role, added_by="test")
    from rlhfops.gate.auth import enrol

    workspace.sign_spec("business-owner", enrol(workspace, "bob", "bob-password-1"))
    workspace.sign_spec("technical-lead", enrol(workspace, "carol", "carol-password-1"))
    workspace.record_baseline({"task_completion_rate": 0.7, "client_flag_rate": 0.05}, "test", "bob", n=100)
    code, err = _train(tmp_path, capsys)
    assert code == 0, err
    models = workspace.artifacts("sft-model")
    assert models, "the trained model was registered"
    run_dir = Path(models[-1].meta["run_dir"])  # where the report finds metrics.jsonl
    assert (run_dir / "metrics.jsonl").exists() and (run_dir / "summary.json").exists()
    chain = workspace.lineage(models[-1].id)
    spec_hash = workspace.current_spec().hash
    kinds = {r.kind for r in chain}
    assert any(r.id == spec_hash or r.id.startswith(spec_hash) for r in chain), (
        spec_hash,
        [r.id for r in chain],
    )
    assert len(kinds) >= 2, kinds


def _sign(workspace) -> None:
    from rlhfops.gate.auth import enrol

    for name, role in (("bob", "business-owner"), ("carol", "technical-lead"), ("erin", "ml-engineer")):
        workspace.add_person(name, role, added_by="test")
    workspace.sign_spec("business-owner", enrol(workspace, "bob", "bob-password-1"))
    workspace.sign_spec("technical-lead", enrol(workspace, "carol", "carol-password-1"))
    workspace.record_baseline({"task_completion_rate": 0.7, "client_flag_rate": 0.05}, "test", "bob", n=100)


def _interrupted_run(tmp_path) -> Path:
    """An SFT run in ./run stopped after step 2 of 4 (checkpoint at 2, no summary), as a kill leaves it."""
    from rlhfops.config import load_config
    from rlhfops.train.config import SFTConfig
    from rlhfops.train.sft import SFTTrainer

    model = make_tiny_model_dir(tmp_path / "tiny")
    data = write_demos(tmp_path / "demos.jsonl")
    sets = [f"model={model}", f"data={data}", "max_steps=4", "save_every=2", "batch_size=4"]
    trainer = SFTTrainer(load_config(SFTConfig, None, [*sets, "progress=false", "output_dir=run"]))
    trainer.setup()
    trainer.before_train()
    for step in (1, 2):
        trainer.run.append_metrics(trainer.step(step))
    trainer.save_checkpoint(2)
    trainer.cleanup()
    assert not Path("run/summary.json").exists()
    return Path("run")


def _resume(capsys) -> tuple[int, str]:
    capsys.readouterr()
    try:
        main(["train", "sft", "--resume", "run"])
    except SystemExit as ex:
        return int(ex.code or 0), capsys.readouterr().err
    return 0, capsys.readouterr().err


def test_resumed_run_is_recorded_with_its_lineage(tmp_path, workspace, capsys):
    _sign(workspace)
    run_dir = _interrupted_run(tmp_path)
    assert not workspace.artifacts("sft-model")
    code, err = _resume(capsys)
    assert code == 0, err
    models = workspace.artifacts("sft-model")
    assert len(models) == 1, "the resumed run's model was registered"
    assert Path(models[0].meta["run_dir"]) == run_dir.resolve()
    assert models[0].meta["eval"] == json.loads((run_dir / "summary.json").read_text())["eval"]
    chain = workspace.lineage(models[0].id)
    spec_hash = workspace.current_spec().hash
    assert any(r.id == spec_hash or r.id.startswith(spec_hash) for r in chain)
    assert {"spec", "base-model", "demonstrations", "sft-model"} <= {r.kind for r in chain}


def test_resume_checks_play_order(tmp_path, workspace, capsys):
    _sign(workspace)
    _interrupted_run(tmp_path)
    spec = workspace.spec_path  # edited after the run started: its sign-offs no longer hold
    spec.write_text(spec.read_text() + "\n# edited after the run started\n")
    code, err = _resume(capsys)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert not Path("run/summary.json").exists(), "nothing trained"
    assert not workspace.artifacts("sft-model")


def test_run_records_installed_versions_and_lineage_shows_drift(tmp_path, workspace, capsys, monkeypatch):
    """summary.json and environment.json hold the lock's hash and the drift from it; `lineage` prints it."""
    import hashlib
    from importlib import metadata

    pytest_version = metadata.version("pytest")
    lock = tmp_path / "requirements.lock"
    lock.write_text(
        f"pytest=={pytest_version} \\\n    --hash=sha256:00\nnumpy==0.0.1 \\\n    --hash=sha256:11\n"
    )
    monkeypatch.setenv("RLHFOPS_LOCK", str(lock))
    _sign(workspace)
    code, err = _train(tmp_path, capsys)
    assert code == 0, err
    summary = json.loads(Path("run/summary.json").read_text())
    env = summary["environment"]
    assert env["lock_sha256"] == hashlib.sha256(lock.read_bytes()).hexdigest()
    numpy_version = metadata.version("numpy")
    assert env["drift"] == [{"package": "numpy", "locked": "0.0.1", "installed": numpy_version}]
    full = json.loads(Path("run/environment.json").read_text())
    assert full["packages"]["pytest"] == pytest_version and full["drift"] == env["drift"]
    model = workspace.artifacts("sft-model")[-1]
    assert model.meta["environment"] == env
    main(["lineage", model.id])
    out = capsys.readouterr().out
    assert f"environment: lock {env['lock_sha256'][:12]}, drift: numpy {numpy_version} (lock 0.0.1)" in out
