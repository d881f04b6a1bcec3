"""`rlhfops train sft|rm|dpo|ppo`: thin wrappers around rlhfops.train.runner.run_stage."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from rlhfops.config import describe_fields, load_config
from rlhfops.judge.settings import make_judge, settings_from_workspace
from rlhfops.train.kl_sweep import parse_values, run_kl_sweep
from rlhfops.train.plan import GPUS, SHAPES, plan_run
from rlhfops.train.ppo_config import PPOConfig
from rlhfops.train.runner import STAGES, run_stage

app = typer.Typer(
    help="Train a stage: sft, rm (reward model), dpo or ppo. Each writes a run directory.",
    no_args_is_help=True,
)

CONFIG_OPT = typer.Option(None, "--config", "-c", help="YAML file with the stage's settings.")
SET_OPT = typer.Option(
    None, "--set", help="Override a setting: key=value (repeatable; nested keys with dots)."
)
RESUME_OPT = typer.Option(
    None,
    "--resume",
    help="Continue the run in this directory from its newest intact checkpoint (files checked against "
    "its manifest).",
)


def _epilog(stage: str) -> str:
    rows = describe_fields(STAGES[stage])
    lines = ["Settings (YAML keys, or --set key=value):\n\n"]
    lines += [f"  {key} (default: {default}): {desc}\n\n" for key, default, desc in rows]
    return "".join(lines)


def _judge_factory(spec: str):
    """``reward_judge`` specs build the judges `eval compare --judge` builds (workspace judge settings)."""
    from rlhfops.workspace import find_workspace

    ws = find_workspace()
    return make_judge(spec, settings_from_workspace(ws) if ws is not None else None)


def _run(stage: str, config: Path | None, sets: list[str] | None, resume: Path | None) -> None:
    from rlhfops.train.judge_reward import register_judge_factory  # imports torch

    register_judge_factory(_judge_factory)

    result = run_stage(stage, config, sets, resume)
    typer.echo(f"{stage}: {result.steps} steps; run directory {result.run_dir}")
    typer.echo(json.dumps(result.summary.get("eval", {}), indent=2, sort_keys=True))


@app.command("sft", epilog=_epilog("sft"))
def sft(config: Path = CONFIG_OPT, set_: list[str] = SET_OPT, resume: Path = RESUME_OPT) -> None:
    """Supervised fine-tuning on demonstrations (loss on completion tokens only, packed)."""
    _run("sft", config, set_, resume)


@app.command("rm", epilog=_epilog("rm"))
def rm(config: Path = CONFIG_OPT, set_: list[str] = SET_OPT, resume: Path = RESUME_OPT) -> None:
    """Reward model: trunk + scalar head, Bradley-Terry loss on preference pairs."""
    _run("rm", config, set_, resume)


@app.command("dpo", epilog=_epilog("dpo"))
def dpo(config: Path = CONFIG_OPT, set_: list[str] = SET_OPT, resume: Path = RESUME_OPT) -> None:
    """Direct preference optimisation (sigmoid or IPO loss) with reference log-probs precomputed."""
    _run("dpo", config, set_, resume)


@app.command("ppo", epilog=_epilog("ppo"))
def ppo(
    config: Path = CONFIG_OPT,
    set_: list[str] = SET_OPT,
    resume: Path = RESUME_OPT,
    kl_sweep: str = typer.Option(
        None, "--kl-sweep", help="Comma-separated KL settings: one PPO cycle each from the same start."
    ),
    sweep_kind: str = typer.Option("beta", "--sweep-kind", help="What --kl-sweep varies: beta or target."),
) -> None:
    """PPO (or RLOO / GRPO) against a reward model with a KL penalty to the reference."""
    if kl_sweep is None:
        _run("ppo", config, set_, resume)
        return

    values = parse_values(kl_sweep)
    result = run_kl_sweep(load_config(PPOConfig, config, set_), values, sweep_kind)
    typer.echo((result.out_dir / "kl_sweep.md").read_text())
    typer.echo(f"sweep directory {result.out_dir}")


@app.command("plan")
def plan(
    stage: str = typer.Argument(..., help="Stage: sft, rm, dpo or ppo."),
    config: Path = CONFIG_OPT,
    set_: list[str] = SET_OPT,
    accelerate_config: Path = typer.Option(
        None,
        "--accelerate-config",
        help="The file `accelerate launch --config_file` will get (none: one process).",
    ),
    model_size: str = typer.Option(
        None,
        "--model-size",
        help=f"Model shape for the estimate: {', '.join(SHAPES)} (default: the model's config.json).",
    ),
    gpu: str = typer.Option(
        None, "--gpu", help=f"GPU type to check memory and bf16 against: {', '.join(GPUS)}."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON."),
) -> None:
    """Resolve a run without a GPU: processes, per-device batch, precision, ZeRO stage, memory per GPU.

    Exits 1 when the plan has problems (e.g. bf16 on a GPU without it, an estimate above the GPU's memory).
    """
    result = plan_run(stage, config, set_, accelerate_config, model_size, gpu)
    typer.echo(json.dumps(result.as_dict(), indent=2) if as_json else "\n".join(result.lines()))
    if result.problems:
        raise typer.Exit(1)
