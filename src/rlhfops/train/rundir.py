"""The run directory: resolved config, metrics.jsonl, atomic checkpoints, final model, summary.json.

Layout::

    RUN_DIR/
      config.yaml          the resolved config (with the stage name), written once at the start
      metrics.jsonl        one JSON object per logged step
      checkpoints/step-000050/   written to a temp dir, then renamed: never half-written; its
                                 manifest.json holds every file's SHA-256, checked on resume
      checkpoints/damaged-step-000060/   a checkpoint a resume found damaged, moved aside
      final/               the trained model (full weights or adapter)
      environment.json     every installed version, the lock's SHA-256 and the drift from it
      summary.json         written last; its presence means the run finished (holds the lock's hash
                           and the drift too)
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from rlhfops.data.files import atomic_write_text  # the one atomic writer; re-exported for train/

CHECKPOINTS = "checkpoints"
STEP_PREFIX = "step-"
DAMAGED_PREFIX = "damaged-"


def default_run_dir(stage: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return Path("runs") / f"{stage}-{stamp}"


class RunDir:
    """Files of one training run."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def summary_path(self) -> Path:
        return self.path / "summary.json"

    @property
    def final_dir(self) -> Path:
        return self.path / "final"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / CHECKPOINTS

    def write_config(self, stage: str, config: dict[str, Any]) -> None:
        atomic_write_text(self.config_path, yaml.safe_dump({"stage": stage, **config}, sort_keys=False))

    def read_config(self) -> tuple[str, dict[str, Any]]:
        data = yaml.safe_load(self.config_path.read_text(encoding="utf-8")) or {}
        stage = data.pop("stage", "")
        return stage, data

    # metrics -----------------------------------------------------------------------------------
    def append_metrics(self, record: dict[str, Any]) -> None:
        with open(self.metrics_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")
            fh.flush()

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.exists():
            return []
        out = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a kill: dropped on resume
                continue
        return out

    def truncate_metrics_after(self, step: int) -> None:
        """Keep metrics of steps <= ``step`` (and non-step records): used when resuming."""
        kept = [r for r in self.read_metrics() if int(r.get("step", 0)) <= step]
        atomic_write_text(self.metrics_path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))

    # checkpoints -------------------------------------------------------------------------------
    def checkpoint_dir(self, step: int) -> Path:
        return self.checkpoints_dir / f"{STEP_PREFIX}{step:06d}"

    def list_checkpoints(self) -> list[tuple[int, Path]]:
        if not self.checkpoints_dir.is_dir():
            return []
        found = []
        for p in self.checkpoints_dir.iterdir():
            number = p.name[len(STEP_PREFIX) :]
            if (
                p.is_dir()
                and p.name.startswith(STEP_PREFIX)
                and number.isdigit()
                and ((p / "trainer_state.json").exists() or (p / "manifest.json").exists())
            ):
                found.append((int(number), p))
        return sorted(found)

    def latest_checkpoint(self) -> tuple[int, Path] | None:
        found = self.list_checkpoints()
        return found[-1] if found else None

    def new_checkpoint_tmp(self, step: int) -> Path:
        tmp = self.checkpoints_dir / f".tmp-{STEP_PREFIX}{step:06d}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        return tmp

    def commit_checkpoint(self, tmp: Path, step: int, keep_last: int) -> Path:
        """Rename a fully written temp checkpoint into place, then prune old ones."""
        final = self.checkpoint_dir(step)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        for _, old in self.list_checkpoints()[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def set_aside(self, ckpt: Path) -> Path:
        """Move a damaged checkpoint out of the way (``damaged-step-NNNNNN``, kept for inspection)."""
        target = ckpt.with_name(f"{DAMAGED_PREFIX}{ckpt.name}")
        n = 1
        while target.exists():
            n += 1
            target = ckpt.with_name(f"{DAMAGED_PREFIX}{ckpt.name}-{n}")
        os.replace(ckpt, target)
        return target

    def clean_stale_tmp(self) -> None:
        if self.checkpoints_dir.is_dir():
            for p in self.checkpoints_dir.glob(".tmp-*"):
                shutil.rmtree(p, ignore_errors=True)

    def iter_files(self) -> Iterator[Path]:
        yield from sorted(p for p in self.path.rglob("*") if p.is_file())
