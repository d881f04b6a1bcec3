"""Fixtures for tests/data: a small byte-level tokenizer with a ChatML chat template."""

from __future__ import annotations

import pytest

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def local_byte_tokenizer(merges: tuple[tuple[str, str], ...] = ()):
    """Byte-level tokenizer (a token per byte unless ``merges``), ChatML specials, EOS = <|im_end|>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    for a, b in merges:
        vocab[a + b] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=list(merges)))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=core)
    tok.add_special_tokens(
        {
            "eos_token": "<|im_end|>",
            "pad_token": "<|endoftext|>",
            "additional_special_tokens": ["<|im_start|>"],
        }
    )
    tok.chat_template = CHATML
    return tok


@pytest.fixture
def merging_tokenizer():
    """Byte-level, plus one merge of ':' and a following space (byte-level 'Ġ')."""
    return local_byte_tokenizer(merges=((":", "Ġ"),))


@pytest.fixture
def tokenizer():
    """The project's tiny tokenizer when present, else the local byte-level stand-in (same design)."""
    try:
        from rlhfops.models.tiny import tiny_tokenizer
    except ImportError:
        return local_byte_tokenizer()
    return tiny_tokenizer()
