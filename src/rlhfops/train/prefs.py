"""Preference data for the reward model and DPO: load, encode with the chat template, split."""

from __future__ import annotations

from typing import Any

from rlhfops.data.encode import encode_prefs
from rlhfops.data.schema import load_prefs
from rlhfops.models.loading import load_tokenizer
from rlhfops.train.base import split_train_eval
from rlhfops.train.config import TrainConfig


def load_pref_rows(cfg: TrainConfig) -> tuple[Any, list[Any], list[Any]]:
    """(tokenizer, train rows, eval rows) of encoded preference pairs."""
    tokenizer = load_tokenizer(cfg.model, chat_template=cfg.chat_template)
    encoded = encode_prefs(load_prefs(cfg.data), tokenizer, cfg.max_length, cfg.chat_template).rows
    if cfg.eval_data:
        held = encode_prefs(load_prefs(cfg.eval_data), tokenizer, cfg.max_length, cfg.chat_template).rows
        return tokenizer, encoded, held
    tr, ev = split_train_eval(len(encoded), cfg.eval_fraction, cfg.seed)
    return tokenizer, [encoded[i] for i in tr], [encoded[i] for i in ev]


def pack_pair_batch(cfg: TrainConfig, pad_id: int, prompts, chosen, rejected):
    """Pairs packed for a forward pass: shared prompt when the config and attention kernel allow."""
    from rlhfops.train.forward import pack_completions, pack_pairs

    if getattr(cfg, "share_prompt", False) and cfg.attn_implementation != "flash_attention_2":
        return pack_pairs(prompts, chosen, rejected, cfg.max_length, pad_id)
    return pack_completions(prompts * 2, chosen + rejected, cfg.max_length, pad_id)
