"""What the annotation lead sees of one item: each rater's choice (as the item's A/B and as they saw it),
criteria, rationale and time, the gold answer, the item's difficulty; and the items raters split on most."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from rlhfops.annotate.rater_view import as_shown
from rlhfops.annotate.tx import transaction
from rlhfops.errors import UserError
from rlhfops.workspace import annotation_tables as m
from rlhfops.workspace import db


@dataclass(frozen=True)
class RaterLabel:
    rater: str
    choice: str  # canonical: A, B, tie, both_bad, skip
    shown: str  # as this rater saw it: left, right, ...
    criteria: dict[str, str]  # canonical
    rationale: str
    seconds: float | None
    at: str
    changes: int


@dataclass(frozen=True)
class ItemDetail:
    item_id: int
    kind: str
    batch: str
    prompt: str
    response_a: str
    response_b: str
    gold_answer: str | None
    calibration_round: int | None
    labels: list[RaterLabel]
    majority_share: float | None  # share of labels with the most common choice (None under 2 labels)
    given_difficulty: float | None  # the imported pair's meta.difficulty, if any
    counts: dict[str, int] = field(default_factory=dict)


def item_detail(ws: Any, item_id: int) -> ItemDetail:
    with transaction(ws) as s:
        item = s.get(m.Item, item_id)
        if item is None:
            raise UserError(f"item {item_id}: not found")
        labels = s.scalars(sa.select(m.Label).where(m.Label.item_id == item_id).order_by(m.Label.id)).all()
        changes = Counter(
            s.scalars(sa.select(m.LabelChange.rater).where(m.LabelChange.item_id == item_id)).all()
        )
        rows = [
            RaterLabel(
                lab.rater,
                lab.choice,
                as_shown(lab.choice, lab.swapped),
                dict(lab.criteria or {}),
                lab.rationale or "",
                lab.seconds,
                db.as_utc(lab.created_at).isoformat(timespec="seconds"),
                changes.get(lab.rater, 0),
            )
            for lab in labels
        ]
        counts = Counter(r.choice for r in rows)
        share = max(counts.values()) / len(rows) if len(rows) >= 2 else None
        given = (item.meta or {}).get("difficulty")
        return ItemDetail(
            item.id,
            item.kind,
            item.batch,
            item.prompt,
            item.response_a or "",
            item.response_b or "",
            item.gold_answer,
            item.calibration_round,
            rows,
            share,
            float(given) if isinstance(given, int | float) else None,
            dict(counts),
        )


def split_items(ws: Any, limit: int = 20) -> list[dict[str, Any]]:
    """Production pairs with 2+ labels, the least agreed first: item id, prompt, counts, majority share."""
    with transaction(ws) as s:
        rows = s.execute(
            sa.select(m.Label.item_id, m.Label.choice, m.Item.prompt)
            .join(m.Item, m.Item.id == m.Label.item_id)
            .where(m.Item.kind == "pair", m.Item.is_gold.is_(False), m.Item.calibration_round.is_(None))
        ).all()
    by_item: dict[int, Counter] = {}
    prompts: dict[int, str] = {}
    for item_id, choice, prompt in rows:
        by_item.setdefault(item_id, Counter())[choice] += 1
        prompts[item_id] = prompt
    out = [
        {
            "item_id": i,
            "prompt": prompts[i],
            "counts": dict(c),
            "agreement": max(c.values()) / sum(c.values()),
        }
        for i, c in by_item.items()
        if sum(c.values()) >= 2
    ]
    out.sort(key=lambda x: (x["agreement"], x["item_id"]))
    return out[:limit]


def rater_label_rows(ws: Any, rater: str, limit: int = 500) -> list[dict[str, Any]]:
    """``rater``'s labels for the lead, newest first: item, canonical choice, rationale, seconds, when."""
    with transaction(ws) as s:
        rows = s.execute(
            sa.select(m.Label.item_id, m.Label.choice, m.Label.rationale, m.Label.seconds, m.Label.created_at)
            .where(m.Label.rater == rater)
            .order_by(m.Label.id.desc())
            .limit(limit)
        ).all()
    return [
        {
            "item_id": r.item_id,
            "choice": r.choice,
            "rationale": r.rationale or "",
            "seconds": r.seconds,
            "at": db.as_utc(r.created_at).isoformat(timespec="seconds"),
        }
        for r in rows
    ]
