"""Benchmark (issue 21): rlhfops' reward model vs TRL 1.16's RewardTrainer on real human preferences.

Data: Anthropic's HH-RLHF harmless slice shipped in the package (1,500 rows, MIT; ``--data`` for another
copy), imported with rlhfops' own ``data import --format hh-rlhf`` function. Rows whose chosen or rejected
conversation (prompt + reply through the chat template) is longer than ``--max-length`` tokens are left out
before the split -- TRL's RewardTrainer filters exactly those -- so both sides train on the same rows, whole
(rlhfops runs with ``truncation=drop`` and the script fails if it drops a row). The first ``--train-pairs``
fitting rows train, the last ``--eval-pairs`` fitting rows are held out (so more training pairs never
touch the held-out set).

Both sides: the same model (the bundled SmolLM2-135M-Instruct, or ``--model DIR``), the same starting reward
head (bench/vs_trl.py's ``head_init``), one epoch of ``steps = train_pairs / batch`` optimizer steps over the
same batches in the same order (vs_trl's ``_trl_rows``: TRL samples sequentially in rlhfops' seeded order),
the same learning rate (linear decay, no warm-up), batch, max_length and seed, float32, one torch thread.
Each side runs with its own defaults otherwise (vs_trl's convention: TRL pads and checkpoints whole layers;
rlhfops packs, shares each pair's prompt and checkpoints selectively). The TRL side is built by vs_trl's
``trl_args`` / ``trl_trainer``, the rlhfops side by vs_trl's ``rlhfops_config`` / ``timed_trainer_class``.

Held-out accuracy: share of held-out pairs whose chosen reply scores strictly above the rejected one, each
side scoring with its own model forward (rlhfops: ``RewardTrainer.score_rows``; TRL: its eval dataloader and
sequence-classification head); the 95% interval is ``rlhfops.measures.intervals.wilson_interval``. The
learning curve is the same accuracy at ``--checkpoints`` (pairs seen; default 0, half, all), measured in the
first round only; evaluation time is excluded from the timed part.

Time: wall seconds AND CPU seconds (user + system of the child process) of everything after the imports:
loading model and tokenizer, tokenising, training. Every run is a fresh subprocess; the sides are interleaved
(rlhfops, TRL, rlhfops, TRL, ...) and ``ratio_*`` is the median over rounds of TRL seconds / rlhfops seconds
(> 1: rlhfops is faster). ``target_met``: rlhfops' accuracy is not below TRL's interval and both ratios > 1.

Experiments (rlhfops only, ``--sides rlhfops``): ``--set lora.enabled=true --set learning_rate=2e-4``,
``--margin 0.5`` (a constant margin in the Bradley-Terry loss, on both sides when both run), more pairs.

Run: ``python bench/hh_rm.py [--quick] [--train-pairs 160] [--eval-pairs 200] [--max-length 256] [--batch 8]
[--lr 2e-5] [--rounds 2] [--checkpoints 0,80,160] [--json OUT]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # vs_trl, beside this file

import vs_trl  # noqa: E402  (after the path)

ROOT = Path(__file__).resolve().parents[1]
QUICK = {"train_pairs": 16, "eval_pairs": 16, "max_length": 192, "checkpoints": "0,16", "rounds": 2}


# ---- clocks ---------------------------------------------------------------------------------------------
def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Clock:
    """Wall and CPU seconds since start, minus the intervals spent inside ``excluded()`` (evaluation)."""

    def __init__(self) -> None:
        self.wall0, self.cpu0 = time.perf_counter(), _cpu()
        self.skip_wall = self.skip_cpu = 0.0

    def excluded(self):
        clock = self

        class _Skip:
            def __enter__(self):
                self.w, self.c = time.perf_counter(), _cpu()

            def __exit__(self, *exc):
                clock.skip_wall += time.perf_counter() - self.w
                clock.skip_cpu += _cpu() - self.c

        return _Skip()

    def read(self) -> dict:
        return {
            "wall_seconds": time.perf_counter() - self.wall0 - self.skip_wall,
            "cpu_seconds": _cpu() - self.cpu0 - self.skip_cpu,
            "eval_wall_seconds": self.skip_wall,
            "eval_cpu_seconds": self.skip_cpu,
        }


def accuracy(chosen, rejected) -> dict:
    """Held-out pairwise accuracy (chosen strictly above rejected) with its 95% Wilson interval."""
    from rlhfops.measures.intervals import wilson_interval

    n = len(chosen)
    correct = int(sum(float(c) > float(r) for c, r in zip(chosen, rejected, strict=True)))
    ties = int(sum(float(c) == float(r) for c, r in zip(chosen, rejected, strict=True)))
    low, high = wilson_interval(correct, n)
    return {"accuracy": correct / n, "ci95": [low, high], "correct": correct, "ties": ties, "pairs": n}


# ---- data -----------------------------------------------------------------------------------------------
def prepare_data(args: argparse.Namespace, tmp: Path) -> dict:
    """Import HH-RLHF with rlhfops' importer, keep rows that fit whole, write train / held-out files."""
    from rlhfops.data.check import import_file
    from rlhfops.data.io import read_rows, write_rows
    from rlhfops.models.loading import load_tokenizer

    imported = tmp / "hh.jsonl"
    report = import_file("hh-rlhf", args.data, imported)
    rows = [r.data for r in read_rows(imported)]
    tok = load_tokenizer(args.model)

    def length(prompt: list, reply: str) -> int:
        text = tok.apply_chat_template(prompt + [{"role": "assistant", "content": reply}], tokenize=False)
        return len(tok(text, add_special_tokens=False)["input_ids"])

    def fits(r: dict) -> bool:
        return max(length(r["prompt"], r["chosen"]), length(r["prompt"], r["rejected"])) <= args.max_length

    # The first train_pairs rows that fit and the last eval_pairs that fit, scanning from each end only as
    # far as needed (tokenising all 1,500 rows took minutes of wall time on the loaded machine).
    front, back, i, j = [], [], 0, len(rows) - 1
    while len(front) < args.train_pairs and i <= j:
        if fits(rows[i]):
            front.append(rows[i])
        i += 1
    while len(back) < args.eval_pairs and j >= i:
        if fits(rows[j]):
            back.append(rows[j])
        j -= 1
    if len(front) < args.train_pairs or len(back) < args.eval_pairs:
        raise SystemExit(
            f"only {len(front) + len(back)} of {len(rows)} rows fit in {args.max_length} tokens; "
            f"{args.train_pairs} + {args.eval_pairs} needed"
        )
    train, held = front, back[::-1]
    if args.margin is not None:
        train = [dict(r, margin=args.margin) for r in train]
    write_rows(tmp / "train.jsonl", train)
    write_rows(tmp / "held.jsonl", held)
    scanned = i + len(rows) - 1 - j
    return {
        "imported": report.written,
        "of": report.total,
        "scanned": scanned,
        "too_long": scanned - len(train) - len(held),
    }


