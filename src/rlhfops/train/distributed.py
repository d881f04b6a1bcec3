"""The one place a trainer gets its ``Accelerator``, and what ``accelerate launch`` may ask of it here.

``accelerate launch`` passes its choice to the processes in environment variables; ``Accelerator()``
reads them. Tested on CPU (tests/train/test_distributed_stages.py): DDP over gloo, every stage, 2
processes = 1 process. Refused with one line instead of silently run as something else:

- FSDP without a GPU. accelerate 1.16 builds a CPU run (``cpu=True``) as ``MULTI_CPU`` and only checks
  ``ACCELERATE_USE_FSDP`` for GPU-class devices (``accelerate/state.py``, ``AcceleratorState.__init__``),
  so ``--use_fsdp`` on CPU would train with plain DDP. (torch 2.13's own ``fully_shard`` does run on CPU
  over gloo; it is accelerate's routing that skips it.) The FSDP settings are still parsed first
  (``FullyShardedDataParallelPlugin()``), so a bad one is named the same way on any machine.
- FSDP on a GPU: the trainer's checkpoints and final save read whole parameters from the main process
  only; FSDP shards them, so it is refused until that is gathered (untested here: no GPU).
- DeepSpeed: not installed here (refused, naming the package), and accelerate never uses it with
  ``cpu=True`` (its ``ACCELERATE_USE_DEEPSPEED`` check is ``and not cpu``).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from rlhfops.errors import ConfigError


def _flag(name: str) -> bool:
    return os.environ.get(name, "false").strip().lower() == "true"


def check_launch(has_gpu: bool) -> None:
    """Refuse, in one line, what ``accelerate launch`` asked for (in the environment) and this engine
    cannot run on this machine; parses the FSDP settings first so a bad one is named."""
    if _flag("ACCELERATE_USE_DEEPSPEED"):
        if importlib.util.find_spec("deepspeed") is None:
            raise ConfigError(
                "accelerate launch asked for DeepSpeed (ACCELERATE_USE_DEEPSPEED=true) but the deepspeed "
                "package is not installed; install it on a GPU machine, or launch without --use_deepspeed "
                "(DDP: --multi_gpu)"
            )
        if not has_gpu:
            raise ConfigError(
                "accelerate launch asked for DeepSpeed, but accelerate runs DeepSpeed only on a GPU (with no "
                "GPU it would silently train with DDP); launch without --use_deepspeed on CPU"
            )
    if _flag("ACCELERATE_USE_FSDP"):
        plugin = fsdp_plugin_from_env()
        where = "on a GPU" if has_gpu else "without a GPU"
        why = (
            "rlhfops saves checkpoints and the final model from whole parameters on the main process, "
            "which FSDP shards"
            if has_gpu
            else "accelerate 1.16 selects plain DDP over gloo for a CPU run and ignores ACCELERATE_USE_FSDP"
        )
        raise ConfigError(
            f"accelerate launch asked for FSDP (version {plugin.fsdp_version}) {where}, which rlhfops "
            f"does not run: {why}; launch without --use_fsdp (DDP: --multi_gpu), see docs/scaling.md"
        )


def fsdp_plugin_from_env() -> Any:
    """accelerate's FSDP plugin built from the launch's environment (as ``Accelerator()`` builds it); a
    setting it refuses is a ConfigError naming it."""
    from accelerate.utils import FullyShardedDataParallelPlugin

    try:
        plugin = FullyShardedDataParallelPlugin()
    except (ValueError, TypeError, KeyError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"accelerate launch's FSDP settings are not valid: {first}") from None
    if plugin.fsdp_version not in (1, 2):
        raise ConfigError(
            f"accelerate launch's FSDP settings are not valid: fsdp_version={plugin.fsdp_version}, not 1 or 2"
        )
    return plugin


def make_accelerator() -> Any:
    """The trainer's ``Accelerator``: the CPU when there is no GPU, after :func:`check_launch`."""
    import torch
    from accelerate import Accelerator

    has_gpu = torch.cuda.is_available()
    check_launch(has_gpu)
    return Accelerator(cpu=not has_gpu)
