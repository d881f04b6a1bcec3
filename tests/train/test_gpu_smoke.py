"""bench/gpu_smoke.sh (issue 23) on CPU with the tiny model: every stage runs through rlhfops' trainer and
reports its figures; the full run with TRL beside it is the slow test."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "gpu_smoke.sh"


def _smoke_module():
    spec = importlib.util.spec_from_file_location("gpu_smoke", ROOT / "bench" / "gpu_smoke.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check(summary: dict, with_trl: bool) -> None:
    stages = {s["stage"]: s for s in summary["stages"]}
    assert list(stages) == ["sft", "rm", "dpo", "ppo"]
    for name in ("sft", "rm", "dpo"):
        ours = stages[name]["rlhfops"]
        assert ours["tokens_per_s"] > 0 and ours["peak_memory_gb"] > 0
        assert ours["first_loss"] is not None and ours["last_loss"] is not None
        assert ("trl" in stages[name]) == with_trl
        if with_trl:
            assert stages[name]["trl"]["tokens_per_s"] > 0 and stages[name]["trl"]["peak_memory_gb"] > 0
    ppo = stages["ppo"]["rlhfops"]
    assert ppo["iterations"] == 2 and ppo["generated_tokens_per_s"] > 0
    assert ppo["rollout_backend"] == "builtin" and ppo["sync_seconds_per_iteration"] == 0
    assert summary["wall_seconds"] > 0 and summary["cpu_seconds"] > 0


def test_the_tiny_smoke_runs_every_stage_on_cpu(tmp_path: Path, capsys) -> None:
    smoke = _smoke_module()
    out = tmp_path / "smoke.json"
    assert smoke.main(["--tiny", "--skip-trl", "--out", str(tmp_path / "w"), "--json", str(out)]) == 0
    summary = json.loads(out.read_text())
    _check(summary, with_trl=False)
    assert (tmp_path / "w" / "runs" / "rlhfops-rm" / "final").is_dir()  # the PPO stage's reward model
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1].startswith("# total: wall ") and len([x for x in printed if x.startswith("{")]) == 4


def test_the_script_refuses_a_full_run_without_a_gpu_and_has_help() -> None:
    env = dict(os.environ, PYTHON=sys.executable, CUDA_VISIBLE_DEVICES="")
    helped = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, env=env, timeout=60)
    assert helped.returncode == 0 and "--tiny" in helped.stdout
    bad = subprocess.run([str(SCRIPT), "--bogus"], capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 2
    full = subprocess.run([str(SCRIPT)], capture_output=True, text=True, env=env, timeout=120)
    assert full.returncode == 2 and "no CUDA GPU visible; run with --tiny" in full.stderr


@pytest.mark.slow
def test_the_tiny_smoke_script_with_trl(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS="1")
    out = tmp_path / "smoke.json"
    proc = subprocess.run(
        [str(SCRIPT), "--tiny", "--json", str(out)], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    _check(json.loads(out.read_text()), with_trl=True)
