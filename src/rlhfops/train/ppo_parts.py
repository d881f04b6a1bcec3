"""What the PPO helpers read from the trainer: two typed views instead of ``trainer: Any``.

``make_rollout`` / ``evaluate_policy`` (``ppo_rollout.py``) read a :class:`RolloutParts` and ``ppo_update``
(``ppo_update.py``) an :class:`UpdateParts`. Both are structural (``typing.Protocol``): ``PPOTrainer``
satisfies them once ``build_model`` and ``setup`` have run, and a test can pass any object with the same
attributes. Nothing here imports torch, transformers or accelerate at run time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from accelerate import Accelerator
    from torch import nn
    from torch.optim import Optimizer
    from transformers import PreTrainedTokenizerBase

    from rlhfops.train.judge_reward import JudgeReward
    from rlhfops.train.kl import AdaptiveKLController, FixedKLController
    from rlhfops.train.ppo_config import PPOConfig
    from rlhfops.train.ppo_model import Reference
    from rlhfops.train.reward_sources import ModelReward, RuleReward
    from rlhfops.train.rollout_backend import BuiltinBackend, EngineBackend

__all__ = ["RolloutParts", "UpdateParts"]


class RolloutParts(Protocol):
    """The eight trainer attributes a rollout or a policy evaluation reads."""

    config: PPOConfig
    accelerator: Accelerator
    #: the ``ActorCritic`` (called as ``model(sequences, attention_mask, P, temperature)`` ->
    #: ``PolicyOutput``), possibly wrapped by ``accelerator.prepare``
    model: nn.Module
    tokenizer: PreTrainedTokenizerBase
    scorer: RuleReward | ModelReward | JudgeReward
    judge: RuleReward | ModelReward | None
    reference: Reference
    #: what generates the rollouts (``rollout_backend.py``); evaluation always uses the built-in sampler
    rollout_backend: BuiltinBackend | EngineBackend


class UpdateParts(Protocol):
    """The six trainer attributes the PPO update reads."""

    config: PPOConfig
    accelerator: Accelerator
    #: the ``ActorCritic``, possibly wrapped by ``accelerator.prepare`` (DDP under several processes)
    model: nn.Module
    kl_ctl: AdaptiveKLController | FixedKLController
    #: number of data-parallel processes
    world: int
    optimizer: Optimizer
