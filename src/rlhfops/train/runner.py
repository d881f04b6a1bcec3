"""Pick a stage's trainer and config class, load the config (or the run being resumed) and run it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rlhfops.config import load_config
from rlhfops.errors import ConfigError
from rlhfops.train.config import DPOConfig, RewardConfig, SFTConfig, TrainConfig
from rlhfops.train.ppo_config import PPOConfig
from rlhfops.train.rundir import RunDir

if TYPE_CHECKING:  # annotations only: the trainer skeleton loads numpy; `rlhfops --help` imports runner
    from rlhfops.train.base import RunResult, Trainer

STAGES: dict[str, type[TrainConfig]] = {
    "sft": SFTConfig,
    "rm": RewardConfig,
    "dpo": DPOConfig,
    "ppo": PPOConfig,
}


def trainer_class(stage: str) -> type[Trainer]:
    if stage == "sft":
        from rlhfops.train.sft import SFTTrainer

        return SFTTrainer
    if stage == "rm":
        from rlhfops.train.reward import RewardTrainer

        return RewardTrainer
    if stage == "dpo":
        from rlhfops.train.dpo import DPOTrainer

        return DPOTrainer
    if stage == "ppo":
        from rlhfops.train.ppo import PPOTrainer

        return PPOTrainer
    raise ConfigError(f"unknown stage '{stage}'; valid: {', '.join(STAGES)}")


def run_stage(
    stage: str,
    config_path: str | Path | None = None,
    overrides: list[str] | None = None,
    resume: str | Path | None = None,
) -> RunResult:
    """Train one stage; with ``resume``, continue the run in that directory from its newest intact checkpoint.

    Inside a workspace, a fresh and a resumed run alike are checked against the play order before
    training and recorded with their lineage after it.
    """
    if stage not in STAGES:
        raise ConfigError(f"unknown stage '{stage}'; valid: {', '.join(STAGES)}")
    run_dir: Path | None = None
    if resume is not None:
        config, run_dir = _resumed_config(stage, resume)
    else:
        config = load_config(STAGES[stage], config_path, overrides, stage=stage)
    ws = _workspace()
    inputs = stage_inputs(config)
    if ws is not None:
        from rlhfops.workspace.plays import check_stage_ready

        judge = {"reward_judge": str(config.reward_judge)} if getattr(config, "reward_judge", None) else {}
        check_stage_ready(
            ws, stage, {**inputs, **judge}
        )  # play order: refuses with one line naming what is missing
    result = trainer_class(stage)(config, run_dir, resume=resume is not None).run_all()
    if ws is not None and result.summary:
        from rlhfops.workspace.identity import acting_person

        meta = {"eval": result.summary.get("eval", {}), "run_dir": str(Path(result.run_dir).resolve())}
        # the lock's hash and the drift from it (workspace/environment.py), shown by `rlhfops lineage`
        if "environment" in result.summary:
            meta["environment"] = result.summary["environment"]
        model_id = ws.record_training_run(stage, inputs, result.run_dir / "final", acting_person(), meta)
        result.summary["artifact_id"] = model_id
    return result


def _resumed_config(stage: str, resume: str | Path) -> tuple[TrainConfig, Path]:
    """The config saved in the unfinished run directory ``resume`` (refused: not a run, another stage's
    run, or a finished one)."""
    run = RunDir(resume)
    if not run.config_path.exists():
        raise ConfigError(f"{run.path}: not a run directory (no config.yaml); cannot resume")
    saved_stage, data = run.read_config()
    if saved_stage != stage:
        raise ConfigError(f"{run.path}: is a '{saved_stage}' run, not '{stage}'")
    if run.summary_path.exists():
        raise ConfigError(f"{run.path}: this run already finished (summary.json exists); nothing to resume")
    return STAGES[stage].model_validate(data), run.path


def stage_inputs(config: TrainConfig) -> dict[str, str]:
    """The inputs a run reads, by role, for play-order checks and lineage."""
    keys = ("data", "eval_data", "model", "reward_model", "eval_prompts", "judge")
    return {k: str(getattr(config, k)) for k in keys if getattr(config, k, None)}


def _workspace():
    """The workspace around the current directory (or $RLHFOPS_WORKSPACE), if any."""
    from rlhfops.workspace import find_workspace

    return find_workspace()
