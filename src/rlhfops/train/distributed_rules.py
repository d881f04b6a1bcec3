"""What rlhfops does not run under DeepSpeed: one rule each, one message each, in one place.

``rlhfops train plan`` lists these messages as problems (``plan.build_plan``, from the accelerate config
file) and a run refuses to start with the first of them (``distributed.configure_deepspeed``, from the
launch's DeepSpeed plugin). Pure: no torch, no deepspeed.
"""

from __future__ import annotations

from typing import Any

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


def _zero3_selective(config: Any, zero_stage: int) -> str | None:
    """ZeRO-3 frees the gathered weights inside torch's selective recomputation, which refuses that."""
    if zero_stage != 3 or config.gradient_checkpointing != "selective":
        return None
    return (
        "gradient_checkpointing: selective under DeepSpeed ZeRO-3 fails in backward (ZeRO-3 frees the "
        "gathered weights inside the recomputation: aten.empty encountered during backward); set "
        "gradient_checkpointing to true (whole layers) or false"
    )


def deepspeed_refusals(config: Any, zero_stage: int, *, engine_accumulation: int | None = None) -> list[str]:
    """Every reason ``config`` (a stage's config) cannot run under DeepSpeed at ``zero_stage``, one line
    each; empty when it can. ``engine_accumulation`` is DeepSpeed's own ``gradient_accumulation_steps``
    (None: not set or ``auto``).

    Checkpoints are not refused at any ZeRO stage: rlhfops's hold whole tensors, gathered from the
    partitions of the weights (ZeRO-3) and of the optimizer state (and scattered back on resume), and they
    resume across process counts in tests for every stage under ZeRO-2 and ZeRO-3 (SFT, RM, DPO, PPO with
    GAE, GRPO, RLOO; tests/train/test_deepspeed_cpu.py). GRPO's and RLOO's ZeRO-3 checkpoints were refused
    until their resume was tested."""
    found = [
        _accumulation(config, engine_accumulation),
        _zero3_selective(config, zero_stage),
    ]
    return [line for line in found if line is not None]
