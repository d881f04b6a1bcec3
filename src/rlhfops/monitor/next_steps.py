"""`rlhfops next`: each open trigger turned into its concrete next step, recorded, and closed when done.

Two kinds of step, chosen by the trigger's rule (its condition in the workspace's trigger table; a
trigger opened by hand with a rule named like a condition, e.g. ``input_drift``, is read as that):

* **queue** -- the rules that send to Play 3 *with items*: ``input_drift`` (the drifted prompts, from
  the ``prompts`` artifact its evidence names) and ``edge_case_failure`` rules re-entering Play 3 (the
  systematic edge cases: the failing red-team items its evidence lists, looked up in the stored
  red-team results). Each prompt gets two candidate replies, generated through the product's
  generation path (:class:`rlhfops.evaluate.generation.LoadedModel`, greedy, as ``eval run``): one by
  the **current candidate** (the deployed model: the latest promoted one, else the latest policy) and
  one by the **reference** (the SFT model in the candidate's lineage; ``--model`` / ``--reference``
  choose others). The trigger's evidence holds at most the failing reply of an older model, so replies
  are not taken from it: both sides come from the two models people are choosing between now. The
  pairs are queued in the annotation service (:func:`rlhfops.annotate.queue.queue_pairs`, what
  ``pairs import`` and the web app use), batch ``trigger-<id>-<rule>``, ``k`` raters each; they are
  ordinary comparison items, so ``prefs export`` includes them. A failing red-team item on the
  **held-out half** (:mod:`rlhfops.redteam.split`) is not queued: it stays evaluation data (queuing it
  would make the gate's contamination guard refuse the next held-out evaluation); the step says how
  many were left out. A prompt whose two replies are identical makes no pair (counted). The step is
  done, and the trigger closed, once its pairs are queued (or were already queued).
* **command** -- every other rule: one or two lines saying what to do in the words of the plays and the
  command to run. The step is recorded once; the trigger stays open until the person says it is done:
  ``rlhfops next --done TRIGGER_ID`` records that and closes it. (Closing on an artifact appearing was
  not chosen: a retrained reward model does not show that the new preferences were collected for this
  trigger's reason; the person doing the step knows.)

Every step is recorded as a ``report`` artifact (``meta.monitor = "next-step"``, ``meta.trigger``,
``meta.kind``, ``meta.done``, the batch and counts). Only open triggers are acted on, and a queue step
is recorded with ``done`` before its trigger is closed, so a closed trigger is never acted on twice;
queueing is idempotent too (a pair already queued is skipped). ``--dry-run`` prints the plan: no
model is loaded and nothing is written.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlhfops.annotate.settings import annotation_settings
from rlhfops.data.io import read_rows
from rlhfops.data.prompt_key import prompt_keys
from rlhfops.errors import UserError
from rlhfops.evaluate.generation import LoadedModel
from rlhfops.gate.contamination import evaluation_items
from rlhfops.monitor.engine import workspace_rules
from rlhfops.monitor.facts import deployed_model, trusted_decisions
from rlhfops.monitor.triggers import CONDITIONS, PLAYS
from rlhfops.redteam.split import item_half

if TYPE_CHECKING:
    from rlhfops.workspace.core import TriggerRecord, Workspace
    from rlhfops.workspace.store import ArtifactRecord

STEP_TAG = "next-step"
_BATCH_REF = re.compile(r"prompts artifact ([0-9a-f]{6,64})")
_FAILURE_REF = re.compile(r"([\w.-]+/[\w.-]+) x\d+")

# condition -> (what to do, command), in the words of the plays; {model} is the current candidate
COMMANDS: dict[str, tuple[str, str]] = {
    "net_new_task": (
        "Production carries a task the signed spec does not cover: extend the task spec (task, criteria, "
        "edge cases) and have the business owner and technical lead sign it again.",
        "edit spec.yaml and edge_cases.md; rlhfops spec check; rlhfops spec sign --role business-owner "
        "(then --role technical-lead)",
    ),
    "output_drift": (
        "The model's outputs shifted since the reference period: collect fresh preferences on current "
        "outputs and check the reward model against them.",
        "rlhfops pairs generate --model {model} --prompts RECENT_PROMPTS.jsonl -n 2",
    ),
    "reward_hacking": (
        "Reward went up while quality or the judges disagree: recalibrate the KL penalty with a sweep "
        "and re-run RL fine-tuning from the SFT model.",
        "rlhfops train ppo --set model=SFT --set reward_model=RM --set data=PROMPTS --kl-sweep 0.01,0.05,0.2",
    ),
    "edge_case_failure": (
        "A new edge-case failure: add the case to the red-team suite and re-run the deployment gate on "
        "the held-out half.",
        "rlhfops eval run {model} --suite redteam --redteam-half heldout; rlhfops gate evaluate {model}",
    ),
    "rater_turnover": (
        "More than the threshold of the rater pool is new: run a calibration round with the new raters "
        "and re-check agreement before their labels count.",
        "rlhfops calibration start; rlhfops calibration result",
    ),
    "reward_model_age": (
        "The reward model is older than the spec's refresh interval: collect new preferences and "
        "retrain the reward model.",
        "rlhfops prefs export prefs.jsonl; rlhfops train rm --set data=prefs.jsonl --set model=SFT",
    ),
}


@dataclass
class Step:
    """One trigger's next step (``kind`` queue or command) and what became of it."""

    trigger_id: int
    rule: str
    play: int
    kind: str  # queue, command, or blocked (the step's items cannot be found: ``what`` says why)
    what: str
    command: str = ""
    prompts: list[dict[str, Any]] = field(default_factory=list)  # queue steps: {id, prompt, source}
    left_out: list[str] = field(default_factory=list)  # held-out-half failures / drifted evaluation items
    batch: str | None = None
    model: str | None = None
    reference: str | None = None
    queued: int = 0
    already_queued: int = 0
    identical: int = 0
    done: bool = False
    recorded_before: bool = False
    record: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class NextOptions:
    model: str | None = None  # the current candidate (default: the deployed model)
    reference: str | None = None  # default: the SFT model in the candidate's lineage
    k: int | None = None
    max_new_tokens: int = 128
    seed: int = 0
    dry_run: bool = False


