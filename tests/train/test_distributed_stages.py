"""Every stage under ``accelerate launch`` on 2 CPU processes (DDP and FSDP2 over gloo) against 1 process.

One module-scoped launch per configuration (``stages_worker.py`` runs every job of a plan in one process
group): the single process runs every stage, then ``accelerate launch --multi_gpu --num_processes 2`` and
``--use_fsdp --fsdp_version 2`` run the same stages with the same settings (so the same global batch),
then resumes cross the process count both ways. A launch runs when the first selected test needs it.
Checked per stage: the per-step losses and the final weights equal the single process's, the run
directory is written once (by the main process), and a checkpoint written by 2 processes resumes in 1
(and the reverse) to the weights of the uninterrupted run (SFT, PPO), or within the gap between the
uninterrupted runs on 1 and 2 processes (RLOO, GRPO: ``assert_resumed_within_the_process_count_gap``).

Tolerance: float32 everywhere; the two runs differ only in the order of float sums (each process sums
its half of the batch, then the all-reduce adds the halves; left-padding widths differ with the batch
composition), ~1e-7 relative per step, which Adam's normalised update can amplify over a few steps where
a second moment is tiny. SFT, RM, DPO, IPO: losses rtol 1e-4, weights atol 2e-5 (lr 1e-3 moves a weight
by up to 1e-3 per step; a wrong batch, a missing process's gradient or a per-process mean misses by
orders of magnitude). The PPO family: losses atol 2e-5 (a clipped surrogate of whitened advantages, a few
hundredths around 0, so a relative tolerance means nothing) and weights atol 2e-4 (12 Adam steps, 4 per
iteration; measured differences ~5e-5, where per-process sampling seeds or whitening gave ~1e-2). The
reward head's ``bias`` is left out of the weight check: Bradley-Terry depends on r_chosen - r_rejected
only, its gradient is 0 up to rounding and Adam turns that rounding into steps of any sign. (It used to be
checked against 2 x lr x steps, a bound Adam's normalised steps keep whatever the code does, so a check
that could not fail; it is now not compared at all.)

The RL jobs penalise KL with the k3 estimator, not the default k1. In iteration 1 the policy is the
reference, so the per-token KL is rounding: ~1e-6 per token with k1 (a difference of log-probs), ~1e-12 with
k3 (quadratic in it). With k1 that rounding is the whole advantage of a group whose scores tie (RLOO, GRPO),
and its sign picks the direction of the Adam steps of the embedding rows only that group saw: the same
one-process run sampled with oneDNN-packed weights (the default on one process) and with plain matmuls
(what the sharded forward computes) ended 1.2e-3 (RLOO) and 4.6e-3 (GRPO) apart; with k3, 1.4e-7.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from helpers_train import (
    assert_resumed_within_the_process_count_gap,
    free_port,
    lazy_launches,
    run_launch,
    stopped_copy,
    worker_pythonpath,
    write_demos,
    write_prefs,
    write_prompts,
)
from safetensors.torch import load_file

from rlhfops.models.tiny import make_tiny_model_dir

#: 4 launches (1 process, DDP, FSDP, 1 process resuming), each the first time a selected test needs it;
#: every stage runs in each (they were 7, the RL stage apart: merged, 123 -> 92 CPU-seconds back to back);
#: minutes of wall on this busy 2-core machine, so outside the fast suite
pytestmark = pytest.mark.slow
#: seconds one launch may take before it is killed (with its process group) and its tests fail: a process
#: waiting for a collective the others never join hangs, and must not hang the suite
LAUNCH_TIMEOUT = 900

WORKER = Path(__file__).with_name("stages_worker.py")
LOSS_RTOL, WEIGHT_ATOL = 1e-4, 2e-5
RL_LOSS_ATOL, RL_WEIGHT_ATOL = 2e-5, 2e-4
#: parameters whose gradient is 0 in exact arithmetic (see the module docstring)
UNIDENTIFIED = {"rm": {"score_head:bias"}}

COMMON = ["max_length=128", "progress=false", "learning_rate=1e-3", "seed=3"]
PREF = ["batch_size=8", "max_steps=3", "eval_fraction=0.25", "save_every=2"]
PPO = [
    "reward_fn=length_target:6",
    "batch_size=4",
    "max_steps=3",
    "minibatch_size=4",
    "ppo_epochs=2",
    "max_new_tokens=6",
    "max_length=160",
    "eval_fraction=0",
    "save_every=2",
    "kl_estimator=k3",  # see the module docstring: k1 makes iteration 1 depend on rounding
]
#: the RL jobs sample from the tiny model with its EOS logit raised (``make_tiny_model_dir(eos_boost=1.5)``):
#: responses end at different lengths, so processes finish sampling at different steps
RL_MODEL = "tiny-stops"
#: name -> (stage, data kind, settings)
JOBS: dict[str, tuple[str, str, list[str]]] = {
    "sft": ("sft", "demos", ["batch_size=8", "max_steps=3", "eval_fraction=0.25", "save_every=2",
                             "gradient_accumulation_steps=2"]),
    "rm": ("rm", "prefs", PREF),
    "dpo": ("dpo", "prefs", PREF),
    "ipo": ("dpo", "prefs", [*PREF, "loss_type=ipo"]),
    "ppo": ("ppo", "prompts", PPO),
    "rloo": ("ppo", "prompts", [*PPO, "advantage_estimator=rloo", "samples_per_prompt=2", "max_steps=4"]),
    "grpo": ("ppo", "prompts", [*PPO, "advantage_estimator=grpo", "samples_per_prompt=2", "max_steps=4"]),
}  # fmt: skip
#: resumed across process counts: stopped after step 2 of 4 (checkpoint 2 written), resumed to the end
RESUMED = {"sft": 4, "ppo": 4}
#: the RL stage without a value head (RLOO, GRPO) runs 4 iterations with a checkpoint after the 2nd in every
#: launch (compared 2 against 1 over its first 3, as the other jobs); a resume finishes a copy of another
#: launch's run stopped at that checkpoint (``stopped_copy``), judged by the gap between the job's
#: uninterrupted runs on 1 and 2 processes (``assert_resumed_within_the_process_count_gap``)
RL_RESUMED = ["rloo", "grpo"]
#: what each 2-process launch resumes from one process, and one process from each 2-process launch
CROSS = ["sft", "ppo", *RL_RESUMED]
RL_JOBS = [n for n in JOBS if JOBS[n][0] == "ppo"]

LAUNCH = ["--num_machines=1", "--mixed_precision=no", "--dynamo_backend=no"]
DDP = ["--multi_gpu", "--num_processes=2"]  # accelerate's torchrun launcher; no GPU: DDP over gloo
FSDP = ["--use_fsdp", "--fsdp_version=2", "--num_processes=2"]
#: tag -> (launcher arguments, None for one plain process; jobs run; partial runs written; resumes)
#: a resume ``(tag, name)`` finishes a copy of ``tag``'s partial run ``name`` in this configuration
CONFIGS: dict[str, tuple[list[str] | None, list[str], list[str], list[tuple[str, str]]]] = {
    "one": (None, list(JOBS), list(RESUMED), []),
    "two": (DDP, list(JOBS), list(RESUMED), [("one", n) for n in CROSS]),
    "fsdp": (FSDP, list(JOBS), list(RESUMED), [("one", n) for n in CROSS]),
    "one-resumes": (None, [], [], [*((src, n) for src in ("two", "fsdp") for n in CROSS),
                                   *(("one", n) for n in RL_RESUMED)]),  # 1 -> 1: the uninterrupted run
}  # fmt: skip


def _model(name: str) -> str:
    return RL_MODEL if JOBS[name][0] == "ppo" else "tiny"


def _one(name: str) -> str:
    """The one-process configuration that runs job ``name`` (the baseline of every comparison)."""
    return "one"


def _overrides(root: Path, name: str, out: Path, steps: int | None = None) -> list[str]:
    stage, kind, settings = JOBS[name]
    data = root / f"{kind}.jsonl"
    sets = [f"model={root / _model(name)}", f"data={data}", f"output_dir={out}", *COMMON, *settings]
    return sets + ([f"max_steps={steps}"] if steps else [])


def _plan(root: Path, tag: str) -> list[dict]:
    _, names, partials, resumes = CONFIGS[tag]
    here = root / tag
    jobs = [
        {"kind": "run", "stage": JOBS[n][0], "out": str(here / n), "overrides": _overrides(root, n, here / n)}
        for n in names
    ]
    for n in partials:
        for kind, out in (("partial", here / f"{n}-partial"), ("run", here / f"{n}-long")):
            overrides = _overrides(root, n, out, RESUMED[n])
            jobs.append(
                {"kind": kind, "stage": JOBS[n][0], "out": str(out), "stop_at": 2, "overrides": overrides}
            )
    for src, n in resumes:
        out = here / f"{n}-resumed-from-{src}"
        if n in RL_RESUMED:  # stopped at the uninterrupted run's own checkpoint
            stopped_copy(root / src / n, out, 2)
        else:
            shutil.copytree(root / src / f"{n}-partial", out)
        jobs.append({"kind": "resume", "stage": JOBS[n][0], "out": str(out)})
    return jobs  # fmt: skip


def _launch(root: Path, tag: str) -> None:
    (root / f"{tag}.json").write_text(json.dumps(_plan(root, tag)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": worker_pythonpath(WORKER.parent)}
    launcher = CONFIGS[tag][0]
    cmd = [sys.executable, str(WORKER), str(root / f"{tag}.json")]
    if launcher is not None:
        accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
        assert accelerate, "accelerate's console script must be installed next to the test interpreter"
        cmd = [accelerate, "launch", *launcher, *LAUNCH, f"--main_process_port={free_port()}", *cmd[1:]]
    run_launch(cmd, env, LAUNCH_TIMEOUT, f"launch {tag!r}")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Callable[[str], Path]:
    """``runs(tag)``: the directory of every configuration's runs, after launching ``tag`` (and what it
    resumes from, and the one-process baseline) the first time a test asks for it."""
    root = tmp_path_factory.mktemp("dist")
    make_tiny_model_dir(root / "tiny")
    make_tiny_model_dir(root / RL_MODEL, eos_boost=1.5)
    write_demos(root / "demos.jsonl", n=32)
    write_prefs(root / "prefs.jsonl", n=40)
    write_prompts(root / "prompts.jsonl", n=24)
    launch = lazy_launches(
        lambda tag: _launch(root, tag),
        needs=lambda tag: [*(_one(n) for n in CONFIGS[tag][1]), *(src for src, _ in CONFIGS[tag][3])],
    )

    def launched(tag: str) -> Path:
        launch(tag)
        return root

    return launched


def _metrics(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]


def _losses(run: Path) -> list[float]:
    return [r["loss"] for r in _metrics(run) if r.get("step", 0) >= 1]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for f in sorted((run / "final").glob("*.safetensors")):
        out.update({f"{f.stem}:{k}": v for k, v in load_file(str(f)).items()})
    return out


def _assert_same_run(a: Path, b: Path, name: str, steps: int | None = None) -> None:
    """Losses (the first ``steps``, all when None) and final weights within the stage's tolerance."""
    rl = JOBS[name][0] == "ppo"
    la, lb = _losses(a), _losses(b)
    assert len(la) == len(lb), (la, lb)
    la, lb = la[:steps], lb[:steps]
    torch.testing.assert_close(
        torch.tensor(lb, dtype=torch.float64),
        torch.tensor(la, dtype=torch.float64),
        rtol=0 if rl else LOSS_RTOL,
        atol=RL_LOSS_ATOL if rl else 0,
    )
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys() and wa
    atol = RL_WEIGHT_ATOL if rl else WEIGHT_ATOL
    for k in wa:
        if k in UNIDENTIFIED.get(name, ()):
            continue  # not compared: any bound Adam's steps respect could never fail (module docstring)
        torch.testing.assert_close(wb[k], wa[k], rtol=0, atol=atol, msg=f"{a}: {k}")


