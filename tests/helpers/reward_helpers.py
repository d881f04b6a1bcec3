"""A tiny random reward model and the by-hand score every reward-scoring test compares against."""

from __future__ import annotations

from pathlib import Path

import torch

from rlhfops.models.heads import RewardModel
from rlhfops.models.tiny import make_tiny_model_dir, tiny_tokenizer


def tiny_reward_model(base: Path, seed: int) -> Path:
    """A reward model on a tiny random trunk, normalised as (raw - 0.5) / 2; its directory."""
    lm = make_tiny_model_dir(base / "tiny", seed=seed)
    rm = RewardModel.from_causal_lm(str(lm))
    rm.set_normalization(0.5, 2.0)
    return rm.save_pretrained(base / "rm", tiny_tokenizer())


def direct_reward(rm_dir: Path, prompt: str, reply: str) -> float:
    """A plain forward over the training encoding of one pair, normalised by hand: (raw - 0.5) / 2."""
    tok = tiny_tokenizer()
    text = tok.apply_chat_template(
        [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}], tokenize=False
    )
    ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
    model = RewardModel.from_pretrained(rm_dir).eval()
    with torch.no_grad():
        raw = model(input_ids=ids, attention_mask=torch.ones_like(ids))[0, -1]
    return float((raw - 0.5) / 2.0)
