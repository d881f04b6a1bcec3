"""The one place a trainer gets its ``Accelerator``, and what ``accelerate launch`` may ask of it here.

``accelerate launch`` passes its choice to the processes in environment variables; ``Accelerator()``
reads them. Tested on CPU (tests/train/test_distributed_stages.py): DDP over gloo and FSDP version 2 for
every stage (SFT, RM, DPO/IPO, and PPO/RLOO/GRPO with generation, reference and reward scoring); 2
processes = 1 process.

- FSDP without a GPU: accelerate 1.16 builds a CPU run (``cpu=True``) as ``MULTI_CPU`` and only checks
  ``ACCELERATE_USE_FSDP`` for GPU-class devices (``accelerate/state.py``, ``AcceleratorState.__init__``),
  so ``--use_fsdp`` on CPU silently trained with plain DDP. torch 2.13's ``fully_shard`` runs on CPU over
  gloo, so :func:`make_accelerator` sets the state to FSDP with the launch's plugin. FSDP version 1 is
  refused: accelerate's version-1 plugin itself raises on a CPU ("FSDP parameter initialization with
  sync_module_states=True is not supported on cpu").
- The RL stage under FSDP: every call of the policy's weights goes through the sharded root's forward
  (``ppo_model.ShardedLM``, ``ActorCritic.forward(inside=...)``), and the sampler runs in lock-step: each
  process keeps calling the model (one placeholder row once its own rows have ended) until an all-reduce
  says every process's rows have ended (``generate(lockstep=...)``, ``ppo_rollout.every_process_done``),
  so weight gathers line up (needed with per-layer units, TRANSFORMER_BASED_WRAP: without it the launch
  hangs, tests/train/test_fsdp_lockstep_launch.py; with the default wrap policy the root is gathered once
  per rollout). Reference copy and reward model are whole.
- Checkpoints and the final model under FSDP are gathered whole to the main process
  (:func:`full_state`), in the same layout as an unsharded run's, so they resume with DDP, one process or
  FSDP on any number of processes.
- DeepSpeed ZeRO-2/3 without a GPU: accelerate builds a CPU run as ``MULTI_CPU`` (its
  ``ACCELERATE_USE_DEEPSPEED`` check is ``and not cpu``), so :func:`make_accelerator` sets the state to
  DEEPSPEED with the launch's plugin, as for FSDP; DeepSpeed falls back to its CPU accelerator and wraps
  the gloo process group. Tested for SFT, RM, DPO, IPO and the RL stage (PPO, GRPO, RLOO) with ZeRO-2 and
  ZeRO-3 (tests/train/test_deepspeed_cpu.py, when the deepspeed package is importable). The RL stage: the
  policy (and value) is the engine; under ZeRO-2 each process samples on its own whole copy of the weights as
  under DDP, under ZeRO-3 in lock-step as under FSDP (:func:`shards_weights`); the frozen reference copy
  and reward model are not engines (whole on every process; :func:`whole_models` keeps ZeRO-3's
  partitioning init off while they load).
  :func:`configure_deepspeed` fills in what accelerate would read from a prepared dataloader (the
  per-process micro-batch) and the stage's gradient clipping, after refusing in one line what rlhfops does
  not run under DeepSpeed (``distributed_rules``, the rules ``train plan`` reports).
- Checkpoints under DeepSpeed ZeRO-1/2/3 hold whole tensors in the unsharded layout too: each process's
  partition of the float32 master weights and of AdamW's state is gathered per parameter
  (:func:`deepspeed_full_state`) and a resume copies each process's slice back into its partition
  (:func:`load_deepspeed_state`; under ZeRO-3 the model's partitioned weights are gathered, set and
  partitioned again), so they resume with any number of processes, with or without DeepSpeed. Tested for
  SFT, RM, DPO, PPO (GAE), GRPO and RLOO under ZeRO-2 and ZeRO-3 (GRPO's and RLOO's within the gap the
  same launches measure between 1 and 2 uninterrupted processes, ``tests/train/helpers_train.py``).
- ZeRO-Offload (ZeRO-2 with ``offload_optimizer: {device: cpu}``) runs and resumes across process counts
  too (SFT, tested): DeepSpeed offloads torch's AdamW, which rlhfops hands it, only with
  ``"zero_force_ds_cpu_optimizer": false`` in its config. :func:`deepspeed_record` puts the engine's ZeRO
  stage and offload in the run's summary.
"""

