"""The plan of a run: what a stage config under an ``accelerate launch`` config resolves to, before a GPU.

``build_plan`` is pure (no torch): from the stage's settings, the accelerate config file (distributed
type, processes, machines, mixed precision, FSDP / DeepSpeed sharding), the model's shape and a GPU
type it resolves world size, per-device batch, gradient accumulation, global batch, precision,
activation checkpointing, LoRA, ZeRO stage and an estimate of the memory each GPU needs, and lists the
problems (bf16 asked on a GPU without it, an estimate above the GPU's memory, LoRA under FSDP without
``use_orig_params``, ...). A batch that cannot be split over the processes is a one-line ConfigError,
raised by :func:`check_split` -- the same rule ``Trainer.setup`` applies when a run starts.

The memory estimate is a sum of parts (bytes per GPU), rough by design:

- weights ``P * bytes(dtype)``, sharded over the processes at ZeRO-3 (FSDP FULL_SHARD);
- gradients ``T * bytes`` (``T`` trainable parameters; LoRA adapters are float32, peft's default),
  sharded from ZeRO-2; AdamW's two states ``2 * T * bytes``, sharded from ZeRO-1;
- activations of one micro-batch, per token and decoder layer in the compute dtype: ``9h + 3kv + 4i``
  elements kept without checkpointing (norm inputs/outputs, q/k/v, rotary, attention and MLP outputs),
  ``5h + 2kv + 2i`` with selective checkpointing (matmul and attention outputs only; Korthikanti et al.
  2022, sec. 4.3), ``h`` with whole-layer checkpointing plus one layer's full set while it is rerun;
  plus the logits, ``tokens * vocab * (bytes + 4)`` (a float32 log-softmax), an upper bound since
  rlhfops computes the LM head on completion positions only;
- RL stage: a frozen reference copy (none with LoRA: the adapter is switched off), a reward model of the
  policy's shape (none for a programmatic reward), a separate value model, and the generation KV cache;
  the reference copy and the reward model are whole on every process at any ZeRO stage (rlhfops shards
  only the trained module, policy and value; ``docs/scaling.md``), the value model is sharded with it;
- ``CUDA_OVERHEAD_GB`` for the CUDA context and the allocator. A plan fits when the sum is at most
  ``USABLE_SHARE`` of the GPU's memory.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rlhfops.config import load_config
from rlhfops.errors import ConfigError
from rlhfops.train.config import TrainConfig
from rlhfops.train.distributed_rules import deepspeed_refusals
from rlhfops.train.ppo_config import PPOConfig
from rlhfops.train.runner import STAGES

GB = 1024**3
CUDA_OVERHEAD_GB = 2.0  # CUDA context, cuBLAS workspaces, allocator fragmentation
USABLE_SHARE = 0.9  # of a GPU's memory a plan may fill
PAIR_STAGES = ("rm", "dpo")  # a row is a pair: chosen and rejected are both run


@dataclass(frozen=True)
class Gpu:
    """A GPU type: its name, memory in GB and whether it computes in bfloat16 (Ampere and newer)."""

    name: str
    memory_gb: float
    bf16: bool


GPUS: dict[str, Gpu] = {
    "h100-80gb": Gpu("H100 80GB", 80, True),
    "a100-80gb": Gpu("A100 80GB", 80, True),
    "a100-40gb": Gpu("A100 40GB", 40, True),
    "l40s-48gb": Gpu("L40S 48GB", 48, True),
    "a10g-24gb": Gpu("A10G 24GB", 24, True),
    "l4-24gb": Gpu("L4 24GB", 24, True),
    "v100-32gb": Gpu("V100 32GB", 32, False),
    "t4-16gb": Gpu("T4 16GB", 16, False),
}


@dataclass(frozen=True)
class ModelShape:
    """A Llama-style decoder's shape (what its parameter count and activations follow)."""

    name: str
    vocab: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    tied: bool

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def layer_linears(self) -> list[tuple[int, int]]:
        """(in, out) of every linear layer of one decoder layer: q, k, v, o, gate, up, down."""
        h, kv, i = self.hidden, self.kv_heads * self.head_dim, self.intermediate
        return [(h, h), (h, kv), (h, kv), (h, h), (h, i), (h, i), (i, h)]

    def params(self) -> int:
        per_layer = sum(a * b for a, b in self.layer_linears()) + 2 * self.hidden  # two RMSNorms
        embeddings = self.vocab * self.hidden * (1 if self.tied else 2)
        return embeddings + self.layers * per_layer + self.hidden

    def lora_params(self, r: int) -> int:
        """Trainable parameters of a rank-``r`` adapter on every linear layer ('all-linear')."""
        return self.layers * sum(r * (a + b) for a, b in self.layer_linears())

    def llama_config(self) -> dict[str, Any]:
        """The fields of a transformers ``LlamaConfig`` with this shape."""
        return {
            "vocab_size": self.vocab,
            "hidden_size": self.hidden,
            "intermediate_size": self.intermediate,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads,
            "tie_word_embeddings": self.tied,
        }


