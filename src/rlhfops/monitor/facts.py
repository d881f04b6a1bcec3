"""Workspace facts for the trigger table: read once from the artifact store and the people table.

Each fact is what one rule of ``triggers_default.yaml`` reads, taken from where the other plays record it:

* **deployed model**: the model of the latest gate ``decision`` that promoted (``meta.model`` or its first
  parent); without one, the latest policy (ppo-model, dpo-model, then sft-model).
* **reward hacking** (Play 4): the ``alarms`` of the latest policy. Of its ``evaluation`` artifacts (child
  artifacts) the latest of each (``kind``, ``suite``) counts, as for the gate; when any of those lists
  ``alarms`` (the evaluation contract: ``meta.alarms``, each ``{name, evidence, action}``), the union of
  their alarms wins (a red-team run's ``opening_collapse`` is not hidden by a later task-prompt
  evaluation, and a re-run supersedes its suite's earlier result); otherwise the PPO run summary the
  training stage stored (``meta.eval.alarms``).
* **edge-case failures** (Play 5, Play 3 when recurring): the red-team failures
  (``meta.redteam.<category>.failures[].id``) of the latest evaluation or red-team artifact that has
  any; each failure's ``occurrences`` is the number of such artifacts (over time) it failed in.
* **rater turnover** (Play 3): the share of the current rater pool added after the reference date (the
  creation of the preference data behind the latest reward model, else the reward model itself). The
  workspace records when a person got a role (``people.added_at``) but not removals, so turnover counts
  newcomers only; a rater who left and was not replaced is not seen (said in the evidence).
* **reward model age** (Play 3): days since the latest reward model was stored, against the spec's
  ``reward_model_refresh_days``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rlhfops.gate import log as dlog
from rlhfops.monitor.triggers import EdgeCaseFailure

if TYPE_CHECKING:
    from rlhfops.workspace.core import Workspace
    from rlhfops.workspace.store import ArtifactRecord

POLICY_ORDER = ("ppo-model", "dpo-model", "sft-model")
PROMOTED = ("promote", "promoted", "approve", "approved")
TURNOVER_NOTE = "removals are not recorded in the workspace: turnover counts raters added since"


@dataclass(frozen=True)
class Turnover:
    """Rater turnover between two dates: share of the pool at ``until`` that joined after ``since``."""

    value: float | None
    since: datetime
    until: datetime
    pool_before: list[str]
    pool_now: list[str]
    added: list[str]
    note: str = TURNOVER_NOTE


@dataclass
class WorkspaceFacts:
    """The facts and the ids they came from (the ids make each trigger's fingerprint)."""

    deployed: ArtifactRecord | None = None
    reward_hacking_alarms: list[str] = field(default_factory=list)
    alarm_sources: list[str] = field(default_factory=list)
    edge_cases: list[EdgeCaseFailure] = field(default_factory=list)
    turnover: Turnover | None = None
    reward_model: ArtifactRecord | None = None
    reward_model_age_days: float | None = None
    reward_model_refresh_days: float | None = None


def _latest(arts: list[ArtifactRecord], *kinds: str) -> ArtifactRecord | None:
    hits = [a for a in arts if a.kind in kinds]
    return hits[-1] if hits else None


def deployed_model(arts: list[ArtifactRecord], trusted: set[str] | None = None) -> ArtifactRecord | None:
    """The model the latest promoting gate decision names, else the latest policy (see module doc).

    With ``trusted`` (the hashes of the verified decision log's entries, :func:`trusted_decisions`),
    only those decisions count: a decision row added or edited in the database is not followed."""
    by_id = {a.id: a for a in arts}
    for d in reversed([a for a in arts if a.kind == "decision"]):
        if trusted is not None and d.id not in trusted:
            continue
        if str(d.meta.get("decision", "")).lower() not in PROMOTED:
            continue
        ref = d.meta.get("model") or (d.parents[0] if d.parents else None)
        if isinstance(ref, str):
            hits = [a for a in arts if a.id.startswith(ref.lower())] if len(ref) >= 4 else []
            if ref in by_id:
                return by_id[ref]
            if len(hits) == 1:
                return hits[0]
    for kind in POLICY_ORDER:
        m = _latest(arts, kind)
        if m is not None:
            return m
    return None


def _meta_get(meta: dict[str, Any], key: str) -> Any:
    if key in meta:
        return meta[key]
    ev = meta.get("eval")
    return ev.get(key) if isinstance(ev, dict) else None


def _alarm_text(alarm: Any, source: ArtifactRecord) -> str:
    if isinstance(alarm, dict):
        name = alarm.get("name", "alarm")
        evidence = alarm.get("evidence", "")
        return f"{name} ({source.kind} {source.id[:12]}): {evidence}".strip()
    return f"{alarm} ({source.kind} {source.id[:12]})"


def reward_hacking(arts: list[ArtifactRecord]) -> tuple[list[str], list[str]]:
    """(alarm lines, ids of the artifacts they came from) of the latest policy."""
    policy = _latest(arts, "ppo-model", "dpo-model")
    if policy is None:
        return [], []
    latest: dict[tuple[str, str], ArtifactRecord] = {}
    for a in arts:
        if a.kind == "evaluation" and policy.id in a.parents:
            key = (str(a.meta.get("kind", "")), str(a.meta.get("suite", "")))
            latest.pop(key, None)  # re-insert: the dict stays in time order
            latest[key] = a
    sources = [a for a in latest.values() if "alarms" in a.meta] or [policy]
    lines: list[str] = []
    ids: list[str] = []
    for source in sources:
        alarms = _meta_get(source.meta, "alarms") or []
        if isinstance(alarms, list) and alarms:
            lines += [_alarm_text(a, source) for a in alarms]
            ids.append(source.id)
    return lines, ids


def _failures(meta: dict[str, Any]) -> dict[str, str]:
    """failure key ("category/id") -> description, from ``meta.redteam``."""
    out: dict[str, str] = {}
    redteam = meta.get("redteam")
    if not isinstance(redteam, dict):
        return out
    for cat, res in redteam.items():
        fails = res.get("failures") if isinstance(res, dict) else None
        for f in fails if isinstance(fails, list) else []:
            if isinstance(f, dict) and f.get("id") is not None:
                prompt = str(f.get("prompt", "")).replace("\n", " ")
                out[f"{cat}/{f['id']}"] = f"{cat}: {prompt[:100]}"
    return out


def edge_case_failures(arts: list[ArtifactRecord]) -> list[EdgeCaseFailure]:
    """Failures of the latest red-team result, with how many red-team results (over time) had each."""
    runs = [_failures(a.meta) for a in arts if a.kind in ("evaluation", "redteam")]
    runs = [r for r in runs if r]
    if not runs:
        return []
    counts: dict[str, int] = {}
    for r in runs:
        for key in r:
            counts[key] = counts.get(key, 0) + 1
    return [EdgeCaseFailure(key, desc, counts[key]) for key, desc in sorted(runs[-1].items())]


def rater_turnover(ws: Workspace, since: datetime, until: datetime | None = None) -> Turnover:
    """Share of the rater pool at ``until`` (default now) that got the rater role after ``since``."""
    import sqlalchemy as sa

    from rlhfops.workspace import db

    until = until or datetime.now(UTC)
    with ws.session() as s:
        rows = s.execute(sa.select(db.Person.name, db.Person.added_at).where(db.Person.role == "rater")).all()
    joined = [(name, db.as_utc(at)) for name, at in rows]
    now = sorted(n for n, at in joined if at <= until)
    before = sorted(n for n, at in joined if at <= since)
    added = sorted(set(now) - set(before))
    value = len(added) / len(now) if now else None
    return Turnover(value, since, until, before, now, added)


def _turnover_reference(arts: list[ArtifactRecord], rm: ArtifactRecord | None) -> datetime | None:
    if rm is None:
        return None
    by_id = {a.id: a for a in arts}
    prefs = [by_id[p] for p in rm.parents if p in by_id and by_id[p].kind == "preferences"]
    return max(p.created_at for p in prefs) if prefs else rm.created_at


def trusted_decisions(ws: Workspace) -> set[str]:
    """The decisions of the verified decision log (a broken log raises, naming its first bad entry:
    monitoring does not guess what is deployed from a log or database that was edited)."""
    return {e.hash for e in dlog.entries(ws, verified=True)}


def collect_facts(ws: Workspace, now: datetime | None = None) -> WorkspaceFacts:
    """Read every non-drift fact of the trigger table from the workspace."""
    now = now or datetime.now(UTC)
    arts = ws.artifacts()
    facts = WorkspaceFacts(deployed=deployed_model(arts, trusted_decisions(ws)))
    facts.reward_hacking_alarms, facts.alarm_sources = reward_hacking(arts)
    facts.edge_cases = edge_case_failures(arts)
    rm = _latest(arts, "reward-model")
    facts.reward_model = rm
    ref = _turnover_reference(arts, rm)
    if ref is not None:
        facts.turnover = rater_turnover(ws, ref, now)
    if rm is not None:
        facts.reward_model_age_days = round((now - rm.created_at).total_seconds() / 86400, 1)
        spec = ws.current_spec().spec
        if spec is not None:
            facts.reward_model_refresh_days = float(spec.reward_model_refresh_days)
    return facts