from __future__ import annotations

import importlib.util
import os
from contextlib import contextmanager, nullcontext
from typing import Any

from rlhfops.errors import ConfigError
from rlhfops.train.distributed_rules import deepspeed_refusals


def _flag(name: str) -> bool:
    return os.environ.get(name, "false").strip().lower() == "true"


def check_launch(has_gpu: bool) -> Any:
    """Refuse, in one line, what ``accelerate launch`` asked for (in the environment) and this engine
    cannot run on this machine; returns the FSDP plugin when FSDP (version 2) was asked for, else None."""
    if _flag("ACCELERATE_USE_DEEPSPEED"):
        if importlib.util.find_spec("deepspeed") is None:
            raise ConfigError(
                "accelerate launch asked for DeepSpeed (ACCELERATE_USE_DEEPSPEED=true) but the deepspeed "
                "package is not installed; install it on a GPU machine, or launch without --use_deepspeed "
                "(DDP: --multi_gpu; sharded: --use_fsdp --fsdp_version 2)"
            )
        return None
    if not _flag("ACCELERATE_USE_FSDP"):
        return None
    version = os.environ.get("FSDP_VERSION", "1").strip()  # accelerate's default is version 1
    if version != "2":
        raise ConfigError(
            f"accelerate launch asked for FSDP version {version}; rlhfops runs FSDP version 2 (fully_shard) "
            "only (accelerate's version-1 plugin also refuses a CPU: sync_module_states is not supported on "
            "cpu): launch with --fsdp_version 2"
        )
    return fsdp_plugin_from_env()


def fsdp_plugin_from_env() -> Any:
    """accelerate's FSDP plugin built from the launch's environment (as ``Accelerator()`` builds it); a
    setting it refuses is a ConfigError naming it."""
    from accelerate.utils import FullyShardedDataParallelPlugin

    try:
        plugin = FullyShardedDataParallelPlugin()
    except (ValueError, TypeError, KeyError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"accelerate launch's FSDP settings are not valid: {first}") from None
    return plugin


def make_accelerator() -> Any:
    """The trainer's ``Accelerator``: the CPU when there is no GPU, after :func:`check_launch`.

    FSDP without a GPU: accelerate builds a CPU run as plain DDP (``MULTI_CPU``) and drops the FSDP
    plugin, so the state is set to FSDP with the launch's plugin here, before anything is prepared;
    ``prepare`` then shards with torch's ``fully_shard`` over gloo exactly as on a GPU.
    """
    import torch
    from accelerate import Accelerator
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType

    has_gpu = torch.cuda.is_available()
    plugin = check_launch(has_gpu)
    accelerator = Accelerator(cpu=not has_gpu)
    cpu_processes = plugin is not None or _flag("ACCELERATE_USE_DEEPSPEED")
    if not cpu_processes or accelerator.distributed_type != DistributedType.MULTI_CPU:
        return accelerator
    if plugin is not None:
        accelerator.state.fsdp_plugin = plugin
        accelerator.state.distributed_type = DistributedType.FSDP
        PartialState._shared_state["distributed_type"] = DistributedType.FSDP
    else:  # DeepSpeed on CPU processes over gloo: DeepSpeed's CPU accelerator
        from accelerate.utils import DeepSpeedPlugin

        ds = DeepSpeedPlugin()  # from the launch's environment, as Accelerator() builds it on a GPU
        ds.set_mixed_precision(accelerator.state.mixed_precision)
        ds.select(_from_accelerator_state=True)
        accelerator.state.deepspeed_plugins = ds
        accelerator.state.distributed_type = DistributedType.DEEPSPEED
        PartialState._shared_state["distributed_type"] = DistributedType.DEEPSPEED
    return accelerator


def is_deepspeed(accelerator: Any) -> bool:
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.DEEPSPEED


