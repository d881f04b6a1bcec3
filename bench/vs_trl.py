"""Benchmark: rlhfops vs TRL 1.16 on the same CPU, model and data, one JSON line per stage.

Stages ``sft``, ``rm`` and ``dpo`` train the bundled SmolLM2-135M-Instruct (float32, sdpa attention,
full fine-tuning) for one epoch over the same examples, 4 examples (pairs) per optimizer step. The
data are the bundled support-replies examples (completion lengths vary from one sentence to a rambling
paragraph). Every run is a fresh subprocess (so peak RSS is that side's alone), and the two sides are
interleaved: rlhfops, TRL, rlhfops, TRL, ... The figure is the median over rounds of the per-round ratio.

Time is the child process's CPU time by default (``--clock cpu``; one thread per side, idle OpenMP
threads passive), because wall time on a shared 2-core machine swung 5x between adjacent runs; ``--clock
wall`` measures elapsed time instead. What is timed, on both sides: everything after the imports --
loading the model and tokenizer, tokenising the data, any precomputation (rlhfops' reference log-probs
for DPO), and every training step. Neither side evaluates or saves a model inside the timed part. TRL
runs with its defaults for that stage (padding, a second reference model for DPO, gradient checkpointing
on); rlhfops with its defaults (packing, shared prompt for pairs, LM head only on completion positions,
reference log-probs precomputed once, selective activation checkpointing). ``--checkpointing on|off``
forces whole-layer checkpointing or none on both sides; the JSON line reports what each side ran with.

Tokens per second = the same token count on both sides (prompt + completion tokens of every example;
for pairs prompt + chosen + prompt + rejected, as the examples would be processed one by one) divided
by that side's time. ``ratio`` = rlhfops tokens/s / TRL tokens/s. ``*_loss`` is the mean training loss
over the epoch and ``*_first_loss`` the first step's: TRL reads the examples sequentially in the order
rlhfops' seeded sampler visits them, so both sides train on the same batches, and the reward heads
start from the same weights. TRL 1.16 turns on bf16 autocast by default, even on a CPU; here both sides
compute in float32 (``bf16=False`` for TRL), because under bf16 a DPO log-ratio of two sums of ~-150
nats is rounding noise and TRL's logged losses then fall far faster than the float32 computation from
the same weights gives. The first-step losses (same weights, same batch) must agree within 2% or the
script fails; the epoch means are reported.

Two more stages for the PPO issue: ``generate`` (sampling tokens/s of rlhfops' rollout loop vs
transformers' ``generate``, same model, batch of 8 prompts, 64 new tokens, temperature 1, no top-p/top-k;
the ratio is rlhfops / transformers) and ``online_rl`` (whole runs of 2 iterations of rlhfops' critic-free
RLOO vs TRL's RLOOTrainer: 4 prompts x 4 samples, 32 new tokens, the same reward model -- the bundled
trunk with the shared head --, KL coefficient 0.05 against the reference, one update epoch; the ratio is
TRL seconds / rlhfops seconds, model loading included on both sides).

Run: ``.venv/bin/python bench/vs_trl.py [--stages sft,rm,dpo,generate,online_rl] [--rounds 3] [--steps 8]
[--checkpointing default|on|off]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "src" / "rlhfops" / "examples" / "support_replies"
PAIRS_PER_STEP = 4
LR = {"sft": 1e-6, "rm": 1e-6, "dpo": 1e-6}
MAX_LENGTH = 512
BETA = 0.1
THREADS = int(os.environ.get("BENCH_THREADS", "1"))
# "cpu": the process's CPU time (user + system, all threads); "wall": elapsed time. On a machine shared
# with other jobs, CPU time of a single-threaded process is the stable figure (wall time swung 5x between
# adjacent runs here); on a quiet machine the two agree for one thread.
CLOCK = os.environ.get("BENCH_CLOCK", "cpu")


def _now() -> float:
    if CLOCK == "wall":
        return time.perf_counter()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# "default": each side runs with its own default (TRL 1.16: gradient checkpointing on, whole layers;
# rlhfops: selective -- matmul and attention outputs kept, elementwise ops recomputed); "on" / "off": both
# sides forced to whole-layer checkpointing or none (--checkpointing).
CHECKPOINTING = os.environ.get("BENCH_CHECKPOINTING", "default")


def _ckpt_kw(side: str) -> dict:
    """The gradient_checkpointing argument for ``side``'s config: none where that side keeps its default."""
    if CHECKPOINTING == "default":
        return {}
    return {"gradient_checkpointing": CHECKPOINTING == "on"}


