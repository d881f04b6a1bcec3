"""Calibration rounds: the same N pairs for every rater, then agreement, pairwise and overall.

A round copies N production pairs (chosen at random, seeded by the round number) into calibration items;
every rater is served them before anything else. The round is complete when every workspace rater has
labelled all N. Its overall agreement is the percent agreement (share of agreeing rater pairs per item,
averaged over items; :func:`rlhfops.annotate.agreement.percent_agreement`); Krippendorff's alpha is
reported too.
Under the threshold (default 0.65) the guidelines are too vague: production labelling stays blocked until
a new round passes. While a round is open, production is blocked as well (raters calibrate first).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from rlhfops.annotate.queue import item_key
from rlhfops.annotate.tx import transaction
from rlhfops.errors import UserError
from rlhfops.workspace import annotation_tables as m
from rlhfops.workspace import db


@dataclass
class RoundResult:
    """A round's number and prompts with :class:`rlhfops.annotate.quality.CalibrationResult`."""

    round_id: int
    result: Any  # CalibrationResult
    prompts: dict[int, str]  # item id -> prompt (for the split items)

    @property
    def status(self) -> str:
        return self.result.status

    def to_json(self) -> dict[str, Any]:
        r = self.result
        return {
            "round": self.round_id,
            "status": r.status,
            "message": r.message,
            "n_items": r.n_items,
            "threshold": r.threshold,
            "raters": r.raters,
            "missing": r.missing,
            "overall_agreement": r.overall,
            "krippendorff_alpha": r.alpha,
            "pairwise": r.pairwise,
            "split_items": [
                {
                    "item_id": x.item,
                    "prompt": self.prompts.get(x.item, ""),
                    "counts": x.counts,
                    "top_share": x.top_share,
                    "agreement": x.agreement,
                }
                for x in r.split_items
            ],
        }


def latest_round_id(s) -> int | None:
    return s.scalar(sa.select(sa.func.max(m.CalibrationRound.id)))


def start_round(ws: Any, person: str, n: int = 50, threshold: float = 0.65) -> int:
    """Start a calibration round on ``n`` production pairs; returns the round number."""
    with transaction(ws) as s:
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
    return (
        f"calibration round {round_id} {result.result.message}; production labelling waits for a passed round"
    )


def round_result(ws: Any, round_id: int | None = None) -> RoundResult:
    """Agreement of a round (default: the latest)."""
    with transaction(ws) as s:
        rid = round_id if round_id is not None else latest_round_id(s)
        if rid is None or s.get(m.CalibrationRound, rid) is None:
            raise UserError("calibration: no round yet; start one with `rlhfops calibration start`")
        return _result(s, rid)


def _result(s, round_id: int) -> RoundResult:
    from rlhfops.annotate.quality import calibration_result

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
    result = calibration_result(
        [tuple(x) for x in labels], items=[i for i, _p in items], raters=raters, threshold=rnd.threshold
    )
    return RoundResult(round_id, result, dict(items))
