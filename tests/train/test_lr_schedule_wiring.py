"""The learning-rate schedule reaches the optimizer: the rate of each update follows lr_scheduler and
warmup_ratio as written out here (issue 17)."""

from __future__ import annotations

import math

import pytest
from helpers_train import write_demos
from wiring_helpers import make_trainer, stage_args

from rlhfops.models.tiny import make_tiny_model_dir
from rlhfops.train.config import SFTConfig
from rlhfops.train.sft import SFTTrainer

PEAK = 1e-3
STEPS, WARMUP = 5, 2  # warmup_ratio 0.4 of 5 steps


def _expected(schedule: str) -> list[float]:
    out = []
    for s in range(STEPS):
        if s < WARMUP:
            out.append(PEAK * (s + 1) / WARMUP)
            continue
        progress = (s - WARMUP) / (STEPS - WARMUP)
        mult = {"constant": 1.0, "linear": 1 - progress, "cosine": 0.5 * (1 + math.cos(math.pi * progress))}
        out.append(PEAK * mult[schedule])
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lr")
    return tmp, make_tiny_model_dir(tmp / "tiny"), write_demos(tmp / "d.jsonl", n=12)


@pytest.mark.parametrize("schedule", ["constant", "linear", "cosine"])
def test_each_update_uses_the_scheduled_rate(files, schedule):
    tmp, model, demos = files
    extra = [f"lr_scheduler={schedule}", "warmup_ratio=0.4", f"max_steps={STEPS}", "batch_size=2"]
    trainer = make_trainer(SFTTrainer, SFTConfig, stage_args(tmp, model, demos, f"sft-{schedule}", extra))
    used = []
    for _ in range(STEPS):
        used.append(trainer.optimizer.param_groups[0]["lr"])
        trainer.apply_update()  # no gradients: only the optimizer and the schedule step
    assert used == pytest.approx(_expected(schedule), rel=1e-12)
    trainer.cleanup()


def test_schedules_differ_where_the_maths_says():
    lin, cos = _expected("linear"), _expected("cosine")
    assert lin[:3] == cos[:3] and lin[3] < cos[3] and lin[4] > cos[4]
