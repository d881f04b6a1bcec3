"""``rlhfops monitor drift``: one drift check of the workspace, stored as a report, triggers opened.

Steps (each a function of :mod:`rlhfops.monitor`):

1. production records from the stored production-log batches (:mod:`~rlhfops.monitor.logs`), from
   ``since`` on, of one ``model_id`` if asked; only the rows of the last ``max_windows`` windows are
   embedded, so the cost does not grow with the log's history;
2. training prompts of the deployed model through lineage (:mod:`~rlhfops.monitor.sources`);
3. input drift: both sets embedded with the bundled all-MiniLM-L6-v2 (:func:`embed.embed_texts`), MMD
   permutation test + domain-classifier AUC per sliding window (:func:`drift.windowed_drift`); the latest
   window decides, and its new clusters (with example prompts) and most-drifted prompts go in the report;
4. output drift: response length, refusal rate and (when both sides have one) reward score of the same
   production rows against the gate evaluation's outputs, KS / proportion tests with Holm's correction
   (:func:`outputs.output_drift`);
5. business metrics of the same rows against the workspace baseline, with CIs (:mod:`~.business`);
6. the report (JSON) is stored as an artifact (store kind ``report``, ``meta.monitor = "drift-report"``;
   parents: the model, the training data, the log batches), then the trigger table is evaluated with it
   (:func:`engine.check_workspace_triggers`).

Windows: an integer is a number of rows (windows end at the newest row; leftover older rows that do not
fill a window are not tested), a duration such as ``7d`` / ``12h`` / ``30m`` a time span.
"""

from __future__ import annotations

import importlib.util
import json
import re
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rlhfops.config import validate_section
from rlhfops.errors import ConfigError, UserError
from rlhfops.monitor import embed
from rlhfops.monitor.business import compare_to_baseline
from rlhfops.monitor.drift import DriftConfig, WindowDrift, windowed_drift
from rlhfops.monitor.engine import REPORT_TAG, CheckResult, check_workspace_triggers, monitor_section
from rlhfops.monitor.ingest import ProductionRecord
from rlhfops.monitor.logs import production_records
from rlhfops.monitor.outputs import output_drift, response_metrics
from rlhfops.monitor.sources import prompts_from_file, reference_outputs, resolve_model, training_prompts

if TYPE_CHECKING:
    from rlhfops.monitor.sources import ReferenceOutputs, TrainingPrompts
    from rlhfops.workspace.core import Workspace