CASES = [("two", n) for n in JOBS] + [("fsdp", n) for n in JOBS]
DISTRIBUTED_TYPE = {"two": "MULTI_CPU", "fsdp": "FSDP"}


@pytest.mark.parametrize("tag,name", CASES)
def test_two_processes_give_the_single_process_losses_and_weights(runs, tag, name):
    runs = runs(tag)
    # RLOO and GRPO run 4 iterations (for the resume cases), compared over 3 as the others: the fixed RL
    # tolerance was set on 3; their 4th is the gap the resume cases are judged by
    _assert_same_run(runs / _one(name) / name, runs / tag / name, name, steps=3)
    summary = json.loads((runs / tag / name / "summary.json").read_text())
    assert summary["world_size"] == 2
    assert summary["distributed_type"] == DISTRIBUTED_TYPE[tag]  # FSDP really sharded, not DDP
    assert json.loads((runs / _one(name) / name / "summary.json").read_text())["distributed_type"] == "NO"
    base = _weights(runs / _one(name) / name)
    start = load_file(str(next((runs / _model(name)).glob("*.safetensors"))))
    start = {k.removeprefix("model."): v for k, v in start.items()}  # a reward model saves its trunk bare
    base = {k.split(":", 1)[1].removeprefix("model."): v for k, v in base.items()}
    moved = max(float((base[k] - start[k]).abs().max()) for k in base if k in start)
    atol = RL_WEIGHT_ATOL if JOBS[name][0] == "ppo" else WEIGHT_ATOL
    assert moved > 20 * atol, moved  # training moved the weights well beyond the tolerance


