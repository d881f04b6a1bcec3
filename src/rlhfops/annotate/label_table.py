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


_MISSING = object()


def _from_row(row: Any) -> Label:
    """A Label from a mapping or an object with item (item_id), rater, choice, at (created_at), batch."""
    if isinstance(row, Mapping):
        get = row.get
    else:

        def get(name: str, default: Any = None) -> Any:
            return getattr(row, name, default)

    item = get("item", _MISSING)
    at = get("at", _MISSING)
    return Label(
        get("item_id") if item is _MISSING else item,
        get("rater"),
        get("choice"),
        get("created_at") if at is _MISSING else at,
        get("batch"),
    )


def as_labels(rows: Iterable[Any], keep_skips: bool = False) -> list[Label]:
    """Normalise label rows (see the module docstring); drops ``skip`` unless ``keep_skips``.

    Raises UserError naming the row for an unknown choice or a missing item / rater.
    """
    seen: dict[tuple[Hashable, str], Label] = {}
    for i, row in enumerate(rows):
        if type(row) is Label:
            label = row
        elif isinstance(row, tuple | list):
            if not 3 <= len(row) <= 5:
                raise UserError(f"label row {i}: expected (item, rater, choice[, at[, batch]]), got {row!r}")
            label = Label(*row)
        else:
            label = _from_row(row)
        if label.item is None or label.rater is None:
            raise UserError(f"label row {i}: item and rater are required, got {row!r}")
        if label.choice not in CHOICES + IGNORED:
            raise UserError(
                f"label row {i} (item {label.item!r}, rater {label.rater!r}): choice {label.choice!r} is not "
                f"one of {', '.join(CHOICES + IGNORED)}"
            )
        key = (label.item, label.rater)
        if key in seen:
            del seen[key]  # the later label replaces it (and takes its place in the order)
        seen[key] = label
    return [lab for lab in seen.values() if keep_skips or lab.choice not in IGNORED]


@dataclass(frozen=True)
class LabelTable:
    """Labels as index arrays: label ``l`` is rater ``rater[l]``'s choice ``choice[l]`` on ``item[l]``."""

    raters: list[str]  # [R] sorted by name
    items: list[Hashable]  # [U] in first-seen order
    rater: np.ndarray  # int64 [N] index into raters
    item: np.ndarray  # int64 [N] index into items
    choice: np.ndarray  # int64 [N] index into CHOICES

    def counts(self) -> np.ndarray:
        """int [U, C]: labels per item and choice."""
        c = len(CHOICES)
        return np.bincount(self.item * c + self.choice, minlength=len(self.items) * c).reshape(-1, c)

    def codes(self) -> np.ndarray:
        """float [R, U]: choice index, NaN where the rater did not label the item.

        The input of the nominal agreement metrics (which only compare codes for equality).
        """
        out = np.full((len(self.raters), len(self.items)), np.nan)
        out[self.rater, self.item] = self.choice
        return out


def label_table(labels: list[Label]) -> LabelTable:
    """Raters sorted by name, items in first-seen order (labels as returned by :func:`as_labels`)."""
    raters = sorted({lab.rater for lab in labels})
    items = list(dict.fromkeys(lab.item for lab in labels))
    r_idx = {r: i for i, r in enumerate(raters)}
    u_idx = {u: i for i, u in enumerate(items)}
    c_idx = {c: i for i, c in enumerate(CHOICES)}
    n = len(labels)
    rr = np.fromiter((r_idx[lab.rater] for lab in labels), dtype=np.int64, count=n)
    uu = np.fromiter((u_idx[lab.item] for lab in labels), dtype=np.int64, count=n)
    cc = np.fromiter((c_idx[lab.choice] for lab in labels), dtype=np.int64, count=n)
    return LabelTable(raters, items, rr, uu, cc)


def safe_metric(fn: Any, *args: Any, **kwargs: Any) -> float | None:
    """``fn(...)`` as a float, or None where the statistic is undefined (UserError)."""
    try:
        return float(fn(*args, **kwargs))
    except UserError:
        return None
