"""Tiny data and model fixtures for trainer tests (2-layer random models, a few dozen rows), and the
two-process (gloo, CPU) runner the data-parallel tests share."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import rlhfops

WORDS = "order refund parcel broken late account password delivery invoice colour size".split()


def write_demos(path: Path, n: int = 24, seed: int = 0) -> Path:
    rng = random.Random(seed)
    with open(path, "w") as fh:
        for i in range(n):
            w = rng.sample(WORDS, 3)
            prompt = f"Customer {i}: my {w[0]} is {w[1]}"
            completion = "Sorry about the " + " ".join(w[: 1 + i % 3]) + ". We will fix it today."
            fh.write(json.dumps({"prompt": prompt, "completion": completion}) + "\n")
    return path


def write_prefs(path: Path, n: int = 32, seed: int = 0, margin: bool = False) -> Path:
    rng = random.Random(seed)
    with open(path, "w") as fh:
        for i in range(n):
            w = rng.sample(WORDS, 2)
            row = {
                "prompt": f"Question {i} about my {w[0]} and {w[1]}",
                "chosen": f"Happy to help with your {w[0]}: here is what we will do.",
                "rejected": "I cannot help." + " no" * (i % 4),
            }
            if margin:
                row["margin"] = float(i % 3)
            fh.write(json.dumps(row) + "\n")
    return path


def write_prompts(path: Path, n: int = 24, seed: int = 0) -> Path:
    rng = random.Random(seed)
    with open(path, "w") as fh:
        for i in range(n):
            w = rng.sample(WORDS, 2)
            fh.write(json.dumps({"prompt": f"Hello {i}, my {w[0]} has a {w[1]} problem."}) + "\n")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def worker_pythonpath(helpers: Path) -> str:
    """The helpers' directory, then the directory this process imports rlhfops from, then whatever
    PYTHONPATH already held: EXTENDED, so a worker imports the code under test (a worktree's src/), never
    an installed copy that a replaced PYTHONPATH would fall back to."""
    src = str(Path(rlhfops.__file__).resolve().parents[1])
    old = os.environ.get("PYTHONPATH", "")
    return os.pathsep.join(p for p in [str(helpers), src, *old.split(os.pathsep)] if p)


def run_launch(cmd: list[str], env: dict[str, str], timeout: float, what: str) -> str:
    """Run a launch (``accelerate launch`` or a worker) in a session of its own, so a hang is killed with
    every process the launcher started; fail the test if it does not end in ``timeout`` s or exits non-zero
    (``what`` names it in the message). Returns its stderr."""
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        raise AssertionError(f"{what}: no end in {timeout} s (killed): {err[-3000:]}") from None
    assert proc.returncode == 0, f"{what} failed: {err[-6000:]}"
    return err


def run_two_processes(worker: Path, out: Path, *args: str) -> dict[str, Any]:
    """Run ``worker`` (with ``args``) on 2 gloo processes under ``torch.distributed.run``; what it saved to
    ``out``, after checking that the workers ran the code under test."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": worker_pythonpath(worker.parent)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={free_port()}",
        str(worker),
        *args,
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    saved = torch.load(out)
    assert saved["rlhfops_file"] == rlhfops.__file__  # the workers ran the code under test
    return saved


def lazy_launches(
    launch: Callable[[str], None], needs: Callable[[str], list[str]] = lambda tag: []
) -> Callable[[str], None]:
    """``launched(tag)``: runs ``launch(tag)`` the first time a test asks for it, after the launches
    ``needs(tag)`` names (``-k zero2`` launches only what those tests need); a failed launch fails every later
    test that needs it, with the launch's error as the cause."""
    outcome: dict[str, BaseException | None] = {}

    def launched(tag: str) -> None:
        if tag not in outcome:
            for dependency in needs(tag):
                if dependency != tag:
                    launched(dependency)  # e.g. a partial run exists before another configuration resumes it
            try:
                launch(tag)
                outcome[tag] = None
            except BaseException as err:  # noqa: BLE001 - every later test of this launch fails the same way
                outcome[tag] = err
        if outcome[tag] is not None:
            raise AssertionError(f"launch {tag!r} failed") from outcome[tag]

    return launched