@pytest.mark.parametrize("tag,name", CASES)
def test_the_run_directory_is_written_once(runs, tag, name):
    run = runs(tag) / tag / name
    steps = [r["step"] for r in _metrics(run) if r.get("step", 0) >= 1]
    want = [1, 2, 3, 4] if name in RL_RESUMED else [1, 2, 3]
    assert steps == want  # one record per step: only the main process writes metrics
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-000002"]
    assert not list(run.rglob("*.tmp")) and not list(run.rglob(".tmp*"))


RESUMES = [(tag, src, n) for tag, (_, _, _, resumes) in CONFIGS.items() for src, n in resumes]


@pytest.mark.parametrize("tag,src,name", RESUMES)
def test_a_checkpoint_resumes_with_another_number_of_processes(runs, tag, src, name):
    """SFT and PPO (GAE): 2 -> 1 and 1 -> 2 (DDP, FSDP) to the uninterrupted runs on both counts, within the
    stage's tolerances. RLOO and GRPO (4 iterations, checkpoint after 2): within a small multiple of the gap
    between their uninterrupted runs on 1 and 2 processes in the same launches (GRPO's 4th loss is ~1e-5 apart
    under DDP, above what the fixed tolerance was set on), and 1 -> 1 bit for bit."""
    runs = runs(tag)
    resumed = runs / tag / f"{name}-resumed-from-{src}"
    summary = json.loads((resumed / "summary.json").read_text())
    assert summary["resumed_from_step"] == 2
    assert summary["world_size"] == (1 if CONFIGS[tag][0] is None else 2)
    if name in RL_RESUMED and src == "one" and CONFIGS[tag][0] is None:
        # 1 process -> 1 process: the uninterrupted run bit for bit (the checkpoint holds the whole state)
        one = runs / "one" / name
        assert _losses(resumed) == _losses(one)
        wa, wb = _weights(one), _weights(resumed)
        assert wa.keys() == wb.keys() and wa
        assert all(torch.equal(wa[k], wb[k]) for k in wa), [k for k in wa if not torch.equal(wa[k], wb[k])]
        return
    if name in RL_RESUMED:  # within the gap of the same job uninterrupted on 1 and on 2 processes
        two = tag if CONFIGS[tag][0] is not None else src
        figures = assert_resumed_within_the_process_count_gap(
            (_losses(resumed), _weights(resumed)),
            (_losses(runs / "one" / name), _weights(runs / "one" / name)),
            (_losses(runs / two / name), _weights(runs / two / name)),
            writer="one" if src == "one" else "two",
            at=2,
            job=name,
        )
        print(f"{tag} from {src} {name}: {figures}")
        return
    _assert_same_run(runs / _one(name) / f"{name}-long", resumed, name)
    _assert_same_run(runs / src / f"{name}-long", resumed, name)


@pytest.mark.parametrize("name", RL_JOBS)
def test_rl_responses_end_at_different_lengths(runs, name):
    """The RL runs exercise the sampler's lock-step rule: in the first iteration responses end with EOS
    before the length limit, at different lengths, so processes holding different rows finish sampling
    at different steps. (Not enough to catch a process stopping at its own length: with the default wrap
    policy the sharded root is gathered once per rollout; test_fsdp_lockstep_launch.py catches it with
    per-layer units.)"""
    steps = [r for r in _metrics(runs("one") / "one" / name) if r.get("step", 0) >= 1]
    # iteration 1 (the later ones have learnt to run to the limit): the mean length is well below it
    assert steps[0]["response_length"] < 5 and steps[0]["hit_length_limit"] < 1, steps[0]
