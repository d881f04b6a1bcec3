"""The RL stage on 2 FSDP processes with one unit per decoder layer, where one process's responses end first.

With ``--fsdp_auto_wrap_policy TRANSFORMER_BASED_WRAP`` every decoder layer is an FSDP unit of its own, and
each call of the policy gathers every layer's weights from both processes. The tiny model with its EOS logit
raised (``make_tiny_model_dir(eos_boost=1.5)``) ends responses early and at different lengths, so the
processes' rows finish at different steps. Without the sampler's lock-step rule (``generate.keep_stepping``
following ``ppo_rollout.every_process_done``) the process done first stops calling the model and goes on to
the next collective while the other waits in a layer's all-gather: the launch hangs. (With the default wrap
policy the whole model is one unit, gathered once per rollout, and such a break went unnoticed: see
docs/scaling.md.)

A hang fails the test: each worker's watchdog ends it after ``WATCHDOG`` seconds with its stack on stderr,
and the launch is killed with its process group after ``LAUNCH_TIMEOUT``. Cost: one launch of 2 processes,
one PPO iteration of 4 prompts.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from helpers_train import free_port, run_launch, worker_pythonpath, write_prompts

from rlhfops.models.tiny import make_tiny_model_dir

WORKER = Path(__file__).with_name("lockstep_worker.py")
#: seconds before a worker stops itself (stack on stderr); the run takes ~1 minute on a busy 2-core machine
WATCHDOG = 300
LAUNCH_TIMEOUT = WATCHDOG + 60
MAX_NEW = 6
SETTINGS = [
    "reward_fn=length_target:6",
    "batch_size=4",  # 2 prompts per process
    "max_steps=1",
    "minibatch_size=4",
    "ppo_epochs=1",
    f"max_new_tokens={MAX_NEW}",
    "max_length=160",
    "eval_fraction=0",
    "progress=false",
    "seed=3",
]
LAUNCH = [
    "--use_fsdp",
    "--fsdp_version=2",
    # a unit per decoder layer (the classes ActorCritic._no_split_modules names)
    "--fsdp_auto_wrap_policy=TRANSFORMER_BASED_WRAP",
    "--num_processes=2",
    "--num_machines=1",
    "--mixed_precision=no",
    "--dynamo_backend=no",
]


def test_per_layer_fsdp_rl_run_finishes_when_one_process_stops_sampling_first(tmp_path):
    model = make_tiny_model_dir(tmp_path / "tiny-stops", eos_boost=1.5)
    prompts = write_prompts(tmp_path / "prompts.jsonl", n=8)
    out, logs = tmp_path / "run", tmp_path / "logs"
    logs.mkdir()
    sets = [f"model={model}", f"data={prompts}", f"output_dir={out}", *SETTINGS]
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    assert accelerate, "accelerate's console script must be installed next to the test interpreter"
    cmd = [accelerate, "launch", *LAUNCH, f"--main_process_port={free_port()}", str(WORKER), str(logs), *sets]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": worker_pythonpath(WORKER.parent),
        "RLHFOPS_TEST_WATCHDOG": str(WATCHDOG),
    }
    run_launch(cmd, env, LAUNCH_TIMEOUT, "the launch (a worker blocked in a collective?)")

    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["distributed_type"] == "FSDP"
    rollouts = [json.loads((logs / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert len(rollouts[0]) == len(rollouts[1]) == 1  # one iteration, one rollout each
    first, second = rollouts[0][0], rollouts[1][0]
    # what makes the test able to fail: sharded per layer (2 decoder layers + the root), sampled in
    # lock-step, and one process's rows ended (EOS) steps before the other's
    assert first["units"] == second["units"] == 3, (first, second)
    assert first["lockstep"] and second["lockstep"]
    steps = (first["steps"], second["steps"])
    assert steps[0] != steps[1] and min(steps) < MAX_NEW, (first, second)