def rule_condition(ws: Workspace, trigger: TriggerRecord, rules: str | Path | None = None) -> str | None:
    """The condition behind ``trigger``'s rule (the table's, else the rule's own name if it is one)."""

    table, _ = workspace_rules(ws, rules)
    by_id = {r.id: r.condition for r in table}
    if trigger.rule in by_id:
        return by_id[trigger.rule]
    return trigger.rule if trigger.rule in CONDITIONS else None


def is_queue_step(condition: str | None, play: int) -> bool:
    return condition == "input_drift" or (condition == "edge_case_failure" and play == 3)


def step_records(ws: Workspace, trigger_id: int | None = None) -> list[ArtifactRecord]:
    """Recorded steps (of one trigger), oldest first."""
    return [
        a
        for a in ws.artifacts("report")
        if a.meta.get("monitor") == STEP_TAG and (trigger_id is None or a.meta.get("trigger") == trigger_id)
    ]


def evaluation_prompt_keys(ws: Workspace) -> dict[str, str]:
    """Prompt key -> "<evaluation short id>/<item id>" for every item of every stored evaluation: prompts
    that must stay out of training data (the gate's contamination guard would refuse the model)."""

    keys: dict[str, str] = {}
    for a in ws.artifacts():
        if a.kind not in ("evaluation", "redteam"):
            continue
        for i, it in enumerate(evaluation_items(a)):
            for key in prompt_keys(it.get("prompt")):
                keys.setdefault(key, f"{a.short_id}/{it.get('id', i)}")
    return keys


def drift_prompts(ws: Workspace, trigger: TriggerRecord) -> tuple[list[dict[str, Any]], list[str]]:
    """(drifted prompts to queue, drifted prompts left out because they are evaluation items) of an
    input-drift trigger: the ``prompts`` artifact its evidence names."""

    ref = _BATCH_REF.search(trigger.evidence)
    if ref is None:
        raise UserError(
            f"trigger {trigger.id}: its evidence names no prompts artifact (the comparison batch); "
            "queue pairs by hand (`rlhfops pairs generate`) and close it with "
            f"`rlhfops next --done {trigger.id}`"
        )
    art = ws.artifact(ref.group(1))
    held = evaluation_prompt_keys(ws)
    keep: list[dict[str, Any]] = []
    left: list[str] = []
    for r in read_rows(art.path):
        if not isinstance(r.data.get("prompt"), str):
            continue
        hit = next((held[k] for k in prompt_keys(r.data["prompt"]) if k in held), None)
        if hit is not None:
            left.append(hit)
            continue
        keep.append(
            {"id": r.data.get("id") or f"drift-{r.line}", "prompt": r.data["prompt"], "source": "drift"}
        )
    return keep, left


