"""Benchmark: the full rlhfops input-drift pipeline vs a plain sentence-transformers encode.

10,000 training prompts and 10,000 production prompts are generated from templates (seeded; the
production set has 30% prompts from other tasks, so the clustering path runs too). Each round times,
interleaved:

* ``rlhfops``: ``embed_texts(train + prod)`` + ``input_drift(...)`` (MMD permutation
  test, domain-classifier AUC, novelty + clustering) -- everything a drift check does;
* ``plain``: ``SentenceTransformer(<bundled model>).encode(train + prod)`` -- the embedding alone, the
  floor any embedding-based drift check pays.

Both models are loaded (and warmed up) before timing. Prints one JSON line:
``{"bench":"drift","rlhfops_s_median":...,"plain_encode_s_median":...,"ratio": plain/rlhfops, ...}``;
ratio >= 1 means the drift tests add nothing measurable beyond the embedding.

Run: ``.venv/bin/python bench/drift.py [--n 10000] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# the product and dish names of the drift tests' prompt sets (one list each)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "helpers"))
from monitor_drift_texts import DISHES, PRODUCTS  # noqa: E402

SUPPORT = [
    "Hi, my {p} arrived broken on {day}. Order #{n}. Can I get a refund or a replacement?",
    "Where is my order #{n}? I ordered a {p} {d} days ago and the tracking page has not changed.",
    "The {p} I bought stopped working after {d} days. What are my options under the warranty?",
    "Can I return the {p} if I already opened the box? I bought it on {day} (order #{n}).",
    "I was charged twice for order #{n} ({p}), please refund the second charge.",
    "How do I change the delivery address for order #{n}? It is a {p} and I moved last {day}.",
    "I received the wrong colour of {p} in order #{n}, how do I exchange it?",
    "My discount code did not apply to the {p} in order #{n}; I was charged {d} pounds too much.",
    "Please cancel order #{n}, I no longer need the {p}. It has not shipped yet, I think.",
    "Is the {p} back in stock yet? I have been waiting {d} days to buy one for my sister.",
]  # fmt: skip
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
OTHER = [
    "How long should I bake {x} for {k} people at {t} degrees?",
    "What can I use instead of eggs when making {x} for {k} guests?",
    "Give me a {k}-ingredient weeknight recipe for {x} that takes under {t} minutes.",
    "Write a {l} function that parses a CSV file of {k} columns and returns the rows sorted by column {c}.",
    "My {l} script to retry an HTTP request {k} times throws a timeout after {t} seconds, what is wrong?",
    "What is the fastest way to deduplicate a list of {t} thousand items in {l}?",
]  # fmt: skip
LANGS = ["Python", "JavaScript", "Rust", "SQL", "Go", "Java"]


def generate(n: int, seed: int, other_share: float) -> list[str]:
    """``n`` prompts: support questions, plus ``other_share`` of cooking / coding questions."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        if rng.random() < other_share:
            out.append(
                rng.choice(OTHER).format(
                    x=rng.choice(DISHES),
                    k=rng.randint(2, 12),
                    t=rng.randint(10, 240),
                    l=rng.choice(LANGS),
                    c=rng.randint(1, 9),
                )  # fmt: skip
            )
        else:
            out.append(
                rng.choice(SUPPORT).format(
                    p=rng.choice(PRODUCTS),
                    n=rng.randint(10000, 99999),
                    d=rng.randint(2, 30),
                    day=rng.choice(DAYS),
                )
            )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="prompts per side")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from sentence_transformers import SentenceTransformer

    from rlhfops.monitor.drift import input_drift
    from rlhfops.monitor.embed import embed_texts, load_embedding_model, model_path

    train = generate(args.n, args.seed, 0.0)
    prod = generate(args.n, args.seed + 1, 0.3)
    plain = SentenceTransformer(str(model_path()), device="cpu")
    load_embedding_model()
    warm = train[:64]
    plain.encode(warm)
    input_drift(embed_texts(warm), embed_texts(prod[:64]))  # warm up, imports sklearn

    ours, base, embed_part, tests_part, drifted = [], [], [], [], None
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        emb = embed_texts(train + prod)  # one call: duplicates across both sides embedded once
        e_train, e_prod = emb[: len(train)], emb[len(train) :]
        t1 = time.perf_counter()
        report = input_drift(e_train, e_prod)
        ours.append(time.perf_counter() - t0)
        embed_part.append(t1 - t0)
        tests_part.append(ours[-1] - embed_part[-1])
        drifted = report.drifted
        t0 = time.perf_counter()
        plain.encode(train + prod)
        base.append(time.perf_counter() - t0)
    r_med, p_med = statistics.median(ours), statistics.median(base)
    print(
        json.dumps(
            {
                "bench": "drift",
                "rlhfops_s_median": round(r_med, 2),
                "plain_encode_s_median": round(p_med, 2),
                "ratio": round(p_med / r_med, 3),
                "rlhfops_embed_s_median": round(statistics.median(embed_part), 2),
                "rlhfops_tests_s_median": round(statistics.median(tests_part), 2),
                "rounds": args.rounds,
                "n_per_side": args.n,
                "unique_texts": len(set(train + prod)),
                "drifted": drifted,
                "new_clusters": len(report.new_clusters),
            }
        )
    )


if __name__ == "__main__":
    main()
