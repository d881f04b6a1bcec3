"""Export labels to the engine's preference format and register them in the lineage.

Aggregation rule (:func:`rlhfops.annotate.quality.aggregate_pairs`, per production pair; gold items,
calibration copies and side-by-side evaluation pairs excluded): the plurality choice among its labels
("skip" ignored). A pair is exported when it has at least ``min_labels`` labels (default: its own
overlap k) and a plurality for A or B: the winner is ``chosen``. Pairs whose plurality is "tie" or
"both_bad" are dropped (the spec's policies keep both out of training: ties carry no preference,
both-bad pairs go to demonstrations), and so are pairs with a tied plurality.

Each row: ``{"prompt", "chosen", "rejected", "agreement", "n_labels", "item_id"}`` where ``agreement`` is
the share of the pair's labels that chose the winner. The file is registered as a ``preferences``
artifact whose ``meta.agreement`` is Krippendorff's alpha (nominal) over all labelled production pairs
(raters x items, missing where a rater did not see the pair) -- the number the rm / dpo stages check.

``fmt`` (``prefs export --format``) picks another tool's format (:mod:`rlhfops.data.formats`): pairs whose
plurality is ``tie`` or ``both_bad`` and rows the format cannot hold are refused with a count and the
first item; the file is then registered as a ``dataset`` artifact (``meta.format``, the spec version
as parent), not as ``preferences``, since the rm / dpo stages read only rlhfops rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from rlhfops.annotate.tx import transaction
from rlhfops.data.formats import Conversion, PrefIn, check_format, convert
from rlhfops.data.io import file_format, write_rows
from rlhfops.errors import UserError
from rlhfops.spec.check import check_spec_file
from rlhfops.workspace import annotation_tables as m


class BelowAgreementError(UserError):
    """The labels' agreement is under the spec's ``gate.min_agreement`` and no reason was given."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    artifact_id: str | None
    rows: int
    dropped: dict[str, int]
    alpha: float | None
    percent_agreement: float | None
    refused: str = ""  # the format's refusals, one line (empty when none)


def _production_pair() -> list[Any]:
    """The clauses of a production pair: a pair, neither a gold item nor a calibration-round item."""
    return [m.Item.kind == "pair", m.Item.is_gold.is_(False), m.Item.calibration_round.is_(None)]


def production_labels(
    s, batches: Sequence[str] | None = None
) -> tuple[list[m.Item], dict[int, dict[str, str]]]:
    """Labelled production pairs and their labels (item id -> rater -> canonical choice); with ``batches``,
    only the pairs queued in those batches."""
    where = _production_pair()
    if batches is not None:
        where.append(m.Item.batch.in_(list(batches)))
    labels = s.execute(
        sa.select(m.Label.item_id, m.Label.rater, m.Label.choice)
        .join(m.Item, m.Item.id == m.Label.item_id)
        .where(*where)
        .order_by(m.Label.item_id, m.Label.id)
    ).all()
    by_item: dict[int, dict[str, str]] = {}
    for item_id, rater, choice in labels:
        by_item.setdefault(item_id, {})[rater] = choice
    items = list(s.scalars(sa.select(m.Item).where(m.Item.id.in_(list(by_item))).order_by(m.Item.id)).all())
    # Side-by-side evaluation pairs (``eval compare --judge human``) never become training data.
    evaluation = {it.id for it in items if (it.meta or {}).get("side_by_side")}
    items = [it for it in items if it.id not in evaluation]
    return items, {i: v for i, v in by_item.items() if i not in evaluation}


def spec_min_agreement(ws: Any) -> float | None:
    """The spec's ``gate.min_agreement`` (None without a readable spec): the bar every export path (the
    CLI's ``prefs export``, the lead's export page) holds the labels to."""
    try:
        spec = check_spec_file(ws.spec_path).spec
    except UserError:
        return None
    return None if spec is None else float(spec.gate.min_agreement)


def _check_batches(s, batches: Sequence[str]) -> None:
    if not batches:
        raise UserError("prefs export: --batch given without a name")
    known = set(s.scalars(sa.select(m.Item.batch).where(*_production_pair()).distinct()).all())
    unknown = sorted(set(batches) - known)
    if unknown:
        raise UserError(
            f"prefs export: no production pair was queued as batch {', '.join(map(repr, unknown))}; "
            f"batches: {', '.join(sorted(known)) or 'none'}"
        )


