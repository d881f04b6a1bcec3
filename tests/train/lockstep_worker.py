"""Worker for the per-layer FSDP lock-step test: ``rlhfops train ppo`` with the sampler watched.

Run as ``accelerate launch ... lockstep_worker.py LOG_DIR SETTING...``. Before training it wraps the
sampler the RL stage calls (``ppo_rollout._generate``) to record, for every rollout, how many tokens this
process's own rows took (the steps it sampled, without the lock-step's placeholder steps) and how many FSDP
units the policy it samples from has; rank ``r`` writes them to ``LOG_DIR/rank-r.json`` when the run ends.

A watchdog (``faulthandler``) ends the process after ``RLHFOPS_TEST_WATCHDOG`` seconds with every thread's
stack on stderr: a process blocked in a collective the other process never joins fails the launch, with
the place it waited, instead of hanging until gloo's own timeout.
"""

from __future__ import annotations

import faulthandler
import json
import os
import sys
from pathlib import Path
from typing import Any


def main(log_dir: str, overrides: list[str]) -> None:
    faulthandler.dump_traceback_later(float(os.environ.get("RLHFOPS_TEST_WATCHDOG", "600")), exit=True)
    from torch.distributed.fsdp import FSDPModule

    from rlhfops.train import ppo_rollout
    from rlhfops.train.runner import run_stage

    rollouts: list[dict[str, Any]] = []
    sample = ppo_rollout._generate

    def watched(trainer: Any, *args: Any, **kwargs: Any) -> Any:
        out = sample(trainer, *args, **kwargs)
        units = sum(isinstance(m, FSDPModule) for m in trainer.model.modules())
        lockstep = ppo_rollout.every_process_done(trainer) is not None
        rollouts.append({"steps": int(out.response_ids.shape[1]), "lockstep": lockstep, "units": units})
        return out

    ppo_rollout._generate = watched
    run_stage("ppo", None, overrides)
    rank = os.environ.get("RANK", "0")
    Path(log_dir, f"rank-{rank}.json").write_text(json.dumps(rollouts))
    faulthandler.cancel_dump_traceback_later()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
