"""The trigger table: which play to re-enter, decided by rules written as data (YAML).

A rule names a *condition type* from a small registry of predicates (no arbitrary code is evaluated),
gives its parameters, and says which play to re-enter. :func:`evaluate_triggers` runs every enabled
rule against a :class:`MonitorSnapshot` (the observed facts) and returns one :class:`TriggerFiring` per
rule that fires, with a one-line evidence and a payload (for input drift: the drifted prompts, offered
as the next batch of comparison items in Play 3).

The default table is ``triggers_default.yaml`` next to this module (documented there):
net-new task -> 1; input or output drift -> 3; reward hacking -> 4; new edge-case failure -> 5, and
also -> 3 once it recurs ``min_occurrences`` times; rater turnover > 30% -> 3; reward model older than
the spec's refresh interval -> 3. A systematic edge case fires both rules (5: into the red-team suite;
3: preferences on it); set ``max_occurrences`` on ``new_edge_case`` to make them exclusive.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from rlhfops.errors import ConfigError
from rlhfops.monitor.outputs import MetricDrift

DEFAULT_RULES_FILE = "triggers_default.yaml"
PLAYS = {
    1: "task spec",
    2: "demonstrations",
    3: "preferences + reward model",
    4: "RL fine-tuning",
    5: "red team + gate",
}


@dataclass(frozen=True)
class DriftedPrompt:
    """A production prompt far from the training prompts (``id`` from the log when it has one)."""

    text: str
    id: str | None = None


@dataclass(frozen=True)
class EdgeCaseFailure:
    """An edge-case failure seen in production and how often it has recurred."""

    id: str
    description: str
    occurrences: int


@dataclass(frozen=True)
class NewCluster:
    """A group of production prompts far from every training prompt (from the drift report)."""

    share: float
    size: int
    examples: list[str] = field(default_factory=list)


@dataclass
class MonitorSnapshot:
    """The facts monitoring observed; every trigger condition reads only these.

    rater_turnover: fraction (0-1) of the current rater pool that was not in the pool when the reward
    model's preference data was collected. reward_model_refresh_days: the spec's refresh interval.
    """

    net_new_task: bool = False
    net_new_task_note: str = ""
    new_clusters: list[NewCluster] = field(default_factory=list)
    input_drifted: bool = False
    input_drift_evidence: str = ""
    drifted_prompts: list[DriftedPrompt] = field(default_factory=list)
    output_drift: list[MetricDrift] = field(default_factory=list)
    reward_hacking_alarms: list[str] = field(default_factory=list)
    edge_case_failures: list[EdgeCaseFailure] = field(default_factory=list)
    rater_turnover: float | None = None
    reward_model_age_days: float | None = None
    reward_model_refresh_days: float | None = None


@dataclass(frozen=True)
class TriggerFiring:
    """A rule that fired: re-enter ``play``; ``evidence`` is one line, ``payload`` carries the details."""

    rule_id: str
    play: int
    evidence: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Rule:
    """One row of the trigger table, validated."""

    id: str
    description: str
    play: int
    condition: str
    params: dict[str, Any]
    action: str = ""
    enabled: bool = True
    source: str = ""


Match = tuple[str, dict[str, Any]]  # (evidence, payload)


@dataclass(frozen=True)
class _Condition:
    fn: Callable[[MonitorSnapshot, dict[str, Any]], Match | None]
    required: dict[str, tuple[type, ...]]
    optional: dict[str, tuple[tuple[type, ...], Any]]  # name -> (types, default)


CONDITIONS: dict[str, _Condition] = {}
_NUM = (int, float)


def condition(
    name: str,
    required: dict[str, tuple[type, ...]] | None = None,
    optional: dict[str, tuple[tuple[type, ...], Any]] | None = None,
) -> Callable[[Callable[[MonitorSnapshot, dict[str, Any]], Match | None]], Any]:
    """Register a named predicate ``fn(snapshot, params) -> (evidence, payload) | None``."""

    def deco(fn: Callable[[MonitorSnapshot, dict[str, Any]], Match | None]) -> Any:
        CONDITIONS[name] = _Condition(fn, required or {}, optional or {})
        return fn

    return deco


@condition("net_new_task", optional={"min_new_share": (_NUM, None)})
def _net_new_task(s: MonitorSnapshot, p: dict[str, Any]) -> Match | None:
    share = p.get("min_new_share")
    total = sum(c.share for c in s.new_clusters)
    big = s.input_drifted and share is not None and s.new_clusters and total >= share
    if not s.net_new_task and not big:
        return None
    note = s.net_new_task_note
    clusters = s.new_clusters if big else []
    if big:
        shown = "; ".join(f"{c.share:.0%}, e.g. {c.examples[0]!r}"[:120] for c in clusters[:3] if c.examples)
        note = (note + "; " if note else "") + (
            f"{len(clusters)} new production cluster(s) hold {total:.0%} of the window "
            f"(>= {share:.0%}): {shown}"
        )
    payload = {
        "note": note,
        "clusters": [{"share": c.share, "size": c.size, "examples": list(c.examples)} for c in clusters],
    }
    return f"net-new task in production{': ' + note if note else ''}", payload


@condition("input_drift", required={"max_prompts": (int,)})
def _input_drift(s: MonitorSnapshot, p: dict[str, Any]) -> Match | None:
    if not s.input_drifted:
        return None
    prompts = s.drifted_prompts[: p["max_prompts"]]
    evidence = f"input drift: {s.input_drift_evidence or 'drift report flagged production prompts'}"
    payload = {
        "comparison_batch": [{"id": d.id, "prompt": d.text} for d in prompts],
        "n_drifted_prompts": len(s.drifted_prompts),
    }
    return f"{evidence}; {len(prompts)} drifted prompt(s) offered as the next comparison batch", payload


@condition("output_drift", required={"min_metrics": (int,)}, optional={"metrics": ((list,), None)})
def _output_drift(s: MonitorSnapshot, p: dict[str, Any]) -> Match | None:
    names = p.get("metrics")
    hits = [m for m in s.output_drift if m.drifted and (names is None or m.name in names)]
    if len(hits) < p["min_metrics"]:
        return None
    parts = ", ".join(f"{m.name} ({m.test} p_adj={m.p_adjusted:.3g})" for m in hits)
    payload = {
        "metrics": [{"name": m.name, "p_adjusted": m.p_adjusted, "statistic": m.statistic} for m in hits]
    }
    return f"output drift in {len(hits)} metric(s): {parts}", payload


@condition("reward_hacking", required={"min_alarms": (int,)})
def _reward_hacking(s: MonitorSnapshot, p: dict[str, Any]) -> Match | None:
    if len(s.reward_hacking_alarms) < p["min_alarms"]:
        return None
    return f"reward hacking: {'; '.join(s.reward_hacking_alarms)}", {"alarms": list(s.reward_hacking_alarms)}


@condition(
    "edge_case_failure",
    required={"min_occurrences": (int,)},
    optional={"max_occurrences": ((int,), None)},
)
def _edge_case(s: MonitorSnapshot, p: dict[str, Any]) -> Match | None:
    hi = p.get("max_occurrences")
    hits = [
        e
        for e in s.edge_case_failures
        if e.occurrences >= p["min_occurrences"] and (hi is None or e.occurrences <= hi)
    ]
    if not hits:
        return None
    parts = ", ".join(f"{e.id} x{e.occurrences}" for e in hits)
    payload = {
        "edge_cases": [{"id": e.id, "description": e.description, "occurrences": e.occurrences} for e in hits]
    }
    return f"edge-case failure(s) seen >= {p['min_occurrences']} time(s): {parts}", payload


@condition("rater_turnover", required={"threshold": _NUM})
def _rater_turnover(s: MonitorSnapshot, p: dict[str, Any]) -> Match | None:
    if s.rater_turnover is None or not s.rater_turnover > p["threshold"]:
        return None
    return (
        f"rater turnover {s.rater_turnover:.0%} > {p['threshold']:.0%}",
        {"rater_turnover": s.rater_turnover, "threshold": p["threshold"]},
    )


@condition(
    "reward_model_age",
    required={"slack_days": _NUM},
    optional={"default_refresh_days": (_NUM, None)},
)
def _reward_model_age(s: MonitorSnapshot, p: dict[str, Any]) -> Match | None:
    refresh = (
        s.reward_model_refresh_days
        if s.reward_model_refresh_days is not None
        else p.get("default_refresh_days")
    )
    if s.reward_model_age_days is None or refresh is None:
        return None
    limit = refresh + p["slack_days"]
    if not s.reward_model_age_days > limit:
        return None
    return (
        f"reward model is {s.reward_model_age_days:g} days old > refresh interval {refresh:g} days"
        + (f" + {p['slack_days']:g} slack" if p["slack_days"] else ""),
        {"age_days": s.reward_model_age_days, "refresh_days": refresh},
    )


def _type_ok(value: Any, types: tuple[type, ...]) -> bool:
    return isinstance(value, types) and not (isinstance(value, bool) and bool not in types)


_RULE_KEYS = {"id", "description", "play", "condition", "action", "enabled"}


def _parse_rule(raw: Any, i: int, src: str) -> Rule:
    if not isinstance(raw, dict):
        raise ConfigError(f"{src}: rule #{i + 1}: expected a mapping with id, play and condition")
    rid = raw.get("id")
    if not isinstance(rid, str) or not rid:
        raise ConfigError(f"{src}: rule #{i + 1}: missing 'id' (a non-empty string)")
    where = f"{src}: rule '{rid}'"
    unknown = sorted(set(raw) - _RULE_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys: {', '.join(sorted(_RULE_KEYS))}")
    play = raw.get("play")
    if not isinstance(play, int) or isinstance(play, bool) or play not in PLAYS:
        raise ConfigError(f"{where}: play={play!r}; must be one of 1, 2, 3, 4, 5")
    cond = raw.get("condition")
    if not isinstance(cond, dict) or "type" not in cond:
        raise ConfigError(f"{where}: missing 'condition' with a 'type' (one of {', '.join(CONDITIONS)})")
    ctype = cond["type"]
    if ctype not in CONDITIONS:
        raise ConfigError(f"{where}: unknown condition type {ctype!r}; known types: {', '.join(CONDITIONS)}")
    spec = CONDITIONS[ctype]
    params = {k: v for k, v in cond.items() if k != "type"}
    for name in spec.required:
        if name not in params:
            raise ConfigError(f"{where}: condition '{ctype}' needs parameter '{name}'")
    extra = sorted(set(params) - set(spec.required) - set(spec.optional))
    if extra:
        valid = ", ".join([*spec.required, *spec.optional]) or "none"
        raise ConfigError(f"{where}: condition '{ctype}' has unknown parameter(s) {extra}; valid: {valid}")
    for name, default in ((k, v[1]) for k, v in spec.optional.items()):
        params.setdefault(name, default)
    for name, value in params.items():
        types = spec.required[name] if name in spec.required else spec.optional[name][0]
        if value is not None and not _type_ok(value, types):
            kinds = "/".join(t.__name__ for t in types)
            raise ConfigError(f"{where}: parameter '{name}'={value!r} must be {kinds}")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}: enabled={enabled!r} must be true or false")
    return Rule(
        id=rid,
        description=str(raw.get("description", "")),
        play=play,
        condition=ctype,
        params=params,
        action=str(raw.get("action", "")),
        enabled=enabled,
        source=src,
    )


def parse_rules(data: Any, source: str) -> list[Rule]:
    """Validate a loaded trigger table (``{"rules": [...]}``); ConfigError names the file and the rule."""
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise ConfigError(f"{source}: expected a mapping with a 'rules' list")
    rules = [_parse_rule(raw, i, source) for i, raw in enumerate(data["rules"])]
    seen: set[str] = set()
    for r in rules:
        if r.id in seen:
            raise ConfigError(f"{source}: rule '{r.id}' is defined twice; rule ids must be unique")
        seen.add(r.id)
    return rules


def load_rules(path: str | Path | None = None) -> list[Rule]:
    """The trigger table from ``path``, or the bundled ``triggers_default.yaml`` when None."""
    if path is None:
        text = resources.files("rlhfops.monitor").joinpath(DEFAULT_RULES_FILE).read_text(encoding="utf-8")
        source = DEFAULT_RULES_FILE
    else:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: trigger rules file not found")
        text, source = p.read_text(encoding="utf-8"), str(p)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{source}{line}: not valid YAML ({getattr(err, 'problem', err)})") from None
    return parse_rules(data, source)


def evaluate_triggers(snapshot: MonitorSnapshot, rules: list[Rule] | None = None) -> list[TriggerFiring]:
    """Every enabled rule whose condition holds on ``snapshot``, in table order.

    ``payload`` always has ``action`` (the rule's) and ``play_name``, plus the condition's details.
    """
    out = []
    for rule in load_rules() if rules is None else rules:
        if not rule.enabled:
            continue
        match = CONDITIONS[rule.condition].fn(snapshot, rule.params)
        if match is None:
            continue
        evidence, payload = match
        payload = {"action": rule.action, "play_name": PLAYS[rule.play], **payload}
        out.append(TriggerFiring(rule.id, rule.play, evidence, payload))
    return out


def drifted_prompts_from_report(
    shifted_indices: list[int], texts: list[str], ids: list[str | None] | None = None
) -> list[DriftedPrompt]:
    """The drifted prompts for a snapshot: ``InputDriftReport.shifted_indices`` mapped to texts (and ids)."""
    return [DriftedPrompt(texts[i], None if ids is None else ids[i]) for i in shifted_indices]


def init_rules_file(root: str | Path, name: str = "triggers.yaml") -> Path:
    """Copy the bundled table to ``root/name`` for a team to tune; refuses to overwrite."""
    target = Path(root) / name
    if target.exists():
        raise ConfigError(f"{target}: already exists; edit it, or remove it to start from the default again")
    text = resources.files("rlhfops.monitor").joinpath(DEFAULT_RULES_FILE).read_text(encoding="utf-8")
    target.write_text(text, encoding="utf-8")
    return target
