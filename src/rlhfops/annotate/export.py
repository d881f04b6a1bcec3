"""Export labels to the engine's preference format and register them in the lineage.

Aggregation rule (per production pair, gold and calibration copies excluded): the majority choice among
its labels ("skip" labels ignored). A pair is exported when it has at least ``min_labels`` labels (default:
its overlap k) and a strict majority-of-plurality for A or B: the winner is ``chosen``. Pairs whose
plurality is "tie" or "both_bad" are dropped (the spec's policies keep both out of training: ties carry no
preference, both-bad pairs go to demonstrations), and so are pairs with a tied plurality.

Each row: ``{"prompt", "chosen", "rejected", "agreement", "n_labels", "item_id"}`` where ``agreement`` is
the share of the pair's labels that chose the winner. The file is registered as a ``preferences``
artifact whose ``meta.agreement`` is Krippendorff's alpha (nominal) over all labelled production pairs
(raters x items, missing where a rater did not see the pair) -- the number the rm / dpo stages check.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from rlhfops.annotate import models as m
from rlhfops.errors import UserError


@dataclass(frozen=True)
class Aggregate:
    decision: str | None  # "A", "B", "tie", "both_bad" or None (no plurality)
    agreement: float  # share of labels that chose the decision (0 when None)
    n: int


@dataclass(frozen=True)
class ExportResult:
    path: Path
    artifact_id: str | None
    rows: int
    dropped: dict[str, int]
    alpha: float | None
    percent_agreement: float | None


def aggregate(choices: list[str]) -> Aggregate:
    """Plurality over canonical choices (``skip`` ignored); None when two choices tie for the top."""
    votes = [c for c in choices if c != "skip"]
    if not votes:
        return Aggregate(None, 0.0, 0)
    counts = Counter(votes).most_common()
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return Aggregate(None, 0.0, len(votes))
    return Aggregate(counts[0][0], counts[0][1] / len(votes), len(votes))


def production_labels(s) -> tuple[list[m.Item], dict[int, dict[str, str]]]:
    """Labelled production pairs and their labels (item id -> rater -> canonical choice)."""
    labels = s.execute(
        sa.select(m.Label.item_id, m.Label.rater, m.Label.choice)
        .join(m.Item, m.Item.id == m.Label.item_id)
        .where(m.Item.kind == "pair", m.Item.is_gold.is_(False), m.Item.calibration_round.is_(None))
        .order_by(m.Label.item_id, m.Label.id)
    ).all()
    by_item: dict[int, dict[str, str]] = {}
    for item_id, rater, choice in labels:
        by_item.setdefault(item_id, {})[rater] = choice
    items = list(s.scalars(sa.select(m.Item).where(m.Item.id.in_(list(by_item))).order_by(m.Item.id)).all())
    return items, by_item


def overall_agreement(by_item: dict[int, dict[str, str]]) -> tuple[float | None, float | None]:
    """(Krippendorff's alpha nominal, percent agreement) over raters x items; None when undefined."""
    from rlhfops.agreement import krippendorff_alpha, percent_agreement

    raters = sorted({r for v in by_item.values() for r, c in v.items() if c != "skip"})
    ids = sorted(by_item)
    matrix = [
        [(lambda c: None if c in (None, "skip") else c)(by_item[i].get(r)) for i in ids] for r in raters
    ]
    out: list[float | None] = []
    for fn in (krippendorff_alpha, percent_agreement):
        try:
            out.append(float(fn(matrix)) if matrix else None)
        except UserError:
            out.append(None)
    return out[0], out[1]


def export_preferences(
    ws: Any, out: Path, creator: str, min_labels: int | None = None, register: bool = True
) -> ExportResult:
    """Write the preference JSONL to ``out`` (atomically) and register it as a ``preferences`` artifact."""
    out = Path(out)
    dropped = Counter()
    rows: list[dict[str, Any]] = []
    with ws.session() as s:
        items, by_item = production_labels(s)
        for item in items:
            choices = list(by_item[item.id].values())
            need = min_labels if min_labels is not None else item.k
            agg = aggregate(choices)
            if agg.n < need:
                dropped["too_few_labels"] += 1
                continue
            if agg.decision not in ("A", "B"):
                dropped[agg.decision or "no_majority"] += 1
                continue
            a, b = item.response_a or "", item.response_b or ""
            chosen, rejected = (a, b) if agg.decision == "A" else (b, a)
            rows.append(
                {
                    "prompt": item.prompt,
                    "chosen": chosen,
                    "rejected": rejected,
                    "agreement": round(agg.agreement, 6),
                    "n_labels": agg.n,
                    "item_id": item.id,
                }
            )
    if not rows:
        raise UserError(
            f"prefs export: no pair has a majority for A or B with enough labels (dropped: {dict(dropped)}); "
            "label more pairs first"
        )
    alpha, pct = overall_agreement(by_item)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    artifact_id = None
    if register:
        meta = {
            "agreement": alpha,
            "agreement_metric": "krippendorff_alpha_nominal",
            "percent_agreement": pct,
            "pairs": len(rows),
            "dropped": dict(dropped),
            "aggregation": "plurality of A/B/tie/both_bad; ties, both-bad and tied pluralities dropped",
        }
        parents = [ws.register_spec_version(creator)]
        artifact_id = ws.register_artifact("preferences", out, parents, creator, meta)
    return ExportResult(out, artifact_id, len(rows), dict(dropped), alpha, pct)
