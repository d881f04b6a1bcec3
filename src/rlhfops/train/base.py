"""The one trainer skeleton every stage follows: setup -> train -> step -> save_checkpoint -> cleanup.

A stage subclasses :class:`Trainer` and supplies its data, its model and ``micro_loss``; the loop,
data order, gradient accumulation, data parallelism (``accelerate launch``), checkpoints, resume,
metrics and the non-finite-loss stop live here once.

Data order is a pure function of ``(seed, step)``: step ``s`` of epoch ``e`` takes the slice
``perm_e[(s mod S) * B : ... + B]`` of the permutation ``perm_e`` seeded with ``seed + e``. A resumed
run therefore sees exactly the batches an uninterrupted run would.

Loss normalisation: every micro-batch loss is ``sum(per-unit loss) / units_in_global_batch`` (units
are completion tokens for SFT, pairs for the reward model and DPO), multiplied by the number of
processes because DDP averages gradients. The gradient of one optimizer step is then the same for any
split into micro-batches and processes (tested in tests/train/test_invariance.py).
"""

from __future__ import annotations

import abc
import contextlib
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlhfops.errors import ConfigError, DataError, TrainingStopped
from rlhfops.train.checkpoint_manifest import MANIFEST, load_state, verify_checkpoint, write_manifest
from rlhfops.train.config import TrainConfig
from rlhfops.train.distributed import (
    configure_deepspeed,
    deepspeed_full_state,
    deepspeed_record,
    full_state,
    is_deepspeed,
    is_fsdp,
    load_deepspeed_state,
    load_full_state,
    make_accelerator,
    whole_weights,
)
from rlhfops.train.plan import check_split
from rlhfops.train.progress import progress_bar
from rlhfops.train.rundir import RunDir, atomic_write_text, default_run_dir


@dataclass
class StepStats:
    """What one micro-batch contributes: the normalised loss tensor and summed statistics."""

    loss: Any  # torch scalar, already divided by the global unit count
    sums: dict[str, float] = field(default_factory=dict)  # summed over units; divided by units for logging


@dataclass
class RunResult:
    """What a finished run returns to the CLI."""

    run_dir: Path
    steps: int
    summary: dict[str, Any]


