"""What rlhfops does not run under DeepSpeed: one rule each, one message each, in one place.

``rlhfops train plan`` lists these messages as problems (``plan.build_plan``, from the accelerate config
file) and a run refuses to start with the first of them (``distributed.configure_deepspeed``, from the
launch's DeepSpeed plugin). Pure: no torch, no deepspeed.
"""

from __future__ import annotations

from typing import Any

from rlhfops.train.config import DPOConfig, RewardConfig, SFTConfig
from rlhfops.train.ppo_config import PPOConfig

FSDP = "launch with FSDP (--use_fsdp --fsdp_version 2)"


def _accumulation(config: Any, engine_accumulation: int | None) -> str | None:
    """Gradient accumulation: accelerate's DeepSpeed ``backward`` steps the engine after every call, and
    rlhfops accumulates by calling it once per micro-batch."""
    ours = config.gradient_accumulation_steps
    if ours <= 1 and (engine_accumulation is None or engine_accumulation <= 1):
        return None
    return (
        f"gradient_accumulation_steps={ours} (deepspeed_config: {engine_accumulation}) under DeepSpeed: its "
        "engine steps the optimizer inside backward; set both to 1 and raise the per-device batch, or " + FSDP
    )


def _zero3_checkpoints_tested(config: Any) -> bool:
    """The stages whose ZeRO-3 checkpoints are tested (resumed across process counts, test_deepspeed_cpu):
    SFT, RM, DPO (and IPO, its loss on the same path) and the RL stage with GAE (policy and value head)."""
    if isinstance(config, PPOConfig):
        return config.advantage_estimator == "gae"
    return isinstance(config, SFTConfig | RewardConfig | DPOConfig)


def _checkpoints(config: Any, zero_stage: int, total_steps: int | None, resume: bool) -> str | None:
    """Checkpoints under ZeRO-3: rlhfops's hold whole tensors, gathered from ZeRO-3's partitioned weights
    and optimizer state (and scattered back on resume); resumed across process counts in tests for SFT, RM,
    DPO and PPO with GAE, so the RL stage without a value head (GRPO, RLOO) is refused under ZeRO-3. ZeRO-1/2
    checkpoints are allowed for every stage; their resume across process counts is tested for the same
    four."""
    if zero_stage < 3 or _zero3_checkpoints_tested(config):
        return None
    why = (
        "rlhfops's ZeRO-3 checkpoints (gathered from the partitions) are tested for SFT, RM, DPO and PPO "
        "(GAE) only"
    )
    if resume:
        return f"--resume under DeepSpeed ZeRO-3: {why}; resume with ZeRO-2, FSDP, DDP or one process"
    if total_steps is not None and config.save_every <= total_steps:
        return (
            f"save_every={config.save_every} would write a checkpoint within {total_steps} steps: {why}; "
            f"set save_every above {total_steps}, use --zero_stage 2, or " + FSDP
        )
    return None


def _zero3_selective(config: Any, zero_stage: int) -> str | None:
    """ZeRO-3 frees the gathered weights inside torch's selective recomputation, which refuses that."""
    if zero_stage != 3 or config.gradient_checkpointing != "selective":
        return None
    return (
        "gradient_checkpointing: selective under DeepSpeed ZeRO-3 fails in backward (ZeRO-3 frees the "
        "gathered weights inside the recomputation: aten.empty encountered during backward); set "
        "gradient_checkpointing to true (whole layers) or false"
    )


def deepspeed_refusals(
    config: Any,
    zero_stage: int,
    *,
    engine_accumulation: int | None = None,
    total_steps: int | None = None,
    resume: bool = False,
) -> list[str]:
    """Every reason ``config`` (a stage's config) cannot run under DeepSpeed at ``zero_stage``, one line
    each; empty when it can. ``engine_accumulation`` is DeepSpeed's own ``gradient_accumulation_steps``
    (None: not set or ``auto``), ``total_steps`` the run's optimizer steps (None: not known yet, as in a
    plan without ``max_steps``), ``resume`` whether the run resumes a checkpoint."""
    found = [
        _accumulation(config, engine_accumulation),
        _checkpoints(config, zero_stage, total_steps, resume),
        _zero3_selective(config, zero_stage),
    ]
    return [line for line in found if line is not None]
