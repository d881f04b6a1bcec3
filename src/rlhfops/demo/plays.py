"""`rlhfops demo`: the five plays end to end in a fresh workspace, on the bundled support-replies task.

Play 1 a signed spec (demo people) + a baseline; Play 2 shipped demonstrations + SFT; Play 3 candidate
pairs sampled from the SFT model, labelled by SIMULATED raters (calibration round, gold items, one
drifting rater), exported to preferences, reward model; Play 4 PPO with a short KL sweep and DPO for
comparison; Play 5 evaluation + the shipped red-team suites for every model against the base, the gate
decision signed by the demo gate owner, promote (or an honest reject); then a SIMULATED week of production
traffic with drift -> monitor ingest + drift -> triggers. Writes ``summary.json`` and ``report.html``.

Every step uses the product's public paths, as a user's script would: the annotation service for the
SIMULATED raters (:mod:`rlhfops.demo.raters`), ``prefs export``, the training stages, ``eval run`` with the
policy judge (:mod:`rlhfops.demo.eval`), ``gate evaluate|sign|promote``, ``monitor`` and ``triggers``. Each
step prints which play runs, what it is for and what it found (:mod:`rlhfops.demo.narrate`).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rlhfops.demo.narrate import say
from rlhfops.errors import UserError
from rlhfops.models.memory import release_memory
from rlhfops.train.runner import run_stage

BUNDLED_NAME = "smollm2-135m-instruct"
PEOPLE = {
    "task-spec-owner": "demo-alice",
    "business-owner": "demo-bob",
    "technical-lead": "demo-carol",
    "domain-expert-lead": "demo-dave",
    "annotation-lead": "demo-erin",
    "ml-engineer": "demo-frank",
    "red-team-lead": "demo-grace",
    "gate-owner": "demo-gina",
}
# (step name, what it is for): the narration says the purpose before the step and its finding after it
PURPOSES = {
    "play 1: spec, sign-offs, baseline": "write down what good looks like; the business owner and the "
    "technical lead sign it",
    "play 2: SFT": "teach the format from the domain experts' demonstrations (supervised fine-tuning)",
    "play 3: candidate pairs from SFT": "sample two replies per prompt from the SFT model for raters to "
    "compare",
    "play 3: simulated labels + export": "raters compare pairs in the annotation service: a calibration "
    "round first, gold items hidden in the queue; `prefs export`",
    "play 3: reward model": "learn the raters' preference as a reward model",
    "play 4: DPO": "optimise the policy on the preferences directly (the simpler path)",
    "play 5: evaluate base, SFT, DPO": "`eval run` on held-out prompts: the spec's criteria (policy judge), "
    "win rate against the base, KL, the red-team suites",
    "play 4: PPO KL sweep": "optimise against the reward model with PPO at several KL penalties",
    "play 5: evaluate PPO runs": "`eval run` for each PPO checkpoint before anything is promoted",
    "play 5: gate + promote": "the binding gate: the spec's thresholds, the gate owner's signature, promote",
    "monitor: simulated week + drift + triggers": "watch a SIMULATED week of production; the triggers say "
    "which play to re-enter",
    "round 2: next steps": "`rlhfops next`: turn each open trigger into its step (queue its comparison "
    "batch in the annotation service, or name the command to run)",
    "round 2: failures become comparisons": "split the red-team suites by the fixed rule; round one's best "
    "candidate's failures on the TRAINING half, each paired with a SIMULATED domain expert's safe reply, "
    "go to the SIMULATED raters with the batches `next` queued; `prefs export`",
    "round 2: refresh the reward model and continue": "retrain the reward model on both rounds' "
    "preferences; DPO continues from round one's best candidate",
    "round 2: evaluate on the held-out half, gate again": "`eval run` on the held-out prompts and the "
    "red-team HELD-OUT half only, checked by the contamination guard; the gate decides with the spec's "
    "thresholds unchanged",
    "report": "write the report a person reads",
}
STEPS = list(PURPOSES)
ROUND_TWO_SKIPPED = "not run in --quick; `make demo` (the full demo) runs round two"


R2_PAIRS = ("both", "this_round")  # round two's DPO data: both rounds' pairs, or this round's batches


@dataclass
class DemoSettings:
    """Sizes of one demo run (``quick`` or full); ``model`` is a hidden hook for tests (tiny models)."""

    model: str = BUNDLED_NAME
    sft_steps: int = 8
    sft_batch_size: int = 8  # SFT's own batch: 8 steps x 8 = 64 demonstrations (quick), 30 x 8 = 240 (full)
    sft_learning_rate: float = 1e-4  # measured on the bundled model: docs/benchmarks.md (issue 19, SFT)
    rm_steps: int = 4
    dpo_steps: int = 4
    r2_dpo_steps: int = 4  # round two: DPO from round one's best candidate on this round's pairs only
    # round two's DPO recipe, measured on the bundled model (docs/benchmarks.md, issue 19, sections 12-13):
    # the failures of the WHOLE training half (None; a number = the first N per category), each paired with
    # the experts' reply written for it; DPO on both rounds' pairs at lr 5e-5, batch 4, with the NLL term
    # on the chosen replies (rpo_alpha 1.0): the replies stay varied; the red-team categories do not move
    r2_dpo_learning_rate: float = 5e-5
    r2_batch_size: int = 4
    r2_rpo_alpha: float = 1.0
    r2_failures_per_category: int | None = None
    r2_pairs: str = "both"  # DPO on "both" rounds' pairs or "this_round"'s batches (collapsed: section 13)
    ppo_steps: int = 2
    kl_values: tuple[float, ...] = (0.02, 0.2)
    batch_size: int = 4
    max_length: int = 320
    pair_prompts: int = 12
    shipped_pairs: int = 40
    gold_pairs: int = 20
    heldout: int = 8
    redteam_per_category: int = 2
    max_new_tokens: int = 32
    per_day: int = 16
    production_tokens: int = 16
    # the targets for the chosen candidate's main criterion over the base: +25 points (--quick),
    # +50 (full); the demo reports whether they are met (gate.choose.Change.meets), never tunes to them
    target_points: float = 25.0
    progress: bool = True
    seed: int = 0
    # every training stage's `gradient_checkpointing`: off, because the demo's batches fit in memory without
    # it and the product's default (selective) recomputes in every backward pass -- measured on the bundled
    # model, one SFT step of 8 demonstrations: 11.4 CPU s selective vs 9.5 off (docs/benchmarks.md, issue 19,
    # section 9); the numbers are the same in every mode
    gradient_checkpointing: bool | str = False
    # round two (the loop the triggers drive) runs in the full demo; --quick stops after round one's
    # triggers to stay within its 5 minutes (round two alone costs about as much again)
    round_two: bool = True

    def __post_init__(self) -> None:
        if self.r2_pairs not in R2_PAIRS:
            raise UserError(f"demo: r2_pairs {self.r2_pairs!r}: use one of {', '.join(R2_PAIRS)}")

    @classmethod
    def for_mode(cls, quick: bool, model: str | None = None, progress: bool = True) -> DemoSettings:
        s = cls(model=model or BUNDLED_NAME, progress=progress, round_two=not quick)
        if not quick:
            s.sft_steps, s.rm_steps, s.dpo_steps, s.ppo_steps, s.batch_size = 30, 16, 16, 4, 8
            s.r2_dpo_steps = 32  # x batch 4: round one's DPO budget (16 x 8 pairs), on round two's pairs
            s.kl_values = (0.01, 0.05, 0.2)
            s.pair_prompts, s.shipped_pairs, s.gold_pairs, s.heldout = 48, 160, 40, 32
            s.max_new_tokens, s.per_day, s.redteam_per_category = 64, 60, 8
            s.production_tokens = 24
            s.target_points = 50.0
        else:  # one PPO run (the full demo sweeps three penalties): keeps --quick near its 5 minutes
            s.kl_values = (0.05,)
        return s


@dataclass
class DemoRun:
    out_dir: Path
    summary: dict[str, Any]
    seconds: float
    report: Path | None = None
    steps: list[tuple[str, float]] = field(default_factory=list)


@contextmanager
def _acting(ws_root: Path, person: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in ("RLHFOPS_WORKSPACE", "RLHFOPS_USER")}
    os.environ["RLHFOPS_WORKSPACE"], os.environ["RLHFOPS_USER"] = str(ws_root), person
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


DEMO_MARKER = ".rlhfops-demo"  # written into every demo directory; --force replaces only such a directory


def prepare_dir(directory: Path, force: bool) -> Path:
    """An empty directory for the demo. ``force`` replaces an earlier demo's directory, never anything else
    (a directory without the demo's marker file is refused, so ``--dir . --force`` cannot delete work)."""
    directory = Path(directory).resolve()
    if directory.exists() and any(directory.iterdir()):
        if not force:
            raise UserError(
                f"demo: {directory} is not empty; choose another --dir or pass --force to replace it"
            )
        if not (directory / DEMO_MARKER).is_file():
            raise UserError(
                f"demo: {directory} is not empty and was not made by `rlhfops demo` (no {DEMO_MARKER}); "
                "--force replaces only an earlier demo's directory: choose another --dir"
            )

        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / DEMO_MARKER).write_text("made by `rlhfops demo`; `rlhfops demo --force` may replace it\n")
    return directory