def export_preferences(
    ws: Any,
    out: Path,
    creator: str,
    min_labels: int | None = None,
    register: bool = True,
    fmt: str = "rlhfops",
    min_agreement: float | None = None,
    reason: str | None = None,
    batches: Sequence[str] | None = None,
) -> ExportResult:
    """Write the preferences to ``out`` and register them as a ``preferences`` artifact.

    ``min_agreement`` (the spec's ``gate.min_agreement``): when Krippendorff's alpha is below it (or
    cannot be computed), nothing is written unless a ``reason`` (10+ characters) is given; the reason is
    recorded in the artifact's meta (``below_min_agreement``).

    ``batches``: export only the pairs queued in these batches (e.g. a later round's, to continue training
    a candidate on what is new); alpha is then computed over those pairs. A name no production pair was
    queued under is a one-line UserError naming the batches there are. Recorded in the meta (``batches``).

    The format follows the extension (.jsonl, .jsonl.gz, .json or .parquet) through
    :func:`rlhfops.data.io.write_rows`, which writes atomically; an unknown extension is a one-line
    DataError before anything is read or written.
    """
    from rlhfops.annotate.quality import aggregate_pairs

    out = Path(out)
    file_format(out)
    check_format("prefs", fmt)
    with transaction(ws) as s:
        if batches is not None:
            _check_batches(s, batches)
        items, by_item = production_labels(s, batches)
    labels = [(i, r, c) for i, v in by_item.items() for r, c in v.items()]
    agg = aggregate_pairs(labels, tie="drop", both_bad="drop", min_labels=min_labels or 1)
    by_id = {item.id: item for item in items}
    rows: list[dict[str, Any]] = []
    dropped = dict(agg.dropped)
    for pair in agg.pairs:
        if not pair.kept or pair.choice not in ("A", "B"):
            continue
        item = by_id[pair.item]
        if min_labels is None and pair.n_labels < item.k:  # default: every pair needs its k labels
            dropped["too_few_labels"] = dropped.get("too_few_labels", 0) + 1
            continue
        a, b = item.response_a or "", item.response_b or ""
        chosen, rejected = (a, b) if pair.choice == "A" else (b, a)
        rows.append(
            {
                "prompt": item.prompt,
                "chosen": chosen,
                "rejected": rejected,
                "agreement": round(pair.agreement, 6),
                "n_labels": pair.n_labels,
                "item_id": item.id,
            }
        )
    rows.sort(key=lambda r: r["item_id"])
    alpha, pct = agg.alpha, agg.percent_agreement
    if not rows:
        raise UserError(
            f"prefs export: no pair has a majority for A or B with enough labels (dropped: {dropped}); "
            "label more pairs first"
        )
    below = min_agreement is not None and (alpha is None or alpha < min_agreement)
    if below and len((reason or "").strip()) < 10:
        shown = "n/a" if alpha is None else f"{alpha:.3f}"
        raise BelowAgreementError(
            f"prefs export: agreement (Krippendorff's alpha) {shown} is below the spec's min_agreement "
            f"{min_agreement}; give a reason of at least 10 characters to export anyway"
        )
    conv = Conversion([], {})
    for pair in sorted(agg.pairs, key=lambda p: p.item):
        if pair.reason in ("tie", "both_bad"):
            conv.refuse(pair.reason, f"item {pair.item}")
    ins = [
        PrefIn(
            [{"role": "user", "content": by_id[r["item_id"]].prompt}],
            r["chosen"],
            r["rejected"],
            f"item {r['item_id']}",
            {k: r[k] for k in ("agreement", "n_labels", "item_id")},
        )
        for r in rows
    ]
    conv = convert("prefs", fmt, ins, conv)
    if not conv.rows:
        raise UserError(f"prefs export --format {fmt}: no pair fits the format; {conv.summary()}")
    write_rows(out, conv.rows)
    artifact_id = None
    extra: dict[str, Any] = {}
    if batches is not None:
        extra["batches"] = sorted(set(batches))
    if below:
        extra["below_min_agreement"] = {
            "min_agreement": min_agreement,
            "reason": reason.strip(),
            "by": creator,
        }
    if register and fmt != "rlhfops":
        parents = [ws.register_spec_version(creator)]
        meta = {
            "format": fmt,
            "rows": len(conv.rows),
            "refused": {k: v.count for k, v in conv.refused.items()},
            **extra,
        }
        artifact_id = ws.register_artifact("dataset", out, parents, creator, meta)
    elif register:
        meta = {
            "agreement": alpha,
            "agreement_metric": "krippendorff_alpha_nominal",
            "percent_agreement": pct,
            "pairs": len(rows),
            "dropped": dict(dropped),
            "aggregation": "plurality of A/B/tie/both_bad; ties, both-bad and tied pluralities dropped",
            **extra,
        }
        parents = [ws.register_spec_version(creator)]
        artifact_id = ws.register_artifact("preferences", out, parents, creator, meta)
    return ExportResult(out, artifact_id, len(conv.rows), dict(dropped), alpha, pct, conv.summary())
