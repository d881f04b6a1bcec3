"""GPU smoke run (issue 23): SFT, RM, DPO and a few PPO iterations on a 1B-shape model, beside TRL 1.16.

The first thing to run when a GPU is available (``bench/gpu_smoke.sh``; at most 8 minutes on one H100).
The model has random weights built from a config -- the Llama-3.2-1B shape of ``rlhfops.train.plan.SHAPES``
with the bundled tokenizer's vocabulary (~1.07B parameters) -- so nothing is downloaded. Precision is bf16
autocast over float32 weights on both sides (``ACCELERATE_MIXED_PRECISION=bf16`` for rlhfops, as
``accelerate launch --mixed_precision bf16`` sets it; ``bf16=True`` for TRL), attention is sdpa, each side
keeps its own default activation checkpointing (rlhfops: selective; TRL: whole layers).

Data: the bundled support-replies examples (demos, preference pairs, prompts), cycled for more steps than
one epoch holds. Each stage runs through rlhfops' public trainer (``rlhfops.train.runner.trainer_class``,
what ``run_stage`` runs), timed from before setup (model loading, tokenising, DPO's reference log-probs)
to the end of the last step; the RM stage also saves its model, which the PPO stage then uses as its
reward model (policy, reference and reward model on the GPU). TRL runs SFT, RM and DPO with the same
batch, steps, learning rate and length limit.

Printed per stage and side: tokens per second (prompt + completion tokens of the examples trained on;
for pairs prompt + chosen + prompt + rejected, the same count for both sides), seconds, and peak GPU
memory (``torch.cuda.max_memory_allocated``, reset before each stage; on CPU the process's peak RSS so
far). For PPO: seconds per iteration, generated tokens per second of the rollout generation, the
rollout backend's generation and sync seconds. The last line gives the wall and CPU seconds of the run.

``--tiny``: a 2-layer, hidden-64 model with the byte-level test tokenizer, float32 on CPU, a few steps: the
same code path in seconds (tests/train/test_gpu_smoke.py runs it).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
EXAMPLES = ROOT / "src" / "rlhfops" / "examples" / "support_replies"

# (full run, --tiny run)
STEPS = {"sft": (30, 2), "rm": (30, 2), "dpo": (30, 2)}
BATCH = {"sft": (16, 4), "rm": (8, 4), "dpo": (8, 4)}
LR = {"sft": 2e-5, "rm": 1e-5, "dpo": 5e-6}
MAX_LENGTH = (1024, 256)
PPO = {  # prompts per iteration, samples per prompt, new tokens, iterations
    "batch_size": (16, 2),
    "samples_per_prompt": (4, 2),
    "max_new_tokens": (128, 8),
    "iterations": (3, 2),
}


def pick(table_value: tuple, tiny: bool):
    return table_value[1] if tiny else table_value[0]


# ---- the model and data --------------------------------------------------------------------------
def build_model(out: Path, tiny: bool, device: str) -> Path:
    """A random model directory: the tiny test model, or the 1B shape with the bundled tokenizer."""
    if tiny:
        from rlhfops.models.tiny import make_tiny_model_dir

        return make_tiny_model_dir(out)
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from rlhfops.models.loading import BUNDLED_NAME, load_tokenizer
    from rlhfops.train.plan import SHAPES

    tok = load_tokenizer(BUNDLED_NAME)
    shape = SHAPES["1b"].llama_config() | {"vocab_size": len(tok)}
    config = LlamaConfig(
        **shape,
        max_position_embeddings=4096,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config)
    model.to(torch.bfloat16).save_pretrained(out, safe_serialization=True)  # half the bytes to write and read
    tok.save_pretrained(out)
    del model
    return out


def write_data(out: Path) -> dict[str, Path]:
    """The bundled examples: demos (sft), pairs (rm, dpo), prompts (ppo)."""
    out.mkdir(parents=True, exist_ok=True)
    files = {"sft": "demos.jsonl", "rm": "prefs.jsonl", "dpo": "prefs.jsonl", "ppo": "prompts.jsonl"}
    paths = {}
    for stage, name in files.items():
        rows = [json.loads(x) for x in (EXAMPLES / name).read_text().splitlines() if x.strip()]
        if stage == "ppo":
            rows = [{"prompt": r["prompt"]} for r in rows]
        paths[stage] = out / f"{stage}.jsonl"
        paths[stage].write_text("".join(json.dumps(r) + "\n" for r in rows))
    return paths


def tokens_per_row(stage: str, data: Path, model_dir: Path) -> float:
    """Mean prompt + completion tokens of a row (a pair counts prompt + chosen + prompt + rejected)."""
    from rlhfops.models.loading import load_tokenizer

    tok = load_tokenizer(str(model_dir))
    counts = []
    for line in data.read_text().splitlines():
        row = json.loads(line)
        prompt = [{"role": "user", "content": row["prompt"]}]
        answers = [row["completion"]] if stage == "sft" else [row["chosen"], row["rejected"]]
        n = 0
        for a in answers:
            text = tok.apply_chat_template(prompt + [{"role": "assistant", "content": a}], tokenize=False)
            n += len(tok(text, add_special_tokens=False)["input_ids"])
        counts.append(n)
    return sum(counts) / len(counts)


# ---- measuring ---------------------------------------------------------------------------------------
def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _reset_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_memory_gb() -> tuple[float, str]:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 1024**3, "gpu"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, "rss"


def _fresh_accelerate_state() -> None:
    """Each stage builds its own Accelerator (both sides): forget the previous one's singleton state."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


