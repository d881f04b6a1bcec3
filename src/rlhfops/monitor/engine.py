"""The trigger engine connected to the workspace: facts -> rules -> open triggers (each once).

:func:`check_workspace_triggers` reads the workspace facts (:mod:`rlhfops.monitor.facts`) and the latest
drift report, evaluates the trigger table and opens a workspace trigger
(:meth:`rlhfops.workspace.core.Workspace.open_trigger`) for each firing not seen before.

**The table.** ``--rules FILE`` when given; else ``monitor.triggers_file`` in ``rlhfops.yaml``; else
``triggers.yaml`` at the workspace root; else the bundled ``triggers_default.yaml``. Copy the bundled
file into the workspace (``rlhfops triggers rules --init``) to tune thresholds for the team.

**Each firing once.** A firing's *fingerprint* names the facts behind it, not their wording: the drift
report's id (drift rules), the failing edge-case ids (edge-case rules), the alarm lines (reward
hacking), the rater pool (turnover), the reward model's id (age). It is stored in the trigger's
``source`` (``monitor:<rule>:<12 hex>``); a firing whose fingerprint any trigger (open or closed)
already has is not opened again, so closing a trigger is not undone by the next check on the same
facts, while new facts (a new failure id, a newer drift report) open a new one. State-like rules (drift,
new task, rater turnover, reward model age) keep at most one open trigger each: while it is open, a
newer drift report that still drifts is reported as "still open" instead of opening a second one (and
writing a second comparison batch); once it is closed, the next firing opens a new one.

**Behaviour drift -> Play 3 with the prompts.** When the ``input_drift`` rule opens a trigger, its
drifted prompts are written as a ``prompts`` artifact (JSONL ``{"prompt", "id", "source"}``, parent: the
drift report, ``meta.monitor = "comparison-batch"``): the next batch of comparison items. The trigger's
evidence names that artifact.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlhfops.config import closest_key, settings_section
from rlhfops.errors import ConfigError
from rlhfops.monitor.facts import WorkspaceFacts, collect_facts
from rlhfops.monitor.outputs import MetricDrift
from rlhfops.monitor.triggers import (
    PLAYS,
    DriftedPrompt,
    MonitorSnapshot,
    NewCluster,
    Rule,
    TriggerFiring,
    evaluate_triggers,
    load_rules,
)

if TYPE_CHECKING:
    from rlhfops.workspace.core import TriggerRecord, Workspace
    from rlhfops.workspace.store import ArtifactRecord

WORKSPACE_RULES_FILE = "triggers.yaml"
# state-like conditions: while a rule's trigger is open, the same rule opens no second one
ONE_OPEN = frozenset({"net_new_task", "input_drift", "output_drift", "rater_turnover", "reward_model_age"})
REPORT_TAG = "drift-report"
BATCH_TAG = "comparison-batch"
SOURCE_PREFIX = "monitor:"


@dataclass(frozen=True)
class OpenedTrigger:
    """A firing and what became of it: ``trigger_id`` (None when its facts were already raised)."""

    firing: TriggerFiring
    trigger_id: int | None
    fingerprint: str
    comparison_batch: str | None = None
    open_trigger: int | None = None  # the rule's trigger that is still open (state-like rules)

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.firing.rule_id,
            "play": self.firing.play,
            "evidence": self.firing.evidence,
            "action": self.firing.payload.get("action", ""),
            "trigger_id": self.trigger_id,
            "new": self.trigger_id is not None,
            "comparison_batch": self.comparison_batch,
            "open_trigger": self.open_trigger,
        }


@dataclass
class CheckResult:
    """The rules used, every firing (new or already raised) and the facts behind them."""

    rules_source: str
    firings: list[OpenedTrigger] = field(default_factory=list)
    facts: WorkspaceFacts | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def opened(self) -> list[OpenedTrigger]:
        return [f for f in self.firings if f.trigger_id is not None]


MONITOR_KEYS = ("triggers_file", "drift")  # the keys of the monitor: section of rlhfops.yaml


def monitor_section(ws: Workspace) -> dict[str, Any]:
    """The ``monitor:`` section of ``rlhfops.yaml`` ({} when absent); an unknown key names the closest."""
    section = settings_section(ws.settings, "monitor") or {}
    if not isinstance(section, dict):
        raise ConfigError(
            f"{ws.root / 'rlhfops.yaml'}: monitor: expected a mapping ({', '.join(MONITOR_KEYS)})"
        )
    for key in section:
        if key not in MONITOR_KEYS:
            valid = list(MONITOR_KEYS)
            raise ConfigError(
                f"{ws.root / 'rlhfops.yaml'}: unknown key 'monitor.{key}'{closest_key(str(key), valid)}"
            )
    return section


def rules_path(ws: Workspace, explicit: str | Path | None = None) -> Path | None:
    """The trigger table for ``ws`` (see module doc); None = the bundled default."""
    if explicit is not None:
        return Path(explicit)
    section = monitor_section(ws)
    if section.get("triggers_file"):
        p = ws.root / str(section["triggers_file"])
        if not p.is_file():
            raise ConfigError(f"{ws.root / 'rlhfops.yaml'}: monitor.triggers_file={p.name!r} not found")
        return p
    p = ws.root / WORKSPACE_RULES_FILE
    return p if p.is_file() else None


def workspace_rules(ws: Workspace, explicit: str | Path | None = None) -> tuple[list[Rule], str]:
    path = rules_path(ws, explicit)
    return load_rules(path), str(path) if path else "bundled triggers_default.yaml"


def latest_drift_report(ws: Workspace) -> ArtifactRecord | None:
    reports = [a for a in ws.artifacts("report") if a.meta.get("monitor") == REPORT_TAG]
    return reports[-1] if reports else None


def apply_drift_report(snap: MonitorSnapshot, report: dict[str, Any]) -> None:
    """Fill the drift facts of ``snap`` from a drift report (the JSON :mod:`drift_run` writes)."""
    latest = (report.get("input") or {}).get("latest") or {}
    snap.input_drifted = bool(latest.get("drifted"))
    snap.input_drift_evidence = str(latest.get("evidence", ""))
    snap.drifted_prompts = [
        DriftedPrompt(p["prompt"], p.get("id")) for p in latest.get("drifted_prompts", [])
    ]
    snap.new_clusters = [
        NewCluster(c["share"], c["size"], [e["prompt"] for e in c.get("examples", [])])
        for c in latest.get("new_clusters", [])
    ]
    snap.output_drift = [MetricDrift(**m) for m in (report.get("output") or {}).get("metrics", [])]


def snapshot_from_facts(facts: WorkspaceFacts) -> MonitorSnapshot:
    return MonitorSnapshot(
        reward_hacking_alarms=list(facts.reward_hacking_alarms),
        edge_case_failures=list(facts.edge_cases),
        rater_turnover=facts.turnover.value if facts.turnover else None,
        reward_model_age_days=facts.reward_model_age_days,
        reward_model_refresh_days=facts.reward_model_refresh_days,
    )


def _basis(rule: Rule, firing: TriggerFiring, facts: WorkspaceFacts, report_id: str | None) -> Any:
    c, p = rule.condition, firing.payload
    if c in ("net_new_task", "input_drift", "output_drift"):
        return [report_id, sorted(m["name"] for m in p.get("metrics", []))] if report_id else firing.evidence
    if c == "edge_case_failure":
        return sorted(e["id"] for e in p["edge_cases"])
    if c == "reward_hacking":
        return sorted(p["alarms"])
    if c == "rater_turnover" and facts.turnover is not None:
        return [facts.turnover.pool_now, facts.turnover.since.isoformat()]
    if c == "reward_model_age" and facts.reward_model is not None:
        return facts.reward_model.id
    return firing.evidence


def fingerprint(rule: Rule, firing: TriggerFiring, facts: WorkspaceFacts, report_id: str | None) -> str:
    """``monitor:<rule>:<12 hex>``: the same facts give the same fingerprint (see module doc)."""
    raw = json.dumps([rule.id, _basis(rule, firing, facts, report_id)], sort_keys=True, default=str)
    return f"{SOURCE_PREFIX}{rule.id}:{hashlib.sha256(raw.encode()).hexdigest()[:12]}"


def write_comparison_batch(ws: Workspace, firing: TriggerFiring, report_id: str | None, creator: str) -> str:
    """Store the firing's drifted prompts as a ``prompts`` artifact; returns its id."""
    rows = firing.payload.get("comparison_batch", [])
    with tempfile.TemporaryDirectory(prefix="rlhfops-batch-") as tmp:
        path = Path(tmp) / "drifted_prompts.jsonl"
        path.write_text(
            "".join(
                json.dumps({"prompt": r["prompt"], "id": r.get("id"), "source": "drift"}, ensure_ascii=False)
                + "\n"
                for r in rows
            ),
            encoding="utf-8",
        )
        meta = {"monitor": BATCH_TAG, "rows": len(rows), "drift_report": report_id, "rule": firing.rule_id}
        return ws.register_artifact("prompts", path, [report_id] if report_id else [], creator, meta)


