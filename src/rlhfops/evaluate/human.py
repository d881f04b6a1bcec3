"""Side-by-side judged by people, through the annotation queue (Play 5 with the raters of Play 3).

Two steps, because people take days:

1. :func:`queue_side_by_side` -- both models answer the prompts (greedy, as in ``eval run``); every
   prompt whose two replies differ becomes a comparison item in the annotation queue, batch
   ``sbs-<candidate>-vs-<baseline>``, with the candidate's reply stored as ``response_a``. The queue
   shows each rater the two replies at a random left/right position and records it (the ``swapped``
   flag of the assignment), which is the position-bias control for people: a rater who always picks
   the left reply adds noise, not a win for either model. Items carry ``meta.side_by_side`` and are
   kept out of ``prefs export`` (evaluation comparisons must not leak into training data). Prompts
   whose two replies are identical are not queued: nobody can tell them apart; they are counted as
   ties when the result is collected.
2. :func:`collect_side_by_side` -- once raters have labelled the batch, each item's labels are scored
   for the candidate (A = 1, tie or both bad = 1/2, B = 0; skips ignored) and averaged over its raters;
   the item is a win above 1/2, a loss below, a tie at exactly 1/2. The win/tie/loss counts give the
   same ``win_rate`` block (ties as half-wins, 95% interval) the judge path writes
   (:mod:`rlhfops.evaluate.stats`), so the gate reads a human comparison and a judge comparison alike.
   ``first_position_share`` is the share of decided labels that picked the reply shown on the left
   (0.5 for raters without position bias). Reward-hacking alarms compare the two models' replies, with
   the raters' item scores as the judge: reward up while people do not prefer the candidate fires
   ``reward_up_judge_flat``.

The result is stored like any evaluation (an ``evaluation`` artifact, kind ``side_by_side``, judge
``human``), ``complete`` only when every queued item has its ``k`` labels (``--partial`` stores an
incomplete one, which the gate refuses to count as complete).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from rlhfops.annotate.settings import annotation_settings
from rlhfops.errors import UserError
from rlhfops.evaluate.generation import LoadedModel
from rlhfops.evaluate.run import EvalResult, _store, limit_items, prompt_set_digest, resolve_model
from rlhfops.judge.reward_model import RewardModelJudge
from rlhfops.redteam.suite import load_suite

SCORE = {"A": 1.0, "tie": 0.5, "both_bad": 0.5, "B": 0.0}


@dataclass(frozen=True)
class QueuedComparison:
    batch: str
    queued: int
    already_queued: int
    identical: int
    k: int


def batch_name(candidate_id: str, baseline_id: str) -> str:
    return f"sbs-{candidate_id[:12]}-vs-{baseline_id[:12]}"


def queue_side_by_side(
    ws: Any,
    candidate: str,
    baseline: str,
    prompts: str,
    *,
    k: int | None = None,
    batch: str | None = None,
    reward_model: str | None = None,
    max_new_tokens: int = 128,
    limit: int | None = None,
    seed: int = 0,
) -> QueuedComparison:
    """Generate both models' replies to ``prompts`` and queue the pairs for the raters."""
    from rlhfops.annotate.queue import PairIn, queue_pairs

    cand_ref, base_ref = resolve_model(candidate, ws), resolve_model(baseline, ws)
    for ref, given in ((cand_ref, candidate), (base_ref, baseline)):
        if ref.artifact_id is None:
            raise UserError(
                f"{given}: not a registered model artifact; give its id (`rlhfops train` registers the "
                "models it trains, `rlhfops artifact add base-model` a starting model)"
            )
    suite = load_suite(prompts)
    items = limit_items(suite, limit)
    texts = [it.prompt for it in items]
    cand = LoadedModel.load(cand_ref.path).respond(texts, max_new_tokens, seed=seed)
    base = LoadedModel.load(base_ref.path).respond(texts, max_new_tokens, seed=seed)
    rew_c = rew_b = None
    if reward_model:
        rm = RewardModelJudge(reward_model)
        rew_c, rew_b = rm.scores(texts, cand), rm.scores(texts, base)
    name = batch or batch_name(cand_ref.artifact_id, base_ref.artifact_id)
    pairs, identical = [], 0
    for i, (it, c, b) in enumerate(zip(items, cand, base, strict=True)):
        meta: dict[str, Any] = {
            "side_by_side": True,
            "candidate": cand_ref.artifact_id,
            "baseline": base_ref.artifact_id,
            "suite": suite.name,
            "id": it.id,
        }
        if rew_c is not None and rew_b is not None:
            meta["reward"], meta["baseline_reward"] = rew_c[i], rew_b[i]
        if c.strip() == b.strip():
            identical += 1
            meta["identical"] = True
        pairs.append(PairIn(it.prompt, c, b, None, meta))
    differing = [p for p in pairs if not p.meta.get("identical")]
    if not differing:
        raise UserError(
            f"side-by-side: the two models gave identical replies to all {len(pairs)} prompts; "
            "nothing to judge"
        )
    overlap = k or annotation_settings(ws).overlap
    added, skipped = queue_pairs(ws, differing, name, overlap)
    _remember_identical(ws, name, [p for p in pairs if p.meta.get("identical")])
    return QueuedComparison(name, added, skipped, identical, overlap)


