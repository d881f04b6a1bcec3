"""Round two's data with an NLL term on the chosen replies (issue 19; docs/benchmarks.md, Issue 19, sec. 10).

Reproduces section 6's setup with the product's own functions, then adds DPO's ``rpo_alpha`` (Pang et al.
2024): START = the quick demo's round-one DPO model; its failures on the red-team TRAINING half (the first 8
items per category) each paired with the SIMULATED experts' reply for that item (``demo/experts.py``) as
chosen and the failing reply as rejected; scored on the whole red-team HELD-OUT half
(``redteam.detectors.judge_item``) and on the last 32 shipped task prompts
(``evaluate.measure.success_criteria`` with the spec: the main criterion by the policy judge over the 21
at-fault prompts, "refuses a benign request" over all 32). Greedy replies, ``max_new_tokens`` 64 (the full
demo's).

    python bench/r2_nll.py prep START ROUND1_PREFS OUT [N|all]  # OUT/failures.jsonl, OUT/replay.jsonl;
                                                                # N (8) training-half items per category
    python bench/r2_nll.py train START DATA RUN key=value... # `rlhfops train dpo` on DATA from START
    python bench/r2_nll.py score MODEL SPEC OUT.json         # per-category pass rates, criteria, replies

Run outside any workspace (``run_stage`` then records nothing). One torch thread: OMP_NUM_THREADS=1.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

MAX_NEW_TOKENS = 64
PER_CATEGORY = 8  # of the training half, as `eval run --redteam-half train --limit 8` (the full demo)
TASK_PROMPTS = 32  # the last 32 shipped prompts (disjoint from every training file)


def _halves(per_category: int | None = PER_CATEGORY) -> tuple[list, list]:
    """(training-half items, the first ``per_category`` per category or all when None; held-out half)."""
    from rlhfops.redteam.split import split_items
    from rlhfops.redteam.suite import load_suite, shipped_suites

    train, held = [], []
    for name in shipped_suites():
        tr, he = split_items(load_suite(name).items)
        train += [it for it in tr if it.expected][:per_category]
        held += [it for it in he if it.expected]
    return train, held


def _respond(model: str, prompts: list[str]) -> list[str]:
    from rlhfops.evaluate.generation import LoadedModel

    return LoadedModel.load(model).respond(prompts, max_new_tokens=MAX_NEW_TOKENS)


def prep(start: str, round1_prefs: str, out: str, per_category: str = str(PER_CATEGORY)) -> None:
    from rlhfops.demo.experts import expert_reply
    from rlhfops.redteam.detectors import judge_item

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    train, _ = _halves(None if per_category == "all" else int(per_category))
    replies = _respond(start, [it.prompt for it in train])
    failed = [(it, r) for it, r in zip(train, replies, strict=True) if not judge_item(it, r)]
    rows = [
        {"prompt": it.prompt, "chosen": expert_reply(it.category, it.id), "rejected": r} for it, r in failed
    ]
    lines = "".join(json.dumps(r) + "\n" for r in rows)
    (out_dir / "failures.jsonl").write_text(lines, encoding="utf-8")
    replay = Path(round1_prefs).read_text(encoding="utf-8")
    (out_dir / "replay.jsonl").write_text(lines + replay, encoding="utf-8")
    print(
        f"{len(failed)} of {len(train)} training-half items failed:",
        dict(Counter(it.category for it, _ in failed)),
    )
    print(f"replay: {len(rows)} failure pairs + {len(replay.splitlines())} round-one pairs")


def train(start: str, data: str, run: str, *sets: str) -> None:
    from rlhfops.train.runner import run_stage

    common = [f"model={start}", f"data={data}", f"output_dir={run}", "progress=false", "save_every=100000"]
    common += ["max_length=320", "gradient_checkpointing=false", "seed=0"]
    t, c = time.perf_counter(), time.process_time()
    result = run_stage("dpo", None, common + list(sets))
    print(
        json.dumps(
            {
                "eval": result.summary.get("eval"),
                "wall": time.perf_counter() - t,
                "cpu": time.process_time() - c,
            }
        )
    )


def score(model: str, spec_path: str, out: str) -> None:
    from rlhfops.evaluate.measure import category_pass_rates, score_items, success_criteria
    from rlhfops.examples import example_path
    from rlhfops.spec.check import load_spec

    spec = load_spec(spec_path)  # before generating: a bad spec path fails in a second, not after minutes
    t, c = time.perf_counter(), time.process_time()
    _, held = _halves()
    rows = score_items(held, _respond(model, [it.prompt for it in held]))
    task = [
        json.loads(x) for x in example_path("support_replies/prompts.jsonl").read_text().splitlines() if x
    ]
    task = task[-TASK_PROMPTS:]
    prompts = [r["prompt"] for r in task]
    replies = _respond(model, prompts)
    crit = success_criteria(
        spec,
        replies,
        None,
        prompts=prompts,
        criteria=[tuple(r.get("criteria") or ()) or None for r in task],
    )
    by_cat: dict[str, list] = defaultdict(list)
    for r in rows:
        by_cat[r["category"]].append(
            {"prompt": r["prompt"], "response": r["response"], "passed": r["passed"]}
        )
    result = {
        "model": model,
        "redteam_heldout": category_pass_rates(rows),
        "criteria": {k: {x: v[x] for x in ("rate", "n", "ci") if x in v} for k, v in crit.items()},
        "redteam_replies": by_cat,
        "task_replies": [
            {"prompt": p, "response": r, "criteria": t.get("criteria")}
            for p, r, t in zip(prompts, replies, task, strict=True)
        ],
        "score_wall": time.perf_counter() - t,
        "score_cpu": time.process_time() - c,
    }
    Path(out).write_text(json.dumps(result, indent=1), encoding="utf-8")
    rates = {k: f"{v['passed']}/{v['n']}" for k, v in sorted(result["redteam_heldout"].items())}
    print(json.dumps({"redteam": rates, "criteria": {k: (v["rate"], v.get("n")) for k, v in crit.items()}}))


CATEGORIES = [  # the table's column order (section 6's)
    ("harmful_requests", "harmful"),
    ("no_reliable_answer", "no reliable answer"),
    ("false_premise_sycophancy", "false premise"),
    ("prompt_injection", "injection"),
    ("benign_but_risky_looking", "benign-risky"),
    ("adversarial_client", "adversarial"),
]


def table(*paths: str) -> None:
    """One markdown row per score file: pass rates per category, the criteria, and how degenerate the replies
    are -- refusals outside the harmful category and replies that open with an expert reply (a template or a
    written reply)."""
    from rlhfops.demo.experts import all_replies
    from rlhfops.measures.refusal import is_refusal

    templates = {reply[:40] for reply in all_replies()}  # the templates and the written replies
    head = [name for _, name in CATEGORIES] + [
        "remedy (policy judge)",
        "refuses benign",
        "refusals*",
        "templates*",
    ]
    print("| model | " + " | ".join(head) + " |")
    for path in paths:
        r = json.loads(Path(path).read_text(encoding="utf-8"))
        rt, crit = r["redteam_heldout"], r["criteria"]
        cells = [f"{rt[c]['passed']}/{rt[c]['n']} = {rt[c]['rate']:.0%}" for c, _ in CATEGORIES]
        for k in ("apologises and offers a remedy when the shop is at fault", "refuses a benign request"):
            cells.append(f"{round(crit[k]['rate'] * crit[k]['n'])}/{crit[k]['n']} = {crit[k]['rate']:.0%}")
        replies = [
            x["response"] for c, xs in r["redteam_replies"].items() if c != "harmful_requests" for x in xs
        ]
        replies += [x["response"] for x in r["task_replies"]]
        cells.append(f"{sum(map(is_refusal, replies))}/{len(replies)}")
        every = replies + [x["response"] for x in r["redteam_replies"]["harmful_requests"]]
        cells.append(f"{sum(x[:40] in templates for x in every)}/{len(every)}")
        print(f"| {Path(path).stem} | " + " | ".join(cells) + " |")
    print("* refusals: replies with a refusal phrase among the 90 red-team replies outside harmful requests")
    print("  and the 32 task replies; templates: replies that open with an expert reply, template or written")
    print("  (its first 40 characters; all 139 replies)")


if __name__ == "__main__":
    {"prep": prep, "train": train, "score": score, "table": table}[sys.argv[1]](*sys.argv[2:])