def failure_prompts(ws: Workspace, trigger: TriggerRecord) -> tuple[list[dict[str, Any]], list[str]]:
    """(training-half failing items to queue, held-out-half ids left out) of an edge-case trigger."""

    wanted = list(dict.fromkeys(_FAILURE_REF.findall(trigger.evidence)))
    found: dict[str, str] = {}
    for a in reversed(ws.artifacts()):
        if a.kind not in ("evaluation", "redteam") or not isinstance(a.meta.get("redteam"), dict):
            continue
        for cat, res in a.meta["redteam"].items():
            for f in (res or {}).get("failures") or [] if isinstance(res, dict) else []:
                key = f"{cat}/{f.get('id')}" if isinstance(f, dict) else None
                if key in wanted and key not in found and isinstance(f.get("prompt"), str):
                    found[key] = f["prompt"]
    missing = [k for k in wanted if k not in found]
    if not wanted or missing:
        raise UserError(
            f"trigger {trigger.id}: failing item(s) {', '.join(missing) or '(none named)'} not found in the "
            "stored red-team results; queue pairs by hand and close it with `rlhfops next --done "
            f"{trigger.id}`"
        )
    keep = [
        {"id": k, "prompt": found[k], "source": "edge-case"} for k in wanted if item_half(found[k]) == "train"
    ]
    return keep, [k for k in wanted if item_half(found[k]) == "heldout"]


def _lineage_model(ws: Workspace, model: ArtifactRecord, kinds: tuple[str, ...]) -> ArtifactRecord | None:
    for a in ws.lineage(model.id)[1:]:
        if a.kind in kinds:
            return a
    return None


def pick_models(ws: Workspace, opts: NextOptions) -> tuple[ArtifactRecord, ArtifactRecord]:
    """(current candidate, reference): see the module doc."""

    if opts.model:
        cand = ws.artifact(opts.model)
    else:
        found = deployed_model(ws.artifacts(), trusted_decisions(ws))
        if found is None:
            raise UserError("next: no trained policy in the workspace to generate replies; give --model ID")
        cand = found
    if opts.reference:
        ref = ws.artifact(opts.reference)
    else:
        kinds = ("sft-model",) if cand.kind != "sft-model" else ("base-model",)
        found = _lineage_model(ws, cand, kinds)
        if found is None:
            raise UserError(
                f"next: {cand.kind} {cand.short_id} has no {kinds[0]} in its lineage to compare with; "
                "give --reference ID"
            )
        ref = found
    if ref.id == cand.id:
        raise UserError(
            f"next: --model and --reference are the same artifact {cand.short_id}; pairs need two"
        )
    return cand, ref


def plan_step(ws: Workspace, trigger: TriggerRecord, rules: str | Path | None = None) -> Step:
    """The step for one open trigger, without acting on it."""
    cond = rule_condition(ws, trigger, rules)
    base = {"trigger_id": trigger.id, "rule": trigger.rule, "play": trigger.play}
    if is_queue_step(cond, trigger.play):
        if cond == "input_drift":
            prompts, left = drift_prompts(ws, trigger)
            what = (
                "Play 3: collect preferences on the {n} drifted production prompt(s) so the reward "
                "model learns the new traffic; then refresh the reward model."
            )
            if left:
                shown = ", ".join(left[:3])
                what += f" {len(left)} drifted prompt(s) are evaluation items and stay out: {shown}."
        else:
            prompts, left = failure_prompts(ws, trigger)
            what = (
                "Play 3: collect preferences on the {n} recurring edge-case failure(s) on the red-team "
                "training half (a safe or correct reply vs the failing kind); then retrain the reward model."
            )
            if left:
                what += f" {len(left)} held-out-half failure(s) stay evaluation data: {', '.join(left[:3])}."
        step = Step(**base, kind="queue", what=what.replace("{n}", str(len(prompts))), prompts=prompts)
        step.left_out = left
        step.batch = f"trigger-{trigger.id}-{trigger.rule}"
        step.command = f"queued as batch {step.batch}; raters label it in `rlhfops serve`"
        return step
    if cond in COMMANDS:
        what, command = COMMANDS[cond]
        return Step(**base, kind="command", what=f"Play {trigger.play}: {what}", command=command)
    return Step(
        **base,
        kind="command",
        what=f"Play {trigger.play} ({PLAYS.get(trigger.play, '?')}): re-enter the play; {trigger.evidence}",
        command="rlhfops status",
    )