def overrides(pairs: list[str]) -> dict:
    """``key=value`` / ``a.b=value`` (JSON, else YAML values) -> nested dict for the rlhfops config."""
    import yaml

    out: dict = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected key=value")
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        try:  # JSON first: YAML 1.1 reads "2e-4" as a string
            node[leaf] = json.loads(value)
        except ValueError:
            node[leaf] = yaml.safe_load(value)
    return out


# ---- one side, in a fresh process -------------------------------------------------------------------------
def warm_imports(model: str) -> None:
    """The imports both sides need, before the clock: torch, transformers' auto classes, the model's own
    modelling module and tokenizer class (transformers imports these lazily, on first use: on a loaded
    machine that alone took minutes of wall time, and it must not count against whichever side pays first),
    accelerate and datasets."""
    import accelerate  # noqa: F401
    import datasets  # noqa: F401
    import torch  # noqa: F401
    import transformers
    from transformers import AutoConfig, AutoTokenizer

    from rlhfops.models.loading import resolve_model_dir

    path = resolve_model_dir(model)
    config = AutoConfig.from_pretrained(path)
    for name in config.architectures or []:
        for suffix in ("ForCausalLM", "ForSequenceClassification", "Model"):
            getattr(transformers, name.replace("ForCausalLM", suffix), None)
    transformers.AutoModelForCausalLM, transformers.AutoModelForSequenceClassification  # noqa: B018
    AutoTokenizer.from_pretrained(path)  # imports the tokenizer class; the timed part loads it again


