"""Contamination guard: the gate refuses an evaluation whose prompts are in the candidate's training data.

**Training data of a model** is read through the lineage (:meth:`Workspace.lineage`): the model and all
its ancestors, i.e. every training run recorded for it and for the models it was trained from (SFT ->
reward model -> PPO / DPO), with their input artifacts. Every ancestor of kind ``demonstrations``,
``preferences``, ``prompts`` or ``dataset`` counts, except a validation split recorded as a run's
``eval_data`` input (it is not trained on). Each row's ``prompt`` (a string, or every user turn of a
chat) is hashed with :func:`rlhfops.data.prompt_key.prompt_key` (normalised: case, spacing);
HH-RLHF rows without a ``prompt`` field are read through the HH converter.

**An evaluation** overlaps when the key of any of its items' ``prompt`` is among those keys: one
shared prompt is enough. The gate then does not count it and adds a named FAIL row
``contamination:<evaluation id>`` that names the first few overlapping items (id and prompt), their
count, and the training artifact each came from. A training artifact that cannot be read is a FAIL row
too (``contamination:unreadable``): the gate cannot show the evaluation is disjoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rlhfops.data.hh import convert_hh_row
from rlhfops.data.io import read_rows
from rlhfops.data.prompt_key import prompt_keys
from rlhfops.errors import UserError
from rlhfops.gate.thresholds import ThresholdResult

if TYPE_CHECKING:
    from rlhfops.workspace.core import Workspace
    from rlhfops.workspace.store import ArtifactRecord

TRAINING_DATA_KINDS = ("demonstrations", "preferences", "prompts", "dataset")
SHOWN = 3  # overlapping items named in the row


@dataclass
class TrainingPrompts:
    """Prompt key -> id of the training artifact it came from; artifacts read; unreadable ones."""

    keys: dict[str, str] = field(default_factory=dict)
    read: list[str] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)  # artifact id -> reason


def _row_prompts(data: dict[str, Any]) -> list[Any]:
    if "prompt" in data:
        return [data["prompt"]]
    if isinstance(data.get("chosen"), str) and "Human:" in data["chosen"]:
        try:
            return [convert_hh_row(data)["prompt"]]
        except Exception:  # a row the converter skips holds no usable prompt
            return []
    return []


def _files(rec: ArtifactRecord) -> list[Any]:
    if rec.path.is_dir():
        return sorted(p for p in rec.path.rglob("*") if p.is_file() and not p.name.startswith("."))
    return [rec.path]


def training_prompts(ws: Workspace, model: ArtifactRecord) -> TrainingPrompts:
    """The prompt keys of every training-data artifact in ``model``'s lineage (see the module doc)."""

    out = TrainingPrompts()
    for rec in ws.lineage(model.id)[1:]:
        if rec.kind not in TRAINING_DATA_KINDS or rec.meta.get("input") == "eval_data":
            continue
        try:
            for f in _files(rec):
                for row in read_rows(f):
                    for prompt in _row_prompts(row.data):
                        for key in prompt_keys(prompt):
                            out.keys.setdefault(key, rec.id)
        except (UserError, OSError) as err:
            out.unreadable[rec.id] = str(err).splitlines()[0] if str(err) else type(err).__name__
            continue
        out.read.append(rec.id)
    return out


def evaluation_items(rec: ArtifactRecord) -> list[dict[str, Any]]:
    """The stored items of an evaluation (``items`` of its result JSON); [] when it has none."""
    try:
        data = json.loads(rec.path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    items = data.get("items") if isinstance(data, dict) else None
    return [it for it in items if isinstance(it, dict)] if isinstance(items, list) else []


@dataclass(frozen=True)
class Overlap:
    """Items of one evaluation whose prompt is in the training data: (item id, prompt, training artifact)."""

    evaluation: str
    items: tuple[tuple[str, str, str], ...]
    n_items: int


def find_overlap(rec: ArtifactRecord, training: TrainingPrompts) -> Overlap:
    hits = []
    items = evaluation_items(rec)
    for i, it in enumerate(items):
        for key in prompt_keys(it.get("prompt")):
            if key in training.keys:
                hits.append((str(it.get("id", i)), str(it.get("prompt")), training.keys[key]))
                break
    return Overlap(rec.id, tuple(hits), len(items))


def _fail(name: str, label: str, source: str | None, detail: str) -> ThresholdResult:
    return ThresholdResult(name, label, "==", True, False, False, source, detail)


def overlap_row(ov: Overlap, model: ArtifactRecord) -> ThresholdResult:
    shown = "; ".join(f"{iid} {prompt[:60]!r} (in {src[:12]})" for iid, prompt, src in ov.items[:SHOWN])
    more = f" and {len(ov.items) - SHOWN} more" if len(ov.items) > SHOWN else ""
    return _fail(
        f"contamination:{ov.evaluation[:12]}",
        f"contamination: evaluation {ov.evaluation[:12]} shares no prompt with the training data",
        ov.evaluation,
        f"{len(ov.items)} of {ov.n_items} item(s) are in the training data of {model.kind} "
        f"{model.id[:12]} or its ancestors: {shown}{more}; not counted: evaluate on a held-out split "
        "(`rlhfops redteam split`, `eval run --redteam-half heldout`)",
    )


def check_contamination(
    ws: Workspace, model: ArtifactRecord, evals: list[ArtifactRecord]
) -> tuple[set[str], list[ThresholdResult]]:
    """(ids of the evaluations to refuse, FAIL rows) for ``model``'s evaluations ``evals``."""
    training = training_prompts(ws, model)
    rows: list[ThresholdResult] = []
    if training.unreadable:
        aid, why = next(iter(training.unreadable.items()))
        rows.append(
            _fail(
                "contamination:unreadable",
                "contamination: the training data in the lineage can be read",
                aid,
                f"{len(training.unreadable)} training artifact(s) unreadable ({aid[:12]}: {why}); "
                "the gate cannot show the evaluations are disjoint from them",
            )
        )
    refused: set[str] = set()
    for rec in evals:
        ov = find_overlap(rec, training)
        if ov.items:
            refused.add(rec.id)
            rows.append(overlap_row(ov, model))
    return refused, rows
