"""Reward scoring: the one way every play scores (prompt, reply) pairs with a trained reward model.

PPO rollouts (:class:`rlhfops.train.reward_sources.ModelReward`, token ids), the reward-model judge
(:class:`rlhfops.judge.reward_model.RewardModelJudge`) and production monitoring
(:func:`rlhfops.monitor.rewards.reward_model_scorer`) all call :func:`score_ids`; the two that start from
text encode it with :func:`rlhfops.data.encode.encode_replies`, exactly as the reward model's training
pairs were encoded (the prompt as one user message, the reply as the assistant turn, rendered with the
model's chat template; the reply cut to fit ``max_length``).

The score is the head's output at the reply's last token (the last prompt token for an empty reply), or
with ``pooling: mean`` stored with the model the mean of its outputs over the reply's tokens, normalised
with the mean / std stored with the model: ``(raw - mean) / std``. torch loads on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rlhfops.data.encode import encode_replies
from rlhfops.models.loading import load_tokenizer

# (trunk, ids [B, W], mask [B, W], prompt_width P) -> last hidden states at columns P-1.. [B, W-P+1, H]
HiddenFn = Callable[[Any, Any, Any, int], Any]


def score_ids(
    model: Any,
    prompt_ids: Sequence[Sequence[int]],
    response_ids: Sequence[Sequence[int]],
    pad_id: int,
    device: Any = "cpu",
    hidden: HiddenFn | None = None,
) -> Any:
    """Normalised reward scores [B] (a CPU tensor) of token-id prompts and their responses.

    Rows are laid out as the left-padded prompt followed by the right-padded response, with positions
    counting attended tokens only. ``model`` is a :class:`rlhfops.models.heads.RewardModel` (``trunk``,
    ``head``, ``normalize``). ``hidden`` replaces the plain trunk forward (PPO passes one that computes a
    prompt shared by k samples once; same values to float rounding).
    """
    import torch

    from rlhfops.models.generate import left_pad

    p_ids, p_mask = left_pad([list(p) for p in prompt_ids], pad_id)
    width = max(len(r) for r in response_ids)
    r_ids = torch.full((len(response_ids), width), pad_id, dtype=torch.long)
    r_mask = torch.zeros((len(response_ids), width), dtype=torch.long)
    for i, r in enumerate(response_ids):
        r_ids[i, : len(r)] = torch.tensor(list(r), dtype=torch.long)
        r_mask[i, : len(r)] = 1
    ids = torch.cat([p_ids, r_ids], dim=1).to(device)
    mask = torch.cat([p_mask.long(), r_mask], dim=1).to(device)
    P = p_ids.shape[1]
    with torch.no_grad():
        if hidden is None:
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            out = model.trunk(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False)
            h = out.last_hidden_state[:, P - 1 :]
        else:
            h = hidden(model.trunk, ids, mask, P)
        if getattr(model, "pooling", "last") == "mean":
            from rlhfops.models.heads import reply_mean

            per = model.head(h.float()).squeeze(-1)  # [B, W+1]: column 0 is the last prompt token
            raw = torch.stack(
                [reply_mean(per[i, 1 : len(r) + 1], per[i, 0]) for i, r in enumerate(response_ids)]
            )
            return model.normalize(raw).cpu()
        last = torch.tensor([len(r) for r in response_ids], device=h.device)  # column P-1 is index 0
        raw = model.head(h[torch.arange(len(response_ids), device=h.device), last].float())
        return model.normalize(raw.squeeze(-1)).cpu()


class TextRewardScorer:
    """A reward model directory scoring text pairs: ``scores(prompts, replies) -> list[float]``.

    Loads the model (eval mode, no gradients) and its tokenizer on the first call; batches of
    ``batch_size`` pairs; each batch encoded by :func:`rlhfops.data.encode.encode_replies`.
    """

    def __init__(
        self, path: str | Path, device: Any = "cpu", batch_size: int = 16, max_length: int = 1024
    ) -> None:
        self.path = str(path)
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self.model: Any = None
        self.tokenizer: Any = None

    def load(self) -> None:
        if self.model is None:
            from rlhfops.models.heads import RewardModel

            self.tokenizer = load_tokenizer(self.path)
            self.model = RewardModel.from_pretrained(self.path).to(self.device).eval()
            for p in self.model.parameters():
                p.requires_grad_(False)

    def encode(self, prompts: Sequence[str], replies: Sequence[str], first_line: int = 1) -> list[Any]:
        """(prompt ids, reply ids) per pair, as the reward model's training pairs were encoded."""
        self.load()
        return encode_replies(prompts, replies, self.tokenizer, self.max_length, first_line=first_line)

    def scores(self, prompts: Sequence[str], replies: Sequence[str]) -> list[float]:
        if len(prompts) != len(replies):
            raise ValueError(f"{len(prompts)} prompts but {len(replies)} replies")
        self.load()
        out: list[float] = []
        for start in range(0, len(prompts), self.batch_size):
            pairs = self.encode(
                prompts[start : start + self.batch_size], replies[start : start + self.batch_size], start + 1
            )
            pad = self.tokenizer.pad_token_id or 0
            vals = score_ids(self.model, [p for p, _ in pairs], [r for _, r in pairs], pad, self.device)
            out.extend(float(v) for v in vals)
        return out
