"""The content hash of a prompt: one definition for the red-team split and the contamination guard.

A prompt's key is the SHA-256 of its text after Unicode NFC, case folding and collapsing every run of
whitespace to one space (ends stripped), so a copy that differs only in case or spacing has the same key.
A chat prompt (a list of ``{"role", "content"}`` messages) gives one key per user turn
(:func:`prompt_keys`): an evaluation prompt that equals any user turn of a training prompt matches it.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Any

_SPACE = re.compile(r"\s+")


def normalise_prompt(text: str) -> str:
    """NFC, case-folded, whitespace collapsed to single spaces, ends stripped."""
    return _SPACE.sub(" ", unicodedata.normalize("NFC", text).casefold()).strip()


def prompt_key(text: str) -> str:
    """SHA-256 (hex) of :func:`normalise_prompt` of ``text``."""
    return hashlib.sha256(normalise_prompt(text).encode("utf-8")).hexdigest()


def prompt_keys(prompt: Any) -> list[str]:
    """The keys of a prompt: one for a string, one per non-empty user turn of a chat; [] otherwise."""
    if isinstance(prompt, str):
        return [prompt_key(prompt)] if prompt.strip() else []
    if isinstance(prompt, list):
        turns = [
            m.get("content")
            for m in prompt
            if isinstance(m, dict) and m.get("role", "user") == "user" and isinstance(m.get("content"), str)
        ]
        return [prompt_key(t) for t in turns if t.strip()]
    return []
