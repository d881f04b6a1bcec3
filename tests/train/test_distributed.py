"""What ``accelerate launch`` may ask of a trainer here: FSDP version 2 is accepted (its settings parsed
as accelerate parses them); FSDP version 1 and DeepSpeed without its package are refused in one line
(instead of accelerate silently training with DDP on CPU), and so is what rlhfops does not run under
DeepSpeed (``distributed_rules``: each rule on both sides of its edge, and ``train plan`` and the run in the
same words). FSDP training itself: test_distributed_stages.py; DeepSpeed's: test_deepspeed_cpu.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_train import free_port, worker_pythonpath, write_demos

from rlhfops.errors import ConfigError
from rlhfops.models.tiny import make_tiny_model_dir
from rlhfops.train import distributed
from rlhfops.train.distributed import check_launch, configure_deepspeed, fsdp_plugin_from_env
from rlhfops.train.distributed_rules import deepspeed_refusals

LAUNCH_VARS = (
    "ACCELERATE_USE_FSDP",
    "ACCELERATE_USE_DEEPSPEED",
    "FSDP_VERSION",
    "FSDP_RESHARD_AFTER_FORWARD",
)


@pytest.fixture
def env(monkeypatch):
    for name in LAUNCH_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_a_plain_launch_is_accepted(env):
    assert check_launch(has_gpu=False) is None
    assert check_launch(has_gpu=True) is None
    env.setenv("ACCELERATE_USE_FSDP", "false")
    assert check_launch(has_gpu=False) is None


def test_fsdp_version_2_is_accepted_and_version_1_refused(env):
    env.setenv("ACCELERATE_USE_FSDP", "true")
    env.setenv("FSDP_VERSION", "2")
    assert check_launch(has_gpu=False).fsdp_version == 2  # the plugin the trainer's state is given
    env.setenv("FSDP_VERSION", "1")
    with pytest.raises(ConfigError, match=r"FSDP version 1; rlhfops runs FSDP version 2 .* --fsdp_version 2"):
        check_launch(has_gpu=False)


def test_fsdp_settings_are_parsed_as_accelerate_parses_them(env):
    env.setenv("ACCELERATE_USE_FSDP", "true")
    env.setenv("FSDP_VERSION", "2")
    env.setenv("FSDP_RESHARD_AFTER_FORWARD", "false")
    plugin = fsdp_plugin_from_env()
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is False  # the launch's settings
    env.setenv("FSDP_RESHARD_AFTER_FORWARD", "maybe")
    with pytest.raises(ConfigError, match="FSDP settings are not valid: invalid truth value maybe"):
        check_launch(has_gpu=False)
    env.delenv("FSDP_RESHARD_AFTER_FORWARD")
    env.setenv("FSDP_VERSION", "3")
    with pytest.raises(ConfigError, match="FSDP version 3; rlhfops runs FSDP version 2"):
        check_launch(has_gpu=True)
    env.delenv("FSDP_VERSION")  # accelerate's default: version 1
    with pytest.raises(ConfigError, match="FSDP version 1; .*sync_module_states is not supported on cpu"):
        check_launch(has_gpu=False)


def test_deepspeed_is_refused_when_missing_and_accepted_when_installed(env):
    env.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    env.setattr(distributed.importlib.util, "find_spec", lambda name: None)
    for gpu in (True, False):
        with pytest.raises(ConfigError, match="deepspeed package is not installed"):
            check_launch(has_gpu=gpu)
    env.setattr(distributed.importlib.util, "find_spec", lambda name: object())  # as if installed
    assert check_launch(has_gpu=True) is None  # on a GPU: accelerate's own DeepSpeed path
    assert check_launch(has_gpu=False) is None  # on CPU: make_accelerator sets the state (slow test)


class FakeDeepSpeed:
    """An accelerator as ``configure_deepspeed`` reads it: the distributed type, the plugin's config."""

    def __init__(self, kind: str = "DEEPSPEED", processes: int = 2, zero_stage: int = 2) -> None:
        from accelerate.utils import DistributedType

        self.distributed_type = DistributedType[kind]
        self.num_processes = processes
        self.config = {"train_micro_batch_size_per_gpu": "auto", "gradient_clipping": "auto"}
        plugin = type("Plugin", (), {"deepspeed_config": self.config, "zero_stage": zero_stage})()
        self.state = type("State", (), {"deepspeed_plugin": plugin})()


def _stage_config(stage: str, *sets: str):
    from rlhfops.config import load_config
    from rlhfops.train.runner import STAGES

    return load_config(STAGES[stage], None, ["model=m", "data=d.jsonl", *sets], stage=stage)


