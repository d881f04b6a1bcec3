"""The five plays: what each needs to be complete, who owns it, and the order the stages must follow.

Evidence comes from the artifact store. Work counts for a play only when it descends from the
current spec version (its lineage contains the current spec hash); work done on an older spec makes
the play "stale". Numbers are read from artifact meta, as the training stages write it:

* preference data: ``meta.agreement`` (Krippendorff's alpha), set once annotation produced it;
* SFT model: ``meta.eval.beats_base`` (held-out demos: loss after < loss before);
* reward model: ``meta.eval.eval_accuracy`` (held-out pairwise accuracy);
* a policy (dpo-model / ppo-model) is evaluated when an ``evaluation`` artifact has it as a parent;
* a gate decision is a ``decision`` artifact with ``meta.decision`` ("promote" or "reject").

Stage -> the play it belongs to and what must hold first:

| stage | play | needs |
|---|---|---|
| sft | 2 | Play 1 complete: spec valid, signed by business owner + technical lead on its hash, baseline |
| rm | 3 | Play 1, Play 2; the preference data's agreement >= gate.min_agreement once annotation exists |
| dpo | 4 | Play 1, Play 2; preference agreement as for rm; every earlier policy evaluated |
| ppo | 4 | Play 1, Play 2; reward model accuracy >= gate.min_rm_accuracy (with ``reward_judge``: the judge's
  calibration on the current spec, Cohen's kappa with the raters' majority >= gate.min_agreement);
  earlier policies evaluated |
| promote | 5 | Plays 1-4 complete; no override |

An owner of the blocked play may record an override (with a reason) for a stage on the current spec
hash; "promote" has none.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlhfops.errors import PlayOrderError, UserError
from rlhfops.workspace import db
from rlhfops.workspace.signing import override_payload, require_registered
from rlhfops.workspace.store import ArtifactRecord, content_hash

if TYPE_CHECKING:
    from rlhfops.workspace.core import OverrideRecord, SpecVersion, Workspace
    from rlhfops.workspace.signing import Signer

PLAYS = {
    1: "task spec",
    2: "demonstrations",
    3: "preferences + reward model",
    4: "RL fine-tuning",
    5: "red team + deployment gate",
}
PLAY_OWNER_ROLE = {
    1: "task-spec-owner",
    2: "domain-expert-lead",
    3: "annotation-lead",
    4: "ml-engineer",
    5: "gate-owner",
}
STAGE_PLAY = {"sft": 2, "rm": 3, "dpo": 4, "ppo": 4, "promote": 5}
POLICY_KINDS = ("dpo-model", "ppo-model")
PROMOTED = ("promote", "promoted", "approve", "approved")
MIN_OVERRIDE_REASON = 10


def metric(meta: dict[str, Any], key: str) -> Any:
    """``meta[key]``, else ``meta["eval"][key]`` (training summaries nest eval numbers)."""
    if key in meta:
        return meta[key]
    ev = meta.get("eval")
    return ev.get(key) if isinstance(ev, dict) else None


@dataclass
class PlayState:
    """One row of ``rlhfops status``."""

    play: int
    name: str
    state: str  # complete | in progress | not started | stale
    owner_role: str
    owners: list[str]
    evidence: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    override: str | None = None

    @property
    def owner_text(self) -> str:
        who = ", ".join(self.owners) if self.owners else "nobody"
        return f"{who} ({self.owner_role})"

    @property
    def blocks_next(self) -> str | None:
        return self.missing[0] if self.missing else None


@dataclass
class WorkspaceStatus:
    """Everything ``rlhfops status`` shows."""

    workspace: str
    spec_hash: str
    plays: list[PlayState]
    triggers: list[dict[str, Any]]
    overrides: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        plays = []
        for p in self.plays:
            row = asdict(p)
            row["blocks_next"] = p.blocks_next
            plays.append(row)
        return {
            "workspace": self.workspace,
            "spec_hash": self.spec_hash,
            "plays": plays,
            "triggers": self.triggers,
            "overrides": self.overrides,
        }


class _Facts:
    """What the store says, read once: spec version, artifacts, ancestors, people, baseline."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.spec: SpecVersion = ws.current_spec()
        self.arts = ws.artifacts()
        self.by_id = {a.id: a for a in self.arts}
        self.people: dict[str, list[str]] = {}
        for name, role in ws.people():
            self.people.setdefault(role, []).append(name)
        self.baseline = ws.baseline()
        self._anc: dict[str, set[str]] = {}
        self.children: dict[str, list[ArtifactRecord]] = {}
        for a in self.arts:
            for p in a.parents:
                self.children.setdefault(p, []).append(a)

    def ancestors(self, aid: str) -> set[str]:
        if aid not in self._anc:
            out: set[str] = set()
            stack = list(self.by_id[aid].parents) if aid in self.by_id else []
            while stack:
                x = stack.pop()
                if x not in out:
                    out.add(x)
                    stack.extend(self.by_id[x].parents if x in self.by_id else ())
            self._anc[aid] = out
        return self._anc[aid]

    def on_spec(self, a: ArtifactRecord) -> bool:
        return self.spec.hash in self.ancestors(a.id)

    def of_kind(self, *kinds: str) -> list[ArtifactRecord]:
        return [a for a in self.arts if a.kind in kinds]

    def current(self, *kinds: str) -> list[ArtifactRecord]:
        return [a for a in self.of_kind(*kinds) if self.on_spec(a)]

    def children_of_kind(self, aid: str, kind: str) -> list[ArtifactRecord]:
        return [c for c in self.children.get(aid, []) if c.kind == kind]

    @property
    def gate(self):
        return self.spec.spec.gate if self.spec.spec is not None else None

    def state(
        self, play: int, missing: list[str], evidence: list[str], current: bool, stale: bool
    ) -> PlayState:
        role = PLAY_OWNER_ROLE[play]
        if not missing:
            state = "complete"
        elif current:
            state = "in progress"
        elif stale:
            state = "stale"
        else:
            state = "not started"
        return PlayState(play, PLAYS[play], state, role, self.people.get(role, []), evidence, missing)


