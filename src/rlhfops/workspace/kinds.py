"""Artifact kinds of training runs: what each stage writes and what kind each named input is.

Plain data shared by the store (:meth:`rlhfops.workspace.core.Workspace.record_training_run`) and
the play-order rules (:mod:`rlhfops.workspace.plays`), so the store never imports the rules.
"""

from __future__ import annotations

STAGE_OUTPUT_KIND = {"sft": "sft-model", "rm": "reward-model", "dpo": "dpo-model", "ppo": "ppo-model"}


def input_kind(stage: str, name: str) -> str:
    """The artifact kind of a training input named ``name`` (a config key) for ``stage``."""
    if name in ("data", "eval_data"):
        return {"sft": "demonstrations", "rm": "preferences", "dpo": "preferences", "ppo": "prompts"}[stage]
    if name == "reward_model":
        return "reward-model"
    if "model" in name or name in ("policy", "reference"):
        return "base-model"
    return "dataset"
