"""The unchanged ``rlhfops train`` command under ``accelerate launch`` (2 CPU processes, DDP over gloo).

(``accelerate launch --cpu`` always starts a single process; ``--multi_gpu`` selects accelerate's
torchrun launcher, and on a machine without a GPU each process trains on the CPU.)

The same run in one process and in two must plan the same steps, see the same global batches (so the
same first-step loss) and leave a complete run directory written once by the main process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_train import free_port, write_demos, write_prefs

from rlhfops.models.tiny import make_tiny_model_dir


def _settings(model: Path, data: Path, out: Path) -> list[str]:
    sets = [
        f"model={model}",
        f"data={data}",
        f"output_dir={out}",
        "batch_size=8",
        "max_steps=3",
        "max_length=128",
        "progress=false",
        "eval_fraction=0.25",
        "save_every=2",
    ]
    return [x for s in sets for x in ("--set", s)]


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("stage", ["rm"])  # sft and dpo: test_invariance runs them under torchrun
def test_train_command_runs_unchanged_under_accelerate_launch(tmp_path, stage):
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    rlhfops = shutil.which("rlhfops", path=str(Path(sys.executable).parent))
    if accelerate is None or rlhfops is None:
        pytest.fail("accelerate and rlhfops console scripts must be installed next to the test interpreter")
    model = make_tiny_model_dir(tmp_path / "tiny")
    data = (
        write_demos(tmp_path / "d.jsonl", n=40) if stage == "sft" else write_prefs(tmp_path / "p.jsonl", n=40)
    )
    # PYTHONPATH extended with the source this test imports, so the console scripts run the code under test
    import rlhfops as pkg

    src = str(Path(pkg.__file__).resolve().parents[1])
    old = os.environ.get("PYTHONPATH", "")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(p for p in [src, old] if p)}

    single = tmp_path / "single"
    proc = subprocess.run(
        [rlhfops, "train", stage, *_settings(model, data, single)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    multi = tmp_path / "multi"
    cmd = [
        accelerate,
        "launch",
        "--multi_gpu",  # accelerate's torchrun launcher; with no GPU each process trains on the CPU (gloo)
        "--num_processes=2",
        "--num_machines=1",
        "--mixed_precision=no",
        "--dynamo_backend=no",
        f"--main_process_port={free_port()}",
        rlhfops,
        "train",
        stage,
        *_settings(model, data, multi),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

    summary = json.loads((multi / "summary.json").read_text())
    assert summary["world_size"] == 2
    assert summary["steps"] == 3
    assert (multi / "final").is_dir()
    one, two = _metrics(single), _metrics(multi)
    assert [r["step"] for r in two] == [1, 2, 3]  # written once (main process only), every step
    # Same global batch at step 1 from the same weights: the loss is the same to float precision.
    assert abs(one[0]["loss"] - two[0]["loss"]) <= 1e-5 * abs(one[0]["loss"]), (one[0], two[0])
    assert json.loads((single / "summary.json").read_text())["world_size"] == 1
