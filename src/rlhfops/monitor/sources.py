"""What production is compared against: the training prompts and the gate evaluation's outputs.

**Training prompts** (input drift): the prompts of the data the deployed model descends from. The
deployed model is :func:`rlhfops.monitor.facts.deployed_model` (or the model given with ``--model``);
its lineage (:meth:`Workspace.lineage`) is walked and every ``prompts``, ``preferences`` and
``demonstrations`` artifact in it is read (JSONL / JSON / Parquet files, or such files inside a
directory). A prompt is the ``prompt`` field (a string, or the last user message of a message list) or,
for ``messages`` rows, the last user message. With no model in the workspace, every artifact of those
kinds is used and the report says so. At most ``max_prompts`` prompts are kept (a seeded sample).

**Reference outputs** (output drift): the per-item responses of the deployed model's latest
``evaluation`` artifact that holds them, red-team suites excluded (adversarial probes are not normal
traffic). The stored file is JSON or JSONL; items are a top-level list or the list under ``items`` /
``results`` / ``outputs`` / ``rows``; an item's response is ``response`` / ``output`` / ``completion`` /
``candidate`` (a string) and its reward ``reward`` / ``reward_score`` / ``score`` (a number), and
``prompt`` is kept for re-scoring. ``--reference FILE`` (rows with ``response`` and optionally
``reward`` and ``prompt``) overrides it.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlhfops.data.io import read_rows
from rlhfops.errors import DataError, UserError

if TYPE_CHECKING:
    from rlhfops.workspace.core import Workspace
    from rlhfops.workspace.store import ArtifactRecord

PROMPT_KINDS = ("prompts", "preferences", "demonstrations")
DATA_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".json", ".parquet")
ITEM_LIST_KEYS = ("items", "results", "outputs", "rows")
RESPONSE_KEYS = ("response", "output", "completion", "candidate")
REWARD_KEYS = ("reward", "reward_score", "score")


@dataclass
class TrainingPrompts:
    """The reference prompts for input drift and where they came from."""

    prompts: list[str]
    model: ArtifactRecord | None
    sources: list[str]
    total: int
    note: str = ""


@dataclass
class ReferenceOutputs:
    """The reference side of output drift: responses, their rewards (if any), prompts (if any)."""

    responses: list[str]
    source: str
    rewards: list[float] | None = None
    prompts: list[str | None] = field(default_factory=list)


def prompt_text(row: dict[str, Any]) -> str | None:
    """The user prompt of a data row (see module doc), or None."""
    value = row.get("prompt")
    if value is None and isinstance(row.get("messages"), list):
        value = row["messages"][:-1]
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, list):
        users = [m.get("content") for m in value if isinstance(m, dict) and m.get("role") == "user"]
        users = [u for u in users if isinstance(u, str) and u.strip()]
        return users[-1] if users else None
    return None


def data_files(path: Path) -> list[Path]:
    """``path`` if it is a data file, else the data files inside the directory, sorted."""
    if path.is_file():
        return [path] if path.name.lower().endswith(DATA_SUFFIXES) else []
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.name.lower().endswith(DATA_SUFFIXES))
    return []


def _rows(path: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for f in data_files(path):
        try:
            out.extend(r.data for r in read_rows(f))
        except DataError:
            continue  # a file of another shape (e.g. a JSON summary) is not a prompt source
    return out


def resolve_model(ws: Workspace, ref: str | None) -> ArtifactRecord | None:
    """The model named by ``ref`` (an artifact id or prefix), or the deployed model."""
    from rlhfops.monitor.facts import deployed_model, trusted_decisions

    if ref is not None:
        return ws.artifact(ref)
    return deployed_model(ws.artifacts(), trusted_decisions(ws))


def training_prompts(
    ws: Workspace, model: ArtifactRecord | None, max_prompts: int = 10_000, seed: int = 0
) -> TrainingPrompts:
    """The prompts the model was trained on (its lineage), sampled down to ``max_prompts``."""
    if model is not None:
        arts = [a for a in ws.lineage(model.id) if a.kind in PROMPT_KINDS]
        note = f"lineage of {model.kind} {model.id[:12]}"
    else:
        arts = [a for a in ws.artifacts() if a.kind in PROMPT_KINDS and a.meta.get("monitor") is None]
        note = "no model in the workspace: every prompts/preferences/demonstrations artifact"
    prompts: list[str] = []
    sources: list[str] = []
    for a in arts:
        got = [p for p in (prompt_text(r) for r in _rows(a.path)) if p is not None]
        if got:
            prompts.extend(got)
            sources.append(a.id)
    if not prompts:
        where = f"the lineage of {model.kind} {model.id[:12]}" if model is not None else "this workspace"
        raise UserError(
            f"monitor drift: no training prompts in {where} (no prompts/preferences/demonstrations "
            "artifact with a 'prompt' field); register the training data or pass --train-prompts FILE"
        )
    total = len(prompts)
    if total > max_prompts:
        prompts = random.Random(seed).sample(prompts, max_prompts)
    return TrainingPrompts(prompts, model, sources, total, note)


def prompts_from_file(path: Path, max_prompts: int = 10_000, seed: int = 0) -> TrainingPrompts:
    """Training prompts from a data file given on the command line."""
    prompts = [p for p in (prompt_text(r.data) for r in read_rows(path)) if p is not None]
    if not prompts:
        raise DataError(f"{path}: no row has a 'prompt' (or 'messages') field")
    total = len(prompts)
    if total > max_prompts:
        prompts = random.Random(seed).sample(prompts, max_prompts)
    return TrainingPrompts(prompts, None, [], total, f"file {path}")


def _items(obj: Any) -> list[dict[str, Any]]:
    if isinstance(obj, list):
        return [x for x in obj if isinstance(x, dict)]
    if isinstance(obj, dict):
        for key in ITEM_LIST_KEYS:
            if isinstance(obj.get(key), list):
                return _items(obj[key])
    return []


def _first(item: dict[str, Any], keys: tuple[str, ...], kind: type | tuple[type, ...]) -> Any:
    for k in keys:
        v = item.get(k)
        if isinstance(v, kind) and not isinstance(v, bool):
            return v
    return None


def outputs_from_items(items: list[dict[str, Any]], source: str) -> ReferenceOutputs | None:
    """Responses (and rewards, when every item has one) of evaluation items; None if < 2 responses."""
    kept = [(it, _first(it, RESPONSE_KEYS, str)) for it in items]
    kept = [(it, r) for it, r in kept if r is not None]
    if len(kept) < 2:
        return None
    rewards = [_first(it, REWARD_KEYS, (int, float)) for it, _ in kept]
    prompts = [prompt_text(it) for it, _ in kept]
    return ReferenceOutputs(
        [r for _, r in kept],
        source,
        [float(x) for x in rewards] if all(x is not None for x in rewards) else None,
        prompts,
    )


def _read_items(path: Path) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for f in data_files(path):
        if f.name.lower().endswith(".json"):
            try:
                items.extend(_items(json.loads(f.read_text(encoding="utf-8"))))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                continue
        else:
            items.extend(_rows(f))
    return items


def reference_outputs(
    ws: Workspace, model: ArtifactRecord | None, path: Path | None = None
) -> tuple[ReferenceOutputs | None, str]:
    """(reference outputs, why none) from ``path`` or the model's latest non-red-team evaluation."""
    if path is not None:
        ref = outputs_from_items([r.data for r in read_rows(path)], f"file {path}")
        if ref is None:
            raise DataError(f"{path}: fewer than 2 rows with a 'response' string; nothing to compare")
        return ref, ""
    if model is None:
        return None, "no deployed model, so no gate evaluation to compare with (pass --reference FILE)"
    evals = [
        a
        for a in ws.children(model.id)
        if a.kind == "evaluation" and a.meta.get("kind") != "redteam" and a.meta.get("suite") != "redteam"
    ]
    for a in reversed(evals):
        ref = outputs_from_items(
            _read_items(a.path), f"evaluation {a.id[:12]} of {model.kind} {model.id[:12]}"
        )
        if ref is not None:
            return ref, ""
    return None, (
        f"{model.kind} {model.id[:12]} has no evaluation with per-item responses "
        "(pass --reference FILE with a 'response' per row)"
    )