_SIGNERS: dict[tuple[str, str], Any] = {}


def demo_signer(ws: Any, name: str) -> Any:
    """The demo person ``name`` as an authenticated signer: the demo gives them a web account (random
    password, never shown) and a personal API token, and signs in with the token, as a person's script
    would with $RLHFOPS_TOKEN. Cached per workspace."""
    from rlhfops.annotate.accounts import create_token, set_account
    from rlhfops.gate.auth import authenticate

    key = (str(ws.root), name)
    if key not in _SIGNERS:
        set_account(ws, name, secrets.token_urlsafe(18))
        _SIGNERS[key] = authenticate(ws, name, token=create_token(ws, name, "demo"), action="demo")
    return _SIGNERS[key]


def _override_if_blocked(ws: Any, stage: str, inputs: dict[str, str], notes: list[str]) -> None:
    """The play-order check; when it blocks, the blocked play's demo owner records an override (noted)."""
    from rlhfops.workspace.plays import PLAY_OWNER_ROLE, STAGE_PLAY, blockers, record_override

    whys = [why for _, why in blockers(ws, stage, inputs)]
    if whys:
        owner = PEOPLE[PLAY_OWNER_ROLE[STAGE_PLAY[stage]]]
        why = "demo run, small data: proceeding although " + "; ".join(whys)
        record_override(ws, stage, why, demo_signer(ws, owner))
        notes.extend(f"OVERRIDE {stage} by {owner}: {why}" for why in whys)