# ---- data ------------------------------------------------------------------------------------------
def write_data(stage: str, n: int, out: Path) -> Path:
    """The first ``n`` examples of the bundled set for ``stage`` (sft: demos; rm/dpo: prefs)."""
    src = EXAMPLES / ("demos.jsonl" if stage == "sft" else "prefs.jsonl")
    rows = [json.loads(line) for line in src.read_text().splitlines() if line.strip()][:n]
    if len(rows) < n:
        raise SystemExit(f"{src}: only {len(rows)} rows, {n} needed")
    path = out / f"{stage}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def count_tokens(stage: str, data: Path) -> int:
    """Prompt + completion tokens of every example, through the model's chat template."""
    from rlhfops.models.loading import BUNDLED_NAME, load_tokenizer

    tok = load_tokenizer(BUNDLED_NAME)
    total = 0
    for line in data.read_text().splitlines():
        row = json.loads(line)
        prompt = [{"role": "user", "content": row["prompt"]}]
        answers = [row["completion"]] if stage == "sft" else [row["chosen"], row["rejected"]]
        for a in answers:
            text = tok.apply_chat_template(prompt + [{"role": "assistant", "content": a}], tokenize=False)
            total += len(tok(text, add_special_tokens=False)["input_ids"])
    return total


def head_init(hidden: int, path: Path) -> None:
    """One reward-head weight for both sides (TRL's score layer has no bias; ours starts at bias 0)."""
    import torch

    g = torch.Generator().manual_seed(1234)
    w = torch.randn(1, hidden, generator=g) / (hidden + 1) ** 0.5
    torch.save(w, path)


# ---- one side, in a fresh process --------------------------------------------------------------------
def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rlhfops_config(
    stage: str,
    data: Path,
    steps: int,
    work: Path,
    lr: float,
    max_length: int,
    batch: int = PAIRS_PER_STEP,
    **extra,
):
    """rlhfops' config for ``stage``: the bench's batch, steps, learning rate and length; no warm-up, linear
    decay, no checkpoint, no progress bar; ``extra`` sets any other field (eval_data, model, lora, ...)."""
    from rlhfops.train.config import DPOConfig, RewardConfig, SFTConfig

    cls = {"sft": SFTConfig, "rm": RewardConfig, "dpo": DPOConfig}[stage]
    settings = dict(
        data=str(data),
        eval_fraction=0.0,
        output_dir=str(work / "run"),
        batch_size=batch,
        max_steps=steps,
        learning_rate=lr,
        max_length=max_length,
        warmup_ratio=0.0,
        lr_scheduler="linear",
        save_every=10_000,
        progress=False,
        **_ckpt_kw("rlhfops"),
        **({"beta": BETA} if stage == "dpo" else {}),
    )
    settings.update(extra)
    return cls(**settings)


def timed_trainer_class(stage: str, head: Path):
    """rlhfops' trainer for ``stage`` with TRL's starting reward head (``head``) and no evaluation or final
    save (``finish`` returns None), so that the timed part is loading and training only."""
    import torch

    from rlhfops.train.runner import trainer_class

    base = trainer_class(stage)

    class Timed(base):  # type: ignore[misc, valid-type]
        def build_model(self) -> None:
            super().build_model()
            if stage == "rm":  # the same starting head as TRL's score layer
                with torch.no_grad():
                    self.model.head.weight.copy_(torch.load(head))
                    self.model.head.bias.zero_()

        def finish(self):  # no evaluation, no final save inside the timed part
            return None

    return Timed


def run_rlhfops(stage: str, data: Path, steps: int, work: Path, head: Path) -> dict:
    cfg = rlhfops_config(stage, data, steps, work, LR[stage], MAX_LENGTH)
    t0 = _now()
    trainer = timed_trainer_class(stage, head)(cfg)
    trainer.setup()
    trainer.train()
    seconds = _now() - t0
    records = [r for r in trainer.run.read_metrics() if "loss" in r]
    losses = [r["loss"] for r in records]
    return {"seconds": seconds, "losses": losses, "checkpointing": cfg.gradient_checkpointing}