def _h(x: str) -> str:
    return x[:12]


def _play1(f: _Facts) -> PlayState:
    sv, missing, evidence = f.spec, [], []
    exists = sv.path.is_file()
    if not sv.check.ok:
        first = sv.check.problems[0]
        more = f" (+{len(sv.check.problems) - 1} more)" if len(sv.check.problems) > 1 else ""
        missing.append(f"spec {sv.path.name} does not pass `rlhfops spec check`: {first}{more}")
    else:
        evidence.append(f"spec {_h(sv.hash)}: criteria {', '.join(c.name for c in sv.spec.criteria)}")
    stale = {s.role: s for s in sv.stale_signatures}
    for s in sv.signatures:
        evidence.append(f"signed by {s.person} ({s.role}) {s.signed_at:%Y-%m-%d}")
    for role in sv.missing_roles:
        text = f"spec {_h(sv.hash)} is not signed by the {role}"
        if role in stale:
            old = stale[role]
            text += f" ({old.person}'s signature is on {_h(old.spec_hash)}, stale: the spec changed since)"
        missing.append(f"{text}; run `rlhfops spec sign --role {role}`")
    if f.baseline:
        evidence.append("baseline " + ", ".join(f"{k}={v['value']:.3g}" for k, v in f.baseline.items()))
    else:
        missing.append(
            "no business baseline recorded; run `rlhfops baseline record ...` before any RLHF work"
        )
    return f.state(1, missing, evidence, current=exists, stale=False)


def _play2(f: _Facts) -> PlayState:
    missing, evidence = [], []
    models = f.current("sft-model")
    demos = f.current("demonstrations")
    if demos:
        evidence.append(f"demonstrations {_h(demos[-1].id)}")
    if not models:
        missing.append(
            f"no SFT model trained on spec {_h(f.spec.hash)}; run `rlhfops train sft` in the workspace"
        )
    else:
        m = models[-1]
        beats = metric(m.meta, "beats_base")
        loss = metric(m.meta, "eval_loss")
        evidence.append(
            f"sft-model {_h(m.id)}" + (f" eval_loss={loss:.4g}" if isinstance(loss, float) else "")
        )
        if beats is False:
            base = metric(m.meta, "base_eval_loss")
            missing.append(
                f"SFT model {_h(m.id)} does not beat the base on held-out demos ({loss} vs {base})"
            )
    stale = bool(f.of_kind("sft-model")) and not models
    return f.state(2, missing, evidence, current=bool(models or demos), stale=stale)