def _train(ws: Any, stage: str, person: str, sets: dict[str, Any], s: DemoSettings, notes: list[str]) -> Any:
    keys = ("data", "model", "reward_model")
    _override_if_blocked(ws, stage, {k: str(v) for k, v in sets.items() if k in keys}, notes)
    common = {
        "progress": str(s.progress).lower(),
        "save_every": 100000,
        "seed": s.seed,
        "batch_size": s.batch_size,
        "max_length": s.max_length,
        "gradient_checkpointing": str(s.gradient_checkpointing).lower(),
    }
    with _acting(ws.root, person):
        return run_stage(stage, None, [f"{k}={v}" for k, v in {**common, **sets}.items()])


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


# the demo's annotation settings, written into its rlhfops.yaml as a user would (the service, the web app and
# the simulated raters read them from there): a higher share of gold items than the default 0.1, so the
# small demo's gold accuracy can expose the drifting rater
DEMO_ANNOTATION = "annotation:\n  gold_rate: 0.15\n"


def play1(root: Path) -> Any:
    from rlhfops.workspace import Workspace, init_workspace

    init_workspace(root, "support-replies", name="rlhfops-demo").close()
    with (root / "rlhfops.yaml").open("a", encoding="utf-8") as f:
        f.write(DEMO_ANNOTATION)
    ws = Workspace.open(root)
    for role, name in PEOPLE.items():
        ws.add_person(name, role, "demo-alice" if role != "task-spec-owner" else name)
    ws.register_spec_version("demo-alice")
    ws.sign_spec("business-owner", demo_signer(ws, PEOPLE["business-owner"]))
    ws.sign_spec("technical-lead", demo_signer(ws, PEOPLE["technical-lead"]))
    ws.record_baseline(
        {"task_completion_rate": 0.72, "review_minutes_per_output": 2.4, "client_flag_rate": 0.04},
        "demo: SIMULATED baseline (no real production data)",
        "demo-alice",
        n=400,
        note="SIMULATED",
    )
    return ws


