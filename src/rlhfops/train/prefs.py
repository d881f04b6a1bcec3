"""Preference data for the reward model and DPO: load, encode with the chat template, split."""

from __future__ import annotations

from typing import Any, NamedTuple

from rlhfops.data.encode import encode_prefs, require_rows
from rlhfops.data.schema import load_prefs
from rlhfops.models.loading import load_tokenizer
from rlhfops.train.base import split_train_eval
from rlhfops.train.config import TrainConfig


class PrefRows(NamedTuple):
    """Encoded preference pairs and what ``truncation`` did to each file (``{"data": counts, ...}``)."""

    tokenizer: Any
    train: list[Any]
    held: list[Any]
    truncation: dict[str, dict[str, Any]]


def load_pref_rows(cfg: TrainConfig) -> PrefRows:
    """Encoded preference pairs of ``data`` (and ``eval_data``), split into train and held-out rows."""
    tokenizer = load_tokenizer(cfg.model, chat_template=cfg.chat_template)

    def encode(path: str):
        result = encode_prefs(load_prefs(path), tokenizer, cfg.max_length, cfg.chat_template, cfg.truncation)
        return require_rows(result, path, cfg.max_length)

    result = encode(cfg.data)
    encoded, counts = result.rows, {"data": result.counts.as_dict()}
    if cfg.eval_data:
        held = encode(cfg.eval_data)
        counts["eval_data"] = held.counts.as_dict()
        return PrefRows(tokenizer, encoded, held.rows, counts)
    tr, ev = split_train_eval(len(encoded), cfg.eval_fraction, cfg.seed)
    return PrefRows(tokenizer, [encoded[i] for i in tr], [encoded[i] for i in ev], counts)


def pack_pair_batch(cfg: TrainConfig, pad_id: int, prompts, chosen, rejected):
    """Pairs packed for a forward pass: shared prompt when the config and attention kernel allow."""
    from rlhfops.train.forward import pack_completions, pack_pairs

    if getattr(cfg, "share_prompt", False) and cfg.attn_implementation != "flash_attention_2":
        return pack_pairs(prompts, chosen, rejected, cfg.max_length, pad_id)
    return pack_completions(prompts * 2, chosen + rejected, cfg.max_length, pad_id)