# ---- rlhfops ------------------------------------------------------------------------------------------
def run_rlhfops(stage: str, model_dir: Path, data: Path, work: Path, tiny: bool, keep: bool, **extra) -> dict:
    """One stage through rlhfops' trainer; seconds from before setup to after the last step."""
    from rlhfops.train.runner import STAGES, trainer_class

    if stage == "ppo":
        settings = {
            "batch_size": pick(PPO["batch_size"], tiny),
            "samples_per_prompt": pick(PPO["samples_per_prompt"], tiny),
            "max_new_tokens": pick(PPO["max_new_tokens"], tiny),
            "max_steps": pick(PPO["iterations"], tiny),
            "advantage_estimator": "grpo",
            "minibatch_size": pick(PPO["batch_size"], tiny) * pick(PPO["samples_per_prompt"], tiny) // 2,
            "ppo_epochs": 1,
            "kl_controller": "fixed",
            "learning_rate": 1e-6,
            **extra,
        }
    else:
        settings = {"batch_size": pick(BATCH[stage], tiny), "max_steps": pick(STEPS[stage], tiny)}
        settings["learning_rate"] = LR[stage]
    cfg = STAGES[stage](
        model=str(model_dir),
        data=str(data),
        eval_fraction=0.0,
        output_dir=str(work),
        max_length=pick(MAX_LENGTH, tiny),
        dtype="float32",
        attn_implementation="sdpa",
        save_every=100_000,
        progress=False,
        **settings,
    )
    base = trainer_class(stage)
    clock: dict[str, float] = {}

    class Timed(base):  # type: ignore[misc, valid-type]
        def finish(self):
            _sync()
            clock["seconds"] = time.perf_counter() - clock["t0"]
            return super().finish() if keep else None

    _reset_memory()
    _fresh_accelerate_state()
    clock["t0"] = time.perf_counter()
    trainer = Timed(cfg)
    try:
        trainer.run_all()
        peak, kind = _peak_memory_gb()
        records = [r for r in trainer.run.read_metrics() if r.get("step", 0) >= 1]
    finally:
        del trainer
    out = {"seconds": clock["seconds"], "peak_memory_gb": peak, "memory_kind": kind}
    out["first_loss"], out["last_loss"] = records[0].get("loss"), records[-1].get("loss")
    if stage == "ppo":
        responses = cfg.batch_size * cfg.samples_per_prompt
        generated = sum(r["response_length"] * responses for r in records)
        gen_seconds = sum(r["generate_seconds"] for r in records)
        out |= {
            "iterations": len(records),
            "seconds_per_iteration": sum(r["seconds"] for r in records) / len(records),
            "generated_tokens_per_s": generated / gen_seconds if gen_seconds else None,
            "generate_seconds_per_iteration": gen_seconds / len(records),
            "sync_seconds_per_iteration": sum(r["sync_seconds"] for r in records) / len(records),
            "rollout_backend": cfg.rollout_backend,
        }
    return out


