"""Fixtures for tests/data: a small byte-level tokenizer with a ChatML chat template."""

from __future__ import annotations

import pytest

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _local_byte_tokenizer():
    """A byte-level tokenizer (one token per byte, no merges) with ChatML specials; EOS = <|im_end|>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=core)
    tok.add_special_tokens(
        {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "additional_special_tokens": ["<|im_start|>"]}
    )
    tok.chat_template = CHATML
    return tok


@pytest.fixture
def tokenizer():
    """The project's tiny tokenizer when present, else the local byte-level stand-in (same design)."""
    try:
        from rlhfops.models.tiny import tiny_tokenizer
    except ImportError:
        return _local_byte_tokenizer()
    return tiny_tokenizer()