def test_configure_deepspeed_sets_the_micro_batch_and_clipping_from_the_stage():
    acc = FakeDeepSpeed()
    cfg = _stage_config("sft", "batch_size=8", "save_every=4", "max_grad_norm=0.5")
    configure_deepspeed(acc, cfg, per_device_micro_batch=4)
    assert acc.config == {
        "train_micro_batch_size_per_gpu": 4,  # what accelerate would read from a prepared dataloader
        "gradient_accumulation_steps": 1,
        "train_batch_size": 8,
        "gradient_clipping": 0.5,  # the stage's max_grad_norm, not DeepSpeed's default
    }
    ddp = FakeDeepSpeed("MULTI_CPU")  # not DeepSpeed: nothing refused, nothing set
    configure_deepspeed(ddp, _stage_config("sft", "gradient_accumulation_steps=2", "save_every=1"), 4)
    configure_deepspeed(ddp, _stage_config("ppo", "reward_fn=length_target:6"), 4)
    assert ddp.config["train_micro_batch_size_per_gpu"] == "auto"


#: the RL stage without a value head (its ZeRO-3 checkpoints were refused until test_deepspeed_cpu resumed
#: them)
GRPO = ("reward_fn=length_target:6", "advantage_estimator=grpo", "samples_per_prompt=2")


def test_each_deepspeed_rule_on_both_sides_of_its_edge():
    """One rule per refusal (``distributed_rules``), one line each; a config on the allowed side of every
    edge gives no refusal."""
    ok = ["save_every=4", "gradient_checkpointing=true"]

    def refused(stage: str, *sets: str, zero: int = 2, **kw) -> list[str]:
        return deepspeed_refusals(_stage_config(stage, *ok, *sets), zero, **kw)

    assert refused("sft") == refused("rm") == refused("sft", zero=3) == []
    # gradient accumulation: rlhfops's and DeepSpeed's own, each above 1
    assert refused("rm", "gradient_accumulation_steps=1", engine_accumulation=1) == []
    (line,) = refused("rm", "gradient_accumulation_steps=2")
    assert line.startswith("gradient_accumulation_steps=2 (deepspeed_config: None) under DeepSpeed: its")
    (line,) = refused("rm", engine_accumulation=2)
    assert line.startswith("gradient_accumulation_steps=1 (deepspeed_config: 2) under DeepSpeed")
    # checkpoints: no rule. Written and resumed under ZeRO-1/2/3 by every stage (test_deepspeed_cpu resumes
    # SFT, RM, DPO, PPO with GAE, GRPO and RLOO across process counts under ZeRO-2 and ZeRO-3); GRPO's and
    # RLOO's under ZeRO-3 were refused until then, a checkpoint within the run's steps and --resume alike
    z3 = "gradient_checkpointing=true"
    rl = "reward_fn=length_target:6"
    every = (["sft"], ["rm"], ["dpo"], ["dpo", "loss_type=ipo"], ["ppo", rl], ["ppo", *GRPO],
             ["ppo", rl, "advantage_estimator=rloo", "samples_per_prompt=2"])  # fmt: skip
    for zero in (1, 2, 3):
        for stage, *sets in every:
            assert deepspeed_refusals(_stage_config(stage, "save_every=1", z3, *sets), zero) == [], sets
    # the RL stage runs under ZeRO-2 and ZeRO-3 (lock-step sampling over ZeRO-3's partitions): no rule
    assert refused("ppo", rl, zero=2) == refused("ppo", rl, zero=3) == []
    # ZeRO-3 and selective checkpointing (the default): refused; whole layers or none run (slow test)
    selective = _stage_config("sft", "save_every=4")
    assert selective.gradient_checkpointing == "selective"
    assert deepspeed_refusals(selective, 2) == []
    (line,) = deepspeed_refusals(selective, 3)
    assert line.startswith("gradient_checkpointing: selective under DeepSpeed ZeRO-3 fails in backward")
    assert refused("sft", "gradient_checkpointing=false", zero=3) == []
    both = deepspeed_refusals(_stage_config("ppo", *GRPO, "gradient_accumulation_steps=2"), 3)
    assert len(both) == 2 and all("\n" not in x for x in both)  # one line per rule


def test_the_run_refuses_with_the_plans_message():
    """``configure_deepspeed`` (when a run starts) raises the first refusal ``train plan`` lists, in the same
    words; DeepSpeed's own gradient_accumulation_steps is read from the launch's plugin ("auto": not set)."""
    from rlhfops.train.plan import SHAPES, Launch, build_plan

    shape = SHAPES["135m"]
    cases = [
        ("rm", ["gradient_accumulation_steps=2"], 2, None),
        ("ppo", [*GRPO, "gradient_accumulation_steps=2", "gradient_checkpointing=true"], 3, None),
        ("sft", [], 3, None),
        ("ppo", ["reward_fn=length_target:6"], 3, None),  # the RL stage: selective checkpointing only
        ("sft", [], 2, 2),
    ]
    for stage, sets, zero, engine in cases:
        cfg = _stage_config(stage, "max_steps=3", "batch_size=8", *sets)
        launch = Launch("a.yaml", "DEEPSPEED", 2, 1, "no", zero, 2, deepspeed_gradient_accumulation=engine)
        problems = build_plan(stage, cfg, launch, shape).problems
        acc = FakeDeepSpeed(zero_stage=zero)
        acc.config["gradient_accumulation_steps"] = "auto" if engine is None else engine
        with pytest.raises(ConfigError) as err:
            configure_deepspeed(acc, cfg, 4)
        assert problems == [str(err.value)], (stage, sets)  # the same rule, the same words
    acc = FakeDeepSpeed()
    acc.config["gradient_accumulation_steps"] = 1
    configure_deepspeed(acc, _stage_config("sft", "save_every=4"), 4)
    for stage, *sets in (["sft"], ["dpo"], ["ppo", *GRPO]):  # checkpoints within the run, under ZeRO-3
        three = _stage_config(stage, "save_every=1", "gradient_checkpointing=true", *sets)
        configure_deepspeed(FakeDeepSpeed(zero_stage=3), three, 4)


