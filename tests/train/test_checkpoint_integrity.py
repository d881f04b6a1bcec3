"""Checkpoint integrity on resume: a damaged newest checkpoint is named and the previous one is used.

One SFT run on the tiny model is stopped after step 6 with checkpoints at steps 4 and 6 (keep_last=2).
Each test damages a copy of it (a flipped bit, a file cut short, a file removed), resumes through the CLI
and checks: exit 0, one line naming the checkpoint, the file and expected vs actual, the resume started
at step 4, every step logged once, and the final weights equal an uninterrupted run's.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers_train import write_demos
from safetensors.torch import load_file

from rlhfops.cli.main import main
from rlhfops.config import load_config
from rlhfops.models.tiny import make_tiny_model_dir
from rlhfops.train.config import SFTConfig
from rlhfops.train.runner import run_stage

STEPS = 8


def _args(model: Path, data: Path, out: Path) -> list[str]:
    return [
        f"model={model}",
        f"data={data}",
        f"output_dir={out}",
        f"max_steps={STEPS}",
        "batch_size=4",
        "learning_rate=1e-3",
        "max_length=128",
        "save_every=2",
        "keep_last=2",
        "progress=false",
        "eval_fraction=0",
    ]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(uninterrupted run dir, a run stopped after step 6 with checkpoints 4 and 6)."""
    from rlhfops.train.sft import SFTTrainer

    base = tmp_path_factory.mktemp("ckpt")
    model = make_tiny_model_dir(base / "tiny")
    data = write_demos(base / "d.jsonl", n=40)
    straight = run_stage("sft", None, _args(model, data, base / "straight"))
    trainer = SFTTrainer(load_config(SFTConfig, None, _args(model, data, base / "cut")))
    trainer.setup()
    trainer.before_train()
    for step in range(1, 7):
        trainer.run.append_metrics(trainer.step(step))
        if step % 2 == 0:
            trainer.save_checkpoint(step)
    trainer.cleanup()
    assert sorted(p.name for p in (base / "cut" / "checkpoints").iterdir()) == ["step-000004", "step-000006"]
    return straight.run_dir, base / "cut"


@pytest.fixture
def cut(runs, tmp_path) -> Path:
    """A fresh copy of the stopped run for one test to damage."""
    return Path(shutil.copytree(runs[1], tmp_path / "cut"))


def _resume(run_dir: Path, capsys) -> tuple[int, str]:
    capsys.readouterr()
    try:
        main(["train", "sft", "--resume", str(run_dir)])
    except SystemExit as ex:
        return int(ex.code or 0), capsys.readouterr().err
    return 0, capsys.readouterr().err


