"""A test double for the bundled embedder: hashed bag of words and word pairs, L2-normalised, 384-d.

Deterministic and instant; texts sharing words are near, texts of another topic are far, which is all
the workspace wiring tests need (the real model is exercised in test_monitor_drift_embed.py).
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

DIM = 384


def hashing_embed(texts: list[str], batch_size: int = 64) -> np.ndarray:
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    for i, t in enumerate(texts):
        words = re.findall(r"[a-z]+", t.lower())
        for tok in words + [a + " " + b for a, b in zip(words, words[1:], strict=False)]:
            h = int.from_bytes(hashlib.md5(tok.encode()).digest()[:4], "little")
            out[i, h % DIM] += 1.0 if (h >> 16) & 1 else -1.0
        norm = np.linalg.norm(out[i])
        out[i] = out[i] / norm if norm > 0 else out[i]
    return out


def use_fake_embedder(monkeypatch) -> None:
    import rlhfops.monitor.embed as embed

    monkeypatch.setattr(embed, "embed_texts", hashing_embed)