def lr_lambda(schedule: str, warmup: int, total: int):
    """Multiplier of the peak learning rate at optimizer step ``s`` (0-based)."""

    def fn(s: int) -> float:
        if warmup and s < warmup:
            return (s + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = (s - warmup) / max(1, total - warmup)
        if schedule == "linear":
            return max(0.0, 1.0 - progress)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return fn


def make_adamw(params: list[Any], lr: float, weight_decay: float) -> Any:
    """AdamW with the fused kernel where torch has one for the parameters' device (CPU and CUDA; ~4x
    faster than the per-parameter loop on CPU), the default implementation elsewhere. Same update rule."""
    import torch

    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, ValueError):  # a device or dtype without a fused kernel
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def split_train_eval(n: int, eval_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Deterministic held-out split of ``n`` rows (at least one row each side when eval is asked)."""
    if eval_fraction <= 0 or n < 2:
        return list(range(n)), []
    perm = np.random.default_rng(seed + 7919).permutation(n)
    n_eval = min(n - 1, max(1, int(round(n * eval_fraction))))
    return sorted(perm[n_eval:].tolist()), sorted(perm[:n_eval].tolist())


class Trainer(abc.ABC):
    """Base trainer. Subclasses set ``stage`` and implement the hooks marked below."""

    stage = "base"
    unit_name = "examples"  # what the loss is averaged over (tokens, pairs)

    def __init__(self, config: TrainConfig, run_dir: str | Path | None = None, resume: bool = False) -> None:
        self.config = config
        self.run = RunDir(run_dir or config.output_dir or default_run_dir(self.stage))
        self.resume = resume
        self.start_step = 0
        self.total_steps = 0
        self._last_saved = 0
        self.damaged_checkpoints: list[dict[str, str]] = []  # set by a resume that skipped some

    # ---- hooks for stages ---------------------------------------------------------------------
    @abc.abstractmethod
    def load_data(self) -> None:  # sets self.train_rows, self.eval_rows
        ...

    @abc.abstractmethod
    def build_model(self) -> None:  # sets self.model (the module that trains) and self.tokenizer
        ...

    def count_units(self, rows: list[Any]) -> int:
        return len(rows)

    @abc.abstractmethod
    def micro_loss(self, rows: list[Any], global_units: float) -> StepStats: ...

    def before_train(self) -> None:
        """Work done once before the first step (e.g. reference log-probs for DPO)."""
        return None

    def evaluate(self) -> dict[str, Any]:
        return {}

    @abc.abstractmethod
    def save_final(self, out_dir: Path) -> None: ...

    def extra_state(self) -> dict[str, Any]:
        return {}

    def summary_extra(self) -> dict[str, Any]:
        """Stage-specific entries of summary.json (e.g. the RL stage's rollout backend and its cost)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what ``extra_state`` returned."""
        return None

    # ---- skeleton ------------------------------------------------------------------------------
    def setup(self) -> None:
        import torch

        cfg = self.config
        self.accelerator = make_accelerator()  # refuses FSDP / DeepSpeed it cannot run (train/distributed.py)
        self.world = self.accelerator.num_processes
        self.rank = self.accelerator.process_index
        self.is_main = self.accelerator.is_main_process
        split = check_split(cfg, self.world)  # the plan's rule (train/plan.py): ConfigError when it cannot
        self._seed_all(cfg.seed)
        self.load_data()
        n = len(self.train_rows)
        if n < cfg.batch_size:
            raise DataError(
                f"{cfg.data}: {n} training rows, fewer than batch_size={cfg.batch_size}; "
                "add data or lower batch_size"
            )
        self.steps_per_epoch = n // cfg.batch_size
        self.total_steps = cfg.max_steps or max(1, int(math.ceil(cfg.epochs * self.steps_per_epoch)))
        micro = split.per_device_micro_batch
        configure_deepspeed(self.accelerator, cfg, micro)
        self.build_model()
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = make_adamw(params, cfg.learning_rate, cfg.weight_decay)
        warmup = int(cfg.warmup_ratio * self.total_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(cfg.lr_scheduler, warmup, self.total_steps)
        )
        self.model, self.optimizer = self.accelerator.prepare(self.model, self.optimizer)
        if self.resume:
            self._restore()
        elif self.is_main:
            if self.run.summary_path.exists() or self.run.latest_checkpoint():
                raise ConfigError(
                    f"{self.run.path}: already holds a run; use --resume {self.run.path} or a new output_dir"
                )
            self.run.path.mkdir(parents=True, exist_ok=True)
            self.run.write_config(self.stage, cfg.model_dump(mode="json"))
        self.accelerator.wait_for_everyone()

    def _seed_all(self, seed: int) -> None:
        import torch

        random.seed(seed)
        np.random.seed(seed % (2**32))
        torch.manual_seed(seed)

    def _epoch_order(self, epoch: int) -> np.ndarray:
        """The order in which epoch ``epoch`` (0-based) visits the training rows: a pure function of seed."""
        return np.random.default_rng(self.config.seed + epoch).permutation(len(self.train_rows))

    def rows_for_step(self, step: int) -> list[Any]:
        """The global batch of optimizer step ``step`` (1-based), a pure function of (seed, step)."""
        b = self.config.batch_size
        epoch, within = divmod(step - 1, self.steps_per_epoch)
        return [self.train_rows[i] for i in self._epoch_order(epoch)[within * b : (within + 1) * b]]

    def planned_rows(self) -> list[Any]:
        """Every training row some step of this run uses (in first-use order): all of them for a run of
        whole epochs, fewer when ``max_steps`` stops inside the first epoch. One permutation per epoch."""
        b, per_epoch = self.config.batch_size, self.steps_per_epoch
        seen: dict[int, None] = {}
        for epoch in range(math.ceil(self.total_steps / per_epoch)):
            steps = min(per_epoch, self.total_steps - epoch * per_epoch)
            seen.update(dict.fromkeys(self._epoch_order(epoch)[: steps * b].tolist()))
            if len(seen) == len(self.train_rows):
                break
        return [self.train_rows[i] for i in seen]

    def train(self) -> RunResult:
        """Run the planned steps from ``start_step``; evaluate; save the final model and summary."""
        self.before_train()
        cfg = self.config
        t0 = time.perf_counter()
        with progress_bar(
            f"{self.stage}", self.total_steps, self.start_step, enabled=cfg.progress and self.is_main
        ) as advance:
            for step in range(self.start_step + 1, self.total_steps + 1):
                record = self.step(step)
                if self.is_main and (step % cfg.log_every == 0 or step == self.total_steps):
                    self.run.append_metrics(record)
                if step % cfg.save_every == 0 and step != self.total_steps:
                    self.save_checkpoint(step)
                advance(record)
        self.train_seconds = time.perf_counter() - t0
        return self.finish()

    def step(self, step: int) -> dict[str, Any]:
        """One optimizer step over the global batch of ``step``: accumulate, check, clip, update."""
        t0 = time.perf_counter()
        loss, sums, global_units = self.accumulate_gradients(step)
        if not math.isfinite(loss):
            last = self.run.latest_checkpoint()
            where = f"last good checkpoint: {last[1]}" if last else "no checkpoint was written yet"
            raise TrainingStopped(
                f"{self.stage} step {step}: loss is {loss}; training stopped ({where}). "
                "Lower learning_rate or check the data."
            )
        lr = self.scheduler.get_last_lr()[0]  # the rate this step's update uses
        grad_norm = self.apply_update()
        record: dict[str, Any] = {
            "step": step,
            "loss": loss,
            "lr": lr,
            "grad_norm": grad_norm,
            self.unit_name: global_units,
            "seconds": time.perf_counter() - t0,
        }
        for k, v in sums.items():
            record[k] = self._all_sum(v) / max(global_units, 1.0)
        delay = float(os.environ.get("RLHFOPS_DEBUG_STEP_SLEEP", "0") or 0)
        if delay > 0:  # fault-injection knob for the kill -9 test: widens the window between steps
            time.sleep(delay)
        return record

    def accumulate_gradients(self, step: int) -> tuple[float, dict[str, float], float]:
        """Forward/backward every micro-batch of this process's share of ``step``'s global batch.

        Returns (global loss, this process's summed statistics, global unit count). Gradients are left
        in ``.grad``; DDP synchronises them on the last micro-batch only.
        """
        import torch

        cfg = self.config
        rows = self.rows_for_step(step)[self.rank :: self.world]
        global_units = self._all_sum(float(self.count_units(rows)))
        micro = np.array_split(np.arange(len(rows)), cfg.gradient_accumulation_steps)
        self.model.train()
        loss_sum = torch.zeros((), dtype=torch.float64)
        sums: dict[str, float] = {}
        for i, idx in enumerate(micro):
            part = [rows[j] for j in idx]
            last = i == len(micro) - 1
            ctx = self.accelerator.no_sync(self.model) if not last else contextlib.nullcontext()
            with ctx:
                stats = self.micro_loss(part, global_units)
                self.accelerator.backward(stats.loss * self.world)
            loss_sum += stats.loss.detach().double().cpu()
            for k, v in stats.sums.items():
                sums[k] = sums.get(k, 0.0) + float(v)
        return self._all_sum(float(loss_sum)), sums, global_units

    def apply_update(self) -> float:
        """Clip, step the optimizer and the schedule, clear gradients; returns the gradient norm."""
        cfg = self.config
        grad_norm = 0.0
        if cfg.max_grad_norm > 0:
            grad_norm = float(self.accelerator.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return grad_norm

    def _all_sum(self, value: float) -> float:
        if self.world == 1:
            return value
        import torch

        t = torch.tensor([value], dtype=torch.float64, device=self.accelerator.device)
        return float(self.accelerator.reduce(t, reduction="sum").item())

    # ---- checkpoints ---------------------------------------------------------------------------
    def _trainable_names(self) -> list[str]:
        model = self.accelerator.unwrap_model(self.model)
        return [n for n, p in model.named_parameters() if p.requires_grad]

    def _trainable_state(self) -> dict[str, Any]:
        model = self.accelerator.unwrap_model(self.model)
        return {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}

    def save_checkpoint(self, step: int) -> None:
        """Write model, optimizer, scheduler, RNG and stage state atomically (temp dir + rename), with a
        manifest holding every file's SHA-256 (checked on resume)."""
        import torch
        from safetensors.torch import save_file

        self.accelerator.wait_for_everyone()
        if is_fsdp(self.accelerator):  # every process takes part in gathering the shards
            weights, opt_state = full_state(
                self.accelerator, self.model, self.optimizer, self._trainable_names()
            )
        elif is_deepspeed(self.accelerator):  # every process gathers its partition of the optimizer state
            weights, opt_state = deepspeed_full_state(self.accelerator, self.model, self._trainable_names())
        else:
            weights, opt_state = (
                (self._trainable_state(), self.optimizer.state_dict()) if self.is_main else ({}, {})
            )
        if self.is_main:
            tmp = self.run.new_checkpoint_tmp(step)
            save_file(weights, str(tmp / "trainable.safetensors"))
            torch.save(
                {
                    "optimizer": opt_state,
                    "scheduler": self.scheduler.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "numpy_rng": np.random.get_state(),
                    "python_rng": random.getstate(),
                    "extra": self.extra_state(),
                },
                tmp / "state.pt",
            )
            state = {"step": step, "stage": self.stage, "manifest": MANIFEST}
            atomic_write_text(tmp / "trainer_state.json", json.dumps(state))
            write_manifest(tmp, step, self.stage)  # last: hashes every file above
            self.run.commit_checkpoint(tmp, step, self.config.keep_last)
        self.accelerator.wait_for_everyone()

    def _restore(self) -> None:
        """Resume from the newest checkpoint whose files match its manifest and load.

        A damaged checkpoint (a file missing, cut short or changed) is named in one line on stderr and
        the next older one is tried; the damaged ones are then moved aside (``damaged-step-NNNNNN``) so
        pruning never deletes the good checkpoint in their favour. No intact checkpoint: DataError,
        and nothing in the run directory is changed.
        """
        found = self.run.list_checkpoints()
        damaged: list[tuple[Path, str]] = []
        chosen: tuple[int, Path] | None = None
        for step, path in reversed(found):
            verdict = verify_checkpoint(path, step)
            problem = verdict.problem
            if problem is None and not verdict.verified:
                self._say(
                    f"warning: checkpoint {path}: no {MANIFEST} (written by an earlier rlhfops); its files "
                    "cannot be checked against hashes, only that they load"
                )
            if problem is None:
                problem = self._load_checkpoint(path)
            if problem is None:
                chosen = (step, path)
                break
            self._say(f"warning: checkpoint {path} is damaged: {problem}; not used")
            damaged.append((path, problem))
        if found and chosen is None:
            listed = "; ".join(f"{p.name}: {why}" for p, why in damaged)
            raise DataError(
                f"{self.run.checkpoints_dir}: no intact checkpoint to resume from ({listed}); nothing was "
                f"changed. Restore the files, or move {self.run.checkpoints_dir} away to restart from step 0"
            )
        self.accelerator.wait_for_everyone()  # every process has read its checkpoint before any move
        step = chosen[0] if chosen else 0
        self.start_step = step
        self.damaged_checkpoints = [{"checkpoint": p.name, "problem": why} for p, why in damaged]
        if not self.is_main:
            return
        self.run.clean_stale_tmp()
        moved = [self.run.set_aside(p) for p, _ in damaged]
        if chosen and moved:
            self._say(
                f"warning: resuming from {chosen[1].name}, the newest intact checkpoint; "
                f"damaged ones moved to {', '.join(str(m) for m in moved)}"
            )
        self.run.truncate_metrics_after(step)

    def _load_checkpoint(self, path: Path) -> str | None:
        """Load weights, optimizer, scheduler, RNG and stage state from ``path``; a line naming the file
        that does not load, or None. A failure half-way is harmless: the next checkpoint tried (or the
        error) replaces everything set here."""
        import torch
        from safetensors.torch import load_file

        model = self.accelerator.unwrap_model(self.model)
        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        name = "trainable.safetensors"
        try:
            weights = load_file(str(path / name))
            wrong = sorted(set(weights) ^ set(params)) + sorted(
                k for k in weights.keys() & params.keys() if weights[k].shape != _whole_shape(params[k])
            )
            if wrong:
                return f"{name} does not fit the model ({len(wrong)} tensors differ, e.g. {wrong[0]})"
            sharded = is_fsdp(self.accelerator)
            # DeepSpeed: the optimizer state (under ZeRO-3 the weights too) is partitioned over the processes
            partitioned = is_deepspeed(self.accelerator)
            if not sharded and not partitioned:
                with torch.no_grad():
                    for key, value in weights.items():
                        params[key].copy_(value)
            name = "state.pt"
            state = load_state(path / name)
            if sharded:  # whole tensors (written by any number of processes) into this run's shards
                load_full_state(self.model, self.optimizer, weights, state["optimizer"])
            elif partitioned:
                load_deepspeed_state(self.accelerator, self.model, list(params), weights, state["optimizer"])
            else:
                self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["torch_rng"])
            np.random.set_state(state["numpy_rng"])
            random.setstate(state["python_rng"])
            self.load_extra_state(state.get("extra", {}))
        except Exception as err:  # noqa: BLE001 - any failure to load means this checkpoint is not usable
            detail = str(err).strip().splitlines()[0][:160] if str(err).strip() else ""
            return f"{name} does not load ({type(err).__name__}{': ' + detail if detail else ''})"
        return None

    def _say(self, line: str) -> None:
        """One line on stderr from the main process (resume warnings)."""
        if self.is_main:
            print(line, file=sys.stderr, flush=True)

    # ---- the end ---------------------------------------------------------------------------------
    def finish(self) -> RunResult:
        metrics = self.evaluate()
        summary: dict[str, Any] = {}
        if is_fsdp(self.accelerator):
            self._unshard_for_saving()
        with whole_weights(self.accelerator, self.model):  # DeepSpeed ZeRO-3: every process gathers
            if self.is_main:
                self.save_final(self.run.final_dir)
        if self.is_main:
            history = [r for r in self.run.read_metrics() if "loss" in r]
            summary = {
                "stage": self.stage,
                "steps": self.total_steps,
                "resumed_from_step": self.start_step or None,
                "train_rows": len(self.train_rows),
                "eval_rows": len(self.eval_rows),
                "final_model": str(self.run.final_dir),
                "first_loss": history[0]["loss"] if history else None,
                "last_loss": history[-1]["loss"] if history else None,
                "eval": metrics,
                "world_size": self.world,
                **self.summary_extra(),
                # how the processes share the work: NO (one), MULTI_CPU / MULTI_GPU (DDP), FSDP, DEEPSPEED
                "distributed_type": str(self.accelerator.distributed_type.value),
            }
            if is_deepspeed(self.accelerator):  # the ZeRO stage and ZeRO-Offload the engine ran
                summary["deepspeed"] = deepspeed_record(self.accelerator, self.model)
            if getattr(self, "truncation", None):
                summary["truncation"] = self.truncation  # per data file: whole, truncated, dropped
            if self.damaged_checkpoints:
                summary["damaged_checkpoints"] = self.damaged_checkpoints
            summary["environment"] = self._record_environment()
            atomic_write_text(self.run.summary_path, json.dumps(summary, indent=2, sort_keys=True))
        self.accelerator.wait_for_everyone()
        return RunResult(self.run.path, self.total_steps, summary)

    def _unshard_for_saving(self) -> None:
        """FSDP: gather the whole model to the main process and swap it in, unsharded, for ``save_final``
        (a fresh copy built by ``build_model`` holding the trained weights; the run is over)."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        whole = get_model_state_dict(
            self.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
        )
        if not self.is_main:
            return
        sharded = self.model
        self.build_model()
        missing, unexpected = self.model.load_state_dict(whole, strict=False)
        if unexpected or [k for k in missing if k in dict(self.model.named_parameters())]:
            raise RuntimeError(f"gathered weights do not fit the model: {missing[:3]} {unexpected[:3]}")
        del sharded

    def _record_environment(self) -> dict[str, Any]:
        """Write every installed version, the lock's hash and the drift from it to ``environment.json``;
        returns the record without the package list (for the summary)."""
        from rlhfops.workspace.environment import brief, environment_record

        record = environment_record()
        atomic_write_text(self.run.path / "environment.json", json.dumps(record, indent=1, sort_keys=True))
        return brief(record)

    def cleanup(self) -> None:
        self.accelerator.free_memory() if hasattr(self, "accelerator") else None

    def run_all(self) -> RunResult:
        try:
            self.setup()
            return self.train()
        finally:
            self.cleanup()


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _whole_shape(param: Any) -> Any:
    """A parameter's whole shape: DeepSpeed ZeRO-3 keeps it in ``ds_shape`` (the tensor itself is empty
    outside a gather)."""
    return getattr(param, "ds_shape", param.shape)
