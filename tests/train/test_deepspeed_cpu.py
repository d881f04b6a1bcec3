"""SFT, RM, DPO (full and LoRA), IPO and the RL stage (PPO, PPO with LoRA, GRPO, RLOO) under ``accelerate
launch --use_deepspeed`` on 2 CPU processes against 1, with ZeRO-2 and with ZeRO-3; ZeRO-2 and ZeRO-3
checkpoints of SFT, RM, DPO, PPO (GAE), GRPO and RLOO resumed across process counts (GRPO's and RLOO's judged
by the gap between the same job's uninterrupted runs on 1 and 2 processes, measured in the same launches);
SFT under ZeRO-Offload (ZeRO-2, optimizer on the CPU) too, 2 against 1 and resumed both ways. Every
DeepSpeed run's summary records the ZeRO stage and offload its engine ran.

DeepSpeed has its own hashed lock (``make deepspeed``); the test runs when the ``deepspeed`` package is
importable and is skipped otherwise, except under RLHFOPS_REQUIRE_DEEPSPEED=1 (CI), where it must run
(docs/scaling.md, "DeepSpeed on CPU").
On a machine without a GPU DeepSpeed falls back to its CPU accelerator and wraps the gloo process group;
its first start compiles a small C++ op (shared-memory collectives) into ~/.cache/torch_extensions (~70
CPU-seconds, once).

Checked per stage and ZeRO stage, as for DDP (tests/train/test_distributed_stages.py): the per-step losses
and every final weight of one process with the same global batch, within the DDP cases' tolerances (SFT,
RM, DPO, IPO: losses rtol 1e-4, weights atol 2e-5, the reward head's bias left out, see there; RL: losses atol
2e-5, weights atol 2e-4), weights moved well beyond them, and the summary says DEEPSPEED on 2 processes.
The RL stage: the policy (with its value head) is the DeepSpeed engine; under ZeRO-2 each process samples
its rows on its own whole copy of the weights (as under DDP), under ZeRO-3 in lock-step through the engine's
forward (as under FSDP; the tiny model's raised EOS logit makes processes finish sampling at different
steps); the frozen reference copy and the reward are not engines: every process holds them whole (loaded
outside ZeRO-3's partitioning init) and scores its own rows. GRPO also evaluates held-out prompts (before
and after training, sampling through the engine's model): its scores equal one process's.
"""

from __future__ import annotations

import importlib.util
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

#: CI installs deepspeed (`make deepspeed`) and sets this: there a missing package fails instead of skipping
REQUIRE = os.environ.get("RLHFOPS_REQUIRE_DEEPSPEED") == "1"
MISSING = importlib.util.find_spec("deepspeed") is None

pytestmark = [
    pytest.mark.slow,  # 5 launches, ~3 minutes of CPU (plus the op's one-time compile)
    pytest.mark.skipif(
        MISSING and not REQUIRE,
        reason="deepspeed is not installed: `make deepspeed` (docs/scaling.md, 'DeepSpeed on CPU')",
    ),
]


def test_deepspeed_is_installed_where_required():
    """With RLHFOPS_REQUIRE_DEEPSPEED=1 (CI) a missing deepspeed is a failure, not a skip."""
    assert not MISSING, "RLHFOPS_REQUIRE_DEEPSPEED=1 but deepspeed is not importable: run `make deepspeed`"