def _trl_rows(stage: str, data: Path, seed: int = 0) -> list[dict]:
    """The examples in the order rlhfops' first epoch visits them (TRL then samples sequentially), so
    both sides see the same batches at the same steps and their per-step losses are comparable. A prompt
    is a string (one user message) or already a list of messages (multi-turn data such as HH-RLHF); a
    pair's ``margin`` is kept."""
    import numpy as np

    lines = [x for x in data.read_text().splitlines() if x.strip()]
    order = np.random.default_rng(seed).permutation(len(lines))  # Trainer.rows_for_step, epoch 0
    rows = []
    for i in order:
        r = json.loads(lines[i])
        prompt = r["prompt"] if isinstance(r["prompt"], list) else [{"role": "user", "content": r["prompt"]}]
        if stage == "sft":
            rows.append({"prompt": prompt, "completion": [{"role": "assistant", "content": r["completion"]}]})
        else:
            pair = {
                "prompt": prompt,
                "chosen": [{"role": "assistant", "content": r["chosen"]}],
                "rejected": [{"role": "assistant", "content": r["rejected"]}],
            }
            if r.get("margin") is not None:  # TRL's RewardTrainer reads it as rlhfops does (use_margin)
                pair["margin"] = float(r["margin"])
            rows.append(pair)
    return rows


def trl_args(
    work: Path, steps: int, lr: float, max_length: int, batch: int = PAIRS_PER_STEP, seed: int = 0, **extra
) -> dict:
    """TRL config arguments shared by every stage: the bench's batch, steps, learning rate and length,
    sequential sampling (the order of :func:`_trl_rows`), float32, no saving, no progress bar."""
    common = dict(
        output_dir=str(work / "trl"),
        per_device_train_batch_size=batch,
        num_train_epochs=1,
        max_steps=steps,
        learning_rate=lr,
        lr_scheduler_type="linear",
        warmup_steps=0,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        dataloader_num_workers=0,
        max_length=max_length,
        disable_tqdm=True,
        seed=seed,
        train_sampling_strategy="sequential",
        **_ckpt_kw("trl"),
        bf16=False,  # TRL 1.16 defaults to bf16 autocast, even on CPU; both sides compute in float32
    )
    common.update(extra)
    return common


