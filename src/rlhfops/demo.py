"""`rlhfops demo`: SFT -> reward model -> DPO on the bundled model and the bundled support-replies data.

Ends by printing where the runs are, the key numbers, and a few held-out replies before and after.
``quick`` trains a few steps per stage (a first look in a few minutes); the full mode trains one epoch
per stage. Both train all weights.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUNDLED_NAME = "smollm2-135m-instruct"


@dataclass
class DemoResult:
    out_dir: Path
    runs: dict[str, Path]
    summaries: dict[str, dict[str, Any]]
    samples: list[dict[str, str]]
    seconds: float


def _stage_overrides(quick: bool) -> dict[str, list[str]]:
    common = ["progress=true", "save_every=1000", "max_length=384", "seed=0"]
    if quick:
        common += ["max_steps=10"]
        return {
            "sft": [*common, "batch_size=8", "learning_rate=3e-5"],
            "rm": [*common, "batch_size=8", "learning_rate=2e-5"],
            "dpo": [*common, "batch_size=8", "learning_rate=1e-5", "beta=0.1"],
        }
    return {
        "sft": [*common, "batch_size=8", "epochs=1", "learning_rate=3e-5"],
        "rm": [*common, "batch_size=8", "epochs=1", "learning_rate=1e-5"],
        "dpo": [*common, "batch_size=8", "epochs=1", "learning_rate=5e-6", "beta=0.1"],
    }


def held_out_replies(
    model_dirs: dict[str, str],
    prompts: list[str],
    max_new_tokens: int = 64,
    tokenizer_from: str = BUNDLED_NAME,
) -> list[dict[str, str]]:
    """Greedy replies of each model to each prompt (prompt, model name -> reply)."""
    from rlhfops.models.generate import generate
    from rlhfops.models.loading import load_causal_lm, load_tokenizer

    tok = load_tokenizer(tokenizer_from, padding_side="left")
    ids = [
        tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=True)
        for p in prompts
    ]
    ids = [list(x if isinstance(x, list) else x["input_ids"]) for x in ids]
    rows: list[dict[str, str]] = [{"prompt": p} for p in prompts]
    for name, path in model_dirs.items():
        model = load_causal_lm(path, trainable=False).eval()
        out = generate(
            model,
            ids,
            max_new_tokens=max_new_tokens,
            temperature=0.0,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
        for i, row in enumerate(rows):
            resp = out.response_ids[i][out.response_mask[i].bool()].tolist()
            row[name] = tok.decode(resp, skip_special_tokens=True).strip()
        del model
    return rows


def run_demo(out_dir: str | Path | None = None, quick: bool = False, n_samples: int = 3) -> DemoResult:
    from rlhfops.data.io import read_rows
    from rlhfops.examples import example_path
    from rlhfops.train.runner import run_stage

    t0 = time.perf_counter()
    out = Path(out_dir or Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}")
    demos = example_path("support_replies/demos.jsonl")
    prefs = example_path("support_replies/prefs.jsonl")
    prompts = example_path("support_replies/prompts.jsonl")
    sets = _stage_overrides(quick)
    runs: dict[str, Path] = {}
    summaries: dict[str, dict[str, Any]] = {}
    sft = run_stage("sft", None, [f"data={demos}", f"output_dir={out / 'sft'}", *sets["sft"]])
    runs["sft"], summaries["sft"] = sft.run_dir, sft.summary
    sft_model = sft.run_dir / "final"
    rm = run_stage(
        "rm", None, [f"data={prefs}", f"model={sft_model}", f"output_dir={out / 'rm'}", *sets["rm"]]
    )
    runs["rm"], summaries["rm"] = rm.run_dir, rm.summary
    dpo = run_stage(
        "dpo", None, [f"data={prefs}", f"model={sft_model}", f"output_dir={out / 'dpo'}", *sets["dpo"]]
    )
    runs["dpo"], summaries["dpo"] = dpo.run_dir, dpo.summary
    held = [r.data["prompt"] for r in read_rows(prompts)[:n_samples]]
    samples = held_out_replies(
        {"base": BUNDLED_NAME, "sft": str(sft_model), "dpo": str(dpo.run_dir / "final")}, held
    )
    (out / "samples.json").write_text(json.dumps(samples, indent=2))
    return DemoResult(out, runs, summaries, samples, time.perf_counter() - t0)