SHAPES: dict[str, ModelShape] = {
    # the bundled SmolLM2-135M-Instruct
    "135m": ModelShape("SmolLM2-135M", 49152, 576, 1536, 30, 9, 3, True),
    # Llama-3.2-1B / -3B shapes
    "1b": ModelShape("Llama-3.2-1B shape", 128256, 2048, 8192, 16, 32, 8, True),
    "3b": ModelShape("Llama-3.2-3B shape", 128256, 3072, 8192, 28, 24, 8, True),
    # Mistral-7B shape
    "7b": ModelShape("Mistral-7B shape", 32000, 4096, 14336, 32, 32, 8, False),
}


def shape_from_config(config: dict[str, Any], name: str = "config.json") -> ModelShape:
    """The shape of a Hugging Face ``config.json`` of a Llama-style model (Llama, Mistral, Qwen2, ...)."""
    try:
        heads = int(config["num_attention_heads"])
        return ModelShape(
            name=name,
            vocab=int(config["vocab_size"]),
            hidden=int(config["hidden_size"]),
            intermediate=int(config["intermediate_size"]),
            layers=int(config["num_hidden_layers"]),
            heads=heads,
            kv_heads=int(config.get("num_key_value_heads") or heads),
            tied=bool(config.get("tie_word_embeddings", False)),
        )
    except KeyError as err:
        raise ConfigError(f"{name}: no {err.args[0]}; not a Llama-style config, give --model-size") from None


def model_shape(model: str, size: str | None = None) -> ModelShape:
    """The shape named ``size`` (a key of SHAPES), else that of the model directory's config.json."""
    if size is not None:
        if size not in SHAPES:
            raise ConfigError(f"--model-size {size!r}: expected one of {', '.join(SHAPES)}")
        return SHAPES[size]
    if model == "smollm2-135m-instruct":
        return SHAPES["135m"]
    path = Path(model).expanduser() / "config.json"
    if not path.is_file():
        raise ConfigError(
            f"model {model!r}: no config.json to read its size from; give --model-size ({', '.join(SHAPES)})"
        )
    return shape_from_config(json.loads(path.read_text(encoding="utf-8")), str(path))


@dataclass(frozen=True)
class Launch:
    """What an accelerate config file asks for."""

    source: str
    distributed_type: str  # NO, MULTI_GPU, MULTI_CPU, FSDP, DEEPSPEED
    num_processes: int  # over all machines
    num_machines: int
    mixed_precision: str  # no, bf16, fp16, fp8
    zero_stage: int  # 0 (DDP / one process) to 3
    shard_over: int  # processes a ZeRO stage shards over
    main_process_ip: str | None = None
    fsdp_use_orig_params: bool = True
    fsdp_activation_checkpointing: bool = False
    deepspeed_gradient_accumulation: int | None = None
    offload: bool = False

    @property
    def engine(self) -> str:
        return {"NO": "one process", "MULTI_GPU": "DDP", "MULTI_CPU": "DDP (CPU)"}.get(
            self.distributed_type, self.distributed_type.replace("DEEPSPEED", "DeepSpeed")
        )