def test_accelerate_launch_with_fsdp_version_1_exits_2_with_one_line(tmp_path):
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    rlhfops = shutil.which("rlhfops", path=str(Path(sys.executable).parent))
    assert accelerate and rlhfops
    model = make_tiny_model_dir(tmp_path / "tiny")
    data = write_demos(tmp_path / "d.jsonl")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": worker_pythonpath(Path(__file__).parent)}
    sets = [f"model={model}", f"data={data}", f"output_dir={tmp_path / 'run'}", "batch_size=8", "max_steps=1"]
    cmd = [
        accelerate, "launch", "--use_fsdp", "--fsdp_version=1", "--num_processes=2", "--num_machines=1",
        "--mixed_precision=no", "--dynamo_backend=no", f"--main_process_port={free_port()}",
        rlhfops, "train", "sft", *[x for s in sets for x in ("--set", s)],
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "accelerate launch asked for FSDP version 1; rlhfops runs" in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_the_rl_stage_is_refused_under_fsdp():
    from accelerate.utils import DistributedType

    from rlhfops.train.distributed import refuse_fsdp

    class Fake:
        distributed_type = DistributedType.FSDP

    with pytest.raises(ConfigError, match="ppo does not run under FSDP: .*; launch it with DDP"):
        refuse_fsdp(Fake(), "ppo", "why")
    Fake.distributed_type = DistributedType.MULTI_CPU
    refuse_fsdp(Fake(), "ppo", "why")


class FakeZero3Partition:
    """What ``distributed._into_zero3_partition`` reads of DeepSpeed's ZeRO-3 optimizer, for one parameter
    on process ``rank`` of ``world``: its partition of the master weight and of AdamW's two moments, each
    ``ceil(numel / world)`` elements, holding the flattened whole narrowed at ``rank x partition size``, the
    last one zero-padded (deepspeed 0.19.8: ``partition_parameters._padding_size`` / ``_partition_numel``,
    ``stage3.set_grad_positions``, ``_get_fp32_opt_state_partition``)."""

    def __init__(self, rank: int, world: int, numel: int) -> None:
        import torch

        self.rank, size = rank, -(-numel // world)
        self.parts = {key: torch.full((size,), -1.0) for key in ("", "exp_avg", "exp_avg_sq")}

    def _get_param_partition_rank(self, param):
        return self.rank

    def _get_fp32_opt_state_partition(self, param, release_swap_buffers, optim_state_key=None):
        return self.parts[optim_state_key or ""], 0


@pytest.mark.parametrize("numel,world", [(1, 2), (5, 2), (7, 3), (6, 2)])
def test_a_zero3_resume_pads_a_parameter_the_process_count_does_not_divide(numel, world):
    """ZeRO-3 pads a parameter's flattened tensor to a multiple of the process count, so the last process's
    partition runs past its end (1 element on 2 processes: the value head's and the reward head's bias; 5 on
    2; 7 on 3). Every process copies its slice of the checkpoint's whole tensors into its partitions: put
    together they are the whole tensors, then zeros (DeepSpeed's own ``set_full_hp_param`` narrows past the
    end there). The launches (test_deepspeed_cpu, PPO's value head and RM's head under ZeRO-3) run this with
    DeepSpeed's real partitions of 1-element biases."""
    import torch

    whole = torch.arange(1.0, numel + 1).reshape(-1, 1) if numel % 2 else torch.arange(1.0, numel + 1)
    saved = {"exp_avg": whole * 10, "exp_avg_sq": whole * 100}
    fakes = [FakeZero3Partition(rank, world, numel) for rank in range(world)]
    for fake in fakes:
        distributed._into_zero3_partition(fake, None, whole, saved)
    pad = -(-numel // world) * world - numel
    for key, value in (("", whole), *saved.items()):
        joined = torch.cat([fake.parts[key] for fake in fakes])
        assert joined.tolist() == value.reshape(-1).tolist() + [0.0] * pad, key