LAUNCH_TIMEOUT = 900
WORKER = Path(__file__).with_name("stages_worker.py")
LOSS_RTOL, WEIGHT_ATOL = 1e-4, 2e-5
#: the RL stage's tolerances of the DDP and FSDP cases (test_distributed_stages' docstring): losses absolute
#: (a clipped surrogate of whitened advantages, a few hundredths around 0), weights after 6 Adam steps
RL_LOSS_ATOL, RL_WEIGHT_ATOL = 2e-5, 2e-4
COMMON = ["max_length=128", "progress=false", "learning_rate=1e-3", "seed=3", "max_steps=3"]
PREF = ["batch_size=8", "eval_fraction=0.25"]
#: the RL jobs of test_distributed_stages (k3: iteration 1's KL is rounding, see there), 2 PPO epochs of
#: one minibatch per iteration: 6 optimizer steps, each one DeepSpeed engine step
RL = [
    "reward_fn=length_target:6",
    "batch_size=4",
    "minibatch_size=4",
    "ppo_epochs=2",
    "max_new_tokens=6",
    "max_length=160",
    "eval_fraction=0",
    "kl_estimator=k3",
]
#: name -> (stage, data, model, settings); every job: no checkpoint within the run (rlhfops writes none
#: under DeepSpeed) and gradient accumulation 1 (required). The RL stage: PPO (GAE; value head, a second
#: forward in the rollout) and GRPO (critic-free, 2 samples per prompt); RLOO runs GRPO's code path with
#: another baseline (a function of each prompt's group, which stays on one process)
JOBS = {
    "sft": ("sft", "demos", "tiny", PREF),
    "rm": ("rm", "prefs", "tiny", PREF),
    "dpo": ("dpo", "prefs", "tiny", PREF),
    "ipo": ("dpo", "prefs", "tiny", [*PREF, "loss_type=ipo"]),
    # LoRA: only the adapter trains; the reference is the same model with the adapter switched off
    "dpo-lora": ("dpo", "prefs", "tiny", [*PREF, "lora.enabled=true"]),
    "ppo": ("ppo", "prompts", "tiny-stops", RL),
    # the RL stage with LoRA: the adapter and the value head train (one engine); the reference is the policy
    # with its adapter switched off, called through the engine's model
    "ppo-lora": ("ppo", "prompts", "tiny-stops", [*RL, "lora.enabled=true"]),
    "grpo": ("ppo", "prompts", "tiny-stops", [*RL, "advantage_estimator=grpo", "samples_per_prompt=2",
                                              "eval_fraction=0.25"]),
    "rloo": ("ppo", "prompts", "tiny-stops", [*RL, "advantage_estimator=rloo", "samples_per_prompt=2"]),
}  # fmt: skip
RL_JOBS = [n for n in JOBS if JOBS[n][0] == "ppo"]
#: PPO with LoRA: its adapter is held to the tolerance of the stages without sampling (measured 7.7e-7; it
#: moves ~4e-3 in 6 Adam steps, only 20 x the RL stage's 2e-4)
WEIGHT_ATOLS = {"ppo-lora": WEIGHT_ATOL}
UNIDENTIFIED = {"rm": {"score_head:bias"}}  # gradient 0 in exact arithmetic (test_distributed_stages)
LAUNCH = [
    "--use_deepspeed",
    "--num_processes=2",
    "--num_machines=1",
    "--mixed_precision=no",
    "--dynamo_backend=no",
]
#: ZeRO-3 from a DeepSpeed config file: with DeepSpeed's default persistence threshold (1e5 elements) every
#: weight of the tiny model stays gathered after a forward, and saving without gathering (the break this
#: test must catch) would still write whole tensors; with 0 each is released to its partition
ZERO3 = {
    "zero_optimization": {"stage": 3, "stage3_param_persistence_threshold": 0},
    "train_micro_batch_size_per_gpu": "auto",
    "train_batch_size": "auto",
    "gradient_accumulation_steps": 1,
    "gradient_clipping": "auto",
}
#: ZeRO-Offload: ZeRO-2 with AdamW's state and step on the CPU. rlhfops hands DeepSpeed torch's AdamW, which
#: DeepSpeed refuses to offload unless ``zero_force_ds_cpu_optimizer`` is false (it asks for its own
#: DeepSpeedCPUAdam, a compiled op, for speed)
OFFLOAD = {
    "zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu"}},
    "zero_force_ds_cpu_optimizer": False,
    "train_micro_batch_size_per_gpu": "auto",
    "train_batch_size": "auto",
    "gradient_accumulation_steps": 1,
    "gradient_clipping": "auto",
}
CONFIGS = {
    "one": None,
    "zero2": [*LAUNCH, "--zero_stage=2"],
    "zero3": [*LAUNCH, "--deepspeed_config_file"],
    "offload": [*LAUNCH, "--deepspeed_config_file"],
    "one-resumes": None,
}
CONFIG_FILES = {"zero3": ZERO3, "offload": OFFLOAD}
#: what the engine ran, as the run's summary records it (``distributed.deepspeed_record``)
ENGINE = {
    "zero2": {"zero_stage": 2, "offload_optimizer": None},
    "zero3": {"zero_stage": 3, "offload_optimizer": None},
    "offload": {"zero_stage": 2, "offload_optimizer": "cpu"},
}
#: what each launch runs (ZeRO-Offload: SFT only, its optimizer step being the only thing that differs)
RUNS = {"one": list(JOBS), "zero2": list(JOBS), "zero3": list(JOBS), "offload": ["sft"], "one-resumes": []}
#: the RL stage without a value head (GRPO, RLOO): its job runs 4 iterations with a checkpoint after the
#: 2nd in every launch (the 2-against-1 case compares its first 3, as for the other jobs), and each resume
#: finishes a copy of another launch's run stopped at that checkpoint (``stopped_copy``): the uninterrupted
#: runs on 1 and 2 processes give the gap a resume is judged by
#: (``assert_resumed_within_the_process_count_gap``)
RL_RESUMED = ["grpo", "rloo"]
#: ZeRO-3 refuses the default selective checkpointing (see configure_deepspeed); whole layers give the
#: same numbers
EXTRA = {"zero3": ["gradient_checkpointing=true"]}
#: checkpoints (ZeRO-2, ZeRO-3): SFT, RM, DPO and PPO (GAE: the policy with its
#: value head, and the KL controller) run for 4 steps with a checkpoint after step 2; "one" runs each whole
#: (the baseline) and stopped after the checkpoint, "zero2" and "zero3" stopped after it; each ZeRO launch
#: resumes one process's checkpoints and "one-resumes" each ZeRO launch's, in its one process
CHECKPOINTED = ["sft", "rm", "dpo", "ppo"]
CHECKPOINTED_IN = {"offload": ["sft"]}  # the launches that checkpoint fewer
STOPPED = {"one": True, "zero2": True, "zero3": True, "offload": True}
#: whose stopped runs each launch resumes
RESUMES = {
    "zero2": ["one"],
    "zero3": ["one"],
    "offload": ["one"],
    "one-resumes": ["zero2", "zero3", "offload"],
}