def _agreement_missing(f: _Facts, data: ArtifactRecord | None, data_path: str | None) -> str | None:
    """Why preference data may not be trained on (None when it may)."""
    if f.gate is None:
        return None
    need = f.gate.min_agreement
    annotated = [a for a in f.of_kind("preferences") if metric(a.meta, "agreement") is not None]
    if data is not None and metric(data.meta, "agreement") is not None:
        alpha = float(metric(data.meta, "agreement"))
        if alpha < need:
            return (
                f"preference data {_h(data.id)} has agreement {alpha:.3f} < {need} (spec gate.min_agreement)"
            )
        return None
    if data_path is not None and annotated:
        return (
            f"preference data {data_path} has no recorded agreement while annotation exists in this "
            "workspace; train on an annotated snapshot"
        )
    if data_path is None and annotated:
        latest = annotated[-1]
        alpha = float(metric(latest.meta, "agreement"))
        if alpha < need:
            return (
                f"latest preference data {_h(latest.id)} has agreement {alpha:.3f} < {need} "
                "(gate.min_agreement)"
            )
    return None


def _rm_missing(f: _Facts, rm: ArtifactRecord | None) -> str | None:
    if rm is None:
        return f"no reward model trained on spec {_h(f.spec.hash)}; run `rlhfops train rm` in the workspace"
    acc = metric(rm.meta, "eval_accuracy")
    if f.gate is not None and acc is not None and float(acc) < f.gate.min_rm_accuracy:
        return (
            f"reward model {_h(rm.id)} has held-out accuracy {float(acc):.3f} < {f.gate.min_rm_accuracy} "
            "(gate.min_rm_accuracy)"
        )
    return None


def _judge_missing(f: _Facts, spec: str) -> str | None:
    """Why the judge ``spec`` may not be the RL reward (None when it may): it needs a calibration
    (``rlhfops judge calibrate``) on the current spec whose kappa reaches gate.min_agreement."""
    cals = [a for a in f.current("judge-calibration") if a.meta.get("judge") == spec]
    if not cals:
        return (
            f"reward judge {spec} has no calibration on spec {_h(f.spec.hash)}; run "
            f"`rlhfops judge calibrate --judge {spec}` on the human-labelled pairs"
        )
    kappa = metric(cals[-1].meta, "kappa")
    need = f.gate.min_agreement if f.gate is not None else None
    if need is not None and (kappa is None or float(kappa) < need):
        shown = "undefined" if kappa is None else f"{float(kappa):.3f}"
        return (
            f"reward judge {spec} agrees with the raters' majority at Cohen's kappa {shown} < {need} "
            f"(spec gate.min_agreement; calibration {_h(cals[-1].id)})"
        )
    return None


def _play3(f: _Facts) -> PlayState:
    missing, evidence = [], []
    prefs = f.current("preferences")
    for p in prefs[-1:]:
        alpha = metric(p.meta, "agreement")
        evidence.append(
            f"preferences {_h(p.id)}" + (f" agreement={float(alpha):.3f}" if alpha is not None else "")
        )
    why = _agreement_missing(f, None, None)
    if why:
        missing.append(why)
    rms = f.current("reward-model")
    if rms:
        acc = metric(rms[-1].meta, "eval_accuracy")
        evidence.append(
            f"reward-model {_h(rms[-1].id)}" + (f" accuracy={float(acc):.3f}" if acc is not None else "")
        )
    why = _rm_missing(f, rms[-1] if rms else None)
    if why:
        missing.append(why)
    stale = bool(f.of_kind("reward-model", "preferences")) and not (rms or prefs)
    return f.state(3, missing, evidence, current=bool(rms or prefs), stale=stale)


def _unevaluated(f: _Facts) -> list[ArtifactRecord]:
    return [m for m in f.current(*POLICY_KINDS) if not f.children_of_kind(m.id, "evaluation")]


def _play4(f: _Facts) -> PlayState:
    missing, evidence = [], []
    policies = f.current(*POLICY_KINDS)
    if not policies:
        missing.append(f"no policy (PPO or DPO) trained on spec {_h(f.spec.hash)}")
    for m in policies[-3:]:
        evals = f.children_of_kind(m.id, "evaluation")
        evidence.append(
            f"{m.kind} {_h(m.id)}" + (f" evaluated ({_h(evals[-1].id)})" if evals else " not evaluated")
        )
    for m in _unevaluated(f):
        missing.append(f"{m.kind} {_h(m.id)} has no evaluation; evaluate each checkpoint before the next run")
    stale = bool(f.of_kind(*POLICY_KINDS)) and not policies
    return f.state(4, missing, evidence, current=bool(policies), stale=stale)