def configure_deepspeed(accelerator: Any, config: Any, per_device_micro_batch: int) -> None:
    """DeepSpeed: refuse in one line what rlhfops does not run under it (the first of
    ``distributed_rules.deepspeed_refusals``, the rules ``rlhfops train plan`` reports too), and set the
    engine's micro-batch and gradient clipping from the stage's config (accelerate reads the micro-batch
    from a prepared dataloader; rlhfops prepares none). Call before ``prepare``; nothing happens without
    DeepSpeed."""
    if not is_deepspeed(accelerator):
        return
    plugin = accelerator.state.deepspeed_plugin
    ds = plugin.deepspeed_config
    engine = ds.get("gradient_accumulation_steps")
    refused = deepspeed_refusals(
        config,
        plugin.zero_stage,
        engine_accumulation=engine if isinstance(engine, int) else None,  # "auto": rlhfops sets it below
    )
    if refused:
        raise ConfigError(refused[0])
    ds["train_micro_batch_size_per_gpu"] = per_device_micro_batch
    ds["gradient_accumulation_steps"] = 1
    ds["train_batch_size"] = per_device_micro_batch * accelerator.num_processes
    ds["gradient_clipping"] = float(config.max_grad_norm)


def deepspeed_record(accelerator: Any, engine: Any) -> dict[str, Any] | None:
    """Under DeepSpeed, what the engine runs, for the run's summary: its ZeRO stage and where its optimizer
    state and step live (``offload_optimizer``: "cpu" under ZeRO-Offload, read from the engine's ZeRO
    optimizer, not from the config asked for); None without DeepSpeed."""
    if not is_deepspeed(accelerator):
        return None
    zero = engine.optimizer  # ZeRO-1/2: ``cpu_offload``; ZeRO-3: ``offload_optimizer``
    offload = bool(getattr(zero, "cpu_offload", False) or getattr(zero, "offload_optimizer", False))
    return {
        "zero_stage": int(engine.zero_optimization_stage()),
        "offload_optimizer": "cpu" if offload else None,
    }


def whole_weights(accelerator: Any, model: Any) -> Any:
    """A context in which every process holds the whole weights of ``model``: DeepSpeed ZeRO-3 gathers
    its partitioned parameters (every process must enter it); a no-op otherwise."""
    if not is_deepspeed(accelerator) or accelerator.state.deepspeed_plugin.zero_stage != 3:
        return nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(list(model.parameters()), modifier_rank=None)


def shards_weights(accelerator: Any) -> bool:
    """Whether the trained model's weights are partitioned over the processes outside its forward (FSDP,
    DeepSpeed ZeRO-3): then every call of them must be in lock-step on every process."""
    if is_fsdp(accelerator):
        return True
    return is_deepspeed(accelerator) and accelerator.state.deepspeed_plugin.zero_stage == 3


def whole_models(accelerator: Any) -> Any:
    """A context in which models are loaded whole on every process: under DeepSpeed ZeRO-3 accelerate
    would otherwise load them already partitioned (``zero3_init_flag``), frozen ones too."""
    if not is_deepspeed(accelerator) or accelerator.state.deepspeed_plugin.zero_stage != 3:
        return nullcontext()
    return _without_zero3_init(accelerator.state.deepspeed_plugin)


@contextmanager
def _without_zero3_init(plugin: Any) -> Any:
    # accelerate's own ``zero3_init_context_manager(enable=False)`` re-registers the same ZeRO-3 config with
    # transformers, whose ``from_pretrained`` then still partitions (tried): unregister it meanwhile
    from transformers.integrations import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()
    try:
        yield
    finally:
        plugin.set_deepspeed_weakref()


def is_fsdp(accelerator: Any) -> bool:
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.FSDP


def refuse_fsdp(accelerator: Any, stage: str, why: str) -> None:
    """One line when ``stage`` cannot run sharded."""
    if is_fsdp(accelerator):
        raise ConfigError(f"{stage} does not run under FSDP: {why}; launch it with DDP (--multi_gpu)")