def run_rlhfops(spec: dict, work: Path) -> dict:
    import rlhfops.train.reward  # noqa: F401  (imports before the clock)
    import rlhfops.train.runner  # noqa: F401

    tmp = work.parent
    steps, batch = spec["steps"], spec["batch"]
    cfg = vs_trl.rlhfops_config(
        "rm", tmp / "train.jsonl", steps, work, spec["lr"], spec["max_length"], batch,
        eval_data=str(tmp / "held.jsonl"), model=spec["model"], seed=spec["seed"], truncation="drop",
        **overrides(spec["set"]),
    )  # fmt: skip
    at = {p // batch for p in spec["checkpoints"]} if spec["curve"] else set()
    curve: list[dict] = []
    clock = Clock()

    class Curve(vs_trl.timed_trainer_class("rm", tmp / "head.pt")):  # type: ignore[misc]
        def checkpoint(self, step: int) -> None:
            if step in at:
                with clock.excluded():
                    c, r = self.score_rows(self.eval_rows)
                    curve.append({"pairs_seen": step * batch, **accuracy(c, r)})

        def before_train(self) -> None:
            super().before_train()
            self.checkpoint(0)

        def step(self, step: int) -> dict:
            record = super().step(step)
            self.checkpoint(step)
            return record

    trainer = Curve(cfg)
    trainer.setup()
    dropped = {k: v["dropped"] + v.get("replies_cut", 0) for k, v in trainer.truncation.items()}
    if any(dropped.values()) or len(trainer.train_rows) != spec["train_pairs"]:
        raise SystemExit(f"rlhfops did not keep every row whole: {trainer.truncation}")
    trainer.train()
    out = clock.read()
    out["losses"] = [r["loss"] for r in trainer.run.read_metrics() if "loss" in r]
    out["curve"] = curve
    out["checkpointing"] = cfg.gradient_checkpointing
    out["settings"] = effective_settings(cfg, trainer)
    return out


def effective_settings(cfg, trainer) -> dict:
    """What the rlhfops run actually trained with (so a test can see that ``--set`` / ``--margin`` reached
    it): learning rate, LoRA and its rank, whether a margin entered the loss (``use_margin``: the trainer's
    rule, false when the data has no margins whatever the setting; the setting itself is
    ``use_margin_setting``) and the margins on the training rows, and
    the trainable vs all parameters of the model that trained."""
    from rlhfops.train.reward import margin_applies

    params = list(trainer.model.parameters())
    margins = sorted({r.margin for r in trainer.train_rows if r.margin is not None})
    used = margin_applies(cfg.use_margin, trainer.train_rows)  # the trainer's own rule, not the flag alone
    return {
        "learning_rate": cfg.learning_rate,
        "lora": cfg.lora.enabled,
        "lora_r": cfg.lora.r,
        "use_margin": used,  # true only when a margin entered the loss
        "use_margin_setting": cfg.use_margin,
        "margin_note": (
            f"margins {margins} used in the loss"
            if used
            else "margins absent from the data: not used"
            if not margins
            else f"margins {margins} in the data, not used (use_margin=false)"
        ),
        "margins": margins,
        "trainable_params": sum(p.numel() for p in params if p.requires_grad),
        "all_params": sum(p.numel() for p in params),
    }


def run_trl(spec: dict, work: Path) -> dict:
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import RewardTrainer  # noqa: F401  (imports before the clock)

    from rlhfops.models.loading import load_tokenizer, resolve_model_dir

    tmp = work.parent
    steps, batch = spec["steps"], spec["batch"]
    at = {p // batch for p in spec["checkpoints"]} if spec["curve"] else set()
    curve: list[dict] = []
    clock = Clock()
    tok = load_tokenizer(spec["model"])
    train = Dataset.from_list(vs_trl._trl_rows("rm", tmp / "train.jsonl", spec["seed"]))
    held = Dataset.from_list(vs_trl._trl_rows("rm", tmp / "held.jsonl", spec["seed"]))
    common = vs_trl.trl_args(
        work, steps, spec["lr"], spec["max_length"], batch, spec["seed"], per_device_eval_batch_size=batch
    )
    trainer = vs_trl.trl_trainer(
        "rm", resolve_model_dir(spec["model"]), tok, train, common, tmp / "head.pt", eval_dataset=held
    )
    if len(trainer.train_dataset) != spec["train_pairs"] or len(trainer.eval_dataset) != spec["eval_pairs"]:
        raise SystemExit("TRL filtered rows the bench kept: the two sides would not see the same data")

    def checkpoint(step: int, model) -> None:
        if step not in at:
            return
        with clock.excluded():
            model.eval()
            ch, rj = [], []
            with torch.no_grad():
                for b in trainer.get_eval_dataloader():
                    logits = model(
                        input_ids=b["input_ids"], attention_mask=b["attention_mask"], use_cache=False
                    )
                    c, r = logits.logits.squeeze(-1).float().chunk(2)
                    ch += c.tolist()
                    rj += r.tolist()
            model.train()
            curve.append({"pairs_seen": step * batch, **accuracy(ch, rj)})

    class Curve(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kw):
            checkpoint(0, model)

        def on_step_end(self, args, state, control, model=None, **kw):
            checkpoint(state.global_step, model)

    trainer.add_callback(Curve())
    trainer.train()
    out = clock.read()
    out["losses"] = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    out["curve"] = curve
    out["checkpointing"] = trainer.args.gradient_checkpointing
    return out


def child(side: str, work: Path, curve: bool) -> None:
    import torch

    torch.set_num_threads(vs_trl.THREADS)
    spec = json.loads((work.parent / "spec.json").read_text())
    spec["curve"] = curve
    warm_imports(spec["model"])
    out = run_rlhfops(spec, work) if side == "rlhfops" else run_trl(spec, work)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("RESULT " + json.dumps(out), flush=True)


# ---- the driver -------------------------------------------------------------------------------------------
def run_side(side: str, tmp: Path, i: int) -> dict:
    """One whole run of ``side`` in a fresh process; the first round (i = 0) also measures the curve."""
    work = tmp / f"{side}-{i}"
    work.mkdir()
    cmd = [sys.executable, __file__, "--child", side, "--work", str(work)] + (["--curve"] if i == 0 else [])
    env = dict(os.environ, OMP_NUM_THREADS=str(vs_trl.THREADS), MKL_NUM_THREADS=str(vs_trl.THREADS))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    return vs_trl.run_child(cmd, env, side)


def summarise(side: str, runs: list[dict]) -> dict:
    first = runs[0]
    med = statistics.median
    final = first["curve"][-1] if first["curve"] else {}
    return {
        "accuracy": final.get("accuracy"),
        "ci95": final.get("ci95"),
        "curve": first["curve"],
        "wall_seconds": round(med(r["wall_seconds"] for r in runs), 2),
        "cpu_seconds": round(med(r["cpu_seconds"] for r in runs), 2),
        "wall_seconds_each": [round(r["wall_seconds"], 2) for r in runs],
        "cpu_seconds_each": [round(r["cpu_seconds"], 2) for r in runs],
        "eval_cpu_seconds": round(first["eval_cpu_seconds"], 2),
        "first_loss": first["losses"][0] if first["losses"] else None,
        "mean_loss": statistics.fmean(first["losses"]) if first["losses"] else None,
        "peak_rss_mb": round(med(r["peak_rss_mb"] for r in runs), 1),
        "gradient_checkpointing": first["checkpointing"],
        **({"settings": first["settings"]} if "settings" in first else {}),
    }


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke size: " + json.dumps(QUICK))
    ap.add_argument("--model", default=None, help="model directory (default: the bundled model)")
    ap.add_argument("--data", default=None, help="HH-RLHF file (default: the shipped harmless slice)")
    ap.add_argument("--train-pairs", type=int, default=160)
    ap.add_argument("--eval-pairs", type=int, default=200)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8, help="pairs per optimizer step")
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds (A, B, A, B, ...)")
    ap.add_argument(
        "--checkpoints", default=None, help="pairs seen at which to evaluate (default 0,half,all)"
    )
    ap.add_argument("--sides", default="rlhfops,trl")
    ap.add_argument("--margin", type=float, default=None, help="constant Bradley-Terry margin on every pair")
    ap.add_argument("--set", action="append", default=[], help="rlhfops config override key=value (repeat)")
    ap.add_argument("--json", help="also write the result here")
    ap.add_argument("--child", choices=["rlhfops", "trl"], dest="side", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    ap.add_argument("--curve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    return args


def main(argv: list[str] | None = None) -> dict | None:
    args = parse(argv)
    if args.side:
        return child(args.side, Path(args.work), args.curve)
    from rlhfops.datasets import hh_rlhf_harmless_path
    from rlhfops.models.loading import BUNDLED_NAME, resolve_model_dir

    args.model = args.model or BUNDLED_NAME
    args.data = args.data or str(hh_rlhf_harmless_path())
    if args.train_pairs % args.batch:
        raise SystemExit(f"--train-pairs {args.train_pairs} is not a multiple of --batch {args.batch}")
    steps = args.train_pairs // args.batch
    checkpoints = (
        [int(x) for x in args.checkpoints.split(",")]
        if args.checkpoints
        else [0, args.train_pairs // 2 // args.batch * args.batch, args.train_pairs]
    )
    if any(p % args.batch or not 0 <= p <= args.train_pairs for p in checkpoints):
        raise SystemExit(f"--checkpoints {checkpoints}: multiples of --batch within 0..{args.train_pairs}")
    checkpoints = sorted(set(checkpoints) | {args.train_pairs})
    sides = [s.strip() for s in args.sides.split(",")]
    started = dt.datetime.now(dt.UTC)
    load_before = os.getloadavg()
    hidden = json.loads((resolve_model_dir(args.model) / "config.json").read_text())["hidden_size"]
    with tempfile.TemporaryDirectory(prefix="bench-hh-rm-") as t:
        tmp = Path(t)
        vs_trl.head_init(hidden, tmp / "head.pt")
        data = prepare_data(args, tmp)
        spec = {
            "model": args.model, "steps": steps, "batch": args.batch, "lr": args.lr, "seed": args.seed,
            "max_length": args.max_length, "checkpoints": checkpoints, "set": args.set,
            "train_pairs": args.train_pairs, "eval_pairs": args.eval_pairs,
        }  # fmt: skip
        (tmp / "spec.json").write_text(json.dumps(spec))
        runs: dict[str, list[dict]] = {s: [] for s in sides}
        for i in range(args.rounds):
            for side in sides:
                r = run_side(side, tmp, i)
                runs[side].append(r)
                print(f"# run {json.dumps({'side': side, 'round': i + 1, **r})}", file=sys.stderr, flush=True)
                print(
                    f"# round {i + 1} {side}: wall {r['wall_seconds']:.1f} s, cpu {r['cpu_seconds']:.1f} s"
                    + (f", held-out accuracy {r['curve'][-1]['accuracy']:.3f}" if r["curve"] else ""),
                    file=sys.stderr,
                    flush=True,
                )
    out: dict = {
        "benchmark": "hh_rm",
        "date": started.isoformat(timespec="seconds"),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "model": args.model,
        "data": {**data, "train_pairs": args.train_pairs, "eval_pairs": args.eval_pairs},
        "max_length": args.max_length,
        "batch": args.batch,
        "steps": steps,
        "learning_rate": args.lr,
        "seed": args.seed,
        "margin": args.margin,
        "rlhfops_overrides": args.set,
        "rounds": args.rounds,
        "threads": vs_trl.THREADS,
    }
    for side in sides:
        out[side] = summarise(side, runs[side])
    if "rlhfops" in runs and "trl" in runs:
        a, b = runs["rlhfops"], runs["trl"]
        for clock in ("wall", "cpu"):
            ratios = [y[f"{clock}_seconds"] / x[f"{clock}_seconds"] for x, y in zip(a, b, strict=True)]
            out[f"ratio_{clock}"] = round(statistics.median(ratios), 3)
            out[f"ratios_{clock}"] = [round(r, 3) for r in ratios]
        fa, fb = out["rlhfops"]["first_loss"], out["trl"]["first_loss"]
        out["first_losses_agree"] = abs(fa - fb) <= 0.02 * max(abs(fb), 1e-8)
        out["target_met"] = bool(
            out["rlhfops"]["accuracy"] >= out["trl"]["ci95"][0]
            and out["ratio_wall"] > 1
            and out["ratio_cpu"] > 1
        )
    print(json.dumps(out), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
