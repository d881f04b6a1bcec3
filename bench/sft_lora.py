"""Play 2's SFT with extra settings, e.g. LoRA (issue 19; docs/benchmarks.md, Issue 19, section 16).

Runs the product's ``run_stage("sft")`` with the FULL demo's Play 2 settings (``DemoSettings.for_mode``:
the shipped demonstrations, its steps, batch, learning rate, max_length and seed), then the ``key=value``
sets given (they win). Score the result with ``bench/r2_nll.py score OUT/final SPEC OUT.json``.

    OMP_NUM_THREADS=1 PYTHONPATH=src python bench/sft_lora.py OUT [key=value ...]
    OMP_NUM_THREADS=1 PYTHONPATH=src python bench/sft_lora.py /tmp/x/lora lora.enabled=true learning_rate=1e-3

Run outside any workspace (``run_stage`` then records nothing).
"""

from __future__ import annotations

import json
import sys
import time


def main(out: str, *sets: str) -> None:
    from rlhfops.demo.plays import DemoSettings
    from rlhfops.examples import example_path
    from rlhfops.train.runner import run_stage

    s = DemoSettings.for_mode(quick=False, progress=False)
    common = {
        "data": example_path("support_replies/demos.jsonl"),
        "model": s.model,
        "output_dir": out,
        "progress": "false",
        "save_every": 100000,
        "seed": s.seed,
        "batch_size": s.sft_batch_size,
        "max_length": s.max_length,
        "gradient_checkpointing": str(s.gradient_checkpointing).lower(),
        "max_steps": s.sft_steps,
        "learning_rate": s.sft_learning_rate,
    }
    t, c = time.perf_counter(), time.process_time()
    result = run_stage("sft", None, [f"{k}={v}" for k, v in common.items()] + list(sets))
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    print(json.dumps({"eval": result.summary.get("eval"), "wall": wall, "cpu": cpu}))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(*sys.argv[1:])