def _checkpointed(tag: str, name: str) -> bool:
    return name in CHECKPOINTED_IN.get(tag, CHECKPOINTED)


#: whole-layer checkpointing in every launch: a resume takes the stopped run's config, and ZeRO-3 refuses the
#: default selective checkpointing
LONG = ["max_steps=4", "save_every=2", "gradient_checkpointing=true"]


def _sets(root: Path, tag: str, name: str, out: Path, extra: list[str]) -> list[str]:
    _, kind, model, settings = JOBS[name]
    sets = [f"model={root / model}", f"data={root / kind}.jsonl", f"output_dir={out}", *COMMON, *settings]
    sets = [*sets, "save_every=100", *EXTRA.get(tag, []), *extra]
    return [*sets, *LONG] if name in RL_RESUMED else sets


def _launch(root: Path, tag: str) -> None:
    here = root / tag
    plan: list[dict] = []
    for name in RUNS[tag]:
        out = here / name
        plan.append(
            {
                "kind": "run",
                "stage": JOBS[name][0],
                "out": str(out),
                "overrides": _sets(root, tag, name, out, []),
            }
        )
    for name in CHECKPOINTED:
        stage = JOBS[name][0]
        if tag == "one":  # the uninterrupted baseline of the resumed runs
            out = here / f"long-{name}"
            sets = _sets(root, tag, name, out, LONG)
            plan.append({"kind": "run", "stage": stage, "out": str(out), "overrides": sets})
        if STOPPED.get(tag) and _checkpointed(tag, name):
            out = here / f"stopped-{name}"
            sets = _sets(root, tag, name, out, LONG)
            plan.append({"kind": "partial", "stage": stage, "out": str(out), "stop_at": 2, "overrides": sets})
        for source in RESUMES.get(tag, []):
            if not (_checkpointed(tag, name) and _checkpointed(source, name)):
                continue
            out = here / f"resumed-{name}-from-{source}"
            shutil.copytree(root / source / f"stopped-{name}", out)
            plan.append({"kind": "resume", "stage": stage, "out": str(out)})
    for name in RL_RESUMED:
        for source in RESUMES.get(tag, []):
            if name not in RUNS[source] or (CONFIGS[tag] and name not in RUNS[tag]):
                continue
            out = stopped_copy(root / source / name, here / f"resumed-{name}-from-{source}", 2)
            plan.append({"kind": "resume", "stage": JOBS[name][0], "out": str(out)})
    (root / f"{tag}.json").write_text(json.dumps(plan))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": worker_pythonpath(WORKER.parent)}
    cmd = [sys.executable, str(WORKER), str(root / f"{tag}.json")]
    if CONFIGS[tag] is not None:
        accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
        assert accelerate, "accelerate's console script must be installed next to the test interpreter"
        launch = list(CONFIGS[tag])
        if launch[-1] == "--deepspeed_config_file":
            (root / f"deepspeed-{tag}.json").write_text(json.dumps(CONFIG_FILES[tag]))
            launch.append(str(root / f"deepspeed-{tag}.json"))
        cmd = [accelerate, "launch", *launch, f"--main_process_port={free_port()}", *cmd[1:]]
    run_launch(cmd, env, LAUNCH_TIMEOUT, f"launch {tag!r}")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Callable[[str], Path]:
    """``runs(tag)``: the directory of the runs, after launching ``tag`` the first time a test asks for it
    (``-k zero2`` launches one process and ZeRO-2 only); a failed launch fails every test that needs it."""
    root = tmp_path_factory.mktemp("ds")
    make_tiny_model_dir(root / "tiny")
    make_tiny_model_dir(root / "tiny-stops", eos_boost=1.5)  # responses of different lengths
    write_demos(root / "demos.jsonl", n=32)
    write_prefs(root / "prefs.jsonl", n=40)
    write_prompts(root / "prompts.jsonl", n=24)
    launch = lazy_launches(lambda tag: _launch(root, tag))

    def launched(tag: str) -> Path:
        launch(tag)
        return root

    return launched