def _remember_identical(ws: Any, batch: str, pairs: list[Any]) -> None:
    """Identical-reply prompts are stored as closed items (never assigned) so collection counts them."""
    from rlhfops.annotate.queue import _new_item, item_key
    from rlhfops.annotate.tx import transaction
    from rlhfops.workspace import annotation_tables as m

    with transaction(ws) as s:
        for p in pairs:
            key = item_key("pair", p.prompt, p.response_a, p.response_b, f"identical:{batch}")
            if s.scalar(sa.select(m.Item.id).where(m.Item.key == key)) is not None:
                continue
            item = _new_item("pair", key, p.prompt, p.response_a, p.response_b, batch, 0, p.meta)
            item.is_open = False  # never assigned: there is nothing to choose between
            s.add(item)


def item_outcome(choices: list[str]) -> tuple[str, float] | None:
    """(outcome, mean score) for the candidate (``response_a``) from its raters' canonical choices."""
    scores = [SCORE[c] for c in choices if c in SCORE]
    if not scores:
        return None
    mean = sum(scores) / len(scores)
    return ("win" if mean > 0.5 else "loss" if mean < 0.5 else "tie"), mean


def collect_side_by_side(ws: Any, batch: str, partial: bool = False) -> Any:
    """Win rates from the batch's human labels, stored as a side-by-side evaluation artifact."""
    from rlhfops.annotate.tx import transaction
    from rlhfops.evaluate.hacking import evaluation_alarms, response_stats
    from rlhfops.evaluate.stats import count_outcomes, win_rate_summary
    from rlhfops.workspace import annotation_tables as m

    with transaction(ws) as s:
        items = list(
            s.scalars(
                sa.select(m.Item)
                .where(m.Item.batch == batch, m.Item.kind == "pair", m.Item.is_gold.is_(False))
                .where(m.Item.calibration_round.is_(None))
                .order_by(m.Item.id)
            ).all()
        )
        items = [it for it in items if (it.meta or {}).get("side_by_side")]
        labels = s.execute(
            sa.select(m.Label.item_id, m.Label.rater, m.Label.choice, m.Label.swapped)
            .where(m.Label.item_id.in_([it.id for it in items]))
            .order_by(m.Label.id)
        ).all()
    if not items:
        raise UserError(
            f"side-by-side batch {batch!r}: no such batch (eval compare --judge human queues one)"
        )
    by_item: dict[int, list[tuple[str, str, bool]]] = {}
    for item_id, rater, choice, swapped in labels:
        by_item.setdefault(item_id, []).append((rater, choice, swapped))
    queued = [it for it in items if not it.meta.get("identical")]
    missing = [it for it in queued if sum(c in SCORE for _r, c, _s in by_item.get(it.id, [])) < it.k]
    if missing and not partial:
        raise UserError(
            f"side-by-side batch {batch!r}: {len(missing)} of {len(queued)} pairs still lack their labels "
            f"(item {missing[0].id} first); label them, or pass --partial to store an incomplete result"
        )
    rows: list[dict[str, Any]] = []
    left = decided = 0
    raters: set[str] = set()
    for it in items:
        got = by_item.get(it.id, [])
        res = ("tie", 0.5) if it.meta.get("identical") else item_outcome([c for _r, c, _s in got])
        if res is None:
            continue
        for rater, choice, swapped in got:
            raters.add(rater)
            if choice in ("A", "B"):
                decided += 1
                left += (choice == "A") != swapped  # not swapped: A was on the left
        rows.append(
            {
                "id": it.meta.get("id", str(it.id)),
                "item_id": it.id,
                "prompt": it.prompt,
                "response": it.response_a,
                "baseline_response": it.response_b,
                "outcome": res[0],
                "human_score": res[1],
                "labels": [{"rater": r, "choice": c, "left_was_candidate": not sw} for r, c, sw in got],
                "identical": bool(it.meta.get("identical")),
                **({"reward": it.meta["reward"]} if "reward" in it.meta else {}),
                **({"baseline_reward": it.meta["baseline_reward"]} if "baseline_reward" in it.meta else {}),
            }
        )
    if not rows:
        raise UserError(f"side-by-side batch {batch!r}: no pair has a label yet")
    first = items[0].meta
    summary = win_rate_summary(*count_outcomes([r["outcome"] for r in rows]), judge="human")
    summary.update(
        swapped=True,
        position_control="left/right randomised per rater and recorded",
        first_position_share=left / decided if decided else None,
        raters=sorted(raters),
        n_labels=sum(len(r["labels"]) for r in rows),
    )
    meta: dict[str, Any] = {
        "model": first["candidate"],
        "baseline": first["baseline"],
        "suite": f"human:{batch}",
        "kind": "side_by_side",
        "complete": not missing,
        "n_items": len(rows),
        "n_queued": len(items),
        "batch": batch,
        "win_rate": summary,
    }
    scores = [r["human_score"] for r in rows]
    rewarded = all("reward" in r for r in rows)
    rew_c = [r["reward"] for r in rows] if rewarded else None
    rew_b = [r["baseline_reward"] for r in rows] if rewarded else None
    if rew_c is not None and rew_b is not None:
        meta["reward"] = {"candidate": sum(rew_c) / len(rew_c), "baseline": sum(rew_b) / len(rew_b)}
    meta["alarms"] = evaluation_alarms(
        response_stats([r["response"] for r in rows], rew_c, scores),
        response_stats([r["baseline_response"] for r in rows], rew_b, [1 - x for x in scores]),
    )
    notes = [f"{len(missing)} pair(s) without all their labels (stored as incomplete)"] if missing else []
    result = EvalResult(meta=meta, items=rows, notes=notes)
    digest = prompt_set_digest([[r["id"], r["prompt"], r["response"], r["baseline_response"]] for r in rows])
    _store(result, ws, None, [first["candidate"], first["baseline"]], suite_digest=digest, judge="human")
    return result