FSDP_STAGES = {"FULL_SHARD": 3, "1": 3, "SHARD_GRAD_OP": 2, "2": 2, "NO_SHARD": 0, "3": 0}
FSDP_HYBRID = {"HYBRID_SHARD", "4", "HYBRID_SHARD_ZERO2", "5"}
DISTRIBUTED_TYPES = ("NO", "MULTI_GPU", "MULTI_CPU", "FSDP", "DEEPSPEED")
MIXED_PRECISIONS = ("no", "bf16", "fp16", "fp8")


def single_process() -> Launch:
    """No accelerate config: one process, no mixed precision."""
    return Launch("(no accelerate config)", "NO", 1, 1, "no", 0, 1)


def read_accelerate_config(path: str | Path) -> Launch:
    """Parse an accelerate config file (the YAML ``accelerate config`` writes); one-line errors."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: accelerate config file not found")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{p}: not valid YAML ({getattr(err, 'problem', err)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of accelerate settings")
    kind = str(data.get("distributed_type", "NO")).upper()
    if kind not in DISTRIBUTED_TYPES:
        raise ConfigError(f"{p}: distributed_type={kind!r}: expected one of {', '.join(DISTRIBUTED_TYPES)}")
    mixed = str(data.get("mixed_precision", "no")).lower()
    if mixed not in MIXED_PRECISIONS:
        raise ConfigError(f"{p}: mixed_precision={mixed!r}: expected one of {', '.join(MIXED_PRECISIONS)}")
    procs, machines = int(data.get("num_processes", 1)), int(data.get("num_machines", 1))
    if procs < 1 or machines < 1 or procs % machines:
        raise ConfigError(
            f"{p}: num_processes={procs} (over all machines) is not a positive multiple of "
            f"num_machines={machines}"
        )
    zero, shard_over, extra = 0, procs, {}
    if kind == "FSDP":
        fsdp = data.get("fsdp_config") or {}
        if "fsdp_reshard_after_forward" in fsdp and "fsdp_sharding_strategy" not in fsdp:  # FSDP2 spelling
            strategy = "FULL_SHARD" if fsdp["fsdp_reshard_after_forward"] else "SHARD_GRAD_OP"
        else:
            strategy = str(fsdp.get("fsdp_sharding_strategy", "FULL_SHARD")).upper()
        if strategy in FSDP_HYBRID:  # sharded within a machine, replicated across machines
            zero, shard_over = (3 if strategy in ("HYBRID_SHARD", "4") else 2), procs // machines
        elif strategy in FSDP_STAGES:
            zero = FSDP_STAGES[strategy]
        else:
            raise ConfigError(f"{p}: fsdp_sharding_strategy={strategy!r} is not an FSDP sharding strategy")
        extra = {
            "fsdp_use_orig_params": bool(fsdp.get("fsdp_use_orig_params", True)),
            "fsdp_activation_checkpointing": bool(fsdp.get("fsdp_activation_checkpointing", False)),
            "offload": bool(fsdp.get("fsdp_offload_params", False)),
        }
    elif kind == "DEEPSPEED":
        ds = data.get("deepspeed_config") or {}
        zero = int(ds.get("zero_stage", 0))
        gas = ds.get("gradient_accumulation_steps", 1)
        extra = {
            "deepspeed_gradient_accumulation": int(gas) if str(gas).isdigit() else None,
            "offload": any(ds.get(k, "none") not in ("none", None) for k in ("offload_optimizer_device",
                                                                             "offload_param_device")),
        }  # fmt: skip
    return Launch(
        source=str(p),
        distributed_type=kind,
        num_processes=procs,
        num_machines=machines,
        mixed_precision=mixed,
        zero_stage=zero,
        shard_over=max(1, shard_over),
        main_process_ip=data.get("main_process_ip"),
        **extra,
    )


@dataclass(frozen=True)
class Split:
    """How a global batch divides: rows per process per micro-step (and, in the RL stage, more)."""

    per_device_micro_batch: int  # rows (pairs, prompts) of one forward/backward on one process
    per_device_rollout: int | None = None  # RL: responses one process generates per iteration
    per_device_minibatch: int | None = None  # RL: responses of one update minibatch on one process


def check_split(config: TrainConfig, world: int) -> Split:
    """The one rule for splitting a stage's batch over ``world`` processes (ConfigError when it cannot).

    ``batch_size / gradient_accumulation_steps`` rows per micro-step must divide evenly over the
    processes; in the RL stage also the prompts of an iteration and the responses of an update minibatch.
    """
    per_step = config.batch_size // config.gradient_accumulation_steps
    if per_step % world:
        raise ConfigError(
            f"batch_size={config.batch_size} / gradient_accumulation_steps="
            f"{config.gradient_accumulation_steps} = {per_step} examples per micro-step cannot be split over "
            f"{world} processes"
        )
    if not isinstance(config, PPOConfig):
        return Split(per_step // world)
    if config.minibatch_size % world:
        raise ConfigError(
            f"minibatch_size={config.minibatch_size} responses cannot be split over {world} processes; "
            f"use a multiple of {world}"
        )
    rollout = config.batch_size * config.samples_per_prompt // world
    minibatch = config.minibatch_size // world
    return Split(max(1, minibatch // config.gradient_accumulation_steps), rollout, minibatch)


@dataclass
class Plan:
    """The resolved run: what each process does and what each GPU holds."""

    stage: str
    engine: str
    world_size: int
    machines: int
    per_device_micro_batch: int
    gradient_accumulation_steps: int
    global_batch: int
    weights_dtype: str
    compute_dtype: str
    gradient_checkpointing: str
    lora: str
    zero_stage: int
    model: str
    params: int
    trainable_params: int
    gpu: str | None
    memory_gb: dict[str, float]
    memory_per_gpu_gb: float
    fits: bool | None
    split: Split
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        m = self.memory_gb
        parts = ", ".join(f"{k} {v:.1f}" for k, v in m.items())
        fit = {True: "fits", False: "DOES NOT FIT", None: "no GPU given"}[self.fits]
        out = [
            f"stage            {self.stage}",
            f"engine           {self.engine}, ZeRO stage {self.zero_stage}",
            f"processes        {self.world_size} on {self.machines} machine(s)",
            f"batch            {self.global_batch} global = {self.per_device_micro_batch} per device x "
            f"{self.gradient_accumulation_steps} accumulation x {self.world_size} processes",
            f"precision        weights {self.weights_dtype}, compute {self.compute_dtype}",
            f"checkpointing    {self.gradient_checkpointing}",
            f"LoRA             {self.lora}",
            f"model            {self.model}: {self.params / 1e9:.2f}B parameters, "
            f"{self.trainable_params / 1e6:.1f}M trainable",
            f"memory per GPU   ~{self.memory_per_gpu_gb:.1f} GB ({parts}) on {self.gpu or '?'}: {fit}",
        ]
        if self.split.per_device_rollout is not None:  # the RL stage: batch_size counts prompts
            out[3:4] = [
                f"RL iteration     {self.global_batch} prompts; {self.split.per_device_rollout} responses "
                f"generated per device; update minibatch {self.split.per_device_minibatch} per device",
                f"update batch     {self.per_device_micro_batch} responses per device x "
                f"{self.gradient_accumulation_steps} accumulation x {self.world_size} processes",
            ]
        out += [f"problem: {p}" for p in self.problems]
        out += [f"note: {n}" for n in self.notes]
        return out


BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def _activation_elements(shape: ModelShape, checkpointing: Any) -> float:
    """Elements kept per token for the whole decoder stack (see the module docstring)."""
    h, kv, i, n = shape.hidden, shape.kv_heads * shape.head_dim, shape.intermediate, shape.layers
    full_layer = 9 * h + 3 * kv + 4 * i
    if checkpointing is True or checkpointing == "true":
        return n * h + full_layer
    if checkpointing == "selective":
        return n * (5 * h + 2 * kv + 2 * i)
    return n * full_layer


def _precision(config: TrainConfig, launch: Launch, gpu: Gpu | None) -> tuple[str, list[str], list[str]]:
    """(compute dtype, problems, notes) of the stage's dtype under the launch's mixed precision."""
    problems, notes = [], []
    mixed, dtype = launch.mixed_precision, config.dtype
    compute = {"bf16": "bfloat16", "fp16": "float16", "fp8": "float8"}.get(mixed, dtype)
    if mixed == "fp16" and dtype == "bfloat16" or mixed == "bf16" and dtype == "float16":
        problems.append(
            f"dtype={dtype} with mixed_precision={mixed}: two 16-bit formats; use dtype float32 (or the same "
            "format) with that mixed precision"
        )
    if "bfloat16" in (compute, dtype) and gpu is not None and not gpu.bf16:
        problems.append(
            f"bf16 asked (dtype={dtype}, mixed_precision={mixed}) on {gpu.name}, which has no bfloat16: use "
            "mixed_precision fp16 with dtype float32, or an Ampere or newer GPU"
        )
    if dtype != "float32" and not config.lora.enabled:
        notes.append(
            f"dtype={dtype} with full fine-tuning keeps weights and AdamW states in 16 bits (updates below "
            "their resolution are lost); dtype float32 with mixed_precision bf16 keeps float32 master weights"
        )
    if mixed == "fp8":
        notes.append("mixed_precision fp8: not tested with rlhfops")
    return compute, problems, notes


def build_plan(
    stage: str, config: TrainConfig, launch: Launch, shape: ModelShape, gpu: Gpu | None = None
) -> Plan:
    """The plan of ``config`` (a ``stage`` config) under ``launch`` for a model of ``shape`` on ``gpu``."""
    world = launch.num_processes
    split = check_split(config, world)
    compute, problems, notes = _precision(config, launch, gpu)
    if launch.distributed_type == "NO" and world > 1:
        problems.append(
            f"{launch.source}: distributed_type NO with num_processes={world}; use MULTI_GPU or FSDP"
        )
    if launch.num_machines > 1 and not launch.main_process_ip:
        problems.append(f"{launch.source}: {launch.num_machines} machines but no main_process_ip")
    lora = config.lora
    if lora.enabled and launch.distributed_type == "FSDP" and not launch.fsdp_use_orig_params:
        problems.append(
            f"{launch.source}: LoRA under FSDP needs fsdp_use_orig_params: true (frozen and trainable "
            "weights share FSDP's flat parameters otherwise)"
        )
    if launch.distributed_type == "DEEPSPEED":
        problems += deepspeed_refusals(
            config,
            launch.zero_stage,
            engine_accumulation=launch.deepspeed_gradient_accumulation,
        )
        notes.append(
            "DeepSpeed: tested on 2 CPU processes (SFT, RM, DPO with and without LoRA, IPO, PPO, GRPO, RLOO: "
            "ZeRO-2/3, checkpoints resumed across process counts too), not on a GPU"
        )
    ckpt = config.gradient_checkpointing
    if ckpt and launch.fsdp_activation_checkpointing:
        problems.append(
            f"{launch.source}: fsdp_activation_checkpointing and gradient_checkpointing={ckpt} both "
            "recompute activations; turn one off (gradient_checkpointing: false)"
        )
    if launch.fsdp_activation_checkpointing:
        ckpt = True
    if launch.zero_stage >= 2:
        notes.append(
            f"sharded training (ZeRO {launch.zero_stage}): not run on a GPU yet; docs/scaling.md says what "
            "is tested on CPU processes"
        )
    if launch.offload:
        notes.append(
            "CPU offload asked: the estimate leaves the offloaded states on the GPU (an upper bound)"
        )

    params = shape.params()
    wbytes = BYTES[config.dtype]
    trainable = shape.lora_params(lora.r) if lora.enabled else params
    tbytes = 4 if lora.enabled else wbytes  # peft keeps adapters in float32
    zero, shards = launch.zero_stage, launch.shard_over
    abytes = 4 if compute == "float32" else 2
    rows = split.per_device_micro_batch * (2 if stage in PAIR_STAGES else 1)
    tokens = rows * config.max_length
    mem = {
        "weights": params * wbytes / (shards if zero >= 3 else 1),
        "gradients": trainable * tbytes / (shards if zero >= 2 else 1),
        "optimizer": 2 * trainable * tbytes / (shards if zero >= 1 else 1),
        "activations": tokens * _activation_elements(shape, ckpt) * abytes
        + tokens * shape.vocab * (abytes + 4),
    }
    if isinstance(config, PPOConfig):
        whole = params * wbytes  # not sharded: every process holds the frozen models
        copy = params * wbytes / (shards if zero >= 3 else 1)
        mem["reference"] = 0.0 if lora.enabled else whole
        mem["reward_model"] = whole if config.reward_model else 0.0
        if config.value_model == "separate" and config.advantage_estimator == "gae":
            mem["value_model"] = copy + 3 * params * wbytes / (shards if zero >= 1 else 1)
        kv = 2 * shape.layers * shape.kv_heads * shape.head_dim * abytes
        mem["kv_cache"] = kv * (split.per_device_rollout or 1) * config.max_length
    mem["cuda_overhead"] = CUDA_OVERHEAD_GB * GB
    total = sum(mem.values()) / GB
    fits = None if gpu is None else total <= USABLE_SHARE * gpu.memory_gb
    if fits is False:
        problems.append(
            f"estimated {total:.1f} GB per GPU > {USABLE_SHARE:.0%} of {gpu.name}'s {gpu.memory_gb:g} GB: "
            "use LoRA, a higher ZeRO stage (FSDP FULL_SHARD), gradient_checkpointing: true or a smaller "
            "per-device batch (more gradient_accumulation_steps)"
        )
    return Plan(
        stage=stage,
        engine=launch.engine,
        world_size=world,
        machines=launch.num_machines,
        per_device_micro_batch=split.per_device_micro_batch,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        global_batch=config.batch_size,
        weights_dtype=config.dtype,
        compute_dtype=compute,
        gradient_checkpointing=str(ckpt),
        lora=f"r={lora.r}, alpha={lora.alpha}, {lora.target_modules}"
        if lora.enabled
        else "off (full fine-tuning)",
        zero_stage=zero,
        model=shape.name,
        params=params,
        trainable_params=trainable,
        gpu=gpu.name if gpu else None,
        memory_gb={k: round(v / GB, 2) for k, v in mem.items()},
        memory_per_gpu_gb=round(total, 2),
        fits=fits,
        split=split,
        problems=problems,
        notes=notes,
    )


def gpu_named(name: str | None) -> Gpu | None:
    """The GPU type ``name`` (a key of GPUS), or None for no memory and bf16 check."""
    if name is None or name == "none":
        return None
    if name not in GPUS:
        raise ConfigError(f"--gpu {name!r}: expected one of {', '.join(GPUS)} or none")
    return GPUS[name]


def plan_run(
    stage: str,
    config_path: str | Path | None = None,
    overrides: list[str] | None = None,
    accelerate_config: str | Path | None = None,
    model_size: str | None = None,
    gpu: str | None = None,
) -> Plan:
    """The plan of ``rlhfops train STAGE`` with these settings under ``accelerate launch --config_file``."""
    if stage not in STAGES:
        raise ConfigError(f"unknown stage '{stage}'; valid: {', '.join(STAGES)}")
    config = load_config(STAGES[stage], config_path, overrides, stage=stage)
    launch = read_accelerate_config(accelerate_config) if accelerate_config else single_process()
    return build_plan(stage, config, launch, model_shape(config.model, model_size), gpu_named(gpu))
