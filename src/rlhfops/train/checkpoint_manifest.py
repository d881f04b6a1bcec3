"""A checkpoint's manifest: the SHA-256 and size of every file in it, written last, checked on resume.

``manifest.json`` in ``checkpoints/step-NNNNNN/``::

    {"format": "rlhfops-checkpoint/1", "step": 6, "stage": "sft",
     "files": {"state.pt": {"sha256": "...", "bytes": 1234}, "trainable.safetensors": {...},
               "trainer_state.json": {...}}}

What this catches: a file changed by accident (a flipped bit, a copy cut short, a file deleted) or edited
by hand without the manifest. What it does not: someone who rewrites the files and the manifest
together (see docs/security.md, "Checkpoint integrity").

A checkpoint written before manifests existed (no ``manifest.json``, and ``trainer_state.json`` does not
announce one) is *unverified*: :func:`verify_checkpoint` says so and the caller decides (the trainer
resumes from it only if its files load, with a warning).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from rlhfops.train.rundir import atomic_write_text

MANIFEST = "manifest.json"
FORMAT = "rlhfops-checkpoint/1"
TRAINER_STATE = "trainer_state.json"
REQUIRED = ("trainable.safetensors", "state.pt", TRAINER_STATE)
_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileDigest:
    """SHA-256 (hex) and size in bytes of one file."""

    sha256: str
    size: int


@dataclass(frozen=True)
class Verdict:
    """What :func:`verify_checkpoint` found.

    ``problem`` is None when nothing is wrong; ``verified`` is False for a checkpoint without a manifest
    (written by an earlier rlhfops), whose files could not be checked against hashes.
    """

    problem: str | None
    verified: bool

    @property
    def intact(self) -> bool:
        return self.problem is None


def file_digest(path: Path) -> FileDigest:
    """SHA-256 and size of ``path``, read in 1 MiB chunks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return FileDigest(h.hexdigest(), size)


def write_manifest(ckpt_dir: Path, step: int, stage: str) -> Path:
    """Hash every file of the (still temporary) checkpoint ``ckpt_dir`` into its ``manifest.json``."""
    files = {}
    for p in sorted(ckpt_dir.iterdir()):
        if p.is_file() and p.name != MANIFEST:
            d = file_digest(p)
            files[p.name] = {"sha256": d.sha256, "bytes": d.size}
    body = {"format": FORMAT, "step": step, "stage": stage, "files": files}
    path = ckpt_dir / MANIFEST
    atomic_write_text(path, json.dumps(body, indent=1, sort_keys=True) + "\n")
    return path


def _short(sha: str) -> str:
    return sha[:16]


def _announces_manifest(ckpt_dir: Path) -> bool:
    """Whether ``trainer_state.json`` says a manifest was written (every checkpoint since manifests)."""
    try:
        state = json.loads((ckpt_dir / TRAINER_STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and bool(state.get("manifest"))


def _read_manifest(path: Path) -> tuple[dict, str | None]:
    """The manifest's content, or a line naming why it cannot be used."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return {}, f"{MANIFEST} is unreadable ({type(err).__name__})"
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return {}, f"{MANIFEST} has an unknown format (expected {FORMAT!r})"
    files = data.get("files")
    if not isinstance(files, dict) or not all(
        isinstance(k, str)
        and Path(k).name == k
        and isinstance(v, dict)
        and isinstance(v.get("sha256"), str)
        and isinstance(v.get("bytes"), int)
        for k, v in files.items()
    ):
        return {}, f"{MANIFEST} does not list plain file names with sha256 and bytes"
    return data, None


def check_file(ckpt_dir: Path, name: str, expected: dict) -> str | None:
    """One line naming what is wrong with file ``name`` against its manifest entry, or None."""
    path = ckpt_dir / name
    want = FileDigest(expected["sha256"], expected["bytes"])
    if not path.is_file():
        return f"{name} is missing (expected {want.size} bytes, sha256 {_short(want.sha256)}...)"
    got = file_digest(path)
    if got.size != want.size:
        return (
            f"{name} has {got.size} bytes, expected {want.size} "
            f"(sha256 {_short(got.sha256)}..., expected {_short(want.sha256)}...)"
        )
    if got.sha256 != want.sha256:
        return f"{name} sha256 is {_short(got.sha256)}..., expected {_short(want.sha256)}... (same size)"
    return None


def verify_checkpoint(ckpt_dir: Path, step: int) -> Verdict:
    """Check every file of checkpoint ``ckpt_dir`` (of optimizer step ``step``) against its manifest."""
    manifest = ckpt_dir / MANIFEST
    if not manifest.is_file():
        if _announces_manifest(ckpt_dir):
            return Verdict(f"{MANIFEST} is missing (its {TRAINER_STATE} says one was written)", True)
        if not (ckpt_dir / TRAINER_STATE).is_file():
            return Verdict(f"neither {MANIFEST} nor {TRAINER_STATE} is present", True)
        return Verdict(None, False)  # written before manifests: the caller checks that it loads
    data, problem = _read_manifest(manifest)
    if problem:
        return Verdict(problem, True)
    if data.get("step") != step:
        return Verdict(f"{MANIFEST} is for step {data.get('step')}, not {step}", True)
    files: dict = data["files"]
    unlisted = [name for name in REQUIRED if name not in files]
    if unlisted:
        return Verdict(f"{MANIFEST} does not list {', '.join(unlisted)}", True)
    for name in sorted(files):
        problem = check_file(ckpt_dir, name, files[name])
        if problem:
            return Verdict(problem, True)
    return Verdict(None, True)


def load_state(path: Path):
    """``torch.load`` of a trainer state file (``state.pt``, the DPO reference table) with
    ``weights_only=True``: tensors, plain containers and numbers, plus the three numpy globals a
    ``np.random.get_state()`` tuple needs. Nothing else is unpickled, so a crafted file cannot run code."""
    import numpy as np
    import torch

    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct

    allowed = [_reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]
    with torch.serialization.safe_globals(allowed):
        return torch.load(path, weights_only=True)