def check_workspace_triggers(
    ws: Workspace,
    creator: str,
    rules: str | Path | None = None,
    report: dict[str, Any] | None = None,
    report_id: str | None = None,
) -> CheckResult:
    """Evaluate the trigger table on the workspace facts (+ a drift report) and open new triggers.

    ``report``/``report_id``: a drift report just made; default: the latest stored one (if any).
    """
    table, source = workspace_rules(ws, rules)
    facts = collect_facts(ws)
    snap = snapshot_from_facts(facts)
    if report is None:
        art = latest_drift_report(ws)
        if art is not None:
            report, report_id = json.loads(art.path.read_text(encoding="utf-8")), art.id
    if report is not None:
        apply_drift_report(snap, report)
    result = CheckResult(source, facts=facts)
    if facts.turnover is not None:
        result.notes.append(f"rater turnover: {facts.turnover.note}")
    every = ws.triggers(open_only=False)
    seen = {t.source for t in every}
    open_by_rule = {t.rule: t.id for t in every if t.closed_at is None}
    by_id = {r.id: r for r in table}
    for firing in evaluate_triggers(snap, table):
        rule = by_id[firing.rule_id]
        fp = fingerprint(rule, firing, facts, report_id)
        still_open = open_by_rule.get(rule.id) if rule.condition in ONE_OPEN else None
        if fp in seen or still_open is not None:
            result.firings.append(OpenedTrigger(firing, None, fp, open_trigger=still_open))
            continue
        evidence, batch = firing.evidence, None
        if by_id[firing.rule_id].condition == "input_drift" and firing.payload.get("comparison_batch"):
            batch = write_comparison_batch(ws, firing, report_id, creator)
            evidence += f"; next comparison batch: prompts artifact {batch[:12]}"
        if by_id[firing.rule_id].condition == "rater_turnover" and facts.turnover is not None:
            evidence += f" ({len(facts.turnover.added)} of {len(facts.turnover.pool_now)} raters new; "
            evidence += f"{facts.turnover.note})"
        action = firing.payload.get("action")
        if action:
            evidence += f" -> {action}"
        tid = ws.open_trigger(firing.play, firing.rule_id, evidence, fp)
        seen.add(fp)
        result.firings.append(OpenedTrigger(firing, tid, fp, batch))
    return result


def open_triggers(ws: Workspace) -> list[dict[str, Any]]:
    """Open triggers as dicts: id, play, play name, rule, evidence, source, opened_at."""
    rows: list[TriggerRecord] = ws.triggers()
    return [
        {
            "id": t.id,
            "play": t.play,
            "play_name": PLAYS.get(t.play, "?"),
            "rule": t.rule,
            "evidence": t.evidence,
            "source": t.source,
            "opened_at": t.opened_at.isoformat(),
        }
        for t in rows
    ]
