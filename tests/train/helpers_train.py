"""Tiny data and model fixtures for trainer tests (2-layer random models, a few dozen rows), and the
two-process (gloo, CPU) runner the data-parallel tests share."""

from __future__ import annotations

import json
import os
import random
import shutil
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


def stopped_copy(run: Path, out: Path, step: int) -> Path:
    """A copy of the finished run ``run`` at ``out`` as a run killed right after writing checkpoint ``step``
    leaves it: no summary, no final model, no later checkpoint (its metrics after ``step`` are dropped by the
    resume itself). The checkpoint is the one the uninterrupted run wrote on its way, so the run it resumes
    from and its uninterrupted baseline are one launch's job, not two."""
    shutil.copytree(run, out)
    (out / "summary.json").unlink()
    shutil.rmtree(out / "final")
    for ckpt in (out / "checkpoints").iterdir():
        if ckpt.name != f"step-{step:06d}":
            shutil.rmtree(ckpt)
    return out


#: how far a resumed RL run may be from an uninterrupted one, in units of the uninterrupted 2-against-1 gap
#: (see ``assert_resumed_within_the_process_count_gap``), and the floor under it (losses: half the RL stage's
#: fixed 2-against-1 tolerance of 2e-5; weights: a twentieth of its 2e-4). Measured (docs/scaling.md): GRPO's
#: resumed runs within 1.1 x its gap (4e-6 where the gap is 1.2e-6), RLOO's within 6.1e-8 (its gap 2e-8 to
#: 6e-8); resumes that lose the optimizer's moments or the minibatch RNG miss by 1.5e-4 to 3.4e-2 (losses) or
#: 1.2e-3 (weights)
GAP_FACTOR, GAP_WEIGHT_FLOOR = 3.0, 1e-5
#: the loss floor per job. GRPO's is 1e-4: its 2-against-1 gap is one sample of rounding that varies tenfold
#: between machines (ZeRO-2: 5.75e-5 on one, 5.67e-6 on the next) while its resumed runs miss by a steadier
#: 2.9e-5 to 6.2e-5 on both, so 3 x a small gap + 1e-5 failed a correct resume (3.48e-5, 2026-12-07); 1e-4
#: stays 4.5x under the smallest miss of a resume that loses state (the minibatch RNG: 4.5e-4). RLOO's gap is
#: rounding (2e-8 to 6e-8): half the RL stage's fixed 2e-5, as before (its smallest broken miss: 1.5e-4)
GAP_LOSS_FLOOR = {"grpo": 1e-4, "rloo": 1e-5}


def assert_resumed_within_the_process_count_gap(
    resumed: tuple[list[float], dict[str, torch.Tensor]],
    one: tuple[list[float], dict[str, torch.Tensor]],
    two: tuple[list[float], dict[str, torch.Tensor]],
    writer: str,
    at: int,
    job: str,
) -> dict[str, float]:
    """The RL stage (GRPO, RLOO) resumed across process counts, judged against the same launch's numbers.

    ``one`` and ``two``: the per-step losses and final weights of the same job run uninterrupted on 1 and on
    2 processes (same global batch); ``resumed``: its checkpoint after step ``at``, written by ``writer``
    ("one" or "two"), finished on the other count. The uninterrupted 2-against-1 gap is the rounding any
    change of process count gives this job on this machine (it grows with the steps: the losses, a few
    thousandths around 0, follow the 1e-6 weight differences of the samples); a run that changed process
    count after step ``at`` may differ from either uninterrupted run by that much, so:

    - steps up to ``at``: the writer's losses exactly (logged before the checkpoint, kept by the resume);
    - each later step s: within GAP_FACTOR x (largest 2-against-1 gap of steps 1..s) + GAP_LOSS_FLOOR[job] of
      BOTH uninterrupted runs;
    - every final weight: within GAP_FACTOR x (largest 2-against-1 final weight gap) + GAP_WEIGHT_FLOOR of
      both.

    A resume that loses state (the optimizer's moments, the RNG that orders the minibatches) misses by
    orders of magnitude more (docs/scaling.md). Returns the measured figures."""
    (lr, wr), (l1, w1), (l2, w2) = resumed, one, two
    floor = GAP_LOSS_FLOOR[job]
    assert len(lr) == len(l1) == len(l2) > at, (lr, l1, l2)
    source = l1 if writer == "one" else l2
    assert lr[:at] == source[:at], (lr, source)
    gaps = [abs(a - b) for a, b in zip(l1, l2, strict=True)]
    figures: dict[str, float] = {"loss_gap": max(gaps)}
    worst = 0.0
    for s in range(at, len(lr)):
        bound = GAP_FACTOR * max(gaps[: s + 1]) + floor
        for base, label in ((l1, "one process"), (l2, "two processes")):
            miss = abs(lr[s] - base[s])
            worst = max(worst, miss)
            assert miss <= bound, (
                f"step {s + 1}: resumed loss {lr[s]} is {miss:.3g} from the uninterrupted run on {label} "
                f"({base[s]}), above {bound:.3g} ({GAP_FACTOR} x the 2-against-1 gap of steps 1-{s + 1}, "
                f"{max(gaps[: s + 1]):.3g}, + {floor})"
            )
    figures["loss_miss"] = worst
    assert wr.keys() == w1.keys() == w2.keys() and wr
    wgap = max(float((w1[k] - w2[k]).abs().max()) for k in w1)
    bound = GAP_FACTOR * wgap + GAP_WEIGHT_FLOOR
    wmiss = 0.0
    for k in wr:
        for base, label in ((w1, "one process"), (w2, "two processes")):
            miss = float((wr[k] - base[k]).abs().max())
            wmiss = max(wmiss, miss)
            assert miss <= bound, (
                f"{k}: resumed weights {miss:.3g} from the uninterrupted run on {label}, above {bound:.3g} "
                f"({GAP_FACTOR} x the 2-against-1 weight gap {wgap:.3g} + {GAP_WEIGHT_FLOOR})"
            )
    figures.update(weight_gap=wgap, weight_miss=wmiss)
    return figures