def full_state(accelerator: Any, model: Any, optimizer: Any, names: list[str]) -> tuple[dict, dict]:
    """FSDP: the whole (unsharded) trainable weights ``names`` and optimizer state, on the CPU of the
    main process (empty elsewhere). Every process must call it (it gathers). The optimizer state is in
    ``optimizer.state_dict()``'s own layout (parameters numbered in optimizer order), so a checkpoint
    reads the same whether it was written sharded or not."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    weights = get_model_state_dict(model, options=opts)
    opt = get_optimizer_state_dict(model, _inner(optimizer), options=opts)
    if not accelerator.is_main_process:
        return {}, {}
    wanted = set(names)
    weights = {k: v.contiguous() for k, v in weights.items() if k in wanted}
    order = [n for g in opt["param_groups"] for n in g["params"]]
    number = {n: i for i, n in enumerate(order)}
    groups = [{**g, "params": [number[n] for n in g["params"]]} for g in opt["param_groups"]]
    return weights, {"state": {number[k]: v for k, v in opt["state"].items()}, "param_groups": groups}


def load_full_state(model: Any, optimizer: Any, weights: dict, opt_state: dict | None) -> None:
    """FSDP: load whole weights (and an ``optimizer.state_dict()``-layout state) into the sharded model
    and optimizer; every process calls it with the same whole tensors."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_optimizer_state_dict,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    opts = StateDictOptions(full_state_dict=True, strict=False)
    set_model_state_dict(model, weights, options=opts)
    if opt_state is None:
        return
    current = get_optimizer_state_dict(
        model, _inner(optimizer), options=StateDictOptions(full_state_dict=True)
    )
    order = [n for g in current["param_groups"] for n in g["params"]]
    groups = [{**g, "params": [order[i] for i in g["params"]]} for g in opt_state["param_groups"]]
    named = {"state": {order[i]: v for i, v in opt_state["state"].items()}, "param_groups": groups}
    set_optimizer_state_dict(model, _inner(optimizer), named, options=opts)


def _inner(optimizer: Any) -> Any:
    return getattr(optimizer, "optimizer", optimizer)  # accelerate's AcceleratedOptimizer wraps torch's


def _zero_groups(zero: Any) -> list[tuple[Any, list[Any], int]]:
    """The engine's ZeRO optimizer's groups: (this process's flat float32 partition, which is the key of its
    AdamW state; the model parameters it covers; the torch param group's index). ZeRO-1/2: one per param
    group (``single_partition_of_fp32_groups``, ``bit16_groups``); ZeRO-3: one per sub-group
    (``fp32_partitioned_groups_flat``, ``fp16_groups``, ``sub_group_to_group_id``), as its ``_optimizer_step``
    steps them."""
    if hasattr(zero, "fp32_partitioned_groups_flat"):  # ZeRO-3
        flats = zero.fp32_partitioned_groups_flat
        return [(f, list(zero.fp16_groups[i]), zero.sub_group_to_group_id[i]) for i, f in enumerate(flats)]
    return [(f, list(zero.bit16_groups[g]), g) for g, f in enumerate(zero.single_partition_of_fp32_groups)]


def deepspeed_full_state(accelerator: Any, model: Any, names: list[str]) -> tuple[dict, dict]:
    """DeepSpeed ZeRO-1/2/3: the whole trainable weights ``names`` (the float32 master copy) and AdamW
    state, on the main process (empty elsewhere), in the layout of :func:`full_state`
    (``optimizer.state_dict()``'s, parameters numbered in optimizer order), so the checkpoint reads the same
    whoever wrote it. Every process must call it: each holds one partition of the master weights and of
    the optimizer state, gathered per parameter with DeepSpeed's ``safe_get_full_fp32_param`` /
    ``safe_get_full_optimizer_state`` (an all-reduce under ZeRO-1/2, an all-gather of ``ds_id``-partitioned
    parameters under ZeRO-3)."""
    from deepspeed.utils import safe_get_full_fp32_param, safe_get_full_optimizer_state

    zero = model.optimizer  # the engine's ZeRO optimizer; ``zero.optimizer`` is the torch AdamW it wraps
    named = dict(accelerator.unwrap_model(model).named_parameters())
    params = [named[n] for n in names]
    weights, state = {}, {}
    for i, (name, p) in enumerate(zip(names, params, strict=True)):
        weights[name] = safe_get_full_fp32_param(p).detach().cpu().contiguous()
        state[i] = {k: safe_get_full_optimizer_state(p, k).detach().cpu() for k in ("exp_avg", "exp_avg_sq")}
    number = {id(p): i for i, p in enumerate(params)}
    members: dict[int, list[int]] = {}
    for flat, group, g in _zero_groups(zero):
        step = zero.optimizer.state[flat]["step"].detach().cpu().clone()
        for i in (number[id(p)] for p in group):  # a tensor each: fused AdamW adds 1 in place to each step
            state[i]["step"] = step.clone()
            members.setdefault(g, []).append(i)
    groups = []
    for g, hyper in enumerate(zero.optimizer.param_groups):
        groups.append({**{k: v for k, v in hyper.items() if k != "params"}, "params": members.get(g, [])})
    if not accelerator.is_main_process:
        return {}, {}
    return weights, {"state": state, "param_groups": groups}


