"""Loss and gradients of one optimizer step do not depend on how the batch is split.

Gradient accumulation (1 vs 4 micro-batches) and data parallel (2 processes, gloo on CPU, vs 1) must give
the same loss and gradient (OpenRLHF's test_loss_aggregation, applied to the whole trainer step).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from dp_worker import gradients
from helpers_train import run_two_processes, worker_pythonpath, write_demos, write_prefs

import rlhfops
from rlhfops.models.tiny import make_tiny_model_dir


def _overrides(model: Path, data: Path, out: Path, accum: int) -> list[str]:
    return [
        f"model={model}",
        f"data={data}",
        f"output_dir={out}",
        "batch_size=8",
        f"gradient_accumulation_steps={accum}",
        "max_steps=1",
        "max_length=128",
        "progress=false",
        "eval_fraction=0",
    ]


def _assert_same(a: tuple[float, dict], b: tuple[float, dict]) -> None:
    assert abs(a[0] - b[0]) <= 1e-5 * abs(a[0]), (a[0], b[0])
    assert a[1].keys() == b[1].keys()
    for k in a[1]:
        torch.testing.assert_close(b[1][k], a[1][k], rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("stage", ["sft", "rm", "dpo"])
def test_gradient_accumulation_invariance(tmp_path, stage):
    model = make_tiny_model_dir(tmp_path / "tiny")
    data = write_demos(tmp_path / "d.jsonl") if stage == "sft" else write_prefs(tmp_path / "p.jsonl")
    one = gradients(stage, _overrides(model, data, tmp_path / "a", 1))
    four = gradients(stage, _overrides(model, data, tmp_path / "b", 4))
    _assert_same(one, four)


def test_worker_pythonpath_extends_instead_of_replacing(monkeypatch, tmp_path):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(["/a", "/b"]))
    parts = worker_pythonpath(tmp_path).split(os.pathsep)
    assert parts == [str(tmp_path), str(Path(rlhfops.__file__).resolve().parents[1]), "/a", "/b"]


@pytest.mark.parametrize("stage", ["sft", "dpo"])
def test_two_process_data_parallel_invariance(tmp_path, stage):
    model = make_tiny_model_dir(tmp_path / "tiny")
    data = write_demos(tmp_path / "d.jsonl") if stage == "sft" else write_prefs(tmp_path / "p.jsonl")
    single = gradients(stage, _overrides(model, data, tmp_path / "single", 1))
    out = tmp_path / "dp.pt"
    worker = Path(__file__).with_name("dp_worker.py")
    saved = run_two_processes(worker, out, stage, str(out), *_overrides(model, data, tmp_path / "dp", 1))
    _assert_same(single, (saved["loss"], saved["grads"]))
