"""The run plan (rlhfops.train.plan, issue 23): the docs/scaling examples load and plan without a GPU, and
each decision the plan makes is checked on both sides of its edge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from shared_helpers import run_cli

from rlhfops.errors import ConfigError
from rlhfops.train.config import DPOConfig, RewardConfig, SFTConfig
from rlhfops.train.plan import (
    GPUS,
    SHAPES,
    USABLE_SHARE,
    Gpu,
    Launch,
    build_plan,
    check_split,
    plan_run,
    read_accelerate_config,
    single_process,
)
from rlhfops.train.ppo_config import PPOConfig

SCALING = Path(__file__).resolve().parents[2] / "docs" / "scaling"
STAGE_FILES = sorted(p for p in SCALING.glob("*.yaml") if not p.name.endswith(".accelerate.yaml"))
LAUNCH_FILES = sorted(SCALING.glob("*.accelerate.yaml"))
# what each accelerate example must resolve to: (processes, machines, ZeRO stage, engine)
EXPECTED_LAUNCH = {
    "one-gpu": (1, 1, 0, "one process"),
    "eight-gpu-ddp": (8, 1, 0, "DDP"),
    "eight-gpu-fsdp": (8, 1, 3, "FSDP"),
    "two-node-fsdp": (16, 2, 3, "FSDP"),
}


def _parts(path: Path) -> tuple[str, str, str]:
    """``7b-sft-lora.one-gpu.yaml`` -> (size '7b', stage 'sft', launch 'one-gpu')."""
    run, launch, _ = path.name.split(".")
    size, stage = run.split("-")[:2]
    return size, stage, launch


def test_the_examples_cover_one_gpu_eight_gpus_and_two_nodes_for_small_and_7b_models() -> None:
    assert {p.name.split(".")[0] for p in LAUNCH_FILES} == set(EXPECTED_LAUNCH)
    combos = {(_parts(p)[0], _parts(p)[2]) for p in STAGE_FILES}
    for launch in EXPECTED_LAUNCH:
        assert any(where == launch for _, where in combos), launch
    assert {size for size, _ in combos} >= {"1b", "3b", "7b"}
    assert {_parts(p)[1] for p in STAGE_FILES} >= {"sft", "dpo", "ppo"}


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_each_accelerate_example_is_read_as_accelerate_reads_it(path: Path) -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    theirs = load_config_from_file(str(path))  # accelerate's own loader refuses unknown keys
    ours = read_accelerate_config(path)
    assert (ours.num_processes, ours.num_machines, ours.zero_stage, ours.engine) == EXPECTED_LAUNCH[
        path.name.split(".")[0]
    ]
    assert ours.num_processes == theirs.num_processes
    assert ours.mixed_precision == str(theirs.mixed_precision) == "bf16"


@pytest.mark.parametrize("path", STAGE_FILES, ids=lambda p: p.name)
def test_each_stage_example_plans_without_problems_on_an_80gb_gpu(path: Path) -> None:
    size, stage, launch = _parts(path)
    plan = plan_run(stage, path, None, SCALING / f"{launch}.accelerate.yaml", size, "a100-80gb")
    assert plan.problems == [], plan.problems
    assert plan.fits is True
    world, machines, zero, engine = EXPECTED_LAUNCH[launch]
    assert (plan.world_size, plan.machines, plan.zero_stage, plan.engine) == (world, machines, zero, engine)
    assert plan.compute_dtype == "bfloat16"
    assert ("lora" in path.name) == (plan.trainable_params < plan.params / 50)
    if stage != "ppo":
        assert plan.per_device_micro_batch * plan.gradient_accumulation_steps * world == plan.global_batch
    # the same file under the CLI: exit 0 and the same figures in JSON
    assert plan.memory_per_gpu_gb < USABLE_SHARE * 80


def test_the_cli_prints_the_plan_and_exits_1_on_a_problem(capsys) -> None:
    path = SCALING / "1b-sft.one-gpu.yaml"
    launch = SCALING / "one-gpu.accelerate.yaml"
    argv = ["train", "plan", "sft", "-c", str(path), "--accelerate-config", str(launch), "--model-size", "1b"]
    code, out, _ = run_cli([*argv, "--gpu", "a100-80gb", "--json"], capsys)
    assert code == 0
    assert json.loads(out)["per_device_micro_batch"] == 8
    code, out, _ = run_cli([*argv, "--gpu", "v100-32gb"], capsys)
    assert code == 1
    assert "problem: bf16 asked" in out and "V100" in out
    code, _, err = run_cli([*argv, "--gpu", "b200"], capsys)
    assert code == 2 and err.count("\n") == 1 and "--gpu 'b200'" in err


# ---- decisions, both sides ---------------------------------------------------------------------------
def _sft(**kw) -> SFTConfig:
    return SFTConfig(data="x.jsonl", **kw)


def _launch(**kw) -> Launch:
    base = {"source": "test.yaml", "distributed_type": "MULTI_GPU", "num_processes": 8, "num_machines": 1}
    base |= {"mixed_precision": "bf16", "zero_stage": 0, "shard_over": 8}
    return Launch(**(base | kw))


def test_bf16_on_a_gpu_without_bf16_is_reported_and_not_on_one_with_it() -> None:
    cfg, shape = _sft(batch_size=8), SHAPES["1b"]
    assert any(
        "bf16 asked" in p for p in build_plan("sft", cfg, _launch(), shape, GPUS["v100-32gb"]).problems
    )
    assert not any("bf16" in p for p in build_plan("sft", cfg, _launch(), shape, GPUS["a100-80gb"]).problems)
    fp16 = build_plan("sft", cfg, _launch(mixed_precision="fp16"), shape, GPUS["v100-32gb"])
    assert not any("bf16" in p for p in fp16.problems) and fp16.compute_dtype == "float16"
    pure = build_plan("sft", _sft(batch_size=8, dtype="bfloat16"), single_process(), shape, GPUS["t4-16gb"])
    assert any("bf16 asked" in p for p in pure.problems)


def test_two_16_bit_formats_are_reported() -> None:
    cfg = _sft(batch_size=8, dtype="bfloat16")
    assert any(
        "two 16-bit" in p
        for p in build_plan("sft", cfg, _launch(mixed_precision="fp16"), SHAPES["1b"]).problems
    )
    assert not any("two 16-bit" in p for p in build_plan("sft", cfg, _launch(), SHAPES["1b"]).problems)


def test_a_batch_that_does_not_split_over_the_processes_is_a_one_line_error() -> None:
    assert check_split(_sft(batch_size=16, gradient_accumulation_steps=2), 8).per_device_micro_batch == 1
    with pytest.raises(ConfigError) as err:
        check_split(_sft(batch_size=12, gradient_accumulation_steps=1), 8)
    assert "\n" not in str(err.value) and "12" in str(err.value) and "8 processes" in str(err.value)
    with pytest.raises(ConfigError):
        build_plan("sft", _sft(batch_size=12), _launch(), SHAPES["1b"])


def test_the_rl_minibatch_must_split_over_the_processes() -> None:
    ok = PPOConfig(data="p.jsonl", reward_fn="length", batch_size=8, minibatch_size=8)
    split = check_split(ok, 4)
    assert (split.per_device_rollout, split.per_device_minibatch) == (2, 2)
    bad = PPOConfig(data="p.jsonl", reward_fn="length", batch_size=8, minibatch_size=2)
    with pytest.raises(ConfigError, match="minibatch_size=2 responses cannot be split over 4"):
        check_split(bad, 4)


def test_the_trainer_refuses_the_split_the_plan_refuses(tmp_path: Path, monkeypatch) -> None:
    """Trainer.setup calls check_split: a world of 8 (faked) refuses batch 12 before loading anything."""
    import accelerate

    from rlhfops.train.runner import trainer_class

    class Fake:
        num_processes, process_index, is_main_process = 8, 0, True

    monkeypatch.setattr(accelerate, "Accelerator", lambda **_: Fake())
    trainer = trainer_class("sft")(_sft(batch_size=12, output_dir=str(tmp_path / "run")))
    with pytest.raises(ConfigError, match="cannot be split over 8 processes"):
        trainer.setup()
    assert not (tmp_path / "run").exists()


def test_the_memory_estimate_decides_fit_at_the_usable_share_of_the_gpu() -> None:
    plan = build_plan("sft", _sft(batch_size=8), single_process(), SHAPES["1b"])
    assert plan.fits is None  # no GPU given: no verdict
    edge = plan.memory_per_gpu_gb / USABLE_SHARE
    above = build_plan(
        "sft", _sft(batch_size=8), single_process(), SHAPES["1b"], Gpu("big", edge + 0.1, True)
    )
    below = build_plan(
        "sft", _sft(batch_size=8), single_process(), SHAPES["1b"], Gpu("small", edge - 0.1, True)
    )
    assert above.fits is True and above.problems == []
    assert below.fits is False and any("DOES NOT FIT" in line for line in below.lines())


def test_zero_stages_shard_what_they_should() -> None:
    cfg, shape = _sft(batch_size=8), SHAPES["7b"]
    ddp = build_plan("sft", cfg, _launch(), shape).memory_gb
    z2 = build_plan("sft", cfg, _launch(distributed_type="FSDP", zero_stage=2), shape).memory_gb
    z3 = build_plan("sft", cfg, _launch(distributed_type="FSDP", zero_stage=3), shape).memory_gb
    assert z2["weights"] == ddp["weights"] and z2["gradients"] == pytest.approx(
        ddp["gradients"] / 8, abs=0.01
    )
    assert z3["weights"] == pytest.approx(ddp["weights"] / 8, abs=0.01)
    assert z3["optimizer"] == z2["optimizer"] == pytest.approx(ddp["optimizer"] / 8, abs=0.01)


@pytest.mark.parametrize(
    ("fsdp", "zero", "shard_over"),
    [
        ({"fsdp_sharding_strategy": "FULL_SHARD"}, 3, 16),
        ({"fsdp_sharding_strategy": "SHARD_GRAD_OP"}, 2, 16),
        ({"fsdp_sharding_strategy": "NO_SHARD"}, 0, 16),
        ({"fsdp_sharding_strategy": "HYBRID_SHARD"}, 3, 8),
        ({"fsdp_reshard_after_forward": False}, 2, 16),
    ],
)
def test_fsdp_strategies_map_to_zero_stages(tmp_path: Path, fsdp: dict, zero: int, shard_over: int) -> None:
    path = tmp_path / "a.yaml"
    cfg = {"distributed_type": "FSDP", "num_processes": 16, "num_machines": 2, "main_process_ip": "h"}
    path.write_text(json.dumps(cfg | {"fsdp_config": fsdp}))
    launch = read_accelerate_config(path)
    assert (launch.zero_stage, launch.shard_over) == (zero, shard_over)


def test_bad_accelerate_configs_are_one_line_errors(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    for text, words in [
        ('{"num_processes": 3, "num_machines": 2}', "not a positive multiple"),
        ('{"distributed_type": "TPU"}', "distributed_type='TPU'"),
        ('{"mixed_precision": "int4"}', "mixed_precision='int4'"),
        ("[1, 2]", "expected a mapping"),
    ]:
        path.write_text(text)
        with pytest.raises(ConfigError, match=words) as err:
            read_accelerate_config(path)
        assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="not found"):
        read_accelerate_config(tmp_path / "missing.yaml")


def test_launch_problems_on_both_sides() -> None:
    cfg, shape = _sft(batch_size=16), SHAPES["1b"]
    lora = _sft(batch_size=16, lora={"enabled": True})

    def problems(config, **kw) -> str:
        return " | ".join(build_plan("sft", config, _launch(**kw), shape).problems)

    assert "main_process_ip" in problems(cfg, num_machines=2)
    assert "main_process_ip" not in problems(cfg, num_machines=2, main_process_ip="10.0.0.1")
    assert "use_orig_params" in problems(lora, distributed_type="FSDP", fsdp_use_orig_params=False)
    assert "use_orig_params" not in problems(lora, distributed_type="FSDP", fsdp_use_orig_params=True)
    assert "use_orig_params" not in problems(cfg, distributed_type="FSDP", fsdp_use_orig_params=False)
    # DeepSpeed: the rules of distributed_rules (each on both sides there), read from the accelerate file
    accum = "gradient_accumulation_steps=2 (deepspeed_config: None) under DeepSpeed"
    assert accum in problems(_sft(batch_size=16, gradient_accumulation_steps=2), distributed_type="DEEPSPEED")
    assert "(deepspeed_config: 4) under DeepSpeed" in problems(
        cfg, distributed_type="DEEPSPEED", deepspeed_gradient_accumulation=4
    )  # DeepSpeed's own, from the accelerate file
    assert "DeepSpeed" not in problems(cfg, distributed_type="DEEPSPEED", deepspeed_gradient_accumulation=1)
    ds = {"distributed_type": "DEEPSPEED", "zero_stage": 3}
    z3 = {"gradient_checkpointing": True}
    # ZeRO-3 checkpoints: every stage's are written (resumed across process counts in test_deepspeed_cpu);
    # GRPO's and RLOO's were refused until then: no problem within the run's steps now
    assert "checkpoint" not in problems(_sft(max_steps=10, save_every=10, **z3), **ds)
    pairs = {"data": "p", "batch_size": 8, "max_steps": 10, **z3}
    for cls, stage in ((DPOConfig, "dpo"), (RewardConfig, "rm")):
        within = build_plan(stage, cls(save_every=10, **pairs), _launch(**ds), shape).problems
        assert within == [], (stage, within)
    rl = {
        "data": "p.jsonl",
        "reward_fn": "length",
        "batch_size": 8,
        "minibatch_size": 8,
        "max_steps": 10,
        **z3,
    }
    for estimator, extra in (
        ("gae", {}),
        ("grpo", {"samples_per_prompt": 2}),
        ("rloo", {"samples_per_prompt": 2}),
    ):
        cfg_rl = PPOConfig(save_every=1, advantage_estimator=estimator, **extra, **rl)
        within = build_plan("ppo", cfg_rl, _launch(**ds), shape).problems
        assert within == [], (estimator, within)
    assert "checkpoint" not in problems(
        _sft(max_steps=10, save_every=10), distributed_type="DEEPSPEED", zero_stage=2
    )
    zero3 = {"distributed_type": "DEEPSPEED", "zero_stage": 3}
    assert "selective under DeepSpeed ZeRO-3" in problems(cfg, **zero3)  # the default checkpointing
    assert "selective under DeepSpeed ZeRO-3" not in problems(cfg, distributed_type="DEEPSPEED", zero_stage=2)
    for whole in (True, False):
        assert "selective" not in problems(_sft(batch_size=16, gradient_checkpointing=whole), **zero3)
    ppo = PPOConfig(data="p.jsonl", reward_fn="length", batch_size=8, minibatch_size=8)
    deepspeed = {"distributed_type": "DEEPSPEED"}
    for zero in (2, 3):  # the RL stage runs under ZeRO-2 and ZeRO-3
        whole = PPOConfig(
            data="p.jsonl", reward_fn="length", batch_size=8, minibatch_size=8, gradient_checkpointing=True
        )
        assert build_plan("ppo", whole, _launch(**deepspeed, zero_stage=zero), shape).problems == []
    rl = " | ".join(build_plan("ppo", ppo, _launch(distributed_type="FSDP"), shape).problems)
    assert "DeepSpeed" not in rl
    assert "both recompute" in problems(cfg, distributed_type="FSDP", fsdp_activation_checkpointing=True)
    off = _sft(batch_size=16, gradient_checkpointing=False)
    plan = build_plan("sft", off, _launch(distributed_type="FSDP", fsdp_activation_checkpointing=True), shape)
    assert plan.problems == [] and plan.gradient_checkpointing == "True"
    assert "distributed_type NO" in problems(cfg, distributed_type="NO")


def test_checkpointing_and_lora_lower_the_estimate() -> None:
    shape = SHAPES["3b"]
    parts = {
        mode: build_plan(
            "dpo", DPOConfig(data="p", batch_size=8, gradient_checkpointing=mode), single_process(), shape
        )
        for mode in (False, "selective", True)
    }
    acts = [parts[m].memory_gb["activations"] for m in (False, "selective", True)]
    assert acts[0] > acts[1] > acts[2]
    lora = build_plan(
        "dpo", DPOConfig(data="p", batch_size=8, lora={"enabled": True}), single_process(), shape
    )
    assert lora.memory_gb["optimizer"] < parts["selective"].memory_gb["optimizer"] / 50


def test_the_rl_stage_counts_reference_reward_model_and_kv_cache() -> None:
    shape = SHAPES["1b"]
    full = build_plan("ppo", PPOConfig(data="p", reward_model="rm", batch_size=8), single_process(), shape)
    lora = build_plan(
        "ppo",
        PPOConfig(data="p", reward_fn="length", batch_size=8, lora={"enabled": True}),
        single_process(),
        shape,
    )
    assert full.memory_gb["reference"] == full.memory_gb["weights"] == full.memory_gb["reward_model"]
    assert lora.memory_gb["reference"] == 0 and lora.memory_gb["reward_model"] == 0
    assert full.memory_gb["kv_cache"] > 0


def test_the_rl_stage_shards_the_policy_and_value_model_not_the_reference_or_reward_model() -> None:
    """Under FSDP the trained module (policy, value head or value model) is sharded; the frozen reference
    copy and the reward model are whole on every process (what ``ppo.build_model`` builds)."""
    shape = SHAPES["1b"]
    cfg = PPOConfig(data="p", reward_model="rm", batch_size=8, minibatch_size=8, value_model="separate")
    ddp = build_plan("ppo", cfg, _launch(), shape).memory_gb
    z3 = build_plan("ppo", cfg, _launch(distributed_type="FSDP", zero_stage=3), shape).memory_gb
    assert z3["weights"] == pytest.approx(ddp["weights"] / 8, abs=0.01)
    assert z3["reference"] == ddp["reference"] == ddp["weights"]
    assert z3["reward_model"] == ddp["reward_model"] == ddp["weights"]
    assert z3["value_model"] == pytest.approx(ddp["value_model"] / 8, abs=0.01)


@pytest.mark.parametrize("size", ["135m", "1b", "7b"])
def test_parameter_counts_match_transformers(size: str) -> None:
    """Built on the meta device (no memory): the shape's count is the model's."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    shape = SHAPES[size]
    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(**shape.llama_config()))
    assert shape.params() == sum(p.numel() for p in model.parameters())


def test_lora_count_matches_peft() -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    shape = SHAPES["135m"]
    with torch.device("meta"):
        model = get_peft_model(
            LlamaForCausalLM(LlamaConfig(**shape.llama_config())),
            LoraConfig(r=8, target_modules="all-linear"),
        )
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert shape.lora_params(8) == trainable
