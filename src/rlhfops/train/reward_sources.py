"""What scores a response during RL: a trained reward model, or a programmatic reward.

Programmatic rewards (``reward_fn``) are for format rewards, tests and demos:

- ``length_target:N``  score = -|tokens - N| / N (0 at the target, lower further away)
- ``length``           score = tokens / 100 (pays for length: the classic reward-hacking plant)
- ``contains:PHRASE``  score = 1 when the response contains PHRASE (case-insensitive), else 0
- ``detector:NAME``    score = 1 when the red-team behaviour detector NAME
  (:data:`rlhfops.redteam.detectors.BEHAVIOUR_DETECTORS`, e.g. ``apology_remedy``, the spec's "apologises
  and offers a remedy") finds the behaviour, else 0: an independent judge for the KL sweep's frontier

A reward model's raw score is normalised with the mean/std stored with it by ``rlhfops train rm``.
A judge (``reward_judge``, any judge ``rlhfops eval compare --judge`` accepts) scores through
:mod:`rlhfops.train.judge_reward`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from rlhfops.errors import ConfigError
from rlhfops.models.heads import RewardModel
from rlhfops.models.reward_scoring import score_ids
from rlhfops.redteam.detectors import BEHAVIOUR_DETECTORS
from rlhfops.train.forward import hidden_after_prompts


@dataclass
class Responses:
    """A scored batch: token ids of prompts and responses (no padding) and the decoded response text."""

    prompt_ids: list[list[int]]
    response_ids: list[list[int]]
    texts: list[str]
    prompt_texts: list[str] | None = None  # decoded prompts, for judges that read text


class RuleReward:
    """A programmatic reward from a ``reward_fn`` spec string."""

    VALID = ("length_target:N", "length", "contains:PHRASE", "detector:NAME")

    def __init__(self, spec: str) -> None:
        self.spec = spec
        name, _, arg = spec.partition(":")
        self.fn: Callable[[list[int], str], float]
        if name == "length_target":
            try:
                target = float(arg)
            except ValueError:
                raise ConfigError(
                    f"reward_fn={spec!r}: length_target needs a number, e.g. length_target:40"
                ) from None
            self.fn = lambda ids, text: -abs(len(ids) - target) / target
        elif name == "length" and not arg:
            self.fn = lambda ids, text: len(ids) / 100.0
        elif name == "contains" and arg:
            phrase = arg.lower()
            self.fn = lambda ids, text: 1.0 if phrase in text.lower() else 0.0
        elif name == "detector":
            if arg not in BEHAVIOUR_DETECTORS:
                raise ConfigError(
                    f"reward_fn={spec!r}: unknown detector {arg!r}; valid: {', '.join(BEHAVIOUR_DETECTORS)}"
                )
            detect = BEHAVIOUR_DETECTORS[arg]
            self.fn = lambda ids, text: 1.0 if detect(text) else 0.0
        else:
            raise ConfigError(f"reward_fn={spec!r}: unknown; valid forms: {', '.join(self.VALID)}")

    def score(self, batch: Responses) -> torch.Tensor:
        return torch.tensor([self.fn(ids, t) for ids, t in zip(batch.response_ids, batch.texts, strict=True)])


class ModelReward:
    """A reward model from ``rlhfops train rm``; scores read at the last token, then normalised."""

    def __init__(self, path: str, device: torch.device | str = "cpu", pad_id: int = 0) -> None:
        self.model = RewardModel.from_pretrained(path).to(device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.device = device
        self.pad_id = pad_id

    @torch.no_grad()
    def score(self, batch: Responses) -> torch.Tensor:
        """Normalised scores [B] by :func:`rlhfops.models.reward_scoring.score_ids`; when consecutive rows
        share a prompt (k samples per prompt), it is computed once per group."""
        prompts = batch.prompt_ids
        group = next((i for i, p in enumerate(prompts) if p != prompts[0]), len(prompts))
        return score_ids(
            self.model,
            prompts,
            batch.response_ids,
            self.pad_id,
            self.device,
            hidden=lambda trunk, ids, mask, width: hidden_after_prompts(trunk, ids, mask, width, group),
        )


def build_scorer(spec: str, device: torch.device | str = "cpu", pad_id: int = 0) -> RuleReward | ModelReward:
    """A scorer from a reward model directory or a reward_fn spec."""
    if Path(spec).is_dir():
        return ModelReward(spec, device, pad_id)
    return RuleReward(spec)
