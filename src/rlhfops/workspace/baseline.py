"""The business baseline (Play 1): measured before any RLHF work, kept for the before/after.

Three metrics (names shared with :mod:`rlhfops.monitor.business`):

* ``task_completion_rate``: share of outputs whose task was completed (0-1);
* ``review_minutes_per_output``: human review minutes per output (>= 0);
* ``client_flag_rate``: share of outputs a client flagged as an error (0-1).

A CSV gives either one row per output (columns ``task_completed``, ``review_minutes``,
``client_flag``; booleans as 1/0/true/false/yes/no), from which the rates are computed, or a summary
with columns ``metric`` and ``value``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from rlhfops.errors import DataError, UserError

METRICS: dict[str, tuple[str, bool]] = {  # name -> (per-output column, is a proportion)
    "task_completion_rate": ("task_completed", True),
    "review_minutes_per_output": ("review_minutes", False),
    "client_flag_rate": ("client_flag", True),
}
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f"}


@dataclass(frozen=True)
class BaselineFromCsv:
    """Metrics computed from a CSV and the number of rows behind them (None for a summary CSV)."""

    values: dict[str, float]
    n: int | None


def check_values(values: dict[str, float]) -> None:
    """Refuse unknown metric names and values outside their range."""
    if not values:
        raise UserError(
            "baseline: no metric given; use --task-completion-rate, --review-minutes, "
            "--client-flag-rate or --csv"
        )
    for name, value in values.items():
        if name not in METRICS:
            raise UserError(f"baseline: unknown metric {name!r}; valid: {', '.join(METRICS)}")
        if value != value or value < 0 or (METRICS[name][1] and value > 1):
            bound = "between 0 and 1" if METRICS[name][1] else ">= 0"
            raise UserError(f"baseline: {name}={value!r}: must be {bound}")


def _bool(raw: str, where: str, column: str) -> float:
    v = raw.strip().lower()
    if v in _TRUE:
        return 1.0
    if v in _FALSE:
        return 0.0
    raise DataError(f"{where}: {column}={raw!r}: expected 1/0, true/false or yes/no")


def read_baseline_csv(path: Path) -> BaselineFromCsv:
    """Metrics from a per-output CSV (rates/means over rows) or a metric,value summary CSV."""
    if not path.is_file():
        raise DataError(f"{path}: not found")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        cols = [c.strip() for c in (reader.fieldnames or [])]
        rows = list(reader)
    if {"metric", "value"} <= set(cols):
        values: dict[str, float] = {}
        for i, row in enumerate(rows, start=2):
            try:
                values[row["metric"].strip()] = float(row["value"])
            except ValueError:
                raise DataError(f"{path}:{i}: value={row['value']!r}: not a number") from None
        check_values(values)
        return BaselineFromCsv(values, None)
    present = {m: col for m, (col, _) in METRICS.items() if col in cols}
    if not present:
        want = ", ".join(col for col, _ in METRICS.values())
        raise DataError(f"{path}:1: no known columns; expected per-output columns ({want}) or metric,value")
    if not rows:
        raise DataError(f"{path}: no rows")
    sums = dict.fromkeys(present, 0.0)
    counts = dict.fromkeys(present, 0)
    for i, row in enumerate(rows, start=2):
        for metric, col in present.items():
            raw = (row.get(col) or "").strip()
            if raw == "":
                continue
            where = f"{path}:{i}"
            if METRICS[metric][1]:
                sums[metric] += _bool(raw, where, col)
            else:
                try:
                    sums[metric] += float(raw)
                except ValueError:
                    raise DataError(f"{where}: {col}={raw!r}: not a number") from None
            counts[metric] += 1
    values = {m: sums[m] / counts[m] for m in present if counts[m]}
    check_values(values)
    return BaselineFromCsv(values, len(rows))
