"""The binding deployment gate: evaluate, sign, promote.

* :func:`gate_evaluate` checks the current spec's thresholds against the model's stored evaluations.
* :func:`gate_sign` records the gate owner's decision (approve / reject) on a complete evaluation of
  the model under the current, signed spec. Approving over failed thresholds needs a written reason
  and is recorded with ``override: true`` in the decision log, where it stays.
* :func:`promote` is the only way a model becomes the deployed one. It refuses for anyone but the gate
  owner, on a spec that is not signed on its current content, on an incomplete evaluation, without a
  pass (or an approval over the failures), without the gate owner's approval, when the approval was
  given on another spec or on other evidence, and when the play order (Plays 1-4) is not met.

Decisions are entries of the decision log (:mod:`rlhfops.gate.log`) and ``decision`` artifacts.
``meta.decision`` is ``sign-approve``, ``sign-reject`` or ``promoted``: only a promotion counts as a
deployment for the rest of rlhfops (status, monitoring).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rlhfops.errors import UserError
from rlhfops.gate import log as dlog
from rlhfops.gate.choose import Choice, choose_candidate, main_criterion
from rlhfops.gate.contamination import check_contamination
from rlhfops.gate.verdict import GateEvaluation, evaluate_gate
from rlhfops.redteam.suite import shipped_suites

if TYPE_CHECKING:
    from rlhfops.workspace.core import SpecVersion, Workspace
    from rlhfops.workspace.signing import Signer
    from rlhfops.workspace.store import ArtifactRecord

GATE_ROLE = "gate-owner"
MODEL_KINDS = ("sft-model", "dpo-model", "ppo-model")
EVAL_KINDS = ("evaluation", "redteam")
DECISIONS = ("approve", "reject")
MIN_OVERRIDE_REASON = 10


class GateRefused(UserError):
    """The gate refuses a sign or a promotion; the message names why and what to do."""


@dataclass(frozen=True)
class Deployment:
    model: str
    model_kind: str
    person: str
    promoted_at: str
    override: bool
    entry: int


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def gate_model(ws: Workspace, ref: str) -> ArtifactRecord:
    """The model artifact ``ref`` names; only trained models can be gated."""
    m = ws.artifact(ref)
    if m.kind not in MODEL_KINDS:
        raise UserError(
            f"gate: artifact {m.short_id} is a {m.kind}, not a model; give a {', '.join(MODEL_KINDS)} id"
        )
    return m


def model_evaluations(ws: Workspace, model: ArtifactRecord) -> list[ArtifactRecord]:
    """Evaluations whose candidate is ``model`` (not those where it is the baseline), oldest first."""
    out = []
    for a in ws.children(model.id):
        if a.kind not in EVAL_KINDS:
            continue
        cand = a.meta.get("model") or (a.parents[0] if a.parents else None)
        if cand == model.id:
            out.append(a)
    return out


def _spec(ws: Workspace, action: str) -> SpecVersion:
    sv = ws.current_spec()
    if sv.spec is None:
        first = sv.check.problems[0] if sv.check.problems else "invalid"
        raise GateRefused(f"{action}: the spec does not pass `rlhfops spec check` ({first}); fix it first")
    return sv


def _require_signed_spec(sv: SpecVersion, action: str) -> None:
    if sv.is_signed_and_current:
        return
    stale = {s.role for s in sv.stale_signatures}
    roles = ", ".join(
        f"{r}{' (signature stale: the spec changed)' if r in stale else ''}" for r in sv.missing_roles
    )
    raise GateRefused(
        f"{action} refused: spec {sv.hash[:12]} is not signed on its current content by {roles}; "
        "the gate's thresholds come from the signed spec: have it signed (`rlhfops spec sign --role ...`), "
        "then evaluate and sign the gate again"
    )


def gate_evaluate(ws: Workspace, model_ref: str) -> GateEvaluation:
    """Pass/fail per threshold of the current spec for the model, from its stored evaluations.

    Only evidence rlhfops wrote and signed counts (:mod:`rlhfops.gate.provenance`); a model or an
    evaluation that is unsigned, tampered with or imported as external is a named failure; so is an
    evaluation whose prompts are in the model's training data (:mod:`rlhfops.gate.contamination`).
    """
    from rlhfops.gate.provenance import checked_evidence

    model = gate_model(ws, model_ref)
    sv = _spec(ws, "gate evaluate")
    evals = model_evaluations(ws, model)
    checked = checked_evidence(ws, model, evals)  # only signed results count
    refused, contaminated = check_contamination(ws, model, evals)  # nor results on training prompts
    return evaluate_gate(
        model.id,
        sv.hash,
        sv.spec.gate,
        sv.spec.success_criteria,
        [s for s in checked.sources if s.id not in refused],
        provenance=[*checked.rows, *contaminated],
        redteam_categories=tuple(shipped_suites()),
    )


def gate_choose(ws: Workspace, model_refs: list[str]) -> Choice:
    """`rlhfops gate choose`: each model's gate verdict, ranked by :mod:`rlhfops.gate.choose` (the spec's
    main criterion breaks ties; the order given breaks the rest). Names in the result are artifact ids."""
    if not model_refs:
        raise UserError("gate choose: give at least one model (artifact id or unique prefix)")
    verdicts: dict[str, GateEvaluation] = {}
    for ref in model_refs:
        g = gate_evaluate(ws, ref)
        if g.model in verdicts:
            raise UserError(f"gate choose: model {ref!r} given twice (artifact {g.model[:12]})")
        verdicts[g.model] = g
    criterion, direction = main_criterion(_spec(ws, "gate choose").spec)
    return choose_candidate(verdicts, criterion, direction)


def _compact(g: GateEvaluation) -> list[dict[str, Any]]:
    return [
        {
            "name": r.name,
            "required": r.required,
            "observed": r.observed,
            "status": r.status,
            "source": r.source,
        }
        for r in g.results
    ]


def gate_sign(ws: Workspace, model_ref: str, signer: Signer, decision: str, reason: str) -> dlog.LogEntry:
    """Record the gate owner's decision on the model's complete evaluation (see the module docstring).

    ``signer`` is the authenticated gate owner (:func:`rlhfops.gate.auth.authenticate`); the entry is
    signed with their key.

    The gate decides and never renders: the caller (``rlhfops gate sign``) writes the decision's report.
    """
    from rlhfops.workspace.signing import require_registered

    require_registered(ws, signer, "gate sign")
    person = signer.name
    decision = decision.strip().lower()
    if decision not in DECISIONS:
        raise UserError(f"gate sign: --decision {decision!r}; valid: {', '.join(DECISIONS)}")
    ws.require_role(person, GATE_ROLE, "gate sign")
    model = gate_model(ws, model_ref)
    sv = _spec(ws, "gate sign")
    _require_signed_spec(sv, "gate sign")
    g = gate_evaluate(ws, model.id)
    if not g.complete:
        raise GateRefused(
            f"gate sign refused: the evaluation of {model.kind} {model.short_id} is incomplete "
            f"({g.why_incomplete()}); run the missing evaluations (`rlhfops eval run`) first"
        )
    reason = reason.strip()
    if not reason:
        raise UserError("gate sign: --reason is empty; say why (it is kept in the decision log)")
    override = decision == "approve" and not g.passed
    if override and len(reason) < MIN_OVERRIDE_REASON:
        failed = ", ".join(r.name for r in g.failed)
        raise GateRefused(
            f"gate sign: approving over failed thresholds ({failed}) needs a written reason of at least "
            f"{MIN_OVERRIDE_REASON} characters (got {reason!r}); it is recorded as an override forever"
        )
    spec_id = ws.register_spec_version(person)
    record = {
        "action": "sign",
        "decision": decision,
        "override": override,
        "model": model.id,
        "model_kind": model.kind,
        "person": person,
        "role": GATE_ROLE,
        "reason": reason,
        "spec_hash": sv.hash,
        "verdict": g.verdict,
        "failed": [r.name for r in g.failed],
        "evaluation_digest": g.digest,
        "evaluations": list(g.evidence.counted),
        "results": _compact(g),
    }
    parents = [model.id, spec_id, *g.evidence.counted]
    entry = dlog.append(ws, record, parents, signer, _now())
    return entry


def latest_signature(entries: list[dlog.LogEntry], model_id: str) -> dlog.LogEntry | None:
    signs = [e for e in entries if e.get("action") == "sign" and e.get("model") == model_id]
    return signs[-1] if signs else None


def _check_signature(sig: dlog.LogEntry | None, g: GateEvaluation, sv: SpecVersion, label: str) -> None:
    if sig is None:
        raise GateRefused(
            f"promote refused: {label} has no gate decision; the gate owner runs "
            f"`rlhfops gate sign {g.model[:12]} --decision approve --reason ...` first"
        )
    if sig.get("decision") != "approve":
        raise GateRefused(
            f"promote refused: the latest gate decision on {label} (log entry {sig.seq}) is "
            f"{sig.get('decision')!r} by {sig.get('person')}: {sig.get('reason')}"
        )
    if sig.get("spec_hash") != sv.hash:
        raise GateRefused(
            f"promote refused: the approval of {label} (log entry {sig.seq}) was signed on spec "
            f"{str(sig.get('spec_hash'))[:12]}, the spec is now {sv.hash[:12]} (stale); "
            "evaluate and sign the gate again on the current spec"
        )
    if sig.get("evaluation_digest") != g.digest:
        raise GateRefused(
            f"promote refused: the evidence for {label} changed since the approval (log entry {sig.seq}): "
            "new or different evaluations; run `rlhfops gate evaluate` and sign again"
        )


def promote(ws: Workspace, model_ref: str, signer: Signer) -> dlog.LogEntry:
    """Make the model the deployed one, if and only if the gate allows it (see the module docstring).

    ``signer`` is the authenticated gate owner; the promotion entry is signed with their key."""
    from rlhfops.workspace.plays import check_stage_ready
    from rlhfops.workspace.signing import require_registered

    require_registered(ws, signer, "promote")
    person = signer.name
    ws.require_role(person, GATE_ROLE, "promote")
    model = gate_model(ws, model_ref)
    label = f"{model.kind} {model.short_id}"
    sv = _spec(ws, "promote")
    _require_signed_spec(sv, "promote")
    entries = dlog.entries(ws, verified=True)
    g = gate_evaluate(ws, model.id)
    if not g.complete:
        raise GateRefused(f"promote refused: the evaluation of {label} is incomplete ({g.why_incomplete()})")
    sig = latest_signature(entries, model.id)
    if not g.passed and not (sig is not None and sig.get("decision") == "approve" and sig.get("override")):
        failed = "; ".join(f"{r.name} {r.observed} (needs {r.comparator} {r.required})" for r in g.failed)
        raise GateRefused(
            f"promote refused: {label} does not pass the gate: {failed}; only the gate owner's approval "
            "over the failures, with a written reason, lets it through"
        )
    _check_signature(sig, g, sv, label)
    current = _deployed_from(entries)
    if current is not None and current.model == model.id:
        raise GateRefused(
            f"promote: {label} is already the deployed model (decision log entry {current.entry}); "
            "nothing to do"
        )
    check_stage_ready(ws, "promote")  # Plays 1-4 complete on the current spec; promote has no override
    spec_id = ws.register_spec_version(person)
    record = {
        "action": "promote",
        "decision": "promote",
        "model": model.id,
        "model_kind": model.kind,
        "person": person,
        "role": GATE_ROLE,
        "spec_hash": sv.hash,
        "signature": sig.hash,
        "signature_entry": sig.seq,
        "override": bool(sig.get("override")),
        "evaluation_digest": g.digest,
    }

    def still_valid(now: list[dlog.LogEntry]) -> None:  # under the log's lock: no decision in between
        latest = latest_signature(now, model.id)
        if latest is None or latest.hash != sig.hash:
            raise GateRefused(f"promote refused: a newer gate decision on {label} was recorded meanwhile")
        dep = _deployed_from(now)
        if dep is not None and dep.model == model.id:
            raise GateRefused(f"promote: {label} was deployed meanwhile (decision log entry {dep.entry})")

    return dlog.append(ws, record, [model.id, spec_id, sig.hash], signer, _now(), check=still_valid)


def deployed(ws: Workspace) -> Deployment | None:
    """The model of the latest promotion in the (verified) decision log, or None."""
    return _deployed_from(dlog.entries(ws, verified=True))


def _deployed_from(entries: list[dlog.LogEntry]) -> Deployment | None:
    promos = [e for e in entries if e.get("action") == "promote"]
    if not promos:
        return None
    e = promos[-1]
    return Deployment(
        e.get("model"),
        e.get("model_kind"),
        e.get("person"),
        e.get("logged_at"),
        bool(e.get("override")),
        e.seq,
    )