def _play5(f: _Facts) -> PlayState:
    missing, evidence = [], []
    # Red-team runs: `redteam` artifacts, or `evaluation` artifacts of kind redteam (what `eval run` stores).
    redteam = f.current("redteam") + [
        a for a in f.current("evaluation") if (a.meta or {}).get("kind") == "redteam"
    ]
    decisions = f.current("decision")
    problem = getattr(f, "decision_log_problem", "")
    if problem:  # an edited log or database: no decision is believed
        decisions = []
        missing.append(f"the decision log fails verification ({problem}); see `rlhfops gate log --verify`")
    if redteam:
        evidence.append(f"red team {_h(redteam[-1].id)}")
    else:
        missing.append("no red-team run on a candidate policy")
    if decisions:
        d = decisions[-1]
        evidence.append(f"decision {_h(d.id)}: {d.meta.get('decision', '?')} by {d.creator}")
        if str(d.meta.get("decision", "")).lower() not in PROMOTED:
            missing.append(f"latest gate decision {_h(d.id)} is {d.meta.get('decision', '?')!r}, not promote")
    else:
        missing.append("no gate decision signed by the gate owner")
    state = f.state(5, missing, evidence, current=bool(redteam or decisions), stale=False)
    if f.people.get("red-team-lead"):
        state.evidence.insert(0, f"red-team lead {', '.join(f.people['red-team-lead'])}")
    return state


def _computed_triggers(f: _Facts, recorded_rules: set[str] | None = None) -> list[dict[str, Any]]:
    """Triggers status derives itself; the age row is left out once monitoring has recorded one
    (``rlhfops triggers check`` opens ``stale_reward_model``)."""
    out: list[dict[str, Any]] = []
    recorded_rules = recorded_rules or set()
    if f.spec.stale_signatures:
        roles = ", ".join(s.role for s in f.spec.stale_signatures)
        text = f"spec changed after signing ({roles}): re-sign spec {_h(f.spec.hash)}"
        out.append({"play": 1, "rule": "spec_changed", "source": "status", "evidence": text})
    rms = f.current("reward-model") or f.of_kind("reward-model")
    if rms and f.spec.spec is not None and "stale_reward_model" not in recorded_rules:
        age = (datetime.now(UTC) - rms[-1].created_at).days
        limit = f.spec.spec.reward_model_refresh_days
        if age > limit:
            text = f"reward model {_h(rms[-1].id)} is {age} days old > {limit} (refresh interval)"
            out.append({"play": 3, "rule": "reward_model_age", "source": "status", "evidence": text})
    return out


def compute_status(ws: Workspace, decision_log_problem: str = "") -> WorkspaceStatus:
    """The five plays with state, owner, evidence, blockers; open triggers and overrides.

    ``decision_log_problem`` is what verifying the decision log found (the caller verifies it:
    :func:`rlhfops.gate.log.verify`); when set, no gate decision counts and Play 5 names the problem."""
    f = _Facts(ws)
    f.decision_log_problem = decision_log_problem
    plays = [_play1(f), _play2(f), _play3(f), _play4(f), _play5(f)]
    overrides = ws.overrides(spec_hash=f.spec.hash)
    for o in overrides:
        blocked = plays[o.play - 1]
        blocked.override = f"{o.stage} overridden by {o.person}: {o.reason}"
    triggers = [
        {
            "id": t.id,
            "play": t.play,
            "rule": t.rule,
            "evidence": t.evidence,
            "source": t.source,
            "opened_at": t.opened_at.isoformat(),
        }
        for t in ws.triggers()
    ]
    triggers += _computed_triggers(f, {t["rule"] for t in triggers})
    ovr = [
        {
            "id": o.id,
            "stage": o.stage,
            "play": o.play,
            "person": o.person,
            "reason": o.reason,
            "blocker": o.blocker,
            "created_at": o.created_at.isoformat(),
        }
        for o in overrides
    ]
    return WorkspaceStatus(str(ws.root), f.spec.hash, plays, triggers, ovr)


# ---- play order ------------------------------------------------------------------------------
def _input_artifact(f: _Facts, value: Path | str | None) -> tuple[ArtifactRecord | None, str | None]:
    """(registered artifact, shown name) for an input path or id."""
    if value is None:
        return None, None
    p = Path(value)
    if p.exists():
        return f.by_id.get(content_hash(p)), str(value)
    matches = [a for a in f.arts if isinstance(value, str) and len(value) >= 4 and a.id.startswith(value)]
    return (matches[0], str(value)) if len(matches) == 1 else (None, str(value))


