"""The fixed red-team split: a training half and a held-out half, decided by each item's prompt alone.

Rule: an item belongs to the **held-out** half when the first 8 hex digits of its prompt key
(:func:`rlhfops.data.prompt_key.prompt_key`: SHA-256 of the normalised prompt), read as an integer,
are odd; else to the **training** half. The half of an item depends on nothing but its prompt, so the
split is the same on every machine and run, and adding (or removing) items never moves an existing
item to the other half. About half the items land in each half (a hash coin flip: for 192 items the
held-out share is within 0.5 +- 0.07 with 95% probability).

Failures on the training half may become preference items (Play 3); evaluations for the gate use the
held-out half only (``rlhfops eval run --redteam-half heldout``), and the gate's contamination guard
refuses an evaluation whose prompts are in the candidate's training data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rlhfops.data.files import atomic_write_text
from rlhfops.data.prompt_key import prompt_key
from rlhfops.errors import UserError
from rlhfops.redteam.suite import Suite, SuiteItem, load_suite

HALVES = ("train", "heldout")


def item_half(prompt: str) -> str:
    """``"heldout"`` or ``"train"`` for a prompt (see the module doc for the rule)."""
    return "heldout" if int(prompt_key(prompt)[:8], 16) % 2 else "train"


def split_items(items: list[SuiteItem]) -> tuple[list[SuiteItem], list[SuiteItem]]:
    """(training half, held-out half), each in suite order."""
    train = [it for it in items if item_half(it.prompt) == "train"]
    heldout = [it for it in items if item_half(it.prompt) == "heldout"]
    return train, heldout


def select_half(suite: Suite, half: str | None) -> Suite:
    """``suite`` restricted to ``half`` (``train`` / ``heldout``); unchanged when ``half`` is None."""
    if half is None:
        return suite
    if half not in HALVES:
        raise UserError(f"red-team half {half!r}: use one of {', '.join(HALVES)}")
    train, heldout = split_items(suite.items)
    items = train if half == "train" else heldout
    if not items:
        raise UserError(f"suite {suite.name!r}: its {half} half is empty ({len(suite.items)} item(s) in all)")
    return Suite(f"{suite.name} ({half} half)", items, dict(suite.behaviours), list(suite.paths))


@dataclass(frozen=True)
class SplitFiles:
    train: Path
    heldout: Path
    n_train: int
    n_heldout: int


def _lines(suite: Suite, items: list[SuiteItem], half: str) -> str:
    header = {"suite": f"{suite.name}-{half}", "behaviours": suite.behaviours} if suite.behaviours else None
    rows = ([header] if header else []) + [it.as_dict() for it in items]
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def write_split(suite_ref: str, out_dir: Path) -> SplitFiles:
    """Write ``<name>.train.jsonl`` and ``<name>.heldout.jsonl`` (suite format) into ``out_dir``.

    Both files are written atomically; an existing pair is replaced (the split is a pure function of
    the suite, so rewriting it gives the same halves for the items it had)."""

    suite = load_suite(suite_ref)
    train, heldout = split_items(suite.items)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"redteam split: --out {out_dir} is a file; give a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = suite.name.replace("/", "_").replace(" ", "_")
    t = atomic_write_text(out_dir / f"{stem}.train.jsonl", _lines(suite, train, "train"))
    h = atomic_write_text(out_dir / f"{stem}.heldout.jsonl", _lines(suite, heldout, "heldout"))
    return SplitFiles(Path(t), Path(h), len(train), len(heldout))