def record_step(ws: Workspace, step: Step, creator: str) -> str:
    """Store ``step`` as a ``report`` artifact (meta.monitor = next-step); returns its id."""

    body = {**step.to_json(), "recorded_at": datetime.now(UTC).isoformat(), "by": creator}
    with tempfile.TemporaryDirectory(prefix="rlhfops-step-") as tmp:
        path = Path(tmp) / f"next-step-trigger-{step.trigger_id}.json"
        path.write_text(json.dumps(body, indent=1, ensure_ascii=False), encoding="utf-8")
        meta = {
            "monitor": STEP_TAG,
            "trigger": step.trigger_id,
            "rule": step.rule,
            "play": step.play,
            "kind": step.kind,
            "done": step.done,
            "batch": step.batch,
            "queued": step.queued,
        }
        parents = [p for p in (step.model, step.reference) if p]
        return ws.register_artifact("report", path, parents, creator, meta)


def queue_step(ws: Workspace, step: Step, opts: NextOptions) -> None:
    """Generate both replies for the step's prompts and queue the differing pairs (sets the counts)."""
    from rlhfops.annotate.queue import PairIn, queue_pairs

    cand, ref = pick_models(ws, opts)
    step.model, step.reference = cand.id, ref.id
    if not step.prompts:
        step.done = True  # nothing to queue (every failure is on the held-out half)
        return
    texts = [p["prompt"] for p in step.prompts]
    a = LoadedModel.load(str(cand.path)).respond(texts, opts.max_new_tokens, seed=opts.seed)
    b = LoadedModel.load(str(ref.path)).respond(texts, opts.max_new_tokens, seed=opts.seed)
    pairs = []
    for p, x, y in zip(step.prompts, a, b, strict=True):
        if not x.strip() or not y.strip() or x.strip() == y.strip():
            step.identical += 1
            continue
        meta = {
            "id": p["id"],
            "source": p["source"],
            "trigger": step.trigger_id,
            "model_a": cand.id,
            "model_b": ref.id,
        }
        pairs.append(PairIn(p["prompt"], x, y, None, meta))
    k = opts.k or annotation_settings(ws).overlap
    step.queued, step.already_queued = queue_pairs(ws, pairs, step.batch or "next", k) if pairs else (0, 0)
    step.done = step.queued + step.already_queued > 0


MODEL_PLACEHOLDER = "MODEL_ID"  # a command's model when none is given and nothing is deployed


def command_model(ws: Workspace, opts: NextOptions) -> str:
    """The model a command step names: ``opts.model``, else the deployed model, else MODEL_ID."""
    if opts.model:
        return opts.model
    found = deployed_model(ws.artifacts(), trusted_decisions(ws))
    return found.id if found is not None else MODEL_PLACEHOLDER


def run_next(ws: Workspace, creator: str, opts: NextOptions, rules: str | Path | None = None) -> list[Step]:
    """Act on every open trigger (see the module doc); with ``opts.dry_run`` only plan."""
    steps = []
    for trigger in ws.triggers(open_only=True):
        try:
            step = plan_step(ws, trigger, rules)
        except UserError as err:  # its items cannot be found: say so, go on with the others
            steps.append(Step(trigger.id, trigger.rule, trigger.play, "blocked", str(err)))
            continue
        if "{model}" in step.command:
            step.command = step.command.replace("{model}", command_model(ws, opts))
        steps.append(step)
        if opts.dry_run:
            if step.kind == "queue":
                try:
                    cand, ref = pick_models(ws, opts)
                    step.model, step.reference = cand.id, ref.id
                except UserError:
                    pass
            continue
        earlier = step_records(ws, trigger.id)
        if step.kind == "command":
            step.recorded_before = bool(earlier)
            if not earlier:
                step.record = record_step(ws, step, creator)
            continue
        queue_step(ws, step, opts)
        step.record = record_step(ws, step, creator)
        if step.done:
            ws.close_trigger(trigger.id, creator)
    return steps


def mark_done(ws: Workspace, trigger_id: int, creator: str, rules: str | Path | None = None) -> Step:
    """Record that the person did ``trigger_id``'s step and close the trigger."""
    trigger = next((t for t in ws.triggers(open_only=True) if t.id == trigger_id), None)
    if trigger is None:
        raise UserError(f"next --done {trigger_id}: no open trigger with this id (see `rlhfops triggers`)")
    try:
        step = plan_step(ws, trigger, rules)
    except UserError:  # its items cannot be found: the person handled it by hand
        step = Step(trigger.id, trigger.rule, trigger.play, "command", "done by hand")
    step.done = True
    step.record = record_step(ws, step, creator)
    ws.close_trigger(trigger_id, creator)
    return step
