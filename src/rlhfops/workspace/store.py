"""Content-addressed file store: hashing of files and directories, read-only copies under their hash.

Layout: ``<workspace>/artifacts/<sha256>/<original name>`` (a file or a directory). A copy is written
to a temporary directory next to it and renamed into place, so a stored artifact is either complete or
absent, and two processes storing the same content at once end with one copy.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rlhfops.errors import DataError

_BLOCK = 1 << 20

# What can be stored. Training stages: dataset kinds in, model kinds out.
KINDS: dict[str, str] = {
    "spec": "a task spec version (YAML)",
    "edge-cases": "the spec's edge-case appendix (informative)",
    "dataset": "raw data of any kind",
    "demonstrations": "demonstration data (prompt, completion)",
    "preferences": "preference data (prompt, chosen, rejected); meta.agreement once annotated",
    "prompts": "prompts for rollouts or evaluation",
    "base-model": "a starting model",
    "sft-model": "a model after supervised fine-tuning",
    "reward-model": "a reward model; meta.eval.eval_accuracy",
    "dpo-model": "a policy after DPO",
    "ppo-model": "a policy after PPO",
    "evaluation": "an evaluation of a model (parent: the model)",
    "redteam": "a red-team run on a model (parent: the model)",
    "decision": "a gate decision (parent: the model); meta.decision",
    "baseline-data": "the data a business baseline was computed from",
    "report": "a generated report",
    "judge-calibration": "a judge scored on the human-labelled pairs; meta.judge, meta.kappa, meta.agreement",
}


@dataclass(frozen=True)
class ArtifactRecord:
    """One stored artifact. ``path`` is the absolute path of the stored (read-only) copy."""

    id: str
    kind: str
    name: str
    path: Path
    creator: str
    created_at: datetime
    meta: dict[str, Any] = field(default_factory=dict)
    parents: tuple[str, ...] = ()

    @property
    def short_id(self) -> str:
        return self.id[:12]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "path": str(self.path),
            "creator": self.creator,
            "created_at": self.created_at.isoformat(),
            "meta": self.meta,
            "parents": list(self.parents),
        }


def _hash_file_into(h: Any, path: Path) -> None:
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_BLOCK), b""):
            h.update(block)


def _files(root: Path) -> list[Path]:
    return sorted((p for p in root.rglob("*") if p.is_file()), key=lambda p: p.relative_to(root).as_posix())


def content_hash(path: Path) -> str:
    """SHA-256 of a file's bytes, or of a directory's files.

    A directory hashes, for each file in order of its relative POSIX path: the path (UTF-8), a NUL,
    the size in decimal, a NUL, the bytes. Names and layout count; timestamps and permissions do not.
    """
    h = hashlib.sha256()
    if path.is_file():
        _hash_file_into(h, path)
        return h.hexdigest()
    if not path.is_dir():
        raise DataError(f"{path}: not found; nothing to register")
    files = _files(path)
    if not files:
        raise DataError(f"{path}: empty directory; nothing to register")
    for f in files:
        h.update(f.relative_to(path).as_posix().encode("utf-8") + b"\0")
        h.update(str(f.stat().st_size).encode("ascii") + b"\0")
        _hash_file_into(h, f)
    return h.hexdigest()


def _make_read_only(path: Path) -> None:
    ro = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
    targets = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for p in targets:
        os.chmod(p, ro)


def store_copy(store_dir: Path, sha: str, src: Path) -> Path:
    """Copy ``src`` into ``store_dir/sha/<name>`` (read-only) unless already there; returns the copy."""
    final_dir = store_dir / sha
    if final_dir.is_dir():
        existing = [p for p in final_dir.iterdir()]
        if existing:
            return existing[0]
    store_dir.mkdir(parents=True, exist_ok=True)
    tmp = store_dir / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        dest = tmp / src.name
        if src.is_dir():
            shutil.copytree(src, dest)
        else:
            shutil.copy2(src, dest)
        if content_hash(dest) != sha:
            raise DataError(f"{src}: changed while it was being stored; register it again")
        _make_read_only(dest)
        try:
            os.rename(tmp, final_dir)
        except OSError:
            if not final_dir.is_dir():  # a failure other than "another process stored it first"
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return next(iter(final_dir.iterdir()))