def load_deepspeed_state(
    accelerator: Any, model: Any, names: list[str], weights: dict, opt_state: dict
) -> None:
    """DeepSpeed ZeRO-1/2/3: load whole weights and an ``optimizer.state_dict()``-layout AdamW state (from a
    checkpoint any number of processes wrote; ``names``: the trainable parameters in optimizer order, how
    the state numbers them) into the model and into this process's partition of the float32 master weights
    and of the optimizer state. Every process calls it with the same whole tensors (under ZeRO-3 the
    weights are gathered, set and partitioned again). Before the first step (DeepSpeed links its
    per-parameter views of the optimizer state at that step; AdamW creates its state lazily)."""
    import torch

    zero = model.optimizer  # the engine's ZeRO optimizer; ``zero.optimizer`` is the torch AdamW it wraps
    named = dict(accelerator.unwrap_model(model).named_parameters())
    number = {id(named[n]): i for i, n in enumerate(names)}  # the state numbers parameters in names' order
    zero3 = hasattr(zero, "fp32_partitioned_groups_flat")
    with torch.no_grad():
        with _modifiable(accelerator, [named[n] for n in weights], zero3):
            for name, value in weights.items():
                named[name].copy_(value)
        for flat, group, g in _zero_groups(zero):
            base = zero.optimizer.state.setdefault(flat, {})
            for key in ("exp_avg", "exp_avg_sq"):
                base.setdefault(key, torch.zeros_like(flat))
            for p in group:
                saved = opt_state["state"][number[id(p)]]
                whole = weights[names[number[id(p)]]]
                if zero3:
                    _into_zero3_partition(zero, p, whole, saved)
                    continue
                _into_partition(p, flat, whole)
                for key in ("exp_avg", "exp_avg_sq"):
                    _into_partition(p, base[key], saved[key])
            base["step"] = saved["step"].detach().clone().to(torch.float32)
            hyper = opt_state["param_groups"][g]
            zero.optimizer.param_groups[g].update({k: v for k, v in hyper.items() if k != "params"})


def _modifiable(accelerator: Any, params: list[Any], zero3: bool) -> Any:
    """ZeRO-3: gather ``params`` whole, and on leaving partition them again from the main process's values
    (every process sets the same); a no-op otherwise (ZeRO-1/2 weights are whole on every process)."""
    if not zero3:
        return nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(params, modifier_rank=0)


def _into_zero3_partition(zero: Any, param: Any, whole: Any, saved: dict) -> None:
    """ZeRO-3: this process's slice of the whole master weight ``whole`` and of its AdamW state ``saved``
    into the partitions DeepSpeed keeps for ``param``: as its ``set_full_hp_param``, which narrows the
    flattened tensor at ``rank * partition size`` (and would run past the end on the last, padded
    partition of a parameter whose size the process count does not divide)."""
    import torch

    rank = zero._get_param_partition_rank(param)
    for key, value in (("", whole), ("exp_avg", saved["exp_avg"]), ("exp_avg_sq", saved["exp_avg_sq"])):
        part, _ = zero._get_fp32_opt_state_partition(
            param, release_swap_buffers=False, optim_state_key=key or None
        )
        flat = value.detach().reshape(-1).to(part.dtype)
        flat = torch.cat([flat, flat.new_zeros(max(0, part.numel() * (rank + 1) - flat.numel()))])
        part.copy_(flat.narrow(0, part.numel() * rank, part.numel()))


def _into_partition(param: Any, flat: Any, whole: Any) -> None:
    """Copy the slice of ``whole`` (a tensor shaped like ``param``) that this process's ZeRO partition holds
    into ``flat`` (the partition's flat buffer: master weights or an optimizer state)."""
    mapping = getattr(param, "_hp_mapping", None)
    if mapping is None:  # no element of this parameter in this process's partition
        return
    lp, hp = mapping.lp_fragment_address, mapping.hp_fragment_address
    piece = whole.reshape(-1).narrow(0, lp.start, lp.numel)
    flat.narrow(0, hp.start, hp.numel).copy_(piece.to(flat.dtype))
