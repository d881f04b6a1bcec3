"""SIMULATED parts of `rlhfops demo`: rater labels (Play 3) and a week of production traffic (monitoring).

Nothing here is a human judgement or real traffic. Rater names start with ``sim-`` (from
:mod:`rlhfops.annotate.simulate`), every written row carries ``"simulated": true``, and every summary
says SIMULATED.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rlhfops.annotate.quality import aggregate_pairs, calibration_result, rater_agreement
from rlhfops.annotate.quality_drift import gold_accuracy
from rlhfops.annotate.simulate import SimPair, default_raters, simulate_labels
from rlhfops.datasets import hh_rlhf_harmless_path
from rlhfops.demo_eval import rubric_score

SIMULATED = "SIMULATED"


@dataclass
class LabelOutcome:
    """What the simulated annotation produced (all SIMULATED)."""

    prefs_path: Path
    n_items: int
    n_labels: int
    kept: int
    dropped: dict[str, int]
    alpha: float | None
    percent_agreement: float | None
    calibration: dict[str, Any]
    per_rater: dict[str, float | None]
    agreement_over_time: dict[str, list[tuple[str, float | None]]]  # rater -> [(batch, with majority)]
    gold: dict[str, list[tuple[str, float]]]  # rater -> [(batch, gold accuracy)]
    flagged: list[str]
    drifting: list[str]
    simulated: bool = True
    notes: list[str] = field(default_factory=list)


def candidate_items(
    prompts: list[str], samples: list[str], shipped: list[dict[str, Any]], seed: int = 0
) -> list[dict[str, Any]]:
    """Comparison items: pairs of SFT samples (2 per prompt, in order) plus shipped chosen/rejected pairs
    shown in a random order. Each item: id, prompt, a, b, strength (rubric score of a minus b)."""
    rng = random.Random(seed)
    items = []
    for i, p in enumerate(prompts):
        a, b = samples[2 * i], samples[2 * i + 1]
        items.append({"id": f"sft-{i}", "prompt": p, "a": a, "b": b, "source": "sft-samples"})
    for j, row in enumerate(shipped):
        a, b = row["chosen"], row["rejected"]
        if rng.random() < 0.5:
            a, b = b, a
        items.append({"id": f"shipped-{j}", "prompt": row["prompt"], "a": a, "b": b, "source": "shipped"})
    for it in items:
        it["strength"] = rubric_score(it["a"]) - rubric_score(it["b"])
    return items


def label_items(
    items: list[dict[str, Any]],
    gold_rows: list[dict[str, Any]],
    out: Path,
    *,
    n_raters: int = 6,
    k: int = 3,
    batch_size: int = 20,
    calibration_n: int = 12,
    seed: int = 0,
) -> LabelOutcome:
    """Calibration round, then production labelling with blind gold items, then the export rule.

    Writes ``out`` (JSONL: prompt, chosen, rejected, agreement, simulated) and ``labels.jsonl`` beside it.
    """
    raters = default_raters(n=n_raters, drifting=1, seed=seed, drift=0.15)
    pairs = [SimPair(it["id"], float(it["strength"])) for it in items]
    # calibration round: the same pairs for every rater (k = all raters), no gold
    cal_pairs = [SimPair(f"cal-{p.item}", p.strength) for p in pairs[:calibration_n]]
    cal = simulate_labels(
        cal_pairs, raters, k=len(raters), batch_size=len(cal_pairs), gold_per_batch=0, seed=seed
    )
    cres = calibration_result(cal.labels)
    gold_pairs = [SimPair(f"gold-{j}", 3.0) for j in range(len(gold_rows))]
    n_batches = max(1, -(-len(pairs) // batch_size))
    per_batch = max(1, min(5, len(gold_pairs) // n_batches))
    sim = simulate_labels(
        pairs,
        raters,
        k=k,
        batch_size=batch_size,
        gold_pairs=gold_pairs,
        gold_per_batch=per_batch,
        seed=seed + 1,
    )
    prod = [lab for lab in sim.labels if not lab.is_gold]
    agg = aggregate_pairs(prod, tie="drop", both_bad="drop")
    ra = rater_agreement(prod)
    gold = gold_accuracy(sim.labels, sim.gold, window="batch", min_gold=max(2, per_batch))
    by_id = {it["id"]: it for it in items}
    rows = []
    for p in agg.pairs:
        if not p.kept:
            continue
        it = by_id[p.item]
        chosen, rejected = (it["a"], it["b"]) if p.choice == "A" else (it["b"], it["a"])
        rows.append(
            {
                "prompt": it["prompt"],
                "chosen": chosen,
                "rejected": rejected,
                "agreement": p.agreement,
                "n_labels": p.n_labels,
                "source": it["source"],
                "simulated": True,
            }
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    labels_file = out.with_name("labels.jsonl")
    labels_file.write_text(
        "".join(
            json.dumps(
                {
                    "item": str(lab.item),
                    "rater": lab.rater,
                    "choice": lab.choice,
                    "at": lab.at.isoformat(),
                    "batch": lab.batch,
                    "gold": lab.is_gold,
                    "simulated": True,
                }
            )
            + "\n"
            for lab in [*cal.labels, *sim.labels]
        ),
        encoding="utf-8",
    )
    per_rater = {r.rater: r.with_majority for r in ra.per_rater}
    over_time: dict[str, list[tuple[str, float | None]]] = {}
    for b in sorted({lab.batch for lab in prod}, key=lambda x: int(x.rsplit("-", 1)[-1])):
        rep = rater_agreement([lab for lab in prod if lab.batch == b])
        for r in rep.per_rater:
            over_time.setdefault(r.rater, []).append((b, r.with_majority))
    return LabelOutcome(
        prefs_path=out,
        n_items=len(items),
        n_labels=len(sim.labels) + len(cal.labels),
        kept=agg.kept,
        dropped=agg.dropped,
        alpha=agg.alpha,
        percent_agreement=agg.percent_agreement,
        calibration={
            "status": cres.status,
            "overall": getattr(cres, "overall", None),
            "message": cres.message,
            "split_items": len(cres.split_items),
            "simulated": True,
        },
        per_rater=per_rater,
        agreement_over_time=over_time,
        gold={r.rater: [(w.key, w.accuracy) for w in r.windows] for r in gold.raters},
        flagged=gold.flagged,
        drifting=[r.name for r in raters if r.drift > 0],
    )


def production_week(
    support: list[tuple[str, str]],
    other: list[tuple[str, str]],
    model_id: str,
    out: Path,
    *,
    per_day: int = 40,
    days: int = 7,
    drift_from_day: int = 4,
    drift_share: float = 0.6,
    seed: int = 0,
    start: datetime | None = None,
    respond: Callable[[list[str]], list[str]] | None = None,
) -> Path:
    """SIMULATED production log (JSONL): ``per_day`` requests a day for ``days`` days; from
    ``drift_from_day`` on, ``drift_share`` of the prompts come from another task (``other``). Rows use
    each (prompt, response) once before any repeats. With ``respond`` the responses given are ignored and
    ``respond`` is called once with the prompts the rows use (so no reply is generated for nothing).
    Business fields are simulated too: task completion and review minutes worse on drifted prompts."""
    rng = random.Random(seed)
    queues = {False: list(support), True: list(other)}
    for q in queues.values():
        rng.shuffle(q)
    start = start or datetime.now(UTC).replace(microsecond=0) - timedelta(days=days)
    rows = []
    for d in range(days):
        for i in range(per_day):
            drifted = d + 1 >= drift_from_day and rng.random() < drift_share
            q = queues[drifted] or list(other if drifted else support)  # each row once, then repeat
            queues[drifted] = q
            prompt, response = q.pop()
            rows.append(
                {
                    "id": f"sim-{d}-{i}",
                    "prompt": prompt,
                    "response": response,
                    "model_id": model_id,
                    "time": (start + timedelta(days=d, minutes=i * (1440 // per_day))).isoformat(),
                    "task_completed": rng.random() < (0.35 if drifted else 0.8),
                    "review_minutes": round(rng.uniform(3, 9) if drifted else rng.uniform(0.5, 3), 2),
                    "client_flag": rng.random() < (0.15 if drifted else 0.03),
                    "simulated": True,
                }
            )
    if respond is not None:
        used = list(dict.fromkeys(r["prompt"] for r in rows))
        replies = dict(zip(used, respond(used), strict=True))
        for r in rows:
            r["response"] = replies[r["prompt"]]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return out


def other_task_prompts(n: int, seed: int = 0) -> list[str]:
    """First human turns of the bundled HH-RLHF harmless slice (another task: open-domain chat)."""
    path = hh_rlhf_harmless_path()
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            text = json.loads(line)["chosen"]
            first = text.split("\n\nHuman: ", 1)[-1].split("\n\nAssistant:", 1)[0].strip()
            if 3 <= len(first.split()) <= 60:
                out.append(first)
            if len(out) >= n * 3:
                break
    random.Random(seed).shuffle(out)
    return out[:n]