def trl_trainer(
    stage: str,
    model_dir: Path,
    tok,
    ds,
    common: dict,
    head: Path | None = None,
    *,
    beta: float = BETA,
    loss_type: list[str] | None = ["sigmoid"],  # noqa: B006 (read only)
    **kw,
):
    """TRL's trainer for ``stage`` on ``ds`` (float32, sdpa); the reward head starts from ``head``; DPO's
    ``beta`` and ``loss_type`` (None: TRL's default); ``kw`` goes to the trainer (e.g. ``eval_dataset``).
    Also builds bench/gpu_smoke.py's TRL side."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    load = dict(dtype=torch.float32, attn_implementation="sdpa")
    if stage == "sft":
        from trl import SFTConfig, SFTTrainer

        model = AutoModelForCausalLM.from_pretrained(model_dir, **load)
        return SFTTrainer(model=model, args=SFTConfig(**common), train_dataset=ds, processing_class=tok, **kw)
    if stage == "rm":
        from trl import RewardConfig, RewardTrainer

        model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1, **load)
        model.config.pad_token_id = tok.pad_token_id
        if head is not None:
            with torch.no_grad():
                model.score.weight.copy_(torch.load(head))
        args = RewardConfig(**common)
        return RewardTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, **kw)
    from trl import DPOConfig, DPOTrainer

    model = AutoModelForCausalLM.from_pretrained(model_dir, **load)
    args = DPOConfig(**common, beta=beta, **({} if loss_type is None else {"loss_type": loss_type}))
    return DPOTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, **kw)


def run_trl(stage: str, data: Path, steps: int, work: Path, head: Path) -> dict:
    from datasets import Dataset

    from rlhfops.models.loading import BUNDLED_NAME, load_tokenizer, resolve_model_dir

    t0 = _now()
    model_dir = resolve_model_dir(BUNDLED_NAME)
    tok = load_tokenizer(BUNDLED_NAME)
    ds = Dataset.from_list(_trl_rows(stage, data))
    trainer = trl_trainer(stage, model_dir, tok, ds, trl_args(work, steps, LR[stage], MAX_LENGTH), head)
    trainer.train()
    seconds = _now() - t0
    records = [h for h in trainer.state.log_history if "loss" in h]
    losses = [h["loss"] for h in records]
    return {"seconds": seconds, "losses": losses, "checkpointing": trainer.args.gradient_checkpointing}


# ---- PPO-issue stages: generation and one online-RL iteration ---------------------------------------
GEN_BATCH = 8
GEN_NEW_TOKENS = 64
RL_PROMPTS = 4  # prompts per iteration
RL_K = 4  # samples per prompt
RL_NEW_TOKENS = 32
RL_ITERATIONS = 2


def _prompt_ids(n: int) -> tuple[object, list[list[int]], list[str]]:
    from rlhfops.models.loading import BUNDLED_NAME, load_tokenizer

    tok = load_tokenizer(BUNDLED_NAME)
    lines = (EXAMPLES / "prompts.jsonl").read_text().splitlines()[:n]
    texts = [json.loads(x)["prompt"] for x in lines]
    ids = []
    for t in texts:
        rendered = tok.apply_chat_template(
            [{"role": "user", "content": t}], tokenize=False, add_generation_prompt=True
        )
        ids.append(tok(rendered, add_special_tokens=False)["input_ids"])
    return tok, ids, texts


def run_generate(side: str, rounds: int) -> dict:
    """Sampling tokens/s of one side: rlhfops' rollout loop or transformers' ``generate``."""
    import torch

    from rlhfops.models.generate import generate, left_pad
    from rlhfops.models.loading import BUNDLED_NAME, load_causal_lm

    tok, prompts, _ = _prompt_ids(GEN_BATCH)
    model = load_causal_lm(BUNDLED_NAME, trainable=False).eval()
    eos, pad = tok.eos_token_id, tok.pad_token_id
    rates = []
    for r in range(rounds + 1):  # round 0 warms up
        t0 = _now()
        with torch.inference_mode():
            if side == "rlhfops":
                g = torch.Generator().manual_seed(r)
                out = generate(
                    model, prompts, max_new_tokens=GEN_NEW_TOKENS, temperature=1.0, top_p=1.0,
                    eos_token_id=eos, pad_token_id=pad, generator=g,
                )  # fmt: skip
                n = int(out.response_mask.sum())
            else:
                torch.manual_seed(r)
                ids, mask = left_pad(prompts, pad)
                seq = model.generate(
                    input_ids=ids, attention_mask=mask, do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
                    max_new_tokens=GEN_NEW_TOKENS, pad_token_id=pad, eos_token_id=eos,
                )  # fmt: skip
                resp = seq[:, ids.shape[1] :]
                is_eos = resp == eos
                n = int(((is_eos.long().cumsum(-1) - is_eos.long()) == 0).sum())
        if r:
            rates.append(n / (_now() - t0))
    return {
        "tokens_per_s": statistics.median(rates),
        "seconds": GEN_BATCH * GEN_NEW_TOKENS / statistics.median(rates),
    }


def make_reward_models(tmp: Path, head: Path) -> None:
    """One reward function for both sides: the bundled trunk + the shared head, bias 0, no normalisation."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from rlhfops.models.heads import RewardModel
    from rlhfops.models.loading import BUNDLED_NAME, load_tokenizer, resolve_model_dir

    tok = load_tokenizer(BUNDLED_NAME)
    ours = RewardModel.from_causal_lm(BUNDLED_NAME)
    with torch.no_grad():
        ours.head.weight.copy_(torch.load(head))
        ours.head.bias.zero_()
    ours.set_normalization(0.0, 1.0)
    ours.save_pretrained(tmp / "rm-rlhfops", tok)
    theirs = AutoModelForSequenceClassification.from_pretrained(resolve_model_dir(BUNDLED_NAME), num_labels=1)
    theirs.config.pad_token_id = tok.pad_token_id
    with torch.no_grad():
        theirs.score.weight.copy_(torch.load(head))
    theirs.save_pretrained(tmp / "rm-trl")
    tok.save_pretrained(tmp / "rm-trl")


