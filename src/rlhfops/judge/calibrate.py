"""`rlhfops judge calibrate`: how well a judge agrees with the people, before it is trusted as a reward.

On the human-labelled production pairs (gold items, calibration copies and side-by-side evaluation pairs
excluded, as for the preference export: :func:`rlhfops.annotate.export.production_labels`) the raters'
majority per pair is the plurality of their labels (:func:`rlhfops.annotate.quality.aggregate_pairs`,
``skip`` ignored). Pairs without a majority, and pairs whose majority is ``both_bad`` (a judge cannot say
that), are not scored and are counted.

Overall: the judge compares each pair **in both orders** (A/B, then B/A mapped back); when the two
verdicts differ the judge's verdict is ``tie`` and the pair counts as position-inconsistent. Per
criterion (the per-criterion choices raters gave): the judge's ``score`` of each reply on that criterion,
compared with its ``tie_margin``. Reported for each: agreement with the majority (share equal, with its
Wilson 95% interval, :func:`rlhfops.measures.intervals.wilson_interval`) and Cohen's kappa
(:func:`rlhfops.annotate.agreement.cohen_kappa`, categories A / B / tie). Kappa is the number the RL stage
compares with the spec's ``gate.min_agreement`` (:func:`rlhfops.workspace.plays.blockers`).

The report is written atomically as JSON and registered as a ``judge-calibration`` artifact with
``meta.judge`` (the judge as spelled on the command line, which ``reward_judge`` must match).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from rlhfops.data.files import atomic_output
from rlhfops.errors import UserError
from rlhfops.judge.base import compare_scores

CATEGORIES = ["A", "B", "tie"]
_SWAP = {"A": "B", "B": "A", "tie": "tie"}


@dataclass
class Agreement:
    """A judge against the raters' majority on ``n`` pairs."""

    n: int
    agreement: float | None
    interval: tuple[float, float] | None
    kappa: float | None


@dataclass
class Calibration:
    judge: str
    overall: Agreement
    per_criterion: dict[str, Agreement]
    position_inconsistent: int
    skipped: dict[str, int]
    path: Path | None = None
    artifact_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["path"] = str(self.path) if self.path else None
        return out


def agreement_of(human: list[str], judge: list[str]) -> Agreement:
    """Share equal (Wilson interval) and Cohen's kappa; kappa None when undefined (one category only)."""
    from rlhfops.annotate.agreement import cohen_kappa
    from rlhfops.measures.intervals import wilson_interval

    n = len(human)
    if n == 0:
        return Agreement(0, None, None, None)
    same = sum(h == j for h, j in zip(human, judge, strict=True))
    try:
        kappa: float | None = float(cohen_kappa(human, judge, labels=CATEGORIES))
    except UserError:
        kappa = None
    return Agreement(n, same / n, wilson_interval(same, n), kappa)


def _labels(ws: Any) -> tuple[dict[int, Any], list[tuple[int, str, str]], list[tuple[int, str, dict]]]:
    from rlhfops.annotate.export import production_labels
    from rlhfops.annotate.tx import transaction
    from rlhfops.workspace import annotation_tables as m

    with transaction(ws) as s:
        items, by_item = production_labels(s)
        crit = s.execute(
            sa.select(m.Label.item_id, m.Label.rater, m.Label.criteria).where(
                m.Label.item_id.in_(list(by_item))
            )
        ).all()
    labels = [(i, r, c) for i, v in by_item.items() for r, c in v.items()]
    return {it.id: it for it in items}, labels, [(i, r, dict(c or {})) for i, r, c in crit]


def calibrate(ws: Any, judge: Any, spec: str, out: Path, creator: str, register: bool = True) -> Calibration:
    """Score ``judge`` (built from ``spec``) on the workspace's human-labelled pairs; write ``out``."""
    from rlhfops.annotate.quality import aggregate_pairs

    items, labels, crit_labels = _labels(ws)
    if not labels:
        raise UserError("judge calibrate: no human-labelled production pair yet; label pairs first")
    agg = aggregate_pairs(labels, tie="keep", both_bad="keep")
    skipped: Counter[str] = Counter()
    human, verdicts, inconsistent, scored = [], [], 0, []
    for pair in sorted(agg.pairs, key=lambda p: p.item):
        if pair.choice not in CATEGORIES:
            skipped["both_bad" if pair.choice == "both_bad" else "no_majority"] += 1
            continue
        it = items[pair.item]
        a, b = it.response_a or "", it.response_b or ""
        first = judge.judge(it.prompt, a, b)
        second = _SWAP[judge.judge(it.prompt, b, a)]
        if first != second:
            inconsistent += 1
        human.append(pair.choice)
        verdicts.append(first if first == second else "tie")
        scored.append(pair.item)
    per_criterion: dict[str, Agreement] = {}
    by_crit: dict[str, dict[int, Counter[str]]] = {}
    for item, _rater, crits in crit_labels:
        for name, choice in crits.items():
            if choice in CATEGORIES:
                by_crit.setdefault(name, {}).setdefault(item, Counter())[choice] += 1
    margin = float(getattr(judge, "tie_margin", 0.0) or 0.0)
    for name, per_item in sorted(by_crit.items()):
        h, j = [], []
        for item, counts in sorted(per_item.items()):
            ranked = counts.most_common()
            if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
                continue
            it = items[item]
            sa_, sb = (
                judge.score(it.prompt, it.response_a or "", name),
                judge.score(it.prompt, it.response_b or "", name),
            )
            h.append(ranked[0][0])
            j.append(compare_scores(sa_, sb, margin))
        per_criterion[name] = agreement_of(h, j)
    res = Calibration(
        spec, agreement_of(human, verdicts), per_criterion, inconsistent, dict(skipped), Path(out)
    )
    with atomic_output(out) as tmp:
        tmp.write_text(json.dumps(res.to_json(), indent=1) + "\n", encoding="utf-8")
    if register:
        meta = {
            "judge": spec,
            "judge_name": str(getattr(judge, "name", spec)),
            "kappa": res.overall.kappa,
            "agreement": res.overall.agreement,
            "pairs": res.overall.n,
            "position_inconsistent": inconsistent,
            "per_criterion": {
                k: {"kappa": v.kappa, "agreement": v.agreement} for k, v in per_criterion.items()
            },
        }
        res.artifact_id = ws.register_artifact(
            "judge-calibration", Path(out), [ws.register_spec_version(creator)], creator, meta
        )
    return res