def _assert_resumed_from_4_like_straight(run_dir: Path, straight: Path) -> dict:
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, STEPS + 1)), "every step exactly once"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["resumed_from_step"] == 4
    a = load_file(str(straight / "final" / "model.safetensors"))
    b = load_file(str(run_dir / "final" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6)
    return summary


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _damage_line(err: str, needle: str) -> str:
    lines = [line for line in err.splitlines() if needle in line]
    assert len(lines) == 1, err
    return lines[0]


def test_bit_flip_in_weights_falls_back(runs, cut, capsys):
    weights = cut / "checkpoints" / "step-000006" / "trainable.safetensors"
    before = _sha(weights)
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x10  # inside the tensor data: the file still loads, one weight is wrong
    weights.write_bytes(bytes(data))
    after = _sha(weights)

    code, err = _resume(cut, capsys)
    assert code == 0, err
    line = _damage_line(err, "step-000006 is damaged")
    assert "trainable.safetensors" in line
    assert f"expected {before[:16]}" in line and after[:16] in line  # expected vs actual
    assert "resuming from step-000004" in err
    summary = _assert_resumed_from_4_like_straight(cut, runs[0])
    assert summary["damaged_checkpoints"][0]["checkpoint"] == "step-000006"
    assert (cut / "checkpoints" / "damaged-step-000006" / "trainable.safetensors").exists()


@pytest.mark.parametrize("name", ["trainable.safetensors", "state.pt"])
def test_truncated_file_falls_back(runs, cut, capsys, name):
    path = cut / "checkpoints" / "step-000006" / name
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[: size // 2])

    code, err = _resume(cut, capsys)
    assert code == 0, err
    line = _damage_line(err, "step-000006 is damaged")
    assert name in line and f"{size // 2} bytes, expected {size}" in line
    assert "Traceback" not in err
    _assert_resumed_from_4_like_straight(cut, runs[0])


@pytest.mark.parametrize("name", ["state.pt", "trainable.safetensors", "trainer_state.json", "manifest.json"])
def test_missing_file_falls_back(runs, cut, capsys, name):
    (cut / "checkpoints" / "step-000006" / name).unlink()

    code, err = _resume(cut, capsys)
    assert code == 0, err
    line = _damage_line(err, "step-000006 is damaged")
    assert name in line and "missing" in line
    _assert_resumed_from_4_like_straight(cut, runs[0])


def _tree(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): _sha(p) for p in sorted(path.rglob("*")) if p.is_file()}


def test_every_checkpoint_damaged_is_one_line_exit_2_nothing_written(cut, capsys):
    for step, name in ((6, "state.pt"), (4, "trainable.safetensors")):
        path = cut / "checkpoints" / f"step-{step:06d}" / name
        path.write_bytes(path.read_bytes()[:100])
    before = _tree(cut)

    code, err = _resume(cut, capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 3, err  # two damage warnings, then the error
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and "no intact checkpoint" in last
    assert "step-000006: state.pt" in last and "step-000004: trainable.safetensors" in last
    assert _tree(cut) == before, "nothing written"
    assert not (cut / "summary.json").exists()


def _make_legacy(ckpt: Path) -> None:
    """What an rlhfops before manifests wrote: no manifest.json, trainer_state.json without the pointer."""
    (ckpt / "manifest.json").unlink()
    state = json.loads((ckpt / "trainer_state.json").read_text())
    state.pop("manifest")
    (ckpt / "trainer_state.json").write_text(json.dumps(state))


def test_legacy_checkpoint_without_manifest_resumes_with_a_warning(runs, cut, capsys):
    for step in (4, 6):
        _make_legacy(cut / "checkpoints" / f"step-{step:06d}")

    code, err = _resume(cut, capsys)
    assert code == 0, err
    line = _damage_line(err, "step-000006: no manifest.json")
    assert "earlier rlhfops" in line and "is damaged" not in err
    summary = json.loads((cut / "summary.json").read_text())
    assert summary["resumed_from_step"] == 6 and "damaged_checkpoints" not in summary
    a = load_file(str(runs[0] / "final" / "model.safetensors"))
    b = load_file(str(cut / "final" / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6)


def test_legacy_checkpoint_that_does_not_load_falls_back(runs, cut, capsys):
    for step in (4, 6):
        _make_legacy(cut / "checkpoints" / f"step-{step:06d}")
    state = cut / "checkpoints" / "step-000006" / "state.pt"
    state.write_bytes(state.read_bytes()[:200])

    code, err = _resume(cut, capsys)
    assert code == 0, err
    assert "state.pt does not load" in _damage_line(err, "is damaged")
    _assert_resumed_from_4_like_straight(cut, runs[0])


def test_new_checkpoints_carry_a_manifest_of_every_file(runs):
    ckpt = runs[1] / "checkpoints" / "step-000006"
    manifest = json.loads((ckpt / "manifest.json").read_text())
    assert manifest["step"] == 6 and manifest["stage"] == "sft"
    files = {p.name for p in ckpt.iterdir()} - {"manifest.json"}
    assert set(manifest["files"]) == files == {"trainable.safetensors", "state.pt", "trainer_state.json"}
    for name, entry in manifest["files"].items():
        assert entry == {"sha256": _sha(ckpt / name), "bytes": (ckpt / name).stat().st_size}


class _Payload:
    """Unpickling this runs code (it would create the marker file): what a crafted state.pt could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_state_file_that_would_run_code_is_not_unpickled(runs, cut, tmp_path, capsys):
    """state.pt is loaded with weights_only=True: a pickle carrying code is refused (the checkpoint
    counts as damaged and the previous one is used), and the code never runs."""
    for step in (4, 6):
        _make_legacy(cut / "checkpoints" / f"step-{step:06d}")  # no manifest: only the loader stands guard
    state_path = cut / "checkpoints" / "step-000006" / "state.pt"
    state = torch.load(state_path, weights_only=False)  # the test's own file: trusted here
    marker = tmp_path / "code-ran"
    state["extra"] = {"payload": _Payload(marker)}
    torch.save(state, state_path)

    code, err = _resume(cut, capsys)
    assert code == 0, err
    assert not marker.exists(), "unpickling ran code from the checkpoint"
    assert "state.pt does not load" in _damage_line(err, "is damaged")
    _assert_resumed_from_4_like_straight(cut, runs[0])