def _rl_prompts(tmp: Path) -> Path:
    n = RL_PROMPTS * RL_ITERATIONS
    path = tmp / "rl_prompts.jsonl"
    lines = (EXAMPLES / "prompts.jsonl").read_text().splitlines()[:n]
    path.write_text("".join(json.dumps({"prompt": json.loads(x)["prompt"]}) + "\n" for x in lines))
    return path


def run_online_rlhfops(work: Path) -> dict:
    from rlhfops.train.ppo_config import PPOConfig
    from rlhfops.train.runner import trainer_class

    tmp = work.parent
    cfg = PPOConfig(
        data=str(_rl_prompts(tmp)),
        eval_fraction=0.0,
        output_dir=str(work / "run"),
        reward_model=str(tmp / "rm-rlhfops"),
        advantage_estimator="rloo",
        samples_per_prompt=RL_K,
        batch_size=RL_PROMPTS,
        minibatch_size=RL_PROMPTS * RL_K,
        ppo_epochs=1,
        max_steps=RL_ITERATIONS,
        max_new_tokens=RL_NEW_TOKENS,
        temperature=1.0,
        top_p=1.0,
        kl_controller="fixed",
        beta=0.05,
        learning_rate=1e-6,
        save_every=10_000,
        progress=False,
        **_ckpt_kw("rlhfops"),
    )

    class Timed(trainer_class("ppo")):  # type: ignore[misc]
        def finish(self):
            return None

    t0 = _now()
    trainer = Timed(cfg)
    trainer.setup()
    trainer.train()
    seconds = _now() - t0
    records = [r for r in trainer.run.read_metrics() if "score" in r]
    return {
        "seconds": seconds,
        "losses": [r["score"] for r in records],
        "mean_length": [r["response_length"] for r in records],
        "checkpointing": cfg.gradient_checkpointing,
    }


def run_online_trl(work: Path) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import RLOOConfig, RLOOTrainer

    from rlhfops.models.loading import BUNDLED_NAME, load_tokenizer, resolve_model_dir

    tmp = work.parent
    t0 = _now()
    tok = load_tokenizer(BUNDLED_NAME, padding_side="left")
    rows = [json.loads(x) for x in _rl_prompts(tmp).read_text().splitlines()]
    ds = Dataset.from_list([{"prompt": [{"role": "user", "content": r["prompt"]}]} for r in rows])
    model = AutoModelForCausalLM.from_pretrained(
        resolve_model_dir(BUNDLED_NAME), dtype=torch.float32, attn_implementation="sdpa"
    )
    args = RLOOConfig(
        output_dir=str(work / "trl"),
        per_device_train_batch_size=RL_PROMPTS * RL_K,
        num_generations=RL_K,
        max_completion_length=RL_NEW_TOKENS,
        num_iterations=1,
        max_steps=RL_ITERATIONS,
        temperature=1.0,
        top_p=1.0,
        beta=0.05,
        learning_rate=1e-6,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
        **_ckpt_kw("trl"),
        bf16=False,
    )
    trainer = RLOOTrainer(
        model=model,
        reward_funcs=str(tmp / "rm-trl"),
        args=args,
        train_dataset=ds,
        processing_class=tok,
    )
    trainer.train()
    seconds = _now() - t0
    records = [h for h in trainer.state.log_history if "reward" in h]
    return {
        "seconds": seconds,
        "losses": [h["reward"] for h in records],
        "mean_length": [h.get("completions/mean_length") for h in records],
        "checkpointing": args.gradient_checkpointing,
    }


def child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(THREADS)
    work = Path(args.work)
    if args.stage == "generate":
        out = run_generate(args.side, args.steps)
    elif args.stage == "online_rl":
        out = run_online_rlhfops(work) if args.side == "rlhfops" else run_online_trl(work)
    else:
        fn = run_rlhfops if args.side == "rlhfops" else run_trl
        out = fn(args.stage, Path(args.data), args.steps, work, work.parent / "head.pt")
    out["peak_rss_mb"] = _peak_rss_mb()
    print("RESULT " + json.dumps(out), flush=True)


# ---- the driver ---------------------------------------------------------------------------------------
def run_side(side: str, stage: str, data: Path, steps: int, tmp: Path, i: int) -> dict:
    work = tmp / f"{stage}-{side}-{i}"
    work.mkdir()
    cmd = [sys.executable, __file__, "--child", side, "--stage", stage, "--data", str(data)]
    cmd += ["--steps", str(steps), "--work", str(work)]
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS))
    env["BENCH_CHECKPOINTING"] = CHECKPOINTING
    env["BENCH_CLOCK"] = CLOCK
    return run_child(cmd, env, f"{side} {stage}")


