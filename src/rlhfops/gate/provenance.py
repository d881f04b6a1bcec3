"""Provenance checks of the evidence the gate reads: only rlhfops' own, signed results count.

For the gated model: its training attestation must verify with the workspace key, name the model's
content digest, and the stored files must still hash to it; an explicit external import
(``meta.external``) is a failure the gate owner can approve over with a written reason.

For each evaluation of the model: the attestation must verify, be an evaluation statement whose
subjects are this model and the stored result file (which must still hash to its id), and whose
results equal the stored ``meta`` (less the attestation). The gate then reads the *signed* results.
An evaluation that fails a check is not counted and is named as a failure (``provenance:<id>``); an
external one is counted (the owner sees its numbers) and is also a failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rlhfops.gate.thresholds import EvalSource, ThresholdResult
from rlhfops.workspace import attest
from rlhfops.workspace.provenance import ATTESTATION, EXTERNAL
from rlhfops.workspace.store import content_hash

if TYPE_CHECKING:
    from rlhfops.workspace.core import Workspace
    from rlhfops.workspace.store import ArtifactRecord


@dataclass
class CheckedEvidence:
    """Evaluations that may be counted (signed results, or external ones) and the provenance rows."""

    sources: list[EvalSource] = field(default_factory=list)
    rows: list[ThresholdResult] = field(default_factory=list)


def _row(name: str, label: str, ok: bool, source: str | None, detail: str) -> ThresholdResult:
    return ThresholdResult(name, label, "==", True, ok, ok, source, detail)


def _stored_digest(rec: ArtifactRecord) -> str | None:
    try:
        return content_hash(rec.path)
    except Exception:  # missing or unreadable files: reported as a mismatch
        return None


def _external(rec: ArtifactRecord) -> str | None:
    ext = rec.meta.get(EXTERNAL)
    if not ext:
        return None
    ext = ext if isinstance(ext, dict) else {}
    return (
        f"external import by {ext.get('imported_by', '?')} ({ext.get('reason', 'no reason')}); "
        "unverified: counts as a failure unless the gate owner approves over it"
    )


def _verified(pub: Any, rec: ArtifactRecord, predicate_type: str) -> dict[str, Any]:
    """The statement of ``rec``'s attestation; raises AttestationError naming the problem."""
    env = rec.meta.get(ATTESTATION)
    if env is None:
        raise attest.AttestationError("unsigned: not written by rlhfops")
    if pub is None:
        raise attest.AttestationError("the workspace has no attestation key (keys/attestation.pub)")
    stmt = attest.verify_envelope(pub, env)
    if stmt.get("predicateType") != predicate_type:
        raise attest.AttestationError(f"a {stmt.get('predicateType')} statement, not {predicate_type}")
    return stmt


def check_model(ws: Workspace, model: ArtifactRecord, pub: Any) -> ThresholdResult:
    """One row: the model was trained by rlhfops (attestation verifies against its content)."""
    label = f"provenance: {model.kind} {model.short_id} trained by rlhfops"
    name = "provenance:model"
    ext = _external(model)
    if ext:
        return _row(name, label, False, model.id, ext)
    try:
        stmt = _verified(pub, model, attest.TRAINING)
        if attest.subject_digest(stmt, "model") != model.id:
            raise attest.AttestationError("the training statement names another model")
        signed_eval = (stmt.get("predicate") or {}).get("eval", {})
        if attest.canonical_json(signed_eval) != attest.canonical_json(model.meta.get("eval", {})):
            raise attest.AttestationError("its stored training metrics differ from the signed ones (edited)")
        if _stored_digest(model) != model.id:
            raise attest.AttestationError("the stored model files no longer hash to its id (changed)")
    except attest.AttestationError as err:
        return _row(name, label, False, model.id, f"{err}; not a model rlhfops trained")
    stage = (stmt.get("predicate") or {}).get("stage")
    return _row(name, label, True, model.id, f"training attestation verified (stage {stage})")


def check_evaluation(
    ws: Workspace, model: ArtifactRecord, rec: ArtifactRecord, pub: Any
) -> tuple[EvalSource | None, ThresholdResult | None]:
    """(source to count or None, failure row or None) for one evaluation of ``model``."""
    name, label = f"provenance:{rec.short_id}", f"provenance: evaluation {rec.short_id} signed by rlhfops"
    created = rec.created_at.isoformat()
    ext = _external(rec)
    if ext:
        meta = {k: v for k, v in rec.meta.items() if k != EXTERNAL}
        return EvalSource(rec.id, meta, created), _row(name, label, False, rec.id, ext)
    try:
        stmt = _verified(pub, rec, attest.EVALUATION)
        if attest.subject_digest(stmt, "model") != model.id:
            raise attest.AttestationError(
                f"signed for model {str(attest.subject_digest(stmt, 'model'))[:12]}, not {model.short_id}"
            )
        if attest.subject_digest(stmt, "evaluation") != rec.id or _stored_digest(rec) != rec.id:
            raise attest.AttestationError("digest mismatch: the stored result file is not the one signed")
        results = stmt.get("predicate", {}).get("results")
        stored = {k: v for k, v in rec.meta.items() if k != ATTESTATION}
        if not isinstance(results, dict) or attest.canonical_json(results) != attest.canonical_json(stored):
            raise attest.AttestationError("its stored results differ from the signed ones (edited)")
    except attest.AttestationError as err:
        return None, _row(name, label, False, rec.id, f"{err}; not counted")
    return EvalSource(rec.id, results, created), None


def checked_evidence(ws: Workspace, model: ArtifactRecord, evals: list[ArtifactRecord]) -> CheckedEvidence:
    """The model's provenance row, then the evaluations to count and a failure row per bad one."""
    try:
        pub = attest.public_key(ws.root)
    except (attest.AttestationError, ValueError):  # an unreadable key verifies nothing
        pub = None
    out = CheckedEvidence(rows=[check_model(ws, model, pub)])
    for rec in evals:
        src, row = check_evaluation(ws, model, rec, pub)
        if src is not None:
            out.sources.append(src)
        if row is not None:
            out.rows.append(row)
    return out
