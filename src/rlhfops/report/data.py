"""What a report shows, as plain data: :class:`ReportData`, and how to collect it from a workspace.

The HTML renderer (:mod:`rlhfops.report.render`) reads only a :class:`ReportData`, so other callers
(e.g. the five-play demo) can fill one in themselves: every section is optional and renders as
"not measured" when empty.

Training curves come from the run's ``metrics.jsonl`` (one JSON object per logged step, see
:mod:`rlhfops.train.rundir`). The run directory of a model artifact is found, in order, from
``meta.run_dir`` / ``meta.metrics_path``, a ``metrics.jsonl`` next to or inside the stored model, or a
run directory (up to two levels under the workspace root or the current directory, e.g. ``runs/ppo-...``)
whose ``final/`` has the model's content hash.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlhfops.errors import UserError
from rlhfops.gate import log as dlog
from rlhfops.gate.decide import gate_evaluate, gate_model
from rlhfops.measures.kl_reading import kl_note

if TYPE_CHECKING:
    from rlhfops.gate.verdict import GateEvaluation
    from rlhfops.workspace.core import Workspace
    from rlhfops.workspace.store import ArtifactRecord

KL_KEYS = ("kl",)
REWARD_KEYS = ("score", "reward", "reward_margin", "chosen_reward")


@dataclass
class ReportData:
    """Everything one report shows. Rows are plain dicts so they render and serialise as they are."""

    title: str
    model: dict[str, Any] = field(default_factory=dict)  # id, kind, name, creator, created_at
    workspace: str = ""
    spec_hash: str = ""
    verdict: str = ""  # pass | fail | incomplete | "" (no gate)
    thresholds: list[dict[str, Any]] = field(default_factory=list)  # ThresholdResult.to_json()
    success: list[dict[str, Any]] = field(default_factory=list)  # behaviour, direction, target, rate...
    redteam: list[dict[str, Any]] = field(default_factory=list)  # category, passed, total, ..., failures
    over_refusal_rate: float | None = None
    win_rates: list[dict[str, Any]] = field(default_factory=list)  # label + win_rate contract dict
    min_win_rate: float | None = None
    kl: float | None = None
    kl_note: str = ""  # how to read it (rlhfops.measures.kl_reading.kl_note)
    reward: dict[str, float] | None = None
    alarms: list[dict[str, Any]] = field(default_factory=list)
    curves: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # "kl", "reward" -> points
    frontier: list[dict[str, Any]] = field(default_factory=list)  # kl_sweep.json rows (value, frontier)
    frontier_kind: str = "beta"  # what the sweep varied
    frontier_source: str = ""
    reward_key: str = ""
    metrics_source: str = ""
    lineage: list[dict[str, Any]] = field(default_factory=list)  # ArtifactRecord.to_json()
    decisions: list[dict[str, Any]] = field(default_factory=list)  # decision log entries
    notes: list[str] = field(default_factory=list)
    generated_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` (lines that do not parse are skipped)."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def curves_from_metrics(records: list[dict[str, Any]]) -> tuple[dict[str, list[tuple[float, float]]], str]:
    """({"kl": [(step, value)], "reward": [...]}, the reward key used) from training records."""

    def series(key: str) -> list[tuple[float, float]]:
        pts = []
        for r in records:
            v, s = r.get(key), r.get("step")
            if isinstance(v, int | float) and not isinstance(v, bool) and isinstance(s, int | float):
                pts.append((float(s), float(v)))
        return pts

    out: dict[str, list[tuple[float, float]]] = {}
    for k in KL_KEYS:
        if series(k):
            out["kl"] = series(k)
            break
    reward_key = ""
    for k in REWARD_KEYS:
        if series(k):
            out["reward"], reward_key = series(k), k
            break
    return out, reward_key


def read_sweep(path: Path) -> dict[str, Any] | None:
    """A ``kl_sweep.json`` (``rlhfops train ppo --kl-sweep``) when it exists and has rows, else None."""
    try:
        sweep = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return sweep if isinstance(sweep, dict) and isinstance(sweep.get("rows"), list) else None


def find_metrics(ws: Workspace, model: ArtifactRecord) -> Path | None:
    """The ``metrics.jsonl`` of the run that produced ``model`` (see the module docstring)."""
    from rlhfops.workspace.store import content_hash

    meta = model.meta
    cands: list[Path] = []
    if isinstance(meta.get("metrics_path"), str):
        cands.append(Path(meta["metrics_path"]))
    if isinstance(meta.get("run_dir"), str):
        cands.append(Path(meta["run_dir"]) / "metrics.jsonl")
    cands += [model.path / "metrics.jsonl", model.path.parent / "metrics.jsonl"]
    for c in cands:
        c = c if c.is_absolute() else ws.root / c
        if c.is_file():
            return c
    store = ws.store_dir.resolve()
    for root in dict.fromkeys([ws.root, Path.cwd().resolve()]):
        for metrics in sorted([*root.glob("*/metrics.jsonl"), *root.glob("*/*/metrics.jsonl")]):
            run = metrics.parent
            if store in run.resolve().parents or not (run / "final").is_dir():
                continue
            try:
                if content_hash(run / "final") == model.id:
                    return metrics
            except (OSError, UserError):
                continue
    return None


def _success_rows(g: GateEvaluation) -> list[dict[str, Any]]:
    rows = []
    for r in g.results:
        if not r.name.startswith("success:"):
            continue
        ev = g.evidence.success_criteria.get(r.name.split(":", 1)[1], {})
        rows.append(
            {
                "behaviour": r.label.removeprefix("success: "),
                "direction": "increase" if r.comparator == ">=" else "decrease",
                "target": r.required,
                "baseline_rate": ev.get("baseline_rate"),
                "rate": r.observed,
                "status": r.status,
            }
        )
    return rows


def _redteam_rows(g: GateEvaluation) -> list[dict[str, Any]]:
    rows = []
    for r in g.results:
        if not r.name.startswith("redteam"):
            continue
        cat = r.name.split(":", 1)[1] if ":" in r.name else "(none)"
        ev = g.evidence.redteam.get(cat, {})
        rows.append(
            {
                "category": cat,
                "passed": ev.get("passed"),
                "total": ev.get("total"),
                "pass_rate": r.observed,
                "required": r.required,
                "status": r.status,
                "failures": list(ev.get("failures") or [])[:5],
                "source": r.source,
            }
        )
    return rows


def _with_kl_note(row: dict[str, Any], ev: Any) -> dict[str, Any]:
    """The KL threshold's row with how to read its number added to the shown detail (the verdict's own
    rows, which its digest binds, are not changed)."""
    if row.get("name") == "kl" and ev.kl is not None:
        note = kl_note(ev.kl, ev.kl_estimator)
        row = {**row, "detail": "; ".join(x for x in (row.get("detail"), note) if x)}
    return row


def gate_report_data(ws: Workspace, model_ref: str) -> ReportData:
    """Collect a gate report for a model: gate evaluation, evidence, training curves, lineage, decisions."""
    model = gate_model(ws, model_ref)
    g = gate_evaluate(ws, model.id)
    sv = ws.current_spec()
    ev = g.evidence
    data = ReportData(
        title=f"Gate report: {model.kind} {model.short_id}",
        model={k: v for k, v in model.to_json().items() if k != "meta"},
        workspace=ws.settings.name,
        spec_hash=g.spec_hash,
        verdict=g.verdict,
        thresholds=[_with_kl_note(r.to_json(), ev) for r in g.results],
        success=_success_rows(g),
        redteam=_redteam_rows(g),
        over_refusal_rate=ev.over_refusal_rate,
        win_rates=[{"label": "candidate vs baseline", **ev.win_rate}] if ev.win_rate else [],
        min_win_rate=sv.spec.gate.min_win_rate if sv.spec is not None else None,
        kl=ev.kl,
        kl_note=kl_note(ev.kl, ev.kl_estimator),
        reward=ev.reward,
        alarms=list(ev.alarms or []),
        lineage=[r.to_json() for r in ws.lineage(model.id)],
    )
    metrics = find_metrics(ws, model)
    if metrics is not None:
        data.curves, data.reward_key = curves_from_metrics(read_metrics(metrics))
        data.metrics_source = str(metrics)
        sweep = read_sweep(metrics.parent.parent / "kl_sweep.json")  # a run of a KL sweep: <sweep>/<value>/
        if sweep:
            data.frontier, data.frontier_kind = sweep["rows"], str(sweep.get("kind", "beta"))
            data.frontier_source = str(metrics.parent.parent / "kl_sweep.json")
    try:
        data.decisions = [
            {**e.data, "hash": e.hash} for e in dlog.entries(ws, verified=True) if e.get("model") == model.id
        ]
    except dlog.DecisionLogError as err:
        data.notes.append(str(err))
    if not g.complete:
        data.notes.append(f"evaluation incomplete: {g.why_incomplete()}")
    return data
