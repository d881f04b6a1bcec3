"""The annotation lead's agreement report: labels from the database through :mod:`rlhfops.annotate.quality`.

Sections: overall agreement (percent agreement and Krippendorff's alpha, warning under
``agreement_warning``); per rater (agreement with the others' majority, pairwise mean, gold accuracy with
drift flags, over windows of :data:`GOLD_WINDOW` gold labels in time order); item difficulty (easy vs
hard, annotation collapse); rater turnover (raters active in the last ``period`` vs the period before,
flagged over ``turnover_flag``).
Production labels only (calibration copies are reported by the calibration page); gold items count for
gold accuracy and are left out of the agreement numbers.
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa

from rlhfops.annotate.quality import (
    difficulty_report,
    gold_accuracy,
    overall_agreement,
    rater_agreement,
    rater_turnover,
    raters_between,
)
from rlhfops.annotate.tx import transaction
from rlhfops.errors import UserError
from rlhfops.workspace import annotation_tables as m
from rlhfops.workspace import db

GOLD_WINDOW = 10  # gold labels per window of a rater's gold accuracy over time


def _rows(ws: Any) -> tuple[list[tuple], dict[int, str]]:
    with transaction(ws) as s:
        rows = s.execute(
            sa.select(
                m.Label.item_id,
                m.Label.rater,
                m.Label.choice,
                m.Label.created_at,
                m.Item.batch,
                m.Item.gold_answer,
            )
            .join(m.Item, m.Item.id == m.Label.item_id)
            .where(m.Item.kind == "pair", m.Item.calibration_round.is_(None))
            .order_by(m.Label.id)
        ).all()
    labels = [(i, r, c, db.as_utc(t), b) for i, r, c, t, b, _g in rows]
    gold = {i: g for i, _r, _c, _t, _b, g in rows if g is not None}
    return labels, gold


def _given_difficulty(ws: Any, item_ids: set[int]) -> dict[int, float]:
    """item -> ``meta.difficulty`` where the imported pair carried a number (higher = harder)."""
    if not item_ids:
        return {}
    with transaction(ws) as s:
        rows = s.execute(sa.select(m.Item.id, m.Item.meta).where(m.Item.id.in_(sorted(item_ids)))).all()
    out = {}
    for item_id, meta in rows:
        value = (meta or {}).get("difficulty")
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[item_id] = float(value)
    return out


def _plain(x: Any) -> Any:
    if is_dataclass(x):
        return {k: _plain(v) for k, v in asdict(x).items()}
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return _plain(x.tolist())
    if isinstance(x, float) and x != x:
        return None
    if hasattr(x, "isoformat"):
        return x.isoformat()
    return x


def agreement_report(
    ws: Any, warning: float = 0.70, turnover_flag: float = 0.30, period_days: int = 30
) -> dict:
    """Everything the agreement page shows, as plain JSON-able data."""
    labels, gold = _rows(ws)
    prod = [x for x in labels if x[0] not in gold]
    out: dict[str, Any] = {"n_labels": len(labels), "n_gold_labels": len(labels) - len(prod)}
    out["overall"] = _plain(overall_agreement(prod, threshold=warning))
    out["raters"] = _plain(rater_agreement(prod).per_rater) if prod else []
    try:
        out["gold"] = (
            _plain(gold_accuracy(labels, gold, window="count", size=GOLD_WINDOW, min_gold=GOLD_WINDOW))
            if gold
            else None
        )
    except UserError as err:
        out["gold"] = {"error": str(err)}
    given = _given_difficulty(ws, {x[0] for x in prod})
    try:
        out["difficulty"] = _plain(difficulty_report(prod, given or None))
    except UserError as err:
        out["difficulty"] = {
            "error": f"{err} (item difficulty needs overlap k >= 4 for split-half difficulty, or a numeric "
            "'difficulty' field on imported pairs, e.g. a rubric-score gap or reward-model margin)"
        }
    now = db.utcnow()
    period = timedelta(days=period_days)
    if labels:
        before = raters_between(labels, now - 2 * period, now - period)
        after = raters_between(labels, now - period, None)
        out["turnover"] = _plain(rater_turnover(before, after, threshold=turnover_flag))
    else:
        out["turnover"] = None
    out["period_days"] = period_days
    return out
