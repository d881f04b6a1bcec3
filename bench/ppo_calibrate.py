"""Calibrate the RL stage on the bundled model: does PPO move the held-out reward-model score over SFT?

Reuses only the product's public API: ``rlhfops.train.runner.run_stage`` for SFT, the reward model and
PPO; ``rlhfops.evaluate.generation`` for replies and KL; ``rlhfops.train.reward_sources`` for scores;
``rlhfops.redteam.detectors`` for the spec's main criterion ("apologises and offers a remedy").

    python bench/ppo_calibrate.py prep --out /tmp/ppocal          # SFT (20 steps) + RM (16 steps), once
    python bench/ppo_calibrate.py ppo --out /tmp/ppocal --name rloo1 --set advantage_estimator=rloo ...

``prep`` trains the SFT model on the shipped demonstrations and a reward model from it on the shipped
preference pairs (the full demo's sizes: batch 8, 320 tokens). ``ppo`` runs one RL stage from the SFT
model with the given overrides (prompts: the first 48 shipped prompts; held-out: the last 32), then
scores SFT and the PPO model on the 32 held-out prompts: the reward model's score of greedy replies and
of ``--samples`` sampled replies per prompt, the paired difference with its 95% Student-t interval, the
remedy rate (Wilson interval), the share of looping replies, and the KL to SFT (k3, nats per reply).
Prints one JSON line and writes ``<out>/<name>/result.json`` with wall and CPU seconds and replies.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

HELDOUT = 32
TRAIN_PROMPTS = 48
SFT_STEPS = int(os.environ.get("CAL_SFT_STEPS", 20))  # the full demo: 20 SFT steps, 16 RM steps
RM_STEPS = int(os.environ.get("CAL_RM_STEPS", 16))


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def _write_prompts(path: Path, prompts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts), encoding="utf-8")
    return path


def prompts() -> tuple[list[str], list[str]]:
    from rlhfops.examples import example_path

    rows = [r["prompt"] for r in _rows(example_path("support_replies/prompts.jsonl"))]
    return rows[:TRAIN_PROMPTS], rows[-HELDOUT:]


def heldout_criteria() -> list:
    """The held-out prompts' ``criteria`` (None: every behaviour; prompts where the shop is not at fault
    measure only the refusal criterion)."""
    from rlhfops.examples import example_path

    rows = _rows(example_path("support_replies/prompts.jsonl"))[-HELDOUT:]
    return [tuple(r["criteria"]) if "criteria" in r else None for r in rows]


def bundled_spec():
    """The support-replies spec `rlhfops init` writes (its policy section and success criteria)."""
    import yaml

    import rlhfops.spec
    from rlhfops.spec.schema import TaskSpec

    raw = yaml.safe_load(
        (Path(rlhfops.spec.__file__).parent / "templates" / "support_replies.yaml").read_text()
    )
    raw.pop("edge_cases", None)
    return TaskSpec(**raw)


def prep(out: Path) -> dict:
    from rlhfops.examples import example_path
    from rlhfops.train.runner import run_stage

    out.mkdir(parents=True, exist_ok=True)
    common = ["progress=false", "save_every=100000", "seed=0", "batch_size=8", "max_length=320"]
    t, c = time.perf_counter(), time.process_time()
    if not (out / "sft" / "final").is_dir():
        run_stage(
            "sft",
            None,
            [*common, f"data={example_path('support_replies/demos.jsonl')}", "model=smollm2-135m-instruct"]
            + [f"output_dir={out / 'sft'}", f"max_steps={SFT_STEPS}", "learning_rate=3e-5"],
        )
    if not (out / "rm" / "final").is_dir():
        run_stage(
            "rm",
            None,
            [*common, f"data={example_path('support_replies/prefs.jsonl')}", f"model={out / 'sft' / 'final'}"]
            + [f"output_dir={out / 'rm'}", f"max_steps={RM_STEPS}", "learning_rate=2e-5"],
        )
    return {"prep_wall_s": round(time.perf_counter() - t, 1), "prep_cpu_s": round(time.process_time() - c, 1)}


def score_models(out: Path, ppo_dir: Path, samples: int, max_new_tokens: int) -> dict:
    import numpy as np
    import torch

    from rlhfops.evaluate.generation import LoadedModel, mean_kl
    from rlhfops.evaluate.measure import success_criteria
    from rlhfops.measures.diversity import looping_share
    from rlhfops.measures.intervals import t_interval, wilson_interval
    from rlhfops.redteam.detectors import apologises_with_remedy
    from rlhfops.train.reward_sources import ModelReward, Responses

    _, held = prompts()
    spec, crit = bundled_spec(), heldout_criteria()
    sft = LoadedModel.load(str(out / "sft" / "final"))
    ppo = LoadedModel.load(str(ppo_dir))
    rm = ModelReward(str(out / "rm" / "final"), "cpu", sft.tokenizer.pad_token_id)
    ids = sft.prompt_ids(held)

    def replies(m: LoadedModel, temperature: float, seed: int) -> tuple[list[str], list[float]]:
        texts, scores = [], []
        for lo in range(0, len(ids), 8):
            o = m._run(ids[lo : lo + 8], max_new_tokens, temperature, seed + lo)
            mask = o.response_mask.bool()
            resp = [o.response_ids[i][mask[i]].tolist() for i in range(len(mask))]
            texts += m.decode(o)
            with torch.no_grad():
                scores += rm.score(Responses(ids[lo : lo + 8], resp, m.decode(o))).tolist()
        return texts, scores

    res: dict = {}
    per_model: dict[str, dict] = {}
    for name, m in (("sft", sft), ("ppo", ppo)):
        g_txt, g_sc = replies(m, 0.0, 0)
        s_sc = []
        for s in range(samples):
            s_sc.append(replies(m, 1.0, 1000 * (s + 1))[1])
        per_model[name] = {"greedy": g_sc, "sampled": np.mean(s_sc, axis=0).tolist(), "texts": g_txt}
        k = sum(apologises_with_remedy(t) for t in g_txt)
        sc = success_criteria(spec, g_txt, None, None, held, crit)[spec.policy.criterion]
        res[name] = {
            "policy_judge": sc["rate"],
            "policy_judge_ci": sc["ci"],
            "policy_judge_n": sc["n"],
            "rm_greedy": float(np.mean(g_sc)),
            "rm_sampled": float(np.mean(s_sc)),
            "remedy": k / len(g_txt),
            "remedy_ci": list(wilson_interval(k, len(g_txt))),
            "looping_share": looping_share(g_txt),
        }
    for kind in ("greedy", "sampled"):
        d = np.asarray(per_model["ppo"][kind]) - np.asarray(per_model["sft"][kind])
        res[f"diff_{kind}"] = float(d.mean())
        res[f"diff_{kind}_ci"] = list(t_interval(d))
    res["kl_to_sft_k3"] = mean_kl(ppo, sft, held[:16], max_new_tokens, seed=7)
    res["replies"] = [
        {"prompt": p, "sft": a, "ppo": b}
        for p, a, b in zip(held, per_model["sft"]["texts"], per_model["ppo"]["texts"], strict=True)
    ]
    return res


def run_ppo(out: Path, name: str, sets: list[str], samples: int) -> dict:
    from rlhfops.train.rundir import RunDir
    from rlhfops.train.runner import run_stage

    train, held = prompts()
    data = _write_prompts(out / "ppo_prompts.jsonl", train)
    hfile = _write_prompts(out / "heldout_prompts.jsonl", held[:16])  # in-run evaluation: 16 prompts
    base = {
        "data": data,
        "model": out / "sft" / "final",
        "reward_model": out / "rm" / "final",
        "output_dir": out / name,
        "eval_prompts": hfile,
        "progress": "false",
        "save_every": 100000,
        "seed": 0,
        "max_length": 320,
    }
    over = dict(s.split("=", 1) for s in sets)
    cfg = {**{k: str(v) for k, v in base.items()}, **over}
    t, c = time.perf_counter(), time.process_time()
    result = run_stage("ppo", None, [f"{k}={v}" for k, v in cfg.items()])
    train_s = {
        "train_wall_s": round(time.perf_counter() - t, 1),
        "train_cpu_s": round(time.process_time() - c, 1),
    }
    t, c = time.perf_counter(), time.process_time()
    mnt = int(over.get("max_new_tokens", 64))
    scores = score_models(out, Path(result.run_dir) / "final", samples, mnt)
    curve = [
        {
            k: r.get(k)
            for k in ("step", "score", "kl", "beta", "response_length", "distinct_2", "repeated_4gram")
        }
        for r in RunDir(result.run_dir).read_metrics()
        if r.get("step", 0) >= 1
    ]
    return {
        "name": name,
        "sets": over,
        **train_s,
        "score_wall_s": round(time.perf_counter() - t, 1),
        "score_cpu_s": round(time.process_time() - c, 1),
        "curve": curve,
        "eval": {k: v for k, v in result.summary.get("eval", {}).items() if k != "alarms"},
        "alarms": [a["name"] for a in result.summary.get("eval", {}).get("alarms", [])],
        **scores,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["prep", "ppo"])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--name", default="ppo")
    ap.add_argument("--set", action="append", default=[], help="PPO config override key=value")
    ap.add_argument("--samples", type=int, default=2, help="Sampled replies per held-out prompt")
    args = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.what == "prep":
        print(json.dumps(prep(args.out)))
        return
    res = run_ppo(args.out, args.name, args.set, args.samples)
    (args.out / args.name).mkdir(parents=True, exist_ok=True)
    (args.out / args.name / "result.json").write_text(json.dumps(res, indent=2, default=str))
    print(json.dumps({k: v for k, v in res.items() if k not in ("replies", "curve")}, default=str))


if __name__ == "__main__":
    main()