def _losses(run: Path) -> list[float]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    return [r["loss"] for r in rows if r.get("step", 0) >= 1]


def _assert_same_losses(got: list[float], want: list[float], steps: int, rl: bool) -> None:
    """``steps`` losses each, equal within the stage's tolerance (the RL stage's absolute, see above)."""
    assert len(got) == len(want) == steps, (got, want)
    torch.testing.assert_close(
        torch.tensor(got, dtype=torch.float64),
        torch.tensor(want, dtype=torch.float64),
        rtol=0 if rl else LOSS_RTOL,
        atol=RL_LOSS_ATOL if rl else 0,
    )


def _weights(run: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for f in sorted((run / "final").glob("*.safetensors")):
        out.update({f"{f.stem}:{k}": v for k, v in load_file(str(f)).items()})
    return out


CASES = [(tag, name) for tag in ("zero2", "zero3", "offload") for name in RUNS[tag]]


@pytest.mark.parametrize("tag,name", CASES)
def test_zero_on_two_cpu_processes_gives_the_single_process_losses_and_weights(runs, tag, name):
    runs("one")
    root = runs(tag)
    one, two = root / "one" / name, root / tag / name
    rl = name in RL_JOBS
    steps = 4 if name in RL_RESUMED else 3  # the resumed RL jobs: compared over 3, as the others
    assert len(_losses(one)) == len(_losses(two)) == steps
    _assert_same_losses(_losses(two)[:3], _losses(one)[:3], 3, rl)
    atol = WEIGHT_ATOLS.get(name, RL_WEIGHT_ATOL if rl else WEIGHT_ATOL)
    wa, wb = _weights(one), _weights(two)
    assert wa.keys() == wb.keys() and wa
    for k in wa:
        assert wb[k].numel() == wa[k].numel() > 0, k  # ZeRO-3: gathered whole before saving, not a shard
        if k in UNIDENTIFIED.get(name, ()):
            continue  # not compared (test_distributed_stages' docstring: no bound on it could fail)
        torch.testing.assert_close(wb[k], wa[k], rtol=0, atol=atol, msg=k)
    start = load_file(str(next((root / JOBS[name][2]).glob("*.safetensors"))))
    start = {k.removeprefix("model."): v for k, v in start.items()}
    base = {k.split(":", 1)[1].removeprefix("model."): v for k, v in wa.items()}
    common = [k for k in base if k in start]
    if common:
        moved = max(float((base[k] - start[k]).abs().max()) for k in common)
    else:  # a LoRA adapter (its own names): lora_B starts at zero
        moved = max(float(v.abs().max()) for k, v in wa.items() if "lora_B" in k)
    assert moved > 20 * atol, moved  # training moved the weights well beyond the tolerance
    summary = json.loads((two / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["distributed_type"] == "DEEPSPEED"
    assert summary["deepspeed"] == ENGINE[tag]  # the ZeRO stage and offload the engine ran
    base_summary = json.loads((one / "summary.json").read_text())
    assert base_summary["distributed_type"] == "NO" and "deepspeed" not in base_summary
    if "eval_fraction=0.25" in JOBS[name][3] and rl:  # held-out sampling and scoring under the engine
        for which in ("policy", "reference"):
            got, want = summary["eval"][which], base_summary["eval"][which]
            assert got["prompts"] == want["prompts"] > 0
            assert got["score"] == pytest.approx(want["score"], abs=1e-6)


RESUMED = [
    (tag, source, name)
    for tag, sources in RESUMES.items()
    for source in sources
    for name in CHECKPOINTED
    if _checkpointed(tag, name) and _checkpointed(source, name)
]


@pytest.mark.parametrize("tag,source,name", RESUMED)
def test_a_zero_checkpoint_is_written_once_and_resumes_with_another_number_of_processes(
    runs, tag, source, name
):
    """A checkpoint written by 2 ZeRO-2 or ZeRO-3 processes (whole tensors: the weights, gathered under
    ZeRO-3, and AdamW's state gathered from its partitions; PPO's value head with the policy) finishes in 1
    process, and 1 process's checkpoint finishes under ZeRO-2 and ZeRO-3 (loaded into each process's
    partition), with the losses and weights of the uninterrupted one-process run (weights atol 2e-5 for every
    stage; the RL stage's losses, a few hundredths around 0, within its absolute tolerance of 2 processes
    against 1: its first steps ran on the other number of processes)."""
    for needed in ("one", *RESUMES.get(tag, []), tag):
        root = runs(needed)
    for writer in (source, tag):  # whichever of the two ran 2 ZeRO processes wrote its checkpoint once
        stopped = root / writer / f"stopped-{name}"
        if CONFIGS[writer] and stopped.exists():
            assert [p.name for p in (stopped / "checkpoints").iterdir()] == ["step-000002"]  # main process
            assert not list(stopped.rglob("*.tmp")) and not list(stopped.rglob(".tmp*"))
            ckpt = load_file(str(stopped / "checkpoints" / "step-000002" / "trainable.safetensors"))
            one = load_file(
                str(
                    root / "one" / f"stopped-{name}" / "checkpoints" / "step-000002" / "trainable.safetensors"
                )
            )
            assert {k: v.shape for k, v in ckpt.items()} == {k: v.shape for k, v in one.items()}  # whole
            if name in RL_JOBS:
                assert any(k.startswith("value_head.") for k in ckpt), sorted(ckpt)  # GAE's critic too
    resumed = root / tag / f"resumed-{name}-from-{source}"
    summary = json.loads((resumed / "summary.json").read_text())
    assert summary["resumed_from_step"] == 2
    assert (summary["world_size"], summary["distributed_type"]) == (
        (2, "DEEPSPEED") if CONFIGS[tag] else (1, "NO")
    )
    assert summary.get("deepspeed") == ENGINE.get(tag)
    rl = name in RL_JOBS
    long = root / "one" / f"long-{name}"
    _assert_same_losses(_losses(resumed), _losses(long), 4, rl)
    wa, wb = _weights(long), _weights(resumed)  # the RL stage too: measured within 1.6e-6 (docs/scaling.md)
    assert wa.keys() == wb.keys() and wa
    for k in wa:
        if k in UNIDENTIFIED.get(name, ()):
            continue  # not compared, as above
        torch.testing.assert_close(wb[k], wa[k], rtol=0, atol=WEIGHT_ATOL, msg=k)


RL_RESUMES = [
    (tag, source, name)
    for tag, sources in RESUMES.items()
    for source in sources
    for name in RL_RESUMED
    if name in RUNS[source] and (not CONFIGS[tag] or name in RUNS[tag])
]


@pytest.mark.parametrize("tag,source,name", RL_RESUMES)
def test_a_grpo_or_rloo_zero_checkpoint_resumes_within_the_process_count_gap(runs, tag, source, name):
    """GRPO's and RLOO's checkpoints (the policy alone: no value head) written by 2 ZeRO-2 or ZeRO-3
    processes after iteration 2 of 4 finish in 1 process, and 1 process's finish under ZeRO-2 and ZeRO-3,
    within a small multiple of the gap the same launches measure between the job's uninterrupted runs on 1
    and on 2 processes (``assert_resumed_within_the_process_count_gap``: GRPO's step-4 gap, ~6e-5, is above
    the fixed 2e-5 the 3-step cases hold)."""
    for needed in ("one", *RESUMES.get(tag, []), tag):
        root = runs(needed)
    engine = tag if CONFIGS[tag] else source
    writer = root / source / name
    assert [p.name for p in (writer / "checkpoints").iterdir()] == ["step-000002"]  # written once
    assert not list(writer.rglob("*.tmp")) and not list(writer.rglob(".tmp*"))
    ckpt = load_file(str(writer / "checkpoints" / "step-000002" / "trainable.safetensors"))
    whole = load_file(str(root / "one" / name / "checkpoints" / "step-000002" / "trainable.safetensors"))
    assert {k: v.shape for k, v in ckpt.items()} == {k: v.shape for k, v in whole.items()}  # whole tensors
    assert not any(k.startswith("value_head.") for k in ckpt)  # critic-free
    resumed = root / tag / f"resumed-{name}-from-{source}"
    summary = json.loads((resumed / "summary.json").read_text())
    assert summary["resumed_from_step"] == 2
    assert (summary["world_size"], summary["distributed_type"]) == (
        (2, "DEEPSPEED") if CONFIGS[tag] else (1, "NO")
    )
    one, two = root / "one" / name, root / engine / name
    figures = assert_resumed_within_the_process_count_gap(
        (_losses(resumed), _weights(resumed)),
        (_losses(one), _weights(one)),
        (_losses(two), _weights(two)),
        writer="one" if source == "one" else "two",
        at=2,
        job=name,
    )
    print(f"{tag} from {source} {name}: {figures}")