# ---- TRL ----------------------------------------------------------------------------------------------
def run_trl(stage: str, model_dir: Path, data: Path, work: Path, tiny: bool, bf16: bool) -> dict:
    """The same stage with TRL 1.16 (its defaults otherwise), same batch, steps, learning rate, length."""
    import torch
    from datasets import Dataset
    from vs_trl import _trl_rows, trl_trainer

    from rlhfops.models.loading import load_tokenizer

    _reset_memory()
    _fresh_accelerate_state()
    t0 = time.perf_counter()
    tok = load_tokenizer(str(model_dir))
    ds = Dataset.from_list(_trl_rows(stage, data))
    common = dict(
        output_dir=str(work),
        per_device_train_batch_size=pick(BATCH[stage], tiny),
        max_steps=pick(STEPS[stage], tiny),
        learning_rate=LR[stage],
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        max_length=pick(MAX_LENGTH, tiny),
        disable_tqdm=True,
        seed=0,
        bf16=bf16,
    )
    trainer = trl_trainer(stage, model_dir, tok, ds, common, beta=0.1, loss_type=None)
    trainer.train()
    _sync()
    seconds = time.perf_counter() - t0
    peak, kind = _peak_memory_gb()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    del trainer
    return {
        "seconds": seconds,
        "peak_memory_gb": peak,
        "memory_kind": kind,
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
    }


# ---- the driver ---------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="tiny model on CPU: the same path in seconds")
    ap.add_argument("--skip-trl", action="store_true", help="rlhfops only (no TRL runs)")
    ap.add_argument("--stages", default="sft,rm,dpo,ppo")
    ap.add_argument("--rollout-backend", default="builtin", choices=["builtin", "vllm"])
    ap.add_argument("--out", help="directory for the model, data and runs (default: a temporary one)")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args(argv)
    t_wall, t_cpu = time.perf_counter(), time.process_time()

    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not args.tiny:
        print("gpu_smoke: no CUDA GPU visible; run with --tiny for the CPU check", file=sys.stderr)
        return 2
    if args.tiny:
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    bf16 = cuda and torch.cuda.is_bf16_supported()
    if bf16:
        os.environ["ACCELERATE_MIXED_PRECISION"] = (
            "bf16"  # what `accelerate launch --mixed_precision bf16` sets
        )
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    with tempfile.TemporaryDirectory(prefix="gpu-smoke-") as t:
        root = Path(args.out) if args.out else Path(t)
        root.mkdir(parents=True, exist_ok=True)
        model_dir = build_model(root / "model", args.tiny, "cuda" if cuda else "cpu")
        data = write_data(root / "data")
        env = {
            "device": torch.cuda.get_device_name(0) if cuda else "cpu",
            "precision": "bf16 autocast, float32 weights" if bf16 else "float32",
            "attention": "sdpa",
            "model": "tiny (2 layers, hidden 64)" if args.tiny else "Llama-3.2-1B shape, bundled tokenizer",
            "torch": torch.__version__,
        }
        print("# " + json.dumps(env), flush=True)
        results = []
        for stage in stages:
            runs = {"rlhfops": None, "trl": None}
            extra = {}
            if stage == "ppo":
                rm = root / "runs" / "rlhfops-rm" / "final"
                extra = {"reward_model": str(rm)} if rm.exists() else {"reward_fn": "length_target:32"}
                extra["rollout_backend"] = args.rollout_backend
            work = root / "runs" / f"rlhfops-{stage}"
            runs["rlhfops"] = run_rlhfops(
                stage, model_dir, data[stage], work, args.tiny, stage == "rm", **extra
            )
            if stage != "ppo" and not args.skip_trl:
                runs["trl"] = run_trl(
                    stage, model_dir, data[stage], root / "runs" / f"trl-{stage}", args.tiny, bf16
                )
            results.append(report(stage, runs, data[stage], model_dir, args.tiny))
        summary = {
            "environment": env,
            "stages": results,
            "wall_seconds": round(time.perf_counter() - t_wall, 1),
            "cpu_seconds": round(time.process_time() - t_cpu, 1),
        }
        if args.json:
            Path(args.json).write_text(json.dumps(summary, indent=2))
        print(f"# total: wall {summary['wall_seconds']} s, CPU {summary['cpu_seconds']} s", flush=True)
    return 0


def report(stage: str, runs: dict, data: Path, model_dir: Path, tiny: bool) -> dict:
    """One stage's line: tokens/s and peak memory per side."""
    row: dict = {"stage": stage}
    if stage == "ppo":
        row["rlhfops"] = {k: _round(v) for k, v in runs["rlhfops"].items()}
    else:
        rows = pick(BATCH[stage], tiny) * pick(STEPS[stage], tiny)
        tokens = rows * tokens_per_row(stage, data, model_dir)
        row["tokens"] = round(tokens)
        for side, r in runs.items():
            if r is not None:
                row[side] = {k: _round(v) for k, v in r.items()} | {
                    "tokens_per_s": round(tokens / r["seconds"], 1)
                }
    print(json.dumps(row), flush=True)
    return row


def _round(v):
    return round(v, 4) if isinstance(v, float) else v


if __name__ == "__main__":
    raise SystemExit(main())
