"""Calibration rounds: the same N pairs for every rater, then agreement, pairwise and overall.

A round copies N production pairs (chosen at random, seeded by the round number) into calibration items;
every rater is served them before anything else. The round is complete when every workspace rater has
labelled all N. Its overall agreement is the percent agreement (share of agreeing rater pairs per item,
averaged over items; :func:`rlhfops.agreement.percent_agreement`); Krippendorff's alpha is reported too.
Under the threshold (default 0.65) the guidelines are too vague: production labelling stays blocked until
a new round passes. While a round is open, production is blocked as well (raters calibrate first).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import sqlalchemy as sa

from rlhfops.annotate import models as m
from rlhfops.annotate.queue import item_key
from rlhfops.errors import UserError
from rlhfops.workspace import db


@dataclass(frozen=True)
class SplitItem:
    item_id: int
    prompt: str
    choices: dict[str, str]  # rater -> canonical choice
    agreement: float


@dataclass
class RoundResult:
    round_id: int
    n_items: int
    threshold: float
    raters: list[str]
    done: dict[str, int]  # rater -> items labelled
    complete: bool
    overall: float | None  # percent agreement
    alpha: float | None
    pairwise: dict[str, float] = field(default_factory=dict)  # "a|b" -> percent agreement
    split_items: list[SplitItem] = field(default_factory=list)

    @property
    def status(self) -> str:
        if not self.complete:
            return "open"
        return "passed" if self.overall is not None and self.overall >= self.threshold else "failed"

    def to_json(self) -> dict[str, Any]:
        return {
            "round": self.round_id,
            "status": self.status,
            "n_items": self.n_items,
            "threshold": self.threshold,
            "raters": self.raters,
            "done": self.done,
            "overall_agreement": self.overall,
            "krippendorff_alpha": self.alpha,
            "pairwise": self.pairwise,
            "split_items": [s.__dict__ for s in self.split_items],
        }


def latest_round_id(s) -> int | None:
    return s.scalar(sa.select(sa.func.max(m.CalibrationRound.id)))


def start_round(ws: Any, person: str, n: int = 50, threshold: float = 0.65) -> int:
    """Start a calibration round on ``n`` production pairs; returns the round number."""
    with ws.session() as s:
        ids = s.scalars(
            sa.select(m.Item.id)
            .where(m.Item.kind == "pair", m.Item.is_gold.is_(False), m.Item.calibration_round.is_(None))
            .order_by(m.Item.id)
        ).all()
        if len(ids) < n:
            raise UserError(
                f"calibration start: {n} pairs needed, {len(ids)} queued; "
                "queue more with `rlhfops pairs import` or pass a smaller --n"
            )
        row = m.CalibrationRound(n_items=n, threshold=threshold, started_by=person, started_at=db.utcnow())
        s.add(row)
        s.flush()
        round_id = int(row.id)
        chosen = sorted(random.Random(round_id).sample(list(ids), n))
        for src in s.scalars(sa.select(m.Item).where(m.Item.id.in_(chosen))).all():
            key = item_key("pair", src.prompt, src.response_a, src.response_b, f"calibration:{round_id}")
            s.add(
                m.Item(
                    key=key,
                    kind="pair",
                    prompt=src.prompt,
                    response_a=src.response_a,
                    response_b=src.response_b,
                    batch=f"calibration-{round_id}",
                    k=0,
                    is_gold=False,
                    gold_answer=None,
                    calibration_round=round_id,
                    source_item_id=src.id,
                    meta=dict(src.meta or {}),
                    created_at=db.utcnow(),
                )
            )
    return round_id


def _raters(s) -> list[str]:
    return list(
        s.scalars(sa.select(db.Person.name).where(db.Person.role == "rater").order_by(db.Person.name)).all()
    )


def blocking_reason(s, round_id: int) -> str | None:
    """Why production labelling is blocked by round ``round_id`` (None: it passed)."""
    result = _result(s, round_id)
    if result.status == "passed":
        return None
    if result.status == "open":
        waiting = [r for r in result.raters if result.done.get(r, 0) < result.n_items]
        return (
            f"calibration round {round_id} is open ({len(waiting)} rater(s) still labelling); "
            "production labelling starts when it passes"
        )
    overall = "undefined" if result.overall is None else f"{result.overall:.2f}"
    return (
        f"calibration round {round_id} failed: overall agreement {overall} "
        f"< {result.threshold:.2f}; "
        "the guidelines are too vague: revise them and start a new round"
    )


def round_result(ws: Any, round_id: int | None = None) -> RoundResult:
    """Agreement of a round (default: the latest)."""
    with ws.session() as s:
        rid = round_id if round_id is not None else latest_round_id(s)
        if rid is None or s.get(m.CalibrationRound, rid) is None:
            raise UserError("calibration: no round yet; start one with `rlhfops calibration start`")
        return _result(s, rid)


def _result(s, round_id: int) -> RoundResult:
    from rlhfops.agreement import krippendorff_alpha, percent_agreement

    rnd = s.get_one(m.CalibrationRound, round_id)
    items = s.execute(
        sa.select(m.Item.id, m.Item.prompt).where(m.Item.calibration_round == round_id).order_by(m.Item.id)
    ).all()
    labels = s.execute(
        sa.select(m.Label.item_id, m.Label.rater, m.Label.choice)
        .join(m.Item, m.Item.id == m.Label.item_id)
        .where(m.Item.calibration_round == round_id)
    ).all()
    raters = sorted(set(_raters(s)) | {r for _i, r, _c in labels})
    by_item: dict[int, dict[str, str]] = {i: {} for i, _p in items}
    for item_id, rater, choice in labels:
        by_item[item_id][rater] = choice
    done = {r: sum(1 for v in by_item.values() if r in v) for r in raters}
    complete = bool(raters) and all(done[r] >= rnd.n_items for r in raters)
    matrix = [[by_item[i].get(r) for i, _p in items] for r in raters]
    overall = alpha = None
    if labels:
        overall = _safe(percent_agreement, matrix)
        alpha = _safe(krippendorff_alpha, matrix)
    pairwise = {}
    for a, b in combinations(raters, 2):
        value = _safe(percent_agreement, [matrix[raters.index(a)], matrix[raters.index(b)]])
        if value is not None:
            pairwise[f"{a}|{b}"] = value
    split = []
    prompts = dict(items)
    for item_id, choices in by_item.items():
        if len(choices) >= 2 and len(set(choices.values())) > 1:
            top = max(list(choices.values()).count(c) for c in set(choices.values()))
            split.append(SplitItem(item_id, prompts[item_id], dict(choices), top / len(choices)))
    split.sort(key=lambda x: (x.agreement, x.item_id))
    return RoundResult(
        round_id, rnd.n_items, rnd.threshold, raters, done, complete, overall, alpha, pairwise, split
    )


def _safe(fn, matrix) -> float | None:
    try:
        return float(fn(matrix))
    except UserError:
        return None
