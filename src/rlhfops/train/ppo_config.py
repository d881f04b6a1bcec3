"""Settings of the RL stage (PPO with a KL penalty, or the critic-free RLOO / GRPO estimators)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from rlhfops.errors import ConfigError
from rlhfops.measures.diversity import ALARM_DISTINCT2_DROP, ALARM_LENGTH_RATIO, ALARM_LOOPING_SHARE
from rlhfops.train.config import TrainConfig


class PPOConfig(TrainConfig):
    """PPO against a reward model (or a programmatic reward) with a KL penalty to the reference.

    ``batch_size`` is the number of prompts per iteration; ``max_steps`` the number of iterations.
    """

    data: str = Field(..., description="Prompts file (JSONL/Parquet rows with a `prompt`).")
    learning_rate: float = Field(
        1e-6, gt=0, description="Peak learning rate (AdamW) of policy and value head."
    )
    reward_model: str | None = Field(
        None, description="Reward model directory from `rlhfops train rm` (its normalisation is applied)."
    )
    reward_fn: str | None = Field(
        None,
        description="Programmatic reward instead of a model: 'length_target:N', 'length', 'contains:PHRASE', "
        "'detector:NAME' (a red-team behaviour detector, e.g. detector:apology_remedy).",
    )
    reward_judge: str | None = Field(
        None,
        description="A judge as the reward, spelled as for `eval compare --judge`: rule, rm:PATH, lm:PATH, "
        "openai or openai:MODEL@URL (see judge_mode).",
    )
    judge_mode: Literal["group", "pointwise"] = Field(
        "group",
        description="reward_judge scoring: group = win rate against the other samples of the prompt, both "
        "orders (needs samples_per_prompt >= 2); pointwise = the judge's score of each response.",
    )
    judge_concurrency: int = Field(4, ge=1, le=64, description="reward_judge calls in flight at once.")
    judge_retries: int = Field(2, ge=0, le=10, description="Retries of a failed reward_judge call.")
    judge_backoff: float = Field(
        0.5, ge=0, description="Seconds before the first retry of a reward_judge call; doubles each retry."
    )
    judge_timeout: float = Field(
        120.0, gt=0, description="Seconds a batch of reward_judge calls may take before the run stops."
    )
    judge: str | None = Field(
        None,
        description="Independent judge for the reward-hacking alarm and the KL sweep's frontier: a reward "
        "model dir or a reward_fn spec (e.g. detector:apology_remedy).",
    )
    advantage_estimator: Literal["gae", "rloo", "grpo"] = Field(
        "gae", description="gae: PPO with a value head; rloo / grpo: critic-free group baselines."
    )
    samples_per_prompt: int = Field(1, ge=1, description="Responses per prompt (k; >= 2 for rloo / grpo).")
    value_model: Literal["shared", "separate"] = Field(
        "shared", description="Value head on the policy trunk, or a separate model (value_model_path)."
    )
    value_model_path: str | None = Field(
        None,
        description="Starting weights of a separate value model (default: the reward model or the policy).",
    )
    max_new_tokens: int = Field(64, ge=1, description="Longest response generated.")
    rollout_backend: Literal["builtin", "vllm"] = Field(
        "builtin",
        description="What generates the rollouts: builtin (the policy itself) or vllm (a vLLM engine on each "
        "process's GPU, the policy's weights pushed into it before every iteration; needs the vllm package "
        "and a CUDA GPU, one process or DDP; not yet run on a GPU). Seconds per iteration spent generating "
        "and syncing weights are recorded in metrics.jsonl and summary.json.",
    )
    vllm_gpu_memory_utilization: float = Field(
        0.3,
        gt=0,
        lt=1,
        description="rollout_backend: vllm -- share of the GPU's memory vLLM may take (its weights and KV "
        "cache); the rest is left to training.",
    )
    temperature: float = Field(
        1.0, ge=0, description="Sampling temperature (log-probs use the same scaling)."
    )
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling threshold.")
    no_eos_penalty: float | None = Field(
        1.0,
        description="Subtracted from the score of a response cut at max_new_tokens without EOS (null: off).",
    )
    kl_estimator: Literal["k1", "k2", "k3"] = Field(
        "k1",
        description="Per-token KL estimator of the penalty (Schulman 2020). The KL that is logged, "
        "reported and followed by the adaptive controller is always the summed k3 (never negative).",
    )
    kl_mode: Literal["reward", "loss"] = Field(
        "reward", description="KL as reward shaping (default) or as a loss term added to the policy loss."
    )
    kl_controller: Literal["fixed", "adaptive"] = Field(
        "adaptive", description="Fixed beta or adaptive beta."
    )
    beta: float = Field(0.05, ge=0, description="KL coefficient (initial value when adaptive).")
    target_kl: float = Field(6.0, gt=0, description="Adaptive controller: target KL per response (nats).")
    kl_horizon: float = Field(10000, gt=0, description="Adaptive controller horizon (Ziegler et al. 2019).")
    gamma: float = Field(1.0, ge=0, le=1, description="Discount.")
    lam: float = Field(0.95, ge=0, le=1, description="GAE lambda.")
    whiten_rewards: bool = Field(False, description="Whiten per-token rewards before GAE.")
    clip_eps: float = Field(0.2, gt=0, description="PPO ratio clip.")
    value_clip: float = Field(0.2, gt=0, description="Value-function clip around the rollout values.")
    vf_coef: float = Field(0.1, ge=0, description="Value loss weight.")
    ppo_epochs: int = Field(4, ge=1, description="Update epochs over each rollout batch.")
    minibatch_size: int = Field(4, ge=1, description="Responses per PPO minibatch.")
    eval_prompts: str | None = Field(
        None, description="Held-out prompts file for evaluation (default: split)."
    )
    eval_every: int = Field(
        0,
        ge=0,
        description="Evaluate on held-out prompts every N iterations (0: at end; a KL sweep makes 0 into 1 "
        "so its frontier has a point per iteration).",
    )
    eval_batch_size: int = Field(
        32,
        ge=1,
        description="Held-out replies generated per forward pass in an evaluation (its own batch, not the "
        "training batch: evaluation keeps no gradients; larger batches cost fewer CPU seconds per reply).",
    )
    alarm_length_ratio: float = Field(
        ALARM_LENGTH_RATIO, gt=1, description="Alarm when mean length drifts past this x reference."
    )
    alarm_distinct2_drop: float = Field(
        ALARM_DISTINCT2_DROP,
        gt=0,
        lt=1,
        description="Alarm when distinct-2 falls below this share of the reference's.",
    )
    alarm_looping_share: float = Field(
        ALARM_LOOPING_SHARE,
        gt=0,
        le=1,
        description="Alarm when at least this share of held-out replies loop (15% or more of a reply's "
        "word 4-grams repeat within it) and more than the reference's do.",
    )

    @model_validator(mode="after")
    def _check_ppo(self) -> PPOConfig:
        given = [x for x in (self.reward_model, self.reward_fn, self.reward_judge) if x is not None]
        if len(given) != 1:
            raise ConfigError(
                f"set exactly one of reward_model, reward_fn and reward_judge (got reward_model="
                f"{self.reward_model!r}, reward_fn={self.reward_fn!r}, reward_judge={self.reward_judge!r})"
            )
        if self.reward_judge and self.judge_mode == "group" and self.samples_per_prompt < 2:
            raise ConfigError(
                f"judge_mode=group needs samples_per_prompt >= 2 (got {self.samples_per_prompt}); "
                "or set judge_mode: pointwise"
            )
        if self.advantage_estimator in ("rloo", "grpo") and self.samples_per_prompt < 2:
            raise ConfigError(
                f"advantage_estimator={self.advantage_estimator} needs samples_per_prompt >= 2 "
                f"(got {self.samples_per_prompt})"
            )
        rollout = self.batch_size * self.samples_per_prompt
        if self.kl_controller == "adaptive" and self.kl_horizon <= 0.2 * rollout:
            raise ConfigError(
                f"kl_horizon={self.kl_horizon:g} is too small for batch_size * samples_per_prompt = "
                f"{rollout} responses per iteration: the adaptive controller could multiply beta by "
                f"1 - 0.2 * {rollout} / {self.kl_horizon:g} <= 0 (a negative KL penalty); "
                f"set kl_horizon above {0.2 * rollout:g}"
            )
        memory_share_set = (
            self.vllm_gpu_memory_utilization != type(self).model_fields["vllm_gpu_memory_utilization"].default
        )
        if self.rollout_backend != "vllm" and memory_share_set:  # a saved run's config holds the default
            raise ConfigError(
                f"vllm_gpu_memory_utilization={self.vllm_gpu_memory_utilization} is read only with "
                f"rollout_backend: vllm (got rollout_backend={self.rollout_backend!r}); remove it or set "
                "rollout_backend: vllm"
            )
        if rollout % self.minibatch_size:
            raise ConfigError(
                f"batch_size * samples_per_prompt = {rollout} responses is not divisible by "
                f"minibatch_size={self.minibatch_size}"
            )
        return self