def _play1(ctx: Any) -> str:
    ctx.ws = play1(ctx.root)
    spec = ctx.ws.current_spec()
    return (
        f"spec {spec.hash[:12]} signed by {PEOPLE['business-owner']} (business owner) and "
        f"{PEOPLE['technical-lead']} (technical lead); SIMULATED business baseline recorded"
    )


def run_demo_plays(
    directory: str | Path = "rlhfops-demo",
    quick: bool = False,
    force: bool = False,
    settings: DemoSettings | None = None,
    on_step: Callable[[str], None] | None = None,
) -> DemoRun:
    """Run the five plays and the monitoring week; returns the summary (also ``summary.json``)."""
    from rlhfops.demo import round2 as r2
    from rlhfops.demo import steps as st

    s = settings or DemoSettings.for_mode(quick)
    root = prepare_dir(Path(directory), force)
    t0, c0 = time.perf_counter(), time.process_time()
    timings: list[tuple[str, float]] = []
    cpu: list[float] = []
    ctx = st.Context(root=root, s=s, quick=quick)
    funcs = [
        lambda: _play1(ctx),
        ctx.play2,
        ctx.candidates,
        ctx.labels,
        ctx.reward_model,
        ctx.dpo,
        ctx.evaluate_first,
        ctx.ppo_sweep,
        ctx.evaluate_ppo,
        ctx.gate,
        ctx.monitor,
        lambda: r2.next_steps(ctx) if s.round_two else ROUND_TWO_SKIPPED,
        lambda: r2.failures(ctx) if s.round_two else ROUND_TWO_SKIPPED,
        lambda: r2.refresh(ctx) if s.round_two else ROUND_TWO_SKIPPED,
        lambda: r2.evaluate_and_gate(ctx) if s.round_two else ROUND_TWO_SKIPPED,
        ctx.report,
    ]
    for name, fn in zip(STEPS, funcs, strict=True):
        if on_step:
            on_step(name)
        t, c = time.perf_counter(), time.process_time()
        play = name.split(":", 1)[0]
        say(play, f"{name.split(': ', 1)[-1]}: {PURPOSES[name]}")
        found = fn()
        if found != ROUND_TWO_SKIPPED:  # the step's models are freed: give their memory back (a skipped
            release_memory()  # step allocated nothing, and a collection of a large heap costs ~0.5 CPU s)
        for line in str(found or "").splitlines():
            say(play, f"  -> {line}")
        timings.append((name, time.perf_counter() - t))
        cpu.append(time.process_time() - c)
    summary = ctx.summary()
    # CPU seconds too: on a shared machine wall time says more about the neighbours than about the demo
    summary["timings"] = [
        {"step": n, "seconds": round(x, 2), "cpu_seconds": round(c, 2)}
        for (n, x), c in zip(timings, cpu, strict=True)
    ]
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    summary["cpu_seconds"] = round(time.process_time() - c0, 1)
    summary["settings"] = {**asdict(s), "quick": quick}
    (root / "summary.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    if ctx.ws is not None:
        ctx.ws.close()
    return DemoRun(root, summary, time.perf_counter() - t0, ctx.report_path, timings)
