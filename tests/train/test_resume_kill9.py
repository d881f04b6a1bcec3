"""kill -9 mid-run, then --resume: the run finishes the planned steps with the same data order.

A resume that trains zero steps and exits 0 is a known bug in peer tools: the metrics must show every
step exactly once and the final weights must equal an uninterrupted run's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from helpers_train import write_demos
from safetensors.torch import load_file

from rlhfops.models.tiny import make_tiny_model_dir
from rlhfops.train.runner import run_stage


def _args(model: Path, data: Path, out: Path) -> list[str]:
    return [
        f"model={model}",
        f"data={data}",
        f"output_dir={out}",
        "max_steps=8",
        "batch_size=4",
        "learning_rate=1e-3",
        "max_length=128",
        "save_every=2",
        "progress=false",
        "eval_fraction=0",
    ]


def _steps(run_dir: Path) -> list[int]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line)["step"])
        except (json.JSONDecodeError, KeyError):
            pass
    return out


def test_kill9_then_resume_finishes_planned_steps(tmp_path):
    model = make_tiny_model_dir(tmp_path / "tiny")
    data = write_demos(tmp_path / "d.jsonl", n=40)
    reference = run_stage("sft", None, _args(model, data, tmp_path / "uninterrupted"))

    run_dir = tmp_path / "killed"
    cmd = [sys.executable, "-m", "rlhfops.cli.main", "train", "sft"]
    for item in _args(model, data, run_dir):
        cmd += ["--set", item]
    env = {**os.environ, "RLHFOPS_DEBUG_STEP_SLEEP": "0.4"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and (not _steps(run_dir) or max(_steps(run_dir)) < 5):
        if proc.poll() is not None:
            raise AssertionError(f"training exited early: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "summary.json").exists()
    killed_at = max(_steps(run_dir))
    assert 5 <= killed_at < 8

    result = subprocess.run(
        [sys.executable, "-m", "rlhfops.cli.main", "train", "sft", "--resume", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert _steps(run_dir) == list(range(1, 9)), "every step exactly once, none skipped"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 8
    assert summary["resumed_from_step"] in (4, 6)  # the last checkpoint before the kill

    a = load_file(str(reference.run_dir / "final" / "model.safetensors"))
    b = load_file(str(run_dir / "final" / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6)


def test_resume_of_finished_run_refused(tmp_path):
    from rlhfops.cli.main import main

    model = make_tiny_model_dir(tmp_path / "tiny")
    data = write_demos(tmp_path / "d.jsonl", n=12)
    args = _args(model, data, tmp_path / "run")
    args = [a if not a.startswith("max_steps") else "max_steps=1" for a in args]
    run_stage("sft", None, args)
    try:
        main(["train", "sft", "--resume", str(tmp_path / "run")])
    except SystemExit as ex:
        assert ex.code == 2
    else:
        raise AssertionError("resuming a finished run must exit 2")
