"""Tiny data and model fixtures for trainer tests (2-layer random models, a few dozen rows)."""

from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = "order refund parcel broken late account password delivery invoice colour size".split()


def write_demos(path: Path, n: int = 24, seed: int = 0) -> Path:
    rng = random.Random(seed)
    with open(path, "w") as fh:
        for i in range(n):
            w = rng.sample(WORDS, 3)
            prompt = f"Customer {i}: my {w[0]} is {w[1]}"
            completion = "Sorry about the " + " ".join(w[: 1 + i % 3]) + ". We will fix it today."
            fh.write(json.dumps({"prompt": prompt, "completion": completion}) + "\n")
    return path


def write_prefs(path: Path, n: int = 32, seed: int = 0, margin: bool = False) -> Path:
    rng = random.Random(seed)
    with open(path, "w") as fh:
        for i in range(n):
            w = rng.sample(WORDS, 2)
            row = {
                "prompt": f"Question {i} about my {w[0]} and {w[1]}",
                "chosen": f"Happy to help with your {w[0]}: here is what we will do.",
                "rejected": "I cannot help." + " no" * (i % 4),
            }
            if margin:
                row["margin"] = float(i % 3)
            fh.write(json.dumps(row) + "\n")
    return path


def write_prompts(path: Path, n: int = 24, seed: int = 0) -> Path:
    rng = random.Random(seed)
    with open(path, "w") as fh:
        for i in range(n):
            w = rng.sample(WORDS, 2)
            fh.write(json.dumps({"prompt": f"Hello {i}, my {w[0]} has a {w[1]} problem."}) + "\n")
    return path
