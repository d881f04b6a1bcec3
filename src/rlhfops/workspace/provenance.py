"""Writers of the evidence the gate reads: signed training and evaluation records, external imports.

* :func:`training_envelope` -- the attestation a training run attaches to the model it registers
  (:meth:`rlhfops.workspace.core.Workspace.record_training_run`): the model's content digest, the run's
  inputs and spec version, the stage, its eval metrics and the rlhfops version.
* :func:`record_evaluation` -- the one writer of ``evaluation`` artifacts (``eval run``, ``eval
  compare``, ``eval collect``, the demo): the result file, and in its ``meta`` the summary the gate
  reads plus ``attestation``, a statement binding the model's and the result file's digests, the
  suite's (prompt set's) digest, the judge, the rlhfops version and the results.
* :func:`import_external` -- an outside model or evaluation, marked ``meta.external`` (who, when,
  why) and never signed: the gate counts it as a failure that only the gate owner's approval with a
  written reason lets through.

Statements are signed with the workspace key (:mod:`rlhfops.workspace.attest`).
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlhfops import __version__
from rlhfops.errors import DataError, UserError
from rlhfops.workspace import attest
from rlhfops.workspace.store import content_hash

if TYPE_CHECKING:
    from rlhfops.workspace.core import Workspace

# The kinds the gate reads (or writes): `artifact add` refuses them.
GATE_KINDS = ("sft-model", "dpo-model", "ppo-model", "reward-model", "evaluation", "redteam", "decision")
EXTERNAL_KINDS = tuple(k for k in GATE_KINDS if k != "decision")
MIN_REASON = 10
ATTESTATION = "attestation"
EXTERNAL = "external"


def _version() -> str:
    return __version__


def sign(ws: Workspace, stmt: dict[str, Any]) -> dict[str, Any]:
    """``stmt`` signed with the workspace key (created on first use)."""
    return attest.sign_statement(attest.ensure_key(ws.root), stmt)


def training_envelope(
    ws: Workspace, model_digest: str, stage: str, parents: list[str], meta: dict[str, Any], creator: str
) -> dict[str, Any]:
    """The signed statement a training run attaches to its output model (see the module docstring)."""
    predicate = {
        "stage": stage,
        "inputs": list(parents),
        "named_inputs": meta.get("named_inputs", {}),
        "eval": meta.get("eval", {}),
        "run_dir": meta.get("run_dir"),
        "creator": creator,
        "rlhfops_version": _version(),
    }
    return sign(ws, attest.statement({"model": model_digest}, attest.TRAINING, predicate))


def add_command_hint(kind: str) -> str:
    """What to run instead of ``artifact add KIND`` for a kind the gate reads."""
    if kind == "decision":
        return "decision artifacts are written only by the gate (`rlhfops gate sign`, `rlhfops promote`)"
    made_by = (
        "`rlhfops eval run` / `eval compare` / `eval collect`"
        if kind in ("evaluation", "redteam")
        else "`rlhfops train ...` (a training run registers its model)"
    )
    return (
        f"artifact add: {kind} artifacts are evidence the gate reads and are written by {made_by}; "
        f"to bring in an outside one use `rlhfops artifact import --external {kind} PATH --reason ...` "
        "(it counts as a gate failure until the gate owner approves over it)"
    )


def record_evaluation(
    ws: Workspace,
    meta: dict[str, Any],
    items: list[dict[str, Any]],
    notes: list[str],
    parents: list[str],
    creator: str,
    *,
    suite_digest: str,
    judge: str,
) -> str:
    """Store an evaluation result with its signed attestation; returns the artifact id.

    ``meta["model"]`` must be the candidate's artifact id; ``suite_digest`` is the SHA-256 of the
    prompt set evaluated (:func:`rlhfops.workspace.attest.sha256_json` of its items).
    """
    model = ws.resolve_id(str(meta.get("model") or ""))
    meta = {**meta, "model": model}
    baseline = meta.get("baseline")
    payload = json.dumps({"meta": meta, "items": items, "notes": notes}, indent=1)
    with tempfile.TemporaryDirectory() as d:
        name = f"evaluation-{meta.get('kind')}-{meta.get('suite')}.json".replace("/", "_")
        f = Path(d) / name
        f.write_text(payload, encoding="utf-8")

        subjects = {"model": model, "evaluation": content_hash(f)}
        if baseline and len(str(baseline)) == 64:
            subjects["baseline"] = str(baseline)
        predicate = {
            "kind": meta.get("kind"),
            "suite": meta.get("suite"),
            "suite_digest": suite_digest,
            "judge": judge,
            "rlhfops_version": _version(),
            "creator": creator,
            "results": meta,
        }
        env = sign(ws, attest.statement(subjects, attest.EVALUATION, predicate))
        return ws.register_artifact("evaluation", f, parents, creator, {**meta, ATTESTATION: env})


def _file_meta(path: Path) -> dict[str, Any]:
    """The ``meta`` object of a result JSON file (``{"meta": {...}, ...}``), else {}."""
    if not path.is_file() or path.suffix.lower() != ".json":
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a JSON result file ({err})") from None
    return dict(data["meta"]) if isinstance(data, dict) and isinstance(data.get("meta"), dict) else {}


def import_external(
    ws: Workspace,
    kind: str,
    path: Path,
    parents: list[str],
    person: str,
    reason: str,
    meta: dict[str, Any] | None = None,
) -> str:
    """Register an outside model or evaluation, marked external and unverified; returns its id.

    An evaluation's meta is the file's ``meta`` object (a result JSON) updated with ``meta``.
    """
    if kind not in EXTERNAL_KINDS:
        raise UserError(
            f"artifact import --external: kind {kind!r}; valid: {', '.join(EXTERNAL_KINDS)} "
            "(other kinds: `rlhfops artifact add`)"
        )
    reason = reason.strip()
    if len(reason) < MIN_REASON:
        raise UserError(
            f"artifact import --external: --reason {reason!r} is too short; say where it comes from and why "
            f"(at least {MIN_REASON} characters, kept with the artifact)"
        )
    path = Path(path)
    if not path.exists():
        raise UserError(f"artifact import --external: {path}: no such file or directory")
    full = {**(_file_meta(path) if kind in ("evaluation", "redteam") else {}), **(meta or {})}
    full.pop(ATTESTATION, None)
    if kind in ("evaluation", "redteam"):
        if not parents and full.get("model"):
            parents = [str(full["model"])]
        if not parents:
            raise UserError(
                "artifact import --external: an evaluation needs the model it evaluated (--parent MODEL_ID)"
            )
        full["model"] = ws.resolve_id(str(parents[0]))  # the first --parent is the model evaluated
    full[EXTERNAL] = {
        "reason": reason,
        "imported_by": person,
        "imported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "verified": False,
    }
    return ws.register_artifact(kind, path, parents, person, full)
