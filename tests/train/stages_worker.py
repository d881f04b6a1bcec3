"""Worker for the distributed-stages test: runs every job of a plan in one process group.

Run as ``python stages_worker.py PLAN.json`` (one process) or under ``accelerate launch ... stages_worker.py
PLAN.json`` (several). PLAN.json is a list of jobs ``{"kind", "stage", "out", "overrides", "stop_at"}``:

- ``run``: the whole run, as ``rlhfops train STAGE --set ...`` runs it (``run_stage``);
- ``partial``: the same run stopped after step ``stop_at``, right after writing that step's checkpoint (what
  a run killed after a checkpoint leaves);
- ``resume``: ``rlhfops train STAGE --resume OUT``.
"""

from __future__ import annotations

import json
import sys

from rlhfops.config import load_config
from rlhfops.train.runner import STAGES, run_stage, trainer_class


def partial(stage: str, overrides: list[str], stop_at: int) -> None:
    trainer = trainer_class(stage)(load_config(STAGES[stage], None, overrides, stage=stage))
    try:
        trainer.setup()
        trainer.before_train()
        for step in range(1, stop_at + 1):
            record = trainer.step(step)
            if trainer.is_main:
                trainer.run.append_metrics(record)
        trainer.save_checkpoint(stop_at)
    finally:
        trainer.cleanup()


def main(plan_path: str) -> None:
    for job in json.loads(open(plan_path).read()):
        if job["kind"] == "run":
            run_stage(job["stage"], None, job["overrides"])
        elif job["kind"] == "partial":
            partial(job["stage"], job["overrides"], job["stop_at"])
        else:
            run_stage(job["stage"], None, None, resume=job["out"])


if __name__ == "__main__":
    main(sys.argv[1])
