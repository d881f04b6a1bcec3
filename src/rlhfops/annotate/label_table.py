"""Preference labels as a table: the input normalisation shared by the annotation-quality functions.

A label is a rater's choice on a pair in canonical terms (``"A"`` is response 1): ``"A"``, ``"B"``,
``"tie"``, ``"both_bad"``; ``"skip"`` is accepted and dropped (no judgement). See
:mod:`rlhfops.annotate.quality` for what is computed from them.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from rlhfops.errors import UserError

CHOICES: tuple[str, ...] = ("A", "B", "tie", "both_bad")
IGNORED: tuple[str, ...] = ("skip",)


@dataclass(frozen=True)
class Label:
    """One rater's choice on one pair."""

    item: Hashable
    rater: str
    choice: str
    at: datetime | None = None
    batch: Hashable | None = None


def _field(row: Any, *names: str) -> Any:
    for name in names:
        if isinstance(row, Mapping):
            if name in row:
                return row[name]
        elif hasattr(row, name):
            return getattr(row, name)
    return None


def as_labels(rows: Iterable[Any], keep_skips: bool = False) -> list[Label]:
    """Normalise label rows (see the module docstring); drops ``skip`` unless ``keep_skips``.

    Raises UserError naming the row for an unknown choice or a missing item / rater.
    """
    seen: dict[tuple[Hashable, str], Label] = {}
    for i, row in enumerate(rows):
        if isinstance(row, Label):
            label = row
        elif isinstance(row, tuple | list):
            if not 3 <= len(row) <= 5:
                raise UserError(f"label row {i}: expected (item, rater, choice[, at[, batch]]), got {row!r}")
            label = Label(*row)
        else:
            label = Label(
                _field(row, "item", "item_id"),
                _field(row, "rater"),
                _field(row, "choice"),
                _field(row, "at", "created_at"),
                _field(row, "batch"),
            )
        if label.item is None or label.rater is None:
            raise UserError(f"label row {i}: item and rater are required, got {row!r}")
        if label.choice not in CHOICES + IGNORED:
            raise UserError(
                f"label row {i} (item {label.item!r}, rater {label.rater!r}): choice {label.choice!r} is not "
                f"one of {', '.join(CHOICES + IGNORED)}"
            )
        seen.pop((label.item, label.rater), None)
        seen[(label.item, label.rater)] = label
    return [lab for lab in seen.values() if keep_skips or lab.choice not in IGNORED]


@dataclass(frozen=True)
class LabelTable:
    """Labels as a one-hot raters x items x choices array."""

    raters: list[str]
    items: list[Hashable]
    onehot: np.ndarray  # bool [R, U, C] one-hot over CHOICES

    @property
    def present(self) -> np.ndarray:  # bool [R, U]
        return self.onehot.any(axis=2)

    def matrix(self) -> list[list[str | None]]:
        """Raters x items choices (None where missing), the input of the agreement metrics."""
        code = np.where(self.present, self.onehot.argmax(axis=2), -1)
        return [[CHOICES[c] if c >= 0 else None for c in row] for row in code.tolist()]


def label_table(labels: list[Label]) -> LabelTable:
    """Raters sorted by name, items in first-seen order."""
    raters = sorted({lab.rater for lab in labels})
    items = list(dict.fromkeys(lab.item for lab in labels))
    r_idx = {r: i for i, r in enumerate(raters)}
    u_idx = {u: i for i, u in enumerate(items)}
    c_idx = {c: i for i, c in enumerate(CHOICES)}
    onehot = np.zeros((len(raters), len(items), len(CHOICES)), dtype=bool)
    if labels:
        rr = np.fromiter((r_idx[lab.rater] for lab in labels), dtype=np.int64, count=len(labels))
        uu = np.fromiter((u_idx[lab.item] for lab in labels), dtype=np.int64, count=len(labels))
        cc = np.fromiter((c_idx[lab.choice] for lab in labels), dtype=np.int64, count=len(labels))
        onehot[rr, uu, cc] = True
    return LabelTable(raters, items, onehot)


def safe_metric(fn: Any, *args: Any, **kwargs: Any) -> float | None:
    """``fn(...)`` as a float, or None where the statistic is undefined (UserError)."""
    try:
        return float(fn(*args, **kwargs))
    except UserError:
        return None