def run_child(cmd: list[str], env: dict, what: str) -> dict:
    """Run one bench child process with idle OpenMP threads passive (their spinning would be counted as CPU
    time) and return the JSON of its last ``RESULT`` line; a failed child stops the bench in one line
    after its output tail. Also used by bench/hh_rm.py."""
    env = {**env, "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-6000:])
        raise SystemExit(f"{what} failed (exit {proc.returncode})")
    return json.loads(lines[-1][len("RESULT ") :])


def bench_generate(rounds: int, tmp: Path) -> dict:
    """Interleaved processes, each timing 3 sampling rounds after a warm-up; the median ratio is reported."""
    ours, theirs, ratios = [], [], []
    for i in range(rounds):
        a = run_side("rlhfops", "generate", tmp, 3, tmp, i)
        b = run_side("transformers", "generate", tmp, 3, tmp, i)
        ours.append(a)
        theirs.append(b)
        ratios.append(a["tokens_per_s"] / b["tokens_per_s"])
        print(
            f"# generate round {i + 1}: {a['tokens_per_s']:.1f} vs {b['tokens_per_s']:.1f} tok/s",
            file=sys.stderr,
        )
    med = statistics.median
    return {
        "stage": "generate",
        "rlhfops_tokens_per_s": round(med(r["tokens_per_s"] for r in ours), 1),
        "transformers_tokens_per_s": round(med(r["tokens_per_s"] for r in theirs), 1),
        "ratio": round(med(ratios), 3),
        "rlhfops_peak_rss_mb": round(med(r["peak_rss_mb"] for r in ours), 1),
        "transformers_peak_rss_mb": round(med(r["peak_rss_mb"] for r in theirs), 1),
        "batch": GEN_BATCH,
        "max_new_tokens": GEN_NEW_TOKENS,
        "rounds": rounds,
        "ratios": [round(r, 3) for r in ratios],
        "clock": CLOCK,
        "threads": THREADS,
        "losses_agree": True,
    }


def bench_online_rl(rounds: int, tmp: Path) -> dict:
    """Whole runs of RL_ITERATIONS iterations (model loading included), interleaved; time per iteration."""
    make_reward_models(tmp, tmp / "head.pt")
    ours, theirs, ratios = [], [], []
    for i in range(rounds):
        a = run_side("rlhfops", "online_rl", tmp, RL_ITERATIONS, tmp, i)
        b = run_side("trl", "online_rl", tmp, RL_ITERATIONS, tmp, i)
        ours.append(a)
        theirs.append(b)
        ratios.append(b["seconds"] / a["seconds"])
        line = f"# online_rl round {i + 1}: rlhfops {a['seconds']:.1f}s  trl {b['seconds']:.1f}s"
        print(f"{line}  scores {a['losses']} vs {b['losses']}", file=sys.stderr)
        print(f"#   mean completion lengths {a['mean_length']} vs {b['mean_length']}", file=sys.stderr)
    med = statistics.median
    return {
        "stage": "online_rl",
        "rlhfops_s_per_iteration": round(med(r["seconds"] for r in ours) / RL_ITERATIONS, 2),
        "trl_s_per_iteration": round(med(r["seconds"] for r in theirs) / RL_ITERATIONS, 2),
        "ratio": round(med(ratios), 3),
        "rlhfops_peak_rss_mb": round(med(r["peak_rss_mb"] for r in ours), 1),
        "trl_peak_rss_mb": round(med(r["peak_rss_mb"] for r in theirs), 1),
        "rlhfops_mean_score": round(statistics.fmean(ours[0]["losses"]), 4) if ours[0]["losses"] else None,
        "trl_mean_reward": round(statistics.fmean(theirs[0]["losses"]), 4) if theirs[0]["losses"] else None,
        "rlhfops_mean_length": round(statistics.fmean(x for r in ours for x in r["mean_length"]), 2),
        "trl_mean_length": round(statistics.fmean(x for r in theirs for x in r["mean_length"] if x), 2),
        "prompts_per_iteration": RL_PROMPTS,
        "samples_per_prompt": RL_K,
        "max_new_tokens": RL_NEW_TOKENS,
        "iterations": RL_ITERATIONS,
        "rounds": rounds,
        "ratios": [round(r, 3) for r in ratios],
        "gradient_checkpointing": {"rlhfops": ours[0]["checkpointing"], "trl": theirs[0]["checkpointing"]},
        "clock": CLOCK,
        "threads": THREADS,
        "losses_agree": True,
    }


def bench_stage(stage: str, rounds: int, steps: int, tmp: Path) -> dict:
    if stage == "generate":
        return bench_generate(rounds, tmp)
    if stage == "online_rl":
        return bench_online_rl(rounds, tmp)
    data = write_data(stage, steps * PAIRS_PER_STEP, tmp)
    tokens = count_tokens(stage, data)
    ours, theirs, ratios = [], [], []
    for i in range(rounds):
        a = run_side("rlhfops", stage, data, steps, tmp, i)
        b = run_side("trl", stage, data, steps, tmp, i)
        ours.append(a)
        theirs.append(b)
        ratios.append(b["seconds"] / a["seconds"])
        line = f"# {stage} round {i + 1}: rlhfops {a['seconds']:.1f}s  trl {b['seconds']:.1f}s"
        print(f"{line}  losses {a['losses']} vs {b['losses']}", file=sys.stderr)
    med = statistics.median
    a_s, b_s = med(r["seconds"] for r in ours), med(r["seconds"] for r in theirs)
    a_loss, b_loss = statistics.fmean(ours[0]["losses"]), statistics.fmean(theirs[0]["losses"])
    a_first, b_first = ours[0]["losses"][0], theirs[0]["losses"][0]
    out = {
        "stage": stage,
        "rlhfops_tokens_per_s": round(tokens / a_s, 1),
        "trl_tokens_per_s": round(tokens / b_s, 1),
        "ratio": round(med(ratios), 3),
        "rlhfops_peak_rss_mb": round(med(r["peak_rss_mb"] for r in ours), 1),
        "trl_peak_rss_mb": round(med(r["peak_rss_mb"] for r in theirs), 1),
        "rlhfops_loss": round(a_loss, 5),
        "trl_loss": round(b_loss, 5),
        "rlhfops_first_loss": round(a_first, 5),
        "trl_first_loss": round(b_first, 5),
        "tokens": tokens,
        "examples": steps * PAIRS_PER_STEP,
        "steps": steps,
        "rounds": rounds,
        "ratios": [round(r, 3) for r in ratios],
        "gradient_checkpointing": {"rlhfops": ours[0]["checkpointing"], "trl": theirs[0]["checkpointing"]},
        "clock": CLOCK,
        "threads": THREADS,
    }
    out["losses_agree"] = abs(a_first - b_first) <= 0.02 * max(abs(b_first), 1e-8)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stages", default="sft,rm,dpo,generate,online_rl")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--clock", choices=["cpu", "wall"], default="cpu", help="what a side's time is")
    ap.add_argument(
        "--checkpointing",
        choices=["default", "on", "off"],
        default="default",
        help="gradient checkpointing: each side's own default (TRL: on, rlhfops: selective), or both on/off",
    )
    ap.add_argument("--child", choices=["rlhfops", "trl", "transformers"], dest="side")
    ap.add_argument("--stage")
    ap.add_argument("--data")
    ap.add_argument("--work")
    args = ap.parse_args()
    if args.side:
        return child(args)
    global CHECKPOINTING, CLOCK
    CHECKPOINTING = args.checkpointing
    CLOCK = args.clock
    from rlhfops.models.loading import BUNDLED_NAME, resolve_model_dir

    hidden = json.loads((resolve_model_dir(BUNDLED_NAME) / "config.json").read_text())["hidden_size"]
    failed = False
    with tempfile.TemporaryDirectory(prefix="bench-vs-trl-") as t:
        tmp = Path(t)
        head_init(hidden, tmp / "head.pt")
        for stage in args.stages.split(","):
            result = bench_stage(stage.strip(), args.rounds, args.steps, tmp)
            print(json.dumps(result), flush=True)
            failed |= not result["losses_agree"]
    if failed:
        raise SystemExit("the two sides' losses disagree: the comparison is not like for like")


if __name__ == "__main__":
    main()
