"""Benchmark: an evaluation's replies generated 8 per forward pass (the old default) vs 32 (`eval run
--batch-size`'s default since issue 19, section 14), with Hugging Face transformers' ``generate`` at 32 as
the peer.

The last 32 prompts of the bundled support-replies task (the full demo's held-out prompts), 64 new tokens,
sampled at temperature 1 (as the KL and the PPO sweep's held-out evaluations sample), on the bundled model.
Each round times, interleaved (A, B, C, A, B, C, ...), after one warm-up of each:

* ``rlhfops_b8``: ``LoadedModel.respond(prompts, 64, batch_size=8, temperature=1.0)``;
* ``rlhfops_b32``: the same with ``batch_size=32``;
* ``hf_b32``: ``model.generate(do_sample=True, max_new_tokens=64)`` on the same left-padded prompts, 32 at a
  time, the same weights (the peer's floor without rlhfops' sampler).

Prints one JSON line with each side's median wall and CPU seconds (``time.process_time``: every thread of
this process) and the median ratios ``b8_over_b32`` and ``hf_over_b32`` (> 1: rlhfops at 32 is cheaper).

Run: ``.venv/bin/python bench/eval_batch.py [--rounds 3] [--prompts 32] [--tokens 64]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=64)
    args = ap.parse_args()

    import torch

    from rlhfops.evaluate import generation
    from rlhfops.evaluate.generation import LoadedModel
    from rlhfops.models.loading import BUNDLED_NAME, resolve_model_dir

    rows = Path(__file__).resolve().parents[1] / "src/rlhfops/examples/support_replies/prompts.jsonl"
    prompts = [json.loads(line)["prompt"] for line in rows.read_text().splitlines() if line.strip()]
    prompts = prompts[-args.prompts :]
    model = LoadedModel.load(str(resolve_model_dir(BUNDLED_NAME)))
    tok = model.tokenizer
    ids = model.prompt_ids(prompts)

    def ours(bs: int, seed: int) -> list[str]:
        generation._REPLIES.clear()  # no memoised replies: every round generates
        return model.respond(prompts, args.tokens, batch_size=bs, temperature=1.0, seed=seed)

    def hf(seed: int) -> list[str]:
        torch.manual_seed(seed)
        out: list[str] = []
        for start in range(0, len(ids), 32):
            part = ids[start : start + 32]
            width = max(map(len, part))
            x = torch.tensor([[tok.pad_token_id] * (width - len(p)) + p for p in part])
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in part])
            with torch.no_grad():
                y = model.model.generate(
                    input_ids=x,
                    attention_mask=mask,
                    do_sample=True,
                    temperature=1.0,
                    top_k=0,
                    max_new_tokens=args.tokens,
                    pad_token_id=tok.pad_token_id,
                    eos_token_id=tok.eos_token_id,
                )
            out += tok.batch_decode(y[:, width:], skip_special_tokens=True)
        return out

    sides = {"rlhfops_b8": lambda s: ours(8, s), "rlhfops_b32": lambda s: ours(32, s), "hf_b32": hf}
    for fn in sides.values():
        fn(999)  # warm-up: kernels, packed weights
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in sides}
    words: dict[str, list[float]] = {k: [] for k in sides}
    for r in range(args.rounds):
        for name, fn in sides.items():
            w, c = time.perf_counter(), time.process_time()
            texts = fn(r)
            times[name].append((time.perf_counter() - w, time.process_time() - c))
            words[name].append(sum(len(t.split()) for t in texts) / len(texts))
    med = {
        k: {"wall_s": statistics.median(w for w, _ in v), "cpu_s": statistics.median(c for _, c in v)}
        for k, v in times.items()
    }
    ratio = lambda a, b: statistics.median(  # noqa: E731
        x[1] / y[1] for x, y in zip(times[a], times[b], strict=True)
    )
    print(
        json.dumps(
            {
                "bench": "eval_batch",
                "prompts": len(prompts),
                "tokens": args.tokens,
                "rounds": args.rounds,
                "torch_threads": torch.get_num_threads(),
                "median": med,
                "mean_words": {k: statistics.mean(v) for k, v in words.items()},
                "cpu_ratio_b8_over_b32": ratio("rlhfops_b8", "rlhfops_b32"),
                "cpu_ratio_hf_over_b32": ratio("hf_b32", "rlhfops_b32"),
            }
        )
    )


if __name__ == "__main__":
    main()
