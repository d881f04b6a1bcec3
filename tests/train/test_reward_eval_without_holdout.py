"""A reward model trained without held-out pairs on more pairs than its normalisation subset finishes
(found by the GPU smoke run, issue 23): the reward-length correlation then pairs the subset's rewards with
the subset's lengths, not with the lengths of every training pair."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from helpers_train import write_prefs

from rlhfops.models.tiny import make_tiny_model_dir
from rlhfops.train import reward
from rlhfops.train.runner import run_stage


def test_more_pairs_than_the_normalisation_subset_and_no_eval_split(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(reward, "NORM_PAIRS", 4)  # the subset: 4 of the 8 training pairs
    model = make_tiny_model_dir(tmp_path / "model")
    prefs = write_prefs(tmp_path / "prefs.jsonl", n=8)
    args = [f"model={model}", f"data={prefs}", f"output_dir={tmp_path / 'run'}", "eval_fraction=0"]
    result = run_stage("rm", overrides=[*args, "batch_size=4", "max_steps=1", "progress=false"])
    corr = result.summary["eval"]["reward_length_correlation"]  # before the fix: ValueError (4 vs 8 rows)
    assert corr is not None and np.isfinite(corr) and -1 <= corr <= 1
    assert (tmp_path / "run" / "final").is_dir() and (tmp_path / "run" / "summary.json").is_file()
