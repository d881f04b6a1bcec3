"""Run directory mechanics (atomic checkpoints, metrics truncation) and the learning-rate schedule."""

from __future__ import annotations

import math

import pytest

from rlhfops.train.base import lr_lambda, split_train_eval
from rlhfops.train.rundir import RunDir


def test_checkpoint_commit_is_atomic_and_pruned(tmp_path):
    run = RunDir(tmp_path / "run")
    for step in (2, 4, 6):
        tmp = run.new_checkpoint_tmp(step)
        (tmp / "trainer_state.json").write_text("{}")
        run.commit_checkpoint(tmp, step, keep_last=2)
    assert [s for s, _ in run.list_checkpoints()] == [4, 6]
    # a temp dir left by a kill is never taken for a checkpoint
    stale = run.new_checkpoint_tmp(8)
    (stale / "trainer_state.json").write_text("{}")
    assert run.latest_checkpoint()[0] == 6
    run.clean_stale_tmp()
    assert not stale.exists()


def test_metrics_truncated_on_resume(tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    for step in range(1, 6):
        run.append_metrics({"step": step, "loss": 1.0 / step})
    with open(run.metrics_path, "a") as fh:
        fh.write('{"step": 6, "lo')  # cut by kill -9
    run.truncate_metrics_after(3)
    assert [r["step"] for r in run.read_metrics()] == [1, 2, 3]


@pytest.mark.parametrize(
    ("schedule", "step", "expected"),
    [
        ("constant", 5, 1.0),
        ("linear", 0, 0.5),  # warm-up: (0+1)/2
        ("linear", 2, 1.0),  # first step after warm-up
        ("linear", 6, 0.5),  # (6-2)/(10-2) = 0.5 progress
        ("cosine", 6, 0.5),  # 0.5*(1+cos(pi*0.5))
        ("cosine", 10, 0.0),
    ],
)
def test_lr_schedule(schedule, step, expected):
    assert math.isclose(lr_lambda(schedule, 2, 10)(step), expected, abs_tol=1e-12)


def test_split_is_deterministic_and_disjoint():
    tr, ev = split_train_eval(50, 0.1, seed=3)
    assert len(ev) == 5 and len(tr) == 45
    assert not set(tr) & set(ev)
    assert (tr, ev) == split_train_eval(50, 0.1, seed=3)
    assert split_train_eval(50, 0.0, seed=3) == (list(range(50)), [])