Scorer = Callable[[list[str], list[str]], list[float]]  # (prompts, responses) -> reward scores
_SPAN = re.compile(r"^(\d+(?:\.\d+)?)\s*([dhm])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


@dataclass
class DriftSettings:
    """What one drift check compares (the CLI options of ``rlhfops monitor drift``)."""

    window: int | timedelta = 1000
    step: int | timedelta | None = None
    max_windows: int = 5
    since: datetime | None = None
    model: str | None = None
    model_id: str | None = None
    train_prompts: Path | None = None
    reference: Path | None = None
    max_train: int = 10_000
    max_drifted_prompts: int = 200
    alpha: float = 0.05
    config: DriftConfig = field(default_factory=DriftConfig)


@dataclass
class DriftRun:
    """The report (as stored), its artifact id and the trigger check made with it (None if skipped)."""

    report: dict[str, Any]
    report_id: str
    check: CheckResult | None


def parse_span(text: str) -> int | timedelta:
    """``"1000"`` -> 1000 rows; ``"7d"`` / ``"12h"`` / ``"30m"`` -> a timedelta."""
    t = str(text).strip().lower()
    if t.isdigit():
        if int(t) < 1:
            raise ConfigError(f"--window {text!r}: must be >= 1 row")
        return int(t)
    m = _SPAN.match(t)
    if not m or float(m.group(1)) <= 0:
        raise ConfigError(f"--window {text!r}: give a number of rows (1000) or a span like 7d, 12h, 30m")
    return timedelta(**{_UNITS[m.group(2)]: float(m.group(1))})


def drift_config(ws: Workspace, overrides: dict[str, Any] | None = None) -> DriftConfig:
    """DriftConfig from ``monitor.drift`` in rlhfops.yaml, then ``--set`` overrides."""
    data = dict(monitor_section(ws).get("drift") or {})
    data.update(overrides or {})
    return validate_section(
        DriftConfig, data, "monitor.drift (rlhfops.yaml or --set)", prefix="monitor.drift."
    )


def recent_rows(records: list[ProductionRecord], s: DriftSettings) -> list[ProductionRecord]:
    """The rows of the last ``max_windows`` windows (records sorted by time)."""
    if not records:
        return records
    if isinstance(s.window, int):
        stride = s.step if isinstance(s.step, int) else s.window
        span = s.window + stride * (s.max_windows - 1)
        n = len(records)
        if n <= s.window:
            return records
        keep = min(n, span)
        keep -= (keep - s.window) % stride  # windows end exactly at the newest row
        return records[n - keep :]
    stride_t = s.step if isinstance(s.step, timedelta) else s.window
    start = records[-1].time - (s.window + stride_t * (s.max_windows - 1))
    return [r for r in records if r.time > start]


def _require_drift_extra() -> None:
    if importlib.util.find_spec("sklearn") is None:
        raise UserError(
            "monitor drift needs scikit-learn (the domain classifier and clustering); "
            "install the drift extra: pip install 'rlhfops[drift]'"
        )


def _span(s: DriftSettings) -> tuple[int | None, timedelta | None]:
    """How many newest rows (or how long a span) the last ``max_windows`` windows cover."""
    if isinstance(s.window, int):
        stride = s.step if isinstance(s.step, int) else s.window
        return s.window + stride * (s.max_windows - 1), None
    stride_t = s.step if isinstance(s.step, timedelta) else s.window
    return None, s.window + stride_t * (s.max_windows - 1)


def _row_id(r: ProductionRecord) -> str:
    return r.id if r.id else f"line {r.line}"


def _examples(rows: list[ProductionRecord], order: list[int], n: int) -> list[dict[str, str]]:
    """Up to ``n`` rows with distinct prompts, in ``order`` (nearest the centroid first)."""
    out: dict[str, dict[str, str]] = {}
    for i in order:
        if len(out) >= n:
            break
        out.setdefault(rows[i].prompt, {"id": _row_id(rows[i]), "prompt": rows[i].prompt})
    return list(out.values())


def input_section(wins: list[WindowDrift], rows: list[ProductionRecord], max_prompts: int) -> dict[str, Any]:
    """The JSON of the input-drift part: every window, and the latest one in detail."""
    windows = []
    for w in wins:
        rep = w.report
        windows.append(
            {
                "rows": w.end - w.start,
                "start_time": w.start_time.isoformat() if w.start_time else None,
                "end_time": w.end_time.isoformat() if w.end_time else None,
                "drifted": rep.drifted,
                "mmd2": rep.mmd.statistic,
                "mmd_p": rep.mmd.p_value,
                "auc": rep.auc.auc,
                "novel_share": rep.novel_share,
                "new_clusters": len(rep.new_clusters),
                "evidence": rep.evidence,
            }
        )
    last = wins[-1].report
    latest = {
        **windows[-1],
        "rule": last.rule,
        "alpha": last.alpha,
        "auc_threshold": last.auc.threshold,
        "new_clusters": [
            {
                "size": c.size,
                "share": c.share,
                "mean_distance": c.mean_distance,
                "examples": _examples(rows, c.centroid_examples + c.members, len(c.centroid_examples)),
            }
            for c in last.new_clusters
        ],
        "drifted_prompts": [
            {"id": _row_id(rows[i]), "prompt": rows[i].prompt} for i in last.shifted_indices[:max_prompts]
        ],
    }
    return {"windows": windows, "latest": latest}


def output_section(
    rows: list[ProductionRecord],
    ref: ReferenceOutputs | None,
    why: str,
    alpha: float,
    scorer: Scorer | None,
) -> dict[str, Any]:
    """Output drift of ``rows`` against the reference outputs (or why it was skipped)."""
    if ref is None:
        return {"reference": None, "skipped": why, "metrics": []}
    prod_rewards = ref_rewards = None
    if scorer is not None and all(p is not None for p in ref.prompts):
        ref_rewards = scorer([p or "" for p in ref.prompts], ref.responses)
        prod_rewards = scorer([r.prompt for r in rows], [r.response for r in rows])
    elif scorer is not None:
        why = "reward score not compared: the reference items carry no prompt to score them with"
    else:
        why = "reward score not compared: production rows carry none (pass --reward-model to score both)"
    reference = response_metrics(ref.responses, ref_rewards)
    production = response_metrics([r.response for r in rows], prod_rewards)
    metrics = output_drift(reference, production, alpha=alpha)
    return {
        "reference": ref.source,
        "n_reference": len(ref.responses),
        "n_production": len(rows),
        "skipped": why or None,
        "metrics": [asdict(m) for m in metrics],
    }


def business_section(ws: Workspace, rows: list[ProductionRecord]) -> list[dict[str, Any]]:
    return [asdict(m) for m in compare_to_baseline(ws.baseline_values(), rows)]


def _training(ws: Workspace, s: DriftSettings) -> TrainingPrompts:
    if s.train_prompts is not None:
        tp = prompts_from_file(s.train_prompts, s.max_train, s.config.seed)
        tp.model = resolve_model(ws, s.model)
        return tp
    return training_prompts(ws, resolve_model(ws, s.model), s.max_train, s.config.seed)


def build_report(
    ws: Workspace, s: DriftSettings, scorer: Scorer | None = None
) -> tuple[dict[str, Any], list]:
    """The drift report (JSON-ready dict) and the artifact ids it was made from."""
    _require_drift_extra()
    last_rows, last_span = _span(s)
    records, log_ids, total = production_records(ws, s.since, s.model_id, last_rows, last_span)
    if not records:
        raise UserError("monitor drift: no production records; add some with `rlhfops monitor ingest FILE`")
    rows = recent_rows(records, s)
    train = _training(ws, s)
    emb = embed.embed_texts(train.prompts + [r.prompt for r in rows])
    times = [r.time for r in rows] if isinstance(s.window, timedelta) else None
    wins = windowed_drift(
        emb[: len(train.prompts)], emb[len(train.prompts) :], times, s.window, s.step, s.config
    )
    if not wins:
        raise UserError(
            f"monitor drift: {len(rows)} production rows in the windows tested; a window needs at least "
            f"{s.config.min_window_records} (ingest more, widen --window, or set "
            "monitor.drift.min_window_records)"
        )
    latest = wins[-1]
    window_rows = rows[latest.start : latest.end] if times is None else rows
    if times is not None:  # time windows: rows of the latest window by time
        lo, hi = latest.start_time, latest.end_time
        window_rows = [r for r in rows if lo is not None and hi is not None and lo <= r.time <= hi]
    ref, why = reference_outputs(ws, train.model, s.reference)
    report = {
        "created_at": datetime.now(UTC).isoformat(),
        "model": train.model.id if train.model else None,
        "production": {
            "rows": total,
            "rows_tested": len(rows),
            "batches": log_ids,
            "since": s.since.isoformat() if s.since else None,
            "model_id": s.model_id,
            "window": str(s.window),
            "step": str(s.step) if s.step else None,
        },
        "training": {"prompts": len(train.prompts), "total": train.total, "sources": train.sources},
        "training_note": train.note,
        "input": input_section(wins, rows, s.max_drifted_prompts),
        "output": output_section(window_rows, ref, why, s.alpha, scorer),
        "business": business_section(ws, window_rows),
        "settings": s.config.model_dump(),
    }
    parents = ([train.model.id] if train.model else []) + train.sources + log_ids
    return report, parents


def run_drift(
    ws: Workspace,
    settings: DriftSettings,
    creator: str,
    rules: str | Path | None = None,
    triggers: bool = True,
    scorer: Scorer | None = None,
) -> DriftRun:
    """Build the report, store it as a drift-report artifact, then evaluate the trigger table with it."""
    report, parents = build_report(ws, settings, scorer)
    latest = report["input"]["latest"]
    drifted_metrics = [m["name"] for m in report["output"]["metrics"] if m["drifted"]]
    meta = {
        "monitor": REPORT_TAG,
        "model": report["model"],
        "input_drifted": latest["drifted"],
        "input_evidence": latest["evidence"],
        "new_clusters": len(latest["new_clusters"]),
        "output_drifted": drifted_metrics,
        "rows_tested": report["production"]["rows_tested"],
    }
    with tempfile.TemporaryDirectory(prefix="rlhfops-drift-") as tmp:
        path = Path(tmp) / "drift_report.json"
        path.write_text(json.dumps(report, indent=2, default=_json_default), encoding="utf-8")
        report_id = ws.register_artifact("report", path, list(dict.fromkeys(parents)), creator, meta)
    check = check_workspace_triggers(ws, creator, rules, report, report_id) if triggers else None
    return DriftRun(json.loads(json.dumps(report, default=_json_default)), report_id, check)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