def blockers(ws: Workspace, stage: str, inputs: dict[str, Path | str]) -> list[tuple[int, str]]:
    """(play, what is missing) for everything that stops ``stage``, in play order (empty: ready)."""
    if stage not in STAGE_PLAY:
        raise UserError(f"unknown stage {stage!r}; valid: {', '.join(STAGE_PLAY)}")
    f = _Facts(ws)
    out: list[tuple[int, str]] = [(1, m) for m in _play1(f).missing]
    if stage == "sft":
        return out
    out += [(2, m) for m in _play2(f).missing]
    if stage in ("rm", "dpo", "promote"):
        data, shown = _input_artifact(f, inputs.get("data"))
        why = _agreement_missing(f, data, None if data is not None else shown)
        if why:
            out.append((3, why))
    if stage == "ppo" and inputs.get("reward_judge"):
        why = _judge_missing(f, str(inputs["reward_judge"]))
        if why:
            out.append((3, why))
    elif stage == "ppo":
        rm, _ = _input_artifact(f, inputs.get("reward_model"))
        if rm is None:
            rms = f.current("reward-model")
            rm = rms[-1] if rms else None
        why = _rm_missing(f, rm)
        if why:
            out.append((3, why))
    if stage in ("dpo", "ppo"):
        out += [
            (4, f"{m.kind} {_h(m.id)} has no evaluation; evaluate it before the next run")
            for m in _unevaluated(f)
        ]
    if stage == "promote":
        out += [(4, m) for m in _play4(f).missing]
    return out


def _owners(ws: Workspace, play: int) -> str:
    role = PLAY_OWNER_ROLE[play]
    names = ws.people_with_role(role)
    return (
        f"{', '.join(names)} ({role})"
        if names
        else f"nobody yet ({role}: `rlhfops people add NAME --role {role}`)"
    )


def check_stage_ready(
    ws: Workspace, stage: str, inputs: dict[str, Path | str] | None = None
) -> OverrideRecord | None:
    """Raise :class:`rlhfops.errors.PlayOrderError` (one line: what is missing, who owns it) unless
    ``stage`` ("sft", "rm", "dpo", "ppo", "promote") may start; honours recorded overrides except for
    "promote". Returns the override used, if any."""
    found = blockers(ws, stage, inputs or {})
    if not found:
        return None
    spec_hash = ws.current_spec().hash
    if stage != "promote":
        overrides = ws.overrides(stage=stage, spec_hash=spec_hash)
        if overrides:
            return overrides[-1]
    play, what = found[0]
    blocked = STAGE_PLAY[stage]
    more = f" (+{len(found) - 1} more: `rlhfops status`)" if len(found) > 1 else ""
    if stage == "promote":
        tail = "the deployment gate has no override"
    else:
        role = PLAY_OWNER_ROLE[blocked]
        tail = f"or an owner of Play {blocked} ({role}) runs `rlhfops override {stage} --reason ...`"
    owner = _owners(ws, play)
    raise PlayOrderError(
        f"{stage} refused: Play {play} ({PLAYS[play]}) incomplete: {what}{more}; owner: {owner}; {tail}"
    )


def record_override(ws: Workspace, stage: str, reason: str, signer: Signer) -> OverrideRecord:
    """Record that the authenticated ``signer`` (an owner of the blocked play) lets ``stage`` start on the
    current spec; the override is signed with their key."""
    require_registered(ws, signer, f"override {stage}")
    person = signer.name

    if stage == "promote":
        raise PlayOrderError("override promote: the deployment gate has no override; meet its thresholds")
    if stage not in STAGE_PLAY:
        raise UserError(
            f"override: unknown stage {stage!r}; valid: {', '.join(s for s in STAGE_PLAY if s != 'promote')}"
        )
    reason = reason.strip()
    if len(reason) < MIN_OVERRIDE_REASON:
        raise UserError(
            f"override {stage}: --reason {reason!r} is too short; "
            f"write why (>= {MIN_OVERRIDE_REASON} characters)"
        )
    play = STAGE_PLAY[stage]
    ws.require_role(person, PLAY_OWNER_ROLE[play], f"override {stage}")
    found = blockers(ws, stage, {})
    blocker = found[0][1] if found else "(nothing blocked when recorded)"
    spec_hash = ws.current_spec().hash
    now = db.utcnow().replace(microsecond=0)
    with ws.session() as s:
        row = db.Override(
            stage=stage,
            play=play,
            spec_hash=spec_hash,
            blocker=blocker,
            reason=reason,
            person=person,
            created_at=now,
            public_key=signer.public_key,
            signature=signer.sign(override_payload(stage, play, spec_hash, blocker, reason, person, now)),
        )
        s.add(row)
        s.flush()
        rid = int(row.id)
    return next(o for o in ws.overrides(stage=stage) if o.id == rid)
